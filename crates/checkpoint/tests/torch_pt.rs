//! `torch.save` files and nanochat checkpoint directories, read without Python.
//!
//! Fixtures in `tests/data/` are written by `xtask/python/make_pt_fixtures.py` (real torch output,
//! or real output with one defect each). Values are exact; every bad file is an error naming it.

use std::path::{Path, PathBuf};

use zoo_checkpoint::torch_pt::TorchPt;
use zoo_checkpoint::{open, open_with, OpenOptions};
use zoo_core::{DType, WeightSource};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn values(pt: &TorchPt, name: &str) -> (DType, Vec<usize>, Vec<f32>) {
    let view = pt.get(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    (view.dtype, view.shape.clone(), view.to_f32_vec())
}

/// Checks the contents of `tensors_p{2,4}.pt` (see `tensors()` in the fixture script).
fn check_tensors(file: &str) {
    let pt = TorchPt::open(&data(file)).unwrap();
    assert_eq!(pt.names(), ["base", "bf16", "compiled.weight", "f16", "f32", "scalar", "tied", "view"]);
    let f32s = vec![-1.0, -0.5, 0.0, 0.5, 1.0, 1.5];
    assert_eq!(values(&pt, "f32"), (DType::F32, vec![2, 3], f32s.clone()));
    assert_eq!(values(&pt, "tied"), (DType::F32, vec![2, 3], f32s));
    assert_eq!(values(&pt, "f16"), (DType::F16, vec![3], vec![1.5, -2.25, 65504.0]));
    assert_eq!(values(&pt, "bf16"), (DType::BF16, vec![3], vec![1.0, -3.5, 0.0078125]));
    assert_eq!(values(&pt, "scalar"), (DType::F32, vec![], vec![7.0]));
    let base: Vec<f32> = (0..12).map(|i| i as f32).collect();
    assert_eq!(values(&pt, "base"), (DType::F32, vec![4, 3], base.clone()));
    assert_eq!(values(&pt, "view"), (DType::F32, vec![3, 3], base[3..].to_vec()));
    assert_eq!(values(&pt, "compiled.weight"), (DType::F32, vec![2], vec![0.25, -0.75]));
    assert!(pt.contains("compiled.weight") && !pt.contains("_orig_mod.compiled.weight"));
    // Zero-copy: torch aligns storages, so f32 data is usable in place.
    assert!(pt.get("f32").unwrap().as_f32_slice().is_some());
    let err = pt.get("nope").unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains(file), "{err}");
}

#[test]
fn reads_protocol_2() {
    check_tensors("tensors_p2.pt");
}

#[test]
fn reads_protocol_4() {
    check_tensors("tensors_p4.pt");
}

#[test]
fn reads_a_module_state_dict_with_compile_prefix() {
    let pt = TorchPt::open(&data("module_state_dict.pt")).unwrap();
    assert_eq!(pt.names(), ["bias", "weight"]);
    assert_eq!(values(&pt, "weight"), (DType::F32, vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, -2.0, -3.0]));
    assert_eq!(values(&pt, "bias"), (DType::F32, vec![2], vec![0.5, -0.5]));
}

/// The error of `get(tensor)`, checked to name the file and the tensor.
fn get_err(file: &str, tensor: &str) -> String {
    let pt = TorchPt::open(&data(file)).unwrap();
    let err = pt.get(tensor).unwrap_err().to_string();
    assert!(err.contains(file) && err.contains(tensor), "error does not name file and tensor: {err}");
    err
}

#[test]
fn unsupported_dtypes_fail_on_get_naming_the_tensor() {
    assert!(get_err("other_dtypes.pt", "ids").contains("unsupported dtype int64"));
    assert!(get_err("other_dtypes.pt", "f64").contains("unsupported dtype float64"));
    let pt = TorchPt::open(&data("other_dtypes.pt")).unwrap();
    assert_eq!(values(&pt, "ok"), (DType::F32, vec![1], vec![2.0]));
}

#[test]
fn non_contiguous_tensors_fail_on_get() {
    let err = get_err("non_contiguous.pt", "t");
    assert!(err.contains("not contiguous") && err.contains("stride [1, 3]"), "{err}");
}

/// The error of opening `path`, checked to name the file.
fn open_err(path: &Path) -> String {
    let err = TorchPt::open(path).err().expect("opening must fail").to_string();
    let file = path.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(file), "error does not name the file: {err}");
    err
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    for (file, expected) in [
        ("missing_pkl.pt", "no `<archive>/data.pkl` entry"),
        ("missing_storage.pt", "tensor `f32`: no `tensors_p2/data/0` entry"),
        ("truncated_pkl.pt", "data.pkl: pickle byte"),
        ("beyond_storage.pt", "tensor `a`: extends beyond its storage `0`: elements 0..5 of 4"),
    ] {
        let err = open_err(&data(file));
        assert!(err.contains(expected), "{file}: {err}");
    }
}

