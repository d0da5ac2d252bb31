//! Removing `zoo convert`'s temporaries when the process is interrupted (SIGINT, SIGTERM,
//! SIGHUP).
//!
//! The handler only writes the signal's number to a pipe (all a signal handler may safely do);
//! a watcher thread reads it, takes the lock that commits also hold, removes every registered
//! temporary, and ends the process with the signal's default action. A commit in progress
//! therefore finishes before the process dies: the target is either the old one or the new one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

/// Temporaries to remove on a signal.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The pipe's write end, for the handler.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

static INSTALL: Once = Once::new();

/// The signals that remove the temporaries before ending the process.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Installs the handlers (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe` writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return; // no pipe: interruption then leaves temporaries, as before
        }
        PIPE_WRITE.store(fds[1], Ordering::SeqCst);
        std::thread::spawn(move || watch(fds[0]));
        for signal in SIGNALS {
            // SAFETY: `on_signal` only calls `write`, which is async-signal-safe.
            unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
        }
    });
}

extern "C" fn on_signal(signal: libc::c_int) {
    let byte = signal as u8;
    // SAFETY: writing one byte from a live local to a pipe descriptor.
    unsafe { libc::write(PIPE_WRITE.load(Ordering::SeqCst), (&byte as *const u8).cast(), 1) };
}

/// Waits for a signal, removes the temporaries, and re-raises it with its default action.
fn watch(read_fd: libc::c_int) {
    let mut byte = 0u8;
    // SAFETY: reading one byte into a live local.
    while unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) } != 1 {}
    let temporaries = lock();
    for path in temporaries.iter() {
        remove(path);
    }
    let signal = libc::c_int::from(byte);
    // SAFETY: restoring the default action and raising the signal ends the process as the
    // signal would have; `_exit` covers a signal whose default is to continue.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
        libc::_exit(128 + signal);
    }
}

/// The temporaries' lock: held while a commit renames, so a signal waits for it.
pub fn lock() -> MutexGuard<'static, Vec<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes `path` (a file or a directory tree), ignoring what is already gone.
pub fn remove(path: &Path) {
    let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
}
