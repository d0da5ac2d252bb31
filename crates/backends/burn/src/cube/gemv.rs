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

use super::first_round::{inputs_ready_if, inputs_ready_unless, load_round, load_round2, ROUND};

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

/// Vector `i` of row `x_off` of `x` as a plane reads it itself: widened to f32, its squares
/// added to `squares` when `normed` (the row's norm is applied to the finished sum), times the
/// norm's weight when `weighted`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn read_input<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    x_off: usize,
    i: usize,
    squares: &mut f32,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
) -> Vector<f32, N> {
    let v = Vector::<f32, N>::cast_from(x[x_off + i]);
    if normed {
        *squares += square_sum::<N>(v);
    }
    scaled::<F, N>(v, norm_w, i, weighted)
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
/// `w_off` (every lane gets the sum), the first round of `w`'s loads already in `first` (see
/// [`load_round`]). With `normed`, `x` is RMS-normalised first (times `norm_w` when
/// `weighted`): its sum of squares is gathered in the same pass, so the norm before a
/// projection costs no launch and no extra read of the weights. Each lane keeps four loads of
/// `w` in flight: with one plane per output feature, a 7B model's projections have too few
/// planes per SM to cover memory latency with one load each.
#[cube]
#[allow(clippy::too_many_arguments)]
fn row_dot<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    first: &Array<Vector<F, N>>,
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
    // The first round: `x` read (zero past the row, where `first` is zero too), then multiplied.
    let mut xs = Array::<Vector<f32, N>>::new(ROUND);
    #[unroll]
    for j in 0..ROUND {
        let i = UNIT_POS_X as usize + j * lanes;
        let mut v = Vector::<f32, N>::new(0.0);
        if i < k_vectors {
            v = read_input::<F, N>(x, norm_w, x_off, i, &mut squares, normed, weighted);
        }
        xs[j] = v;
    }
    #[unroll]
    for j in 0..ROUND {
        acc += Vector::<f32, N>::cast_from(first[j]) * xs[j];
    }
    let mut i = UNIT_POS_X as usize + ROUND * lanes;
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
        let xv = read_input::<F, N>(x, norm_w, x_off, i, &mut squares, normed, weighted);
        acc += Vector::<f32, N>::cast_from(w[w_off + i]) * xv;
        i += lanes;
    }
    let mut dot = plane_sum(horizontal_sum::<N>(acc));
    if normed {
        dot *= inv_rms(squares, k_vectors * width, eps);
    }
    dot
}

/// Elements of `x` up to which a cube stages its row in shared memory (32 KiB of f32).
pub(crate) const STAGED_MAX_ELEMENTS: usize = 8192;

/// Row `x_off` of `x` (`k_vectors` vectors) staged in `staged` for every plane of the cube:
/// widened to f32 once, times the norm's weight when `weighted`, so that the planes' loops
/// only load weights and multiply (folded into each plane's loop, the norm cost each weight
/// vector two more loads, sixteen conversions and sixteen multiplies, which made the q/k/v
/// GEMV issue-bound at about half the copy bandwidth). Returns the row's `1 / rms` when
/// `normed`, else 1. Every unit of the cube must call this (it synchronises the cube).
#[cube]
#[allow(clippy::too_many_arguments)]
fn stage_row<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    x_off: usize,
    k_vectors: usize,
    eps: f32,
    staged: &mut SharedMemory<Vector<f32, N>>,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
) -> f32 {
    let lanes = CUBE_DIM_X as usize;
    let units = lanes * CUBE_DIM_Y as usize;
    let mut squares = 0.0f32;
    let mut i = UNIT_POS_Y as usize * lanes + UNIT_POS_X as usize;
    while i < k_vectors {
        staged[i] = read_input::<F, N>(x, norm_w, x_off, i, &mut squares, normed, weighted);
        i += units;
    }
    let mut partial = SharedMemory::<f32>::new(PLANES as usize);
    if normed {
        let plane_total = plane_sum(squares);
        if UNIT_POS_X == 0 {
            partial[UNIT_POS_Y as usize] = plane_total;
        }
    }
    sync_cube();
    let mut inv = 1.0f32;
    if normed {
        let mut total = 0.0f32;
        for p in 0..CUBE_DIM_Y as usize {
            total += partial[p];
        }
        inv = 1.0f32 / f32::sqrt(total / f32::cast_from((k_vectors * x.vector_size()) as u32) + eps);
    }
    inv
}

