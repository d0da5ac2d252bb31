//! A job's events as server-sent events: one `data: {chunk}` per token that shows text (or
//! carries log probabilities), a closing chunk with the finish reason, an optional usage chunk,
//! then `data: [DONE]`. Dropping the stream (the client left) drops the job's receiver, which
//! the scheduler sees as a cancellation.

use std::convert::Infallible;

use axum::response::sse::Event as SseEvent;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::api_error::ApiError;
use crate::job::Event;
use crate::response::{chunk, opening_chunk, usage_chunk, Meta};

/// Where a streamed answer is.
struct State {
    meta: Meta,
    first: Option<Event>,
    events: UnboundedReceiver<Event>,
    include_usage: bool,
    /// Bytes of text streamed so far.
    offset: usize,
    ended: bool,
}

/// The SSE stream of a job whose first event (`first`, already received) was not a failure.
pub fn events(
    meta: Meta,
    first: Event,
    events: UnboundedReceiver<Event>,
    include_usage: bool,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let opening: Vec<String> = opening_chunk(&meta).iter().map(Value::to_string).collect();
    let state = State { meta, first: Some(first), events, include_usage, offset: 0, ended: false };
    let body = stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        let event = match state.first.take() {
            Some(event) => event,
            None => state
                .events
                .recv()
                .await
                .unwrap_or_else(|| Event::Failed(ApiError::internal("generation stopped without an answer"))),
        };
        let lines = state.lines(event);
        Some((stream::iter(lines), state))
    })
    .flatten();
    stream::iter(opening).chain(body).map(|data| Ok(SseEvent::default().data(data)))
}

impl State {
    /// The `data:` payloads one event turns into.
    fn lines(&mut self, event: Event) -> Vec<String> {
        match event {
            Event::Token(token) if token.text.is_empty() && token.logprob.is_none() => Vec::new(),
            Event::Token(token) => {
                let line = chunk(&self.meta, &token.text, std::slice::from_ref(&token), None, self.offset);
                self.offset += token.text.len();
                vec![line.to_string()]
            }
            Event::Done(finish) => {
                self.ended = true;
                let mut lines = vec![chunk(&self.meta, &finish.tail, &[], Some(&finish), self.offset).to_string()];
                if self.include_usage {
                    lines.push(usage_chunk(&self.meta, &finish).to_string());
                }
                lines.push("[DONE]".into());
                lines
            }
            Event::Failed(error) => {
                self.ended = true;
                let body = serde_json::to_string(&error.body()).unwrap_or_default();
                vec![body, "[DONE]".into()]
            }
        }
    }
}
