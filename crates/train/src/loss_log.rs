//! `train/loss.csv`: one row per step (`step,tokens,lr,train_loss,validation_loss`, the last
//! empty between evaluations). A resumed run keeps the rows up to its checkpoint. [`read`]
//! parses it back for the loss plot.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

const HEADER: &str = "step,tokens,lr,train_loss,validation_loss";

/// The loss log of a run.
pub struct LossLog {
    path: PathBuf,
    file: std::fs::File,
}

impl LossLog {
    /// Opens `path`, keeping the rows of steps up to `keep` (none for a new run).
    pub fn open(path: &Path, keep: Option<u64>) -> Result<Self> {
        let kept: Vec<String> = match keep {
            Some(last) if path.is_file() => std::fs::read_to_string(path)
                .map_err(|e| TrainError::io(path, e))?
                .lines()
                .skip(1)
                .filter(|line| line.split(',').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s <= last))
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let mut file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
        let text: String = std::iter::once(HEADER.to_string()).chain(kept).map(|l| l + "\n").collect();
        file.write_all(text.as_bytes()).map_err(|e| TrainError::io(path, e))?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// Appends a row.
    pub fn row(&mut self, step: u64, tokens: u64, lr: f64, train: f32, validation: Option<f32>) -> Result<()> {
        let validation = validation.map_or_else(String::new, |v| v.to_string());
        writeln!(self.file, "{step},{tokens},{lr:e},{train},{validation}").map_err(|e| TrainError::io(&self.path, e))
    }
}

/// One row of the log, as the plot reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// Steps done.
    pub step: u64,
    /// The step's training loss.
    pub train_loss: f32,
    /// The validation loss, at evaluations.
    pub validation_loss: Option<f32>,
}

/// The rows of the log at `path` (lines that do not parse are skipped).
pub fn read(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let step = fields.first()?.parse().ok()?;
            let train_loss = fields.get(3)?.parse().ok()?;
            let validation_loss = fields.get(4).and_then(|v| v.parse().ok());
            Some(Row { step, train_loss, validation_loss })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_keeps_rows_up_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.csv");
        let mut log = LossLog::open(&path, None).unwrap();
        for step in 1..=4 {
            log.row(step, step * 10, 1e-3, 5.0, (step == 2).then_some(4.5)).unwrap();
        }
        drop(log);
        let mut log = LossLog::open(&path, Some(2)).unwrap();
        log.row(3, 30, 1e-3, 4.0, None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let steps: Vec<&str> = text.lines().map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(steps, ["step", "1", "2", "3"]);
        assert!(text.lines().nth(2).unwrap().ends_with(",4.5"));
        let rows = read(&path).unwrap();
        assert_eq!(rows[1], Row { step: 2, train_loss: 5.0, validation_loss: Some(4.5) });
        assert_eq!(rows[2], Row { step: 3, train_loss: 4.0, validation_loss: None });
    }
}
