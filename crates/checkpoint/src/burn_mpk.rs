//! Burn records: files written by `NamedMpkFileRecorder` (`.mpk`) and `NamedMpkGzFileRecorder`
//! (`.mpk.gz`), full or half precision (spec: `docs/specs/burn-mpk.md`, Burn 0.18–0.21).
//!
//! A record is MessagePack `{metadata, item, _b}`; `item` mirrors the module tree. Reading needs no
//! schema: nested maps become dotted names, `Vec` elements `.{i}`, and a map
//! `{id, param: {bytes, shape, dtype}}` is a parameter. Constant fields (`nil`) are skipped.
//! Writing builds the same tree from dotted names (all-numeric keys `0..n` become an array), so a
//! Burn module whose field names follow the checkpoint's names (as in `Gpt2 → h → attn`) loads it.
//!
//! NOTE: Burn's `nn::Linear` (default `LinearLayout::Row`, and always before 0.19) records its
//! weight `[d_input, d_output]`, the transpose of the `[out, in]` zoo uses. Which tensors are
//! Linear weights is decided from names by [`is_linear_weight`]: every 2-D `*.weight` outside an
//! embedding module (`embed_tokens`, `wte`, `wpe`, `embedding`, `tok_embeddings`), except for
//! `gpt2`, whose HF checkpoints already store Conv1D weights `[in, out]`. They are transposed on
//! read and back on write.
//!
//! Like nanochat-rs, a `.mpk` keeps its model config as JSON beside it: `X.json` next to `X.mpk`
//! (or `X.mpk.gz`).
//!
//! `.mpk` files are memory-mapped and tensors borrow the map (MessagePack gives no alignment, so
//! the backend copies f32 data once); `.mpk.gz` is decompressed into memory first.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use rmpv::{Value, ValueRef};
use zoo_core::{Bytes, DType, WeightSource, WeightView};

use crate::error::{CheckpointError, Result};
use crate::Checkpoint;

/// Burn's floating-point precision settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// `FullPrecisionSettings`: f32 floats.
    Full,
    /// `HalfPrecisionSettings`: f16 floats.
    Half,
}

/// One parameter's place in the record.
struct Entry {
    dtype: std::result::Result<DType, String>,
    /// Shape as recorded.
    shape: Vec<usize>,
    range: Range<usize>,
}

/// An open Burn record.
pub struct BurnRecord {
    path: PathBuf,
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    tensors: BTreeMap<String, Entry>,
    model_type: String,
}

/// Whether `path` names a Burn record (`.mpk` or `.mpk.gz`).
pub fn is_burn_path(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    name.ends_with(".mpk") || name.ends_with(".mpk.gz")
}

/// The config JSON kept beside a record: `X.json` for `X.mpk` / `X.mpk.gz`.
pub fn config_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    let stem = stem.strip_suffix(".mpk").unwrap_or(stem);
    path.with_file_name(format!("{stem}.json"))
}

/// Whether the tensor `name` is an `nn::Linear` weight of a `model_type` model (see the module doc).
pub fn is_linear_weight(model_type: &str, name: &str, shape: &[usize]) -> bool {
    const EMBEDDINGS: [&str; 5] = ["embed_tokens", "wte", "wpe", "embedding", "tok_embeddings"];
    let Some(module) = name.strip_suffix(".weight") else { return false };
    let module = module.rsplit('.').next().unwrap_or(module);
    model_type != "gpt2" && shape.len() == 2 && !EMBEDDINGS.contains(&module)
}

/// Opens a record and the config JSON beside it as a [`Checkpoint`].
pub fn open(path: &Path) -> Result<Checkpoint> {
    let config_file = config_path(path);
    if !config_file.is_file() {
        return Err(CheckpointError::NotFound {
            path: config_file,
            message: format!(
                "no model config beside {} (Burn records keep it as JSON next to the .mpk)",
                path.display()
            ),
        });
    }
    let config = crate::hf::read_json(&config_file)?;
    let model_type = config.get("model_type").and_then(|t| t.as_str()).unwrap_or("").to_string();
    let record = BurnRecord::open(path, &model_type)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tokenizer = if crate::TextTokenizer::exists_in(dir) { Some(crate::TextTokenizer::load(dir)?) } else { None };
    Ok(Checkpoint {
        path: path.to_path_buf(),
        config,
        generation_config: None,
        weights: Box::new(record),
        tokenizer: tokenizer.map(|t| Box::new(t) as _),
        tokenizer_refused: None,
        chat_template: None,
    })
}

