//! `Q4_0`, `Q4_1`, `Q5_0` and `Q8_0` weights interleaved eight rows at a time, for decode with AVX2.
//!
//! A `Q4_0` row is blocks of 32 weights: an f16 scale and 16 bytes, byte `j` holding weight `j`
//! in its low nibble and weight `j + 16` in its high one (`Q4_1` adds an f16 minimum after the
//! scale). Multiplied row by row (`avx2`'s
//! `nibble_tile`), each block's scale is looked up, multiplied and broadcast for 32 products,
//! and each row ends in a horizontal sum: 21 instructions a block. Interleaved, block `b` of
//! eight consecutive `Q4_0` rows is 144 bytes: the eight scales, then eight 16-byte groups, group `t`
//! holding bytes `2t` and `2t + 1` of each row's block (row `r` at bytes `2r`, `2r + 1`). Widened
//! to i16, group `t` is weights `2t` and `2t + 1` (low nibbles) and `2t + 16`, `2t + 17` (high
//! nibbles) of the eight rows, pair by pair, so one `vpmaddwd` with the activations' pair
//! broadcast gives all eight rows' partial sums, one i32 lane a row; the block's eight scales
//! are one vector. That is about six instructions per row and block (fewer with AVX512-VNNI,
//! whose `vpdpwssd` multiplies and adds in one).
//!
//! `Q8_0` blocks interleave alike: their 32 signed bytes are sixteen groups, sign-extended;
//! `Q5_0` keeps its fifth bits as lane masks matching the groups (`MASKS_AT`). `Q4_K` and
//! `Q6_K` super-blocks interleave in layouts of their own ([`super::rows8_k`],
//! [`super::rows8_q6k`]).
//!
//! `NdTensor::blocks` interleaves such a weight whose rows are a multiple of eight
//! when the CPU has AVX2 (`ZOO_INTERLEAVE=0` keeps the file's layout); every reader of such a
//! weight goes through here ([`dequantize`] restores the file's blocks, bit for bit).

use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use zoo_core::quant::QK;
use zoo_core::DType;

use super::Q16Row;
use crate::isa::{isa, Isa};

/// Rows interleaved together.
pub const GROUP: usize = 8;

/// Whether weights are interleaved at load on this machine: x86-64 with AVX2, unless
/// `ZOO_INTERLEAVE=0`.
pub fn interleaving_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && isa() >= Isa::Avx2
            && std::env::var("ZOO_INTERLEAVE").map_or(true, |v| v.trim() != "0")
    })
}

/// Whether a `dtype` weight of `rows` rows is kept interleaved on this machine.
pub fn applies(dtype: DType, rows: usize) -> bool {
    let enabled = interleaving_enabled();
    let interleaved =
        matches!(dtype, DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q8_0 | DType::Q4_K | DType::Q6_K);
    enabled && interleaved && rows > 0 && rows.is_multiple_of(GROUP)
}

/// Bytes of a block's quants: 16 of nibbles, or `Q8_0`'s 32 signed bytes.
fn quant_bytes(dtype: DType) -> usize {
    if dtype == DType::Q8_0 {
        QK
    } else {
        QK / 2
    }
}

/// Bytes before a block's quants: its f16 scale (`Q4_0`, `Q8_0`), scale and minimum (`Q4_1`), or
/// scale and 32-bit mask of fifth bits (`Q5_0`).
pub(super) fn header(dtype: DType) -> usize {
    dtype.block_bytes() - quant_bytes(dtype)
}

/// `plain` (rows of `row_blocks` blocks of `dtype`, a multiple of [`GROUP`] rows) interleaved.
pub fn interleave(dtype: DType, plain: &[u8], row_blocks: usize) -> Vec<u8> {
    let (block, head) = (dtype.block_bytes(), header(dtype));
    let row_bytes = row_blocks * block;
    let mut out = vec![0u8; plain.len()];
    if matches!(dtype, DType::Q4_K | DType::Q6_K) {
        let groups = plain.par_chunks_exact(GROUP * row_bytes).zip(out.par_chunks_exact_mut(GROUP * row_bytes));
        groups.for_each(|(src, dst)| match dtype {
            DType::Q4_K => super::rows8_super::interleave_into::<super::rows8_k::Q4K>(src, row_blocks, dst),
            _ => super::rows8_super::interleave_into::<super::rows8_q6k::Q6K>(src, row_blocks, dst),
        });
        return out;
    }
    // Groups of rows in parallel: loading the default model took 0.17 s with this done on one
    // thread, against 0.10 s with the file's layout.
    let groups = plain.par_chunks_exact(GROUP * row_bytes).zip(out.par_chunks_exact_mut(GROUP * row_bytes));
    groups.for_each(|(src, dst)| {
        for (b, group_block) in dst.chunks_exact_mut(GROUP * block).enumerate() {
            for r in 0..GROUP {
                let plain_block = &src[r * row_bytes + b * block..][..block];
                for (w, word) in plain_block.chunks_exact(2).enumerate() {
                    let at = word_at(head, w, r);
                    group_block[at..at + 2].copy_from_slice(word);
                }
            }
            if dtype == DType::Q5_0 {
                put_lane_masks(group_block);
            }
        }
    });
    out
}

