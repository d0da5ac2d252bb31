//! A checkpoint split over several files listed by an index (`pytorch_model.bin.index.json`:
//! `{"weight_map": {tensor: file}}`) seen as one [`WeightSource`]: each tensor is read from the
//! shard that holds it. Shards are opened by the format's own reader. [`ShardIndex`] reads
//! the index, for sharded safetensors checkpoints too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zoo_core::{WeightMeta, WeightSource, WeightView};

use crate::error::{CheckpointError, Result};
use crate::tensor_map::{entry, map_lookups};

/// Several weight sources, one per shard, seen as one.
pub struct Shards {
    name: String,
    shards: Vec<Box<dyn WeightSource>>,
    /// The shard of each tensor.
    tensors: BTreeMap<String, usize>,
}

impl Shards {
    /// Opens the shards that `index` lists (found beside it) with `open_shard`; every tensor the
    /// index names must be in a shard, and no tensor in two.
    pub fn open_index(index: &Path, open_shard: impl Fn(&Path) -> Result<Box<dyn WeightSource>>) -> Result<Self> {
        let listed = ShardIndex::read(index)?;
        let mut set = Self { name: index.display().to_string(), shards: Vec::new(), tensors: BTreeMap::new() };
        for path in &listed.files {
            let shard = open_shard(path)?;
            for name in shard.names() {
                if set.tensors.insert(name.clone(), set.shards.len()).is_some() {
                    return Err(CheckpointError::invalid(path, format!("tensor `{name}` is in more than one shard")));
                }
            }
            set.shards.push(shard);
        }
        listed.check_found(|tensor| set.tensors.contains_key(tensor))?;
        Ok(set)
    }
}

/// What a shard index (`{"weight_map": {tensor: file}}`) lists.
pub(crate) struct ShardIndex {
    /// The index file.
    path: PathBuf,
    /// The shard files, sorted, each once, beside the index.
    pub(crate) files: Vec<PathBuf>,
    /// Every tensor listed.
    tensors: Vec<String>,
}

impl ShardIndex {
    /// Reads `index`; every file it names must be a plain file name (no directories), so that
    /// shards are only ever read from beside the index.
    pub(crate) fn read(index: &Path) -> Result<Self> {
        let json = crate::hf::read_json(index)?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| CheckpointError::invalid(index, "no `weight_map` object"))?;
        let mut files: Vec<&str> = Vec::new();
        for (tensor, file) in map {
            let file = file
                .as_str()
                .filter(|f| is_file_name(f))
                .ok_or_else(|| CheckpointError::invalid(index, format!("`weight_map.{tensor}` is not a file name")))?;
            if !files.contains(&file) {
                files.push(file);
            }
        }
        files.sort_unstable();
        let dir = index.parent().unwrap_or(Path::new("."));
        Ok(Self {
            path: index.to_path_buf(),
            files: files.into_iter().map(|f| dir.join(f)).collect(),
            tensors: map.keys().cloned().collect(),
        })
    }

    /// Fails, naming the first, unless every listed tensor is `found` in the shards.
    pub(crate) fn check_found(&self, found: impl Fn(&str) -> bool) -> Result<()> {
        match self.tensors.iter().find(|t| !found(t)) {
            Some(tensor) => {
                Err(CheckpointError::invalid(&self.path, format!("tensor `{tensor}` is listed but in no shard")))
            }
            None => Ok(()),
        }
    }
}

/// The shard files a shard index lists, sorted, each once: plain file names (checked as
/// [`Shards::open_index`] checks them), to be found beside the index.
pub fn listed_files(index: &Path) -> Result<Vec<String>> {
    let listed = ShardIndex::read(index)?;
    Ok(listed.files.iter().filter_map(|f| f.file_name()).map(|f| f.to_string_lossy().into_owned()).collect())
}

/// Whether `name` names a file in the index's own directory.
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\\')
}

impl WeightSource for Shards {
    map_lookups!(name);

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        self.shards[*entry(&self.tensors, name, self)?].get(name)
    }

    fn meta(&self, name: &str) -> zoo_core::Result<WeightMeta> {
        self.shards[*entry(&self.tensors, name, self)?].meta(name)
    }
}
