//! `--weights org/name`: models found in the Hugging Face hub cache and downloaded into it.
//!
//! The offline side runs on `tests/fixtures/hub-cache`, laid out by the real `huggingface_hub`
//! (xtask/python/hub_cache.py); the download side against `support/hub_server.rs`, a hub
//! stand-in on 127.0.0.1. Every run compares its tokens with the fixture directory's.

#[path = "support/fixtures.rs"]
mod fixtures;
#[path = "support/hub_server.rs"]
mod hub_server;

use std::path::{Path, PathBuf};
use std::process::Command;

use fixtures::{fixture, greedy_run_args, reference};
use hub_server::{HubServer, Repo};
use zoo::{Hub, HubError, HubId};

/// The repository in tests/fixtures/hub-cache.
const CACHED_ID: &str = "zoo-fixtures/llama-linear";

/// Environment variables that would steer the binary away from what a test sets.
const CLEARED: [&str; 16] = [
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HOME",
    "XDG_CACHE_HOME",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// What a run of the binary printed.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `zoo ARGS` with only the hub variables `env` sets (`HF_HOME` in a fresh folder unless
/// given, so no saved token is read).
fn zoo(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_zoo"));
    command.args(args).env_remove("ZOO_DEFAULT_MODEL").env("HF_HOME", home.path());
    for name in CLEARED.iter().filter(|n| **n != "HF_HOME") {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `zoo run --json` of the fixture's first reference prompt on `weights`, checked against the
/// reference tokens; the JSON report and the logits after the prompt.
fn run_reference(source: &str, weights: &str, env: &[(&str, &str)]) -> (serde_json::Value, String) {
    let prompt = &reference(source)["prompts"][0];
    let logits = tempfile::NamedTempFile::new().unwrap();
    let mut args = greedy_run_args(weights, prompt);
    args.extend(["--dump-logits".into(), logits.path().to_str().unwrap().into()]);
    let out = zoo(&args.iter().map(String::as_str).collect::<Vec<_>>(), env);
    assert_eq!(out.code, 0, "{weights}: {}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["tokens"], prompt["tokens"], "{weights}");
    (report, std::fs::read_to_string(logits.path()).unwrap())
}

/// [`run_reference`] on the fixture directory itself.
fn run_fixture(source: &str) -> (serde_json::Value, String) {
    run_reference(source, fixture(source).to_str().unwrap(), &[])
}

/// A hub with `cache`, downloading from `endpoint`.
fn hub(cache: &Path, endpoint: &str, token: Option<&str>) -> Hub {
    Hub { cache: cache.to_path_buf(), endpoint: endpoint.into(), token: token.map(String::from), offline: false }
}

/// `repo` of `id`'s folder in `cache`.
fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

/// What the files of `repo` must be in `cache` after a download: a relative symlink per file in
/// `snapshots/{commit}/` to `blobs/{etag}` with the served bytes, `refs/main`, and no leftovers.
fn check_layout(cache: &Path, repo: &Repo, files: &[&str]) {
    let dir = repo_dir(cache, &repo.id);
    let commit = repo.commit();
    assert_eq!(std::fs::read_to_string(dir.join("refs/main")).unwrap(), commit);
    assert!(!dir.join("refs").join(&commit).exists(), "refs/{commit} is written by nobody else");
    for file in files {
        let link = dir.join("snapshots").join(&commit).join(file);
        let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert_eq!(target, Path::new("../../blobs").join(repo.etag(file)), "{file}");
        assert_eq!(std::fs::read(&link).unwrap(), repo.files[*file], "{file}");
    }
    let blobs: Vec<String> = std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(blobs.len(), files.len(), "{blobs:?}");
}

/// The files of llama-linear that a model needs (no reference files, nothing extra).
const LLAMA_FILES: [&str; 5] =
    ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

#[test]
fn a_cache_laid_out_by_huggingface_hub_runs_offline_like_the_fixture() {
    let cache = fixture("hub-cache");
    let env = [("HF_HUB_CACHE", cache.to_str().unwrap()), ("HF_HUB_OFFLINE", "1")];
    let (direct, direct_logits) = run_fixture("llama-linear");
    let (cached, cached_logits) = run_reference("llama-linear", CACHED_ID, &env);
    assert_eq!(cached["text"], direct["text"]);
    assert_eq!(cached_logits, direct_logits);
    // A commit hash names its snapshot directly.
    let commit = std::fs::read_to_string(repo_dir(&cache, CACHED_ID).join("refs/main")).unwrap();
    let (pinned, _) = run_reference("llama-linear", &format!("{CACHED_ID}@{commit}"), &env);
    assert_eq!(pinned["tokens"], direct["tokens"]);
    // Without HF_HUB_CACHE the cache is $HF_HOME/hub (here a link to the fixture).
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&cache, home.path().join("hub")).unwrap();
    let env = [("HF_HOME", home.path().to_str().unwrap()), ("HF_HUB_OFFLINE", "true")];
    run_reference("llama-linear", CACHED_ID, &env);
}

#[test]
fn offline_a_missing_model_is_one_line_naming_the_id_the_cache_and_offline_mode() {
    let empty = tempfile::tempdir().unwrap();
    let cache = empty.path().to_str().unwrap();
    let out = zoo(
        &["run", "--weights", "zoo-test/absent", "--max-tokens", "1"],
        &[("HF_HUB_CACHE", cache), ("HF_HUB_OFFLINE", "1")],
    );
    assert_ne!(out.code, 0);
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("zoo-test/absent") && err.contains(cache) && err.contains("HF_HUB_OFFLINE"), "{err}");
    // A revision the cache has no refs file for.
    let fixture_cache = fixture("hub-cache");
    let env = [("HF_HUB_CACHE", fixture_cache.to_str().unwrap()), ("HF_HUB_OFFLINE", "yes")];
    let out = zoo(&["run", "--weights", &format!("{CACHED_ID}@v2"), "--max-tokens", "1"], &env);
    assert!(out.stderr.contains("refs/v2") && out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(std::fs::read_dir(empty.path()).unwrap().next().is_none(), "offline wrote into the cache");
}

#[test]
fn hostile_ids_are_refused_and_paths_stay_paths() {
    let empty = tempfile::tempdir().unwrap();
    let env = [("HF_HUB_CACHE", empty.path().to_str().unwrap()), ("HF_HUB_OFFLINE", "1")];
    for id in ["org/..", "../x", "org/a--b", "org/name@../../etc", "org/na me", "org/"] {
        let out = zoo(&["run", "--weights", id, "--max-tokens", "1"], &env);
        assert_ne!(out.code, 0, "{id}");
        if !id.starts_with('.') {
            assert!(out.stderr.contains("not a Hugging Face model id"), "{id}: {}", out.stderr);
        }
    }
    // Not shaped like an id: the loader's own error, naming the path.
    let out = zoo(&["run", "--weights", "/nonexistent/zoo/model.gguf", "--max-tokens", "1"], &env);
    assert!(
        out.stderr.contains("/nonexistent/zoo/model.gguf") && !out.stderr.contains("Hugging Face"),
        "{}",
        out.stderr
    );
    assert!(std::fs::read_dir(empty.path()).unwrap().next().is_none(), "an id reached the cache");
}

#[test]
fn zoo_run_downloads_from_hf_endpoint_with_hf_token_then_runs_without_the_server() {
    let mut repo = Repo::from_dir("zoo-test/llama-linear", &fixture("llama-linear"));
    // Files a model does not need: never downloaded.
    repo.files.insert("README.md".into(), b"# a model card".to_vec());
    repo.files.insert("pytorch_model.bin".into(), b"not read: model.safetensors comes first".to_vec());
    repo.files.insert("onnx/model.onnx".into(), vec![0; 1000]);
    repo.token = Some("hf_zoo_test".into());
    let cache = tempfile::tempdir().unwrap();
    let server = HubServer::start(repo.clone());
    let endpoint = server.endpoint.clone();
    let env = [
        ("HF_HUB_CACHE", cache.path().to_str().unwrap()),
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_TOKEN", "hf_zoo_test"),
    ];
    let (direct, direct_logits) = run_fixture("llama-linear");
    let (downloaded, logits) = run_reference("llama-linear", "zoo-test/llama-linear", &env);
    assert_eq!((downloaded["text"].clone(), logits), (direct["text"].clone(), direct_logits));
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.headers.get("authorization").map(String::as_str) == Some("Bearer hf_zoo_test")));
    let mut fetched = server.downloaded();
    fetched.sort();
    assert_eq!(fetched, LLAMA_FILES);
    check_layout(cache.path(), &repo, &LLAMA_FILES);
    drop(server);
    // The server is gone: the cache alone answers.
    let (again, _) = run_reference("llama-linear", "zoo-test/llama-linear", &env);
    assert_eq!(again["tokens"], direct["tokens"]);
}

#[test]
fn a_sharded_checkpoint_is_downloaded_shard_by_shard() {
    let source = "gpt2-tiny-bf16-pt-sharded";
    let repo = Repo::from_dir("zoo-test/sharded", &fixture(source));
    let cache = tempfile::tempdir().unwrap();
    let server = HubServer::start(repo.clone());
    let id = HubId::parse("zoo-test/sharded").unwrap();
    let snapshot = hub(cache.path(), &server.endpoint, None).resolve(&id, &mut ()).unwrap();
    let files: Vec<&str> = repo.files.keys().map(String::as_str).collect();
    check_layout(cache.path(), &repo, &files);
    let (direct, _) = run_fixture(source);
    let (cached, _) = run_reference(source, snapshot.to_str().unwrap(), &[]);
    assert_eq!(cached["text"], direct["text"]);
    // A lost shard comes back, and only it.
    std::fs::remove_file(snapshot.join("pytorch_model-00002-of-00002.bin")).unwrap();
    let before = server.downloaded().len();
    hub(cache.path(), &server.endpoint, None).resolve(&id, &mut ()).unwrap();
    assert_eq!(server.downloaded()[before..], ["pytorch_model-00002-of-00002.bin"]);
}

#[test]
fn not_found_and_refused_downloads_say_why() {
    let mut repo = Repo::from_dir("zoo-test/llama-linear", &fixture("llama-linear"));
    repo.token = Some("hf_right".into());
    let server = HubServer::start(repo);
    let cache = tempfile::tempdir().unwrap();
    let resolve = |id: &str, token: Option<&str>| {
        let id = HubId::parse(id).unwrap();
        hub(cache.path(), &server.endpoint, token).resolve(&id, &mut ()).unwrap_err()
    };
    let err = resolve("zoo-test/absent", Some("hf_right"));
    assert!(matches!(err, HubError::NotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("zoo-test/absent") && text.contains(&server.endpoint) && text.contains("404"), "{text}");
    let err = resolve("zoo-test/llama-linear", None).to_string();
    assert!(err.contains("401") && err.contains("set HF_TOKEN"), "{err}");
    let err = resolve("zoo-test/llama-linear", Some("hf_wrong")).to_string();
    assert!(err.contains("401") && err.contains("may not read"), "{err}");
    // Nothing was written but the (empty) folders hf-hub makes.
    assert!(walk(cache.path()).iter().all(|p| p.is_dir()), "{:?}", walk(cache.path()));
}

#[test]
fn a_download_cut_short_leaves_no_file_at_its_final_path_and_resumes_on_the_next_run() {
    let mut repo = Repo::from_dir("zoo-test/llama-linear", &fixture("llama-linear"));
    let cut = 100_000;
    repo.cut = Some(("model.safetensors".into(), cut));
    let cache = tempfile::tempdir().unwrap();
    let id = HubId::parse("zoo-test/llama-linear").unwrap();
    let server = HubServer::start(repo.clone());
    let err = hub(cache.path(), &server.endpoint, None).resolve(&id, &mut ()).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let dir = repo_dir(cache.path(), &repo.id);
    let link = dir.join("snapshots").join(repo.commit()).join("model.safetensors");
    let blob = dir.join("blobs").join(repo.etag("model.safetensors"));
    assert!(link.symlink_metadata().is_err() && !blob.exists(), "a partial file reached its final path");
    assert_eq!(std::fs::metadata(blob.with_extension("part")).unwrap().len(), cut as u64);
    drop(server);
    repo.cut = None;
    let server = HubServer::start(repo.clone());
    let snapshot = hub(cache.path(), &server.endpoint, None).resolve(&id, &mut ()).unwrap();
    let ranges: Vec<_> = server.requests().iter().filter_map(|r| r.range().map(String::from)).collect();
    assert!(ranges.contains(&format!("bytes={cut}-")), "not resumed: {ranges:?}");
    assert_eq!(std::fs::read(snapshot.join("model.safetensors")).unwrap(), repo.files["model.safetensors"]);
    check_layout(cache.path(), &repo, &LLAMA_FILES);
}

#[test]
fn a_partial_file_longer_than_the_file_is_discarded() {
    let repo = Repo::from_dir("zoo-test/llama-linear", &fixture("llama-linear"));
    let cache = tempfile::tempdir().unwrap();
    let blobs = repo_dir(cache.path(), &repo.id).join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let part = blobs.join(format!("{}.part", repo.etag("config.json")));
    std::fs::write(&part, vec![b'x'; repo.files["config.json"].len() + 10]).unwrap();
    let server = HubServer::start(repo.clone());
    let id = HubId::parse("zoo-test/llama-linear").unwrap();
    let snapshot = hub(cache.path(), &server.endpoint, None).resolve(&id, &mut ()).unwrap();
    assert_eq!(std::fs::read(snapshot.join("config.json")).unwrap(), repo.files["config.json"]);
    assert!(!part.exists());
}

#[test]
fn a_server_cannot_name_files_outside_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let inside = cache.path().join("hub");
    // An etag that is a path.
    let mut repo = Repo::from_dir("zoo-test/llama-linear", &fixture("llama-linear"));
    repo.etags.insert("config.json".into(), "../../../escaped".into());
    let server = HubServer::start(repo);
    let id = HubId::parse("zoo-test/llama-linear").unwrap();
    let err = hub(&inside, &server.endpoint, None).resolve(&id, &mut ()).unwrap_err();
    assert!(matches!(err, HubError::BadResponse { .. }) && err.to_string().contains("etag"), "{err}");
    // A shard index naming a file outside the snapshot, and one naming a shard the repository lacks.
    for (shard, expected) in [("../escaped.bin", "not a file name"), ("absent.bin", "does not have")] {
        let mut repo = Repo::from_dir("zoo-test/sharded", &fixture("gpt2-tiny-bf16-pt-sharded"));
        let index = serde_json::json!({ "weight_map": { "wte.weight": shard } });
        repo.files.insert("pytorch_model.bin.index.json".into(), index.to_string().into_bytes());
        let server = HubServer::start(repo);
        let id = HubId::parse("zoo-test/sharded").unwrap();
        let err = hub(&inside, &server.endpoint, None).resolve(&id, &mut ()).unwrap_err().to_string();
        assert!(err.contains("pytorch_model.bin.index.json") && err.contains(expected), "{err}");
    }
    assert!(walk(cache.path()).iter().all(|p| p.starts_with(&inside)), "{:?}", walk(cache.path()));
    assert!(!walk(cache.path()).iter().any(|p| p.to_string_lossy().contains("escaped")));
}

#[test]
fn damaged_caches_name_the_file_at_fault() {
    let cache = tempfile::tempdir().unwrap();
    let offline = Hub { offline: true, ..hub(cache.path(), "http://127.0.0.1:9", None) };
    let id = HubId::parse("zoo-test/model").unwrap();
    let dir = repo_dir(cache.path(), "zoo-test/model");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), "garbage\u{1b}[2J").unwrap();
    let err = offline.resolve(&id, &mut ()).unwrap_err().to_string();
    assert!(err.contains("refs/main") && err.contains("garbage\\u{1b}") && err.contains("zoo-test/model"), "{err}");
    // A snapshot whose index lists a shard it does not have.
    std::fs::write(dir.join("refs/main"), format!("{commit}\n")).unwrap();
    let snapshot = dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    let sharded = fixture("gpt2-tiny-bf16-pt-sharded");
    for file in ["config.json", "pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin"] {
        std::fs::copy(sharded.join(file), snapshot.join(file)).unwrap();
    }
    let err = offline.resolve(&id, &mut ()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HubError::MissingShard { .. }), "{err:?}");
    assert!(
        text.contains("pytorch_model.bin.index.json") && text.contains("pytorch_model-00002-of-00002.bin"),
        "{text}"
    );
    // No weights at all.
    std::fs::remove_file(snapshot.join("pytorch_model.bin.index.json")).unwrap();
    let err = offline.resolve(&id, &mut ()).unwrap_err().to_string();
    assert!(err.contains(&*snapshot.to_string_lossy()) && err.contains("has no weights"), "{err}");
}

/// Every file and folder under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}
