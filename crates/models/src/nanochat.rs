//! nanochat's GPT (Karpathy's nanochat, `nanochat/gpt.py` at its first release, 3a5e0bc), the
//! model `xtask/python/nanochat_reference.py` reimplements as this file's reference.
//!
//! Differences from GPT-2:
//! - no learned positions: rotary embeddings, base 10 000, half-split layout, and
//!   NOTE: nanochat rotates by −θ (`y1 = x1·cos + x2·sin`), the opposite sign to HF Llama; kept for
//!   checkpoint compatibility;
//! - RMSNorm without a learned scale and with eps = f32 machine epsilon (`F.rms_norm(x, (C,))`),
//!   applied after the embedding, before each sub-block and before the head;
//! - QK-norm: the same RMSNorm over each head of q and k, after RoPE;
//! - grouped-query attention (`n_kv_head`), no biases anywhere;
//! - MLP `c_proj(relu(c_fc(x))²)` of width `4·n_embd`;
//! - an untied `lm_head` and logits soft-capped as `15·tanh(x/15)`.
//!
//! Checkpoints: `config.json` (`"model_type": "nanochat"` + nanochat's `GPTConfig` fields) with
//! `model.safetensors`, or nanochat's own `model_<step>.pt` + `meta_<step>.json` (keys may carry
//! `_orig_mod.`; `wte` is often bf16), both under nanochat's tensor names.

use serde::Deserialize;
use serde_json::Value;
use zoo_core::{
    AttentionSpec, Backend, KvCache, KvLayout, Model, ModelInfo, Qkv, Result, RopeConvention, RopeSpec, Step,
    StepInput, UnaryOp, WeightSource,
};

use crate::nn::{config_error, parse_config, Linear, RmsNorm, Stored, Vb};

const FAMILY: &str = "nanochat";
/// `F.rms_norm(..., eps=None)` uses the machine epsilon of f32.
const NORM_EPS: f32 = f32::EPSILON;
const ROPE_THETA: f32 = 10_000.0;
const SOFTCAP: f32 = 15.0;
/// nanochat precomputes rotary tables for ten times the training sequence length.
const ROTARY_SEQ_FACTOR: usize = 10;

/// nanochat's `GPTConfig`, as `meta_<step>.json`'s `model_config` holds it.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    /// Training sequence length.
    pub sequence_len: usize,
    /// Vocabulary rows.
    pub vocab_size: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_kv_head: usize,
    /// Model width.
    pub n_embd: usize,
}

impl Config {
    /// Parses and validates a config.
    pub fn from_json(config: &Value) -> Result<Self> {
        let cfg: Self = parse_config(FAMILY, config)?;
        cfg.validate()?;
        if cfg.n_head == 0 || cfg.n_embd % cfg.n_head != 0 || (cfg.n_embd / cfg.n_head) % 2 != 0 {
            return Err(config_error(FAMILY, "n_embd must split into n_head heads of even size"));
        }
        if cfg.n_kv_head == 0 || cfg.n_head % cfg.n_kv_head != 0 {
            return Err(config_error(
                FAMILY,
                format!("n_head {} is not a multiple of n_kv_head {}", cfg.n_head, cfg.n_kv_head),
            ));
        }
        // Fields later nanochat versions added change the math; refuse them rather than ignore.
        for key in ["window_pattern", "n_value_embeds"] {
            if config.get(key).is_some_and(|v| !v.is_null() && v != "L") {
                return Err(config_error(FAMILY, format!("`{key}` (a later nanochat feature) is not supported")));
            }
        }
        Ok(cfg)
    }

    /// Range-checks every field that shapes the model (see [`crate::validate`]).
    fn validate(&self) -> Result<()> {
        use crate::validate::{count, divides, MAX_CONTEXT, MAX_HEADS, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH};
        count(FAMILY, "sequence_len", self.sequence_len, MAX_CONTEXT / ROTARY_SEQ_FACTOR)?;
        count(FAMILY, "vocab_size", self.vocab_size, MAX_VOCAB)?;
        count(FAMILY, "n_layer", self.n_layer, MAX_LAYERS)?;
        count(FAMILY, "n_head", self.n_head, MAX_HEADS)?;
        count(FAMILY, "n_kv_head", self.n_kv_head, MAX_HEADS)?;
        count(FAMILY, "n_embd", self.n_embd, MAX_WIDTH)?;
        divides(FAMILY, ("n_embd", self.n_embd), ("n_head", self.n_head))?;
        divides(FAMILY, ("n_head", self.n_head), ("n_kv_head", self.n_kv_head))
    }

    fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// Attention with RoPE then QK-norm.
struct Attention<B: Backend> {
    c_q: Linear<B>,
    c_k: Linear<B>,
    c_v: Linear<B>,
    c_proj: Linear<B>,
    rope: RopeSpec,
    spec: AttentionSpec,
}

impl<B: Backend> Attention<B> {
    fn load(vb: &Vb<'_, B>, cfg: &Config) -> Result<Self> {
        let (c, hd) = (cfg.n_embd, cfg.head_dim());
        let kv = cfg.n_kv_head * hd;
        Ok(Self {
            c_q: Linear::load(&vb.pp("c_q"), c, cfg.n_head * hd, false, Stored::OutIn)?,
            c_k: Linear::load(&vb.pp("c_k"), c, kv, false, Stored::OutIn)?,
            c_v: Linear::load(&vb.pp("c_v"), c, kv, false, Stored::OutIn)?,
            c_proj: Linear::load(&vb.pp("c_proj"), c, c, false, Stored::OutIn)?,
            rope: RopeSpec::new(hd, ROPE_THETA, RopeConvention::HalfSplitNegative),
            spec: AttentionSpec {
                n_heads: cfg.n_head,
                n_kv_heads: cfg.n_kv_head,
                head_dim: hd,
                scale: 1.0 / (hd as f32).sqrt(),
                window: None,
            },
        })
    }

    fn forward(&self, b: &B, x: &B::Tensor, kv: &mut B::KvBuffer, step: &StepInput<'_>) -> Result<B::Tensor> {
        let q = b.rope_step(&self.c_q.forward(b, x)?, step, &self.rope)?; // (T, nH·hd)
        let k = b.rope_step(&self.c_k.forward(b, x)?, step, &self.rope)?; // (T, nKV·hd)
        let (q, k) = (self.head_norm(b, &q)?, self.head_norm(b, &k)?);
        let v = self.c_v.forward(b, x)?;
        let y = b.attention_step(Qkv::new(&q, &k, &v), kv, step, &self.spec)?; // (T, nH·hd)
        self.c_proj.forward(b, &y)
    }

    /// RMSNorm over each head: `(T, n·hd)` viewed as `(T·n, hd)`.
    fn head_norm(&self, b: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let shape = zoo_core::TensorShape::shape(x).to_vec();
        let hd = self.spec.head_dim;
        let heads = b.reshape(x, &[shape[0] * shape[1] / hd, hd])?;
        b.reshape(&b.rms_norm(&heads, None, NORM_EPS)?, &shape)
    }
}

/// `c_proj(relu(c_fc(x))²)`.
struct Mlp<B: Backend> {
    c_fc: Linear<B>,
    c_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn load(vb: &Vb<'_, B>, cfg: &Config) -> Result<Self> {
        let (c, inner) = (cfg.n_embd, 4 * cfg.n_embd);
        Ok(Self {
            c_fc: Linear::load(&vb.pp("c_fc"), c, inner, false, Stored::OutIn)?,
            c_proj: Linear::load(&vb.pp("c_proj"), inner, c, false, Stored::OutIn)?,
        })
    }

