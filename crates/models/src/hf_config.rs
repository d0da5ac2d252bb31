//! Reading the `config.json` fields that Llama-style families share, across the two
//! generations transformers writes (4.x: top-level `rope_theta`, `torch_dtype`; 5.x:
//! `rope_parameters`, `dtype`) and the quirks of hub files.

use serde::Deserialize;
use serde_json::Value;
use zoo_core::{Result, RopeType, Yarn};

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

/// The RoPE of a config: `rope_theta` (else `default_theta`) and the RoPE type with its
/// parameters, from `rope_parameters` (5.x) or `rope_scaling` and the top level (4.x), resolved
/// as transformers' `standardize_rope_params` does. Types zoo does not implement, per-layer
/// parameters and a partial rotation are errors.
///
/// NOTE: `dynamic` (NTK) changes the frequencies only for sequences longer than
/// `max_position_embeddings`, which is the model's context limit in zoo; below it transformers
/// computes the default RoPE, and so does zoo.
pub fn rope(family: &str, config: &Value, default_theta: f32) -> Result<(f32, RopeType)> {
    let params = ["rope_parameters", "rope_scaling"]
        .iter()
        .find_map(|key| config.get(*key).filter(|p| !p.is_null()).map(|p| (*key, p)));
    let Some((key, params)) = params else {
        return Ok((top_level_theta(family, config, default_theta)?, RopeType::Default));
    };
    let Some(params) = params.as_object() else {
        return Err(config_error(family, format!("{key}: {} is not an object", crate::validate::quoted(params))));
    };
    if params.values().any(Value::is_object) {
        return Err(config_error(family, format!("{key}: RoPE parameters per layer type are not supported")));
    }
    let theta = match params.get("rope_theta").filter(|t| !t.is_null()) {
        Some(theta) => checked_theta(family, &format!("{key}.rope_theta"), theta)?,
        None => top_level_theta(family, config, default_theta)?,
    };
    let number = |name: &str| -> Result<Option<f64>> {
        match params.get(name).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => match v.as_f64().filter(|x| x.is_finite()) {
                Some(x) => Ok(Some(x)),
                None => {
                    Err(config_error(family, format!("{key}.{name}: {} is not a number", crate::validate::quoted(v))))
                }
            },
        }
    };
    let required = |name: &str| -> Result<f64> {
        let value = number(name)?.ok_or_else(|| config_error(family, format!("{key}.{name} is missing")))?;
        if value <= 0.0 {
            return Err(config_error(family, format!("{key}.{name}: {value} must be above zero")));
        }
        Ok(value)
    };
    let partial = number("partial_rotary_factor")?.or(config.get("partial_rotary_factor").and_then(Value::as_f64));
    if partial.is_some_and(|p| p != 1.0) {
        return Err(config_error(family, "partial_rotary_factor: RoPE on part of each head is not supported"));
    }
    let max_positions = config.get("max_position_embeddings").and_then(Value::as_f64).unwrap_or(4096.0);
    // NOTE: a top-level `original_max_position_embeddings` (Phi-3 style) wins over the dict's.
    let original = match config.get("original_max_position_embeddings").and_then(Value::as_f64) {
        Some(top) => top,
        None => number("original_max_position_embeddings")?.unwrap_or(max_positions),
    };
    let kind = ["rope_type", "type"].iter().find_map(|k| params.get(*k).and_then(Value::as_str)).unwrap_or("default");
    let rope = match kind {
        "default" => RopeType::Default,
        "dynamic" => {
            required("factor")?;
            RopeType::Default
        }
        "linear" => RopeType::Linear { factor: required("factor")? },
        "llama3" => {
            let (low, high) = (required("low_freq_factor")?, required("high_freq_factor")?);
            if low == high {
                return Err(config_error(family, format!("{key}: low_freq_factor equals high_freq_factor ({low})")));
            }
            RopeType::Llama3 {
                factor: required("factor")?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: original,
            }
        }
        "yarn" => {
            let factor = match number("factor")? {
                Some(f) if f > 0.0 => f,
                Some(f) => return Err(config_error(family, format!("{key}.factor: {f} must be above zero"))),
                None => max_positions / original,
            };
            let truncate = match params.get("truncate") {
                None | Some(Value::Null) => true,
                Some(v) => {
                    v.as_bool().ok_or_else(|| config_error(family, format!("{key}.truncate: {v} is not a bool")))?
                }
            };
            let defaults = Yarn::new(factor, original);
            RopeType::Yarn(Yarn {
                attention_factor: number("attention_factor")?,
                // NOTE: the reference reads these with `or`, so 0 means the default too.
                beta_fast: number("beta_fast")?.filter(|b| *b != 0.0).unwrap_or(defaults.beta_fast),
                beta_slow: number("beta_slow")?.filter(|b| *b != 0.0).unwrap_or(defaults.beta_slow),
                mscale: number("mscale")?,
                mscale_all_dim: number("mscale_all_dim")?,
                truncate,
                ..defaults
            })
        }
        other => {
            return Err(config_error(
                family,
                format!("{key}: rope_type `{other}` is not supported (default, linear, dynamic, llama3, yarn)"),
            ))
        }
    };
    Ok((theta, rope))
}

