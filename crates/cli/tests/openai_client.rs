//! The real PyPI `openai` client against `zoo serve` on the default model
//! (`serve/openai_client.py`). Its Python environment comes from
//! `scripts/install-serve-test-deps.sh`; without it the test fails saying so, unless
//! `ZOO_SKIP_OPENAI_TEST=1` asks to skip it (then it prints `SKIPPED`).

#[path = "serve/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that has `openai`: `$ZOO_SERVE_TEST_PYTHON`, else the install script's venv.
fn python() -> PathBuf {
    match std::env::var_os("ZOO_SERVE_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => zoo::cache_dir().join("serve-test-venv/bin/python"),
    }
}

/// Whether `python` imports `openai`; if not, fails (or skips with `ZOO_SKIP_OPENAI_TEST=1`).
fn openai_available(python: &Path) -> bool {
    let ok = Command::new(python).args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    let message =
        format!("{} cannot import the openai package; run scripts/install-serve-test-deps.sh", python.display());
    assert!(std::env::var_os("ZOO_SKIP_OPENAI_TEST").is_some(), "{message} (or set ZOO_SKIP_OPENAI_TEST=1)");
    eprintln!("SKIPPED (ZOO_SKIP_OPENAI_TEST): {message}");
    false
}

#[test]
fn the_openai_python_client_talks_to_zoo_serve() {
    let python = python();
    if !openai_available(&python) {
        return;
    }
    if !zoo::default_weights().exists() {
        assert!(
            std::env::var_os("ZOO_SKIP_DEFAULT_MODEL").is_some(),
            "the default model is missing; run scripts/fetch-default-model.sh (or set ZOO_SKIP_DEFAULT_MODEL=1)"
        );
        eprintln!("SKIPPED (ZOO_SKIP_DEFAULT_MODEL): the default model is missing");
        return;
    }
    let server = server::Server::start(&["--api-key", "test-key", "--max-context", "512"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/openai_client.py");
    let out = Command::new(&python).arg(script).args([&server.base, "test-key"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
