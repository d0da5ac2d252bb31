//! Split-k tensor-core GEMVs for batched decode: one launch over up to three weights (q, k and
//! v), each weight's `k` range split over several cubes, then a small kernel that adds the
//! cubes' partial products and finishes them (bias, residual, rounding).
//!
//! A tensor-core cube owns 32 output features ([`gemv_mma`](super::gemv_mma)), so a projection
//! of 1 024 features (Mistral-7B's k and v) runs on 32 cubes and one of 4 096 (its q, o and
//! down) on 128: fewer than the GPU has SMs, each SM with one cube's loads in flight, which
//! reads the weights at 0.7–2.9 TB/s where the wide gate/up launch reads them at 3.7. Here a
//! launch has `tiles × splits` cubes: cube `(t, s)` multiplies feature tile `t` over the `s`-th
//! share of the `k` chunks and writes its `8 × 32` f32 tile of partial sums; q, k and v share
//! one launch (their tiles one after another), so the step has one launch for them instead
//! of three.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use super::gemv::store_product;
use super::gemv_mma::{cube_total, mma_accumulate, zero_tile, CHUNK, MMA_FEATURES, MMA_ROWS, MMA_WARPS, WARP_TILES};

/// Partial products `x · wᵢᵀ` of the `live_rows` (≤ 8) rows of `x` with up to three weights,
/// laid end to end as one range of features (`tiles0` tiles of 32 from `w0`, `tiles1` from
/// `w1`, the rest from `w2`), each tile's `k / CHUNK` chunks split into `splits` shares: cube
/// `t · splits + s` writes `partials[(s · live_rows + r) · features + 32 t + lane]` for its
/// rows `r`. Strides of `x` and the weights count 16-byte vectors. The first chunk's weights are
/// loaded before the kernel reads `x` (see `mma_accumulate`).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mma_partials_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    w0: &Array<Vector<F, N>>,
    w1: &Array<Vector<F, N>>,
    w2: &Array<Vector<F, N>>,
    partials: &mut Array<f32>,
    k: u32,
    live_rows: u32,
    x_stride: u32,
    w0_stride: u32,
    w1_stride: u32,
    w2_stride: u32,
    tiles0: u32,
    tiles1: u32,
    splits: u32,
    features: u32,
    #[define(F)] _dtype: StorageType,
) {
    let splits = splits as usize;
    let (t, s) = (CUBE_POS_X as usize / splits, CUBE_POS_X as usize % splits);
    let chunks = k as usize / CHUNK;
    let (c0, c1) = (chunks * s / splits, chunks * (s + 1) / splits);
    let (n, xs) = (live_rows as usize, x_stride as usize);
    let (t0, t1) = (tiles0 as usize, tiles1 as usize);
    let mut tiles = SharedMemory::<F>::new(MMA_WARPS as usize * WARP_TILES);
    let acc = zero_tile();
    if t < t0 {
        let ws = w0_stride as usize;
        mma_accumulate::<F, N>(x, w0, t * MMA_FEATURES * ws, xs, ws, n, c0, c1, &mut tiles, &acc, true);
    } else if t < t0 + t1 {
        let ws = w1_stride as usize;
        mma_accumulate::<F, N>(x, w1, (t - t0) * MMA_FEATURES * ws, xs, ws, n, c0, c1, &mut tiles, &acc, true);
    } else {
        let ws = w2_stride as usize;
        let off = (t - t0 - t1) * MMA_FEATURES * ws;
        mma_accumulate::<F, N>(x, w2, off, xs, ws, n, c0, c1, &mut tiles, &acc, true);
    }
    let mut sums = SharedMemory::<f32>::new(MMA_WARPS as usize * MMA_ROWS * MMA_FEATURES);
    let value = cube_total(&acc, &mut sums);
    let r = UNIT_POS_Y as usize;
    if r < n {
        partials[(s * n + r) * features as usize + t * MMA_FEATURES + UNIT_POS_X as usize] = value;
    }
}

/// The products [`mma_partials_kernel`] left in `partials`, finished: unit `(r, f)` of the
/// `live_rows × features` grid adds its `splits` partial sums (in order, so the result does not
/// depend on scheduling), and stores them as [`store_product`] does into the output its feature
/// falls in: `y0` for `f < out0`, `y1` for the next `out1`, `y2` for the rest, each contiguous,
/// with that weight's bias when `bias0`/`bias1`/`bias2`; `residual` (`[live_rows, out0]`, row
/// stride `residual_stride`) is added to `y0`'s features when `has_residual`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn mma_combine_kernel<F: Float>(
    partials: &Array<f32>,
    b0: &Array<F>,
    b1: &Array<F>,
    b2: &Array<F>,
    residual: &Array<F>,
    y0: &mut Array<F>,
    y1: &mut Array<F>,
    y2: &mut Array<F>,
    out0: u32,
    out1: u32,
    live_rows: u32,
    splits: u32,
    features: u32,
    residual_stride: u32,
    #[comptime] bias0: bool,
    #[comptime] bias1: bool,
    #[comptime] bias2: bool,
    #[comptime] has_residual: bool,
    #[define(F)] _dtype: StorageType,
) {
    let (n, total) = (live_rows as usize, features as usize);
    let at = ABSOLUTE_POS;
    if at < n * total {
        let (r, f) = (at / total, at % total);
        let mut value = 0.0f32;
        for s in 0..splits as usize {
            value += partials[(s * n + r) * total + f];
        }
        let (o0, o1) = (out0 as usize, out1 as usize);
        let rs = residual_stride as usize;
        if f < o0 {
            store_product::<F>(value, r, f, b0, residual, y0, o0, rs, bias0, has_residual);
        } else if f < o0 + o1 {
            store_product::<F>(value, r, f - o0, b1, residual, y1, o1, rs, bias1, false);
        } else {
            store_product::<F>(value, r, f - o0 - o1, b2, residual, y2, total - o0 - o1, rs, bias2, false);
        }
    }
}
