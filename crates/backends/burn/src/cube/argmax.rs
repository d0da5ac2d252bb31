//! Greedy decoding's pick on the device: per row of the logits, the index of the largest value
//! (the first on ties, as `torch.argmax`) and that value, so a step sends two numbers per row
//! to the host instead of the whole vocabulary.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// Threads of an argmax cube (one cube per row).
pub(crate) const ARGMAX_THREADS: u32 = 256;

/// `out[2·row] = index` (as f32: exact below 2²⁴) and `out[2·row + 1] = value` of each row's
/// largest element; the first on ties. A row whose first element is NaN reports NaN (no later
/// value compares greater), which the host turns into an error.
#[cube(launch_unchecked)]
pub(crate) fn argmax_kernel<F: Float>(
    x: &Array<F>,
    out: &mut Array<f32>,
    cols: u32,
    x_stride: u32,
    #[define(F)] _dtype: StorageType,
) {
    let row = CUBE_POS_X as usize;
    let t = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let base = row * x_stride as usize;
    let cols = cols as usize;
    let mut best = f32::new(0.0);
    let mut best_at = cols;
    let mut c = t;
    while c < cols {
        let v = f32::cast_from(x[base + c]);
        if best_at == cols || v > best {
            best = v;
            best_at = c;
        }
        c += threads;
    }
    let mut values = SharedMemory::<f32>::new(ARGMAX_THREADS as usize);
    let mut indices = SharedMemory::<u32>::new(ARGMAX_THREADS as usize);
    values[t] = best;
    indices[t] = best_at as u32;
    sync_cube();
    if t == 0 {
        let mut top = values[0];
        let mut top_at = indices[0];
        for i in 1..threads {
            let at = indices[i];
            let v = values[i];
            // Threads scan interleaved columns: among equal values keep the lowest column.
            if (at as usize) < cols && (top_at as usize == cols || v > top || (v == top && at < top_at)) {
                top = v;
                top_at = at;
            }
        }
        out[2 * row] = f32::cast_from(top_at);
        out[2 * row + 1] = top;
    }
}
