//! GGUF tensor names → HF (transformers) names, and the one layout change llama.cpp makes to
//! Llama weights: the rows of `attn_q` / `attn_k` are permuted for its RoPE.
//!
//! Names follow llama.cpp's `gguf-py/gguf/constants.py` for the Llama-style decoders
//! (`llama`, `mistral`, `qwen2`, `qwen3`); other tensors keep their GGUF name, so a model asking for a
//! name that has no mapping gets a clear "missing tensor" error.

/// The HF name of GGUF tensor `name`, or `None` when it has no Llama-style equivalent.
pub fn hf_name(name: &str) -> Option<String> {
    let top = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(top) = top {
        return Some(top.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, param) = rest.rsplit_once('.')?;
    let module = match module {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{module}.{param}"))
}

/// For a tensor that llama.cpp's converter permuted, the number of heads it was permuted with:
/// `attn_q` by the query heads, `attn_k` by the key/value heads (weights and biases alike).
pub fn permuted_heads(gguf_name: &str, n_heads: usize, n_kv_heads: usize) -> Option<usize> {
    let rest = gguf_name.strip_prefix("blk.")?;
    let (_, rest) = rest.split_once('.')?;
    match rest.rsplit_once('.')?.0 {
        "attn_q" => Some(n_heads),
        "attn_k" => Some(n_kv_heads),
        _ => None,
    }
}

/// Undoes llama.cpp's Q/K permutation on `rows` rows of `row_bytes` bytes each.
///
/// NOTE: llama.cpp's `convert_hf_to_gguf.py` stores each head's rows as
/// `reshape(heads, 2, head_dim/2, …).swapaxes(1, 2)`: it interleaves the two halves that HF's
/// `rotate_half` RoPE pairs, so llama.cpp can rotate adjacent pairs. HF row `(h, i, j)`
/// (half `i`, index `j` within the half) is therefore stored at row `(h, j, i)`. Moving whole
/// rows works for every type, quantised ones included, because a row is whole blocks.
pub fn unpermute_rows(data: &[u8], rows: usize, row_bytes: usize, heads: usize) -> Option<Vec<u8>> {
    if heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0 || data.len() != rows.checked_mul(row_bytes)? {
        return None;
    }
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..half {
                let src = h * head_dim + 2 * j + i;
                out.extend_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_names_map_to_hf() {
        assert_eq!(hf_name("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert_eq!(hf_name("blk.12.attn_output.weight").unwrap(), "model.layers.12.self_attn.o_proj.weight");
        assert_eq!(hf_name("blk.0.attn_q.bias").unwrap(), "model.layers.0.self_attn.q_proj.bias");
        assert_eq!(hf_name("blk.3.ffn_norm.weight").unwrap(), "model.layers.3.post_attention_layernorm.weight");
        assert_eq!(hf_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(hf_name("blk.2.attn_k_norm.weight").unwrap(), "model.layers.2.self_attn.k_norm.weight");
    }

    #[test]
    fn unpermute_inverts_the_converters_permutation() {
        // Two heads of head_dim 4, one byte per row: HF rows 0..8.
        let hf: Vec<u8> = (0..8).collect();
        // llama.cpp's permute: per head, reshape(2, 2).swapaxes → rows [0, 2, 1, 3].
        let stored = [0, 2, 1, 3, 4, 6, 5, 7];
        assert_eq!(unpermute_rows(&stored, 8, 1, 2).unwrap(), hf);
        assert_eq!(permuted_heads("blk.1.attn_k.weight", 9, 3), Some(3));
        assert_eq!(permuted_heads("blk.1.attn_v.weight", 9, 3), None);
        assert!(unpermute_rows(&stored, 8, 1, 3).is_none());
    }
}
