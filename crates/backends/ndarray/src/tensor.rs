//! The ndarray backend's tensor: f32 values, row-major, either owned or borrowed in place from
//! a checkpoint's memory map; or a weight kept as stored: 16-bit floats (f16, bf16), int8 in
//! groups, or ggml blocks (`Q8_0`, `Q4_0`, `Q4_1`), usually borrowed from the file's map.
//!
//! Such weights stay as stored for `linear` and `embedding`, which widen or dequantise row by
//! row (group by group, block by block) as they go. Any other op reading one gets its values through
//! [`NdTensor::values`], which dequantises the whole tensor once and keeps the result
//! ([`Stored`]).

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use zoo_core::quant;

use crate::half_dot::Half;
use zoo_core::{Bytes, DType, Error, GroupScales, Result, TensorShape};

/// A row-major f32 tensor.
#[derive(Clone)]
pub struct NdTensor {
    storage: Storage,
    shape: Vec<usize>,
}

#[derive(Clone)]
enum Storage {
    /// Computed values. An `Arc<Vec<_>>`, not an `Arc<[_]>`: making the latter from an op's
    /// `Vec` copies every value into a fresh allocation (a prefill's MLP activations are
    /// megabytes, so that was ~8% of a 128-token prefill, page faults included).
    Owned(Arc<Vec<f32>>),
    /// f32 weights used in place: 4-byte aligned, little-endian, checked at construction.
    Mapped(Bytes),
    /// int8 weights with per-group multipliers.
    Int8(Arc<Stored<Int8>>),
    /// ggml block-quantised weights.
    Blocks(Arc<Stored<Blocks>>),
    /// 16-bit float weights.
    Float16(Arc<Stored<Float16>>),
}

/// A weight kept as stored (`W`: 16-bit floats, int8 groups or ggml blocks), and its f32
/// values, made on first use by an op without a path for the stored form.
pub struct Stored<W> {
    stored: W,
    dense: OnceLock<Box<[f32]>>,
}

impl<W: DequantizeRange> Stored<W> {
    fn new(stored: W) -> Self {
        Self { stored, dense: OnceLock::new() }
    }

    /// Whether the whole tensor has not been expanded to f32 (no op without a path for the
    /// stored form read it).
    pub fn dense_is_empty(&self) -> bool {
        self.dense.get().is_none()
    }

    /// All `numel` elements as f32, expanded on the first call.
    fn dense(&self, numel: usize) -> &[f32] {
        self.dense.get_or_init(|| {
            let mut out = Vec::with_capacity(numel);
            self.stored.dequantize_range(0..numel, &mut out);
            out.into()
        })
    }
}

impl<W> Deref for Stored<W> {
    type Target = W;

    fn deref(&self) -> &W {
        &self.stored
    }
}

/// A tensor of 16-bit floats (f16 or bf16), little-endian, kept as stored.
pub struct Float16 {
    /// Which 16-bit float.
    pub kind: Half,
    /// The values' bytes (usually borrowed from the memory map), row-major.
    pub data: Bytes,
    /// The row length when the rows may be interleaved eight at a time for products
    /// ([`crate::half_dot::rows8`]); `None`: always used as stored.
    pub row_len: Option<usize>,
    /// The interleaved copy, made by the first product that reads the weight ([`Float16::rows8`]):
    /// a weight used only for embedding lookups (which read a few rows) is never copied, and
    /// its file pages are never all resident.
    rows8: OnceLock<Bytes>,
}

impl Float16 {
    /// The bytes of elements `range` (flat, row-major), in the file's layout.
    pub fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.data.as_slice()[2 * range.start..2 * range.end]
    }

    /// The rows interleaved eight at a time, made on the first call (the file's pages then
    /// handed back), when this weight's shape allows it on this machine.
    pub fn rows8(&self) -> Option<&Bytes> {
        let k = self.row_len?;
        Some(self.rows8.get_or_init(|| {
            // The file's pages handed back as the copy is made.
            Bytes::from_vec(crate::half_dot::rows8::interleave(&self.data, k))
        }))
    }

    /// The interleaved copy, if a product made it.
    fn rows8_made(&self) -> Option<(&Bytes, usize)> {
        Some((self.rows8.get()?, self.row_len?))
    }
}

/// A tensor of ggml blocks ([`DType::Q8_0`], [`DType::Q4_0`], [`DType::Q4_1`] of
/// [`quant::QK`] elements, or the K-quants' super-blocks of 256): each row (last dimension) is whole blocks.
pub struct Blocks {
    /// Which block layout.
    pub dtype: DType,
    /// The blocks (usually borrowed from the memory map), in the file's order, or for a
    /// `Q4_0`/`Q4_1`/`Q5_0`/`Q8_0` weight whose rows are interleaved ([`Blocks::interleaved`]) in that order.
    pub data: Bytes,
    /// Blocks per row when the rows are interleaved eight at a time
    /// ([`crate::block_dot::rows8`]); `None`: as the file stores them.
    pub interleaved: Option<usize>,
}

