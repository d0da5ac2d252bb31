//! `linear`: `x · wᵀ + b` with `w` stored `[out, in]`.
//!
//! Decode steps multiply a few rows by a large matrix, which is bound by reading the weights:
//! there we split the output features across threads and stream each weight row once. Longer
//! inputs (prefill) go to a blocked GEMM on blocks of output features in parallel: zoo's own
//! AVX-512 kernel ([`crate::sgemm`]) where [`crate::isa`] allows it, else matrixmultiply's
//! through ndarray.

use std::borrow::Cow;
use std::sync::OnceLock;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use zoo_core::{Error, Result};

use crate::block_dot::gemm::{self, Tokens};
use crate::sgemm::PackedX;
use crate::tensor::{DequantizeRange, NdTensor};

/// Up to this many input rows, use the row-streaming kernel.
pub(crate) const GEMV_MAX_ROWS: usize = 4;
/// Up to how many input rows block-quantised weights use the row-streaming kernel. Against the
/// f32 GEMM path, which dequantises every weight first, the GEMM pays off from 13 rows with
/// zoo's AVX-512 GEMM on CPUs with full-width 512-bit units (a 16-row step, as `zoo serve`
/// batches 16 sequences: 1.2–1.3× faster on an Intel Xeon with SmolLM2 Q4_1 and the 415M
/// Q4_0/Q4_K_M, equal at 12 rows, slower at 8), and from 17 with matrixmultiply's or where
/// 512-bit operations run as two halves ([`crate::isa::splits_512_bit_ops`]: on an AMD EPYC of
/// family 19h the row-streaming kernel was 1.14–1.37× faster than the GEMM at 13 and 16 rows).
/// Against the integer GEMM (`integer_gemm`: [`crate::block_dot::gemm`] takes the weight) it
/// pays off from 9 rows (that AMD EPYC, 415M model, two threads: `Q4_0` equal at 8 rows, 1.18×
/// at 12, 1.27× at 16; `Q8_0` 1.14× and 1.26×). `ZOO_BLOCK_GEMV_ROWS` (1 to
/// [`BLOCK_GEMV_ROWS_MAX`]) sets it for both, for measuring.
pub(crate) fn block_gemv_max_rows(integer_gemm: bool) -> usize {
    static ROWS: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let chosen = *ROWS.get_or_init(|| {
        let chosen = std::env::var("ZOO_BLOCK_GEMV_ROWS").ok().and_then(|v| v.trim().parse().ok());
        chosen.filter(|n| (1..=BLOCK_GEMV_ROWS_MAX).contains(n))
    });
    let gemm_from_13 = crate::sgemm::available() && !crate::isa::splits_512_bit_ops();
    let default = match (integer_gemm, gemm_from_13) {
        (true, _) => INTEGER_GEMM_AFTER,
        (false, true) => 12,
        (false, false) => BLOCK_GEMV_ROWS_MAX,
    };
    chosen.unwrap_or(default)
}

/// The rows up to which the row-streaming kernel beats the integer GEMM.
const INTEGER_GEMM_AFTER: usize = 8;

/// The most input rows the row-streaming kernel for block-quantised weights takes.
pub(crate) const BLOCK_GEMV_ROWS_MAX: usize = 16;

/// Output features per parallel task in the row-streaming kernel, about.
pub(crate) const GEMV_CHUNK: usize = 64;

/// Output features per parallel task for a product of `out_features`: about [`GEMV_CHUNK`],
/// in a number of tasks that the pool's threads share evenly (a multiple of 4 features, the
/// last task shorter). With fixed chunks of 64, two threads split a 192-feature projection (a
/// small model's k or v) 128 : 64 and a 576-feature one 320 : 256, and the first thread's
/// extra chunk is time the second waits; here 96 : 96 and 300 : 276.
pub(crate) fn feature_chunk(out_features: usize) -> usize {
    feature_chunk_of(4, out_features)
}

/// [`feature_chunk`] in multiples of `granule` features (weights interleaved in groups of rows).
pub(crate) fn feature_chunk_of(granule: usize, out_features: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tasks = out_features.div_ceil(GEMV_CHUNK).div_ceil(threads) * threads;
    out_features.div_ceil(tasks.max(1)).next_multiple_of(granule).max(granule)
}

pub fn linear(x: &NdTensor, w: &NdTensor, bias: Option<&NdTensor>) -> Result<NdTensor> {
    linear_sharing(x, w, bias, &OnceLock::new())
}

