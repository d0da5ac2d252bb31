//! Qwen2 and Qwen2.5, as transformers' `Qwen2ForCausalLM` computes them (`modeling_qwen2.py`).
//!
//! The Llama-style decoder ([`crate::decoder`]) with: biases on the q, k and v projections only,
//! grouped-query attention, `rope_theta` from the config (1e6 for Qwen2.5), no q/k norm (that is
//! Qwen3), `tie_word_embeddings` true for small models and false for 7B+.
//!
//! NOTE: hub configs carry `sliding_window` with `use_sliding_window: false`; the window is off
//! unless `use_sliding_window` is true, and then applies to layers `i ≥ max_window_layers`.

use serde_json::Value;
use zoo_core::Result;

use crate::decoder::DecoderSpec;
use crate::hf_config::{rope_theta, HfDecoderConfig};

const FAMILY: &str = "qwen2";

/// The decoder spec of a Qwen2 `config.json`.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let cfg = HfDecoderConfig::parse(FAMILY, config)?;
    let mut spec = DecoderSpec::from_hf(FAMILY, &cfg, rope_theta(FAMILY, config, 10_000.0)?, false);
    spec.qkv_bias = true;
    let use_window = config.get("use_sliding_window").and_then(Value::as_bool).unwrap_or(false);
    if use_window {
        let first = config.get("max_window_layers").and_then(Value::as_u64).unwrap_or(0) as usize;
        let window = crate::validate::window(FAMILY, "sliding_window", cfg.sliding_window)?;
        spec.windows = (0..cfg.num_hidden_layers).map(|i| if i >= first { window } else { None }).collect();
    }
    Ok(spec)
}

crate::family::decoder_family! { FAMILY, "qwen2" / "Qwen2ForCausalLM", aliases: &["qwen2.5", "qwen"],
"Qwen2 / Qwen2.5 (HF Qwen2ForCausalLM): GQA, q/k/v biases, RoPE, SwiGLU, RMSNorm" }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Qwen2.5-14B's config.json shape (4.x form, as on the hub).
    fn qwen25_14b() -> Value {
        json!({"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151645,
               "hidden_act": "silu", "hidden_size": 5120, "intermediate_size": 13824,
               "max_position_embeddings": 32768, "max_window_layers": 70, "model_type": "qwen2",
               "num_attention_heads": 40, "num_hidden_layers": 48, "num_key_value_heads": 8,
               "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
               "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_sliding_window": false,
               "vocab_size": 152064})
    }

    #[test]
    fn qwen25_14b_config_semantics() {
        let s = spec(&qwen25_14b()).unwrap();
        assert_eq!((s.n_heads, s.n_kv_heads, s.head_dim), (40, 8, 128));
        assert_eq!(s.rope_theta, 1e6);
        assert!(s.qkv_bias && !s.o_bias && !s.mlp_bias && !s.tie_word_embeddings);
        assert!(s.windows.iter().all(Option::is_none), "use_sliding_window is false");
    }

    #[test]
    fn window_applies_from_max_window_layers_when_enabled() {
        let mut cfg = qwen25_14b();
        cfg["use_sliding_window"] = json!(true);
        cfg["max_window_layers"] = json!(40);
        let s = spec(&cfg).unwrap();
        assert_eq!(s.windows[39], None);
        assert_eq!(s.windows[40], Some(131072));
    }

    #[test]
    fn tied_small_models() {
        let mut cfg = qwen25_14b();
        cfg["tie_word_embeddings"] = json!(true);
        assert!(spec(&cfg).unwrap().tie_word_embeddings);
    }
}