/// Where a `Q5_0` group block keeps its fifth bits: eight pairs of 16-bit lane masks after the
/// scales, pair `t` for nibble group `t` (bit `2r + j` of the first: the fifth bit of weight
/// `2t + j` of row `r`; of the second: of weight `2t + 16 + j`), so the kernel adds them to
/// the widened nibbles as they lie in its lanes.
pub(super) const MASKS_AT: usize = 2 * GROUP;

/// Replaces the eight rows' 32-bit masks of fifth bits, which [`interleave`] put as two words
/// per row (the low halves at [`MASKS_AT`], the high ones after), with the lane masks.
fn put_lane_masks(group_block: &mut [u8]) {
    let word = |at: usize| u32::from(u16::from_le_bytes([group_block[at], group_block[at + 1]]));
    let rows: [u32; GROUP] = std::array::from_fn(|r| word(MASKS_AT + 2 * r) | word(MASKS_AT + 2 * GROUP + 2 * r) << 16);
    for t in 0..QK / 4 {
        let mut masks = [0u16; 2];
        for (r, qh) in rows.iter().enumerate() {
            for j in 0..2 {
                masks[0] |= (((qh >> (2 * t + j)) & 1) as u16) << (2 * r + j);
                masks[1] |= (((qh >> (16 + 2 * t + j)) & 1) as u16) << (2 * r + j);
            }
        }
        group_block[MASKS_AT + 4 * t..][..2].copy_from_slice(&masks[0].to_le_bytes());
        group_block[MASKS_AT + 4 * t + 2..][..2].copy_from_slice(&masks[1].to_le_bytes());
    }
}

/// Row `r`'s 32-bit mask of fifth bits (bit `j` for weight `j`), from a `Q5_0` group block's
/// lane masks.
fn row_fifth_bits(group_block: &[u8], r: usize) -> u32 {
    let mut qh = 0u32;
    for t in 0..QK / 4 {
        let lo = u16::from_le_bytes([group_block[MASKS_AT + 4 * t], group_block[MASKS_AT + 4 * t + 1]]);
        let hi = u16::from_le_bytes([group_block[MASKS_AT + 4 * t + 2], group_block[MASKS_AT + 4 * t + 3]]);
        for j in 0..2 {
            qh |= u32::from((lo >> (2 * r + j)) & 1) << (2 * t + j);
            qh |= u32::from((hi >> (2 * r + j)) & 1) << (16 + 2 * t + j);
        }
    }
    qh
}

/// Where 16-bit word `w` of row `r`'s block (bytes `2w`, `2w + 1` as the file stores it) lies
/// in the group block: a header word with the other rows' same word (eight of them side by
/// side), a quants word in the group of quants words `w − head / 2`. [`interleave`] and
/// [`plain_block`] both go through it.
#[inline(always)]
fn word_at(head: usize, w: usize, r: usize) -> usize {
    if 2 * w < head {
        GROUP * 2 * w + 2 * r
    } else {
        GROUP * head + 16 * (w - head / 2) + 2 * r
    }
}

/// Block `b` of row `row` as the file stores it, written to `out` (one block's bytes).
fn plain_block(dtype: DType, data: &[u8], row_blocks: usize, (row, b): (usize, usize), out: &mut [u8]) {
    let (block, head, r) = (dtype.block_bytes(), header(dtype), row % GROUP);
    let group_block = &data[((row / GROUP) * row_blocks + b) * GROUP * block..][..GROUP * block];
    for (w, word) in out.chunks_exact_mut(2).enumerate() {
        let at = word_at(head, w, r);
        word.copy_from_slice(&group_block[at..at + 2]);
    }
    if dtype == DType::Q5_0 {
        out[2..6].copy_from_slice(&row_fifth_bits(group_block, r).to_le_bytes());
    }
}

