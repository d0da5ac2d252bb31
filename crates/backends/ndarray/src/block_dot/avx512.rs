//! The 5-bit block dot products (`Q5_0`, `Q5_1`; the kernel takes any 4/5-bit layout) with
//! AVX-512VL, AVX-512BW and AVX512-VNNI.
//!
//! As `avx2::q4_rows`, on 256-bit registers (AVX-512VL): one block is two vectors of 16 i16
//! (low and high nibbles), multiplied with the block's 16-bit activations ([`Q16Row`]) by one
//! `vpmaddwd` and one `vpdpwssd` (which adds the second into the first's i32 lanes), then the
//! lanes meet the block's scales in one float FMA. The 5-bit types' 32-bit mask of fifth bits
//! is two AVX-512 lane masks as it stands (bit `j` for element `j`), so two masked adds put
//! every fifth bit in place. A 512-bit version (one block per register, `vpsrlvw` for the high
//! nibbles) measured 1.5–1.7× slower than the AVX2 kernel on Q4_0/Q4_1 (a guess, not
//! profiled: with 512-bit instructions in flight Intel cores issue vector work on two ports
//! instead of three, and a block is too little work per instruction to make up for it). The activations are the AVX2 kernels' 16-bit
//! rounding, so the result is the same sum in another order.
//!
//! `Q8_0` keeps `avx2::q8_0_row` (f32 activations): a kernel like these on 16-bit activations
//! was 2e-4 from f32 math, over the conformance suite's 1e-4 for quantised weights.
//!
//! Only called where [`crate::isa`] found AVX-512F/BW/VL and VNNI.

use std::arch::x86_64::*;

use zoo_core::quant::QK;

use super::avx2::{half_at, sum8, PREFETCH_AHEAD};
use super::{F16Table, NibbleKind, Q16Row};

/// `w_row · x` for `R` consecutive rows (each `row_bytes` long, from the start of `w`) of
/// `Q4_0`, `Q4_1`, `Q5_0` or `Q5_1` blocks (`K`); as `avx2::q4_rows`, several rows share each
/// block of activations.
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW, AVX-512VL and AVX512-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn q4_rows<const R: usize, K: NibbleKind>(
    w: &[u8],
    row_bytes: usize,
    x: &Q16Row,
    lut: &F16Table,
) -> [f32; R] {
    let layout = K::LAYOUT;
    let size = layout.size();
    let blocks = x.d.len();
    assert!(blocks * size <= row_bytes && w.len() >= R * row_bytes);
    assert!(x.q.len() >= blocks * QK && x.s.len() >= blocks);
    let (w, xq) = (w.as_ptr(), x.q.as_ptr());
    let (low_nibble, sixteen) = (_mm256_set1_epi16(0x0F), _mm256_set1_epi16(16));
    let mut acc = [_mm256_setzero_ps(); R];
    let mut min_acc = [0f32; R];
    for blk in 0..blocks {
        // SAFETY: block `blk` of `x.q` is in bounds (asserted above).
        let q = unsafe { xq.add(blk * QK) };
        // SAFETY: as above.
        let (xlo, xhi) = unsafe { (_mm256_loadu_si256(q.cast()), _mm256_loadu_si256(q.add(16).cast())) };
        let (xd, xs) = (x.d[blk], x.s[blk]);
        for r in 0..R {
            // SAFETY: block `blk` of row `r` is in bounds (asserted above), and so are its fields.
            unsafe {
                let b = w.add(r * row_bytes + blk * size);
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_AHEAD).cast());
                // Byte j widened to i16: its low nibble is element j, its high nibble element j + 16.
                let bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(layout.nibbles_at).cast()));
                let mut lo = _mm256_and_si256(bytes, low_nibble);
                let mut hi = _mm256_srli_epi16::<4>(bytes);
                if let Some(at) = layout.mask_at {
                    let mask = b.add(at).cast::<u32>().read_unaligned();
                    lo = _mm256_mask_add_epi16(lo, mask as u16, lo, sixteen);
                    hi = _mm256_mask_add_epi16(hi, (mask >> 16) as u16, hi, sixteen);
                }
                let products = _mm256_dpwssd_epi32(_mm256_madd_epi16(lo, xlo), hi, xhi);
                let dw = half_at(lut, b);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xd), _mm256_cvtepi32_ps(products), acc[r]);
                let m = match layout.min_at {
                    Some(at) => half_at(lut, b.add(at)),
                    None => layout.offset * dw,
                };
                min_acc[r] += m * xs;
            }
        }
    }
    // SAFETY: AVX2 is present (the caller's contract).
    std::array::from_fn(|r| unsafe { sum8(acc[r]) } + min_acc[r])
}
