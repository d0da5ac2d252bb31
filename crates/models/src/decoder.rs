//! The Llama-style decoder that Llama, Mistral and Qwen2 share (transformers'
//! `modeling_llama.py`, `modeling_mistral.py`, `modeling_qwen2.py`): token embedding, pre-norm
//! blocks of RMSNorm → grouped-query attention with rotary embeddings (HF `rotate_half`) →
//! residual → RMSNorm → SwiGLU MLP → residual, a final RMSNorm and an `lm_head` that may be
//! tied to the embedding.
//!
//! The families differ only in data: which projections have biases, the sliding window, RoPE
//! scaling, a per-head RMSNorm of queries and keys before RoPE (Qwen3), and defaults. Each family file turns its `config.json` into a [`DecoderSpec`]; this file holds the
//! one implementation.

use zoo_core::{
    AttentionSpec, Backend, KvCache, KvLayout, Model, ModelInfo, Qkv, Result, RopeConvention, RopeSpec, RopeType, Step,
    StepInput, UnaryOp, WeightSource,
};

use crate::hf_config::HfDecoderConfig;
use crate::nn::{Linear, RmsNorm, Stored, Vb};

/// Everything that distinguishes one Llama-style model from another.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderSpec {
    /// Registry name of the family.
    pub family: &'static str,
    /// Vocabulary rows.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base.
    pub rope_theta: f32,
    /// RoPE scaling.
    pub rope: RopeType,
    /// Longest supported sequence.
    pub max_context: usize,
    /// Bias on the q, k and v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// Bias on the MLP projections.
    pub mlp_bias: bool,
    /// RMSNorm of each query and key head before RoPE (`self_attn.q_norm`, `k_norm`).
    pub qk_norm: bool,
    /// `lm_head` is `embed_tokens`.
    pub tie_word_embeddings: bool,
    /// Sliding window of each layer (`None`: full attention).
    pub windows: Vec<Option<usize>>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids.
    pub eos_token_ids: Vec<u32>,
}

impl DecoderSpec {
    /// The spec of a config with no biases, full attention, the RoPE `(theta, type)` of
    /// [`crate::hf_config::rope`], and `tie` unless the config says.
    pub fn from_hf(
        family: &'static str,
        cfg: &HfDecoderConfig,
        (rope_theta, rope): (f32, RopeType),
        tie: bool,
    ) -> Self {
        Self {
            family,
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            intermediate_size: cfg.intermediate_size,
            n_layers: cfg.num_hidden_layers,
            n_heads: cfg.num_attention_heads,
            n_kv_heads: cfg.kv_heads(),
            head_dim: cfg.head_dim(),
            rms_norm_eps: cfg.rms_norm_eps,
            rope_theta,
            rope,
            max_context: cfg.max_position_embeddings,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            tie_word_embeddings: cfg.tie_word_embeddings.unwrap_or(tie),
            windows: vec![None; cfg.num_hidden_layers],
            bos_token_id: cfg.bos_token_id(),
            eos_token_ids: cfg.eos_token_ids(),
        }
    }
}

/// Tensors a Llama-style checkpoint may hold that the decoder does not take: the copy of a tied
/// head (transformers uses the embedding when `tie_word_embeddings` is true) and the RoPE
/// frequency buffers older transformers saved.
pub const KNOWN_UNUSED: &[&str] = &["lm_head.weight", "*.rotary_emb.inv_freq"];

/// Grouped-query self-attention with rotary embeddings.
struct Attention<B: Backend> {
    q_proj: Linear<B>,
    k_proj: Linear<B>,
    v_proj: Linear<B>,
    o_proj: Linear<B>,
    q_norm: Option<RmsNorm<B>>,
    k_norm: Option<RmsNorm<B>>,
    rope: RopeSpec,
    spec: AttentionSpec,
}

