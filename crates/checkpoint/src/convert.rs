//! Conversion between checkpoint formats: an HF directory (safetensors), a Torchless `.bin` and a
//! Burn record (`.mpk` / `.mpk.gz`). The source is recognised by [`crate::open`]; the target's
//! format comes from its name (see [`Format::of_target`]).
//!
//! What travels: every tensor (one at a time, never two copies of the model), the config, and the
//! tokenizer (tokenizer files are copied into an HF directory, a Torchless file embeds vocabulary
//! and merges, a Burn record gets its config JSON and the tokenizer files beside it).
//!
//! [`convert`] writes where it is told, over whatever is there: `zoo convert` gives it a fresh
//! staging directory, checks the result ([`crate::verify`]) and only then moves it into place.

use std::path::{Path, PathBuf};

use zoo_core::{DType, WeightSource};

use crate::burn_mpk::{self, Precision};
use crate::error::{CheckpointError, Result};
use crate::gguf::tokenizer::GgufTokenizer;
use crate::spm_bpe::BpeVocab;
use crate::torchless::{self, Quant, Torchless};

/// Checkpoint formats zoo writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An HF directory: `config.json`, `model.safetensors`, tokenizer files.
    HfDir,
    /// A Torchless `.bin` file.
    Torchless,
    /// A Burn `NamedMpkFileRecorder` record (`.mpk`, or `.mpk.gz`) with `X.json` beside it.
    Burn,
}

impl Format {
    /// The format a target path asks for: `.bin` → Torchless, `.mpk`/`.mpk.gz` → Burn, anything
    /// else → an HF directory.
    pub fn of_target(path: &Path) -> Self {
        if burn_mpk::is_burn_path(path) {
            Format::Burn
        } else if path.extension().is_some_and(|e| e == "bin") {
            Format::Torchless
        } else {
            Format::HfDir
        }
    }
}

/// How to convert.
#[derive(Default)]
pub struct ConvertOptions<'a> {
    /// Element type of the written tensors; `None` keeps the source's where the target allows.
    pub dtype: Option<DType>,
    /// Called with (source bytes done, source bytes in all).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

/// What a conversion did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertReport {
    /// The target's format.
    pub format: Format,
    /// Tensors written.
    pub tensors: usize,
    /// Tensor bytes read from the source.
    pub source_bytes: u64,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Converts the checkpoint at `from` into `to` (see the module doc).
pub fn convert(from: &Path, to: &Path, options: &ConvertOptions) -> Result<ConvertReport> {
    let checkpoint = crate::open(from)?;
    let weights = checkpoint.weights.as_ref();
    let names = weights.names();
    let mut total = 0u64;
    let mut has_int8 = false;
    let mut all_f16 = !names.is_empty();
    // Sized from the tensors' descriptions: reading them here would decode every dequantised
    // GGUF tensor twice (once to size, once to write).
    for name in &names {
        let meta = weights.meta(name).map_err(|e| CheckpointError::tensor(from, name, e.to_string()))?;
        total += meta.bytes();
        has_int8 |= meta.dtype == DType::I8;
        all_f16 &= meta.dtype == DType::F16;
    }
    let progress = |done: u64| {
        if let Some(p) = options.progress {
            p(done, total)
        }
    };
    let format = Format::of_target(to);
    let unsupported = |what: &str| {
        let dtype = options.dtype.map(|d| d.name()).unwrap_or("?");
        Err(CheckpointError::invalid(to, format!("{what} cannot hold {dtype} tensors")))
    };
    let files = match format {
        Format::HfDir => {
            if options.dtype.is_some_and(|d| d.is_quantized()) {
                return unsupported("an HF safetensors directory");
            }
            std::fs::create_dir_all(to).map_err(|e| CheckpointError::io(to, e))?;
            let model = to.join("model.safetensors");
            crate::safetensors::write(&model, weights, options.dtype, Some(&progress))?;
            let config = to.join("config.json");
            write_json(&config, &checkpoint.config)?;
            let mut files = vec![model, config];
            files.extend(copy_tokenizer(from, to)?);
            files
        }
        Format::Torchless => {
            let Some(quant) = f32_or_narrow(options.dtype, Quant::F32, (DType::I8, Quant::Int8), has_int8) else {
                return unsupported("a Torchless file");
            };
            let vocab = source_vocab(from)?;
            let request = torchless::WriteRequest {
                config: &checkpoint.config,
                weights,
                vocab: vocab.as_ref(),
                quant,
                progress: Some(&progress),
            };
            torchless::write(to, &request)?;
            vec![to.to_path_buf()]
        }
        Format::Burn => {
            let Some(precision) = f32_or_narrow(options.dtype, Precision::Full, (DType::F16, Precision::Half), all_f16)
            else {
                return unsupported("a Burn record");
            };
            let request =
                burn_mpk::WriteRequest { weights, config: &checkpoint.config, precision, progress: Some(&progress) };
            burn_mpk::write(to, &request)?;
            let mut files = vec![to.to_path_buf(), burn_mpk::config_path(to)];
            // The tokenizer goes beside the record, where `open` looks for it.
            let dir = to.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            files.extend(copy_tokenizer(from, dir)?);
            files
        }
    };
    Ok(ConvertReport { format, tensors: names.len(), source_bytes: total, files })
}

