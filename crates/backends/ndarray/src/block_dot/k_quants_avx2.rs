//! K-quant rows (`Q4_K`, `Q5_K`, `Q6_K`) times 16-bit activations, with AVX2 intrinsics.
//!
//! The quants are widened to i16 in registers, 16 at a time, and multiplied with the
//! activations by `madd` (16 products, added in pairs to i32, per instruction), so each `madd`
//! of `Q6_K` covers one 16-element group and two of `Q4_K`/`Q5_K` one 32-element sub-block.
//! The scales of a whole super-block become one or two vectors (one lane per sub-block or
//! group, already times `d` and the activation blocks' scales), and each sub-block's sum meets
//! its lane in one FMA. The offset term of `Q4_K`/`Q5_K` (`dmin·m·Σx` per sub-block) is one FMA
//! per super-block.
//!
//! Only called where [`crate::isa`] found AVX2, FMA and F16C.

use std::arch::x86_64::*;

use zoo_core::kquant::QK_K;
use zoo_core::quant::QK;

use zoo_core::DType;

use super::avx2::{sum8, PREFETCH_AHEAD};
use super::Q16Row;

/// Super-block bytes of `Q4_K`, `Q5_K` and `Q6_K` (the AVX-512 kernels use them too).
pub(super) const Q4_K_BYTES: usize = DType::Q4_K.block_bytes();
pub(super) const Q5_K_BYTES: usize = DType::Q5_K.block_bytes();
pub(super) const Q6_K_BYTES: usize = DType::Q6_K.block_bytes();

/// `w_row · x` for one row of `Q4_K` (`FIVE == false`) or `Q5_K` super-blocks.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q45_k_row<const FIVE: bool>(w: &[u8], x: &Q16Row) -> f32 {
    let size = if FIVE { Q5_K_BYTES } else { Q4_K_BYTES };
    let supers = super_blocks(w, size, x);
    let low_nibble = _mm256_set1_epi16(0x0F);
    let mut acc = _mm256_setzero_ps();
    let mut offsets = _mm256_setzero_ps();
    for sb in 0..supers {
        // SAFETY: super-block `sb` of `w` and its activations are in bounds (asserted above).
        unsafe {
            let b = super_block(w, sb, size);
            let scale = q45_k_scales(b, x, sb, &mut offsets);
            let high_bits = FIVE.then(|| (widen_u8(b.add(16)), widen_u8(b.add(32))));
            let nibbles = b.add(if FIVE { 48 } else { 16 });
            let xq = x.q.as_ptr().add(sb * QK_K);
            for pair in 0..4 {
                // 32 bytes: low nibbles are sub-block 2·pair, high nibbles sub-block 2·pair + 1.
                let (w0, w1) = (widen_u8(nibbles.add(32 * pair)), widen_u8(nibbles.add(32 * pair + 16)));
                let mut quants = [
                    _mm256_and_si256(w0, low_nibble),
                    _mm256_and_si256(w1, low_nibble),
                    _mm256_srli_epi16::<4>(w0),
                    _mm256_srli_epi16::<4>(w1),
                ];
                if let Some((h0, h1)) = high_bits {
                    for (i, q) in quants.iter_mut().enumerate() {
                        let sub = 2 * pair + i / 2;
                        *q = _mm256_or_si256(*q, fifth_bit(if i % 2 == 0 { h0 } else { h1 }, sub));
                    }
                }
                let xs = xq.add(64 * pair);
                for (half, q) in quants.chunks_exact(2).enumerate() {
                    let x0 = _mm256_loadu_si256(xs.add(32 * half).cast());
                    let x1 = _mm256_loadu_si256(xs.add(32 * half + 16).cast());
                    let sum = _mm256_add_epi32(_mm256_madd_epi16(q[0], x0), _mm256_madd_epi16(q[1], x1));
                    let lane = _mm256_permutevar8x32_ps(scale, _mm256_set1_epi32((2 * pair + half) as i32));
                    acc = _mm256_fmadd_ps(lane, _mm256_cvtepi32_ps(sum), acc);
                }
            }
        }
    }
    sum8(_mm256_add_ps(acc, offsets))
}

