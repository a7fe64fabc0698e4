//! An in-process HTTP/1.1 server that follows the public OpenAI and Anthropic API references:
//! chat completions, files (multipart upload, content download), batches (create, retrieve,
//! output and error files) and Anthropic messages, with their status codes, JSON shapes
//! (`usage` included) and error bodies. Faults can be queued per route, and the server can be
//! stopped and started again on the same port. The completion endpoints are in `mock_chat.rs`,
//! file and batch endpoints in `mock_batch.rs`.
#![allow(dead_code)]

use atgen_lab::labeller::llm::{LlmLabellerConfig, Provider};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::mock_batch::{create_batch, get_batch, list_batches, upload};
use super::mock_chat::{chat, messages};

/// Which endpoint a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Chat,
    Messages,
    BatchGet,
    /// `POST /v1/files`.
    Files,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 with `Retry-After: secs`.
    RateLimit(f64),
    /// 500 (OpenAI) or 529 overloaded (Anthropic).
    ServerError,
    /// Wait this long before answering normally.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// 200 with an empty completion (and usage).
    Empty,
    /// 401 whatever the key.
    Unauthorized,
    /// 400 with an HTML page that echoes the request's authorization header, placed so the
    /// key straddles the 300th character (where error bodies are cut), as a misconfigured
    /// proxy might.
    EchoHeaders,
    /// 200 with a refusal, billed: OpenAI's `message.refusal` with `content: null`, Anthropic's
    /// `stop_reason: "refusal"` with no text.
    Refusal,
    /// 200 with a JSON object of the request's headers (authorization first) and no `id`, as an
    /// echo service or a debugging proxy at a wrong `base_url` answers. Files route only.
    EchoHeadersJson,
    /// 200 with a completion whose `message.content` is an object of the request's headers,
    /// not text; on the messages route, a text block of them stopped as a refusal.
    EchoHeadersAsContent,
}

/// What the mock says when it refuses.
pub const REFUSAL: &str = "I'm sorry, I can't help with that.";

/// A chat turn as the server received it.
pub type Turn = (String, String);
pub type Responder = Arc<dyn Fn(&[Turn]) -> String + Send + Sync>;
/// Changes a successful reply body before it is sent (a chat completion, a batch line's body,
/// an Anthropic message): to drop `usage`, or report cached tokens, as some servers do.
pub type ReplyEditor = Arc<dyn Fn(&mut Value) + Send + Sync>;

#[derive(Clone)]
pub struct Options {
    pub api_key: String,
    pub model: String,
    /// GET /v1/batches/{id} calls before a batch completes.
    pub batch_polls: usize,
    /// Batch lines whose last user turn contains this go to the error file.
    pub batch_fail_marker: Option<String>,
    /// Batch lines whose last user turn contains this are refused (billed, `message.refusal`).
    pub batch_refusal_marker: Option<String>,
    /// The model's context, in characters of the prompt's turns: a longer request is refused
    /// with 400 `context_length_exceeded`, as OpenAI refuses one.
    pub context_chars: Option<usize>,
    pub responder: Responder,
    /// Applied to every successful reply body; none by default.
    pub edit_reply: Option<ReplyEditor>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            api_key: "sk-test-secret-0123456789".into(),
            model: "mock-model".into(),
            batch_polls: 2,
            batch_fail_marker: None,
            batch_refusal_marker: None,
            context_chars: None,
            responder: Arc::new(|turns: &[Turn]| subject_reply(&last_user(turns))),
            edit_reply: None,
        }
    }
}

/// Subject replies to the first `usable` requests, empty completions (billed all the same)
/// from then on.
pub fn usable_then_empty(usable: usize) -> Responder {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move |turns: &[Turn]| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= usable {
            String::new()
        } else {
            subject_reply(&last_user(turns))
        }
    })
}

/// The default reply: reasoning, then `re: <first four words>` of the input, then more text.
pub fn subject_reply(input: &str) -> String {
    format!(
        "<think>Read it first.</think>\n{}\nA second line.",
        expected_label(input)
    )
}

/// The label a run should keep from [`subject_reply`].
pub fn expected_label(input: &str) -> String {
    let words: Vec<&str> = input.split_whitespace().take(4).collect();
    format!("re: {}", words.join(" ").to_lowercase())
}

pub fn last_user(turns: &[Turn]) -> String {
    turns
        .iter()
        .rev()
        .find(|(r, _)| r == "user")
        .map(|(_, c)| c.clone())
        .unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A completion the server answered with success (and billed), and the usage it reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    pub input: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub batch: bool,
    /// An empty completion: billed like any (providers charge for the tokens, reasoning
    /// included), though the client cannot use it.
    pub empty: bool,
    /// A refusal: billed, but no label.
    pub refused: bool,
}

impl Served {
    /// What this completion cost at `(input, output)` dollars per million tokens.
    pub fn price(&self, (per_input_mtok, per_output_mtok): (f64, f64)) -> f64 {
        (self.input_tokens as f64 * per_input_mtok + self.output_tokens as f64 * per_output_mtok)
            / 1e6
    }

    /// What this completion cost at the live prices of `cfg`.
    pub fn cost_under(&self, cfg: &LlmLabellerConfig) -> f64 {
        cfg.prices().cost(self.input_tokens, self.output_tokens)
    }
}

/// The one paid completion of `input` among `served` (the test fails if there are more).
pub fn served_for<'a>(served: &'a [Served], input: &str) -> &'a Served {
    let found: Vec<&Served> = served.iter().filter(|s| s.input == input).collect();
    assert_eq!(found.len(), 1, "one paid completion for {input:?}");
    found[0]
}

