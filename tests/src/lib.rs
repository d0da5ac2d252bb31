//! Shared harness of zoo's end-to-end tests: fixture discovery, the `reference.json` format that
//! `xtask/python/fixtures.py` writes, and the parity checks every model × backend runs.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde::Deserialize;
use zoo::{LoadOptions, Pipeline};
use zoo_core::{forward, sampler::Greedy, Batch, GenerateOptions, KvCache, LogitsRows, Session};

/// Largest allowed |ours − reference| for f32 logits.
pub const F32_LOGIT_TOLERANCE: f32 = 1e-4;

/// The directory holding the committed fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every fixture directory that has a `reference.json`, sorted by name.
///
/// A fixture whose model is not committed (a GGUF from the cache, see [`Reference::gguf`]) is
/// a failure when the model has not been fetched, unless `ZOO_SKIP_DEFAULT_MODEL=1` asks to
/// leave it out (with a note on stderr).
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("reference.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| model_available(name))
        .collect();
    names.sort();
    names
}

/// Whether fixture `name`'s model is here (always, for committed models).
fn model_available(name: &str) -> bool {
    let Ok(fixture) = Fixture::load(name) else { return true }; // the test itself reports it
    if fixture.weights.exists() {
        return true;
    }
    let message =
        format!("fixture {name}: {} is missing; run scripts/fetch-default-model.sh", fixture.weights.display());
    assert!(std::env::var_os("ZOO_SKIP_DEFAULT_MODEL").is_some(), "{message} (or set ZOO_SKIP_DEFAULT_MODEL=1)");
    eprintln!("SKIPPED (ZOO_SKIP_DEFAULT_MODEL) {message}");
    false
}

/// `reference.json`: what the reference implementation computed for a fixture.
#[derive(Debug, Deserialize)]
pub struct Reference {
    /// Model family.
    pub family: String,
    /// Which library produced it.
    pub generator: String,
    /// Vocabulary ids at which logits were recorded.
    pub logit_ids: LogitIds,
    /// Per-prompt results.
    pub prompts: Vec<PromptReference>,
    /// For a fixture whose model is a GGUF file in the cache rather than committed: which file.
    #[serde(default)]
    pub gguf: Option<GgufSource>,
    /// A conversation and its rendering by the reference's chat template, when recorded.
    #[serde(default)]
    pub chat: Option<ChatReference>,
}

/// A GGUF model kept in zoo's cache (`<cache>/models/<file>`).
#[derive(Debug, Deserialize)]
pub struct GgufSource {
    /// File name.
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
}

/// A chat rendered by the reference (`apply_chat_template`).
#[derive(Debug, Deserialize)]
pub struct ChatReference {
    /// The conversation.
    pub messages: Vec<zoo_checkpoint::Message>,
    /// Whether the assistant prompt was appended.
    pub add_generation_prompt: bool,
    /// The rendered text.
    pub rendered: String,
}

/// Logits are recorded at ids `start, start+step, ...`.
#[derive(Debug, Deserialize)]
pub struct LogitIds {
    /// First id.
    pub start: usize,
    /// Stride.
    pub step: usize,
}

/// Reference results for one prompt.
#[derive(Debug, Deserialize)]
pub struct PromptReference {
    /// The prompt.
    pub text: String,
    /// Its token ids.
    pub prompt_tokens: Vec<u32>,
    /// Greedy continuation from transformers' `generate`.
    pub tokens: Vec<u32>,
    /// The continuation's text.
    pub generated_text: String,
    /// Smallest top-1/top-2 margin along the greedy path, in float64.
    pub min_margin_f64: f64,
    /// Logits at selected positions.
    pub logits: Vec<LogitsAt>,
}

/// Logits predicting the token after `position` (prompt followed by generated tokens).
#[derive(Debug, Deserialize)]
pub struct LogitsAt {
    /// Absolute position.
    pub position: usize,
    /// Values at the recorded ids.
    pub values: Vec<f32>,
}

/// A fixture: its directory and reference.
pub struct Fixture {
    /// Directory name under `tests/fixtures`.
    pub name: String,
    /// Its path.
    pub dir: PathBuf,
    /// The model: the directory itself, or the GGUF file the reference names.
    pub weights: PathBuf,
    /// Parsed `reference.json`.
    pub reference: Reference,
}

