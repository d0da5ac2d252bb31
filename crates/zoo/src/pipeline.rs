//! Loading a runnable model from paths and names: checkpoint → family → backend → model, plus
//! its tokenizer, chat template and generation config.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use zoo_checkpoint::{ChatTemplate, Message, OpenOptions, TextTokenizer};
use zoo_core::registry::{self, BackendOptions, DynModel, LoadRequest, ModelFamily};
use zoo_core::{
    DType, DynBackend, Hooked, LimitedContext, LoadReport, OpProfile, TakenNames, Tokenizer, Tracked, WeightSource,
};

use crate::sources::{ByteCount, ToF32};
use crate::{Error, Result};

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Checkpoint path, or a Hugging Face id (`org/name[@revision]`, see [`crate::hub`]) when no
    /// file or folder has that name.
    pub weights: PathBuf,
    /// Model family name; detected from the config when `None`.
    pub model: Option<String>,
    /// Backend name; the default backend when `None`.
    pub backend: Option<String>,
    /// Tokenizer path; the checkpoint's own when `None`.
    pub tokenizer: Option<PathBuf>,
    /// CPU threads.
    pub threads: Option<usize>,
    /// GPU ordinal.
    pub device: usize,
    /// Training step, for checkpoint directories that hold several.
    pub step: Option<u64>,
    /// Most tokens per sequence (prompt and generated), below the model's own context: bounds
    /// the KV cache. `None`: the model's context length.
    pub max_context: Option<usize>,
    /// Element type to convert every weight to before the backend sees it; `None` keeps the
    /// checkpoint's (quantised GGUF weights stay quantised). Only [`DType::F32`] is supported.
    pub dtype: Option<DType>,
    /// Load even if the checkpoint holds tensors the model does not take (they are listed in
    /// [`Pipeline::load_report`]); without it, such a checkpoint is refused
    /// ([`Error::UnusedTensors`]).
    pub allow_unused: bool,
    /// Records the host time of every backend op into this profile (`zoo bench --profile`).
    pub profile: Option<Arc<OpProfile>>,
}

/// A model ready to generate.
pub struct Pipeline {
    /// The family that loaded it.
    pub family: &'static ModelFamily,
    /// The backend holding it.
    pub backend: DynBackend,
    /// The model.
    pub model: DynModel,
    /// Its tokenizer.
    pub tokenizer: Box<dyn Tokenizer>,
    /// Where it came from (for a Hugging Face id, its snapshot folder in the hub cache).
    pub weights: PathBuf,
    /// The checkpoint's `generation_config.json`, if any.
    pub generation_config: Option<serde_json::Value>,
    /// The model's chat template, if it ships one.
    pub chat_template: Option<ChatTemplate>,
    /// How long making the weights resident took.
    pub load_stats: LoadStats,
    /// Which checkpoint tensors the model took, which it ignores on purpose, which it left.
    pub load_report: LoadReport,
}

/// What loading the weights onto the backend cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadStats {
    /// Bytes of the tensors the model took from the checkpoint (as stored).
    pub weight_bytes: u64,
    /// Seconds the model family's loader ran (reading, converting and uploading weights).
    pub seconds: f64,
}

