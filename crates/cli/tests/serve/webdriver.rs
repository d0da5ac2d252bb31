//! A headless Chromium driven through chromedriver's W3C WebDriver HTTP API (plain JSON over
//! HTTP, no Selenium): chromedriver runs as a child in its own process group, on a port it picks,
//! with a fresh Chromium profile; dropping the [`Browser`] ends the session and kills the group,
//! so a failing test leaves no browser behind.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference (W3C WebDriver, "Elements").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium flags that work headless as root on a machine without a GPU or network.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=900,600",
];

/// `$VAR` if set, else the first of `names` on `PATH`.
pub fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    names.iter().flat_map(|name| std::env::split_paths(&dirs).map(move |dir| dir.join(name))).find(|p| p.is_file())
}

/// One WebDriver session in a headless Chromium.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a session of `chromium` in it.
    pub fn start(chromedriver: &Path, chromium: &Path) -> Browser {
        let mut driver = Command::new(chromedriver)
            .args(["--port=0", "--log-level=WARNING"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let port = match wait_for_port(&mut driver) {
            Ok(port) => port,
            Err(message) => {
                kill_group(&mut driver);
                panic!("{message}");
            }
        };
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http,
            _profile: profile,
        };
        let answer = browser.call(reqwest::Method::POST, "/session", &capabilities);
        browser.session = answer["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// Sends one WebDriver command (`path` relative to the session unless it starts with
    /// `/session`); returns its `value`, panicking with WebDriver's error otherwise.
    fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let url = if path.starts_with("/session") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = self.http.request(method.clone(), &url);
        let request = if method == reqwest::Method::GET { request } else { request.json(body) };
        let response = request.send().unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status();
        let answer: Value = response.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {method} {path} answered {status}: {answer}");
        answer["value"].clone()
    }

    /// Loads `url` (returns once the page's `load` event fired).
    pub fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", &json!({"url": url}));
    }

    /// The element that CSS selector `css` finds first.
    pub fn find(&self, css: &str) -> String {
        let found = self.call(reqwest::Method::POST, "/element", &json!({"using": "css selector", "value": css}));
        found[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element for {css}: {found}")).to_string()
    }

    /// Clears the input or text area that `css` finds.
    pub fn clear(&self, css: &str) {
        let element = self.find(css);
        self.call(reqwest::Method::POST, &format!("/element/{element}/clear"), &json!({}));
    }

    /// Types `text` into the element that `css` finds, key by key.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), &json!({"text": text}));
    }

    /// Clicks the element that `css` finds.
    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), &json!({}));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn script(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", &json!({"script": script, "args": []}))
    }

    /// Runs `script` every 100 ms until it returns a truthy value, or panics after `timeout`
    /// saying `what` it waited for; returns that value.
    pub fn wait_for(&self, script: &str, timeout: Duration, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.script(script);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            let page = self.script("return document.body.innerText");
            assert!(started.elapsed() < timeout, "waited {timeout:?} for {what}; the page shows:\n{page}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", &Value::Null);
        base64::engine::general_purpose::STANDARD.decode(encoded.as_str().expect("base64 text")).expect("base64 PNG")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes Chromium cleanly; the group kill below catches whatever remains.
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.http.delete(url).timeout(Duration::from_secs(10)).send();
        }
        kill_group(&mut self.driver);
    }
}

/// Reads chromedriver's "started successfully on port N." line (30 s at most).
fn wait_for_port(driver: &mut Child) -> Result<u16, String> {
    let stdout = driver.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Keeps reading after the port line, so chromedriver never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let port = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|p| p.trim().trim_end_matches('.').parse().ok());
                match port {
                    Some(port) => return Ok(port),
                    None => seen.push(line),
                }
            }
            Err(_) => return Err(format!("chromedriver did not start: {seen:?}")),
        }
    }
}

/// SIGKILLs `child`'s whole process group (chromedriver and the Chromium it started) and reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group our own child leads (spawned with process_group(0)).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}
