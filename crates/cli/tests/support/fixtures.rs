//! The committed test fixtures (`tests/fixtures/`), shared by the binary's test files.
// Each test file uses the part it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The fixture directory `name`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

/// Fixture `name`'s `reference.json`.
pub fn reference(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The arguments of `zoo run --json` that replay `prompt` (an entry of a `reference.json`'s
/// `prompts`) greedily on `weights`, generating as many tokens as the reference holds.
pub fn greedy_run_args(weights: &str, prompt: &serde_json::Value) -> Vec<String> {
    let max_tokens = prompt["tokens"].as_array().unwrap().len().to_string();
    let text = prompt["text"].as_str().unwrap();
    let args =
        ["run", "--weights", weights, "--prompt", text, "--max-tokens", &max_tokens, "--temperature", "0", "--json"];
    args.map(String::from).to_vec()
}
