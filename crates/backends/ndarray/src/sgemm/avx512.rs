//! The AVX-512F micro-kernel of [`super`]: one block of up to [`MR`] weight rows by [`NR`]
//! tokens, accumulated in 2·`MR` zmm registers over a slice of the inner dimension.
//!
//! Each step `p` of the inner dimension loads the [`NR`] packed activations of that step (two
//! zmm), broadcasts the weight `w[r, p]` of every row `r` straight from its (row-major) row,
//! and adds the outer product by two FMAs per row. With [`MR`] = 12 that is 24 accumulators,
//! two activation registers and one broadcast: 27 of the 32 zmm registers, and 24 FMAs per 14
//! loads. The result lands transposed, `[row][token]`, so that each row's tokens are one
//! (masked) store.
//!
//! Only called where [`crate::isa`] found AVX-512F.

use std::arch::x86_64::*;

use super::{MR, NR};

/// One call of the micro-kernel: `c[r, t] += Σ_p w[r, p] · xt[p, t]` for `r < rows`,
/// `t < tokens`, `p < kc`.
pub struct Block {
    /// Steps of the inner dimension.
    pub kc: usize,
    /// The first weight row (at its step 0); the others follow `ldw` apart.
    pub w: *const f32,
    /// The distance between weight rows, in elements.
    pub ldw: usize,
    /// The packed activation panel (at step 0): [`NR`] tokens per step.
    pub xt: *const f32,
    /// The first output row (`[feature][token]`, at the block's first token); the others
    /// follow `ldc` apart.
    pub c: *mut f32,
    /// The distance between output rows, in elements.
    pub ldc: usize,
    /// Weight rows, `1..=MR`.
    pub rows: usize,
    /// Tokens, `1..=NR`.
    pub tokens: usize,
}

/// Runs `b`.
///
/// # Safety
/// The CPU must support AVX-512F; `1 ≤ rows ≤ MR`, `1 ≤ tokens ≤ NR`; `kc` elements of each
/// weight row, `kc · NR` of the panel and `tokens` of each output row must be in bounds.
#[target_feature(enable = "avx512f")]
pub unsafe fn block(b: &Block) {
    let masks = lane_masks(b.tokens);
    // SAFETY: AVX-512F is present and the ranges are in bounds (the caller's contract); each
    // arm reads and writes `rows` rows.
    unsafe {
        match b.rows {
            12 => tile::<12>(b, masks),
            11 => tile::<11>(b, masks),
            10 => tile::<10>(b, masks),
            9 => tile::<9>(b, masks),
            8 => tile::<8>(b, masks),
            7 => tile::<7>(b, masks),
            6 => tile::<6>(b, masks),
            5 => tile::<5>(b, masks),
            4 => tile::<4>(b, masks),
            3 => tile::<3>(b, masks),
            2 => tile::<2>(b, masks),
            1 => tile::<1>(b, masks),
            _ => unreachable!("1 ≤ rows ≤ MR"),
        }
    }
}

const _: () = assert!(MR == 12 && NR == 32, "`block`'s arms and `tile`'s two vectors per row");

/// The store masks of the two 16-lane halves of a row of `tokens` (1..=32) tokens.
fn lane_masks(tokens: usize) -> [__mmask16; 2] {
    let lanes = |t: usize| if t >= 16 { 0xffff } else { (1u16 << t) - 1 };
    [lanes(tokens), lanes(tokens.saturating_sub(16))]
}

/// [`block`] for exactly `R` rows (a constant, so that the accumulators stay in registers).
///
/// # Safety
/// As [`block`], with `rows = R`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize>(b: &Block, masks: [__mmask16; 2]) {
    let &Block { kc, w, ldw, xt, c, ldc, .. } = b;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let rows: [*const f32; R] = std::array::from_fn(|r| w.wrapping_add(r * ldw));
    for p in 0..kc {
        // SAFETY: step `p < kc` of the panel and element `p` of each row are in bounds.
        unsafe {
            let x0 = _mm512_loadu_ps(xt.add(p * NR));
            let x1 = _mm512_loadu_ps(xt.add(p * NR + 16));
            for r in 0..R {
                let wv = _mm512_set1_ps(*rows[r].add(p));
                acc[r][0] = _mm512_fmadd_ps(wv, x0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(wv, x1, acc[r][1]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: row `r < R` of `c` holds `tokens` elements; masked-off lanes are not touched.
        unsafe {
            let dst = c.add(r * ldc);
            for (h, (&mask, &sum)) in masks.iter().zip(acc).enumerate() {
                let old = _mm512_maskz_loadu_ps(mask, dst.wrapping_add(16 * h));
                _mm512_mask_storeu_ps(dst.wrapping_add(16 * h), mask, _mm512_add_ps(old, sum));
            }
        }
    }
}
