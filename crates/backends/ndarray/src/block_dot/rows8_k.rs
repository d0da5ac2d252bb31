//! `Q4_K` weights interleaved eight rows at a time, for decode with AVX2 (as [`super::rows8`]
//! does for the 32-element types).
//!
//! A `Q4_K` super-block (256 weights, 144 bytes) is `d`, `dmin` (f16), twelve bytes packing
//! eight 6-bit scales and minimums (one pair per 32-element sub-block), and 128 bytes of
//! nibbles: per 64-element chunk `c`, 32 bytes whose low nibbles are sub-block `2c` and high
//! nibbles sub-block `2c + 1`. Row by row, every super-block's scales are unpacked for one row
//! and each sub-block's sum is scaled on its own: about 100 instructions per 256 weights.
//!
//! Interleaved, super-block `b` of eight consecutive rows is 1 152 bytes (eight times 144, so
//! rows, chunks and sizes stay as for the file's layout):
//! - the eight `d`s (16 bytes), the eight `dmin`s (16 bytes);
//! - the twelve scale bytes as planes: byte `i` of the eight rows side by side (96 bytes), so
//!   one pass of byte-wise masks and shifts unpacks all eight rows' scales and minimums;
//! - the nibbles, 64 groups of 16 bytes: group `16c + t` holds bytes `2t`, `2t + 1` of each
//!   row's chunk `c`. Widened to i16, its low nibbles are weights `2t`, `2t + 1` of sub-block
//!   `2c` for the eight rows (pair by pair), its high nibbles the same of sub-block `2c + 1`:
//!   one `vpdpwssd` (or `vpmaddwd`) with the activations' pair broadcast adds all eight rows'
//!   products.
//!
//! About 460 instructions per super-block of eight rows, against ~800 row by row.

use zoo_core::kquant::QK_K;
use zoo_core::DType;

use super::rows8::GROUP;
use super::Q16Row;

/// Bytes of a `Q4_K` super-block.
const BYTES: usize = DType::Q4_K.block_bytes();
/// Where the scale planes start in a group super-block.
const PLANES: usize = 4 * GROUP;
/// Where the nibble groups start.
const NIBBLES: usize = PLANES + 12 * GROUP;

/// Row `r`'s super-block `block` (as the file stores it) written into its places of `group`.
fn put_row(block: &[u8], r: usize, group: &mut [u8]) {
    group[2 * r..2 * r + 2].copy_from_slice(&block[0..2]);
    group[2 * GROUP + 2 * r..2 * GROUP + 2 * r + 2].copy_from_slice(&block[2..4]);
    for i in 0..12 {
        group[PLANES + GROUP * i + r] = block[4 + i];
    }
    for c in 0..4 {
        for t in 0..16 {
            let at = NIBBLES + (16 * c + t) * 16 + 2 * r;
            group[at..at + 2].copy_from_slice(&block[16 + 32 * c + 2 * t..][..2]);
        }
    }
}

/// Row `r`'s super-block as the file stores it, from a group super-block.
fn plain_row(group: &[u8], r: usize) -> [u8; BYTES] {
    let mut block = [0u8; BYTES];
    block[0..2].copy_from_slice(&group[2 * r..2 * r + 2]);
    block[2..4].copy_from_slice(&group[2 * GROUP + 2 * r..2 * GROUP + 2 * r + 2]);
    for i in 0..12 {
        block[4 + i] = group[PLANES + GROUP * i + r];
    }
    for c in 0..4 {
        for t in 0..16 {
            let at = NIBBLES + (16 * c + t) * 16 + 2 * r;
            block[16 + 32 * c + 2 * t..][..2].copy_from_slice(&group[at..at + 2]);
        }
    }
    block
}

