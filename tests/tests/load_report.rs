//! Strict loading: every fixture's load report (which tensors the model took, which its family
//! ignores on purpose, and that none are left) is snapshot; a checkpoint with a tensor the model
//! does not take is refused with its name, or loaded with `allow_unused` and the tensor listed.

use std::collections::BTreeMap;

use zoo_core::{WeightMeta, WeightSource, WeightView};
use zoo_tests::{fixture_names, fixtures_dir, Fixture};

/// Tensor names with their layer indices replaced by `N`, each with how many layers hold it.
fn by_layer(names: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        let generic: Vec<&str> =
            name.split('.').map(|part| if part.parse::<usize>().is_ok() { "N" } else { part }).collect();
        *counts.entry(generic.join(".")).or_default() += 1;
    }
    counts
}

#[test]
fn every_fixture_loads_every_tensor_it_holds() {
    for name in fixture_names() {
        let fixture = Fixture::load(&name).unwrap();
        let report = fixture.pipeline("ndarray").unwrap().load_report;
        assert!(report.unused.is_empty(), "{name}: {:?}", report.unused);
        let snapshot = serde_json::json!({
            "consumed": by_layer(&report.consumed),
            "known_unused": by_layer(&report.known_unused),
            "unused": report.unused,
        });
        insta::assert_json_snapshot!(format!("load-report-{name}"), snapshot);
    }
}

/// A checkpoint's weights plus extra tensors.
struct WithExtra {
    inner: Box<dyn WeightSource>,
    extra: Vec<WeightView>,
}

impl WeightSource for WithExtra {
    fn source_name(&self) -> String {
        self.inner.source_name()
    }

    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name) || self.extra.iter().any(|v| v.name == name)
    }

    fn names(&self) -> Vec<String> {
        let mut names = self.inner.names();
        names.extend(self.extra.iter().map(|v| v.name.clone()));
        names.sort();
        names
    }

    fn meta(&self, name: &str) -> zoo_core::Result<WeightMeta> {
        self.get(name).map(|v| WeightMeta { dtype: v.dtype, shape: v.shape })
    }

    fn get(&self, name: &str) -> zoo_core::Result<WeightView> {
        match self.extra.iter().find(|v| v.name == name) {
            Some(view) => Ok(view.clone()),
            None => self.inner.get(name),
        }
    }
}

/// A copy of fixture `name` whose weights hold `extra` tensors (each `[2]` of zeros) too.
fn with_extra_tensors(name: &str, extra: &[&str]) -> tempfile::TempDir {
    let source = fixtures_dir().join(name);
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|f| f != "model.safetensors") {
            std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let checkpoint = zoo_checkpoint::open(&source).unwrap();
    let extra = extra.iter().map(|n| WeightView::from_f32(*n, vec![2], &[0.0, 0.0]).unwrap()).collect();
    let weights = WithExtra { inner: checkpoint.weights, extra };
    zoo_checkpoint::safetensors::write(&tmp.path().join("model.safetensors"), &weights, None, None).unwrap();
    tmp
}

fn load(dir: &std::path::Path, allow_unused: bool) -> zoo::Result<zoo::Pipeline> {
    zoo::load(&zoo::LoadOptions {
        weights: dir.to_path_buf(),
        backend: Some("ndarray".into()),
        allow_unused,
        ..Default::default()
    })
}

#[test]
fn tensors_the_model_does_not_take_are_refused_by_name() {
    let extra: Vec<String> = (0..6).map(|i| format!("model.layers.0.mlp.extra_{i}.weight")).collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let tmp = with_extra_tensors("qwen2-tiny", &extra);
    let err = load(tmp.path(), false).err().expect("an unused tensor must fail the load").to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(err.contains(&tmp.path().display().to_string()), "names the file: {err}");
    assert!(err.contains("6 tensor(s)") && err.contains("`model.layers.0.mlp.extra_0.weight`"), "{err}");
    assert!(err.contains("and 2 more") && err.contains("--allow-unused"), "{err}");

    let pipe = load(tmp.path(), true).unwrap();
    assert_eq!(pipe.load_report.unused, extra);
}

#[test]
fn known_unused_buffers_are_accepted_and_reported() {
    // GPT-2's causal-mask buffers are on its family's list; the same name under Qwen2 is not.
    let tmp = with_extra_tensors("gpt2-tiny", &["h.1.attn.masked_bias"]);
    let report = load(tmp.path(), false).unwrap().load_report;
    assert!(report.known_unused.contains(&"h.1.attn.masked_bias".to_string()), "{report:?}");
    let tmp = with_extra_tensors("qwen2-tiny", &["model.layers.1.self_attn.masked_bias"]);
    assert!(load(tmp.path(), false).is_err());
}
