//! The chat page at `/` in a real headless Chromium, driven through chromedriver's W3C WebDriver
//! HTTP API (`serve/webdriver.rs`), against `zoo serve` on the default model: type a question,
//! send it, wait for the streamed answer to end, and check the answer and its tokens/s line.
//!
//! Chromium and chromedriver come from `scripts/install-browser-test-deps.sh` (Debian's
//! `chromium` and `chromium-driver`; `$ZOO_CHROMIUM` and `$ZOO_CHROMEDRIVER` override the
//! paths). Without them the test fails saying so, unless `ZOO_SKIP_BROWSER_TEST=1` asks to skip
//! it (then it prints `SKIPPED`). `ZOO_CHAT_PAGE_SCREENSHOT=PATH` saves the screenshot there
//! (docs/chat-page.png comes from it); otherwise it goes to Cargo's test scratch directory.

#[path = "support/default_model.rs"]
mod default_model;
#[path = "serve/server.rs"]
mod server;
#[path = "serve/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

use default_model::default_model_present;
use webdriver::{find_program, Browser};

/// How long the streamed answer may take (a debug build on a loaded 2-core machine).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// Chromium and chromedriver, or `None` (skip) when missing and `ZOO_SKIP_BROWSER_TEST=1`.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program("ZOO_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_program("ZOO_CHROMEDRIVER", &["chromedriver"]);
    if let (Some(chromium), Some(chromedriver)) = (&chromium, &chromedriver) {
        if chromium.is_file() && chromedriver.is_file() {
            return Some((chromium.clone(), chromedriver.clone()));
        }
    }
    let message = format!(
        "the chat page test needs Chromium and chromedriver (found {chromium:?} and {chromedriver:?}); \
         run scripts/install-browser-test-deps.sh"
    );
    assert!(std::env::var_os("ZOO_SKIP_BROWSER_TEST").is_some(), "{message} (or set ZOO_SKIP_BROWSER_TEST=1)");
    eprintln!("SKIPPED (ZOO_SKIP_BROWSER_TEST): {message}");
    None
}

/// The tokens/s figure of a stats line like `9 tokens · 35.2 tokens/s · first token after 0.12 s`.
fn tokens_per_second(stats: &str) -> Option<f64> {
    let before = stats.split(" tokens/s").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

#[test]
fn the_chat_page_streams_an_answer_in_headless_chromium() {
    let Some((chromium, chromedriver)) = browser_programs() else { return };
    if !default_model_present() {
        return;
    }
    let server = server::Server::start(&["--max-context", "512"]);
    let browser = Browser::start(&chromedriver, &chromium);
    browser.open(&server.url("/"));
    // The header names the served model once the page's /v1/models request answered.
    let model = browser.wait_for(
        "return document.getElementById('model').textContent",
        Duration::from_secs(30),
        "the model name in the header",
    );
    assert_eq!(model.as_str(), Some("SmolLM2-135M-Instruct.Q4_1"));

    browser.clear("#max-tokens");
    browser.type_into("#max-tokens", "48");
    browser.type_into("#input", "What is the capital of France?");
    browser.click("#send");
    // The page sets data-answers when a reply has streamed to its end (or failed).
    browser.wait_for("return document.body.dataset.answers", ANSWER_TIMEOUT, "the streamed answer to finish");

    let errors = browser.script("return [...document.querySelectorAll('.msg.error')].map(e => e.textContent)");
    assert_eq!(errors, serde_json::json!([]), "the page shows an error");
    let question = browser.script("return document.querySelector('.msg.user').textContent");
    assert_eq!(question.as_str(), Some("What is the capital of France?"));
    let answer = browser.script("return document.querySelector('.msg.assistant').textContent");
    let answer = answer.as_str().expect("an assistant bubble");
    assert!(answer.contains("Paris"), "the answer does not say Paris: {answer:?}");
    let stats = browser.script("return document.querySelector('.stats').textContent");
    let stats = stats.as_str().expect("a stats line under the answer");
    let rate = tokens_per_second(stats).unwrap_or_else(|| panic!("no tokens/s figure in {stats:?}"));
    assert!(rate > 0.0, "{stats}");
    // The input is empty and enabled again for the next question.
    let ready = browser
        .script("return document.getElementById('input').value === '' && !document.getElementById('send').disabled");
    assert_eq!(ready, serde_json::json!(true));

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG");
    let path = std::env::var_os("ZOO_CHAT_PAGE_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chat-page.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("answer: {answer:?}; {stats}; screenshot: {}", path.display());
}

#[test]
fn the_stats_line_parses() {
    assert_eq!(tokens_per_second("9 tokens · 35.2 tokens/s · first token after 0.12 s"), Some(35.2));
    assert_eq!(tokens_per_second("1 tokens · – tokens/s · first token after 0.12 s"), None);
}
