//! Rotary position embeddings, half-split layout (channel `i` pairs with `i + head_dim/2`),
//! with the angles of [`RopeSpec::angles`] (computed as transformers does).

use zoo_core::{Result, RopeSpec, TensorShape};

use crate::tensor::NdTensor;

pub fn rope(x: &NdTensor, positions: &[usize], spec: &RopeSpec) -> Result<NdTensor> {
    let (rows, cols) = zoo_core::checks::rope(x.shape(), positions.len(), spec)?;
    let (d, half) = (spec.head_dim, spec.head_dim / 2);
    let (cos, sin) = spec.angles(positions.iter().copied());
    let mut out = x.values().to_vec();
    for ((row, cos), sin) in out.chunks_exact_mut(cols).zip(cos.chunks_exact(half)).zip(sin.chunks_exact(half)) {
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