/// `Σᵢ staged[i] · w[w_off + i]` over a row staged by [`stage_row`], every lane getting the
/// sum, the first round of `w`'s loads already in `first`; four weight loads in flight per lane
/// (see `row_dot`).
#[cube]
fn staged_dot<F: Float, N: Size>(
    staged: &SharedMemory<Vector<f32, N>>,
    first: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    w_off: usize,
    k_vectors: usize,
) -> f32 {
    let lanes = CUBE_DIM_X as usize;
    let mut acc = Vector::<f32, N>::new(0.0);
    #[unroll]
    for j in 0..ROUND {
        let i = UNIT_POS_X as usize + j * lanes;
        if i < k_vectors {
            acc += Vector::<f32, N>::cast_from(first[j]) * staged[i];
        }
    }
    let mut i = UNIT_POS_X as usize + ROUND * lanes;
    while i + 3 * lanes < k_vectors {
        let w0 = w[w_off + i];
        let w1 = w[w_off + i + lanes];
        let w2 = w[w_off + i + 2 * lanes];
        let w3 = w[w_off + i + 3 * lanes];
        acc += Vector::<f32, N>::cast_from(w0) * staged[i];
        acc += Vector::<f32, N>::cast_from(w1) * staged[i + lanes];
        acc += Vector::<f32, N>::cast_from(w2) * staged[i + 2 * lanes];
        acc += Vector::<f32, N>::cast_from(w3) * staged[i + 3 * lanes];
        i += 4 * lanes;
    }
    while i < k_vectors {
        acc += Vector::<f32, N>::cast_from(w[w_off + i]) * staged[i];
        i += lanes;
    }
    plane_sum(horizontal_sum::<N>(acc))
}

/// The sum of a vector's elements.
#[cube]
fn horizontal_sum<N: Size>(v: Vector<f32, N>) -> f32 {
    let mut sum = 0.0f32;
    #[unroll]
    for j in 0..v.size() {
        sum += v[j];
    }
    sum
}

/// A plane's dot product of row `x_off` of `x` (normalised with `normed`) with weight row
/// `w_off` of `w`: from the cube's staged copy (`staged_vectors` > 0; `inv` is its `1 / rms`) or
/// read and normalised by the plane itself (`row_dot`); `first` holds the first round of `w`'s
/// loads.
#[cube]
#[allow(clippy::too_many_arguments)]
// `dot` is assigned in one of two comptime branches: the initial value is never read.
#[allow(unused_assignments)]
fn plane_dot<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    staged: &SharedMemory<Vector<f32, N>>,
    inv: f32,
    first: &Array<Vector<F, N>>,
    w: &Array<Vector<F, N>>,
    x_off: usize,
    w_off: usize,
    k_vectors: usize,
    eps: f32,
    #[comptime] staged_vectors: usize,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
) -> f32 {
    let mut dot = 0.0f32;
    if comptime!(staged_vectors > 0) {
        dot = staged_dot::<F, N>(staged, first, w, w_off, k_vectors) * inv;
    } else {
        dot = row_dot::<F, N>(x, norm_w, first, w, x_off, w_off, k_vectors, eps, normed, weighted);
    }
    dot
}

