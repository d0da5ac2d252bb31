//! `linear` against an int8 weight quantised in groups (`w[j, t] = q · scale[group]`), without
//! ever materialising the f32 matrix.
//!
//! - few rows (decode): each output feature's row is streamed once as int8; every group's dot
//!   product with `x` is accumulated in f32 and multiplied by the group's scale;
//! - many rows (prefill): `crate::matmul`'s GEMM path dequantises tiles of weight rows.

use rayon::prelude::*;

use crate::matmul::{dot_widened, feature_chunk};
use crate::tensor::Int8;

/// `out[i, j] = x[i] · w[j]` for a few rows of `x`, parallel over `j`.
pub fn gemv_rows(x: &[f32], w: &Int8, k: usize, out_features: usize, out: &mut [f32]) {
    let rows = x.len() / k;
    let q = w.q();
    let mut transposed = vec![0f32; out.len()]; // [out_features, rows]
    let size = feature_chunk(out_features);
    transposed.par_chunks_mut(size * rows).enumerate().for_each(|(chunk, dst)| {
        let first = chunk * size;
        for (jj, cell) in dst.chunks_exact_mut(rows).enumerate() {
            let start = (first + jj) * k;
            for (i, value) in cell.iter_mut().enumerate() {
                *value = row_dot(&x[i * k..(i + 1) * k], &q[start..start + k], start, w);
            }
        }
    });
    for j in 0..out_features {
        for i in 0..rows {
            out[i * out_features + j] = transposed[j * rows + i];
        }
    }
}

/// `x · w_row` where `w_row` starts at flat element `start`; groups may straddle rows.
fn row_dot(x: &[f32], q: &[i8], start: usize, w: &Int8) -> f32 {
    let group = w.group_size;
    let mut acc = 0f32;
    let mut t = 0;
    while t < x.len() {
        let g = (start + t) / group;
        let end = ((g + 1) * group - start).min(x.len());
        acc += w.scales[g] * dot_widened(&x[t..end], &q[t..end]);
        t = end;
    }
    acc
}

#[cfg(test)]
mod tests {
    use zoo_core::{Bytes, GroupScales};

    use crate::matmul::linear;
    use crate::tensor::NdTensor;

    /// An int8 weight and the f32 weight it stands for.
    fn weight(m: usize, k: usize, group: usize) -> (NdTensor, NdTensor) {
        let q: Vec<u8> = (0..m * k).map(|i| ((i * 37 % 255) as i32 - 127) as i8 as u8).collect();
        let scales: Vec<f32> = (0..m * k / group).map(|g| 0.001 + (g % 7) as f32 * 0.003).collect();
        let dense: Vec<f32> = (0..m * k).map(|i| f32::from(q[i] as i8) * scales[i / group]).collect();
        let scales = GroupScales { group_size: group, scales: scales.into() };
        let int8 = NdTensor::quantized(Bytes::from_vec(q), &scales, vec![m, k]).unwrap();
        (int8, NdTensor::new(dense, vec![m, k]).unwrap())
    }

    #[test]
    fn int8_linear_matches_the_f32_path() {
        // Shapes cover both kernels, a tile remainder, and groups that straddle rows (k = 96).
        for &(n, k, m, group) in &[(1, 128, 130, 64), (3, 96, 66, 64), (9, 64, 300, 64), (17, 96, 129, 32)] {
            let (int8, dense) = weight(m, k, group);
            let x = NdTensor::new((0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect(), vec![n, k]).unwrap();
            let bias = NdTensor::new((0..m).map(|j| j as f32 * 0.01).collect(), vec![m]).unwrap();
            let got = linear(&x, &int8, Some(&bias)).unwrap();
            let want = linear(&x, &dense, Some(&bias)).unwrap();
            assert!(int8.int8().unwrap().dense_is_empty(), "linear never dequantises the whole weight");
            for (g, e) in got.values().iter().zip(want.values()) {
                assert!((g - e).abs() <= 1e-5 * (1.0 + e.abs()), "{g} vs {e} at {:?}", (n, k, m));
            }
        }
    }

    #[test]
    fn int8_embedding_dequantises_the_rows_asked_for() {
        let (int8, dense) = weight(10, 64, 64);
        let got = crate::layout::embedding(&int8, &[3, 0, 9]).unwrap();
        let want = crate::layout::embedding(&dense, &[3, 0, 9]).unwrap();
        assert_eq!(got.values(), want.values());
        assert!(int8.int8().unwrap().dense_is_empty());
        assert_eq!(int8.values(), dense.values(), "other ops see dequantised values");
    }
}