/// Block `b` of row `r` of interleaved `dtype` `data` as integers: its scale, its minimum
/// (`Q4_1`; else 0) and its 32 quants with the type's offset taken off (`Q4_0`: `q − 8`,
/// `Q5_0`: `q − 16`), so that the block is `d · q + m`.
pub fn block_integers(dtype: DType, data: &[u8], row_blocks: usize, (r, b): (usize, usize)) -> (f32, f32, [i16; QK]) {
    let mut block = vec![0u8; dtype.block_bytes()];
    plain_block(dtype, data, row_blocks, (r, b), &mut block);
    let half = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
    let mut q = [0i16; QK];
    let nibbles = |bytes: &[u8], fifth: u32, offset: i16, q: &mut [i16; QK]| {
        for (j, &byte) in bytes.iter().enumerate() {
            let bit = |e: usize| (((fifth >> e) & 1) << 4) as i16;
            q[j] = i16::from(byte & 0x0F) + bit(j) - offset;
            q[j + QK / 2] = i16::from(byte >> 4) + bit(j + QK / 2) - offset;
        }
    };
    match dtype {
        DType::Q8_0 => {
            q.iter_mut().zip(&block[2..]).for_each(|(q, &v)| *q = i16::from(v as i8));
            (half(0), 0.0, q)
        }
        DType::Q4_1 => {
            nibbles(&block[4..], 0, 0, &mut q);
            (half(0), half(2), q)
        }
        DType::Q5_0 => {
            let fifth = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            nibbles(&block[6..], fifth, 16, &mut q);
            (half(0), 0.0, q)
        }
        _ => {
            nibbles(&block[2..], 0, 8, &mut q);
            (half(0), 0.0, q)
        }
    }
}

/// Dequantises blocks `blocks` (row-major block indices, rows of `row_blocks`) of interleaved
/// `dtype` `data` into `out`: the values `quant::dequantize` gives the file's blocks, bit for
/// bit (the same formula per element, read from the interleaved places; `rows8::tests` checks
/// every type against it). Not [`plain_block`] and `quant::dequantize_block`, which would keep
/// one copy of the formulas: prefill of 128 tokens, which dequantises its weight tiles here,
/// measured 4–7% slower that way (415M `Q8_0` 92.3–92.7 against 95.5–97.2 tok/s).
pub fn dequantize(dtype: DType, data: &[u8], row_blocks: usize, blocks: Range<usize>, out: &mut Vec<f32>) {
    match dtype {
        DType::Q4_K => return super::rows8_super::dequantize::<super::rows8_k::Q4K>(data, row_blocks, blocks, out),
        DType::Q6_K => return super::rows8_super::dequantize::<super::rows8_q6k::Q6K>(data, row_blocks, blocks, out),
        _ => {}
    }
    let (group_bytes, head) = (GROUP * dtype.block_bytes(), header(dtype));
    let mut values = [0f32; QK];
    out.reserve(blocks.len() * QK);
    for i in blocks {
        let (row, b) = (i / row_blocks, i % row_blocks);
        let group_block = &data[((row / GROUP) * row_blocks + b) * group_bytes..][..group_bytes];
        let r = row % GROUP;
        // The row's header word `w` as f16 (0: the scale; 1: `Q4_1`'s minimum).
        let half = |w: usize| {
            let at = word_at(head, w, r);
            half::f16::from_le_bytes([group_block[at], group_block[at + 1]]).to_f32()
        };
        // Bytes 2t and 2t + 1 of the row's quants.
        let quants = word_at(head, head / 2, r);
        let pair = |t: usize| [group_block[quants + 16 * t], group_block[quants + 16 * t + 1]];
        let d = half(0);
        match dtype {
            DType::Q8_0 => {
                for t in 0..QK / 2 {
                    let [q0, q1] = pair(t);
                    (values[2 * t], values[2 * t + 1]) = (d * f32::from(q0 as i8), d * f32::from(q1 as i8));
                }
            }
            DType::Q5_0 => {
                let qh = row_fifth_bits(group_block, r);
                let fifth = |e: usize| (((qh >> e) & 1) << 4) as u8;
                for t in 0..QK / 4 {
                    for (j, q) in pair(t).into_iter().enumerate() {
                        let (lo, hi) = (2 * t + j, 2 * t + j + 16);
                        values[lo] = f32::from(((q & 0x0F) | fifth(lo)) as i8 - 16) * d;
                        values[hi] = f32::from(((q >> 4) | fifth(hi)) as i8 - 16) * d;
                    }
                }
            }
            DType::Q4_1 => {
                let m = half(1);
                for t in 0..QK / 4 {
                    for (j, q) in pair(t).into_iter().enumerate() {
                        values[2 * t + j] = f32::from(q & 0x0F) * d + m;
                        values[2 * t + j + 16] = f32::from(q >> 4) * d + m;
                    }
                }
            }
            _ => {
                for t in 0..QK / 4 {
                    for (j, q) in pair(t).into_iter().enumerate() {
                        values[2 * t + j] = d * f32::from((q & 0x0F) as i8 - 8);
                        values[2 * t + j + 16] = d * f32::from((q >> 4) as i8 - 8);
                    }
                }
            }
        }
        out.extend_from_slice(&values);
    }
}

