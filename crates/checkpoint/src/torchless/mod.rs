//! Torchless binary checkpoints (`model.bin`, the JSON-header variant; spec:
//! `docs/specs/torchless-format.md`), read through a memory map and written by [`write`].
//!
//! Layout: a little-endian u64 header length, the JSON header (`metadata`, `tensors`,
//! `tokenizer`) padded with NULs so that the payload starts on a 64-byte boundary, then the
//! payload. Tensors are f32, or int8 in groups of 64 with one f32 scale per group stored as the
//! *reciprocal* `127 / max|x|`.
//!
//! Reading:
//! - f32 tensors are handed out in place (the payload is 64-byte aligned in current files);
//! - int8 tensors keep their bytes in the map; their scales become multipliers `1 / scale` once,
//!   and a group whose stored scale is 0, inf or NaN (old exporters wrote `127/0 = inf` for a
//!   zero group) gets multiplier 0 instead of NaN;
//! - leniencies for older exporters: no header padding (the payload follows the JSON directly),
//!   `scale_size` as a count or in bytes, trailing NULs after the JSON;
//! - every offset, size and overlap is checked against the file before anything is allocated.
//!
//! `metadata` becomes an HF Mistral `config.json` value and the vocabulary + merges a
//! SentencePiece-style tokenizer ([`crate::spm_bpe`]).

mod header;
mod writer;

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use serde_json::{Map, Value};
use zoo_core::{Bytes, DType, GroupScales, WeightSource, WeightView};

pub use header::{python_float, GROUP_SIZE, WRITABLE_MODEL_TYPES};
pub use writer::{quantize_group, stable_scale, write, Quant, WriteRequest};

use crate::error::{CheckpointError, Result};
use crate::spm_bpe::BpeVocab;
use crate::Checkpoint;

/// Where one tensor lives in the file (absolute byte ranges).
struct Entry {
    shape: Vec<usize>,
    data: Range<usize>,
    /// The f32 scales of an int8 tensor; `None` for f32.
    scales: Option<Range<usize>>,
}

/// An open Torchless file.
pub struct Torchless {
    path: PathBuf,
    map: Arc<Mmap>,
    metadata: Map<String, Value>,
    tensors: BTreeMap<String, Entry>,
    vocab: Option<BpeVocab>,
}

/// Opens a Torchless file as a [`Checkpoint`] (config, weights and embedded tokenizer).
pub fn open(path: &Path) -> Result<Checkpoint> {
    let file = Torchless::open(path)?;
    let config = file.config()?;
    let tokenizer = file.tokenizer()?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        config,
        generation_config: None,
        weights: Box::new(file),
        tokenizer: tokenizer.map(|t| Box::new(t) as _),
        tokenizer_refused: None,
        chat_template: None,
    })
}

