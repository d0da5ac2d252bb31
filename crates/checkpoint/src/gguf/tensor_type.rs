//! ggml tensor types as GGUF stores them: block layout (elements per block, bytes per block)
//! and exact dequantisation to f32, written from the format's block definitions (ggml's
//! `ggml-common.h`).
//!
//! Every quantised type packs a row of `ne[0]` elements into whole blocks. Within a block:
//! - `Q8_0` (32): f16 scale `d`, 32 × i8 `q`; `x = d·q`.
//! - `Q4_0` (32): f16 `d`, 16 bytes of nibbles; element `j` is the low nibble of byte `j`, element
//!   `j + 16` the high nibble; `x = d·(q − 8)`.
//! - `Q4_1` (32): f16 `d`, f16 min `m`, nibbles as `Q4_0`; `x = d·q + m`.
//! - `Q5_0` / `Q5_1` (32): as `Q4_0` / `Q4_1` with a fifth bit per element from a 32-bit mask;
//!   `Q5_0` subtracts 16.
//! - the K-quants (256): [`zoo_core::kquant`].
//!
//! The types zoo keeps (F32, F16, BF16, `Q8_0`, `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1` and the K-quants
//! `Q4_K`, `Q5_K`, `Q6_K`) take their id, name and block layout from [`DType::layout`] and are decoded by
//! [`zoo_core::quant`] and [`zoo_core::kquant`], which backends share; this file's table holds
//! only the others.
//!
//! Arithmetic is in f32 in the order ggml's reference dequantisers use, so results are
//! bit-identical to them.

use zoo_core::DType;

/// How zoo reads a ggml type.
#[derive(Clone, Copy, Debug)]
pub enum Decode {
    /// Handed out as this zoo type (its layout and ggml id are [`DType::layout`]'s).
    Kept(DType),
    /// Known by size only: a file holding it opens, but the tensor cannot be read.
    Unsupported,
}

/// A ggml tensor type. Types that GGUF defines but zoo cannot decode are still known by size,
/// so a file holding them can be opened and its other tensors read.
#[derive(Clone, Copy, Debug)]
pub struct TensorType {
    /// The type's number in the file.
    pub id: u32,
    /// Its name, as ggml spells it.
    pub name: &'static str,
    /// Elements per block.
    pub block: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// How zoo reads it.
    pub decode: Decode,
}

/// Every type GGUF defines with a fixed block layout that has no [`DType`] (those come from
/// [`DType::layout`]), by id.
const OTHER_TYPES: &[TensorType] = &[
    t(9, "Q8_1", 32, 36, Decode::Unsupported),
    t(10, "Q2_K", 256, 84, Decode::Unsupported),
    t(11, "Q3_K", 256, 110, Decode::Unsupported),
    t(15, "Q8_K", 256, 292, Decode::Unsupported),
    t(16, "IQ2_XXS", 256, 66, Decode::Unsupported),
    t(17, "IQ2_XS", 256, 74, Decode::Unsupported),
    t(18, "IQ3_XXS", 256, 98, Decode::Unsupported),
    t(19, "IQ1_S", 256, 50, Decode::Unsupported),
    t(20, "IQ4_NL", 32, 18, Decode::Unsupported),
    t(21, "IQ3_S", 256, 110, Decode::Unsupported),
    t(22, "IQ2_S", 256, 82, Decode::Unsupported),
    t(23, "IQ4_XS", 256, 136, Decode::Unsupported),
    t(24, "I8", 1, 1, Decode::Unsupported),
    t(25, "I16", 1, 2, Decode::Unsupported),
    t(26, "I32", 1, 4, Decode::Unsupported),
    t(27, "I64", 1, 8, Decode::Unsupported),
    t(28, "F64", 1, 8, Decode::Unsupported),
    t(29, "IQ1_M", 256, 56, Decode::Unsupported),
    t(34, "TQ1_0", 256, 54, Decode::Unsupported),
    t(35, "TQ2_0", 256, 66, Decode::Unsupported),
];

const fn t(id: u32, name: &'static str, block: usize, block_bytes: usize, decode: Decode) -> TensorType {
    TensorType { id, name, block, block_bytes, decode }
}

impl TensorType {
    /// The type numbered `id`, if GGUF defines it.
    pub fn from_id(id: u32) -> Option<Self> {
        DType::from_ggml(id).and_then(Self::kept).or_else(|| OTHER_TYPES.iter().find(|t| t.id == id).copied())
    }

    /// The ggml type `dtype` is stored as, if it has one.
    fn kept(dtype: DType) -> Option<Self> {
        let layout = dtype.layout();
        let (id, name) = layout.ggml?;
        Some(t(id, name, layout.block, layout.block_bytes, Decode::Kept(dtype)))
    }

