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

use zoo_core::kquant::{self, QK_K};
use zoo_core::DType;

use super::rows8::GROUP;
use super::Q16Row;
use crate::isa::{isa, Isa};

/// Bytes of a `Q4_K` super-block.
const BYTES: usize = DType::Q4_K.block_bytes();
/// Where the scale planes start in a group super-block.
const PLANES: usize = 4 * GROUP;
/// Where the nibble groups start.
const NIBBLES: usize = PLANES + 12 * GROUP;

/// `plain` (rows of `row_blocks` `Q4_K` super-blocks, a multiple of [`GROUP`] rows)
/// interleaved, in `out` (as long as `plain`).
pub fn interleave_into(plain: &[u8], row_blocks: usize, out: &mut [u8]) {
    let row_bytes = row_blocks * BYTES;
    let groups = plain.chunks_exact(GROUP * row_bytes).zip(out.chunks_exact_mut(GROUP * row_bytes));
    for (src, dst) in groups {
        for (b, group) in dst.chunks_exact_mut(GROUP * BYTES).enumerate() {
            for r in 0..GROUP {
                let block = &src[r * row_bytes + b * BYTES..][..BYTES];
                put_row(block, r, group);
            }
        }
    }
}

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

/// Rows `rows` (whole, of `row_blocks` super-blocks) of interleaved `data` as the file stores
/// them, appended to `out`.
pub fn plain_rows(data: &[u8], row_blocks: usize, rows: std::ops::Range<usize>, out: &mut Vec<u8>) {
    for row in rows {
        let group = &data[(row / GROUP) * GROUP * row_blocks * BYTES..];
        for b in 0..row_blocks {
            out.extend_from_slice(&plain_row(&group[b * GROUP * BYTES..], row % GROUP));
        }
    }
}

/// Dequantises super-blocks `blocks` (row-major indices, rows of `row_blocks`) of interleaved
/// `data` into `out`: `kquant::dequantize_super_block` of each as the file stores it.
pub fn dequantize(data: &[u8], row_blocks: usize, blocks: std::ops::Range<usize>, out: &mut Vec<f32>) {
    let mut values = [0f32; QK_K];
    out.reserve(blocks.len() * QK_K);
    for i in blocks {
        let (row, b) = (i / row_blocks, i % row_blocks);
        let group = &data[((row / GROUP) * row_blocks + b) * GROUP * BYTES..][..GROUP * BYTES];
        kquant::dequantize_super_block(DType::Q4_K, &plain_row(group, row % GROUP), &mut values);
        out.extend_from_slice(&values);
    }
}

/// Lanes `8 · half ..` of `panel` (sized for these rows) from the eight interleaved rows of
/// `groups` (their super-blocks one after another), as [`super::gemm_kquants::widen`] puts
/// the same rows as the file stores them; `false` where the CPU lacks AVX2 (nothing written).
pub fn widen_half(groups: &[u8], half: usize, panel: &mut super::gemm::Panel) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: `isa()` found AVX2, FMA and F16C.
        unsafe { avx2::widen_half(groups, half, panel) };
        return true;
    }
    let _ = (groups, half, panel);
    false
}

/// `out[j] = w_row(j) · x` for the rows of the interleaved groups in `data` (each group
/// `row_blocks` super-blocks of eight rows; `out` eight values a group).
pub fn rows_dot(data: &[u8], row_blocks: usize, x: &Q16Row, out: &mut [f32]) {
    rows_dot_at(isa(), data, row_blocks, x, out);
}

