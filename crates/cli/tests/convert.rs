//! `zoo convert` end to end: a converted model runs with `zoo run --weights` and gives the
//! reference's greedy tokens; bad conversions fail on one `error:` line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn zoo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo")).args(args).env_remove("ZOO_DEFAULT_MODEL").output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_model_converted_to_burn_and_back_runs_with_the_reference_tokens() {
    let dir = fixture("gpt2-tiny");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let prompt = &reference["prompts"][1];
    let tmp = tempfile::tempdir().unwrap();
    let mpk = tmp.path().join("burn/gpt2.mpk.gz");
    std::fs::create_dir_all(mpk.parent().unwrap()).unwrap();
    let back = tmp.path().join("hf");
    for (from, to) in [(dir.as_path(), mpk.as_path()), (mpk.as_path(), back.as_path())] {
        let (code, out, err) = zoo(&["convert", "--from", from.to_str().unwrap(), "--to", to.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("wrote "), "{out}");
    }
    for weights in [&mpk, &back] {
        let text = prompt["text"].as_str().unwrap();
        let (code, out, err) =
            zoo(&["run", "--weights", weights.to_str().unwrap(), "--prompt", text, "--max-tokens", "32", "--json"]);
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["tokens"], prompt["tokens"], "{}", weights.display());
    }
}

#[test]
fn bad_conversions_fail_on_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("x.bin");
    let gpt2 = fixture("gpt2-tiny");
    for args in [
        vec!["convert", "--from", gpt2.to_str().unwrap(), "--to", to.to_str().unwrap()],
        vec!["convert", "--from", "/nonexistent", "--to", to.to_str().unwrap()],
        vec!["convert", "--from", gpt2.to_str().unwrap(), "--to", to.to_str().unwrap(), "--dtype", "bf16"],
    ] {
        let (code, _, err) = zoo(&args);
        assert_ne!(code, 0);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    let (code, _, err) = zoo(&["convert", "--from", ".", "--to", "y", "--dtype", "q4"]);
    assert_ne!(code, 0);
    assert!(err.contains("q4"), "{err}");
}
