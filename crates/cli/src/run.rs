//! `zoo run`: generate a continuation (or one per line of a prompts file, batched), streamed to
//! stdout or reported as JSON.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use zoo_checkpoint::Message;
use zoo_core::{
    forward, generate_batch, Backend as _, Batch, GenerateOptions, Generation, KvCache, LogitsRows, Sampler,
    SamplingParams, Session,
};

use crate::args::RunArgs;
use crate::generation_config;
use crate::input::{next_line, Line, MAX_LINE, PROMPTS_PER_BATCH};
use zoo::{LoadOptions, Pipeline};

/// The question asked, as a chat, when no prompt is given and the model has a chat template.
pub const DEFAULT_QUESTION: &str = "What is the capital of France?";

/// The text continued when no prompt is given and the model has no chat template.
pub const DEFAULT_PROMPT: &str = "Hello, my name is";

/// What `--json` prints for one prompt.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Model family.
    pub model: String,
    /// Backend name.
    pub backend: String,
    /// The prompt text.
    pub prompt: String,
    /// The prompt's token ids.
    pub prompt_tokens: Vec<u32>,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Generated text (special tokens dropped, cut before a stop string).
    pub text: String,
    /// Why generation stopped: `max_tokens`, `eos`, `stop_string` or `context_full`.
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

/// Runs `zoo run`, writing text or JSON to `out` and statistics to `err`.
pub fn run(args: &RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let pipe = crate::progress::load(&load_options(&args.model)?)?;
    let params = generation_config::sampling_params(&args.sampling, pipe.generation_config.as_ref())?;
    params.build()?; // validate before loading prompts
    let options = GenerateOptions {
        max_tokens: args.max_tokens,
        eos_token_ids: pipe.eos_token_ids(),
        stop_strings: args.stop.clone(),
    };
    let job = Job { pipe: &pipe, params: &params, options: &options, json: args.json };
    match &args.prompts_file {
        Some(file) => job.run_prompts_file(file, out, err),
        None => {
            // NOTE: with no prompt, a chat model is asked the default question through its chat
            // template; an explicit --prompt is continued as raw text unless --chat is given.
            let (prompt, chat) = match &args.prompt {
                Some(prompt) => (prompt.as_str(), args.chat),
                None if args.chat || pipe.chat_template.is_some() => (DEFAULT_QUESTION, true),
                None => (DEFAULT_PROMPT, false),
            };
            let ids = if chat { chat_ids(&pipe, args.system.as_deref(), prompt)? } else { encode(&pipe, prompt)? };
            if let Some(path) = &args.dump_logits {
                dump_logits(&pipe, &ids, path)?;
            }
            job.run_one(prompt, ids, out, err)
        }
    }
}

/// Writes the logits predicting the token after `ids` as a JSON array.
fn dump_logits(pipe: &Pipeline, ids: &[u32], path: &Path) -> Result<()> {
    let model = pipe.model.as_ref();
    let mut cache = KvCache::new(model.backend(), &model.info().kv, 1, ids.len())?;
    let logits = forward(model, &Batch::single(ids), &mut cache, LogitsRows::Last)?;
    let values = zoo_core::Backend::to_host(model.backend(), &logits)?;
    std::fs::write(path, serde_json::to_string(&values)?).with_context(|| format!("writing {}", path.display()))
}

/// The prompt as a chat: an optional system message and one user turn.
fn chat_ids(pipe: &Pipeline, system: Option<&str>, prompt: &str) -> Result<Vec<u32>> {
    let mut messages: Vec<Message> = system.map(|s| Message::new("system", s)).into_iter().collect();
    messages.push(Message::new("user", prompt));
    Ok(pipe.chat_prompt(&messages)?)
}

/// Most CPU threads `--threads` may ask for.
pub const MAX_THREADS: usize = 1024;

/// One `zoo run` invocation's settings.
struct Job<'a> {
    pipe: &'a Pipeline,
    params: &'a SamplingParams,
    options: &'a GenerateOptions,
    json: bool,
}

/// Load options from the command line's model arguments (the default model when no
/// `--weights`; an error saying how to fetch it if it is missing).
pub fn load_options(m: &crate::args::ModelArgs) -> Result<LoadOptions> {
    let weights = match &m.weights {
        Some(w) => w.clone(),
        None => zoo::require_default_weights()?,
    };
    if let Some(threads) = m.threads.filter(|&t| t == 0 || t > MAX_THREADS) {
        bail!("--threads {threads}: out of range (1..={MAX_THREADS})");
    }
    Ok(LoadOptions {
        weights,
        model: m.model.clone(),
        backend: m.backend.clone(),
        tokenizer: m.tokenizer.clone(),
        threads: m.threads,
        device: m.device,
        step: m.step,
        max_context: m.max_context,
        dtype: m.dtype.map(|d| match d {
            crate::args::LoadDType::F32 => zoo_core::DType::F32,
        }),
        allow_unused: m.allow_unused,
        profile: None,
    })
}

pub(crate) fn encode(pipe: &Pipeline, prompt: &str) -> Result<Vec<u32>> {
    let ids = pipe.tokenizer.encode(prompt, true)?;
    if ids.is_empty() {
        bail!("the prompt is empty: there is nothing to continue from");
    }
    Ok(ids)
}

