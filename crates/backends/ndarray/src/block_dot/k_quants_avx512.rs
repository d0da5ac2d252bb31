//! K-quant rows (`Q4_K`, `Q5_K`, `Q6_K`) times 16-bit activations, with AVX-512 and
//! AVX512-VNNI.
//!
//! Each 32-element stretch of quants is widened to 32 i16 lanes of one 512-bit register and
//! multiplied with its activations by one `vpdpwssd` (32 products, added in pairs into 16 i32
//! lanes): a whole `Q4_K`/`Q5_K` sub-block, or two 16-element `Q6_K` groups (lanes 0–7 the
//! first, 8–15 the second). Each product meets its scales (already times `d` and the
//! activation block's scale) in one float FMA. `Q5_K`'s fifth bits become a 32-bit lane mask
//! straight from the high-bit bytes (`vptestmb`), and one masked add puts them in place. The
//! offset term of `Q4_K`/`Q5_K` is `k_quants_avx2`'s, one 8-lane FMA per super-block.
//!
//! Only called where [`crate::isa`] found AVX-512F/BW/VL and VNNI.

use std::arch::x86_64::*;

use zoo_core::kquant::QK_K;
use zoo_core::quant::QK;

use super::avx2::sum8;
use super::k_quants_avx2::{
    half_at, q45_k_scales, super_block, super_blocks, PER_SUPER, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES,
};
use super::Q16Row;

/// `w_row · x` for one row of `Q4_K` (`FIVE == false`) or `Q5_K` super-blocks.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW, AVX-512VL and AVX512-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn q45_k_row<const FIVE: bool>(w: &[u8], x: &Q16Row) -> f32 {
    let size = if FIVE { Q5_K_BYTES } else { Q4_K_BYTES };
    let supers = super_blocks(w, size, x);
    let (low_nibble, sixteen) = (_mm512_set1_epi16(0x0F), _mm512_set1_epi16(16));
    // Four running sums (sub-block `s` into `acc[s % 4]`): with one, each FMA waited on the one
    // before it, eight a super-block, and the row ran at the FMA's latency (~16 GB/s).
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut offsets = _mm256_setzero_ps();
    let mut scale = [0f32; 8];
    for sb in 0..supers {
        // SAFETY: super-block `sb` of `w` and its activations are in bounds (asserted above).
        unsafe {
            let b = super_block(w, sb, size);
            _mm256_storeu_ps(scale.as_mut_ptr(), q45_k_scales(b, x, sb, &mut offsets));
            let high_bits = FIVE.then(|| _mm256_loadu_si256(b.add(16).cast()));
            let nibbles = b.add(if FIVE { 48 } else { 16 });
            let xq = x.q.as_ptr().add(sb * QK_K);
            for pair in 0..4 {
                // 32 bytes: low nibbles are sub-block 2·pair, high nibbles sub-block 2·pair + 1.
                let bytes = _mm512_cvtepu8_epi16(_mm256_loadu_si256(nibbles.add(32 * pair).cast()));
                let quants = [_mm512_and_si512(bytes, low_nibble), _mm512_srli_epi16::<4>(bytes)];
                for (half, mut q) in quants.into_iter().enumerate() {
                    let sub = 2 * pair + half;
                    if let Some(h) = high_bits {
                        let fifth = _mm256_test_epi8_mask(h, _mm256_set1_epi8(1 << sub));
                        q = _mm512_mask_add_epi16(q, fifth, q, sixteen);
                    }
                    let xv = _mm512_loadu_si512(xq.add(QK * sub).cast());
                    let sum = _mm512_dpwssd_epi32(_mm512_setzero_si512(), q, xv);
                    acc[sub % 4] = _mm512_fmadd_ps(_mm512_set1_ps(scale[sub]), _mm512_cvtepi32_ps(sum), acc[sub % 4]);
                }
            }
        }
    }
    let total = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    // SAFETY: AVX2 is present (the caller's contract).
    _mm512_reduce_add_ps(total) + unsafe { sum8(offsets) }
}

/// `w_row · x` for one row of `Q6_K` super-blocks.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW, AVX-512VL and AVX512-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn q6_k_row(w: &[u8], x: &Q16Row) -> f32 {
    let supers = super_blocks(w, Q6_K_BYTES, x);
    let (low4, two, thirty_two) = (_mm512_set1_epi16(0x0F), _mm512_set1_epi16(3), _mm512_set1_epi16(32));
    // Group g (16 elements) uses activation block g / 2.
    let block_of_group = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    // Lanes 0–7 take group g's scale, lanes 8–15 group g + 1's (added to `g`).
    let pair_lanes = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    // Four running sums, as in `q45_k_row`.
    let mut acc = [_mm512_setzero_ps(); 4];
    for sb in 0..supers {
        // SAFETY: super-block `sb` of `w` and its activations are in bounds (asserted above).
        unsafe {
            let b = super_block(w, sb, Q6_K_BYTES);
            let d = _mm512_set1_ps(half_at(b.add(208)));
            let xd = _mm512_castps256_ps512(_mm256_loadu_ps(x.d.as_ptr().add(sb * PER_SUPER)));
            let xd = _mm512_permutexvar_ps(block_of_group, xd);
            let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(b.add(192).cast())));
            let scales = _mm512_mul_ps(_mm512_mul_ps(d, sc), xd);
            let xq = x.q.as_ptr().add(sb * QK_K);
            for half in 0..2 {
                let (ql, qh) = (b.add(64 * half), b.add(128 + 32 * half));
                let a = widen32(ql);
                let a2 = widen32(ql.add(32));
                let h = widen32(qh);
                // Elements 128·half + 32·t + i, for t = 0..4 (i = lane).
                let high = |shift: __m128i| _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srl_epi16(h, shift), two));
                let quants = [
                    _mm512_or_si512(_mm512_and_si512(a, low4), high(_mm_cvtsi32_si128(0))),
                    _mm512_or_si512(_mm512_and_si512(a2, low4), high(_mm_cvtsi32_si128(2))),
                    _mm512_or_si512(_mm512_srli_epi16::<4>(a), high(_mm_cvtsi32_si128(4))),
                    _mm512_or_si512(_mm512_srli_epi16::<4>(a2), high(_mm_cvtsi32_si128(6))),
                ];
                for (t, q) in quants.into_iter().enumerate() {
                    let at = 128 * half + 32 * t;
                    let xv = _mm512_loadu_si512(xq.add(at).cast());
                    let sum = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_sub_epi16(q, thirty_two), xv);
                    let lanes = _mm512_add_epi32(pair_lanes, _mm512_set1_epi32((at / 16) as i32));
                    acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lanes, scales), _mm512_cvtepi32_ps(sum), acc[t]);
                }
            }
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
}

/// Thirty-two bytes at `p` zero-extended to i16.
#[inline(always)]
unsafe fn widen32(p: *const u8) -> __m512i {
    // SAFETY: thirty-two readable bytes at `p` (the caller's contract).
    _mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(p.cast()) })
}
