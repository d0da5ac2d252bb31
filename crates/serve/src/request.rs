//! Request bodies of `/v1/completions` and `/v1/chat/completions`: parsed from JSON (a field of
//! the wrong type names itself), range-checked, and turned into what the scheduler runs.
//! Unknown fields are ignored, as OpenAI clients send fields zoo has no use for.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use zoo_checkpoint::Message;
use zoo_core::SamplingParams;

use crate::api_error::ApiError;

/// Most stop strings a request may give.
pub const MAX_STOP_STRINGS: usize = 16;
/// Most alternatives `top_logprobs` may ask for per token.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Which endpoint a request came through (it decides the response's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/completions`: raw text continued.
    Completion,
    /// `/v1/chat/completions`: messages through the model's chat template.
    Chat,
}

/// What to continue.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Text, tokenized with the model's special tokens (BOS).
    Text(String),
    /// Token ids as given.
    Tokens(Vec<u32>),
    /// A conversation, rendered with the model's chat template.
    Chat(Vec<Message>),
}

/// A checked request.
#[derive(Clone, Debug)]
pub struct Request {
    /// The endpoint it came through.
    pub endpoint: Endpoint,
    /// What to continue.
    pub prompt: Prompt,
    /// The `model` the client named (echoed back; zoo serves one model whatever it says).
    pub model: Option<String>,
    /// Sampling: the request's values over the model's generation-config defaults.
    pub sampling: SamplingParams,
    /// `max_tokens` (`None`: 16 for completions, the rest of the context for chat).
    pub max_tokens: Option<usize>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Alternatives to report per token, when log probabilities are asked for.
    pub logprobs: Option<usize>,
    /// Answer as server-sent events.
    pub stream: bool,
    /// With `stream`, end with a chunk carrying `usage` (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Add the prompt's and the reply's token ids to the response (as vLLM's `return_token_ids`).
    pub return_token_ids: bool,
}

/// Fields both endpoints take.
#[derive(Deserialize)]
struct Common {
    model: Option<String>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    stop: Option<Stop>,
    seed: Option<i64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    top_k: Option<u32>,
    min_p: Option<f64>,
    repetition_penalty: Option<f64>,
    return_token_ids: Option<bool>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `/v1/completions`' own fields.
#[derive(Deserialize)]
struct CompletionFields {
    prompt: PromptField,
    logprobs: Option<u32>,
    echo: Option<bool>,
    suffix: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

/// `/v1/chat/completions`' own fields.
#[derive(Deserialize)]
struct ChatFields {
    messages: Vec<ChatMessage>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

/// Parses a `/v1/completions` body.
pub fn completion(body: &[u8], defaults: &SamplingParams, seed: u64) -> Result<Request, ApiError> {
    let value = json_object(body)?;
    let fields: CompletionFields = fields(&value)?;
    if fields.echo == Some(true) {
        return Err(ApiError::invalid_param("echo", "echo is not supported"));
    }
    if fields.suffix.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid_param("suffix", "suffix is not supported"));
    }
    let prompt = match fields.prompt {
        PromptField::Text(text) => Prompt::Text(text),
        PromptField::Texts(mut texts) if texts.len() == 1 => Prompt::Text(texts.remove(0)),
        PromptField::Texts(_) => return Err(ApiError::invalid_param("prompt", "only one prompt per request")),
        PromptField::Tokens(ids) => Prompt::Tokens(ids),
    };
    let logprobs = match fields.logprobs {
        Some(n) if n > 5 => {
            return Err(ApiError::invalid_param("logprobs", format!("logprobs must be in 0..=5, got {n}")))
        }
        n => n.map(|n| n as usize),
    };
    common(&value, Endpoint::Completion, prompt, logprobs, defaults, seed)
}

/// Parses a `/v1/chat/completions` body.
pub fn chat(body: &[u8], defaults: &SamplingParams, seed: u64) -> Result<Request, ApiError> {
    let value = json_object(body)?;
    let fields: ChatFields = fields(&value)?;
    if fields.messages.is_empty() {
        return Err(ApiError::invalid_param("messages", "messages is empty"));
    }
    let messages = fields.messages.into_iter().map(message).collect::<Result<Vec<_>, _>>()?;
    let top = fields.top_logprobs.unwrap_or(0) as usize;
    if top > MAX_TOP_LOGPROBS {
        return Err(ApiError::invalid_param(
            "top_logprobs",
            format!("top_logprobs must be in 0..={MAX_TOP_LOGPROBS}, got {top}"),
        ));
    }
    let logprobs = match (fields.logprobs.unwrap_or(false), fields.top_logprobs) {
        (true, _) => Some(top),
        (false, Some(_)) => return Err(ApiError::invalid_param("top_logprobs", "top_logprobs needs logprobs: true")),
        (false, None) => None,
    };
    common(&value, Endpoint::Chat, Prompt::Chat(messages), logprobs, defaults, seed)
}

/// A chat message as the template sees it: `developer` is `system`; text parts are joined.
fn message(m: ChatMessage) -> Result<Message, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        other => {
            return Err(ApiError::invalid_param(
                "messages",
                format!("role {other:?} is not supported (system, user or assistant)"),
            ))
        }
    };
    let content = match m.content {
        Content::Text(text) => text,
        Content::Parts(parts) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(t)) => text.push_str(&t),
                    (kind, _) => {
                        return Err(ApiError::invalid_param(
                            "messages",
                            format!("content part {kind:?} is not supported"),
                        ))
                    }
                }
            }
            text
        }
    };
    Ok(Message::new(role, content))
}

