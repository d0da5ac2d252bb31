//! Greedy decoding's pick on the device: per row of the logits, the index of the largest value
//! (the first on ties, as `torch.argmax`) and that value, so a step sends two numbers per row
//! to the host instead of the whole vocabulary.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// Threads of an argmax cube (one cube per row).
pub(crate) const ARGMAX_THREADS: u32 = 1024;

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
/// reports -inf (at index `cols`); the host turns both into errors. Each thread keeps four vector loads in
/// flight; planes reduce with `plane_max`/`plane_min`, then the first plane reduces the planes'
/// picks. Strides count vectors. `neg_inf` and `nan_value` come from the host: CUDA C++ has no
/// literal for either.
#[cube(launch_unchecked)]
pub(crate) fn argmax_kernel<F: Float, N: Size>(
    x: &Array<Vector<F, N>>,
    out: &mut Array<f32>,
    vectors: u32,
    x_stride: u32,
    neg_inf: f32,
    nan_value: f32,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let base = row * x_stride as usize;
    let vectors = vectors as usize;
    let width = x.vector_size() as u32;
    let none = vectors as u32 * width;
    let mut best = neg_inf;
    let mut best_at = none;
    let mut nan = 0.0f32;
    let mut i = UNIT_POS_X as usize;
    while i + 3 * threads < vectors {
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
    while i < vectors {
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
            let mut value = v;
            if n > 0.0 {
                value = nan_value;
            }
            out[2 * row] = f32::cast_from(at);
            out[2 * row + 1] = value;
        }
    }
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
