//! The error type of zoo's core.

use crate::DType;

/// Errors raised by core types, backends and models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operation got tensors whose shapes do not fit together.
    #[error("{op}: shape mismatch: expected {expected}, got {got:?}")]
    Shape {
        /// The operation that failed.
        op: &'static str,
        /// What the operation needed, in words.
        expected: String,
        /// The shape it got.
        got: Vec<usize>,
    },
    /// A weight the model needs is not in the checkpoint.
    #[error("missing tensor `{name}` in {source_name}")]
    MissingTensor {
        /// The tensor's name.
        name: String,
        /// The weight source (usually a file path).
        source_name: String,
    },
    /// A weight exists but has the wrong shape.
    #[error("tensor `{name}` in {source_name} has shape {got:?}, expected {expected:?}")]
    WeightShape {
        /// The tensor's name.
        name: String,
        /// The weight source (usually a file path).
        source_name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        got: Vec<usize>,
    },
    /// A backend cannot hold this element type.
    #[error("backend `{backend}` does not support {dtype} tensors (tensor `{name}`)")]
    UnsupportedDType {
        /// The backend's name.
        backend: String,
        /// The element type.
        dtype: DType,
        /// The tensor's name.
        name: String,
    },
    /// A model's configuration is invalid or uses a feature zoo does not implement.
    #[error("invalid {family} config: {message}")]
    Config {
        /// The model family.
        family: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor made by one backend was given to another.
    #[error("tensor belongs to a different backend than `{backend}`")]
    ForeignTensor {
        /// The backend that received the tensor.
        backend: String,
    },
    /// The sequence would exceed the model's context length.
    #[error("context length exceeded: {needed} tokens needed, the model supports {limit}")]
    ContextFull {
        /// Positions needed.
        needed: usize,
        /// The model's maximum.
        limit: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A backend could not be created or used.
    #[error("backend `{backend}`: {message}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What went wrong.
        message: String,
    },
    /// A registry lookup failed.
    #[error("unknown {kind} `{name}` (known: {known})")]
    Unknown {
        /// "model family" or "backend".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// Sampling was asked to pick from logits that are not usable.
    #[error("cannot sample: {0}")]
    Sampling(String),
    /// Tokenizing or detokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Writing generated output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// A weight source failed to produce a tensor (checkpoint readers wrap their errors here).
    #[error(transparent)]
    Weights(Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with zoo-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
