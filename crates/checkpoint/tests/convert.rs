//! Conversions between an HF directory, a Torchless `.bin` and a Burn `.mpk`: round trips keep
//! every tensor (f32: bit for bit; `.bin → .bin` byte for byte), configs and tokenizers travel.

use std::path::Path;

use serde_json::json;
use zoo_checkpoint::convert::{convert, differing_tensors, ConvertOptions, Format};
use zoo_checkpoint::BpeVocab;
use zoo_core::{DType, MemoryWeights, WeightSource, WeightView};

/// A temporary directory holding the test model as an HF directory, `hf/`.
fn hf_source() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    hf_dir(&hf);
    (tmp, hf)
}

/// A tiny Mistral-layout HF directory with a SentencePiece tokenizer.json.
fn hf_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let config = json!({
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 262, "max_position_embeddings": 256, "sliding_window": 4096, "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": false
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut w = MemoryWeights::new("memory");
    let shapes = [
        ("model.embed_tokens.weight", vec![262, 64]),
        ("lm_head.weight", vec![262, 64]),
        ("model.norm.weight", vec![64]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.gate_proj.weight", vec![128, 64]),
    ];
    for (i, (name, shape)) in shapes.into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|j| ((j * 31 + i * 7) as f32 * 0.013).sin()).collect();
        w.insert(WeightView::from_f32(name, shape, &v).unwrap());
    }
    zoo_checkpoint::safetensors::write(&dir.join("model.safetensors"), &w, None, None).unwrap();
    let mut vocab = vec![("<unk>".to_string(), 0), ("<s>".to_string(), 1), ("</s>".to_string(), 2)];
    vocab.extend((0..=255u32).map(|b| (format!("<0x{b:02X}>"), 3 + b)));
    vocab.extend([("▁".to_string(), 259), ("h".to_string(), 260), ("▁h".to_string(), 261)]);
    let bpe = BpeVocab { vocab, merges: vec!["▁ h".into()] };
    bpe.tokenizer(dir).unwrap().save(&dir.join("tokenizer.json")).unwrap();
}

fn source(path: &Path) -> Box<dyn WeightSource> {
    zoo_checkpoint::open(path).unwrap().weights
}

#[test]
fn formats_come_from_the_target_name() {
    assert_eq!(Format::of_target(Path::new("out/model.bin")), Format::Torchless);
    assert_eq!(Format::of_target(Path::new("model.mpk")), Format::Burn);
    assert_eq!(Format::of_target(Path::new("model.mpk.gz")), Format::Burn);
    assert_eq!(Format::of_target(Path::new("out/model")), Format::HfDir);
}

#[test]
fn safetensors_to_bin_to_safetensors_keeps_every_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let (hf, bin, back) = (tmp.path().join("hf"), tmp.path().join("model.bin"), tmp.path().join("back"));
    hf_dir(&hf);
    let report = convert(&hf, &bin, &ConvertOptions::default()).unwrap();
    assert_eq!((report.format, report.tensors), (Format::Torchless, 5));
    convert(&bin, &back, &ConvertOptions::default()).unwrap();
    assert!(differing_tensors(source(&hf).as_ref(), source(&back).as_ref()).is_empty());
    let a = zoo_checkpoint::Safetensors::open(&hf.join("model.safetensors")).unwrap();
    let b = zoo_checkpoint::Safetensors::open(&back.join("model.safetensors")).unwrap();
    for name in a.names() {
        assert_eq!(a.get(&name).unwrap().data.as_slice(), b.get(&name).unwrap().data.as_slice(), "{name}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(back.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["model_type"].clone(), config["sliding_window"].clone()), (json!("mistral"), json!(4096)));
    // The embedded tokenizer came along as tokenizer.json.
    let tok = zoo_checkpoint::open(&back).unwrap().tokenizer.unwrap();
    assert_eq!(tok.encode("h h", true).unwrap(), vec![1, 261, 261]);

    // .bin → .bin, f32 and int8: identical bytes.
    for dtype in [None, Some(DType::I8)] {
        let (one, two) = (tmp.path().join("one.bin"), tmp.path().join("two.bin"));
        convert(&hf, &one, &ConvertOptions { dtype, progress: None }).unwrap();
        convert(&one, &two, &ConvertOptions::default()).unwrap();
        assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap(), "{dtype:?}");
    }
}

