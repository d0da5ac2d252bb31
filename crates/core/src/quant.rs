//! ggml's block-quantised layouts ([`DType::Q8_0`], [`DType::Q4_0`], [`DType::Q4_1`],
//! [`DType::Q5_0`], [`DType::Q5_1`]; the
//! K-quants' super-blocks are [`crate::kquant`]'s): the one implementation of their
//! dequantisation (and, in [`decode`], of reading any stored float type), shared by checkpoint
//! readers, [`crate::WeightView`] and backends that compute on the blocks directly.
//!
//! Each block holds [`QK`] consecutive elements of a row (rows are whole blocks):
//! - `Q8_0` (34 bytes): f16 scale `d`, 32 × i8 `q`; `x = d·q`.
//! - `Q4_0` (18 bytes): f16 `d`, 16 bytes of nibbles; element `j` is the low nibble of byte `j`,
//!   element `j + 16` the high nibble; `x = d·(q − 8)`.
//! - `Q4_1` (20 bytes): f16 `d`, f16 min `m`, nibbles as `Q4_0`; `x = d·q + m`.
//! - `Q5_0` (22 bytes): f16 `d`, a 32-bit mask of fifth bits (bit `j` for element `j`), nibbles
//!   as `Q4_0`; `x = d·(q − 16)`.
//! - `Q5_1` (24 bytes): f16 `d`, f16 min `m`, mask and nibbles as `Q5_0`; `x = d·q + m`.
//!
//! Arithmetic is in f32 in the order ggml's reference dequantisers use, so results are
//! bit-identical to them.

use half::{bf16, f16};

use crate::DType;

/// Elements per block of the 32-element types here (`Q8_0`, `Q4_0`, `Q4_1`).
pub const QK: usize = 32;

fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Decodes one block of `dtype` (exactly `dtype.block_bytes()` bytes) into `out`.
///
/// Does nothing for non-block types. Panics if `block` is shorter than a block, which is a bug
/// in the caller: views check their byte length when they are built.
pub fn dequantize_block(dtype: DType, block: &[u8], out: &mut [f32; QK]) {
    match dtype {
        DType::Q8_0 => {
            let d = half_at(block, 0);
            for (o, &q) in out.iter_mut().zip(&block[2..34]) {
                *o = d * f32::from(q as i8);
            }
        }
        DType::Q4_0 => {
            let d = half_at(block, 0);
            let (lo, hi) = out.split_at_mut(QK / 2);
            for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&block[2..18]) {
                *l = d * f32::from((q & 0x0F) as i8 - 8);
                *h = d * f32::from((q >> 4) as i8 - 8);
            }
        }
        DType::Q4_1 => {
            let (d, m) = (half_at(block, 0), half_at(block, 2));
            let (lo, hi) = out.split_at_mut(QK / 2);
            for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&block[4..20]) {
                *l = f32::from(q & 0x0F) * d + m;
                *h = f32::from(q >> 4) * d + m;
            }
        }
        DType::Q5_0 => {
            let d = half_at(block, 0);
            for (o, q) in out.iter_mut().zip(q5_quants(&block[2..22])) {
                *o = f32::from(q as i8 - 16) * d;
            }
        }
        DType::Q5_1 => {
            let (d, m) = (half_at(block, 0), half_at(block, 2));
            for (o, q) in out.iter_mut().zip(q5_quants(&block[4..24])) {
                *o = f32::from(q) * d + m;
            }
        }
        _ => {}
    }
}

/// The 32 five-bit quants (0..32) of a `Q5_0`/`Q5_1` block, in element order, from its 32-bit
/// mask of fifth bits (bit `j` for element `j`) and 16 bytes of nibbles (`bytes`: mask, then
/// nibbles; element `j` is byte `j`'s low nibble, element `j + 16` its high nibble).
pub fn q5_quants(bytes: &[u8]) -> [u8; QK] {
    let high = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let nibbles = &bytes[4..20];
    std::array::from_fn(|j| {
        let nibble = if j < QK / 2 { nibbles[j] & 0x0F } else { nibbles[j - QK / 2] >> 4 };
        nibble | ((((high >> j) & 1) as u8) << 4)
    })
}

