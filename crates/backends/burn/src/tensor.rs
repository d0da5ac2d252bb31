//! A Burn tensor with zoo's shape: Burn ranks are static, so every tensor is held as a rank-2
//! Burn tensor (`[rows, last dimension]`) next to its zoo shape.

use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::Tensor;
use zoo_core::{Error, Result, TensorShape};

/// A zoo tensor on a Burn device.
#[derive(Clone, Debug)]
pub struct BurnTensor<BB: BurnBackend> {
    /// The values as `[product of leading dims, last dim]`.
    pub(crate) t: Tensor<BB, 2>,
    shape: Vec<usize>,
    /// Each row's argmax (index, value), when whoever made these logits picked it already (a
    /// replayed decode step does, inside its CUDA graph).
    pub(crate) picks: Option<std::sync::Arc<Vec<(u32, f32)>>>,
}

impl<BB: BurnBackend> BurnTensor<BB> {
    /// Wraps a rank-2 Burn tensor whose zoo shape is its own.
    pub(crate) fn matrix(t: Tensor<BB, 2>) -> Self {
        let shape = t.dims().to_vec();
        Self { t, shape, picks: None }
    }

    /// Wraps `t` under zoo shape `shape` (same number of elements, same last dimension).
    pub(crate) fn with_shape(t: Tensor<BB, 2>, shape: Vec<usize>) -> Result<Self> {
        let [rows, cols] = t.dims();
        if rows * cols != shape.iter().product::<usize>() {
            return Err(Error::Shape { op: "burn tensor", expected: format!("{} elements", rows * cols), got: shape });
        }
        Ok(Self { t, shape, picks: None })
    }

    /// The Burn tensor, `[product of leading dims, last dim]` (a trainer's loss reads the
    /// logits through it).
    pub fn burn(&self) -> &Tensor<BB, 2> {
        &self.t
    }

    /// `[rows, cols]` of a 2-D zoo tensor, or a shape error naming `op`.
    pub(crate) fn dims2(&self, op: &'static str) -> Result<(usize, usize)> {
        zoo_core::checks::dims2(&self.shape, op)
    }

    /// The 2-D layout `[rows, cols]` for a zoo shape (a vector is one row).
    pub(crate) fn layout(shape: &[usize]) -> [usize; 2] {
        let cols = shape.last().copied().unwrap_or(1);
        let rows = shape[..shape.len().saturating_sub(1)].iter().product::<usize>();
        [rows, cols]
    }
}

impl<BB: BurnBackend> TensorShape for BurnTensor<BB> {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}
