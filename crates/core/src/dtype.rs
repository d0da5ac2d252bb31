//! Element types of stored weights.

use std::fmt;

/// The element type of a weight as it is stored in a checkpoint.
///
/// Backends decide how to hold each type (the ndarray backend computes in f32; a GPU backend keeps
/// bf16/f16 resident). Quantised types are added here as the readers learn them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(non_camel_case_types)] // ggml's names: Q4_K, Q6_K
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16: the top half of an f32.
    BF16,
    /// Signed 8-bit integers quantised in groups: element `i` is `q[i] · scales[i / group_size]`,
    /// the per-group f32 multipliers travelling beside the data ([`crate::GroupScales`]).
    I8,
    /// ggml's `Q8_0`: blocks of 32 elements, an f16 scale and 32 × i8 (34 bytes). See
    /// [`crate::quant`] for the block layouts.
    Q8_0,
    /// ggml's `Q4_0`: blocks of 32 elements, an f16 scale and 16 bytes of nibbles (18 bytes).
    Q4_0,
    /// ggml's `Q4_1`: blocks of 32 elements, f16 scale, f16 min and 16 bytes of nibbles (20 bytes).
    Q4_1,
    /// ggml's `Q5_0`: as `Q4_0` with a fifth bit per element from a 32-bit mask, `d·(q − 16)`
    /// (22 bytes).
    Q5_0,
    /// ggml's `Q5_1`: as `Q4_1` with a fifth bit per element from a 32-bit mask (24 bytes).
    Q5_1,
    /// ggml's `Q4_K`: super-blocks of 256 elements, 4-bit quants with 6-bit sub-block scales and
    /// minimums (144 bytes). See [`crate::kquant`] for the K-quant layouts.
    Q4_K,
    /// ggml's `Q5_K`: as `Q4_K` with a fifth bit per element (176 bytes).
    Q5_K,
    /// ggml's `Q6_K`: super-blocks of 256 elements, 6-bit quants with i8 scales per 16 (210 bytes).
    Q6_K,
}

/// One row of the element-type table: everything zoo knows of a [`DType`]'s storage, written
/// once. Every other table (the GGUF reader's ggml types, the CLI's names) reads it from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The lowercase name used in messages and on the command line.
    pub name: &'static str,
    /// Elements per block: 1 for element-wise types.
    pub block: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// The ggml type this is stored as in GGUF files, `(id, name)`; `None` for zoo's int8 groups,
    /// whose scales travel beside the data (ggml's `I8` has none).
    pub ggml: Option<(u32, &'static str)>,
}

impl DType {
    /// Every element type, in the order listings show them.
    pub const ALL: [DType; 12] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
    ];

    /// This type's row of the table.
    pub const fn layout(self) -> Layout {
        const QK: usize = crate::quant::QK;
        const QK_K: usize = crate::kquant::QK_K;
        let (name, block, block_bytes, ggml) = match self {
            DType::F32 => ("f32", 1, 4, Some((0, "F32"))),
            DType::F16 => ("f16", 1, 2, Some((1, "F16"))),
            DType::BF16 => ("bf16", 1, 2, Some((30, "BF16"))),
            DType::I8 => ("int8", 1, 1, None),
            DType::Q8_0 => ("q8_0", QK, 34, Some((8, "Q8_0"))),
            DType::Q4_0 => ("q4_0", QK, 18, Some((2, "Q4_0"))),
            DType::Q4_1 => ("q4_1", QK, 20, Some((3, "Q4_1"))),
            DType::Q5_0 => ("q5_0", QK, 22, Some((6, "Q5_0"))),
            DType::Q5_1 => ("q5_1", QK, 24, Some((7, "Q5_1"))),
            DType::Q4_K => ("q4_k", QK_K, 144, Some((12, "Q4_K"))),
            DType::Q5_K => ("q5_k", QK_K, 176, Some((13, "Q5_K"))),
            DType::Q6_K => ("q6_k", QK_K, 210, Some((14, "Q6_K"))),
        };
        Layout { name, block, block_bytes, ggml }
    }

    /// The type stored as ggml type `id` in GGUF files, if zoo has one.
    pub fn from_ggml(id: u32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.layout().ggml.is_some_and(|(ggml, _)| ggml == id))
    }

    /// Bytes per element; for block-quantised types, bytes per block ([`DType::block_bytes`]).
    pub const fn size(self) -> usize {
        self.block_bytes()
    }

    /// Elements per block: 1 for element-wise types, 32 for ggml's 32-element blocks, 256 for
    /// the K-quants' super-blocks.
    pub const fn block_size(self) -> usize {
        self.layout().block
    }

    /// Bytes per block ([`DType::block_size`] elements).
    pub const fn block_bytes(self) -> usize {
        self.layout().block_bytes
    }

    /// Whether this is one of ggml's block-quantised types (`Q8_0`, `Q4_0`, `Q4_1`, `Q5_0`,
    /// `Q5_1`, the K-quants).
    pub const fn is_block_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Whether values are not stored as floats (int8 in groups, or blocks).
    pub fn is_quantized(self) -> bool {
        self == DType::I8 || self.is_block_quantized()
    }

    /// Bytes of `numel` elements, or `None` if that is not whole blocks (or overflows).
    pub fn bytes_for(self, numel: usize) -> Option<usize> {
        let block = self.block_size();
        if numel % block != 0 {
            return None;
        }
        (numel / block).checked_mul(self.block_bytes())
    }

    /// The lowercase name used in messages and on the command line (`f32`, `f16`, `bf16`, `int8`).
    pub const fn name(self) -> &'static str {
        self.layout().name
    }
}

impl std::str::FromStr for DType {
    type Err = String;

    /// Parses the names [`DType::name`] gives (and `i8` for `int8`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase();
        let name = if s == "i8" { "int8" } else { s.as_str() };
        DType::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
            let (last, rest) = names.split_last().unwrap_or((&"", &[]));
            format!("unknown dtype `{s}` (expected {} or {last})", rest.join(", "))
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn all_lists_every_dtype_once() {
        // An exhaustive match: a new variant fails to compile here until it is given a place.
        let place = |d: DType| match d {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::BF16 => 2,
            DType::I8 => 3,
            DType::Q8_0 => 4,
            DType::Q4_0 => 5,
            DType::Q4_1 => 6,
            DType::Q5_0 => 7,
            DType::Q5_1 => 8,
            DType::Q4_K => 9,
            DType::Q5_K => 10,
            DType::Q6_K => 11,
        };
        let places: Vec<usize> = DType::ALL.iter().map(|&d| place(d)).collect();
        assert_eq!(places, (0..DType::ALL.len()).collect::<Vec<_>>());
    }

    #[test]
    fn names_parse_back_and_ggml_ids_map_back() {
        for dtype in DType::ALL {
            assert_eq!(dtype.name().parse::<DType>(), Ok(dtype));
            if let Some((id, _)) = dtype.layout().ggml {
                assert_eq!(DType::from_ggml(id), Some(dtype));
            }
        }
        assert_eq!("I8".parse::<DType>(), Ok(DType::I8));
        let err = "q3_k".parse::<DType>().unwrap_err();
        assert_eq!(
            err,
            "unknown dtype `q3_k` (expected f32, f16, bf16, int8, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k)"
        );
        assert_eq!(DType::from_ggml(6), Some(DType::Q5_0));
        assert_eq!(DType::from_ggml(11), None, "Q3_K is not a DType");
    }
}
