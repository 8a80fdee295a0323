//! A fake of OpenAI's Chat Completions API as Watchfloor's translator uses it (issue 21,
//! `crates/bridge/src/translate.rs`): `POST /v1/chat/completions` on a loopback port.
//!
//! What it checks, as the real API does:
//! - `Authorization: Bearer …` (401 `invalid_api_key` without);
//! - a JSON body (400 otherwise) with a string `model` and a non-empty `messages` array, each
//!   `{"role": "system"|"developer"|"user"|"assistant", "content": string}`; a top-level field
//!   it does not know is 400 `unknown_parameter` ("Unrecognized request argument supplied: …"),
//!   a bad role or content 400 `invalid_value` with its `param` (e.g. `messages[1].role`).
//!
//! What it answers: the last `user` message translated into English when it is a line of a
//! scenario it was given with a translation ([`crate::Scenario::translations`]); any other text
//! comes back unchanged. The answer is the real shape: `{"id": "chatcmpl-…", "object":
//! "chat.completion", "created", "model", "choices": [{"index": 0, "message": {"role":
//! "assistant", "content", "refusal": null}, "finish_reason": "stop"}], "usage": {…}}`.
//!
//! Pacing: a text model answers a one-line translation in about half a second to a second; the
//! fake waits [`TranslateFakeOptions::latency`] (default 600 ms) before each answer. Faults: the
//! first [`TranslateFakeOptions::fail_first`] requests get 500 `server_error` (retry tests), or
//! every request does with [`TranslateFakeOptions::always_fail`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct TranslateFakeOptions {
    /// Time before each answer (default 600 ms, a text model's pace for one line).
    pub latency: Duration,
    /// The first this many requests fail with 500.
    pub fail_first: u32,
    /// Every request fails with 500.
    pub always_fail: bool,
}

impl Default for TranslateFakeOptions {
    fn default() -> Self {
        TranslateFakeOptions { latency: Duration::from_millis(600), fail_first: 0, always_fail: false }
    }
}

/// One request the fake took: its JSON body (whatever it was answered).
#[derive(Debug, Clone)]
pub struct TranslateRequest {
    /// The body, or `null` when it was not JSON.
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    opts: TranslateFakeOptions,
    table: Arc<HashMap<String, String>>,
    log: Arc<Mutex<Vec<TranslateRequest>>>,
    seen: Arc<AtomicU32>,
}

/// A running fake.
pub struct TranslateFake {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<TranslateRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TranslateFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The key a line is looked up by: its words, whitespace collapsed.
fn key(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl TranslateFake {
    /// Starts on `bind` (e.g. `127.0.0.1:0`), translating the lines of `scenarios` that carry
    /// a translation.
    pub async fn start(bind: SocketAddr, scenarios: &[crate::Scenario], opts: TranslateFakeOptions) -> std::io::Result<TranslateFake> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let table: HashMap<String, String> = scenarios.iter().flat_map(|s| s.translations()).map(|(from, to)| (key(from), to.to_string())).collect();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared { opts, table: Arc::new(table), log: log.clone(), seen: Arc::default() };
        let app = axum::Router::new().route("/v1/chat/completions", post(complete)).with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TranslateFake { addr, log, task })
    }

    /// The endpoint to configure (`OPENAI_TRANSLATE_URL`).
    pub fn url(&self) -> String {
        format!("http://{}/v1/chat/completions", self.addr)
    }

    /// The requests taken so far.
    pub fn requests(&self) -> Vec<TranslateRequest> {
        self.log.lock().clone()
    }
}

/// The API's error shape.
fn error(status: StatusCode, kind: &str, code: Option<&str>, param: Option<&str>, message: &str) -> (StatusCode, String) {
    (status, json!({"error": {"message": message, "type": kind, "param": param, "code": code}}).to_string())
}

/// Fields of a chat completion request the fake knows (the translator sends the first two).
const KNOWN: &[&str] = &["model", "messages", "temperature", "max_completion_tokens", "store", "metadata", "user"];

fn check(body: &Value) -> Result<&str, (StatusCode, String)> {
    let bad = |code: &str, param: &str, message: String| error(StatusCode::BAD_REQUEST, "invalid_request_error", Some(code), Some(param), &message);
    let obj = body.as_object().ok_or_else(|| error(StatusCode::BAD_REQUEST, "invalid_request_error", None, None, "We could not parse the JSON body of your request."))?;
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad("unknown_parameter", unknown, format!("Unrecognized request argument supplied: {unknown}")));
    }
    if !obj.get("model").is_some_and(Value::is_string) {
        return Err(bad("missing_required_parameter", "model", "you must provide a model parameter".into()));
    }
    let messages = obj.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()).ok_or_else(|| bad("invalid_value", "messages", "'messages' must be a non-empty array.".into()))?;
    let mut last_user = None;
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if !["system", "developer", "user", "assistant"].contains(&role) {
            return Err(bad("invalid_value", &format!("messages[{i}].role"), format!("Invalid value: '{role}'. Supported values are: 'system', 'developer', 'user' and 'assistant'.")));
        }
        let Some(content) = m.get("content").and_then(Value::as_str) else {
            return Err(bad("invalid_type", &format!("messages[{i}].content"), "Invalid type: expected a string.".into()));
        };
        if role == "user" {
            last_user = Some(content);
        }
    }
    last_user.ok_or_else(|| bad("invalid_value", "messages", "There is no user message to answer.".into()))
}

async fn complete(State(s): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> (StatusCode, String) {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.log.lock().push(TranslateRequest { body: parsed.clone() });
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"), None, "You didn't provide an API key.");
    }
    let text = match check(&parsed) {
        Ok(t) => t.to_string(),
        Err(e) => return e,
    };
    tokio::time::sleep(s.opts.latency).await;
    let n = s.seen.fetch_add(1, Ordering::Relaxed);
    if s.opts.always_fail || n < s.opts.fail_first {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, None, "The server had an error while processing your request. Sorry about that!");
    }
    let answer = s.table.get(&key(&text)).cloned().unwrap_or(text.clone());
    let words = |t: &str| t.split_whitespace().count() as u64;
    let (prompt, completion) = (words(&text) * 2 + 60, words(&answer) * 2);
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    (
        StatusCode::OK,
        json!({
            "id": format!("chatcmpl-fake{n}"),
            "object": "chat.completion",
            "created": created,
            "model": parsed["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer, "refusal": null}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        })
        .to_string(),
    )
}
