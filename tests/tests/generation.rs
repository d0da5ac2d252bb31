//! The generation API on real (fixture) models: streaming, chat continuation through the KV
//! cache, batching, stop strings and seeded sampling.

use zoo::Pipeline;
use zoo_core::sampler::Greedy;
use zoo_core::{generate_batch, GenerateOptions, Sampler, SamplingParams, Session};
use zoo_tests::Fixture;

/// Fixture `name` and its model on the ndarray backend.
fn on_ndarray(name: &str) -> (Fixture, Pipeline) {
    let fixture = Fixture::load(name).unwrap();
    let pipe = fixture.pipeline("ndarray").unwrap();
    (fixture, pipe)
}

fn options(max_tokens: usize) -> GenerateOptions {
    GenerateOptions { max_tokens, ..Default::default() }
}

#[test]
fn streaming_yields_the_same_tokens_and_text_as_generate() {
    let (fixture, pipe) = on_ndarray("gpt2-tiny");
    let prompt = &fixture.reference.prompts[1];
    let mut session = Session::new(pipe.model.as_ref(), None).unwrap();
    let opts = options(32);
    let mut sampler = Greedy;
    let mut stream = session.stream(&prompt.prompt_tokens, &opts, &mut sampler, Some(pipe.tokenizer.as_ref())).unwrap();
    let (mut ids, mut text) = (Vec::new(), String::new());
    for token in stream.by_ref() {
        let token = token.unwrap();
        assert!(!token.text.contains('\u{FFFD}') || prompt.generated_text.contains('\u{FFFD}'));
        ids.push(token.id);
        text.push_str(&token.text);
    }
    text.push_str(&stream.remaining_text().unwrap());
    let generation = stream.finish().unwrap();
    assert_eq!(ids, prompt.tokens);
    assert_eq!(generation.tokens, prompt.tokens);
    assert_eq!(text, generation.text);
    assert_eq!(generation.stats.generated_tokens, 32);
}

#[test]
fn a_session_continues_without_rerunning_earlier_tokens() {
    // Generating 10 tokens, then 22 more in a second call, equals generating 32 at once; the
    // second call only runs the new tokens (the cache already holds the first part).
    let (fixture, pipe) = on_ndarray("gpt2-tiny-bf16");
    let prompt = &fixture.reference.prompts[0];
    let mut session = Session::new(pipe.model.as_ref(), None).unwrap();
    let first = session.generate(&prompt.prompt_tokens, &options(10), &mut Greedy, None).unwrap();
    let cached = session.cached_len();
    assert_eq!(cached, prompt.prompt_tokens.len() + 9, "the last sampled token is not run until needed");
    let second = session.generate(&[], &options(22), &mut Greedy, None).unwrap();
    assert_eq!(second.stats.prompt_tokens, 0);
    let all: Vec<u32> = first.tokens.iter().chain(&second.tokens).copied().collect();
    assert_eq!(all, prompt.tokens);
    assert_eq!(session.history().len(), prompt.prompt_tokens.len() + 32);
}

#[test]
fn batched_generation_equals_running_each_prompt_alone() {
    for name in ["gpt2-tiny", "gpt2-tiny-bf16"] {
        let (fixture, pipe) = on_ndarray(name);
        let prompts: Vec<Vec<u32>> = fixture.reference.prompts.iter().map(|p| p.prompt_tokens.clone()).collect();
        let samplers = prompts.iter().map(|_| Box::new(Greedy) as Box<dyn Sampler>).collect();
        let batch = generate_batch(pipe.model.as_ref(), &prompts, samplers, &options(32), None).unwrap();
        for (p, g) in fixture.reference.prompts.iter().zip(&batch) {
            assert_eq!(g.tokens, p.tokens, "{name}: {:?}", p.text);
        }
    }
}

#[test]
fn batched_sampling_matches_sequential_sampling_with_the_same_seeds() {
    let (fixture, pipe) = on_ndarray("gpt2-tiny");
    let prompts: Vec<Vec<u32>> = fixture.reference.prompts.iter().map(|p| p.prompt_tokens.clone()).collect();
    let params = |seed| SamplingParams { temperature: 0.9, top_k: 50, seed, ..Default::default() };
    let samplers = (0..3).map(|i| Box::new(params(i).build().unwrap()) as Box<dyn Sampler>).collect();
    let batch = generate_batch(pipe.model.as_ref(), &prompts, samplers, &options(20), None).unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        let mut session = Session::new(pipe.model.as_ref(), None).unwrap();
        let alone = session.generate(prompt, &options(20), &mut params(i as u64).build().unwrap(), None).unwrap();
        assert_eq!(batch[i].tokens, alone.tokens, "prompt {i}");
    }
}

#[test]
fn stop_strings_end_generation_and_are_cut_from_the_text() {
    let (fixture, pipe) = on_ndarray("gpt2-tiny");
    let prompt = &fixture.reference.prompts[0];
    // Stop at a piece of text the greedy continuation is known to contain.
    let full = &prompt.generated_text;
    let cut = full.char_indices().nth(full.chars().count() / 2).unwrap().0;
    let stop: String = full[cut..].chars().take(3).collect();
    let opts = GenerateOptions { max_tokens: 32, stop_strings: vec![stop.clone()], ..Default::default() };
    let mut session = Session::new(pipe.model.as_ref(), None).unwrap();
    let g = session.generate(&prompt.prompt_tokens, &opts, &mut Greedy, Some(pipe.tokenizer.as_ref())).unwrap();
    assert_eq!(g.stop_reason, zoo_core::StopReason::StopString);
    let expected = &full[..full.find(&stop).unwrap()];
    assert_eq!(g.text, expected);
    assert!(g.tokens.len() < 32);
    assert_eq!(g.tokens[..], prompt.tokens[..g.tokens.len()]);
}

#[test]
fn seeded_samples_are_stable() {
    let (fixture, pipe) = on_ndarray("gpt2-tiny");
    let prompt = &fixture.reference.prompts[0].prompt_tokens;
    let params = SamplingParams {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.05,
        repeat_penalty: 1.1,
        seed: 7,
        ..Default::default()
    };
    let mut session = Session::new(pipe.model.as_ref(), None).unwrap();
    let g =
        session.generate(prompt, &options(16), &mut params.build().unwrap(), Some(pipe.tokenizer.as_ref())).unwrap();
    insta::assert_json_snapshot!("seeded-gpt2-tiny", serde_json::json!({"tokens": g.tokens, "text": g.text}));
}