/// [`linear`], taking `x` rounded for the integer GEMM from `tokens` (rounding it there on first
/// use), so that products of one input (q, k and v; a gate and an up projection) round it once.
fn linear_sharing(x: &NdTensor, w: &NdTensor, bias: Option<&NdTensor>, tokens: &OnceLock<Tokens>) -> Result<NdTensor> {
    let (n, k) = x.dims2("linear")?;
    let (out_features, in_features) = w.dims2("linear weight")?;
    if in_features != k {
        return Err(Error::Shape {
            op: "linear",
            expected: format!("input with {in_features} columns for weight {:?}", [out_features, in_features]),
            got: vec![n, k],
        });
    }
    if let Some(b) = bias {
        if b.values().len() != out_features {
            return Err(Error::Shape {
                op: "linear bias",
                expected: format!("{out_features} elements"),
                got: b.shape_vec(),
            });
        }
    }
    let mut out = vec![0f32; n * out_features];
    let blocks = w.quant_blocks().filter(|b| k % b.dtype.block_size() == 0);
    if let Some(b) = blocks {
        let integer_gemm = gemm::applies(b);
        if n <= block_gemv_max_rows(integer_gemm) {
            crate::matmul_blocks::gemv_rows(x.values(), b, k, out_features, &mut out);
        } else if integer_gemm {
            let tokens = tokens.get_or_init(|| Tokens::pack(x.values(), n, k));
            gemm::gemm(tokens, b, k, out_features, &mut out);
        } else {
            gemm_dequantized(x.values(), b, n, k, out_features, &mut out);
        }
    } else if let Some(h) = w.float16_data() {
        h.rows8(); // the first product makes the interleaved copy, which both paths then read
        if n <= GEMV_MAX_ROWS {
            crate::matmul_half::gemv_rows(x.values(), h, k, out_features, &mut out);
        } else {
            gemm_dequantized(x.values(), h, n, k, out_features, &mut out);
        }
    } else if let Some(q) = w.int8() {
        if n <= GEMV_MAX_ROWS {
            crate::matmul_int8::gemv_rows(x.values(), q, k, out_features, &mut out);
        } else {
            gemm_dequantized(x.values(), q, n, k, out_features, &mut out);
        }
    } else if n <= GEMV_MAX_ROWS {
        gemv_rows(x.values(), w.values(), k, out_features, &mut out);
    } else {
        gemm(x.values(), w.values(), n, k, out_features, &mut out);
    }
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(out_features) {
            row.iter_mut().zip(b.values()).for_each(|(o, b)| *o += b);
        }
    }
    NdTensor::new(out, vec![n, out_features])
}

/// `x · wᵀ (+ bias)` for each of `layers` (q, k and v; a gate and an up projection). For a few
/// rows of `x` (decode) the products run side by side on the pool, so the threads share all
/// their chunks and meet once, instead of waiting for each other at the end of every product;
/// longer inputs take them in turn, each GEMM parallel on its own. The results do not depend
/// on the order the chunks run in.
pub fn linears(x: &NdTensor, layers: &[(&NdTensor, Option<&NdTensor>)]) -> Result<Vec<NdTensor>> {
    let (n, _) = x.dims2("linear")?;
    if n <= GEMV_MAX_ROWS && layers.len() > 1 {
        layers.par_iter().map(|(w, b)| linear(x, w, *b)).collect()
    } else {
        let tokens = OnceLock::new();
        layers.iter().map(|(w, b)| linear_sharing(x, w, *b, &tokens)).collect()
    }
}

/// `(x · aᵀ, x · bᵀ)` (a gate and an up projection), side by side for a few rows of `x`, as
/// [`linears`] runs its products.
pub fn linear_pair(x: &NdTensor, a: &NdTensor, b: &NdTensor) -> Result<(NdTensor, NdTensor)> {
    let (n, _) = x.dims2("linear")?;
    if n <= GEMV_MAX_ROWS {
        let (ya, yb) = rayon::join(|| linear(x, a, None), || linear(x, b, None));
        Ok((ya?, yb?))
    } else {
        let tokens = OnceLock::new();
        Ok((linear_sharing(x, a, None, &tokens)?, linear_sharing(x, b, None, &tokens)?))
    }
}

/// `out[i, j] = x[i] · w[j]` for a few rows of `x`, parallel over `j`.
fn gemv_rows(x: &[f32], w: &[f32], k: usize, out_features: usize, out: &mut [f32]) {
    let rows = x.len() / k;
    let mut transposed = vec![0f32; out.len()]; // [out_features, rows]: chunks stay contiguous
    let size = feature_chunk(out_features);
    transposed.par_chunks_mut(size * rows).enumerate().for_each(|(chunk, dst)| {
        let first = chunk * size;
        for (jj, cell) in dst.chunks_exact_mut(rows).enumerate() {
            let w_row = &w[(first + jj) * k..(first + jj + 1) * k];
            for (i, value) in cell.iter_mut().enumerate() {
                *value = dot(&x[i * k..(i + 1) * k], w_row);
            }
        }
    });
    for j in 0..out_features {
        for i in 0..rows {
            out[i * out_features + j] = transposed[j * rows + i];
        }
    }
}

