//! Reading the `config.json` fields that Llama-style families share, across the two
//! generations transformers writes (4.x: top-level `rope_theta`, `torch_dtype`; 5.x:
//! `rope_parameters`, `dtype`) and the quirks of hub files.

use serde::Deserialize;
use serde_json::Value;
use zoo_core::Result;

use crate::nn::{config_error, parse_config};

/// Fields shared by `LlamaForCausalLM`, `MistralForCausalLM` and `Qwen2ForCausalLM` configs,
/// with HF's names. Family files add their own fields and defaults.
#[derive(Clone, Debug, Deserialize)]
pub struct HfDecoderConfig {
    /// Vocabulary rows (may exceed the tokenizer's size: padded).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (defaults to `num_attention_heads`).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Channels per head, when not `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f32,
    /// Longest supported sequence.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// MLP activation (only `silu` is supported).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Whether `lm_head` shares `embed_tokens`; `None` leaves the family default.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Beginning-of-sequence token.
    #[serde(default)]
    pub bos_token_id: Option<Value>,
    /// End-of-sequence token(s): an integer or a list.
    #[serde(default)]
    pub eos_token_id: Option<Value>,
    /// Sliding-window size (meaning depends on the family).
    #[serde(default)]
    pub sliding_window: Option<usize>,
}

fn default_rms_eps() -> f32 {
    1e-6
}
fn default_max_positions() -> usize {
    4096
}
fn default_act() -> String {
    "silu".into()
}

impl HfDecoderConfig {
    /// Parses the shared fields and checks what zoo does not support.
    pub fn parse(family: &str, config: &Value) -> Result<Self> {
        let cfg: Self = parse_config(family, config)?;
        if cfg.hidden_act != "silu" {
            return Err(config_error(family, format!("hidden_act `{}` is not supported (silu)", cfg.hidden_act)));
        }
        cfg.validate(family)?;
        Ok(cfg)
    }

    /// Range-checks every field that shapes the model (see [`crate::validate`]).
    fn validate(&self, family: &str) -> Result<()> {
        use crate::validate::{count, divides, positive_f32, MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH};
        count(family, "vocab_size", self.vocab_size, MAX_VOCAB)?;
        count(family, "hidden_size", self.hidden_size, MAX_WIDTH)?;
        count(family, "intermediate_size", self.intermediate_size, MAX_WIDTH)?;
        count(family, "num_hidden_layers", self.num_hidden_layers, MAX_LAYERS)?;
        count(family, "num_attention_heads", self.num_attention_heads, MAX_HEADS)?;
        count(family, "num_key_value_heads", self.kv_heads(), MAX_HEADS)?;
        count(family, "max_position_embeddings", self.max_position_embeddings, MAX_CONTEXT)?;
        divides(family, ("num_attention_heads", self.num_attention_heads), ("num_key_value_heads", self.kv_heads()))?;
        match self.head_dim {
            Some(head_dim) => {
                count(family, "head_dim", head_dim, MAX_WIDTH)?;
            }
            None => {
                divides(family, ("hidden_size", self.hidden_size), ("num_attention_heads", self.num_attention_heads))?
            }
        }
        if self.head_dim() % 2 != 0 {
            return Err(config_error(family, format!("head_dim: {} must be even for RoPE", self.head_dim())));
        }
        positive_f32(family, "rms_norm_eps", self.rms_norm_eps, 1.0)?;
        crate::validate::token_ids(family, "eos_token_id", self.eos_token_id.as_ref(), self.vocab_size)?;
        crate::validate::token_ids(family, "bos_token_id", self.bos_token_id.as_ref(), self.vocab_size)?;
        Ok(())
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Channels per head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// End-of-sequence ids from `eos_token_id`.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        token_ids(self.eos_token_id.as_ref())
    }

    /// The beginning-of-sequence id.
    pub fn bos_token_id(&self) -> Option<u32> {
        token_ids(self.bos_token_id.as_ref()).first().copied()
    }
}