impl BurnRecord {
    /// Reads the record at `path`; `model_type` selects the Linear-weight rule.
    pub fn open(path: &Path, model_type: &str) -> Result<Self> {
        let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = if path.extension().is_some_and(|e| e == "gz") {
            Arc::new(crate::limits::gunzip(path)?)
        } else {
            // SAFETY: the map is read-only; zoo never writes to checkpoint files while they are open.
            Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?)
        };
        let bytes = (*owner).as_ref();
        let mut cursor = bytes;
        let root = rmpv::decode::read_value_ref(&mut cursor)
            .map_err(|e| CheckpointError::invalid(path, format!("not a MessagePack Burn record: {e}")))?;
        let item = map_get(&root, "item")
            .ok_or_else(|| CheckpointError::invalid(path, "record has no `item` (not a NamedMpkFileRecorder file)"))?;
        let mut tensors = BTreeMap::new();
        walk(path, bytes, item, String::new(), &mut tensors)?;
        Ok(Self { path: path.to_path_buf(), owner, tensors, model_type: model_type.to_string() })
    }
}

/// The text of a string value.
fn text<'a>(value: &'a ValueRef<'a>) -> Option<&'a str> {
    match value {
        ValueRef::String(s) => s.as_str(),
        _ => None,
    }
}

fn map_get<'a>(value: &'a ValueRef<'a>, key: &str) -> Option<&'a ValueRef<'a>> {
    match value {
        ValueRef::Map(entries) => entries.iter().find(|(k, _)| text(k) == Some(key)).map(|(_, v)| v),
        _ => None,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Collects the parameters under `value` as dotted names.
fn walk(path: &Path, base: &[u8], value: &ValueRef, prefix: String, out: &mut BTreeMap<String, Entry>) -> Result<()> {
    match value {
        ValueRef::Map(entries) => {
            if let (Some(_), Some(param)) = (map_get(value, "id"), map_get(value, "param")) {
                let entry = parse_param(path, base, &prefix, param)?;
                out.insert(prefix, entry);
                return Ok(());
            }
            for (key, child) in entries {
                let key = match key {
                    ValueRef::String(s) => s.as_str().map(str::to_string),
                    ValueRef::Integer(i) => Some(i.to_string()),
                    _ => None,
                }
                .ok_or_else(|| CheckpointError::invalid(path, format!("a key under `{prefix}` is not a name")))?;
                walk(path, base, child, join(&prefix, &key), out)?;
            }
        }
        ValueRef::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(path, base, child, join(&prefix, &i.to_string()), out)?;
            }
        }
        // Constant fields (`nil`) and other plain values are not persisted parameters.
        _ => {}
    }
    Ok(())
}

fn parse_param(path: &Path, base: &[u8], name: &str, param: &ValueRef) -> Result<Entry> {
    let bad = |message: &str| CheckpointError::tensor(path, name, message);
    let Some(ValueRef::Binary(data)) = map_get(param, "bytes") else { return Err(bad("`param.bytes` is not binary")) };
    let shape: Vec<usize> = match map_get(param, "shape") {
        Some(ValueRef::Array(dims)) => dims
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("`param.shape` is not a list of sizes"))?,
        _ => return Err(bad("`param.shape` is missing")),
    };
    let dtype = match map_get(param, "dtype") {
        Some(ValueRef::String(s)) => match s.as_str() {
            Some("F32") => Ok(DType::F32),
            Some("F16") => Ok(DType::F16),
            Some("BF16") => Ok(DType::BF16),
            other => Err(other.unwrap_or("?").to_string()),
        },
        Some(ValueRef::Map(m)) => Err(m.first().and_then(|(k, _)| text(k)).unwrap_or("?").to_string()),
        _ => return Err(bad("`param.dtype` is missing")),
    };
    if let Ok(dtype) = dtype {
        let want = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if want != Some(data.len()) {
            return Err(bad(&format!("{} bytes do not hold {dtype} {shape:?}", data.len())));
        }
    }
    // `data` borrows `base`: its offset locates it for the Bytes window.
    let start = data.as_ptr() as usize - base.as_ptr() as usize;
    Ok(Entry { dtype, shape, range: start..start + data.len() })
}

