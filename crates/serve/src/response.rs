//! Response bodies in OpenAI's shapes: whole completions and chat completions, and the chunks
//! of a streamed one (`text_completion` / `chat.completion.chunk`), with `usage` and log
//! probabilities.

use serde_json::{json, Map, Value};

use crate::job::{Candidate, Finish, TokenEvent};
use crate::request::Endpoint;

/// What every body of one response repeats.
#[derive(Clone, Debug)]
pub struct Meta {
    /// `cmpl-N` or `chatcmpl-N`.
    pub id: String,
    /// Unix seconds when the request arrived.
    pub created: u64,
    /// The model name reported.
    pub model: String,
    /// Which shape to use.
    pub endpoint: Endpoint,
    /// Whether log probabilities were asked for.
    pub logprobs: bool,
    /// The prompt's token ids, when `return_token_ids` asked for them.
    pub prompt_token_ids: Option<Vec<u32>>,
}

impl Meta {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Completion, _) => "text_completion",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("id".into(), json!(self.id));
        body.insert("object".into(), json!(self.object(chunk)));
        body.insert("created".into(), json!(self.created));
        body.insert("model".into(), json!(self.model));
        body.insert("choices".into(), Value::Array(choices));
        body
    }
}

/// The whole answer: every token event, then how it finished.
pub fn full(meta: &Meta, tokens: &[TokenEvent], finish: &Finish) -> Value {
    let text: String = tokens.iter().map(|t| t.text.as_str()).chain([finish.tail.as_str()]).collect();
    let mut choice = match meta.endpoint {
        Endpoint::Completion => json!({"index": 0, "text": text}),
        Endpoint::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text}}),
    };
    choice["logprobs"] = logprobs(meta, tokens, 0);
    choice["finish_reason"] = json!(finish.finish_reason());
    if meta.prompt_token_ids.is_some() {
        choice["token_ids"] = json!(tokens.iter().map(|t| t.id).collect::<Vec<_>>());
    }
    let mut body = meta.envelope(false, vec![choice]);
    body.insert("usage".into(), usage(finish));
    if let Some(ids) = &meta.prompt_token_ids {
        body.insert("prompt_token_ids".into(), json!(ids));
    }
    Value::Object(body)
}

/// The first chunk of a streamed chat answer: the assistant's role, no text yet.
pub fn opening_chunk(meta: &Meta) -> Option<Value> {
    let choice =
        json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null});
    (meta.endpoint == Endpoint::Chat).then(|| Value::Object(meta.envelope(true, vec![choice])))
}

/// A chunk with `text` (the text of `tokens`, or the held-back tail), finishing when `finish` is
/// given. `offset` is the length of the text streamed before it (completions' `text_offset`).
pub fn chunk(meta: &Meta, text: &str, tokens: &[TokenEvent], finish: Option<&Finish>, offset: usize) -> Value {
    let mut choice = match meta.endpoint {
        Endpoint::Completion => json!({"index": 0, "text": text}),
        Endpoint::Chat if text.is_empty() => json!({"index": 0, "delta": {}}),
        Endpoint::Chat => json!({"index": 0, "delta": {"content": text}}),
    };
    choice["logprobs"] = if tokens.is_empty() { Value::Null } else { logprobs(meta, tokens, offset) };
    choice["finish_reason"] = finish.map_or(Value::Null, |f| json!(f.finish_reason()));
    if meta.prompt_token_ids.is_some() {
        choice["token_ids"] = json!(tokens.iter().map(|t| t.id).collect::<Vec<_>>());
    }
    Value::Object(meta.envelope(true, vec![choice]))
}

/// The last chunk when `stream_options.include_usage` asked for it: no choices, the usage.
pub fn usage_chunk(meta: &Meta, finish: &Finish) -> Value {
    let mut body = meta.envelope(true, Vec::new());
    body.insert("usage".into(), usage(finish));
    Value::Object(body)
}

fn usage(finish: &Finish) -> Value {
    json!({
        "prompt_tokens": finish.prompt_tokens,
        "completion_tokens": finish.completion_tokens,
        "total_tokens": finish.prompt_tokens + finish.completion_tokens,
    })
}

