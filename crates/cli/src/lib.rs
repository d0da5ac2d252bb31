//! # zoo-cli
//!
//! The `zoo` command. `main.rs` parses arguments and prints errors; each command lives in its
//! own module and writes to the streams it is given, so tests run commands in-process.

pub mod args;
pub mod bench;
pub mod chat;
pub mod convert;
pub mod generation_config;
pub mod input;
pub mod list;
pub mod pipeline;
pub mod progress;
pub mod run;

use std::io::Write;

/// Runs a parsed command line.
pub fn execute(cli: &args::Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    link_plugins();
    match &cli.command {
        args::Command::Run(a) => run::run(a, out, err),
        args::Command::Chat(a) => chat::run(a, &mut std::io::stdin().lock(), out, err),
        args::Command::List(a) => list::run(a.json, out),
        args::Command::Convert(a) => convert::run(a, out, err),
        args::Command::Bench(a) => bench::run(a, out, err),
    }
}

/// References every plugin crate so that the linker keeps their registrations.
pub fn link_plugins() {
    zoo_models::link();
    zoo_backend_ndarray::link();
    zoo_backend_burn::link();
    zoo_backend_candle::link();
}
