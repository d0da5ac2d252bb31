//! One request in the running batch: its slot, sampler, text stream and counters; it turns each
//! step's logits row (or the backend's greedy pick) into a token event and knows when to stop.

use std::time::Instant;

use zoo_core::sampler::SamplerChain;
use zoo_core::{Sampler, StopReason, TextStream, Tokenizer};

use crate::api_error::ApiError;
use crate::job::{Event, Finish, Job, TokenEvent};
use crate::logprobs::token_logprob;
use crate::metrics::{add, seconds, Metrics};

/// What every sequence of a scheduler shares.
pub struct Context<'p> {
    /// The model's tokenizer.
    pub tokenizer: &'p dyn Tokenizer,
    /// Ids that end generation.
    pub eos_token_ids: &'p [u32],
    /// Most tokens per sequence (the cache's capacity).
    pub capacity: usize,
    /// Where timings and counts go.
    pub metrics: &'p Metrics,
}

/// A running request.
pub struct Sequence<'p> {
    /// Its KV-cache slot.
    pub slot: usize,
    /// Tokens to run through the model in the next step.
    pub pending: Vec<u32>,
    /// Every token of the sequence (prompt and generated).
    pub history: Vec<u32>,
    job: Job,
    sampler: SamplerChain,
    text: TextStream<'p>,
    generated: usize,
    last_token: Option<Instant>,
}

impl<'p> Sequence<'p> {
    /// Starts `job` in `slot`, whose cache already holds the prompt's first `reused` tokens.
    pub fn new(job: Job, slot: usize, reused: usize, ctx: &Context<'p>) -> Result<Self, ApiError> {
        let sampler = job.sampling.build().map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(Self {
            slot,
            pending: job.prompt[reused..].to_vec(),
            history: job.prompt.clone(),
            text: TextStream::new(ctx.tokenizer, &job.stop),
            sampler,
            job,
            generated: 0,
            last_token: None,
        })
    }

    /// Whether this sequence needs the step's logits on the host (sampling or log
    /// probabilities), not just the greedy pick.
    pub fn needs_logits(&self) -> bool {
        !self.sampler.is_greedy() || self.job.logprobs.is_some()
    }

    /// Whether the client has gone (its event receiver was dropped).
    pub fn cancelled(&self) -> bool {
        self.job.events.is_closed()
    }

    /// Reports a failure to the client.
    pub fn fail(&self, error: ApiError) {
        let _ = self.job.events.send(Event::Failed(error));
    }

    /// Takes the step's result for this sequence (`picked`: the backend's greedy choice;
    /// `logits`: the row, when read back) and reports the token. Returns whether it finished.
    pub fn advance(
        &mut self,
        picked: Option<u32>,
        logits: Option<&[f32]>,
        ctx: &Context<'_>,
    ) -> Result<bool, ApiError> {
        let id = match (logits, picked) {
            (Some(row), _) => self.sampler.sample(row, &self.history).map_err(|e| ApiError::internal(e.to_string()))?,
            (None, Some(id)) => id,
            (None, None) => return Err(ApiError::internal("the step produced no token for a sequence")),
        };
        let logprob = match (self.job.logprobs, logits) {
            (Some(top), Some(row)) => Some(token_logprob(row, id, top, ctx.tokenizer)),
            _ => None,
        };
        self.history.push(id);
        self.generated += 1;
        self.record_timing(ctx.metrics);
        let piece = self.text.push(id).map_err(|e| ApiError::internal(e.to_string()))?;
        let _ = self.job.events.send(Event::Token(TokenEvent { id, text: piece.text, logprob }));
        let stop = if piece.stopped {
            Some(StopReason::StopString)
        } else if ctx.eos_token_ids.contains(&id) {
            Some(StopReason::Eos)
        } else if self.generated >= self.job.max_tokens {
            Some(StopReason::MaxTokens)
        } else if self.history.len() >= ctx.capacity {
            Some(StopReason::ContextFull)
        } else {
            None
        };
        match stop {
            Some(reason) => self.finish(reason, ctx.metrics)?,
            None => self.pending = vec![id],
        }
        Ok(stop.is_some())
    }

    fn record_timing(&mut self, metrics: &Metrics) {
        let now = Instant::now();
        match self.last_token {
            None => metrics.time_to_first_token.observe(seconds(now - self.job.received)),
            Some(last) => metrics.inter_token_latency.observe(seconds(now - last)),
        }
        self.last_token = Some(now);
        add(&metrics.generated_tokens, 1);
    }

    fn finish(&mut self, reason: StopReason, metrics: &Metrics) -> Result<(), ApiError> {
        let tail = self.text.finish().map_err(|e| ApiError::internal(e.to_string()))?;
        add(&metrics.finished_jobs, 1);
        let finish = Finish { reason, tail, prompt_tokens: self.job.prompt.len(), completion_tokens: self.generated };
        let _ = self.job.events.send(Event::Done(finish));
        Ok(())
    }
}
