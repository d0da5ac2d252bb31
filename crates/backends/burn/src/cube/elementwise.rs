//! Row-wise and elementwise kernels of a decoder layer: RMSNorm (one cube per row, f32
//! accumulation), SwiGLU's `silu(gate) · up`, and rotary embeddings from the step's table rows.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// Most threads of a row-reduction cube.
pub(crate) const ROW_THREADS: u32 = 1024;

/// Most vectors of a row one RMSNorm thread holds in registers (rows up to 64 Ki bf16).
pub(crate) const ROW_VECTORS: usize = 8;

/// Publishes each plane's `plane_value` (the same in every lane of the plane) in `scratch`,
/// one slot per plane, and waits for the whole cube; returns how many planes wrote.
#[cube]
fn share_planes(plane_value: f32, scratch: &mut SharedMemory<f32>) -> u32 {
    let plane = UNIT_POS_X / PLANE_DIM;
    if UNIT_POS_PLANE == 0 {
        scratch[plane as usize] = plane_value;
    }
    sync_cube();
    CUBE_DIM_X / PLANE_DIM
}

/// Sum of `value` over the cube, through each plane's sum and shared memory.
#[cube]
pub(crate) fn cube_sum(value: f32, scratch: &mut SharedMemory<f32>) -> f32 {
    let planes = share_planes(plane_sum(value), scratch);
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
    let planes = share_planes(plane_max(value), scratch);
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

/// RMSNorm of each row of `x` (one cube per row, `vectors` vectors of `N` wide); with
/// `has_residual`, of `x + residual`, whose sum (rounded to `F`, as the unfused add would) is
/// written to `sum`. Each thread loads its `per_thread` vectors at once and keeps them in
/// registers for the second pass, so a row costs one round of memory latency, not one per
/// element. `sum` and `y` are contiguous; strides count vectors.
#[cube(launch_unchecked)]
pub(crate) fn rms_norm_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    residual: &Array<Vector<F, N>>,
    weight: &Array<Vector<F, N>>,
    sum: &mut Array<Vector<F, N>>,
    y: &mut Array<Vector<F, N>>,
    eps: f32,
    cols: u32,
    vectors: u32,
    x_stride: u32,
    residual_stride: u32,
    #[comptime] per_thread: usize,
    #[comptime] has_residual: bool,
    #[comptime] has_weight: bool,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let vectors = vectors as usize;
    let x_row = row * x_stride as usize;
    let r_row = row * residual_stride as usize;
    let out_row = row * vectors;
    let width = x.vector_size();
    let mut held = Array::<Vector<f32, N>>::new(per_thread);
    #[unroll]
    for j in 0..per_thread {
        let c = UNIT_POS_X as usize + j * CUBE_DIM_X as usize;
        let mut v = Vector::<f32, N>::new(0.0);
        if c < vectors {
            v = Vector::<f32, N>::cast_from(x[x_row + c]);
            if has_residual {
                let total = Vector::<F, N>::cast_from(v + Vector::<f32, N>::cast_from(residual[r_row + c]));
                sum[out_row + c] = total;
                v = Vector::<f32, N>::cast_from(total);
            }
        }
        held[j] = v;
    }
    let mut squares = 0.0f32;
    #[unroll]
    for j in 0..per_thread {
        let v = held[j];
        #[unroll]
        for e in 0..width {
            squares += v[e] * v[e];
        }
    }
    let mut scratch = SharedMemory::<f32>::new(32usize);
    let total = cube_sum(squares, &mut scratch);
    let inv = 1.0f32 / f32::sqrt(total / f32::cast_from(cols) + eps);
    #[unroll]
    for j in 0..per_thread {
        let c = UNIT_POS_X as usize + j * CUBE_DIM_X as usize;
        if c < vectors {
            let mut v = held[j] * Vector::<f32, N>::new(inv);
            if has_weight {
                v *= Vector::<f32, N>::cast_from(weight[c]);
            }
            y[out_row + c] = Vector::<F, N>::cast_from(v);
        }
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

/// Row `ids[r]` of `table` to row `r` of `out` (the token embedding): one cube per row, threads
/// striding over its `row_vectors` vectors; `table_stride` counts vectors between table rows.
/// Token ids are read on the device, so a recorded decode step replays with new ids.
#[cube(launch_unchecked)]
pub(crate) fn gather_rows_kernel<F: Float, N: Size, I: Numeric>(
    table: &Array<Vector<F, N>>,
    ids: &Array<I>,
    out: &mut Array<Vector<F, N>>,
    row_vectors: u32,
    table_stride: u32,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let row = CUBE_POS_X as usize;
    let id = u32::cast_from(ids[row]) as usize;
    let src = id * table_stride as usize;
    let dst = row * row_vectors as usize;
    let mut c = UNIT_POS_X as usize;
    while c < row_vectors as usize {
        out[dst + c] = table[src + c];
        c += CUBE_DIM_X as usize;
    }
}
