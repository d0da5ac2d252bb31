//! # zoo-checkpoint
//!
//! Turns files into named tensor views and tokenizers; knows nothing of model families.
//! [`open`] recognises what a path holds and returns a [`Checkpoint`]:
//! - an HF directory (`config.json` + `model.safetensors` or a sharded index);
//! - a Torchless binary file (`.bin`, [`torchless`]);
//! - a Burn record (`.mpk` / `.mpk.gz` with its config JSON beside it, [`burn_mpk`]).
//!
//! [`convert`] writes any of them as any other.
//!
//! Weights stay in memory maps until a backend takes them.

pub mod burn_mpk;
pub mod convert;
pub mod error;
pub mod hf;
pub mod safetensors;
pub mod spm_bpe;
pub mod tokenizer;
pub mod torchless;

use std::path::{Path, PathBuf};

use zoo_core::{Tokenizer, WeightSource};

pub use error::{CheckpointError, Result};
pub use safetensors::Safetensors;
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
    if path.is_file() && path.extension().is_some_and(|e| e == "bin") {
        return torchless::open(path);
    }
    if path.is_file() && burn_mpk::is_burn_path(path) {
        return burn_mpk::open(path);
    }
    Err(CheckpointError::NotFound {
        path: path.to_path_buf(),
        message: "not a model checkpoint: expected a directory with config.json and model.safetensors, a Torchless .bin file, or a Burn .mpk record".into(),
    })
}
