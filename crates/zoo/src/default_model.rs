//! The default model: SmolLM2-135M-Instruct as a Q4_1 GGUF in zoo's cache, fetched once by
//! `scripts/fetch-default-model.sh` (nothing is downloaded at run time).

use std::path::{Path, PathBuf};

use zoo_core::registry::cache_dir;

use crate::{Error, Result};

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) in the cache's `models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model to use when none is named: `$ZOO_DEFAULT_MODEL`, else SmolLM2-135M-Instruct in
/// the cache (see [`cache_dir`]).
pub fn default_weights() -> PathBuf {
    if let Some(p) = std::env::var_os("ZOO_DEFAULT_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    cache_dir().join("models").join(DEFAULT_MODEL_FILE)
}

/// [`default_weights`], or [`Error::DefaultModelMissing`] saying how to fetch it.
pub fn require_default_weights() -> Result<PathBuf> {
    let path = default_weights();
    if !path.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-default-model.sh");
        let script = script.canonicalize().unwrap_or(script);
        return Err(Error::DefaultModelMissing { path, script });
    }
    Ok(path)
}
