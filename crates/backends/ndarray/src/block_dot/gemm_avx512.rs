//! The intrinsics of [`super::gemm`]: panels widened with AVX2 and the AVX512-VNNI
//! micro-kernel.

use std::arch::x86_64::*;

use zoo_core::quant::QK;
use zoo_core::DType;

use super::avx2::Avx2Nibbles;
use super::gemm::{Panel, TokenGroup, LANES, PAIRS, TOKENS};
use super::rows8::{header, GROUP, MASKS_AT};

/// Lanes `8 · half ..` of `panel` from the eight interleaved rows of `groups` (their blocks one
/// after another): per block the eight scales (and `Q4_1`'s minimums) as f32, and each 16-byte
/// group of quants widened to i16 pairs, the type's offset taken off. The values are
/// [`Panel::widen_half_portable`]'s.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn widen_half(dtype: DType, groups: &[u8], half: usize, panel: &mut Panel) {
    let head = header(dtype);
    let group_bytes = GROUP * dtype.block_bytes();
    let blocks = panel.q.len() / (PAIRS * LANES * 2);
    assert!(panel.groups == 1 && panel.d.len() == blocks * LANES);
    assert!(half < 2 && groups.len() >= blocks * group_bytes && panel.q.len() >= blocks * PAIRS * LANES * 2);
    // SAFETY: AVX2 is present (the caller's contract).
    let nibbles = unsafe { Avx2Nibbles::new() };
    let low = _mm256_set1_epi16(0x0F);
    let offset = _mm256_set1_epi16(match dtype {
        DType::Q4_0 => 8,
        DType::Q5_0 => 16,
        _ => 0,
    });
    let lane = half * GROUP;
    let q = panel.q.as_mut_ptr();
    for b in 0..blocks {
        // SAFETY: block `b`'s group (`group_bytes`) is in `groups`, and its lanes of the panel's
        // block `b` in `panel` (asserted above).
        unsafe {
            let block = groups.as_ptr().add(b * group_bytes);
            let scales = _mm256_cvtph_ps(_mm_loadu_si128(block.cast()));
            _mm256_storeu_ps(panel.d.as_mut_ptr().add(b * LANES + lane), scales);
            if dtype == DType::Q4_1 {
                let minimums = _mm256_cvtph_ps(_mm_loadu_si128(block.add(2 * GROUP).cast()));
                _mm256_storeu_ps(panel.m.as_mut_ptr().add(b * LANES + lane), minimums);
            }
            let quants = block.add(GROUP * head);
            let pair_at = |p: usize| q.add(((b * PAIRS + p) * LANES + lane) * 2).cast::<__m256i>();
            if dtype == DType::Q8_0 {
                for t in 0..QK / 2 {
                    let w = _mm256_cvtepi8_epi16(_mm_loadu_si128(quants.add(16 * t).cast()));
                    _mm256_storeu_si256(pair_at(t), w);
                }
                continue;
            }
            for t in 0..QK / 4 {
                let bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(quants.add(16 * t).cast()));
                let (mut lo, mut hi) = (_mm256_and_si256(bytes, low), _mm256_srli_epi16::<4>(bytes));
                if dtype == DType::Q5_0 {
                    let masks = block.add(MASKS_AT + 4 * t).cast::<u16>();
                    lo = _mm256_or_si256(lo, nibbles.sixteens(masks.read_unaligned()));
                    hi = _mm256_or_si256(hi, nibbles.sixteens(masks.add(1).read_unaligned()));
                }
                _mm256_storeu_si256(pair_at(t), _mm256_sub_epi16(lo, offset));
                _mm256_storeu_si256(pair_at(t + QK / 4), _mm256_sub_epi16(hi, offset));
            }
        }
    }
}