    /// Whether [`dequantize`] decodes it.
    pub fn decodable(self) -> bool {
        !matches!(self.decode, Decode::Unsupported)
    }

    /// The block-quantised [`DType`] zoo keeps this type as (`Q8_0`, `Q4_0`, `Q4_1`, `Q5_0`,
    /// `Q5_1`, `Q4_K`, `Q5_K`, `Q6_K`), if any.
    pub fn block_dtype(self) -> Option<DType> {
        self.kept_dtype().filter(|d| d.is_block_quantized())
    }

    /// The float [`DType`] (`F32`, `F16`, `BF16`) of a type stored element by element, usable
    /// without decoding.
    pub fn float_dtype(self) -> Option<DType> {
        self.kept_dtype().filter(|d| !d.is_quantized())
    }

    fn kept_dtype(self) -> Option<DType> {
        match self.decode {
            Decode::Kept(dtype) => Some(dtype),
            _ => None,
        }
    }

    /// Bytes of `n` elements, or `None` if `n` is not a whole number of blocks (or overflows).
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if n % self.block != 0 {
            return None;
        }
        (n / self.block).checked_mul(self.block_bytes)
    }
}

impl std::fmt::Display for TensorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Decodes `data` (whole blocks of `ty`) to f32 values, appending to `out`. Returns `false`,
/// leaving `out` untouched, when the type is not decodable or `data` is not whole blocks.
pub fn dequantize(ty: TensorType, data: &[u8], out: &mut Vec<f32>) -> bool {
    if data.len() % ty.block_bytes != 0 {
        return false;
    }
    match ty.decode {
        Decode::Kept(dtype) => zoo_core::quant::decode(dtype, data, out),
        Decode::Unsupported => false,
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    #[test]
    fn ggml_block_types_decode_through_core_quant() {
        // Their arithmetic is zoo_core::quant's (tested there); here, the ids map to it.
        let kept = [(2, DType::Q4_0), (3, DType::Q4_1), (6, DType::Q5_0), (7, DType::Q5_1), (8, DType::Q8_0)];
        for (id, dtype) in kept.into_iter().chain([(12, DType::Q4_K), (14, DType::Q6_K)]) {
            let ty = TensorType::from_id(id).unwrap();
            assert_eq!(ty.block_dtype(), Some(dtype));
            let mut block = [f16::from_f32(0.5).to_le_bytes(), f16::from_f32(-1.0).to_le_bytes()].concat();
            block.extend((block.len()..dtype.block_bytes()).map(|i| (i * 37 % 251) as u8));
            let (mut ours, mut core) = (Vec::new(), Vec::new());
            assert!(dequantize(ty, &block[..dtype.block_bytes()], &mut ours));
            assert!(zoo_core::quant::dequantize(dtype, &block[..dtype.block_bytes()], &mut core));
            assert_eq!(ours, core, "{dtype}");
        }
    }

    #[test]
    fn kept_types_have_ggml_ids_and_layouts_from_the_dtype_table() {
        // GGUF's numbers (ggml.h): what DType::layout must say for the files to read right.
        let spec = [(0, "F32", 1, 4), (1, "F16", 1, 2), (30, "BF16", 1, 2), (2, "Q4_0", 32, 18)];
        let k_quants = [(12, "Q4_K", 256, 144), (13, "Q5_K", 256, 176), (14, "Q6_K", 256, 210)];
        for (id, name, block, bytes) in
            spec.into_iter().chain([(3, "Q4_1", 32, 20), (8, "Q8_0", 32, 34)]).chain(k_quants)
        {
            let ty = TensorType::from_id(id).unwrap();
            assert_eq!((ty.name, ty.block, ty.block_bytes), (name, block, bytes));
            assert!(matches!(ty.decode, Decode::Kept(_)), "{name}");
        }
        assert!(OTHER_TYPES.iter().all(|t| DType::from_ggml(t.id).is_none()), "one row per ggml type");
    }

    #[test]
    fn partial_blocks_and_undecodable_types_are_refused() {
        let mut out = Vec::new();
        assert!(!dequantize(TensorType::from_id(8).unwrap(), &[0; 33], &mut out));
        assert!(!dequantize(TensorType::from_id(10).unwrap(), &[0; 84], &mut out));
        assert!(out.is_empty());
        assert_eq!(TensorType::from_id(2).unwrap().bytes_for(64), Some(36));
        assert_eq!(TensorType::from_id(2).unwrap().bytes_for(33), None);
        assert!(TensorType::from_id(4).is_none());
    }
}