    fn forward(&self, b: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let h = self.c_fc.forward(b, x)?; // (T, 4C)
        self.c_proj.forward(b, &b.unary(&h, UnaryOp::ReluSquared)?)
    }
}

/// `x + attn(norm(x))`, then `+ mlp(norm(x))`.
struct Block<B: Backend> {
    attn: Attention<B>,
    mlp: Mlp<B>,
}

/// nanochat's GPT with its head.
pub struct NanoChat<B: Backend> {
    backend: B,
    info: ModelInfo,
    wte: B::Tensor,
    h: Vec<Block<B>>,
    norm: RmsNorm<B>,
    lm_head: Linear<B>,
}

impl<B: Backend> NanoChat<B> {
    /// Loads the model from its config and weights (nanochat's tensor names).
    pub fn load(backend: B, config: &Value, weights: &dyn WeightSource) -> Result<Self> {
        let cfg = Config::from_json(config)?;
        crate::validate::layer_count(FAMILY, "n_layer", cfg.n_layer, weights, "transformer.h")?;
        let root = Vb::new(&backend, weights);
        let vb = root.pp("transformer");
        let wte = vb.get("wte.weight", &[cfg.vocab_size, cfg.n_embd])?;
        let h = (0..cfg.n_layer)
            .map(|i| {
                let block = vb.pp("h").pp(i);
                Ok(Block { attn: Attention::load(&block.pp("attn"), &cfg)?, mlp: Mlp::load(&block.pp("mlp"), &cfg)? })
            })
            .collect::<Result<_>>()?;
        let lm_head = Linear::load(&root.pp("lm_head"), cfg.n_embd, cfg.vocab_size, false, Stored::OutIn)?;
        let info = ModelInfo {
            family: FAMILY.into(),
            vocab_size: cfg.vocab_size,
            max_context: cfg.sequence_len * ROTARY_SEQ_FACTOR,
            eos_token_ids: Vec::new(),
            // NOTE: nanochat's chat engine stops on these; their ids depend on the tokenizer.
            eos_token_names: vec!["<|assistant_end|>".into(), "<|bos|>".into()],
            bos_token_id: None,
            kv: KvLayout { n_layers: cfg.n_layer, n_kv_heads: cfg.n_kv_head, head_dim: cfg.head_dim() },
        };
        Ok(Self { backend, info, wte, h, norm: RmsNorm::parameter_free(NORM_EPS), lm_head })
    }
}

impl<B: Backend> Model<B> for NanoChat<B> {
    crate::family::model_accessors!();

    fn forward_step(&self, step: &Step<'_>, cache: &mut KvCache<B>) -> Result<B::Tensor> {
        let b = &self.backend;
        let input = b.prepare_step(step)?;
        let mut x = self.norm.forward(b, &b.embedding_step(&self.wte, &input)?)?; // (T, C)
        for (i, block) in self.h.iter().enumerate() {
            x = b.add(&x, &block.attn.forward(b, &self.norm.forward(b, &x)?, cache.layer_mut(i), &input)?)?;
            x = b.add(&x, &block.mlp.forward(b, &self.norm.forward(b, &x)?)?)?;
        }
        let logits = crate::family::step_logits(b, self.norm.forward(b, &x)?, step, &self.lm_head)?;
        b.unary(&logits, UnaryOp::Softcap(SOFTCAP))
    }
}

fn recognizes(config: &Value) -> bool {
    config.get("model_type").and_then(Value::as_str) == Some(FAMILY)
}

crate::family::register_family! { FAMILY, aliases: &["nanochat-gpt"], load: NanoChat::load, unused: &[],
"nanochat GPT (Karpathy): RoPE (-θ), QK-norm, ReLU² MLP, parameter-free RMSNorm, softcap" }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d20() -> Value {
        json!({"model_type": "nanochat", "sequence_len": 2048, "vocab_size": 65536, "n_layer": 20,
               "n_head": 10, "n_kv_head": 10, "n_embd": 1280})
    }

    #[test]
    fn d20_config_semantics() {
        let cfg = Config::from_json(&d20()).unwrap();
        assert_eq!(cfg.head_dim(), 128);
    }

    #[test]
    fn later_features_and_bad_heads_are_rejected() {
        let mut cfg = d20();
        cfg["window_pattern"] = json!("SSSL");
        assert!(Config::from_json(&cfg).unwrap_err().to_string().contains("window_pattern"));
        let mut cfg = d20();
        cfg["n_kv_head"] = json!(3);
        assert!(Config::from_json(&cfg).is_err());
    }

    #[test]
    fn recognised_by_model_type() {
        assert!(recognizes(&d20()));
        assert!(!recognizes(&json!({"model_type": "gpt2"})));
    }
}