/// `w_row · x` for one row of `Q6_K` super-blocks.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6_k_row(w: &[u8], x: &Q16Row) -> f32 {
    let supers = super_blocks(w, Q6_K_BYTES, x);
    let (low4, two, thirty_two) = (_mm256_set1_epi16(0x0F), _mm256_set1_epi16(3), _mm256_set1_epi16(32));
    let mut acc = _mm256_setzero_ps();
    for sb in 0..supers {
        // SAFETY: super-block `sb` of `w` and its activations are in bounds (asserted above).
        unsafe {
            let b = super_block(w, sb, Q6_K_BYTES);
            let d = _mm256_set1_ps(half_at(b.add(208)));
            let xd = _mm256_loadu_ps(x.d.as_ptr().add(sb * PER_SUPER));
            // Group g (16 elements) uses activation block g / 2.
            let xd_lo = _mm256_permutevar8x32_ps(xd, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
            let xd_hi = _mm256_permutevar8x32_ps(xd, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
            let groups = _mm_loadu_si128(b.add(192).cast());
            let sc_lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(groups));
            let sc_hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(groups)));
            let scales = [_mm256_mul_ps(_mm256_mul_ps(d, sc_lo), xd_lo), _mm256_mul_ps(_mm256_mul_ps(d, sc_hi), xd_hi)];
            let xq = x.q.as_ptr().add(sb * QK_K);
            for half in 0..2 {
                let (ql, qh) = (b.add(64 * half), b.add(128 + 32 * half));
                for c in 0..2 {
                    let a = widen_u8(ql.add(16 * c));
                    let a2 = widen_u8(ql.add(32 + 16 * c));
                    let h = widen_u8(qh.add(16 * c));
                    // Elements 128·half + 32·t + 16·c + i, for t = 0..4.
                    let quants = [
                        _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_slli_epi16::<4>(_mm256_and_si256(h, two))),
                        _mm256_or_si256(
                            _mm256_and_si256(a2, low4),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<2>(h), two)),
                        ),
                        _mm256_or_si256(
                            _mm256_srli_epi16::<4>(a),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<4>(h), two)),
                        ),
                        _mm256_or_si256(
                            _mm256_srli_epi16::<4>(a2),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<6>(h), two)),
                        ),
                    ];
                    for (t, q) in quants.into_iter().enumerate() {
                        let at = 128 * half + 32 * t + 16 * c;
                        let xv = _mm256_loadu_si256(xq.add(at).cast());
                        let sum = _mm256_madd_epi16(_mm256_sub_epi16(q, thirty_two), xv);
                        let group = at / 16;
                        let lane = _mm256_permutevar8x32_ps(scales[group / 8], _mm256_set1_epi32((group % 8) as i32));
                        acc = _mm256_fmadd_ps(lane, _mm256_cvtepi32_ps(sum), acc);
                    }
                }
            }
        }
    }
    sum8(acc)
}

/// Activation blocks (and `Q4_K`/`Q5_K` sub-blocks) per super-block.
pub(super) const PER_SUPER: usize = QK_K / QK;

/// The number of whole super-blocks of `size` bytes in the row `w`, once asserted that `x` holds
/// their activations.
#[inline(always)]
pub(super) fn super_blocks(w: &[u8], size: usize, x: &Q16Row) -> usize {
    let supers = w.len() / size;
    let blocks = supers * PER_SUPER;
    assert!(x.q.len() >= supers * QK_K && x.d.len() >= blocks && x.s.len() >= blocks);
    supers
}

/// Super-block `sb` (of `size` bytes) of the row `w`, its cache lines [`PREFETCH_AHEAD`] on
/// prefetched.
///
/// # Safety
/// The row holds super-block `sb`.
#[inline(always)]
pub(super) unsafe fn super_block(w: &[u8], sb: usize, size: usize) -> *const u8 {
    // SAFETY: in bounds (the caller's contract).
    let b = unsafe { w.as_ptr().add(sb * size) };
    prefetch_lines(b, size);
    b
}

