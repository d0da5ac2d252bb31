//! `zoo serve` end to end on the default model, over HTTP on 127.0.0.1: completions and chat
//! (whole and streamed) token-identical to `zoo run`, seeds, stop strings, OpenAI-style errors
//! (400, 401, 404, 413, 429), client disconnects, metrics, concurrent streams and SIGTERM.

#[path = "support/default_model.rs"]
mod default_model;
#[path = "serve/server.rs"]
mod server;

use std::process::Command;
use std::time::Duration;

use default_model::default_model_present;
use serde_json::{json, Value};
use server::{client, read_one_then_leave, sse_data, Server};

/// `zoo run ARGS --json` on the default model.
fn zoo_run(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_zoo"))
        .arg("run")
        .args(args)
        .arg("--json")
        .env_remove("ZOO_DEFAULT_MODEL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The text of a streamed answer and its parsed chunks; checks the stream's form: JSON chunks
/// of one id, one finish reason, `[DONE]` last.
fn streamed(response: reqwest::blocking::Response) -> (String, Vec<Value>) {
    assert_eq!(response.status().as_u16(), 200);
    let data = sse_data(response);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let ids: std::collections::BTreeSet<&str> = chunks.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "chunks of several requests in one stream: {ids:?}");
    let finishes = chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).count();
    assert_eq!(finishes, 1, "{chunks:?}");
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().or(c["choices"][0]["text"].as_str()))
        .collect();
    (text, chunks)
}

fn stream_request(server: &Server, path: &str, body: &Value) -> reqwest::blocking::Response {
    client().post(server.url(path)).json(body).send().unwrap()
}

#[test]
fn greedy_answers_equal_zoo_run_whole_and_streamed() {
    if !default_model_present() {
        return;
    }
    let server = Server::start(&[]);
    let prompt = "The capital of France is";
    let expected = zoo_run(&["--prompt", prompt, "--max-tokens", "6", "--temperature", "0"]);
    let body = json!({"model": "x", "prompt": prompt, "max_tokens": 6, "temperature": 0, "return_token_ids": true});
    let (status, answer) = server.post("/v1/completions", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["token_ids"], expected["tokens"]);
    assert_eq!(answer["choices"][0]["text"], expected["text"]);
    assert_eq!(answer["prompt_token_ids"], expected["prompt_tokens"]);
    assert_eq!(answer["usage"]["completion_tokens"], 6);
    assert_eq!(answer["choices"][0]["finish_reason"], "length");

    let question = "What is the capital of France?";
    let expected = zoo_run(&["--chat", "--prompt", question, "--temperature", "0"]);
    let body = json!({"messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": 32,
                      "return_token_ids": true});
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], expected["text"]);
    assert_eq!(answer["choices"][0]["token_ids"], expected["tokens"]);
    assert!(expected["text"].as_str().unwrap().contains("Paris"), "{expected}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["prompt_tokens"], expected["prompt_tokens"].as_array().unwrap().len());

    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (text, chunks) = streamed(stream_request(&server, "/v1/chat/completions", &body));
    assert_eq!(text, expected["text"].as_str().unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], answer["usage"]["completion_tokens"]);
    // The second identical request found its prompt in the cache.
    let (_, metrics) = server.get("/metrics");
    let reused = metric(&metrics, "zoo_prompt_tokens_reused_total");
    assert!(reused > 0.0, "{metrics}");
    assert!(server.terminate(), "zoo serve did not exit cleanly on SIGTERM");
}

#[test]
fn seeds_reproduce_stop_strings_cut_and_logprobs_add_up() {
    if !default_model_present() {
        return;
    }
    let server = Server::start(&[]);
    let sampled = |seed: u64| {
        let body = json!({"prompt": "Once upon a time", "max_tokens": 8, "temperature": 1.0, "seed": seed});
        server.post("/v1/completions", &body).1["choices"][0]["text"].as_str().unwrap().to_string()
    };
    let first = sampled(7);
    assert_eq!(first, sampled(7), "the same seed gave different text");

    let prompt = json!({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0});
    let (_, whole) = server.post("/v1/completions", &prompt);
    let text = whole["choices"][0]["text"].as_str().unwrap().to_string();
    // Stop at the second word of the greedy answer.
    let stop = text.trim_start().split(' ').nth(1).expect("a greedy answer of two words or more").to_string();
    let cut = &text[..text.find(&stop).unwrap()];
    let mut body = prompt.clone();
    body["stop"] = json!([stop]);
    let (_, stopped) = server.post("/v1/completions", &body);
    assert_eq!(stopped["choices"][0]["text"], cut, "{stopped}");
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    body["stream"] = json!(true);
    let (streamed_text, _) = streamed(stream_request(&server, "/v1/completions", &body));
    assert_eq!(streamed_text, cut);

    let body = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0,
                      "logprobs": true, "top_logprobs": 3});
    let (status, answer) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{answer}");
    let content = answer["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 3);
    for entry in content {
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(entry["logprob"], top[0]["logprob"], "{entry}");
        assert!(entry["logprob"].as_f64().unwrap() <= 0.0);
    }
}

