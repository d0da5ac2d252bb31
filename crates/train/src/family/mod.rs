//! What training needs to know of each family beyond the model file `zoo run` uses: its
//! special tokens and how documents are delimited, the preset configs, and every parameter's
//! checkpoint name, stored shape, initialisation and whether weight decay applies. The model
//! itself is loaded through the family's own `load`, the same code inference runs.

mod gpt2;
mod nanochat;

use serde_json::Value;
use zoo_core::{Backend, Model, WeightSource};

use crate::error::{Result, TrainError};

/// The families `zoo train` can train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// nanochat's GPT (`crates/models/src/nanochat.rs`).
    NanoChat,
    /// GPT-2 (`crates/models/src/gpt2.rs`).
    Gpt2,
}

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Normal with mean 0 and this standard deviation.
    Normal(f32),
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// One parameter of a family.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Checkpoint name.
    pub name: String,
    /// Shape as the checkpoint stores it.
    pub shape: Vec<usize>,
    /// Initial values.
    pub init: Init,
    /// Whether AdamW's weight decay applies (matrices; not norms, biases or embeddings).
    pub decay: bool,
    /// Whether the checkpoint stores the matrix `[in, out]` (GPT-2's Conv1D), the transpose of
    /// what the model holds.
    pub transposed: bool,
}

impl ParamSpec {
    fn new(name: impl Into<String>, shape: &[usize], init: Init, decay: bool) -> Self {
        Self { name: name.into(), shape: shape.to_vec(), init, decay, transposed: false }
    }

    fn conv1d(name: impl Into<String>, shape: &[usize], init: Init) -> Self {
        Self { transposed: true, ..Self::new(name, shape, init, true) }
    }
}

impl Family {
    /// The family called `name` (as `zoo list` names it, or an alias).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "nanochat" | "nanochat-gpt" => Ok(Self::NanoChat),
            "gpt2" | "gpt-2" => Ok(Self::Gpt2),
            _ => Err(TrainError::config("--model", format!("`{name}` cannot be trained (nanochat, gpt2)"))),
        }
    }

    /// The registry name.
    pub fn name(self) -> &'static str {
        match self {
            Self::NanoChat => "nanochat",
            Self::Gpt2 => "gpt2",
        }
    }

    /// Special tokens a trained tokenizer holds; the first delimits documents.
    pub fn special_tokens(self) -> &'static [&'static str] {
        match self {
            Self::NanoChat => nanochat::SPECIAL_TOKENS,
            Self::Gpt2 => gpt2::SPECIAL_TOKENS,
        }
    }

    /// A document's tokens with the family's delimiter: nanochat starts each document with
    /// `<|bos|>`, GPT-2 ends each with `<|endoftext|>`.
    pub fn delimit(self, delimiter: u32, document: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(document.len() + 1);
        match self {
            Self::NanoChat => {
                out.push(delimiter);
                out.extend_from_slice(document);
            }
            Self::Gpt2 => {
                out.extend_from_slice(document);
                out.push(delimiter);
            }
        }
        out
    }

    /// The `config.json` of preset `name` (`tiny`, `small`) for a vocabulary of `vocab_size`.
    pub fn preset(self, name: &str, vocab_size: usize, delimiter: u32) -> Result<Value> {
        match self {
            Self::NanoChat => nanochat::preset(name, vocab_size),
            Self::Gpt2 => gpt2::preset(name, vocab_size, delimiter),
        }
    }

    /// The training window length (`sequence_len`, `n_positions`) a config declares.
    pub fn context(self, config: &Value) -> Result<usize> {
        let key = match self {
            Self::NanoChat => "sequence_len",
            Self::Gpt2 => "n_positions",
        };
        config_usize(config, key)
    }

    /// Every parameter of a model of `config`, in checkpoint order.
    pub fn parameters(self, config: &Value) -> Result<Vec<ParamSpec>> {
        match self {
            Self::NanoChat => nanochat::parameters(config),
            Self::Gpt2 => gpt2::parameters(config),
        }
    }

    /// Loads the model with the family's own `load`: the code `zoo run` runs.
    pub fn load<B: Backend>(self, backend: B, config: &Value, weights: &dyn WeightSource) -> Result<Box<dyn Model<B>>> {
        Ok(match self {
            Self::NanoChat => Box::new(zoo_models::nanochat::NanoChat::load(backend, config, weights)?),
            Self::Gpt2 => Box::new(zoo_models::gpt2::Gpt2::load(backend, config, weights)?),
        })
    }
}

/// `config[key]` as a count, or an error naming the key.
pub fn config_usize(config: &Value, key: &str) -> Result<usize> {
    config
        .get(key)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| TrainError::config(key, "missing from the config, or not a positive integer"))
}
