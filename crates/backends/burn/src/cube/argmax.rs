//! Greedy decoding's pick on the device: per row of the logits, the index of the largest value
//! (the first on ties, as `torch.argmax`) and that value, so a step sends two numbers per row
//! to the host instead of the whole vocabulary.

use burn::tensor::DType;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;

use super::{array, gemv_width, row_grid, row_stride};

/// Threads of an argmax cube.
pub(crate) const ARGMAX_THREADS: u32 = 256;

/// Vectors one argmax cube covers: one round of four loads per thread. A longer row is split
/// over several cubes (a 152k vocabulary over 19: one cube took 12 µs on an H200), whose picks
/// [`argmax_merge_kernel`] reduces.
pub(crate) const ARGMAX_CHUNK: u32 = 4 * ARGMAX_THREADS;

/// Folds the `N` values of `v` (columns from `first`) into a thread's running pick: a larger
/// value replaces it, an equal one never does (columns arrive in increasing order). NaN never
/// compares larger; it raises `nan` instead.
// NaN is the one value unequal to itself: `x != x` is the kernel's NaN test.
#[allow(clippy::eq_op)]
#[cube]
fn fold<F: Float, N: Size>(v: Vector<F, N>, first: u32, best: &mut f32, best_at: &mut u32, nan: &mut f32) {
    #[unroll]
    for e in 0..v.size() {
        let x = f32::cast_from(v[e]);
        if x > *best {
            *best = x;
            *best_at = first + e as u32;
        }
        if x != x {
            *nan = 1.0;
        }
    }
}

/// `out[2·row] = index` (as f32: exact below 2²⁴) and `out[2·row + 1] = value` of each row's
/// largest element; the first on ties. A row holding a NaN reports NaN and one of only -inf
/// reports -inf (at index `cols`); the host turns both into errors. Cube `(row, part)` covers
/// vectors `part · chunk ..` of its row; with `partial`, each cube writes its pick as
/// `out[3·(row · parts + part) ..]` = (index, value, NaN seen) for [`argmax_merge_kernel`]
/// instead. Each thread keeps four vector loads in flight; planes reduce with
/// `plane_max`/`plane_min`, then the first plane reduces the planes' picks. Strides count
/// vectors. `neg_inf` and `nan_value` come from the host: CUDA C++ has no literal for either.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn argmax_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    out: &mut Array<f32>,
    vectors: u32,
    chunk: u32,
    x_stride: u32,
    neg_inf: f32,
    nan_value: f32,
    #[comptime] partial: bool,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let part = CUBE_POS_Y as usize;
    let threads = CUBE_DIM_X as usize;
    let base = row * x_stride as usize;
    let width = x.vector_size() as u32;
    let none = vectors * width;
    let lo = part * chunk as usize;
    let mut hi = lo + chunk as usize;
    if hi > vectors as usize {
        hi = vectors as usize;
    }
    let mut best = neg_inf;
    let mut best_at = none;
    let mut nan = 0.0f32;
    let mut i = lo + UNIT_POS_X as usize;
    while i + 3 * threads < hi {
        let v0 = x[base + i];
        let v1 = x[base + i + threads];
        let v2 = x[base + i + 2 * threads];
        let v3 = x[base + i + 3 * threads];
        fold::<F, N>(v0, i as u32 * width, &mut best, &mut best_at, &mut nan);
        fold::<F, N>(v1, (i + threads) as u32 * width, &mut best, &mut best_at, &mut nan);
        fold::<F, N>(v2, (i + 2 * threads) as u32 * width, &mut best, &mut best_at, &mut nan);
        fold::<F, N>(v3, (i + 3 * threads) as u32 * width, &mut best, &mut best_at, &mut nan);
        i += 4 * threads;
    }
    while i < hi {
        fold::<F, N>(x[base + i], i as u32 * width, &mut best, &mut best_at, &mut nan);
        i += threads;
    }
    let (best, best_at, nan) = plane_pick(best, best_at, nan, none);
    let mut values = SharedMemory::<f32>::new(32usize);
    let mut indices = SharedMemory::<u32>::new(32usize);
    let mut nans = SharedMemory::<f32>::new(32usize);
    let plane = UNIT_POS_X / PLANE_DIM;
    if UNIT_POS_PLANE == 0 {
        values[plane as usize] = best;
        indices[plane as usize] = best_at;
        nans[plane as usize] = nan;
    }
    sync_cube();
    if plane == 0 {
        let planes = CUBE_DIM_X / PLANE_DIM;
        let lane = UNIT_POS_PLANE;
        let mut v = neg_inf;
        let mut at = none;
        let mut n = 0.0f32;
        if lane < planes {
            v = values[lane as usize];
            at = indices[lane as usize];
            n = nans[lane as usize];
        }
        let (v, at, n) = plane_pick(v, at, n, none);
        if lane == 0 {
            if partial {
                let slot = 3 * (row * CUBE_COUNT_Y as usize + part);
                out[slot] = f32::cast_from(at);
                out[slot + 1] = v;
                out[slot + 2] = n;
            } else {
                write_pick(out, row, v, at, n, nan_value);
            }
        }
    }
}