impl LoadStats {
    /// Weight bytes per second.
    pub fn bytes_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.weight_bytes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Loads a model and its tokenizer.
pub fn load(options: &LoadOptions) -> Result<Pipeline> {
    load_reporting(options, &|_, _| {})
}

/// [`load`], calling `progress(done, total)` with weight bytes as the model takes tensors from
/// the checkpoint (`total` counts every tensor the checkpoint holds).
pub fn load_reporting(options: &LoadOptions, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<Pipeline> {
    load_onto(options, || create_backend(options), progress)
}

/// [`load`] onto a backend the caller has made (a backend configured beyond what the registry's
/// entries offer, such as candle on the CPU with 16-bit activations); `options.backend`,
/// `threads`, `device` and `profile` are not read (profile the backend with
/// [`DynBackend::profiled`] before passing it).
pub fn load_on(options: &LoadOptions, backend: DynBackend) -> Result<Pipeline> {
    load_onto(options, || Ok(backend), &|_, _| {})
}

/// Opens the checkpoint, picks the family, then makes the backend with `backend` and loads.
fn load_onto(
    options: &LoadOptions,
    backend: impl FnOnce() -> Result<DynBackend>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Pipeline> {
    crate::link_plugins();
    let path = &crate::hub::resolve_weights(&options.weights, &mut ())?;
    let checkpoint = zoo_checkpoint::open_with(path, &OpenOptions { step: options.step })?;
    let family = match &options.model {
        Some(name) => registry::find_model_family(name)?,
        None => registry::detect_model_family(&checkpoint.config)?
            .ok_or_else(|| Error::UnknownFamily { path: path.clone() })?,
    };
    let backend = backend()?;
    // Every name handed out is recorded, so no tensor of the file goes unnoticed; counted below
    // any conversion, so bytes count as stored.
    let tracked = Tracked::new(checkpoint.weights.as_ref(), TakenNames::default());
    let counted = Hooked::new(&tracked, ByteCount::new(&tracked, progress));
    let as_f32;
    let weights: &dyn WeightSource = match options.dtype {
        None => &counted,
        Some(DType::F32) => {
            as_f32 = Hooked::new(&counted, ToF32);
            &as_f32
        }
        Some(other) => return Err(Error::LoadDType(other)),
    };
    let started = Instant::now();
    let loaded = (family.load)(&LoadRequest { backend: backend.clone(), config: &checkpoint.config, weights });
    let load_stats = LoadStats { weight_bytes: counted.hook().done(), seconds: started.elapsed().as_secs_f64() };
    let mut model =
        loaded.map_err(|source| Error::Load { path: path.clone(), family: family.name, source: Box::new(source) })?;
    let load_report = tracked.report(family.unused);
    if !load_report.unused.is_empty() && !options.allow_unused {
        return Err(Error::UnusedTensors {
            path: path.clone(),
            family: family.name,
            count: load_report.unused.len(),
            names: load_report.unused_summary(),
        });
    }
    if let Some(limit) = options.max_context {
        if limit == 0 {
            return Err(Error::ZeroContext);
        }
        model = Box::new(LimitedContext::new(model, limit));
    }
    let tokenizer = match (&options.tokenizer, checkpoint.tokenizer) {
        (Some(p), _) => Box::new(TextTokenizer::load(p)?) as Box<dyn Tokenizer>,
        (None, Some(t)) => t,
        (None, None) => return Err(Error::NoTokenizer { path: path.clone(), refused: checkpoint.tokenizer_refused }),
    };
    Ok(Pipeline {
        family,
        backend,
        model,
        tokenizer,
        weights: path.clone(),
        generation_config: checkpoint.generation_config,
        chat_template: checkpoint.chat_template,
        load_stats,
        load_report,
    })
}

impl Pipeline {
    /// Token ids that end generation: the model config's, its named stop tokens looked up in
    /// the tokenizer, and `generation_config.json`'s.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let info = self.model.info();
        let mut ids = info.eos_token_ids.clone();
        ids.extend(info.eos_token_names.iter().filter_map(|name| self.tokenizer.token_to_id(name)));
        crate::eos_token_ids(&ids, self.generation_config.as_ref())
    }

    /// Token ids of a conversation rendered with the model's chat template, ending where the
    /// assistant's reply starts (the template adds any BOS itself).
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let template =
            self.chat_template.as_ref().ok_or_else(|| Error::NoChatTemplate { path: self.weights.clone() })?;
        let text = template.render(messages, true)?;
        Ok(self.tokenizer.encode(&text, false)?)
    }
}

/// Creates the named backend (or the default one), refusing one that cannot run here.
pub fn create_backend(options: &LoadOptions) -> Result<DynBackend> {
    crate::link_plugins();
    let entry = match &options.backend {
        Some(name) => registry::find_backend(name).map_err(|source| {
            let hint = if name.contains("cuda") {
                "this zoo was built without CUDA support: build it with scripts/build-cuda.sh (cargo feature `cuda`)"
            } else {
                "see `zoo list`"
            };
            Error::UnknownBackend { hint: hint.into(), source: Box::new(source) }
        })?,
        None => registry::default_backend()?,
    };
    if let registry::Availability::Unusable(reason) = (entry.availability)() {
        return Err(Error::UnusableBackend { name: entry.name, reason });
    }
    let backend = (entry.create)(&BackendOptions { threads: options.threads, device: options.device })?;
    Ok(match &options.profile {
        Some(profile) => backend.profiled(profile.clone()),
        None => backend,
    })
}
