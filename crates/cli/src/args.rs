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
    /// Generate text from a prompt (with no arguments: ask the default model a question).
    Run(Box<RunArgs>),
    /// Chat interactively: each line you type is a user turn; `/reset` starts over, an empty
    /// line or end of input quits.
    Chat(Box<ChatArgs>),
    /// List the model families and backends compiled into this binary.
    List(ListArgs),
    /// Convert a checkpoint (any format zoo reads, GGUF and nanochat included) to an HF
    /// directory, a Torchless .bin or a Burn .mpk.
    Convert(ConvertArgs),
    /// Measure prefill and decode speed: a prompt of exactly N tokens, then M greedy tokens
    /// (EOS ignored), over several runs after a warm-up; prints the median, min and max.
    Bench(Box<BenchArgs>),
    /// Serve the model over HTTP: OpenAI's /v1/completions and /v1/chat/completions (streamed
    /// too), /v1/models, /health, /metrics and a chat page at /, batching requests together.
    Serve(Box<ServeArgs>),
    /// Train a nanochat GPT or GPT-2 from scratch on text files (tokenizer, AdamW, checkpoints
    /// with --resume); the run directory is a checkpoint `zoo run --weights DIR` loads.
    Train(Box<crate::train::args::TrainArgs>),
}

/// Where the model comes from and what runs it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model: an HF directory (config.json + model.safetensors), a GGUF file, a nanochat
    /// checkpoint directory (model_<step>.pt + meta_<step>.json), or a Hugging Face id
    /// (org/name[@revision]) found in the hub cache or downloaded into it ($HF_HUB_CACHE,
    /// $HF_HOME, $HF_ENDPOINT, $HF_TOKEN, $HF_HUB_OFFLINE; see docs/hub.md). Default:
    /// SmolLM2-135M-Instruct (fetched by scripts/fetch-default-model.sh; $ZOO_DEFAULT_MODEL
    /// overrides).
    #[arg(long, value_name = "PATH|ID")]
    pub weights: Option<PathBuf>,
    /// Model family (see `zoo list`); detected from config.json when omitted.
    #[arg(long, value_name = "FAMILY")]
    pub model: Option<String>,
    /// Backend (see `zoo list`); default: the best usable one (ndarray on CPU).
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Tokenizer: a tokenizer.json file, a GGUF file (its vocabulary) or a directory with
    /// tokenizer files. Default: the model's own.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    /// CPU threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// GPU ordinal for GPU backends (`--backend cuda --device 1`).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub device: usize,
    /// Training step to load from a nanochat checkpoint directory (default: the newest).
    #[arg(long, value_name = "N")]
    pub step: Option<u64>,
    /// Most tokens a sequence may hold, prompt and reply (sizes the KV cache; at most the
    /// model's context length, which is the default).
    #[arg(long, value_name = "N")]
    pub max_context: Option<usize>,
    /// Convert weights to this element type on load: `f32` dequantises quantised GGUF weights,
    /// which otherwise stay quantised on backends that can compute on them.
    #[arg(long, value_name = "DTYPE", value_enum)]
    pub dtype: Option<LoadDType>,
    /// Load a checkpoint that holds tensors the model does not use, listing them, instead of
    /// refusing it (such tensors usually mean the file holds a model zoo does not implement).
    #[arg(long)]
    pub allow_unused: bool,
}

/// Element types weights can be converted to on load (`--dtype`): `f32` (32-bit floats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadDType {
    // A plain comment, not a doc comment: clap would turn per-value help into long help.
    F32,
}

/// `zoo bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length in tokens (synthetic English text).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens to generate after the prompt.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub gen_tokens: usize,
    /// Measured runs.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,
    /// Uncounted runs first (page faults, GPU kernel compilation).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warmup: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also print the host time of each backend op per decode step (measured runs): where a
    /// step's time goes, and whether the host (launching kernels) or the device is the limit.
    #[arg(long)]
    pub profile: bool,
}

/// `zoo run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt, continued as raw text (a user message with --chat). Default: with a chat
    /// model, the question "What is the capital of France?" as a chat; otherwise "Hello, my name
    /// is" continued.
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Generate for every line of FILE at once (batched: one forward pass per step for all).
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    pub prompts_file: Option<PathBuf>,
    /// Treat the prompt as a user message and apply the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat.
    #[arg(long, value_name = "TEXT", requires = "chat")]
    pub system: Option<String>,
    /// Maximum new tokens.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_tokens: usize,
    /// Stop when the text contains STRING (not printed; repeat for several).
    #[arg(long, value_name = "STRING")]
    pub stop: Vec<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print one JSON object (tokens, text, stop reason, stats) instead of streaming text; with
    /// --prompts-file, one object per line.
    #[arg(long)]
    pub json: bool,
    /// Also write the logits after the prompt (the distribution of the first new token) to
    /// FILE as a JSON array, for parity checks against other implementations.
    #[arg(long, value_name = "FILE", conflicts_with = "prompts_file")]
    pub dump_logits: Option<PathBuf>,
}

/// Sampling options. Unset options take the model's `generation_config.json` values, else
/// greedy decoding.
#[derive(Debug, Clone, Default, Args)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 picks the most likely token every step (greedy).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Sample only among the K most likely tokens (0 = off).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens covering probability P (1 = off).
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than P × the most likely one (0 = off).
    #[arg(long, value_name = "P")]
    pub min_p: Option<f32>,
    /// Penalise tokens already in the sequence (transformers' repetition_penalty; 1 = off).
    #[arg(long, value_name = "X")]
    pub repeat_penalty: Option<f32>,
    /// Subtract X × (occurrences so far) from a token's logit (0 = off).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub frequency_penalty: Option<f32>,
    /// Subtract X from the logit of every token already present (0 = off).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub presence_penalty: Option<f32>,
    /// Seed of the sampling RNG (ChaCha8): the same seed gives the same tokens.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
}

/// `zoo chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System message at the start of the conversation.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Maximum new tokens per reply.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// `zoo serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on: 127.0.0.1 serves this machine only, 0.0.0.0 every interface.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, value_name = "N", default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* requests.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Most requests generated together (KV-cache slots, each up to --max-context tokens).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_batch: usize,
    /// Most requests waiting for a slot; more are refused with 429.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_queue: usize,
    /// Seconds running requests may take to finish after Ctrl-C or SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub shutdown_grace: u64,
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
    /// The checkpoint to read: an HF directory, a GGUF file, a nanochat checkpoint directory, a
    /// Torchless .bin or a Burn .mpk/.mpk.gz.
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,
    /// Where to write; the format follows the name: .bin → Torchless, .mpk/.mpk.gz → Burn (with
    /// its config JSON beside), anything else → an HF directory.
    #[arg(long, value_name = "PATH")]
    pub to: PathBuf,
    /// Element type of the written tensors (f32, f16, bf16 or int8); default: the source's.
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<zoo_core::DType>,
    /// Replace an existing target (a file, a non-empty directory, a Burn record with its config
    /// JSON and tokenizer files) as a whole, once the new one is written and checked. Without
    /// it, an existing target is an error. The input is never replaced.
    #[arg(long)]
    pub force: bool,
}
