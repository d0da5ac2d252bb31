//! What the K-quant layouts interleaved eight rows at a time share ([`super::rows8_k`] for
//! `Q4_K`, [`super::rows8_q6k`] for `Q6_K`): rows put back as the file stores them,
//! dequantising, and the decode loop over groups of eight rows.

use zoo_core::kquant::{self, QK_K};
use zoo_core::DType;

use super::rows8::GROUP;
use super::Q16Row;
use crate::isa::{isa, Isa};

/// A K-quant's interleaved layout: groups of eight rows, super-block by super-block, each
/// group super-block eight times the file's super-block in size.
pub trait SuperLayout {
    /// The K-quant.
    const DTYPE: DType;
    /// Row `r`'s super-block as the file stores it, from a group super-block, appended to `out`.
    fn plain_row(group: &[u8], r: usize, out: &mut Vec<u8>);
    /// Row `r`'s super-block `block` (as the file stores it) written into its places of `group`.
    fn put_row(block: &[u8], r: usize, group: &mut [u8]);

    /// The eight rows' products with `x` (AVX2, and AVX512-VNNI's `vpdpwssd` with `vnni`).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C, and with `vnni` AVX-512F/VL and VNNI.
    #[cfg(target_arch = "x86_64")]
    unsafe fn group_dot_x86(vnni: bool, group: &[u8], x: &Q16Row) -> [f32; GROUP];

    /// Lanes `8 · half ..` of `panel` from the eight rows of `groups`, with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn widen_half_x86(groups: &[u8], half: usize, panel: &mut super::gemm::Panel);
}

/// The eight rows' products with `x` through the intrinsics of `level` (at most [`isa`]);
/// `None` below AVX2, where the one-row kernel runs on rows put back.
fn group_dot<L: SuperLayout>(level: Isa, group: &[u8], x: &Q16Row) -> Option<[f32; GROUP]> {
    let level = level.min(isa());
    #[cfg(target_arch = "x86_64")]
    if level >= Isa::Avx2 {
        // SAFETY: `isa()` found AVX2, FMA and F16C, and at `Avx512Vnni` VNNI.
        return Some(unsafe { L::group_dot_x86(level >= Isa::Avx512Vnni, group, x) });
    }
    let _ = (group, x);
    None
}

/// Lanes `8 · half ..` of `panel` (sized for these rows) from the eight interleaved rows of
/// `groups` (their super-blocks one after another), as [`super::gemm_kquants::widen`] puts
/// the same rows as the file stores them: with AVX2 straight from the layout, else through the
/// rows put back.
pub fn widen_half<L: SuperLayout>(groups: &[u8], half: usize, panel: &mut super::gemm::Panel) {
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: `isa()` found AVX2, FMA and F16C.
        return unsafe { L::widen_half_x86(groups, half, panel) };
    }
    let row_blocks = groups.len() / (GROUP * bytes::<L>());
    let mut plain = Vec::with_capacity(groups.len());
    plain_rows::<L>(groups, row_blocks, 0..GROUP, &mut plain);
    super::gemm_kquants::widen(L::DTYPE, &plain, row_blocks * bytes::<L>(), half * GROUP, panel);
}

/// Bytes of one super-block of `L`.
const fn bytes<L: SuperLayout>() -> usize {
    L::DTYPE.block_bytes()
}

/// `plain` (rows of `row_blocks` super-blocks, a multiple of [`GROUP`] rows) interleaved, in
/// `out` (as long as `plain`).
pub fn interleave_into<L: SuperLayout>(plain: &[u8], row_blocks: usize, out: &mut [u8]) {
    let (size, row_bytes) = (bytes::<L>(), row_blocks * bytes::<L>());
    let groups = plain.chunks_exact(GROUP * row_bytes).zip(out.chunks_exact_mut(GROUP * row_bytes));
    for (src, dst) in groups {
        for (b, group) in dst.chunks_exact_mut(GROUP * size).enumerate() {
            for r in 0..GROUP {
                L::put_row(&src[r * row_bytes + b * size..][..size], r, group);
            }
        }
    }
}

/// Rows `rows` (whole, of `row_blocks` super-blocks) of interleaved `data` as the file stores
/// them, appended to `out`.
pub fn plain_rows<L: SuperLayout>(data: &[u8], row_blocks: usize, rows: std::ops::Range<usize>, out: &mut Vec<u8>) {
    let group_bytes = GROUP * bytes::<L>();
    for row in rows {
        let group = &data[(row / GROUP) * row_blocks * group_bytes..];
        for b in 0..row_blocks {
            L::plain_row(&group[b * group_bytes..], row % GROUP, out);
        }
    }
}

/// Dequantises super-blocks `blocks` (row-major indices, rows of `row_blocks`) of interleaved
/// `data` into `out`: `kquant::dequantize_super_block` of each as the file stores it.
pub fn dequantize<L: SuperLayout>(data: &[u8], row_blocks: usize, blocks: std::ops::Range<usize>, out: &mut Vec<f32>) {
    let group_bytes = GROUP * bytes::<L>();
    let (mut values, mut block) = ([0f32; QK_K], Vec::with_capacity(bytes::<L>()));
    out.reserve(blocks.len() * QK_K);
    for i in blocks {
        let (row, b) = (i / row_blocks, i % row_blocks);
        let group = &data[((row / GROUP) * row_blocks + b) * group_bytes..][..group_bytes];
        block.clear();
        L::plain_row(group, row % GROUP, &mut block);
        kquant::dequantize_super_block(L::DTYPE, &block, &mut values);
        out.extend_from_slice(&values);
    }
}

