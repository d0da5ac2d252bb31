//! `zoo convert`: parses nothing itself and converts nothing itself; it calls
//! [`zoo_checkpoint::convert::convert`] with a progress bar on stderr for large models.

use std::io::Write;

use anyhow::{Context, Result};
use zoo_checkpoint::convert::{convert, ConvertOptions};

use crate::args::ConvertArgs;
use crate::progress;

/// Runs `zoo convert`, reporting what was written on `out`.
pub fn run(args: &ConvertArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Result<()> {
    let bar = progress::bytes_bar("converting")?;
    let report_progress = |done: u64, total: u64| progress::set(&bar, done, total);
    let options = ConvertOptions { dtype: args.dtype, progress: Some(&report_progress) };
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
