//! `GET /ws/media`: Twilio's bidirectional media stream. The handler reads until `start`, then
//! hands the socket to the call's task (which already has the model connected if the webhook
//! came first). From then on only that task reads or writes the socket.

use std::net::SocketAddr;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use axum::body::Bytes;
use watchfloor_bridge::task::{SinkError, TwilioFrame, TwilioSocket, Utf8Bytes};
use watchfloor_bridge::{CallEvent, CallEventKind, CallStatus};
use watchfloor_wire::signature;
use watchfloor_wire::twilio::TwilioInbound;

use crate::AppState;

pub(crate) async fn media_stream(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if let Some(token) = &state.config.twilio_auth_token {
        let url = format!("{}{MEDIA_PATH}", ws_origin(&state.public_origin));
        let sig = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !signature::verify(token.expose(), &url, &[], sig) {
            tracing::warn!(%peer, "media stream upgrade with a missing or wrong X-Twilio-Signature refused");
            return (StatusCode::FORBIDDEN, "invalid X-Twilio-Signature").into_response();
        }
    }
    let max = state.config.max_ws_message_bytes;
    ws.max_message_size(max).max_frame_size(max).read_buffer_size(watchfloor_bridge::model::MEDIA_READ_BUFFER_BYTES).on_upgrade(move |socket| handle_socket(state, socket, peer))
}

fn to_frame(msg: Result<Message, axum::Error>) -> TwilioFrame {
    match msg {
        // The text as read, no copy (axum's and tungstenite's text types share the bytes; the
        // check is a UTF-8 scan that cannot fail on what axum already checked).
        Ok(Message::Text(t)) => match Utf8Bytes::try_from(Bytes::from(t)) {
            Ok(t) => TwilioFrame::Text(t),
            Err(_) => TwilioFrame::Binary(0),
        },
        Ok(Message::Binary(b)) => TwilioFrame::Binary(b.len()),
        Ok(Message::Ping(_) | Message::Pong(_)) => TwilioFrame::Text(Utf8Bytes::from_static("")),
        Ok(Message::Close(_)) => TwilioFrame::Closed,
        Err(e) => {
            tracing::warn!(error = %e, "media stream read failed");
            TwilioFrame::Closed
        }
    }
}

async fn handle_socket(state: AppState, socket: WebSocket, peer: SocketAddr) {
    let (sink, stream) = socket.split();
    // Pings need no answer from us (axum answers them); they are filtered here.
    let mut rx = Box::pin(stream.map(to_frame).filter(|f| std::future::ready(!matches!(f, TwilioFrame::Text(t) if t.is_empty()))));
    let tx = Box::pin(sink.sink_map_err(|e| Box::new(e) as SinkError).with(|text: Bytes| std::future::ready(axum::extract::ws::Utf8Bytes::try_from(text).map(Message::Text).map_err(|e| Box::new(e) as SinkError))));

    // Read `connected` and `start`, by a deadline from the upgrade (issue 15: a stream sending
    // junk once a second stayed open forever when each message restarted the timeout).
    let start_timeout = state.config.stream_start_timeout;
    let deadline = tokio::time::Instant::now() + start_timeout;
    let mut already_read = Vec::new();
    let start = loop {
        let frame = match tokio::time::timeout_at(deadline, rx.next()).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(_) => {
                tracing::warn!(%peer, "media stream sent no start within {start_timeout:?} of its upgrade; closing");
                return;
            }
        };
        match frame {
            TwilioFrame::Text(text) => match TwilioInbound::parse(text.as_str()) {
                Ok(msg @ TwilioInbound::Connected { .. }) => already_read.push(msg),
                Ok(TwilioInbound::Start { stream_sid, start, sequence_number }) => {
                    let msg = TwilioInbound::Start { stream_sid, start: start.clone(), sequence_number };
                    already_read.push(msg);
                    break start;
                }
                Ok(TwilioInbound::Stop { stop, .. }) => {
                    tracing::warn!(%peer, call_sid = %stop.call_sid, "media stream stopped before start");
                    // Only a call still waiting for its stream can be ended this way (a `stop`
                    // carries no stream token: it must not end a call that is under way).
                    if state.calls.awaiting_stream(&stop.call_sid)
                        && let Some(handle) = state.calls.handle(&stop.call_sid) {
                        let _ = handle.send(watchfloor_bridge::Command::StreamStoppedBeforeStart).await;
                    }
                    return;
                }
                // At debug: a stream sending junk must not flood the log (it is closed at its deadline).
                Ok(other) => tracing::debug!(%peer, event = other.event_name(), "media stream message before start skipped"),
                Err(e) => tracing::debug!(%peer, error = %e, "malformed media stream message before start skipped"),
            },
            TwilioFrame::Binary(n) => tracing::debug!(%peer, bytes = n, "binary frame before start skipped"),
            TwilioFrame::Closed => return,
        }
    };
    if !valid_sid(&start.call_sid, "CA") {
        tracing::warn!(%peer, "start with a malformed callSid; closing");
        return;
    }
    let socket = TwilioSocket { rx, tx, already_read };
    // Only a call whose webhook this server answered, still waiting for its stream, takes it.
    let token = start.custom_parameters.get("streamToken").map(String::as_str);
    if let Err(e) = state.calls.claim(&start.call_sid, token, socket) {
        // The socket is dropped (closed): for a real call, Twilio runs the fallback verbs.
        tracing::warn!(%peer, call_sid = %start.call_sid, error = %e, "media stream refused");
    }
}

/// Records a call that went straight to the human line without an AI agent.
pub(crate) fn record_direct_fallback(state: &AppState, call_sid: &str, from: &str, to: &str, simulated: bool, at_ms: u64, reason: &str) {
    let hub = state.calls.hub();
    let kinds = [
        CallEventKind::CallCreated { from: from.into(), to: to.into(), simulated },
        CallEventKind::StatusChanged { status: CallStatus::Fallback },
        CallEventKind::CallEnded { reason: reason.into() },
    ];
    for (seq, kind) in kinds.into_iter().enumerate() {
        hub.publish(CallEvent { call_sid: call_sid.into(), seq: seq as u64, at_ms, kind });
    }
}

/// The media stream path in the TwiML.
pub const MEDIA_PATH: &str = "/ws/media";

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
