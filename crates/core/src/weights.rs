//! Named weights as checkpoint readers hand them out: element type, shape and bytes, usually
//! borrowed from a memory map. Models ask a [`WeightSource`] for tensors by name and never learn
//! which file format they came from.

use std::ops::Range;
use std::sync::Arc;

use half::{bf16, f16};

use crate::{DType, Error, Result};

/// A shared, immutable byte range: a window into a memory map or into an owned buffer.
///
/// Cloning is cheap (one `Arc`), so backends may keep weights in place for as long as they need.
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl Bytes {
    /// Wraps a window `range` of `owner`. Panics if the range is out of bounds, which is a bug in
    /// the caller: readers check ranges against the file before building views.
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= (*owner).as_ref().len());
        Self { owner, range }
    }

    /// Takes ownership of a byte vector.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Self::new(Arc::new(bytes), 0..len)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.range.clone()]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

/// One stored tensor: its name, element type, shape (row-major) and little-endian bytes.
#[derive(Clone, Debug)]
pub struct WeightView {
    /// The tensor's name in the checkpoint.
    pub name: String,
    /// Element type of `data`.
    pub dtype: DType,
    /// Shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// `shape.product() * dtype.size()` bytes.
    pub data: Bytes,
}

impl WeightView {
    /// Builds a view, checking that the byte length matches shape and dtype.
    pub fn new(name: impl Into<String>, dtype: DType, shape: Vec<usize>, data: Bytes) -> Result<Self> {
        let name = name.into();
        let expected = shape.iter().product::<usize>() * dtype.size();
        if expected != data.len() {
            return Err(Error::Shape {
                op: "weight view",
                expected: format!("{expected} bytes for `{name}` ({dtype} {shape:?})"),
                got: vec![data.len()],
            });
        }
        Ok(Self { name, dtype, shape, data })
    }

    /// An owned f32 tensor (used for small tensors and tests).
    pub fn from_f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Result<Self> {
        let bytes = bytemuck::cast_slice::<f32, u8>(values).to_vec();
        Self::new(name, DType::F32, shape, Bytes::from_vec(bytes))
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The data as `&[f32]` without copying, when it is f32 and 4-byte aligned.
    pub fn as_f32_slice(&self) -> Option<&[f32]> {
        match self.dtype {
            DType::F32 => bytemuck::try_cast_slice(self.data.as_slice()).ok(),
            _ => None,
        }
    }

    /// The data converted to f32 (a copy; exact for f16 and bf16).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let bytes = self.data.as_slice();
        match self.dtype {
            DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::BF16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        }
    }

    /// Checks the shape against what a model expects.
    pub fn expect_shape(self, expected: &[usize], source_name: &str) -> Result<Self> {
        if self.shape != expected {
            return Err(Error::WeightShape {
                name: self.name,
                source_name: source_name.to_string(),
                expected: expected.to_vec(),
                got: self.shape,
            });
        }
        Ok(self)
    }

    /// The transpose of a 2-D tensor, as an owned f32 tensor.
    ///
    /// For checkpoints that store matrices `[in, out]` (GPT-2's Conv1D) while backends take
    /// `[out, in]`; done once at load time.
    pub fn transposed(&self) -> Result<Self> {
        let [rows, cols] = self.shape[..] else {
            return Err(Error::Shape {
                op: "transpose",
                expected: format!("a 2-D tensor for `{}`", self.name),
                got: self.shape.clone(),
            });
        };
        let src = self.to_f32_vec();
        let mut out = vec![0f32; src.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = src[r * cols + c];
            }
        }
        Self::from_f32(self.name.clone(), vec![cols, rows], &out)
    }
}

/// Where models get their weights: a checkpoint (or several files) seen as a map from names to
/// tensors. Implemented by the checkpoint crate for every format it reads.
pub trait WeightSource: Send + Sync {
    /// A human-readable name for error messages, usually the file or directory path.
    fn source_name(&self) -> String;

    /// Whether a tensor of this name exists.
    fn contains(&self, name: &str) -> bool;

    /// All tensor names, sorted.
    fn names(&self) -> Vec<String>;

    /// The tensor called `name`; [`Error::MissingTensor`] if there is none.
    fn get(&self, name: &str) -> Result<WeightView>;

    /// The tensor called `name`, checked to have shape `shape`.
    fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<WeightView> {
        self.get(name)?.expect_shape(shape, &self.source_name())
    }
}

/// Weights that already live in memory, by name. Useful for tests and for sources assembled in code.
#[derive(Default, Debug)]
pub struct MemoryWeights {
    name: String,
    tensors: std::collections::BTreeMap<String, WeightView>,
}

impl MemoryWeights {
    /// An empty set named `name` (used in error messages).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), tensors: Default::default() }
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, view: WeightView) {
        self.tensors.insert(view.name.clone(), view);
    }
}

impl WeightSource for MemoryWeights {
    fn source_name(&self) -> String {
        self.name.clone()
    }

    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn get(&self, name: &str) -> Result<WeightView> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| Error::MissingTensor { name: name.to_string(), source_name: self.name.clone() })
    }
}
