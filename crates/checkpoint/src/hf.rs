//! Hugging Face model directories: `config.json`, weights as `model.safetensors`, a sharded
//! `model.safetensors.index.json`, or PyTorch's `pytorch_model.bin` (single or sharded with
//! `pytorch_model.bin.index.json`, read by [`crate::torch_pt`] without running pickle code),
//! an optional `generation_config.json`, and tokenizer files.

use std::path::Path;

use zoo_core::WeightSource;

use crate::error::{CheckpointError, Result};
use crate::safetensors::Safetensors;
use crate::shards::Shards;
use crate::tokenizer::TextTokenizer;
use crate::torch_pt::TorchPt;
use crate::{ChatTemplate, Checkpoint};

/// Whether `dir` looks like an HF model directory.
pub fn is_hf_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join("config.json").is_file()
}

/// Opens an HF model directory.
pub fn open(dir: &Path) -> Result<Checkpoint> {
    let config = read_json(&dir.join("config.json"))?;
    let generation_path = dir.join("generation_config.json");
    let generation_config = if generation_path.is_file() { Some(read_json(&generation_path)?) } else { None };
    let weights = open_weights(dir)?;
    let tokenizer = if TextTokenizer::exists_in(dir) { Some(TextTokenizer::load(dir)?) } else { None };
    Ok(Checkpoint {
        path: dir.to_path_buf(),
        config,
        generation_config,
        weights,
        tokenizer: tokenizer.map(|t| Box::new(t) as _),
        tokenizer_refused: None,
        chat_template: ChatTemplate::from_dir(dir)?,
    })
}

/// The weights of an HF directory, in transformers' order of preference: safetensors (single,
/// then sharded), then PyTorch (single, then sharded).
fn open_weights(dir: &Path) -> Result<Box<dyn WeightSource>> {
    let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    if let Some(single) = file("model.safetensors") {
        return Ok(Box::new(Safetensors::open(&single)?));
    }
    if let Some(index) = file("model.safetensors.index.json") {
        return Ok(Box::new(Safetensors::open_index(&index)?));
    }
    if let Some(single) = file("pytorch_model.bin") {
        return Ok(Box::new(TorchPt::open(&single)?));
    }
    if let Some(index) = file("pytorch_model.bin.index.json") {
        return Ok(Box::new(Shards::open_index(&index, |p| Ok(Box::new(TorchPt::open(p)?)))?));
    }
    Err(CheckpointError::NotFound {
        path: dir.to_path_buf(),
        message:
            "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json"
                .into(),
    })
}

/// Reads a JSON file, naming it in errors.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = crate::limits::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| CheckpointError::invalid(path, format!("invalid JSON: {e}")))
}