/// Fills `out` (`[rows, out_features]`) for a few input rows by chunks of [`feature_chunk`]
/// output features in parallel: `dots(first, row, dst)` writes the products of input row `row`
/// with weight rows `first..first + dst.len()`. Each chunk of weight rows is streamed once and
/// meets every input row while it is in cache.
pub(crate) fn par_feature_chunks(
    rows: usize,
    out_features: usize,
    out: &mut [f32],
    dots: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    par_feature_tiles(4, rows, out_features, out, |first, dst| {
        let features = dst.len() / rows;
        for (row, part) in dst.chunks_exact_mut(features).enumerate() {
            dots(first, row, part);
        }
    });
}

/// [`par_feature_chunks`] with every input row of a chunk at once: `tile(first, dst)` writes
/// the products of all `rows` input rows with weight rows `first..first + f` into `dst`
/// (`rows` runs of `f`), so a kernel can take several input rows per pass over the weights.
/// Chunks start at multiples of `granule` weight rows.
pub(crate) fn par_feature_tiles(
    granule: usize,
    rows: usize,
    out_features: usize,
    out: &mut [f32],
    tile: impl Fn(usize, &mut [f32]) + Sync,
) {
    let mut chunked = vec![0f32; out.len()]; // [chunk][row][feature in chunk]
    let size = feature_chunk_of(granule, out_features);
    chunked.par_chunks_mut(size * rows).enumerate().for_each(|(chunk, dst)| tile(chunk * size, dst));
    for (chunk, src) in chunked.chunks(size * rows).enumerate() {
        let (first, features) = (chunk * size, src.len() / rows);
        for (i, part) in src.chunks_exact(features).enumerate() {
            out[i * out_features + first..i * out_features + first + features].copy_from_slice(part);
        }
    }
}

/// `a · b` in f32: AVX2 + FMA where [`crate::isa`] found them, else [`dot_widened`].
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::isa() >= crate::isa::Isa::Avx2 {
        // SAFETY: `isa` found AVX2 and FMA.
        return unsafe { dot_avx2(a, b) };
    }
    dot_widened(a, b)
}

/// `a · b` with `b`'s elements widened to f32 (f32 itself, or int8 quants), in eight independent
/// accumulators so that the compiler vectorises it (for the baseline instruction set: SSE2 on
/// x86-64, without FMA).
pub(crate) fn dot_widened<T: Copy + Into<f32>>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l].into();
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(&x, &y)| x * y.into()).sum();
    acc.iter().sum::<f32>() + tail
}

/// `a · b` with AVX2 FMAs into four independent accumulators (one accumulator would wait on
/// each FMA's latency: a decode-step GEMV of f32 weights then read ~14 GB/s of a core's ~40).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: elements i..i+32 are in bounds of both slices.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i + 8 * j)), _mm256_loadu_ps(pb.add(i + 8 * j))) };
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: elements i..i+8 are in bounds of both slices.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let quad = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    let lanes = _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
    lanes + a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum::<f32>()
}

/// `out = x · wᵀ` for many rows: blocks of output features in parallel, each a single-threaded
/// GEMM ([`crate::sgemm`] on the activations packed once, or matrixmultiply on blocks of
/// [`GEMM_COLS`]).
pub(crate) fn gemm(x: &[f32], w: &[f32], n: usize, k: usize, out_features: usize, out: &mut [f32]) {
    if crate::sgemm::available() {
        let packed = PackedX::new(x, n, k);
        return crate::sgemm::gemm(&packed, out_features, out, |r| Cow::Borrowed(&w[r.start * k..r.end * k]));
    }
    par_column_blocks(n, out_features, GEMM_COLS, out, |first, cols, part| {
        gemm_serial(x, &w[first * k..(first + cols) * k], n, k, cols, part)
    });
}

/// `out = x · wᵀ` for many rows and a quantised `w`: tiles of weight rows are dequantised to
/// f32 (row-major, as [`crate::sgemm`] reads them) and multiplied with a GEMM, the tiles in
/// parallel.
pub(crate) fn gemm_dequantized(
    x: &[f32],
    w: &impl DequantizeRange,
    n: usize,
    k: usize,
    out_features: usize,
    out: &mut [f32],
) {
    if crate::sgemm::available() {
        let packed = PackedX::new(x, n, k);
        return crate::sgemm::gemm(&packed, out_features, out, |r| {
            let mut tile = Vec::with_capacity(r.len() * k);
            w.dequantize_range(r.start * k..r.end * k, &mut tile);
            Cow::Owned(tile)
        });
    }
    par_column_blocks(n, out_features, GEMM_COLS, out, |first, rows, part| {
        let mut tile = Vec::with_capacity(rows * k);
        w.dequantize_range(first * k..(first + rows) * k, &mut tile);
        gemm_serial(x, &tile, n, k, rows, part);
    });
}

