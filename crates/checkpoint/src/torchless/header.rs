//! The Torchless JSON header: `metadata` (all values strings) ↔ an HF Mistral `config.json`, and
//! JSON text written the way Python's `json.dumps` writes it (`", "` / `": "` separators,
//! non-ASCII as `\uXXXX`), so zoo's files match the exporter's byte for byte in the header.

use std::io;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{CheckpointError, Result};

/// Group size of int8 tensors (`GROUP_SIZE` in the exporter).
pub const GROUP_SIZE: usize = 64;

/// `metadata` keys and the HF `config.json` keys they come from, in the exporter's order.
/// (`quant` comes last and is not a config key.)
const METADATA_KEYS: [(&str, &str); 11] = [
    ("hidden_size", "hidden_size"),
    ("intermediate_size", "intermediate_size"),
    ("n_layers", "num_hidden_layers"),
    ("n_heads", "num_attention_heads"),
    ("n_kv_heads", "num_key_value_heads"),
    ("vocab_size", "vocab_size"),
    ("max_position_embeddings", "max_position_embeddings"),
    ("sliding_window", "sliding_window"),
    ("rope_theta", "rope_theta"),
    ("norm_eps", "rms_norm_eps"),
    ("act_type", "hidden_act"),
];

/// Metadata keys that are integers (parsed with `stoi` by the C++ loader).
const INTEGER_KEYS: [&str; 7] =
    ["hidden_size", "intermediate_size", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "max_position_embeddings"];

/// Model types whose weights and config a Torchless (Mistral-layout) file can hold.
pub const WRITABLE_MODEL_TYPES: [&str; 2] = ["mistral", "llama"];

/// Builds an HF-style Mistral `config.json` from a file's `metadata`; `has_lm_head` decides
/// `tie_word_embeddings`, `bos`/`eos` come from the embedded vocabulary.
pub fn metadata_to_config(
    path: &Path,
    metadata: &Map<String, Value>,
    has_lm_head: bool,
    bos: Option<u32>,
    eos: Option<u32>,
) -> Result<Value> {
    let text = |key: &str| -> Result<String> {
        match metadata.get(key) {
            Some(Value::String(s)) => Ok(s.trim().to_string()),
            Some(v @ Value::Number(_)) => Ok(v.to_string()),
            _ => Err(CheckpointError::invalid(path, format!("metadata `{key}` is missing or not a string"))),
        }
    };
    let int = |key: &str| -> Result<u64> {
        let s = text(key)?;
        s.parse().map_err(|_| CheckpointError::invalid(path, format!("metadata `{key}` = {s:?} is not an integer")))
    };
    let float = |key: &str| -> Result<f64> {
        let s = text(key)?;
        s.parse().map_err(|_| CheckpointError::invalid(path, format!("metadata `{key}` = {s:?} is not a number")))
    };
    let mut config = json!({
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": int("hidden_size")?,
        "intermediate_size": int("intermediate_size")?,
        "num_hidden_layers": int("n_layers")?,
        "num_attention_heads": int("n_heads")?,
        "num_key_value_heads": int("n_kv_heads")?,
        "vocab_size": int("vocab_size")?,
        "max_position_embeddings": int("max_position_embeddings")?,
        "rope_theta": float("rope_theta")?,
        "rms_norm_eps": float("norm_eps")?,
        "hidden_act": metadata.get("act_type").and_then(Value::as_str).unwrap_or("silu"),
        "tie_word_embeddings": !has_lm_head,
    });
    let window = text("sliding_window").unwrap_or_else(|_| "None".into());
    config["sliding_window"] = match window.as_str() {
        "None" | "none" | "null" | "" | "0" => Value::Null,
        _ => json!(int("sliding_window")?),
    };
    // torchless-rs' optional extension; absent in files from the Python exporter.
    if metadata.contains_key("head_dim") {
        config["head_dim"] = json!(int("head_dim")?);
    }
    if let Some(bos) = bos {
        config["bos_token_id"] = json!(bos);
    }
    if let Some(eos) = eos {
        config["eos_token_id"] = json!(eos);
    }
    Ok(config)
}

