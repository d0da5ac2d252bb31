//! The block dot products with AVX2 intrinsics.
//!
//! The quants of a block (nibbles and fifth bits of the 4- and 5-bit types, `Q8_0`'s signed
//! bytes) are widened to i16 and multiplied with the 16-bit activations by `madd` (16 products,
//! added in pairs to i32, per instruction), then one float FMA per block with its scales.
//!
//! Only called after `is_x86_feature_detected!("avx2")` (and `"fma"`) said yes.

use std::arch::x86_64::*;

use zoo_core::quant::QK;

use super::{F16Table, NibbleKind, Q16Row};

/// How far ahead of the block being multiplied weights are prefetched, in bytes. Without it the
/// loads wait on memory most of the time (rows are a few hundred bytes, too short for the
/// hardware prefetcher to get ahead); 2 KiB measured fastest of 512, 1024 and 2048 (SmolLM2
/// decode, one thread: 43, 60 and 61 tok/s; none: 37).
pub(super) const PREFETCH_AHEAD: usize = 2048;

/// `w_row · x` for `R` consecutive rows (each `row_bytes` long, from the start of `w`) of
/// `Q8_0`, `Q4_0`, `Q4_1`, `Q5_0` or `Q5_1` blocks (`K`). Several rows per call share each
/// block of `x` and spread the per-row set-up and final sums (how many pays depends on the
/// CPU: `rows_per_call` in the parent module).
///
/// Every type is `d·q + m` per element ([`super::Nibbles`]); `Σ m·x = m · x.s`, so all share the
/// unsigned quant product. The 5-bit types OR each element's fifth bit (bit `j` of the block's
/// mask for element `j`) into its nibble.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn q4_rows<const R: usize, K: NibbleKind>(
    w: &[u8],
    row_bytes: usize,
    x: &Q16Row,
    lut: &F16Table,
) -> [f32; R] {
    // SAFETY: AVX2 and FMA are present (the caller's contract).
    let [rows] = unsafe { transpose(nibble_tile::<R, 1, K, _>(w, row_bytes, [x], lut, Avx2Nibbles::new())) };
    rows
}

/// `w_row · x_a` for `R` consecutive rows of 4-, 5- or 8-bit blocks (`K`) and the `A` activation
/// rows `xs` (a few rows of a batched step): each weight block is widened once for all of
/// them. `result[r][a]` equals `q4_rows`' `[r]` for `xs[a]`, bit for bit.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn q4_tile<const R: usize, const A: usize, K: NibbleKind>(
    w: &[u8],
    row_bytes: usize,
    xs: [&Q16Row; A],
    lut: &F16Table,
) -> [[f32; A]; R] {
    // SAFETY: AVX2 and FMA are present (the caller's contract).
    unsafe { nibble_tile::<R, A, K, _>(w, row_bytes, xs, lut, Avx2Nibbles::new()) }
}

/// `[[v; 1]; R]` as `[[v; R]; 1]`: a one-activation tile as a row of results.
#[inline(always)]
pub(super) fn transpose<const R: usize>(tile: [[f32; 1]; R]) -> [[f32; R]; 1] {
    [std::array::from_fn(|r| tile[r][0])]
}

/// What a kernel of [`nibble_tile`] does with its own instructions: put the 5-bit types' fifth
/// bits in place, and multiply a block's quants with its activations.
pub(super) trait NibbleOps: Copy {
    /// `(lo, hi)` with 16 added to each element whose bit of `mask` is set (bit `j` for element
    /// `j` of `lo`, bit `16 + j` for element `j` of `hi`).
    ///
    /// # Safety
    /// The CPU must have the kernel's instructions.
    unsafe fn fifth_bits(self, lo: __m256i, hi: __m256i, mask: u32) -> (__m256i, __m256i);

    /// `lo·xlo + hi·xhi` over i16 lanes, summed in adjacent pairs into i32 lanes.
    ///
    /// # Safety
    /// The CPU must have the kernel's instructions.
    unsafe fn products(self, lo: __m256i, xlo: __m256i, hi: __m256i, xhi: __m256i) -> __m256i;
}

/// The AVX2 [`NibbleOps`]: fifth bits by comparing the broadcast mask with each lane's bit,
/// products by two `madd`s.
#[derive(Clone, Copy)]
pub(super) struct Avx2Nibbles {
    /// `1 << j` in i16 lane `j`.
    lane_bits: __m256i,
}

impl Avx2Nibbles {
    /// The lane bits `1 << j`.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    pub(super) unsafe fn new() -> Self {
        // SAFETY: AVX2 is present (the caller's contract).
        let lane_bits = unsafe {
            _mm256_setr_epi16(
                1,
                2,
                4,
                8,
                16,
                32,
                64,
                128,
                256,
                512,
                1024,
                2048,
                4096,
                8192,
                16384,
                i16::MIN, // bit 15
            )
        };
        Self { lane_bits }
    }

    /// 16 in each i16 lane `j` whose bit `j` of `mask` is set, else 0.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline(always)]
    pub(super) unsafe fn sixteens(self, mask: u16) -> __m256i {
        // SAFETY: AVX2 is present (the caller's contract).
        unsafe {
            let set =
                _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(mask as i16), self.lane_bits), self.lane_bits);
            _mm256_and_si256(set, _mm256_set1_epi16(16))
        }
    }
}

