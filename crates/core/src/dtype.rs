//! Element types of stored weights.

use std::fmt;

/// The element type of a weight as it is stored in a checkpoint.
///
/// Backends decide how to hold each type (the ndarray backend computes in f32; a GPU backend keeps
/// bf16/f16 resident). Quantised types are added here as the readers learn them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
}

impl DType {
    /// Every element type, in the order listings show them.
    pub const ALL: [DType; 7] = [DType::F32, DType::F16, DType::BF16, DType::I8, DType::Q8_0, DType::Q4_0, DType::Q4_1];

    /// Bytes per element; for block-quantised types, bytes per block ([`DType::block_bytes`]).
    pub fn size(self) -> usize {
        self.block_bytes()
    }

    /// Elements per block: 1 for element-wise types, 32 for block-quantised ones.
    pub fn block_size(self) -> usize {
        if self.is_block_quantized() {
            crate::quant::QK
        } else {
            1
        }
    }

    /// Bytes per block ([`DType::block_size`] elements).
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 => 1,
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
        }
    }

    /// Whether this is one of ggml's block-quantised types (`Q8_0`, `Q4_0`, `Q4_1`).
    pub fn is_block_quantized(self) -> bool {
        matches!(self, DType::Q8_0 | DType::Q4_0 | DType::Q4_1)
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
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "int8",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
        }
    }
}

impl std::str::FromStr for DType {
    type Err = String;

    /// Parses the names [`DType::name`] gives (and `i8` for `int8`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::BF16),
            "int8" | "i8" => Ok(DType::I8),
            "q8_0" => Ok(DType::Q8_0),
            "q4_0" => Ok(DType::Q4_0),
            "q4_1" => Ok(DType::Q4_1),
            other => Err(format!("unknown dtype `{other}` (expected f32, f16, bf16, int8, q8_0, q4_0 or q4_1)")),
        }
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
        };
        let places: Vec<usize> = DType::ALL.iter().map(|&d| place(d)).collect();
        assert_eq!(places, (0..DType::ALL.len()).collect::<Vec<_>>());
    }
}
