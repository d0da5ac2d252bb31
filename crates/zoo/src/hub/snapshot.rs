//! The hub cache on disk, as `huggingface_hub` lays it out: `models--{org}--{name}/refs/{revision}`
//! holds a commit hash, `snapshots/{commit}/` the repository's files (symlinks into `blobs/`,
//! followed), and which of those files a model needs before zoo can load it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::id::is_commit_hash;
use super::{HubError, HubId};

/// The model's configuration; every model needs it.
pub const CONFIG: &str = "config.json";

/// Weight files zoo reads, in transformers' order of preference; an `.index.json` lists shards.
pub const WEIGHT_FILES: [&str; 4] =
    ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

/// Files beside the weights that zoo reads when they exist: tokenizer, chat template,
/// generation config.
pub const OPTIONAL_FILES: [&str; 10] = zoo_checkpoint::convert::TOKENIZER_FILES;

/// Files any one of which is a tokenizer zoo can build.
const TOKENIZER_FILES: [&str; 4] = ["tokenizer.json", "tokenizer.model", "vocab.json", "encoder.json"];

/// Whether `file` is a shard index.
pub fn is_index(file: &str) -> bool {
    file.ends_with(".index.json")
}

/// One repository's folder in the cache.
pub struct RepoDir {
    /// `{cache}/models--{org}--{name}`.
    pub path: PathBuf,
}

impl RepoDir {
    /// The folder of `id` in `cache`.
    pub fn new(cache: &Path, id: &HubId) -> Self {
        Self { path: cache.join(id.folder()) }
    }

    /// The `refs/` file of a revision.
    pub fn ref_path(&self, revision: &str) -> PathBuf {
        self.path.join("refs").join(revision)
    }

    /// The snapshot folder of a commit.
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.path.join("snapshots").join(commit)
    }

    /// The commit `id`'s revision stands for: the revision itself when it is a commit hash, else
    /// what `refs/{revision}` holds; `None` when there is no such refs file.
    pub fn commit(&self, id: &HubId) -> Result<Option<String>, HubError> {
        if id.is_commit() {
            return Ok(Some(id.revision().to_string()));
        }
        let path = self.ref_path(id.revision());
        let text = match read_start(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(HubError::Io { path, source }),
        };
        let commit = text.trim();
        if !is_commit_hash(commit) {
            return Err(HubError::CorruptRef { path, found: text, id: id.to_string() });
        }
        Ok(Some(commit.to_string()))
    }

    /// Points `refs/{revision}` at `commit` (written whole, then renamed into place).
    #[cfg_attr(not(feature = "download"), allow(dead_code))]
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        let path = self.ref_path(revision);
        let io = |source| HubError::Io { path: path.clone(), source };
        std::fs::create_dir_all(path.parent().unwrap_or(&self.path)).map_err(io)?;
        let partial = path.with_file_name(format!(".{}.zoo-partial", std::process::id()));
        std::fs::write(&partial, commit).map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)
    }
}

/// The first bytes of a refs file (a commit hash is 40), as text.
fn read_start(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(REF_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Most bytes of a refs file read.
const REF_BYTES: u64 = 256;

/// Something a snapshot lacks before zoo can load it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// `config.json`.
    Config,
    /// Any of [`WEIGHT_FILES`].
    Weights,
    /// A shard that the index lists.
    Shard {
        /// The index file.
        index: PathBuf,
        /// The shard.
        shard: String,
    },
    /// Any tokenizer file.
    Tokenizer,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Config => write!(f, "has no {CONFIG}"),
            Need::Weights => write!(f, "has no weights ({})", WEIGHT_FILES.join(", ")),
            Need::Shard { shard, .. } => write!(f, "has no shard {shard}"),
            Need::Tokenizer => write!(f, "has no tokenizer ({})", TOKENIZER_FILES.join(", ")),
        }
    }
}

