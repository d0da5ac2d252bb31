//! What a training run is asked to do, and what it reports while it runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::family::Family;
use crate::optimizer::AdamWSettings;

/// A training run's settings (`zoo train`'s flags).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The family to train.
    pub family: Family,
    /// A text file or a directory of `.txt` files.
    pub data: PathBuf,
    /// A `tokenizer.json` to use; `None` trains a byte-level BPE of `vocab_size`.
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary of a trained tokenizer.
    pub vocab_size: usize,
    /// A preset (`tiny`, `small`) or a `config.json` file.
    pub config: String,
    /// The run directory.
    pub out: PathBuf,
    /// The run's total optimizer steps (a resumed run continues up to it).
    pub steps: Option<u64>,
    /// Wall-clock budget of this invocation.
    pub time: Option<Duration>,
    /// Stop (with a checkpoint) after this many steps of this invocation; the schedule still
    /// spans `steps`.
    pub stop_after: Option<u64>,
    /// Tokens per optimizer step; default 16 windows.
    pub batch_tokens: Option<usize>,
    /// Windows per forward pass; the rest of a step's windows are accumulated.
    pub micro_batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed of the initial weights and the data windows.
    pub seed: u64,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Checkpoint every this many steps (and at the end).
    pub save_every: u64,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: u64,
    /// Tokens of sample text at each evaluation.
    pub sample_tokens: usize,
    /// AdamW's hyper-parameters.
    pub adamw: AdamWSettings,
    /// Largest global gradient norm; larger gradients are scaled down to it.
    pub clip: f32,
    /// The type the forward and backward passes compute in; `None`: the backend's default
    /// (f32 on the CPU, bf16 on the GPU).
    pub precision: Option<Precision>,
}

/// What a training step computes in. Parameters, gradients and the optimizer's moments stay
/// f32 (master weights) whatever the choice: bf16 casts the weights for each forward pass
/// (mixed precision), and the loss is taken in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Everything in f32.
    F32,
    /// Matrix products and activations in bf16.
    Bf16,
}

impl Precision {
    /// `f32` or `bf16`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "f32" => Some(Self::F32),
            "bf16" => Some(Self::Bf16),
            _ => None,
        }
    }

    /// As `--precision` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl TrainOptions {
    /// Defaults for training `family` on `data` into `out`.
    pub fn new(family: Family, data: &Path, out: &Path) -> Self {
        Self {
            family,
            data: data.to_path_buf(),
            tokenizer: None,
            vocab_size: 4096,
            config: "tiny".into(),
            out: out.to_path_buf(),
            steps: None,
            time: None,
            stop_after: None,
            batch_tokens: None,
            micro_batch: 8,
            lr: 3e-3,
            seed: 0,
            resume: false,
            save_every: 1000,
            eval_every: 100,
            sample_tokens: 32,
            adamw: AdamWSettings::default(),
            clip: 1.0,
            precision: None,
        }
    }
}

/// Progress reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// Data and model are ready.
    Ready {
        /// Parameters (values) trained.
        parameters: usize,
        /// Vocabulary entries.
        vocab_size: usize,
        /// Training tokens.
        train_tokens: usize,
        /// Validation tokens.
        validation_tokens: usize,
        /// The first step this invocation runs (0 unless resumed).
        first_step: u64,
        /// The run's total steps.
        total_steps: u64,
    },
    /// An optimizer step finished.
    Step(StepReport),
    /// The validation loss and a sample at `step`.
    Evaluated {
        /// Steps done.
        step: u64,
        /// Mean validation loss.
        validation_loss: f32,
        /// Greedy text from the start of a document.
        sample: &'a str,
    },
    /// Something failed that does not stop the run (the loss plot could not be drawn).
    Warning(String),
    /// A checkpoint was written.
    Saved {
        /// Steps done.
        step: u64,
        /// The run directory.
        dir: &'a Path,
    },
}

/// One optimizer step's numbers.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// Steps done (this one included).
    pub step: u64,
    /// The run's total steps.
    pub total_steps: u64,
    /// Mean training loss of the step's windows.
    pub loss: f32,
    /// The learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Tokens per second of this step.
    pub tokens_per_second: f64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Steps done in all.
    pub steps: u64,
    /// The last step's training loss.
    pub train_loss: f32,
    /// The last validation loss.
    pub validation_loss: f32,
    /// ln(vocab): the loss of a uniform guess.
    pub uniform_loss: f32,
    /// Tokens trained on by this invocation, after its first two steps (warm-up: kernels
    /// compile) when it ran more.
    pub tokens: u64,
    /// Seconds the steps of [`Self::tokens`] took (evaluations and checkpoints apart).
    pub step_seconds: f64,
    /// Model FLOPs per trained token (forward and backward): 6 per weight of every matrix
    /// product, plus attention's `12 · layers · width · context` (the usual count, causal
    /// masking not discounted).
    pub flops_per_token: f64,
    /// What the steps computed in.
    pub precision: Precision,
}

impl Summary {
    /// Trained tokens per second of step time.
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.step_seconds.max(1e-9)
    }

    /// Model FLOP/s: [`Self::flops_per_token`] times [`Self::tokens_per_second`].
    pub fn flops_per_second(&self) -> f64 {
        self.flops_per_token * self.tokens_per_second()
    }
}
