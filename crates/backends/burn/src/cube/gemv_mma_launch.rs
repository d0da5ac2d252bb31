//! Launches of the tensor-core GEMVs of batched decode (`gemv_mma.rs`, and split over `k` with
//! up to three weights in one launch, `gemv_mma_split.rs`), and when they apply.

use burn::tensor::DType;
use burn_cubecl::cubecl::features::MmaConfig;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;

use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use std::cell::Cell;

use super::gemv_launch::{Epilogue, Product};
use super::gemv_mma::{self, CHUNK, MMA_FEATURES, MMA_K, MMA_ROWS, MMA_WARPS};
use super::{array, elementwise_count, gemv_mma_split, row_stride};

/// Elements per 16-byte load of a 16-bit type.
const VECTOR: usize = 8;

thread_local! {
    /// Tensor-core GEMVs launched from this thread.
    static MMA_LAUNCHES: Cell<u64> = const { Cell::new(0) };
}

/// How many batched GEMVs this thread has launched on tensor cores (tests check that the path
/// they mean to cover ran).
pub fn tensor_core_launches() -> u64 {
    MMA_LAUNCHES.with(Cell::get)
}

/// Whether the batched GEMVs of `x` (2 to 8 rows) by `ws` run on tensor cores: 16-bit operands
/// of one type that the device multiplies in `8 × 32 × 16` tiles with f32 accumulation, `k` a
/// multiple of [`CHUNK`] and each weight's rows a multiple of 32, rows of 16-byte multiples
/// starting 16-byte aligned (the kernel's loads).
pub(super) fn mma_fits<R: CubeRuntime>(x: &CubeTensor<R>, ws: &[&CubeTensor<R>]) -> bool {
    let (rows, k, dtype) = (x.meta.shape()[0], x.meta.shape()[1], x.dtype);
    let shapes = (2..=MMA_ROWS).contains(&rows)
        && k % CHUNK == 0
        && ws.iter().all(|w| w.dtype == dtype && w.meta.shape()[1] == k && w.meta.shape()[0] % MMA_FEATURES == 0);
    if !matches!(dtype, DType::BF16 | DType::F16) || !shapes {
        return false;
    }
    let config = MmaConfig {
        a_type: dtype.into(),
        b_type: dtype.into(),
        cd_type: DType::F32.into(),
        m: MMA_ROWS as u32,
        n: MMA_FEATURES as u32,
        k: MMA_K as u32,
    };
    let vectors_load = |t: &CubeTensor<R>| {
        let strides = t.meta.strides();
        strides[1] == 1 && strides[0] % VECTOR == 0 && t.handle.offset_start.unwrap_or(0) % 16 == 0
    };
    x.client.properties().features.matmul.cmma.contains(&config)
        && vectors_load(x)
        && ws.iter().all(|w| vectors_load(w))
}

/// The launch shape: one cube of [`MMA_WARPS`] warps per 32 output features.
fn grid(out: usize) -> (CubeCount, CubeDim) {
    MMA_LAUNCHES.with(|n| n.set(n.get() + 1));
    (CubeCount::new_1d((out / MMA_FEATURES) as u32), CubeDim::new_2d(32, MMA_WARPS))
}

/// `residual + x · wᵀ (+ bias)` on tensor cores into `p.y` (`mma_fits` holds; `residual` is
/// `[n, out]`).
pub(super) fn gemv_rows_mma_launch<R: CubeRuntime>(p: &Product<'_, R>, ep: &Epilogue<R>) {
    // SAFETY: `mma_fits` checked that every load is an aligned 16-byte vector inside its
    // operand (rows of `x` past `n` are not read) and that the cubes cover `out` exactly; only
    // rows below `n` are written.
    unsafe {
        launch!(
            gemv_mma::gemv_rows_mma_kernel,
            &p.w.client,
            grid(p.out),
            VECTOR,
            array(p.x),
            array(p.w),
            array(&ep.bias),
            array(&ep.residual),
            array(&p.y),
            p.k as u32,
            p.n as u32,
            row_stride(p.x) / VECTOR as u32,
            row_stride(p.w) / VECTOR as u32,
            p.out as u32,
            row_stride(&ep.residual),
            ep.has_bias,
            ep.has_residual,
            p.w.dtype.into(),
        );
    }
}

/// `silu(x · gateᵀ) · (x · upᵀ)` on tensor cores into `p.y` (`mma_fits` holds for both
/// weights).
pub(super) fn gated_gemv_rows_mma_launch<R: CubeRuntime>(p: &Product<'_, R>, up: &CubeTensor<R>) {
    // SAFETY: as in `gemv_rows_mma_launch`; `up` has `gate`'s shape (checked by the caller).
    unsafe {
        launch!(
            gemv_mma::gated_gemv_rows_mma_kernel,
            &p.x.client,
            grid(p.out),
            VECTOR,
            array(p.x),
            array(p.w),
            array(up),
            array(&p.y),
            p.k as u32,
            p.out as u32,
            p.n as u32,
            row_stride(p.x) / VECTOR as u32,
            row_stride(p.w) / VECTOR as u32,
            row_stride(up) / VECTOR as u32,
            p.x.dtype.into(),
        );
    }
}

