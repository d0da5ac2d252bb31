//! Stopping: on SIGINT or SIGTERM the listener closes, requests in flight run to their end for
//! at most a grace period, then the scheduler thread is given the same time to wind down.

use std::future::IntoFuture;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Serves until a signal, then waits for open requests for at most `grace`.
pub async fn serve_until_signal(listener: TcpListener, router: Router, grace: Duration) -> Result<(), crate::Error> {
    let signalled = std::sync::Arc::new(Notify::new());
    let notify = signalled.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        signal().await;
        notify.notify_one();
    });
    tokio::select! {
        served = server.into_future() => served.map_err(crate::Error::Io),
        _ = async {
            signalled.notified().await;
            tokio::time::sleep(grace).await;
        } => Ok(()),
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Waits up to `limit` for the scheduler thread to end (a long prefill may still be running;
/// the process then exits without it).
pub fn join_for(thread: JoinHandle<()>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}
