//! nanochat's training side: its special tokens (nanochat's tokenizer), presets, and the
//! initialisation of `nanochat/gpt.py`'s `init_weights`: embeddings N(0, 1), each linear
//! N(0, 1/√fan_in · min(1, √(fan_out/fan_in))), and zeros for the head and every projection
//! back into the residual stream (so the first logits are all zero and the loss is ln(vocab)).

use serde_json::{json, Value};

use super::{config_usize, Init, ParamSpec};
use crate::error::{Result, TrainError};

/// nanochat's special tokens; `<|bos|>` delimits documents.
pub const SPECIAL_TOKENS: &[&str] = &[
    "<|bos|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
];

/// `(n_layer, n_embd, n_head, sequence_len)` of the presets.
pub fn preset(name: &str, vocab_size: usize) -> Result<Value> {
    let (n_layer, n_embd, n_head, sequence_len) = match name {
        "tiny" => (2, 64, 4, 64),
        "small" => (6, 384, 6, 512),
        _ => return Err(TrainError::config("--config", format!("`{name}` is not a preset (tiny, small) or a file"))),
    };
    Ok(json!({"model_type": "nanochat", "sequence_len": sequence_len, "vocab_size": vocab_size,
              "n_layer": n_layer, "n_head": n_head, "n_kv_head": n_head, "n_embd": n_embd}))
}

/// nanochat's parameters under its checkpoint names.
pub fn parameters(config: &Value) -> Result<Vec<ParamSpec>> {
    let (vocab, c, layers) =
        (config_usize(config, "vocab_size")?, config_usize(config, "n_embd")?, config_usize(config, "n_layer")?);
    let (heads, kv_heads) = (config_usize(config, "n_head")?, config_usize(config, "n_kv_head")?);
    if c % heads != 0 {
        return Err(TrainError::config("n_embd", format!("{c} is not a multiple of n_head {heads}")));
    }
    let kv = kv_heads * (c / heads);
    let linear = |name: String, out: usize, inp: usize| {
        let std = (1.0 / (inp as f32).sqrt()) * ((out as f32 / inp as f32).sqrt()).min(1.0);
        ParamSpec::new(name, &[out, inp], Init::Normal(std), true)
    };
    let zeros = |name: String, out: usize, inp: usize| ParamSpec::new(name, &[out, inp], Init::Zeros, true);
    let mut params = vec![ParamSpec::new("transformer.wte.weight", &[vocab, c], Init::Normal(1.0), false)];
    for i in 0..layers {
        let p = format!("transformer.h.{i}");
        params.push(linear(format!("{p}.attn.c_q.weight"), c, c));
        params.push(linear(format!("{p}.attn.c_k.weight"), kv, c));
        params.push(linear(format!("{p}.attn.c_v.weight"), kv, c));
        params.push(zeros(format!("{p}.attn.c_proj.weight"), c, c));
        params.push(linear(format!("{p}.mlp.c_fc.weight"), 4 * c, c));
        params.push(zeros(format!("{p}.mlp.c_proj.weight"), c, 4 * c));
    }
    params.push(zeros("lm_head.weight".into(), vocab, c));
    Ok(params)
}
