//! A GGUF file's model metadata (`general.architecture` and `<arch>.*` keys) as the HF
//! `config.json` that zoo's model families read, so a GGUF loads through the same family code
//! as an HF directory.
//!
//! Supported architectures: `llama` (→ `LlamaForCausalLM`; Mistral-architecture files use it
//! too), `qwen2` (→ `Qwen2ForCausalLM`) and `qwen3` (→ `Qwen3ForCausalLM`).
//! `tie_word_embeddings` is true exactly when the file has no `output.weight` (llama.cpp then
//! reuses `token_embd`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value as Json};

use super::value::Value;
use crate::error::{CheckpointError, Result};

/// HF `model_type` and `architectures` of each GGUF architecture zoo reads.
const ARCHITECTURES: &[(&str, &str, &str)] = &[
    ("llama", "llama", "LlamaForCausalLM"),
    ("qwen2", "qwen2", "Qwen2ForCausalLM"),
    ("qwen3", "qwen3", "Qwen3ForCausalLM"),
];

/// The `config.json` equivalent of `metadata`; `has_output` says whether `output.weight` exists,
/// `n_vocab` is the vocabulary size read from `token_embd.weight` when the metadata omits it.
pub fn hf_config(
    path: &Path,
    metadata: &BTreeMap<String, Value>,
    has_output: bool,
    n_vocab: Option<usize>,
) -> Result<Json> {
    let arch = metadata
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| CheckpointError::invalid(path, "no `general.architecture` metadata"))?;
    let &(_, model_type, class) = ARCHITECTURES.iter().find(|(a, ..)| *a == arch).ok_or_else(|| {
        let known: Vec<&str> = ARCHITECTURES.iter().map(|a| a.0).collect();
        CheckpointError::invalid(path, format!("GGUF architecture `{arch}` is not supported ({})", known.join(", ")))
    })?;
    let key = |k: &str| format!("{arch}.{k}");
    let uint = |k: &str| -> Result<Option<u64>> {
        match metadata.get(&key(k)) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                CheckpointError::invalid(path, format!("`{}` is a {}, not an unsigned integer", key(k), v.type_name()))
            }),
        }
    };
    let required =
        |k: &str| uint(k)?.ok_or_else(|| CheckpointError::invalid(path, format!("no `{}` metadata", key(k))));
    let float = |k: &str| metadata.get(&key(k)).and_then(Value::as_f64);

    let heads = required("attention.head_count")?;
    let mut config = Map::new();
    config.insert("model_type".into(), json!(model_type));
    config.insert("architectures".into(), json!([class]));
    config.insert("hidden_size".into(), json!(required("embedding_length")?));
    config.insert("intermediate_size".into(), json!(required("feed_forward_length")?));
    config.insert("num_hidden_layers".into(), json!(required("block_count")?));
    config.insert("num_attention_heads".into(), json!(heads));
    config.insert("num_key_value_heads".into(), json!(uint("attention.head_count_kv")?.unwrap_or(heads)));
    if let Some(head_dim) = uint("attention.key_length")?.or(uint("rope.dimension_count")?) {
        config.insert("head_dim".into(), json!(head_dim));
    }
    if let Some(eps) = float("attention.layer_norm_rms_epsilon") {
        config.insert("rms_norm_eps".into(), json!(eps));
    }
    if let Some(theta) = float("rope.freq_base") {
        config.insert("rope_theta".into(), json!(theta));
    }
    if let Some(scaling) = rope_scaling(path, metadata, &key)? {
        config.insert("rope_scaling".into(), scaling);
    }
    if let Some(n) = uint("context_length")? {
        config.insert("max_position_embeddings".into(), json!(n));
    }
    let vocab = uint("vocab_size")?.or(n_vocab.map(|n| n as u64)).or_else(|| {
        let tokens = metadata.get("tokenizer.ggml.tokens")?.as_array()?;
        Some(tokens.len() as u64)
    });
    let vocab = vocab.ok_or_else(|| CheckpointError::invalid(path, "the vocabulary size is not stated anywhere"))?;
    config.insert("vocab_size".into(), json!(vocab));
    config.insert("tie_word_embeddings".into(), json!(!has_output));
    for (gguf, hf) in [("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id")] {
        if let Some(id) = metadata.get(&format!("tokenizer.ggml.{gguf}")).and_then(Value::as_u64) {
            config.insert(hf.into(), json!(id));
        }
    }
    Ok(Json::Object(config))
}

