//! nanochat checkpoint directories: `model_<step>.pt` (a `torch.save`d state dict) and
//! `meta_<step>.json` per saved step, as nanochat's `checkpoint_manager` writes them.
//!
//! nanochat pads steps to six digits (`model_000500.pt`); any number of digits is accepted.
//! The newest step is used unless one is asked for. The model config is
//! `meta["model_config"]` (nanochat's `GPTConfig` kwargs) with `"model_type": "nanochat"` added
//! so the model registry recognises it; a `tokenizer.json` beside the weights is loaded if present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{CheckpointError, Result};
use crate::hf::read_json;
use crate::tokenizer::TextTokenizer;
use crate::torch_pt::TorchPt;
use crate::Checkpoint;

/// The step of a file called `{prefix}{digits}{suffix}`.
fn step_of(file_name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = file_name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The files of each step found in `dir`, by step.
fn files_by_step(dir: &Path, prefix: &str, suffix: &str) -> BTreeMap<u64, PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    read.flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let step = step_of(name.to_str()?, prefix, suffix)?;
            Some((step, entry.path()))
        })
        .collect()
}

fn models(dir: &Path) -> BTreeMap<u64, PathBuf> {
    files_by_step(dir, "model_", ".pt")
}

fn metas(dir: &Path) -> BTreeMap<u64, PathBuf> {
    files_by_step(dir, "meta_", ".json")
}

/// Whether `path` is a nanochat checkpoint: a directory with `model_*.pt` and `meta_*.json` and
/// no `config.json`, or a `model_<step>.pt` file inside one.
pub fn is_nanochat(path: &Path) -> bool {
    if path.is_file() {
        return model_file_step(path).is_some() && path.parent().is_some_and(is_nanochat);
    }
    path.is_dir() && !path.join("config.json").exists() && !models(path).is_empty() && !metas(path).is_empty()
}

/// The step of a `model_<step>.pt` file.
fn model_file_step(path: &Path) -> Option<u64> {
    step_of(path.file_name()?.to_str()?, "model_", ".pt")
}

/// Opens a nanochat checkpoint at `step` (the newest when `None`). `path` is the directory, or a
/// `model_<step>.pt` file in it, which selects that step unless `step` says otherwise.
pub fn open(path: &Path, step: Option<u64>) -> Result<Checkpoint> {
    let (dir, step) = match model_file_step(path) {
        Some(file_step) if path.is_file() => (path.parent().unwrap_or(Path::new(".")), step.or(Some(file_step))),
        _ => (path, step),
    };
    let models = models(dir);
    let available = || models.keys().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let (step, model_path) = match step {
        Some(step) => {
            let model = models.get(&step).ok_or_else(|| CheckpointError::NotFound {
                path: dir.to_path_buf(),
                message: format!("no model_*.pt for step {step}; available steps: {}", available()),
            })?;
            (step, model)
        }
        None => models.last_key_value().map(|(s, p)| (*s, p)).ok_or_else(|| CheckpointError::NotFound {
            path: dir.to_path_buf(),
            message: "no model_<step>.pt files".into(),
        })?,
    };
    let meta_path = metas(dir).remove(&step).ok_or_else(|| CheckpointError::NotFound {
        path: dir.to_path_buf(),
        message: format!("model for step {step} has no meta_{step:06}.json"),
    })?;
    let meta = read_json(&meta_path)?;
    let mut config = meta
        .get("model_config")
        .and_then(|c| c.as_object())
        .cloned()
        .ok_or_else(|| CheckpointError::invalid(&meta_path, "no `model_config` object"))?;
    config.insert("model_type".into(), "nanochat".into());
    let weights = TorchPt::open(model_path)?;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() { Some(TextTokenizer::load(&tokenizer_path)?) } else { None };
    Ok(Checkpoint {
        path: model_path.clone(),
        config: serde_json::Value::Object(config),
        generation_config: None,
        weights: Box::new(weights),
        tokenizer: tokenizer.map(|t| Box::new(t) as _),
        tokenizer_refused: None,
        chat_template: crate::ChatTemplate::from_dir(dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::step_of;

    #[test]
    fn steps_from_file_names() {
        assert_eq!(step_of("model_000500.pt", "model_", ".pt"), Some(500));
        assert_eq!(step_of("model_7.pt", "model_", ".pt"), Some(7));
        assert_eq!(step_of("model_.pt", "model_", ".pt"), None);
        assert_eq!(step_of("model_+5.pt", "model_", ".pt"), None);
        assert_eq!(step_of("optim_000500.pt", "model_", ".pt"), None);
        assert_eq!(step_of("meta_000500.json", "meta_", ".json"), Some(500));
    }
}
