//! The generation loop: a [`Session`] owns a KV cache and continues one sequence; its
//! [`Session::stream`] yields tokens (and their text) as they are sampled.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::kv_cache::{Batch, KvCache, LogitsRows};
use crate::model::{forward, Model};
use crate::sampler::Sampler;
use crate::text_stream::TextStream;
use crate::{Error, Result, Tokenizer};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated.
    MaxTokens,
    /// The model produced an end-of-sequence token.
    Eos,
    /// The text reached one of the stop strings.
    StopString,
    /// The sequence reached the cache's capacity (the model's context length by default).
    ContextFull,
}

impl StopReason {
    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::MaxTokens => "max_tokens",
            StopReason::Eos => "eos",
            StopReason::StopString => "stop_string",
            StopReason::ContextFull => "context_full",
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
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// Stop after this many new tokens.
    pub max_tokens: usize,
    /// Token ids that end generation (included in the output tokens, as transformers does).
    pub eos_token_ids: Vec<u32>,
    /// Texts that end generation; they are cut from the text (needs a tokenizer).
    pub stop_strings: Vec<String>,
}

/// What one generation call produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The new tokens, in order.
    pub tokens: Vec<u32>,
    /// Their text, special tokens dropped and cut before a stop string (empty without a
    /// tokenizer).
    pub text: String,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Timings.
    pub stats: Stats,
}

/// One sampled token and the text it completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token id.
    pub id: u32,
    /// Text that became printable with it (whole characters; may be empty).
    pub text: String,
}

/// One sequence being generated: the model, its KV cache and the tokens so far.
///
/// Generating again continues the same sequence (a chat's next turn) without re-running earlier
/// tokens: only tokens not yet in the cache go through the model.
pub struct Session<'m, B: Backend> {
    model: &'m dyn Model<B>,
    cache: KvCache<B>,
    history: Vec<u32>,
    /// Logits predicting the token after `history` (on the backend), when the cache is up to
    /// date.
    next_logits: Option<B::Tensor>,
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

    /// Tokens the model has already processed (in the KV cache).
    pub fn cached_len(&self) -> usize {
        self.cache.len(0)
    }

    /// Appends tokens to the sequence without sampling, running them through the model.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        self.history.extend_from_slice(tokens);
        self.sync()?;
        // A GPU runs the step asynchronously: finish it here, so a prompt's time is the
        // prefill's and not the first decode step's.
        self.model.backend().synchronize()
    }

    /// Makes the sequence exactly `tokens`, reusing the cache for the prefix they share with the
    /// current sequence (a chat re-rendered with one more turn only runs the new turn).
    pub fn reset_to(&mut self, tokens: &[u32]) -> Result<()> {
        let common = self.history.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        // Keep at least one token to run, so there are logits to continue from.
        let keep = common.min(tokens.len().saturating_sub(1)).min(self.cache.len(0));
        self.history.truncate(keep);
        self.cache.truncate(0, keep);
        self.next_logits = None;
        self.feed(&tokens[keep..])
    }

    /// Runs the tokens of `history` that are not cached yet, keeping the last logits.
    fn sync(&mut self) -> Result<()> {
        let cached = self.cache.len(0);
        if cached == self.history.len() && self.next_logits.is_some() {
            return Ok(());
        }
        if cached == self.history.len() {
            return Err(Error::Sampling("nothing to continue from: the sequence is empty".into()));
        }
        let batch = Batch::single(&self.history[cached..]);
        let logits = forward(self.model, &batch, &mut self.cache, LogitsRows::Last)?;
        self.next_logits = Some(logits);
        Ok(())
    }

    /// Feeds `prompt` and returns an iterator over the generated tokens.
    ///
    /// ```ignore
    /// for token in session.stream(&prompt, &options, &mut sampler, Some(tokenizer))? {
    ///     print!("{}", token?.text);
    /// }
    /// ```
    pub fn stream<'s>(
        &'s mut self,
        prompt: &[u32],
        options: &'s GenerateOptions,
        sampler: &'s mut dyn Sampler,
        tokenizer: Option<&'s dyn Tokenizer>,
    ) -> Result<Stream<'s, 'm, B>> {
        if !options.stop_strings.is_empty() && tokenizer.is_none() {
            return Err(Error::Tokenizer("stop strings need a tokenizer".into()));
        }
        let started = Instant::now();
        self.feed(prompt)?;
        let stats = Stats { prompt_tokens: prompt.len(), prefill: started.elapsed(), ..Stats::default() };
        Ok(Stream {
            text: tokenizer.map(|t| TextStream::new(t, &options.stop_strings)),
            session: self,
            options,
            sampler,
            tokens: Vec::new(),
            stop_reason: None,
            stats,
            decode_started: Instant::now(),
            failed: false,
        })
    }

    /// Generates to the end and returns everything at once.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        options: &GenerateOptions,
        sampler: &mut dyn Sampler,
        tokenizer: Option<&dyn Tokenizer>,
    ) -> Result<Generation> {
        let mut stream = self.stream(prompt, options, sampler, tokenizer)?;
        for token in stream.by_ref() {
            token?;
        }
        stream.finish()
    }
}