/// The eight sub-block multipliers `d·sc·d_x` of the `Q4_K`/`Q5_K` super-block `sb` at `b`
/// (one lane each), once its offset term `−dmin·m·Σx` is added into `offsets`.
///
/// # Safety
/// `b` points at a whole super-block, and `x` holds super-block `sb`'s activations.
#[inline(always)]
pub(super) unsafe fn q45_k_scales(b: *const u8, x: &Q16Row, sb: usize, offsets: &mut __m256) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        let (d, dmin) = d_and_dmin(b);
        let (sc, m) = scales_and_mins(b.add(4));
        let xd = _mm256_loadu_ps(x.d.as_ptr().add(sb * PER_SUPER));
        let xs = _mm256_loadu_ps(x.s.as_ptr().add(sb * PER_SUPER));
        *offsets = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, m), xs, *offsets);
        _mm256_mul_ps(_mm256_mul_ps(d, sc), xd)
    }
}

/// The super-block's `d` and `dmin` (f16 at bytes 0 and 2), each broadcast to eight lanes.
#[inline(always)]
pub(super) unsafe fn d_and_dmin(b: *const u8) -> (__m256, __m256) {
    // SAFETY: four readable bytes at `b` (the caller's contract).
    let both = _mm_cvtph_ps(_mm_cvtsi32_si128(unsafe { b.cast::<i32>().read_unaligned() }));
    let both = _mm256_castps128_ps256(both);
    (_mm256_permutevar8x32_ps(both, _mm256_set1_epi32(0)), _mm256_permutevar8x32_ps(both, _mm256_set1_epi32(1)))
}

/// The eight 6-bit sub-block scales and mins packed in the 12 bytes at `p`, as f32 lanes.
///
/// Sub-blocks 0–3 keep their scale and min in the low six bits of bytes 0–3 and 4–7; sub-blocks
/// 4–7 keep the low four bits in bytes 8–11 (scale low, min high nibble) and the top two in
/// the spare top bits of bytes 0–3 (scales) and 4–7 (mins).
#[inline(always)]
pub(super) unsafe fn scales_and_mins(p: *const u8) -> (__m256, __m256) {
    // SAFETY: twelve readable bytes at `p` (the caller's contract).
    let [a0, a1, a2] = unsafe { [0, 4, 8].map(|at| p.add(at).cast::<u32>().read_unaligned()) };
    let (six, four, two) = (0x3F3F_3F3Fu32, 0x0F0F_0F0Fu32, 0x0303_0303u32);
    let sc_hi = (a2 & four) | (((a0 >> 6) & two) << 4);
    let m_hi = ((a2 >> 4) & four) | (((a1 >> 6) & two) << 4);
    let sc = u64::from(a0 & six) | (u64::from(sc_hi) << 32);
    let m = u64::from(a1 & six) | (u64::from(m_hi) << 32);
    let lanes = |v: u64| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v as i64)));
    (lanes(sc), lanes(m))
}

/// `Q5_K`'s fifth bit of sub-block `sub`'s quants, in place (`16`) or `0`, from the 16-bit
/// widened high-bit bytes `h` (bit `sub` of each byte).
#[inline(always)]
unsafe fn fifth_bit(h: __m256i, sub: usize) -> __m256i {
    let bit = _mm256_and_si256(h, _mm256_set1_epi16(1 << sub));
    let count = _mm_cvtsi32_si128((sub as i32 - 4).abs());
    if sub < 4 {
        _mm256_sll_epi16(bit, count)
    } else {
        _mm256_srl_epi16(bit, count)
    }
}

/// Sixteen bytes at `p` zero-extended to i16.
#[inline(always)]
unsafe fn widen_u8(p: *const u8) -> __m256i {
    // SAFETY: sixteen readable bytes at `p` (the caller's contract).
    _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
}

/// The little-endian f16 at `p` as f32.
#[inline(always)]
pub(super) unsafe fn half_at(p: *const u8) -> f32 {
    // SAFETY: two readable bytes at `p` (the caller's contract).
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Prefetches the cache lines of the super-block [`PREFETCH_AHEAD`] bytes past `b` (as for the
/// 32-element blocks: rows are too short for the hardware prefetcher).
#[inline(always)]
fn prefetch_lines(b: *const u8, size: usize) {
    for line in (0..size).step_by(64) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_AHEAD + line).cast()) };
    }
}
