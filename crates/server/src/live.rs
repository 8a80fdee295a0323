//! The live feed: `GET /api/live`, a WebSocket per console.
//!
//! - Sign-in: `Authorization: Bearer <token>` on the upgrade, or `?ticket=` from
//!   `POST /api/live/ticket` (single use, 30 s: browsers cannot set headers on a WebSocket).
//! - On connect a `snapshot` of every live call ([`LiveCall`]), then each `CallEvent` as an
//!   `event` message (a console skips events at or below a call's `last_seq`).
//! - Flow control: the console acknowledges the text messages it has processed
//!   (`{"type":"ack","received":N}`, counting from 1 on this connection). With more than
//!   [`MAX_UNACKED`] unacknowledged, the feed stops sending events (they are dropped, nothing is
//!   queued); once the console catches up it gets a fresh snapshot (`reason: "resync"`). A
//!   console too slow to drain its broadcast receiver (it lagged) is resynchronised the same way.
//!   A slow console never slows a call and never grows a queue.
//! - Listen-in: `{"type":"listen","call_sid":…,"tracks":["caller","agent"]}` starts binary
//!   audio frames of that call (`watchfloor_bridge::live::encode_audio_frame`) as the bridge
//!   relays them; `{"type":"stop_listening"}` stops them. Frames a slow console cannot take
//!   are dropped, never queued.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use watchfloor_bridge::jitter::VoiceMsg;
use watchfloor_bridge::live::{ConsoleMessage, LiveMessage, decode_voice_frame, encode_audio_frame};
use watchfloor_bridge::task::unix_ms;
use watchfloor_bridge::{AudioFrame, CallEventKind, Track};

use crate::AppState;
use crate::auth::User;
use crate::audit::audit;

/// Text messages a console may leave unacknowledged before events stop (and a resync follows),
/// by default (`live_max_unacked` in the configuration).
pub const MAX_UNACKED: u64 = 512;
/// A console whose socket takes longer than this to accept one message is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a console may send, bytes.
const MAX_CONSOLE_MESSAGE: usize = 4096;



/// `POST /api/live/ticket` → `{"ticket","expires_in_s"}`.
pub(crate) async fn ticket(State(state): State<AppState>, Extension(user): Extension<User>, Extension(session): Extension<crate::session::SessionEnded>) -> Json<serde_json::Value> {
    let t = state.auth.issue_ticket(&user, &session.0);
    Json(json!({"ticket": t.expose(), "expires_in_s": crate::auth::TICKET_TTL.as_secs()}))
}

/// `GET /api/live` (WebSocket upgrade).
pub(crate) async fn live(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>, ws: WebSocketUpgrade) -> Response {
    // A token in the header goes through what the ticket route checks: not a locked console,
    // and the supervisor role (the feed carries live calls and their listen-in).
    let header = crate::session::bearer(&headers);
    if header.is_some_and(|t| state.auth.console_locked(t)) {
        return (StatusCode::LOCKED, Json(json!({"error": "the console is locked: unlock it with your password"}))).into_response();
    }
    let by_header = header.and_then(|t| state.auth.check_session(t));
    let Some((user, session_ended)) = by_header.or_else(|| q.get("ticket").and_then(|t| state.auth.redeem_ticket(t))) else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "sign in: a ticket from POST /api/live/ticket, or Authorization: Bearer <token>"}))).into_response();
    };
    if !user.has(crate::auth::Role::Supervisor) {
        return (StatusCode::FORBIDDEN, Json(json!({"error": "GET /api/live needs the supervisor role"}))).into_response();
    }
    audit(&state, &user, "live.connect", "console", "ok", None, false).await;
    ws.max_message_size(MAX_CONSOLE_MESSAGE).max_frame_size(MAX_CONSOLE_MESSAGE).read_buffer_size(watchfloor_bridge::model::READ_BUFFER_BYTES).on_upgrade(move |socket| async move {
        let name = user.name.clone();
        if let Err(e) = run_console(&state, &user, socket, session_ended).await {
            tracing::info!(user = %name, error = %e, "console feed ended");
        }
    })
}

fn snapshot(state: &AppState, reason: &str) -> String {
    let msg = LiveMessage::Snapshot { reason: reason.into(), server_time_ms: unix_ms(), calls: state.calls.live_calls() };
    // Invariant: plain data serialises.
    serde_json::to_string(&msg).expect("snapshot serialises")
}

fn message(msg: &LiveMessage) -> String {
    // Invariant: plain data serialises.
    serde_json::to_string(msg).expect("live message serialises")
}

#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("socket: {0}")]
    Socket(#[from] axum::Error),
    #[error("the console did not take a message within {0:?}")]
    Timeout(Duration),
}

struct Feed {
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    /// Text messages sent on this connection.
    sent: u64,
}

impl Feed {
    async fn send(&mut self, msg: Message) -> Result<(), FeedError> {
        if matches!(msg, Message::Text(_)) {
            self.sent += 1;
        }
        tokio::time::timeout(SEND_TIMEOUT, self.sink.send(msg)).await.map_err(|_| FeedError::Timeout(SEND_TIMEOUT))??;
        Ok(())
    }

