//! Progress bars on stderr for long work (downloading models, loading weights, converting
//! checkpoints). They draw only on a terminal and only for work big enough to take a while.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use zoo_core::Backend;

use zoo::{DownloadProgress, HubId, LoadOptions, Pipeline};

/// Below this many bytes no bar is drawn.
pub const BAR_MIN_BYTES: u64 = 64 << 20;

/// A bar counting bytes, labelled `message`; hidden until [`set`] sees enough work.
pub fn bytes_bar(message: impl Into<Cow<'static, str>>) -> Result<ProgressBar> {
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
/// A Hugging Face id is found in the hub cache first, downloaded with a bar per file if missing.
pub fn load(options: &LoadOptions) -> Result<Pipeline> {
    let weights = zoo::resolve_weights(&options.weights, &mut DownloadBars::default())?;
    let options = LoadOptions { weights, ..options.clone() };
    let bar = bytes_bar("loading weights")?;
    let pipe = zoo::load_reporting(&options, &|done, total| set(&bar, done, total));
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

/// Download progress: a line when a download starts, then a bar per file big enough for one.
#[derive(Default)]
pub struct DownloadBars {
    /// The current file's bar and size.
    bar: Option<(ProgressBar, u64)>,
}

impl DownloadProgress for DownloadBars {
    fn begin(&mut self, id: &HubId, cache: &Path) {
        eprintln!("zoo: downloading {id} into {}", cache.display());
    }

    fn file(&mut self, file: &str, size: u64) {
        self.finish();
        self.bar = bytes_bar(format!("downloading {file}")).ok().map(|bar| (bar, size));
    }

    fn progress(&mut self, done: u64) {
        if let Some((bar, size)) = &self.bar {
            set(bar, done, *size);
        }
    }

    fn finish(&mut self) {
        if let Some((bar, _)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
