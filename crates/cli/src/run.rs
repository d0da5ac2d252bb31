//! `zoo run`: generate a continuation, streamed to stdout or reported as one JSON object.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::{bail, Result};
use serde::Serialize;
use zoo_core::{sampler, GenerateOptions, Generation, Session, TextStream};

use crate::args::RunArgs;
use crate::pipeline::{self, LoadOptions, Pipeline};

/// The prompt used when none is given.
pub const DEFAULT_PROMPT: &str = "Hello, my name is";

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Model family.
    pub model: String,
    /// Backend name.
    pub backend: String,
    /// The prompt's token ids.
    pub prompt_tokens: Vec<u32>,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Generated text (special tokens dropped).
    pub text: String,
    /// Why generation stopped (`max_tokens`, `eos`, `context_full`).
    pub stop_reason: String,
    /// Throughput.
    pub stats: ReportStats,
}

/// Throughput figures of a run.
#[derive(Debug, Serialize)]
pub struct ReportStats {
    /// Prompt tokens per second.
    pub prefill_tok_s: f64,
    /// Generated tokens per second.
    pub decode_tok_s: f64,
}

/// Runs `zoo run`, writing to `out` (text or JSON) and `err` (stats).
pub fn run(args: &RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let m = &args.model;
    let options = LoadOptions {
        weights: m.weights.clone().unwrap_or_else(pipeline::default_weights),
        model: m.model.clone(),
        backend: m.backend.clone(),
        tokenizer: m.tokenizer.clone(),
        threads: m.threads,
    };
    let pipe = pipeline::load(&options)?;
    let prompt = args.prompt.as_deref().unwrap_or(DEFAULT_PROMPT);
    let prompt_tokens = pipe.tokenizer.encode(prompt, true)?;
    if prompt_tokens.is_empty() {
        bail!("the prompt is empty: there is nothing to continue from");
    }
    let (generation, text) = generate(&pipe, &prompt_tokens, args, if args.json { None } else { Some(out) })?;
    if args.json {
        let report = RunReport {
            model: pipe.family.name.to_string(),
            backend: zoo_core::Backend::name(&pipe.backend).to_string(),
            prompt_tokens,
            tokens: generation.tokens.clone(),
            text,
            stop_reason: generation.stop_reason.as_str().to_string(),
            stats: ReportStats {
                prefill_tok_s: generation.stats.prefill_tok_s(),
                decode_tok_s: generation.stats.decode_tok_s(),
            },
        };
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        let s = &generation.stats;
        writeln!(
            err,
            "[{} prompt tokens, {} generated; prefill {:.1} tok/s, decode {:.1} tok/s; stopped: {}]",
            s.prompt_tokens,
            s.generated_tokens,
            s.prefill_tok_s(),
            s.decode_tok_s(),
            generation.stop_reason.as_str()
        )?;
    }
    Ok(())
}

/// Generates, streaming text to `stream` when given; returns the generation and its full text.
fn generate(
    pipe: &Pipeline,
    prompt_tokens: &[u32],
    args: &RunArgs,
    mut stream: Option<&mut dyn Write>,
) -> Result<(Generation, String)> {
    let mut session = Session::new(pipe.model.as_ref(), None)?;
    let mut sampler = sampler::from_temperature(args.temperature, args.seed)?;
    let options =
        GenerateOptions { max_tokens: args.max_tokens, eos_token_ids: pipe.model.info().eos_token_ids.clone() };
    let mut text = TextStream::new(pipe.tokenizer.as_ref());
    let generation = session.generate(prompt_tokens, &options, sampler.as_mut(), |token| {
        let piece = text.push(token)?;
        if let Some(out) = stream.as_deref_mut() {
            write!(out, "{piece}")?;
            out.flush()?;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if let Some(out) = stream {
        writeln!(out, "{}", text.finish()?)?;
    }
    Ok((generation, text.text()?))
}
