//! Named weights as checkpoint readers hand them out: element type, shape and bytes, usually
//! borrowed from a memory map. Models ask a [`WeightSource`] for tensors by name and never learn
//! which file format they came from.
//!
//! Quantised weights ([`DType::I8`]) carry their per-group multipliers in [`GroupScales`]:
//! element `i` is `q[i] · scales[i / group_size]`. ggml's block-quantised types
//! ([`DType::Q8_0`], [`DType::Q4_0`], [`DType::Q4_1`]) carry their scales inside the blocks
//! ([`crate::quant`]); their rows (the last dimension) are whole blocks.

use std::ops::Range;
use std::sync::Arc;

use crate::{DType, Error, Result};

/// A shared, immutable byte range: a window into a memory map or into an owned buffer.
///
/// Cloning is cheap (one `Arc`), so backends may keep weights in place for as long as they need.
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
    /// Whether `owner` is a read-only mapping of a file ([`Bytes::file_mapped`]).
    file_mapped: bool,
}

impl Bytes {
    /// Wraps a window `range` of `owner`. Panics if the range is out of bounds, which is a bug in
    /// the caller: readers check ranges against the file before building views.
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= (*owner).as_ref().len());
        Self { owner, range, file_mapped: false }
    }

    /// [`Bytes::new`] for a window of a read-only memory map of a file, whose pages the process
    /// may hand back ([`Bytes::release_pages`]) and read again from the file later.
    ///
    /// # Safety
    /// `owner` must be a memory map of a file that nothing writes to while it is mapped (a
    /// released page of any other memory would read back as zeros).
    pub unsafe fn file_mapped(owner: Arc<dyn AsRef<[u8]> + Send + Sync>, range: Range<usize>) -> Self {
        Self { file_mapped: true, ..Self::new(owner, range) }
    }

    /// For a window of a file mapping: tells the OS that this process does not need the pages
    /// lying wholly inside the window for now (`madvise(MADV_DONTNEED)`), so they stop counting
    /// towards its resident memory; touched again, they are read back from the file, unchanged.
    /// A backend that copied the bytes into a layout of its own calls it. Does nothing for
    /// owned buffers or off Linux.
    pub fn release_pages(&self) {
        self.release_pages_in(0..self.len());
    }

    /// [`Bytes::release_pages`] for the pages lying wholly inside bytes `range` of the window
    /// (a backend copying a large window piece by piece hands each piece back when it is done,
    /// so the copy and the original are never both resident). Ends past the window are clamped.
    pub fn release_pages_in(&self, range: Range<usize>) {
        #[cfg(target_os = "linux")]
        if self.file_mapped {
            // SAFETY: `sysconf` only reads a system constant.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
            let (from, to) = (range.start.min(self.len()), range.end.min(self.len()));
            let start = self.as_slice().as_ptr() as usize + from;
            let (first, end) = (start.next_multiple_of(page), (start + to.saturating_sub(from)) / page * page);
            if end > first {
                // SAFETY: the range lies inside a read-only file mapping that `owner` keeps
                // alive; dropping its pages loses nothing (they are the file's, unmodified), and
                // the kernel reads them again on the next access. The result is only advice.
                unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED) };
            }
        }
    }

    /// For a window of a file mapping that the caller has copied out: hands back every page of
    /// the 2 MiB-aligned stretch of the mapping around the window (`madvise(MADV_DONTNEED)`).
    /// Linux may back a file mapping with 2 MiB pages, so reading a few bytes of a small tensor
    /// (a norm's weights) maps 2 MiB of the file; handing back only the window's own pages would
    /// leave that whole stretch resident. Other windows in the stretch lose nothing: their
    /// pages are read back from the file when next touched. Does nothing for owned buffers or
    /// off Linux.
    pub fn release_huge_pages_around(&self) {
        #[cfg(target_os = "linux")]
        if self.file_mapped {
            const HUGE: usize = 2 << 20;
            let whole = (*self.owner).as_ref();
            let base = whole.as_ptr() as usize;
            let start = (base + self.range.start) / HUGE * HUGE;
            let end = (base + self.range.end).next_multiple_of(HUGE);
            // Clamped to the mapping, whose start and end are page-aligned.
            let (start, end) = (start.max(base), end.min(base + whole.len()));
            if end > start {
                // SAFETY: the stretch lies inside a read-only file mapping that `owner` keeps
                // alive (see `release_pages_in`); the result is only advice.
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            }
        }
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

/// Per-group multipliers of a quantised tensor: element `i` (row-major) is
/// `q[i] · scales[i / group_size]`.
///
/// These are *multipliers* (step sizes), whatever the file stored: readers of formats that keep
/// the reciprocal (Torchless stores `127 / max|x|`) convert once at load.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupScales {
    /// Consecutive elements sharing one scale.
    pub group_size: usize,
    /// One multiplier per group, `numel / group_size` of them.
    pub scales: Arc<[f32]>,
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
    /// `dtype.bytes_for(shape.product())` bytes.
    pub data: Bytes,
    /// The group multipliers of a quantised tensor ([`DType::I8`]); `None` for float types.
    pub scales: Option<GroupScales>,
}

