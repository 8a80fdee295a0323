//! The async task of one call: owns the Twilio socket and the model socket, feeds the
//! [`CallMachine`], and carries out its outputs. Nothing else writes to either socket.

use std::collections::VecDeque;
use std::future::pending;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;
/// Text of a WebSocket frame, checked UTF-8 (what [`TwilioFrame::Text`] carries).
pub use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use watchfloor_wire::realtime::{AudioDeltaRef, ClientEvent, ServerEvent};
use watchfloor_wire::twilio::{MarkRef, MediaRef, TwilioInbound};

use watchfloor_call::{CallEventKind, CallFold, CallStatus, FallbackRoute, Hub};
use crate::flood::{FloodGuard, StreamLimits};
use crate::machine::{CallMachine, Input, Output, Timers};
use watchfloor_dispatch::call::{IncidentAnswer, IncidentRequest, RosterAnswer, RosterRequest};
use crate::twilio_rest::{CallUpdate, HumanLine, RestError, TwilioRest};
use crate::model::{self, ModelConfig, ModelSocket};
use crate::profile::{AgentProfile, CallContext};
use crate::registry::CommandMsg;

/// A frame read from the Twilio WebSocket, independent of the server framework.
#[derive(Debug)]
pub enum TwilioFrame {
    /// A text frame (every Twilio message), as the socket read it (no copy).
    Text(Utf8Bytes),
    /// A binary frame (Twilio never sends these): its size in bytes.
    Binary(usize),
    /// The socket closed or failed.
    Closed,
}

/// Error type of the Twilio sink.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// The media-stream socket of one call, handed from the HTTP server to the call's task.
pub struct TwilioSocket {
    /// Frames from Twilio.
    pub rx: Pin<Box<dyn Stream<Item = TwilioFrame> + Send>>,
    /// Text frames to Twilio (each a message's JSON text, UTF-8); `close()` closes the WebSocket.
    pub tx: Pin<Box<dyn Sink<Bytes, Error = SinkError> + Send>>,
    /// Messages the server already read before handing over (`connected`, `start`).
    pub already_read: Vec<TwilioInbound>,
}

/// Everything a call's task needs to start.
pub struct CallSetup {
    /// CallSid.
    pub call_sid: Arc<str>,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Placed by the simulator.
    pub simulated: bool,
    /// When the webhook (or stream) arrived.
    pub received: Instant,
    /// Same, ms since the Unix epoch.
    pub received_unix_ms: u64,
    /// Agent profile.
    pub profile: Arc<AgentProfile>,
    /// Model to connect to.
    pub model: Arc<ModelConfig>,
    /// How long to wait for the media stream.
    pub claim_window: Duration,
    /// Caller history line for the agent's instructions.
    pub history: Option<String>,
    /// Where the caller goes when the AI cannot go on.
    pub fallback: Arc<Fallback>,
    /// Stall and session timers.
    pub timers: Timers,
    /// What the media stream may send before its input is dropped ([`crate::flood`]).
    pub stream_limits: StreamLimits,
    /// The dispatch policy.
    pub policy: watchfloor_dispatch::policy::Policy,
    /// What a lost voice holder means for the call.
    pub voice_loss: crate::machine::VoiceLossAction,
    /// The unit roster.
    pub roster: crate::SharedRoster,
    /// The incident list (issue 18): the call's own events keep its incident up to date.
    pub incidents: crate::SharedIncidents,
    /// Calls the profile's tools' endpoints (issue 21).
    pub tools: crate::tools::ToolClient,
    /// Translates lines not in the centre's language (issue 21); none: no translations.
    pub translation: Option<crate::translate::Translation>,
}

/// A profile's tool being called: its `call_id`, name and outcome when it answers.
type ToolFuture = Pin<Box<dyn std::future::Future<Output = (String, String, crate::tools::ToolOutcome)> + Send>>;

/// A line being translated: the event that says how it went, when it has.
type TranslationFuture = Pin<Box<dyn std::future::Future<Output = CallEventKind> + Send>>;