impl<B: Backend> Attention<B> {
    fn load(vb: &Vb<'_, B>, s: &DecoderSpec, rope: &RopeSpec, layer: usize) -> Result<Self> {
        let (h, q, kv) = (s.hidden_size, s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim);
        let head_norm = |name: &str| -> Result<Option<RmsNorm<B>>> {
            Ok(if s.qk_norm { Some(RmsNorm::load(&vb.pp(name), s.head_dim, s.rms_norm_eps)?) } else { None })
        };
        Ok(Self {
            q_proj: Linear::load(&vb.pp("q_proj"), h, q, s.qkv_bias, Stored::OutIn)?,
            k_proj: Linear::load(&vb.pp("k_proj"), h, kv, s.qkv_bias, Stored::OutIn)?,
            v_proj: Linear::load(&vb.pp("v_proj"), h, kv, s.qkv_bias, Stored::OutIn)?,
            o_proj: Linear::load(&vb.pp("o_proj"), q, h, s.o_bias, Stored::OutIn)?,
            q_norm: head_norm("q_norm")?,
            k_norm: head_norm("k_norm")?,
            rope: rope.clone(),
            spec: AttentionSpec {
                n_heads: s.n_heads,
                n_kv_heads: s.n_kv_heads,
                head_dim: s.head_dim,
                scale: 1.0 / (s.head_dim as f32).sqrt(),
                window: s.windows[layer],
            },
        })
    }

    /// `x + attn(norm(x))`.
    fn forward(
        &self,
        b: &B,
        x: &B::Tensor,
        norm: &RmsNorm<B>,
        kv: &mut B::KvBuffer,
        step: &StepInput<'_>,
    ) -> Result<B::Tensor> {
        let [q, k, v] = norm.linears(b, x, [&self.q_proj, &self.k_proj, &self.v_proj])?; // (T, nH·hd), (T, nKV·hd) ×2
        let q = per_head(b, self.q_norm.as_ref(), q, self.spec.head_dim)?;
        let k = per_head(b, self.k_norm.as_ref(), k, self.spec.head_dim)?;
        let y = b.rope_attention_step(Qkv::new(&q, &k, &v), kv, step, &self.rope, &self.spec)?; // (T, nH·hd)
        self.o_proj.forward_add(b, &y, x)
    }
}

/// `norm` applied to each head of `x: [T, heads·head_dim]` (none: `x` unchanged).
fn per_head<B: Backend>(b: &B, norm: Option<&RmsNorm<B>>, x: B::Tensor, head_dim: usize) -> Result<B::Tensor> {
    let Some(norm) = norm else { return Ok(x) };
    let (rows, cols) = zoo_core::checks::dims2(zoo_core::TensorShape::shape(&x), "q/k norm")?;
    let heads = b.reshape(&x, &[rows * cols / head_dim, head_dim])?; // (T·heads, hd)
    b.reshape(&norm.forward(b, &heads)?, &[rows, cols])
}

/// `down_proj(silu(gate_proj(x)) · up_proj(x))`.
struct Mlp<B: Backend> {
    gate_proj: Linear<B>,
    up_proj: Linear<B>,
    down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn load(vb: &Vb<'_, B>, s: &DecoderSpec) -> Result<Self> {
        let (h, i, bias) = (s.hidden_size, s.intermediate_size, s.mlp_bias);
        Ok(Self {
            gate_proj: Linear::load(&vb.pp("gate_proj"), h, i, bias, Stored::OutIn)?,
            up_proj: Linear::load(&vb.pp("up_proj"), h, i, bias, Stored::OutIn)?,
            down_proj: Linear::load(&vb.pp("down_proj"), i, h, bias, Stored::OutIn)?,
        })
    }

    /// `x + mlp(norm(x))`.
    fn forward(&self, b: &B, x: &B::Tensor, norm: &RmsNorm<B>) -> Result<B::Tensor> {
        let hidden = norm.gated(b, x, &self.gate_proj, &self.up_proj, UnaryOp::Silu)?; // (T, I)
        self.down_proj.forward_add(b, &hidden, x)
    }
}

/// `x + attn(norm(x))`, then `+ mlp(norm(x))`. Each norm is applied by the op that consumes
/// it and each residual add by the projection that produces it, so on GPU backends a decode
/// layer is six kernels: norm + q/k/v, RoPE + KV write, attention, o + add, norm + gate/up,
/// down + add.
struct Layer<B: Backend> {
    input_layernorm: RmsNorm<B>,
    self_attn: Attention<B>,
    post_attention_layernorm: RmsNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> Layer<B> {
    fn load(vb: &Vb<'_, B>, s: &DecoderSpec, rope: &RopeSpec, layer: usize) -> Result<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::load(&vb.pp("input_layernorm"), s.hidden_size, s.rms_norm_eps)?,
            self_attn: Attention::load(&vb.pp("self_attn"), s, rope, layer)?,
            post_attention_layernorm: RmsNorm::load(&vb.pp("post_attention_layernorm"), s.hidden_size, s.rms_norm_eps)?,
            mlp: Mlp::load(&vb.pp("mlp"), s)?,
        })
    }

    /// The residual stream `x` after the layer.
    fn forward(&self, b: &B, x: &B::Tensor, kv: &mut B::KvBuffer, step: &StepInput<'_>) -> Result<B::Tensor> {
        let x = self.self_attn.forward(b, x, &self.input_layernorm, kv, step)?;
        self.mlp.forward(b, &x, &self.post_attention_layernorm)
    }
}

