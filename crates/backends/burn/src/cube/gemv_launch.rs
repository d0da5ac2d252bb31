//! Launches of the GEMV kernels (`gemv.rs`): a GEMV's folded RMSNorm as kernel arguments, the
//! single-row launch, and the multi-row launches of batched decode (each weight row read once
//! per step for 2 to [`GEMV_MAX_ROWS`](super::GEMV_MAX_ROWS) rows, the norm run by its own kernel first; on
//! tensor cores where the shapes allow, `gemv_mma_launch.rs`).

use burn::tensor::DType;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;

use super::gemv_mma::MMA_FEATURES;
use super::gemv_mma_launch::{
    gated_gemv_rows_mma_launch, gemv_many_mma_launch, gemv_rows_mma_launch, mma_fits, mma_splits,
};
use super::{
    array, empty_like, empty_many, float, gemv, gemv_cubes, gemv_grid, gemv_rows, gemv_width, norm_launch, row_stride,
    staged_vectors,
};
use crate::kernels::RowNorm;

/// A GEMV's folded RMSNorm as kernel arguments.
pub(super) struct Folded<R: CubeRuntime> {
    /// The norm's weight (`[1, k]`), if any.
    pub(super) weight: Option<CubeTensor<R>>,
    /// Added to the mean square.
    pub(super) eps: f32,
    /// Whether there is a norm at all.
    pub(super) normed: bool,
}

impl<R: CubeRuntime> Folded<R> {
    /// `norm` for an input of `k` columns; `None` when its weight is not `[1, k]` of `x`'s type.
    pub(super) fn new<B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>>(
        norm: Option<&RowNorm<'_, B>>,
        k: usize,
        dtype: DType,
    ) -> Option<Self> {
        let Some(norm) = norm else { return Some(Self { weight: None, eps: 0.0, normed: false }) };
        if norm.weight.is_some_and(|w| w.dims() != [1, k] || w.dtype() != dtype) {
            return None;
        }
        Some(Self { weight: norm.weight.map(float), eps: norm.eps, normed: true })
    }

    /// The weight's array, or `x` as a placeholder the kernel never reads.
    pub(super) fn weight_or(&self, x: &CubeTensor<R>) -> CubeTensor<R> {
        self.weight.clone().unwrap_or_else(|| x.clone())
    }

    pub(super) fn weighted(&self) -> bool {
        self.weight.is_some()
    }
}

/// A GEMV's bias and residual as kernel arguments: each tensor, or `x` as a placeholder the
/// kernel never reads, and whether it is real.
pub(super) struct Epilogue<R: CubeRuntime> {
    pub(super) bias: CubeTensor<R>,
    pub(super) residual: CubeTensor<R>,
    pub(super) has_bias: bool,
    pub(super) has_residual: bool,
}

impl<R: CubeRuntime> Epilogue<R> {
    /// `bias` and `residual` of a GEMV of `x`.
    pub(super) fn new(bias: Option<CubeTensor<R>>, residual: Option<CubeTensor<R>>, x: &CubeTensor<R>) -> Self {
        Self {
            has_bias: bias.is_some(),
            has_residual: residual.is_some(),
            bias: bias.unwrap_or_else(|| x.clone()),
            residual: residual.unwrap_or_else(|| x.clone()),
        }
    }
}

/// `x · wᵀ` (shapes checked by the caller): its operands, its shape and its output.
pub(super) struct Product<'a, R: CubeRuntime> {
    /// The input rows.
    pub(super) x: &'a CubeTensor<R>,
    /// The weights, one row per output feature (the gate's, in a gated product).
    pub(super) w: &'a CubeTensor<R>,
    /// Rows of `x`.
    pub(super) n: usize,
    /// Columns of `x` and `w`.
    pub(super) k: usize,
    /// Rows of `w`: output features.
    pub(super) out: usize,
    /// The output, `[n, out]` of `w`'s type, contiguous.
    pub(super) y: CubeTensor<R>,
}

impl<'a, R: CubeRuntime> Product<'a, R> {
    /// `x · wᵀ`'s shape and a fresh output for it.
    pub(super) fn new(x: &'a CubeTensor<R>, w: &'a CubeTensor<R>) -> Self {
        let (n, k, out) = (x.meta.shape()[0], x.meta.shape()[1], w.meta.shape()[0]);
        Self { x, w, n, k, out, y: empty_like(w, n, out) }
    }
}