impl WeightSource for BurnRecord {
    crate::tensor_map::map_lookups!(path);

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        let entry = crate::tensor_map::entry(&self.tensors, name, self)?;
        let dtype = entry.dtype.clone().map_err(|dtype| CheckpointError::UnsupportedDType {
            path: self.path.clone(),
            name: name.to_string(),
            dtype,
        })?;
        let view =
            WeightView::new(name, dtype, entry.shape.clone(), Bytes::new(self.owner.clone(), entry.range.clone()))?;
        if is_linear_weight(&self.model_type, name, &entry.shape) {
            // NOTE: Burn's Row-layout Linear records [in, out]; zoo takes [out, in].
            return view.transposed();
        }
        Ok(view)
    }
}

/// What to write.
pub struct WriteRequest<'a> {
    /// The tensors, by dotted name.
    pub weights: &'a dyn WeightSource,
    /// The model config, written as JSON beside the record (its `model_type` selects the
    /// Linear-weight rule).
    pub config: &'a serde_json::Value,
    /// Float precision of the record.
    pub precision: Precision,
    /// Called with the number of tensor bytes read so far (for progress bars).
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// A tree of names on the way to MessagePack.
enum Node {
    Param(Value),
    Module(BTreeMap<String, Node>),
}

/// Writes a Burn record (`.mpk`, or gzip-compressed when `path` ends in `.gz`) and the config JSON
/// beside it.
pub fn write(path: &Path, request: &WriteRequest) -> Result<()> {
    let model_type = request.config.get("model_type").and_then(|t| t.as_str()).unwrap_or("");
    let source = request.weights.source_name();
    let mut root = BTreeMap::new();
    let mut done = 0u64;
    for (index, name) in request.weights.names().into_iter().enumerate() {
        let view = request.weights.get(&name).map_err(|e| CheckpointError::tensor(&source, &name, e.to_string()))?;
        done += view.data.len() as u64;
        let view = if is_linear_weight(model_type, &name, &view.shape) {
            view.transposed().map_err(|e| CheckpointError::tensor(&source, &name, e.to_string()))?
        } else {
            view
        };
        let (bytes, dtype) = match request.precision {
            Precision::Full => (view.to_f32_vec().iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(), "F32"),
            Precision::Half => {
                (view.to_f32_vec().iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(), "F16")
            }
        };
        let param = Value::Map(vec![
            ("id".into(), Value::from(param_id(index as u64 + 1))),
            (
                "param".into(),
                Value::Map(vec![
                    ("bytes".into(), Value::Binary(bytes)),
                    ("shape".into(), Value::Array(view.shape.iter().map(|&d| Value::from(d as u64)).collect())),
                    ("dtype".into(), Value::from(dtype)),
                ]),
            ),
        ]);
        insert(&mut root, &name, param).map_err(|m| CheckpointError::tensor(&source, &name, m))?;
        if let Some(progress) = request.progress {
            progress(done);
        }
    }
    let (float, int, settings) = match request.precision {
        Precision::Full => ("f32", "i32", "FullPrecisionSettings"),
        Precision::Half => ("half::binary16::f16", "i16", "HalfPrecisionSettings"),
    };
    let gz = path.extension().is_some_and(|e| e == "gz");
    let recorder = if gz { "NamedMpkGzFileRecorder" } else { "NamedMpkFileRecorder" };
    let metadata = Value::Map(vec![
        ("float".into(), float.into()),
        ("int".into(), int.into()),
        (
            "format".into(),
            format!("burn_core::record::file::{recorder}<burn_core::record::settings::{settings}>").into(),
        ),
        ("version".into(), "0.21.0".into()),
        ("settings".into(), settings.into()),
    ]);
    // `_b` is Burn's PhantomData, which rmp-serde writes as an empty array.
    let record = Value::Map(vec![
        ("metadata".into(), metadata),
        ("item".into(), to_value(Node::Module(root))),
        ("_b".into(), Value::Array(Vec::new())),
    ]);
    let io = |e: std::io::Error| CheckpointError::io(path, e);
    let mut encoded = Vec::new();
    rmpv::encode::write_value(&mut encoded, &record).map_err(|e| io(e.into()))?;
    let file = std::io::BufWriter::new(File::create(path).map_err(io)?);
    if gz {
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        gz.write_all(&encoded).map_err(io)?;
        gz.finish().map_err(io)?.flush().map_err(io)?;
    } else {
        let mut file = file;
        file.write_all(&encoded).map_err(io)?;
        file.flush().map_err(io)?;
    }
    let config_file = config_path(path);
    let text = serde_json::to_string_pretty(request.config).unwrap_or_default();
    std::fs::write(&config_file, text + "\n").map_err(|e| CheckpointError::io(&config_file, e))
}

