//! Rotary position embeddings, half-split layout (channel `i` pairs with `i + head_dim/2`).
//!
//! Angles are computed as transformers does, in f32: `inv_freq = 1 / theta^(2i/d)` and
//! `angle = position · inv_freq`, so long positions round the same way as the reference.

use zoo_core::{Error, Result, RopeConvention, RopeSpec};

use crate::tensor::NdTensor;

pub fn rope(x: &NdTensor, positions: &[usize], spec: &RopeSpec) -> Result<NdTensor> {
    let (rows, cols) = x.dims2("rope")?;
    let d = spec.head_dim;
    if d == 0 || d % 2 != 0 || cols % d != 0 || positions.len() != rows {
        return Err(Error::Shape {
            op: "rope",
            expected: format!("{} rows of whole heads of even size {d}", positions.len()),
            got: vec![rows, cols],
        });
    }
    let half = d / 2;
    let inv_freq: Vec<f32> =
        (0..half).map(|i| 1.0 / ((spec.theta as f64).powf((2 * i) as f64 / d as f64) as f32)).collect();
    let sign = match spec.convention {
        RopeConvention::HalfSplit => 1.0,
        RopeConvention::HalfSplitNegative => -1.0,
    };
    let mut out = x.values().to_vec();
    let mut cos = vec![0f32; half];
    let mut sin = vec![0f32; half];
    for (row, &pos) in out.chunks_exact_mut(cols).zip(positions) {
        for i in 0..half {
            let angle = (pos as f32 * inv_freq[i]) as f64;
            cos[i] = angle.cos() as f32;
            sin[i] = sign * angle.sin() as f32;
        }
        for head in row.chunks_exact_mut(d) {
            let (x1, x2) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * cos[i] - b * sin[i];
                x2[i] = b * cos[i] + a * sin[i];
            }
        }
    }
    NdTensor::new(out, vec![rows, cols])
}