super::rows8_super::super_layout!(Q4K, Q4_K);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::gemm::{Panel, LANES, PAIRS};
    use super::{Q16Row, BYTES, GROUP, NIBBLES, PLANES, QK_K};

    super::super::rows8_super::eight_row_entries!();

    /// The eight rows' scales (`sc`) and minimums (`m`) of a group super-block as f32, one
    /// vector a sub-block (lane `r`: row `r`), unpacked from the byte planes at `planes`.
    ///
    /// # Safety
    /// AVX2; 96 readable bytes at `planes`.
    #[inline(always)]
    unsafe fn scales(planes: *const u8) -> ([__m256; 8], [__m256; 8]) {
        // SAFETY: the caller's contract.
        unsafe {
            let (p, q, r) = (
                _mm256_loadu_si256(planes.cast()),
                _mm256_loadu_si256(planes.add(32).cast()),
                _mm256_loadu_si256(planes.add(64).cast()),
            );
            let bits = |v: u8| _mm256_set1_epi8(v as i8);
            // Sub-blocks 0-3: the low six bits of planes 0-3 (scales) and 4-7 (minimums);
            // 4-7: four bits from planes 8-11 and the top two of planes 0-3 / 4-7.
            let sc_lo = _mm256_and_si256(p, bits(0x3F));
            let m_lo = _mm256_and_si256(q, bits(0x3F));
            let top = |v: __m256i| _mm256_and_si256(_mm256_srli_epi16::<2>(v), bits(0x30));
            let sc_hi = _mm256_or_si256(_mm256_and_si256(r, bits(0x0F)), top(p));
            let m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(r), bits(0x0F)), top(q));
            (floats(sc_lo, sc_hi), floats(m_lo, m_hi))
        }
    }

    /// The 64 bytes of `lo` then `hi`, eight at a time, as eight vectors of f32 lanes (kept in
    /// registers: stored and reloaded eight bytes at a time, they stalled on store forwarding).
    ///
    /// # Safety
    /// AVX2.
    #[inline(always)]
    unsafe fn floats(lo: __m256i, hi: __m256i) -> [__m256; 8] {
        let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        let [a, b, c, d] = [
            _mm256_castsi256_si128(lo),
            _mm256_extracti128_si256::<1>(lo),
            _mm256_castsi256_si128(hi),
            _mm256_extracti128_si256::<1>(hi),
        ];
        [
            f(a),
            f(_mm_srli_si128::<8>(a)),
            f(b),
            f(_mm_srli_si128::<8>(b)),
            f(c),
            f(_mm_srli_si128::<8>(c)),
            f(d),
            f(_mm_srli_si128::<8>(d)),
        ]
    }

    /// [`super::widen_half`] with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen_half(groups: &[u8], half: usize, panel: &mut Panel) {
        let supers = groups.len() / (GROUP * BYTES);
        let lane = half * GROUP;
        assert!(half < 2 && panel.d.len() >= supers * 8 * LANES && panel.m.len() >= supers * 8 * LANES);
        assert!(panel.q.len() >= supers * 8 * PAIRS * LANES * 2);
        let (low_nibble, sign) = (_mm256_set1_epi16(0x0F), _mm256_set1_ps(-0.0));
        let (q, d_out, m_out) = (panel.q.as_mut_ptr(), panel.d.as_mut_ptr(), panel.m.as_mut_ptr());
        for sb in 0..supers {
            // SAFETY: super-block `sb` of `groups` and its blocks of the panel are in bounds
            // (asserted above).
            unsafe {
                let block = groups.as_ptr().add(sb * GROUP * BYTES);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(block.cast()));
                let dmin = _mm256_cvtph_ps(_mm_loadu_si128(block.add(2 * GROUP).cast()));
                let (sc, m) = scales(block.add(PLANES));
                for sub in 0..8 {
                    let at = (sb * 8 + sub) * LANES + lane;
                    _mm256_storeu_ps(d_out.add(at), _mm256_mul_ps(sc[sub], d));
                    _mm256_storeu_ps(m_out.add(at), _mm256_xor_ps(_mm256_mul_ps(m[sub], dmin), sign));
                }
                for c in 0..4 {
                    for t in 0..16 {
                        let bytes =
                            _mm256_cvtepu8_epi16(_mm_loadu_si128(block.add(NIBBLES + (16 * c + t) * 16).cast()));
                        let pair_at = |sub: usize| q.add((((sb * 8 + sub) * PAIRS + t) * LANES + lane) * 2).cast();
                        _mm256_storeu_si256(pair_at(2 * c), _mm256_and_si256(bytes, low_nibble));
                        _mm256_storeu_si256(pair_at(2 * c + 1), _mm256_srli_epi16::<4>(bytes));
                    }
                }
            }
        }
    }

    /// The body of [`group_dot`] and [`group_dot_vnni`].
    ///
    /// # Safety
    /// The CPU must have the instructions of the caller (VNNI's with `VNNI`).
    #[inline(always)]
    unsafe fn body<const VNNI: bool>(group: &[u8], x: &Q16Row) -> [f32; GROUP] {
        let supers = x.d.len() / (QK_K / 32);
        let group_bytes = GROUP * BYTES;
        assert!(group.len() >= supers * group_bytes && x.q.len() >= supers * QK_K && x.s.len() >= supers * 8);
        let low_nibble = _mm256_set1_epi16(0x0F);
        let (mut acc, mut offsets) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let add = |sum: __m256i, w: __m256i, x: __m256i| {
            if VNNI {
                _mm256_dpwssd_epi32(sum, w, x)
            } else {
                _mm256_add_epi32(sum, _mm256_madd_epi16(w, x))
            }
        };
        for sb in 0..supers {
            // SAFETY: super-block `sb` of the group and of `x` are in bounds (asserted above).
            unsafe {
                let block = group.as_ptr().add(sb * group_bytes);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(block.cast()));
                let dmin = _mm256_cvtph_ps(_mm_loadu_si128(block.add(2 * GROUP).cast()));
                let (sc, m) = scales(block.add(PLANES));
                let (sc, m) = (sc.map(|v| _mm256_mul_ps(v, d)), m.map(|v| _mm256_mul_ps(v, dmin)));
                let xq = x.q.as_ptr().add(sb * QK_K);
                for c in 0..4 {
                    // Sub-blocks 2c (low nibbles) and 2c + 1 (high), two running sums each.
                    let [mut lo_a, mut lo_b, mut hi_a, mut hi_b] = [_mm256_setzero_si256(); 4];
                    let pair = |e: usize| _mm256_set1_epi32(xq.add(e).cast::<i32>().read_unaligned());
                    let widen = |t: usize| {
                        let at = block.add(NIBBLES + (16 * c + t) * 16);
                        let bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(at.cast()));
                        (_mm256_and_si256(bytes, low_nibble), _mm256_srli_epi16::<4>(bytes))
                    };
                    // Two groups a pass into their own sums (named, so they stay in registers).
                    for t in (0..16).step_by(2) {
                        let ((lo, hi), (lo2, hi2)) = (widen(t), widen(t + 1));
                        lo_a = add(lo_a, lo, pair(64 * c + 2 * t));
                        hi_a = add(hi_a, hi, pair(64 * c + 32 + 2 * t));
                        lo_b = add(lo_b, lo2, pair(64 * c + 2 * t + 2));
                        hi_b = add(hi_b, hi2, pair(64 * c + 32 + 2 * t + 2));
                    }
                    let sums = [_mm256_add_epi32(lo_a, lo_b), _mm256_add_epi32(hi_a, hi_b)];
                    for (half, sum) in sums.into_iter().enumerate() {
                        let sub = 2 * c + half;
                        let block_x = sb * 8 + sub;
                        let scale = _mm256_mul_ps(sc[sub], _mm256_set1_ps(x.d[block_x]));
                        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc);
                        offsets = _mm256_fmadd_ps(m[sub], _mm256_set1_ps(x.s[block_x]), offsets);
                    }
                }
            }
        }
        let mut dots = [0f32; GROUP];
        // SAFETY: `dots` holds eight f32.
        unsafe { _mm256_storeu_ps(dots.as_mut_ptr(), _mm256_sub_ps(acc, offsets)) };
        dots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_keeps_every_super_block_and_product() {
        super::super::rows8_super::checks::layout_keeps_every_super_block::<Q4K>();
    }
}