/// The translation of a final line in another language than the centre's, when `ev` is one
/// and translation is on: a [`CallEventKind::TranscriptTranslated`], or a `model_error` of
/// type `translation` saying why there is none.
fn translate_line(translation: Option<&crate::translate::Translation>, ev: &watchfloor_call::CallEvent) -> Option<TranslationFuture> {
    let tr = translation?;
    let CallEventKind::TranscriptFinal { item_id, text, language: Some(from), .. } = &ev.kind else { return None };
    if *from == tr.into || text.trim().is_empty() {
        return None;
    }
    let (translator, item_id) = (tr.translator.clone(), item_id.clone());
    let request = crate::translate::TranslationRequest { text: text.clone(), from: from.clone(), to: tr.into.clone() };
    Some(Box::pin(async move {
        let (from, to) = (request.from.clone(), request.to.clone());
        match translator.translate(request).await {
            Ok(text) => CallEventKind::TranscriptTranslated { item_id, translation: watchfloor_call::LineTranslation { from, to, text, model: translator.model().to_string() } },
            Err(e) => {
                tracing::warn!(error = %e, %item_id, "a line was not translated");
                CallEventKind::ModelError { error_type: "translation".into(), code: Some("translation_failed".into()), message: format!("line {item_id} ({from}) has no {to} translation: {e}") }
            }
        }
    }))
}

/// How long translations still under way at a call's end are waited for (their events are
/// appended to the ended call's record as they come).
pub const TRANSLATION_DRAIN: Duration = Duration::from_secs(30);

/// How a call reaches a human when the AI cannot go on.
#[derive(Debug, Clone, Default)]
pub struct Fallback {
    /// Twilio REST, when an account SID and auth token are configured.
    pub rest: Option<TwilioRest>,
    /// The human line.
    pub human_line: HumanLine,
}

/// Current wall-clock time, ms since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn next_twilio(sock: &mut Option<TwilioSocket>) -> TwilioFrame {
    match sock {
        Some(s) => s.rx.next().await.unwrap_or(TwilioFrame::Closed),
        None => pending().await,
    }
}

async fn next_model(sock: &mut Option<ModelSocket>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match sock {
        Some(s) => s.next().await,
        None => pending().await,
    }
}

/// The outcome of a supervisor command: `Err` with the reason it was refused.
type CommandResult = Result<(), crate::machine::Refusal>;

/// How long a reconnect may take before the caller goes to a human.
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Caller audio held for the model while its socket opens or reopens, ms. The first connect may
/// take up to the connect timeout (3 s by default) and a reconnect up to [`RECONNECT_TIMEOUT`];
/// Twilio may deliver the audio of a stall (up to the stream's audio burst, 10 s) on top. Past
/// this, the oldest held audio is dropped and the drop is on the timeline.
pub const BACKLOG_AUDIO_MS: u64 = 30_000;

type ConnectFuture = Pin<Box<dyn std::future::Future<Output = Result<ModelSocket, model::ConnectError>> + Send>>;

fn connect_future(cfg: Arc<ModelConfig>, timeout: Option<Duration>) -> ConnectFuture {
    Box::pin(async move {
        match timeout {
            Some(t) => {
                let cfg = ModelConfig { connect_timeout: t.min(cfg.connect_timeout), ..(*cfg).clone() };
                model::connect(&cfg).await
            }
            None => model::connect(&cfg).await,
        }
    })
}

async fn next_connect(c: &mut Option<ConnectFuture>) -> Result<ModelSocket, model::ConnectError> {
    match c {
        Some(f) => f.await,
        None => pending().await,
    }
}

/// Hands the caller to the human line: Twilio REST redirect first (retried), else close the
/// stream so Twilio runs the verbs after `</Connect>`. Returns `(via, attempts, rest_error)`.
async fn hand_to_human(fallback: &Fallback, call_sid: &str) -> (FallbackRoute, u32, Option<String>) {
    let Some(rest) = &fallback.rest else {
        return (FallbackRoute::StreamClose, 0, Some(RestError::NotConfigured.to_string()));
    };
    let doc = fallback.human_line.append_to(watchfloor_wire::twiml::Response::new(), "Please hold. Connecting you to a dispatcher now.");
    match rest.update_call(call_sid, &CallUpdate::Twiml(doc)).await {
        Ok(o) => (FallbackRoute::Rest, o.attempts, None),
        Err(e) => {
            tracing::error!(error = %e, "Twilio REST fallback failed: closing the stream instead");
            (FallbackRoute::StreamClose, e.attempts(), Some(e.to_string()))
        }
    }
}

type HandOffFuture = Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Carries out a supervisor's hand-off ([`Output::HandOff`]) through Twilio REST: a redirect
/// to `to` with a short announcement, or a hang-up.
fn hand_off_future(rest: Option<TwilioRest>, call_sid: Arc<str>, to: Option<String>) -> HandOffFuture {
    Box::pin(async move {
        let Some(rest) = rest else { return Err(RestError::NotConfigured.to_string()) };
        let update = match to {
            Some(line) => CallUpdate::Twiml(watchfloor_wire::twiml::Response::new().say("Please hold. Connecting you now.").dial(line)),
            None => CallUpdate::Hangup,
        };
        rest.update_call(&call_sid, &update).await.map(|_| ()).map_err(|e| e.to_string())
    })
}

