//! GGUF, llama.cpp's single-file format: weights, model metadata, tokenizer and chat template.
//!
//! [`open`] memory-maps a `.gguf` file, parses and bounds-checks its layout ([`file`]), turns
//! the `<arch>.*` metadata into an HF-style config ([`config`]) and the `tokenizer.*` metadata
//! into a tokenizer and chat template ([`tokenizer`]). [`Gguf`] is the [`WeightSource`]: it
//! hands out tensors under their HF names ([`names`]) with PyTorch-order shapes.
//!
//! Tensors of type F32, F16 and BF16 are views into the map (no copy) unless they need
//! reordering. Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q4_K, Q5_K, Q6_K stay quantised:
//! they are handed out as views of their [`DType`] into the map (an owned copy only when
//! Llama's Q/K rows are un-permuted, which moves whole blocks). Other ggml types are known by
//! size only ([`tensor_type`]); callers wanting f32 everywhere convert with
//! [`WeightView::to_f32_vec`].
//!
//! NOTE: llama.cpp's converter permutes the rows of Llama's `attn_q` and `attn_k` for its RoPE;
//! for `general.architecture = "llama"` they are put back in HF order on load, so HF's
//! rotate-half RoPE applies (see [`names::unpermute_rows`]).

pub mod config;
pub mod file;
pub mod names;
pub mod tensor_type;
pub mod tokenizer;
pub mod value;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use zoo_core::{Bytes, DType, WeightMeta, WeightSource, WeightView};

use crate::error::{CheckpointError, Result};
use crate::Checkpoint;
use file::TensorInfo;
use tokenizer::GgufTokenizer;
pub use value::Value;

/// Whether `path` is a GGUF file (by extension, or by its magic number).
pub fn is_gguf(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        return true;
    }
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok() && &magic == file::MAGIC
}

/// Opens a GGUF file as a whole checkpoint.
pub fn open(path: &Path) -> Result<Checkpoint> {
    let gguf = Gguf::open(path)?;
    let has_output = gguf.tensors.contains_key("lm_head.weight");
    let n_vocab = gguf.tensors.get("model.embed_tokens.weight").and_then(|t| t.ne.get(1).copied());
    let config = config::hf_config(path, &gguf.metadata, has_output, n_vocab)?;
    let tokenizer = crate::contain::contained(|| tokenizer::tokenizer(path, &gguf.metadata))
        .map_err(|e| CheckpointError::Tokenizer { path: path.to_path_buf(), message: e })??;
    let (tokenizer, tokenizer_refused) = match tokenizer {
        GgufTokenizer::Built(t) => (Some(t as _), None),
        GgufTokenizer::Unsupported(why) => (None, Some(why)),
        GgufTokenizer::Absent => (None, None),
    };
    let chat_template = tokenizer::chat_template(path, &gguf.metadata);
    Ok(Checkpoint {
        path: path.to_path_buf(),
        config,
        generation_config: None,
        weights: Box::new(gguf),
        tokenizer,
        tokenizer_refused,
        chat_template,
    })
}

/// A memory-mapped GGUF file seen as named tensors (HF names).
pub struct Gguf {
    path: PathBuf,
    mmap: Arc<Mmap>,
    version: u32,
    metadata: BTreeMap<String, Value>,
    /// By HF name (or the GGUF name, for tensors without an HF equivalent).
    tensors: BTreeMap<String, TensorInfo>,
    /// (query heads, key/value heads) when Q/K rows must be un-permuted.
    permuted: Option<(usize, usize)>,
}

impl Gguf {
    /// Maps and parses `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        // SAFETY: the map is read-only; zoo never writes to checkpoint files while they are open.
        let mmap = unsafe { Mmap::map(&f) }.map_err(|e| CheckpointError::io(path, e))?;
        let layout = file::parse(path, &mmap)?;
        let mut tensors = BTreeMap::new();
        for info in layout.tensors {
            let name = names::hf_name(&info.name).unwrap_or_else(|| info.name.clone());
            if let Some(other) = tensors.insert(name.clone(), info) {
                return Err(CheckpointError::invalid(
                    path,
                    format!("tensors `{}` and another both map to `{name}`", other.name),
                ));
            }
        }
        let arch = layout.metadata.get("general.architecture").and_then(Value::as_str);
        let permuted = if arch == Some("llama") {
            let heads = layout.metadata.get("llama.attention.head_count").and_then(Value::as_u64);
            let kv = layout.metadata.get("llama.attention.head_count_kv").and_then(Value::as_u64).or(heads);
            heads.zip(kv).map(|(h, kv)| (h as usize, kv as usize))
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            mmap: Arc::new(mmap),
            version: layout.version,
            metadata: layout.metadata,
            tensors,
            permuted,
        })
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata, by key.
    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.metadata
    }

    /// The GGUF description of the tensor called `name` (HF name).
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    fn error(&self, info: &TensorInfo, message: impl std::fmt::Display) -> zoo_core::Error {
        CheckpointError::invalid(&self.path, format!("tensor `{}`: {message}", info.name)).into()
    }
}

