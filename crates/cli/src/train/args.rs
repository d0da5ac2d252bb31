//! `zoo train`'s arguments (clap), apart from the other commands' in `args.rs`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// `zoo train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Family to train: nanochat or gpt2.
    #[arg(long, value_name = "FAMILY")]
    pub model: String,
    /// Training text: a file, or a directory of .txt files (scripts/fetch-books.sh fetches
    /// public-domain books). Not needed with --resume.
    #[arg(long, value_name = "PATH", required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// A tokenizer.json to use (it must hold the family's special tokens). Default: train a
    /// byte-level BPE of --vocab-size on the data.
    #[arg(long, value_name = "FILE", conflicts_with = "vocab_size")]
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary of the trained tokenizer, special tokens included.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub vocab_size: usize,
    /// Model size: a preset (tiny: 2 layers × 64; small: 6 layers × 384, ~20M parameters with
    /// an 8192 vocabulary) or a config.json file of the family (vocab_size follows the tokenizer).
    #[arg(long, value_name = "PRESET|FILE", default_value = "tiny")]
    pub config: String,
    /// The run directory: a checkpoint `zoo run --weights DIR` loads, plus train/ (optimizer
    /// state, token files, loss.csv).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Backend: burn-ndarray (CPU), or cuda in builds with the train-cuda feature.
    #[arg(long, value_name = "NAME", default_value = "burn-ndarray")]
    pub backend: String,
    /// What the forward and backward passes compute in: bf16 (mixed precision: weights cast
    /// per pass, loss, gradients and AdamW in f32) or f32. Default: f32 on burn-ndarray, bf16
    /// on cuda.
    #[arg(long, value_name = "TYPE", value_parser = ["bf16", "f32"])]
    pub precision: Option<String>,
    /// The run's total optimizer steps; a resumed run continues until step N.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Wall-clock budget (90s, 10m, 1h); with no --steps the schedule's length is estimated
    /// from the first step.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub time: Option<Duration>,
    /// Stop after N steps of this invocation (with a checkpoint); --resume continues the run.
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
    /// Tokens per optimizer step (default: 16 windows of the context length).
    #[arg(long, value_name = "N")]
    pub batch_tokens: Option<usize>,
    /// Windows per forward pass; a step's other windows are gradient-accumulated.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub micro_batch: usize,
    /// Peak learning rate (linear warm-up over 5% of the steps, cosine decay to a tenth).
    #[arg(long, value_name = "X", default_value_t = 3e-3)]
    pub lr: f64,
    /// Seed of the initial weights and of the data windows.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Continue the run in --out from its last checkpoint, bit for bit.
    #[arg(long)]
    pub resume: bool,
    /// Checkpoint every N steps (and at the end).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub save_every: u64,
    /// Validation loss and a sample every N steps (and at the end).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub eval_every: u64,
}

/// `90s`, `10m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) =
        text.trim().split_at(text.trim().find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.trim().len()));
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration (90s, 10m, 1h)"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (s, m, h)")),
    };
    if !(value.is_finite() && value > 0.0) || value * scale > 1e9 {
        return Err(format!("`{text}` is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1m").is_err() && parse_duration("m").is_err());
    }
}
