//! What can go wrong between a hub id and a snapshot folder. Every message names the id and the
//! file, folder or address at fault.

use std::path::PathBuf;

use zoo_checkpoint::CheckpointError;

/// Errors resolving a Hugging Face model id to files in the hub cache.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `--weights` names no file and is not a valid id.
    #[error(
        "{}: no such file or directory, and not a Hugging Face model id (org/name or org/name@revision): {reason}",
        zoo_core::quoted(text)
    )]
    InvalidId {
        /// What was given.
        text: String,
        /// What is wrong with it as an id.
        reason: String,
    },
    /// No cache folder can be made from the environment.
    #[error("cannot find the Hugging Face cache for {id}: HOME is not set; set HF_HUB_CACHE or HF_HOME")]
    NoCache {
        /// The model asked for.
        id: String,
    },
    /// The model is not (completely) in the cache and offline mode forbids downloading it.
    #[error("{id} is not in the Hugging Face cache ({} {lacks}) and offline mode is on (HF_HUB_OFFLINE)", path.display())]
    Offline {
        /// The model asked for.
        id: String,
        /// The folder or file looked at.
        path: PathBuf,
        /// What it lacks ("does not exist", "has no config.json").
        lacks: String,
    },
    /// The model is not in the cache and this build cannot download.
    #[error(
        "{id} is not in the Hugging Face cache ({} {lacks}) and this zoo was built without downloading \
         (cargo feature `download`)",
        path.display()
    )]
    NoDownload {
        /// The model asked for.
        id: String,
        /// The folder or file looked at.
        path: PathBuf,
        /// What it lacks.
        lacks: String,
    },
    /// A `refs/` file does not hold a commit hash.
    #[error(
        "{}: not a commit hash ({}): the Hugging Face cache entry of {id} is damaged; delete this file to \
         download it again",
        path.display(),
        zoo_core::quoted(found)
    )]
    CorruptRef {
        /// The refs file.
        path: PathBuf,
        /// What it holds.
        found: String,
        /// The model asked for.
        id: String,
    },
    /// A shard index names a file that is neither in the snapshot nor in the repository.
    #[error("{}: lists the shard `{shard}`, which {place}", index.display())]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The shard it lists.
        shard: String,
        /// Where it is missing ("is not in the snapshot and offline mode is on (HF_HUB_OFFLINE)").
        place: String,
    },
    /// The repository has no file zoo can load as `what`.
    #[error("{id}: the repository has no {what}")]
    Unsupported {
        /// The model asked for.
        id: String,
        /// What is missing.
        what: String,
    },
    /// The endpoint has no such repository, revision or file.
    #[error("{id}: {what} not found at {endpoint} (HTTP 404; a private or gated model needs HF_TOKEN)")]
    NotFound {
        /// The model asked for.
        id: String,
        /// What was asked for ("the repository", "`config.json`").
        what: String,
        /// The endpoint asked.
        endpoint: String,
    },
    /// The endpoint refused the token (or the lack of one).
    #[error("{id}: {endpoint} refused access (HTTP {status}); {hint}")]
    Denied {
        /// The model asked for.
        id: String,
        /// The endpoint asked.
        endpoint: String,
        /// 401 or 403.
        status: u16,
        /// What to do about it.
        hint: &'static str,
    },
    /// The endpoint answered something that cannot be right.
    #[error("{id}: {endpoint} answered {what}")]
    BadResponse {
        /// The model asked for.
        id: String,
        /// The endpoint asked.
        endpoint: String,
        /// What was wrong with the answer.
        what: String,
    },
    /// A downloaded file is not the size the endpoint announced.
    #[error(
        "{id}: `{file}` arrived with {got} bytes instead of {expected}; it was removed from the cache, run again to \
         download it"
    )]
    Truncated {
        /// The model asked for.
        id: String,
        /// The file.
        file: String,
        /// Bytes on disk.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// A request or the download itself failed.
    #[error("{id}: downloading {what} from {endpoint}")]
    Download {
        /// The model asked for.
        id: String,
        /// What was being fetched.
        what: String,
        /// The endpoint asked.
        endpoint: String,
        /// What failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The cache could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A shard index in the cache could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}