async fn next_hand_off(h: &mut Option<HandOffFuture>) -> Result<(), String> {
    match h {
        Some(f) => f.await,
        None => pending().await,
    }
}

/// Runs one call to its end. Never panics on remote input; returns when the call is over for
/// the bridge (both sockets closed).
pub async fn run_call(
    setup: CallSetup,
    mut claim_rx: oneshot::Receiver<TwilioSocket>,
    mut commands: mpsc::Receiver<CommandMsg>,
    mut voice: mpsc::Receiver<crate::jitter::VoiceMsg>,
    hub: Hub,
    cancel: CancellationToken,
    live: Arc<Mutex<CallFold>>,
) {
    let mut machine = CallMachine::new(
        setup.call_sid.clone(),
        setup.profile.clone(),
        CallContext { caller_number: setup.from.clone(), history: setup.history.clone() },
        setup.to.clone(),
        setup.simulated,
        setup.received,
        setup.received_unix_ms,
    )
    .with_timers(setup.timers)
    .with_clock_limit(crate::machine::ClockLimit { rate: setup.stream_limits.audio_rate, burst_ms: setup.stream_limits.audio_burst_ms as u64 })
    .with_policy(setup.policy)
    .with_voice_loss(setup.voice_loss)
    .with_roster(setup.roster.snapshot());
    let mut roster_rx = setup.roster.subscribe();
    let mut incidents_rx = setup.incidents.subscribe();
    let mut twilio: Option<TwilioSocket> = None;
    let mut model_sock: Option<ModelSocket> = None;
    // A model socket being opened: the first, a reconnect, or a renewal.
    let mut connecting: Option<ConnectFuture> = Some(connect_future(setup.model.clone(), None));
    let mut first_connect = true;
    let mut renewing = false;
    let mut awaiting_claim = true;
    let claim_deadline = tokio::time::sleep(setup.claim_window);
    tokio::pin!(claim_deadline);
    // The machine's next deadline (`poll_timeout`), re-armed only when it moves.
    let mut armed = machine.poll_timeout();
    let timeout = tokio::time::sleep_until(armed.unwrap_or_else(Instant::now).into());
    tokio::pin!(timeout);
    let mut commands_open = true;
    let mut pending_ack: Option<(oneshot::Sender<CommandResult>, CommandResult)> = None;
    // A supervisor's hand-off at Twilio REST, and the command waiting for its outcome.
    let mut handing_off: Option<HandOffFuture> = None;
    // The profile's tools being called for the model (several may run at once).
    let mut tool_calls: futures_util::stream::FuturesUnordered<ToolFuture> = futures_util::stream::FuturesUnordered::new();
    let mut hand_off_ack: Option<oneshot::Sender<CommandResult>> = None;
    // Lines being translated for the supervisor (issue 21), beside the call.
    let mut translations: futures_util::stream::FuturesUnordered<TranslationFuture> = futures_util::stream::FuturesUnordered::new();
    // The supervisor's voice: buffered, then one frame to the machine every 20 ms.
    let mut jitter = crate::jitter::Jitter::new();
    let mut voice_tick = tokio::time::interval(Duration::from_millis(watchfloor_wire::mulaw::FRAME_MS));
    // A late tick is skipped, not shifted: the ticks stay on the playout's 20 ms grid (every frame due
    // is played at each tick, so nothing is lost by skipping one).
    voice_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut voice_open = true;
    // The supervisor's transcription session (PROTOCOLS.md §5), while a supervisor holds the voice.
    let transcription_cfg = Arc::new(ModelConfig { url: model::transcription_url(&setup.model.url), ..(*setup.model).clone() });
    let mut transcription: Option<ModelSocket> = None;
    let mut transcription_connecting: Option<ConnectFuture> = None;
    let mut flood = FloodGuard::new(setup.stream_limits);
    let mut backlog = Backlog::default();

    loop {
        tokio::select! {
            res = next_connect(&mut connecting) => {
                connecting = None;
                let now = Instant::now();
                match (res, first_connect) {
                    (Ok(ws), true) => {
                        first_connect = false;
                        tracing::info!("model connected");
                        model_sock = Some(ws);
                        machine.handle_input(Input::ModelConnected, now);
                    }
                    (Err(e), true) => {
                        first_connect = false;
                        tracing::error!(error = %e, "model unavailable");
                        machine.publish_model_error(now, &e.to_string());
                        machine.fallback(now, "model_unavailable");
                    }
                    (Ok(ws), false) => {
                        if let Some(mut old) = model_sock.replace(ws) {
                            let _ = tokio::time::timeout(Duration::from_millis(500), old.close(None)).await;
                        }
                        tracing::info!(renewed = renewing, "model session replaced");
                        machine.handle_input(Input::ModelReconnected { renewed: renewing }, now);
                    }
                    (Err(e), false) => {
                        if renewing {
                            // The old session still works: try again at the next quiet moment.
                            tracing::warn!(error = %e, "model session renewal failed; keeping the current session");
                            renewing = false;
                            machine.handle_input(Input::RenewFailed, now);
                        } else {
                            machine.handle_input(Input::ReconnectFailed(e.to_string()), now);
                        }
                    }
                }
            }
            sock = &mut claim_rx, if awaiting_claim => {
                awaiting_claim = false;
                if let Ok(mut sock) = sock {
                    let now = Instant::now();
                    for msg in std::mem::take(&mut sock.already_read) {
                        machine.handle_input(Input::Twilio(msg), now);
                    }
                    twilio = Some(sock);
                }
            }
            _ = &mut claim_deadline, if awaiting_claim => {
                awaiting_claim = false;
                tracing::warn!("no media stream within the claim window");
                machine.end(Instant::now(), "no_stream", CallStatus::NoStream);
            }
            frame = next_twilio(&mut twilio) => {
                let now = Instant::now();
                // The flood limit (crate::flood) counts caller audio and unsolicited messages,
                // never the echoes of our own marks.
                match frame {
                    TwilioFrame::Text(text) => match MediaRef::parse(text.as_str()) {
                        // 50 a second: read in place.
                        Some(m) => if flood.admit_media(m.media.payload.len()) {
                            machine.handle_input(Input::CallerMedia { timestamp: &m.media.timestamp, payload: &m.media.payload }, now);
                        },
                        None => match MarkRef::parse(text.as_str()) {
                            // The echoes of our marks: read in place, and never counted.
                            Some(m) if machine.expects_mark(&m.mark.name) => machine.handle_input(Input::MarkEcho { name: &m.mark.name }, now),
                            _ => match TwilioInbound::parse(text.as_str()) {
                                Ok(msg) => if flood.admit_message() {
                                    machine.handle_input(Input::Twilio(msg), now);
                                },
                                Err(e) => if flood.admit_message() {
                                    machine.handle_input(Input::TwilioGarbage(e.to_string()), now);
                                },
                            },
                        },
                    },
                    TwilioFrame::Binary(n) => if flood.admit_message() {
                        machine.handle_input(Input::TwilioGarbage(format!("binary frame of {n} bytes")), now);
                    },
                    TwilioFrame::Closed => machine.handle_input(Input::TwilioClosed, now),
                }
                if let Some(dropped) = flood.report_due() {
                    machine.handle_input(Input::TwilioGarbage(dropped.describe(&flood.limits())), now);
                }
            }
            msg = next_model(&mut model_sock) => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => match AudioDeltaRef::parse(text.as_str()) {
                        // Agent audio: read in place.
                        Some(d) => machine.handle_input(Input::AgentAudio { response_id: &d.response_id, item_id: &d.item_id, delta: &d.delta }, now),
                        None => match ServerEvent::parse(text.as_str()) {
                            Ok(ev) => machine.handle_input(Input::Model(ev), now),
                            Err(e) => machine.handle_input(Input::ModelGarbage(e.to_string()), now),
                        },
                    },
                    Some(Ok(Message::Binary(b))) => machine.handle_input(Input::ModelGarbage(format!("binary frame of {} bytes", b.len())), now),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        tracing::warn!(?frame, "model closed the socket");
                        model_sock = None;
                        machine.handle_input(Input::ModelClosed, now);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "model socket failed");
                        model_sock = None;
                        machine.handle_input(Input::ModelClosed, now);
                    }
                    None => {
                        model_sock = None;
                        machine.handle_input(Input::ModelClosed, now);
                    }
                }
            }
            res = next_connect(&mut transcription_connecting) => {
                transcription_connecting = None;
                match res {
                    Ok(ws) => {
                        transcription = Some(ws);
                        machine.handle_input(Input::TranscriptionConnected, Instant::now());
                    }
                    Err(e) => machine.handle_input(Input::TranscriptionLost(e.to_string()), Instant::now()),
                }
            }
            msg = next_model(&mut transcription) => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => match ServerEvent::parse(text.as_str()) {
                        Ok(ev) => machine.handle_input(Input::Transcription(ev), now),
                        Err(e) => machine.skip(now, "transcription", e.to_string()),
                    },
                    Some(Ok(Message::Binary(b))) => machine.skip(now, "transcription", format!("binary frame of {} bytes", b.len())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | None => {
                        transcription = None;
                        machine.handle_input(Input::TranscriptionLost("the session closed".into()), now);
                    }
                    Some(Err(e)) => {
                        transcription = None;
                        machine.handle_input(Input::TranscriptionLost(e.to_string()), now);
                    }
                }
            }
            cmd = commands.recv(), if commands_open => {
                match cmd {
                    Some((cmd, ack)) => {
                        if matches!(cmd, crate::machine::Command::HandBack { .. }) {
                            // What the supervisor already said goes out before the agent answers.
                            let now = Instant::now();
                            for audio in jitter.drain() {
                                machine.handle_input(Input::SupervisorAudio { audio: &audio }, now);
                            }
                        }
                        let result = machine.command(cmd, Instant::now());
                        pending_ack = ack.map(|a| (a, result));
                    }
                    None => commands_open = false,
                }
            }
            msg = voice.recv(), if voice_open => match msg {
                Some(crate::jitter::VoiceMsg::Frame(frame)) => {
                    let now = Instant::now();
                    if !jitter.is_active() {
                        // The first tick of a burst comes a frame from now.
                        voice_tick.reset();
                    }
                    let was_playing = jitter.is_playing();
                    jitter.push(frame, now);
                    machine.handle_input(Input::VoiceKeepalive, now);
                    // The frame that fills the target starts playout at once (not at the next
                    // tick, up to 20 ms later); the ticks then keep the playout's grid.
                    while let Some(audio) = jitter.pop(now) {
                        machine.handle_input(Input::SupervisorAudio { audio: &audio }, now);
                    }
                    if !was_playing && jitter.is_playing() {
                        voice_tick.reset();
                    }
                }
                Some(crate::jitter::VoiceMsg::Keepalive) => machine.handle_input(Input::VoiceKeepalive, Instant::now()),
                Some(crate::jitter::VoiceMsg::Lost { user }) => machine.handle_input(Input::VoiceLost { user }, Instant::now()),
                None => voice_open = false,
            },
            _ = voice_tick.tick(), if jitter.is_active() => {
                // Every frame due (more than one after a late tick: the delay never grows).
                let now = Instant::now();
                while let Some(audio) = jitter.pop(now) {
                    machine.handle_input(Input::SupervisorAudio { audio: &audio }, now);
                }
            }
            Ok(()) = roster_rx.changed() => {
                let roster = roster_rx.borrow_and_update().clone();
                machine.handle_input(Input::RosterChanged(roster), Instant::now());
            }
            Ok(()) = incidents_rx.changed() => {
                // The call's own view, read under the channel's lock: no task holds the list.
                let view = incidents_rx.borrow_and_update().view_of(&setup.call_sid);
                machine.handle_input(Input::IncidentsChanged(view), Instant::now());
            }
            _ = &mut timeout, if armed.is_some() => {
                armed = None;
                machine.handle_input(Input::Timeout, Instant::now());
            }
            Some((call_id, name, outcome)) = tool_calls.next(), if !tool_calls.is_empty() => {
                machine.handle_input(Input::ToolAnswered { call_id, name, outcome }, Instant::now());
            }
            Some(kind) = translations.next(), if !translations.is_empty() => {
                if machine.is_ended() {
                    append_after_end(&hub, &setup.call_sid, kind);
                } else {
                    machine.emit_external(Instant::now(), kind);
                }
            }
            result = next_hand_off(&mut handing_off) => {
                handing_off = None;
                machine.handle_input(Input::HandOffDone(result.clone()), Instant::now());
                pending_ack = hand_off_ack.take().map(|a| (a, result.map_err(crate::machine::Refusal::HandOffFailed)));
            }
            _ = cancel.cancelled() => {
                // Shutdown: the stream closes below, so Twilio sends the caller to the human line.
                machine.end(Instant::now(), "shutdown", CallStatus::Fallback);
            }
        }

        let mut close = false;
        // Messages are queued on their socket (`feed`) and written together once the machine
        // has nothing more to say (one `flush`, one syscall): an agent delta becomes a `media`
        // and a `mark`, a burst of deltas many of each.
        let (mut twilio_unflushed, mut model_unflushed, mut transcription_unflushed) = (false, false, false);
        loop {
            while let Some(out) = machine.poll_output() {
                match out {
                    Output::ToTwilio(msg) => {
                        if let Some(sock) = twilio.as_mut() {
                            match sock.tx.feed(Bytes::from(msg.to_json())).await {
                                Ok(()) => twilio_unflushed = true,
                                Err(e) => {
                                    tracing::warn!(error = %e, "twilio send failed");
                                    machine.handle_input(Input::TwilioClosed, Instant::now());
                                }
                            }
                        }
                    }
                    Output::ToTwilioText(text) => {
                        if let Some(sock) = twilio.as_mut() {
                            match sock.tx.feed(text).await {
                                Ok(()) => twilio_unflushed = true,
                                Err(e) => {
                                    tracing::warn!(error = %e, "twilio send failed");
                                    machine.handle_input(Input::TwilioClosed, Instant::now());
                                }
                            }
                        }
                    }
                    out @ (Output::ToModel(_) | Output::AppendAudio { .. }) => {
                        let Some((msg, audio_bytes)) = model_message(out) else { continue };
                        match model_sock.as_mut() {
                            Some(ws) if connecting.is_none() || renewing => match ws.feed(msg).await {
                                Ok(()) => model_unflushed = true,
                                Err(e) => {
                                    tracing::warn!(error = %e, "model send failed");
                                    model_sock = None;
                                    machine.handle_input(Input::ModelClosed, Instant::now());
                                }
                            },
                            _ => {
                                // Connecting: hold the caller's audio (a bounded backlog) for the session.
                                if let Some(dropped_ms) = backlog.push(msg, audio_bytes) {
                                    machine.skip(Instant::now(), "bridge", format!("{dropped_ms} ms of the oldest caller audio held for the model dropped: more than {BACKLOG_AUDIO_MS} ms held while its socket opened"));
                                }
                            }
                        }
                    }
                    Output::Event(ev) => {
                        if let Some(t) = translate_line(setup.translation.as_ref(), &ev) {
                            translations.push(t);
                        }
                        // The console's view first, then the feed: a console that takes a snapshot
                        // after subscribing sees each event in one or the other (or both: it skips
                        // by sequence number).
                        live.lock().apply(&ev);
                        let opened = setup.incidents.observe(&ev);
                        hub.publish(ev);
                        if opened {
                            machine.handle_input(Input::IncidentsChanged(setup.incidents.view_of(&setup.call_sid)), Instant::now());
                        }
                    }
                    Output::Audio(frame) => hub.publish_audio(frame),
                    Output::Reconnect { renew } => {
                        renewing = renew;
                        if !renew {
                            model_sock = None;
                        }
                        connecting = Some(connect_future(setup.model.clone(), Some(RECONNECT_TIMEOUT)));
                    }
                    Output::Fallback { .. } => {
                        // What is queued goes out before the (possibly slow) hand-off.
                        flush_sockets(&mut machine, &mut twilio, &mut model_sock, &mut twilio_unflushed, &mut model_unflushed).await;
                        connecting = None;
                        let (via, attempts, rest_error) = hand_to_human(&setup.fallback, &setup.call_sid).await;
                        machine.handle_input(Input::FallbackDone { via, attempts, rest_error }, Instant::now());
                    }
                    Output::Roster(request) => {
                        // The roster's owner answers at once, before the next output.
                        let sid = &setup.call_sid;
                        let answer = match request {
                            RosterRequest::Reserve { units } => RosterAnswer::Reserved(setup.roster.reserve(sid, &units)),
                            RosterRequest::Release { only } => RosterAnswer::Released(setup.roster.release(sid, only.as_deref())),
                            RosterRequest::Move { unit, status } => {
                                let moved = setup.roster.move_unit(sid, &unit, status).map(|_| ());
                                // A supervisor's move refused by the owner (raced since the
                                // machine's snapshot): the supervisor hears why.
                                if let (Err(e), Some((_, result @ Ok(())))) = (&moved, pending_ack.as_mut()) {
                                    *result = Err(crate::machine::Refusal::Dispatch(e.clone().into()));
                                }
                                RosterAnswer::Moved(moved)
                            }
                        };
                        machine.handle_input(Input::Roster(answer), Instant::now());
                    }
                    Output::Incidents(request) => {
                        // The list's owner answers at once, before the next output.
                        let (sid, at) = (&setup.call_sid, unix_ms());
                        let answer = match request {
                            IncidentRequest::Check => IncidentAnswer::Checked(setup.incidents.duplicate_of(sid, at)),
                            IncidentRequest::Link { incident } => IncidentAnswer::Linked(setup.incidents.link(sid, incident, at)),
                            IncidentRequest::Unlink => IncidentAnswer::Unlinked(setup.incidents.unlink(sid, at)),
                        };
                        // A supervisor's link refused by the list: the supervisor hears why.
                        if let (IncidentAnswer::Linked(Err(e)) | IncidentAnswer::Unlinked(Err(e)), Some((_, result @ Ok(())))) = (&answer, pending_ack.as_mut()) {
                            *result = Err(crate::machine::Refusal::Link(e.clone()));
                        }
                        machine.handle_input(Input::Incidents(answer, setup.incidents.view_of(sid)), Instant::now());
                    }
                    Output::ResetVoice => jitter = crate::jitter::Jitter::new(),
                    Output::FlushBacklog => {
                        // The session is configured: what was held back follows, in order.
                        renewing = false;
                        if let Some(ws) = model_sock.as_mut()
                            && let Err(e) = send_backlog(ws, &mut backlog).await {
                                tracing::warn!(error = %e, "model send failed");
                                model_sock = None;
                                machine.handle_input(Input::ModelClosed, Instant::now());
                            }
                    }
                    Output::CallTool { call_id, tool, arguments } => {
                        tracing::info!(tool = %tool.name, "calling a profile's tool");
                        let (client, sid) = (setup.tools.clone(), setup.call_sid.clone());
                        tool_calls.push(Box::pin(async move {
                            let outcome = client.call(&tool, &sid, &call_id, &arguments).await;
                            (call_id, tool.name, outcome)
                        }));
                    }
                    Output::HandOff { action, to } => {
                        tracing::info!(action = action.as_str(), "handing the call off through Twilio REST");
                        handing_off = Some(hand_off_future(setup.fallback.rest.clone(), setup.call_sid.clone(), to));
                        // The supervisor's request is answered with the outcome at Twilio.
                        match pending_ack.take() {
                            Some((ack, Ok(()))) => hand_off_ack = Some(ack),
                            other => pending_ack = other,
                        }
                    }
                    Output::OpenTranscription => {
                        transcription_connecting = Some(connect_future(transcription_cfg.clone(), None));
                    }
                    Output::ToTranscription(ev) => {
                        if let Some(ws) = transcription.as_mut() {
                            match ws.feed(Message::text(ev.to_json())).await {
                                Ok(()) => transcription_unflushed = true,
                                Err(e) => {
                                    tracing::warn!(error = %e, "transcription send failed");
                                    transcription = None;
                                    machine.handle_input(Input::TranscriptionLost(e.to_string()), Instant::now());
                                }
                            }
                        }
                    }
                    Output::CloseTranscription => {
                        transcription_connecting = None;
                        if let Some(mut ws) = transcription.take() {
                            // Closed beside the call: a slow peer never holds up the call's task.
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                            });
                        }
                    }
                    Output::Close => close = true,
                }
            }
            flush_sockets(&mut machine, &mut twilio, &mut model_sock, &mut twilio_unflushed, &mut model_unflushed).await;
            // The transcription session's appends, one flush per turn like the other sockets.
            if std::mem::take(&mut transcription_unflushed)
                && let Some(ws) = transcription.as_mut()
                && let Err(e) = ws.flush().await
            {
                tracing::warn!(error = %e, "transcription send failed");
                transcription = None;
                machine.handle_input(Input::TranscriptionLost(e.to_string()), Instant::now());
            }
            if !machine.has_output() {
                break;
            }
        }
        let next = machine.poll_timeout();
        if next != armed {
            armed = next;
            if let Some(t) = next {
                timeout.as_mut().reset(t.into());
            }
        }
        if let Some((ack, result)) = pending_ack.take() {
            // The command's events are published (queued for the store ahead of later ones).
            let _ = ack.send(result);
        }
        if close {
            // A hand-off still at Twilio (the stream stopped as it took effect): its outcome
            // goes to the supervisor who asked.
            if let Some(h) = handing_off.take() {
                let result = h.await;
                if let Some(ack) = hand_off_ack.take() {
                    let _ = ack.send(result.map_err(crate::machine::Refusal::HandOffFailed));
                }
            }
            if let Some(mut ws) = model_sock.take() {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            }
            if let Some(mut sock) = twilio.take() {
                let _ = tokio::time::timeout(Duration::from_secs(1), sock.tx.close()).await;
            } else if awaiting_claim && matches!(machine.status(), CallStatus::Fallback) && !cancel.is_cancelled() {
                // The stream may still come (the model failed while the phone rang): accept it
                // only to close it at once, so Twilio runs the fallback verbs without delay.
                let remaining = setup.claim_window.saturating_sub(machine.age(Instant::now()));
                if let Ok(Ok(mut sock)) = tokio::time::timeout(remaining, &mut claim_rx).await {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sock.tx.close()).await;
                }
            }
            if !translations.is_empty() {
                // The last lines' translations follow the call's end onto its record.
                let (hub, sid) = (hub.clone(), setup.call_sid.clone());
                tokio::spawn(async move {
                    let drain = async {
                        while let Some(kind) = translations.next().await {
                            if let Err(e) = hub.append_after_end(&sid, kind, unix_ms()).await {
                                tracing::warn!(call_sid = %sid, error = %e, "a translation after the call's end is not on its record");
                            }
                        }
                    };
                    if tokio::time::timeout(TRANSLATION_DRAIN, drain).await.is_err() {
                        tracing::warn!(call_sid = %sid, "translations still under way {} s after the call ended are dropped", TRANSLATION_DRAIN.as_secs());
                    }
                });
            }
            tracing::info!(stats = ?machine.stats(), "call task ended");
            return;
        }
    }
}