/// The GGUF tensor of per-frequency RoPE divisors (it keeps its GGUF name).
const ROPE_FREQS: &str = "rope_freqs.weight";

/// A Llama-style causal language model.
pub struct Decoder<B: Backend> {
    backend: B,
    info: ModelInfo,
    embed_tokens: B::Tensor,
    layers: Vec<Layer<B>>,
    norm: RmsNorm<B>,
    lm_head: Linear<B>,
}

impl<B: Backend> Decoder<B> {
    /// Loads weights named as transformers names them (`model.layers.{i}.self_attn.q_proj`, ...).
    pub fn load(backend: B, spec: &DecoderSpec, weights: &dyn WeightSource) -> Result<Self> {
        crate::validate::layer_count(spec.family, "num_hidden_layers", spec.n_layers, weights, "model.layers")?;
        let root = Vb::new(&backend, weights);
        let vb = root.pp("model");
        let embed_tokens = vb.get("embed_tokens.weight", &[spec.vocab_size, spec.hidden_size])?;
        // NOTE: llama.cpp's converter stores Llama 3's RoPE scaling as `rope_freqs.weight`, one
        // divisor per frequency, instead of the config's parameters.
        let freq_factors = if root.contains(ROPE_FREQS) {
            let factors = root.get_f32(ROPE_FREQS, &[spec.head_dim / 2])?;
            if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
                let message = format!("`{ROPE_FREQS}` holds {bad}; RoPE frequency divisors must be above zero");
                return Err(crate::nn::config_error(spec.family, message));
            }
            Some(factors)
        } else {
            None
        };
        let rope = RopeSpec {
            scaling: spec.rope.scaling(spec.head_dim, spec.rope_theta, freq_factors.as_deref()),
            ..RopeSpec::new(spec.head_dim, spec.rope_theta, RopeConvention::HalfSplit)
        };
        let layers =
            (0..spec.n_layers).map(|i| Layer::load(&vb.pp("layers").pp(i), spec, &rope, i)).collect::<Result<_>>()?;
        let norm = RmsNorm::load(&vb.pp("norm"), spec.hidden_size, spec.rms_norm_eps)?;
        // NOTE: tied checkpoints usually omit `lm_head.weight`; when tied, transformers uses the
        // embedding even if the file has a head.
        let lm_head = if spec.tie_word_embeddings {
            Linear::from_weight(embed_tokens.clone())
        } else {
            Linear::load(&root.pp("lm_head"), spec.hidden_size, spec.vocab_size, false, Stored::OutIn)?
        };
        let info = ModelInfo {
            family: spec.family.to_string(),
            vocab_size: spec.vocab_size,
            max_context: spec.max_context,
            eos_token_ids: spec.eos_token_ids.clone(),
            eos_token_names: Vec::new(),
            bos_token_id: spec.bos_token_id,
            kv: KvLayout { n_layers: spec.n_layers, n_kv_heads: spec.n_kv_heads, head_dim: spec.head_dim },
        };
        Ok(Self { backend, info, embed_tokens, layers, norm, lm_head })
    }
}

impl<B: Backend> Model<B> for Decoder<B> {
    crate::family::model_accessors!();

    fn forward_step(&self, step: &Step<'_>, cache: &mut KvCache<B>) -> Result<B::Tensor> {
        let b = &self.backend;
        let input = b.prepare_step(step)?;
        let mut x = b.embedding_step(&self.embed_tokens, &input)?; // (T, H)
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(b, &x, cache.layer_mut(i), &input)?;
        }
        if let Some(rows) = &step.logit_rows {
            x = b.gather_rows(&x, rows)?; // (rows, H): the final norm is per row
        }
        let [logits] = self.norm.linears(b, &x, [&self.lm_head])?; // (rows, vocab)
        Ok(logits)
    }
}
