//! Rotary embeddings with Burn ops: one broadcast multiply-add over `[rows, heads, head_dim]`
//! with the rows' `cos`/`sin` (from the step's cached table rows, or computed from host
//! positions for a lone `rope` call).

use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{Tensor, TensorData};
use zoo_core::{Result, RopeSpec};

use crate::tensor::BurnTensor;

/// Checks `x` against `spec` and `rows` positions: `(rows, cols)`.
pub(crate) fn check<BB: BurnBackend>(x: &BurnTensor<BB>, rows: usize, spec: &RopeSpec) -> Result<(usize, usize)> {
    zoo_core::checks::rope(zoo_core::TensorShape::shape(x), rows, spec)
}

/// RoPE at host `positions`: the angles of each row computed here, then [`rotate`].
pub(crate) fn rope<BB: BurnBackend>(
    x: &BurnTensor<BB>,
    positions: &[usize],
    spec: &RopeSpec,
) -> Result<BurnTensor<BB>> {
    let (rows, _) = check(x, positions.len(), spec)?;
    let half = spec.head_dim / 2;
    let (cos, sin) = spec.angles(positions.iter().copied());
    let opts = (&x.t.device(), x.t.dtype());
    let cos = Tensor::<BB, 2>::from_data(TensorData::new(cos, [rows, half]), opts);
    let sin = Tensor::<BB, 2>::from_data(TensorData::new(sin, [rows, half]), opts);
    rotate(x, cos, sin, spec)
}

/// Rotates each head of `x: [rows, heads·head_dim]` by its row of `cos, sin: [rows, half]`.
pub(crate) fn rotate<BB: BurnBackend>(
    x: &BurnTensor<BB>,
    cos: Tensor<BB, 2>,
    sin: Tensor<BB, 2>,
    spec: &RopeSpec,
) -> Result<BurnTensor<BB>> {
    let (rows, cols) = check(x, cos.dims()[0], spec)?;
    let d = spec.head_dim;
    let (half, heads) = (d / 2, cols / d);
    let cos: Tensor<BB, 3> = cos.reshape([rows, 1, half]);
    let sin: Tensor<BB, 3> = sin.reshape([rows, 1, half]);
    let x3: Tensor<BB, 3> = x.t.clone().reshape([rows, heads, d]);
    let x1 = x3.clone().narrow(2, 0, half);
    let x2 = x3.narrow(2, half, half);
    let y1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
    let y2 = x2 * cos + x1 * sin;
    Ok(BurnTensor::matrix(Tensor::cat(vec![y1, y2], 2).reshape([rows, cols])))
}