/// `residual + norm(x) · wᵀ (+ bias)` for the rows of `x` (one, in decode; shapes checked
/// by the caller): one plane per (row, feature).
pub(super) fn gemv_launch<R: CubeRuntime>(
    x: &CubeTensor<R>,
    w: &CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    norm: &Folded<R>,
    residual: Option<CubeTensor<R>>,
) -> CubeTensor<R> {
    let Product { n, k, out, y, .. } = Product::new(x, w);
    let norm_w = norm.weight_or(x);
    let width = gemv_width(x, &[w.clone(), norm_w.clone()], k);
    let ep = Epilogue::new(bias, residual, x);
    let (x_stride, w_stride) = (row_stride(x) / width as u32, row_stride(w) / width as u32);
    let parts = split_parts(n, out, k / width, norm.normed);
    // A folded norm read by every plane is issue-bound on a long launch (the LM head): staged.
    let staged = if norm.normed && parts == 1 { staged_vectors(&w.client, k, width, gemv_cubes(n, out)) } else { 0 };
    // SAFETY: planes past `out` return (or, split, skip their product and store); the rows of
    // `x` and the columns of `w` match, and `residual` is `[n, out]` (checked by the caller).
    unsafe {
        launch!(
            gemv::gemv_kernel,
            &w.client,
            gemv_grid(n, out * parts),
            width,
            array(x),
            array(&norm_w),
            array(w),
            array(&ep.bias),
            array(&ep.residual),
            array(&y),
            (k / width) as u32,
            out as u32,
            x_stride,
            w_stride,
            out as u32,
            row_stride(&ep.residual),
            norm.eps,
            parts,
            staged,
            ep.has_bias,
            ep.has_residual,
            norm.normed,
            norm.weighted(),
            super::first_round::early_weights(),
            w.dtype.into(),
        );
    }
    y
}

/// Planes per output feature of a single GEMV. A plane per feature leaves a narrow projection
/// too few planes in flight to keep the memory busy, so one with long rows (at least 512
/// vectors) and no folded norm (whose sum of squares covers the whole row) splits each row over
/// the fewest planes, 2 or 4, that give the launch [`SPLIT_TARGET_PLANES`]: Qwen2.5-0.5B's down
/// projection (896 features of 4 864) takes 4, Mistral-7B's o and down projections (4 096
/// features) 2, Qwen2.5-14B's (5 120) 2. `ZOO_GEMV_SPLIT=0` keeps 1; `ZOO_GEMV_SPLIT_PLANES`
/// moves the target, for measuring.
fn split_parts(n: usize, out: usize, k_vectors: usize, normed: bool) -> usize {
    static TARGET: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let target = *TARGET.get_or_init(|| {
        let chosen = std::env::var("ZOO_GEMV_SPLIT_PLANES").ok().and_then(|v| v.parse().ok());
        super::switched_on("ZOO_GEMV_SPLIT").then_some(chosen.unwrap_or(SPLIT_TARGET_PLANES))
    });
    let planes = n * out;
    match target {
        Some(target) if !normed && k_vectors >= 512 && planes < target => {
            if 2 * planes >= target {
                2
            } else {
                4
            }
        }
        _ => 1,
    }
}

/// Planes a single GEMV launch should have at least (see [`split_parts`]): about what an H200's
/// 132 SMs hold at once (64 warps each). Measured there, GPU time per Mistral-7B decode step:
/// 3 935 µs with the o and down projections split in two, 3 976 unsplit, 4 056 in four.
const SPLIT_TARGET_PLANES: usize = 8192;

/// Rows per compiled multi-row GEMV variant for a batch of `n` (2 to [`GEMV_MAX_ROWS`](super::GEMV_MAX_ROWS)): the
/// next power of two, so three variants serve every batch.
fn rows_variant(n: usize) -> usize {
    n.next_power_of_two()
}

/// `x` with `norm` applied by its own kernel, for the multi-row GEMVs, which don't fold it
/// (every plane would recompute every row's sum of squares: more arithmetic than the products).
pub(super) fn normed_rows<R: CubeRuntime>(x: &CubeTensor<R>, norm: &Folded<R>) -> Option<CubeTensor<R>> {
    if !norm.normed {
        return Some(x.clone());
    }
    norm_launch(x.clone(), None, norm.weight.clone(), norm.eps).map(|(_, y)| y)
}

/// `residual + x · wᵀ (+ bias)` for 2 to [`GEMV_MAX_ROWS`](super::GEMV_MAX_ROWS) rows of `x` (normalised already;
/// shapes checked by the caller), each weight row read once per step whatever the batch: on
/// tensor cores where [`mma_fits`] (16-bit weights of tile-friendly shapes), else one plane per
/// two output features and all rows.
pub(super) fn gemv_rows_launch<R: CubeRuntime>(
    x: &CubeTensor<R>,
    w: &CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    residual: Option<CubeTensor<R>>,
) -> CubeTensor<R> {
    let product = Product::new(x, w);
    if !mma_fits(x, &[w]) {
        gemv_rows_plane_launch(&product, &Epilogue::new(bias, residual, x));
        return product.y;
    }
    let splits = mma_splits(product.out / MMA_FEATURES, product.k);
    if splits > 1 {
        gemv_many_mma_launch(x, &[w], &[bias], residual, std::slice::from_ref(&product.y), splits);
    } else {
        gemv_rows_mma_launch(&product, &Epilogue::new(bias, residual, x));
    }
    product.y
}

