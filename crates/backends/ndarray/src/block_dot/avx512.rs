//! The 4- and 5-bit block dot products with AVX-512 and AVX512-VNNI.
//!
//! One block is one 512-bit vector of 32 i16: the weights' quants are widened to i16 in a
//! register and multiplied with the block's 16-bit activations ([`Q16Row`]) by one
//! `vpdpwssd` (32 products, added in pairs into 16 i32 lanes), then the lanes meet the block's
//! scales in one float FMA. The activations are the same 16-bit rounding the AVX2 kernels use,
//! so the result is the same sum in another order.
//!
//! - 4- and 5-bit blocks: the 16 bytes of nibbles are placed twice in 32 i16 lanes, shifted by
//!   0 (lanes 0–15, elements 0–15) or 4 (lanes 16–31, elements 16–31) and masked; the 5-bit
//!   types' 32-bit mask of fifth bits is an AVX-512 lane mask as it stands (bit `j` for element
//!   `j`), so one masked add puts every fifth bit in place.
//!
//! `Q8_0` keeps `avx2::q8_0_row` (f32 activations): a kernel like these on 16-bit activations
//! was 2e-4 from f32 math, over the conformance suite's 1e-4 for quantised weights.
//!
//! Only called where [`crate::isa`] found AVX-512F/BW/VL and VNNI.

use std::arch::x86_64::*;

use zoo_core::quant::QK;

use super::avx2::{half_at, PREFETCH_AHEAD};
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
    let low_nibble = _mm512_set1_epi16(0x0F);
    let sixteen = _mm512_set1_epi16(16);
    // Lanes 0–15 keep the low nibble of byte j, lanes 16–31 take its high nibble.
    let shifts = _mm512_inserti64x4::<1>(_mm512_setzero_si512(), _mm256_set1_epi16(4));
    let mut acc = [_mm512_setzero_ps(); R];
    let mut min_acc = [0f32; R];
    for blk in 0..blocks {
        // SAFETY: block `blk` of `x.q` is in bounds (asserted above).
        let xv = unsafe { _mm512_loadu_si512(xq.add(blk * QK).cast()) };
        let (xd, xs) = (x.d[blk], x.s[blk]);
        for r in 0..R {
            // SAFETY: block `blk` of row `r` is in bounds (asserted above), and so are its fields.
            unsafe {
                let b = w.add(r * row_bytes + blk * size);
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_AHEAD).cast());
                let bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.add(layout.nibbles_at).cast()));
                let mut q = _mm512_and_si512(_mm512_srlv_epi16(_mm512_cvtepu8_epi16(bytes), shifts), low_nibble);
                if let Some(at) = layout.mask_at {
                    let mask = b.add(at).cast::<u32>().read_unaligned();
                    q = _mm512_mask_add_epi16(q, mask, q, sixteen);
                }
                let products = _mm512_dpwssd_epi32(_mm512_setzero_si512(), q, xv);
                let dw = half_at(lut, b);
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(dw * xd), _mm512_cvtepi32_ps(products), acc[r]);
                let m = match layout.min_at {
                    Some(at) => half_at(lut, b.add(at)),
                    None => layout.offset * dw,
                };
                min_acc[r] += m * xs;
            }
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) + min_acc[r])
}
