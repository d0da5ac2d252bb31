//! Whether the tests that need the default model can run.

/// Whether the default model has been fetched (scripts/fetch-default-model.sh). Its absence
/// fails the tests that need it, unless `ZOO_SKIP_DEFAULT_MODEL=1` asks to skip them (then
/// each says so on stderr).
pub fn default_model_present() -> bool {
    let path = zoo::default_weights();
    if path.exists() {
        return true;
    }
    let message = format!("{} is missing; run scripts/fetch-default-model.sh", path.display());
    assert!(std::env::var_os("ZOO_SKIP_DEFAULT_MODEL").is_some(), "{message} (or set ZOO_SKIP_DEFAULT_MODEL=1)");
    eprintln!("SKIPPED (ZOO_SKIP_DEFAULT_MODEL): {message}");
    false
}
