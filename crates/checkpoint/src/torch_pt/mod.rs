//! PyTorch `torch.save` checkpoints (the zip format of PyTorch ≥ 1.6), read without Python.
//!
//! A `.pt` file is a zip archive: `<archive>/data.pkl` pickles the saved object, and each tensor
//! storage is a separate entry `<archive>/data/<key>`. The file is memory-mapped, the zip
//! directory gives each storage's byte range ([`zip`]), and a small pickle machine ([`pickle`])
//! rebuilds the state dict's structure. Tensors borrow their storage's bytes: nothing is copied.
//!
//! Understood: a dict or `OrderedDict` from names to tensors saved by
//! `torch._utils._rebuild_tensor_v2` (or wrapped in `_rebuild_parameter`), on float32, float16 or
//! bfloat16 storages. Entries that are not tensors are ignored. A `_orig_mod.` prefix
//! (`torch.compile`) is stripped from names. Tensors of other dtypes and non-contiguous views are
//! listed but fail on [`WeightSource::get`], naming the tensor; corrupt files fail to open.

pub mod pickle;
pub mod zip;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use zoo_core::{Bytes, DType, WeightSource, WeightView};

use crate::error::{CheckpointError, Result};
use pickle::Value;

/// Prefix `torch.compile` puts on every parameter name.
const COMPILE_PREFIX: &str = "_orig_mod.";

/// A memory-mapped `torch.save` file seen as named tensors.
pub struct TorchPt {
    path: PathBuf,
    mmap: Arc<Mmap>,
    tensors: BTreeMap<String, Tensor>,
}

/// What the file says about one tensor.
struct Tensor {
    /// The storage class name (`FloatStorage`, ...).
    storage: String,
    dtype: Option<DType>,
    shape: Vec<usize>,
    stride: Vec<usize>,
    /// The tensor's bytes in the file, when its element size is known and it is contiguous.
    range: Option<Range<usize>>,
}

/// A storage's element type: zoo's dtype if it reads it, and the element size if known.
fn storage_type(class: &str) -> (Option<DType>, Option<usize>) {
    match class {
        "FloatStorage" => (Some(DType::F32), Some(4)),
        "HalfStorage" => (Some(DType::F16), Some(2)),
        "BFloat16Storage" => (Some(DType::BF16), Some(2)),
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => (None, Some(8)),
        "IntStorage" => (None, Some(4)),
        "ShortStorage" => (None, Some(2)),
        "CharStorage" | "ByteStorage" | "BoolStorage" => (None, Some(1)),
        "ComplexDoubleStorage" => (None, Some(16)),
        _ => (None, None),
    }
}

/// The torch dtype a storage class holds, for messages.
fn torch_dtype(class: &str) -> &str {
    match class {
        "DoubleStorage" => "float64",
        "LongStorage" => "int64",
        "IntStorage" => "int32",
        "ShortStorage" => "int16",
        "CharStorage" => "int8",
        "ByteStorage" => "uint8",
        "BoolStorage" => "bool",
        "ComplexFloatStorage" => "complex64",
        "ComplexDoubleStorage" => "complex128",
        other => other,
    }
}

