//! # zoo-cli
//!
//! The `zoo` command. `main.rs` parses arguments and prints errors; each command lives in its
//! own module and writes to the streams it is given, so tests run commands in-process. Loading
//! models is the `zoo` library crate's; this crate adds the command line, progress bars and
//! printing.

pub mod args;
pub mod bench;
pub mod chat;
pub mod convert;
pub mod generation_config;
pub mod input;
pub mod list;
pub mod progress;
pub mod run;
pub mod serve;
pub mod train;

use std::io::Write;

/// Runs a parsed command line.
pub fn execute(cli: &args::Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    zoo::link_plugins();
    match &cli.command {
        args::Command::Run(a) => run::run(a, out, err),
        args::Command::Chat(a) => chat::run(a, &mut std::io::stdin().lock(), out, err),
        args::Command::List(a) => list::run(a.json, out),
        args::Command::Convert(a) => convert::run(a, out, err),
        args::Command::Bench(a) => bench::run(a, out, err),
        args::Command::Serve(a) => serve::run(a, err),
        args::Command::Train(a) => train::run(a, out, err),
    }
}