impl WeightView {
    /// Builds a view of float or block-quantised data, checking that the byte length matches
    /// shape and dtype (and, for blocks, that rows are whole blocks). int8 data goes through
    /// [`WeightView::new_quantized`].
    pub fn new(name: impl Into<String>, dtype: DType, shape: Vec<usize>, data: Bytes) -> Result<Self> {
        let name = name.into();
        if dtype == DType::I8 {
            return Err(Error::Shape {
                op: "weight view",
                expected: format!("group scales for int8 tensor `{name}` (use new_quantized)"),
                got: shape,
            });
        }
        check_bytes(&name, dtype, &shape, data.len())?;
        Ok(Self { name, dtype, shape, data, scales: None })
    }

    /// Builds a view of int8 data quantised in groups, checking the byte length and that there
    /// is exactly one scale per `scales.group_size` elements.
    pub fn new_quantized(name: impl Into<String>, shape: Vec<usize>, data: Bytes, scales: GroupScales) -> Result<Self> {
        let name = name.into();
        check_bytes(&name, DType::I8, &shape, data.len())?;
        let numel: usize = shape.iter().product();
        let group = scales.group_size;
        if group == 0 || numel % group != 0 || scales.scales.len() != numel / group {
            return Err(Error::Shape {
                op: "weight view",
                expected: format!(
                    "one scale per {group} elements of `{name}` ({numel} elements), not {}",
                    scales.scales.len()
                ),
                got: shape,
            });
        }
        Ok(Self { name, dtype: DType::I8, shape, data, scales: Some(scales) })
    }

    /// An owned f32 tensor (used for small tensors and tests).
    pub fn from_f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Result<Self> {
        let bytes = bytemuck::cast_slice::<f32, u8>(values).to_vec();
        Self::new(name, DType::F32, shape, Bytes::from_vec(bytes))
    }