/// The body as a JSON object, or a 400 saying what is wrong with it.
fn json_object(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    Ok(value)
}

/// Deserializes the fields `T` knows from `value`; a wrong type names the field.
fn fields<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::invalid(inner.to_string())
        } else {
            let param = path.split(['.', '[']).next().unwrap_or(&path).to_string();
            ApiError::invalid_param(&param, format!("{path}: {inner}"))
        }
    })
}

fn common(
    value: &Value,
    endpoint: Endpoint,
    prompt: Prompt,
    logprobs: Option<usize>,
    defaults: &SamplingParams,
    seed: u64,
) -> Result<Request, ApiError> {
    let c: Common = fields(value)?;
    if let Some(n) = c.n.filter(|&n| n != 1) {
        return Err(ApiError::invalid_param("n", format!("only n = 1 is supported, got {n}")));
    }
    let max_tokens = match c.max_completion_tokens.or(c.max_tokens) {
        Some(0) => return Err(ApiError::invalid_param("max_tokens", "max_tokens must be at least 1")),
        n => n.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let sampling = sampling(&c, defaults, seed)?;
    let stop = match c.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(list)) if list.len() > MAX_STOP_STRINGS => {
            return Err(ApiError::invalid_param("stop", format!("at most {MAX_STOP_STRINGS} stop strings")))
        }
        Some(Stop::Many(list)) => list,
    };
    Ok(Request {
        endpoint,
        prompt,
        model: c.model,
        sampling,
        max_tokens,
        stop,
        logprobs,
        stream: c.stream.unwrap_or(false),
        include_usage: c.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        return_token_ids: c.return_token_ids.unwrap_or(false),
    })
}

/// The request's sampling values over `defaults`, each range-checked; `seed` when it names none.
fn sampling(c: &Common, defaults: &SamplingParams, seed: u64) -> Result<SamplingParams, ApiError> {
    let temperature = in_range("temperature", c.temperature, 0.0..=2.0)?;
    let top_p = in_range("top_p", c.top_p, 0.0..=1.0)?;
    if top_p == Some(0.0) {
        return Err(ApiError::invalid_param("top_p", "top_p must be in (0, 1], got 0"));
    }
    let repeat = in_range("repetition_penalty", c.repetition_penalty, 0.0..=10.0)?;
    if repeat == Some(0.0) {
        return Err(ApiError::invalid_param("repetition_penalty", "repetition_penalty must be positive, got 0"));
    }
    Ok(SamplingParams {
        temperature: temperature.unwrap_or(defaults.temperature),
        top_p: top_p.unwrap_or(defaults.top_p),
        top_k: c.top_k.map_or(defaults.top_k, |k| k as usize),
        min_p: in_range("min_p", c.min_p, 0.0..=1.0)?.unwrap_or(defaults.min_p),
        repeat_penalty: repeat.unwrap_or(defaults.repeat_penalty),
        frequency_penalty: in_range("frequency_penalty", c.frequency_penalty, -2.0..=2.0)?
            .unwrap_or(defaults.frequency_penalty),
        presence_penalty: in_range("presence_penalty", c.presence_penalty, -2.0..=2.0)?
            .unwrap_or(defaults.presence_penalty),
        // NOTE: OpenAI's seed is a signed integer; negative seeds are reinterpreted as u64.
        seed: c.seed.map_or(seed, |s| s as u64),
    })
}

