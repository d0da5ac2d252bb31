//! The default model, SmolLM2-135M-Instruct (Q4_1 GGUF from scripts/fetch-default-model.sh),
//! against transformers' GGUF loader: its chat template renders byte for byte as
//! `apply_chat_template` does (including the system prompt the template inserts) and tokenizes
//! to the reference's ids. Logits and greedy tokens are checked by parity.rs, which runs every
//! fixture, this one included.

use zoo_tests::{fixture_names, Fixture};

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
