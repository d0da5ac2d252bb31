//! GPT-2's training side: `<|endoftext|>` after each document, presets, and the
//! initialisation of transformers' `GPT2PreTrainedModel._init_weights`: N(0, 0.02) for
//! embeddings and matrices, N(0, 0.02/√(2·n_layer)) for the projections back into the residual
//! stream, LayerNorms at one and zero, biases zero. `Conv1D` matrices are stored `[in, out]`.

use serde_json::{json, Value};

use super::{config_usize, Init, ParamSpec};
use crate::error::{Result, TrainError};

/// GPT-2's one special token, which ends each document.
pub const SPECIAL_TOKENS: &[&str] = &["<|endoftext|>"];

const STD: f32 = 0.02;

/// The presets, with `<|endoftext|>` (`delimiter`) as BOS and EOS.
pub fn preset(name: &str, vocab_size: usize, delimiter: u32) -> Result<Value> {
    let (n_layer, n_embd, n_head, n_positions) = match name {
        "tiny" => (2, 64, 4, 64),
        "small" => (6, 384, 6, 512),
        _ => return Err(TrainError::config("--config", format!("`{name}` is not a preset (tiny, small) or a file"))),
    };
    Ok(json!({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": vocab_size,
              "n_positions": n_positions, "n_embd": n_embd, "n_layer": n_layer, "n_head": n_head,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "bos_token_id": delimiter, "eos_token_id": delimiter}))
}

/// GPT-2's parameters under the names `save_pretrained` writes (`transformer.` prefix; the
/// head tied to `wte`, so not stored).
pub fn parameters(config: &Value) -> Result<Vec<ParamSpec>> {
    let (vocab, c, layers) =
        (config_usize(config, "vocab_size")?, config_usize(config, "n_embd")?, config_usize(config, "n_layer")?);
    let positions = config_usize(config, "n_positions")?;
    let inner = match config.get("n_inner") {
        None | Some(Value::Null) => 4 * c,
        Some(_) => config_usize(config, "n_inner")?,
    };
    let residual = Init::Normal(STD / (2.0 * layers as f32).sqrt());
    let vector = |name: String, len: usize, init: Init| ParamSpec::new(name, &[len], init, false);
    let mut params = vec![
        ParamSpec::new("transformer.wte.weight", &[vocab, c], Init::Normal(STD), false),
        ParamSpec::new("transformer.wpe.weight", &[positions, c], Init::Normal(STD), false),
    ];
    for i in 0..layers {
        let p = format!("transformer.h.{i}");
        params.push(vector(format!("{p}.ln_1.weight"), c, Init::Ones));
        params.push(vector(format!("{p}.ln_1.bias"), c, Init::Zeros));
        params.push(ParamSpec::conv1d(format!("{p}.attn.c_attn.weight"), &[c, 3 * c], Init::Normal(STD)));
        params.push(vector(format!("{p}.attn.c_attn.bias"), 3 * c, Init::Zeros));
        params.push(ParamSpec::conv1d(format!("{p}.attn.c_proj.weight"), &[c, c], residual));
        params.push(vector(format!("{p}.attn.c_proj.bias"), c, Init::Zeros));
        params.push(vector(format!("{p}.ln_2.weight"), c, Init::Ones));
        params.push(vector(format!("{p}.ln_2.bias"), c, Init::Zeros));
        params.push(ParamSpec::conv1d(format!("{p}.mlp.c_fc.weight"), &[c, inner], Init::Normal(STD)));
        params.push(vector(format!("{p}.mlp.c_fc.bias"), inner, Init::Zeros));
        params.push(ParamSpec::conv1d(format!("{p}.mlp.c_proj.weight"), &[inner, c], residual));
        params.push(vector(format!("{p}.mlp.c_proj.bias"), c, Init::Zeros));
    }
    params.push(vector("transformer.ln_f.weight".into(), c, Init::Ones));
    params.push(vector("transformer.ln_f.bias".into(), c, Init::Zeros));
    Ok(params)
}