#[test]
fn bad_requests_get_openai_errors() {
    if !default_model_present() {
        return;
    }
    let server = Server::start(&["--api-key", "sesame", "--max-context", "64"]);
    let with_key = |builder: reqwest::blocking::RequestBuilder| builder.bearer_auth("sesame");
    let send = |body: &str| {
        let response = with_key(client().post(server.url("/v1/completions"))).body(body.to_string()).send().unwrap();
        (response.status().as_u16(), response.json::<Value>().unwrap())
    };
    let (status, error) = server.post("/v1/completions", &json!({"prompt": "x"}));
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let wrong = client().post(server.url("/v1/models")).bearer_auth("open").send().unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let models: Value = with_key(client().get(server.url("/v1/models"))).send().unwrap().json().unwrap();
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(server.get("/health").0, 200);

    let cases = [
        ("{\"prompt\": ", None),
        (r#"{"prompt": "x", "temperature": "warm"}"#, Some("temperature")),
        (r#"{"prompt": "x", "top_p": 1.5}"#, Some("top_p")),
        (r#"{"prompt": "x", "n": 3}"#, Some("n")),
        (r#"{"prompt": "x", "max_tokens": 0}"#, Some("max_tokens")),
        (r#"{"prompt": [99999999]}"#, Some("prompt")),
    ];
    for (body, param) in cases {
        let (status, error) = send(body);
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["param"].as_str(), param, "{body}: {error}");
    }
    let long = "word ".repeat(100);
    let (status, error) = send(&json!({"prompt": long}).to_string());
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("context_length_exceeded")), "{error}");
    let huge = format!(r#"{{"prompt": "{}"}}"#, "a".repeat(5 << 20));
    let (status, error) = send(&huge);
    assert_eq!((status, error["error"]["code"].as_str()), (413, Some("request_too_large")), "{error}");
    let missing = with_key(client().get(server.url("/v2/nothing"))).send().unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    // A prompt that fits still answers, with a key.
    let (status, answer) = send(r#"{"prompt": "Hello", "max_tokens": 2, "temperature": 0}"#);
    assert_eq!(status, 200, "{answer}");
    let (_, metrics) = server.get("/metrics");
    assert!(metric(&metrics, "zoo_requests_rejected_total") >= 10.0, "{metrics}");
}

#[test]
fn a_full_queue_refuses_and_a_disconnect_frees_the_slot() {
    if !default_model_present() {
        return;
    }
    let server = Server::start(&["--max-batch", "1", "--max-queue", "1"]);
    let long = json!({"prompt": "Count to a thousand: 1, 2, 3,", "max_tokens": 2000, "temperature": 0, "stream": true});
    // The first request takes the only slot ...
    let first = stream_request(&server, "/v1/completions", &long);
    let first_line = read_one_then_leave_later(first);
    // ... the second waits in the queue ...
    let queued = {
        let url = server.url("/v1/completions");
        std::thread::spawn(move || {
            let body = json!({"prompt": "Hello", "max_tokens": 3, "temperature": 0});
            let response = client().post(url).json(&body).send().unwrap();
            (response.status().as_u16(), response.json::<Value>().unwrap())
        })
    };
    wait_for(&server, |m| metric(m, "zoo_queue_depth") == 1.0);
    // ... and the third is refused.
    let (status, error) = server.post("/v1/completions", &json!({"prompt": "Hi", "max_tokens": 1}));
    assert_eq!((status, error["error"]["type"].as_str()), (429, Some("rate_limit_error")), "{error}");
    // The first client leaves: its slot goes to the queued request, which completes.
    drop(first_line);
    let (status, answer) = queued.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 3);
    wait_for(&server, |m| metric(m, "zoo_jobs_cancelled_total") == 1.0 && metric(m, "zoo_active_sequences") == 0.0);
}

/// Reads the first event of a stream and returns the open response, to be dropped later.
fn read_one_then_leave_later(response: reqwest::blocking::Response) -> std::io::BufReader<reqwest::blocking::Response> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(response);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 && !line.starts_with("data:") {
        line.clear();
    }
    assert!(line.starts_with("data:"), "no event before the end of the stream");
    reader
}

#[test]
fn concurrent_streams_with_disconnects_are_each_answered_once() {
    if !default_model_present() {
        return;
    }
    let server = Server::start(&["--max-batch", "4"]);
    let prompts: Vec<String> = (0..16).map(|i| format!("Fact number {i} about cats:")).collect();
    let body = |p: &str| json!({"prompt": p, "max_tokens": 6, "temperature": 0, "stream": true});
    let clients: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (url, body) = (server.url("/v1/completions"), body(p));
            std::thread::spawn(move || {
                let response = client().post(url).json(&body).send().unwrap();
                if i % 4 == 3 {
                    read_one_then_leave(response);
                    None
                } else {
                    Some(streamed(response))
                }
            })
        })
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let mut ids = std::collections::BTreeSet::new();
    for (prompt, answer) in prompts.iter().zip(answers) {
        let Some((text, chunks)) = answer else { continue };
        assert!(ids.insert(chunks[0]["id"].as_str().unwrap().to_string()), "an id answered twice");
        // Batched with others, each answer is the one it gets alone.
        let mut alone = body(prompt);
        alone["stream"] = json!(false);
        let (_, single) = server.post("/v1/completions", &alone);
        assert_eq!(text, single["choices"][0]["text"].as_str().unwrap(), "{prompt}");
    }
    assert_eq!(ids.len(), 12);
    wait_for(&server, |m| metric(m, "zoo_active_sequences") == 0.0 && metric(m, "zoo_queue_depth") == 0.0);
    let (_, metrics) = server.get("/metrics");
    assert_eq!(metric(&metrics, "zoo_requests_total{endpoint=\"completions\"}"), 28.0, "{metrics}");
    assert!(metric(&metrics, "zoo_time_to_first_token_seconds_count") >= 24.0, "{metrics}");
}

/// The value of a metric line `NAME VALUE` in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

/// Polls `/metrics` until `ready` holds (at most a minute).
fn wait_for(server: &Server, ready: impl Fn(&str) -> bool) {
    for _ in 0..600 {
        let (_, text) = server.get("/metrics");
        if ready(&text) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("metrics never reached the expected state: {}", server.get("/metrics").1);
}