impl TorchPt {
    /// Opens a `.pt` file written by `torch.save` and checks every tensor against its storage.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        // SAFETY: the map is read-only; zoo never writes to checkpoint files while they are open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
        let invalid = |message: String| CheckpointError::invalid(path, message);
        if !mmap.starts_with(b"PK") {
            return Err(invalid(
                "not a PyTorch zip archive (the legacy format of PyTorch < 1.6 is not supported)".into(),
            ));
        }
        let entries = zip::entries(&mmap).map_err(|e| invalid(format!("bad zip archive: {e}")))?;
        let entries: HashMap<&str, &zip::Entry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
        let pkl_name = entries
            .keys()
            .copied()
            .filter(|name| name.ends_with("/data.pkl") && name.matches('/').count() == 1)
            .min()
            .ok_or_else(|| invalid("no `<archive>/data.pkl` entry: not a torch.save file".into()))?;
        let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
        // The byte range of a stored entry, or why there is none.
        let stored = |name: &str| -> std::result::Result<Range<usize>, String> {
            let entry = entries.get(name).ok_or_else(|| format!("no `{name}` entry"))?;
            if entry.method != zip::STORED {
                return Err(format!("entry `{name}` is compressed; torch.save stores entries uncompressed"));
            }
            Ok(entry.data.clone())
        };
        let byteorder = format!("{prefix}byteorder");
        if entries.contains_key(byteorder.as_str()) {
            let order = &mmap[stored(&byteorder).map_err(invalid)?];
            if order != b"little" {
                let order = String::from_utf8_lossy(order);
                return Err(invalid(format!("byte order `{order}` is not supported (only little-endian)")));
            }
        }
        let program = &mmap[stored(pkl_name).map_err(invalid)?];
        let root = pickle::load(program).map_err(|e| invalid(format!("{pkl_name}: {e}")))?;
        let Value::Dict(items) = &root else {
            return Err(invalid(format!("{pkl_name} holds a {}, not a state dict", root.kind())));
        };
        let mut tensors = BTreeMap::new();
        let mut raw_keys = HashMap::new();
        for (key, value) in items.iter() {
            let Some(record) = tensor_record(value) else { continue };
            let Value::Str(key) = key else {
                return Err(invalid(format!("a tensor has a {} key, not a name", key.kind())));
            };
            let name = key.strip_prefix(COMPILE_PREFIX).unwrap_or(key).to_string();
            let record = record.map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
            let storage_range = stored(&format!("{prefix}data/{}", record.key))
                .map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
            let tensor = locate(record, storage_range).map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
            // A key set twice keeps its last value, as in Python; two keys that differ only by
            // the compile prefix are ambiguous.
            if let Some(previous) = raw_keys.insert(name.clone(), key.clone()) {
                if previous != *key {
                    return Err(invalid(format!("both `{previous}` and `{key}` name tensor `{name}`")));
                }
            }
            tensors.insert(name, tensor);
        }
        Ok(Self { path: path.to_path_buf(), mmap: Arc::new(mmap), tensors })
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// The arguments of one `_rebuild_tensor_v2` call.
struct Record {
    class: String,
    key: String,
    /// Elements in the storage, as the persistent id says.
    numel: usize,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// `None` when `value` is not a tensor; otherwise the tensor's record or what is wrong with it.
fn tensor_record(value: &Value) -> Option<std::result::Result<Record, String>> {
    let Value::Call(call) = value else { return None };
    let Value::Tuple(args) = &call.args else { return None };
    match call.callable.as_global()? {
        ("torch._utils", "_rebuild_tensor_v2") => Some(rebuild_tensor_v2(args)),
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            tensor_record(args.first()?).or_else(|| Some(Err("a parameter whose data is not a tensor".into())))
        }
        ("torch._utils", other) if other.starts_with("_rebuild") => {
            Some(Err(format!("`torch._utils.{other}` tensors (quantized, sparse, ...) are not supported")))
        }
        _ => None,
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
fn rebuild_tensor_v2(args: &[Value]) -> std::result::Result<Record, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!("_rebuild_tensor_v2 takes at least 4 arguments, got {}", args.len()));
    };
    // The persistent id: ('storage', torch.<X>Storage, key, location, numel).
    let Value::PersistentId(pid) = storage else {
        return Err(format!("storage is a {}, not a persistent id", storage.kind()));
    };
    let Value::Tuple(pid) = pid.as_ref() else { return Err("storage id is not a tuple".into()) };
    let [Value::Str(tag), class, Value::Str(key), _location, numel] = &pid[..] else {
        return Err("storage id is not ('storage', class, key, location, numel)".into());
    };
    if tag.as_ref() != "storage" {
        return Err(format!("unknown persistent id `{tag}`"));
    }
    let class = match class.as_global() {
        Some(("torch", name)) => name.to_string(),
        _ => return Err(format!("storage class is a {}, not a torch storage type", class.kind())),
    };
    Ok(Record {
        class,
        key: key.to_string(),
        numel: index(numel, "storage size")?,
        offset: index(offset, "storage offset")?,
        shape: indices(size, "size")?,
        stride: indices(stride, "stride")?,
    })
}

