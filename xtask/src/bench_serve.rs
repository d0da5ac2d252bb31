//! `cargo xtask bench-serve`: the same streaming load against `zoo serve` and llama.cpp's
//! `llama-server` on the same GGUF and threads (issue 17). llama-server is found or built by
//! `xtask/python/llamacpp_build.sh`, zoo is built in release mode unless given, and
//! `xtask/python/serve_bench.py` (Python's standard library only) runs both servers and the load
//! and prints the table.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::python::{root, run};

/// What `cargo xtask bench-serve` was asked.
#[derive(Debug, clap::Args)]
pub struct BenchServeArgs {
    /// The GGUF file both serve (default: the default model).
    pub model: Option<PathBuf>,
    /// CPU threads, the same for both (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tokens per request (greedy; neither server ignores EOS, the table shows what was generated).
    #[arg(long, default_value_t = 64)]
    pub tokens: usize,
    /// Concurrent streaming clients, one measurement each, comma-separated.
    #[arg(long, default_value = "1,4,16")]
    pub concurrency: String,
    /// Requests per concurrency at least (at least twice the concurrency, too).
    #[arg(long, default_value_t = 8)]
    pub min_requests: usize,
    /// Measurements of each server at each concurrency (alternating which goes first); the
    /// table shows the median tokens/s and the TTFT percentiles over all of them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The zoo binary (default: $ZOO_BIN, else `cargo build --release -p zoo-cli`'s).
    #[arg(long)]
    pub zoo: Option<PathBuf>,
    /// llama.cpp's llama-server (default: built once under .cache/, see llamacpp_build.sh).
    #[arg(long)]
    pub llama_server: Option<PathBuf>,
}

/// Runs the comparison; the table goes to stdout, progress to stderr.
pub fn run_bench(args: &BenchServeArgs) -> Result<()> {
    let model = args.model.clone().unwrap_or_else(zoo::default_weights);
    if !model.is_file() {
        bail!("no model at {} (run scripts/fetch-default-model.sh)", model.display());
    }
    let llama_server = match &args.llama_server {
        Some(path) => path.clone(),
        None => build_llama_server()?,
    };
    let zoo = match args.zoo.clone().or_else(|| std::env::var_os("ZOO_BIN").map(PathBuf::from)) {
        Some(path) => path,
        None => build_zoo()?,
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    eprintln!("zoo: {}\nllama-server: {}\nmodel: {}", zoo.display(), llama_server.display(), model.display());
    run(Command::new("python3")
        .arg(root().join("xtask/python/serve_bench.py"))
        .arg("--zoo")
        .arg(&zoo)
        .arg("--llama-server")
        .arg(&llama_server)
        .arg("--model")
        .arg(&model)
        .args(["--threads", &threads.to_string(), "--tokens", &args.tokens.to_string()])
        .args(["--concurrency", &args.concurrency, "--min-requests", &args.min_requests.to_string()])
        .args(["--rounds", &args.rounds.to_string()]))
}

/// llama-server's path: `llamacpp_build.sh llama-server` (which finds or builds it).
fn build_llama_server() -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(root().join("xtask/python/llamacpp_build.sh"))
        .arg("llama-server")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running xtask/python/llamacpp_build.sh")?;
    if !out.status.success() {
        bail!("xtask/python/llamacpp_build.sh llama-server failed with {}", out.status);
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Builds zoo in release mode; the binary's path.
fn build_zoo() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).current_dir(root()).args(["build", "--release", "-p", "zoo-cli"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let zoo = target.join("release/zoo");
    if !Path::new(&zoo).is_file() {
        bail!("no zoo binary at {}", zoo.display());
    }
    Ok(zoo)
}
