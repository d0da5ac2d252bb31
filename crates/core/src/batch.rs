//! Batched generation: several prompts advance together, one forward pass per step, each in
//! its own KV-cache slot with its own length. Every sequence gets the tokens it would get alone.

use std::time::Instant;

use crate::backend::Backend;
use crate::generate::{GenerateOptions, Generation, Stats, StopReason};
use crate::kv_cache::{Batch, KvCache, LogitsRows};
use crate::model::{forward, Model};
use crate::sampler::Sampler;
use crate::text_stream::TextStream;
use crate::{Error, Result, Tokenizer};

/// One sequence of a batch.
struct Sequence<'t> {
    history: Vec<u32>,
    tokens: Vec<u32>,
    sampler: Box<dyn Sampler>,
    text: Option<TextStream<'t>>,
    stop: Option<StopReason>,
}

/// Generates a continuation of every prompt, sharing forward passes; `samplers[i]` samples
/// sequence `i`. Statistics count the whole batch's prompt and generated tokens.
pub fn generate_batch<B: Backend>(
    model: &dyn Model<B>,
    prompts: &[Vec<u32>],
    samplers: Vec<Box<dyn Sampler>>,
    options: &GenerateOptions,
    tokenizer: Option<&dyn Tokenizer>,
) -> Result<Vec<Generation>> {
    if prompts.len() != samplers.len() {
        return Err(Error::Sampling(format!("{} prompts but {} samplers", prompts.len(), samplers.len())));
    }
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(Error::Sampling(format!("prompt {i} is empty: there is nothing to continue from")));
    }
    if !options.stop_strings.is_empty() && tokenizer.is_none() {
        return Err(Error::Tokenizer("stop strings need a tokenizer".into()));
    }
    let info = model.info();
    let mut cache = KvCache::new(model.backend(), &info.kv, prompts.len(), info.max_context)?;
    let mut seqs: Vec<Sequence<'_>> = prompts
        .iter()
        .zip(samplers)
        .map(|(p, sampler)| Sequence {
            history: p.clone(),
            tokens: Vec::new(),
            sampler,
            text: tokenizer.map(|t| TextStream::new(t, &options.stop_strings)),
            stop: None,
        })
        .collect();

    let started = Instant::now();
    let mut batch = Batch::default();
    for (slot, p) in prompts.iter().enumerate() {
        batch.push(slot, p);
    }
    let mut stats = Stats { prompt_tokens: batch.tokens().len(), ..Stats::default() };
    let greedy = seqs.iter().all(|s| s.sampler.is_greedy());
    let mut logits = run(model, &batch, &mut cache, greedy)?;
    stats.prefill = started.elapsed();
    let decode_started = Instant::now();
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    loop {
        let mut next = Batch::default();
        let mut next_order = Vec::new();
        for (row, &slot) in order.iter().enumerate() {
            let seq = &mut seqs[slot];
            let id = match &logits {
                Picked::Ids(ids) => ids[row],
                Picked::Logits(values) => {
                    let row_logits = &values[row * info.vocab_size..(row + 1) * info.vocab_size];
                    seq.sampler.sample(row_logits, &seq.history)?
                }
            };
            seq.history.push(id);
            seq.tokens.push(id);
            seq.stop = stop_after(seq, id, options, cache.capacity())?;
            if seq.stop.is_none() {
                next.push(slot, &[id]);
                next_order.push(slot);
            }
        }
        if next_order.is_empty() {
            break;
        }
        logits = run(model, &next, &mut cache, greedy)?;
        order = next_order;
    }
    stats.decode = decode_started.elapsed();
    stats.generated_tokens = seqs.iter().map(|s| s.tokens.len()).sum();
    seqs.into_iter()
        .map(|s| {
            let text = match &s.text {
                Some(t) => t.text()?,
                None => String::new(),
            };
            Ok(Generation { tokens: s.tokens, text, stop_reason: s.stop.unwrap_or(StopReason::MaxTokens), stats })
        })
        .collect()
}

/// Why `seq` stops after sampling `id`, if it does.
fn stop_after(
    seq: &mut Sequence<'_>,
    id: u32,
    options: &GenerateOptions,
    capacity: usize,
) -> Result<Option<StopReason>> {
    let stopped_by_text = match &mut seq.text {
        Some(t) => t.push(id)?.stopped,
        None => false,
    };
    Ok(if stopped_by_text {
        Some(StopReason::StopString)
    } else if options.eos_token_ids.contains(&id) {
        Some(StopReason::Eos)
    } else if seq.tokens.len() >= options.max_tokens {
        Some(StopReason::MaxTokens)
    } else if seq.history.len() >= capacity {
        Some(StopReason::ContextFull)
    } else {
        None
    })
}

/// What one step hands the samplers: every row's greedy pick (made by the backend) or the logits.
enum Picked {
    Ids(Vec<u32>),
    Logits(Vec<f32>),
}

fn run<B: Backend>(model: &dyn Model<B>, batch: &Batch, cache: &mut KvCache<B>, greedy: bool) -> Result<Picked> {
    let logits = forward(model, batch, cache, LogitsRows::Last)?;
    Ok(if greedy {
        Picked::Ids(model.backend().argmax_rows(&logits)?)
    } else {
        Picked::Logits(model.backend().to_host(&logits)?)
    })
}
