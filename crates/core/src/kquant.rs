//! ggml's K-quant super-blocks ([`DType::Q4_K`], [`DType::Q5_K`], [`DType::Q6_K`]): 256
//! elements each, with per-sub-block scales quantised against a super-block scale. Written from
//! the format's block definitions (ggml's `ggml-common.h`); arithmetic in f32 in the order
//! ggml's reference dequantisers use, so results are bit-identical to them.
//!
//! - `Q4_K` (144 bytes): f16 `d`, f16 `dmin`, 12 bytes of eight 6-bit (scale, min) pairs, 128
//!   bytes of nibbles. Elements `64c..64c+32` are the low nibbles of bytes `32c..32c+32`, the
//!   next 32 their high nibbles; sub-block `j` (32 elements) is `d·sc_j·q − dmin·m_j`.
//! - `Q5_K` (176 bytes): as `Q4_K`, with 32 bytes of fifth bits before the nibbles: element `l`
//!   of sub-block `j` takes bit `j` of byte `l` as its value 16.
//! - `Q6_K` (210 bytes): 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 × i8 scales,
//!   f16 `d`; each 16-element group `g` is `d·sc_g·(q − 32)`.

use half::f16;

use crate::DType;

/// Elements per super-block.
pub const QK_K: usize = 256;

fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The `j`-th (scale, min) pair of a `Q4_K`/`Q5_K` block's 12 packed 6-bit bytes.
#[inline(always)]
pub fn scale_min(j: usize, packed: &[u8]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        ((packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4), (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4))
    }
}

/// The super-block scales of a `Q4_K`/`Q5_K` block: `(d, dmin)`.
#[inline]
pub fn scales(block: &[u8]) -> (f32, f32) {
    (half_at(block, 0), half_at(block, 2))
}

/// The super-block scale `d` of a `Q6_K` block.
#[inline]
pub fn q6_k_scale(block: &[u8]) -> f32 {
    half_at(block, 208)
}

/// The unsigned quants (0..16 for `Q4_K`, 0..32 for `Q5_K`) of a `Q4_K`/`Q5_K` block, in
/// element order.
#[inline(always)]
pub fn unpack_q45_k(dtype: DType, block: &[u8], q: &mut [u8; QK_K]) {
    let nibbles = if dtype == DType::Q5_K { &block[48..176] } else { &block[16..144] };
    for (bytes, out) in nibbles.chunks_exact(32).zip(q.chunks_exact_mut(64)) {
        let (lo, hi) = out.split_at_mut(32);
        for l in 0..32 {
            lo[l] = bytes[l] & 0x0F;
            hi[l] = bytes[l] >> 4;
        }
    }
    if dtype == DType::Q5_K {
        let fifth = &block[16..48];
        for (j, out) in q.chunks_exact_mut(32).enumerate() {
            for (o, &bits) in out.iter_mut().zip(fifth) {
                *o |= ((bits >> j) & 1) << 4;
            }
        }
    }
}

