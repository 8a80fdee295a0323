//! A premise-history endpoint (issue 21's shipped tool example): what a centre's records system
//! knows about an address — prior incidents, hazards, notes for responders — answered to an
//! agent profile's `premise_history` tool (`crates/bridge/src/tools.rs` gives the request).
//!
//! `POST /premise-history` with `{"call_sid", "call_id", "tool", "arguments": {"address": …}}`
//! → `{"address", "prior_incidents": [{"date", "type", "note"}], "hazards": […]}`, or an empty
//! history for an address it does not know. With a shared secret, a request whose
//! `X-Watchfloor-Signature` does not verify is 401. [`PremiseOptions::hang`] makes it take
//! requests and never answer (a tool endpoint that hangs). Every request is logged for tests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The tool's name and schema as a profile declares it (the example in README and the tests).
pub fn tool_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {"address": {"type": "string", "description": "The street address of the emergency, as the caller gave it"}},
        "required": ["address"]
    })
}

/// How the endpoint behaves.
#[derive(Debug, Clone, Default)]
pub struct PremiseOptions {
    /// The shared secret requests must be signed with (none: any request is taken).
    pub secret: Option<String>,
    /// Take requests and never answer.
    pub hang: bool,
}

/// One request the endpoint took.
#[derive(Debug, Clone)]
pub struct PremiseRequest {
    /// The JSON body.
    pub body: Value,
    /// Its signature verified (always false without a secret).
    pub signed: bool,
}

#[derive(Clone)]
struct Shared {
    opts: PremiseOptions,
    log: Arc<Mutex<Vec<PremiseRequest>>>,
}

/// A running endpoint.
pub struct PremiseFake {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<PremiseRequest>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl PremiseFake {
    /// Starts on `bind` (e.g. `127.0.0.1:0`).
    pub async fn start(bind: SocketAddr, opts: PremiseOptions) -> std::io::Result<PremiseFake> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().route("/premise-history", post(answer)).with_state(Shared { opts, log: log.clone() });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PremiseFake { addr, log, _task: task })
    }

    /// The tool URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/premise-history", self.addr)
    }

    /// The requests taken so far.
    pub fn requests(&self) -> Vec<PremiseRequest> {
        self.log.lock().clone()
    }
}

/// What the records system knows, by normalised address.
fn history(address: &str) -> Value {
    let key: String = address.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || *c == ' ').collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ");
    if key.contains("4521 willow creek") {
        json!({
            "address": "4521 Willow Creek Drive",
            "prior_incidents": [{"date": "2026-03-14", "type": "FSTRU", "note": "kitchen fire, extinguished before arrival"}],
            "hazards": ["oxygen tanks in the garage (home medical use)"],
        })
    } else if key.contains("45 elm") {
        json!({
            "address": "45 Elm Road",
            "prior_incidents": [{"date": "2025-11-02", "type": "CARDIAC", "note": "resident with a known heart condition"}],
            "hazards": [],
        })
    } else {
        json!({"address": address, "prior_incidents": [], "hazards": []})
    }
}

async fn answer(State(s): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> (StatusCode, String) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let signed = s.opts.secret.as_ref().is_some_and(|secret| {
        let ts = headers.get("x-watchfloor-timestamp").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        let sig = headers.get("x-watchfloor-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
        watchfloor_wire::tool_signature::verify(secret.as_bytes(), ts, &body, sig, now)
    });
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.log.lock().push(PremiseRequest { body: parsed.clone(), signed });
    if s.opts.secret.is_some() && !signed {
        return (StatusCode::UNAUTHORIZED, json!({"error": "bad signature"}).to_string());
    }
    if s.opts.hang {
        std::future::pending::<()>().await;
    }
    let address = parsed["arguments"]["address"].as_str().unwrap_or("");
    (StatusCode::OK, history(address).to_string())
}
