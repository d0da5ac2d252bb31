//! Burn records against the real `burn` crate (0.21): a small Burn module saved by Burn's own
//! recorders is read by zoo with the right names, orientation and values, and records zoo writes
//! load into that module through Burn's recorders. Full and half precision, `.mpk` and `.mpk.gz`.

use std::path::Path;

use burn::backend::NdArray;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::record::{FullPrecisionSettings, HalfPrecisionSettings, NamedMpkFileRecorder, NamedMpkGzFileRecorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use serde_json::json;
use zoo_checkpoint::burn_mpk::{self, BurnRecord, Precision, WriteRequest};
use zoo_core::{MemoryWeights, WeightSource, WeightView};

type B = NdArray<f32>;

#[derive(Module, Debug)]
struct Block<B: Backend> {
    q_proj: Linear<B>,
    input_layernorm: RmsNorm<B>,
}

#[derive(Module, Debug)]
struct Tiny<B: Backend> {
    embed_tokens: Embedding<B>,
    layers: Vec<Block<B>>,
    norm: RmsNorm<B>,
    lm_head: Linear<B>,
    scale: Param<Tensor<B, 1>>,
}

const VOCAB: usize = 11;
const DIM: usize = 8;
const OUT: usize = 6;

fn tiny(device: &burn::tensor::Device<B>) -> Tiny<B> {
    let block = || Block {
        q_proj: LinearConfig::new(DIM, OUT).init(device),
        input_layernorm: RmsNormConfig::new(DIM).init(device),
    };
    Tiny {
        embed_tokens: EmbeddingConfig::new(VOCAB, DIM).init(device),
        layers: vec![block(), block(), block()],
        norm: RmsNormConfig::new(DIM).init(device),
        lm_head: LinearConfig::new(DIM, VOCAB).with_bias(false).init(device),
        scale: Param::from_tensor(Tensor::random([DIM], Distribution::Uniform(-1.0, 1.0), device)),
    }
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Every parameter of the module, as zoo should see it: dotted name → (shape `[out, in]` for
/// Linear weights, values).
fn expected(m: &Tiny<B>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let linear = |name: String, l: &Linear<B>, out: &mut Vec<(String, Vec<usize>, Vec<f32>)>| {
        let w = l.weight.val(); // [in, out] in Burn's Row layout
        let [d_in, d_out] = w.dims();
        out.push((format!("{name}.weight"), vec![d_out, d_in], values(w.transpose())));
        if let Some(b) = &l.bias {
            out.push((format!("{name}.bias"), vec![d_out], values(b.val())));
        }
    };
    let mut out = vec![
        ("embed_tokens.weight".to_string(), vec![VOCAB, DIM], values(m.embed_tokens.weight.val())),
        ("norm.gamma".to_string(), vec![DIM], values(m.norm.gamma.val())),
        ("scale".to_string(), vec![DIM], values(m.scale.val())),
    ];
    linear("lm_head".into(), &m.lm_head, &mut out);
    for (i, block) in m.layers.iter().enumerate() {
        linear(format!("layers.{i}.q_proj"), &block.q_proj, &mut out);
        out.push((format!("layers.{i}.input_layernorm.gamma"), vec![DIM], values(block.input_layernorm.gamma.val())));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect()
}

fn check_zoo_reads(path: &Path, model: &Tiny<B>, half: bool) {
    let record = BurnRecord::open(path, "mistral").unwrap();
    let want = expected(model);
    assert_eq!(record.names(), want.iter().map(|w| w.0.clone()).collect::<Vec<_>>());
    for (name, shape, vals) in want {
        let view = record.get(&name).unwrap();
        assert_eq!(view.shape, shape, "{name}");
        let want = if half { round_f16(&vals) } else { vals };
        assert_eq!(view.to_f32_vec(), want, "{name}");
    }
}

#[test]
fn zoo_reads_what_burn_saves() {
    let device = Default::default();
    let model = tiny(&device);
    // NOTE: Burn initialises parameters lazily and a clone of an uninitialised parameter draws its
    // own values: read them once so that the saved clones share them.
    let _ = expected(&model);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("model");
    model.clone().save_file(&base, &NamedMpkFileRecorder::<FullPrecisionSettings>::new()).unwrap();
    check_zoo_reads(&dir.path().join("model.mpk"), &model, false);
    model.clone().save_file(&base, &NamedMpkGzFileRecorder::<HalfPrecisionSettings>::new()).unwrap();
    check_zoo_reads(&dir.path().join("model.mpk.gz"), &model, true);

    // Through zoo_checkpoint::open, with the config JSON beside the record.
    std::fs::write(dir.path().join("model.json"), json!({"model_type": "mistral"}).to_string()).unwrap();
    let ckpt = zoo_checkpoint::open(&dir.path().join("model.mpk")).unwrap();
    assert_eq!(ckpt.weights.get("lm_head.weight").unwrap().shape, vec![VOCAB, DIM]);
}

/// zoo-side weights in zoo's orientation.
fn zoo_weights() -> MemoryWeights {
    let mut w = MemoryWeights::new("memory");
    let mut counter = 0f32;
    let mut next = |shape: Vec<usize>, name: String| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i as f32 + counter) * 0.37).sin()).collect();
        counter += 1.0;
        WeightView::from_f32(name, shape, &v).unwrap()
    };
    w.insert(next(vec![VOCAB, DIM], "embed_tokens.weight".into()));
    w.insert(next(vec![DIM], "norm.gamma".into()));
    w.insert(next(vec![DIM], "scale".into()));
    w.insert(next(vec![VOCAB, DIM], "lm_head.weight".into()));
    for i in 0..3 {
        w.insert(next(vec![OUT, DIM], format!("layers.{i}.q_proj.weight")));
        w.insert(next(vec![OUT], format!("layers.{i}.q_proj.bias")));
        w.insert(next(vec![DIM], format!("layers.{i}.input_layernorm.gamma")));
    }
    w
}

