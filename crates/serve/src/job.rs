//! What passes between the HTTP handlers and the scheduler: a [`Job`] in, [`Event`]s back.

use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use zoo_core::{SamplingParams, StopReason};

use crate::api_error::ApiError;

/// One generation the scheduler runs: a tokenized, checked prompt and its settings.
#[derive(Debug)]
pub struct Job {
    /// Prompt token ids (at least one, shorter than the context).
    pub prompt: Vec<u32>,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Alternatives to report per token, when log probabilities are asked for.
    pub logprobs: Option<usize>,
    /// Where tokens go; a closed channel (the client left) cancels the job.
    pub events: UnboundedSender<Event>,
    /// When the request arrived (time to first token counts from here).
    pub received: Instant,
}

/// What a job reports, in order: tokens, then one `Done` or `Failed`.
#[derive(Clone, Debug)]
pub enum Event {
    /// A generated token.
    Token(TokenEvent),
    /// Generation ended.
    Done(Finish),
    /// Generation failed.
    Failed(ApiError),
}

/// One generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenEvent {
    /// Its id.
    pub id: u32,
    /// Text it made printable (whole characters, never part of a stop string; may be empty).
    pub text: String,
    /// Its log probability and the most likely alternatives, when asked for.
    pub logprob: Option<TokenLogprob>,
}

/// A token's log probability under the model (before sampling settings) and its rivals.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The token.
    pub token: Candidate,
    /// The most likely tokens at that position, most likely first.
    pub top: Vec<Candidate>,
}

/// A token with its text and log probability.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The token's text on its own (lossy where it holds part of a character).
    pub text: String,
    /// The token's own bytes (UTF-8 of `text`).
    pub bytes: Vec<u8>,
    /// Natural-log probability.
    pub logprob: f32,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    /// Why it stopped.
    pub reason: StopReason,
    /// Text held back until the end (a partial stop string that never completed).
    pub tail: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}

impl Finish {
    /// OpenAI's `finish_reason`: `stop` (end of sequence or a stop string) or `length`.
    pub fn finish_reason(&self) -> &'static str {
        match self.reason {
            StopReason::Eos | StopReason::StopString => "stop",
            StopReason::MaxTokens | StopReason::ContextFull => "length",
        }
    }
}
