//! Rotary position embeddings, half-split layout (channel `i` pairs with `i + head_dim/2`), with
//! candle-nn's fused `rope` kernel.
//!
//! The angles are computed on the host by [`RopeSpec::angles`], as every backend does. Every row may sit at its
//! own position (a batch mixes sequences), so each row gets its own cos/sin row: the tensor is
//! viewed as `[rows, heads, 1, head_dim]` with cos/sin `[rows, 1, head_dim/2]`, candle's batched
//! form.

use candle_core::Tensor;
use zoo_core::{Result, RopeSpec};

use crate::error::CandleResult;
use crate::tensor::CandleTensor;

pub fn rope(x: &CandleTensor, positions: &[usize], spec: &RopeSpec) -> Result<CandleTensor> {
    let (rows, cols) = zoo_core::checks::rope(x.dims(), positions.len(), spec)?;
    let (d, half) = (spec.head_dim, spec.head_dim / 2);
    let (cos, sin) = spec.angles(positions.iter().copied());
    let device = x.inner().device();
    let cos = Tensor::from_vec(cos, (rows, 1, half), device).zoo()?;
    let sin = Tensor::from_vec(sin, (rows, 1, half), device).zoo()?;
    let heads = x.f32()?.contiguous().zoo()?.reshape((rows, cols / d, 1, d)).zoo()?; // [n, h, 1, d]
    let y = candle_nn::rotary_emb::rope(&heads, &cos, &sin).zoo()?;
    Ok(CandleTensor::new(y.reshape((rows, cols)).zoo()?))
}
