//! Torchless `.bin` files: writing and reading back (f32 and int8), the spec's worked example,
//! older exporters' files, and one test per malformed-file case.

use std::path::Path;

use serde_json::{json, Value};
use zoo_checkpoint::torchless::{self, Quant, WriteRequest};
use zoo_checkpoint::{BpeVocab, CheckpointError, Torchless};
use zoo_core::{DType, MemoryWeights, WeightSource, WeightView};

fn config() -> Value {
    json!({
        "model_type": "mistral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 512,
        "sliding_window": null, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "rms_norm_eps": 1e-5, "hidden_act": "silu"
    })
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 517.0).collect()
}

fn weights() -> MemoryWeights {
    let mut w = MemoryWeights::new("memory");
    let shapes: [(&str, Vec<usize>); 6] = [
        ("model.embed_tokens.weight", vec![300, 64]),
        ("model.norm.weight", vec![64]),
        ("lm_head.weight", vec![300, 64]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 128]),
        ("model.layers.0.input_layernorm.weight", vec![64]),
    ];
    for (i, (name, shape)) in shapes.into_iter().enumerate() {
        let mut v = values(shape.iter().product(), i);
        if name.contains("down_proj") {
            v[64..128].iter_mut().for_each(|x| *x = 0.0); // a zero group
        }
        w.insert(WeightView::from_f32(name, shape, &v).unwrap());
    }
    w
}

fn vocab() -> BpeVocab {
    let mut vocab = vec![("<unk>".to_string(), 0), ("<s>".to_string(), 1), ("</s>".to_string(), 2)];
    vocab.extend((0..=255u32).map(|b| (format!("<0x{b:02X}>"), 3 + b)));
    vocab.extend([("▁".to_string(), 259), ("h".to_string(), 260), ("▁h".to_string(), 261)]);
    BpeVocab { vocab, merges: vec!["▁ h".into()] }
}

fn write(path: &Path, source: &dyn WeightSource, config: &Value, quant: Quant) {
    let vocab = vocab();
    torchless::write(path, &WriteRequest { config, weights: source, vocab: Some(&vocab), quant, progress: None })
        .unwrap();
}

#[test]
fn f32_files_round_trip_exactly_and_in_place() {
    let (dir, path) = written(Quant::F32);
    let source = weights();
    let file = Torchless::open(&path).unwrap();
    assert_eq!(file.names(), source.names());
    for name in source.names() {
        let (a, b) = (source.get(&name).unwrap(), file.get(&name).unwrap());
        assert_eq!((b.dtype, &b.shape), (DType::F32, &a.shape));
        assert_eq!(b.data.as_slice(), a.data.as_slice(), "{name}");
        assert_eq!(b.data.as_slice().as_ptr() as usize % 64, 0, "{name} is 64-byte aligned in the map");
    }
    let config = file.config().unwrap();
    assert_eq!(config["model_type"], "mistral");
    assert_eq!(config["num_key_value_heads"], 2);
    assert_eq!(config["sliding_window"], Value::Null);
    assert_eq!(config["rope_theta"], 10000.0);
    assert_eq!(config["rms_norm_eps"], 1e-5);
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!((config["bos_token_id"].clone(), config["eos_token_id"].clone()), (json!(1), json!(2)));
    assert_eq!(file.metadata()["norm_eps"], "1e-05");
    assert_eq!(file.vocab(), Some(&vocab()));

    let again = dir.path().join("again.bin");
    write(&again, &file, &config, Quant::F32);
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap(), ".bin → .bin is byte-stable");
}

#[test]
fn int8_files_quantise_proj_matrices_and_round_trip() {
    let (dir, path) = written(Quant::Int8);
    let source = weights();
    let file = Torchless::open(&path).unwrap();
    for name in source.names() {
        let (a, b) = (source.get(&name).unwrap(), file.get(&name).unwrap());
        let want = if name.contains("_proj") { DType::I8 } else { DType::F32 };
        assert_eq!(b.dtype, want, "{name}");
        let (x, y) = (a.to_f32_vec(), b.to_f32_vec());
        for (gx, gy) in x.chunks(64).zip(y.chunks(64)) {
            let amax = gx.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (u, v) in gx.iter().zip(gy) {
                assert!((u - v).abs() <= amax / 254.0 * 1.001, "{name}: {u} vs {v}");
                assert!(v.is_finite());
            }
        }
    }
    let again = dir.path().join("again.bin");
    write(&again, &file, &file.config().unwrap(), Quant::Int8);
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap(), "int8 .bin → .bin is byte-stable");
}