/// `out[j] = w_row(j) · x` for the rows of the interleaved groups in `data` (each group
/// `row_blocks` super-blocks of eight rows; `out` eight values a group).
pub fn rows_dot<L: SuperLayout>(data: &[u8], row_blocks: usize, x: &Q16Row, out: &mut [f32]) {
    rows_dot_at::<L>(isa(), data, row_blocks, x, out);
}

/// [`rows_dot`] through the kernels of `level` (capped at [`isa`]); tests run each.
pub fn rows_dot_at<L: SuperLayout>(level: Isa, data: &[u8], row_blocks: usize, x: &Q16Row, out: &mut [f32]) {
    let level = level.min(isa());
    let groups = data.chunks_exact(row_blocks * GROUP * bytes::<L>()).zip(out.chunks_exact_mut(GROUP));
    for (group, dots) in groups {
        if let Some(group_dots) = group_dot::<L>(level, group, x) {
            dots.copy_from_slice(&group_dots);
            continue;
        }
        for (r, dot) in dots.iter_mut().enumerate() {
            let mut row = Vec::with_capacity(row_blocks * bytes::<L>());
            plain_rows::<L>(group, row_blocks, r..r + 1, &mut row);
            *dot = super::k_quants::row(L::DTYPE, &row, x);
        }
    }
}

/// Implements [`SuperLayout`] for `$layout` (the K-quant `$dtype`) from the file's module: its
/// `plain_row`, `put_row` and its `avx2` module's `group_dot`, `group_dot_vnni` and `widen_half`.
macro_rules! super_layout {
    ($layout:ident, $dtype:ident) => {
        #[doc = concat!("The `", stringify!($dtype), "` layout, for [`super::rows8_super`]'s functions.")]
        pub struct $layout;

        impl super::rows8_super::SuperLayout for $layout {
            const DTYPE: DType = DType::$dtype;

            fn plain_row(group: &[u8], r: usize, out: &mut Vec<u8>) {
                out.extend_from_slice(&plain_row(group, r));
            }

            fn put_row(block: &[u8], r: usize, group: &mut [u8]) {
                put_row(block, r, group);
            }

            #[cfg(target_arch = "x86_64")]
            unsafe fn group_dot_x86(vnni: bool, group: &[u8], x: &Q16Row) -> [f32; GROUP] {
                // SAFETY (both): the caller's contract.
                if vnni {
                    unsafe { avx2::group_dot_vnni(group, x) }
                } else {
                    unsafe { avx2::group_dot(group, x) }
                }
            }

            #[cfg(target_arch = "x86_64")]
            unsafe fn widen_half_x86(groups: &[u8], half: usize, panel: &mut super::gemm::Panel) {
                // SAFETY: the caller's contract.
                unsafe { avx2::widen_half(groups, half, panel) }
            }
        }
    };
}

/// The two entry points of an eight-row kernel `body::<VNNI>`, which differ only in the
/// instructions they enable: `group_dot` (AVX2) and `group_dot_vnni` (AVX512-VNNI's
/// `vpdpwssd` on 256-bit registers).
#[cfg(target_arch = "x86_64")]
macro_rules! eight_row_entries {
    () => {
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
    };
}

#[cfg(target_arch = "x86_64")]
pub(super) use eight_row_entries;
pub(super) use super_layout;

/// Checks each layout's tests run on its own data.
#[cfg(test)]
pub(super) mod checks {
    use super::*;

    /// Rows of varied super-blocks interleaved: every super-block comes back
    /// as stored, dequantising from the layout gives the file's values, and the eight-row
    /// kernels at every level give the one-row kernel's products.
    pub fn layout_keeps_every_super_block<L: SuperLayout>() {
        for (rows, row_blocks) in [(16, 3), (24, 3)] {
            let data = super::super::gemm::tests::k_quant_rows(L::DTYPE, rows, row_blocks);
            check::<L>(&data, (rows, row_blocks));
        }
    }

    /// [`layout_keeps_every_super_block`] on `data`.
    fn check<L: SuperLayout>(data: &[u8], (rows, row_blocks): (usize, usize)) {
        let size = bytes::<L>();
        let mut mixed = vec![0u8; data.len()];
        interleave_into::<L>(data, row_blocks, &mut mixed);
        assert_ne!(mixed, data);
        let mut back = Vec::new();
        plain_rows::<L>(&mixed, row_blocks, 0..rows, &mut back);
        assert_eq!(back, data);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        zoo_core::quant::dequantize(L::DTYPE, &data[5 * size..(rows * row_blocks - 1) * size], &mut want);
        dequantize::<L>(&mixed, row_blocks, 5..rows * row_blocks - 1, &mut got);
        assert_eq!(got, want);
        let x: Vec<f32> = (0..row_blocks * QK_K).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0 + i as f32 * 0.01).collect();
        let q = Q16Row::quantize(&x);
        let want: Vec<f32> =
            data.chunks_exact(row_blocks * size).map(|w| super::super::k_quants::row(L::DTYPE, w, &q)).collect();
        for level in [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|&l| l <= isa()) {
            let mut got = vec![f32::NAN; rows];
            rows_dot_at::<L>(level, &mixed, row_blocks, &q, &mut got);
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{level:?} row {j}: {g} vs {w}");
            }
        }
    }
}
