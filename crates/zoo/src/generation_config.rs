//! What a model's `generation_config.json` adds to its config: end-of-sequence ids.

use serde_json::Value;

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
