//! HTTP routes: the Twilio webhook, health, and the call API.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use tower_http::set_header::SetResponseHeaderLayer;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use watchfloor_bridge::registry::{NewCall, RegistryError};
use watchfloor_bridge::task::unix_ms;
use watchfloor_wire::{signature, twiml};

use crate::AppState;

/// The webhook path Twilio is configured to POST to.
pub const WEBHOOK_PATH: &str = "/api/webhooks/voice";
/// The media stream path in the TwiML.
pub const MEDIA_PATH: &str = "/ws/media";

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    // Everything for the console needs a signed-in user; Twilio's endpoints are signed instead.
    let console = Router::new()
        .route("/api/calls/active", get(active_calls))
        .route("/api/me", get(me))
        .route("/api/incident-types", get(incident_types))
        .merge(crate::review::routes())
        .merge(crate::control::routes())
        .merge(crate::supervise::routes())
        .merge(crate::live::routes())
        .merge(crate::training::routes())
        .merge(crate::settings::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::control::require_user));
    // Every API answer is JSON and never cached (issue 15: some 400/413 bodies were plain text).
    let api = Router::new()
        .route(WEBHOOK_PATH, post(voice_webhook))
        .route("/health", get(health))
        .merge(crate::control::public_routes())
        .merge(crate::live::public_routes())
        .merge(console)
        .layer(axum::middleware::map_response(json_errors))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    Router::new()
        .route(MEDIA_PATH, get(crate::media::media_stream))
        .merge(api)
        .fallback_service(console_files(&state.config.ui_dir))
        .layer(DefaultBodyLimit::max(limit))
        .layer(cors(&state.config.cors_origins))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .with_state(state)
}

/// The console's Content-Security-Policy: its own scripts and styles only (Svelte sets inline
/// styles), recordings and exports as `blob:` URLs, the live feed over WebSocket, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Turns an error answer that is not JSON (axum's own rejections: a body over the limit, a
/// wrong content type) into `{"error": "…"}` with the same status.
async fn json_errors(resp: Response) -> Response {
    let is_json = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(resp.status().is_client_error() || resp.status().is_server_error()) || is_json || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return resp;
    }
    let status = resp.status();
    let text = match axum::body::to_bytes(resp.into_body(), 4096).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    (status, Json(json!({"error": text}))).into_response()
}

/// CORS for exactly the configured origins (the desktop app's webview); none by default.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// The console (ui/dist): files as they are, and `index.html` for any other path (the console
/// routes itself). Without a built console, a page that says how to build it.
fn console_files(dir: &std::path::Path) -> axum::routing::MethodRouter {
    let index = dir.join("index.html");
    if index.exists() {
        let serve = tower_http::services::ServeDir::new(dir).fallback(tower_http::services::ServeFile::new(index));
        axum::routing::get_service(serve)
    } else {
        let msg = format!("The console is not built (no {}). Run scripts/run, or `npm ci && npm run build` in ui/.", index.display());
        axum::routing::get(move || async move { (StatusCode::NOT_FOUND, msg) })
    }
}

/// `GET /api/me`: the signed-in user.
async fn me(axum::Extension(user): axum::Extension<crate::auth::User>) -> Json<serde_json::Value> {
    Json(json!({"user": user.name, "line": user.line.is_some()}))
}

/// `GET /api/incident-types`: the APCO incident types the dispatch rules know (code, words,
/// discipline, default priority).
async fn incident_types() -> Json<serde_json::Value> {
    let list: Vec<_> = watchfloor_dispatch::types::KNOWN_TYPES
        .iter()
        .map(|t| json!({"code": t.code, "text": t.text, "discipline": t.discipline, "priority": t.priority}))
        .collect();
    Json(serde_json::Value::Array(list))
}

/// An API error: status and a JSON body that says what was wrong.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// The fallback verbs: what Twilio runs when the stream closes (or at once, with no model).
pub(crate) fn fallback_twiml(state: &AppState, doc: twiml::Response) -> twiml::Response {
    state.human().append_to(doc, "Please hold. Connecting you to a dispatcher.")
}

