//! The ndarray backend's tensor: f32 values, row-major, either owned or borrowed in place from
//! a checkpoint's memory map.

use std::sync::Arc;

use zoo_core::{Bytes, Error, Result, TensorShape};

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

    /// Whether the values are borrowed from a memory map rather than owned.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        match &self.storage {
            Storage::Owned(values) => values,
            Storage::Mapped(bytes) => {
                let raw = bytes.as_slice();
                // SAFETY: `mapped` checked alignment and length; every bit pattern is a valid f32.
                unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<f32>(), raw.len() / 4) }
            }
        }
    }

    /// The same values under another shape with as many elements.
    pub fn with_shape(&self, shape: Vec<usize>) -> Result<Self> {
        check_len(self.values().len(), &shape, "reshape")?;
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
