//! K-quant rows (`Q4_K`, `Q5_K`, `Q6_K`; [`zoo_core::kquant`]) widened into a panel of
//! [`super::gemm`], as they lie in the file (they are not interleaved).
//!
//! Each super-block of 256 weights is unpacked to one quant per element and its sub-block
//! scales applied as the panel's: `Q4_K`/`Q5_K` are `d·sc·q − dmin·m` per 32 elements (the
//! quants 0..16 or 0..32, the scale `d·sc`, the constant term `−dmin·m`), `Q6_K` is
//! `d·sc·q` per 16 elements (the quants −32..32, two scale groups a block). The i32 sums of
//! the kernel stay far from overflow: 16 or 32 products of a 5- or 6-bit quant and a 16-bit
//! activation.

use zoo_core::kquant::{self, QK_K};
use zoo_core::DType;

use super::gemm::{Panel, LANES, PAIRS};

/// Fills lanes `first_lane ..` of `panel` (sized for these rows) from the consecutive K-quant
/// rows of `data`, each `row_bytes` long.
pub fn widen(dtype: DType, data: &[u8], row_bytes: usize, first_lane: usize, panel: &mut Panel) {
    let per_block = QK_K / 32; // 32-element blocks per super-block
    let rows = data.chunks_exact(row_bytes).take(LANES.saturating_sub(first_lane));
    for (lane, row) in (first_lane..).zip(rows) {
        for (sb, block) in row.chunks_exact(dtype.block_bytes()).enumerate() {
            let mut q = [0i16; QK_K];
            let first = sb * per_block; // the panel's block of this super-block's first 32
            match dtype {
                DType::Q6_K => {
                    let mut signed = [0i8; QK_K];
                    kquant::unpack_q6_k(block, &mut signed);
                    q.iter_mut().zip(signed).for_each(|(q, s)| *q = i16::from(s));
                    let d = kquant::q6_k_scale(block);
                    for (g, sc) in kquant::q6_k_group_scales(block).into_iter().enumerate() {
                        panel.d[(2 * first + g) * LANES + lane] = d * f32::from(sc);
                    }
                }
                _ => {
                    let mut unsigned = [0u8; QK_K];
                    kquant::unpack_q45_k(dtype, block, &mut unsigned);
                    q.iter_mut().zip(unsigned).for_each(|(q, u)| *q = i16::from(u));
                    let (d, dmin) = kquant::scales(block);
                    for j in 0..per_block {
                        let (sc, m) = kquant::scale_min(j, &block[4..16]);
                        panel.d[(first + j) * LANES + lane] = d * f32::from(sc);
                        panel.m[(first + j) * LANES + lane] = -(dmin * f32::from(m));
                    }
                }
            }
            for (j, block_q) in q.chunks_exact(32).enumerate() {
                for (p, pair) in block_q.chunks_exact(2).enumerate() {
                    let at = (((first + j) * PAIRS + p) * LANES + lane) * 2;
                    panel.q[at..at + 2].copy_from_slice(pair);
                }
            }
        }
    }
}