/// `out[j] = w_row(j) · x` for the rows of the interleaved `dtype` groups in `data` (each group
/// `row_blocks` blocks of eight rows; `out` eight values a group).
pub fn rows_dot(dtype: DType, data: &[u8], row_blocks: usize, x: &Q16Row, out: &mut [f32]) {
    rows_dot_at(isa(), dtype, data, row_blocks, x, out);
}

/// [`rows_dot`] through the kernel of `level` (capped at [`isa`]); tests run each.
fn rows_dot_at(level: Isa, dtype: DType, data: &[u8], row_blocks: usize, x: &Q16Row, out: &mut [f32]) {
    match dtype {
        DType::Q4_K => return super::rows8_super::rows_dot::<super::rows8_k::Q4K>(data, row_blocks, x, out),
        DType::Q6_K => return super::rows8_super::rows_dot::<super::rows8_q6k::Q6K>(data, row_blocks, x, out),
        _ => {}
    }
    let level = level.min(isa());
    let groups = data.chunks_exact(row_blocks * GROUP * dtype.block_bytes()).zip(out.chunks_exact_mut(GROUP));
    for (g, (group, dots)) in groups.enumerate() {
        #[cfg(target_arch = "x86_64")]
        if level >= Isa::Avx2 {
            let vnni = level >= Isa::Avx512Vnni;
            // SAFETY (each): `isa()` found AVX2, FMA and F16C, and with `vnni` AVX512-VNNI.
            let group_dots = match (dtype, vnni) {
                (DType::Q4_1, true) => unsafe { avx2::group_dot_vnni::<{ avx2::Q4_1 }>(group, x) },
                (DType::Q4_1, false) => unsafe { avx2::group_dot::<{ avx2::Q4_1 }>(group, x) },
                (DType::Q8_0, true) => unsafe { avx2::group_dot_vnni::<{ avx2::Q8_0 }>(group, x) },
                (DType::Q5_0, true) => unsafe { avx2::group_dot_vnni::<{ avx2::Q5_0 }>(group, x) },
                (DType::Q5_0, false) => unsafe { avx2::group_dot::<{ avx2::Q5_0 }>(group, x) },
                (DType::Q8_0, false) => unsafe { avx2::group_dot::<{ avx2::Q8_0 }>(group, x) },
                (_, true) => unsafe { avx2::group_dot_vnni::<{ avx2::Q4_0 }>(group, x) },
                (_, false) => unsafe { avx2::group_dot::<{ avx2::Q4_0 }>(group, x) },
            };
            dots.copy_from_slice(&group_dots);
            continue;
        }
        let Some(layout) = super::Nibbles::of(dtype) else { return };
        let size = dtype.block_bytes();
        for (r, dot) in dots.iter_mut().enumerate() {
            let mut row = vec![0u8; row_blocks * size];
            for (b, block) in row.chunks_exact_mut(size).enumerate() {
                plain_block(dtype, data, row_blocks, (g * GROUP + r, b), block);
            }
            *dot = super::q4_row(&row, x, super::f16_table(), layout);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Q16Row, GROUP, QK};
    use crate::block_dot::avx2::{Avx2Nibbles, PREFETCH_AHEAD};

    /// The block types of [`group_dot`]'s `KIND`.
    pub const Q4_0: u8 = 0;
    /// `Q4_1`: a minimum per block after the scale.
    pub const Q4_1: u8 = 1;
    /// `Q8_0`: 32 signed bytes per block.
    pub const Q8_0: u8 = 2;
    /// `Q5_0`: lane masks of fifth bits after the scales (`super::MASKS_AT`).
    pub const Q5_0: u8 = 3;

    /// `w_row · x` for the eight rows of one interleaved group of `KIND` blocks.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn group_dot<const KIND: u8>(group: &[u8], x: &Q16Row) -> [f32; GROUP] {
        // SAFETY: the caller's contract.
        unsafe { group_body::<KIND, false>(group, x) }
    }

    /// [`group_dot`] with AVX512-VNNI's `vpdpwssd` adding each pair's products in one
    /// instruction (256-bit registers).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA, F16C, AVX-512F, AVX-512VL and AVX512-VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    pub unsafe fn group_dot_vnni<const KIND: u8>(group: &[u8], x: &Q16Row) -> [f32; GROUP] {
        // SAFETY: the caller's contract.
        unsafe { group_body::<KIND, true>(group, x) }
    }

    /// The body of [`group_dot`] and [`group_dot_vnni`].
    ///
    /// # Safety
    /// The CPU must have the instructions of the caller (VNNI's with `VNNI`).
    #[inline(always)]
    unsafe fn group_body<const KIND: u8, const VNNI: bool>(group: &[u8], x: &Q16Row) -> [f32; GROUP] {
        let (head, quants) = match KIND {
            Q4_1 => (4, QK / 2),
            Q5_0 => (6, QK / 2),
            Q8_0 => (2, QK),
            _ => (2, QK / 2),
        };
        // SAFETY: AVX2 is present (the caller's contract).
        let nibbles = unsafe { Avx2Nibbles::new() };
        let block_bytes = GROUP * (head + quants);
        let blocks = x.d.len();
        assert!(group.len() >= blocks * block_bytes && x.q.len() >= blocks * QK && x.s.len() >= blocks);
        let low_nibble = _mm256_set1_epi16(0x0F);
        let (mut acc, mut offsets) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for b in 0..blocks {
            // SAFETY: block `b` of the group (144 bytes) and of `x` are in bounds (asserted
            // above); a prefetch may point anywhere.
            unsafe {
                let block = group.as_ptr().add(b * block_bytes);
                for line in (0..block_bytes).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(PREFETCH_AHEAD + line).cast());
                }
                let scales = _mm256_cvtph_ps(_mm_loadu_si128(block.cast()));
                let xq = x.q.as_ptr().add(b * QK);
                // Four running sums, so that no multiply-add waits on the one before it.
                let mut sums = [_mm256_setzero_si256(); 4];
                let add = |sum: __m256i, w: __m256i, x: __m256i| {
                    if VNNI {
                        _mm256_dpwssd_epi32(sum, w, x)
                    } else {
                        _mm256_add_epi32(sum, _mm256_madd_epi16(w, x))
                    }
                };
                let pair = |at: usize| _mm256_set1_epi32(xq.add(at).cast::<i32>().read_unaligned());
                if KIND == Q8_0 {
                    // Group `t`: weights `2t`, `2t + 1` of each row, sign-extended.
                    for t in 0..QK / 2 {
                        let w = _mm256_cvtepi8_epi16(_mm_loadu_si128(block.add(GROUP * head + 16 * t).cast()));
                        sums[t % 4] = add(sums[t % 4], w, pair(2 * t));
                    }
                } else {
                    // Group `t`: low nibbles weights `2t`, `2t + 1`, high nibbles `2t + 16`, `2t + 17`.
                    for t in 0..QK / 4 {
                        let bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(block.add(GROUP * head + 16 * t).cast()));
                        let (mut lo, mut hi) = (_mm256_and_si256(bytes, low_nibble), _mm256_srli_epi16::<4>(bytes));
                        if KIND == Q5_0 {
                            let masks = block.add(super::MASKS_AT + 4 * t).cast::<u16>();
                            lo = _mm256_or_si256(lo, nibbles.sixteens(masks.read_unaligned()));
                            hi = _mm256_or_si256(hi, nibbles.sixteens(masks.add(1).read_unaligned()));
                        }
                        let at = 2 * (t % 2);
                        sums[at] = add(sums[at], lo, pair(2 * t));
                        sums[at + 1] = add(sums[at + 1], hi, pair(16 + 2 * t));
                    }
                }
                let pairs = (_mm256_add_epi32(sums[0], sums[1]), _mm256_add_epi32(sums[2], sums[3]));
                let products = _mm256_cvtepi32_ps(_mm256_add_epi32(pairs.0, pairs.1));
                acc = _mm256_fmadd_ps(_mm256_mul_ps(scales, _mm256_set1_ps(x.d[b])), products, acc);
                // The offset term: `Q4_1`'s `m · x.s`; `Q4_0`'s `d·(q − 8)` gives −8 · `d · x.s`.
                let offset =
                    if KIND == Q4_1 { _mm256_cvtph_ps(_mm_loadu_si128(block.add(2 * GROUP).cast())) } else { scales };
                if KIND != Q8_0 {
                    offsets = _mm256_fmadd_ps(offset, _mm256_set1_ps(x.s[b]), offsets);
                }
            }
        }
        let total = match KIND {
            Q4_1 => _mm256_add_ps(acc, offsets),
            Q8_0 => acc,
            // `Q5_0` is `d·(q − 16)`.
            Q5_0 => _mm256_fmadd_ps(offsets, _mm256_set1_ps(-16.0), acc),
            _ => _mm256_fmadd_ps(offsets, _mm256_set1_ps(-8.0), acc),
        };
        let mut dots = [0f32; GROUP];
        // SAFETY: `dots` holds eight f32.
        unsafe { _mm256_storeu_ps(dots.as_mut_ptr(), total) };
        dots
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const TYPES: [DType; 4] = [DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0];

    /// `rows` rows of `row_blocks` blocks of `dtype` with varied scales, minimums and nibbles.
    pub(crate) fn plain(dtype: DType, rows: usize, row_blocks: usize) -> Vec<u8> {
        let mut data = Vec::new();
        for blk in 0..rows * row_blocks {
            data.extend(half::f16::from_f32(0.002 + (blk % 7) as f32 * 0.003).to_le_bytes());
            if dtype == DType::Q4_1 {
                data.extend(half::f16::from_f32(-0.01 * (blk % 5) as f32).to_le_bytes());
            }
            if dtype == DType::Q5_0 {
                data.extend(((blk as u32).wrapping_mul(0x9E37_79B9) ^ 0x5A5A_1234).to_le_bytes());
                // fifth bits
            }
            data.extend((0..quant_bytes(dtype)).map(|i| ((blk * 31 + i * 37 + i * i * 11) % 256) as u8));
        }
        data
    }

    #[test]
    fn interleaving_keeps_every_block() {
        let (rows, row_blocks) = (16, 5);
        for dtype in TYPES {
            let size = dtype.block_bytes();
            let data = plain(dtype, rows, row_blocks);
            let mixed = interleave(dtype, &data, row_blocks);
            assert_ne!(mixed, data);
            for row in 0..rows {
                for b in 0..row_blocks {
                    let (i, mut block) = (row * row_blocks + b, vec![0u8; size]);
                    plain_block(dtype, &mixed, row_blocks, (row, b), &mut block);
                    assert_eq!(block[..], data[i * size..(i + 1) * size], "{dtype} row {row}");
                }
            }
            let (mut want, mut got) = (Vec::new(), Vec::new());
            zoo_core::quant::dequantize(dtype, &data[7 * size..61 * size], &mut want);
            dequantize(dtype, &mixed, row_blocks, 7..61, &mut got);
            assert_eq!(got, want, "{dtype}");
        }
    }

    #[test]
    fn group_dots_match_the_row_kernel() {
        let (rows, row_blocks) = (24, 9);
        let x: Vec<f32> = (0..row_blocks * QK).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0 + i as f32 * 0.01).collect();
        let q = Q16Row::quantize(&x);
        for dtype in TYPES {
            let data = plain(dtype, rows, row_blocks);
            let mixed = interleave(dtype, &data, row_blocks);
            let layout = super::super::Nibbles::of(dtype).unwrap();
            let lut = super::super::f16_table();
            let mut want = vec![0f32; rows];
            for (row, w) in want.iter_mut().zip(data.chunks_exact(row_blocks * dtype.block_bytes())) {
                *row = super::super::q4_row(w, &q, lut, layout);
            }
            for level in [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|&l| l <= isa()) {
                let mut got = vec![f32::NAN; rows];
                rows_dot_at(level, dtype, &mixed, row_blocks, &q, &mut got);
                for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{dtype} {level:?} row {j}: {g} vs {w}");
                }
            }
        }
    }
}