impl Job<'_> {
    /// Streams one continuation.
    fn run_one(&self, prompt: &str, prompt_tokens: Vec<u32>, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
        let Job { pipe, params, options, json } = *self;
        let mut session = Session::new(pipe.model.as_ref(), None)?;
        let mut sampler = params.build()?;
        let mut stream = session.stream(&prompt_tokens, options, &mut sampler, Some(pipe.tokenizer.as_ref()))?;
        for token in stream.by_ref() {
            let token = token?;
            if !json {
                write!(out, "{}", token.text)?;
                out.flush()?;
            }
        }
        if !json {
            writeln!(out, "{}", stream.remaining_text()?)?;
        }
        let generation = stream.finish()?;
        if json {
            let report = report(pipe, prompt, prompt_tokens, generation);
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            write_stats(err, &generation, pipe)?;
        }
        Ok(())
    }

    /// Generates for every prompt at once.
    fn run_batch(&self, prompts: &[String], out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
        let Job { pipe, params, options, json } = *self;
        let ids = prompts.iter().map(|p| encode(pipe, p)).collect::<Result<Vec<_>>>()?;
        // NOTE: sequence i samples with seed + i, so sampled batch runs are reproducible and the
        // sequences differ from one another.
        let samplers = (0..prompts.len())
            .map(|i| {
                let p = SamplingParams { seed: params.seed.wrapping_add(i as u64), ..params.clone() };
                Ok(Box::new(p.build()?) as Box<dyn Sampler>)
            })
            .collect::<Result<Vec<_>>>()?;
        let generations = generate_batch(pipe.model.as_ref(), &ids, samplers, options, Some(pipe.tokenizer.as_ref()))?;
        if let (Some(first), false) = (generations.first(), json) {
            let s = &first.stats;
            writeln!(
                err,
                "[{} prompts batched: {} prompt tokens, {} generated; prefill {:.1} tok/s, decode {:.1} tok/s]",
                prompts.len(),
                s.prompt_tokens,
                s.generated_tokens,
                s.prefill_tok_s(),
                s.decode_tok_s()
            )?;
        }
        write_notes(err, pipe)?;
        for ((prompt, prompt_tokens), generation) in prompts.iter().zip(ids).zip(generations) {
            if json {
                writeln!(out, "{}", serde_json::to_string(&report(pipe, prompt, prompt_tokens, generation))?)?;
            } else {
                writeln!(out, "{prompt}{}", generation.text)?;
            }
        }
        Ok(())
    }
}

impl Job<'_> {
    /// Generates for every line of `file`, [`PROMPTS_PER_BATCH`] prompts at a time, reading the
    /// file as it goes (bounded memory, whatever its length).
    fn run_prompts_file(&self, file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
        let opened = std::fs::File::open(file).with_context(|| format!("reading prompts from {}", file.display()))?;
        let mut input = std::io::BufReader::new(opened);
        let mut any = false;
        loop {
            let chunk = read_prompts(&mut input, file)?;
            if chunk.is_empty() {
                break;
            }
            any = true;
            self.run_batch(&chunk, out, err)?;
        }
        if !any {
            bail!("{}: no prompts (one per line)", file.display());
        }
        Ok(())
    }
}

/// Up to [`PROMPTS_PER_BATCH`] non-blank lines of `input`; a line too long or not UTF-8 is an
/// error naming the file.
fn read_prompts(input: &mut dyn std::io::BufRead, file: &Path) -> Result<Vec<String>> {
    let what = file.display().to_string();
    let mut prompts = Vec::new();
    while prompts.len() < PROMPTS_PER_BATCH {
        match next_line(input, &what)? {
            Line::End => break,
            Line::Text(line) if line.trim().is_empty() => {}
            Line::Text(line) => prompts.push(line),
            Line::TooLong => bail!("{what}: a line is longer than {MAX_LINE} bytes"),
            Line::NotUtf8 => bail!("{what}: a line is not UTF-8 text"),
        }
    }
    Ok(prompts)
}

fn report(pipe: &Pipeline, prompt: &str, prompt_tokens: Vec<u32>, generation: Generation) -> RunReport {
    RunReport {
        model: pipe.family.name.to_string(),
        backend: zoo_core::Backend::name(&pipe.backend).to_string(),
        prompt: prompt.to_string(),
        prompt_tokens,
        stop_reason: generation.stop_reason.as_str().to_string(),
        stats: ReportStats {
            prefill_tok_s: generation.stats.prefill_tok_s(),
            decode_tok_s: generation.stats.decode_tok_s(),
        },
        tokens: generation.tokens,
        text: generation.text,
    }
}

pub(crate) fn write_stats(err: &mut dyn Write, generation: &Generation, pipe: &Pipeline) -> Result<()> {
    let s = &generation.stats;
    let why = match generation.stop_reason {
        zoo_core::StopReason::ContextFull => {
            format!("context length ({} tokens) reached", pipe.model.info().max_context)
        }
        reason => reason.as_str().to_string(),
    };
    writeln!(
        err,
        "[{} prompt tokens, {} generated; prefill {:.1} tok/s, decode {:.1} tok/s; stopped: {why}]",
        s.prompt_tokens,
        s.generated_tokens,
        s.prefill_tok_s(),
        s.decode_tok_s(),
    )?;
    write_notes(err, pipe)
}

/// What the backend has to tell the user since the last call (a fallback it took), a line each.
pub(crate) fn write_notes(err: &mut dyn Write, pipe: &Pipeline) -> Result<()> {
    for note in pipe.backend.take_notes() {
        writeln!(err, "zoo: {note}")?;
    }
    Ok(())
}