/// Decodes `data` stored as `dtype` to f32, appending to `out`: floats exactly, blocks as
/// [`dequantize`] does. Returns `false`, leaving `out` untouched, for int8 (its scales travel
/// apart, see [`crate::WeightView::to_f32_vec`]) or when `data` is not whole elements or blocks.
pub fn decode(dtype: DType, data: &[u8], out: &mut Vec<f32>) -> bool {
    if dtype.is_block_quantized() {
        return dequantize(dtype, data, out);
    }
    if dtype == DType::I8 || data.len() % dtype.size() != 0 {
        return false;
    }
    let elements = data.chunks_exact(dtype.size());
    match dtype {
        DType::F16 => out.extend(elements.map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        DType::BF16 => out.extend(elements.map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        _ => out.extend(elements.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
    }
    true
}

/// Decodes whole blocks of `dtype`, appending to `out`. Returns `false`, leaving `out`
/// untouched, when `dtype` is not block-quantised or `data` is not whole blocks.
pub fn dequantize(dtype: DType, data: &[u8], out: &mut Vec<f32>) -> bool {
    let bytes = dtype.block_bytes();
    if !dtype.is_block_quantized() || data.len() % bytes != 0 {
        return false;
    }
    out.reserve(data.len() / bytes * dtype.block_size());
    if crate::kquant::is_k_quant(dtype) {
        let mut block = [0f32; crate::kquant::QK_K];
        for b in data.chunks_exact(bytes) {
            crate::kquant::dequantize_super_block(dtype, b, &mut block);
            out.extend_from_slice(&block);
        }
        return true;
    }
    let mut block = [0f32; QK];
    for b in data.chunks_exact(bytes) {
        dequantize_block(dtype, b, &mut block);
        out.extend_from_slice(&block);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q5_blocks_take_element_j_fifth_bit_from_mask_bit_j() {
        let nibbles: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let mask: u32 = 0xA5C3_0F81;
        let mut q5_1 = [f16_bytes(0.5), f16_bytes(-2.0)].concat();
        q5_1.extend(mask.to_le_bytes());
        q5_1.extend(&nibbles);
        let quants: Vec<u32> =
            (0..16).chain((0..16).rev()).enumerate().map(|(j, n)| n | (((mask >> j) & 1) << 4)).collect();
        let mut out = Vec::new();
        assert!(dequantize(DType::Q5_1, &q5_1, &mut out));
        assert_eq!(out, quants.iter().map(|&q| 0.5 * q as f32 - 2.0).collect::<Vec<_>>());

        let mut q5_0 = f16_bytes(0.5).to_vec();
        q5_0.extend(mask.to_le_bytes());
        q5_0.extend(&nibbles);
        out.clear();
        assert!(dequantize(DType::Q5_0, &q5_0, &mut out));
        assert_eq!(out, quants.iter().map(|&q| 0.5 * (q as f32 - 16.0)).collect::<Vec<_>>());
    }

    #[test]
    fn q8_0_is_scale_times_int() {
        let mut block = f16_bytes(0.5).to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let mut out = Vec::new();
        assert!(dequantize(DType::Q8_0, &block, &mut out));
        assert_eq!(out, (0..32).map(|i| 0.5 * (i as f32 - 16.0)).collect::<Vec<_>>());
    }

    #[test]
    fn q4_0_and_q4_1_order_low_nibbles_then_high() {
        let nibbles: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let mut q4_1 = [f16_bytes(2.0), f16_bytes(-1.0)].concat();
        q4_1.extend(&nibbles);
        let mut out = Vec::new();
        assert!(dequantize(DType::Q4_1, &q4_1, &mut out));
        let want: Vec<f32> = (0..16).chain((0..16).rev()).map(|q| 2.0 * q as f32 - 1.0).collect();
        assert_eq!(out, want);

        let mut q4_0 = f16_bytes(2.0).to_vec();
        q4_0.extend(&nibbles);
        out.clear();
        assert!(dequantize(DType::Q4_0, &q4_0, &mut out));
        let want: Vec<f32> = (0..16).chain((0..16).rev()).map(|q| 2.0 * (q as f32 - 8.0)).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn decode_reads_floats_exactly_and_blocks_as_dequantize() {
        let mut out = Vec::new();
        assert!(decode(DType::F32, &1.5f32.to_le_bytes(), &mut out));
        assert!(decode(DType::F16, &f16_bytes(-2.0), &mut out));
        assert!(decode(DType::BF16, &bf16::from_f32(0.25).to_le_bytes(), &mut out));
        assert_eq!(out, [1.5, -2.0, 0.25]);
        assert!(!decode(DType::I8, &[1], &mut out));
        assert!(!decode(DType::F32, &[0; 3], &mut out));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn partial_blocks_and_float_types_are_refused() {
        let mut out = Vec::new();
        assert!(!dequantize(DType::Q8_0, &[0; 33], &mut out));
        assert!(!dequantize(DType::F32, &[0; 4], &mut out));
        assert!(out.is_empty());
    }
}
