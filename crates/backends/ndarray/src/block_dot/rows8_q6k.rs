//! `Q6_K` weights interleaved eight rows at a time, for decode with AVX2 (as
//! [`super::rows8_k`] does for `Q4_K`).
//!
//! A `Q6_K` super-block (256 weights, 210 bytes) is 128 bytes of low nibbles (`ql`), 64 of
//! high bit pairs (`qh`), sixteen i8 scales (one per 16 weights) and an f16 `d`. Weight
//! `128h + 32k + l` (`h` < 2, `k` < 4, `l` < 32) is `ql[64h + l + 32·(k % 2)]`'s low (k < 2) or
//! high nibble, with bits `2k`, `2k + 1` of `qh[32h + l]` on top, minus 32.
//!
//! Interleaved, super-block `b` of eight consecutive rows is 1 680 bytes (eight times 210):
//! - the eight `d`s (16 bytes), then the sixteen scales as planes (scale `g` of the eight rows
//!   side by side, 128 bytes);
//! - for each half `h` and pair `t` < 16, 48 bytes: bytes `2t`, `2t + 1` of each row's
//!   `ql[64h..]`, then of `ql[64h + 32..]`, then of `qh[32h..]`. Widened to i16 they give
//!   weights `128h + 32k + 2t`, `+ 1` of the eight rows for each `k`, pair by pair: four
//!   `vpdpwssd` (or `vpmaddwd`) with the activations' pairs broadcast.

use zoo_core::kquant::QK_K;
use zoo_core::DType;

use super::rows8::GROUP;
use super::Q16Row;

/// Bytes of a `Q6_K` super-block.
const BYTES: usize = DType::Q6_K.block_bytes();
/// Where the scale planes start in a group super-block.
const PLANES: usize = 2 * GROUP;
/// Where the quant groups start.
const QUANTS: usize = PLANES + 16 * GROUP;
/// Bytes of one quant group (pair `t` of a half, eight rows).
const PAIR_BYTES: usize = 6 * GROUP;

/// Where byte `i` of row `r`'s super-block lies in its group super-block.
fn place(i: usize, r: usize) -> usize {
    match i {
        0..128 => {
            let (h, rest) = (i / 64, i % 64);
            let (part, l) = (rest / 32, rest % 32);
            QUANTS + (16 * h + l / 2) * PAIR_BYTES + part * 2 * GROUP + 2 * r + l % 2
        }
        128..192 => {
            let (h, l) = ((i - 128) / 32, (i - 128) % 32);
            QUANTS + (16 * h + l / 2) * PAIR_BYTES + 4 * GROUP + 2 * r + l % 2
        }
        192..208 => PLANES + GROUP * (i - 192) + r,
        _ => 2 * r + (i - 208),
    }
}

/// Row `r`'s super-block `block` (as the file stores it) written into its places of `group`.
fn put_row(block: &[u8], r: usize, group: &mut [u8]) {
    for (i, &byte) in block.iter().enumerate() {
        group[place(i, r)] = byte;
    }
}

/// Row `r`'s super-block as the file stores it, from a group super-block.
fn plain_row(group: &[u8], r: usize) -> [u8; BYTES] {
    std::array::from_fn(|i| group[place(i, r)])
}

