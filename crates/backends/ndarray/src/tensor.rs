//! The ndarray backend's tensor: f32 values, row-major, either owned or borrowed in place from
//! a checkpoint's memory map; or an int8 weight quantised in groups, kept as int8.
//!
//! int8 weights stay int8 for `linear` and `embedding`, which dequantise group by group as they
//! go (a quarter of the f32 memory). Any other op reading an int8 tensor gets its values through
//! [`NdTensor::values`], which dequantises the whole tensor once and keeps the result.

use std::sync::{Arc, OnceLock};

use zoo_core::{Bytes, Error, GroupScales, Result, TensorShape};

/// A row-major f32 tensor.
#[derive(Clone)]
pub struct NdTensor {
    storage: Storage,
    shape: Vec<usize>,
}

#[derive(Clone)]
enum Storage {
    /// Computed values.
    Owned(Arc<[f32]>),
    /// f32 weights used in place: 4-byte aligned, little-endian, checked at construction.
    Mapped(Bytes),
    /// int8 weights with per-group multipliers.
    Int8(Arc<Int8>),
}

/// An int8 tensor: element `i` is `q[i] · scales[i / group_size]`.
pub struct Int8 {
    /// The int8 values (usually borrowed from the memory map).
    pub q: Bytes,
    /// One multiplier per group.
    pub scales: Arc<[f32]>,
    /// Elements per group.
    pub group_size: usize,
    /// The dequantised values, made on first use by an op without an int8 path.
    dense: OnceLock<Box<[f32]>>,
}

impl Int8 {
    /// The int8 values as `i8`.
    pub fn q(&self) -> &[i8] {
        let raw = self.q.as_slice();
        // SAFETY: i8 and u8 have the same size and alignment, and every bit pattern is valid.
        unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<i8>(), raw.len()) }
    }

    /// Whether the whole tensor has not been dequantised (no op without an int8 path read it).
    pub fn dense_is_empty(&self) -> bool {
        self.dense.get().is_none()
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
        Ok(Self { storage: Storage::Owned(values.into()), shape })
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
            return Err(Error::Shape {
                op: "int8 weight",
                expected: format!("{numel} int8 values in groups of {group_size}"),
                got: shape,
            });
        }
        let int8 = Int8 { q, scales: scales.scales.clone(), group_size, dense: OnceLock::new() };
        Ok(Self { storage: Storage::Int8(Arc::new(int8)), shape })
    }

    /// The int8 data, when this tensor is quantised.
    pub fn int8(&self) -> Option<&Int8> {
        match &self.storage {
            Storage::Int8(q) => Some(q),
            _ => None,
        }
    }

    /// Whether the values are borrowed from a memory map rather than owned.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    /// The values, row-major (an int8 tensor is dequantised once, on first call).
    pub fn values(&self) -> &[f32] {
        match &self.storage {
            Storage::Owned(values) => values,
            Storage::Int8(int8) => int8.dense.get_or_init(|| {
                let mut out = Vec::with_capacity(int8.q.len());
                int8.dequantize_into(0..int8.q.len(), &mut out);
                out.into()
            }),
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
        match self.shape[..] {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::Shape { op, expected: "a 2-D tensor".into(), got: self.shape.clone() }),
        }
    }

    /// The shape as an owned vector (for error messages).
    pub fn shape_vec(&self) -> Vec<usize> {
        self.shape.clone()
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
        return Err(Error::Shape { op, expected: format!("{len} elements"), got: shape.to_vec() });
    }
    Ok(())
}