/// `rope.scaling.*` (and the older `rope.scale_linear`) as a transformers `rope_scaling` dict:
/// `type`, `factor`, `original_max_position_embeddings` and YaRN's betas. The type is passed on
/// as it is, so the family rejects what it does not implement; llama.cpp's own YaRN knobs that
/// transformers has no equivalent for are errors unless they are neutral.
fn rope_scaling(path: &Path, metadata: &BTreeMap<String, Value>, key: &dyn Fn(&str) -> String) -> Result<Option<Json>> {
    let float = |k: &str| metadata.get(&key(k)).and_then(Value::as_f64);
    let legacy = float("rope.scale_linear").filter(|f| *f != 1.0);
    let kind = match metadata.get(&key("rope.scaling.type")).and_then(Value::as_str) {
        Some("none") | None if legacy.is_none() => return Ok(None),
        Some("none") | None => "linear",
        Some(kind) => kind,
    };
    for (k, neutral) in [("rope.scaling.attn_factor", 1.0), ("rope.scaling.yarn_log_multiplier", 0.0)] {
        if let Some(v) = float(k).filter(|v| *v != neutral) {
            return Err(CheckpointError::invalid(path, format!("`{}` = {v} is not supported", key(k))));
        }
    }
    let mut scaling = Map::new();
    scaling.insert("type".into(), json!(kind));
    if let Some(factor) = float("rope.scaling.factor").or(legacy) {
        scaling.insert("factor".into(), json!(factor));
    }
    if let Some(n) = metadata.get(&key("rope.scaling.original_context_length")).and_then(Value::as_u64) {
        scaling.insert("original_max_position_embeddings".into(), json!(n));
    }
    for (gguf, hf) in [("rope.scaling.yarn_beta_fast", "beta_fast"), ("rope.scaling.yarn_beta_slow", "beta_slow")] {
        if let Some(v) = float(gguf) {
            scaling.insert(hf.into(), json!(v));
        }
    }
    Ok(Some(Json::Object(scaling)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> BTreeMap<String, Value> {
        let u = Value::U32;
        BTreeMap::from([
            ("general.architecture".into(), Value::String("llama".into())),
            ("llama.block_count".into(), u(30)),
            ("llama.context_length".into(), u(8192)),
            ("llama.embedding_length".into(), u(576)),
            ("llama.feed_forward_length".into(), u(1536)),
            ("llama.attention.head_count".into(), u(9)),
            ("llama.attention.head_count_kv".into(), u(3)),
            ("llama.rope.freq_base".into(), Value::F32(100_000.0)),
            ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-5)),
            ("llama.vocab_size".into(), u(49152)),
            ("llama.rope.dimension_count".into(), u(64)),
            ("tokenizer.ggml.bos_token_id".into(), u(1)),
            ("tokenizer.ggml.eos_token_id".into(), u(2)),
        ])
    }

    #[test]
    fn llama_metadata_becomes_an_hf_config() {
        let config = hf_config(Path::new("m.gguf"), &smollm2(), false, None).unwrap();
        assert_eq!(
            config,
            json!({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 576,
                   "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                   "num_key_value_heads": 3, "head_dim": 64, "rms_norm_eps": 1e-5f32 as f64,
                   "rope_theta": 100000.0, "max_position_embeddings": 8192, "vocab_size": 49152,
                   "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2})
        );
    }

    #[test]
    fn missing_and_unsupported_metadata_are_named() {
        let mut m = smollm2();
        m.remove("llama.block_count");
        let err = hf_config(Path::new("m.gguf"), &m, true, None).unwrap_err().to_string();
        assert!(err.contains("m.gguf") && err.contains("llama.block_count"), "{err}");
        m.insert("general.architecture".into(), Value::String("mamba".into()));
        let err = hf_config(Path::new("m.gguf"), &m, true, None).unwrap_err().to_string();
        assert!(err.contains("`mamba` is not supported"), "{err}");
    }

    #[test]
    fn rope_scaling_metadata_becomes_rope_scaling() {
        let mut m = smollm2();
        m.insert("llama.rope.scaling.type".into(), Value::String("yarn".into()));
        m.insert("llama.rope.scaling.factor".into(), Value::F32(4.0));
        m.insert("llama.rope.scaling.original_context_length".into(), Value::U32(2048));
        let config = hf_config(Path::new("m.gguf"), &m, true, None).unwrap();
        assert_eq!(
            config["rope_scaling"],
            json!({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048})
        );
        m.insert("llama.rope.scaling.type".into(), Value::String("none".into()));
        assert!(hf_config(Path::new("m.gguf"), &m, true, None).unwrap().get("rope_scaling").is_none());
        m.insert("llama.rope.scale_linear".into(), Value::F32(2.0));
        let config = hf_config(Path::new("m.gguf"), &m, true, None).unwrap();
        assert_eq!(
            config["rope_scaling"],
            json!({"type": "linear", "factor": 4.0, "original_max_position_embeddings": 2048})
        );
        m.insert("llama.rope.scaling.attn_factor".into(), Value::F32(0.5));
        let err = hf_config(Path::new("m.gguf"), &m, true, None).unwrap_err().to_string();
        assert!(err.contains("llama.rope.scaling.attn_factor"), "{err}");
    }
}
