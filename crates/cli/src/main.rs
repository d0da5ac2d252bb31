//! The `zoo` binary: parse arguments, run the command, report errors on one line.

use std::process::ExitCode;

use clap::Parser;
use zoo_cli::args::Cli;

fn main() -> ExitCode {
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
