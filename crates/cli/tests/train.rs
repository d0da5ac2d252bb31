//! `zoo train` end to end through the binary: a few steps on the committed public-domain text,
//! the run directory answering `zoo run`, its TensorBoard event files and loss plot, a resume
//! extending the run, and bad input ending in one `error:` line.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};

use binary::{zoo, Output};
use fixtures::fixture;
use zoo_train::tensorboard::{event_files, read_events, What};

fn books() -> PathBuf {
    fixture("train").join("books.txt")
}

fn train(out: &Path, extra: &[&str]) -> Output {
    let (books, out) = (books(), out.to_str().unwrap().to_string());
    let mut args = vec!["train", "--model", "gpt2", "--data", books.to_str().unwrap(), "--out", &out];
    args.extend(["--vocab-size", "300", "--batch-tokens", "256", "--eval-every", "2"]);
    args.extend(extra);
    zoo(&args)
}

#[test]
fn trains_runs_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = train(&run, &["--steps", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("trained 2 steps: training loss "), "{}", out.stdout);
    assert!(out.stderr.contains("step 2: validation loss"), "{}", out.stderr);

    let events = event_files(&run.join("train")).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(scalar_steps(&events[0]), [("loss/train", 1), ("loss/train", 2), ("loss/validation", 2)]);
    assert_png(&run.join("train/loss.png"));

    let text = zoo(&["run", "--weights", run.to_str().unwrap(), "--prompt", "Alice was", "--max-tokens", "4"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stderr.contains("generated"), "{}", text.stderr);

    let again = train(&run, &["--steps", "3"]);
    assert_ne!(again.code, 0, "training into a run without --resume is refused");
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);
    let resumed = train(&run, &["--steps", "3", "--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(resumed.stdout.starts_with("trained 3 steps"), "{}", resumed.stdout);
    let csv = std::fs::read_to_string(run.join("train/loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "a header and steps 1 to 3: {csv}");
    let events = event_files(&run.join("train")).unwrap();
    assert_eq!(events.len(), 2, "a file per invocation: {events:?}");
    let resumed = read_events(&events[1]).unwrap();
    assert_eq!((resumed[1].step, &resumed[1].what), (3, &What::SessionStart));
    assert_eq!(scalar_steps(&events[1]), [("loss/train", 3), ("loss/validation", 3)]);
    assert_png(&run.join("train/loss.png"));
}

/// The loss tags of an events file with their steps, after checking it starts with the file
/// version and that every scalar is finite.
fn scalar_steps(path: &Path) -> Vec<(&'static str, i64)> {
    let events = read_events(path).unwrap();
    assert_eq!(events[0].what, What::FileVersion("brain.Event:2".into()));
    let mut found = Vec::new();
    for event in &events {
        if let What::Scalars(values) = &event.what {
            for (tag, value) in values {
                assert!(value.is_finite(), "{tag} at step {}: {value}", event.step);
                for known in ["loss/train", "loss/validation"] {
                    if tag == known {
                        found.push((known, event.step));
                    }
                }
            }
        }
    }
    found
}

/// A PNG of the plot's size.
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), zoo_train::plot::SIZE.0);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), zoo_train::plot::SIZE.1);
}

#[test]
fn bad_input_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["train", "--model", "gpt2", "--data", missing.to_str().unwrap(), "--out", out, "--steps", "1"],
            "missing.txt",
        ),
        (
            vec!["train", "--model", "llama", "--data", missing.to_str().unwrap(), "--out", out, "--steps", "1"],
            "--model",
        ),
        (vec!["train", "--model", "gpt2", "--out", out, "--resume"], "no checkpoint"),
        (
            vec![
                "train",
                "--model",
                "gpt2",
                "--data",
                missing.to_str().unwrap(),
                "--out",
                out,
                "--backend",
                "candle",
                "--steps",
                "1",
            ],
            "--backend",
        ),
    ] {
        let result = zoo(&args);
        assert_ne!(result.code, 0, "{args:?}");
        let lines: Vec<&str> = result.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", result.stderr);
        assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: {}", lines[0]);
    }
}