/// `y = residual + norm(x) · wᵀ (+ bias)` (each part when its flag says so); one plane per
/// (output feature, row), the row staged in shared memory when `staged_vectors` > 0 (see
/// [`stage_row`]: a normed launch of many cubes, the LM head), or with `parts` above 1 (no norm), `parts` planes per feature, each
/// summing its share of the row, added in shared memory: a projection with few output
/// features and long rows (Qwen2.5-0.5B's down projection: 896 features of 4 864) otherwise
/// runs too few planes to keep the memory busy. The product is rounded to `F` before the
/// residual is added, as the unfused ops round. Strides of `x` and `w` count vectors, those of
/// `y` and `residual` elements.
#[cube(launch_unchecked)]
// `div_ceil` has no CubeCL expansion: the share is computed by hand.
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
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
    #[comptime] parts: usize,
    #[comptime] staged_vectors: usize,
    #[comptime] has_bias: bool,
    #[comptime] has_residual: bool,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
    #[comptime] early: bool,
    #[define(F)] _dtype: StorageType,
) {
    let r = CUBE_POS_X as usize;
    let x_off = r * x_stride as usize;
    let (ys, rs) = (y_stride as usize, residual_stride as usize);
    if comptime!(parts == 1) {
        let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
        let live = o < out_features as usize;
        let (k, w_off) = (k_vectors as usize, o * w_stride as usize);
        let mut first = Array::<Vector<F, N>>::new(ROUND);
        inputs_ready_unless(early);
        if live {
            load_round::<F, N>(w, w_off, k, &mut first);
        }
        inputs_ready_if(early);
        // Staged (see `stage_row`), every unit of the cube takes part before any leaves.
        let mut staged = SharedMemory::<Vector<f32, N>>::new(comptime!(staged_vectors.max(1)));
        let mut inv = 1.0f32;
        if comptime!(staged_vectors > 0) {
            inv = stage_row::<F, N>(x, norm_w, x_off, k, eps, &mut staged, normed, weighted);
        }
        if !live {
            terminate!();
        }
        let value = plane_dot::<F, N>(
            x,
            norm_w,
            &staged,
            inv,
            &first,
            w,
            x_off,
            w_off,
            k,
            eps,
            staged_vectors,
            normed,
            weighted,
        );
        if UNIT_POS_X == 0 {
            store_product::<F>(value, r, o, bias, residual, y, ys, rs, has_bias, has_residual);
        }
    } else {
        let plane = UNIT_POS_Y as usize;
        let o = CUBE_POS_Y as usize * (CUBE_DIM_Y as usize / parts) + plane / parts;
        let part = plane % parts;
        let k = k_vectors as usize;
        let share = (k + parts - 1) / parts;
        let lo = part * share;
        let mut len = 0usize;
        if lo < k {
            len = k - lo;
            if len > share {
                len = share;
            }
        }
        let mut partial = SharedMemory::<f32>::new(PLANES as usize);
        let mut value = 0.0f32;
        let w_off = o * w_stride as usize + lo;
        let mut first = Array::<Vector<F, N>>::new(ROUND);
        // Uniform per plane: every lane of a plane has the same feature.
        inputs_ready_unless(early);
        if o < out_features as usize {
            load_round::<F, N>(w, w_off, len, &mut first);
        }
        inputs_ready_if(early);
        if o < out_features as usize {
            value = row_dot::<F, N>(x, norm_w, &first, w, x_off + lo, w_off, len, eps, false, false);
        }
        if UNIT_POS_X == 0 {
            partial[plane] = value;
        }
        sync_cube();
        if part == 0 && UNIT_POS_X == 0 && o < out_features as usize {
            let mut total = 0.0f32;
            #[unroll]
            for p in 0..parts {
                total += partial[plane + p];
            }
            store_product::<F>(total, r, o, bias, residual, y, ys, rs, has_bias, has_residual);
        }
    }
}