/// What `dir` (a snapshot) lacks: its config, its weights (every shard of an index), and, if
/// `tokenizer`, a tokenizer file. Empty when it is complete.
pub fn missing(dir: &Path, tokenizer: bool) -> Result<Vec<Need>, HubError> {
    let has = |name: &str| dir.join(name).is_file();
    let mut needs = Vec::new();
    if !has(CONFIG) {
        needs.push(Need::Config);
    }
    match WEIGHT_FILES.iter().find(|f| has(f)) {
        None => needs.push(Need::Weights),
        Some(index) if is_index(index) => {
            let index = dir.join(index);
            let shards = zoo_checkpoint::shards::listed_files(&index)?;
            let absent = shards.into_iter().filter(|s| !has(s));
            needs.extend(absent.map(|shard| Need::Shard { index: index.clone(), shard }));
        }
        Some(_) => {}
    }
    if tokenizer && !TOKENIZER_FILES.iter().any(|f| has(f)) {
        needs.push(Need::Tokenizer);
    }
    Ok(needs)
}

/// The files to download from a repository whose files are `listing`: its config, its first
/// weight layout (an index's shards come once the index is read) and the optional files it has.
#[cfg_attr(not(feature = "download"), allow(dead_code))]
pub fn plan(id: &HubId, listing: &[String]) -> Result<Vec<String>, HubError> {
    let listed = |name: &str| listing.iter().any(|l| l == name);
    let unsupported = |what: String| HubError::Unsupported { id: id.to_string(), what };
    if !listed(CONFIG) {
        return Err(unsupported(format!("{CONFIG} (not a transformers model)")));
    }
    let weights = WEIGHT_FILES.into_iter().find(|f| listed(f)).ok_or_else(|| {
        unsupported(format!(
            "weights zoo reads ({}); for a GGUF repository, download the .gguf file and pass its path",
            WEIGHT_FILES.join(", ")
        ))
    })?;
    let optional = OPTIONAL_FILES.into_iter().filter(|f| listed(f));
    Ok([CONFIG, weights].into_iter().chain(optional).map(String::from).collect())
}

/// The repository a path in the hub cache belongs to: `org/name` for
/// `…/models--{org}--{name}/snapshots/{commit}` and anything inside it.
pub fn repo_of(path: &Path) -> Option<String> {
    let parts: Vec<_> = path.components().map(|c| c.as_os_str().to_string_lossy()).collect();
    let at = parts.iter().rposition(|p| p == "snapshots")?;
    let folder = parts.get(at.checked_sub(1)?)?;
    parts.get(at + 1).filter(|commit| is_commit_hash(commit))?;
    let (org, name) = folder.strip_prefix("models--")?.split_once("--")?;
    Some(format!("{org}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_the_cache_name_their_repository() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let dir = PathBuf::from(format!("/c/hub/models--Qwen--Qwen2.5-0.5B/snapshots/{commit}"));
        assert_eq!(repo_of(&dir).as_deref(), Some("Qwen/Qwen2.5-0.5B"));
        assert_eq!(repo_of(&dir.join("model.safetensors")).as_deref(), Some("Qwen/Qwen2.5-0.5B"));
        assert_eq!(repo_of(Path::new("/c/models--a--b/snapshots/main")), None);
        assert_eq!(repo_of(Path::new("tests/fixtures/gpt2-tiny")), None);
    }

    #[test]
    fn the_plan_takes_the_first_weight_layout_and_the_optional_files_present() {
        let id = HubId::parse("org/name").unwrap();
        let listing: Vec<String> = ["README.md", "config.json", "pytorch_model.bin", "model.safetensors", "vocab.json"]
            .map(String::from)
            .to_vec();
        assert_eq!(plan(&id, &listing).unwrap(), ["config.json", "model.safetensors", "vocab.json"]);
        let no_config = plan(&id, &listing[3..]).unwrap_err().to_string();
        assert!(no_config.contains("org/name") && no_config.contains("config.json"), "{no_config}");
        let gguf = plan(&id, &["config.json".into(), "m.Q4_0.gguf".into()]).unwrap_err().to_string();
        assert!(gguf.contains("GGUF"), "{gguf}");
    }
}
