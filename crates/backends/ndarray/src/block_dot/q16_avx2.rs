//! [`Q16Row::quantize`] with AVX2: each block of 32 activations scaled, rounded and narrowed to
//! i16 eight at a time. The result is the plain loop's bit for bit: the same `max |x|` (NaN
//! lanes ignored, as `f32::max` ignores them), the same scale and product per element, rounding
//! half away from zero as `f32::round` does (emulated exactly: the truncation, plus one away
//! from zero where the dropped fraction is at least one half), NaN to 0 and the narrowing
//! saturated, as `as i16` does.
//!
//! A batched step quantises each of its rows for every product (`block_dot::Activations`): with
//! the plain loop, which calls libm's `roundf` per element, that was 6% of a 16-row SmolLM2
//! step.
//!
//! Only called where [`crate::isa`] found AVX2 and FMA.

use std::arch::x86_64::*;

use zoo_core::quant::QK;

/// Quantises `x` (a whole number of blocks) into `d`, `s` and `q` (as long as `x`), as
/// `Q16Row::quantize` does.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize(x: &[f32], d: &mut Vec<f32>, s: &mut Vec<f32>, q: &mut [i16]) {
    assert!(x.len().is_multiple_of(QK) && q.len() == x.len());
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    for (xb, qb) in x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)) {
        // SAFETY: each block holds 32 values (`chunks_exact`), four vectors of eight.
        let v = unsafe {
            let p = xb.as_ptr();
            [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))]
        };
        // `max_ps(a, m)` is `m` where `a` is NaN, so NaN lanes drop out as in `f32::max`.
        let mut lanes = _mm256_setzero_ps();
        for vector in v {
            lanes = _mm256_max_ps(_mm256_and_ps(vector, abs_mask), lanes);
        }
        let amax = max8(lanes);
        let scale = amax / 32767.0;
        let inv = _mm256_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        let ints = [
            round_to_i32(_mm256_mul_ps(v[0], inv)),
            round_to_i32(_mm256_mul_ps(v[1], inv)),
            round_to_i32(_mm256_mul_ps(v[2], inv)),
            round_to_i32(_mm256_mul_ps(v[3], inv)),
        ];
        // SAFETY: `qb` holds 32 i16, two vectors of sixteen.
        unsafe {
            _mm256_storeu_si256(qb.as_mut_ptr().cast(), narrow(ints[0], ints[1]));
            _mm256_storeu_si256(qb.as_mut_ptr().add(16).cast(), narrow(ints[2], ints[3]));
        }
        let total = _mm256_add_epi32(_mm256_add_epi32(ints[0], ints[1]), _mm256_add_epi32(ints[2], ints[3]));
        d.push(scale);
        s.push(scale * sum8_i32(total) as f32);
    }
}

/// `y.round()` as i32 per lane (half away from zero; NaN to 0); `|y|` is at most ~32767.
#[inline]
#[target_feature(enable = "avx2")]
fn round_to_i32(y: __m256) -> __m256i {
    let truncated = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
    // Exact: `y` and its truncation are within one of each other, far below 2^23.
    let fraction = _mm256_sub_ps(y, truncated);
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), fraction);
    let up = _mm256_cmp_ps::<_CMP_GE_OQ>(abs, _mm256_set1_ps(0.5));
    let away = _mm256_or_ps(_mm256_and_ps(y, _mm256_set1_ps(-0.0)), _mm256_set1_ps(1.0)); // ±1, y's sign
    let rounded = _mm256_add_ps(truncated, _mm256_and_ps(up, away));
    let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(y, y);
    _mm256_cvttps_epi32(_mm256_and_ps(rounded, ordered))
}

/// Sixteen i32 (`lo`, then `hi`) narrowed to i16 with saturation, in order.
#[inline]
#[target_feature(enable = "avx2")]
fn narrow(lo: __m256i, hi: __m256i) -> __m256i {
    // `packs` works within each 128-bit half: lo[0..4], hi[0..4], lo[4..8], hi[4..8].
    _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(lo, hi))
}

/// The largest of eight lanes (none NaN).
#[inline]
#[target_feature(enable = "avx2")]
fn max8(v: __m256) -> f32 {
    let quad = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_max_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_max_ss(pair, _mm_movehdup_ps(pair)))
}

/// The sum of eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn sum8_i32(v: __m256i) -> i32 {
    let quad = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let pair = _mm_add_epi32(quad, _mm_shuffle_epi32::<0b01_00_11_10>(quad));
    _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32::<0b00_00_00_01>(pair)))
}