/// The first lane's store of a plane's product for feature `o`: `+ bias[o]` when `has_bias`,
/// rounded to `F`, at `y[row_off + o]`.
#[cube]
fn store_feature<F: Float>(
    value: f32,
    bias: &Array<F>,
    y: &mut Array<F>,
    row_off: usize,
    o: usize,
    #[comptime] has_bias: bool,
) {
    if UNIT_POS_X == 0 {
        let mut value = value;
        if has_bias {
            value += f32::cast_from(bias[o]);
        }
        y[row_off + o] = F::cast_from(value);
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
    #[comptime] staged_vectors: usize,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
    #[comptime] early: bool,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    let (n0, n1, n2) = (n0 as usize, n1 as usize, n2 as usize);
    let x_off = r * x_stride as usize;
    let k = k_vectors as usize;
    let mut first = Array::<Vector<F, N>>::new(ROUND);
    inputs_ready_unless(early);
    if o < n0 {
        load_round::<F, N>(w0, o * w0_stride as usize, k, &mut first);
    } else if o < n0 + n1 {
        load_round::<F, N>(w1, (o - n0) * w1_stride as usize, k, &mut first);
    } else if o < n0 + n1 + n2 {
        load_round::<F, N>(w2, (o - n0 - n1) * w2_stride as usize, k, &mut first);
    }
    inputs_ready_if(early);
    let mut staged = SharedMemory::<Vector<f32, N>>::new(comptime!(staged_vectors.max(1)));
    let mut inv = 1.0f32;
    if comptime!(staged_vectors > 0) {
        inv = stage_row::<F, N>(x, norm_w, x_off, k, eps, &mut staged, normed, weighted);
    }
    if o >= n0 + n1 + n2 {
        terminate!();
    }
    if o < n0 {
        let w_off = o * w0_stride as usize;
        let value = plane_dot::<F, N>(
            x,
            norm_w,
            &staged,
            inv,
            &first,
            w0,
            x_off,
            w_off,
            k,
            eps,
            staged_vectors,
            normed,
            weighted,
        );
        store_feature::<F>(value, b0, y0, r * n0, o, comptime!(bias_mask & 1 != 0));
    } else if o < n0 + n1 {
        let w_off = (o - n0) * w1_stride as usize;
        let value = plane_dot::<F, N>(
            x,
            norm_w,
            &staged,
            inv,
            &first,
            w1,
            x_off,
            w_off,
            k,
            eps,
            staged_vectors,
            normed,
            weighted,
        );
        store_feature::<F>(value, b1, y1, r * n1, o - n0, comptime!(bias_mask & 2 != 0));
    } else {
        let w_off = (o - n0 - n1) * w2_stride as usize;
        let value = plane_dot::<F, N>(
            x,
            norm_w,
            &staged,
            inv,
            &first,
            w2,
            x_off,
            w_off,
            k,
            eps,
            staged_vectors,
            normed,
            weighted,
        );
        store_feature::<F>(value, b2, y2, r * n2, o - n0 - n1, comptime!(bias_mask & 4 != 0));
    }
}

/// Vector `i` of the (normalised) input row as a product reads it: from the cube's staged copy
/// (`staged_vectors` > 0), or read by the plane itself ([`read_input`]).
#[cube]
#[allow(clippy::too_many_arguments)]
// `v` is assigned in one of two comptime branches: its initial value is never read.
#[allow(unused_assignments)]
fn input_vector<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    norm_w: &Array<Vector<F, N>>,
    staged: &SharedMemory<Vector<f32, N>>,
    x_off: usize,
    i: usize,
    squares: &mut f32,
    #[comptime] staged_vectors: usize,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
) -> Vector<f32, N> {
    let mut v = Vector::<f32, N>::new(0.0);
    if comptime!(staged_vectors > 0) {
        v = staged[i];
    } else {
        v = read_input::<F, N>(x, norm_w, x_off, i, squares, normed, weighted);
    }
    v
}

