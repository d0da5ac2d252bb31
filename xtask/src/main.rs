//! `cargo xtask`: developer tasks that need the Python reference environment or long runs.
//!
//! - `gen-fixtures`: (re)creates `tests/fixtures/` from the reference implementations;
//! - `parity`: recomputes references live and compares zoo against them;
//! - `convert`: `zoo convert` (format conversion), for scripts that drive everything via xtask;
//! - `bench-llamacpp`: decode speed of `zoo run` next to llama.cpp's `llama-bench`;
//! - `bench-serve`: streaming load against `zoo serve` next to llama.cpp's `llama-server`.
//!
//! The Python environment comes from `scripts/setup-python.sh` (created on first use) and
//! registry assets from `scripts/fetch-assets.sh`.

mod bench_serve;
mod parity;
mod python;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "zoo developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Regenerate the parity fixtures under tests/fixtures with transformers (and the repo's
    /// own nanochat reference; `smollm2`: the default model's reference, from transformers'
    /// GGUF loader), then print their sizes.
    GenFixtures {
        /// Only this fixture.
        #[arg(long)]
        only: Option<String>,
    },
    /// Recompute every fixture's reference live and compare zoo's logits and greedy tokens.
    Parity {
        /// Backend to check (see `zoo list`).
        #[arg(long, default_value = "ndarray")]
        backend: String,
        /// Only this fixture.
        #[arg(long)]
        fixture: Option<String>,
    },
    /// Convert a checkpoint between formats (the same as `zoo convert`).
    Convert(zoo_cli::args::ConvertArgs),
    /// Decode and prefill speed of zoo next to llama.cpp's on the same GGUF files: the default
    /// model and a random-weight 415M Mistral-architecture model in f32, f16, q8_0, Q4_0 and
    /// Q4_K_M (made once with llama.cpp's convert_hf_to_gguf.py and llama-quantize); builds
    /// llama.cpp from the PyPI llama-cpp-python sdist under .cache/ once, then alternates runs of
    /// both and prints the table of medians (xtask/python/llamacpp_bench.sh; ZOO_BIN picks the
    /// zoo binary, default: a release build).
    BenchLlamacpp {
        /// Models: `smollm2` (the default model), the 415M model's `f32`, `f16`, `q8_0`, `q4_0`,
        /// `q4_k_m`, or GGUF paths. Default: all six.
        models: Vec<String>,
        /// Thread counts to compare, e.g. "1 2".
        #[arg(long, default_value = "1 2")]
        threads: String,
        /// Tokens to decode per run.
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Prompt tokens per prefill run.
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        /// What to measure: "decode prefill", "decode" or "prefill".
        #[arg(long, default_value = "decode prefill")]
        measure: String,
        /// Runs of each; the table shows the median.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The same streaming load against `zoo serve` and llama.cpp's llama-server on the same GGUF
    /// and threads: aggregate tokens/s and time-to-first-token p50/p99 at each concurrency
    /// (xtask/python/serve_bench.py; llama-server built like bench-llamacpp's llama-bench).
    BenchServe(bench_serve::BenchServeArgs),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::GenFixtures { only } => python::gen_fixtures(only.as_deref()),
        Task::Parity { backend, fixture } => parity::run(&backend, fixture.as_deref()),
        Task::Convert(args) => zoo_cli::convert::run(&args, &mut std::io::stdout(), &mut std::io::stderr()),
        Task::BenchLlamacpp { models, threads, tokens, prompt_tokens, measure, runs } => {
            let mut cmd = std::process::Command::new("bash");
            cmd.arg(python::root().join("xtask/python/llamacpp_bench.sh"))
                .args(models)
                .env("THREADS", threads)
                .env("TOKENS", tokens.to_string())
                .env("PROMPT_TOKENS", prompt_tokens.to_string())
                .env("MEASURE", measure)
                .env("RUNS", runs.to_string());
            python::run(&mut cmd)
        }
        Task::BenchServe(args) => bench_serve::run_bench(&args),
    }
}
