//! Running the repository's Python scripts in its virtual environment.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the repo root").to_path_buf()
}

/// The venv's Python, creating the venv first if needed.
pub fn python() -> Result<PathBuf> {
    let python = root().join(".venv/bin/python");
    if !python.is_file() {
        eprintln!("xtask: creating the Python environment (scripts/setup-python.sh)...");
        run(Command::new("bash").arg(root().join("scripts/setup-python.sh")))?;
    }
    Ok(python)
}

/// Downloads registry assets into `.cache/assets` (no-op when present).
pub fn fetch_assets() -> Result<PathBuf> {
    run(Command::new("bash").arg(root().join("scripts/fetch-assets.sh")).stdout(std::process::Stdio::null()))?;
    Ok(root().join(".cache/assets"))
}

/// Runs a command, failing with its description when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// `cargo xtask gen-fixtures`.
pub fn gen_fixtures(only: Option<&str>) -> Result<()> {
    let python = python()?;
    let assets = fetch_assets()?;
    let mut cmd = Command::new(python);
    cmd.arg(root().join("xtask/python/fixtures.py"))
        .args(["generate", "--out"])
        .arg(root().join("tests/fixtures"))
        .arg("--assets")
        .arg(assets);
    if let Some(name) = only {
        cmd.args(["--only", name]);
    }
    if only.is_none_or(|o| o != GGUF_FIXTURE) {
        run(&mut cmd)?;
    }
    if only.is_none_or(|o| o == GGUF_FIXTURE) {
        let model = fetch_default_model()?;
        gguf_reference(&model, &root().join("tests/fixtures").join(GGUF_FIXTURE).join("reference.json"))?;
    }
    run(Command::new("du").args(["-sh"]).arg(root().join("tests/fixtures")))
}

/// The fixture whose reference comes from the default model, a GGUF kept in zoo's cache.
pub const GGUF_FIXTURE: &str = "smollm2";

/// Fetches the default model (`scripts/fetch-default-model.sh`; no-op when cached); its path.
pub fn fetch_default_model() -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(root().join("scripts/fetch-default-model.sh"))
        .env("PYTHON", python()?)
        .output()
        .context("running scripts/fetch-default-model.sh")?;
    if !out.status.success() {
        bail!("scripts/fetch-default-model.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Computes the reference of GGUF file `model` with transformers' GGUF loader into `out`.
pub fn gguf_reference(model: &Path, out: &Path) -> Result<()> {
    run(Command::new(python()?)
        .arg(root().join("xtask/python/gguf_reference.py"))
        .arg("--gguf")
        .arg(model)
        .arg("--out")
        .arg(out))
}

/// Recomputes `dir`'s reference with the Python reference implementation into `out`.
pub fn reference(dir: &Path, out: &Path) -> Result<()> {
    run(Command::new(python()?)
        .arg(root().join("xtask/python/fixtures.py"))
        .args(["reference", "--model-dir"])
        .arg(dir)
        .arg("--out")
        .arg(out))
}