    /// An owned tensor of zeros stored as `dtype` (int8 with one scale of 1 for the whole
    /// tensor), for tests that load every dtype.
    pub fn zeros(name: impl Into<String>, dtype: DType, shape: Vec<usize>) -> Result<Self> {
        let numel: usize = shape.iter().product();
        let len = dtype.bytes_for(numel).unwrap_or(0);
        let data = Bytes::from_vec(vec![0; len]);
        if dtype != DType::I8 {
            return Self::new(name, dtype, shape, data);
        }
        Self::new_quantized(name, shape, data, GroupScales { group_size: numel, scales: Arc::from([1.0]) })
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

    /// The data converted to f32 (a copy; exact for f16 and bf16, dequantised for int8 and blocks).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let bytes = self.data.as_slice();
        match (&self.scales, self.dtype) {
            (Some(s), DType::I8) => dequantize(bytes, s.group_size, &s.scales),
            // `new_quantized` is the only constructor of int8 views and always sets scales.
            (None, DType::I8) => bytes.iter().map(|&q| f32::from(q as i8)).collect(),
            (_, dtype) => {
                let mut out = Vec::with_capacity(self.numel());
                // The constructor checked that the bytes are whole elements or blocks.
                crate::quant::decode(dtype, bytes, &mut out);
                out
            }
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

/// `q[i] · scales[i / group_size]` for int8 bytes `q`.
pub fn dequantize(q: &[u8], group_size: usize, scales: &[f32]) -> Vec<f32> {
    q.chunks(group_size.max(1))
        .zip(scales)
        .flat_map(|(group, &scale)| group.iter().map(move |&b| f32::from(b as i8) * scale))
        .collect()
}

fn check_bytes(name: &str, dtype: DType, shape: &[usize], len: usize) -> Result<()> {
    let row = shape.last().copied().unwrap_or(1);
    if row % dtype.block_size() != 0 {
        return Err(Error::Shape {
            op: "weight view",
            expected: format!("rows of `{name}` in whole blocks of {} ({dtype})", dtype.block_size()),
            got: shape.to_vec(),
        });
    }
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let expected = numel.and_then(|n| dtype.bytes_for(n));
    if expected != Some(len) {
        let want = expected.map_or_else(|| "an impossible number of".to_string(), |e| e.to_string());
        return Err(Error::Shape {
            op: "weight view",
            expected: format!("{want} bytes for `{name}` ({dtype} {shape:?})"),
            got: vec![len],
        });
    }
    Ok(())
}

/// What a tensor is handed out as, known without reading (or decoding) its data: the answer
/// of [`WeightSource::meta`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightMeta {
    /// The element type [`WeightSource::get`] hands it out in.
    pub dtype: DType,
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
}

impl WeightMeta {
    /// Bytes of the tensor as handed out (0 if the shape is impossible for the dtype).
    pub fn bytes(&self) -> u64 {
        self.dtype.bytes_for(self.shape.iter().product()).unwrap_or(0) as u64
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

    /// The dtype and shape [`WeightSource::get`] would hand out for `name`. The default calls
    /// `get`; sources that decode tensors on `get` (GGUF's K-quants) override it so that sizing
    /// a load or a conversion decodes nothing.
    fn meta(&self, name: &str) -> Result<WeightMeta> {
        let view = self.get(name)?;
        Ok(WeightMeta { dtype: view.dtype, shape: view.shape })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn scales(group_size: usize, values: &[f32]) -> GroupScales {
        GroupScales { group_size, scales: values.into() }
    }

    #[test]
    fn zeros_in_every_dtype_read_back_as_zeros() {
        for dtype in DType::ALL {
            let view = WeightView::zeros("w", dtype, vec![2, 256]).unwrap();
            assert_eq!((view.dtype, view.to_f32_vec()), (dtype, vec![0.0; 512]), "{dtype}");
        }
        assert!(WeightView::zeros("w", DType::Q8_0, vec![2, 3]).is_err(), "rows of whole blocks");
    }

    #[test]
    fn int8_views_dequantise_per_group() {
        let q: Vec<u8> = [1i8, -2, 127, -127].iter().map(|&v| v as u8).collect();
        let view = WeightView::new_quantized("w", vec![2, 2], Bytes::from_vec(q), scales(2, &[0.5, 2.0])).unwrap();
        assert_eq!(view.to_f32_vec(), vec![0.5, -1.0, 254.0, -254.0]);
        assert!(view.as_f32_slice().is_none());
        assert_eq!(view.transposed().unwrap().to_f32_vec(), vec![0.5, 254.0, -1.0, -254.0]);
    }

    #[test]
    fn int8_views_need_one_scale_per_group() {
        let data = || Bytes::from_vec(vec![0; 4]);
        assert!(WeightView::new("w", DType::I8, vec![4], data()).is_err());
        assert!(WeightView::new_quantized("w", vec![4], data(), scales(2, &[1.0])).is_err());
        assert!(WeightView::new_quantized("w", vec![4], data(), scales(3, &[1.0, 1.0])).is_err());
        assert!(WeightView::new_quantized("w", vec![4], data(), scales(0, &[])).is_err());
        assert!(WeightView::new_quantized("w", vec![2, 2], data(), scales(2, &[1.0, 1.0])).is_ok());
    }

    #[test]
    fn block_views_dequantise_and_check_whole_blocks() {
        let mut block = half::f16::from_f32(0.25).to_le_bytes().to_vec();
        block.extend((0..32).map(|i| i as u8));
        let view = WeightView::new("w", DType::Q8_0, vec![1, 32], Bytes::from_vec(block.clone())).unwrap();
        assert_eq!(view.to_f32_vec(), (0..32).map(|i| 0.25 * i as f32).collect::<Vec<_>>());
        assert!(WeightView::new("w", DType::Q8_0, vec![2, 16], Bytes::from_vec(block.clone())).is_err());
        assert!(WeightView::new("w", DType::Q8_0, vec![1, 64], Bytes::from_vec(block)).is_err());
    }

    #[test]
    fn windows_of_a_mapped_file_read_the_same_after_their_pages_are_handed_back() {
        use std::io::Write;
        let values: Vec<u8> = (0..5 << 20).map(|i: usize| (i * 7 + i / 4096) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&values).unwrap();
        // SAFETY: the temporary file is ours and not written while mapped.
        let map: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(unsafe { memmap2::Mmap::map(&file) }.unwrap());
        // A small window, one across a 2 MiB boundary, one at each end, the whole file.
        for range in [100..3_700, (2 << 20) - 5_000..(2 << 20) + 9_000, 0..10, (5 << 20) - 10..5 << 20, 0..5 << 20] {
            // SAFETY: `map` maps a file read-only.
            let window = unsafe { Bytes::file_mapped(map.clone(), range.clone()) };
            assert_eq!(window.as_slice(), &values[range.clone()]);
            window.release_huge_pages_around();
            window.release_pages();
            assert_eq!(window.as_slice(), &values[range.clone()], "{range:?} read back");
        }
        assert_eq!((*map).as_ref(), &values[..], "the whole mapping reads the same");
    }

    #[test]
    fn float_views_check_their_length() {
        assert!(WeightView::new("w", DType::F32, vec![usize::MAX, 2], Bytes::from_vec(vec![0; 8])).is_err());
        assert!(WeightView::new("w", DType::BF16, vec![2, 2], Bytes::from_vec(vec![0; 8])).is_ok());
    }
}
