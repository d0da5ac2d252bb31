//! Matrix–vector products for decode: `y[r, o] = Σₖ x[r, k] · w[o, k] (+ bias[o])`.
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

/// The plane's dot product of `k_vectors` vectors of `x` from `x_off` with those of `w` from
/// `w_off` (every lane gets the sum). Each lane keeps four loads of `w` in flight: with one
/// plane per output feature, a 7B model's projections have too few planes per SM to cover
/// memory latency with one load each.
#[cube]
fn row_dot<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    x_off: usize,
    w_off: usize,
    k_vectors: usize,
) -> f32 {
    let width = w.vector_size();
    let lanes = CUBE_DIM_X as usize;
    let mut acc0 = Vector::<f32, N>::new(0.0);
    let mut acc1 = Vector::<f32, N>::new(0.0);
    let mut acc2 = Vector::<f32, N>::new(0.0);
    let mut acc3 = Vector::<f32, N>::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i + 3 * lanes < k_vectors {
        let w0 = w[w_off + i];
        let w1 = w[w_off + i + lanes];
        let w2 = w[w_off + i + 2 * lanes];
        let w3 = w[w_off + i + 3 * lanes];
        acc0 += Vector::<f32, N>::cast_from(w0) * Vector::<f32, N>::cast_from(x[x_off + i]);
        acc1 += Vector::<f32, N>::cast_from(w1) * Vector::<f32, N>::cast_from(x[x_off + i + lanes]);
        acc2 += Vector::<f32, N>::cast_from(w2) * Vector::<f32, N>::cast_from(x[x_off + i + 2 * lanes]);
        acc3 += Vector::<f32, N>::cast_from(w3) * Vector::<f32, N>::cast_from(x[x_off + i + 3 * lanes]);
        i += 4 * lanes;
    }
    while i < k_vectors {
        acc0 += Vector::<f32, N>::cast_from(w[w_off + i]) * Vector::<f32, N>::cast_from(x[x_off + i]);
        i += lanes;
    }
    let acc = acc0 + acc1 + acc2 + acc3;
    let mut sum = 0.0f32;
    #[unroll]
    for j in 0..width {
        sum += acc[j];
    }
    plane_sum(sum)
}

/// `y = x · wᵀ (+ bias)`; one plane per (output feature, row). Strides of `x` and `w` count
/// vectors, that of `y` elements.
#[cube(launch_unchecked)]
pub(crate) fn gemv_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    bias: &Array<F>,
    y: &mut Array<F>,
    k_vectors: u32,
    out_features: u32,
    x_stride: u32,
    w_stride: u32,
    y_stride: u32,
    #[comptime] has_bias: bool,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    if o >= out_features as usize {
        terminate!();
    }
    let mut value = row_dot::<F, N>(x, w, r * x_stride as usize, o * w_stride as usize, k_vectors as usize);
    if UNIT_POS_X == 0 {
        if has_bias {
            value += f32::cast_from(bias[o]);
        }
        y[r * y_stride as usize + o] = F::cast_from(value);
    }
}

/// Three linears of one input in one launch (attention's q, k and v): output features
/// `0..n0` are `w0`'s, then `n1` of `w1`'s, then `w2`'s; `bias_mask` bit `i` says `bᵢ` is real.
/// The outputs are contiguous (`yᵢ` rows of `nᵢ`).
#[cube(launch_unchecked)]
pub(crate) fn gemv3_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
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
    #[comptime] bias_mask: u32,
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
        let mut value = row_dot::<F, N>(x, w0, x_off, o * w0_stride as usize, k);
        if UNIT_POS_X == 0 {
            if bias_mask & 1 != 0 {
                value += f32::cast_from(b0[o]);
            }
            y0[r * n0 + o] = F::cast_from(value);
        }
    } else if o < n0 + n1 {
        let o1 = o - n0;
        let mut value = row_dot::<F, N>(x, w1, x_off, o1 * w1_stride as usize, k);
        if UNIT_POS_X == 0 {
            if bias_mask & 2 != 0 {
                value += f32::cast_from(b1[o1]);
            }
            y1[r * n1 + o1] = F::cast_from(value);
        }
    } else {
        let o2 = o - n0 - n1;
        let mut value = row_dot::<F, N>(x, w2, x_off, o2 * w2_stride as usize, k);
        if UNIT_POS_X == 0 {
            if bias_mask & 4 != 0 {
                value += f32::cast_from(b2[o2]);
            }
            y2[r * n2 + o2] = F::cast_from(value);
        }
    }
}

/// `y = silu(x · gateᵀ) · (x · upᵀ)`: both rows read in one pass by one plane; `y` contiguous.
#[cube(launch_unchecked)]
pub(crate) fn gated_gemv_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    gate: &Array<Vector<F, N>>,
    up: &Array<Vector<F, N>>,
    y: &mut Array<F>,
    k_vectors: u32,
    out_features: u32,
    x_stride: u32,
    gate_stride: u32,
    up_stride: u32,
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
    let mut acc_g2 = Vector::<f32, N>::new(0.0);
    let mut acc_u2 = Vector::<f32, N>::new(0.0);
    let mut i = UNIT_POS_X as usize;
    // Two steps per iteration: four weight loads in flight per lane (see `row_dot`).
    while i + lanes < k_vectors {
        let g0 = gate[g_off + i];
        let u0 = up[u_off + i];
        let g1 = gate[g_off + i + lanes];
        let u1 = up[u_off + i + lanes];
        let x0 = Vector::<f32, N>::cast_from(x[x_off + i]);
        let x1 = Vector::<f32, N>::cast_from(x[x_off + i + lanes]);
        acc_g += Vector::<f32, N>::cast_from(g0) * x0;
        acc_u += Vector::<f32, N>::cast_from(u0) * x0;
        acc_g2 += Vector::<f32, N>::cast_from(g1) * x1;
        acc_u2 += Vector::<f32, N>::cast_from(u1) * x1;
        i += 2 * lanes;
    }
    while i < k_vectors {
        let xv = Vector::<f32, N>::cast_from(x[x_off + i]);
        acc_g += Vector::<f32, N>::cast_from(gate[g_off + i]) * xv;
        acc_u += Vector::<f32, N>::cast_from(up[u_off + i]) * xv;
        i += lanes;
    }
    let acc_g = acc_g + acc_g2;
    let acc_u = acc_u + acc_u2;
    let mut g = 0.0f32;
    let mut u = 0.0f32;
    #[unroll]
    for j in 0..width {
        g += acc_g[j];
        u += acc_u[j];
    }
    let g = plane_sum(g);
    let u = plane_sum(u);
    if UNIT_POS_X == 0 {
        // Rounded like the unfused ops: each product to F, then silu(gate) · up.
        let g = f32::cast_from(F::cast_from(g));
        let u = f32::cast_from(F::cast_from(u));
        let silu = g / (1.0f32 + f32::exp(-g));
        y[r * out_features as usize + o] = F::cast_from(silu * u);
    }
}
