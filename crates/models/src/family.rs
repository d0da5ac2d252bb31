//! What every family file writes the same way, written once: its registration in the model
//! registry ([`register_family!`], and [`decoder_family!`] for the families of the shared
//! decoder), the [`zoo_core::Model`] accessors ([`model_accessors!`]),
//! and the last step of a forward pass ([`step_logits`]).

use zoo_core::{Backend, Result, Step};

use crate::nn::Linear;

/// Registers a model family: `name` and `aliases` for the registry, the file's
/// `fn recognizes(&serde_json::Value) -> bool` to pick it from a `config.json`, `load`, a
/// function `(backend, &config, &dyn WeightSource) -> Result<M>` whose model `M` implements
/// `Model<DynBackend>`, and `unused`, the checkpoint tensors it ignores on purpose (see
/// [`zoo_core::ModelFamily`]). Written on two lines at each use: what a family is, not how it
/// plugs in.
macro_rules! register_family {
    { $name:expr, aliases: $aliases:expr, load: $load:path, unused: $unused:expr, $description:literal } => {
        zoo_core::inventory::submit! {
            zoo_core::ModelFamily {
                name: $name,
                aliases: $aliases,
                description: $description,
                recognizes,
                load: |req| Ok(Box::new($load(req.backend.clone(), req.config, req.weights)?)),
                unused: $unused,
            }
        }
    };
}
pub(crate) use register_family;

/// A family that is the shared [`crate::decoder::Decoder`] with its own `fn spec(&Value) ->
/// Result<DecoderSpec>`: defines the family's `load` and `recognizes` (by `model_type` or
/// architecture) and registers it ([`register_family!`]).
macro_rules! decoder_family {
    { $name:expr, $model_type:literal / $architecture:literal, aliases: $aliases:expr, $description:literal } => {
        /// Loads a model of this family: [`spec`] of its `config.json`, then the shared decoder.
        pub fn load<B: zoo_core::Backend>(
            backend: B,
            config: &serde_json::Value,
            weights: &dyn zoo_core::WeightSource,
        ) -> zoo_core::Result<crate::decoder::Decoder<B>> {
            crate::decoder::Decoder::load(backend, &spec(config)?, weights)
        }

        fn recognizes(config: &serde_json::Value) -> bool {
            crate::nn::config_is(config, $model_type, $architecture)
        }

        crate::family::register_family! {
            $name, aliases: $aliases, load: load, unused: crate::decoder::KNOWN_UNUSED, $description
        }
    };
}
pub(crate) use decoder_family;

/// `Model::info` and `Model::backend` for a model struct with `info: ModelInfo` and
/// `backend: B` fields.
macro_rules! model_accessors {
    () => {
        fn info(&self) -> &zoo_core::ModelInfo {
            &self.info
        }

        fn backend(&self) -> &B {
            &self.backend
        }
    };
}
pub(crate) use model_accessors;

/// The logits `[rows, vocab]` of a step: the final hidden states `x` of the rows the step wants
/// logits for (all rows when it names none), through the output head.
pub fn step_logits<B: Backend>(b: &B, x: B::Tensor, step: &Step<'_>, head: &Linear<B>) -> Result<B::Tensor> {
    let x = match &step.logit_rows {
        Some(rows) => b.gather_rows(&x, rows)?,
        None => x,
    };
    head.forward(b, &x)
}
