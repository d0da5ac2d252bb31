//! Qwen3 (dense), as transformers' `Qwen3ForCausalLM` computes it (`modeling_qwen3.py`).
//!
//! Qwen2 ([`crate::qwen2`]) with: an RMSNorm over each query and key head (`self_attn.q_norm`,
//! `self_attn.k_norm`, weights of size `head_dim`) applied after the projections and before
//! RoPE; no q/k/v biases (`attention_bias`, default false, puts one on all four projections);
//! `head_dim` from the config, 128 when absent (not `hidden_size / num_attention_heads`); an
//! untied head unless `tie_word_embeddings`. Sliding windows follow Qwen2's rules.

use serde_json::Value;
use zoo_core::Result;

use crate::decoder::DecoderSpec;
use crate::hf_config::{rope, HfDecoderConfig};

const FAMILY: &str = "qwen3";

/// `Qwen3Config.head_dim`'s default.
const DEFAULT_HEAD_DIM: u64 = 128;

/// The decoder spec of a Qwen3 `config.json`.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let mut config = config.clone();
    if let Some(fields) = config.as_object_mut() {
        if fields.get("head_dim").is_none_or(Value::is_null) {
            fields.insert("head_dim".into(), DEFAULT_HEAD_DIM.into());
        }
    }
    let cfg = HfDecoderConfig::parse(FAMILY, &config)?;
    let mut spec = DecoderSpec::from_hf(FAMILY, &cfg, rope(FAMILY, &config, 10_000.0)?, false);
    let bias = config.get("attention_bias").and_then(Value::as_bool).unwrap_or(false);
    spec.qkv_bias = bias;
    spec.o_bias = bias;
    spec.qk_norm = true;
    spec.windows = crate::qwen2::windows(FAMILY, &config, &cfg)?;
    Ok(spec)
}

crate::family::decoder_family! { FAMILY, "qwen3" / "Qwen3ForCausalLM", aliases: &[],
"Qwen3 (HF Qwen3ForCausalLM): GQA, per-head q/k RMSNorm, RoPE, SwiGLU, RMSNorm" }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub_config;
    use serde_json::json;

    #[test]
    fn qwen3_06b_config_semantics() {
        let s = spec(&hub_config("qwen3-0.6b")).unwrap();
        assert_eq!((s.n_heads, s.n_kv_heads, s.head_dim), (16, 8, 128), "16 × 128 ≠ hidden 1024");
        assert!(s.qk_norm && !s.qkv_bias && !s.o_bias && s.tie_word_embeddings);
        assert_eq!(s.rope_theta, 1e6);
        assert!(s.windows.iter().all(Option::is_none));
    }

    #[test]
    fn head_dim_defaults_to_128_and_bias_follows_attention_bias() {
        let mut cfg = hub_config("qwen3-0.6b");
        cfg.as_object_mut().unwrap().remove("head_dim");
        cfg["attention_bias"] = json!(true);
        let s = spec(&cfg).unwrap();
        assert_eq!(s.head_dim, 128);
        assert!(s.qkv_bias && s.o_bias);
    }

    #[test]
    fn unsupported_layer_types_are_refused() {
        let mut cfg = hub_config("qwen3-0.6b");
        cfg["num_hidden_layers"] = json!(2);
        cfg["layer_types"] = json!(["full_attention", "linear_attention"]);
        assert!(spec(&cfg).unwrap_err().to_string().contains("linear_attention"));
    }
}