impl Blocks {
    /// The bytes of blocks `range` (block indices, row-major), for blocks in the file's order
    /// (interleaved data is read through [`crate::block_dot::rows8`]).
    pub fn block_bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        let size = self.dtype.block_bytes();
        &self.data.as_slice()[range.start * size..range.end * size]
    }

    /// Dequantises elements `range` (flat, row-major, on block boundaries) into `out`.
    pub fn dequantize_into(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let block = self.dtype.block_size();
        let blocks = range.start / block..range.end / block;
        match self.interleaved {
            Some(row_blocks) => {
                crate::block_dot::rows8::dequantize(self.dtype, self.data.as_slice(), row_blocks, blocks, out)
            }
            None => {
                quant::dequantize(self.dtype, self.block_bytes(blocks), out);
            }
        }
    }
}

/// An int8 tensor: element `i` is `q[i] · scales[i / group_size]`.
pub struct Int8 {
    /// The int8 values (usually borrowed from the memory map).
    pub q: Bytes,
    /// One multiplier per group.
    pub scales: Arc<[f32]>,
    /// Elements per group.
    pub group_size: usize,
}

impl Int8 {
    /// The int8 values as `i8`.
    pub fn q(&self) -> &[i8] {
        let raw = self.q.as_slice();
        // SAFETY: i8 and u8 have the same size and alignment, and every bit pattern is valid.
        unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<i8>(), raw.len()) }
    }

    /// Dequantises elements `range` (flat, row-major) into `out`.
    pub fn dequantize_into(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let q = self.q();
        out.extend(range.map(|i| f32::from(q[i]) * self.scales[i / self.group_size]));
    }
}

impl NdTensor {
    /// Owns `values` under `shape`.
    pub fn new(values: Vec<f32>, shape: Vec<usize>) -> Result<Self> {
        check_len(values.len(), &shape, "tensor")?;
        Ok(Self { storage: Storage::Owned(Arc::new(values)), shape })
    }

    /// Uses f32 bytes in place when they are aligned; `None` otherwise.
    pub fn mapped(bytes: Bytes, shape: Vec<usize>) -> Option<Self> {
        let ok = cfg!(target_endian = "little")
            && bytes.as_slice().as_ptr().align_offset(std::mem::align_of::<f32>()) == 0
            && bytes.len() == 4 * shape.iter().product::<usize>();
        ok.then_some(Self { storage: Storage::Mapped(bytes), shape })
    }

    /// Keeps int8 data as int8 with its group multipliers.
    pub fn quantized(q: Bytes, scales: &GroupScales, shape: Vec<usize>) -> Result<Self> {
        let numel: usize = shape.iter().product();
        let group_size = scales.group_size;
        if q.len() != numel || group_size == 0 || scales.scales.len() * group_size != numel {
            return Err(misshapen("int8 weight", format!("{numel} int8 values in groups of {group_size}"), shape));
        }
        Ok(Self::stored(Storage::Int8, Int8 { q, scales: scales.scales.clone(), group_size }, shape))
    }

    /// Keeps ggml blocks as blocks; rows (the last dimension) must be whole blocks.
    pub fn blocks(dtype: DType, data: Bytes, shape: Vec<usize>) -> Result<Self> {
        let numel: usize = shape.iter().product();
        let row = shape.last().copied().unwrap_or(1);
        if !dtype.is_block_quantized() || row % dtype.block_size() != 0 || dtype.bytes_for(numel) != Some(data.len()) {
            let expected = format!("{numel} {dtype} elements in rows of whole blocks ({} bytes)", data.len());
            return Err(misshapen("block-quantised weight", expected, shape));
        }
        let rows = numel / row.max(1);
        if crate::block_dot::rows8::applies(dtype, rows) {
            let row_blocks = row / dtype.block_size();
            let mixed = Bytes::from_vec(crate::block_dot::rows8::interleave(dtype, data.as_slice(), row_blocks));
            data.release_pages(); // the copy replaces the file's pages (resident memory stays the file's size)
            let blocks = Blocks { dtype, data: mixed, interleaved: Some(row_blocks) };
            return Ok(Self::stored(Storage::Blocks, blocks, shape));
        }
        Ok(Self::stored(Storage::Blocks, Blocks { dtype, data, interleaved: None }, shape))
    }

    /// Keeps 16-bit floats (`dtype` F16 or BF16) as stored.
    pub fn float16(dtype: DType, data: Bytes, shape: Vec<usize>) -> Result<Self> {
        let numel: usize = shape.iter().product();
        let Some(kind) = Half::of(dtype).filter(|_| data.len() == 2 * numel) else {
            return Err(misshapen("16-bit weight", format!("{numel} {dtype} elements ({} bytes)", data.len()), shape));
        };
        let (rows, k) = (numel / shape.last().copied().unwrap_or(1).max(1), shape.last().copied().unwrap_or(0));
        let row_len = (shape.len() == 2 && crate::half_dot::rows8::applies(rows, k)).then_some(k);
        Ok(Self::stored(Storage::Float16, Float16 { kind, data, row_len, rows8: OnceLock::new() }, shape))
    }

