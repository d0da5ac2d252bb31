//! Matrix–vector products for decode: `y[r, o] = Σₖ x[r, k] · w[o, k] (+ bias[o])`, with the
//! layer's neighbours folded in where the decoder has them: the RMSNorm before a projection
//! (computed from the same reads of `x`) and the residual add after one.
//!
//! One plane (warp) per output feature and row: its 32 lanes stride along `k` with 16-byte
//! vector loads, accumulate in f32, and reduce with `plane_sum`. The rows of `x` (a handful at
//! most) are the grid's fastest dimension, so the cubes that read one weight row run together
//! and all but the first read it from L2: the kernel runs at the speed of reading the weights.
//!
//! Like every zoo kernel, these take flat arrays and their row strides as scalars: CubeCL
//! passes scalars in the launch's parameters, while a tensor argument's shape and strides are
//! uploaded to the GPU at every launch.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// Planes per cube: output features handled by one cube.
pub(crate) const PLANES: u32 = 8;

/// Input vector `v` (at vector index `i` of its row) as the product reads it: as stored, or
/// times the norm's weight `norm_w` when `weighted` (the row's RMS scale is applied to the
/// finished sum).
#[cube]
fn scaled<F: Float, N: Size>(
    v: Vector<f32, N>,
    norm_w: &Array<Vector<F, N>>,
    i: usize,
    #[comptime] weighted: bool,
) -> Vector<f32, N> {
    let mut v = v;
    if weighted {
        v *= Vector::<f32, N>::cast_from(norm_w[i]);
    }
    v
}

/// `1 / sqrt(mean(x²) + eps)` of a row from the plane's per-lane sums of squares `squares`
/// over its `cols` elements.
#[cube]
fn inv_rms(squares: f32, cols: usize, eps: f32) -> f32 {
    let total = plane_sum(squares);
    1.0f32 / f32::sqrt(total / f32::cast_from(cols as u32) + eps)
}

/// `Σ v[j]²`: one vector's share of a row's sum of squares, kept in one register.
#[cube]
fn square_sum<N: Size>(v: Vector<f32, N>) -> f32 {
    let mut s = 0.0f32;
    #[unroll]
    for j in 0..v.size() {
        s += v[j] * v[j];
    }
    s
}

/// The plane's dot product of `k_vectors` vectors of `x` from `x_off` with those of `w` from
/// `w_off` (every lane gets the sum). With `normed`, `x` is RMS-normalised first (times `norm_w`
/// when `weighted`): its sum of squares is gathered in the same pass, so the norm before a
/// projection costs no launch and no extra read of the weights. Each lane keeps four loads of
/// `w` in flight: with one plane per output feature, a 7B model's projections have too few
/// planes per SM to cover memory latency with one load each.
#[cube]
#[allow(clippy::too_many_arguments)]
fn row_dot<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    x_off: usize,
    w_off: usize,
    k_vectors: usize,
    eps: f32,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
) -> f32 {
    let width = w.vector_size();
    let lanes = CUBE_DIM_X as usize;
    // One accumulator and a scalar sum of squares: registers decide how many planes an SM
    // holds, and planes in flight decide the bandwidth.
    let mut acc = Vector::<f32, N>::new(0.0);
    let mut squares = 0.0f32;
    let mut i = UNIT_POS_X as usize;
    while i + 3 * lanes < k_vectors {
        let w0 = w[w_off + i];
        let w1 = w[w_off + i + lanes];
        let w2 = w[w_off + i + 2 * lanes];
        let w3 = w[w_off + i + 3 * lanes];
        let x0 = Vector::<f32, N>::cast_from(x[x_off + i]);
        let x1 = Vector::<f32, N>::cast_from(x[x_off + i + lanes]);
        let x2 = Vector::<f32, N>::cast_from(x[x_off + i + 2 * lanes]);
        let x3 = Vector::<f32, N>::cast_from(x[x_off + i + 3 * lanes]);
        if normed {
            squares += square_sum::<N>(x0) + square_sum::<N>(x1) + square_sum::<N>(x2) + square_sum::<N>(x3);
        }
        acc += Vector::<f32, N>::cast_from(w0) * scaled::<F, N>(x0, norm_w, i, weighted);
        acc += Vector::<f32, N>::cast_from(w1) * scaled::<F, N>(x1, norm_w, i + lanes, weighted);
        acc += Vector::<f32, N>::cast_from(w2) * scaled::<F, N>(x2, norm_w, i + 2 * lanes, weighted);
        acc += Vector::<f32, N>::cast_from(w3) * scaled::<F, N>(x3, norm_w, i + 3 * lanes, weighted);
        i += 4 * lanes;
    }
    while i < k_vectors {
        let xv = Vector::<f32, N>::cast_from(x[x_off + i]);
        if normed {
            squares += square_sum::<N>(xv);
        }
        acc += Vector::<f32, N>::cast_from(w[w_off + i]) * scaled::<F, N>(xv, norm_w, i, weighted);
        i += lanes;
    }
    let mut sum = 0.0f32;
    #[unroll]
    for j in 0..width {
        sum += acc[j];
    }
    let mut dot = plane_sum(sum);
    if normed {
        dot *= inv_rms(squares, k_vectors * width, eps);
    }
    dot
}