/// `rope_theta` from `rope_parameters` (5.x) or the top level (4.x), else `default`. RoPE
/// scaling variants are rejected: zoo implements the default RoPE only.
pub fn rope_theta(family: &str, config: &Value, default: f32) -> Result<f32> {
    if let Some(params) = config.get("rope_parameters").filter(|p| !p.is_null()) {
        let kind = params.get("rope_type").and_then(Value::as_str).unwrap_or("default");
        if kind != "default" {
            return Err(config_error(family, format!("rope_type `{kind}` is not supported (default)")));
        }
        if let Some(theta) = params.get("rope_theta").filter(|t| !t.is_null()) {
            return checked_theta(family, "rope_parameters.rope_theta", theta);
        }
    }
    if let Some(scaling) = config.get("rope_scaling").filter(|s| !s.is_null()) {
        return Err(config_error(family, format!("rope_scaling {scaling} is not supported")));
    }
    match config.get("rope_theta").filter(|t| !t.is_null()) {
        Some(theta) => checked_theta(family, "rope_theta", theta),
        None => Ok(default),
    }
}

/// A RoPE base: a finite number above zero (a string or NaN is an error, not the default).
fn checked_theta(family: &str, key: &str, value: &Value) -> Result<f32> {
    let Some(theta) = value.as_f64() else {
        return Err(config_error(family, format!("{key}: {} is not a number", crate::validate::quoted(value))));
    };
    crate::validate::positive_f32(family, key, theta as f32, f32::MAX)
}

fn token_ids(value: Option<&Value>) -> Vec<u32> {
    let id = |v: &Value| v.as_u64().and_then(|v| u32::try_from(v).ok());
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(id).collect(),
        Some(v) => id(v).into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
               "num_attention_heads": 2, "num_key_value_heads": 1})
    }

    #[test]
    fn rope_theta_from_either_generation() {
        let mut v4 = base();
        v4["rope_theta"] = json!(1e6);
        let mut v5 = base();
        v5["rope_parameters"] = json!({"rope_theta": 5e5, "rope_type": "default"});
        assert_eq!(rope_theta("t", &v4, 1e4).unwrap(), 1e6);
        assert_eq!(rope_theta("t", &v5, 1e4).unwrap(), 5e5);
        assert_eq!(rope_theta("t", &base(), 1e4).unwrap(), 1e4);
    }

    #[test]
    fn rope_scaling_is_rejected() {
        let mut cfg = base();
        cfg["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
        assert!(rope_theta("t", &cfg, 1e4).unwrap_err().to_string().contains("rope_scaling"));
        let mut cfg = base();
        cfg["rope_parameters"] = json!({"rope_theta": 1e4, "rope_type": "yarn"});
        assert!(rope_theta("t", &cfg, 1e4).unwrap_err().to_string().contains("yarn"));
    }

    #[test]
    fn explicit_head_dim_and_eos_lists() {
        let mut cfg = base();
        cfg["head_dim"] = json!(6);
        cfg["eos_token_id"] = json!([1, 2]);
        let parsed = HfDecoderConfig::parse("t", &cfg).unwrap();
        assert_eq!(parsed.head_dim(), 6);
        assert_eq!(parsed.eos_token_ids(), [1, 2]);
        assert_eq!(parsed.kv_heads(), 1);
    }

    #[test]
    fn bad_shapes_and_activations_are_rejected() {
        let mut cfg = base();
        cfg["num_key_value_heads"] = json!(3);
        assert!(HfDecoderConfig::parse("t", &cfg).is_err());
        let mut cfg = base();
        cfg["hidden_act"] = json!("gelu");
        assert!(HfDecoderConfig::parse("t", &cfg).unwrap_err().to_string().contains("gelu"));
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;
    use serde_json::json;

    fn parse_err(key: &str, value: Value) -> String {
        let mut cfg = json!({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "num_key_value_heads": 1});
        cfg[key] = value;
        match HfDecoderConfig::parse("t", &cfg) {
            Ok(_) => rope_theta("t", &cfg, 1e4).map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn out_of_range_fields_are_named_with_their_values() {
        assert!(parse_err("num_key_value_heads", json!(0)).contains("num_key_value_heads: 0"));
        assert!(parse_err("num_hidden_layers", json!(1u64 << 40)).contains("num_hidden_layers: 1099511627776"));
        assert!(parse_err("rope_theta", json!(-1.0)).contains("rope_theta: -1"));
        assert!(parse_err("rope_theta", json!("nan")).contains("rope_theta: \"\\\"nan\\\"\" is not a number"));
        assert!(parse_err("rms_norm_eps", json!(0.0)).contains("rms_norm_eps: 0"));
        assert!(parse_err("head_dim", json!(0)).contains("head_dim: 0"));
        assert!(parse_err("eos_token_id", json!(1u64 << 33)).contains("eos_token_id: \"8589934592\""));
        assert!(parse_err("vocab_size", json!(0)).contains("vocab_size: 0"));
    }
}
