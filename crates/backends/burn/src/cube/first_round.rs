//! A GEMV plane's first round of weight loads, issued before the kernel reads anything an
//! earlier kernel wrote, and the marker of the point where that reading starts.
//!
//! Weights never depend on the step, so a decode GEMV can have its first loads in flight while
//! its input row is still being read (and, staged, normalised into shared memory), instead of
//! after. Replayed as a CUDA graph on a GPU that has programmatic dependent launch, the marker
//! becomes the wait for the previous kernel (`cuda_graph.rs`), so those loads also overlap the
//! previous kernel's last microseconds. Elsewhere the marker is a comment in the generated
//! source and changes nothing.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// Weight vectors per lane in a first round: the four loads in flight that the GEMV loops keep.
pub(crate) const ROUND: usize = 4;

/// Marks the point from which a kernel reads what earlier kernels of the step wrote (and
/// writes anything): every such read or write must come after it, on every path; what comes
/// before may read only what no kernel of the step writes (weights). Its text is
/// [`INPUTS_READY`](crate::grid_dependency::INPUTS_READY): `comment!` takes a literal only.
#[cube]
pub(crate) fn inputs_ready() {
    comment!("zoo: inputs ready");
}

/// [`inputs_ready`] when `early` (the first round of weights is loaded before it: after the
/// call), else nothing.
#[cube]
pub(crate) fn inputs_ready_if(#[comptime] early: bool) {
    if comptime!(early) {
        inputs_ready();
    }
}

/// [`inputs_ready`] unless `early` (the first round of weights is loaded after it: before the
/// call), else nothing.
#[cube]
pub(crate) fn inputs_ready_unless(#[comptime] early: bool) {
    if comptime!(!early) {
        inputs_ready();
    }
}

/// Whether GEMVs load their first round of weights before reading their input (on unless
/// `ZOO_GEMV_EARLY=0`, for measuring).
pub(crate) fn early_weights() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| super::switched_on("ZOO_GEMV_EARLY"))
}

/// `round[j] = w[w_off + lane + j · lanes]` for `j < ROUND`, zero past the row's `k_vectors`:
/// a plane's first round of loads of one weight row.
#[cube]
pub(crate) fn load_round<F: Float, N: Size>(
    w: &Array<Vector<F, N>>,
    w_off: usize,
    k_vectors: usize,
    round: &mut Array<Vector<F, N>>,
) {
    let lanes = CUBE_DIM_X as usize;
    #[unroll]
    for j in 0..ROUND {
        let i = UNIT_POS_X as usize + j * lanes;
        let mut v = Vector::<F, N>::new(F::new(0.0));
        if i < k_vectors {
            v = w[w_off + i];
        }
        round[j] = v;
    }
}

/// The first round of a gated GEMV's plane, two steps of a gate and an up row:
/// `round = [gate[i], up[i], gate[i + lanes], up[i + lanes]]` from `i = lane`, zero past the row.
#[cube]
pub(crate) fn load_round2<F: Float, N: Size>(
    gate: &Array<Vector<F, N>>,
    up: &Array<Vector<F, N>>,
    g_off: usize,
    u_off: usize,
    k_vectors: usize,
    round: &mut Array<Vector<F, N>>,
) {
    let lanes = CUBE_DIM_X as usize;
    #[unroll]
    for j in 0..ROUND / 2 {
        let i = UNIT_POS_X as usize + j * lanes;
        let mut g = Vector::<F, N>::new(F::new(0.0));
        let mut u = Vector::<F, N>::new(F::new(0.0));
        if i < k_vectors {
            g = gate[g_off + i];
            u = up[u_off + i];
        }
        round[2 * j] = g;
        round[2 * j + 1] = u;
    }
}
