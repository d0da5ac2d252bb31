//! `zoo convert`: parses nothing itself and converts nothing itself; it calls
//! [`zoo_checkpoint::convert::convert`] with a progress bar on stderr for large models.

use std::io::Write;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zoo_checkpoint::convert::{convert, ConvertOptions};

use crate::args::ConvertArgs;

/// Below this many tensor bytes no progress bar is drawn.
const BAR_MIN_BYTES: u64 = 64 << 20;

/// Runs `zoo convert`, reporting what was written on `out`.
pub fn run(args: &ConvertArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Result<()> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    bar.set_message("converting");
    let progress = |done: u64, total: u64| {
        if total >= BAR_MIN_BYTES {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let options = ConvertOptions { dtype: args.dtype, progress: Some(&progress) };
    let report = convert(&args.from, &args.to, &options)
        .with_context(|| format!("converting {} to {}", args.from.display(), args.to.display()))?;
    bar.finish_and_clear();
    writeln!(
        out,
        "wrote {} tensors ({:.1} MB read) as {:?}:",
        report.tensors,
        report.source_bytes as f64 / 1e6,
        report.format
    )?;
    for file in &report.files {
        writeln!(out, "  {}", file.display())?;
    }
    Ok(())
}
