//! Launches of the tensor-core GEMVs of batched decode (`gemv_mma.rs`), and when they apply.

use burn::tensor::DType;
use burn_cubecl::cubecl::features::MmaConfig;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;

use std::cell::Cell;

use super::gemv_mma::{self, CHUNK, MMA_FEATURES, MMA_K, MMA_ROWS, MMA_WARPS};

/// Elements per 16-byte load of a 16-bit type.
const VECTOR: usize = 8;
use super::gemv_launch::{Epilogue, Product};
use super::{array, row_stride};

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