/// `POST /api/webhooks/voice`: Twilio's voice webhook (form-encoded).
async fn voice_webhook(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let received = std::time::Instant::now();
    let received_unix_ms = unix_ms();
    let params: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(p) => p,
        Err(e) => {
            state.webhook_limiter.check_key(&peer.ip()).map_err(|_| too_many())?;
            return Err(ApiError(StatusCode::BAD_REQUEST, format!("form body: {e}")));
        }
    };
    // The signature first: the per-address limit is for what fails it (or for everything when
    // signatures are off), so junk from an address that real webhooks share (a TLS proxy)
    // cannot crowd them out (issue 15).
    match &state.config.twilio_auth_token {
        Some(token) => {
            let url = format!("{}{WEBHOOK_PATH}", state.public_origin);
            let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !signature::verify(token.expose(), &url, &params, sig) {
                state.webhook_limiter.check_key(&peer.ip()).map_err(|_| too_many())?;
                tracing::warn!(%peer, "webhook with a missing or wrong X-Twilio-Signature refused");
                return Err(ApiError(StatusCode::FORBIDDEN, "invalid X-Twilio-Signature".into()));
            }
        }
        None => state.webhook_limiter.check_key(&peer.ip()).map_err(|_| too_many())?,
    }
    let p: HashMap<&str, &str> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let call_sid = p.get("CallSid").copied().unwrap_or("");
    if !valid_sid(call_sid, "CA") {
        return Err(ApiError(StatusCode::BAD_REQUEST, "CallSid is missing or malformed".into()));
    }
    // A CallSid's webhook is answered once: a replay (of a live, an ended or a purged call)
    // must not reopen its record or start a second model session (issue 15). The ledger is in
    // memory: the webhook never waits on the disk.
    if !state.store.ledger().first_answer(call_sid) {
        tracing::warn!(%peer, %call_sid, "voice webhook for a CallSid already answered refused");
        return Err(ApiError(StatusCode::CONFLICT, format!("the webhook of {call_sid} was already answered")));
    }
    let from = p.get("From").copied().unwrap_or("").to_string();
    let to = p.get("To").copied().unwrap_or("").to_string();
    let simulated = p.get("Simulated").is_some_and(|v| *v == "true");
    let span = tracing::info_span!("call", call_sid = %call_sid);
    let _enter = span.enter();
    // Caller numbers only at debug level (issue 15): INFO logs are kept and shipped more widely.
    tracing::info!(simulated, "voice webhook");
    tracing::debug!(%from, %to, "voice webhook numbers");

    if state.config.openai_api_key.is_none() && !(simulated && state.training.is_some()) {
        tracing::warn!("no model configured: call sent straight to the human line");
        crate::media::record_direct_fallback(&state, call_sid, &from, &to, simulated, received_unix_ms, "no_model_configured");
        return Ok(twiml_response(fallback_twiml(&state, twiml::Response::new()).to_xml()));
    }
    let history = crate::review::history_line(&state, call_sid, &from);
    if state.calls.len() >= state.config.max_calls {
        // Over capacity: the caller goes to a human at once, never to silence.
        tracing::error!(max = state.config.max_calls, "at the concurrent call limit: call sent to the human line");
        crate::media::record_direct_fallback(&state, call_sid, &from, &to, simulated, received_unix_ms, "over_capacity");
        return Ok(twiml_response(fallback_twiml(&state, twiml::Response::new()).to_xml()));
    }
    let call = NewCall { call_sid: call_sid.to_string(), from: from.clone(), to: to.clone(), simulated, received, received_unix_ms, history };
    let stream_token = match state.calls.start_call(call) {
        Ok(t) => t,
        Err(e @ (RegistryError::AlreadyLive(_) | RegistryError::NotAwaitingStream(_))) => {
            // The ledger above makes this unreachable in one process; never a second session.
            tracing::warn!(error = %e, "voice webhook for a live call refused");
            return Err(ApiError(StatusCode::CONFLICT, e.to_string()));
        }
        Err(RegistryError::ShuttingDown) => {
            return Ok(twiml_response(fallback_twiml(&state, twiml::Response::new()).to_xml()));
        }
    };
    let stream_url = format!("{}{MEDIA_PATH}", ws_origin(&state.public_origin));
    // The stream token: only a `start` carrying it takes the call (`CallRegistry::claim`).
    let mut params = vec![("callId".to_string(), call_sid.to_string()), ("from".to_string(), from), ("to".to_string(), to), ("streamToken".to_string(), stream_token)];
    if simulated {
        params.push(("simulated".into(), "true".into()));
    }
    let doc = fallback_twiml(&state, twiml::Response::new().connect_stream(stream_url, params));
    Ok(twiml_response(doc.to_xml()))
}

fn too_many() -> ApiError {
    ApiError(StatusCode::TOO_MANY_REQUESTS, "too many requests".into())
}

/// `https://h` → `wss://h`, `http://h` → `ws://h`.
pub(crate) fn ws_origin(origin: &str) -> String {
    if let Some(rest) = origin.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = origin.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        origin.to_string()
    }
}

/// A Twilio SID: two-letter prefix and 32 hex digits.
pub(crate) fn valid_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /health`.
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "model_configured": state.config.openai_api_key.is_some(),
        "human_line_configured": state.human().number.is_some(),
        "signatures_checked": state.config.twilio_auth_token.is_some(),
        "live_calls": state.calls.len(),
    }))
}

/// `GET /api/calls/active`: live calls, oldest first.
async fn active_calls(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "calls": state.calls.active() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_and_origins() {
        assert!(valid_sid("CA0123456789abcdef0123456789abcdef", "CA"));
        assert!(!valid_sid("CA0123", "CA"));
        assert!(!valid_sid("MZ0123456789abcdef0123456789abcdef", "CA"));
        assert!(!valid_sid("CA0123456789abcdef0123456789abcdeg", "CA"));
        assert_eq!(ws_origin("https://h.example"), "wss://h.example");
        assert_eq!(ws_origin("http://127.0.0.1:1"), "ws://127.0.0.1:1");
    }
}