    /// `weight` under `shape`, kept as stored in the storage `wrap` makes.
    fn stored<W: DequantizeRange>(wrap: fn(Arc<Stored<W>>) -> Storage, weight: W, shape: Vec<usize>) -> Self {
        Self { storage: wrap(Arc::new(Stored::new(weight))), shape }
    }

    /// The 16-bit data, when this tensor holds 16-bit floats.
    pub fn float16_data(&self) -> Option<&Stored<Float16>> {
        match &self.storage {
            Storage::Float16(h) => Some(h),
            _ => None,
        }
    }

    /// The weight as stored, when it is not f32 (16-bit floats, int8 groups, ggml blocks): ops
    /// with a row path read it a range at a time instead of widening all of it.
    pub fn compressed(&self) -> Option<&dyn DequantizeRange> {
        match &self.storage {
            Storage::Float16(h) => Some(&h.stored),
            Storage::Int8(q) => Some(&q.stored),
            Storage::Blocks(b) => Some(&b.stored),
            Storage::Owned(_) | Storage::Mapped(_) => None,
        }
    }

    /// The blocks, when this tensor is block-quantised.
    pub fn quant_blocks(&self) -> Option<&Stored<Blocks>> {
        match &self.storage {
            Storage::Blocks(b) => Some(b),
            _ => None,
        }
    }

    /// The int8 data, when this tensor is quantised.
    pub fn int8(&self) -> Option<&Stored<Int8>> {
        match &self.storage {
            Storage::Int8(q) => Some(q),
            _ => None,
        }
    }

    /// Whether the values are borrowed from a memory map rather than owned.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    /// The values, row-major (a quantised tensor is dequantised once, on first call).
    pub fn values(&self) -> &[f32] {
        match &self.storage {
            Storage::Owned(values) => values,
            // The constructors checked that the data holds exactly the shape's elements.
            Storage::Int8(int8) => int8.dense(self.numel()),
            Storage::Blocks(blocks) => blocks.dense(self.numel()),
            Storage::Float16(h) => h.dense(self.numel()),
            Storage::Mapped(bytes) => {
                let raw = bytes.as_slice();
                // SAFETY: `mapped` checked alignment and length; every bit pattern is a valid f32.
                unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<f32>(), raw.len() / 4) }
            }
        }
    }

    /// The same values under another shape with as many elements.
    pub fn with_shape(&self, shape: Vec<usize>) -> Result<Self> {
        check_len(self.shape.iter().product(), &shape, "reshape")?;
        Ok(Self { storage: self.storage.clone(), shape })
    }

    /// `(rows, cols)` of a 2-D tensor, or a shape error naming `op`.
    pub fn dims2(&self, op: &'static str) -> Result<(usize, usize)> {
        zoo_core::checks::dims2(&self.shape, op)
    }

    /// The shape as an owned vector (for error messages).
    pub fn shape_vec(&self) -> Vec<usize> {
        self.shape.clone()
    }

    /// Number of elements.
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the last dimension (1 for a scalar).
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
}

impl TensorShape for NdTensor {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

fn check_len(len: usize, shape: &[usize], op: &'static str) -> Result<()> {
    if shape.iter().product::<usize>() != len {
        return Err(misshapen(op, format!("{len} elements"), shape.to_vec()));
    }
    Ok(())
}

/// The error of `op`'s data, which does not fit `shape`: it `expected` something else.
fn misshapen(op: &'static str, expected: String, shape: Vec<usize>) -> Error {
    Error::Shape { op, expected, got: shape }
}

/// A quantised weight whose elements can be expanded to f32 a range at a time (the GEMM path
/// dequantises tiles of rows through it).
pub trait DequantizeRange: Sync {
    /// Appends elements `range` (flat, row-major) as f32 to `out`.
    fn dequantize_range(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>);
}

impl<W: DequantizeRange> DequantizeRange for Stored<W> {
    #[inline]
    fn dequantize_range(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        self.stored.dequantize_range(range, out)
    }
}

impl DequantizeRange for Blocks {
    fn dequantize_range(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        self.dequantize_into(range, out)
    }
}

impl DequantizeRange for Float16 {
    fn dequantize_range(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        match self.rows8_made() {
            // Ranges of whole rows (the callers': GEMM tiles, embedding rows, the whole tensor),
            // from the interleaved copy once a product made it (the file's pages are gone).
            Some((mixed, k)) => {
                crate::half_dot::rows8::widen_rows(self.kind, mixed.as_slice(), k, range.start / k..range.end / k, out)
            }
            None => self.kind.widen_into(self.bytes(range), out),
        }
    }
}

impl DequantizeRange for Int8 {
    fn dequantize_range(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        self.dequantize_into(range, out)
    }
}
