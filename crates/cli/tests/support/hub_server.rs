//! A stand-in for the Hugging Face hub on 127.0.0.1: serves one model repository in the hub's
//! URL layout, as hf-hub's blocking client asks for it, and records every request.
//!
//! - `GET /api/models/{org}/{name}/revision/{rev}`: `{"sha": commit, "siblings": [{"rfilename"}]}`
//! - `GET|HEAD /{org}/{name}/resolve/{rev}/{file}`: the file, with `X-Repo-Commit`, a quoted
//!   `ETag`, `Content-Length` and, for a `Range: bytes=a-[b]` request, `206` with
//!   `Content-Range: bytes a-b/size`
//!
//! `{rev}` is `main` or the commit. Anything else is a 404. Every response closes its
//! connection. The server stops when dropped.
// Each test file uses the part it needs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path, percent-escapes left as sent.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: BTreeMap<String, String>,
}

/// What the server serves and how it misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Repo {
    /// `org/name`.
    pub id: String,
    /// File name to content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// When set, requests without `Authorization: Bearer {token}` get a 401.
    pub token: Option<String>,
    /// File and offset: the server sends none of the file's bytes from that offset on and closes
    /// the connection there, after announcing the full length.
    pub cut: Option<(String, usize)>,
    /// Etags to send instead of the content's, by file.
    pub etags: BTreeMap<String, String>,
}

impl Repo {
    /// `id` serving the files of `dir` (symlinks read through), except its reference files.
    pub fn from_dir(id: &str, dir: &Path) -> Self {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && !name.ends_with("reference.json") {
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
        Self { id: id.to_string(), files, ..Self::default() }
    }

    /// The commit every file is served at: derived from the content, 40 hex digits.
    pub fn commit(&self) -> String {
        let listing: Vec<u8> = self.files.iter().flat_map(|(n, d)| [n.as_bytes(), d].concat()).collect();
        hex_digest(&listing, 40)
    }

    /// The etag of `file`: the override, else derived from the content.
    pub fn etag(&self, file: &str) -> String {
        self.etags.get(file).cloned().unwrap_or_else(|| hex_digest(&self.files[file], 64))
    }
}

/// A running server.
pub struct HubServer {
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HubServer {
    /// Serves `repo` on a free port.
    pub fn start(repo: Repo) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped, repo) = (requests.clone(), stop.clone(), Arc::new(repo));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (log, repo) = (log.clone(), repo.clone());
                std::thread::spawn(move || serve(stream, &repo, &log));
            }
        });
        Self { endpoint, requests, stop, thread: Some(thread) }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The files requested with `GET` (not the size probes, `Range: bytes=0-0`).
    pub fn downloaded(&self) -> Vec<String> {
        let files = self.requests().into_iter().filter(|r| r.method == "GET" && r.range() != Some("bytes=0-0"));
        files.filter_map(|r| r.path.split("/resolve/").nth(1)?.split_once('/').map(|(_, f)| f.to_string())).collect()
    }
}

impl Request {
    /// The `Range` header.
    pub fn range(&self) -> Option<&str> {
        self.headers.get("range").map(String::as_str)
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream`, then closes it.
fn serve(stream: TcpStream, repo: &Repo, log: &Mutex<Vec<Request>>) {
    let Some(request) = read_request(&stream) else { return };
    log.lock().unwrap().push(request.clone());
    let mut stream = stream;
    let authorized =
        repo.token.as_ref().is_none_or(|t| request.headers.get("authorization") == Some(&format!("Bearer {t}")));
    let api = format!("/api/models/{}/revision/", repo.id);
    let resolve = format!("/{}/resolve/", repo.id);
    let commit = repo.commit();
    let known = |rev: &str| rev == "main" || rev == commit;
    if !authorized {
        return respond(&mut stream, "401 Unauthorized", &[], b"Invalid credentials", request.method == "HEAD");
    }
    if let Some(rev) = request.path.strip_prefix(&api).filter(|r| known(r)) {
        let siblings: Vec<_> = repo.files.keys().map(|f| serde_json::json!({ "rfilename": f })).collect();
        let body = serde_json::json!({ "id": repo.id, "sha": commit, "siblings": siblings, "revision": rev });
        return respond(&mut stream, "200 OK", &[], body.to_string().as_bytes(), false);
    }
    if let Some((rev, file)) = request.path.strip_prefix(&resolve).and_then(|p| p.split_once('/')) {
        if known(rev) && repo.files.contains_key(file) {
            return send_file(&mut stream, repo, &request, file);
        }
    }
    respond(&mut stream, "404 Not Found", &[("X-Error-Code", "EntryNotFound".into())], b"Entry not found", false);
}

/// Sends `file` whole or the range asked for, stopping at the cut if there is one.
fn send_file(stream: &mut TcpStream, repo: &Repo, request: &Request, file: &str) {
    let data = &repo.files[file];
    let (start, end) = range(request.range(), data.len());
    let mut headers = vec![
        ("X-Repo-Commit", repo.commit()),
        ("ETag", format!("\"{}\"", repo.etag(file))),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    let status = if request.range().is_some() {
        headers.push(("Content-Range", format!("bytes {start}-{}/{}", end - 1, data.len())));
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let cut = repo.cut.as_ref().filter(|(f, _)| f == file).map_or(end, |(_, at)| (*at).clamp(start, end));
    let head = request.method == "HEAD";
    write_head(stream, status, &headers, end - start);
    if !head {
        let _ = stream.write_all(&data[start..cut]);
    }
}

/// `[start, end)` of a `bytes=a-[b]` range over `size` bytes; the whole file without one.
fn range(header: Option<&str>, size: usize) -> (usize, usize) {
    let Some((first, last)) = header.and_then(|h| h.strip_prefix("bytes=")).and_then(|r| r.split_once('-')) else {
        return (0, size);
    };
    let start = first.parse::<usize>().unwrap_or(0).min(size);
    let end = last.parse::<usize>().map_or(size, |l| (l + 1).min(size));
    (start, end.max(start))
}

/// A complete response.
fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8], head: bool) {
    write_head(stream, status, headers, body.len());
    if !head {
        let _ = stream.write_all(body);
    }
}

/// The status line and headers, `Content-Length: length` and `Connection: close` included.
fn write_head(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], length: usize) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
}

/// The request line and headers (no request here has a body); `None` when the peer sent none.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    Some(Request { method, path, headers })
}

/// `chars` hex digits derived from `data` (FNV-1a, iterated): a stable name, not a hash to trust.
fn hex_digest(data: &[u8], chars: usize) -> String {
    let mut out = String::new();
    let mut seed = 0xcbf2_9ce4_8422_2325_u64;
    while out.len() < chars {
        let mut h = seed;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
        seed = h ^ 0x9e37_79b9_7f4a_7c15;
    }
    out.truncate(chars);
    out
}
