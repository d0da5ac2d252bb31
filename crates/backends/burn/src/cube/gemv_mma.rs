//! Batched decode GEMVs on tensor cores: `y[r, o] = Σₖ x[r, k] · w[o, k]` for the 2 to 8 rows
//! of a batched decode step, with 16-bit weights.
//!
//! The plane-per-feature kernels (`gemv.rs`) spend one FMA per weight element and row: at eight
//! rows an SM cannot issue them as fast as HBM delivers the weights. Here one warp multiplies an
//! `8 × 16` tile of `x` (the rows, zero-padded to eight) by a `16 × 32` tile of `wᵀ` (32 output
//! features) in one tensor-core instruction (`m8n32k16`, f32 accumulation), so the weights are
//! read at the speed of memory whatever the batch. A cube owns 32 output features; its
//! [`MMA_WARPS`] warps split `k` between them and add their partial tiles in shared memory.
//!
//! Each warp walks its share of `k` in chunks of [`CHUNK`] columns: the chunk's weights
//! (`32 × 64`) and rows of `x` (`8 × 64`) come from global memory in 16-byte loads, coalesced,
//! into the warp's own tiles in shared memory, from which the tensor cores' fragments load;
//! the next chunk's loads are in flight while the current one is multiplied.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cmma::{self, Matrix, MatrixIdent, MatrixLayout};
use burn_cubecl::cubecl::prelude::*;

use super::first_round::inputs_ready_if;
use super::gemv::{store_product, swiglu_of_products};

/// Warps per cube, each taking its share of the `k` range.
pub(crate) const MMA_WARPS: u32 = 8;
/// Output features per cube: the tile's `n`.
pub(crate) const MMA_FEATURES: usize = 32;
/// Rows per tile (`m`): batches pad to this many rows.
pub(crate) const MMA_ROWS: usize = 8;
/// Columns per tile step (`k`).
pub(crate) const MMA_K: usize = 16;
/// Columns of `k` a warp stages per chunk: `k` must be a multiple.
pub(crate) const CHUNK: usize = 64;
/// Row pitch of the staged tiles: a chunk plus 8 elements, so that the rows of a fragment load
/// fall on different shared-memory banks (and stay 16-byte aligned, as fragment loads require).
const PITCH: usize = CHUNK + 8;
/// Elements per 16-byte load.
const VECTOR: usize = 8;
/// A warp's staged tiles: 32 weight rows and 8 rows of `x`.
pub(super) const WARP_TILES: usize = (MMA_FEATURES + MMA_ROWS) * PITCH;
/// 16-byte vectors of a chunk's weights per lane.
const W_LOADS: usize = MMA_FEATURES * CHUNK / VECTOR / 32;
/// 16-byte vectors of a chunk's rows of `x` per lane.
const X_LOADS: usize = MMA_ROWS * CHUNK / VECTOR / 32;

// A cube's warps double as the tile's rows when their partial tiles are added (`cube_total`).
const _: () = assert!(MMA_WARPS as usize == MMA_ROWS);

/// Chunk `c`'s 16-byte weight vectors for this lane, `W_LOADS` of rows `f0..f0 + 32`
/// (`w_off` = `f0 · w_stride`; strides count vectors), into `held_w`. Kept apart from
/// [`fetch_rows`]: one function for both, bounds-checking the weights' rows as well, made
/// Mistral-7B's batched decode 7–15% slower on the H200.
#[cube]
fn fetch_weights<F: Float, N: Size>(
    w: &Array<Vector<F, N>>,
    w_off: usize,
    w_stride: usize,
    c: usize,
    held_w: &mut Array<Vector<F, N>>,
) {
    let per_row = CHUNK / VECTOR;
    let col0 = c * per_row;
    let lane = UNIT_POS_X as usize;
    #[unroll]
    for i in 0..W_LOADS {
        let v = lane + i * 32;
        held_w[i] = w[w_off + (v / per_row) * w_stride + col0 + v % per_row];
    }
}

/// Chunk `c`'s 16-byte vectors of `x`'s rows for this lane, `X_LOADS` of them, into `held_x`
/// (zero past `live_rows`).
#[cube]
fn fetch_rows<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    x_stride: usize,
    live_rows: usize,
    c: usize,
    held_x: &mut Array<Vector<F, N>>,
) {
    let per_row = CHUNK / VECTOR;
    let col0 = c * per_row;
    let lane = UNIT_POS_X as usize;
    #[unroll]
    for i in 0..X_LOADS {
        let v = lane + i * 32;
        let row = v / per_row;
        let mut value = Vector::<F, N>::new(F::new(0.0));
        if row < live_rows {
            value = x[row * x_stride + col0 + v % per_row];
        }
        held_x[i] = value;
    }
}