impl NibbleOps for Avx2Nibbles {
    #[inline(always)]
    unsafe fn fifth_bits(self, lo: __m256i, hi: __m256i, mask: u32) -> (__m256i, __m256i) {
        // SAFETY: AVX2 is present (the caller's contract).
        unsafe {
            let (lo_bits, hi_bits) = (self.sixteens(mask as u16), self.sixteens((mask >> 16) as u16));
            (_mm256_or_si256(lo, lo_bits), _mm256_or_si256(hi, hi_bits))
        }
    }

    #[inline(always)]
    unsafe fn products(self, lo: __m256i, xlo: __m256i, hi: __m256i, xhi: __m256i) -> __m256i {
        // SAFETY: AVX2 is present (the caller's contract).
        unsafe { _mm256_add_epi32(_mm256_madd_epi16(lo, xlo), _mm256_madd_epi16(hi, xhi)) }
    }
}

/// The body of the block kernels (`q4_rows` and `q4_tile` here, `q4_rows` in `avx512`),
/// inlined into each: per block, for each of the `R` weight rows, the quants widened to i16
/// once (nibbles split and fifth bits added by `ops`, or `Q8_0`'s bytes sign-extended), then
/// for each of the `A` activation rows in `xs` their products by `ops`, one FMA with the
/// scales, and the offset term `m · x.s` (none for `Q8_0`). Each (row,
/// activation row) pair is computed exactly as with `A = 1`; more activation rows only share
/// the widening.
///
/// # Safety
/// The CPU must support AVX2, FMA and `ops`'s instructions.
#[inline(always)]
pub(super) unsafe fn nibble_tile<const R: usize, const A: usize, K: NibbleKind, O: NibbleOps>(
    w: &[u8],
    row_bytes: usize,
    xs: [&Q16Row; A],
    lut: &F16Table,
    ops: O,
) -> [[f32; A]; R] {
    let layout = K::LAYOUT;
    let size = layout.size();
    let blocks = xs[0].d.len();
    assert!(blocks * size <= row_bytes && w.len() >= R * row_bytes);
    assert!(xs.iter().all(|x| x.d.len() == blocks && x.q.len() >= blocks * QK && x.s.len() >= blocks));
    let w = w.as_ptr();
    // SAFETY: the instructions are present (the caller's contract); every block read is in
    // bounds (asserted above), and so are its fields.
    unsafe {
        let low_nibble = _mm256_set1_epi16(0x0F);
        let mut acc = [[_mm256_setzero_ps(); A]; R];
        let mut min_acc = [[0f32; A]; R];
        for blk in 0..blocks {
            // Each activation row's block: its two vectors of quants, its scale and its sum.
            let xv: [(__m256i, __m256i, f32, f32); A] = std::array::from_fn(|a| {
                let q = xs[a].q.as_ptr().add(blk * QK);
                (_mm256_loadu_si256(q.cast()), _mm256_loadu_si256(q.add(16).cast()), xs[a].d[blk], xs[a].s[blk])
            });
            for r in 0..R {
                let b = w.add(r * row_bytes + blk * size);
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(PREFETCH_AHEAD).cast());
                // Byte j widened to i16: its low nibble is element j, its high nibble element j + 16.
                let (mut lo, mut hi) = if layout.bytes {
                    let quants = b.add(layout.nibbles_at);
                    let lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(quants.cast()));
                    (lo, _mm256_cvtepi8_epi16(_mm_loadu_si128(quants.add(16).cast())))
                } else {
                    let bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(layout.nibbles_at).cast()));
                    (_mm256_and_si256(bytes, low_nibble), _mm256_srli_epi16::<4>(bytes))
                };
                if let Some(at) = layout.mask_at {
                    (lo, hi) = ops.fifth_bits(lo, hi, b.add(at).cast::<u32>().read_unaligned());
                }
                let dw = half_at(lut, b);
                // The offset term: `m · x.s` with the block's `m`, or for the types without
                // one, `dw · x.s` here and the offset (−8 or −16, a power of two, so exactly)
                // applied once at the end.
                let m = match layout.min_at {
                    Some(at) => half_at(lut, b.add(at)),
                    None => dw,
                };
                for (a, &(xlo, xhi, xd, x_sum)) in xv.iter().enumerate() {
                    let products = ops.products(lo, xlo, hi, xhi);
                    acc[r][a] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xd), _mm256_cvtepi32_ps(products), acc[r][a]);
                    if !layout.bytes {
                        min_acc[r][a] = m.mul_add(x_sum, min_acc[r][a]);
                    }
                }
            }
        }
        let offset = if layout.min_at.is_some() { 1.0 } else { layout.offset };
        std::array::from_fn(|r| std::array::from_fn(|a| sum8(acc[r][a]) + offset * min_acc[r][a]))
    }
}

/// The little-endian f16 at `p`, through the table.
#[inline]
pub(super) unsafe fn half_at(lut: &F16Table, p: *const u8) -> f32 {
    // SAFETY: the caller points at two readable bytes.
    // One 16-bit load (two byte loads and a shift, as `from_le_bytes` of two reads compiled).
    lut[usize::from(u16::from_le(unsafe { p.cast::<u16>().read_unaligned() }))]
}

/// The sum of eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sum8(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
}