/// The top-level `rope_theta`, else `default`.
fn top_level_theta(family: &str, config: &Value, default: f32) -> Result<f32> {
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
        assert_eq!(rope("t", &v4, 1e4).unwrap(), (1e6, RopeType::Default));
        assert_eq!(rope("t", &v5, 1e4).unwrap(), (5e5, RopeType::Default));
        assert_eq!(rope("t", &base(), 1e4).unwrap(), (1e4, RopeType::Default));
    }

    #[test]
    fn rope_scaling_of_either_generation() {
        let mut v4 = base();
        v4["rope_theta"] = json!(5e5);
        v4["max_position_embeddings"] = json!(131072);
        v4["rope_scaling"] = json!({"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"});
        let llama3 = RopeType::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        assert_eq!(rope("t", &v4, 1e4).unwrap(), (5e5, llama3));
        let mut v5 = base();
        v5["rope_parameters"] = json!({"rope_theta": 1e4, "rope_type": "linear", "factor": 2.0});
        assert_eq!(rope("t", &v5, 1e4).unwrap(), (1e4, RopeType::Linear { factor: 2.0 }));
        let mut yarn = base();
        yarn["max_position_embeddings"] = json!(32768);
        yarn["rope_scaling"] = json!({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192});
        let RopeType::Yarn(y) = rope("t", &yarn, 1e4).unwrap().1 else { panic!("not yarn") };
        assert_eq!((y.factor, y.original_max_position_embeddings, y.beta_fast, y.beta_slow), (4.0, 8192.0, 32.0, 1.0));
        assert!(y.truncate && y.attention_factor.is_none());
    }

    #[test]
    fn unsupported_rope_is_rejected() {
        let err = |params: Value| {
            let mut cfg = base();
            cfg["rope_parameters"] = params;
            rope("t", &cfg, 1e4).unwrap_err().to_string()
        };
        assert!(err(json!({"rope_type": "longrope", "factor": 2.0})).contains("rope_type `longrope` is not supported"));
        assert!(err(json!({"rope_type": "linear"})).contains("rope_parameters.factor is missing"));
        assert!(err(json!({"rope_type": "linear", "factor": "x"})).contains("rope_parameters.factor"));
        assert!(err(json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0})).contains("high_freq_factor"));
        assert!(err(json!({"rope_type": "default", "partial_rotary_factor": 0.5})).contains("partial_rotary_factor"));
        assert!(err(json!({"full_attention": {"rope_type": "default"}})).contains("per layer type"));
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
            Ok(_) => rope("t", &cfg, 1e4).map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
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