/// `c[t · ldc + j]` = token `t` of `group` times row `j` of `panel`, for every token and the
/// panel's rows (the lanes past them are not written).
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and AVX512-VNNI; `c` must hold `(group.count − 1) ·
/// ldc + panel.rows` elements.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn tile(panel: &Panel, group: &TokenGroup, c: *mut f32, ldc: usize) {
    let mask: __mmask16 = if panel.rows >= LANES { 0xffff } else { (1 << panel.rows) - 1 };
    let mins = !panel.m.is_empty();
    // SAFETY (each arm): the caller's contract; the arm's `T` is the group's token count.
    unsafe {
        match (group.count, mins, panel.groups) {
            (12, false, 1) => tokens::<12, false, 1>(panel, group, c, ldc, mask),
            (11, false, 1) => tokens::<11, false, 1>(panel, group, c, ldc, mask),
            (10, false, 1) => tokens::<10, false, 1>(panel, group, c, ldc, mask),
            (9, false, 1) => tokens::<9, false, 1>(panel, group, c, ldc, mask),
            (8, false, 1) => tokens::<8, false, 1>(panel, group, c, ldc, mask),
            (7, false, 1) => tokens::<7, false, 1>(panel, group, c, ldc, mask),
            (6, false, 1) => tokens::<6, false, 1>(panel, group, c, ldc, mask),
            (5, false, 1) => tokens::<5, false, 1>(panel, group, c, ldc, mask),
            (4, false, 1) => tokens::<4, false, 1>(panel, group, c, ldc, mask),
            (3, false, 1) => tokens::<3, false, 1>(panel, group, c, ldc, mask),
            (2, false, 1) => tokens::<2, false, 1>(panel, group, c, ldc, mask),
            (1, false, 1) => tokens::<1, false, 1>(panel, group, c, ldc, mask),
            (12, true, 1) => tokens::<12, true, 1>(panel, group, c, ldc, mask),
            (11, true, 1) => tokens::<11, true, 1>(panel, group, c, ldc, mask),
            (10, true, 1) => tokens::<10, true, 1>(panel, group, c, ldc, mask),
            (9, true, 1) => tokens::<9, true, 1>(panel, group, c, ldc, mask),
            (8, true, 1) => tokens::<8, true, 1>(panel, group, c, ldc, mask),
            (7, true, 1) => tokens::<7, true, 1>(panel, group, c, ldc, mask),
            (6, true, 1) => tokens::<6, true, 1>(panel, group, c, ldc, mask),
            (5, true, 1) => tokens::<5, true, 1>(panel, group, c, ldc, mask),
            (4, true, 1) => tokens::<4, true, 1>(panel, group, c, ldc, mask),
            (3, true, 1) => tokens::<3, true, 1>(panel, group, c, ldc, mask),
            (2, true, 1) => tokens::<2, true, 1>(panel, group, c, ldc, mask),
            (1, true, 1) => tokens::<1, true, 1>(panel, group, c, ldc, mask),
            (12, false, 2) => tokens::<12, false, 2>(panel, group, c, ldc, mask),
            (11, false, 2) => tokens::<11, false, 2>(panel, group, c, ldc, mask),
            (10, false, 2) => tokens::<10, false, 2>(panel, group, c, ldc, mask),
            (9, false, 2) => tokens::<9, false, 2>(panel, group, c, ldc, mask),
            (8, false, 2) => tokens::<8, false, 2>(panel, group, c, ldc, mask),
            (7, false, 2) => tokens::<7, false, 2>(panel, group, c, ldc, mask),
            (6, false, 2) => tokens::<6, false, 2>(panel, group, c, ldc, mask),
            (5, false, 2) => tokens::<5, false, 2>(panel, group, c, ldc, mask),
            (4, false, 2) => tokens::<4, false, 2>(panel, group, c, ldc, mask),
            (3, false, 2) => tokens::<3, false, 2>(panel, group, c, ldc, mask),
            (2, false, 2) => tokens::<2, false, 2>(panel, group, c, ldc, mask),
            (1, false, 2) => tokens::<1, false, 2>(panel, group, c, ldc, mask),
            _ => unreachable!("1 ≤ tokens ≤ TOKENS; constant terms only with one scale group a block"),
        }
    }
}

const _: () = assert!(TOKENS == 12, "`tile`'s arms");

/// [`tile`] for exactly `T` tokens (a constant, so that the sums stay in registers), with
/// the constant terms (`panel.m`) when `MINS`, and `G` scale groups per block.
///
/// # Safety
/// As [`tile`], with `group.count = T`, `panel.groups = G`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tokens<const T: usize, const MINS: bool, const G: usize>(
    panel: &Panel,
    group: &TokenGroup,
    c: *mut f32,
    ldc: usize,
    mask: __mmask16,
) {
    let blocks = panel.q.len() / (PAIRS * LANES * 2);
    assert!(group.q.len() >= blocks * PAIRS * T && group.d.len() >= blocks * T && group.s.len() >= blocks * T);
    assert!(panel.d.len() >= blocks * G * LANES && (!MINS || panel.m.len() >= blocks * LANES));
    let (wq, xq) = (panel.q.as_ptr(), group.q.as_ptr());
    let mut totals = [_mm512_setzero_ps(); T];
    for b in 0..blocks {
        // SAFETY: block `b` of the panel and of the group are in bounds (asserted above).
        unsafe {
            let xd = group.d.as_ptr().add(b * T);
            for g in 0..G {
                let mut sums = [_mm512_setzero_si512(); T];
                for p in g * PAIRS / G..(g + 1) * PAIRS / G {
                    let w = _mm512_loadu_si512(wq.add((b * PAIRS + p) * LANES * 2).cast());
                    let x = xq.add((b * PAIRS + p) * T);
                    for (t, sum) in sums.iter_mut().enumerate() {
                        *sum = _mm512_dpwssd_epi32(*sum, w, _mm512_set1_epi32(*x.add(t)));
                    }
                }
                let scales = _mm512_loadu_ps(panel.d.as_ptr().add((b * G + g) * LANES));
                for (t, (total, sum)) in totals.iter_mut().zip(sums).enumerate() {
                    let scale = _mm512_mul_ps(scales, _mm512_set1_ps(*xd.add(t)));
                    *total = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, *total);
                }
            }
            if MINS {
                let xs = group.s.as_ptr().add(b * T);
                let minimums = _mm512_loadu_ps(panel.m.as_ptr().add(b * LANES));
                for (t, total) in totals.iter_mut().enumerate() {
                    *total = _mm512_fmadd_ps(minimums, _mm512_set1_ps(*xs.add(t)), *total);
                }
            }
        }
    }
    for (t, total) in totals.into_iter().enumerate() {
        // SAFETY: token `t`'s row of `c` holds the panel's rows (the caller's contract); the
        // lanes past them are masked off.
        unsafe { _mm512_mask_storeu_ps(c.add(t * ldc), mask, total) };
    }
}