#[test]
fn burn_records_round_trip_through_every_format() {
    let (tmp, hf) = hf_source();
    let mpk = tmp.path().join("model.mpk");
    let report = convert(&hf, &mpk, &ConvertOptions::default()).unwrap();
    assert!(report.files.contains(&tmp.path().join("model.json")));
    let back = tmp.path().join("back");
    convert(&mpk, &back, &ConvertOptions::default()).unwrap();
    assert!(differing_tensors(source(&hf).as_ref(), source(&back).as_ref()).is_empty());
    // Half precision: f16 values, once.
    let gz = tmp.path().join("half.mpk.gz");
    convert(&hf, &gz, &ConvertOptions { dtype: Some(DType::F16), progress: None }).unwrap();
    let half = source(&gz);
    let orig = source(&hf);
    let w = "model.layers.0.self_attn.q_proj.weight";
    let want: Vec<f32> = orig.get(w).unwrap().to_f32_vec().iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
    assert_eq!(half.get(w).unwrap().to_f32_vec(), want);
}

#[test]
fn int8_conversions_stay_within_half_a_step() {
    let (tmp, hf) = hf_source();
    let bin = tmp.path().join("q.bin");
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |done: u64, total: u64| seen.lock().unwrap().push((done, total));
    convert(&hf, &bin, &ConvertOptions { dtype: Some(DType::I8), progress: Some(&progress) }).unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last().map(|(d, t)| d == t), Some(true), "progress reaches the total");
    let (a, b) = (source(&hf), source(&bin));
    assert_eq!(b.get("model.layers.0.mlp.gate_proj.weight").unwrap().dtype, DType::I8);
    assert_eq!(b.get("lm_head.weight").unwrap().dtype, DType::F32);
    for name in a.names() {
        let (x, y) = (a.get(&name).unwrap().to_f32_vec(), b.get(&name).unwrap().to_f32_vec());
        for (gx, gy) in x.chunks(64).zip(y.chunks(64)) {
            let step = gx.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            assert!(gx.iter().zip(gy).all(|(u, v)| (u - v).abs() <= step * 0.5001), "{name}");
        }
    }
}

#[test]
fn impossible_conversions_are_errors() {
    let (tmp, hf) = hf_source();
    let e = convert(&hf, &tmp.path().join("x.bin"), &ConvertOptions { dtype: Some(DType::BF16), progress: None });
    assert!(e.unwrap_err().to_string().contains("x.bin"));
    let e = convert(&hf, &tmp.path().join("out"), &ConvertOptions { dtype: Some(DType::I8), progress: None });
    assert!(e.unwrap_err().to_string().contains("int8"));
    // GPT-2 is not a Mistral-layout model.
    let gpt2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gpt2-tiny");
    let e = convert(&gpt2, &tmp.path().join("g.bin"), &ConvertOptions::default()).unwrap_err().to_string();
    assert!(e.contains("gpt2"), "{e}");
}

#[test]
fn gpt2_fixture_round_trips_through_burn() {
    let tmp = tempfile::tempdir().unwrap();
    let gpt2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gpt2-tiny");
    let mpk = tmp.path().join("burn/gpt2.mpk");
    std::fs::create_dir_all(mpk.parent().unwrap()).unwrap();
    convert(&gpt2, &mpk, &ConvertOptions::default()).unwrap();
    assert!(zoo_checkpoint::open(&mpk).unwrap().tokenizer.is_some(), "the tokenizer went beside the record");
    let back = tmp.path().join("gpt2");
    convert(&mpk, &back, &ConvertOptions::default()).unwrap();
    assert!(differing_tensors(source(&gpt2).as_ref(), source(&back).as_ref()).is_empty());
    assert!(back.join("vocab.json").is_file() && back.join("merges.txt").is_file());
}
