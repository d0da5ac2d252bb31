//! `linear` against a weight of ggml blocks (`Q8_0`, `Q4_0`, `Q4_1`; [`zoo_core::quant`]) or
//! K-quant super-blocks (`Q4_K`, `Q5_K`, `Q6_K`; [`zoo_core::kquant`]), without ever
//! materialising the f32 matrix.
//!
//! - few rows (decode): each output feature's row is streamed once as blocks and multiplied
//!   with `x` block by block ([`crate::block_dot`]: f32 activations for `Q8_0`, 16-bit ones in
//!   integer arithmetic for the 4-bit types and the K-quants), parallel over output features;
//! - many rows (prefill): weights interleaved eight rows at a time, and K-quants, on a CPU
//!   with AVX512-VNNI go through the integer GEMM ([`crate::block_dot::gemm`]: the same 16-bit activations,
//!   32 products per instruction); others through `crate::matmul`'s GEMM path, which
//!   dequantises tiles of weight rows to f32.

use crate::block_dot::{rows8, rows_dot_tile, Activations};
use crate::matmul::par_feature_tiles;
use crate::tensor::Blocks;

/// `out[i, j] = x[i] · w[j]` for a few rows of `x`, parallel over `j`. `k` is whole blocks.
/// Each row of `x` is prepared once ([`Activations`]); every chunk of weight rows is then
/// streamed once, multiplied with each row of `x` while it is in cache (4-bit blocks widened
/// once for several rows: [`rows_dot_tile`]).
pub fn gemv_rows(x: &[f32], w: &Blocks, k: usize, out_features: usize, out: &mut [f32]) {
    let activations: Vec<Activations> = x.chunks_exact(k).map(Activations::new).collect();
    let block = w.dtype.block_size();
    let row_bytes = k / block * w.dtype.block_bytes();
    let weights = &w.data.as_slice()[..out_features * row_bytes];
    let rows = activations.len();
    let granule = if w.interleaved.is_some() { rows8::GROUP } else { 4 };
    par_feature_tiles(granule, rows, out_features, out, |first, dst| {
        let features = dst.len() / rows;
        let w_chunk = &weights[first * row_bytes..(first + features) * row_bytes];
        match w.interleaved {
            // Each activation row through the eight-row kernel (the chunk stays in cache).
            Some(row_blocks) => {
                for (x, dst) in activations.iter().zip(dst.chunks_exact_mut(features)) {
                    rows8::rows_dot(w.dtype, w_chunk, row_blocks, x.q16(), dst);
                }
            }
            None => rows_dot_tile(w.dtype, w_chunk, row_bytes, &activations, dst),
        }
    });
}

#[cfg(test)]
mod tests {
    use half::f16;
    use zoo_core::{Bytes, DType, WeightView};

    use crate::block_dot::{gemm, Activations};
    use crate::matmul::{block_gemv_max_rows, linear};
    use crate::tensor::NdTensor;

    /// A weight of `dtype` blocks with varied scales, mins and values, and the f32 weight it
    /// stands for (dequantised by `WeightView::to_f32_vec`, i.e. `zoo_core::quant`).
    fn weight(dtype: DType, m: usize, k: usize) -> (NdTensor, NdTensor) {
        let mut data = Vec::new();
        for blk in 0..m * k / 32 {
            data.extend(f16::from_f32(0.002 + (blk % 7) as f32 * 0.003).to_le_bytes());
            if dtype == DType::Q4_1 {
                data.extend(f16::from_f32(-0.01 * (blk % 5) as f32).to_le_bytes());
            }
            let n = if dtype == DType::Q8_0 { 32 } else { 16 };
            data.extend((0..n).map(|i| ((blk * 31 + i * 37) % 256) as u8));
        }
        let view = WeightView::new("w", dtype, vec![m, k], Bytes::from_vec(data.clone())).unwrap();
        let dense = NdTensor::new(view.to_f32_vec(), vec![m, k]).unwrap();
        (NdTensor::blocks(dtype, Bytes::from_vec(data), vec![m, k]).unwrap(), dense)
    }

    #[test]
    fn block_linear_matches_f32_linear_on_the_dequantised_weight() {
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1] {
            // Both kernels, a GEMV chunk and a GEMM tile remainder; with rows a multiple of
            // eight, Q4_0 and Q4_1 are interleaved (`block_dot::rows8`) where the CPU has AVX2.
            let shapes = [(1, 128, 130), (4, 96, 66), (9, 64, 300), (16, 64, 70), (17, 32, 129), (1, 96, 24)];
            for &(n, k, m) in shapes.iter().chain(&[(3, 64, 136), (17, 64, 128)]) {
                let (blocks, dense) = weight(dtype, m, k);
                let x: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                // Decode-sized inputs, and longer ones against interleaved weights where the
                // integer GEMM runs, meet the weights in 16 bits; the result is exact on those.
                let integer_gemm = gemm::applies(blocks.quant_blocks().unwrap());
                let sixteen_bits = n <= block_gemv_max_rows(integer_gemm) || integer_gemm;
                let x_seen: Vec<f32> = if sixteen_bits {
                    x.chunks(k).flat_map(|row| Activations::new(row).seen()).collect()
                } else {
                    x.clone()
                };
                let x = NdTensor::new(x, vec![n, k]).unwrap();
                let x_seen = NdTensor::new(x_seen, vec![n, k]).unwrap();
                let bias = NdTensor::new((0..m).map(|j| j as f32 * 0.01).collect(), vec![m]).unwrap();
                let got = linear(&x, &blocks, Some(&bias)).unwrap();
                let want = linear(&x_seen, &dense, Some(&bias)).unwrap();
                assert!(blocks.quant_blocks().unwrap().dense_is_empty(), "linear never dequantises it all");
                let scale = want.values().iter().fold(0f32, |a, v| a.max(v.abs()));
                for (g, e) in got.values().iter().zip(want.values()) {
                    assert!((g - e).abs() <= 1e-5 * scale.max(1.0), "{dtype}: {g} vs {e} at {:?}", (n, k, m));
                }
            }
        }
    }

    #[test]
    fn block_embedding_dequantises_the_rows_asked_for() {
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1] {
            for rows in [10, 16] {
                let (blocks, dense) = weight(dtype, rows, 64);
                let got = crate::layout::embedding(&blocks, &[3, 0, 9]).unwrap();
                let want = crate::layout::embedding(&dense, &[3, 0, 9]).unwrap();
                assert_eq!(got.values(), want.values());
                assert!(blocks.quant_blocks().unwrap().dense_is_empty());
                assert_eq!(blocks.values(), dense.values(), "other ops see dequantised values");
            }
        }
    }

    #[test]
    fn rows_that_are_not_whole_blocks_are_refused() {
        assert!(NdTensor::blocks(DType::Q8_0, Bytes::from_vec(vec![0; 34]), vec![2, 16]).is_err());
        assert!(NdTensor::blocks(DType::Q8_0, Bytes::from_vec(vec![0; 33]), vec![1, 32]).is_err());
        assert!(NdTensor::blocks(DType::F32, Bytes::from_vec(vec![0; 128]), vec![1, 32]).is_err());
    }
}