/// `y = residual + norm(x) · wᵀ (+ bias)` (each part when its flag says so); one plane per
/// (output feature, row). The product is rounded to `F` before the residual is added, as the
/// unfused ops round. Strides of `x` and `w` count vectors, those of `y` and `residual`
/// elements.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    bias: &Array<F>,
    residual: &Array<F>,
    y: &mut Array<F>,
    k_vectors: u32,
    out_features: u32,
    x_stride: u32,
    w_stride: u32,
    y_stride: u32,
    residual_stride: u32,
    eps: f32,
    #[comptime] has_bias: bool,
    #[comptime] has_residual: bool,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    if o >= out_features as usize {
        terminate!();
    }
    let x_off = r * x_stride as usize;
    let w_off = o * w_stride as usize;
    let mut value = row_dot::<F, N>(x, norm_w, w, x_off, w_off, k_vectors as usize, eps, normed, weighted);
    if UNIT_POS_X == 0 {
        if has_bias {
            value += f32::cast_from(bias[o]);
        }
        if has_residual {
            value = f32::cast_from(F::cast_from(value)) + f32::cast_from(residual[r * residual_stride as usize + o]);
        }
        y[r * y_stride as usize + o] = F::cast_from(value);
    }
}

/// Three linears of one (normalised, with `normed`) input in one launch (attention's q, k and v): output features
/// `0..n0` are `w0`'s, then `n1` of `w1`'s, then `w2`'s; `bias_mask` bit `i` says `bᵢ` is real.
/// The outputs are contiguous (`yᵢ` rows of `nᵢ`).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv3_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    w0: &Array<Vector<F, N>>,
    w1: &Array<Vector<F, N>>,
    w2: &Array<Vector<F, N>>,
    b0: &Array<F>,
    b1: &Array<F>,
    b2: &Array<F>,
    y0: &mut Array<F>,
    y1: &mut Array<F>,
    y2: &mut Array<F>,
    k_vectors: u32,
    x_stride: u32,
    n0: u32,
    n1: u32,
    n2: u32,
    w0_stride: u32,
    w1_stride: u32,
    w2_stride: u32,
    eps: f32,
    #[comptime] bias_mask: u32,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    let (n0, n1, n2) = (n0 as usize, n1 as usize, n2 as usize);
    if o >= n0 + n1 + n2 {
        terminate!();
    }
    let x_off = r * x_stride as usize;
    let k = k_vectors as usize;
    if o < n0 {
        let mut value = row_dot::<F, N>(x, norm_w, w0, x_off, o * w0_stride as usize, k, eps, normed, weighted);
        if UNIT_POS_X == 0 {
            if bias_mask & 1 != 0 {
                value += f32::cast_from(b0[o]);
            }
            y0[r * n0 + o] = F::cast_from(value);
        }
    } else if o < n0 + n1 {
        let o1 = o - n0;
        let mut value = row_dot::<F, N>(x, norm_w, w1, x_off, o1 * w1_stride as usize, k, eps, normed, weighted);
        if UNIT_POS_X == 0 {
            if bias_mask & 2 != 0 {
                value += f32::cast_from(b1[o1]);
            }
            y1[r * n1 + o1] = F::cast_from(value);
        }
    } else {
        let o2 = o - n0 - n1;
        let mut value = row_dot::<F, N>(x, norm_w, w2, x_off, o2 * w2_stride as usize, k, eps, normed, weighted);
        if UNIT_POS_X == 0 {
            if bias_mask & 4 != 0 {
                value += f32::cast_from(b2[o2]);
            }
            y2[r * n2 + o2] = F::cast_from(value);
        }
    }
}