impl Gguf {
    /// The (query heads, key/value heads) whose rows `info` must be un-permuted by, if any.
    fn permuted_heads(&self, info: &TensorInfo) -> Option<usize> {
        self.permuted.and_then(|(h, kv)| names::permuted_heads(&info.name, h, kv))
    }

    /// `info`'s bytes with Llama's Q/K rows put back in HF order, or `None` when they need no
    /// reordering.
    fn reordered(&self, info: &TensorInfo) -> zoo_core::Result<Option<Vec<u8>>> {
        let Some(heads) = self.permuted_heads(info) else {
            return Ok(None);
        };
        let (row_elems, rows) = match info.ne.as_slice() {
            [n] => (1, *n),
            [n, outer @ ..] => (*n, outer.iter().product()),
            [] => (1, 0),
        };
        let row_bytes = info.ty.bytes_for(row_elems).unwrap_or(0);
        let stored = &self.mmap[info.range.clone()];
        let reordered = names::unpermute_rows(stored, rows, row_bytes, heads);
        let message = || format!("{rows} rows cannot be un-permuted as {heads} heads of even size");
        reordered.map(Some).ok_or_else(|| self.error(info, message()))
    }

    /// The dtype `get` hands `info` out in: blocks as stored (reordering moves whole blocks),
    /// floats as stored unless reordered, everything else decoded to f32.
    fn handed_out(info: &TensorInfo, reordered: bool) -> Option<DType> {
        match (info.ty.block_dtype(), info.ty.float_dtype()) {
            (Some(block), _) => Some(block),
            (None, Some(float)) if !reordered => Some(float),
            _ => None,
        }
    }

    /// Hands the pages of `info`'s bytes back to the OS once a copy replaces them, so that a
    /// process does not hold both ([`Bytes::release_pages`]).
    fn release(&self, info: &TensorInfo) {
        // SAFETY: `self.mmap` maps the GGUF file read-only.
        unsafe { Bytes::file_mapped(self.mmap.clone(), info.range.clone()) }.release_pages();
    }

    fn unsupported(&self, info: &TensorInfo) -> zoo_core::Error {
        let (path, name) = (self.path.clone(), info.name.clone());
        CheckpointError::UnsupportedDType { path, name, dtype: info.ty.name.to_string() }.into()
    }
}

impl WeightSource for Gguf {
    crate::tensor_map::map_lookups!(path);

    fn meta(&self, name: &str) -> zoo_core::Result<WeightMeta> {
        let info = crate::tensor_map::entry(&self.tensors, name, self)?;
        if !info.ty.decodable() {
            return Err(self.unsupported(info));
        }
        let dtype = Self::handed_out(info, self.permuted_heads(info).is_some()).unwrap_or(DType::F32);
        Ok(WeightMeta { dtype, shape: info.shape() })
    }

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        let info = crate::tensor_map::entry(&self.tensors, name, self)?;
        if !info.ty.decodable() {
            return Err(self.unsupported(info));
        }
        let reordered = self.reordered(info)?;
        if reordered.is_some() {
            self.release(info); // the reordered copy replaces the mapped bytes
        }
        if let Some(dtype) = Self::handed_out(info, reordered.is_some()) {
            let bytes = match reordered {
                Some(rows) => Bytes::from_vec(rows),
                // SAFETY: `self.mmap` maps the GGUF file read-only.
                None => unsafe { Bytes::file_mapped(self.mmap.clone(), info.range.clone()) },
            };
            return WeightView::new(name, dtype, info.shape(), bytes);
        }
        // Quantised, or reordered: decoded into an owned, aligned f32 buffer.
        let mut values = Vec::new();
        let stored = reordered.as_deref().unwrap_or(&self.mmap[info.range.clone()]);
        if !tensor_type::dequantize(info.ty, stored, &mut values) {
            return Err(self.error(info, format!("{} data is not whole blocks", info.ty)));
        }
        self.release(info); // the decoded copy replaces the mapped bytes
        let len = values.len() * 4;
        WeightView::new(name, DType::F32, info.shape(), Bytes::new(Arc::new(F32Buffer(values)), 0..len))
    }
}

/// Decoded values, kept as `f32` so the bytes are 4-byte aligned and backends can use them in
/// place.
struct F32Buffer(Vec<f32>);

impl AsRef<[u8]> for F32Buffer {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}
