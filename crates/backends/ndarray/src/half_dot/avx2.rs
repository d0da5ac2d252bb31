//! The 16-bit float dot product with AVX2, F16C and FMA: 32 weights per iteration, widened to
//! f32 in registers, four FMA accumulators. Only called where [`crate::isa`] found them.

use std::arch::x86_64::*;

use super::{tail, Half};

/// `w · x` for one row (`w` holds `x.len()` 16-bit floats of kind `half`).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `w` must hold at least `2 · x.len()` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot(half: Half, w: &[u8], x: &[f32]) -> f32 {
    debug_assert!(w.len() >= 2 * x.len());
    let (wp, xp, n) = (w.as_ptr(), x.as_ptr(), x.len());
    // Four independent accumulators: with fewer, each FMA waits on the previous one's latency.
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: elements i..i+32 are in bounds of both rows.
            unsafe {
                *acc = _mm256_fmadd_ps(widen(half, wp.add(2 * (i + 8 * j))), _mm256_loadu_ps(xp.add(i + 8 * j)), *acc);
            }
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: elements i..i+8 are in bounds.
        unsafe { acc[0] = _mm256_fmadd_ps(widen(half, wp.add(2 * i)), _mm256_loadu_ps(xp.add(i)), acc[0]) };
        i += 8;
    }
    let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    sum(total) + tail(half, w, x, i)
}

/// Appends the values of the little-endian 16-bit floats `bytes` to `out`, eight per
/// instruction (the GEMM path widens tiles of weight rows through this).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn widen_into(half: Half, bytes: &[u8], out: &mut Vec<f32>) {
    let n = bytes.len() / 2;
    let whole = n / 8 * 8;
    out.reserve(n);
    let (src, dst) = (bytes.as_ptr(), out.spare_capacity_mut().as_mut_ptr().cast::<f32>());
    for i in (0..whole).step_by(8) {
        // SAFETY: elements i..i+8 are in `bytes`, and `out` has room for `n` more values.
        unsafe { _mm256_storeu_ps(dst.add(i), widen(half, src.add(2 * i))) };
    }
    // SAFETY: the first `whole` spare values were written above.
    unsafe { out.set_len(out.len() + whole) };
    out.extend(bytes[2 * whole..2 * n].chunks_exact(2).map(|b| half.widen(u16::from_le_bytes([b[0], b[1]]))));
}

/// Eight 16-bit floats at `p` (unaligned) as f32.
///
/// # Safety
/// AVX2 and F16C; 16 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen(half: Half, p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes.
    let raw = unsafe { _mm_loadu_si128(p.cast::<__m128i>()) };
    match half {
        Half::F16 => _mm256_cvtph_ps(raw),
        Half::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(raw))),
    }
}

/// The sum of the eight lanes of `v`.
#[target_feature(enable = "avx2,fma,f16c")]
fn sum(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<1>(pair, pair)))
}
