//! `zoo convert`: parses nothing itself and converts nothing itself. It stages the output
//! ([`transaction`]), has [`zoo_checkpoint::convert::convert`] write it with a progress bar on
//! stderr, checks the result against the source ([`zoo_checkpoint::verify`]), and only then
//! moves it into place.

pub mod signals;
pub mod transaction;

use std::io::Write;

use anyhow::{Context, Result};
use zoo_checkpoint::convert::{convert, ConvertOptions};

use crate::args::ConvertArgs;
use crate::progress;
use transaction::Transaction;

/// Runs `zoo convert`, reporting what was written on `out`.
pub fn run(args: &ConvertArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Result<()> {
    let context = || format!("converting {} to {}", args.from.display(), args.to.display());
    let transaction = Transaction::begin(&args.from, &args.to, args.force).with_context(context)?;
    let staged = transaction.staged();
    let bar = progress::bytes_bar("converting")?;
    let report_progress = |done: u64, total: u64| progress::set(&bar, done, total);
    let options = ConvertOptions { dtype: args.dtype, progress: Some(&report_progress) };
    let report = convert(&args.from, &staged, &options).with_context(context)?;
    bar.finish_and_clear();
    let source = zoo_checkpoint::open(&args.from).with_context(context)?;
    // Errors name the file where it will be, not the staging directory it is checked in.
    zoo_checkpoint::verify::verify(&source, &staged)
        .map_err(|e| anyhow::anyhow!(e.to_string().replace(&*staged.to_string_lossy(), &args.to.to_string_lossy())))
        .with_context(|| format!("checking the conversion of {} to {}", args.from.display(), args.to.display()))?;
    let files: Vec<_> = report.files.iter().map(|f| transaction.final_path(f)).collect();
    transaction.commit().with_context(context)?;
    writeln!(
        out,
        "wrote {} tensors ({:.1} MB read) as {:?}:",
        report.tensors,
        report.source_bytes as f64 / 1e6,
        report.format
    )?;
    for file in &files {
        writeln!(out, "  {}", file.display())?;
    }
    Ok(())
}