/// `x · wᵢᵀ (+ biasᵢ)` for the three weights of `ws` (q, k and v) and 2 to
/// [`GEMV_MAX_ROWS`](super::GEMV_MAX_ROWS) rows of `x` (normalised already; shapes checked by
/// the caller): one split-k tensor-core launch for all three where [`mma_fits`], else a
/// [`gemv_rows_launch`] each.
pub(super) fn gemv_many_rows_launch<R: CubeRuntime>(
    x: &CubeTensor<R>,
    ws: &[CubeTensor<R>],
    biases: Vec<Option<CubeTensor<R>>>,
) -> Vec<CubeTensor<R>> {
    let refs: Vec<&CubeTensor<R>> = ws.iter().collect();
    if !mma_fits(x, &refs) {
        return ws.iter().zip(biases).map(|(w, b)| gemv_rows_launch(x, w, b, None)).collect();
    }
    let n = x.meta.shape()[0];
    let outs: Vec<usize> = ws.iter().map(|w| w.meta.shape()[0]).collect();
    let ys = empty_many(x, n, &outs);
    let splits = mma_splits(outs.iter().sum::<usize>() / MMA_FEATURES, x.meta.shape()[1]);
    gemv_many_mma_launch(x, &refs, &biases, None, &ys, splits);
    ys
}

/// [`gemv_rows_launch`] on plane-per-feature-pair cubes, into `p.y`.
fn gemv_rows_plane_launch<R: CubeRuntime>(p: &Product<'_, R>, ep: &Epilogue<R>) {
    let (x, w, n, k, out) = (p.x, p.w, p.n, p.k, p.out);
    let width = gemv_width(x, std::slice::from_ref(w), k);
    let cubes = (out.div_ceil(2) as u32).div_ceil(gemv::PLANES);
    // SAFETY: planes past `out` return, a plane's second feature is dropped past `out`; rows
    // past `n` read row `n - 1` and are not written; `residual` is `[n, out]` (checked by the
    // caller).
    unsafe {
        launch!(
            gemv_rows::gemv_rows_kernel,
            &w.client,
            (CubeCount::new_1d(cubes), CubeDim::new_2d(32, gemv::PLANES)),
            width,
            array(x),
            array(w),
            array(&ep.bias),
            array(&ep.residual),
            array(&p.y),
            (k / width) as u32,
            out as u32,
            n as u32,
            row_stride(x) / width as u32,
            row_stride(w) / width as u32,
            out as u32,
            row_stride(&ep.residual),
            rows_variant(n),
            ep.has_bias,
            ep.has_residual,
            w.dtype.into(),
        );
    }
}

/// `silu(x · gateᵀ) · (x · upᵀ)` for 2 to [`GEMV_MAX_ROWS`](super::GEMV_MAX_ROWS) rows of `x` (normalised already):
/// on tensor cores where [`mma_fits`], else one plane per output feature and all rows.
pub(super) fn gated_gemv_rows_launch<R: CubeRuntime>(
    x: &CubeTensor<R>,
    gate: &CubeTensor<R>,
    up: &CubeTensor<R>,
) -> CubeTensor<R> {
    let product = Product::new(x, gate);
    if mma_fits(x, &[gate, up]) {
        gated_gemv_rows_mma_launch(&product, up);
    } else {
        gated_gemv_rows_plane_launch(&product, up);
    }
    product.y
}

/// [`gated_gemv_rows_launch`] on plane-per-feature cubes, into `p.y`.
fn gated_gemv_rows_plane_launch<R: CubeRuntime>(p: &Product<'_, R>, up: &CubeTensor<R>) {
    let (x, gate, n, k, out) = (p.x, p.w, p.n, p.k, p.out);
    let width = gemv_width(x, &[gate.clone(), up.clone()], k);
    // SAFETY: planes past `out` return; rows past `n` read row `n - 1` and are not written.
    unsafe {
        launch!(
            gemv_rows::gated_gemv_rows_kernel,
            &x.client,
            (CubeCount::new_1d((out as u32).div_ceil(gemv::PLANES)), CubeDim::new_2d(32, gemv::PLANES)),
            width,
            array(x),
            array(gate),
            array(up),
            array(&p.y),
            (k / width) as u32,
            out as u32,
            n as u32,
            row_stride(x) / width as u32,
            row_stride(gate) / width as u32,
            row_stride(up) / width as u32,
            rows_variant(n),
            x.dtype.into(),
        );
    }
}