/// `logprobs` of a choice: completions' parallel lists, or chat's `content` entries.
fn logprobs(meta: &Meta, tokens: &[TokenEvent], offset: usize) -> Value {
    if !meta.logprobs {
        return Value::Null;
    }
    let entries: Vec<_> = tokens.iter().filter_map(|t| t.logprob.as_ref()).collect();
    match meta.endpoint {
        Endpoint::Chat => {
            let content: Vec<Value> = entries
                .iter()
                .map(|lp| {
                    let mut entry = candidate(&lp.token);
                    entry["top_logprobs"] = Value::Array(lp.top.iter().map(candidate).collect());
                    entry
                })
                .collect();
            json!({"content": content})
        }
        Endpoint::Completion => {
            let mut offsets = Vec::new();
            let mut at = offset;
            for t in tokens {
                offsets.push(at);
                at += t.text.len();
            }
            let top: Vec<Value> = entries
                .iter()
                .map(|lp| Value::Object(lp.top.iter().map(|c| (c.text.clone(), json!(c.logprob))).collect()))
                .collect();
            json!({
                "tokens": entries.iter().map(|lp| lp.token.text.clone()).collect::<Vec<_>>(),
                "token_logprobs": entries.iter().map(|lp| lp.token.logprob).collect::<Vec<_>>(),
                "top_logprobs": top,
                "text_offset": offsets,
            })
        }
    }
}

fn candidate(c: &Candidate) -> Value {
    json!({"token": c.text, "logprob": c.logprob, "bytes": c.bytes})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::TokenLogprob;
    use zoo_core::StopReason;

    fn meta(endpoint: Endpoint, logprobs: bool) -> Meta {
        Meta { id: "x-1".into(), created: 5, model: "m".into(), endpoint, logprobs, prompt_token_ids: None }
    }

    fn token(id: u32, text: &str) -> TokenEvent {
        let c = Candidate { text: text.into(), bytes: text.as_bytes().to_vec(), logprob: -0.5 };
        TokenEvent { id, text: text.into(), logprob: Some(TokenLogprob { token: c.clone(), top: vec![c] }) }
    }

    #[test]
    fn a_whole_answer_joins_the_text_and_reports_usage() {
        let finish = Finish { reason: StopReason::Eos, tail: "!".into(), prompt_tokens: 3, completion_tokens: 2 };
        let tokens = [token(1, "Hi"), token(2, " there")];
        let chat = full(&meta(Endpoint::Chat, true), &tokens, &finish);
        assert_eq!(chat["object"], "chat.completion");
        assert_eq!(chat["choices"][0]["message"]["content"], "Hi there!");
        assert_eq!(chat["choices"][0]["finish_reason"], "stop");
        assert_eq!(chat["choices"][0]["logprobs"]["content"][1]["token"], " there");
        assert_eq!(chat["usage"]["total_tokens"], 5);
        let text = full(&meta(Endpoint::Completion, true), &tokens, &finish);
        assert_eq!(text["choices"][0]["text"], "Hi there!");
        assert_eq!(text["choices"][0]["logprobs"]["text_offset"], json!([0, 2]));
        assert_eq!(full(&meta(Endpoint::Completion, false), &tokens, &finish)["choices"][0]["logprobs"], Value::Null);
    }

    #[test]
    fn chunks_carry_deltas_and_the_finish_reason() {
        let m = meta(Endpoint::Chat, false);
        assert_eq!(opening_chunk(&m).unwrap()["choices"][0]["delta"]["role"], "assistant");
        assert!(opening_chunk(&meta(Endpoint::Completion, false)).is_none());
        let c = chunk(&m, "Paris", &[token(1, "Paris")], None, 0);
        assert_eq!(
            (c["object"].as_str(), c["choices"][0]["delta"]["content"].as_str()),
            (Some("chat.completion.chunk"), Some("Paris"))
        );
        let finish =
            Finish { reason: StopReason::MaxTokens, tail: String::new(), prompt_tokens: 1, completion_tokens: 1 };
        let last = chunk(&m, "", &[], Some(&finish), 5);
        assert_eq!(
            (last["choices"][0]["finish_reason"].as_str(), &last["choices"][0]["delta"]),
            (Some("length"), &json!({}))
        );
        assert_eq!(usage_chunk(&m, &finish)["usage"]["completion_tokens"], 1);
    }
}
