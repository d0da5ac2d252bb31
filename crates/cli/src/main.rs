//! The `zoo` binary: parse arguments, run the command, report errors on one line.

use std::process::ExitCode;

use clap::Parser;

mod allocator;
use zoo_cli::args::Cli;

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    match zoo_cli::execute(&cli, &mut out, &mut err) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