/// Tokens of a [`Session`] as they are generated. After the loop, [`Stream::finish`] tells why
/// it stopped and how fast it ran.
pub struct Stream<'s, 'm, B: Backend> {
    session: &'s mut Session<'m, B>,
    options: &'s GenerateOptions,
    sampler: &'s mut dyn Sampler,
    text: Option<TextStream<'s>>,
    tokens: Vec<u32>,
    stop_reason: Option<StopReason>,
    stats: Stats,
    decode_started: Instant,
    failed: bool,
}

impl<B: Backend> Stream<'_, '_, B> {
    /// Why generation stopped, if it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason
    }

    /// The generated tokens, text and statistics (text not yet shown is included).
    pub fn finish(mut self) -> Result<Generation> {
        let text = match &mut self.text {
            Some(t) => t.text()?,
            None => String::new(),
        };
        self.stats.generated_tokens = self.tokens.len();
        self.stats.decode = self.decode_started.elapsed();
        let stop_reason = self.stop_reason.unwrap_or(StopReason::MaxTokens);
        Ok(Generation { tokens: self.tokens, text, stop_reason, stats: self.stats })
    }

    /// Text held back at the end of the stream (an incomplete character or a partial stop
    /// string that never completed).
    pub fn remaining_text(&mut self) -> Result<String> {
        match &mut self.text {
            Some(t) => t.finish(),
            None => Ok(String::new()),
        }
    }

    fn step(&mut self) -> Result<Option<Token>> {
        let s = &mut *self.session;
        if self.tokens.len() >= self.options.max_tokens {
            self.stop_reason = Some(StopReason::MaxTokens);
            return Ok(None);
        }
        if s.history.len() >= s.cache.capacity() {
            self.stop_reason = Some(StopReason::ContextFull);
            return Ok(None);
        }
        s.sync()?;
        let logits = s.next_logits.take().ok_or_else(|| Error::Sampling("no logits to sample from".into()))?;
        let backend = s.model.backend();
        let id = if self.sampler.is_greedy() {
            backend.argmax_rows(&logits)?.first().copied().ok_or_else(|| Error::Sampling("no logits row".into()))?
        } else {
            self.sampler.sample(&backend.to_host(&logits)?, &s.history)?
        };
        s.history.push(id);
        self.tokens.push(id);
        let piece = match &mut self.text {
            Some(t) => t.push(id)?,
            None => Default::default(),
        };
        if piece.stopped {
            self.stop_reason = Some(StopReason::StopString);
        } else if self.options.eos_token_ids.contains(&id) {
            self.stop_reason = Some(StopReason::Eos);
        }
        Ok(Some(Token { id, text: piece.text }))
    }
}

impl<B: Backend> Iterator for Stream<'_, '_, B> {
    type Item = Result<Token>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stop_reason.is_some() || self.failed {
            return None;
        }
        let result = self.step();
        self.failed = result.is_err();
        result.transpose()
    }
}
