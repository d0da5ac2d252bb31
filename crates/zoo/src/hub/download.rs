//! Downloading what a model needs into the hub cache with the `hf-hub` crate's blocking client
//! (ureq and rustls; cargo feature `download`). The repository's file list picks the files
//! ([`plan`]); each file is fetched at the listed commit into `blobs/{etag}` through
//! `blobs/{etag}.part` (kept when a download breaks off, and resumed with an HTTP range by the
//! next run), linked from `snapshots/{commit}/`, and finally `refs/{revision}` is written, so
//! transformers and `huggingface_hub` find the files where they would have put them.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::api::Progress;
use hf_hub::{Cache, Repo, RepoType};

use super::id::is_commit_hash;
use super::snapshot::{is_index, plan, RepoDir};
use super::{DownloadProgress, Hub, HubError, HubId};

/// Times a broken-off file download is resumed within one run before giving up.
const RETRIES: usize = 2;

/// Longest etag accepted as a blob's file name.
const MAX_ETAG_CHARS: usize = 128;

/// One download: the endpoint, the repository at its commit, and where the files go.
struct Fetch<'a> {
    hub: &'a Hub,
    id: &'a HubId,
    api: Api,
    repo: ApiRepo,
    commit: String,
    snapshot: PathBuf,
}

/// Downloads the files `id` needs that its snapshot lacks; the snapshot folder.
pub fn download(hub: &Hub, id: &HubId, progress: &mut dyn DownloadProgress) -> Result<PathBuf, HubError> {
    progress.begin(id, &hub.cache);
    let api = ApiBuilder::from_cache(Cache::new(hub.cache.clone()))
        .with_endpoint(hub.endpoint.clone())
        .with_token(hub.token.clone())
        .with_progress(false)
        .with_retries(RETRIES)
        .with_user_agent("zoo", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| request_error(hub, id, "the client", e))?;
    let info = api
        .repo(Repo::with_revision(id.repo(), RepoType::Model, id.revision().to_string()))
        .info()
        .map_err(|e| request_error(hub, id, "the repository", e))?;
    if !is_commit_hash(&info.sha) {
        return Err(bad_response(hub, id, format!("the commit {}", zoo_core::quoted(&info.sha))));
    }
    let listing: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let fetch = Fetch::new(hub, id, api, info.sha);
    for file in plan(id, &listing)? {
        fetch.file(&file, progress)?;
        if is_index(&file) {
            fetch.shards(&file, &listing, progress)?;
        }
    }
    fetch.finish()?;
    Ok(fetch.snapshot)
}

impl<'a> Fetch<'a> {
    /// Fetches from `api` at `commit`.
    fn new(hub: &'a Hub, id: &'a HubId, api: Api, commit: String) -> Self {
        let repo = api.repo(Repo::with_revision(id.repo(), RepoType::Model, commit.clone()));
        let snapshot = RepoDir::new(&hub.cache, id).snapshot(&commit);
        Self { hub, id, api, repo, commit, snapshot }
    }

    /// Downloads `file` unless the snapshot has it; checks what arrived against the announced
    /// size, removing it from the cache when they differ.
    fn file(&self, file: &str, progress: &mut dyn DownloadProgress) -> Result<(), HubError> {
        if self.snapshot.join(file).is_file() {
            return Ok(());
        }
        let what = || format!("`{file}`");
        let meta = self.api.metadata(&self.repo.url(file)).map_err(|e| request_error(self.hub, self.id, &what(), e))?;
        self.check_metadata(file, meta.etag(), meta.commit_hash())?;
        let reporter = Reporter { inner: progress, done: 0 };
        let path = self
            .repo
            .download_with_progress(file, reporter)
            .map_err(|e| request_error(self.hub, self.id, &what(), e))?;
        let blob = RepoDir::new(&self.hub.cache, self.id).path.join("blobs").join(meta.etag());
        remove_if_present(&blob.with_extension("lock"));
        let got = std::fs::metadata(&path).map_err(|source| HubError::Io { path: path.clone(), source })?.len();
        if got != meta.size() as u64 {
            remove_if_present(&path);
            remove_if_present(&blob);
            let (id, file) = (self.id.to_string(), file.to_string());
            return Err(HubError::Truncated { id, file, got, expected: meta.size() as u64 });
        }
        Ok(())
    }

    /// Refuses an etag that is no plain file name (it names the blob) and a file from another
    /// commit than the one listed.
    fn check_metadata(&self, file: &str, etag: &str, commit: &str) -> Result<(), HubError> {
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if etag.is_empty() || etag.len() > MAX_ETAG_CHARS || !etag.chars().all(plain) {
            return Err(bad_response(self.hub, self.id, format!("`{file}` with the etag {}", zoo_core::quoted(etag))));
        }
        if commit != self.commit {
            let what = format!("`{file}` at commit {} instead of {}", zoo_core::quoted(commit), self.commit);
            return Err(bad_response(self.hub, self.id, what));
        }
        Ok(())
    }

    /// Downloads the shards that the (downloaded) index lists; each must be in the repository.
    fn shards(&self, index: &str, listing: &[String], progress: &mut dyn DownloadProgress) -> Result<(), HubError> {
        let index = self.snapshot.join(index);
        for shard in zoo_checkpoint::shards::listed_files(&index)? {
            if !listing.contains(&shard) {
                let place = "the repository does not have".to_string();
                return Err(HubError::MissingShard { index, shard, place });
            }
            self.file(&shard, progress)?;
        }
        Ok(())
    }

    /// Points `refs/{revision}` at the commit. hf-hub wrote `refs/{commit}` for the commit it
    /// was given, which `huggingface_hub` never writes: removed.
    fn finish(&self) -> Result<(), HubError> {
        let repo = RepoDir::new(&self.hub.cache, self.id);
        remove_if_present(&repo.ref_path(&self.commit));
        if !self.id.is_commit() {
            repo.write_ref(self.id.revision(), &self.commit)?;
        }
        Ok(())
    }
}

/// Removes a file if it is there (a leftover that only costs disk space if it stays).
fn remove_if_present(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Passes hf-hub's per-file progress on as bytes done of the current file.
struct Reporter<'a> {
    inner: &'a mut dyn DownloadProgress,
    done: u64,
}

impl Progress for Reporter<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        self.done = 0;
        self.inner.file(filename, size as u64);
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        self.inner.progress(self.done);
    }

    fn finish(&mut self) {
        self.inner.finish();
    }
}

/// [`HubError::BadResponse`] from `hub`'s endpoint.
fn bad_response(hub: &Hub, id: &HubId, what: String) -> HubError {
    HubError::BadResponse { id: id.to_string(), endpoint: hub.endpoint.clone(), what }
}

/// An hf-hub error as a [`HubError`]: 404, 401 and 403 get their own messages.
fn request_error(hub: &Hub, id: &HubId, what: &str, error: ApiError) -> HubError {
    let (id, endpoint, what) = (id.to_string(), hub.endpoint.clone(), what.to_string());
    let status = match &error {
        ApiError::RequestError(e) => match e.as_ref() {
            ureq::Error::StatusCode(status) => Some(*status),
            _ => None,
        },
        _ => None,
    };
    match status {
        Some(404) => HubError::NotFound { id, what, endpoint },
        Some(status @ (401 | 403)) => {
            let hint = if hub.token.is_some() {
                "the token (HF_TOKEN) may not read this model: a gated model must be accepted on its page first"
            } else {
                "a private or gated model needs a token: set HF_TOKEN"
            };
            HubError::Denied { id, endpoint, status, hint }
        }
        _ => HubError::Download { id, what, endpoint, source: Box::new(error) },
    }
}
