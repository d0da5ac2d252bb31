//! A `zoo serve` child process on 127.0.0.1 with an ephemeral port, killed when dropped, and
//! small HTTP helpers over it.

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A running `zoo serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Starts `zoo serve --port 0 ARGS` on the default model and waits until it listens.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zoo"))
            .args(["serve", "--port", "0"])
            .args(args)
            .env_remove("ZOO_DEFAULT_MODEL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting zoo serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => match line.split("listening on ").nth(1) {
                    Some(url) => break url.trim().to_string(),
                    None => seen.push(line),
                },
                Err(_) => panic!("zoo serve did not start: {seen:?}"),
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Server { child, base }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` to `path`; returns the status and the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = client().post(self.url(path)).json(body).send().expect("request failed");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// GETs `path` as text.
    pub fn get(&self, path: &str) -> (u16, String) {
        let response = client().get(self.url(path)).send().expect("request failed");
        (response.status().as_u16(), response.text().unwrap_or_default())
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client with no overall timeout (streams take a while in debug builds).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap()
}

/// The `data:` payloads of an SSE response, read to its end.
pub fn sse_data(response: reqwest::blocking::Response) -> Vec<String> {
    let mut data = Vec::new();
    for line in BufReader::new(response).lines() {
        let line = line.expect("reading the stream");
        if let Some(payload) = line.strip_prefix("data:") {
            data.push(payload.trim().to_string());
        }
    }
    data
}

/// Reads from `response` until the first `data:` line, then drops the connection.
pub fn read_one_then_leave(response: reqwest::blocking::Response) -> String {
    let mut reader = BufReader::new(response);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if line.starts_with("data:") {
            return line;
        }
        line.clear();
    }
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    panic!("the stream ended before any data: {rest}");
}
