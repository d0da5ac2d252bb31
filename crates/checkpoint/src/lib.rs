//! # zoo-checkpoint
//!
//! Turns files into named tensor views and tokenizers; knows nothing of model families.
//! [`open`] recognises what a path holds and returns a [`Checkpoint`]:
//! - an HF directory (`config.json` + `model.safetensors` or a sharded index);
//! - a GGUF file (llama.cpp's format: weights, config, tokenizer and chat template in one file);
//! - a Torchless binary file (`.bin`, [`torchless`]);
//! - a Burn record (`.mpk` / `.mpk.gz` with its config JSON beside it, [`burn_mpk`]).
//!
//! [`convert`] writes any of them as any other.
//!
//! Weights stay in memory maps until a backend takes them.

pub mod burn_mpk;
pub mod chat_template;
pub mod contain;
pub mod convert;
pub mod error;
mod file_mode;
pub mod gguf;
pub mod hf;
pub mod limits;
pub mod nanochat_dir;
pub mod safetensors;
pub mod shards;
pub mod sniff;
pub mod spm_bpe;
mod tensor_map;
pub mod tokenizer;
pub mod torch_pt;
pub mod torchless;
pub mod verify;

use std::path::{Path, PathBuf};

use zoo_core::{Tokenizer, WeightSource};

pub use chat_template::{ChatTemplate, Message};
pub use error::{CheckpointError, Result};
pub use safetensors::Safetensors;
use sniff::FileKind;
pub use spm_bpe::BpeVocab;
pub use tokenizer::TextTokenizer;
pub use torchless::Torchless;

/// Everything a checkpoint provides.
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// The model configuration (`config.json` or its equivalent).
    pub config: serde_json::Value,
    /// `generation_config.json`, when present.
    pub generation_config: Option<serde_json::Value>,
    /// The weights.
    pub weights: Box<dyn WeightSource>,
    /// The tokenizer shipped with the checkpoint, if any.
    pub tokenizer: Option<Box<dyn Tokenizer>>,
    /// Why the checkpoint has no tokenizer although it describes one: a kind zoo does not build
    /// (a GGUF's WordPiece vocabulary, an unknown `tokenizer.ggml.pre`).
    pub tokenizer_refused: Option<String>,
    /// The chat template shipped with the checkpoint, if any.
    pub chat_template: Option<ChatTemplate>,
}

/// Opens the checkpoint at `path`, recognising its format.
pub fn open(path: &Path) -> Result<Checkpoint> {
    if !path.exists() {
        return Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
            message: "no such file or directory".into(),
        });
    }
    if hf::is_hf_dir(path) {
        return hf::open(path);
    }
    if nanochat_dir::is_nanochat(path) {
        return nanochat_dir::open(path, None);
    }
    if path.is_file() {
        // NOTE: by content, not by name: `.bin` is PyTorch's zip as often as Torchless. A file
        // whose content is not recognised goes to the reader its name suggests, for its message.
        match sniff::sniff(path)? {
            Some(FileKind::Gguf) => return gguf::open(path),
            Some(FileKind::Torchless) => return torchless::open(path),
            Some(FileKind::BurnRecord) => return burn_mpk::open(path),
            Some(FileKind::TorchZip | FileKind::TorchLegacy | FileKind::Safetensors) => {
                return Err(CheckpointError::NotFound {
                    path: path.to_path_buf(),
                    message: "a weights file without its config: pass the directory holding it and config.json".into(),
                })
            }
            None if gguf::is_gguf(path) => return gguf::open(path),
            None if path.extension().is_some_and(|e| e == "bin") => return torchless::open(path),
            None if burn_mpk::is_burn_path(path) => return burn_mpk::open(path),
            None => {}
        }
    }
    Err(CheckpointError::NotFound {
        path: path.to_path_buf(),
        message: "not a model checkpoint: expected an HF directory (config.json + model.safetensors or pytorch_model.bin), a nanochat directory (model_<step>.pt + meta_<step>.json), a GGUF file, a Torchless file, or a Burn record".into(),
    })
}

/// Choices made when opening a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The training step to load from a checkpoint directory holding several (nanochat's
    /// `model_<step>.pt`); the newest when `None`.
    pub step: Option<u64>,
}

/// [`open`], with options.
pub fn open_with(path: &Path, options: &OpenOptions) -> Result<Checkpoint> {
    match options.step {
        None => open(path),
        Some(step) if nanochat_dir::is_nanochat(path) => nanochat_dir::open(path, Some(step)),
        Some(step) => Err(CheckpointError::NotFound {
            path: path.to_path_buf(),
            message: format!("step {step} was asked for, but this is not a checkpoint directory with several steps"),
        }),
    }
}
