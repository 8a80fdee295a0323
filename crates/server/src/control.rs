//! Console sign-in and the supervisor's hand-offs of a live call: take over (to the supervisor's
//! own line), transfer (to a chosen line), hang up. Hand-offs go through Twilio REST (the same
//! path as the fallback); each is audited with who, what, when and the outcome, and becomes a
//! `HandedOff` event of the call.

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;
use watchfloor_bridge::{Command, HandOffAction};
use watchfloor_bridge::task::unix_ms;
use watchfloor_bridge::twilio_rest::CallUpdate;
use watchfloor_store::NewAuditEntry;

use crate::AppState;
use crate::api::{LoginBody, TransferBody};
use crate::auth::{SignInRefused, User};
use crate::review::audited_action;
use crate::routes::ApiError;

pub(crate) fn public_routes() -> Router<AppState> {
    Router::new().route("/api/login", post(login))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/logout", post(logout))
        .route("/api/calls/{id}/takeover", post(takeover))
        .route("/api/calls/{id}/transfer", post(transfer))
        .route("/api/calls/{id}/hangup", post(hangup))
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive,
/// RFC 9110 §11.1).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Middleware: the request must carry `Authorization: Bearer <token>` of a console user; the
/// user is put in the request's extensions for the handlers (and the audit trail).
pub(crate) async fn require_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match bearer(req.headers()).and_then(|t| state.auth.check_session(t)) {
        Some((user, ended)) => {
            req.extensions_mut().insert(user);
            req.extensions_mut().insert(SessionEnded(ended));
            next.run(req).await
        }
        None => (StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer")], Json(json!({"error": "sign in: send Authorization: Bearer <token>"}))).into_response(),
    }
}

/// Cancelled when the sign-in a request came with ends (sign-out): a live feed it opens closes.
#[derive(Clone)]
pub(crate) struct SessionEnded(pub(crate) tokio_util::sync::CancellationToken);


/// Sign-in attempts refused before any password check (over the per-address or per-user
/// budget), counted per address and name and audited together by [`audit_throttled`]: one entry
/// per address and name every [`THROTTLED_AUDIT_EVERY`] however many attempts came (issue 15: a
/// 5-minute flood of 95 000 attempts, one audit entry each, grew sled by over 100 MiB of memory).
#[derive(Default)]
pub struct ThrottledSignIns {
    counts: std::sync::Mutex<std::collections::HashMap<(std::net::IpAddr, String), u64>>,
}

/// How often throttled sign-in attempts are written to the audit trail.
pub const THROTTLED_AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Most distinct (address, name) pairs counted between two audits; past it, the attempts of new
/// pairs are counted under the name `*`.
const THROTTLED_PAIRS: usize = 1024;

impl ThrottledSignIns {
    /// Counts one refused attempt.
    pub fn note(&self, address: std::net::IpAddr, name: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = if counts.len() < THROTTLED_PAIRS || counts.contains_key(&(address, name.to_string())) { (address, name.to_string()) } else { (address, "*".to_string()) };
        *counts.entry(key).or_default() += 1;
    }

    /// The counts since the last call, emptied.
    pub fn take(&self) -> Vec<((std::net::IpAddr, String), u64)> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect()
    }
}

/// Writes the throttled sign-in attempts counted since the last time, one audit entry per
/// address and name (`console.login`, outcome `throttled`, the count and address in the
/// detail), every [`THROTTLED_AUDIT_EVERY`] and once more at shutdown.
pub(crate) async fn audit_throttled(state: AppState, cancel: tokio_util::sync::CancellationToken) {
    loop {
        let stop = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = tokio::time::sleep(THROTTLED_AUDIT_EVERY) => false,
        };
        state.auth.forget_idle_budgets();
        for ((address, name), n) in state.throttled.take() {
            let detail = Some(format!("{n} attempts from {address} refused before a password check"));
            let e = NewAuditEntry { at_ms: unix_ms(), user: name, action: "console.login".into(), target: "console".into(), outcome: "throttled".into(), detail };
            if let Err(e) = state.store.audit_unflushed(e) {
                tracing::error!(error = %e, "audit of throttled sign-ins failed");
            }
        }
        if stop {
            return;
        }
    }
}

/// Audits a sign-in or sign-out. A session opened or ended is flushed before the answer; a
/// refused attempt is written without waiting for the disk (sled's own flush, every 500 ms,
/// makes it durable): a flood of refused attempts must not become a flood of flushes (issue 15:
/// a 5-minute sign-in flood with a flush per attempt grew the store by 1.2 GB and the server by
/// 500 MiB).
async fn audit_logon(state: &AppState, user: &str, action: &str, outcome: &str) {
    let e = NewAuditEntry { at_ms: unix_ms(), user: user.into(), action: action.into(), target: "console".into(), outcome: outcome.into(), detail: None };
    let r = if outcome == "ok" { state.store.audit(e).await.map(|_| ()) } else { state.store.audit_unflushed(e).map(|_| ()) };
    if let Err(e) = r {
        tracing::error!(error = %e, "audit of a logon failed");
    }
}

