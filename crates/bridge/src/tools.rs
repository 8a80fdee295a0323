//! Function tools of an agent profile (issue 21): besides the built-in `report_incident`, a
//! profile may give the model tools that the server answers by calling an HTTP endpoint of the
//! centre's (a premise-history lookup, a callback-number lookup).
//!
//! The request: `POST <url>` with the JSON body
//! `{"call_sid": "CA…", "call_id": "call_…", "tool": "<name>", "arguments": {…}}` (the model's
//! arguments parsed, or the raw string when they are not JSON), and, when a shared secret is
//! configured (`WATCHFLOOR_TOOL_SECRET`), the headers `X-Watchfloor-Timestamp: <unix seconds>`
//! and `X-Watchfloor-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, so the
//! endpoint can refuse forged and replayed requests ([`watchfloor_wire::tool_signature`]).
//!
//! The answer must be a 2xx with a JSON body of at most `max_response_bytes`; it goes back to
//! the model as the `function_call_output` as it is. Each try is cut off at `timeout_ms`;
//! network errors, timeouts, 429 and 5xx are tried again `retries` times with exponential
//! backoff (from 100 ms). Whatever fails, the model gets
//! `{"status": "error", "error": "<why>"}` and the call goes on.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};

/// A function tool and the endpoint that answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// The function's name the model calls (letters, digits, `_`, `-`; 1–64), not
    /// `report_incident`.
    pub name: String,
    /// What the tool is for, read by the model (1–1024 characters).
    pub description: String,
    /// JSON schema of the arguments (an object schema).
    #[ts(type = "Record<string, unknown>")]
    pub parameters: serde_json::Value,
    /// The endpoint, `http://` or `https://`.
    pub url: String,
    /// Longest wait for one try, ms (100–10 000; default 2000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Tries after the first on a network error, a timeout, 429 or 5xx (0–3; default 1).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Largest answer taken, bytes (1–1 048 576; default 16 384); a longer one is an error.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u32,
}

fn default_timeout_ms() -> u32 {
    2000
}
fn default_retries() -> u32 {
    1
}
fn default_max_response_bytes() -> u32 {
    16 * 1024
}

impl ToolConfig {
    /// The tool as `session.update` declares it.
    pub fn declaration(&self) -> watchfloor_wire::realtime::Tool {
        watchfloor_wire::realtime::Tool { kind: "function".into(), name: self.name.clone(), description: self.description.clone(), parameters: self.parameters.clone() }
    }

    /// What is wrong with this tool, each with its field (`name`, `url`, …).
    pub fn problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        let name_ok = (1..=64).contains(&self.name.len()) && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            v.push("name must be 1–64 letters, digits, _ or -".into());
        } else if self.name == watchfloor_dispatch::report::TOOL_NAME {
            v.push(format!("name {} is the built-in tool's", self.name));
        }
        if self.description.trim().is_empty() || self.description.chars().count() > 1024 {
            v.push("description must be 1–1024 characters".into());
        }
        if self.parameters.get("type").and_then(|t| t.as_str()) != Some("object") {
            v.push("parameters must be a JSON schema with \"type\": \"object\"".into());
        }
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.username().is_empty() && u.password().is_none() => {}
            _ => v.push("url must be an http:// or https:// address without credentials".into()),
        }
        if !(100..=10_000).contains(&self.timeout_ms) {
            v.push("timeout_ms must be 100–10000".into());
        }
        if self.retries > 3 {
            v.push("retries must be 0–3".into());
        }
        if !(1..=1_048_576).contains(&self.max_response_bytes) {
            v.push("max_response_bytes must be 1–1048576".into());
        }
        v
    }
}

/// Calls tools' endpoints: one HTTP client for every call, and the shared secret.
#[derive(Clone, Default)]
pub struct ToolClient {
    http: reqwest::Client,
    secret: Option<crate::model::Secret>,
}

impl std::fmt::Debug for ToolClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolClient").field("signed", &self.secret.is_some()).finish()
    }
}

/// What one tool call came to.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// The answer (JSON) for the model, or why there is none.
    pub result: Result<String, String>,
    /// Tries made.
    pub attempts: u32,
    /// From the first try to the outcome, ms.
    pub elapsed_ms: u64,
}

enum Attempt {
    Retry(String),
    Fatal(String),
}