impl Torchless {
    /// Maps `path` and validates its header and tensor table.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        let len = file.metadata().map_err(|e| CheckpointError::io(path, e))?.len();
        if len < 8 {
            return Err(CheckpointError::invalid(
                path,
                format!("truncated: {len} bytes, shorter than the 8-byte header length"),
            ));
        }
        // SAFETY: the map is read-only; zoo never writes to checkpoint files while they are open.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
        let mut size = [0u8; 8];
        size.copy_from_slice(&map[..8]);
        let header_size = u64::from_le_bytes(size);
        let header_end = header_size.checked_add(8).filter(|&end| end <= map.len() as u64).ok_or_else(|| {
            CheckpointError::invalid(
                path,
                format!("header length {header_size} is larger than the file ({} bytes after the length)", len - 8),
            )
        })? as usize;
        let mut json = &map[8..header_end];
        while let [rest @ .., 0] = json {
            json = rest;
        }
        let header: Value = serde_json::from_slice(json)
            .map_err(|e| CheckpointError::invalid(path, format!("invalid JSON header: {e}")))?;
        let metadata = header
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| CheckpointError::invalid(path, "header has no `metadata` object"))?;
        let table = header
            .get("tensors")
            .and_then(Value::as_object)
            .ok_or_else(|| CheckpointError::invalid(path, "header has no `tensors` object"))?;
        let payload = header_end..map.len();
        let mut tensors = BTreeMap::new();
        for (name, record) in table {
            tensors.insert(name.clone(), parse_entry(path, name, record, &payload)?);
        }
        check_overlaps(path, &tensors)?;
        let vocab = match header.get("tokenizer") {
            Some(t) if t.get("vocab").and_then(Value::as_object).is_some_and(|v| !v.is_empty()) => {
                Some(BpeVocab::from_json(path, &t["vocab"], t.get("merges").unwrap_or(&Value::Null))?)
            }
            _ => None,
        };
        Ok(Self { path: path.to_path_buf(), map: Arc::new(map), metadata, tensors, vocab })
    }

    /// The model configuration as an HF Mistral `config.json` value.
    pub fn config(&self) -> Result<Value> {
        let id = |t: &str| self.vocab.as_ref().and_then(|v| v.id(t));
        header::metadata_to_config(
            &self.path,
            &self.metadata,
            self.tensors.contains_key("lm_head.weight"),
            id("<s>"),
            id("</s>"),
        )
    }

    /// The raw `metadata` object.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// The embedded vocabulary and merges, when the file has a non-empty one.
    pub fn vocab(&self) -> Option<&BpeVocab> {
        self.vocab.as_ref()
    }

    /// The embedded tokenizer, when the file has one.
    pub fn tokenizer(&self) -> Result<Option<crate::TextTokenizer>> {
        self.vocab.as_ref().map(|v| v.tokenizer(&self.path)).transpose()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Validates one `tensors` record against the payload range.
fn parse_entry(path: &Path, name: &str, record: &Value, payload: &Range<usize>) -> Result<Entry> {
    let bad = |message: String| CheckpointError::tensor(path, name, message);
    let field = |key: &str| record.get(key).ok_or_else(|| bad(format!("record has no `{key}`")));
    let dtype = field("dtype")?.as_str().ok_or_else(|| bad("`dtype` is not a string".into()))?;
    let int8 = match dtype {
        "f32" => false,
        "int8" => true,
        other => {
            return Err(CheckpointError::UnsupportedDType {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: other.to_string(),
            })
        }
    };
    let shape: Vec<usize> = field("shape")?
        .as_array()
        .and_then(|dims| dims.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect())
        .ok_or_else(|| bad("`shape` is not a list of sizes".into()))?;
    let element = if int8 { 1 } else { 4 };
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let bytes =
        numel.and_then(|n| n.checked_mul(element)).ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let numel = bytes / element;
    let offset = field("offset")?.as_u64().ok_or_else(|| bad("`offset` is not an unsigned integer".into()))?;
    let data = locate(offset, bytes, payload).map_err(|m| bad(format!("data {m}")))?;
    let scales = if int8 {
        if numel % GROUP_SIZE != 0 {
            return Err(bad(format!("int8 tensor of {numel} elements is not a whole number of {GROUP_SIZE}-groups")));
        }
        let groups = numel / GROUP_SIZE;
        let scale_offset =
            field("scale_offset")?.as_u64().ok_or_else(|| bad("`scale_offset` is not an unsigned integer".into()))?;
        let size =
            field("scale_size")?.as_u64().ok_or_else(|| bad("`scale_size` is not an unsigned integer".into()))?;
        // NOTE: the exporter at 0819c42 wrote `scale_size` in bytes; later ones write the count.
        if size != groups as u64 && size != 4 * groups as u64 {
            return Err(bad(format!("`scale_size` {size} is neither {groups} scales nor {} bytes", 4 * groups)));
        }
        Some(locate(scale_offset, 4 * groups, payload).map_err(|m| bad(format!("scales {m}")))?)
    } else {
        None
    };
    Ok(Entry { shape, data, scales })
}

/// The absolute range of `len` bytes at payload offset `offset`, or why it does not fit.
fn locate(offset: u64, len: usize, payload: &Range<usize>) -> std::result::Result<Range<usize>, String> {
    let available = payload.len() as u64;
    match offset.checked_add(len as u64) {
        Some(end) if end <= available => {
            let start = payload.start + offset as usize;
            Ok(start..start + len)
        }
        _ => Err(format!("at offset {offset} ({len} bytes) lies outside the payload ({available} bytes)")),
    }
}

/// Rejects tensors whose data or scales share bytes.
fn check_overlaps(path: &Path, tensors: &BTreeMap<String, Entry>) -> Result<()> {
    let mut ranges = Vec::new();
    for (name, entry) in tensors {
        ranges.push((entry.data.clone(), name.as_str()));
        ranges.extend(entry.scales.clone().map(|s| (s, name.as_str())));
    }
    crate::limits::check_disjoint(path, ranges)
}

/// Stored reciprocal scales → multipliers; 0, inf and NaN scales give multiplier 0 (see the
/// module doc).
fn multipliers(raw: &[u8]) -> Arc<[f32]> {
    raw.chunks_exact(4)
        .map(|c| {
            let m = 1.0 / f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if m.is_finite() {
                m
            } else {
                0.0
            }
        })
        .collect()
}

impl WeightSource for Torchless {
    crate::tensor_map::map_lookups!(path);

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        let entry = crate::tensor_map::entry(&self.tensors, name, self)?;
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = self.map.clone();
        let data = Bytes::new(owner, entry.data.clone());
        match &entry.scales {
            None => WeightView::new(name, DType::F32, entry.shape.clone(), data),
            Some(range) => {
                let scales = GroupScales { group_size: GROUP_SIZE, scales: multipliers(&self.map[range.clone()]) };
                WeightView::new_quantized(name, entry.shape.clone(), data, scales)
            }
        }
    }
}