/// [`rows_dot`] through the kernel of `level` (capped at [`isa`]); tests run each.
fn rows_dot_at(level: Isa, data: &[u8], row_blocks: usize, x: &Q16Row, out: &mut [f32]) {
    let level = level.min(isa());
    let groups = data.chunks_exact(row_blocks * GROUP * BYTES).zip(out.chunks_exact_mut(GROUP));
    for (group, dots) in groups {
        #[cfg(target_arch = "x86_64")]
        if level >= Isa::Avx2 {
            // SAFETY (each): `isa()` found AVX2, FMA and F16C, and with `Avx512Vnni` VNNI.
            let group_dots = if level >= Isa::Avx512Vnni {
                unsafe { avx2::group_dot_vnni(group, x) }
            } else {
                unsafe { avx2::group_dot(group, x) }
            };
            dots.copy_from_slice(&group_dots);
            continue;
        }
        for (r, dot) in dots.iter_mut().enumerate() {
            let mut row = Vec::with_capacity(row_blocks * BYTES);
            for b in 0..row_blocks {
                row.extend_from_slice(&plain_row(&group[b * GROUP * BYTES..], r));
            }
            *dot = super::k_quants::row(DType::Q4_K, &row, x);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::gemm::{Panel, LANES, PAIRS};
    use super::{Q16Row, BYTES, GROUP, NIBBLES, PLANES, QK_K};

    /// `w_row · x` for the eight rows of one interleaved group.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn group_dot(group: &[u8], x: &Q16Row) -> [f32; GROUP] {
        // SAFETY: the caller's contract.
        unsafe { body::<false>(group, x) }
    }

    /// [`group_dot`] with AVX512-VNNI's `vpdpwssd` (256-bit registers).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA, F16C, AVX-512F, AVX-512VL and AVX512-VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    pub unsafe fn group_dot_vnni(group: &[u8], x: &Q16Row) -> [f32; GROUP] {
        // SAFETY: the caller's contract.
        unsafe { body::<true>(group, x) }
    }

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

    /// `rows` rows of `row_blocks` `Q4_K` super-blocks: varied bytes, sane f16 scales.
    fn plain(rows: usize, row_blocks: usize) -> Vec<u8> {
        let mut data: Vec<u8> = (0..rows * row_blocks * BYTES).map(|i| ((i * 31 + i * i * 7) % 251) as u8).collect();
        for (n, block) in data.chunks_exact_mut(BYTES).enumerate() {
            block[0..2].copy_from_slice(&half::f16::from_f32(0.001 + (n % 5) as f32 * 4e-4).to_le_bytes());
            block[2..4].copy_from_slice(&half::f16::from_f32(0.002 + (n % 3) as f32 * 5e-4).to_le_bytes());
        }
        data
    }

    #[test]
    fn interleaving_keeps_every_super_block() {
        let (rows, row_blocks) = (16, 3);
        let data = plain(rows, row_blocks);
        let mut mixed = vec![0u8; data.len()];
        interleave_into(&data, row_blocks, &mut mixed);
        assert_ne!(mixed, data);
        let mut back = Vec::new();
        plain_rows(&mixed, row_blocks, 0..rows, &mut back);
        assert_eq!(back, data);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        zoo_core::quant::dequantize(DType::Q4_K, &data[5 * BYTES..40 * BYTES], &mut want);
        dequantize(&mixed, row_blocks, 5..40, &mut got);
        assert_eq!(got, want);
    }

    #[test]
    fn group_dots_match_the_row_kernel() {
        let (rows, row_blocks) = (24, 3);
        let x: Vec<f32> = (0..row_blocks * QK_K).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0 + i as f32 * 0.01).collect();
        let q = Q16Row::quantize(&x);
        let data = plain(rows, row_blocks);
        let mut mixed = vec![0u8; data.len()];
        interleave_into(&data, row_blocks, &mut mixed);
        let want: Vec<f32> =
            data.chunks_exact(row_blocks * BYTES).map(|w| super::super::k_quants::row(DType::Q4_K, w, &q)).collect();
        for level in [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|&l| l <= isa()) {
            let mut got = vec![f32::NAN; rows];
            rows_dot_at(level, &mixed, row_blocks, &q, &mut got);
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{level:?} row {j}: {g} vs {w}");
            }
        }
    }
}
