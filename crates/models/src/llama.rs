//! Llama (and Llama-architecture models such as SmolLM2), as transformers'
//! `LlamaForCausalLM` computes them (`modeling_llama.py`).
//!
//! The Llama-style decoder ([`crate::decoder`]) without a sliding window, with an optional bias
//! on all four attention projections (`attention_bias`) and on the MLP (`mlp_bias`), and a head
//! that is tied or not (`tie_word_embeddings`, default false).

use serde_json::Value;
use zoo_core::Result;

use crate::decoder::DecoderSpec;
use crate::hf_config::{rope, HfDecoderConfig};

const FAMILY: &str = "llama";

/// The decoder spec of a Llama `config.json`.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let cfg = HfDecoderConfig::parse(FAMILY, config)?;
    let mut spec = DecoderSpec::from_hf(FAMILY, &cfg, rope(FAMILY, config, 10_000.0)?, false);
    let flag = |key| config.get(key).and_then(Value::as_bool).unwrap_or(false);
    spec.qkv_bias = flag("attention_bias");
    spec.o_bias = flag("attention_bias");
    spec.mlp_bias = flag("mlp_bias");
    Ok(spec)
}

crate::family::decoder_family! { FAMILY, "llama" / "LlamaForCausalLM", aliases: &["smollm2"],
"Llama (HF LlamaForCausalLM): GQA, RoPE, SwiGLU, RMSNorm, optional biases" }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// SmolLM2-135M-Instruct's shape.
    fn smollm2() -> Value {
        json!({"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
               "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
               "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true,
               "max_position_embeddings": 8192})
    }

    #[test]
    fn smollm2_config_semantics() {
        let s = spec(&smollm2()).unwrap();
        assert_eq!((s.n_heads, s.n_kv_heads, s.head_dim), (9, 3, 64));
        assert!(s.tie_word_embeddings && !s.qkv_bias && !s.mlp_bias);
        assert!(s.windows.iter().all(Option::is_none));
    }

    #[test]
    fn biases_follow_the_flags() {
        let mut cfg = smollm2();
        cfg["attention_bias"] = json!(true);
        cfg["mlp_bias"] = json!(true);
        let s = spec(&cfg).unwrap();
        assert!(s.qkv_bias && s.o_bias && s.mlp_bias);
    }
}