#[test]
fn layout_follows_the_spec_worked_example() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    let mut w = MemoryWeights::new("memory");
    w.insert(WeightView::from_f32("model.layers.0.mlp.up_proj.weight", vec![2, 64], &values(128, 1)).unwrap());
    w.insert(WeightView::from_f32("model.norm.weight", vec![4], &[1.0, 2.0, 3.0, 4.0]).unwrap());
    write(&path, &w, &config(), Quant::Int8);
    let bytes = std::fs::read(&path).unwrap();
    let header_size = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + header_size) % 64, 0);
    assert_eq!(bytes.len(), 8 + header_size + 208, "the file ends at the last tensor");
    let text = std::str::from_utf8(&bytes[8..8 + header_size]).unwrap().trim_end_matches('\0');
    assert!(text.starts_with(r#"{"metadata": {"hidden_size": "64", "intermediate_size": "128", "n_layers": "1""#));
    assert!(text.contains(
        r#""model.layers.0.mlp.up_proj.weight": {"dtype": "int8", "shape": [2, 64], "offset": 0, "scale_offset": 128, "scale_size": 2}"#
    ));
    assert!(text.contains(r#""model.norm.weight": {"dtype": "f32", "shape": [4], "offset": 192}"#));
    assert!(text.contains(r#""rope_theta": "10000.0", "norm_eps": "1e-05", "act_type": "silu", "quant": "int8""#));
    assert!(text.contains(r#""sliding_window": "None""#));
    let norm = &bytes[8 + header_size + 192..];
    assert_eq!(norm, bytemuck_f32(&[1.0, 2.0, 3.0, 4.0]));
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

// ---- files written by hand: older exporters and malformed input ----

/// Writes a file from a header and a payload; `pad` puts the payload on a 64-byte boundary as
/// current exporters do.
fn raw_file(dir: &Path, header: &Value, payload: &[u8], pad: bool) -> std::path::PathBuf {
    let mut json = serde_json::to_vec(header).unwrap();
    if pad {
        json.resize(json.len() + (64 - (8 + json.len()) % 64) % 64, 0);
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(&json);
    bytes.extend(payload);
    let path = dir.join("model.bin");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn metadata() -> Value {
    json!({"hidden_size": "64", "intermediate_size": "128", "n_layers": "1", "n_heads": "4", "n_kv_heads": "2",
           "vocab_size": "300", "max_position_embeddings": "512", "sliding_window": "4096", "rope_theta": "10000.0",
           "norm_eps": "1e-05", "act_type": "silu", "quant": "int8"})
}

#[test]
fn older_exporters_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    // No header padding, scale_size in bytes, an all-zero group whose scale is inf (127/0), and a
    // NaN-scaled group: neither may produce NaN.
    let header = json!({"metadata": metadata(), "tensors": {
        "model.layers.0.mlp.up_proj.weight": {"dtype": "int8", "shape": [3, 64], "offset": 0, "scale_offset": 192, "scale_size": 12},
        "model.norm.weight": {"dtype": "f32", "shape": [2], "offset": 204}
    }, "tokenizer": {"vocab": {}, "merges": []}});
    let mut payload: Vec<u8> = (0..192).map(|i| if i < 64 { (i as i8 - 32) as u8 } else { 0 }).collect();
    payload.extend(bytemuck_f32(&[2.0, f32::INFINITY, f32::NAN, 0.5, -1.0]));
    let path = raw_file(dir.path(), &header, &payload, false);
    let file = Torchless::open(&path).unwrap();
    let up = file.get("model.layers.0.mlp.up_proj.weight").unwrap().to_f32_vec();
    assert_eq!(up[0], -16.0);
    assert_eq!(up[33], 0.5);
    assert!(up[64..].iter().all(|&v| v == 0.0));
    assert_eq!(file.get("model.norm.weight").unwrap().to_f32_vec(), vec![0.5, -1.0]);
    assert_eq!(file.config().unwrap()["sliding_window"], 4096);
    assert!(file.tokenizer().unwrap().is_none());
}

/// Opens `header`/`payload` and returns the error text, which must name the file.
fn open_error(header: &Value, payload: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = raw_file(dir.path(), header, payload, true);
    let message = match Torchless::open(&path) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{header} opened"),
    };
    assert!(message.contains("model.bin"), "{message}");
    message
}

fn with_tensors(tensors: Value) -> Value {
    json!({"metadata": metadata(), "tensors": tensors, "tokenizer": {"vocab": {}, "merges": []}})
}

#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    std::fs::write(&path, [1u8, 2, 3]).unwrap();
    let e = Torchless::open(&path).err().unwrap().to_string();
    assert!(e.contains("model.bin") && e.contains("truncated"), "{e}");
    // A file cut inside the payload: the tensor now lies outside it.
    let header = with_tensors(json!({"model.norm.weight": {"dtype": "f32", "shape": [64], "offset": 0}}));
    let e = open_error(&header, &[0; 100]);
    assert!(e.contains("model.norm.weight") && e.contains("outside the payload"), "{e}");
}

#[test]
fn header_longer_than_the_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend(b"{}");
    std::fs::write(&path, bytes).unwrap();
    let e = Torchless::open(&path).err().unwrap().to_string();
    assert!(e.contains("model.bin") && e.contains("header length"), "{e}");
}

#[test]
fn invalid_json_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    let mut bytes = 5u64.to_le_bytes().to_vec();
    bytes.extend(b"{\"a\":");
    std::fs::write(&path, bytes).unwrap();
    let e = Torchless::open(&path).err().unwrap().to_string();
    assert!(e.contains("model.bin") && e.contains("invalid JSON"), "{e}");
    let e = open_error(&json!({"tensors": {}}), &[]);
    assert!(e.contains("metadata"), "{e}");
}

#[test]
fn unknown_dtypes_are_errors() {
    let e = open_error(&with_tensors(json!({"w": {"dtype": "q4", "shape": [4], "offset": 0}})), &[0; 64]);
    assert!(e.contains("`w`") && e.contains("q4"), "{e}");
    assert!(matches!(
        {
            let dir = tempfile::tempdir().unwrap();
            let h = with_tensors(json!({"w": {"dtype": "bf16", "shape": [4], "offset": 0}}));
            Torchless::open(&raw_file(dir.path(), &h, &[0; 64], true)).err().unwrap()
        },
        CheckpointError::UnsupportedDType { .. }
    ));
}

#[test]
fn offsets_and_shapes_outside_the_payload_are_errors() {
    let cases = [
        json!({"w": {"dtype": "f32", "shape": [4], "offset": 60}}),
        json!({"w": {"dtype": "f32", "shape": [4], "offset": u64::MAX}}),
        json!({"w": {"dtype": "f32", "shape": [1u64 << 40, 1u64 << 40], "offset": 0}}),
        json!({"w": {"dtype": "f32", "shape": [u64::MAX, 2], "offset": 0}}),
        json!({"w": {"dtype": "int8", "shape": [64], "offset": 0, "scale_offset": 62, "scale_size": 1}}),
        json!({"w": {"dtype": "f32", "shape": [-1], "offset": 0}}),
    ];
    for tensors in cases {
        let e = open_error(&with_tensors(tensors.clone()), &[0; 64]);
        assert!(e.contains("`w`"), "{tensors}: {e}");
    }
}

#[test]
fn bad_int8_records_are_errors() {
    let e = open_error(
        &with_tensors(json!({"w": {"dtype": "int8", "shape": [64], "offset": 0, "scale_offset": 64, "scale_size": 3}})),
        &[0; 128],
    );
    assert!(e.contains("`w`") && e.contains("scale_size"), "{e}");
    let e = open_error(
        &with_tensors(json!({"w": {"dtype": "int8", "shape": [60], "offset": 0, "scale_offset": 64, "scale_size": 1}})),
        &[0; 128],
    );
    assert!(e.contains("`w`") && e.contains("64"), "{e}");
    let e = open_error(&with_tensors(json!({"w": {"dtype": "int8", "shape": [64], "offset": 0}})), &[0; 128]);
    assert!(e.contains("`w`") && e.contains("scale_offset"), "{e}");
}

#[test]
fn overlapping_tensors_are_errors() {
    let e = open_error(
        &with_tensors(json!({
            "a": {"dtype": "f32", "shape": [16], "offset": 0},
            "b": {"dtype": "f32", "shape": [4], "offset": 32}
        })),
        &[0; 64],
    );
    assert!(e.contains("`a`") && e.contains("`b`") && e.contains("overlap"), "{e}");
    // int8 scales that run into another tensor's data.
    let e = open_error(
        &with_tensors(json!({
            "a": {"dtype": "int8", "shape": [64], "offset": 0, "scale_offset": 64, "scale_size": 1},
            "b": {"dtype": "f32", "shape": [4], "offset": 64}
        })),
        &[0; 128],
    );
    assert!(e.contains("overlap"), "{e}");
}

/// The test model written as `model.bin` in a new temporary directory (kept while the
/// returned guard lives).
fn written(quant: Quant) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    write(&path, &weights(), &config(), quant);
    (dir, path)
}

#[test]
fn missing_tensors_are_errors_naming_file_and_tensor() {
    let (_dir, path) = written(Quant::F32);
    let file = Torchless::open(&path).unwrap();
    let e = file.get("model.layers.1.mlp.up_proj.weight").unwrap_err().to_string();
    assert!(e.contains("model.layers.1.mlp.up_proj.weight") && e.contains("model.bin"), "{e}");
}

#[test]
fn bad_metadata_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = metadata();
    meta["n_heads"] = json!("four");
    let path = raw_file(dir.path(), &json!({"metadata": meta, "tensors": {}}), &[], true);
    let e = Torchless::open(&path).unwrap().config().unwrap_err().to_string();
    assert!(e.contains("model.bin") && e.contains("n_heads"), "{e}");
}

#[test]
fn non_mistral_configs_are_refused_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = vocab();
    let request = WriteRequest {
        config: &json!({"model_type": "gpt2"}),
        weights: &weights(),
        vocab: Some(&vocab),
        quant: Quant::F32,
        progress: None,
    };
    let e = torchless::write(&dir.path().join("x.bin"), &request).unwrap_err().to_string();
    assert!(e.contains("gpt2"), "{e}");
}

#[test]
fn checkpoint_open_recognises_bin_files() {
    let (_dir, path) = written(Quant::Int8);
    let ckpt = zoo_checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.config["model_type"], "mistral");
    let tok = ckpt.tokenizer.unwrap();
    assert_eq!(tok.encode("h", true).unwrap(), vec![1, 261]);
}
