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
//! Only called where [`crate::isa`] found AVX-512F/BW/VL and VNNI.

use std::arch::x86_64::*;

use super::avx2::{nibble_tile, transpose, NibbleOps};
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
    let sixteen = _mm256_set1_epi16(16);
    // SAFETY: the instructions are present (the caller's contract).
    let [rows] = unsafe { transpose(nibble_tile::<R, 1, K, _>(w, row_bytes, [x], lut, VnniNibbles { sixteen })) };
    rows
}

/// The AVX-512 [`NibbleOps`]: fifth bits by two masked adds (the mask's halves are lane masks
/// as they stand), products by one `vpmaddwd` and one `vpdpwssd`.
#[derive(Clone, Copy)]
struct VnniNibbles {
    /// 16 in every i16 lane.
    sixteen: __m256i,
}

impl NibbleOps for VnniNibbles {
    #[inline(always)]
    unsafe fn fifth_bits(self, lo: __m256i, hi: __m256i, mask: u32) -> (__m256i, __m256i) {
        // SAFETY: AVX-512BW and VL are present (the caller's contract).
        unsafe {
            let lo = _mm256_mask_add_epi16(lo, mask as u16, lo, self.sixteen);
            (lo, _mm256_mask_add_epi16(hi, (mask >> 16) as u16, hi, self.sixteen))
        }
    }

    #[inline(always)]
    unsafe fn products(self, lo: __m256i, xlo: __m256i, hi: __m256i, xhi: __m256i) -> __m256i {
        // SAFETY: AVX2 and AVX512-VNNI (VL) are present (the caller's contract).
        unsafe { _mm256_dpwssd_epi32(_mm256_madd_epi16(lo, xlo), hi, xhi) }
    }
}