fn check_burn_loads(loaded: &Tiny<B>, source: &MemoryWeights, half: bool) {
    for (name, shape, vals) in expected(loaded) {
        let view = source.get(&name).unwrap();
        assert_eq!(view.shape, shape, "{name}");
        let want = view.to_f32_vec();
        let want = if half { round_f16(&want) } else { want };
        assert_eq!(vals, want, "{name}");
    }
}

#[test]
fn burn_loads_what_zoo_writes() {
    let device = Default::default();
    let source = zoo_weights();
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"model_type": "mistral"});
    for (file, precision) in [("full.mpk", Precision::Full), ("half.mpk.gz", Precision::Half)] {
        let path = dir.path().join(file);
        burn_mpk::write(&path, &WriteRequest { weights: &source, config: &config, precision, progress: None }).unwrap();
        assert!(dir.path().join(file.split('.').next().unwrap().to_string() + ".json").is_file());
        let base = dir.path().join(file.split('.').next().unwrap());
        let loaded = match precision {
            Precision::Full => {
                tiny(&device).load_file(&base, &NamedMpkFileRecorder::<FullPrecisionSettings>::new(), &device)
            }
            Precision::Half => {
                tiny(&device).load_file(&base, &NamedMpkGzFileRecorder::<HalfPrecisionSettings>::new(), &device)
            }
        }
        .unwrap();
        check_burn_loads(&loaded, &source, precision == Precision::Half);
        // And zoo reads its own file back.
        let back = BurnRecord::open(&path, "mistral").unwrap();
        assert!(zoo_checkpoint::convert::differing_tensors(&back, &source).is_empty() || precision == Precision::Half);
    }
}

#[test]
fn malformed_records_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("empty.mpk", b""),
        ("garbage.mpk", b"\xc1\xc1\xc1"),
        ("noitem.mpk", b"\x81\xa1x\xc0"),
        ("notgz.mpk.gz", b"plain"),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = BurnRecord::open(&path, "mistral").err().unwrap().to_string();
        assert!(e.contains(name), "{e}");
    }
    // A parameter whose bytes do not hold its shape.
    let mut bytes = Vec::new();
    let param = rmpv::Value::Map(vec![
        ("id".into(), "0400000000000".into()),
        (
            "param".into(),
            rmpv::Value::Map(vec![
                ("bytes".into(), rmpv::Value::Binary(vec![0; 12])),
                ("shape".into(), rmpv::Value::Array(vec![4u64.into()])),
                ("dtype".into(), "F32".into()),
            ]),
        ),
    ]);
    let root = rmpv::Value::Map(vec![("item".into(), rmpv::Value::Map(vec![("w".into(), param)]))]);
    rmpv::encode::write_value(&mut bytes, &root).unwrap();
    let path = dir.path().join("short.mpk");
    std::fs::write(&path, bytes).unwrap();
    let e = BurnRecord::open(&path, "mistral").err().unwrap().to_string();
    assert!(e.contains("short.mpk") && e.contains("`w`"), "{e}");
    // A record without its config JSON beside it.
    let e = zoo_checkpoint::open(&path).err().unwrap().to_string();
    assert!(e.contains("short.json"), "{e}");
}
