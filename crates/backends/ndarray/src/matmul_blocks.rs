//! `linear` against a weight of ggml blocks (`Q8_0`, `Q4_0`, `Q4_1`; [`zoo_core::quant`]),
//! without ever materialising the f32 matrix.
//!
//! - few rows (decode): each output feature's row is streamed once as blocks; every block is
//!   dequantised inside its dot product with `x` (its scale applied once per block), parallel
//!   over output features;
//! - many rows (prefill): blocks of weight rows are dequantised into a small f32 tile and
//!   multiplied with matrixmultiply's GEMM, so the tile is reused across all input rows.

use half::f16;
use rayon::prelude::*;
use zoo_core::quant::QK;
use zoo_core::DType;

use crate::matmul::{gemm as gemm_f32, GEMV_CHUNK};
use crate::tensor::Blocks;

/// Weight rows dequantised per GEMM tile.
const TILE_ROWS: usize = 128;

/// `out[i, j] = x[i] · w[j]` for a few rows of `x`, parallel over `j`. `k` is whole blocks.
pub fn gemv_rows(x: &[f32], w: &Blocks, k: usize, out_features: usize, out: &mut [f32]) {
    let rows = x.len() / k;
    let per_row = k / QK;
    let mut transposed = vec![0f32; out.len()]; // [out_features, rows]
    transposed.par_chunks_mut(GEMV_CHUNK * rows).enumerate().for_each(|(chunk, dst)| {
        let first = chunk * GEMV_CHUNK;
        for (jj, cell) in dst.chunks_exact_mut(rows).enumerate() {
            let j = first + jj;
            let w_row = w.block_bytes(j * per_row..(j + 1) * per_row);
            for (i, value) in cell.iter_mut().enumerate() {
                *value = row_dot(w.dtype, &x[i * k..(i + 1) * k], w_row);
            }
        }
    });
    for j in 0..out_features {
        for i in 0..rows {
            out[i * out_features + j] = transposed[j * rows + i];
        }
    }
}

/// `x · w_row` for one row of blocks.
fn row_dot(dtype: DType, x: &[f32], w_row: &[u8]) -> f32 {
    let blocks = w_row.chunks_exact(dtype.block_bytes());
    let xs = x.chunks_exact(QK);
    match dtype {
        DType::Q8_0 => blocks.zip(xs).map(|(b, x)| q8_0_dot(b, x)).sum(),
        DType::Q4_0 => blocks.zip(xs).map(|(b, x)| q4_dot(b, x, false)).sum(),
        DType::Q4_1 => blocks.zip(xs).map(|(b, x)| q4_dot(b, x, true)).sum(),
        _ => 0.0,
    }
}

fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `d · Σ x·q` for one `Q8_0` block, eight accumulators so the compiler vectorises it.
fn q8_0_dot(b: &[u8], x: &[f32]) -> f32 {
    let (q, x): (&[u8; QK], &[f32; QK]) = match (b[2..].try_into(), x.try_into()) {
        (Ok(q), Ok(x)) => (q, x),
        _ => return 0.0,
    };
    let mut acc = [0f32; 8];
    for c in 0..QK / 8 {
        for l in 0..8 {
            acc[l] += x[c * 8 + l] * f32::from(q[c * 8 + l] as i8);
        }
    }
    half_at(b, 0) * acc.iter().sum::<f32>()
}

/// One `Q4_0` block (`d · Σ x·(q − 8)`) or `Q4_1` block (`d · Σ x·q + m · Σ x`).
fn q4_dot(b: &[u8], x: &[f32], with_min: bool) -> f32 {
    let at = if with_min { 4 } else { 2 };
    let (q, x): (&[u8; QK / 2], &[f32; QK]) = match (b[at..].try_into(), x.try_into()) {
        (Ok(q), Ok(x)) => (q, x),
        _ => return 0.0,
    };
    let offset = if with_min { 0.0 } else { 8.0 };
    let mut acc = [0f32; 8];
    let mut sum = [0f32; 8];
    for c in 0..2 {
        for l in 0..8 {
            let j = c * 8 + l;
            let (lo, hi) = (f32::from(q[j] & 0x0F) - offset, f32::from(q[j] >> 4) - offset);
            acc[l] += x[j] * lo + x[j + QK / 2] * hi;
            sum[l] += x[j] + x[j + QK / 2];
        }
    }
    let dot = half_at(b, 0) * acc.iter().sum::<f32>();
    if with_min {
        dot + half_at(b, 2) * sum.iter().sum::<f32>()
    } else {
        dot
    }
}

/// `out = x · wᵀ` for many rows: dequantise `TILE_ROWS` weight rows at a time and GEMM them.
pub fn gemm(x: &[f32], w: &Blocks, n: usize, k: usize, out_features: usize, out: &mut [f32]) {
    let mut tile = Vec::with_capacity(TILE_ROWS * k);
    let mut part = vec![0f32; n * TILE_ROWS];
    for first in (0..out_features).step_by(TILE_ROWS) {
        let rows = TILE_ROWS.min(out_features - first);
        tile.clear();
        w.dequantize_into(first * k..(first + rows) * k, &mut tile);
        let part = &mut part[..n * rows];
        gemm_f32(x, &tile, n, k, rows, part);
        for (dst, src) in out.chunks_exact_mut(out_features).zip(part.chunks_exact(rows)) {
            dst[first..first + rows].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;
    use zoo_core::{Bytes, DType, WeightView};

    use crate::matmul::linear;
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
            // Both kernels, a GEMV chunk and a GEMM tile remainder.
            for &(n, k, m) in &[(1, 128, 130), (4, 96, 66), (9, 64, 300), (17, 32, 129)] {
                let (blocks, dense) = weight(dtype, m, k);
                let x: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                let x = NdTensor::new(x, vec![n, k]).unwrap();
                let bias = NdTensor::new((0..m).map(|j| j as f32 * 0.01).collect(), vec![m]).unwrap();
                let got = linear(&x, &blocks, Some(&bias)).unwrap();
                let want = linear(&x, &dense, Some(&bias)).unwrap();
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
            let (blocks, dense) = weight(dtype, 10, 64);
            let got = crate::layout::embedding(&blocks, &[3, 0, 9]).unwrap();
            let want = crate::layout::embedding(&dense, &[3, 0, 9]).unwrap();
            assert_eq!(got.values(), want.values());
            assert!(blocks.quant_blocks().unwrap().dense_is_empty());
            assert_eq!(blocks.values(), dense.values(), "other ops see dequantised values");
        }
    }

    #[test]
    fn rows_that_are_not_whole_blocks_are_refused() {
        assert!(NdTensor::blocks(DType::Q8_0, Bytes::from_vec(vec![0; 34]), vec![2, 16]).is_err());
        assert!(NdTensor::blocks(DType::Q8_0, Bytes::from_vec(vec![0; 33]), vec![1, 32]).is_err());
        assert!(NdTensor::blocks(DType::F32, Bytes::from_vec(vec![0; 128]), vec![1, 32]).is_err());
    }
}
