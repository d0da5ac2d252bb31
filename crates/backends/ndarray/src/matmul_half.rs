//! `linear` against 16-bit float weights (f16, bf16) kept as stored: decode steps stream each
//! weight row once and widen it in registers ([`crate::half_dot`]); prefill goes to
//! `crate::matmul`'s GEMM path, which widens tiles of weight rows.

use crate::half_dot::{rows8, rows_dot};
use crate::matmul::{par_feature_chunks, par_feature_tiles};
use crate::tensor::Float16;

/// `out[i, j] = x[i] · w[j]` for a few rows of `x` (`k` columns), parallel over `j`.
pub fn gemv_rows(x: &[f32], w: &Float16, k: usize, out_features: usize, out: &mut [f32]) {
    if let Some(mixed) = w.rows8() {
        // Chunks of whole groups of eight rows, each streamed once for every row of `x`.
        let weights = mixed.as_slice();
        return par_feature_tiles(rows8::GROUP, x.len() / k, out_features, out, |first, dst| {
            let features = dst.len() / (x.len() / k);
            let w_chunk = &weights[2 * first * k..2 * (first + features) * k];
            for (x, dst) in x.chunks_exact(k).zip(dst.chunks_exact_mut(features)) {
                rows8::rows_dot(w.kind, w_chunk, x, dst);
            }
        });
    }
    let weights = w.bytes(0..out_features * k);
    par_feature_chunks(x.len() / k, out_features, out, |first, row, dst| {
        let w_chunk = &weights[2 * first * k..2 * (first + dst.len()) * k];
        rows_dot(w.kind, w_chunk, &x[row * k..(row + 1) * k], dst);
    });
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};
    use zoo_core::{Bytes, DType};

    use crate::matmul::linear;
    use crate::tensor::NdTensor;

    /// A `[m, k]` weight of `dtype` and the f32 weight of the same values.
    fn weight(dtype: DType, m: usize, k: usize) -> (NdTensor, NdTensor) {
        let values: Vec<f32> = (0..m * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| match dtype {
                DType::F16 => f16::from_f32(v).to_le_bytes(),
                _ => bf16::from_f32(v).to_le_bytes(),
            })
            .collect();
        let stored = NdTensor::float16(dtype, Bytes::from_vec(bytes.clone()), vec![m, k]).unwrap();
        let dense = NdTensor::new(stored.values().to_vec(), vec![m, k]).unwrap();
        let stored = NdTensor::float16(dtype, Bytes::from_vec(bytes), vec![m, k]).unwrap();
        (stored, dense)
    }

    #[test]
    fn half_linear_matches_f32_linear_on_the_same_values() {
        for dtype in [DType::F16, DType::BF16] {
            // Decode (GEMV chunks and a remainder) and prefill (GEMM tiles) sizes.
            for &(n, k, m) in &[(1, 37, 130), (3, 64, 65), (4, 896, 200), (9, 33, 300), (17, 40, 129), (17, 40, 128)] {
                let (stored, dense) = weight(dtype, m, k);
                let x = NdTensor::new((0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect(), vec![n, k]);
                let x = x.unwrap();
                let bias = NdTensor::new((0..m).map(|j| j as f32 * 0.01).collect(), vec![m]).unwrap();
                let got = linear(&x, &stored, Some(&bias)).unwrap();
                let want = linear(&x, &dense, Some(&bias)).unwrap();
                assert!(stored.float16_data().unwrap().dense_is_empty(), "linear never widens it all");
                for (g, e) in got.values().iter().zip(want.values()) {
                    assert!((g - e).abs() <= 1e-5 * e.abs().max(1.0), "{dtype}: {g} vs {e} at {:?}", (n, k, m));
                }
            }
        }
    }

    #[test]
    fn after_a_decode_product_interleaves_rows_the_other_readers_agree() {
        // A decode product makes the interleaved copy (on AVX2 machines); prefill tiles and
        // embedding rows then read it, and give the same values as the f32 weight.
        for dtype in [DType::F16, DType::BF16] {
            let (stored, dense) = weight(dtype, 128, 40);
            let x = NdTensor::new((0..17 * 40).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect(), vec![17, 40]);
            let x = x.unwrap();
            let one = NdTensor::new(x.values()[..40].to_vec(), vec![1, 40]).unwrap();
            for (input, tolerance) in [(&one, 1e-5), (&x, 1e-5), (&one, 1e-5)] {
                let (got, want) = (linear(input, &stored, None).unwrap(), linear(input, &dense, None).unwrap());
                for (g, e) in got.values().iter().zip(want.values()) {
                    assert!((g - e).abs() <= tolerance * e.abs().max(1.0), "{dtype}: {g} vs {e}");
                }
            }
            let got = crate::layout::embedding(&stored, &[3, 0, 127]).unwrap();
            assert_eq!(got.values(), crate::layout::embedding(&dense, &[3, 0, 127]).unwrap().values());
        }
    }

    #[test]
    fn half_embedding_widens_the_rows_asked_for() {
        for dtype in [DType::F16, DType::BF16] {
            let (stored, dense) = weight(dtype, 16, 24);
            let got = crate::layout::embedding(&stored, &[3, 0, 9]).unwrap();
            let want = crate::layout::embedding(&dense, &[3, 0, 9]).unwrap();
            assert_eq!(got.values(), want.values());
            assert!(stored.float16_data().unwrap().dense_is_empty());
        }
    }

    #[test]
    fn wrong_byte_counts_are_refused() {
        assert!(NdTensor::float16(DType::F16, Bytes::from_vec(vec![0; 7]), vec![2, 2]).is_err());
        assert!(NdTensor::float16(DType::F32, Bytes::from_vec(vec![0; 8]), vec![2, 2]).is_err());
    }
}
