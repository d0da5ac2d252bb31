//! The server's shared state and its routes: which path goes to which handler, the API-key
//! check on `/v1/*`, the body-size cap, and JSON 404s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::mpsc::Sender;
use zoo::Pipeline;
use zoo_core::SamplingParams;

use crate::api_error::ApiError;
use crate::generate::{chat_completions, completions};
use crate::job::Job;
use crate::metrics::Metrics;

/// What every handler shares.
pub struct App {
    /// The model (handlers tokenize; the scheduler runs it).
    pub pipe: Arc<Pipeline>,
    /// The bounded queue into the scheduler.
    pub queue: Sender<Job>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The key `/v1/*` requires, if any.
    pub api_key: Option<String>,
    /// The model's name in responses and `/v1/models`.
    pub model_name: String,
    /// Sampling defaults from the model's generation config.
    pub defaults: SamplingParams,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Unix seconds the server started.
    pub started: u64,
    next_id: AtomicU64,
}

impl App {
    /// Shared state for a server of `pipe`.
    pub fn new(pipe: Arc<Pipeline>, queue: Sender<Job>, metrics: Arc<Metrics>, config: &crate::ServeConfig) -> Self {
        let defaults = zoo::sampling_defaults(pipe.generation_config.as_ref());
        Self {
            pipe,
            queue,
            metrics,
            api_key: config.api_key.clone(),
            model_name: config.model_name.clone(),
            defaults,
            max_body_bytes: config.max_body_bytes,
            started: unix_seconds(),
            next_id: AtomicU64::new(1),
        }
    }

    /// A number no other request of this server gets.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Every route of the server.
pub fn router(app: Arc<App>) -> Router {
    let max_body_bytes = app.max_body_bytes;
    let v1 = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_key));
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|request: Request| async move { ApiError::not_found(request.uri().path()) })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

/// Refuses `/v1/*` requests without `Authorization: Bearer <key>` when a key is set.
async fn require_key(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(key) = &app.api_key {
        let given = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let given = given.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        if !given.is_some_and(|g| same_key(g.as_bytes(), key.as_bytes())) {
            crate::metrics::add(&app.metrics.rejected_requests, 1);
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// Compares keys in time independent of where they differ.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": app.model_name, "object": "model", "created": app.started, "owned_by": "zoo"}],
    }))
}

async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let active = app.metrics.active_sequences.load(Ordering::Relaxed);
    Json(json!({"status": "ok", "model": app.model_name, "active": active, "queued": app.queue_depth()}))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render(app.queue_depth());
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The chat page: one self-contained HTML file.
async fn page() -> Html<&'static str> {
    Html(include_str!("chat.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_only_when_equal() {
        assert!(same_key(b"secret", b"secret"));
        assert!(!same_key(b"secret", b"secreT"));
        assert!(!same_key(b"secret", b"secret2"));
        assert!(!same_key(b"", b"x"));
    }
}
