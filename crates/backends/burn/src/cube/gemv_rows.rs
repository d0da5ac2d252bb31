//! Matrix–vector products of batched decode: 2 to a handful of rows of `x` against each weight
//! row, read once per step (`gemv_launch.rs` launches them where the tensor-core variants of
//! `gemv_mma.rs` don't fit). `x` arrives normalised (the RMSNorm runs as its own kernel).

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use super::gemv::{store_product, swiglu_of_products};

/// Row `r` of the `rows` a multi-row variant serves, as an offset into `x`: rows past the real
/// `n` repeat the last real one (their products are computed and dropped), so one compiled
/// variant serves every batch up to its size.
#[cube]
fn row_offset(r: usize, n: usize, stride: usize) -> usize {
    let last = n - 1;
    let row = if r < last { r } else { last };
    row * stride
}

/// `dots_a[r] = x[r] · wa` and `dots_b[r] = x[r] · wb` for `rows` rows of `x` (already
/// normalised) and two weight rows (a gate and an up row, or two neighbouring features), every lane getting the sums. Each
/// weight vector is read once for all rows (batched decode reads the weights at the speed of one
/// row), and each vector of `x` is read and widened once for both weight rows, which halves the
/// traffic of `x` through L1 and the conversions per product. Accumulators stay scalar (one FMA per element and row):
/// eight rows of vector accumulators would cost 64 registers a lane.
#[cube]
#[allow(clippy::too_many_arguments)]
fn rows_dot2<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    wa: &Array<Vector<F, N>>,
    wb: &Array<Vector<F, N>>,
    a_off: usize,
    b_off: usize,
    x_stride: usize,
    n: usize,
    k_vectors: usize,
    dots_a: &mut Array<f32>,
    dots_b: &mut Array<f32>,
    #[comptime] rows: usize,
) {
    let width = wa.vector_size();
    let lanes = CUBE_DIM_X as usize;
    #[unroll]
    for r in 0..rows {
        dots_a[r] = 0.0;
        dots_b[r] = 0.0;
    }
    let mut i = UNIT_POS_X as usize;
    while i + lanes < k_vectors {
        let a0 = Vector::<f32, N>::cast_from(wa[a_off + i]);
        let b0 = Vector::<f32, N>::cast_from(wb[b_off + i]);
        let a1 = Vector::<f32, N>::cast_from(wa[a_off + i + lanes]);
        let b1 = Vector::<f32, N>::cast_from(wb[b_off + i + lanes]);
        #[unroll]
        for r in 0..rows {
            let off = row_offset(r, n, x_stride) + i;
            let x0 = Vector::<f32, N>::cast_from(x[off]);
            let x1 = Vector::<f32, N>::cast_from(x[off + lanes]);
            let mut da = dots_a[r];
            let mut db = dots_b[r];
            #[unroll]
            for j in 0..width {
                da += a0[j] * x0[j];
                db += b0[j] * x0[j];
                da += a1[j] * x1[j];
                db += b1[j] * x1[j];
            }
            dots_a[r] = da;
            dots_b[r] = db;
        }
        i += 2 * lanes;
    }
    if i < k_vectors {
        let a0 = Vector::<f32, N>::cast_from(wa[a_off + i]);
        let b0 = Vector::<f32, N>::cast_from(wb[b_off + i]);
        #[unroll]
        for r in 0..rows {
            let x0 = Vector::<f32, N>::cast_from(x[row_offset(r, n, x_stride) + i]);
            let mut da = dots_a[r];
            let mut db = dots_b[r];
            #[unroll]
            for j in 0..width {
                da += a0[j] * x0[j];
                db += b0[j] * x0[j];
            }
            dots_a[r] = da;
            dots_b[r] = db;
        }
    }
    #[unroll]
    for r in 0..rows {
        dots_a[r] = plane_sum(dots_a[r]);
        dots_b[r] = plane_sum(dots_b[r]);
    }
}

/// `y = residual + x · wᵀ (+ bias)` for the `n` (2 to `rows`) rows of `x`: one plane per two
/// output features and all rows (see `rows_dot2`), `x` normalised beforehand. Strides of `x` and
/// `w` count vectors, those of `y` and `residual` elements.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_rows_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    bias: &Array<F>,
    residual: &Array<F>,
    y: &mut Array<F>,
    k_vectors: u32,
    out_features: u32,
    live_rows: u32,
    x_stride: u32,
    w_stride: u32,
    y_stride: u32,
    residual_stride: u32,
    #[comptime] rows: usize,
    #[comptime] has_bias: bool,
    #[comptime] has_residual: bool,
    #[define(F)] _dtype: StorageType,
) {
    let out = out_features as usize;
    let oa = 2 * (CUBE_POS_X as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize);
    if oa >= out {
        terminate!();
    }
    let has_b = oa + 1 < out;
    let ob = if has_b { oa + 1 } else { oa };
    let mut dots_a = Array::<f32>::new(rows);
    let mut dots_b = Array::<f32>::new(rows);
    let w_stride = w_stride as usize;
    let n = live_rows as usize;
    let (k, xs) = (k_vectors as usize, x_stride as usize);
    rows_dot2::<F, N>(x, w, w, oa * w_stride, ob * w_stride, xs, n, k, &mut dots_a, &mut dots_b, rows);
    if UNIT_POS_X == 0 {
        let (ys, rs) = (y_stride as usize, residual_stride as usize);
        #[unroll]
        for r in 0..rows {
            if r < n {
                store_product::<F>(dots_a[r], r, oa, bias, residual, y, ys, rs, has_bias, has_residual);
                if has_b {
                    store_product::<F>(dots_b[r], r, ob, bias, residual, y, ys, rs, has_bias, has_residual);
                }
            }
        }
    }
}

/// `y = silu(x · gateᵀ) · (x · upᵀ)` for the `n` (2 to `rows`) rows of `x`, normalised
/// beforehand: one plane per output feature and all rows, the gate and up rows its two weight
/// rows (see `rows_dot2`); `y` contiguous.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gated_gemv_rows_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    gate: &Array<Vector<F, N>>,
    up: &Array<Vector<F, N>>,
    y: &mut Array<F>,
    k_vectors: u32,
    out_features: u32,
    live_rows: u32,
    x_stride: u32,
    gate_stride: u32,
    up_stride: u32,
    #[comptime] rows: usize,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_X as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    if o >= out_features as usize {
        terminate!();
    }
    let mut g = Array::<f32>::new(rows);
    let mut u = Array::<f32>::new(rows);
    let n = live_rows as usize;
    rows_dot2::<F, N>(
        x,
        gate,
        up,
        o * gate_stride as usize,
        o * up_stride as usize,
        x_stride as usize,
        n,
        k_vectors as usize,
        &mut g,
        &mut u,
        rows,
    );
    if UNIT_POS_X == 0 {
        #[unroll]
        for r in 0..rows {
            if r < n {
                y[r * out_features as usize + o] = swiglu_of_products::<F>(g[r], u[r]);
            }
        }
    }
}
