//! # zoo-models
//!
//! One file per model family, each generic over [`zoo_core::Backend`] and registered with
//! `inventory::submit!` beside its code. Nothing outside a family's file names it.
//!
//! | family | file | reference |
//! |---|---|---|
//! | `gpt2` | [`gpt2`] | transformers `GPT2LMHeadModel` |
//! | `llama` | [`llama`] | transformers `LlamaForCausalLM` |
//! | `mistral` | [`mistral`] | transformers `MistralForCausalLM` |
//! | `nanochat` | [`nanochat`] | nanochat `gpt.py` (3a5e0bc), via `xtask/python/nanochat_reference.py` |
//! | `qwen2` | [`qwen2`] | transformers `Qwen2ForCausalLM` |
//! | `qwen3` | [`qwen3`] | transformers `Qwen3ForCausalLM` |
//!
//! Llama, Mistral, Qwen2 and Qwen3 share one implementation, [`decoder`]; their files only turn a
//! `config.json` into a [`decoder::DecoderSpec`].

pub mod decoder;
pub mod family;
pub mod gpt2;
pub mod hf_config;
pub mod llama;
pub mod mistral;
pub mod nanochat;
pub mod nn;
pub mod qwen2;
pub mod qwen3;
pub mod validate;

/// Call from a binary to make sure this crate (and so its registrations) is linked.
pub fn link() {}

/// A checkpoint's `config.json` from `testdata/`, for the families' tests: Mistral-7B-v0.1's and
/// Qwen3-0.6B's as on the hub, and the shape of Qwen2.5-14B's (all in transformers' 4.x form).
#[cfg(test)]
pub(crate) fn hub_config(name: &str) -> serde_json::Value {
    let path = format!("{}/testdata/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
