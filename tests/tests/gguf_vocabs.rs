//! llama.cpp's own tokenizer tests on its vocabulary-only GGUFs (`ggml-vocab-*.gguf`, no weights,
//! from the llama-cpp-python 0.3.36 sdist: `scripts/fetch-llama-vocabs.sh`). Every vocabulary is
//! either built from the GGUF metadata alone and then encodes every `.inp` string to exactly the
//! `.out` ids and decodes them back to the string, or refused with the expected reason.
//!
//! The files are not committed (75 MB): their absence fails the test, unless
//! `ZOO_SKIP_LLAMA_VOCABS=1` asks to skip it (then it prints `SKIPPED`).

use std::path::{Path, PathBuf};

use zoo_checkpoint::TextTokenizer;
use zoo_core::Tokenizer;

/// What each vocabulary must do.
enum Expect {
    /// Built; every vector passes and round-trips.
    Pass,
    /// Built; it has no vectors, so llama-spm's inputs only round-trip.
    RoundTrip,
    /// Refused with an error containing this text.
    Refused(&'static str),
}

/// Every file of the set (a new file fails the test until it is listed).
const EXPECTED: &[(&str, Expect)] = &[
    ("aquila", Expect::RoundTrip),
    ("baichuan", Expect::RoundTrip),
    ("bert-bge", Expect::Refused("`bert` (WordPiece) is not supported")),
    ("command-r", Expect::Pass),
    ("deepseek-coder", Expect::Pass),
    ("deepseek-llm", Expect::Pass),
    ("falcon", Expect::Pass),
    ("gemma-4", Expect::Pass),
    ("gpt-2", Expect::Pass),
    ("gpt-neox", Expect::RoundTrip),
    ("llama-bpe", Expect::Pass),
    ("llama-spm", Expect::Pass),
    ("mpt", Expect::Pass),
    ("nomic-bert-moe", Expect::Refused("`t5` (SentencePiece Unigram) is not supported")),
    ("phi-3", Expect::Pass),
    ("qwen2", Expect::Pass),
    ("qwen35", Expect::Pass),
    ("refact", Expect::Pass),
    ("starcoder", Expect::Pass),
];

/// The folder `scripts/fetch-llama-vocabs.sh` fills, or `None` when skipping is asked for.
fn vocab_dir() -> Option<PathBuf> {
    let dir = zoo_core::registry::cache_dir().join("llama-vocabs/llama-cpp-python-0.3.36");
    if dir.join("ggml-vocab-llama-spm.gguf").is_file() {
        return Some(dir);
    }
    let message = format!("{} is missing; run scripts/fetch-llama-vocabs.sh", dir.display());
    assert!(std::env::var_os("ZOO_SKIP_LLAMA_VOCABS").is_some(), "{message} (or set ZOO_SKIP_LLAMA_VOCABS=1)");
    eprintln!("SKIPPED (ZOO_SKIP_LLAMA_VOCABS): {message}");
    None
}

/// A `.inp` / `.out` pair as llama.cpp's `test-tokenizer-0` reads it: strings separated by
/// `\n__ggml_vocab_test__\n` (a trailing separator ends the list), one line of ids per string.
fn vectors(inp: &Path, out: &Path) -> Vec<(String, Vec<u32>)> {
    let inputs = std::fs::read_to_string(inp).unwrap();
    let outputs = std::fs::read_to_string(out).unwrap();
    let mut texts: Vec<&str> = inputs.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> =
        outputs.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "{}: inputs and outputs disagree in count", inp.display());
    texts.iter().map(|t| t.to_string()).zip(ids).collect()
}

/// One vocabulary's failures (empty when it does what [`EXPECTED`] says), and a summary line.
fn check(dir: &Path, name: &str, expect: &Expect) -> (Vec<String>, String) {
    let gguf = dir.join(format!("ggml-vocab-{name}.gguf"));
    let built = TextTokenizer::load(&gguf);
    let tokenizer = match (built, expect) {
        (Err(e), Expect::Refused(why)) => {
            let e = e.to_string();
            let ok = e.contains(why) && e.contains(&format!("ggml-vocab-{name}.gguf"));
            let failures = if ok { vec![] } else { vec![format!("{name}: refused with {e:?}, expected {why:?}")] };
            return (failures, format!("{name}: refused ({why})"));
        }
        (Err(e), _) => return (vec![format!("{name}: not built: {e}")], format!("{name}: not built")),
        (Ok(_), Expect::Refused(why)) => {
            return (vec![format!("{name}: built, expected a refusal ({why})")], format!("{name}: built"))
        }
        (Ok(t), _) => t,
    };
    let vector_file = |n: &str, ext: &str| dir.join(format!("ggml-vocab-{n}.gguf.{ext}"));
    let cases = match expect {
        Expect::Pass => vectors(&vector_file(name, "inp"), &vector_file(name, "out")),
        _ => vectors(&vector_file("llama-spm", "inp"), &vector_file("llama-spm", "out")),
    };
    let mut failures = Vec::new();
    let (mut equal, mut round_trips) = (0, 0);
    for (text, want) in &cases {
        let got = tokenizer.encode(text, false).unwrap();
        if matches!(expect, Expect::Pass) {
            if &got == want {
                equal += 1;
            } else {
                failures.push(format!("{name}: {text:?}\n    want {want:?}\n    got  {got:?}"));
            }
        }
        let back = tokenizer.decode(&got, true).unwrap();
        if &back == text {
            round_trips += 1;
        } else {
            failures.push(format!("{name}: {text:?} decodes back to {back:?}"));
        }
    }
    let n = cases.len();
    let summary = match expect {
        Expect::Pass => format!("{name}: {equal}/{n} vectors equal, {round_trips}/{n} round trips"),
        _ => format!("{name}: no vectors, {round_trips}/{n} round trips"),
    };
    (failures, summary)
}

/// [`check`] of every other entry of [`EXPECTED`] from `first`, with its index.
fn check_every_other(dir: &Path, first: usize) -> Vec<(usize, (Vec<String>, String))> {
    EXPECTED.iter().enumerate().skip(first).step_by(2).map(|(i, (name, e))| (i, check(dir, name, e))).collect()
}

#[test]
fn every_llama_cpp_vocabulary_passes_its_vectors_or_is_refused() {
    let Some(dir) = vocab_dir() else { return };
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?.file_name().to_str()?.strip_prefix("ggml-vocab-")?.strip_suffix(".gguf").map(String::from)
        })
        .collect();
    found.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(n, _)| *n).collect();
    assert_eq!(found, listed, "the vocabulary files and EXPECTED disagree");
    // Two at a time: the larger vocabularies take a second or two each to build.
    let results: Vec<(Vec<String>, String)> = std::thread::scope(|s| {
        let half = s.spawn(|| check_every_other(&dir, 0));
        let mut all = check_every_other(&dir, 1);
        all.extend(half.join().unwrap());
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let failures: Vec<&String> = results.iter().flat_map(|(f, _)| f).collect();
    for (_, summary) in &results {
        eprintln!("{summary}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n")
    );
}
