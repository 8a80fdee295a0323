//! Console sign-in: `POST /api/login` and `/api/logout`, the middleware every console route sits
//! behind ([`require_user`]), and the audit of refused attempts (counted, then written together).

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use watchfloor_bridge::task::unix_ms;
use watchfloor_store::NewAuditEntry;

use crate::AppState;
use crate::api::LoginBody;
use crate::auth::{SignInRefused, User};
use crate::error::ApiError;



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
    let token = bearer(req.headers()).map(str::to_string);
    match token.as_deref().and_then(|t| state.auth.check_session(t)) {
        Some(_) if token.as_deref().is_some_and(|t| state.auth.console_locked(t)) && !matches!(req.uri().path(), UNLOCK_PATH | "/api/logout") => {
            (StatusCode::LOCKED, Json(json!({"error": "the console is locked: unlock it with your password"}))).into_response()
        }
        Some((user, ended)) => {
            req.extensions_mut().insert(user);
            req.extensions_mut().insert(SessionEnded(ended));
            next.run(req).await
        }
        None => (StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer")], Json(json!({"error": "sign in: send Authorization: Bearer <token>"}))).into_response(),
    }
}

/// Where a locked console is unlocked: the one route (with sign-out) a locked token may use.
pub(crate) const UNLOCK_PATH: &str = "/api/session/unlock";

/// `POST /api/session/lock`: the console locks (no input for `session_lock_seconds`, or its
/// user locked it): until unlocked, its token is refused everywhere (423) but the unlock and the
/// sign-out; live calls and the console's open feed go on. Audited (`console.lock`).
pub(crate) async fn lock(State(state): State<AppState>, Extension(user): Extension<User>, headers: HeaderMap) -> Json<serde_json::Value> {
    if let Some(t) = bearer(&headers) {
        state.auth.lock_console(t);
    }
    audit_logon(&state, &user.name, "console.lock", "ok").await;
    Json(json!({"locked": true}))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnlockBody {
    password: String,
}

/// `POST /api/session/unlock` `{"password"}`: the user's password (or, for the console token's
/// user without one, the token) unlocks the console. 401 when wrong; failures count toward the
/// lockout of the name, and the one that locks it also ends the session. Audited
/// (`console.unlock`).
pub(crate) async fn unlock(State(state): State<AppState>, Extension(user): Extension<User>, headers: HeaderMap, b: Result<Json<UnlockBody>, JsonRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(b) = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text())))?;
    let token = bearer(&headers).unwrap_or_default().to_string();
    let right = state.auth.unlock_console(&token, &user.name, b.password).await.map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if right {
        state.auth.note_success(&user.name);
        audit_logon(&state, &user.name, "console.unlock", "ok").await;
        return Ok(Json(json!({"locked": false})));
    }
    audit_logon(&state, &user.name, "console.unlock", "denied").await;
    if state.auth.note_failure(&user.name, std::time::Instant::now()) {
        state.auth.logout(&token);
        audit_logon(&state, &user.name, "console.lockout", "locked").await;
        return Err(ApiError(StatusCode::UNAUTHORIZED, format!("signed out after {} wrong passwords", crate::auth::LOCKOUT_AFTER)));
    }
    Err(ApiError(StatusCode::UNAUTHORIZED, "wrong password".into()))
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
    counts: parking_lot::Mutex<std::collections::HashMap<(std::net::IpAddr, String), u64>>,
}

/// How often throttled sign-in attempts are written to the audit trail.
pub const THROTTLED_AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Most distinct (address, name) pairs counted between two audits; past it, the attempts of new
/// pairs are counted under the name `*`.
const THROTTLED_PAIRS: usize = 1024;

impl ThrottledSignIns {
    /// Counts one refused attempt.
    pub fn note(&self, address: std::net::IpAddr, name: &str) {
        let mut counts = self.counts.lock();
        let key = if counts.len() < THROTTLED_PAIRS || counts.contains_key(&(address, name.to_string())) { (address, name.to_string()) } else { (address, "*".to_string()) };
        *counts.entry(key).or_default() += 1;
    }

