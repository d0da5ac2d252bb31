//! House rules checked as ordinary tests (ARCHITECTURE.md, "House rules"): every source file opens with a `//!`
//! doc, library crates never print, and files stay short enough to read in one sitting.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(roots: &[&str]) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for root in roots {
        rust_files(&repo().join(root), &mut files);
    }
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

const LIBRARIES: &[&str] = &[
    "crates/core/src",
    "crates/checkpoint/src",
    "crates/models/src",
    "crates/backends/ndarray/src",
    "crates/backends/burn/src",
    "crates/backends/candle/src",
    "crates/zoo/src",
    "crates/serve/src",
];

#[test]
fn every_source_file_starts_with_a_module_doc() {
    for (path, text) in sources(&["crates", "xtask/src", "tests/src", "tests/tests"]) {
        assert!(text.starts_with("//!"), "{} has no leading //! doc comment", path.display());
    }
}

#[test]
fn libraries_do_not_print() {
    for (path, text) in sources(LIBRARIES) {
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for line in code {
            for needle in ["println!", "eprintln!", "print!(", "dbg!("] {
                assert!(!line.contains(needle), "{} uses {needle}; libraries report through errors", path.display());
            }
        }
    }
}

#[test]
fn files_stay_readable() {
    for (path, text) in sources(&["crates", "xtask/src"]) {
        let lines = text.lines().count();
        let cap = if path.components().any(|c| c.as_os_str() == "models") { 600 } else { 800 };
        assert!(lines <= cap, "{} has {lines} lines (cap {cap}): split it", path.display());
    }
}

#[test]
fn the_library_crate_has_no_command_line_dependencies() {
    let manifest = std::fs::read_to_string(repo().join("crates/zoo/Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dependencies]").nth(1).expect("crates/zoo/Cargo.toml has [dependencies]");
    for line in dependencies.lines().map(str::trim) {
        for banned in ["clap", "anyhow", "indicatif"] {
            assert!(!line.starts_with(banned), "crates/zoo depends on {banned}: {line}");
        }
    }
}