/// The picks of a row's `parts` cubes (see [`argmax_kernel`]'s `partial`) reduced to its
/// answer: one plane per row. A part with no pick reports index `none` and -inf, so ties keep
/// the lowest index.
#[cube(launch_unchecked)]
pub(crate) fn argmax_merge_kernel(
    partial: &Array<f32>,
    out: &mut Array<f32>,
    parts: u32,
    none: u32,
    neg_inf: f32,
    nan_value: f32,
) {
    let row = CUBE_POS_X as usize;
    let mut best = neg_inf;
    let mut best_at = none;
    let mut nan = 0.0f32;
    let mut p = UNIT_POS_X as usize;
    while p < parts as usize {
        let slot = 3 * (row * parts as usize + p);
        let at = u32::cast_from(partial[slot]);
        let v = partial[slot + 1];
        if v > best || (v == best && at < best_at) {
            best = v;
            best_at = at;
        }
        if partial[slot + 2] > nan {
            nan = partial[slot + 2];
        }
        p += CUBE_DIM_X as usize;
    }
    let (v, at, n) = plane_pick(best, best_at, nan, none);
    if UNIT_POS_X == 0 {
        write_pick(out, row, v, at, n, nan_value);
    }
}

/// `out[2·row ..] = (index, value)`, the value NaN when the row held one.
#[cube]
fn write_pick(out: &mut Array<f32>, row: usize, value: f32, at: u32, nan: f32, nan_value: f32) {
    let mut value = value;
    if nan > 0.0 {
        value = nan_value;
    }
    out[2 * row] = f32::cast_from(at);
    out[2 * row + 1] = value;
}

/// The plane's largest value, the lowest index holding it (`none` if no lane has one), and
/// whether any lane saw NaN.
#[cube]
fn plane_pick(best: f32, best_at: u32, nan: f32, none: u32) -> (f32, u32, f32) {
    let top = plane_max(best);
    let mut candidate = none;
    if best == top {
        candidate = best_at;
    }
    (top, plane_min(candidate), plane_max(nan))
}

/// The picks of the `rows` rows of `x` (`cols` columns each; checked by the caller: the device
/// runs plane kernels, `cols` below 2²⁴) as `[2 · rows]` f32 (index, value): one kernel, or the
/// split kernel and [`argmax_merge_kernel`] when a row is longer than [`ARGMAX_CHUNK`] vectors.
pub(super) fn launch<R: CubeRuntime>(x: &CubeTensor<R>, rows: usize, cols: usize) -> CubeTensor<R> {
    let out = empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), [rows * 2, 1].into(), DType::F32);
    let width = gemv_width(x, &[], cols);
    let vectors = (cols / width) as u32;
    let parts = vectors.div_ceil(ARGMAX_CHUNK);
    let split = parts > 1;
    // The parts' picks, when there are several; else `out` stands in (never read).
    let partial = split.then(|| {
        let len = rows * parts as usize * 3;
        empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), [len, 1].into(), DType::F32)
    });
    let target = partial.as_ref().unwrap_or(&out);
    // SAFETY: cube (row, part) reads its row's vectors from `part · chunk`, below `vectors`;
    // it writes its row's pick, or its own three partial values.
    unsafe {
        launch!(
            argmax_kernel,
            &x.client,
            (CubeCount::new_2d(rows as u32, parts), CubeDim::new_1d(ARGMAX_THREADS)),
            width,
            array(x),
            array(target),
            vectors,
            ARGMAX_CHUNK,
            row_stride(x) / width as u32,
            f32::NEG_INFINITY,
            f32::NAN,
            split,
            x.dtype.into(),
        );
        if split {
            launch!(
                argmax_merge_kernel,
                &x.client,
                row_grid(rows, 32),
                array(target),
                array(&out),
                parts,
                cols as u32,
                f32::NEG_INFINITY,
                f32::NAN,
            );
        }
    }
    out
}
