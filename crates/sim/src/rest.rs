//! A fake of Twilio's REST API for live calls: `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`
//! with HTTP Basic auth and a form (`Twiml=…`, `Url`+`Method`, or `Status=completed`).
//! It records every request, can fail on purpose (the next N requests answer 500, or a fixed
//! 4xx), and tells a waiting caller fake when its call was redirected, so the caller ends its
//! media stream the way Twilio does when a call's TwiML is replaced.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use tokio::sync::watch;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRequest {
    /// Account in the path.
    pub account_sid: String,
    /// Call in the path.
    pub call_sid: String,
    /// Basic auth matched the fake's account and token.
    pub authorized: bool,
    /// The form fields.
    pub form: BTreeMap<String, String>,
    /// HTTP status the fake answered.
    pub answered: u16,
}

#[derive(Default)]
struct Inner {
    requests: Vec<RestRequest>,
    fail_next: u32,
    fail_status: u16,
}

#[derive(Clone)]
struct FakeState {
    inner: Arc<Mutex<Inner>>,
    account_sid: String,
    auth_token: String,
    updates: watch::Sender<Vec<RestRequest>>,
}

/// A running Twilio REST fake.
#[derive(Clone)]
pub struct RestFake {
    addr: SocketAddr,
    state: FakeState,
}

impl std::fmt::Debug for RestFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestFake").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RestFake {
    /// Starts on `bind` (use `127.0.0.1:0`), accepting `account_sid`:`auth_token`.
    pub async fn start(bind: SocketAddr, account_sid: &str, auth_token: &str) -> std::io::Result<RestFake> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (updates, _) = watch::channel(Vec::new());
        let state = FakeState { inner: Arc::default(), account_sid: account_sid.into(), auth_token: auth_token.into(), updates };
        let app = Router::new().route("/2010-04-01/Accounts/{account}/Calls/{call}", post(update_call)).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RestFake { addr, state })
    }

    /// The API base to configure (`TWILIO_API_BASE`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RestRequest> {
        self.state.inner.lock().requests.clone()
    }

    /// The next `n` requests fail with `status` (500 for retryable failures).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut i = self.state.inner.lock();
        i.fail_next = n;
        i.fail_status = status;
    }

    /// Waits until a successful update of `call_sid` arrives; returns it.
    pub async fn wait_for_update(&self, call_sid: &str) -> RestRequest {
        let mut rx = self.state.updates.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().iter().find(|r| r.call_sid == call_sid) {
                return r.clone();
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

async fn update_call(State(st): State<FakeState>, Path((account, call)): Path<(String, String)>, headers: HeaderMap, Form(form): Form<BTreeMap<String, String>>) -> impl IntoResponse {
    let call_sid = call.trim_end_matches(".json").to_string();
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", st.account_sid, st.auth_token)));
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str()) && account == st.account_sid;
    let valid = form.contains_key("Twiml") || form.contains_key("Url") || form.get("Status").is_some_and(|s| s == "completed" || s == "canceled");
    let answered = {
        let mut inner = st.inner.lock();
        let status = if !authorized {
            401
        } else if inner.fail_next > 0 {
            inner.fail_next -= 1;
            inner.fail_status
        } else if !valid {
            400
        } else {
            200
        };
        inner.requests.push(RestRequest { account_sid: account.clone(), call_sid: call_sid.clone(), authorized, form: form.clone(), answered: status });
        status
    };
    if answered == 200 {
        let req = RestRequest { account_sid: account, call_sid: call_sid.clone(), authorized, form, answered };
        st.updates.send_modify(|v| v.push(req));
        (StatusCode::OK, Json(serde_json::json!({"sid": call_sid, "status": "in-progress"})))
    } else {
        let code = StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, Json(serde_json::json!({"code": 20000 + answered as u32, "message": "fake failure", "status": answered})))
    }
}