super::rows8_super::super_layout!(Q6K, Q6_K);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::gemm::{Panel, LANES, PAIRS};
    use super::{Q16Row, BYTES, GROUP, PAIR_BYTES, PLANES, QK_K, QUANTS};

    super::super::rows8_super::eight_row_entries!();

    /// The four quants `q − 32` of pair `t` of a half (`k` = 0..4: weights `128h + 32k + 2t`,
    /// `+ 1` of the eight rows), from the group at `at`.
    ///
    /// # Safety
    /// AVX2; 48 readable bytes at `at`.
    #[inline(always)]
    unsafe fn quants(at: *const u8) -> [__m256i; 4] {
        // SAFETY: the caller's contract.
        unsafe {
            let (low4, bits, thirty_two) = (_mm256_set1_epi16(0x0F), _mm256_set1_epi16(0x30), _mm256_set1_epi16(32));
            let widen = |at: *const u8| _mm256_cvtepu8_epi16(_mm_loadu_si128(at.cast()));
            let (a, b, hh) = (widen(at), widen(at.add(2 * GROUP)), widen(at.add(4 * GROUP)));
            [
                _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_and_si256(_mm256_slli_epi16::<4>(hh), bits)),
                _mm256_or_si256(_mm256_and_si256(b, low4), _mm256_and_si256(_mm256_slli_epi16::<2>(hh), bits)),
                _mm256_or_si256(_mm256_srli_epi16::<4>(a), _mm256_and_si256(hh, bits)),
                _mm256_or_si256(_mm256_srli_epi16::<4>(b), _mm256_and_si256(_mm256_srli_epi16::<2>(hh), bits)),
            ]
            .map(|q| _mm256_sub_epi16(q, thirty_two))
        }
    }

    /// [`super::widen_half`] with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen_half(groups: &[u8], half: usize, panel: &mut Panel) {
        let supers = groups.len() / (GROUP * BYTES);
        let lane = half * GROUP;
        assert!(half < 2 && panel.groups == 2 && panel.d.len() >= supers * 16 * LANES);
        assert!(panel.q.len() >= supers * 8 * PAIRS * LANES * 2);
        let (q, d_out) = (panel.q.as_mut_ptr(), panel.d.as_mut_ptr());
        for sb in 0..supers {
            // SAFETY: super-block `sb` of `groups` and its blocks of the panel are in bounds
            // (asserted above).
            unsafe {
                let block = groups.as_ptr().add(sb * GROUP * BYTES);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(block.cast()));
                for g in 0..16 {
                    let sc =
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(block.add(PLANES + GROUP * g).cast())));
                    _mm256_storeu_ps(d_out.add((sb * 16 + g) * LANES + lane), _mm256_mul_ps(d, sc));
                }
                for h in 0..2 {
                    for t in 0..16 {
                        let at = block.add(QUANTS + (16 * h + t) * PAIR_BYTES);
                        for (k, quant) in quants(at).into_iter().enumerate() {
                            let b = sb * 8 + 4 * h + k;
                            _mm256_storeu_si256(q.add(((b * PAIRS + t) * LANES + lane) * 2).cast(), quant);
                        }
                    }
                }
            }
        }
    }

    /// Pair `t`'s products of a half into `sums` (one per `k`): the group at `at`, widened,
    /// offset by 32 and multiplied with the activations at `xq` (weight `128h + 2t`).
    ///
    /// # Safety
    /// The caller's instructions; 48 bytes at `at` and 98 activations at `xq` readable.
    #[inline(always)]
    unsafe fn step<const VNNI: bool>(at: *const u8, xq: *const i16, sums: &mut [__m256i; 4]) {
        // SAFETY: the caller's contract.
        unsafe {
            for (k, w) in quants(at).into_iter().enumerate() {
                let x = _mm256_set1_epi32(xq.add(32 * k).cast::<i32>().read_unaligned());
                sums[k] = if VNNI {
                    _mm256_dpwssd_epi32(sums[k], w, x)
                } else {
                    _mm256_add_epi32(sums[k], _mm256_madd_epi16(w, x))
                };
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
        assert!(group.len() >= supers * group_bytes && x.q.len() >= supers * QK_K);
        let mut acc = _mm256_setzero_ps();
        for sb in 0..supers {
            // SAFETY: super-block `sb` of the group and of `x` are in bounds (asserted above).
            unsafe {
                let block = group.as_ptr().add(sb * group_bytes);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(block.cast()));
                let xq = x.q.as_ptr().add(sb * QK_K);
                for h in 0..2 {
                    // Pairs t of 8·half .. 8·half + 8: 16-element group 8h + 2k + half of each k.
                    for half in 0..2 {
                        // Even and odd pairs into their own sums (named, so they stay in registers).
                        let (mut even, mut odd) = ([_mm256_setzero_si256(); 4], [_mm256_setzero_si256(); 4]);
                        for t in (8 * half..8 * half + 8).step_by(2) {
                            step::<VNNI>(
                                block.add(QUANTS + (16 * h + t) * PAIR_BYTES),
                                xq.add(128 * h + 2 * t),
                                &mut even,
                            );
                            step::<VNNI>(
                                block.add(QUANTS + (16 * h + t + 1) * PAIR_BYTES),
                                xq.add(128 * h + 2 * t + 2),
                                &mut odd,
                            );
                        }
                        for (k, (even, odd)) in even.into_iter().zip(odd).enumerate() {
                            let g = 8 * h + 2 * k + half;
                            let sc = _mm_loadl_epi64(block.add(PLANES + GROUP * g).cast());
                            let sc = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc));
                            let scale = _mm256_mul_ps(_mm256_mul_ps(sc, d), _mm256_set1_ps(x.d[sb * 8 + 4 * h + k]));
                            let sum = _mm256_add_epi32(even, odd);
                            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc);
                        }
                    }
                }
            }
        }
        let mut dots = [0f32; GROUP];
        // SAFETY: `dots` holds eight f32.
        unsafe { _mm256_storeu_ps(dots.as_mut_ptr(), acc) };
        dots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_has_its_own_place() {
        let mut seen = vec![false; GROUP * BYTES];
        for r in 0..GROUP {
            for i in 0..BYTES {
                assert!(!std::mem::replace(&mut seen[place(i, r)], true), "byte {i} of row {r}");
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn the_layout_keeps_every_super_block_and_product() {
        super::super::rows8_super::checks::layout_keeps_every_super_block::<Q6K>();
    }
}
