//! K-quant rows (`Q4_K`, `Q5_K`, `Q6_K`; [`zoo_core::kquant`]) times 16-bit activations.
//!
//! Each super-block is unpacked to one quant per element, then every sub-block (32 elements
//! for `Q4_K`/`Q5_K`, 16 for `Q6_K`) is multiplied with the activations in integers and its
//! scales applied once: with `x ≈ d_x·q_x` per 32-element activation block ([`Q16Row`]),
//! - `Q4_K`/`Q5_K`: `Σ (d·sc·q − dmin·m)·x = d·sc·d_x·Σ q·q_x − dmin·m·Σx`;
//! - `Q6_K`: `Σ d·sc·(q − 32)·x = d·sc·d_x·Σ (q − 32)·q_x`.
//!
//! These plain loops run where [`crate::isa`] found no AVX2; with it, the intrinsics of
//! `k_quants_avx2` (or, with AVX-512 VNNI, `k_quants_avx512`) compute the same sums in another
//! order.

use zoo_core::kquant::{self, QK_K};
use zoo_core::DType;

use super::Q16Row;
use crate::isa::Isa;

/// `out[j] = w_row(j) · x` for the weight rows (each `row_bytes` long) of `weights`, which hold
/// K-quant super-blocks of `dtype`, through the kernels of `level` (at most [`crate::isa::isa`]).
pub fn rows(level: Isa, dtype: DType, weights: &[u8], row_bytes: usize, x: &Q16Row, out: &mut [f32]) {
    let rows = weights.chunks_exact(row_bytes).zip(out.iter_mut());
    match simd_kernel(level.min(crate::isa::isa()), dtype) {
        // SAFETY: `simd_kernel` hands out only kernels whose instructions `isa` found.
        Some(kernel) => rows.for_each(|(w, o)| *o = unsafe { kernel(w, x) }),
        None => rows.for_each(|(w, o)| *o = row(dtype, w, x)),
    }
}

/// An intrinsics kernel: one row of super-blocks times `x`.
type RowKernel = unsafe fn(&[u8], &Q16Row) -> f32;

/// The intrinsics kernel for `dtype` at `level` (`k_quants_avx512`'s from AVX-512 VNNI on,
/// `k_quants_avx2`'s from AVX2 on); `None` below AVX2, where the plain loops run.
#[cfg(target_arch = "x86_64")]
fn simd_kernel(level: Isa, dtype: DType) -> Option<RowKernel> {
    use super::{k_quants_avx2 as avx2, k_quants_avx512 as avx512};
    let [q4_k, q5_k, q6_k]: [RowKernel; 3] = if level >= Isa::Avx512Vnni {
        [avx512::q45_k_row::<false>, avx512::q45_k_row::<true>, avx512::q6_k_row]
    } else if level >= Isa::Avx2 {
        [avx2::q45_k_row::<false>, avx2::q45_k_row::<true>, avx2::q6_k_row]
    } else {
        return None;
    };
    match dtype {
        DType::Q4_K => Some(q4_k),
        DType::Q5_K => Some(q5_k),
        DType::Q6_K => Some(q6_k),
        _ => None,
    }
}

/// Off x86-64 the plain loops run.
#[cfg(not(target_arch = "x86_64"))]
fn simd_kernel(_level: Isa, _dtype: DType) -> Option<RowKernel> {
    None
}

/// One row of super-blocks times `x`.
pub(super) fn row(dtype: DType, w: &[u8], x: &Q16Row) -> f32 {
    let per_block = QK_K / zoo_core::quant::QK; // activation blocks per super-block
    let mut acc = 0f32;
    for (sb, block) in w.chunks_exact(dtype.block_bytes()).enumerate() {
        let xq: &[i16; QK_K] = x.q[sb * QK_K..(sb + 1) * QK_K].try_into().expect("whole super-blocks");
        let xd = &x.d[sb * per_block..(sb + 1) * per_block];
        acc += match dtype {
            DType::Q6_K => q6_k(block, xq, xd),
            _ => q45_k(dtype, block, xq, xd, &x.s[sb * per_block..(sb + 1) * per_block]),
        };
    }
    acc
}

/// One `Q4_K`/`Q5_K` super-block times its 256 activations.
#[inline(always)]
fn q45_k(dtype: DType, block: &[u8], xq: &[i16; QK_K], xd: &[f32], xs: &[f32]) -> f32 {
    let (d, dmin) = kquant::scales(block);
    let mut q = [0u8; QK_K];
    kquant::unpack_q45_k(dtype, block, &mut q);
    let mut acc = 0f32;
    for j in 0..8 {
        let (sc, m) = kquant::scale_min(j, &block[4..16]);
        let isum = dot(&q[32 * j..32 * j + 32], &xq[32 * j..32 * j + 32]);
        acc += d * f32::from(sc) * xd[j] * isum as f32 - dmin * f32::from(m) * xs[j];
    }
    acc
}

/// One `Q6_K` super-block times its 256 activations.
#[inline(always)]
fn q6_k(block: &[u8], xq: &[i16; QK_K], xd: &[f32]) -> f32 {
    let d = kquant::q6_k_scale(block);
    let scales = kquant::q6_k_group_scales(block);
    let mut q = [0i8; QK_K];
    kquant::unpack_q6_k(block, &mut q);
    let mut acc = 0f32;
    for (g, &sc) in scales.iter().enumerate() {
        let isum = dot(&q[16 * g..16 * g + 16], &xq[16 * g..16 * g + 16]);
        acc += d * f32::from(sc) * xd[g / 2] * isum as f32;
    }
    acc
}

/// `Σ q·x` in i32 (|q| ≤ 32, |x| ≤ 32767: 32 products cannot overflow).
#[inline(always)]
fn dot<Q: Copy + Into<i32>>(q: &[Q], x: &[i16]) -> i32 {
    q.iter().zip(x).map(|(&q, &x)| q.into() * i32::from(x)).sum()
}