/// Appends an event to an ended call's record (through the store writer, which numbers it),
/// beside the call's task.
fn append_after_end(hub: &Hub, call_sid: &Arc<str>, kind: CallEventKind) {
    let (hub, sid) = (hub.clone(), call_sid.clone());
    tokio::spawn(async move {
        if let Err(e) = hub.append_after_end(&sid, kind, unix_ms()).await {
            tracing::warn!(call_sid = %sid, error = %e, "an event after the call's end is not on its record");
        }
    });
}

/// Model messages held while no model session could take them, in order, bounded by the
/// caller audio they carry ([`BACKLOG_AUDIO_MS`]).
#[derive(Default)]
struct Backlog {
    /// Each message and the caller audio in it, bytes.
    messages: VecDeque<(Message, usize)>,
    /// Caller audio in `messages`, ms.
    audio_ms: u64,
}

/// The text of a model output ([`Output::ToModel`] or [`Output::AppendAudio`]) and the caller
/// audio it carries, bytes; none for any other output.
fn model_message(out: Output) -> Option<(Message, usize)> {
    match out {
        Output::ToModel(ev) => {
            let audio_bytes = match &ev {
                ClientEvent::InputAudioBufferAppend { audio, .. } => audio.len() / 4 * 3,
                _ => 0,
            };
            Some((Message::text(ev.to_json()), audio_bytes))
        }
        Output::AppendAudio { text, audio_bytes } => match Utf8Bytes::try_from(text) {
            Ok(text) => Some((Message::Text(text), audio_bytes)),
            // Invariant: the machine writes JSON text; a failure here is a bug, logged, not sent.
            Err(e) => {
                tracing::error!(error = %e, "an append's text is not UTF-8: not sent");
                None
            }
        },
        _ => None,
    }
}

