//! Parity of every fixture against its reference (transformers or the repo's own reference):
//! tokenization, logits within tolerance at prefill and decode positions, and identical greedy
//! tokens and text. One snapshot per fixture, shared by every backend.

use zoo_tests::{fixture_names, greedy, max_logit_error, Fixture, F32_LOGIT_TOLERANCE};

/// Backends whose outputs must match the references in CI.
const CPU_BACKENDS: &[&str] = &["ndarray", "burn-ndarray", "candle"];

#[test]
fn fixtures_exist() {
    let names = fixture_names();
    assert!(names.len() >= 2, "expected committed fixtures, found {names:?}");
}

#[test]
fn logits_match_reference() {
    for name in fixture_names() {
        let fixture = Fixture::load(&name).unwrap();
        for backend in CPU_BACKENDS {
            let pipe = fixture.pipeline(backend).unwrap();
            for prompt in &fixture.reference.prompts {
                let err = max_logit_error(&pipe, &fixture.reference, prompt).unwrap();
                assert!(
                    err <= F32_LOGIT_TOLERANCE,
                    "{name} on {backend}, prompt {:?}: max |Δlogit| = {err:e} > {F32_LOGIT_TOLERANCE:e}",
                    prompt.text
                );
            }
        }
    }
}

#[test]
fn greedy_tokens_match_reference() {
    for name in fixture_names() {
        let fixture = Fixture::load(&name).unwrap();
        let mut snapshot = Vec::new();
        for backend in CPU_BACKENDS {
            let pipe = fixture.pipeline(backend).unwrap();
            let mut outputs = Vec::new();
            for prompt in &fixture.reference.prompts {
                let (tokens, text) = greedy(&pipe, prompt).unwrap();
                assert_eq!(tokens, prompt.tokens, "{name} on {backend}, prompt {:?}", prompt.text);
                assert_eq!(text, prompt.generated_text, "{name} on {backend}, prompt {:?}", prompt.text);
                outputs.push(serde_json::json!({"prompt": prompt.text, "tokens": tokens, "text": text}));
            }
            snapshot = outputs;
        }
        insta::assert_json_snapshot!(format!("greedy-{name}"), snapshot);
    }
}

#[test]
fn references_have_safe_margins() {
    // A reference path whose top-2 logits nearly tie could flip on rounding; fixtures.py rejects
    // such seeds, and this keeps hand-edited fixtures honest.
    for name in fixture_names() {
        for prompt in &Fixture::load(&name).unwrap().reference.prompts {
            assert!(prompt.min_margin_f64 >= 1e-3, "{name}: margin {} for {:?}", prompt.min_margin_f64, prompt.text);
        }
    }
}

#[test]
fn llama_cpp_conversions_match_their_source_reference() {
    // GGUFs made by llama.cpp's own converter from a fixture (bf16, as stored), each with the
    // tokenizer built from its own vocabulary (max_logit_error checks the prompts' ids).
    // llama3-rope's RoPE scaling becomes `rope_freqs.weight` (one divisor per frequency) without
    // scaling metadata; its vocabulary is SentencePiece (Mistral's, every score -1000).
    // qwen3-tiny's q/k norms become `attn_q_norm` / `attn_k_norm`; its vocabulary is BPE.
    for (source, gguf) in
        [("llama3-rope", "llama3-rope-gguf/model.bf16.gguf"), ("qwen3-tiny", "qwen3-tiny-gguf/model.bf16.gguf")]
    {
        let fixture = Fixture::load(source).unwrap();
        for backend in CPU_BACKENDS {
            let pipe =
                zoo::load(&zoo::LoadOptions { weights: zoo_tests::fixtures_dir().join(gguf), ..Default::default() })
                    .unwrap();
            for prompt in &fixture.reference.prompts {
                let err = max_logit_error(&pipe, &fixture.reference, prompt).unwrap();
                assert!(err <= F32_LOGIT_TOLERANCE, "{gguf} on {backend}: max |Δlogit| = {err:e}");
                let (tokens, text) = greedy(&pipe, prompt).unwrap();
                assert_eq!(
                    (tokens, text),
                    (prompt.tokens.clone(), prompt.generated_text.clone()),
                    "{gguf} on {backend}"
                );
            }
        }
    }
}
