//! Rotary embeddings with Burn ops: angles computed on the host exactly as the reference does
//! (f32 `position · inv_freq`), then one broadcast multiply-add over `[rows, heads, head_dim]`.

use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{Tensor, TensorData};
use zoo_core::{Error, Result, RopeConvention, RopeSpec};

use crate::tensor::BurnTensor;

pub(crate) fn rope<BB: BurnBackend>(
    x: &BurnTensor<BB>,
    positions: &[usize],
    spec: &RopeSpec,
) -> Result<BurnTensor<BB>> {
    let (rows, cols) = x.dims2("rope")?;
    let d = spec.head_dim;
    if d == 0 || d % 2 != 0 || cols % d != 0 || positions.len() != rows {
        return Err(Error::Shape {
            op: "rope",
            expected: format!("{} rows of whole heads of even size {d}", positions.len()),
            got: vec![rows, cols],
        });
    }
    let (half, heads) = (d / 2, cols / d);
    let sign = match spec.convention {
        RopeConvention::HalfSplit => 1.0,
        RopeConvention::HalfSplitNegative => -1.0,
    };
    let inv_freq: Vec<f32> =
        (0..half).map(|i| 1.0 / ((spec.theta as f64).powf((2 * i) as f64 / d as f64) as f32)).collect();
    let mut cos = Vec::with_capacity(rows * half);
    let mut sin = Vec::with_capacity(rows * half);
    for &pos in positions {
        for f in &inv_freq {
            let angle = (pos as f32 * f) as f64;
            cos.push(angle.cos() as f32);
            sin.push(sign * angle.sin() as f32);
        }
    }
    let opts = (&x.t.device(), x.t.dtype());
    let cos = Tensor::<BB, 3>::from_data(TensorData::new(cos, [rows, 1, half]), opts);
    let sin = Tensor::<BB, 3>::from_data(TensorData::new(sin, [rows, 1, half]), opts);
    let x3: Tensor<BB, 3> = x.t.clone().reshape([rows, heads, d]);
    let x1 = x3.clone().narrow(2, 0, half);
    let x2 = x3.narrow(2, half, half);
    let y1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
    let y2 = x2 * cos + x1 * sin;
    Ok(BurnTensor::matrix(Tensor::cat(vec![y1, y2], 2).reshape([rows, cols])))
}