/// The encoding a format that stores f32 or one narrower type writes for `--dtype` `asked`:
/// `narrow` where its dtype is asked for, or nothing is and `source_is_narrow` (Torchless: some
/// tensor is int8; Burn: every tensor is f16); `full` (f32) where f32 or nothing is asked for;
/// `None` (refused) for any other dtype.
fn f32_or_narrow<T>(asked: Option<DType>, full: T, narrow: (DType, T), source_is_narrow: bool) -> Option<T> {
    let (narrow_dtype, narrow) = narrow;
    match asked {
        None if source_is_narrow => Some(narrow),
        None | Some(DType::F32) => Some(full),
        Some(dtype) if dtype == narrow_dtype => Some(narrow),
        Some(_) => None,
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    std::fs::write(path, text).map_err(|e| CheckpointError::io(path, e))
}

/// Tokenizer files an HF directory may hold (and a Burn record's directory), copied as they are.
pub const TOKENIZER_FILES: [&str; 10] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "encoder.json",
    "vocab.bpe",
    "tokenizer.model",
    "chat_template.jinja",
    "generation_config.json",
];

/// The directory whose tokenizer files belong to the checkpoint at `from`.
fn tokenizer_dir(from: &Path) -> PathBuf {
    if from.is_dir() {
        from.to_path_buf()
    } else {
        from.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// Copies the source's tokenizer files into `to`; a Torchless source's embedded tokenizer is
/// saved as `tokenizer.json`, a GGUF's tokenizer and chat template are written out.
fn copy_tokenizer(from: &Path, to: &Path) -> Result<Vec<PathBuf>> {
    if from.extension().is_some_and(|e| e == "gguf") {
        return gguf_tokenizer_files(from, to);
    }
    let mut files = Vec::new();
    if Format::of_target(from) == Format::Torchless {
        if let Some(tokenizer) = Torchless::open(from)?.tokenizer()? {
            let path = to.join("tokenizer.json");
            tokenizer.save(&path)?;
            files.push(path);
        }
        return Ok(files);
    }
    let dir = tokenizer_dir(from);
    for name in TOKENIZER_FILES {
        let (src, dst) = (dir.join(name), to.join(name));
        if src.is_file() && src != dst {
            std::fs::copy(&src, &dst).map_err(|e| CheckpointError::io(&src, e))?;
            files.push(dst);
        }
    }
    Ok(files)
}

/// A GGUF's tokenizer (if zoo builds it) as `tokenizer.json`, and its chat template with the special tokens it
/// uses as `tokenizer_config.json`, where an HF directory keeps them.
fn gguf_tokenizer_files(from: &Path, to: &Path) -> Result<Vec<PathBuf>> {
    let gguf = crate::gguf::Gguf::open(from)?;
    let mut files = Vec::new();
    if let GgufTokenizer::Built(tokenizer) = crate::gguf::tokenizer::tokenizer(from, gguf.metadata())? {
        let path = to.join("tokenizer.json");
        tokenizer.save(&path)?;
        files.push(path);
    }
    if let Some(template) = crate::gguf::tokenizer::chat_template(from, gguf.metadata()) {
        let mut config = serde_json::Map::new();
        config.insert("chat_template".into(), template.source().into());
        config.extend(template.special_tokens().iter().map(|(k, v)| (k.clone(), v.as_str().into())));
        let path = to.join("tokenizer_config.json");
        write_json(&path, &serde_json::Value::Object(config))?;
        files.push(path);
    }
    Ok(files)
}

/// The vocabulary and merges to embed in a Torchless file: the source's own (a `.bin`), or those
/// of a BPE `tokenizer.json` beside it.
fn source_vocab(from: &Path) -> Result<Option<BpeVocab>> {
    if Format::of_target(from) == Format::Torchless {
        return Ok(Torchless::open(from)?.vocab().cloned());
    }
    let json = tokenizer_dir(from).join("tokenizer.json");
    if json.is_file() {
        return BpeVocab::from_tokenizer_json(&json).map(Some);
    }
    Ok(None)
}

/// Tensor names of `a` and `b` whose values differ (for round-trip checks).
pub fn differing_tensors(a: &dyn WeightSource, b: &dyn WeightSource) -> Vec<String> {
    let mut names = a.names();
    names.extend(b.names());
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| match (a.get(n), b.get(n)) {
            (Ok(x), Ok(y)) => x.shape != y.shape || x.to_f32_vec() != y.to_f32_vec(),
            _ => true,
        })
        .collect()
}
