//! Safetensors checkpoints, single-file or sharded, read through memory maps.
//!
//! Tensors are handed out as [`WeightView`]s that borrow the map: nothing is copied at load.
//! A sharded checkpoint (`model.safetensors.index.json` + shards) is one [`Safetensors`] source.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use zoo_core::{Bytes, DType, WeightSource, WeightView};

use crate::error::{CheckpointError, Result};
use crate::shards::ShardIndex;

/// One tensor's place in a file.
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

/// Memory-mapped safetensors files seen as one set of named tensors.
pub struct Safetensors {
    name: String,
    files: Vec<(PathBuf, Arc<Mmap>)>,
    tensors: BTreeMap<String, Entry>,
}

impl Safetensors {
    /// Opens one `.safetensors` file.
    pub fn open(path: &Path) -> Result<Self> {
        let mut set = Self { name: path.display().to_string(), files: Vec::new(), tensors: BTreeMap::new() };
        set.add_file(path)?;
        Ok(set)
    }

    /// Opens a sharded checkpoint from its `model.safetensors.index.json`; shards are found
    /// beside the index (plain file names only).
    pub fn open_index(index: &Path) -> Result<Self> {
        let listed = ShardIndex::read(index)?;
        let mut set = Self { name: index.display().to_string(), files: Vec::new(), tensors: BTreeMap::new() };
        for shard in &listed.files {
            set.add_file(shard)?;
        }
        listed.check_found(|tensor| set.tensors.contains_key(tensor))?;
        Ok(set)
    }

    /// Maps `path` and records its tensors, validating the header against the file size.
    fn add_file(&mut self, path: &Path) -> Result<()> {
        let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        // SAFETY: the map is read-only; zoo never writes to checkpoint files while they are open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
        let parsed = SafeTensors::deserialize(&mmap)
            .map_err(|e| CheckpointError::invalid(path, format!("not a valid safetensors file: {e}")))?;
        let base = mmap.as_ptr() as usize;
        let file_index = self.files.len();
        for (name, view) in parsed.tensors() {
            let start = view.data().as_ptr() as usize - base;
            let entry = Entry {
                file: file_index,
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                range: start..start + view.data().len(),
            };
            if self.tensors.insert(name.clone(), entry).is_some() {
                return Err(CheckpointError::invalid(path, format!("tensor `{name}` appears in more than one shard")));
            }
        }
        drop(parsed);
        self.files.push((path.to_path_buf(), Arc::new(mmap)));
        Ok(())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

fn dtype_of(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

impl WeightSource for Safetensors {
    crate::tensor_map::map_lookups!(name);

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        let entry = crate::tensor_map::entry(&self.tensors, name, self)?;
        let (path, mmap) = &self.files[entry.file];
        let dtype = dtype_of(entry.dtype).ok_or_else(|| CheckpointError::UnsupportedDType {
            path: path.clone(),
            name: name.to_string(),
            dtype: format!("{:?}", entry.dtype),
        })?;
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = mmap.clone();
        WeightView::new(name, dtype, entry.shape.clone(), Bytes::new(owner, entry.range.clone()))
    }
}

/// A tensor on its way into a safetensors file, converted to `dtype` when its data is asked for
/// (one tensor at a time, so a conversion never holds two copies of the model).
struct Outgoing<'p> {
    view: WeightView,
    dtype: DType,
    progress: Option<(u64, &'p (dyn Fn(u64) + Sync))>,
}

impl safetensors::View for Outgoing<'_> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            DType::F16 => Dtype::F16,
            DType::BF16 => Dtype::BF16,
            _ => Dtype::F32,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.view.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        if let Some((done, progress)) = self.progress {
            progress(done);
        }
        if self.dtype == self.view.dtype {
            return std::borrow::Cow::Borrowed(self.view.data.as_slice());
        }
        let values = self.view.to_f32_vec();
        std::borrow::Cow::Owned(match self.dtype {
            DType::F16 => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
            DType::BF16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
            _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
    }

    fn data_len(&self) -> usize {
        self.view.numel() * self.dtype.size()
    }
}

/// Writes every tensor of `weights` to one safetensors file at `path`, as `dtype` (f32, f16 or
/// bf16; `None` keeps each tensor's own float type and dequantises int8 and blocks to f32). `progress` is
/// called with the source bytes read so far.
pub fn write(
    path: &Path,
    weights: &dyn WeightSource,
    dtype: Option<DType>,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> Result<()> {
    if let Some(quantized) = dtype.filter(|d| d.is_quantized()) {
        let message = format!("safetensors files are written as f32, f16 or bf16, not {quantized}");
        return Err(CheckpointError::invalid(path, message));
    }
    let source = weights.source_name();
    let mut tensors = Vec::new();
    let mut done = 0u64;
    for name in weights.names() {
        let view = weights.get(&name).map_err(|e| CheckpointError::tensor(&source, &name, e.to_string()))?;
        done += view.data.len() as u64;
        let target = dtype.unwrap_or(if view.dtype.is_quantized() { DType::F32 } else { view.dtype });
        tensors.push((name, Outgoing { view, dtype: target, progress: progress.map(|p| (done, p)) }));
    }
    let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(tensors, metadata, path)
        .map_err(|e| CheckpointError::invalid(path, format!("writing safetensors: {e}")))?;
    crate::file_mode::as_new_file(path)
}