/// `value` as f32 if it lies in `range` (inclusive).
fn in_range(name: &str, value: Option<f64>, range: std::ops::RangeInclusive<f64>) -> Result<Option<f32>, ApiError> {
    match value {
        Some(v) if !range.contains(&v) => Err(ApiError::invalid_param(
            name,
            format!("{name} must be in [{}, {}], got {v}", range.start(), range.end()),
        )),
        v => Ok(v.map(|v| v as f32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chat(body: &str) -> Result<Request, ApiError> {
        chat(body.as_bytes(), &SamplingParams::default(), 7)
    }

    fn parse_completion(body: &str) -> Result<Request, ApiError> {
        completion(body.as_bytes(), &SamplingParams::default(), 7)
    }

    #[test]
    fn a_full_chat_request_is_read_with_its_options() {
        let r = parse_chat(
            r#"{"model": "m", "messages": [{"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "seed": 3, "stop": "x", "stream": true,
                "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 2,
                "top_k": 4, "min_p": 0.1, "repetition_penalty": 1.1, "user": "ignored"}"#,
        )
        .unwrap();
        let Prompt::Chat(messages) = &r.prompt else { panic!("not a chat: {:?}", r.prompt) };
        assert_eq!(messages, &[Message::new("system", "Be brief."), Message::new("user", "Hi")]);
        assert_eq!(
            (r.max_tokens, r.stop.clone(), r.logprobs, r.stream, r.include_usage),
            (Some(5), vec!["x".into()], Some(2), true, true)
        );
        let s = &r.sampling;
        assert_eq!((s.temperature, s.top_p, s.top_k, s.min_p, s.repeat_penalty, s.seed), (0.5, 0.9, 4, 0.1, 1.1, 3));
    }

    #[test]
    fn unset_options_take_the_defaults_and_the_given_seed() {
        let defaults = SamplingParams { temperature: 0.3, ..SamplingParams::default() };
        let r = completion(br#"{"prompt": ["Hello"]}"#, &defaults, 11).unwrap();
        assert!(matches!(&r.prompt, Prompt::Text(t) if t == "Hello"));
        assert_eq!((r.sampling.temperature, r.sampling.seed, r.max_tokens, r.stream), (0.3, 11, None, false));
        let tokens = parse_completion(r#"{"prompt": [1, 2, 3], "stop": ["a", "b"]}"#).unwrap();
        assert!(matches!(&tokens.prompt, Prompt::Tokens(ids) if ids == &[1, 2, 3]));
        assert_eq!(tokens.stop, ["a", "b"]);
    }

    #[test]
    fn bad_requests_name_the_field_at_fault() {
        let cases = [
            (r#"{"prompt": "x", "temperature": "hot"}"#, "temperature"),
            (r#"{"prompt": "x", "temperature": 2.5}"#, "temperature"),
            (r#"{"prompt": "x", "top_p": 0}"#, "top_p"),
            (r#"{"prompt": "x", "n": 2}"#, "n"),
            (r#"{"prompt": "x", "max_tokens": 0}"#, "max_tokens"),
            (r#"{"prompt": "x", "max_tokens": -1}"#, "max_tokens"),
            (r#"{"prompt": "x", "presence_penalty": 3}"#, "presence_penalty"),
            (r#"{"prompt": "x", "logprobs": 9}"#, "logprobs"),
            (r#"{"prompt": ["a", "b"]}"#, "prompt"),
            (r#"{"prompt": 5}"#, "prompt"),
            (r#"{"prompt": "x", "stop": 5}"#, "stop"),
        ];
        for (body, param) in cases {
            let e = parse_completion(body).unwrap_err();
            assert_eq!((e.status.as_u16(), e.param.as_deref()), (400, Some(param)), "{body}: {}", e.message);
        }
        let e = parse_chat(r#"{"messages": [{"role": "tool", "content": "x"}]}"#).unwrap_err();
        assert!(e.message.contains("\"tool\""), "{}", e.message);
        assert_eq!(parse_chat(r#"{"messages": []}"#).unwrap_err().param.as_deref(), Some("messages"));
        assert!(parse_chat("{").unwrap_err().message.starts_with("the body is not valid JSON"));
        assert_eq!(parse_chat("[]").unwrap_err().message, "the body must be a JSON object");
        assert!(parse_completion("{}").unwrap_err().message.contains("prompt"));
    }
}
