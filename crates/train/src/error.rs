//! The trainer's error type: every variant names the file, option or field at fault.

use std::path::PathBuf;

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The training data cannot be used.
    #[error("{}: {message}", path.display())]
    Data {
        /// The file or directory given as data.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An option or a config field is out of range.
    #[error("{field}: {message}")]
    Config {
        /// The option (`--steps`) or config field (`n_embd`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Training or loading a tokenizer failed.
    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizers crate's message.
        message: String,
    },
    /// A run directory cannot be resumed.
    #[error("cannot resume {}: {message}", path.display())]
    Resume {
        /// The run directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The loss stopped being a number.
    #[error("training diverged at step {step}: the loss is {loss}")]
    Diverged {
        /// The optimizer step.
        step: u64,
        /// The loss it computed.
        loss: f32,
    },
    /// An events file does not decode.
    #[error("{}: {message}", path.display())]
    Events {
        /// The events file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The loss plot could not be drawn.
    #[error("plot {}: {message}", path.display())]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The model or backend refused something.
    #[error(transparent)]
    Model(#[from] zoo_core::Error),
    /// Writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] zoo_checkpoint::CheckpointError),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A config or option error.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config { field: field.into(), message: message.into() }
    }
}

/// The trainer's result type.
pub type Result<T> = std::result::Result<T, TrainError>;
