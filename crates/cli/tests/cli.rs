//! The `zoo` binary end to end: listings and help (snapshotted), a run against a fixture's
//! reference, and bad input (a one-line error and a non-zero exit, never a panic).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/default_model.rs"]
mod default_model;
#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::Path;
use std::process::Command;

use binary::zoo;
use default_model::default_model_present;
use fixtures::{fixture, greedy_run_args, reference};

/// Runs `args`, expecting a failure reported on one `error:` line; returns that line.
fn zoo_fails(args: &[&str]) -> String {
    let out = zoo(args);
    assert_ne!(out.code, 0, "{args:?} succeeded: {}", out.stdout);
    assert!(!out.stderr.contains("panicked"), "{args:?} panicked: {}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got {:?}", out.stderr);
    assert!(lines[0].starts_with("error: "), "{args:?}: {}", lines[0]);
    lines[0].to_string()
}

#[test]
fn list_shows_every_registered_family_and_backend() {
    let out = zoo(&["list"]);
    assert_eq!(out.code, 0);
    insta::assert_snapshot!("list", out.stdout);
    let json: serde_json::Value = serde_json::from_str(&zoo(&["list", "--json"]).stdout).unwrap();
    insta::assert_json_snapshot!("list-json", json);
}

#[test]
fn list_json_says_what_each_usable_backend_does_with_each_dtype() {
    let json: serde_json::Value = serde_json::from_str(&zoo(&["list", "--json"]).stdout).unwrap();
    let backends = json["backends"].as_array().unwrap();
    let names = |b: &serde_json::Value, list: &str| -> Vec<String> {
        b["dtypes"][list].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect()
    };
    for b in backends {
        if b["usable"] != true {
            assert!(b["dtypes"].is_null(), "an unusable backend is not asked: {b}");
            continue;
        }
        let mut every: Vec<String> =
            ["native", "converted_at_load", "unsupported"].iter().flat_map(|list| names(b, list)).collect();
        every.sort();
        assert_eq!(
            every,
            ["bf16", "f16", "f32", "int8", "q4_0", "q4_1", "q4_k", "q5_0", "q5_1", "q5_k", "q6_k", "q8_0"],
            "each dtype once: {b}"
        );
    }
    let backend = |name: &str| backends.iter().find(|b| b["name"] == name).unwrap();
    let ndarray_native = ["f32", "f16", "bf16", "int8", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"];
    assert_eq!(names(backend("ndarray"), "native"), ndarray_native);
    assert!(names(backend("ndarray"), "converted_at_load").is_empty());
    assert_eq!(names(backend("candle"), "unsupported"), ["int8"]);
    assert_eq!(names(backend("burn-ndarray"), "native"), ["f32"]);
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("help", zoo(&["--help"]).stdout);
    insta::assert_snapshot!("run-help", zoo(&["run", "--help"]).stdout);
    insta::assert_snapshot!("bench-help", zoo(&["bench", "--help"]).stdout);
}

#[test]
fn bench_measures_the_fixed_workload() {
    let dir = fixture("qwen2-tiny");
    let args = ["bench", "--weights", dir.to_str().unwrap(), "--prompt-tokens", "8", "--gen-tokens", "4"];
    let out = zoo(&[&args[..], &["--runs", "3", "--warmup", "0", "--json"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((report["family"].as_str(), report["backend"].as_str()), (Some("qwen2"), Some("ndarray")));
    assert_eq!((report["prompt_tokens"].as_u64(), report["generated_tokens"].as_u64()), (Some(8), Some(4)));
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for key in ["prefill_tok_s", "decode_tok_s"] {
        let rates: Vec<f64> = runs.iter().map(|r| r[key].as_f64().unwrap()).collect();
        assert!(rates.iter().all(|r| r.is_finite() && *r > 0.0), "{key}: {rates:?}");
        let median = report[format!("{key}_median")].as_f64().unwrap();
        assert!(rates.contains(&median), "{key}: the median of three runs is one of them");
    }
    assert_eq!(out.stderr.lines().filter(|l| l.starts_with("run ")).count(), 3, "progress per run");
    assert!(zoo_fails(&[&args[..], &["--runs", "0"]].concat()).contains("at least 1"));
    assert!(zoo_fails(&["bench", "--weights", dir.to_str().unwrap(), "--prompt-tokens", "999999"])
        .contains("more than the model's context"));
}

#[test]
fn bench_profile_counts_each_op_per_decode_step() {
    let dir = fixture("qwen2-tiny");
    let args = ["bench", "--weights", dir.to_str().unwrap(), "--prompt-tokens", "8", "--gen-tokens", "5"];
    let out = zoo(&[&args[..], &["--runs", "2", "--warmup", "0", "--json", "--profile"]].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let layers = report["layers"].as_f64().unwrap();
    let ops = report["op_profile"].as_array().expect("--profile reports ops");
    let calls = |name: &str| {
        let op = ops.iter().find(|o| o["op"] == name).unwrap_or_else(|| panic!("no {name} in {ops:?}"));
        assert!(op["us_per_call"].as_f64().unwrap() > 0.0, "{name} took no time: {op:?}");
        op["calls_per_step"].as_f64().unwrap()
    };
    // 5 tokens: the first comes from the prompt's logits, then 4 decode steps of one forward
    // pass each (whose ops alone are profiled); every token's greedy pick is one argmax.
    assert_eq!(calls("scoped"), 1.0);
    assert_eq!(calls("prepare_step"), 1.0);
    assert_eq!(calls("embedding_step"), 1.0);
    assert_eq!(calls("rope_attention_step"), layers);
    assert_eq!(calls("argmax_rows"), 5.0 / 4.0);
    let costliest: Vec<f64> = ops.iter().map(|o| o["us_per_step"].as_f64().unwrap()).collect();
    assert!(costliest.windows(2).all(|w| w[0] >= w[1]), "sorted costliest first: {costliest:?}");
    let table = zoo(&[&args[..], &["--runs", "1", "--warmup", "0", "--profile"]].concat());
    assert!(table.stdout.contains("host time per decode step, by backend op"), "{}", table.stdout);
    assert!(!zoo(&[&args[..], &["--runs", "1", "--json"]].concat()).stdout.contains("op_profile"));
}

#[test]
fn run_json_reproduces_the_reference_tokens() {
    // An HF directory, and a GGUF whose tokenizer is its own SentencePiece vocabulary.
    for (source, weights, family) in
        [("gpt2-tiny", "gpt2-tiny", "gpt2"), ("llama3-rope", "llama3-rope-gguf/model.bf16.gguf", "llama")]
    {
        let reference = reference(source);
        let prompt = &reference["prompts"][1];
        let args = greedy_run_args(fixture(weights).to_str().unwrap(), prompt);
        let out = zoo(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.code, 0, "{weights}: {}", out.stderr);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(report["model"], family);
        assert_eq!(report["backend"], "ndarray");
        assert_eq!(report["prompt_tokens"], prompt["prompt_tokens"], "{weights}");
        assert_eq!(report["tokens"], prompt["tokens"], "{weights}");
        assert_eq!(report["text"], prompt["generated_text"], "{weights}");
        assert_eq!(report["stop_reason"], "max_tokens");
        assert!(report["stats"]["decode_tok_s"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn run_without_arguments_answers_the_default_question() {
    if !default_model_present() {
        return;
    }
    let out = zoo(&["run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("default-answer", out.stdout);
    assert!(out.stderr.contains("prompt tokens") && out.stderr.contains("decode"), "{}", out.stderr);
    assert!(out.stderr.contains("stopped: eos"), "{}", out.stderr);
}

#[test]
fn run_with_a_prompt_continues_it_on_the_default_model() {
    if !default_model_present() {
        return;
    }
    let out = zoo(&["run", "--prompt", "The capital of France is", "--max-tokens", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("default-continuation", out.stdout);
    let out = zoo(&["run", "--chat", "--prompt", "What is the capital of France?", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["model"], "llama");
    assert_eq!(report["text"], "The capital of France is Paris.");
    assert_eq!(report["stop_reason"], "eos");
}

#[test]
fn a_missing_default_model_says_how_to_fetch_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .arg("run")
        .env_remove("ZOO_DEFAULT_MODEL")
        .env("ZOO_CACHE", empty.path())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("the default model is not downloaded"), "{stderr}");
    assert!(stderr.contains("scripts/fetch-default-model.sh"), "{stderr}");
}

#[test]
fn sampled_runs_are_reproducible_with_a_seed() {
    let dir = fixture("gpt2-tiny");
    let run = |seed: &str| {
        let args = ["run", "--weights", dir.to_str().unwrap(), "--temperature", "0.9", "--seed", seed, "--json"];
        let out = zoo(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["tokens"].clone()
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn max_context_bounds_every_sequence() {
    let weights = fixture("qwen2-tiny");
    let w = weights.to_str().unwrap();
    let prompt = "Hello there, how are you";
    let out = zoo(&["run", "--weights", w, "--prompt", prompt, "--max-context", "12", "--max-tokens", "50"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("context length (12 tokens) reached"), "{}", out.stderr);
    let err = zoo_fails(&["run", "--weights", w, "--prompt", prompt, "--max-context", "2"]);
    assert!(err.contains("6 tokens needed") && err.contains("supports 2"), "{err}");
    let err = zoo_fails(&["run", "--weights", w, "--prompt", prompt, "--max-context", "0"]);
    assert!(err.contains("--max-context"), "{err}");
}

#[test]
fn missing_weights_directory() {
    let err = zoo_fails(&["run", "--weights", "/nonexistent/model"]);
    assert!(err.contains("/nonexistent/model") && err.contains("no such file"), "{err}");
}

#[test]
fn unknown_model_family() {
    let dir = fixture("gpt2-tiny");
    let err = zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--model", "llama9"]);
    assert!(err.contains("unknown model family `llama9`") && err.contains("gpt2"), "{err}");
}

#[test]
fn unknown_backend() {
    let dir = fixture("gpt2-tiny");
    let err = zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--backend", "tpu"]);
    assert!(err.contains("unknown backend `tpu`") && err.contains("ndarray"), "{err}");
}

#[test]
fn bad_flags_are_reported_by_the_parser() {
    let out = zoo(&["run", "--max-tokens", "many"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("invalid value 'many'"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
    let out = zoo(&["fly"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("unrecognized subcommand"), "{}", out.stderr);
}

#[test]
fn negative_temperature_is_rejected() {
    let dir = fixture("gpt2-tiny");
    let err = zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--temperature=-1"]);
    assert!(err.contains("temperature"), "{err}");
}

/// A copy of the gpt2-tiny fixture that a test may break.
fn broken_copy(break_it: impl FnOnce(&Path)) -> tempfile::TempDir {
    broken_copy_of("gpt2-tiny", break_it)
}

/// A copy of fixture `name` that a test may break.
fn broken_copy_of(name: &str, break_it: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    break_it(tmp.path());
    tmp
}

fn run_dir(dir: &Path) -> String {
    zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--max-tokens", "2"])
}

#[test]
fn truncated_weights_file() {
    let tmp = broken_copy(|d| {
        let p = d.join("model.safetensors");
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 2).unwrap();
    });
    let err = run_dir(tmp.path());
    assert!(err.contains("model.safetensors") && err.contains("not a valid safetensors file"), "{err}");
}

#[test]
fn corrupt_config_json() {
    let tmp = broken_copy(|d| std::fs::write(d.join("config.json"), "{\"n_embd\": ").unwrap());
    let err = run_dir(tmp.path());
    assert!(err.contains("config.json") && err.contains("invalid JSON"), "{err}");
}

#[test]
fn config_missing_a_field() {
    let tmp = broken_copy(|d| {
        let path = d.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg.as_object_mut().unwrap().remove("n_layer");
        std::fs::write(path, cfg.to_string()).unwrap();
    });
    let err = run_dir(tmp.path());
    assert!(err.contains("gpt2 config") && err.contains("n_layer"), "{err}");
}

#[test]
fn config_of_an_unknown_family() {
    let tmp = broken_copy(|d| std::fs::write(d.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap());
    let err = run_dir(tmp.path());
    assert!(err.contains("pass --model"), "{err}");
}

#[test]
fn weights_of_the_wrong_shape() {
    let tmp = broken_copy(|d| {
        let path = d.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg["n_embd"] = serde_json::json!(32);
        std::fs::write(path, cfg.to_string()).unwrap();
    });
    let err = run_dir(tmp.path());
    assert!(err.contains("wte.weight") && err.contains("expected [50257, 32]"), "{err}");
}

/// Appends tensor `name` (two f32 zeros) to `dir/model.safetensors`, keeping the data aligned.
fn add_tensor(dir: &Path, name: &str) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header[name] = serde_json::json!({"dtype": "F32", "shape": [2], "data_offsets": [data.len(), data.len() + 8]});
    let mut text = header.to_string();
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text.as_bytes());
    out.extend(data);
    out.extend([0u8; 8]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn tensors_the_model_does_not_use_are_refused_unless_allowed() {
    let tmp = broken_copy(|d| add_tensor(d, "h.0.mlp.c_gate.weight"));
    let err = run_dir(tmp.path());
    assert!(err.contains("1 tensor(s)") && err.contains("`h.0.mlp.c_gate.weight`"), "{err}");
    assert!(err.contains("--allow-unused"), "{err}");
    let out = zoo(&["run", "--weights", tmp.path().to_str().unwrap(), "--max-tokens", "2", "--allow-unused"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("1 tensor(s) left unused") && out.stderr.contains("h.0.mlp.c_gate.weight"));
}

#[test]
fn unsupported_rope_scaling_is_named() {
    let tmp = broken_copy_of("llama-linear", |d| {
        let path = d.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg["rope_parameters"]["rope_type"] = serde_json::json!("longrope");
        std::fs::write(path, cfg.to_string()).unwrap();
    });
    let err = run_dir(tmp.path());
    assert!(err.contains("rope_type `longrope` is not supported"), "{err}");
}

#[test]
fn missing_tokenizer() {
    let tmp = broken_copy(|d| std::fs::remove_file(d.join("merges.txt")).unwrap());
    let err = run_dir(tmp.path());
    assert!(err.contains("--tokenizer"), "{err}");
    // ... and --tokenizer fixes it.
    let fixed = zoo(&[
        "run",
        "--weights",
        tmp.path().to_str().unwrap(),
        "--tokenizer",
        fixture("gpt2-tiny").to_str().unwrap(),
        "--max-tokens",
        "2",
    ]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
}

#[test]
fn a_gguf_vocabulary_zoo_does_not_build_says_why_and_takes_a_tokenizer() {
    // llama3-rope's GGUF with `tokenizer.ggml.model` patched from `llama` to `hyena`.
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("llama3-rope-gguf/model.bf16.gguf")).unwrap();
    let key = b"tokenizer.ggml.model\x08\0\0\0\x05\0\0\0\0\0\0\0llama";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("the key is in the file") + key.len() - 5;
    bytes[at..at + 5].copy_from_slice(b"hyena");
    let path = tmp.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    let err = zoo_fails(&["run", "--weights", path.to_str().unwrap(), "--prompt", "Hi", "--max-tokens", "1"]);
    assert!(err.contains("model.gguf") && err.contains("`hyena`") && err.contains("--tokenizer"), "{err}");
    let fixed = zoo(&[
        "run",
        "--weights",
        path.to_str().unwrap(),
        "--tokenizer",
        fixture("llama3-rope").to_str().unwrap(),
        "--prompt",
        "Hi",
        "--max-tokens",
        "2",
    ]);
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
}

#[test]
fn prompt_longer_than_the_context() {
    let dir = fixture("gpt2-tiny");
    let prompt = "word ".repeat(200);
    let err = zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--prompt", &prompt]);
    assert!(err.contains("context length exceeded") && err.contains("128"), "{err}");
}

#[test]
fn generation_stops_at_the_context_limit() {
    let dir = fixture("gpt2-tiny");
    let prompt = "word ".repeat(120);
    let out = zoo(&["run", "--weights", dir.to_str().unwrap(), "--prompt", &prompt, "--max-tokens", "50", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["stop_reason"], "context_full");
    let total = report["prompt_tokens"].as_array().unwrap().len() + report["tokens"].as_array().unwrap().len();
    assert_eq!(total, 128);
}

#[test]
fn empty_prompt_is_an_error() {
    let dir = fixture("gpt2-tiny");
    let err = zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--prompt", ""]);
    assert!(err.contains("empty"), "{err}");
}

fn reference_prompt(i: usize) -> serde_json::Value {
    reference("gpt2-tiny")["prompts"][i].clone()
}

#[test]
fn stop_strings_are_neither_printed_nor_reported() {
    let prompt = reference_prompt(0);
    let full = prompt["generated_text"].as_str().unwrap();
    let stop: String = full.chars().skip(full.chars().count() / 2).take(4).collect();
    let expected = &full[..full.find(&stop).unwrap()];
    let dir = fixture("gpt2-tiny");
    let base = ["run", "--weights", dir.to_str().unwrap(), "--prompt", prompt["text"].as_str().unwrap()];
    let json = zoo(&[&base[..], &["--stop", &stop, "--stop", "never-generated", "--json"]].concat());
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["stop_reason"], "stop_string");
    assert_eq!(report["text"], expected);
    let text = zoo(&[&base[..], &["--stop", &stop]].concat());
    assert_eq!(text.stdout, format!("{expected}\n"));
    assert!(text.stderr.contains("stopped: stop_string"), "{}", text.stderr);
}

#[test]
fn prompts_file_generates_each_prompt_as_if_alone() {
    let reference = reference("gpt2-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("prompts.txt");
    // The first two reference prompts (the third spans several lines).
    std::fs::write(
        &file,
        format!("{}\n\n{}\n", reference["prompts"][0]["text"], reference["prompts"][1]["text"]).replace('"', ""),
    )
    .unwrap();
    let dir = fixture("gpt2-tiny");
    let out = zoo(&["run", "--weights", dir.to_str().unwrap(), "--prompts-file", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["tokens"], reference["prompts"][i]["tokens"], "prompt {i}");
    }
}

#[test]
fn generation_config_supplies_sampling_defaults() {
    let tmp = broken_copy(|d| {
        std::fs::write(
            d.join("generation_config.json"),
            r#"{"do_sample": true, "temperature": 1.2, "eos_token_id": 50256}"#,
        )
        .unwrap()
    });
    let dir = tmp.path().to_str().unwrap();
    let tokens = |extra: &[&str]| {
        let out = zoo(&[&["run", "--weights", dir, "--json"], extra].concat());
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["tokens"].clone()
    };
    let greedy = reference_prompt(0)["tokens"].clone();
    assert_ne!(tokens(&[]), greedy, "generation_config.json asked for sampling");
    assert_eq!(tokens(&["--temperature", "0"]), greedy, "--temperature 0 overrides it");
}

#[test]
fn a_full_sampler_chain_is_reproducible_and_every_flag_counts() {
    let dir = fixture("gpt2-tiny");
    // Each flag with the value the chain uses and a clearly different one.
    let flags: [(&str, &str, &str); 8] = [
        ("--temperature", "0.8", "1.6"),
        ("--top-k", "40", "2"),
        ("--top-p", "0.95", "0.2"),
        ("--min-p", "0.05", "0.9"),
        ("--repeat-penalty", "1.1", "4.0"),
        ("--frequency-penalty", "0.1", "3.0"),
        ("--presence-penalty", "-0.1", "3.0"),
        ("--seed", "3", "4"),
    ];
    let tokens = |changed: Option<usize>| {
        let mut args = vec!["run", "--weights", dir.to_str().unwrap(), "--max-tokens", "24", "--json"];
        for (i, (flag, base, other)) in flags.iter().enumerate() {
            args.extend([*flag, if changed == Some(i) { *other } else { *base }]);
        }
        let out = zoo(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["tokens"].clone()
    };
    let base = tokens(None);
    assert_eq!(base, tokens(None), "the same flags and seed give the same tokens");
    insta::assert_json_snapshot!("sampler-chain-tokens", base);
    for (i, (flag, _, other)) in flags.iter().enumerate() {
        assert_ne!(tokens(Some(i)), base, "{flag} {other} changed nothing: is the flag ignored?");
    }
}

#[test]
fn out_of_range_sampling_flags_are_rejected() {
    let dir = fixture("gpt2-tiny");
    let err = zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--top-p", "1.5"]);
    assert!(err.contains("top-p"), "{err}");
}

#[test]
fn cuda_without_the_cuda_build_says_how_to_get_it() {
    let dir = fixture("gpt2-tiny");
    let err = zoo_fails(&["run", "--weights", dir.to_str().unwrap(), "--backend", "cuda"]);
    assert!(err.contains("built without CUDA support") && err.contains("build-cuda.sh"), "{err}");
}