/// Builds `metadata` from an HF config (transformers 4.x or 5.x layout) the way the exporter does:
/// every value through Python's `str()`. `path` names the source in errors.
pub fn config_to_metadata(path: &Path, config: &Value, quant: &str) -> Result<Vec<(String, String)>> {
    let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or("");
    if !WRITABLE_MODEL_TYPES.contains(&model_type) {
        return Err(CheckpointError::invalid(
            path,
            format!("Torchless files hold Mistral-layout models (mistral, llama), not `{model_type}`"),
        ));
    }
    let mut metadata = Vec::new();
    for (key, hf_key) in METADATA_KEYS {
        let value = match hf_key {
            "rope_theta" => config.get("rope_theta").or_else(|| config.pointer("/rope_parameters/rope_theta")),
            "num_key_value_heads" => config.get(hf_key).or_else(|| config.get("num_attention_heads")),
            "sliding_window" => Some(config.get(hf_key).unwrap_or(&Value::Null)),
            _ => config.get(hf_key),
        };
        let value = value.ok_or_else(|| CheckpointError::invalid(path, format!("config has no `{hf_key}`")))?;
        if INTEGER_KEYS.contains(&key) && !value.is_u64() {
            return Err(CheckpointError::invalid(path, format!("config `{hf_key}` is not an integer")));
        }
        metadata.push((key.to_string(), python_str(value)));
    }
    metadata.push(("quant".into(), quant.into()));
    let heads = config.get("num_attention_heads").and_then(Value::as_u64).unwrap_or(0);
    let hidden = config.get("hidden_size").and_then(Value::as_u64).unwrap_or(0);
    if let Some(head_dim) = config.get("head_dim").and_then(Value::as_u64) {
        // NOTE: the C++ loader assumes hidden_size / n_heads; torchless-rs reads this extension.
        if heads == 0 || head_dim * heads != hidden {
            metadata.push(("head_dim".into(), head_dim.to_string()));
        }
    }
    Ok(metadata)
}

/// Python's `str()` of a JSON value: `None`, `True`, integers as digits, floats in `repr` form
/// (`10000.0`, `1e-05`), strings unquoted.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => python_float(n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

/// Python's `repr(float)`: the shortest round-tripping digits, positional for exponents in
/// `-4..16` (always with a `.`), scientific with a signed two-digit exponent otherwise.
pub fn python_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan"
        } else if x > 0.0 {
            "inf"
        } else {
            "-inf"
        }
        .into();
    }
    let sci = format!("{x:e}"); // e.g. "1e-5", "1.5e16"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{x}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// An object whose members keep the given order (Python dicts keep insertion order; serde_json's
/// map sorts), members already encoded with [`to_python_json`].
pub fn python_object<'a>(members: impl IntoIterator<Item = (&'a str, Vec<u8>)>) -> Vec<u8> {
    let mut out = vec![b'{'];
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend(to_python_json(&Value::String(key.to_string())));
        out.extend_from_slice(b": ");
        out.extend(value);
    }
    out.push(b'}');
    out
}

/// Writes `value` as Python's `json.dumps(value)` would (object keys in serde_json's order).
pub fn to_python_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serialising a `Value` into a Vec cannot fail.
    let _ = serde::Serialize::serialize(value, &mut ser);
    out
}

/// `json.dumps` defaults: `", "` and `": "` separators, `ensure_ascii=True`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        for (x, want) in [(10000.0, "10000.0"), (1e-5, "1e-05"), (1e-6, "1e-06"), (0.0001, "0.0001"), (1e16, "1e+16")] {
            assert_eq!(python_float(x), want);
        }
        assert_eq!(python_float(1000000.0), "1000000.0");
        assert_eq!(python_float(2.5e-7), "2.5e-07");
    }

    #[test]
    fn json_text_matches_json_dumps() {
        let vocab = python_object([("😀", b"4".to_vec()), ("▁hi", b"3".to_vec())]);
        let v = json!({"metadata": {"a": "1"}, "merges": ["▁ h"], "shape": [2, 64]});
        let text = String::from_utf8(python_object([("t", to_python_json(&v)), ("vocab", vocab)])).unwrap();
        assert_eq!(
            text,
            r#"{"t": {"merges": ["\u2581 h"], "metadata": {"a": "1"}, "shape": [2, 64]}, "vocab": {"\ud83d\ude00": 4, "\u2581hi": 3}}"#
        );
    }
}
