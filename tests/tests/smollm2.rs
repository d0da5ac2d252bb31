//! The default model, SmolLM2-135M-Instruct (Q4_1 GGUF from scripts/fetch-default-model.sh),
//! against transformers' GGUF loader: its chat template renders byte for byte as
//! `apply_chat_template` does (including the system prompt the template inserts) and tokenizes
//! to the reference's ids. Logits and greedy tokens are checked by parity.rs, which runs every
//! fixture, this one included (with `--dtype f32`, as transformers dequantises on load). Here:
//! the quantised path (Q4_1 blocks kept as blocks on the ndarray backend) gives the same greedy
//! answers as the f32 path, with logits within a stated bound of it.

use zoo_core::DType;
use zoo_tests::{fixture_names, greedy, sequence_logits, Fixture};

/// Largest |Δlogit| allowed between the quantised and the `--dtype f32` path on ndarray, as a
/// fraction of the f32 path's largest |logit|. Both use the same (dequantised) weight values;
/// the quantised path's decode steps (and prefills of up to 16 tokens) multiply 4-bit blocks
/// with activations rounded to 16 bits (`zoo_backend_ndarray`'s `block_dot`). Measured on the
/// two prompts (x86-64, AVX2): 0.0077 and 0.0031 where the largest |logit| is 38.2 and 37.6,
/// i.e. ≤ 2.0e-4 of it; the bound leaves 5× room for other CPUs' summation orders.
const QUANTIZED_VS_F32_RELATIVE: f32 = 1e-3;

#[test]
fn quantized_path_matches_the_f32_path() {
    if !fixture_names().contains(&"smollm2".to_string()) {
        return; // fixture_names said why
    }
    let fixture = Fixture::load("smollm2").unwrap();
    let quantized = fixture.pipeline_with("ndarray", None).unwrap();
    let dense = fixture.pipeline_with("ndarray", Some(DType::F32)).unwrap();
    for prompt in &fixture.reference.prompts {
        let (tokens, text) = greedy(&quantized, prompt).unwrap();
        assert_eq!(tokens, prompt.tokens, "prompt {:?}", prompt.text);
        assert_eq!(text, prompt.generated_text, "prompt {:?}", prompt.text);
        let q = sequence_logits(&quantized, &prompt.prompt_tokens, &prompt.tokens).unwrap();
        let f = sequence_logits(&dense, &prompt.prompt_tokens, &prompt.tokens).unwrap();
        assert_eq!(q.len(), f.len());
        let worst = q.iter().zip(&f).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let scale = f.iter().fold(0f32, |m, v| m.max(v.abs()));
        eprintln!("prompt {:?}: max |Δlogit| quantised vs f32 = {worst:.4} (largest |logit| {scale:.1})", prompt.text);
        let bound = QUANTIZED_VS_F32_RELATIVE * scale;
        assert!(worst <= bound, "prompt {:?}: max |Δlogit| = {worst} > {bound}", prompt.text);
    }
}

#[test]
fn converted_to_an_hf_directory_it_answers_the_same() {
    if !fixture_names().contains(&"smollm2".to_string()) {
        return; // fixture_names said why
    }
    let fixture = Fixture::load("smollm2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("smollm2-hf");
    zoo_checkpoint::convert::convert(&fixture.weights, &to, &Default::default()).unwrap();
    for file in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"] {
        assert!(to.join(file).is_file(), "{file} written");
    }
    let pipe =
        zoo::load(&zoo::LoadOptions { weights: to.clone(), backend: Some("ndarray".into()), ..Default::default() })
            .unwrap();
    // The chat template and its special tokens came along: the chat renders and tokenizes alike.
    let chat = fixture.reference.chat.as_ref().expect("reference.json records a chat");
    let template = pipe.chat_template.as_ref().expect("tokenizer_config.json carries the template");
    assert_eq!(template.render(&chat.messages, chat.add_generation_prompt).unwrap(), chat.rendered);
    for prompt in &fixture.reference.prompts {
        let (tokens, text) = greedy(&pipe, prompt).unwrap();
        assert_eq!(tokens, prompt.tokens, "prompt {:?}", prompt.text);
        assert_eq!(text, prompt.generated_text, "prompt {:?}", prompt.text);
    }
}

#[test]
fn chat_template_renders_like_transformers() {
    if !fixture_names().contains(&"smollm2".to_string()) {
        return; // fixture_names said why
    }
    let fixture = Fixture::load("smollm2").unwrap();
    let chat = fixture.reference.chat.as_ref().expect("reference.json records a chat");
    let checkpoint = zoo_checkpoint::open(&fixture.weights).unwrap();
    let template = checkpoint.chat_template.expect("the GGUF has tokenizer.chat_template");
    let rendered = template.render(&chat.messages, chat.add_generation_prompt).unwrap();
    assert_eq!(rendered, chat.rendered);
    assert!(rendered.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    let tokenizer = checkpoint.tokenizer.expect("the GGUF has a tokenizer");
    let chat_prompt = &fixture.reference.prompts[1];
    assert_eq!(tokenizer.encode(&rendered, false).unwrap(), chat_prompt.prompt_tokens);
}