fn index(value: &Value, what: &str) -> std::result::Result<usize, String> {
    match value {
        Value::Int(i) => usize::try_from(*i).map_err(|_| format!("{what} {i} is negative or too large")),
        other => Err(format!("{what} is a {}, not an integer", other.kind())),
    }
}

fn indices(value: &Value, what: &str) -> std::result::Result<Vec<usize>, String> {
    match value {
        Value::Tuple(items) => items.iter().map(|v| index(v, what)).collect(),
        other => Err(format!("{what} is a {}, not a tuple", other.kind())),
    }
}

/// Places a tensor in its storage's bytes, checking it stays inside.
fn locate(record: Record, storage: Range<usize>) -> std::result::Result<Tensor, String> {
    let (dtype, element) = storage_type(&record.class);
    if record.shape.len() != record.stride.len() {
        return Err(format!("size {:?} and stride {:?} differ in length", record.shape, record.stride));
    }
    let range = match element {
        None => None,
        Some(element) => {
            let overflow = || "size overflows".to_string();
            let declared = record.numel.checked_mul(element).ok_or_else(overflow)?;
            if declared > storage.len() {
                return Err(format!(
                    "storage `{}` should hold {declared} bytes but its entry has {}",
                    record.key,
                    storage.len()
                ));
            }
            let numel = record.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(overflow)?;
            // The furthest element a strided view touches bounds it, contiguous or not.
            let last = record
                .shape
                .iter()
                .zip(&record.stride)
                .try_fold(0usize, |acc, (&d, &s)| acc.checked_add(d.saturating_sub(1).checked_mul(s)?))
                .ok_or_else(overflow)?;
            let extent = if numel == 0 { 0 } else { last.checked_add(1).ok_or_else(overflow)? };
            let end = record.offset.checked_add(extent).ok_or_else(overflow)?;
            if end > record.numel {
                return Err(format!(
                    "extends beyond its storage `{}`: elements {}..{end} of {} (shape {:?}, stride {:?})",
                    record.key, record.offset, record.numel, record.shape, record.stride
                ));
            }
            // Only contiguous tensors get a byte range; `get` explains why the others have none.
            let start = storage.start + record.offset * element;
            is_contiguous(&record.shape, &record.stride).then(|| start..start + numel * element)
        }
    };
    Ok(Tensor { storage: record.class, dtype, shape: record.shape, stride: record.stride, range })
}

/// Whether `stride` is row-major for `shape` (dimensions of size 1 may have any stride).
fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

impl WeightSource for TorchPt {
    crate::tensor_map::map_lookups!(path);

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        let tensor = crate::tensor_map::entry(&self.tensors, name, self)?;
        let Some(dtype) = tensor.dtype else {
            return Err(CheckpointError::UnsupportedDType {
                path: self.path.clone(),
                name: name.to_string(),
                dtype: format!("{} (torch.{})", torch_dtype(&tensor.storage), tensor.storage),
            }
            .into());
        };
        let Some(range) = tensor.range.clone() else {
            let message = format!(
                "tensor `{name}` is not contiguous (shape {:?}, stride {:?}); save it with `.contiguous()`",
                tensor.shape, tensor.stride
            );
            return Err(CheckpointError::invalid(&self.path, message).into());
        };
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = self.mmap.clone();
        WeightView::new(name, dtype, tensor.shape.clone(), Bytes::new(owner, range))
    }
}

#[cfg(test)]
mod tests {
    use super::is_contiguous;

    #[test]
    fn contiguity() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[], &[]));
        assert!(is_contiguous(&[1, 3], &[99, 1]));
        assert!(is_contiguous(&[0, 3], &[1, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(!is_contiguous(&[3, 2], &[1, 3]));
    }
}
