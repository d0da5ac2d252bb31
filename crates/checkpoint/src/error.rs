//! The checkpoint crate's error type: every variant names the file it is about.

use std::path::PathBuf;

/// Errors reading or writing checkpoints and tokenizers.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid in its format (truncated, corrupt, out-of-range offsets, ...).
    #[error("{}: {}", path.display(), clean(message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One tensor's record in a file is wrong (outside the payload, overlapping another, ...).
    #[error("{}: tensor `{}`: {}", path.display(), clean(name), clean(message))]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor exists but uses an element type zoo cannot read.
    #[error("{}: tensor `{}` has unsupported dtype {}", path.display(), clean(name), clean(dtype))]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype as the file names it.
        dtype: String,
    },
    /// A file or directory does not hold what was expected.
    #[error("{}: {}", path.display(), clean(message))]
    NotFound {
        /// Where we looked.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The tokenizer could not be loaded or used.
    #[error("{}: tokenizer: {}", path.display(), clean(message))]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl CheckpointError {
    /// An [`CheckpointError::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), message: message.into() }
    }

    /// A [`CheckpointError::Tensor`] for tensor `name` of `path`.
    pub fn tensor(path: impl Into<PathBuf>, name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Tensor { path: path.into(), name: name.into(), message: message.into() }
    }

    /// An [`CheckpointError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

impl From<CheckpointError> for zoo_core::Error {
    fn from(e: CheckpointError) -> Self {
        zoo_core::Error::Weights(Box::new(e))
    }
}

/// Longest message part an error prints (file content can make one arbitrarily long).
const MAX_MESSAGE_CHARS: usize = 400;

/// `text` with control characters escaped and cut to [`MAX_MESSAGE_CHARS`]: messages quote
/// names and values from files, which must not reach the terminal raw.
fn clean(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// `Result` with [`CheckpointError`].
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;