/// The fetched vectors written into the warp's tiles (`tiles`, from `base`): weights first
/// (row `j` of the 32 at `j · PITCH`), then the rows of `x`.
#[cube]
fn stage_chunk<F: Float, N: Size>(
    held_w: &Array<Vector<F, N>>,
    held_x: &Array<Vector<F, N>>,
    tiles: &mut SharedMemory<F>,
    base: usize,
) {
    stage_held::<F, N>(held_w, tiles, base, W_LOADS);
    stage_held::<F, N>(held_x, tiles, base + MMA_FEATURES * PITCH, X_LOADS);
}

/// This lane's `loads` fetched vectors (`held`) written into a tile from `base`: vector `v` of
/// the chunk (`lane + i · 32`) at row `v / (CHUNK / VECTOR)` (`PITCH` apart), its column in
/// the row.
#[cube]
fn stage_held<F: Float, N: Size>(
    held: &Array<Vector<F, N>>,
    tiles: &mut SharedMemory<F>,
    base: usize,
    #[comptime] loads: usize,
) {
    let per_row = CHUNK / VECTOR;
    let lane = UNIT_POS_X as usize;
    #[unroll]
    for i in 0..loads {
        let v = lane + i * 32;
        let at = base + (v / per_row) * PITCH + (v % per_row) * VECTOR;
        let vector = held[i];
        #[unroll]
        for e in 0..VECTOR {
            tiles[at + e] = vector[e];
        }
    }
}

/// `acc += x[0..8, chunk] · w[f0..f0 + 32, chunk]ᵀ` over this warp's share of the chunks
/// `c0..c1` (of [`CHUNK`] columns), staged through its tiles in `tiles`; the next chunk's loads
/// are issued before the current chunk is multiplied. `early`: the first chunk's weights are
/// loaded before the [`inputs_ready`] marker (every path of the kernel passes it once), which
/// then comes before anything the step's earlier kernels wrote is read.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn mma_accumulate<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    w_off: usize,
    x_stride: usize,
    w_stride: usize,
    live_rows: usize,
    c0: usize,
    c1: usize,
    tiles: &mut SharedMemory<F>,
    acc: &Matrix<f32>,
    #[comptime] early: bool,
) {
    let (warp, warps) = (UNIT_POS_Y as usize, CUBE_DIM_Y as usize);
    let chunks = c1 - c0;
    let end = c0 + chunks * (warp + 1) / warps;
    let mut c = c0 + chunks * warp / warps;
    let base = warp * WARP_TILES;
    let mut held_w = Array::<Vector<F, N>>::new(W_LOADS);
    let mut held_x = Array::<Vector<F, N>>::new(X_LOADS);
    if c < end {
        fetch_weights::<F, N>(w, w_off, w_stride, c, &mut held_w);
    }
    inputs_ready_if(early);
    if c < end {
        fetch_rows::<F, N>(x, x_stride, live_rows, c, &mut held_x);
    }
    while c < end {
        // The previous chunk's fragment loads are done before its tiles are overwritten.
        sync_plane();
        stage_chunk::<F, N>(&held_w, &held_x, tiles, base);
        sync_plane();
        if c + 1 < end {
            fetch_weights::<F, N>(w, w_off, w_stride, c + 1, &mut held_w);
            fetch_rows::<F, N>(x, x_stride, live_rows, c + 1, &mut held_x);
        }
        #[unroll]
        for s in 0..CHUNK / MMA_K {
            let x_at = base + MMA_FEATURES * PITCH + s * MMA_K;
            let w_at = base + s * MMA_K;
            let a = Matrix::<F>::from_slice(
                MatrixIdent::A,
                MMA_ROWS,
                MMA_FEATURES,
                MMA_K,
                MatrixLayout::RowMajor,
                &tiles.slice(x_at, x_at + (MMA_ROWS - 1) * PITCH + MMA_K),
                PITCH as u32,
            );
            let b = Matrix::<F>::from_slice(
                MatrixIdent::B,
                MMA_ROWS,
                MMA_FEATURES,
                MMA_K,
                MatrixLayout::ColMajor,
                &tiles.slice(w_at, w_at + (MMA_FEATURES - 1) * PITCH + MMA_K),
                PITCH as u32,
            );
            cmma::execute::<F, F, f32, f32>(&a, &b, acc, acc);
        }
        c += 1;
    }
}

