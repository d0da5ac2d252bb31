//! Burn's gradients of the training loss against PyTorch's, for the same weights and windows
//! (`tests/fixtures/train_gradcheck/`, made by `xtask/python/train_gradcheck.py`: the nanochat
//! reference and transformers' GPT-2, in float64): every parameter's gradient within 1e-4 of
//! the reference, relative to the reference's norm.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use burn::tensor::DType;
use zoo_backend_burn::{Burn, Params};
use zoo_checkpoint::Safetensors;
use zoo_core::{WeightSource, WeightView};
use zoo_train::Family;

type Ad = Autodiff<NdArray<f32>>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/train_gradcheck").join(name)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn gradients_match_pytorch(family: Family) {
    let dir = fixture(family.name());
    let config = read_json(&dir.join("config.json"));
    let reference = read_json(&dir.join("reference.json"));
    let windows: Vec<Vec<u32>> = serde_json::from_value(reference["windows"].clone()).unwrap();
    let weights = Safetensors::open(&dir.join("model.safetensors")).unwrap();
    let expected = Safetensors::open(&dir.join("grads.safetensors")).unwrap();

    let params = Params::<Ad>::new();
    let backend = Burn::<Ad>::new("burn-ndarray", Default::default(), DType::F32).with_params(params.clone());
    let model = family.load(backend, &config, &weights).unwrap();
    let loss = zoo_train::loss::cross_entropy(model.as_ref(), &windows).unwrap();
    let value = zoo_train::step::scalar(loss.clone()).unwrap() as f64;
    let want = reference["loss"].as_f64().unwrap();
    assert!((value - want).abs() / want < 1e-5, "loss {value} vs PyTorch's {want}");

    let grads = loss.backward();
    let specs = family.parameters(&config).unwrap();
    assert_eq!(params.len(), expected.names().len(), "every parameter has a reference gradient");
    for spec in &specs {
        let got = params.get(&spec.name).unwrap().grad(&grads).expect("a gradient");
        let (got, [rows, cols]) = zoo_train::step::host(got).unwrap();
        // The store holds GPT-2's Conv1D matrices as the model uses them, `[out, in]`.
        let got = if spec.transposed {
            WeightView::from_f32("g", vec![rows, cols], &got).unwrap().transposed().unwrap().to_f32_vec()
        } else {
            got
        };
        let want = expected.get(&spec.name).unwrap().to_f32_vec();
        let diff: f64 = got.iter().zip(&want).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>().sqrt();
        let norm: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
        assert!(norm > 0.0, "{}: the reference gradient is zero", spec.name);
        assert!(diff / norm < 1e-4, "{}: relative gradient error {:.2e}", spec.name, diff / norm);
    }
}

#[test]
fn nanochat_gradients_match_the_pytorch_reference() {
    gradients_match_pytorch(Family::NanoChat);
}

#[test]
fn gpt2_gradients_match_transformers() {
    gradients_match_pytorch(Family::Gpt2);
}
