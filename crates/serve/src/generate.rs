//! The generation endpoints: parse and check the body, tokenize the prompt, queue the job
//! (429 when the queue is full), then answer with one JSON body or a stream of events.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::api_error::ApiError;
use crate::app::{unix_seconds, App};
use crate::job::{Event, Job};
use crate::metrics::add;
use crate::prepare::{max_tokens, prompt_ids};
use crate::request::{self, Endpoint, Request};
use crate::response::{full, Meta};

/// `POST /v1/completions`.
pub async fn completions(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    add(&app.metrics.completion_requests, 1);
    answer(&app, Endpoint::Completion, body).await
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Response {
    add(&app.metrics.chat_requests, 1);
    answer(&app, Endpoint::Chat, body).await
}

async fn answer(app: &Arc<App>, endpoint: Endpoint, body: Result<Bytes, BytesRejection>) -> Response {
    match generate(app, endpoint, body).await {
        Ok(response) => response,
        Err(e) => {
            if e.status.is_client_error() {
                add(&app.metrics.rejected_requests, 1);
            }
            e.into_response()
        }
    }
}

async fn generate(
    app: &Arc<App>,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(app.max_body_bytes),
        _ => ApiError::invalid(rejection.body_text()),
    })?;
    let id = app.next_id();
    let request = parse(app, endpoint, &body, id)?;
    let (prompt, request) = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || prompt_ids(&app.pipe, &request.prompt).map(|ids| (ids, request)))
            .await
            .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))??
    };
    let (events, mut receiver) = unbounded_channel();
    let context = app.pipe.model.info().max_context;
    let job = Job {
        max_tokens: max_tokens(&request, prompt.len(), context),
        prompt: prompt.clone(),
        sampling: request.sampling.clone(),
        stop: request.stop.clone(),
        logprobs: request.logprobs,
        events,
        received,
    };
    app.queue.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => {
            add(&app.metrics.queue_full_rejections, 1);
            ApiError::queue_full(app.queue.max_capacity())
        }
        TrySendError::Closed(_) => ApiError::unavailable(),
    })?;
    let meta = meta(app, &request, id, prompt);
    let first = receiver.recv().await.ok_or_else(|| ApiError::internal("generation stopped without an answer"))?;
    if let Event::Failed(e) = first {
        return Err(e);
    }
    if request.stream {
        let stream = crate::sse::events(meta, first, receiver, request.include_usage);
        return Ok(Sse::new(stream).into_response());
    }
    collect(&meta, first, receiver).await.map(|body| Json(body).into_response())
}

fn parse(app: &App, endpoint: Endpoint, body: &[u8], id: u64) -> Result<Request, ApiError> {
    let seed = default_seed(id);
    match endpoint {
        Endpoint::Completion => request::completion(body, &app.defaults, seed),
        Endpoint::Chat => request::chat(body, &app.defaults, seed),
    }
}

/// The seed of a request that names none: differs per request and per run.
fn default_seed(id: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn meta(app: &App, request: &Request, id: u64, prompt: Vec<u32>) -> Meta {
    let prefix = match request.endpoint {
        Endpoint::Completion => "cmpl",
        Endpoint::Chat => "chatcmpl",
    };
    Meta {
        id: format!("{prefix}-{id}"),
        created: unix_seconds(),
        model: request.model.clone().unwrap_or_else(|| app.model_name.clone()),
        endpoint: request.endpoint,
        logprobs: request.logprobs.is_some(),
        prompt_token_ids: request.return_token_ids.then_some(prompt),
    }
}

/// Waits for the whole answer.
async fn collect(
    meta: &Meta,
    first: Event,
    mut events: UnboundedReceiver<Event>,
) -> Result<serde_json::Value, ApiError> {
    let mut tokens = Vec::new();
    let mut next = Some(first);
    loop {
        let event = match next.take() {
            Some(event) => Some(event),
            None => events.recv().await,
        };
        match event {
            Some(Event::Token(token)) => tokens.push(token),
            Some(Event::Done(finish)) => return Ok(full(meta, &tokens, &finish)),
            Some(Event::Failed(e)) => return Err(e),
            None => return Err(ApiError::internal("generation stopped without an answer")),
        }
    }
}
