//! GPT-2, as Hugging Face `GPT2LMHeadModel` computes it (`transformers/models/gpt2/modeling_gpt2.py`).
//!
//! The baseline the other families are described against: learned absolute positions added to
//! the token embedding, pre-norm blocks with LayerNorm (weight + bias), multi-head attention with
//! one fused `c_attn` projection (q, k, v in that order), a GELU (tanh approximation) MLP of
//! width `4·n_embd`, a final LayerNorm and an `lm_head` tied to `wte`.
//!
//! Checkpoint quirks handled here:
//! - NOTE: `Conv1D` weights are stored `[in, out]`; they are transposed once at load.
//! - NOTE: hub files name tensors without the `transformer.` prefix that `save_pretrained`
//!   writes; both are accepted. `lm_head.weight` is tied (absent or equal to `wte`).
//! - Non-parameter buffers (`h.N.attn.bias`, `h.N.attn.masked_bias`) are on the family's list of
//!   known-unused tensors; any other tensor the model does not take fails the load.

use serde::Deserialize;
use zoo_core::{
    AttentionSpec, Backend, KvCache, KvLayout, Model, ModelInfo, Qkv, Result, Step, StepInput, UnaryOp, WeightSource,
};

use crate::nn::{config_error, config_is, parse_config, LayerNorm, Linear, Stored, Vb};

const FAMILY: &str = "gpt2";

