//! Row-wise and elementwise kernels of a decoder layer: RMSNorm (one cube per row, f32
//! accumulation), SwiGLU's `silu(gate) · up`, and rotary embeddings from the step's table rows.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// Threads of a row-reduction cube.
pub(crate) const ROW_THREADS: u32 = 256;

/// Sum of `value` over the cube, through each plane's sum and shared memory.
#[cube]
pub(crate) fn cube_sum(value: f32, scratch: &mut SharedMemory<f32>) -> f32 {
    let plane_total = plane_sum(value);
    let plane = UNIT_POS_X / PLANE_DIM;
    if UNIT_POS_PLANE == 0 {
        scratch[plane as usize] = plane_total;
    }
    sync_cube();
    let planes = CUBE_DIM_X / PLANE_DIM;
    let mut total = 0.0f32;
    for p in 0..planes {
        total += scratch[p as usize];
    }
    sync_cube();
    total
}

/// Largest `value` over the cube.
#[cube]
pub(crate) fn cube_max(value: f32, scratch: &mut SharedMemory<f32>) -> f32 {
    let plane_best = plane_max(value);
    let plane = UNIT_POS_X / PLANE_DIM;
    if UNIT_POS_PLANE == 0 {
        scratch[plane as usize] = plane_best;
    }
    sync_cube();
    let planes = CUBE_DIM_X / PLANE_DIM;
    let mut best = scratch[0];
    for p in 1..planes {
        let candidate = scratch[p as usize];
        if candidate > best {
            best = candidate;
        }
    }
    sync_cube();
    best
}

/// RMSNorm of each row of `x` (one cube per row, `cols` wide); with `has_residual`, of
/// `x + residual`, whose sum (rounded to `F`, as the unfused add would) is written to `sum`.
/// `sum` and `y` are contiguous.
#[cube(launch_unchecked)]
pub(crate) fn rms_norm_kernel<F: Float>(
    x: &Array<F>,
    residual: &Array<F>,
    weight: &Array<F>,
    sum: &mut Array<F>,
    y: &mut Array<F>,
    eps: f32,
    cols: u32,
    x_stride: u32,
    residual_stride: u32,
    #[comptime] has_residual: bool,
    #[comptime] has_weight: bool,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let cols = cols as usize;
    let x_row = row * x_stride as usize;
    let r_row = row * residual_stride as usize;
    let out_row = row * cols;
    let mut scratch = SharedMemory::<f32>::new(32usize);
    let mut squares = 0.0f32;
    let mut c = UNIT_POS_X as usize;
    while c < cols {
        let mut v = f32::cast_from(x[x_row + c]);
        if has_residual {
            let total = F::cast_from(v + f32::cast_from(residual[r_row + c]));
            sum[out_row + c] = total;
            v = f32::cast_from(total);
        }
        squares += v * v;
        c += CUBE_DIM_X as usize;
    }
    let total = cube_sum(squares, &mut scratch);
    let inv = 1.0f32 / f32::sqrt(total / f32::cast_from(cols as u32) + eps);
    let mut c = UNIT_POS_X as usize;
    while c < cols {
        let mut v = f32::cast_from(x[x_row + c]);
        if has_residual {
            v = f32::cast_from(sum[out_row + c]);
        }
        v *= inv;
        if has_weight {
            v *= f32::cast_from(weight[c]);
        }
        y[out_row + c] = F::cast_from(v);
        c += CUBE_DIM_X as usize;
    }
}

/// `y = silu(gate) · up` over `rows × cols`; `y` contiguous.
#[cube(launch_unchecked)]
pub(crate) fn silu_mul_kernel<F: Float>(
    gate: &Array<F>,
    up: &Array<F>,
    y: &mut Array<F>,
    rows: u32,
    cols: u32,
    gate_stride: u32,
    up_stride: u32,
    #[define(F)] _dtype: StorageType,
) {
    let cols = cols as usize;
    let i = ABSOLUTE_POS;
    if i >= rows as usize * cols {
        terminate!();
    }
    let row = i / cols;
    let c = i % cols;
    let g = f32::cast_from(gate[row * gate_stride as usize + c]);
    let u = f32::cast_from(up[row * up_stride as usize + c]);
    let silu = g / (1.0f32 + f32::exp(-g));
    y[i] = F::cast_from(silu * u);
}

/// `x: [rows, cols = heads · head_dim]`, `cos, sin: [rows, head_dim / 2]`; one unit per
/// rotated pair; `y` contiguous.
#[cube(launch_unchecked)]
pub(crate) fn rope_kernel<F: Float>(
    x: &Array<F>,
    cos: &Array<F>,
    sin: &Array<F>,
    y: &mut Array<F>,
    rows: u32,
    cols: u32,
    x_stride: u32,
    cos_stride: u32,
    sin_stride: u32,
    #[comptime] head_dim: usize,
    #[define(F)] _dtype: StorageType,
) {
    let half = head_dim / 2;
    let pairs_per_row = cols as usize / 2;
    let i = ABSOLUTE_POS;
    if i >= rows as usize * pairs_per_row {
        terminate!();
    }
    let row = i / pairs_per_row;
    let pair = i % pairs_per_row;
    let head = pair / half;
    let c = pair % half;
    let first = row * x_stride as usize + head * head_dim + c;
    let x1 = f32::cast_from(x[first]);
    let x2 = f32::cast_from(x[first + half]);
    let cs = f32::cast_from(cos[row * cos_stride as usize + c]);
    let sn = f32::cast_from(sin[row * sin_stride as usize + c]);
    let out = row * cols as usize + head * head_dim + c;
    y[out] = F::cast_from(x1 * cs - x2 * sn);
    y[out + half] = F::cast_from(x2 * cs + x1 * sn);
}
