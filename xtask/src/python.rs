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
    run(&mut cmd)?;
    run(Command::new("du").args(["-sh"]).arg(root().join("tests/fixtures")))
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