/// Cubes a split tensor-core launch may reach: about two for each of an H200's 132 SMs (a
/// cube of 256 threads at ~100 registers each leaves room for two). Measured there with 8
/// prompts (decode tok/s, two runs each): Mistral-7B 1 481–1 565 at 256 (o and down split in
/// two), 1 467–1 504 at 512 (o and down in four, q/k/v in two); Qwen2.5-14B 740–744 at 256
/// (nothing split), 696–722 at 512.
const MMA_TARGET_CUBES: usize = 256;

/// Shares the `k` chunks of a tensor-core launch of `tiles` feature tiles split into (see
/// `gemv_mma_split.rs`): the most, doubling up to 16, that keep the launch within
/// [`MMA_TARGET_CUBES`] and give each cube at least half as many chunks as it has warps.
/// Mistral-7B's o and down projections (128 tiles) split in two; its q/k/v launch (192 tiles)
/// and gate/up launch (448), and every launch of Qwen2.5-14B (160 tiles and up), not at all.
/// `ZOO_MMA_SPLIT=0` keeps 1; `ZOO_MMA_SPLIT_CUBES` moves the target, for measuring.
pub(super) fn mma_splits(tiles: usize, k: usize) -> usize {
    static TARGET: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let target = *TARGET.get_or_init(|| {
        let chosen = std::env::var("ZOO_MMA_SPLIT_CUBES").ok().and_then(|v| v.parse().ok());
        super::switched_on("ZOO_MMA_SPLIT").then_some(chosen.unwrap_or(MMA_TARGET_CUBES))
    });
    let (Some(target), chunks) = (target, k / CHUNK) else { return 1 };
    let mut splits = 1;
    while splits < 16 && tiles * splits * 2 <= target && chunks / (splits * 2) >= MMA_WARPS as usize / 2 {
        splits *= 2;
    }
    splits
}

/// `x · wᵢᵀ (+ biasᵢ)` for up to three weights `ws` (`mma_fits` holds for all) in one split-k
/// tensor-core launch and its combining launch, into `ys` (`[n, outᵢ]` each); `residual`
/// (`[n, out₀]`) is added to the first weight's product.
pub(super) fn gemv_many_mma_launch<R: CubeRuntime>(
    x: &CubeTensor<R>,
    ws: &[&CubeTensor<R>],
    biases: &[Option<CubeTensor<R>>],
    residual: Option<CubeTensor<R>>,
    ys: &[CubeTensor<R>],
    splits: usize,
) {
    let (n, k) = (x.meta.shape()[0], x.meta.shape()[1]);
    let outs: Vec<usize> = ws.iter().map(|w| w.meta.shape()[0]).collect();
    let features: usize = outs.iter().sum();
    let partials =
        empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), [splits * n, features].into(), DType::F32);
    let pick = |i: usize| ws[i.min(ws.len() - 1)];
    let tiles = |i: usize| if i < ws.len() { outs[i] / MMA_FEATURES } else { 0 };
    MMA_LAUNCHES.with(|c| c.set(c.get() + 1));
    let cubes = (features / MMA_FEATURES * splits) as u32;
    // SAFETY: `mma_fits` checked every weight's loads (aligned 16-byte vectors inside it, rows a
    // multiple of 32, `k` a multiple of `CHUNK`); the cubes cover the tiles of the weights end
    // to end, and each writes its rows below `n` of `partials`, `[splits · n, features]`.
    unsafe {
        launch!(
            gemv_mma_split::mma_partials_kernel,
            &x.client,
            (CubeCount::new_1d(cubes), CubeDim::new_2d(32, MMA_WARPS)),
            VECTOR,
            array(x),
            array(pick(0)),
            array(pick(1)),
            array(pick(2)),
            array(&partials),
            k as u32,
            n as u32,
            row_stride(x) / VECTOR as u32,
            row_stride(pick(0)) / VECTOR as u32,
            row_stride(pick(1)) / VECTOR as u32,
            row_stride(pick(2)) / VECTOR as u32,
            tiles(0) as u32,
            tiles(1) as u32,
            splits as u32,
            features as u32,
            x.dtype.into(),
        );
    }
    let bias = |i: usize| biases.get(i).cloned().flatten();
    let arg = |t: Option<CubeTensor<R>>| t.unwrap_or_else(|| x.clone());
    let y = |i: usize| ys[i.min(ys.len() - 1)].clone();
    let out = |i: usize| outs.get(i).copied().unwrap_or(0);
    let residual_stride = residual.as_ref().map_or(0, row_stride);
    // SAFETY: one unit per (row below `n`, feature); each reads its `splits` partial sums and
    // writes one element of the output its feature falls in, each `[n, outᵢ]` contiguous; a
    // bias or the residual is read only when given (`[1, outᵢ]`, `[n, out₀]`).
    unsafe {
        launch!(
            gemv_mma_split::mma_combine_kernel,
            &x.client,
            elementwise_count(n * features),
            array(&partials),
            array(&arg(bias(0))),
            array(&arg(bias(1))),
            array(&arg(bias(2))),
            array(&arg(residual.clone())),
            array(&y(0)),
            array(&y(1)),
            array(&y(2)),
            out(0) as u32,
            out(1) as u32,
            n as u32,
            splits as u32,
            features as u32,
            residual_stride,
            bias(0).is_some(),
            bias(1).is_some(),
            bias(2).is_some(),
            residual.is_some(),
            x.dtype.into(),
        );
    }
}
