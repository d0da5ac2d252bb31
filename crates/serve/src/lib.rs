//! # zoo-serve
//!
//! An OpenAI-compatible HTTP server over one loaded [`zoo::Pipeline`] (`zoo serve`), on tokio and
//! axum:
//! - `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` in OpenAI's request
//!   and response shapes, streamed as server-sent events with `stream: true` ([`generate`],
//!   [`request`], [`response`], [`sse`]);
//! - `GET /health`, `GET /metrics` (Prometheus text, [`metrics`]) and a chat page at `/`;
//! - continuous batching: one thread owns the model and runs every active request in one forward
//!   pass per step, admitting and dropping requests between steps and reusing cached prompt
//!   prefixes ([`scheduler`], [`slots`], [`sequence`]);
//! - limits: an API key, a bounded queue (429 when full), a body-size cap, OpenAI-style JSON
//!   errors ([`api_error`]); SIGINT/SIGTERM stop accepting and let running requests finish, for
//!   at most [`ServeConfig::shutdown_grace`] ([`shutdown`]).

pub mod api_error;
pub mod app;
pub mod generate;
pub mod job;
pub mod logprobs;
pub mod metrics;
pub mod prepare;
pub mod request;
pub mod response;
pub mod scheduler;
pub mod sequence;
pub mod shutdown;
pub mod slots;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use zoo::Pipeline;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on (`127.0.0.1`: this machine only).
    pub host: String,
    /// Port (0: any free one; the `ready` callback of [`serve`] says which).
    pub port: u16,
    /// Requests to `/v1/*` must send `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Sequences generated together (KV-cache slots).
    pub max_batch: usize,
    /// Requests that may wait for a slot; more are refused with 429.
    pub max_queue: usize,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// How long running requests may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// The model's name in responses and `/v1/models`.
    pub model_name: String,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            max_batch: 8,
            max_queue: 64,
            max_body_bytes: 4 << 20,
            shutdown_grace: Duration::from_secs(30),
            model_name: "zoo".into(),
        }
    }
}

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Network or runtime I/O failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// The scheduler thread could not start.
    #[error("starting the scheduler thread: {0}")]
    Thread(std::io::Error),
    /// The KV cache could not be made.
    #[error(transparent)]
    Model(#[from] zoo_core::Error),
}

/// Serves `pipe` until SIGINT or SIGTERM; `ready` gets the bound address once requests are
/// accepted. Runs its own tokio runtime; generation runs on one more thread.
pub fn serve(pipe: Pipeline, config: &ServeConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    check(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let pipe = Arc::new(pipe);
    let metrics = Arc::new(metrics::Metrics::default());
    let (queue, jobs) = mpsc::channel(config.max_queue);
    let scheduler = scheduler::spawn(pipe.clone(), config.max_batch, jobs, metrics.clone())?;
    let app = Arc::new(app::App::new(pipe, queue, metrics, config));
    let addr = format!("{}:{}", config.host, config.port);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&addr))
        .map_err(|source| Error::Bind { addr: addr.clone(), source })?;
    ready(listener.local_addr()?);
    let served = runtime.block_on(shutdown::serve_until_signal(listener, app::router(app), config.shutdown_grace));
    // Connections still open after the grace period are dropped; their jobs then see their
    // clients gone and end at the next step.
    runtime.shutdown_timeout(Duration::from_secs(1));
    shutdown::join_for(scheduler, config.shutdown_grace);
    served
}

fn check(config: &ServeConfig) -> Result<(), Error> {
    if config.max_batch == 0 || config.max_batch > 4096 {
        return Err(Error::Config(format!("--max-batch {}: out of range (1..=4096)", config.max_batch)));
    }
    if config.max_queue == 0 || config.max_queue > 1 << 20 {
        return Err(Error::Config(format!("--max-queue {}: out of range (1..=1048576)", config.max_queue)));
    }
    Ok(())
}
