//! The run directory. At its top, a checkpoint `zoo run --weights DIR` loads: `config.json`,
//! `model.safetensors` (f32, under the family's checkpoint names and layouts),
//! `tokenizer.json` and `generation_config.json`. Under `train/`, what `--resume` needs to
//! continue bit for bit: `state.json` (step, seed, batch, learning rate), `optimizer.safetensors`
//! (AdamW's moments, f32), the token files, and `loss.csv`.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use zoo_checkpoint::Safetensors;
use zoo_core::{MemoryWeights, WeightSource, WeightView};

use crate::error::{Result, TrainError};
use crate::family::ParamSpec;
use crate::optimizer::Moments;

/// One parameter's AdamW moments on the host: name, first moment, second moment, `[rows, cols]`.
pub type HostMoments = (String, Vec<f32>, Vec<f32>, [usize; 2]);

/// What a resumed run continues from, beside the weights and moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The family's registry name.
    pub family: String,
    /// Optimizer steps done.
    pub step: u64,
    /// The run's total steps when the checkpoint was written.
    pub total_steps: u64,
    /// Seed of the initial weights and of the data windows.
    pub seed: u64,
    /// Tokens per optimizer step.
    pub batch_tokens: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Tokens trained on so far.
    pub tokens: u64,
}

/// Paths inside a run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory `root` (created if missing).
    pub fn create(root: &Path) -> Result<Self> {
        let dir = Self { root: root.to_path_buf() };
        std::fs::create_dir_all(dir.train()).map_err(|e| TrainError::io(dir.train(), e))?;
        Ok(dir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `train/`, the trainer's own files.
    pub fn train(&self) -> PathBuf {
        self.root.join("train")
    }

    /// A file at the top.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A file under `train/`.
    pub fn train_file(&self, name: &str) -> PathBuf {
        self.train().join(name)
    }

    /// Whether the directory holds a checkpoint to resume.
    pub fn has_checkpoint(&self) -> bool {
        self.train_file("state.json").is_file()
    }

    /// Writes `value` as pretty JSON to `path`, through a temporary file.
    pub fn write_json(&self, path: &Path, value: &impl Serialize) -> Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::io(path, e.into()))?;
        write_then_rename(path, |tmp| std::fs::write(tmp, text.as_bytes()).map_err(|e| TrainError::io(tmp, e)))
    }

    /// Reads JSON from `path`.
    pub fn read_json<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> Result<T> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| TrainError::Resume { path: self.root.clone(), message: format!("{}: {e}", path.display()) })
    }

    /// Writes the parameters (`[rows, cols]` as the model holds them) to `model.safetensors`
    /// under their checkpoint names and stored layouts.
    pub fn write_model(&self, specs: &[ParamSpec], params: &[(String, Vec<f32>, [usize; 2])]) -> Result<()> {
        let mut weights = MemoryWeights::new("trained weights");
        for ((name, values, [rows, cols]), spec) in params.iter().zip(specs) {
            let view = if spec.transposed {
                WeightView::from_f32(name.clone(), vec![*rows, *cols], values)?.transposed()?
            } else {
                WeightView::from_f32(name.clone(), spec.shape.clone(), values)?
            };
            weights.insert(view);
        }
        write_safetensors(&self.file("model.safetensors"), &weights)
    }

    /// Writes AdamW's moments to `train/optimizer.safetensors` (`NAME.m`, `NAME.v`).
    pub fn write_moments(&self, moments: &[HostMoments]) -> Result<()> {
        let mut weights = MemoryWeights::new("optimizer moments");
        for (name, m, v, [rows, cols]) in moments {
            weights.insert(WeightView::from_f32(format!("{name}.m"), vec![*rows, *cols], m)?);
            weights.insert(WeightView::from_f32(format!("{name}.v"), vec![*rows, *cols], v)?);
        }
        write_safetensors(&self.train_file("optimizer.safetensors"), &weights)
    }

    /// The saved weights, as a source the model loads from.
    pub fn open_model(&self) -> Result<Safetensors> {
        Ok(Safetensors::open(&self.file("model.safetensors"))?)
    }

    /// AdamW's saved moments of `name` (`time` steps taken), on `device`.
    pub fn read_moments<B: BurnBackend>(
        &self,
        source: &Safetensors,
        name: &str,
        time: usize,
        device: &B::Device,
    ) -> Result<Moments<B>> {
        let tensor = |suffix: &str| -> Result<Tensor<B, 2>> {
            let view = source.get(&format!("{name}.{suffix}"))?;
            let [rows, cols] = view.shape[..] else {
                return Err(TrainError::Resume {
                    path: self.root.clone(),
                    message: format!("`{name}.{suffix}` is not 2-D"),
                });
            };
            Ok(Tensor::from_data(TensorData::new(view.to_f32_vec(), [rows, cols]), device))
        };
        Ok(Moments { time, m: tensor("m")?, v: tensor("v")? })
    }
}

fn write_safetensors(path: &Path, weights: &MemoryWeights) -> Result<()> {
    write_then_rename(path, |tmp| Ok(zoo_checkpoint::safetensors::write(tmp, weights, None, None)?))
}

/// Writes through `PATH.tmp` and renames, so an interrupted write leaves the old file whole.
fn write_then_rename(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}