#[test]
fn truncated_and_non_zip_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("tensors_p2.pt")).unwrap();
    let path = dir.path().join("truncated.pt");
    for len in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..len]).unwrap();
        open_err(&path);
    }
    std::fs::write(&path, b"\x80\x02}q\x00.").unwrap();
    assert!(open_err(&path).contains("legacy format"));
}

#[test]
fn corrupted_bytes_never_panic() {
    // Every single-byte corruption and every truncation either opens or fails cleanly, and every
    // listed tensor either reads or fails cleanly.
    let good = std::fs::read(data("tensors_p4.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.pt");
    let flips = (0..good.len()).map(|i| {
        let mut bytes = good.clone();
        bytes[i] ^= 0xa5;
        bytes
    });
    let cuts = (0..good.len()).map(|len| good[..len].to_vec());
    for bytes in flips.chain(cuts) {
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(pt) = TorchPt::open(&path) {
            for name in pt.names() {
                let _ = pt.get(&name).map(|view| view.to_f32_vec());
            }
        }
    }
}

#[test]
fn reads_the_zip64_directory_record() {
    // torch always writes a zip64 end record; files past 4 GiB put 0xffff.. placeholders in the
    // classic one. Force that path on a small file.
    let mut bytes = std::fs::read(data("tensors_p2.pt")).unwrap();
    let eocd = bytes.len() - 22;
    assert_eq!(bytes[eocd..eocd + 4], [b'P', b'K', 5, 6]);
    bytes[eocd + 8..eocd + 20].copy_from_slice(&[0xff; 12]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zip64.pt");
    std::fs::write(&path, &bytes).unwrap();
    let pt = TorchPt::open(&path).unwrap();
    assert_eq!(values(&pt, "compiled.weight"), (DType::F32, vec![2], vec![0.25, -0.75]));
}

/// A nanochat directory with steps 100 (`tensors_p2.pt`) and 2000 (`module_state_dict.pt`).
fn nanochat_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (step, pt) in [(100, "tensors_p2.pt"), (2000, "module_state_dict.pt")] {
        std::fs::copy(data(pt), dir.path().join(format!("model_{step:06}.pt"))).unwrap();
        let meta = format!(
            r#"{{"step": {step}, "model_config": {{"sequence_len": 64, "vocab_size": 32, "n_layer": 1,
                "n_head": 2, "n_kv_head": 2, "n_embd": {step}}}}}"#
        );
        std::fs::write(dir.path().join(format!("meta_{step:06}.json")), meta).unwrap();
    }
    dir
}

#[test]
fn nanochat_dir_picks_the_newest_step() {
    let dir = nanochat_dir();
    let ckpt = open(dir.path()).unwrap();
    assert!(ckpt.path.ends_with("model_002000.pt"));
    assert_eq!(ckpt.config["model_type"], "nanochat");
    assert_eq!(ckpt.config["n_embd"], 2000);
    assert_eq!(ckpt.weights.names(), ["bias", "weight"]);
    assert!(ckpt.tokenizer.is_none());
}

#[test]
fn nanochat_dir_opens_a_requested_step() {
    let dir = nanochat_dir();
    let ckpt = open_with(dir.path(), &OpenOptions { step: Some(100) }).unwrap();
    assert!(ckpt.path.ends_with("model_000100.pt"));
    assert_eq!(ckpt.config["n_embd"], 100);
    assert!(ckpt.weights.contains("view"));
    // A model file selects its own step.
    let ckpt = open(&dir.path().join("model_000100.pt")).unwrap();
    assert_eq!(ckpt.config["n_embd"], 100);
}

#[test]
fn nanochat_dir_missing_step_lists_the_available_ones() {
    let dir = nanochat_dir();
    let err = open_with(dir.path(), &OpenOptions { step: Some(5) }).err().unwrap().to_string();
    assert!(err.contains("step 5") && err.contains("available steps: 100, 2000"), "{err}");
    assert!(err.contains(dir.path().to_str().unwrap()), "{err}");
}

#[test]
fn nanochat_dir_without_meta_for_the_step_is_an_error() {
    let dir = nanochat_dir();
    std::fs::remove_file(dir.path().join("meta_002000.json")).unwrap();
    let err = open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("meta_002000.json"), "{err}");
}
