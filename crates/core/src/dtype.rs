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
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 => 1,
        }
    }

    /// The lowercase name used in messages and on the command line (`f32`, `f16`, `bf16`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "int8",
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
            other => Err(format!("unknown dtype `{other}` (expected f32, f16, bf16 or int8)")),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
