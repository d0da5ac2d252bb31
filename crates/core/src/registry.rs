//! The plugin registries: model families and backends register themselves with
//! `inventory::submit!` next to their code; nothing else lists them.
//!
//! Lookups go through an index built once (sorted by name, aliases included). Two entries
//! claiming one name are a build mistake that every lookup reports.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::dyn_backend::DynBackend;
use crate::model::Model;
use crate::weights::WeightSource;
use crate::{Error, Result};

/// What a family's loader gets: the backend to load onto, the parsed `config.json` (or an
/// equivalent the checkpoint reader produced) and the weights.
pub struct LoadRequest<'a> {
    /// The backend that will hold the weights.
    pub backend: DynBackend,
    /// The model configuration, with the family's own field names.
    pub config: &'a serde_json::Value,
    /// The weights, by checkpoint name.
    pub weights: &'a dyn WeightSource,
}

/// A loaded model on a run-time backend.
pub type DynModel = Box<dyn Model<DynBackend>>;

/// A model family: one registration per file in `crates/models`.
pub struct ModelFamily {
    /// Registry name, used by `--model`.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// One line for `zoo list`.
    pub description: &'static str,
    /// Whether a `config.json` describes a model of this family.
    pub recognizes: fn(&serde_json::Value) -> bool,
    /// Builds the model.
    pub load: fn(&LoadRequest<'_>) -> Result<DynModel>,
    /// Checkpoint tensors the family ignores on purpose (non-parameter buffers, the copy of a
    /// tied head), as patterns where `*` stands for any characters
    /// ([`crate::load_report::name_matches`]). Any other tensor the model does not take makes
    /// the load fail.
    pub unused: &'static [&'static str],
}

inventory::collect!(ModelFamily);

/// Whether a compiled-in backend can run on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Ready to use.
    Usable,
    /// Compiled in but not usable here, and why (no GPU, no driver, ...).
    Unusable(String),
}

/// Options for creating a backend.
#[derive(Clone, Debug, Default)]
pub struct BackendOptions {
    /// Device ordinal (GPU backends).
    pub device: usize,
    /// Worker threads (CPU backends); `None` uses every core.
    pub threads: Option<usize>,
}

/// A compiled-in backend: one registration per backend crate.
pub struct BackendEntry {
    /// Registry name, used by `--backend`.
    pub name: &'static str,
    /// One line for `zoo list`.
    pub description: &'static str,
    /// Whether the backend can run here.
    pub availability: fn() -> Availability,
    /// Creates the backend.
    pub create: fn(&BackendOptions) -> Result<DynBackend>,
    /// Preference when no backend is named: the usable backend with the highest priority wins.
    pub priority: i32,
}

impl BackendEntry {
    /// An entry for a backend that runs wherever it compiles (a CPU backend).
    pub const fn usable(
        name: &'static str,
        description: &'static str,
        create: fn(&BackendOptions) -> Result<DynBackend>,
        priority: i32,
    ) -> Self {
        Self { name, description, availability: always_usable, create, priority }
    }
}

fn always_usable() -> Availability {
    Availability::Usable
}

inventory::collect!(BackendEntry);

struct Index<T: 'static> {
    sorted: Vec<&'static T>,
    by_name: BTreeMap<&'static str, &'static T>,
    duplicates: Vec<&'static str>,
}

impl<T> Index<T> {
    fn build(items: impl Iterator<Item = &'static T>, names: impl Fn(&'static T) -> Vec<&'static str>) -> Self {
        let mut sorted: Vec<&'static T> = items.collect();
        sorted.sort_by_key(|item| names(item)[0]);
        let mut by_name = BTreeMap::new();
        let mut duplicates = Vec::new();
        for &item in &sorted {
            for name in names(item) {
                if by_name.insert(name, item).is_some() {
                    duplicates.push(name);
                }
            }
        }
        Self { sorted, by_name, duplicates }
    }

    fn check(&self, kind: &'static str) -> Result<()> {
        if self.duplicates.is_empty() {
            return Ok(());
        }
        Err(Error::Backend {
            backend: kind.to_string(),
            message: format!("registered twice: {}", self.duplicates.join(", ")),
        })
    }

    /// Every entry, sorted by name, unless some name is registered twice.
    fn all(&'static self, kind: &'static str) -> Result<&'static [&'static T]> {
        self.check(kind)?;
        Ok(&self.sorted)
    }

    fn find(&self, kind: &'static str, name: &str, primary: impl Fn(&T) -> &'static str) -> Result<&'static T> {
        self.check(kind)?;
        self.by_name.get(name).copied().ok_or_else(|| Error::Unknown {
            kind,
            name: name.to_string(),
            known: self.sorted.iter().map(|t| primary(t)).collect::<Vec<_>>().join(", "),
        })
    }
}

fn family_index() -> &'static Index<ModelFamily> {
    static INDEX: OnceLock<Index<ModelFamily>> = OnceLock::new();
    INDEX.get_or_init(|| {
        Index::build(inventory::iter::<ModelFamily>.into_iter(), |f| {
            std::iter::once(f.name).chain(f.aliases.iter().copied()).collect()
        })
    })
}

fn backend_index() -> &'static Index<BackendEntry> {
    static INDEX: OnceLock<Index<BackendEntry>> = OnceLock::new();
    INDEX.get_or_init(|| Index::build(inventory::iter::<BackendEntry>.into_iter(), |b| vec![b.name]))
}

/// Every registered model family, sorted by name.
pub fn model_families() -> Result<&'static [&'static ModelFamily]> {
    family_index().all("model family")
}

/// The family called `name` (or with that alias).
pub fn find_model_family(name: &str) -> Result<&'static ModelFamily> {
    family_index().find("model family", name, |f| f.name)
}

/// The family whose `recognizes` accepts `config`, if exactly one does.
pub fn detect_model_family(config: &serde_json::Value) -> Result<Option<&'static ModelFamily>> {
    let matches: Vec<_> = model_families()?.iter().copied().filter(|f| (f.recognizes)(config)).collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(Error::Config {
            family: "model".into(),
            message: format!(
                "config matches several families ({}); pass --model",
                many.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// Every compiled-in backend, sorted by name.
pub fn backends() -> Result<&'static [&'static BackendEntry]> {
    backend_index().all("backend")
}

/// The backend called `name`.
pub fn find_backend(name: &str) -> Result<&'static BackendEntry> {
    backend_index().find("backend", name, |b| b.name)
}

/// The usable backend with the highest priority (ties broken by name).
pub fn default_backend() -> Result<&'static BackendEntry> {
    backends()?
        .iter()
        .copied()
        .filter(|b| (b.availability)() == Availability::Usable)
        .max_by_key(|b| (b.priority, std::cmp::Reverse(b.name)))
        .ok_or_else(|| Error::Backend { backend: "default".into(), message: "no usable backend compiled in".into() })
}

/// zoo's cache directory: `$ZOO_CACHE`, else `~/.cache/zoo`. It holds the default model
/// (`models/`, put there by `scripts/fetch-default-model.sh`) and GPU backends' compiled
/// kernels (`kernels/`), so only the first run on a machine compiles them.
pub fn cache_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("ZOO_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/zoo")
}