/// `POST /api/login` `{"user","password"}` → `{"token","user","expires_in_s"}`; 401 for a wrong
/// user or password, 429 past the attempts allowed per address or user, 503 when every
/// verification slot stays busy (each attempt audited).
async fn login(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, b: Result<Json<LoginBody>, JsonRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(b) = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text())))?;
    let name: String = b.user.chars().take(64).collect();
    let refused = |e: SignInRefused| ApiError(if matches!(e, SignInRefused::Busy) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::TOO_MANY_REQUESTS }, e.to_string());
    if let Err(e) = state.auth.admit_sign_in(peer.ip(), &name) {
        // Counted, and audited as one entry per address and name every few seconds
        // (`ThrottledSignIns`): a flood of refused attempts must not be a flood of writes.
        state.throttled.note(peer.ip(), &name);
        return Err(refused(e));
    }
    // argon2 verification is CPU-heavy: on the verifier threads, a few at a time.
    let result = match state.auth.sign_in(&name, b.password).await {
        Ok(r) => r,
        Err(e) => {
            audit_logon(&state, &name, "console.login", "busy").await;
            return Err(refused(e));
        }
    };
    match result {
        Some((token, user)) => {
            audit_logon(&state, &user.name, "console.login", "ok").await;
            Ok(Json(json!({"token": token.expose(), "user": user.name, "expires_in_s": crate::auth::SESSION_TTL.as_secs()})))
        }
        None => {
            audit_logon(&state, &name, "console.login", "denied").await;
            Err(ApiError(StatusCode::UNAUTHORIZED, "wrong user or password".into()))
        }
    }
}

/// `POST /api/logout`: ends the session of the token used.
async fn logout(State(state): State<AppState>, Extension(user): Extension<User>, headers: HeaderMap) -> Json<serde_json::Value> {
    let ended = bearer(&headers).is_some_and(|t| state.auth.logout(t));
    audit_logon(&state, &user.name, "console.logout", if ended { "ok" } else { "not_a_session" }).await;
    Json(json!({"ended": ended}))
}

fn valid_number(n: &str) -> Result<String, ApiError> {
    crate::api::valid_number(n).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))
}

/// Carries out a hand-off: REST update, then the call's AI side ends with a `HandedOff` event.
async fn hand_off(state: &AppState, user: &User, id: &str, action: HandOffAction, to: Option<String>) -> Result<watchfloor_store::CallRecord, ApiError> {
    let handle = state.calls.handle(id).ok_or_else(|| match state.store.get_call(id) {
        Ok(Some(_)) => ApiError(StatusCode::CONFLICT, format!("call {id} is not live")),
        _ => ApiError(StatusCode::NOT_FOUND, format!("no call {id}")),
    })?;
    let rest = state.config.twilio_rest().ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "Twilio REST is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)".into()))?;
    let update = match &to {
        Some(line) => CallUpdate::Twiml(watchfloor_wire::twiml::Response::new().say("Please hold. Connecting you now.").dial(line.clone())),
        None => CallUpdate::Hangup,
    };
    let pending = Command::HandOffPending { action, to: to.clone(), by: user.name.clone() };
    if !matches!(handle.send_and_wait(pending).await, Ok(Ok(()))) {
        return Err(ApiError(StatusCode::CONFLICT, format!("call {id} is not live")));
    }
    if let Err(e) = rest.update_call(id, &update).await {
        let _ = handle.send(Command::HandOffFailed).await;
        return Err(ApiError(StatusCode::BAD_GATEWAY, e.to_string()));
    }
    let _ = handle.send_and_wait(Command::HandedOff { action, to, by: user.name.clone() }).await;
    state.calls.hub().barrier().await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    state.store.get_call(id).ok().flatten().ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {id}")))
}

/// `POST /api/calls/{id}/takeover`: the call goes to the signed-in supervisor's own line.
async fn takeover(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = match user.line.clone() {
        Some(line) => hand_off(&state, &user, &id, HandOffAction::Takeover, Some(line)).await,
        None => Err(ApiError(StatusCode::CONFLICT, format!("user {} has no line configured ([[users]] line)", user.name))),
    };
    let detail = format!("to {}", user.line.as_deref().unwrap_or("-"));
    audited_action(&state, &user, "call.takeover", &id, detail, r).await
}

/// `POST /api/calls/{id}/transfer` `{"to": "+15550001234"}`.
async fn transfer(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<TransferBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let to = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text()))).and_then(|Json(b)| valid_number(&b.to));
    let detail = format!("to {}", to.as_deref().unwrap_or("-"));
    let r = match to {
        Ok(to) => hand_off(&state, &user, &id, HandOffAction::Transfer, Some(to)).await,
        Err(e) => Err(e),
    };
    audited_action(&state, &user, "call.transfer", &id, detail, r).await
}

/// `POST /api/calls/{id}/hangup`: ends the call.
async fn hangup(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = hand_off(&state, &user, &id, HandOffAction::Hangup, None).await;
    audited_action(&state, &user, "call.hangup", &id, String::new(), r).await
}
