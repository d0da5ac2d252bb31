//! Using zoo from Rust: load a model, stream a continuation, then continue the same sequence
//! (a chat's next turn) without re-running what the KV cache already holds.
//!
//! ```text
//! cargo run -p zoo --example session -- [MODEL]
//! ```
//! (default: the default model, SmolLM2-135M-Instruct, from scripts/fetch-default-model.sh).

use std::io::Write;

use zoo::LoadOptions;
use zoo_core::{GenerateOptions, SamplingParams, Session};

/// Any error; `main` returning one prints it.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let weights = match std::env::args().nth(1) {
        Some(path) => path.into(),
        None => zoo::require_default_weights()?,
    };
    let pipe = zoo::load(&LoadOptions { weights, ..Default::default() })?;
    let tokenizer = pipe.tokenizer.as_ref();
    let options = GenerateOptions {
        max_tokens: 16,
        eos_token_ids: pipe.model.info().eos_token_ids.clone(),
        stop_strings: vec!["\n\n".into()],
    };
    let mut sampler = SamplingParams { temperature: 0.7, top_p: 0.9, seed: 1, ..Default::default() }.build()?;
    let mut session = Session::new(pipe.model.as_ref(), None)?;

    // Turn 1: stream tokens as they arrive.
    let prompt = tokenizer.encode("Hello, my name is", true)?;
    let mut stream = session.stream(&prompt, &options, &mut sampler, Some(tokenizer))?;
    for token in stream.by_ref() {
        print!("{}", token?.text);
        std::io::stdout().flush()?;
    }
    print!("{}", stream.remaining_text()?);
    let first = stream.finish()?;
    println!("\n[turn 1: {} tokens, stopped: {}]", first.tokens.len(), first.stop_reason.as_str());

    // Turn 2: only the new text goes through the model; earlier tokens stay cached.
    let before = session.cached_len();
    let more = tokenizer.encode(" And then", true)?;
    let second = session.generate(&more, &options, &mut sampler, Some(tokenizer))?;
    println!(" And then{}", second.text);
    println!(
        "[turn 2: {} new prompt tokens on top of {before} cached; {} generated at {:.0} tok/s]",
        second.stats.prompt_tokens,
        second.tokens.len(),
        second.stats.decode_tok_s()
    );
    Ok(())
}