    async fn text(&mut self, s: String) -> Result<(), FeedError> {
        self.send(Message::Text(Utf8Bytes::from(s))).await
    }
}

/// Listen-in of one call.
struct Listen {
    call_sid: String,
    tracks: Vec<Track>,
    rx: tokio::sync::broadcast::Receiver<AudioFrame>,
}

async fn next_audio(listen: &mut Option<Listen>) -> Result<AudioFrame, RecvError> {
    match listen {
        Some(l) => l.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs one console's feed until it closes, the server shuts down, or the sign-in that opened it
/// ends (`session_ended`: sign-out closes the feed with 1008, listen-in included).
async fn run_console(state: &AppState, user: &User, socket: WebSocket, session_ended: tokio_util::sync::CancellationToken) -> Result<(), FeedError> {
    let (sink, mut stream) = socket.split();
    let mut feed = Feed { sink, sent: 0 };
    let hub = state.calls.hub();
    let mut events = hub.subscribe();
    feed.text(snapshot(state, "connect")).await?;
    let mut acked: u64 = 0;
    let max_unacked = state.config.live_max_unacked;
    // Events are being dropped until the console catches up; then a resync.
    let mut stalled = false;
    let mut listen: Option<Listen> = None;
    // Where this console's voice frames go (a call whose voice the user holds).
    let mut talk: Option<(String, tokio::sync::mpsc::Sender<VoiceMsg>)> = None;
    // Calls whose voice this console keeps (it talked or sent keepalives): told when it is lost.
    // Dropped on every way out of this function (a socket error included), which tells them.
    let mut kept = KeptVoices { calls: HashMap::new(), user: user.name.clone() };
    let mut voice_dropped: u64 = 0;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = session_ended.cancelled() => {
                tracing::info!(user = %user.name, "signed out: console feed closed");
                let _ = feed.sink.send(Message::Close(Some(axum::extract::ws::CloseFrame { code: 1008, reason: "signed out".into() }))).await;
                break;
            }
            ev = events.recv() => match ev {
                Ok(ev) => {
                    // The voice handed back, taken by another, or the call ended: this console's
                    // frames stop going to the call.
                    if let Some((sid, _)) = &talk
                        && *ev.call_sid == **sid
                        && match &ev.kind {
                            CallEventKind::ModeChanged { mode, by } => *mode == watchfloor_bridge::CallMode::Ai || *by != user.name,
                            CallEventKind::CallEnded { .. } => true,
                            _ => false,
                        }
                    {
                        let call_sid = sid.clone();
                        talk = None;
                        feed.text(message(&LiveMessage::TalkStopped { call_sid })).await?;
                    }
                    if let Some(l) = &listen
                        && *ev.call_sid == *l.call_sid && matches!(ev.kind, CallEventKind::CallEnded { .. }) {
                            let sid = l.call_sid.clone();
                            listen = None;
                            feed.text(message(&LiveMessage::ListenStopped { call_sid: sid })).await?;
                        }
                    if feed.sent.saturating_sub(acked) > max_unacked {
                        if !stalled {
                            tracing::info!(user = %user.name, unacked = feed.sent - acked, "console is behind: events paused until it catches up");
                        }
                        stalled = true;
                        continue;
                    }
                    // The event is serialised once, as is, inside the envelope.
                    // Invariant: a CallEvent is plain data and serialises.
                    let body = serde_json::to_string(&*ev).expect("event serialises");
                    feed.text(format!("{{\"type\":\"event\",\"event\":{body}}}")).await?;
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::info!(user = %user.name, missed = n, "console lagged: resync");
                    events = hub.subscribe();
                    stalled = true;
                    if feed.sent.saturating_sub(acked) <= max_unacked / 2 {
                        stalled = false;
                        feed.text(snapshot(state, "resync")).await?;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            frame = next_audio(&mut listen) => match frame {
                Ok(f) => {
                    if let Some(l) = &listen
                        && *f.call_sid == *l.call_sid && l.tracks.contains(&f.track) {
                            feed.send(Message::Binary(encode_audio_frame(&f.call_sid, f.track, f.stream_ms, &f.audio).into())).await?;
                        }
                }
                Err(RecvError::Lagged(n)) => tracing::debug!(missed = n, "listen-in lagged: audio frames dropped"),
                Err(RecvError::Closed) => listen = None,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ConsoleMessage>(t.as_str()) {
                    Ok(ConsoleMessage::Ack { received }) => {
                        acked = received.min(feed.sent).max(acked);
                        if stalled && feed.sent.saturating_sub(acked) <= max_unacked / 2 {
                            stalled = false;
                            // Newer events than the snapshot come after it; older ones are skipped by seq.
                            events = hub.subscribe();
                            feed.text(snapshot(state, "resync")).await?;
                        }
                    }
                    Ok(ConsoleMessage::Listen { call_sid, tracks }) => {
                        let tracks: Vec<Track> = tracks.into_iter().filter(|t| matches!(t, Track::Caller | Track::Agent | Track::Dispatch)).collect();
                        if state.calls.handle(&call_sid).is_none() {
                            feed.text(message(&LiveMessage::Error { message: format!("call {call_sid} is not live") })).await?;
                        } else if tracks.is_empty() {
                            feed.text(message(&LiveMessage::Error { message: "tracks must name caller, agent or both".into() })).await?;
                        } else {
                            audit(state, user, "call.listen", &call_sid, "ok", Some(format!("{tracks:?}")), false).await;
                            listen = Some(Listen { call_sid: call_sid.clone(), tracks: tracks.clone(), rx: hub.subscribe_audio() });
                            feed.text(message(&LiveMessage::Listening { call_sid, tracks })).await?;
                        }
                    }
                    Ok(ConsoleMessage::Talk { call_sid }) => {
                        let holder = state.calls.voice_holder(&call_sid).flatten();
                        match (holder, state.calls.voice(&call_sid)) {
                            (Some(h), Some(tx)) if h == user.name => {
                                audit(state, user, "voice.talk", &call_sid, "ok", None, false).await;
                                kept.calls.insert(call_sid.clone(), tx.clone());
                                talk = Some((call_sid.clone(), tx));
                                feed.text(message(&LiveMessage::Talking { call_sid })).await?;
                            }
                            (Some(h), Some(_)) => feed.text(message(&LiveMessage::Error { message: format!("the voice of call {call_sid} is held by {h}") })).await?,
                            (None, Some(_)) => feed.text(message(&LiveMessage::Error { message: format!("take the voice of call {call_sid} first") })).await?,
                            (_, None) => feed.text(message(&LiveMessage::Error { message: format!("call {call_sid} is not live") })).await?,
                        }
                    }
                    Ok(ConsoleMessage::VoiceKeepalive { call_sid }) => {
                        let holds = state.calls.voice_holder(&call_sid).flatten().is_some_and(|h| h == user.name);
                        match state.calls.voice(&call_sid).filter(|_| holds) {
                            Some(tx) => {
                                // A full queue is frames on their way: alive either way.
                                let _ = tx.try_send(VoiceMsg::Keepalive);
                                kept.calls.insert(call_sid, tx);
                            }
                            None => feed.text(message(&LiveMessage::Error { message: format!("you do not hold the voice of call {call_sid}") })).await?,
                        }
                    }
                    Ok(ConsoleMessage::StopTalking) => {
                        if let Some((sid, _)) = talk.take() {
                            feed.text(message(&LiveMessage::TalkStopped { call_sid: sid })).await?;
                        }
                    }
                    Ok(ConsoleMessage::StopListening) => {
                        if let Some(l) = listen.take() {
                            feed.text(message(&LiveMessage::ListenStopped { call_sid: l.call_sid })).await?;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "console message not understood");
                        feed.text(message(&LiveMessage::Error { message: format!("message not understood: {e}") })).await?;
                    }
                },
                Some(Ok(Message::Binary(b))) => match (&talk, decode_voice_frame(&b)) {
                    (Some((sid, tx)), Some((frame_sid, position_ms, audio))) if *sid == frame_sid => {
                        let frame = watchfloor_bridge::jitter::VoiceFrame { position_ms, audio: b.slice(b.len() - audio.len()..) };
                        match tx.try_send(VoiceMsg::Frame(frame)) {
                            Ok(()) => {}
                            // The call's task is behind: this frame is lost (silence), never waited for.
                            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                                voice_dropped += 1;
                                if voice_dropped.is_power_of_two() {
                                    tracing::warn!(user = %user.name, dropped = voice_dropped, "voice frames dropped: the call's task is behind");
                                }
                            }
                            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                                talk = None;
                                feed.text(message(&LiveMessage::TalkStopped { call_sid: frame_sid })).await?;
                            }
                        }
                    }
                    (None, Some(_)) => feed.text(message(&LiveMessage::Error { message: "send talk first".into() })).await?,
                    _ => feed.text(message(&LiveMessage::Error { message: "binary messages are voice frames ('S', 20 ms) of the call you talk to".into() })).await?,
                },
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(FeedError::Socket(e)),
            },
        }
    }
    let _ = feed.sink.close().await;
    Ok(())
}

/// The calls whose voice a console keeps (it talked or sent keepalives). When the console's
/// feed ends — closed, signed out, or failed — each is told at once (its task hands the call
/// back to the agent or to the human line, by setting) rather than after the 3 s without a sign
/// of life; a queue full of frames drops the word, and the 3 s deadline still stands.
struct KeptVoices {
    calls: HashMap<String, tokio::sync::mpsc::Sender<VoiceMsg>>,
    user: String,
}

impl Drop for KeptVoices {
    fn drop(&mut self) {
        for (sid, tx) in &self.calls {
            tracing::warn!(user = %self.user, call_sid = %sid, "the console keeping this call's voice is gone");
            let _ = tx.try_send(VoiceMsg::Lost { user: self.user.clone() });
        }
    }
}
