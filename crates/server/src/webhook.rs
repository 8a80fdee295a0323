//! `POST /api/webhooks/voice`: Twilio's voice webhook. It answers with TwiML that connects the
//! call's media stream (and the fallback verbs after it), and starts the call's task, so the
//! model connects while the phone rings (PROTOCOLS.md §4). It never waits on the store: what it
//! asks (answered before? the caller's recent calls) is the store's in-memory ledger.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use watchfloor_bridge::registry::{NewCall, RegistryError};
use watchfloor_bridge::task::unix_ms;
use watchfloor_wire::{signature, twiml};

use crate::AppState;
use crate::api::DAY_MS;
use crate::error::{ApiError, too_many};
use crate::media::{MEDIA_PATH, valid_sid, ws_origin};

/// The webhook path Twilio is configured to POST to.
pub const WEBHOOK_PATH: &str = "/api/webhooks/voice";

fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// The fallback verbs: what Twilio runs when the stream closes (or at once, with no model).
pub(crate) fn fallback_twiml(state: &AppState, doc: twiml::Response) -> twiml::Response {
    state.human().append_to(doc, "Please hold. Connecting you to a dispatcher.")
}

/// `POST /api/webhooks/voice`: Twilio's voice webhook (form-encoded).
pub(crate) async fn voice_webhook(
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
    let history = history_line(&state, call_sid, &from);
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

/// The line about prior calls that goes into the agent's instructions, or `None`. From the
/// store's in-memory ledger: the webhook never waits on the disk (issue 15).
pub(crate) fn history_line(state: &AppState, call_sid: &str, number: &str) -> Option<String> {
    if number.is_empty() {
        return None;
    }
    let now = unix_ms();
    let days = state.config.caller_history_days;
    let prior = state.store.ledger().caller_history(number, now.saturating_sub(days * DAY_MS), call_sid);
    let latest = prior.first()?;
    let ago_min = now.saturating_sub(latest.started_at_ms) / 60_000;
    let ago = if ago_min < 120 { format!("{ago_min} minutes ago") } else if ago_min < 48 * 60 { format!("{} hours ago", ago_min / 60) } else { format!("{} days ago", ago_min / (24 * 60)) };
    let what = latest.incident_type.as_deref().map(|t| format!(", incident type {t}")).unwrap_or_default();
    Some(format!(
        "{} prior call{} from this number in the last {days} days; the latest {ago} (status {}{what}). It may be the same emergency: ask whether this is about it.",
        prior.len(),
        if prior.len() == 1 { "" } else { "s" },
        latest.status.as_str()
    ))
}