pub(super) struct Batch {
    pub(super) object: Value,
    pub(super) polls: usize,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) faults: HashMap<Route, VecDeque<Fault>>,
    pub(super) requests: Vec<Recorded>,
    pub(super) served: Vec<Served>,
    pub(super) files: HashMap<String, String>,
    pub(super) batches: HashMap<String, Batch>,
    pub(super) next_id: u64,
}

pub struct MockServer {
    pub port: u16,
    options: Options,
    state: Arc<Mutex<State>>,
    running: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl MockServer {
    pub fn start(options: Options) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().unwrap().port();
        let mut s = MockServer {
            port,
            options,
            state: Arc::default(),
            running: Arc::new(AtomicBool::new(false)),
            accept: None,
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: TcpListener) {
        self.running.store(true, Ordering::SeqCst);
        let (state, running, options) = (
            self.state.clone(),
            self.running.clone(),
            self.options.clone(),
        );
        self.accept = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !running.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (state, options) = (state.clone(), options.clone());
                std::thread::spawn(move || handle(stream, &state, &options));
            }
        }));
    }

    /// Stop accepting connections: clients get "connection refused" until [`MockServer::restart`].
    pub fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            h.join().unwrap();
        }
    }

    /// Listen again on the same port (state such as batches and files is kept).
    pub fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the same port");
        self.serve(listener);
    }

    /// A labeller config for this server as an OpenAI-compatible one, its key put in the
    /// environment variable `var`, the label cache in `cache`.
    pub fn openai_config(&self, var: &str, cache: &Path) -> LlmLabellerConfig {
        std::env::set_var(var, &self.options.api_key);
        super::config(Provider::Custom, &self.base_url(), "mock-model", var, cache)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Without the version, as Anthropic's base URL is written.
    pub fn host_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn inject(&self, route: Route, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(route)
            .or_default()
            .push_back(fault);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    pub fn served(&self) -> Vec<Served> {
        self.state.lock().unwrap().served.clone()
    }

    pub fn file(&self, id: &str) -> Option<String> {
        self.state.lock().unwrap().files.get(id).cloned()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop();
        }
    }
}

pub(super) struct Response {
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) headers: Vec<(String, String)>,
}

/// `body` as [`Options::edit_reply`] changes it.
pub(super) fn edited(o: &Options, mut body: Value) -> Value {
    if let Some(edit) = &o.edit_reply {
        edit(&mut body);
    }
    body
}

pub(super) fn json_response(status: u16, body: Value) -> Response {
    Response {
        status,
        body: body.to_string(),
        headers: vec![],
    }
}

/// OpenAI's error body.
pub(super) fn openai_error(status: u16, message: &str, kind: &str, code: &str) -> Response {
    json_response(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// Anthropic's error body.
fn handle(mut stream: TcpStream, state: &Mutex<State>, options: &Options) {
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    state.lock().unwrap().requests.push(req.clone());
    let resp = route(&req, state, options);
    let reason = match resp.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(resp.body.as_bytes());
    let _ = stream.flush();
}

fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn route(req: &Recorded, state: &Mutex<State>, o: &Options) -> Response {
    let path = req.path.as_str();
    if req.method == "POST" && path == "/v1/messages" {
        return messages(req, state, o);
    }
    let bearer = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(o.api_key.as_str()) {
        let shown = bearer.unwrap_or("");
        return openai_error(
            401,
            &format!("Incorrect API key provided: {shown}. You can find your API key in your account settings."),
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    match (req.method.as_str(), path) {
        ("POST", "/v1/chat/completions") => chat(req, state, o),
        ("POST", "/v1/files") => match take_fault(state, Route::Files) {
            Some(Fault::EchoHeadersJson) => {
                let mut headers = serde_json::Map::new();
                for (k, v) in &req.headers {
                    headers.insert(k.clone(), json!(v));
                }
                let auth = req.header("authorization").unwrap_or("");
                json_response(200, json!({"Authorization": auth, "headers": headers}))
            }
            _ => upload(req, state),
        },
        ("POST", "/v1/batches") => create_batch(req, state),
        ("GET", p) if p.starts_with("/v1/batches?") => list_batches(state),
        ("GET", p) if p.starts_with("/v1/batches/") => {
            get_batch(&p["/v1/batches/".len()..], state, o)
        }
        ("GET", p) if p.starts_with("/v1/files/") && p.ends_with("/content") => {
            let id = &p["/v1/files/".len()..p.len() - "/content".len()];
            match state.lock().unwrap().files.get(id) {
                Some(c) => Response {
                    status: 200,
                    body: c.clone(),
                    headers: vec![],
                },
                None => openai_error(
                    404,
                    &format!("No such File object: {id}"),
                    "invalid_request_error",
                    "file_not_found",
                ),
            }
        }
        _ => openai_error(
            404,
            &format!("Unknown request URL: {} {path}", req.method),
            "invalid_request_error",
            "unknown_url",
        ),
    }
}

pub(super) fn take_fault(state: &Mutex<State>, route: Route) -> Option<Fault> {
    state.lock().unwrap().faults.get_mut(&route)?.pop_front()
}

/// A server that answers every request with `status` and `Location: {to}{path}`, and
/// records what it received (to check what a client sent it). Runs until the test ends.
pub fn redirector(status: u16, to: String) -> (u16, Arc<Mutex<Vec<Recorded>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(req) = read_request(&mut stream) else {
                continue;
            };
            let head = format!(
                "HTTP/1.1 {status} Redirect\r\nLocation: {to}{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                req.path
            );
            log.lock().unwrap().push(req);
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.flush();
        }
    });
    (port, seen)
}