/// A zeroed `8 × 32` f32 accumulator tile.
#[cube]
pub(super) fn zero_tile() -> Matrix<f32> {
    Matrix::<f32>::from_value(MatrixIdent::Accumulator, MMA_ROWS, MMA_FEATURES, MMA_K, MatrixLayout::Undefined, 0.0f32)
}

/// Adds the cube's warps' `acc` tiles: each warp stores its tile in `sums` (row-major), and
/// after the cube's barrier unit `(row, feature)` = `(UNIT_POS_Y, UNIT_POS_X)` reads the total
/// of its element.
#[cube]
pub(super) fn cube_total(acc: &Matrix<f32>, sums: &mut SharedMemory<f32>) -> f32 {
    let tile = MMA_ROWS * MMA_FEATURES;
    let warp = UNIT_POS_Y as usize;
    let mut mine = sums.slice_mut(warp * tile, (warp + 1) * tile);
    cmma::store(&mut mine, acc, MMA_FEATURES as u32, MatrixLayout::RowMajor);
    sync_cube();
    let at = UNIT_POS_Y as usize * MMA_FEATURES + UNIT_POS_X as usize;
    let mut total = 0.0f32;
    for p in 0..CUBE_DIM_Y as usize {
        total += sums[p * tile + at];
    }
    total
}

/// `y = residual + x · wᵀ (+ bias)` for the `live_rows` (≤ 8) rows of `x`: one cube per 32
/// output features, [`MMA_WARPS`] warps of it (`out_features` a multiple of 32, `k` of
/// [`CHUNK`]). Strides of `x` and `w` count 16-byte vectors, those of `y` and `residual`
/// elements.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_rows_mma_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    bias: &Array<F>,
    residual: &Array<F>,
    y: &mut Array<F>,
    k: u32,
    live_rows: u32,
    x_stride: u32,
    w_stride: u32,
    y_stride: u32,
    residual_stride: u32,
    #[comptime] has_bias: bool,
    #[comptime] has_residual: bool,
    #[define(F)] _dtype: StorageType,
) {
    let f0 = CUBE_POS_X as usize * MMA_FEATURES;
    let n = live_rows as usize;
    let (xs, ws) = (x_stride as usize, w_stride as usize);
    let mut tiles = SharedMemory::<F>::new(MMA_WARPS as usize * WARP_TILES);
    let acc = zero_tile();
    mma_accumulate::<F, N>(x, w, f0 * ws, xs, ws, n, 0, k as usize / CHUNK, &mut tiles, &acc, false);
    let mut sums = SharedMemory::<f32>::new(MMA_WARPS as usize * MMA_ROWS * MMA_FEATURES);
    let value = cube_total(&acc, &mut sums);
    let r = UNIT_POS_Y as usize;
    if r < n {
        let (ys, rs) = (y_stride as usize, residual_stride as usize);
        let o = f0 + UNIT_POS_X as usize;
        store_product::<F>(value, r, o, bias, residual, y, ys, rs, has_bias, has_residual);
    }
}

/// `y = silu(x · gateᵀ) · (x · upᵀ)` for the `live_rows` (≤ 8) rows of `x`, as
/// [`gemv_rows_mma_kernel`] lays out its work; `y` contiguous.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gated_gemv_rows_mma_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    gate: &Array<Vector<F, N>>,
    up: &Array<Vector<F, N>>,
    y: &mut Array<F>,
    k: u32,
    out_features: u32,
    live_rows: u32,
    x_stride: u32,
    gate_stride: u32,
    up_stride: u32,
    #[define(F)] _dtype: StorageType,
) {
    let f0 = CUBE_POS_X as usize * MMA_FEATURES;
    let n = live_rows as usize;
    let (xs, gs, us) = (x_stride as usize, gate_stride as usize, up_stride as usize);
    let mut tiles = SharedMemory::<F>::new(MMA_WARPS as usize * WARP_TILES);
    let acc_g = zero_tile();
    let acc_u = zero_tile();
    let chunks = k as usize / CHUNK;
    mma_accumulate::<F, N>(x, gate, f0 * gs, xs, gs, n, 0, chunks, &mut tiles, &acc_g, false);
    mma_accumulate::<F, N>(x, up, f0 * us, xs, us, n, 0, chunks, &mut tiles, &acc_u, false);
    let mut sums = SharedMemory::<f32>::new(MMA_WARPS as usize * MMA_ROWS * MMA_FEATURES);
    let g = cube_total(&acc_g, &mut sums);
    sync_cube();
    let u = cube_total(&acc_u, &mut sums);
    let r = UNIT_POS_Y as usize;
    if r < n {
        y[r * out_features as usize + f0 + UNIT_POS_X as usize] = swiglu_of_products::<F>(g, u);
    }
}
