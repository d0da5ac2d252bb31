//! TensorBoard event files: `train/events.out.tfevents.<secs>.<host>.<pid>` holds a run's
//! scalars (training and validation loss, learning rate, gradient norm, tokens/s) as TFRecords
//! ([`record`]) of protobuf `Event`s ([`proto`]), checksummed with CRC-32C ([`crc32c`]).
//! `tensorboard --logdir RUN` reads them; each invocation of `zoo train` writes a file of its
//! own, and a resumed one starts with a session-start event so that TensorBoard drops anything
//! an interrupted invocation logged past the checkpoint.

pub mod crc32c;
pub mod proto;
pub mod record;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Result, TrainError};
pub use proto::{Event, What};

/// The training loss.
pub const TRAIN_LOSS: &str = "loss/train";
/// The validation loss (at evaluations).
pub const VALIDATION_LOSS: &str = "loss/validation";
/// The learning rate of the step.
pub const LEARNING_RATE: &str = "train/learning_rate";
/// The global gradient norm before clipping.
pub const GRAD_NORM: &str = "train/grad_norm";
/// Tokens per second of the step.
pub const TOKENS_PER_SECOND: &str = "train/tokens_per_second";

/// An events file being written.
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl EventWriter {
    /// Creates a new events file in `dir`, starting with the file version, then (for a resumed
    /// run, `resumed_at` its checkpoint's step) a session start at the next step.
    pub fn create(dir: &Path, resumed_at: Option<u64>) -> Result<Self> {
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let stem = format!("events.out.tfevents.{secs}.{}.{}", host(), std::process::id());
        let mut suffix = 0;
        let (path, file) = loop {
            let name = if suffix == 0 { stem.clone() } else { format!("{stem}.{suffix}") };
            let path = dir.join(name);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && suffix < 1000 => suffix += 1,
                Err(e) => return Err(TrainError::io(path, e)),
            }
        };
        let mut writer = Self { path, file };
        writer.write(0, What::FileVersion("brain.Event:2".into()))?;
        if let Some(step) = resumed_at {
            writer.write(step + 1, What::SessionStart)?;
        }
        Ok(writer)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends scalars (tag, value) at `step`.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f32)]) -> Result<()> {
        let values = values.iter().map(|&(tag, value)| (tag.to_string(), value)).collect();
        self.write(step, What::Scalars(values))
    }

    /// Appends one event, now, at `step` (written through, so TensorBoard sees it at once).
    fn write(&mut self, step: u64, what: What) -> Result<()> {
        let wall_time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let event = Event { wall_time, step: step as i64, what };
        self.file.write_all(&record::frame(&event.encode())).map_err(|e| TrainError::io(&self.path, e))
    }
}

/// The events of an events file, in order.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |message: String| TrainError::Events { path: path.to_path_buf(), message };
    record::unframe(&bytes)
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .map(|data| Event::decode(data).map_err(|e| bad(e.to_string())))
        .collect()
}

/// The events files in `dir`, in name (so time) order.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("events.out.tfevents.")))
        .collect();
    files.sort();
    Ok(files)
}

/// This machine's name for the file name (letters, digits, `-` and `_` only).
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(64).collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path(), None).unwrap();
        writer.scalars(1, &[(TRAIN_LOSS, 6.0), (LEARNING_RATE, 1e-3)]).unwrap();
        writer.scalars(2, &[(TRAIN_LOSS, 5.5), (VALIDATION_LOSS, 5.75)]).unwrap();
        let path = writer.path().to_path_buf();
        drop(writer);
        let resumed = EventWriter::create(dir.path(), Some(2)).unwrap();
        assert_ne!(resumed.path(), path, "a second file, even within the same second");
        assert_eq!(event_files(dir.path()).unwrap().len(), 2);

        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].what, What::FileVersion("brain.Event:2".into()));
        assert!(events[0].wall_time > 1.6e9);
        assert_eq!(
            (events[2].step, &events[2].what),
            (2, &What::Scalars(vec![(TRAIN_LOSS.into(), 5.5), (VALIDATION_LOSS.into(), 5.75)]))
        );
        let events = read_events(resumed.path()).unwrap();
        assert_eq!((events[1].step, &events[1].what), (3, &What::SessionStart));
    }
}
