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