/// The signed quants (−32..32) of a `Q6_K` block, in element order.
#[inline(always)]
pub fn unpack_q6_k(block: &[u8], q: &mut [i8; QK_K]) {
    for half in 0..2 {
        let ql = &block[half * 64..half * 64 + 64];
        let qh = &block[128 + half * 32..128 + half * 32 + 32];
        let y = &mut q[half * 128..half * 128 + 128];
        for l in 0..32 {
            y[l] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
            y[l + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            y[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            y[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
}

/// The i8 scale of each 16-element group of a `Q6_K` block.
#[inline(always)]
pub fn q6_k_group_scales(block: &[u8]) -> [i8; 16] {
    std::array::from_fn(|g| block[192 + g] as i8)
}

/// Decodes one super-block of `dtype` (exactly `dtype.block_bytes()` bytes) into `out`; does
/// nothing for other types.
pub fn dequantize_super_block(dtype: DType, block: &[u8], out: &mut [f32; QK_K]) {
    match dtype {
        DType::Q4_K | DType::Q5_K => {
            let (d, dmin) = scales(block);
            let mut q = [0u8; QK_K];
            unpack_q45_k(dtype, block, &mut q);
            for (j, (qs, ys)) in q.chunks_exact(32).zip(out.chunks_exact_mut(32)).enumerate() {
                let (sc, m) = scale_min(j, &block[4..16]);
                let (scale, min) = (d * f32::from(sc), dmin * f32::from(m));
                ys.iter_mut().zip(qs).for_each(|(y, &q)| *y = scale * f32::from(q) - min);
            }
        }
        DType::Q6_K => {
            let d = q6_k_scale(block);
            let mut q = [0i8; QK_K];
            unpack_q6_k(block, &mut q);
            for (sc, (qs, ys)) in q6_k_group_scales(block).iter().zip(q.chunks_exact(16).zip(out.chunks_exact_mut(16)))
            {
                ys.iter_mut().zip(qs).for_each(|(y, &q)| *y = d * f32::from(*sc) * f32::from(q));
            }
        }
        _ => {}
    }
}

/// Whether `dtype` is one of the K-quants here.
pub const fn is_k_quant(dtype: DType) -> bool {
    matches!(dtype, DType::Q4_K | DType::Q5_K | DType::Q6_K)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_sub_blocks_are_scale_times_nibble_minus_min() {
        let mut block = vec![0u8; 144];
        block[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block[2..4].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
        // Sub-block 0: scale 2, min 4; sub-block 1: scale 3, min 1 (the 6-bit packing of j < 4).
        block[4] = 2;
        block[5] = 3;
        block[8] = 4;
        block[9] = 1;
        for l in 0..32 {
            block[16 + l] = (l as u8 % 16) | ((15 - l as u8 % 16) << 4);
        }
        let mut out = [0f32; QK_K];
        dequantize_super_block(DType::Q4_K, &block, &mut out);
        for l in 0..32 {
            assert_eq!(out[l], 0.5 * 2.0 * (l % 16) as f32 - 0.25 * 4.0);
            assert_eq!(out[32 + l], 0.5 * 3.0 * (15 - l % 16) as f32 - 0.25 * 1.0);
        }
        assert!(out[64..].iter().all(|&v| v == 0.0), "sub-blocks 2.. have scale 0 and min 0");
    }

    #[test]
    fn q5_k_takes_its_fifth_bit_per_sub_block() {
        let mut block = vec![0u8; 176];
        block[..2].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
        block[4] = 1; // sub-block 0: scale 1
        block[5] = 1; // sub-block 1: scale 1
        block[16] = 0b01; // element 0 of sub-block 0 gets 16
        block[17] = 0b10; // element 1 of sub-block 1 gets 16
        block[48] = 0x53; // element 0: nibble 3; element 32: nibble 5
        let mut out = [0f32; QK_K];
        dequantize_super_block(DType::Q5_K, &block, &mut out);
        assert_eq!((out[0], out[32], out[33]), (19.0, 5.0, 16.0));
    }

    #[test]
    fn q6_k_groups_are_signed_six_bit_values() {
        let mut block = vec![0u8; 210];
        block[208..210].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block[192] = 2; // group 0
        block[194] = (-1i8) as u8; // group 2 (elements 32..48)
        block[0] = 0x0F; // element 0: low 4 bits 15
        block[128] = 0b11; // element 0: high bits 3 → q = 63 − 32 = 31
        let mut out = [0f32; QK_K];
        dequantize_super_block(DType::Q6_K, &block, &mut out);
        assert_eq!(out[0], 0.5 * 2.0 * 31.0);
        assert_eq!(out[1], 0.5 * 2.0 * -32.0);
        assert_eq!(out[32], -0.5 * -32.0, "scale −1");
    }
}
