//! # zoo
//!
//! zoo as a library: [`load`] turns a checkpoint path into a [`Pipeline`] (the model on a
//! backend, its tokenizer, chat template and generation defaults), choosing the model family
//! from the config and the backend from the registry. A Hugging Face id (`org/name`) in place of
//! the path is found in the hub cache, or downloaded into it ([`hub`], [`resolve_weights`]). Generation itself is `zoo_core`'s
//! ([`zoo_core::Session`], [`zoo_core::generate_batch`]). No command line: the `zoo` binary
//! (crate `zoo-cli`) is one user of this crate, the tests another.
//!
//! Errors are one [`Error`] type; progress while loading is reported through a callback
//! ([`load_reporting`]), so a caller draws whatever it likes.

mod default_model;
mod error;
mod generation_config;
pub mod hub;
mod pipeline;
mod sources;

pub use default_model::{default_weights, require_default_weights, DEFAULT_MODEL_FILE};
pub use error::{Error, Result};
pub use generation_config::{eos_token_ids, sampling_defaults};
pub use hub::{resolve_weights, DownloadProgress, Hub, HubError, HubId};
pub use pipeline::{create_backend, load, load_on, load_reporting, LoadOptions, LoadStats, Pipeline};
pub use zoo_core::registry::cache_dir;

/// References every plugin crate (model families, backends) so that the linker keeps their
/// registrations; [`load`] and [`create_backend`] call it.
pub fn link_plugins() {
    zoo_models::link();
    zoo_backend_ndarray::link();
    zoo_backend_burn::link();
    zoo_backend_candle::link();
}