/// `y = silu(norm(x) · gateᵀ) · (norm(x) · upᵀ)` (`norm` with `normed`, see `row_dot`): both
/// rows read in one pass by one plane; `y` contiguous.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gated_gemv_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    gate: &Array<Vector<F, N>>,
    up: &Array<Vector<F, N>>,
    y: &mut Array<F>,
    k_vectors: u32,
    out_features: u32,
    x_stride: u32,
    gate_stride: u32,
    up_stride: u32,
    eps: f32,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    if o >= out_features as usize {
        terminate!();
    }
    let width = gate.vector_size();
    let k_vectors = k_vectors as usize;
    let g_off = o * gate_stride as usize;
    let u_off = o * up_stride as usize;
    let x_off = r * x_stride as usize;
    let lanes = CUBE_DIM_X as usize;
    let mut acc_g = Vector::<f32, N>::new(0.0);
    let mut acc_u = Vector::<f32, N>::new(0.0);
    let mut squares = 0.0f32;
    let mut i = UNIT_POS_X as usize;
    // Two steps per iteration: four weight loads in flight per lane (see `row_dot`).
    while i + lanes < k_vectors {
        let g0 = gate[g_off + i];
        let u0 = up[u_off + i];
        let g1 = gate[g_off + i + lanes];
        let u1 = up[u_off + i + lanes];
        let x0 = Vector::<f32, N>::cast_from(x[x_off + i]);
        let x1 = Vector::<f32, N>::cast_from(x[x_off + i + lanes]);
        if normed {
            squares += square_sum::<N>(x0) + square_sum::<N>(x1);
        }
        let x0 = scaled::<F, N>(x0, norm_w, i, weighted);
        let x1 = scaled::<F, N>(x1, norm_w, i + lanes, weighted);
        acc_g += Vector::<f32, N>::cast_from(g0) * x0;
        acc_u += Vector::<f32, N>::cast_from(u0) * x0;
        acc_g += Vector::<f32, N>::cast_from(g1) * x1;
        acc_u += Vector::<f32, N>::cast_from(u1) * x1;
        i += 2 * lanes;
    }
    while i < k_vectors {
        let xv = Vector::<f32, N>::cast_from(x[x_off + i]);
        if normed {
            squares += square_sum::<N>(xv);
        }
        let xv = scaled::<F, N>(xv, norm_w, i, weighted);
        acc_g += Vector::<f32, N>::cast_from(gate[g_off + i]) * xv;
        acc_u += Vector::<f32, N>::cast_from(up[u_off + i]) * xv;
        i += lanes;
    }
    let mut g = 0.0f32;
    let mut u = 0.0f32;
    #[unroll]
    for j in 0..width {
        g += acc_g[j];
        u += acc_u[j];
    }
    let mut g = plane_sum(g);
    let mut u = plane_sum(u);
    if normed {
        let inv = inv_rms(squares, k_vectors * width, eps);
        g *= inv;
        u *= inv;
    }
    if UNIT_POS_X == 0 {
        // Rounded like the unfused ops: each product to F, then silu(gate) · up.
        let g = f32::cast_from(F::cast_from(g));
        let u = f32::cast_from(F::cast_from(u));
        let silu = g / (1.0f32 + f32::exp(-g));
        y[r * out_features as usize + o] = F::cast_from(silu * u);
    }
}
