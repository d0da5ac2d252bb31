//! The generation loop: a [`Session`] owns a KV cache and continues one sequence, token by token.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::kv_cache::{Batch, KvCache, LogitsRows};
use crate::model::{forward, Model};
use crate::sampler::Sampler;
use crate::{Error, Result};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated.
    MaxTokens,
    /// The model produced an end-of-sequence token.
    Eos,
    /// The sequence reached the model's context length.
    ContextFull,
    /// The caller's callback asked to stop.
    Caller,
}

impl StopReason {
    /// The name used in JSON output (`max_tokens`, `eos`, `context_full`, `caller`).
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::MaxTokens => "max_tokens",
            StopReason::Eos => "eos",
            StopReason::ContextFull => "context_full",
            StopReason::Caller => "caller",
        }
    }
}

/// Timings of one generation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Tokens processed in the prefill pass.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time spent running the prompt through the model.
    pub prefill: Duration,
    /// Time spent sampling the new tokens and running them through the model.
    pub decode: Duration,
}

impl Stats {
    /// Prompt tokens per second.
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill)
    }

    /// Generated tokens per second.
    pub fn decode_tok_s(&self) -> f64 {
        rate(self.generated_tokens, self.decode)
    }
}

fn rate(count: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        count as f64 / time.as_secs_f64()
    }
}

/// Settings of one generation call.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Stop after this many new tokens.
    pub max_tokens: usize,
    /// Token ids that end generation (they are included in the output, as transformers does).
    pub eos_token_ids: Vec<u32>,
}

/// What one generation call produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The new tokens, in order.
    pub tokens: Vec<u32>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Timings.
    pub stats: Stats,
}

/// One sequence being generated: the model, its KV cache and the tokens so far.
///
/// Calling [`Session::generate`] again continues the same sequence (a chat's next turn) without
/// re-running earlier tokens.
pub struct Session<'m, B: Backend> {
    model: &'m dyn Model<B>,
    cache: KvCache<B>,
    history: Vec<u32>,
    /// Logits predicting the token after `history`, once known.
    next_logits: Option<Vec<f32>>,
}

impl<'m, B: Backend> Session<'m, B> {
    /// A session whose cache holds up to `capacity` tokens (capped at the model's context).
    pub fn new(model: &'m dyn Model<B>, capacity: Option<usize>) -> Result<Self> {
        let info = model.info();
        let capacity = capacity.unwrap_or(info.max_context).min(info.max_context);
        let cache = KvCache::new(model.backend(), &info.kv, 1, capacity)?;
        Ok(Self { model, cache, history: Vec::new(), next_logits: None })
    }

    /// Every token of the sequence so far.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Appends tokens to the sequence without sampling, running them through the model.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        self.history.extend_from_slice(tokens);
        self.sync()
    }

    /// Runs the tokens of `history` that are not cached yet, keeping the last logits.
    fn sync(&mut self) -> Result<()> {
        let cached = self.cache.len(0);
        if cached == self.history.len() {
            return Ok(());
        }
        let batch = Batch::single(&self.history[cached..]);
        let logits = forward(self.model, &batch, &mut self.cache, LogitsRows::Last)?;
        self.next_logits = Some(self.model.backend().to_host(&logits)?);
        Ok(())
    }

    /// Feeds `prompt`, then samples up to `options.max_tokens` tokens, calling `on_token` with
    /// each; the callback may stop early by returning `ControlFlow::Break`.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
        sampler: &mut dyn Sampler,
        mut on_token: impl FnMut(u32) -> Result<ControlFlow<()>>,
    ) -> Result<Generation> {
        let mut stats = Stats { prompt_tokens: prompt.len(), ..Stats::default() };
        let started = Instant::now();
        self.feed(prompt)?;
        stats.prefill = started.elapsed();
        let decode_started = Instant::now();
        let mut tokens = Vec::new();
        let stop_reason = loop {
            if tokens.len() >= options.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.history.len() >= self.cache.capacity() {
                break StopReason::ContextFull;
            }
            self.sync()?;
            let logits = self
                .next_logits
                .take()
                .ok_or_else(|| Error::Sampling("nothing to continue: the sequence is empty".into()))?;
            let token = sampler.sample(&logits, &self.history)?;
            self.history.push(token);
            tokens.push(token);
            if on_token(token)?.is_break() {
                break StopReason::Caller;
            }
            if options.eos_token_ids.contains(&token) {
                break StopReason::Eos;
            }
        };
        stats.generated_tokens = tokens.len();
        stats.decode = decode_started.elapsed();
        Ok(Generation { tokens, stop_reason, stats })
    }
}
