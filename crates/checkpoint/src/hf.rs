//! Hugging Face model directories: `config.json`, weights as `model.safetensors` or a sharded
//! index, an optional `generation_config.json`, and tokenizer files.

use std::path::Path;

use crate::error::{CheckpointError, Result};
use crate::safetensors::Safetensors;
use crate::tokenizer::TextTokenizer;
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
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let weights = if single.is_file() {
        Safetensors::open(&single)?
    } else if index.is_file() {
        Safetensors::open_index(&index)?
    } else {
        return Err(CheckpointError::NotFound {
            path: dir.to_path_buf(),
            message: "no model.safetensors or model.safetensors.index.json".into(),
        });
    };
    let tokenizer = if TextTokenizer::exists_in(dir) { Some(TextTokenizer::load(dir)?) } else { None };
    Ok(Checkpoint {
        path: dir.to_path_buf(),
        config,
        generation_config,
        weights: Box::new(weights),
        tokenizer: tokenizer.map(|t| Box::new(t) as _),
        chat_template: ChatTemplate::from_dir(dir)?,
    })
}

/// Reads a JSON file, naming it in errors.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = crate::limits::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| CheckpointError::invalid(path, format!("invalid JSON: {e}")))
}
