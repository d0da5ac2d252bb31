//! Mistral, as transformers' `MistralForCausalLM` computes it (`modeling_mistral.py`).
//!
//! The Llama-style decoder ([`crate::decoder`]) with: grouped-query attention, no biases
//! anywhere, an untied `lm_head` by default, `rope_theta` from the config (10 000 for v0.1,
//! 1e6 later), and a sliding window: with `sliding_window: W` a token attends to itself and the
//! `W − 1` tokens before it (only matters past W tokens; v0.1 uses 4096, later versions null).

use serde_json::Value;
use zoo_core::Result;

use crate::decoder::DecoderSpec;
use crate::hf_config::{rope, HfDecoderConfig};

const FAMILY: &str = "mistral";

/// The decoder spec of a Mistral `config.json`.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let cfg = HfDecoderConfig::parse(FAMILY, config)?;
    let mut spec = DecoderSpec::from_hf(FAMILY, &cfg, rope(FAMILY, config, 10_000.0)?, false);
    spec.windows = vec![crate::validate::window(FAMILY, "sliding_window", cfg.sliding_window)?; cfg.num_hidden_layers];
    Ok(spec)
}

crate::family::decoder_family! { FAMILY, "mistral" / "MistralForCausalLM", aliases: &[],
"Mistral (HF MistralForCausalLM): GQA, RoPE, SwiGLU, RMSNorm, sliding window" }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub_config;
    use serde_json::json;

    #[test]
    fn mistral_7b_config_semantics() {
        let s = spec(&hub_config("mistral-7b-v0.1")).unwrap();
        assert_eq!((s.n_heads, s.n_kv_heads, s.head_dim), (32, 8, 128));
        assert_eq!((s.rms_norm_eps, s.rope_theta), (1e-5, 10_000.0));
        assert!(!s.tie_word_embeddings && !s.qkv_bias && !s.o_bias && !s.mlp_bias);
        assert!(s.windows.iter().all(|w| *w == Some(4096)));
        assert_eq!((s.bos_token_id, s.eos_token_ids.clone()), (Some(1), vec![2]));
    }

    #[test]
    fn null_window_means_full_attention() {
        let mut cfg = hub_config("mistral-7b-v0.1");
        cfg["sliding_window"] = Value::Null;
        cfg.as_object_mut().unwrap().remove("rope_theta");
        cfg["rope_parameters"] = json!({"rope_theta": 1e6, "rope_type": "default"});
        let s = spec(&cfg).unwrap();
        assert!(s.windows.iter().all(Option::is_none));
        assert_eq!(s.rope_theta, 1e6);
    }

    #[test]
    fn recognised_from_config_alone() {
        assert!(recognizes(&hub_config("mistral-7b-v0.1")));
        assert!(!recognizes(&json!({"model_type": "qwen2"})));
    }
}
