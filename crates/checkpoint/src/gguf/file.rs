//! Parsing a GGUF file's layout: header, metadata, tensor infos and the aligned data section,
//! every read bounds-checked against the file.
//!
//! ```text
//! "GGUF" | u32 version (2, 3) | u64 tensor_count | u64 kv_count
//! kv_count × (string key | u32 value_type | value)          string = u64 len | UTF-8 bytes
//! tensor_count × (string name | u32 n_dims | n_dims × u64 ne | u32 type | u64 offset)
//! padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
//! ```
//!
//! `ne[0]` is the fastest-varying dimension (the reverse of PyTorch's shape). Nothing is
//! allocated from a count in the file before the bytes it claims are known to exist, so a
//! corrupt count is an error, never an allocation failure.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::tensor_type::TensorType;
use super::value::Value;
use crate::error::{CheckpointError, Result};

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays nest at most this deep (GGUF allows nesting; real files use one level).
const MAX_NESTING: usize = 4;

/// One tensor's description.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// Its name in the file (`blk.0.attn_q.weight`).
    pub name: String,
    /// `ne`: dimensions, fastest-varying first.
    pub ne: Vec<usize>,
    /// Its type.
    pub ty: TensorType,
    /// Where its bytes are in the file.
    pub range: Range<usize>,
}

impl TensorInfo {
    /// The PyTorch-order shape (outermost dimension first).
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().copied().collect()
    }
}

/// A parsed GGUF layout (the bytes themselves stay with the caller).
#[derive(Debug)]
pub struct Layout {
    /// Format version.
    pub version: u32,
    /// Metadata, by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensors, in file order.
    pub tensors: Vec<TensorInfo>,
}

/// Parses the layout of `bytes`, the whole file at `path` (named in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Layout> {
    let mut r = Reader { path, bytes, pos: 0 };
    let magic = r.take(4, "the magic number")?;
    if magic != MAGIC {
        return Err(r.invalid(format!("not a GGUF file (starts with {magic:02x?}, expected \"GGUF\")")));
    }
    let version = r.u32("the version")?;
    if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
        return Err(r.invalid("big-endian GGUF files are not supported"));
    }
    if !(2..=3).contains(&version) {
        return Err(r.invalid(format!("GGUF version {version} is not supported (2 or 3)")));
    }
    let tensor_count = r.u64("the tensor count")?;
    let kv_count = r.u64("the metadata count")?;
    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = r.string(&format!("the key of metadata entry {i}"))?;
        let ty = r.u32(&format!("the type of `{key}`"))?;
        let value = r.value(ty, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(r.invalid(format!("metadata key `{key}` appears twice")));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 30 => a as usize,
            _ => return Err(r.invalid(format!("general.alignment {v:?} is not a power of two"))),
        },
    };
    let mut infos = Vec::new();
    for i in 0..tensor_count {
        infos.push(r.tensor_info(i)?);
    }
    // A file without tensors (a vocabulary-only GGUF) may end right after its metadata.
    let data_start = r.pos.div_ceil(alignment).checked_mul(alignment).filter(|&s| s <= bytes.len() || infos.is_empty());
    let data_start = data_start.ok_or_else(|| r.invalid("the file ends before its tensor data begins"))?;
    let mut tensors = Vec::with_capacity(infos.len());
    let mut seen = std::collections::BTreeSet::new();
    for (name, ne, ty, offset) in infos {
        if !seen.insert(name.clone()) {
            return Err(r.invalid(format!("tensor `{name}` appears twice")));
        }
        let range = tensor_range(&name, &ne, ty, offset, alignment, data_start, bytes.len())
            .map_err(|message| r.invalid(format!("tensor `{name}`: {message}")))?;
        tensors.push(TensorInfo { name, ne, ty, range });
    }
    crate::limits::check_disjoint(path, tensors.iter().map(|t| (t.range.clone(), t.name.as_str())).collect())?;
    Ok(Layout { version, metadata, tensors })
}

/// Where a tensor's bytes are, or why they cannot be.
fn tensor_range(
    name: &str,
    ne: &[usize],
    ty: TensorType,
    offset: u64,
    alignment: usize,
    data_start: usize,
    file_len: usize,
) -> Result<Range<usize>, String> {
    let numel = ne.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or("its element count overflows")?;
    if ne.first().is_some_and(|&row| row % ty.block != 0) {
        return Err(format!("rows of {} elements are not whole {ty} blocks of {}", ne[0], ty.block));
    }
    let size = ty.bytes_for(numel).ok_or("its byte size overflows")?;
    let offset = usize::try_from(offset).map_err(|_| format!("offset {offset} is out of range"))?;
    if offset % alignment != 0 {
        return Err(format!("offset {offset} is not a multiple of the alignment {alignment}"));
    }
    let start = data_start.checked_add(offset).ok_or("its offset overflows")?;
    let end = start.checked_add(size).filter(|&e| e <= file_len).ok_or_else(|| {
        format!("its {size} bytes at data offset {offset} run past the end of the file ({file_len} bytes; `{name}`)")
    })?;
    Ok(start..end)
}

/// A bounds-checked little-endian cursor over the file.
struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn invalid(&self, message: impl Into<String>) -> CheckpointError {
        CheckpointError::invalid(PathBuf::from(self.path), message)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes, or an error saying the file is truncated while reading `what`.
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.invalid(format!(
                "truncated: {what} needs {n} bytes at offset {}, but the file has {} bytes",
                self.pos,
                self.bytes.len()
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length that must fit in what is left of the file at `min_size` bytes per item.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().filter(|&n| n.saturating_mul(min_size) <= self.remaining());
        fits.ok_or_else(|| {
            self.invalid(format!(
                "truncated or corrupt: {what} is {n}, more than the {} bytes left in the file can hold",
                self.remaining()
            ))
        })
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(1, &format!("the length of {what}"))?;
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(key)?[0]),
            1 => Value::I8(self.array::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.invalid(format!("metadata `{key}`: bool byte {b} is neither 0 nor 1"))),
            },
            8 => Value::String(self.string(&format!("metadata `{key}`"))?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(self.invalid(format!("metadata `{key}`: arrays nested more than {MAX_NESTING} deep")));
                }
                let elem = self.u32(&format!("the element type of `{key}`"))?;
                let min_size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    _ => return Err(self.unknown_type(elem, key)),
                };
                let n = self.count(min_size, &format!("the length of array `{key}`"))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            _ => return Err(self.unknown_type(ty, key)),
        })
    }

    fn unknown_type(&self, ty: u32, key: &str) -> CheckpointError {
        self.invalid(format!("metadata `{key}` has unknown value type {ty}"))
    }

    /// One tensor info: (name, ne, type, offset).
    fn tensor_info(&mut self, i: u64) -> Result<(String, Vec<usize>, TensorType, u64)> {
        let name = self.string(&format!("the name of tensor {i}"))?;
        let n_dims = self.u32(&format!("the rank of tensor `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(self.invalid(format!("tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = self.u64(&format!("the shape of tensor `{name}`"))?;
            let d = usize::try_from(d)
                .map_err(|_| self.invalid(format!("tensor `{name}` has a dimension of {d}, out of range")))?;
            ne.push(d);
        }
        let id = self.u32(&format!("the type of tensor `{name}`"))?;
        let ty = TensorType::from_id(id)
            .ok_or_else(|| self.invalid(format!("tensor `{name}` has unknown ggml type {id}")))?;
        let offset = self.u64(&format!("the offset of tensor `{name}`"))?;
        Ok((name, ne, ty, offset))
    }
}