impl ToolClient {
    /// A client signing with `secret` (none: unsigned requests).
    pub fn new(secret: Option<crate::model::Secret>) -> ToolClient {
        ToolClient { http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default(), secret }
    }

    /// Calls `tool` for the model's call `call_id` on call `call_sid` with its `arguments`
    /// (see the module docs); never fails: an error is the outcome's `result`.
    pub async fn call(&self, tool: &crate::tools::ToolConfig, call_sid: &str, call_id: &str, arguments: &str) -> ToolOutcome {
        let started = Instant::now();
        let args: serde_json::Value = serde_json::from_str(arguments).unwrap_or_else(|_| serde_json::Value::String(arguments.to_string()));
        let body = serde_json::json!({"call_sid": call_sid, "call_id": call_id, "tool": tool.name, "arguments": args}).to_string();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let once = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut req = self.http.post(&tool.url).timeout(Duration::from_millis(tool.timeout_ms as u64)).header("content-type", "application/json").body(body.clone());
            if let Some(secret) = &self.secret {
                let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                req = req.header("x-watchfloor-timestamp", ts.to_string()).header("x-watchfloor-signature", watchfloor_wire::tool_signature::compute(secret.expose().as_bytes(), ts, body.as_bytes()));
            }
            let mut resp = req.send().await.map_err(|e| Attempt::Retry(if e.is_timeout() { format!("no answer within {} ms", tool.timeout_ms) } else { format!("unreachable: {}", e.without_url()) }))?;
            let status = resp.status().as_u16();
            if status == 429 || status >= 500 {
                return Err(Attempt::Retry(format!("HTTP {status}")));
            }
            if !resp.status().is_success() {
                return Err(Attempt::Fatal(format!("HTTP {status}")));
            }
            let limit = tool.max_response_bytes as usize;
            let mut got = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if got.len() + chunk.len() > limit {
                            return Err(Attempt::Fatal(format!("the answer is longer than {limit} bytes")));
                        }
                        got.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(e) => return Err(Attempt::Retry(if e.is_timeout() { format!("no answer within {} ms", tool.timeout_ms) } else { format!("the answer broke off: {}", e.without_url()) })),
                }
            }
            match serde_json::from_slice::<serde_json::Value>(&got) {
                Ok(v) => Ok(v.to_string()),
                Err(_) => Err(Attempt::Fatal("the answer is not JSON".into())),
            }
        };
        let backoff = ExponentialBuilder::default().with_min_delay(Duration::from_millis(100)).with_factor(2.0).with_max_times(tool.retries as usize);
        let result = once.retry(backoff).when(|e| matches!(e, Attempt::Retry(_))).notify(|e, after| {
            if let Attempt::Retry(why) = e {
                tracing::warn!(tool = %tool.name, %why, retry_in = ?after, "tool endpoint failed; trying again");
            }
        }).await;
        let attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
        let result = result.map_err(|e| {
            let why = match e {
                Attempt::Retry(w) | Attempt::Fatal(w) => w,
            };
            let tries = if attempts == 1 { "1 try".to_string() } else { format!("{attempts} tries") };
            format!("the {} tool failed: {why} ({tries})", tool.name)
        });
        ToolOutcome { result, attempts, elapsed_ms: started.elapsed().as_millis() as u64 }
    }
}

/// The `function_call_output` of a failed tool call: the model is told, and goes on.
pub fn error_output(why: &str) -> String {
    serde_json::json!({"status": "error", "error": why}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool() -> ToolConfig {
        ToolConfig {
            name: "premise_history".into(),
            description: "Past incidents and hazards at an address".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"address": {"type": "string"}}, "required": ["address"]}),
            url: "http://127.0.0.1:9/premise".into(),
            timeout_ms: 2000,
            retries: 1,
            max_response_bytes: 16384,
        }
    }

    #[test]
    fn a_tool_is_checked_field_by_field() {
        assert!(tool().problems().is_empty(), "{:?}", tool().problems());
        let bad = ToolConfig { name: "report_incident".into(), url: "ftp://x".into(), timeout_ms: 50, retries: 9, parameters: serde_json::json!({"type": "string"}), ..tool() };
        let p = bad.problems().join("; ");
        for field in ["built-in", "url", "timeout_ms", "retries", "parameters"] {
            assert!(p.contains(field), "{field}: {p}");
        }
        assert!(!ToolConfig { url: "http://user:pw@host/x".into(), ..tool() }.problems().is_empty(), "no credentials in the URL");
    }

}