/// `y = silu(norm(x) · gateᵀ) · (norm(x) · upᵀ)` (`norm` with `normed`, see `row_dot`): both
/// rows read in one pass by one plane, `x` from the cube's staged copy (`staged_vectors` > 0,
/// see [`stage_row`]) or read and normalised by the plane; `y` contiguous.
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
    #[comptime] staged_vectors: usize,
    #[comptime] normed: bool,
    #[comptime] weighted: bool,
    #[comptime] early: bool,
    #[define(F)] _dtype: StorageType,
) {
    let o = CUBE_POS_Y as usize * CUBE_DIM_Y as usize + UNIT_POS_Y as usize;
    let r = CUBE_POS_X as usize;
    let k_vectors = k_vectors as usize;
    let x_off = r * x_stride as usize;
    let g_off = o * gate_stride as usize;
    let u_off = o * up_stride as usize;
    let mut first = Array::<Vector<F, N>>::new(ROUND);
    inputs_ready_unless(early);
    if o < out_features as usize {
        load_round2::<F, N>(gate, up, g_off, u_off, k_vectors, &mut first);
    }
    inputs_ready_if(early);
    let mut staged = SharedMemory::<Vector<f32, N>>::new(comptime!(staged_vectors.max(1)));
    let mut inv = 1.0f32;
    if comptime!(staged_vectors > 0) {
        inv = stage_row::<F, N>(x, norm_w, x_off, k_vectors, eps, &mut staged, normed, weighted);
    }
    if o >= out_features as usize {
        terminate!();
    }
    let lanes = CUBE_DIM_X as usize;
    let mut acc_g = Vector::<f32, N>::new(0.0);
    let mut acc_u = Vector::<f32, N>::new(0.0);
    let mut squares = 0.0f32;
    // The first round (two steps), loaded above; `x` is zero past the row, as `first` is.
    #[unroll]
    for j in 0..ROUND / 2 {
        let i = UNIT_POS_X as usize + j * lanes;
        let mut xv = Vector::<f32, N>::new(0.0);
        if i < k_vectors {
            xv = input_vector::<F, N>(x, norm_w, &staged, x_off, i, &mut squares, staged_vectors, normed, weighted);
        }
        acc_g += Vector::<f32, N>::cast_from(first[2 * j]) * xv;
        acc_u += Vector::<f32, N>::cast_from(first[2 * j + 1]) * xv;
    }
    let mut i = UNIT_POS_X as usize + (ROUND / 2) * lanes;
    // Two steps per iteration: four weight loads in flight per lane (see `row_dot`).
    while i + lanes < k_vectors {
        let g0 = gate[g_off + i];
        let u0 = up[u_off + i];
        let g1 = gate[g_off + i + lanes];
        let u1 = up[u_off + i + lanes];
        let x0 = input_vector::<F, N>(x, norm_w, &staged, x_off, i, &mut squares, staged_vectors, normed, weighted);
        let x1 =
            input_vector::<F, N>(x, norm_w, &staged, x_off, i + lanes, &mut squares, staged_vectors, normed, weighted);
        acc_g += Vector::<f32, N>::cast_from(g0) * x0;
        acc_u += Vector::<f32, N>::cast_from(u0) * x0;
        acc_g += Vector::<f32, N>::cast_from(g1) * x1;
        acc_u += Vector::<f32, N>::cast_from(u1) * x1;
        i += 2 * lanes;
    }
    while i < k_vectors {
        let xv = input_vector::<F, N>(x, norm_w, &staged, x_off, i, &mut squares, staged_vectors, normed, weighted);
        acc_g += Vector::<f32, N>::cast_from(gate[g_off + i]) * xv;
        acc_u += Vector::<f32, N>::cast_from(up[u_off + i]) * xv;
        i += lanes;
    }
    let mut g = plane_sum(horizontal_sum::<N>(acc_g));
    let mut u = plane_sum(horizontal_sum::<N>(acc_u));
    if comptime!(staged_vectors > 0) {
        g *= inv;
        u *= inv;
    } else if normed {
        let inv = inv_rms(squares, k_vectors * gate.vector_size(), eps);
        g *= inv;
        u *= inv;
    }
    if UNIT_POS_X == 0 {
        y[r * out_features as usize + o] = swiglu_of_products::<F>(g, u);
    }
}

/// `silu(g) · u` of a gate and an up product, rounded like the unfused ops: each product to `F`
/// first, then the result.
#[cube]
pub(super) fn swiglu_of_products<F: Float>(g: f32, u: f32) -> F {
    let g = f32::cast_from(F::cast_from(g));
    let u = f32::cast_from(F::cast_from(u));
    let silu = g / (1.0f32 + f32::exp(-g));
    F::cast_from(silu * u)
}

/// A finished product of row `r`, feature `o`: `+ bias`, rounded to `F`, `+ residual`, stored.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn store_product<F: Float>(
    value: f32,
    r: usize,
    o: usize,
    bias: &Array<F>,
    residual: &Array<F>,
    y: &mut Array<F>,
    y_stride: usize,
    residual_stride: usize,
    #[comptime] has_bias: bool,
    #[comptime] has_residual: bool,
) {
    let mut value = value;
    if has_bias {
        value += f32::cast_from(bias[o]);
    }
    if has_residual {
        value = f32::cast_from(F::cast_from(value)) + f32::cast_from(residual[r * residual_stride + o]);
    }
    y[r * y_stride + o] = F::cast_from(value);
}
