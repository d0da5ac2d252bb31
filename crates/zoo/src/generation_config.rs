//! What a model's `generation_config.json` adds to its config: end-of-sequence ids and
//! sampling defaults.

use serde_json::Value;
use zoo_core::SamplingParams;

/// Sampling settings a model asks for in `generation_config.json` (`do_sample`, `temperature`,
/// `top_k`, `top_p`, `min_p`, `repetition_penalty`); greedy without one, or with `do_sample`
/// off. Callers override them field by field with what a user asked for.
pub fn sampling_defaults(generation_config: Option<&Value>) -> SamplingParams {
    let cfg = generation_config.unwrap_or(&Value::Null);
    let f = |key: &str| cfg.get(key).and_then(Value::as_f64).map(|v| v as f32);
    let do_sample = cfg.get("do_sample").and_then(Value::as_bool).unwrap_or(false);
    let defaults = SamplingParams::default();
    SamplingParams {
        temperature: if do_sample { f("temperature").unwrap_or(1.0) } else { 0.0 },
        // NOTE: transformers' library default top_k is 50, but only when sampling is on and the
        // model asks for it; zoo applies no top-k unless told.
        top_k: cfg.get("top_k").and_then(Value::as_u64).map_or(defaults.top_k, |k| k as usize),
        top_p: f("top_p").unwrap_or(defaults.top_p),
        min_p: f("min_p").unwrap_or(defaults.min_p),
        repeat_penalty: f("repetition_penalty").unwrap_or(defaults.repeat_penalty),
        ..defaults
    }
}

/// End-of-sequence ids: the model config's plus the generation config's (`eos_token_id` may be
/// an integer or a list), sorted and without repeats.
pub fn eos_token_ids(model_eos: &[u32], generation_config: Option<&Value>) -> Vec<u32> {
    let mut ids = model_eos.to_vec();
    match generation_config.and_then(|c| c.get("eos_token_id")) {
        Some(Value::Number(n)) => ids.extend(n.as_u64().map(|v| v as u32)),
        Some(Value::Array(list)) => ids.extend(list.iter().filter_map(Value::as_u64).map(|v| v as u32)),
        _ => {}
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn eos_ids_merge_ints_and_lists() {
        assert_eq!(eos_token_ids(&[2], Some(&json!({"eos_token_id": [151645, 2]}))), [2, 151645]);
        assert_eq!(eos_token_ids(&[], Some(&json!({"eos_token_id": 7}))), [7]);
        assert_eq!(eos_token_ids(&[5], None), [5]);
    }
}
