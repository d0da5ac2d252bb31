//! Qwen2 and Qwen2.5, as transformers' `Qwen2ForCausalLM` computes them (`modeling_qwen2.py`).
//!
//! The Llama-style decoder ([`crate::decoder`]) with: biases on the q, k and v projections only,
//! grouped-query attention, `rope_theta` from the config (1e6 for Qwen2.5), no q/k norm (that is
//! Qwen3), `tie_word_embeddings` true for small models and false for 7B+.
//!
//! NOTE: hub configs carry `sliding_window` with `use_sliding_window: false`; the window is off
//! unless `use_sliding_window` is true. Which layers slide is `layer_types` (transformers 5
//! writes it), else layers `i ≥ max_window_layers` (default 28, as transformers).

use serde_json::Value;
use zoo_core::Result;

use crate::decoder::DecoderSpec;
use crate::hf_config::{rope, HfDecoderConfig};
use crate::nn::config_error;

const FAMILY: &str = "qwen2";

/// The decoder spec of a Qwen2 `config.json`.
pub fn spec(config: &Value) -> Result<DecoderSpec> {
    let cfg = HfDecoderConfig::parse(FAMILY, config)?;
    let mut spec = DecoderSpec::from_hf(FAMILY, &cfg, rope(FAMILY, config, 10_000.0)?, false);
    spec.qkv_bias = true;
    spec.windows = windows(FAMILY, config, &cfg)?;
    Ok(spec)
}

/// Each layer's sliding window under Qwen2's rules (shared with Qwen3): `sliding_window` when
/// `use_sliding_window` is true, on the layers `layer_types` names `sliding_attention` (by
/// default those from `max_window_layers` on); other layer types are errors.
pub fn windows(family: &str, config: &Value, cfg: &HfDecoderConfig) -> Result<Vec<Option<usize>>> {
    let n = cfg.num_hidden_layers;
    let use_window = match config.get("use_sliding_window") {
        None | Some(Value::Null) => false,
        Some(v) => v.as_bool().ok_or_else(|| config_error(family, format!("use_sliding_window: {v} is not a bool")))?,
    };
    let window = if use_window { crate::validate::window(family, "sliding_window", cfg.sliding_window)? } else { None };
    let types: Vec<String> = match config.get("layer_types").filter(|t| !t.is_null()) {
        Some(types) => {
            let types = types.as_array().ok_or_else(|| config_error(family, "layer_types is not a list"))?;
            if types.len() != n {
                let message = format!("layer_types: {} entries for num_hidden_layers: {n}", types.len());
                return Err(config_error(family, message));
            }
            let names = types.iter().map(|t| t.as_str().map(str::to_string));
            names.collect::<Option<_>>().ok_or_else(|| config_error(family, "layer_types must be strings"))?
        }
        None => {
            let first = match config.get("max_window_layers").filter(|v| !v.is_null()) {
                None => 28,
                Some(v) => v.as_u64().ok_or_else(|| {
                    config_error(family, format!("max_window_layers: {v} is not a non-negative integer"))
                })? as usize,
            };
            let sliding = |i| window.is_some() && i >= first;
            (0..n).map(|i| if sliding(i) { "sliding_attention" } else { "full_attention" }.to_string()).collect()
        }
    };
    types
        .iter()
        .map(|t| match t.as_str() {
            "full_attention" => Ok(None),
            "sliding_attention" => Ok(window),
            other => Err(config_error(
                family,
                format!("layer_types: `{other}` is not supported (full_attention, sliding_attention)"),
            )),
        })
        .collect()
}

crate::family::decoder_family! { FAMILY, "qwen2" / "Qwen2ForCausalLM", aliases: &["qwen2.5", "qwen"],
"Qwen2 / Qwen2.5 (HF Qwen2ForCausalLM): GQA, q/k/v biases, RoPE, SwiGLU, RMSNorm" }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub_config;
    use serde_json::json;

    #[test]
    fn qwen25_14b_config_semantics() {
        let s = spec(&hub_config("qwen2.5-14b")).unwrap();
        assert_eq!((s.n_heads, s.n_kv_heads, s.head_dim), (40, 8, 128));
        assert_eq!(s.rope_theta, 1e6);
        assert!(s.qkv_bias && !s.o_bias && !s.mlp_bias && !s.tie_word_embeddings);
        assert!(s.windows.iter().all(Option::is_none), "use_sliding_window is false");
    }

    #[test]
    fn window_applies_from_max_window_layers_when_enabled() {
        let mut cfg = hub_config("qwen2.5-14b");
        cfg["use_sliding_window"] = json!(true);
        cfg["max_window_layers"] = json!(40);
        let s = spec(&cfg).unwrap();
        assert_eq!(s.windows[39], None);
        assert_eq!(s.windows[40], Some(131072));
    }

    #[test]
    fn max_window_layers_defaults_to_28() {
        let mut cfg = hub_config("qwen2.5-14b");
        cfg["use_sliding_window"] = json!(true);
        cfg.as_object_mut().unwrap().remove("max_window_layers");
        let s = spec(&cfg).unwrap();
        assert_eq!((s.windows[27], s.windows[28]), (None, Some(131072)));
    }

    #[test]
    fn layer_types_choose_the_sliding_layers() {
        let mut cfg = hub_config("qwen2.5-14b");
        cfg["num_hidden_layers"] = json!(3);
        cfg["use_sliding_window"] = json!(true);
        cfg["layer_types"] = json!(["sliding_attention", "full_attention", "sliding_attention"]);
        assert_eq!(spec(&cfg).unwrap().windows, [Some(131072), None, Some(131072)]);
        cfg["use_sliding_window"] = json!(false);
        assert_eq!(spec(&cfg).unwrap().windows, [None, None, None], "no window unless use_sliding_window");
        cfg["layer_types"] = json!(["full_attention", "chunked_attention", "full_attention"]);
        assert!(spec(&cfg).unwrap_err().to_string().contains("`chunked_attention` is not supported"));
        cfg["layer_types"] = json!(["full_attention"]);
        assert!(spec(&cfg).unwrap_err().to_string().contains("layer_types: 1 entries for num_hidden_layers: 3"));
    }

    #[test]
    fn tied_small_models() {
        let mut cfg = hub_config("qwen2.5-14b");
        cfg["tie_word_embeddings"] = json!(true);
        assert!(spec(&cfg).unwrap().tie_word_embeddings);
    }
}
