//! The 16-bit float dot product with AVX-512F: 32 weights per iteration, widened to f32 in
//! registers, two FMA accumulators. Only called where [`crate::isa`] found AVX-512F.

use std::arch::x86_64::*;

use super::{tail, Half};

/// `w · x` for one row (`w` holds `x.len()` 16-bit floats of kind `half`).
///
/// # Safety
/// The CPU must have AVX-512F; `w` must hold at least `2 · x.len()` bytes.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot(half: Half, w: &[u8], x: &[f32]) -> f32 {
    debug_assert!(w.len() >= 2 * x.len());
    let (wp, xp, n) = (w.as_ptr(), x.as_ptr(), x.len());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: elements i..i+32 are in bounds of both rows.
        unsafe {
            acc0 = _mm512_fmadd_ps(widen(half, wp.add(2 * i)), _mm512_loadu_ps(xp.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(widen(half, wp.add(2 * i + 32)), _mm512_loadu_ps(xp.add(i + 16)), acc1);
        }
        i += 32;
    }
    if i + 16 <= n {
        // SAFETY: elements i..i+16 are in bounds.
        unsafe { acc0 = _mm512_fmadd_ps(widen(half, wp.add(2 * i)), _mm512_loadu_ps(xp.add(i)), acc0) };
        i += 16;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail(half, w, x, i)
}

/// Sixteen 16-bit floats at `p` (unaligned) as f32.
///
/// # Safety
/// AVX-512F; 32 readable bytes at `p`.
#[target_feature(enable = "avx512f")]
unsafe fn widen(half: Half, p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 32 readable bytes.
    let raw = unsafe { _mm256_loadu_si256(p.cast::<__m256i>()) };
    match half {
        Half::F16 => _mm512_cvtph_ps(raw),
        Half::Bf16 => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(raw))),
    }
}