impl Backlog {
    /// Holds `msg` (carrying `audio_bytes` of caller audio); past the bound, drops the oldest
    /// appends and returns the audio dropped, ms.
    fn push(&mut self, msg: Message, audio_bytes: usize) -> Option<u64> {
        self.audio_ms += watchfloor_wire::mulaw::bytes_to_ms(audio_bytes);
        self.messages.push_back((msg, audio_bytes));
        let mut dropped = 0;
        while self.audio_ms > BACKLOG_AUDIO_MS {
            let Some(pos) = self.messages.iter().position(|(_, audio)| *audio > 0) else { break };
            let ms = self.messages.remove(pos).map_or(0, |(_, audio)| watchfloor_wire::mulaw::bytes_to_ms(audio));
            self.audio_ms -= ms;
            dropped += ms;
        }
        (dropped > 0).then_some(dropped)
    }
}

/// Sends the caller audio held while no model session could take it, in order, with one flush.
async fn send_backlog(ws: &mut ModelSocket, backlog: &mut Backlog) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    backlog.audio_ms = 0;
    for (held, _) in backlog.messages.drain(..) {
        ws.feed(held).await?;
    }
    ws.flush().await
}

/// Writes what was queued on either socket; a failure is the socket closing.
async fn flush_sockets(machine: &mut CallMachine, twilio: &mut Option<TwilioSocket>, model_sock: &mut Option<ModelSocket>, twilio_unflushed: &mut bool, model_unflushed: &mut bool) {
    if std::mem::take(twilio_unflushed)
        && let Some(sock) = twilio.as_mut()
        && let Err(e) = sock.tx.flush().await {
            tracing::warn!(error = %e, "twilio send failed");
            machine.handle_input(Input::TwilioClosed, Instant::now());
        }
    if std::mem::take(model_unflushed)
        && let Some(ws) = model_sock.as_mut()
        && let Err(e) = ws.flush().await {
            tracing::warn!(error = %e, "model send failed");
            *model_sock = None;
            machine.handle_input(Input::ModelClosed, Instant::now());
        }
}

impl CallMachine {
    /// Records that the model could not be reached (a `ModelError` event with code `model_unavailable`).
    pub fn publish_model_error(&mut self, now: Instant, message: &str) {
        self.emit_external(now, CallEventKind::ModelError { error_type: "connect".into(), code: Some("model_unavailable".into()), message: message.to_string() });
    }
}
