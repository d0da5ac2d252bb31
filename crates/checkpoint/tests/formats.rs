//! Formats by content: files are recognised by their first bytes whatever their names, and HF
//! directories that ship PyTorch weights (`pytorch_model.bin`, single or sharded) are read
//! through the PyTorch reader. Bad shard indexes are errors naming the index.

use std::path::{Path, PathBuf};

use zoo_checkpoint::sniff::{sniff, FileKind};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A copy of `source` under a temporary directory, named `name`.
fn renamed(source: &Path, name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::copy(source, &path).unwrap();
    (tmp, path)
}

#[test]
fn files_are_recognised_by_content_not_name() {
    for (file, kind) in [("tensors_p2.pt", FileKind::TorchZip), ("quant_types.gguf", FileKind::Gguf)] {
        let (_tmp, path) = renamed(&data(file), "weights.bin");
        assert_eq!(sniff(&path).unwrap(), Some(kind), "{file}");
    }
    let (_tmp, text) = renamed(&data("tensors_p2.pt"), "x");
    std::fs::write(&text, "hello").unwrap();
    assert_eq!(sniff(&text).unwrap(), None);
    // A PyTorch zip named .bin is not taken for Torchless: it needs its config.
    let (_tmp, path) = renamed(&data("tensors_p2.pt"), "model.bin");
    let err = zoo_checkpoint::open(&path).err().expect("no config").to_string();
    assert!(err.contains("without its config") && err.contains("model.bin"), "{err}");
}

/// An HF directory of `tensors_p2.pt` saved as PyTorch shards with `index` as its index.
fn sharded_dir(index: serde_json::Value) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    std::fs::copy(data("tensors_p2.pt"), tmp.path().join("pytorch_model-00001-of-00001.bin")).unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin.index.json"), index.to_string()).unwrap();
    tmp
}

#[test]
fn hf_directories_with_pytorch_shards() {
    let shard = "pytorch_model-00001-of-00001.bin";
    let dir = sharded_dir(serde_json::json!({"weight_map": {"f32": shard, "tied": shard}}));
    let checkpoint = zoo_checkpoint::open(dir.path()).unwrap();
    assert!(checkpoint.weights.contains("f32") && checkpoint.weights.contains("bf16"));
    assert_eq!(
        checkpoint.weights.get("tied").unwrap().to_f32_vec(),
        checkpoint.weights.get("f32").unwrap().to_f32_vec()
    );

    let dir = sharded_dir(serde_json::json!({"weight_map": {"missing": shard}}));
    let err = zoo_checkpoint::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("pytorch_model.bin.index.json") && err.contains("`missing`"), "{err}");
    let dir = sharded_dir(serde_json::json!({"weight_map": {"f32": "../elsewhere.bin"}}));
    let err = zoo_checkpoint::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("is not a file name"), "{err}");
    let dir = sharded_dir(serde_json::json!({"weights": {}}));
    let err = zoo_checkpoint::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("no `weight_map`"), "{err}");
}

#[test]
fn hf_directories_without_weights_name_every_file_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
    let err = zoo_checkpoint::open(tmp.path()).err().unwrap().to_string();
    assert!(err.contains("pytorch_model.bin.index.json") && err.contains("model.safetensors"), "{err}");
}