/// Output features per parallel task of the GEMM paths on matrixmultiply.
pub(crate) const GEMM_COLS: usize = 128;

/// `out = x · wᵀ` on the calling thread (matrixmultiply is built without its own threads:
/// rayon is the one pool, so the two never compete for cores).
pub(crate) fn gemm_serial(x: &[f32], w: &[f32], n: usize, k: usize, out_features: usize, out: &mut [f32]) {
    let x = ArrayView2::from_shape((n, k), x).expect("shape checked by caller");
    let w = ArrayView2::from_shape((out_features, k), w).expect("shape checked by caller");
    let mut c = ArrayViewMut2::from_shape((n, out_features), out).expect("shape checked by caller");
    general_mat_mul(1.0, &x, &w.t(), 0.0, &mut c);
}

/// Fills `out` (`[n, m]`, row-major) by blocks of up to `block` columns in parallel:
/// `fill(first, cols, part)` writes columns `first..first + cols` into `part` (`[n, cols]`).
pub(crate) fn par_column_blocks(
    n: usize,
    m: usize,
    block: usize,
    out: &mut [f32],
    fill: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let span = |b: usize| (b * block, block.min(m - b * block)); // (first column, columns)
    let parts: Vec<Vec<f32>> = (0..m.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let (first, cols) = span(b);
            let mut part = vec![0f32; n * cols];
            fill(first, cols, &mut part);
            part
        })
        .collect();
    for (b, part) in parts.iter().enumerate() {
        let (first, cols) = span(b);
        for (dst, src) in out.chunks_exact_mut(m).zip(part.chunks_exact(cols)) {
            dst[first..first + cols].copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * m];
        for i in 0..n {
            for j in 0..m {
                out[i * m + j] = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
            }
        }
        out
    }

    #[test]
    fn both_kernels_match_the_definition() {
        for &(n, k, m) in &[(1, 37, 130), (3, 64, 65), (9, 33, 17)] {
            let x: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let w: Vec<f32> = (0..m * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
            let got = linear(
                &NdTensor::new(x.clone(), vec![n, k]).unwrap(),
                &NdTensor::new(w.clone(), vec![m, k]).unwrap(),
                None,
            )
            .unwrap();
            let want = naive(&x, &w, n, k, m);
            for (g, e) in got.values().iter().zip(&want) {
                assert!((g - e).abs() < 1e-4, "{g} vs {e} at {:?}", (n, k, m));
            }
        }
    }

    #[test]
    fn gemm_paths_match_the_f64_product_on_odd_shapes() {
        // `gemm` as dispatched (the AVX-512 kernel unless `ZOO_CPU_KERNELS` caps it) and
        // matrixmultiply's `gemm_serial` (the fallback) on every CPU.
        for n in 1..=40 {
            for k in [1, 7, 33, 64, 250] {
                for m in [1, 17, 32, 33, 130] {
                    let x: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
                    let w: Vec<f32> = (0..m * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
                    let mut dispatched = vec![f32::NAN; n * m];
                    gemm(&x, &w, n, k, m, &mut dispatched);
                    let mut fallback = vec![f32::NAN; n * m];
                    gemm_serial(&x, &w, n, k, m, &mut fallback);
                    for (at, (&a, &b)) in dispatched.iter().zip(&fallback).enumerate() {
                        let (i, j) = (at / m, at % m);
                        let products = (0..k).map(|t| f64::from(x[i * k + t]) * f64::from(w[j * k + t]));
                        let (want, scale) = products.fold((0f64, 0f64), |(s, a), p| (s + p, a + p.abs()));
                        for got in [a, b] {
                            assert!(
                                (f64::from(got) - want).abs() <= 1e-6 * scale.max(1.0),
                                "{got} vs {want} at {:?}",
                                (n, k, m, i, j)
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dot_paths_match_the_f64_product_at_every_length() {
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 896] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
            let scale: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from((x * y).abs())).sum::<f64>().max(1.0);
            for got in [dot(&a, &b), dot_widened(&a, &b)] {
                assert!((f64::from(got) - want).abs() <= 1e-6 * scale, "n={n}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let x = NdTensor::new(vec![0.0; 6], vec![2, 3]).unwrap();
        let w = NdTensor::new(vec![0.0; 8], vec![2, 4]).unwrap();
        assert!(linear(&x, &w, None).is_err());
    }
}