    /// The counts since the last call, emptied.
    pub fn take(&self) -> Vec<((std::net::IpAddr, String), u64)> {
        std::mem::take(&mut *self.counts.lock()).into_iter().collect()
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
/// user or password, 423 for a name locked after [`crate::auth::LOCKOUT_AFTER`] failed sign-ins
/// in a row (for [`crate::auth::LOCKOUT_FOR`]; CJIS 5.5.3; the lock is audited as
/// `console.lockout`), 429 past the attempts allowed per address or user, 503 when every
/// verification slot stays busy (each attempt audited).
pub(crate) async fn login(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, b: Result<Json<LoginBody>, JsonRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(b) = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text())))?;
    let name: String = b.user.chars().take(64).collect();
    let refused = |e: SignInRefused| ApiError(if matches!(e, SignInRefused::Busy) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::TOO_MANY_REQUESTS }, e.to_string());
    if let Err(e) = state.auth.admit_sign_in(peer.ip(), &name) {
        // Counted, and audited as one entry per address and name every few seconds
        // (`ThrottledSignIns`): a flood of refused attempts must not be a flood of writes.
        state.throttled.note(peer.ip(), &name);
        return Err(refused(e));
    }
    if let Some(left) = state.auth.locked(&name, std::time::Instant::now()) {
        audit_logon(&state, &name, "console.login", "locked").await;
        let minutes = left.as_secs().div_ceil(60);
        return Err(ApiError(StatusCode::LOCKED, format!("{name} is locked after {} failed sign-ins: try again in {minutes} min, or ask an administrator to reset the password", crate::auth::LOCKOUT_AFTER)));
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
            state.auth.note_success(&user.name);
            audit_logon(&state, &user.name, "console.login", "ok").await;
            Ok(Json(json!({"token": token.expose(), "user": user.name, "expires_in_s": crate::auth::SESSION_TTL.as_secs()})))
        }
        None => {
            audit_logon(&state, &name, "console.login", "denied").await;
            if state.auth.note_failure(&name, std::time::Instant::now()) {
                let detail = format!("{} failed sign-ins in a row: locked for {} min", crate::auth::LOCKOUT_AFTER, crate::auth::LOCKOUT_FOR.as_secs() / 60);
                let e = NewAuditEntry { at_ms: unix_ms(), user: name.clone(), action: "console.lockout".into(), target: "console".into(), outcome: "locked".into(), detail: Some(detail) };
                if let Err(e) = state.store.audit(e).await {
                    tracing::error!(error = %e, "audit of a lockout failed");
                }
                tracing::warn!(user = %name, "sign-in locked after repeated failures");
            }
            Err(ApiError(StatusCode::UNAUTHORIZED, "wrong user or password".into()))
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkBody {
    code: String,
}

/// `POST /api/login/link` `{"code"}` → `{"token","user","expires_in_s"}`: spends a one-time
/// sign-in link printed on the terminal that started the server (`watchfloor serve`); 401 when
/// the code is unknown, used or expired. Limited and audited like a password sign-in.
pub(crate) async fn login_link(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, b: Result<Json<LinkBody>, JsonRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(b) = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text())))?;
    if let Err(e) = state.auth.admit_sign_in(peer.ip(), "sign-in link") {
        state.throttled.note(peer.ip(), "sign-in link");
        return Err(ApiError(StatusCode::TOO_MANY_REQUESTS, e.to_string()));
    }
    match state.auth.redeem_sign_in_link(b.code.trim()) {
        Some((token, user)) => {
            audit_logon(&state, &user.name, "console.login_link", "ok").await;
            Ok(Json(json!({"token": token.expose(), "user": user.name, "expires_in_s": crate::auth::SESSION_TTL.as_secs()})))
        }
        None => {
            audit_logon(&state, "sign-in link", "console.login_link", "denied").await;
            Err(ApiError(StatusCode::UNAUTHORIZED, "this sign-in link is not valid (each works once, for 15 minutes)".into()))
        }
    }
}

/// `POST /api/logout`: ends the session of the token used.
pub(crate) async fn logout(State(state): State<AppState>, Extension(user): Extension<User>, headers: HeaderMap) -> Json<serde_json::Value> {
    let ended = bearer(&headers).is_some_and(|t| state.auth.logout(t));
    audit_logon(&state, &user.name, "console.logout", if ended { "ok" } else { "not_a_session" }).await;
    Json(json!({"ended": ended}))
}

