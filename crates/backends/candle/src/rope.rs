//! Rotary position embeddings, half-split layout (channel `i` pairs with `i + head_dim/2`), with
//! candle-nn's fused `rope` kernel.
//!
//! The angles are computed on the host exactly as the ndarray backend and transformers do, in
//! f32: `inv_freq = 1 / theta^(2i/d)` and `angle = position · inv_freq`. Every row may sit at its
//! own position (a batch mixes sequences), so each row gets its own cos/sin row: the tensor is
//! viewed as `[rows, heads, 1, head_dim]` with cos/sin `[rows, 1, head_dim/2]`, candle's batched
//! form.

use candle_core::Tensor;
use zoo_core::{Result, RopeConvention, RopeSpec};

use crate::error::{dims2, shape_error, CandleResult};
use crate::tensor::CandleTensor;

pub fn rope(x: &CandleTensor, positions: &[usize], spec: &RopeSpec) -> Result<CandleTensor> {
    let (rows, cols) = dims2(x, "rope")?;
    let d = spec.head_dim;
    if d == 0 || d % 2 != 0 || cols % d != 0 || positions.len() != rows {
        return Err(shape_error("rope", format!("{} rows of whole heads of even size {d}", positions.len()), x.dims()));
    }
    let half = d / 2;
    let (cos, sin) = angles(positions, spec);
    let device = x.inner().device();
    let cos = Tensor::from_vec(cos, (rows, 1, half), device).zoo()?;
    let sin = Tensor::from_vec(sin, (rows, 1, half), device).zoo()?;
    let heads = x.f32()?.contiguous().zoo()?.reshape((rows, cols / d, 1, d)).zoo()?; // [n, h, 1, d]
    let y = candle_nn::rotary_emb::rope(&heads, &cos, &sin).zoo()?;
    Ok(CandleTensor::new(y.reshape((rows, cols)).zoo()?))
}

/// cos and sin of every row's angles, `[rows · head_dim/2]` each; the sine carries the
/// convention's sign (nanochat rotates by −θ).
fn angles(positions: &[usize], spec: &RopeSpec) -> (Vec<f32>, Vec<f32>) {
    let d = spec.head_dim;
    let inv_freq: Vec<f32> =
        (0..d / 2).map(|i| 1.0 / ((spec.theta as f64).powf((2 * i) as f64 / d as f64) as f32)).collect();
    let sign = match spec.convention {
        RopeConvention::HalfSplit => 1.0,
        RopeConvention::HalfSplitNegative => -1.0,
    };
    let mut cos = Vec::with_capacity(positions.len() * d / 2);
    let mut sin = Vec::with_capacity(positions.len() * d / 2);
    for &pos in positions {
        for &f in &inv_freq {
            let angle = (pos as f32 * f) as f64;
            cos.push(angle.cos() as f32);
            sin.push(sign * angle.sin() as f32);
        }
    }
    (cos, sin)
}
