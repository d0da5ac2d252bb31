//! Progress bars on stderr for long work (loading weights, converting checkpoints). They draw
//! only on a terminal and only for work big enough to take a while.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use zoo_core::Backend;

use zoo::{LoadOptions, Pipeline};

/// Below this many bytes no bar is drawn.
pub const BAR_MIN_BYTES: u64 = 64 << 20;

/// A bar counting bytes, labelled `message`; hidden until [`set`] sees enough work.
pub fn bytes_bar(message: &'static str) -> Result<ProgressBar> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta})")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    bar.set_message(message);
    Ok(bar)
}

/// Moves `bar` to `done` of `total` bytes, once `total` is worth a bar.
pub fn set(bar: &ProgressBar, done: u64, total: u64) {
    if total >= BAR_MIN_BYTES {
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// Loads a model with a bar of the weight bytes made resident, then says what one-time work
/// the backend does before its first token (compiling GPU kernels on a machine's first run).
pub fn load(options: &LoadOptions) -> Result<Pipeline> {
    let bar = bytes_bar("loading weights")?;
    let pipe = zoo::load_reporting(options, &|done, total| set(&bar, done, total));
    bar.finish_and_clear();
    let pipe = pipe?;
    let report = &pipe.load_report;
    if !report.unused.is_empty() {
        let (n, names) = (report.unused.len(), report.unused_summary());
        eprintln!("zoo: warning: {}: {n} tensor(s) left unused (--allow-unused): {names}", report.source);
    }
    if let Some(note) = pipe.backend.startup_note() {
        eprintln!("zoo: {note}");
    }
    Ok(pipe)
}
