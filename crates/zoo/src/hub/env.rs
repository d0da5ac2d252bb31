//! The environment variables `huggingface_hub` reads, read the same way: where the cache is,
//! which endpoint to download from, the token, offline mode. Each function takes the lookup as
//! an argument so that tests need not change the process environment.

use std::path::PathBuf;

/// The hub's address when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// An environment lookup: the variable's value, `None` when unset or empty.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a [`Lookup`] (empty values count as unset).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`; `None` when
/// none of these can be made (no home directory).
pub fn hf_home(env: Lookup) -> Option<PathBuf> {
    if let Some(home) = env("HF_HOME") {
        return expand_home(&home, env);
    }
    let cache = match env("XDG_CACHE_HOME") {
        Some(dir) => expand_home(&dir, env)?,
        None => PathBuf::from(env("HOME")?).join(".cache"),
    };
    Some(cache.join("huggingface"))
}

/// The hub cache: `$HF_HUB_CACHE` (or the older `$HUGGINGFACE_HUB_CACHE`), else
/// [`hf_home`]`/hub`.
pub fn hub_cache(env: Lookup) -> Option<PathBuf> {
    match env("HF_HUB_CACHE").or_else(|| env("HUGGINGFACE_HUB_CACHE")) {
        Some(dir) => expand_home(&dir, env),
        None => Some(hf_home(env)?.join("hub")),
    }
}

/// `$HF_ENDPOINT` without trailing `/`, else [`DEFAULT_ENDPOINT`].
pub fn endpoint(env: Lookup) -> String {
    env("HF_ENDPOINT").map_or_else(|| DEFAULT_ENDPOINT.to_string(), |e| e.trim_end_matches('/').to_string())
}

/// The access token: `$HF_TOKEN` (or the older `$HUGGING_FACE_HUB_TOKEN`), else the first line
/// of `$HF_TOKEN_PATH` or [`hf_home`]`/token` (where `hf auth login` saves it).
pub fn token(env: Lookup) -> Option<String> {
    if let Some(token) = env("HF_TOKEN").or_else(|| env("HUGGING_FACE_HUB_TOKEN")) {
        return Some(token.trim().to_string());
    }
    let path = match env("HF_TOKEN_PATH") {
        Some(path) => expand_home(&path, env)?,
        None => hf_home(env)?.join("token"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Whether offline mode is on: `$HF_HUB_OFFLINE` (or `$TRANSFORMERS_OFFLINE`) is `1`, `true`,
/// `yes` or `on`, in any case.
pub fn offline(env: Lookup) -> bool {
    let value = env("HF_HUB_OFFLINE").or_else(|| env("TRANSFORMERS_OFFLINE")).unwrap_or_default();
    ["1", "TRUE", "YES", "ON"].contains(&value.trim().to_ascii_uppercase().as_str())
}

/// `path` with a leading `~` replaced by `$HOME`, as Python's `expanduser` does; `None` when it
/// starts with `~` and there is no `$HOME`.
fn expand_home(path: &str, env: Lookup) -> Option<PathBuf> {
    match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            Some(PathBuf::from(env("HOME")?).join(rest.trim_start_matches('/')))
        }
        _ => Some(PathBuf::from(path)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_cache_follows_huggingface_hub_precedence() {
        let home = [("HOME", "/home/u")];
        assert_eq!(hub_cache(&env(&home)), Some(PathBuf::from("/home/u/.cache/huggingface/hub")));
        let xdg = [("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")];
        assert_eq!(hub_cache(&env(&xdg)), Some(PathBuf::from("/x/huggingface/hub")));
        let hf_home = [("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x"), ("HF_HOME", "~/hf")];
        assert_eq!(hub_cache(&env(&hf_home)), Some(PathBuf::from("/home/u/hf/hub")));
        let all = [("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c"), ("HUGGINGFACE_HUB_CACHE", "/old")];
        assert_eq!(hub_cache(&env(&all)), Some(PathBuf::from("/c")));
        assert_eq!(hub_cache(&env(&[("HUGGINGFACE_HUB_CACHE", "/old")])), Some(PathBuf::from("/old")));
        assert_eq!(hub_cache(&env(&[])), None);
    }

    #[test]
    fn endpoint_offline_and_token() {
        assert_eq!(endpoint(&env(&[])), DEFAULT_ENDPOINT);
        assert_eq!(endpoint(&env(&[("HF_ENDPOINT", "http://127.0.0.1:9/")])), "http://127.0.0.1:9");
        for on in ["1", "true", "YES", "On"] {
            assert!(offline(&env(&[("HF_HUB_OFFLINE", on)])), "{on}");
        }
        for off in ["0", "false", "no", "2"] {
            assert!(!offline(&env(&[("HF_HUB_OFFLINE", off)])), "{off}");
        }
        assert!(offline(&env(&[("TRANSFORMERS_OFFLINE", "1")])));
        assert_eq!(token(&env(&[("HF_TOKEN", "hf_x\n")])), Some("hf_x".into()));
        let dir = std::env::temp_dir().join(format!("zoo-hub-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "hf_saved\n").unwrap();
        assert_eq!(token(&env(&[("HF_HOME", dir.to_str().unwrap())])), Some("hf_saved".into()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(token(&env(&[("HF_HOME", "/nonexistent-zoo")])), None);
    }
}
