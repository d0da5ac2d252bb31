//! Hostile input to the binary: endless input, bad lines, absurd flags and config values. Each
//! ends in one `error:` line naming what is wrong (or, for `zoo chat`, a note and the
//! conversation going on); none panics or runs without bound.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::io::Write;
use std::process::{Command, Stdio};

use fixtures::fixture;

/// Runs zoo with `stdin` as standard input; returns (exit code, stdout, stderr).
fn zoo_with_input(args: &[&str], stdin: Stdio, input: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .args(args)
        .env_remove("ZOO_DEFAULT_MODEL")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = input {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn fails_on_one_line(args: &[&str]) -> String {
    let (code, out, err) = zoo_with_input(args, Stdio::null(), None);
    assert_ne!(code, 0, "{args:?} succeeded: {out}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn endless_standard_input_ends_chat_with_an_error() {
    let qwen = fixture("qwen2-tiny");
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let (code, _, err) = zoo_with_input(&["chat", "--weights", qwen.to_str().unwrap()], zero.into(), None);
    assert_ne!(code, 0);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("error: standard input: no line break"), "{err}");
}

#[test]
fn chat_survives_a_bad_line() {
    let qwen = fixture("qwen2-tiny");
    let mut input = vec![b'x'; zoo_cli::input::MAX_LINE + 5];
    input.extend(b"\n\xff\xfe bad\nHello\n\n");
    let args = ["chat", "--weights", qwen.to_str().unwrap(), "--max-tokens", "3"];
    let (code, out, err) = zoo_with_input(&args, Stdio::piped(), Some(&input));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("longer than") && err.contains("not UTF-8"), "{err}");
    assert!(err.contains("generated"), "the good line got no reply: {err}");
    assert!(!out.is_empty());
}

#[test]
fn endless_or_bad_prompts_files_are_errors() {
    let gpt2 = fixture("gpt2-tiny");
    let weights = gpt2.to_str().unwrap();
    let err = fails_on_one_line(&["run", "--weights", weights, "--prompts-file", "/dev/zero"]);
    assert!(err.contains("/dev/zero"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, b"fine\n\xff\n").unwrap();
    let err = fails_on_one_line(&["run", "--weights", weights, "--prompts-file", bad.to_str().unwrap()]);
    assert!(err.contains("bad.txt") && err.contains("UTF-8"), "{err}");
}

#[test]
fn many_prompts_are_generated_in_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("many.txt");
    let count = zoo_cli::input::PROMPTS_PER_BATCH * 2 + 3;
    std::fs::write(&file, "Hello\n".repeat(count)).unwrap();
    let gpt2 = fixture("gpt2-tiny");
    let args = ["run", "--weights", gpt2.to_str().unwrap(), "--prompts-file", file.to_str().unwrap()];
    let (code, out, err) = zoo_with_input(&[&args[..], &["--max-tokens", "1", "--json"]].concat(), Stdio::null(), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), count);
}

#[test]
fn absurd_thread_counts_are_refused() {
    let gpt2 = fixture("gpt2-tiny");
    for n in ["0", "100000", "18446744073709551615"] {
        let err = fails_on_one_line(&["run", "--weights", gpt2.to_str().unwrap(), "--threads", n]);
        assert!(err.contains("--threads"), "{err}");
    }
}

/// A copy of qwen2-tiny whose config.json has `key` set to `value`.
fn with_config(key: &str, value: serde_json::Value) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("qwen2-tiny")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    let path = tmp.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config[key] = value;
    std::fs::write(&path, config.to_string()).unwrap();
    tmp
}

#[test]
fn out_of_range_config_values_are_named() {
    let layers = serde_json::json!(1u64 << 40);
    for (key, value, expected) in [
        ("num_key_value_heads", serde_json::json!(0), "num_key_value_heads: 0"),
        ("num_key_value_heads", serde_json::json!(3), "is not a multiple of num_key_value_heads: 3"),
        ("num_hidden_layers", layers, "num_hidden_layers: 1099511627776"),
        // The fixture's `layer_types` (transformers 5) lists 2 layers: that is checked first.
        ("num_hidden_layers", serde_json::json!(1), "layer_types: 2 entries for num_hidden_layers: 1"),
        ("rope_parameters", serde_json::json!({"rope_theta": -5.0}), "rope_theta: -5"),
        ("rope_parameters", serde_json::json!({"rope_theta": "NaN"}), "rope_theta: \"\\\"NaN\\\"\" is not a number"),
        ("rms_norm_eps", serde_json::json!(0.0), "rms_norm_eps: 0"),
        ("vocab_size", serde_json::json!(0), "vocab_size: 0"),
    ] {
        let dir = with_config(key, value);
        let err = fails_on_one_line(&["run", "--weights", dir.path().to_str().unwrap(), "--max-tokens", "1"]);
        assert!(err.contains(expected), "{key}: {err}");
    }
}

#[test]
fn a_tokenizer_the_library_cannot_load_is_an_error_naming_the_file() {
    let dir = with_config("vocab_size", serde_json::json!(32000));
    let tokenizer = dir.path().join("tokenizer.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&tokenizer).unwrap()).unwrap();
    json["pre_tokenizer"] =
        serde_json::json!({"type": "Split", "pattern": {"Regex": "(?<"}, "behavior": "Isolated", "invert": false});
    std::fs::write(&tokenizer, json.to_string()).unwrap();
    let err = fails_on_one_line(&["run", "--weights", dir.path().to_str().unwrap(), "--max-tokens", "1"]);
    assert!(err.contains("tokenizer.json"), "{err}");
}