impl Fixture {
    /// Loads committed fixture `name`.
    pub fn load(name: &str) -> Result<Self> {
        let dir = fixtures_dir().join(name);
        Self::from_dir(&dir, &dir.join("reference.json"))
    }

    /// A model directory checked against a reference file (e.g. one just recomputed live).
    pub fn from_dir(dir: &Path, reference: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(reference).with_context(|| reference.display().to_string())?;
        let reference = serde_json::from_str(&text).with_context(|| reference.display().to_string())?;
        let reference: Reference = reference;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let weights = match &reference.gguf {
            Some(gguf) => zoo::cache_dir().join("models").join(&gguf.file),
            None => dir.to_path_buf(),
        };
        Ok(Self { name, dir: dir.to_path_buf(), weights, reference })
    }

    /// Loads the fixture's model on `backend` as its reference computed it: a GGUF model is
    /// dequantised to f32 on load (`--dtype f32`), as transformers' GGUF loader does.
    pub fn pipeline(&self, backend: &str) -> Result<Pipeline> {
        self.pipeline_with(backend, self.reference.gguf.as_ref().map(|_| zoo_core::DType::F32))
    }

    /// Loads the fixture's model on `backend`, converting weights to `dtype` on load (`None`
    /// keeps them as stored: quantised GGUF weights stay quantised).
    pub fn pipeline_with(&self, backend: &str, dtype: Option<zoo_core::DType>) -> Result<Pipeline> {
        Ok(zoo::load(&LoadOptions {
            weights: self.weights.clone(),
            backend: Some(backend.into()),
            dtype,
            ..Default::default()
        })?)
    }
}

/// Largest logit difference over a prompt's recorded positions; checks the tokenizer too.
pub fn max_logit_error(pipe: &Pipeline, reference: &Reference, prompt: &PromptReference) -> Result<f32> {
    let ids = pipe.tokenizer.encode(&prompt.text, true)?;
    ensure!(
        ids == prompt.prompt_tokens,
        "tokenization of {:?}: ours {ids:?}, reference {:?}",
        prompt.text,
        prompt.prompt_tokens
    );
    let all_logits = sequence_logits(pipe, &prompt.prompt_tokens, &prompt.tokens)?;
    let vocab = pipe.model.info().vocab_size;
    let mut worst = 0f32;
    for at in &prompt.logits {
        let row = &all_logits[at.position * vocab..(at.position + 1) * vocab];
        let ours: Vec<f32> =
            row.iter().skip(reference.logit_ids.start).step_by(reference.logit_ids.step).copied().collect();
        ensure!(
            ours.len() == at.values.len(),
            "position {}: {} values, reference has {}",
            at.position,
            ours.len(),
            at.values.len()
        );
        for (a, b) in ours.iter().zip(&at.values) {
            worst = worst.max((a - b).abs());
        }
    }
    Ok(worst)
}

/// Logits `[positions, vocab]` for prompt + generated: the prompt in one prefill pass, then the
/// generated tokens one decode step at a time through the KV cache (as generation runs).
pub fn sequence_logits(pipe: &Pipeline, prompt: &[u32], generated: &[u32]) -> Result<Vec<f32>> {
    let model = pipe.model.as_ref();
    let mut cache = KvCache::new(&pipe.backend, &model.info().kv, 1, model.info().max_context)?;
    let backend = model.backend();
    let logits = forward(model, &Batch::single(prompt), &mut cache, LogitsRows::All)?;
    let mut all = zoo_core::Backend::to_host(backend, &logits)?;
    for &token in &generated[..generated.len().saturating_sub(1)] {
        let logits = forward(model, &Batch::single(&[token]), &mut cache, LogitsRows::Last)?;
        all.extend(zoo_core::Backend::to_host(backend, &logits)?);
    }
    Ok(all)
}

/// Greedy generation of as many tokens as the reference has; returns tokens and text.
pub fn greedy(pipe: &Pipeline, prompt: &PromptReference) -> Result<(Vec<u32>, String)> {
    let mut session = Session::new(pipe.model.as_ref(), None)?;
    let options =
        GenerateOptions { max_tokens: prompt.tokens.len(), eos_token_ids: pipe.eos_token_ids(), ..Default::default() };
    let generation = session.generate(&prompt.prompt_tokens, &options, &mut Greedy, None)?;
    let text = pipe.tokenizer.decode(&generation.tokens, false)?;
    Ok((generation.tokens, text))
}
