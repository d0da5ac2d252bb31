//! Command-line arguments (clap). Only parsing lives here; behaviour is in the command modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// zoo: run transformer language models on CPU and GPU backends.
#[derive(Debug, Parser)]
#[command(name = "zoo", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text from a prompt (with no arguments: the default model and prompt).
    Run(RunArgs),
    /// List the model families and backends compiled into this binary.
    List(ListArgs),
    /// Convert a checkpoint between formats (HF directory, Torchless .bin, Burn .mpk).
    Convert(ConvertArgs),
}

/// Where the model comes from and what runs it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model directory (HF layout: config.json + model.safetensors). Default: the bundled
    /// default model.
    #[arg(long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Model family (see `zoo list`); detected from config.json when omitted.
    #[arg(long, value_name = "FAMILY")]
    pub model: Option<String>,
    /// Backend (see `zoo list`); default: the best usable one (ndarray on CPU).
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Tokenizer: a tokenizer.json file or a directory with tokenizer files. Default: the
    /// model directory.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    /// CPU threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `zoo run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt. Default: a greeting suited to the default model.
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Maximum new tokens.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_tokens: usize,
    /// Sampling temperature; 0 picks the most likely token every step (greedy).
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    pub temperature: f32,
    /// Seed of the sampling RNG (ChaCha8), for reproducible sampled runs.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Print one JSON object (tokens, text, stats) instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

/// `zoo list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `zoo convert`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// The checkpoint to read: an HF directory, a Torchless .bin or a Burn .mpk/.mpk.gz.
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,
    /// Where to write; the format follows the name: .bin → Torchless, .mpk/.mpk.gz → Burn (with
    /// its config JSON beside), anything else → an HF directory.
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
    /// Element type of the written tensors (f32, f16, bf16 or int8); default: the source's.
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<zoo_core::DType>,
}