fn insert(node: &mut BTreeMap<String, Node>, name: &str, param: Value) -> std::result::Result<(), String> {
    match name.split_once('.') {
        None => match node.insert(name.to_string(), Node::Param(param)) {
            None => Ok(()),
            Some(_) => Err("is both a parameter and a module".into()),
        },
        Some((head, rest)) => match node.entry(head.to_string()).or_insert_with(|| Node::Module(BTreeMap::new())) {
            Node::Module(child) => insert(child, rest, param),
            Node::Param(_) => Err(format!("`{head}` is both a parameter and a module")),
        },
    }
}

/// A module map, or an array when its keys are exactly `0..n` (a Burn `Vec` of modules).
fn to_value(node: Node) -> Value {
    match node {
        Node::Param(v) => v,
        Node::Module(children) => {
            let mut indexed: Vec<(usize, Node)> = Vec::new();
            let mut named = Vec::new();
            for (key, child) in children {
                match key.parse::<usize>() {
                    Ok(i) if !key.starts_with('+') => indexed.push((i, child)),
                    _ => named.push((key, child)),
                }
            }
            indexed.sort_by_key(|(i, _)| *i);
            if named.is_empty() && !indexed.is_empty() && indexed.iter().enumerate().all(|(n, (i, _))| n == *i) {
                return Value::Array(indexed.into_iter().map(|(_, c)| to_value(c)).collect());
            }
            let mut entries: Vec<(Value, Value)> =
                indexed.into_iter().map(|(i, c)| (Value::from(i.to_string()), to_value(c))).collect();
            entries.extend(named.into_iter().map(|(k, c)| (Value::from(k), to_value(c))));
            Value::Map(entries)
        }
    }
}

/// Burn's `ParamId::serialize`: the u64's little-endian bytes in lowercase base32hex, unpadded
/// (13 characters).
fn param_id(id: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut bits: u128 = u128::from_be_bytes({
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&id.to_le_bytes());
        b
    });
    (0..13)
        .map(|_| {
            let c = ALPHABET[(bits >> 123) as usize];
            bits <<= 5;
            c as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_ids_are_13_base32hex_chars() {
        assert_eq!(param_id(0), "0000000000000");
        // 1u64 LE = 01 00 .. 00: first five bits 00000, next five 00100.
        assert_eq!(param_id(1), "0400000000000");
        assert_eq!(param_id(u64::MAX), "vvvvvvvvvvvvu");
    }

    #[test]
    fn config_lives_beside_the_record() {
        assert_eq!(config_path(Path::new("/a/model.mpk")), Path::new("/a/model.json"));
        assert_eq!(config_path(Path::new("/a/model.mpk.gz")), Path::new("/a/model.json"));
        assert!(is_burn_path(Path::new("x.mpk.gz")) && !is_burn_path(Path::new("x.bin")));
    }

    #[test]
    fn linear_weights_are_recognised_by_name() {
        assert!(is_linear_weight("mistral", "model.layers.0.self_attn.q_proj.weight", &[4, 4]));
        assert!(is_linear_weight("mistral", "lm_head.weight", &[4, 4]));
        assert!(!is_linear_weight("mistral", "model.embed_tokens.weight", &[4, 4]));
        assert!(!is_linear_weight("mistral", "model.norm.weight", &[4]));
        assert!(!is_linear_weight("gpt2", "h.0.attn.c_attn.weight", &[4, 12]));
        assert!(!is_linear_weight("mistral", "model.layers.0.self_attn.q_proj.bias", &[4]));
    }
}
