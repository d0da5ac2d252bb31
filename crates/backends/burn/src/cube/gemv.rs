//! Matrix–vector products for decode: `y[r, o] = Σₖ x[r, k] · w[o, k] (+ bias[o])`.
//!
//! One plane (warp) per output feature and row: its 32 lanes stride along `k` with 16-byte
//! vector loads, accumulate in f32, and reduce with `plane_sum`. The rows of `x` (a handful at
//! most) are the grid's fastest dimension, so the cubes that read one weight row run together
//! and all but the first read it from L2: the kernel runs at the speed of reading the weights.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// Planes per cube: output features handled by one cube.
pub(crate) const PLANES: u32 = 8;

/// The plane's dot product of row `x_row` of `x` with row `o` of `w` (every lane gets it).
#[cube]
fn row_dot<F: Float, N: Size>(x: &Tensor<Vector<F, N>>, w: &Tensor<Vector<F, N>>, x_row: usize, o: usize) -> f32 {
    let width = w.vector_size();
    let k_vectors = w.shape(1) / width;
    let w_off = o * (w.stride(0) / width);
    let x_off = x_row * (x.stride(0) / width);
    let mut acc = Vector::<f32, N>::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < k_vectors {
        acc += Vector::<f32, N>::cast_from(w[w_off + i]) * Vector::<f32, N>::cast_from(x[x_off + i]);
        i += CUBE_DIM_X as usize;
    }
    let mut sum = 0.0f32;
    #[unroll]
    for j in 0..width {
        sum += acc[j];
    }
    plane_sum(sum)
}

/// `y = x · wᵀ (+ bias)`; one plane per (output feature, row).
#[cube(launch_unchecked)]
pub(crate) fn gemv_kernel<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    w: &Tensor<Vector<F, N>>,
    bias: &Tensor<F>,
    y: &mut Tensor<F>,
    #[comptime] has_bias: bool,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    if o >= w.shape(0) {
        terminate!();
    }
    let mut value = row_dot::<F, N>(x, w, r, o);
    if UNIT_POS_X == 0 {
        if has_bias {
            value += f32::cast_from(bias[o]);
        }
        y[r * y.stride(0) + o] = F::cast_from(value);
    }
}

/// Three linears of one input in one launch (attention's q, k and v): output features
/// `0..n0` are `w0`'s, then `w1`'s, then `w2`'s; `bias_mask` bit `i` says `bᵢ` is real.
#[cube(launch_unchecked)]
pub(crate) fn gemv3_kernel<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    w0: &Tensor<Vector<F, N>>,
    w1: &Tensor<Vector<F, N>>,
    w2: &Tensor<Vector<F, N>>,
    b0: &Tensor<F>,
    b1: &Tensor<F>,
    b2: &Tensor<F>,
    y0: &mut Tensor<F>,
    y1: &mut Tensor<F>,
    y2: &mut Tensor<F>,
    #[comptime] bias_mask: u32,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    let (n0, n1) = (w0.shape(0), w1.shape(0));
    if o >= n0 + n1 + w2.shape(0) {
        terminate!();
    }
    if o < n0 {
        let mut value = row_dot::<F, N>(x, w0, r, o);
        if UNIT_POS_X == 0 {
            if bias_mask & 1 != 0 {
                value += f32::cast_from(b0[o]);
            }
            y0[r * y0.stride(0) + o] = F::cast_from(value);
        }
    } else if o < n0 + n1 {
        let o1 = o - n0;
        let mut value = row_dot::<F, N>(x, w1, r, o1);
        if UNIT_POS_X == 0 {
            if bias_mask & 2 != 0 {
                value += f32::cast_from(b1[o1]);
            }
            y1[r * y1.stride(0) + o1] = F::cast_from(value);
        }
    } else {
        let o2 = o - n0 - n1;
        let mut value = row_dot::<F, N>(x, w2, r, o2);
        if UNIT_POS_X == 0 {
            if bias_mask & 4 != 0 {
                value += f32::cast_from(b2[o2]);
            }
            y2[r * y2.stride(0) + o2] = F::cast_from(value);
        }
    }
}

/// `y = silu(x · gateᵀ) · (x · upᵀ)`: both rows read in one pass by one plane.
#[cube(launch_unchecked)]
pub(crate) fn gated_gemv_kernel<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    gate: &Tensor<Vector<F, N>>,
    up: &Tensor<Vector<F, N>>,
    y: &mut Tensor<F>,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    if o >= gate.shape(0) {
        terminate!();
    }
    let width = gate.vector_size();
    let k_vectors = gate.shape(1) / width;
    let g_off = o * (gate.stride(0) / width);
    let u_off = o * (up.stride(0) / width);
    let x_off = r * (x.stride(0) / width);
    let mut acc_g = Vector::<f32, N>::new(0.0);
    let mut acc_u = Vector::<f32, N>::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < k_vectors {
        let xv = Vector::<f32, N>::cast_from(x[x_off + i]);
        acc_g += Vector::<f32, N>::cast_from(gate[g_off + i]) * xv;
        acc_u += Vector::<f32, N>::cast_from(up[u_off + i]) * xv;
        i += CUBE_DIM_X as usize;
    }
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
        y[r * y.stride(0) + o] = F::cast_from(silu * u);
    }
}
