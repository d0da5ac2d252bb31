//! `zoo convert` end to end: a converted model runs with `zoo run --weights` and gives the
//! reference's greedy tokens; bad conversions fail on one `error:` line.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::process::Command;

use fixtures::{fixture, reference};

fn zoo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo")).args(args).env_remove("ZOO_DEFAULT_MODEL").output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_model_converted_to_burn_and_back_runs_with_the_reference_tokens() {
    let dir = fixture("gpt2-tiny");
    let reference = reference("gpt2-tiny");
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

/// A copy of fixture `name` in a fresh temporary directory (tests must never touch the repo's).
fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    (tmp, dir)
}

/// Every file under `dir` with its bytes, to prove nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = walk(dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn convert(from: &Path, to: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["convert", "--from", from.to_str().unwrap(), "--to", to.to_str().unwrap()];
    args.extend(extra);
    let (code, _, err) = zoo(&args);
    assert!(!err.contains("panicked"), "{err}");
    if code != 0 {
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    (code, err)
}

fn no_staging_left(dir: &Path) {
    let left: Vec<_> = walk(dir).into_iter().filter(|p| p.to_string_lossy().contains(".zoo-convert-")).collect();
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
}

#[test]
fn converting_into_the_input_is_refused_by_any_spelling_and_loses_nothing() {
    let (tmp, dir) = fixture_copy("qwen2-tiny");
    let before = snapshot(tmp.path());
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let spellings = [
        dir.clone(),
        dir.join("."),
        dir.join("../qwen2-tiny"),
        link.clone(),
        dir.join("inner"),
        dir.join("x.mpk"),
        link.join("sub/x.bin"),
        tmp.path().to_path_buf(),
    ];
    for to in &spellings {
        for force in [&[][..], &["--force"][..]] {
            let (code, err) = convert(&dir, to, force);
            assert_ne!(code, 0, "{} {force:?}", to.display());
            assert!(err.contains("the input") || err.contains("not `.`"), "{err}");
        }
    }
    std::fs::remove_file(&link).unwrap();
    assert_eq!(snapshot(tmp.path()), before);
    no_staging_left(tmp.path());
}

#[test]
fn an_existing_target_needs_force_and_is_then_replaced_whole() {
    let (tmp, dir) = fixture_copy("qwen2-tiny");
    let target = tmp.path().join("out");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("tokenizer.json"), "{\"stale\": true}").unwrap();
    std::fs::write(target.join("chat_template.jinja"), "stale").unwrap();
    let (code, err) = convert(&dir, &target, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(target.join("tokenizer.json")).unwrap(), "{\"stale\": true}");
    let (code, err) = convert(&dir, &target, &["--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(!target.join("chat_template.jinja").exists(), "a stale file survived --force");
    assert_eq!(
        std::fs::read(target.join("tokenizer.json")).unwrap(),
        std::fs::read(dir.join("tokenizer.json")).unwrap()
    );
    // An empty directory is not in the way.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(convert(&dir, &empty, &[]).0, 0);
    no_staging_left(tmp.path());
}

#[test]
fn burn_records_never_share_a_config_or_a_stale_tokenizer() {
    let (tmp, qwen) = fixture_copy("qwen2-tiny");
    let (_tmp2, mistral) = fixture_copy("mistral-tiny");
    let out = tmp.path().join("burn");
    std::fs::create_dir(&out).unwrap();
    assert_eq!(convert(&qwen, &out.join("m.mpk"), &[]).0, 0);
    // The .gz variant would write the same m.json.
    let (code, err) = convert(&qwen, &out.join("m.mpk.gz"), &[]);
    assert_ne!(code, 0);
    assert!(err.contains("m.json") || err.contains("m.mpk"), "{err}");
    // Another model beside it would find qwen's tokenizer.
    let (code, err) = convert(&mistral, &out.join("other.mpk"), &[]);
    assert_ne!(code, 0);
    assert!(err.contains("exists with other contents") && err.contains("--force"), "{err}");
    assert!(!out.join("other.mpk").exists() && !out.join("other.json").exists());
    // --force: the .gz replaces m.mpk (one config), and the tokenizer files are mistral's.
    assert_eq!(convert(&qwen, &out.join("m.mpk.gz"), &["--force"]).0, 0);
    assert!(!out.join("m.mpk").exists());
    assert_eq!(convert(&mistral, &out.join("other.mpk"), &["--force"]).0, 0);
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(mistral.join("tokenizer.json")).unwrap()
    );
    no_staging_left(tmp.path());
}

#[test]
fn a_torchless_file_that_cannot_hold_the_tokenizer_is_an_error() {
    // mistral-tiny's weights with a byte-level BPE tokenizer (Qwen's, as SmolLM2 and Llama 3 use).
    let (tmp, dir) = fixture_copy("mistral-tiny");
    std::fs::copy(fixture("qwen2-tiny").join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let target = tmp.path().join("model.bin");
    let (code, err) = convert(&dir, &target, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("round-trip") || err.contains("tokenizer"), "{err}");
    assert!(!target.exists());
    no_staging_left(tmp.path());
}

#[test]
fn outputs_follow_the_umask_and_replace_a_file_atomically() {
    let (tmp, dir) = fixture_copy("mistral-tiny");
    let target = tmp.path().join("model.bin");
    std::fs::write(&target, "old").unwrap();
    assert_ne!(convert(&dir, &target, &[]).0, 0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
    assert_eq!(convert(&dir, &target, &["--force"]).0, 0);
    let umask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Umask:").map(|u| u32::from_str_radix(u.trim(), 8).unwrap()))
        })
        .unwrap_or(0o022);
    use std::os::unix::fs::PermissionsExt;
    let hf = tmp.path().join("hf");
    assert_eq!(convert(&target, &hf, &[]).0, 0);
    for file in [target.clone(), hf.join("model.safetensors"), hf.join("config.json")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask, "{}", file.display());
    }
}

#[test]
fn an_interrupted_conversion_leaves_no_temporaries_and_the_old_target_whole() {
    let (tmp, dir) = fixture_copy("qwen2-tiny");
    let target = tmp.path().join("model.mpk");
    assert_eq!(convert(&dir, &target, &[]).0, 0);
    let old = std::fs::read(&target).unwrap();
    for delay_ms in [0, 5, 20, 50, 100] {
        let child = Command::new(env!("CARGO_BIN_EXE_zoo"))
            .args(["convert", "--force", "--dtype", "f16", "--from", dir.to_str().unwrap(), "--to"])
            .arg(&target)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let mut child = child;
        child.wait().unwrap();
        no_staging_left(tmp.path());
        let now = std::fs::read(&target).unwrap();
        assert!(
            now == old || zoo_loads(&target),
            "{delay_ms} ms: the record is neither the old one nor a whole new one"
        );
    }
}

fn zoo_loads(weights: &Path) -> bool {
    zoo(&["run", "--weights", weights.to_str().unwrap(), "--prompt", "a", "--max-tokens", "1"]).0 == 0
}