/// `config.json` fields, with HF's names.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    /// Vocabulary size (rows of `wte`).
    pub vocab_size: usize,
    /// Maximum positions (rows of `wpe`).
    pub n_positions: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP width; `None` means `4·n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    /// MLP activation; only the tanh-approximated GELU variants are supported.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Whether scores are divided by `sqrt(head_dim)`.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// Whether scores are further divided by `layer_index + 1`.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// End-of-text token.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Beginning-of-text token (GPT-2 does not prepend it to prompts).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
}

fn default_eps() -> f32 {
    1e-5
}
fn default_activation() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

impl Config {
    /// Parses and validates a `config.json`.
    pub fn from_json(config: &serde_json::Value) -> Result<Self> {
        let cfg: Self = parse_config(FAMILY, config)?;
        cfg.validate()?;
        if !matches!(cfg.activation_function.as_str(), "gelu_new" | "gelu_pytorch_tanh") {
            return Err(config_error(
                FAMILY,
                format!(
                    "activation_function `{}` is not supported (gelu_new, gelu_pytorch_tanh)",
                    cfg.activation_function
                ),
            ));
        }
        Ok(cfg)
    }

    /// Range-checks every field that shapes the model (see [`crate::validate`]).
    fn validate(&self) -> Result<()> {
        use crate::validate::{count, divides, positive_f32, MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH};
        count(FAMILY, "vocab_size", self.vocab_size, MAX_VOCAB)?;
        count(FAMILY, "n_positions", self.n_positions, MAX_CONTEXT)?;
        count(FAMILY, "n_embd", self.n_embd, MAX_WIDTH)?;
        count(FAMILY, "n_layer", self.n_layer, MAX_LAYERS)?;
        count(FAMILY, "n_head", self.n_head, MAX_HEADS)?;
        if let Some(inner) = self.n_inner {
            count(FAMILY, "n_inner", inner, MAX_WIDTH)?;
        }
        divides(FAMILY, ("n_embd", self.n_embd), ("n_head", self.n_head))?;
        positive_f32(FAMILY, "layer_norm_epsilon", self.layer_norm_epsilon, 1.0)?;
        for (key, id) in [("eos_token_id", self.eos_token_id), ("bos_token_id", self.bos_token_id)] {
            if id.is_some_and(|id| id as usize >= self.vocab_size) {
                return Err(config_error(
                    FAMILY,
                    format!("{key}: {} is not below vocab_size {}", id.unwrap_or(0), self.vocab_size),
                ));
            }
        }
        Ok(())
    }

    fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// Multi-head self-attention with the fused `c_attn` projection.
struct Attention<B: Backend> {
    c_attn: Linear<B>,
    c_proj: Linear<B>,
    spec: AttentionSpec,
}

impl<B: Backend> Attention<B> {
    fn load(vb: &Vb<'_, B>, cfg: &Config, layer: usize) -> Result<Self> {
        let (h, hd) = (cfg.n_embd, cfg.head_dim());
        let mut scale = if cfg.scale_attn_weights { 1.0 / (hd as f32).sqrt() } else { 1.0 };
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f32;
        }
        Ok(Self {
            c_attn: Linear::load(&vb.pp("c_attn"), h, 3 * h, true, Stored::InOut)?,
            c_proj: Linear::load(&vb.pp("c_proj"), h, h, true, Stored::InOut)?,
            spec: AttentionSpec { n_heads: cfg.n_head, n_kv_heads: cfg.n_head, head_dim: hd, scale, window: None },
        })
    }

    fn forward(&self, b: &B, x: &B::Tensor, kv: &mut B::KvBuffer, step: &StepInput<'_>) -> Result<B::Tensor> {
        let h = self.spec.n_heads * self.spec.head_dim;
        let qkv = self.c_attn.forward(b, x)?; // (T, 3H)
        let q = b.narrow(&qkv, 1, 0, h)?; // (T, H)
        let k = b.narrow(&qkv, 1, h, h)?;
        let v = b.narrow(&qkv, 1, 2 * h, h)?;
        let y = b.attention_step(Qkv::new(&q, &k, &v), kv, step, &self.spec)?; // (T, H)
        self.c_proj.forward(b, &y)
    }
}

/// `c_proj(gelu(c_fc(x)))`.
struct Mlp<B: Backend> {
    c_fc: Linear<B>,
    c_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn load(vb: &Vb<'_, B>, cfg: &Config) -> Result<Self> {
        let inner = cfg.n_inner.unwrap_or(4 * cfg.n_embd);
        Ok(Self {
            c_fc: Linear::load(&vb.pp("c_fc"), cfg.n_embd, inner, true, Stored::InOut)?,
            c_proj: Linear::load(&vb.pp("c_proj"), inner, cfg.n_embd, true, Stored::InOut)?,
        })
    }

    fn forward(&self, b: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let h = self.c_fc.forward(b, x)?; // (T, inner)
        self.c_proj.forward(b, &b.unary(&h, UnaryOp::GeluTanh)?)
    }
}

/// `x + attn(ln_1(x))`, then `+ mlp(ln_2(x))`.
struct Block<B: Backend> {
    ln_1: LayerNorm<B>,
    attn: Attention<B>,
    ln_2: LayerNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    fn load(vb: &Vb<'_, B>, cfg: &Config, layer: usize) -> Result<Self> {
        let eps = cfg.layer_norm_epsilon;
        Ok(Self {
            ln_1: LayerNorm::load(&vb.pp("ln_1"), cfg.n_embd, eps)?,
            attn: Attention::load(&vb.pp("attn"), cfg, layer)?,
            ln_2: LayerNorm::load(&vb.pp("ln_2"), cfg.n_embd, eps)?,
            mlp: Mlp::load(&vb.pp("mlp"), cfg)?,
        })
    }

    fn forward(&self, b: &B, x: &B::Tensor, kv: &mut B::KvBuffer, step: &StepInput<'_>) -> Result<B::Tensor> {
        let x = b.add(x, &self.attn.forward(b, &self.ln_1.forward(b, x)?, kv, step)?)?;
        b.add(&x, &self.mlp.forward(b, &self.ln_2.forward(b, &x)?)?)
    }
}

/// GPT-2 with its language-model head.
pub struct Gpt2<B: Backend> {
    backend: B,
    info: ModelInfo,
    wte: B::Tensor,
    wpe: B::Tensor,
    h: Vec<Block<B>>,
    ln_f: LayerNorm<B>,
    lm_head: Linear<B>,
}

impl<B: Backend> Gpt2<B> {
    /// Loads the model from `config.json` values and weights.
    pub fn load(backend: B, config: &serde_json::Value, weights: &dyn WeightSource) -> Result<Self> {
        let cfg = Config::from_json(config)?;
        let root = Vb::new(&backend, weights);
        let prefix = if weights.contains("transformer.wte.weight") { "transformer.h" } else { "h" };
        crate::validate::layer_count(FAMILY, "n_layer", cfg.n_layer, weights, prefix)?;
        // NOTE: `save_pretrained` prefixes every tensor with `transformer.`; hub files do not.
        let vb = if weights.contains("transformer.wte.weight") { root.pp("transformer") } else { root };
        let wte = vb.get("wte.weight", &[cfg.vocab_size, cfg.n_embd])?;
        let wpe = vb.get("wpe.weight", &[cfg.n_positions, cfg.n_embd])?;
        let h = (0..cfg.n_layer).map(|i| Block::load(&vb.pp("h").pp(i), &cfg, i)).collect::<Result<_>>()?;
        let ln_f = LayerNorm::load(&vb.pp("ln_f"), cfg.n_embd, cfg.layer_norm_epsilon)?;
        // NOTE: the head is tied to `wte`; a stored `lm_head.weight` is the same matrix.
        let lm_head = Linear::from_weight(wte.clone());
        let info = ModelInfo {
            family: FAMILY.into(),
            vocab_size: cfg.vocab_size,
            max_context: cfg.n_positions,
            eos_token_ids: cfg.eos_token_id.into_iter().collect(),
            eos_token_names: Vec::new(),
            bos_token_id: None,
            kv: KvLayout { n_layers: cfg.n_layer, n_kv_heads: cfg.n_head, head_dim: cfg.head_dim() },
        };
        Ok(Self { backend, info, wte, wpe, h, ln_f, lm_head })
    }
}

impl<B: Backend> Model<B> for Gpt2<B> {
    crate::family::model_accessors!();

    fn forward_step(&self, step: &Step<'_>, cache: &mut KvCache<B>) -> Result<B::Tensor> {
        let b = &self.backend;
        let input = b.prepare_step(step)?;
        let positions: Vec<u32> = step.positions.iter().map(|&p| p as u32).collect();
        let mut x = b.add(&b.embedding(&self.wte, step.tokens)?, &b.embedding(&self.wpe, &positions)?)?; // (T, C)
        for (i, block) in self.h.iter().enumerate() {
            x = block.forward(b, &x, cache.layer_mut(i), &input)?;
        }
        crate::family::step_logits(b, self.ln_f.forward(b, &x)?, step, &self.lm_head)
    }
}

fn recognizes(config: &serde_json::Value) -> bool {
    config_is(config, "gpt2", "GPT2LMHeadModel")
}

/// Tensors a GPT-2 checkpoint may hold that the model does not take: the causal-mask buffers
/// older transformers saved, and the tied head's copy of `wte`.
const KNOWN_UNUSED: &[&str] = &["*.attn.bias", "*.attn.masked_bias", "lm_head.weight"];

crate::family::register_family! { FAMILY, aliases: &["gpt-2"], load: Gpt2::load, unused: KNOWN_UNUSED,
"GPT-2 (HF GPT2LMHeadModel): learned positions, LayerNorm, GELU MLP, tied head" }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({"model_type": "gpt2", "vocab_size": 10, "n_positions": 8, "n_embd": 8, "n_layer": 1, "n_head": 2})
    }

    #[test]
    fn defaults_follow_transformers() {
        let cfg = Config::from_json(&base()).unwrap();
        assert_eq!(cfg.layer_norm_epsilon, 1e-5);
        assert_eq!(cfg.n_inner, None);
        assert!(cfg.scale_attn_weights && !cfg.scale_attn_by_inverse_layer_idx);
        assert_eq!(cfg.head_dim(), 4);
    }

    #[test]
    fn unsupported_settings_are_rejected() {
        // The error of `base()` with `key` set to `value` (`None`: removed).
        let err = |key: &str, value: Option<serde_json::Value>| {
            let mut cfg = base();
            match value {
                Some(value) => cfg[key] = value,
                None => {
                    cfg.as_object_mut().unwrap().remove(key);
                }
            }
            Config::from_json(&cfg).unwrap_err().to_string()
        };
        assert!(err("activation_function", Some(json!("relu"))).contains("relu"));
        assert!(err("n_head", Some(json!(3))).contains("n_embd: 8 is not a multiple of n_head: 3"));
        assert!(err("n_embd", None).contains("n_embd"));
    }

    #[test]
    fn recognised_by_model_type_or_architecture() {
        assert!(recognizes(&json!({"model_type": "gpt2"})));
        assert!(recognizes(&json!({"architectures": ["GPT2LMHeadModel"]})));
        assert!(!recognizes(&json!({"model_type": "llama"})));
    }
}
