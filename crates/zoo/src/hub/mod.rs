//! Models named by Hugging Face id (`--weights Qwen/Qwen2.5-0.5B-Instruct`), found in the local
//! hub cache that transformers and `huggingface_hub` share, and downloaded into it when missing.
//!
//! [`resolve_weights`] turns a `--weights` value into a local path: an existing file or folder
//! is used as it is; otherwise an `org/name[@revision]` id ([`HubId`]) is looked up in the cache
//! ([`Hub`], configured from the same environment variables as `huggingface_hub`). A snapshot
//! that has the config and the weights is used without any network access; a missing one is
//! downloaded (cargo feature `download`) unless `HF_HUB_OFFLINE` is set. See docs/hub.md.

#[cfg(feature = "download")]
mod download;
mod env;
mod error;
mod id;
mod snapshot;

use std::fmt;
use std::path::{Path, PathBuf};

pub use env::DEFAULT_ENDPOINT;
pub use error::HubError;
pub use id::{HubId, DEFAULT_REVISION};
pub use snapshot::{repo_of, CONFIG, OPTIONAL_FILES, WEIGHT_FILES};

use snapshot::{missing, Need, RepoDir};

/// Where models are cached and fetched from.
#[derive(Clone)]
pub struct Hub {
    /// The hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache: PathBuf,
    /// The hub's address, without trailing `/` (`$HF_ENDPOINT`, else [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer …` (`$HF_TOKEN`, else the token `hf auth login` saved).
    pub token: Option<String>,
    /// Never download (`$HF_HUB_OFFLINE`).
    pub offline: bool,
}

impl fmt::Debug for Hub {
    /// Everything but the token's value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("cache", &self.cache)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("offline", &self.offline)
            .finish()
    }
}

/// What a download reports as it goes. Every method does nothing unless overridden; `()` is the
/// reporter that shows nothing.
pub trait DownloadProgress {
    /// Files of `id` are missing from `cache` and are about to be downloaded.
    fn begin(&mut self, _id: &HubId, _cache: &Path) {}
    /// `file`, of `size` bytes, starts downloading (again, if a broken-off download resumes).
    fn file(&mut self, _file: &str, _size: u64) {}
    /// `done` bytes of the current file are on disk.
    fn progress(&mut self, _done: u64) {}
    /// The current file is complete.
    fn finish(&mut self) {}
}

impl DownloadProgress for () {}

impl Hub {
    /// The cache, endpoint, token and offline mode as `huggingface_hub` reads them from the
    /// environment; [`HubError::NoCache`] (naming `id`) when no cache folder can be made.
    pub fn from_env(id: &HubId) -> Result<Self, HubError> {
        let lookup = env::process_env;
        Ok(Self {
            cache: env::hub_cache(&lookup).ok_or_else(|| HubError::NoCache { id: id.to_string() })?,
            endpoint: env::endpoint(&lookup),
            token: env::token(&lookup),
            offline: env::offline(&lookup),
        })
    }

    /// The snapshot folder of `id`, downloading what it lacks unless offline. A cached
    /// snapshot with the config, every weight file and a tokenizer is used without network
    /// access; offline, the config and the weights suffice.
    pub fn resolve(&self, id: &HubId, progress: &mut dyn DownloadProgress) -> Result<PathBuf, HubError> {
        let repo = RepoDir::new(&self.cache, id);
        if let Some(commit) = repo.commit(id)? {
            let snapshot = repo.snapshot(&commit);
            if snapshot.is_dir() && missing(&snapshot, !self.offline)?.is_empty() {
                return Ok(snapshot);
            }
        }
        if self.offline {
            return Err(self.not_cached(id, &repo)?);
        }
        self.download(id, progress)
    }

    /// Downloads what `id` lacks (cargo feature `download`).
    #[cfg(feature = "download")]
    fn download(&self, id: &HubId, progress: &mut dyn DownloadProgress) -> Result<PathBuf, HubError> {
        download::download(self, id, progress)
    }

    /// Without the `download` feature: says what the cache lacks.
    #[cfg(not(feature = "download"))]
    fn download(&self, id: &HubId, _progress: &mut dyn DownloadProgress) -> Result<PathBuf, HubError> {
        match self.not_cached(id, &RepoDir::new(&self.cache, id))? {
            HubError::Offline { id, path, lacks } => Err(HubError::NoDownload { id, path, lacks }),
            other => Err(other),
        }
    }

    /// The error for `id` not being usable from the cache: the first thing missing, from the
    /// repository folder down to a shard ([`HubError::Offline`] or [`HubError::MissingShard`]).
    fn not_cached(&self, id: &HubId, repo: &RepoDir) -> Result<HubError, HubError> {
        let offline = |path: &Path, lacks: String| HubError::Offline { id: id.to_string(), path: path.into(), lacks };
        if !repo.path.is_dir() {
            return Ok(offline(&repo.path, "does not exist".into()));
        }
        let Some(commit) = repo.commit(id)? else {
            return Ok(offline(&repo.ref_path(id.revision()), "does not exist".into()));
        };
        let snapshot = repo.snapshot(&commit);
        if !snapshot.is_dir() {
            return Ok(offline(&snapshot, "does not exist".into()));
        }
        Ok(match missing(&snapshot, false)?.into_iter().next() {
            Some(Need::Shard { index, shard }) => {
                let place = "is not in the snapshot, and offline mode is on (HF_HUB_OFFLINE)".into();
                HubError::MissingShard { index, shard, place }
            }
            Some(need) => offline(&snapshot, need.to_string()),
            None => offline(&snapshot, "is incomplete".into()),
        })
    }
}

/// The local path a `--weights` value stands for: the value itself when a file or folder has
/// that name (or when it is not shaped like a hub id: the loader then says what is missing),
/// else the snapshot folder of the hub id it is ([`Hub::resolve`] with [`Hub::from_env`]).
pub fn resolve_weights(weights: &Path, progress: &mut dyn DownloadProgress) -> Result<PathBuf, HubError> {
    if weights.symlink_metadata().is_ok() {
        return Ok(weights.to_path_buf());
    }
    let Some(text) = weights.to_str().filter(|t| id::looks_like_id(t)) else {
        return Ok(weights.to_path_buf());
    };
    let id = HubId::parse(text)?;
    Hub::from_env(&id)?.resolve(&id, progress)
}
