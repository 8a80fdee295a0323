//! A fake OpenAI Realtime (GA) model on a loopback WebSocket.
//!
//! What it does, per PROTOCOLS.md §1:
//! - accepts `GET /v1/realtime?model=…` with `Authorization: Bearer …` (401 without); a request
//!   with `OpenAI-Beta: realtime=v1` gets `error.code = "beta_api_shape_disabled"`;
//! - sends `session.created`; checks every client event: unknown types, unknown fields and beta
//!   names get the real `error` shape (`invalid_request_error`, `unknown_parameter`, `param`);
//! - runs server VAD on the **actual audio** appended: energy per 20 ms frame against the
//!   session's `threshold` (mapped to a level of `-65 + 50 × threshold` dBFS), with
//!   `prefix_padding_ms` and `silence_duration_ms`, and reports true `audio_start_ms` /
//!   `audio_end_ms` on the input buffer's clock;
//! - on each caller turn: `speech_stopped`, `committed`, `conversation.item.added`,
//!   transcription `delta`s and `completed` (text from the scenario), then (with
//!   `create_response`) a response: `response.created`, `output_item.added`,
//!   `output_audio.delta`s of the scenario's speech paced like the real service ([`Pacing`]: by
//!   default a whole reply within about a second, in deltas of varying size), transcript deltas, `output_audio.done`, `output_audio_transcript.done`,
//!   `output_item.done`, `response.done`;
//! - `interrupt_response`: speech during a response cancels it (`status: cancelled`,
//!   `reason: turn_detected`); `response.cancel` with nothing in flight is the real harmless error;
//! - `conversation.item.truncate` past the audio it sent for that item is rejected;
//! - a scenario turn with a `function_call` first gets a response whose output is that
//!   `function_call` item (`response.function_call_arguments.delta`/`done`); the spoken answer
//!   comes with the next response (after the client's `function_call_output` and `response.create`);
//!   an output for an unknown `call_id` is rejected;
//! - a supervisor instruction (a system message `Supervisor instruction: …`) is reflected in the
//!   transcript of the next response;
//! - out-of-band responses (`response.create` with `conversation: "none"`): `metadata` is
//!   checked (≤ 16 pairs, keys ≤ 64 and string values ≤ 512 characters) and echoed on
//!   `response.created`/`response.done` with `conversation_id: null`; the text of the `input`
//!   items is voiced (a tone burst per word, about 150 words a minute) and transcribed exactly;
//!   nothing is added to the conversation (no `conversation.item.added`, the scenario does not
//!   advance, a truncate of its item is `item_not_found`); it may run beside the conversation's
//!   own response, and `response.cancel` with its `response_id` cancels it. In-conversation
//!   responses carry the session's `conversation_id`.
//!
//! - transcription-only sessions (PROTOCOLS.md §5): `GET /v1/realtime?intent=transcription`
//!   with no `model` (a URL with both is refused, 400); `session.created` of type
//!   `transcription`; the `session.update` must be `type: "transcription"` with only `audio.input`
//!   (format, noise_reduction, transcription, turn_detection of type, threshold,
//!   prefix_padding_ms, silence_duration_ms) and `include` — a conversation field is
//!   `unknown_parameter`, and either session type sent to the other URL is `invalid_value`
//!   on `session.type`; the same server VAD on the audio appended; each utterance gives
//!   `speech_started`, `speech_stopped`, `committed`, transcription `delta`s and `completed`
//!   (the text from [`ModelFakeOptions::transcripts`] in order, else a description of the
//!   speech such as `(speech, 1.2 s)`); it never answers: `response.create`, `response.cancel`
//!   and conversation items are refused.
//!
//! The scenario of a session is picked by the caller number found in the instructions
//! (`Caller ID … +1555…`), from the scenarios given at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response as HsResponse};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_util::sync::CancellationToken;
use watchfloor_wire::mulaw::{self, FRAME_BYTES};
use watchfloor_wire::realtime::{ClientEvent, ErrorDetail, Item, ItemCreate, Response, ServerEvent, SessionConfig, TurnDetection};

use crate::probe::{CallProbe, Probes};
use crate::scenario::{Line, Scenario};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct ModelFakeOptions {
    /// Time scale: 1.0 = real time, 4.0 = four times faster (all pacing divided).
    pub speed: f64,
    /// How a response's audio is streamed (default [`Pacing::REAL`]).
    pub pacing: Pacing,
    /// Faults to inject (chaos tests).
    pub faults: Faults,
    /// Keep every audio byte and client event type in the [`SessionLog`] (tests); off for load.
    pub keep_audio: bool,
    /// Per-frame measurement hooks (the load generator): a session's probe is found by the
    /// caller number in its instructions.
    pub probes: Option<Arc<Probes>>,
    /// What a transcription-only session hears, utterance by utterance (each session from the
    /// first); past the end, an utterance is described by its length.
    pub transcripts: Vec<String>,
}

impl Default for ModelFakeOptions {
    fn default() -> Self {
        ModelFakeOptions { speed: 1.0, pacing: Pacing::REAL, faults: Faults::default(), keep_audio: true, probes: None, transcripts: Vec::new() }
    }
}

/// How the fake streams a response's audio (`response.output_audio.delta`s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As the real service does: audio generated much faster than real time, so a whole reply of
    /// 5–6 s arrives within about a second and sits queued at Twilio ahead of what the caller
    /// hears; deltas of varying size (a random length in `min_delta_ms..=max_delta_ms`, not a
    /// whole number of 20 ms frames).
    Burst {
        /// Audio generated per second of wall time, as a multiple of real time (6.0: 6 s of
        /// reply in 1 s).
        factor: f64,
        /// Shortest delta, ms of audio.
        min_delta_ms: u64,
        /// Longest delta, ms of audio.
        max_delta_ms: u64,
    },
    /// Round 1's gentle pacing: deltas of `chunk_ms` at `factor` × real time (1.5: 100 ms of
    /// audio every 67 ms), so few marks are ever pending at Twilio.
    Steady {
        /// Audio per delta, ms.
        chunk_ms: u64,
        /// Audio generated per second of wall time, as a multiple of real time.
        factor: f64,
    },
}

impl Pacing {
    /// The real service's pacing, the default: 6× real time, deltas of 40–300 ms (as `burst`
    /// in [`Pacing::parse`]).
    pub const REAL: Pacing = Pacing::Burst { factor: 6.0, min_delta_ms: 40, max_delta_ms: 300 };
    /// Round 1's pacing: 100 ms deltas at 1.5× real time.
    pub const STEADY: Pacing = Pacing::Steady { chunk_ms: 100, factor: 1.5 };

    /// The sizes, in bytes, `audio_len` bytes of μ-law are cut into.
    fn delta_sizes(&self, audio_len: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = audio_len;
        while left > 0 {
            let n = match *self {
                Pacing::Steady { chunk_ms, .. } => mulaw::ms_to_bytes(chunk_ms),
                Pacing::Burst { min_delta_ms, max_delta_ms, .. } => {
                    let (lo, hi) = (mulaw::ms_to_bytes(min_delta_ms), mulaw::ms_to_bytes(max_delta_ms.max(min_delta_ms)));
                    rand::random_range(lo..=hi)
                }
            };
            let n = n.clamp(1, left);
            sizes.push(n);
            left -= n;
        }
        sizes
    }

    /// How long the service takes to generate a delta of `bytes` of μ-law, with the fake's time
    /// scale `speed` (2.0: twice as fast).
    fn generation_time(&self, bytes: usize, speed: f64) -> Duration {
        let factor = match *self {
            Pacing::Burst { factor, .. } | Pacing::Steady { factor, .. } => factor,
        };
        Duration::from_secs_f64(bytes as f64 / (mulaw::BYTES_PER_MS as f64 * 1000.0) / (factor.max(0.001) * speed.max(0.001)))
    }

    /// Parses `real`, `steady`, `burst:<factor>` or `steady:<factor>` (command lines).
    pub fn parse(s: &str) -> Result<Pacing, String> {
        let (kind, factor) = match s.split_once(':') {
            Some((k, f)) => (k, Some(f.parse::<f64>().map_err(|e| format!("pacing factor {f:?}: {e}"))?)),
            None => (s, None),
        };
        match (kind, factor) {
            ("real" | "burst", None) => Ok(Pacing::REAL),
            ("burst", Some(f)) => Ok(Pacing::Burst { factor: f, min_delta_ms: 40, max_delta_ms: 300 }),
            ("steady", None) => Ok(Pacing::STEADY),
            ("steady", Some(f)) => Ok(Pacing::Steady { chunk_ms: 100, factor: f }),
            _ => Err(format!("pacing {s:?}: expected real, burst[:factor] or steady[:factor]")),
        }
    }
}

/// Faults the fake injects on purpose.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The first N connections are refused (HTTP 503 at the WebSocket handshake).
    pub refuse_first: u32,
    /// The first N connections wait this long before the handshake answers.
    pub delay_first: Option<(u32, Duration)>,
    /// Faults inside a session, by the caller number the session is for. Each fires once per
    /// number (a reconnected session for the same number runs clean).
    pub by_caller: HashMap<String, SessionFault>,
}

/// A fault inside a session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionFault {
    /// Drop the TCP connection (no close frame) after the Nth audio delta of the session.
    DropAfterDeltas(u32),
    /// Interleave garbage with every event: non-JSON text, a binary frame, unknown event types,
    /// a known type with the wrong shape.
    Garbage,
    /// After N caller turns, send nothing more (the socket stays open).
    StallAfterTurns(usize),
    /// After the first caller turn, send this `error` code (e.g. `insufficient_quota`).
    ErrorAfterFirstTurn(String),
}

/// What one session saw and did, for tests.
#[derive(Debug, Default, Clone)]
pub struct SessionLog {
    /// Caller number found in the instructions.
    pub caller_number: Option<String>,
    /// The last `session.update` accepted.
    pub session: Option<SessionConfig>,
    /// Type of every client event received, in order.
    pub received: Vec<String>,
    /// Every μ-law byte appended, in order.
    pub input_audio: Vec<u8>,
    /// `(item_id, audio_end_ms)` of each accepted truncate.
    pub truncations: Vec<(String, u64)>,
    /// `response.cancel` events received.
    pub cancels: u32,
    /// Errors sent back.
    pub errors: Vec<ErrorDetail>,
    /// Assistant audio sent, per item, in order.
    pub agent_audio: Vec<(String, Vec<u8>)>,
    /// System messages added (`conversation.item.create`), e.g. whispers.
    pub system_messages: Vec<String>,
    /// `(call_id, name, arguments)` of each function call the fake made.
    pub function_calls: Vec<(String, String, String)>,
    /// `(call_id, output)` of each `function_call_output` received.
    pub function_outputs: Vec<(String, String)>,
    /// `(audio_start_ms, audio_end_ms)` of each caller turn the VAD found.
    pub turns: Vec<(u64, u64)>,
    /// Out-of-band responses made, in order.
    pub out_of_band: Vec<OutOfBandLog>,
    /// A transcription-only session (`?intent=transcription`, PROTOCOLS.md §5).
    pub transcription: bool,
    /// The lines a transcription-only session sent (`...transcription.completed`), in order.
    pub transcripts: Vec<String>,
    /// `(audio_start_ms, audio_end_ms)` of each `input_audio_buffer.timeout_triggered` sent.
    pub idle_timeouts: Vec<(u64, u64)>,
    /// The socket is closed.
    pub closed: bool,
}

/// One out-of-band response (`conversation: "none"`).
#[derive(Debug, Default, Clone)]
pub struct OutOfBandLog {
    /// Its id.
    pub response_id: String,
    /// The `metadata` it was tagged with.
    pub metadata: serde_json::Map<String, Value>,
    /// The words voiced (the text of its `input` items).
    pub text: String,
    /// The μ-law audio sent for it.
    pub audio: Vec<u8>,
    /// A conversation response was in flight when it was asked for.
    pub beside_active: bool,
    /// `completed` or `cancelled`.
    pub status: String,
}

/// A running model fake.
pub struct ModelFake {
    addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Arc<Mutex<SessionLog>>>>>,
    stop: CancellationToken,
    /// Counts what tests wait for: a session opened or closed, a client event handled, a caller
    /// turn found.
    activity: Arc<tokio::sync::watch::Sender<u64>>,
}

impl ModelFake {
    /// Starts the fake on `bind` (use `127.0.0.1:0`).
    pub async fn start(bind: SocketAddr, scenarios: Vec<Scenario>, opts: ModelFakeOptions) -> std::io::Result<ModelFake> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let sessions: Arc<Mutex<Vec<Arc<Mutex<SessionLog>>>>> = Arc::default();
        let stop = CancellationToken::new();
        let scenarios: Arc<Vec<Scenario>> = Arc::new(scenarios);
        let (s2, stop2) = (sessions.clone(), stop.clone());
        let fired: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let activity = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let activity2 = activity.clone();
        let mut connections: u32 = 0;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop2.cancelled() => break,
                    acc = listener.accept() => {
                        let Ok((tcp, _)) = acc else { continue };
                        connections += 1;
                        let log = Arc::new(Mutex::new(SessionLog::default()));
                        s2.lock().push(log.clone());
                        activity2.send_modify(|n| *n += 1);
                        let refuse = connections <= opts.faults.refuse_first;
                        let delay = opts.faults.delay_first.filter(|(n, _)| connections <= *n).map(|(_, d)| d);
                        tokio::spawn(serve_connection(tcp, log, scenarios.clone(), opts.clone(), stop2.clone(), refuse, delay, fired.clone(), activity2.clone()));
                    }
                }
            }
        });
        Ok(ModelFake { addr, sessions, stop, activity })
    }

    /// The URL to give the bridge (`OPENAI_REALTIME_URL`).
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime?model=gpt-realtime", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Snapshots of every session so far, in connection order.
    pub fn sessions(&self) -> Vec<SessionLog> {
        self.sessions.lock().iter().map(|s| s.lock().clone()).collect()
    }

    /// The session of a caller number, once closed; waits up to `timeout`.
    pub async fn closed_session_of(&self, caller_number: &str, timeout: Duration) -> Option<SessionLog> {
        let find = |sessions: &[SessionLog]| sessions.iter().find(|s| s.closed && s.caller_number.as_deref() == Some(caller_number)).cloned();
        let mut found = None;
        self.wait_until(timeout, |sessions| {
            found = find(sessions);
            found.is_some()
        })
        .await;
        found
    }

    /// Waits until `done` holds of the sessions, checked at each change the fake sees (a
    /// session opened or closed, a client event other than an append handled, a caller turn
    /// found); false after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[SessionLog]) -> bool) -> bool {
        let mut changes = self.activity.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(&self.sessions()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return done(&self.sessions()),
            }
        }
    }

    /// Stops accepting and closes every session.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for ModelFake {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn err(kind: &str, code: &str, message: String, param: Option<String>, event_id: Option<String>) -> ErrorDetail {
    ErrorDetail { kind: kind.into(), code: Some(code.into()), message, param, event_id }
}

/// Shared state between a session's reader and its response task.
struct Shared {
    log: Arc<Mutex<SessionLog>>,
    out: mpsc::UnboundedSender<ServerEvent>,
    active: Mutex<Option<(String, CancellationToken)>>,
    /// Bytes of audio sent per assistant item.
    item_audio: Mutex<HashMap<String, u64>>,
    ids: std::sync::atomic::AtomicU64,
    /// Why the last response was cancelled (`turn_detected` or `client_cancelled`).
    cancel_reason: Mutex<&'static str>,
    /// Out-of-band responses under way, by id.
    out_of_band: Mutex<HashMap<String, CancellationToken>>,
    /// The session's default conversation (`conv_…`).
    conversation_id: String,
    /// The fake's change counter ([`ModelFake::wait_until`]).
    activity: Arc<tokio::sync::watch::Sender<u64>>,
    /// The load generator's probe of this session's call, once its caller number is known.
    probe: Arc<std::sync::OnceLock<CallProbe>>,
}

impl Shared {
    fn id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{prefix}_{n:06}")
    }

    fn send(&self, ev: ServerEvent) {
        let _ = self.out.send(ev);
    }

    fn error(&self, e: ErrorDetail) {
        self.log.lock().errors.push(e.clone());
        self.send(ServerEvent::Error { event_id: self.id("event"), error: e });
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    tcp: TcpStream,
    log: Arc<Mutex<SessionLog>>,
    scenarios: Arc<Vec<Scenario>>,
    opts: ModelFakeOptions,
    stop: CancellationToken,
    refuse: bool,
    delay: Option<Duration>,
    fired: Arc<Mutex<std::collections::HashSet<String>>>,
    activity: Arc<tokio::sync::watch::Sender<u64>>,
) {
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut beta = false;
    let mut transcription = false;
    #[allow(clippy::result_large_err)] // the error type is tungstenite's handshake callback contract
    let callback = |req: &Request, resp: HsResponse| -> Result<HsResponse, ErrorResponse> {
        if refuse {
            let mut r = ErrorResponse::new(Some("overloaded".into()));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Err(r);
        }
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !auth.starts_with("Bearer ") || auth.len() <= "Bearer ".len() {
            let mut r = ErrorResponse::new(Some("missing bearer token".into()));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            return Err(r);
        }
        if !req.uri().path().ends_with("/v1/realtime") {
            let mut r = ErrorResponse::new(Some("not found".into()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Err(r);
        }
        beta = req.headers().contains_key("openai-beta");
        let query = req.uri().query().unwrap_or("");
        let param = |name: &str| query.split('&').any(|kv| kv.split('=').next() == Some(name));
        transcription = query.split('&').any(|kv| kv == "intent=transcription");
        if transcription && param("model") {
            let mut r = ErrorResponse::new(Some("a transcription session takes no model in the URL".into()));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return Err(r);
        }
        Ok(resp)
    };
    let _ = tcp.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        log.lock().closed = true;
        activity.send_modify(|n| *n += 1);
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerEvent>();
    let fault: Arc<Mutex<Option<SessionFault>>> = Arc::default();
    let dropped = CancellationToken::new();
    let (wfault, wdropped) = (fault.clone(), dropped.clone());
    let probe: Arc<std::sync::OnceLock<CallProbe>> = Arc::default();
    let wprobe = probe.clone();
    let writer = tokio::spawn(async move {
        let mut deltas = 0u32;
        let mut scratch = Vec::new();
        while let Some(ev) = rx.recv().await {
            let current = wfault.lock().clone();
            if matches!(ev, ServerEvent::ResponseOutputAudioDelta { .. }) {
                deltas += 1;
            }
            if let Some(SessionFault::Garbage) = &current {
                for junk in [
                    Message::text("this is not JSON"),
                    Message::binary(vec![0u8, 1, 2, 3]),
                    Message::text(r#"{"type":"session.heartbeat","event_id":"evt_x"}"#),
                    Message::text(r#"{"type":"response.output_audio.delta","delta":42}"#),
                ] {
                    if sink.send(junk).await.is_err() {
                        break;
                    }
                }
            }
            let text = ev.to_json();
            if let Some(p) = wprobe.get() {
                probe_written(p, &ev, &mut scratch);
            }
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
            if let Some(SessionFault::DropAfterDeltas(n)) = current
                && deltas >= n {
                    // An abrupt drop: no close frame.
                    wdropped.cancel();
                    return;
                }
        }
        let _ = sink.close().await;
    });
    let shared = Arc::new(Shared {
        log: log.clone(),
        out: tx,
        active: Mutex::new(None),
        item_audio: Mutex::default(),
        ids: Default::default(),
        cancel_reason: Mutex::new("turn_detected"),
        out_of_band: Mutex::default(),
        conversation_id: format!("conv_{:08x}", rand_u32()),
        probe,
        activity: activity.clone(),
    });
    let faults = opts.faults.by_caller.clone();
    let mut session = Session::new(shared.clone(), scenarios, opts);
    session.transcription = transcription;
    log.lock().transcription = transcription;
    if beta {
        shared.error(err("invalid_request_error", "beta_api_shape_disabled", "The beta API shape is disabled; use the GA interface.".into(), None, None));
    } else {
        let created = if transcription {
            json!({"type":"transcription","object":"realtime.transcription_session","id": shared.id("sess")})
        } else {
            json!({"type":"realtime","object":"realtime.session","id": shared.id("sess"),"model":"gpt-realtime","output_modalities":["audio"]})
        };
        shared.send(ServerEvent::SessionCreated { event_id: shared.id("event"), session: created });
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = dropped.cancelled() => break,
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(p) = shared.probe.get() {
                            session.read_at_ns = p.now_ns();
                        }
                        session.on_text(text.as_str());
                        // Tests wait on what the session saw (`ModelFake::wait_until`); an
                        // append alone (50 a second) is not worth a wake-up.
                        if !text.as_str().starts_with(r#"{"type":"input_audio_buffer.append""#) {
                            shared.activity.send_modify(|n| *n += 1);
                        }
                        // Arm this session's fault once its caller is known (once per number).
                        if fault.lock().is_none() {
                            let number = shared.log.lock().caller_number.clone();
                            if let Some(f) = number.and_then(|n| faults.get(&n).cloned().filter(|_| fired.lock().insert(n))) {
                                session.fault = Some(f.clone());
                                *fault.lock() = Some(f);
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => shared.error(err("invalid_request_error", "invalid_event", "Binary frames are not supported.".into(), None, None)),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    session.cancel_active("client_closed");
    drop(session);
    drop(shared);
    if dropped.is_cancelled() {
        // Abrupt drop: the writer returned holding the sink; dropping both kills the TCP stream.
        drop(stream);
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    log.lock().closed = true;
    activity.send_modify(|n| *n += 1);
}

struct Vad {
    speaking: bool,
    item_id: String,
    start_ms: u64,
    last_speech_end_ms: u64,
    pending: Vec<u8>,
    processed_bytes: u64,
    /// Where the caller's present silence began for the idle timeout (ms of input audio; after
    /// a response, when its audio had played), while nobody speaks and no response runs.
    idle_from_ms: Option<u64>,
    /// A response ran since the caller last spoke: the idle timeout counts from when its audio
    /// has played, not from `response.done` (PROTOCOLS.md §5).
    after_response: bool,
}

struct Session {
    shared: Arc<Shared>,
    scenarios: Arc<Vec<Scenario>>,
    scenario: Option<Scenario>,
    opts: ModelFakeOptions,
    config: Option<SessionConfig>,
    vad: Vad,
    next_agent_line: usize,
    /// The function call before `next_agent_line` has been made.
    function_called: bool,
    caller_turns: usize,
    last_item: Option<String>,
    scratch: Vec<u8>,
    /// This session's fault, once armed.
    fault: Option<SessionFault>,
    /// Stalled: nothing more is sent.
    stalled: bool,
    /// A supervisor instruction (whisper) not yet acknowledged in a response.
    instruction: Option<String>,
    /// When the text being handled was read (probe clock, ns).
    read_at_ns: u64,
    /// A transcription-only session (PROTOCOLS.md §5): it transcribes and never answers.
    transcription: bool,
    /// Utterances transcribed so far (a transcription-only session).
    utterances: usize,
}

const CLIENT_TYPES: &[&str] = &[
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
];

/// Keys allowed at each level of the GA shapes we check; anything else is `unknown_parameter`.
fn allowed_keys(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "session" => &["type", "model", "output_modalities", "instructions", "audio", "include", "tracing", "tools", "tool_choice", "max_output_tokens", "truncation", "prompt"],
        "session.audio" => &["input", "output"],
        "session.audio.input" => &["format", "noise_reduction", "transcription", "turn_detection"],
        "session.audio.output" => &["format", "voice", "speed"],
        "session.audio.input.format" | "session.audio.output.format" => &["type", "rate"],
        "session.audio.input.noise_reduction" => &["type"],
        "session.audio.input.transcription" => &["model", "language", "prompt"],
        "session.audio.input.turn_detection" => &["type", "threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms", "create_response", "interrupt_response", "eagerness"],
        "response" => &["instructions", "conversation", "input", "metadata", "output_modalities", "audio", "tools", "tool_choice", "max_output_tokens", "prompt"],
        _ => return None,
    })
}

/// Keys allowed in a transcription session's `session` (`RealtimeTranscriptionSessionCreateRequest`,
/// PROTOCOLS.md §5), by path under `session`.
fn transcription_keys(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "session" => &["type", "audio", "include"],
        "session.audio" => &["input"],
        "session.audio.input" => &["format", "noise_reduction", "transcription", "turn_detection"],
        "session.audio.input.format" => &["type", "rate"],
        "session.audio.input.noise_reduction" => &["type"],
        "session.audio.input.transcription" => &["model", "language", "prompt"],
        "session.audio.input.turn_detection" => &["type", "threshold", "prefix_padding_ms", "silence_duration_ms"],
        _ => return None,
    })
}

/// Checks `v` against the keys allowed at `path` (`transcription_session` for a transcription
/// session's `session`); the first unknown key's path is the error (as the service's `param`).
fn check_shape(v: &Value, path: &str) -> Result<(), String> {
    match path.strip_prefix("transcription_session") {
        Some(rest) => check_keys(v, &format!("session{rest}"), transcription_keys),
        None => check_keys(v, path, allowed_keys),
    }
}

/// Checks the values of a `session` the GA API constrains (PROTOCOLS.md §1, §5): the turn
/// detection's type and its own fields (`idle_timeout_ms` 5000–30000 and server VAD only;
/// semantic VAD's `eagerness`), noise reduction, the transcription language (ISO-639-1), voice,
/// speed 0.25–1.5, a stored prompt's id.
/// The error is `(code, param, message)` as the service words it.
fn check_session_values(v: &Value) -> Result<(), (&'static str, String, String)> {
    let bad = |param: &str, message: String| Err(("invalid_value", format!("session.{param}"), message));
    let input = &v["audio"]["input"];
    let td = &input["turn_detection"];
    if td.is_object() {
        match td["type"].as_str() {
            Some("server_vad") => {
                if let Some(ms) = td.get("idle_timeout_ms").filter(|x| !x.is_null()) {
                    match ms.as_u64() {
                        Some(ms) if (5000..=30_000).contains(&ms) => {}
                        _ => return bad("audio.input.turn_detection.idle_timeout_ms", format!("Invalid 'session.audio.input.turn_detection.idle_timeout_ms': integer between 5000 and 30000 expected, got {ms}.")),
                    }
                }
            }
            Some("semantic_vad") => {
                for k in ["threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"] {
                    if td.get(k).is_some() {
                        return Err(("unknown_parameter", format!("session.audio.input.turn_detection.{k}"), format!("Unknown parameter: 'session.audio.input.turn_detection.{k}' (semantic_vad).")));
                    }
                }
                if !matches!(td["eagerness"].as_str(), None | Some("low" | "medium" | "high" | "auto")) {
                    return bad("audio.input.turn_detection.eagerness", format!("Invalid value: {}. Supported values are: 'low', 'medium', 'high' and 'auto'.", td["eagerness"]));
                }
            }
            _ => return bad("audio.input.turn_detection.type", format!("Invalid value: {}. Supported values are: 'server_vad' and 'semantic_vad'.", td["type"])),
        }
    }
    if let Some(nr) = input.get("noise_reduction").filter(|x| !x.is_null())
        && !matches!(nr["type"].as_str(), Some("near_field" | "far_field")) {
            return bad("audio.input.noise_reduction.type", format!("Invalid value: {}. Supported values are: 'near_field' and 'far_field'.", nr["type"]));
        }
    // The transcription language, when fixed, is ISO-639-1 (two lower-case letters); left out,
    // the transcription model detects it.
    if let Some(lang) = input["transcription"].get("language").filter(|x| !x.is_null())
        && !lang.as_str().is_some_and(|l| l.len() == 2 && l.chars().all(|c| c.is_ascii_lowercase()))
    {
        return bad("audio.input.transcription.language", format!("Invalid 'session.audio.input.transcription.language': an ISO-639-1 code (e.g. en) expected, got {lang}."));
    }
    let output = &v["audio"]["output"];
    if let Some(voice) = output.get("voice")
        && !voice.as_str().is_some_and(|x| VOICES.contains(&x)) {
            return bad("audio.output.voice", format!("Invalid value: {voice}. Supported values are: {}.", VOICES.join(", ")));
        }
    if let Some(speed) = output.get("speed")
        && !speed.as_f64().is_some_and(|x| (0.25..=1.5).contains(&x)) {
            return bad("audio.output.speed", format!("Invalid 'session.audio.output.speed': number between 0.25 and 1.5 expected, got {speed}."));
        }
    if let Some(prompt) = v.get("prompt").filter(|x| !x.is_null()) {
        if !prompt["id"].as_str().is_some_and(|id| id.starts_with("pmpt_")) {
            return bad("prompt.id", format!("Invalid 'session.prompt.id': a stored prompt's id (pmpt_…) expected, got {}.", prompt["id"]));
        }
        if prompt.get("version").is_some_and(|x| !x.is_string()) {
            return bad("prompt.version", "Invalid 'session.prompt.version': a string expected.".into());
        }
        if prompt.get("variables").is_some_and(|x| !x.is_object()) {
            return bad("prompt.variables", "Invalid 'session.prompt.variables': an object expected.".into());
        }
    }
    Ok(())
}

/// The Realtime API's voices (PROTOCOLS.md §1).
const VOICES: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"];

fn check_keys(v: &Value, path: &str, keys_at: fn(&str) -> Option<&'static [&'static str]>) -> Result<(), String> {
    let Some(obj) = v.as_object() else { return Ok(()) };
    if let Some(keys) = keys_at(path) {
        for (k, child) in obj {
            let p = format!("{path}.{k}");
            if !keys.contains(&k.as_str()) {
                return Err(p);
            }
            check_keys(child, &p, keys_at)?;
        }
    }
    Ok(())
}

fn level_dbfs(threshold: f32) -> f32 {
    -65.0 + 50.0 * threshold
}

impl Session {
    fn new(shared: Arc<Shared>, scenarios: Arc<Vec<Scenario>>, opts: ModelFakeOptions) -> Self {
        Session {
            shared,
            scenarios,
            scenario: None,
            opts,
            config: None,
            vad: Vad { speaking: false, item_id: String::new(), start_ms: 0, last_speech_end_ms: 0, pending: Vec::new(), processed_bytes: 0, idle_from_ms: None, after_response: false },
            next_agent_line: 0,
            function_called: false,
            caller_turns: 0,
            last_item: None,
            scratch: Vec::new(),
            fault: None,
            stalled: false,
            instruction: None,
            read_at_ns: 0,
            transcription: false,
            utterances: 0,
        }
    }

    fn on_text(&mut self, text: &str) {
        if self.stalled {
            // A stalled service reads and says nothing.
            if let Ok(ClientEvent::InputAudioBufferAppend { audio, .. }) = ClientEvent::parse(text)
                && mulaw::decode_base64_into(&audio, &mut self.scratch).is_ok() {
                    self.shared.log.lock().input_audio.extend_from_slice(&self.scratch);
                }
            return;
        }
        // The hot path: an append is checked by its typed parse alone (it has no nested shapes).
        if text.starts_with(r#"{"type":"input_audio_buffer.append""#)
            && let Ok(ClientEvent::InputAudioBufferAppend { audio, event_id }) = ClientEvent::parse(text)
        {
            if self.opts.keep_audio {
                self.shared.log.lock().received.push("input_audio_buffer.append".into());
            }
            self.on_append(&audio, event_id);
            return;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.shared.error(err("invalid_request_error", "invalid_json", format!("We could not parse the JSON body of your request: {e}"), None, None));
                return;
            }
        };
        let event_id = value.get("event_id").and_then(Value::as_str).map(str::to_string);
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            self.shared.error(err("invalid_request_error", "invalid_event", "The 'type' field is missing.".into(), None, event_id));
            return;
        };
        self.shared.log.lock().received.push(kind.to_string());
        if !CLIENT_TYPES.contains(&kind) {
            self.shared.error(err("invalid_request_error", "invalid_value", format!("Invalid value: '{kind}'. Supported values are: {}.", CLIENT_TYPES.join(", ")), Some("type".into()), event_id));
            return;
        }
        let session_type = value.get("session").and_then(|v| v.get("type")).and_then(Value::as_str);
        if kind == "session.update" && session_type.is_some_and(|t| (t == "transcription") != self.transcription) {
            let t = session_type.unwrap_or_default();
            let opened = if self.transcription { "transcription" } else { "realtime" };
            self.shared.error(err("invalid_request_error", "invalid_value", format!("Invalid value: '{t}'. This session was created as a '{opened}' session and its type cannot change."), Some("session.type".into()), event_id));
            return;
        }
        if self.transcription && matches!(kind, "response.create" | "response.cancel" | "conversation.item.create" | "conversation.item.truncate" | "conversation.item.delete" | "conversation.item.retrieve" | "output_audio_buffer.clear") {
            self.shared.error(err("invalid_request_error", "invalid_value", format!("'{kind}' is not supported in a transcription session."), Some("type".into()), event_id));
            return;
        }
        let session_shape = if self.transcription { "transcription_session" } else { "session" };
        for (key, sub) in [("session", session_shape), ("response", "response")] {
            if let Some(v) = value.get(key)
                && let Err(param) = check_shape(v, sub) {
                    self.shared.error(err("invalid_request_error", "unknown_parameter", format!("Unknown parameter: '{param}'."), Some(param), event_id));
                    return;
                }
        }
        if let Some(v) = value.get("session")
            && let Err((code, param, message)) = check_session_values(v) {
                self.shared.error(err("invalid_request_error", code, message, Some(param), event_id));
                return;
            }
        let ev = match ClientEvent::parse(text) {
            Ok(ev) => ev,
            Err(e) => {
                // Known type the fake does not model (commit, clear, delete, retrieve) or a bad shape.
                self.shared.error(err("invalid_request_error", "invalid_value", e.to_string(), None, event_id));
                return;
            }
        };
        match ev {
            ClientEvent::SessionUpdate { session, .. } => self.on_session_update(*session),
            ClientEvent::InputAudioBufferAppend { audio, .. } => self.on_append(&audio, event_id),
            ClientEvent::ConversationItemCreate { item, .. } => {
                let id = self.shared.id("item");
                if let ItemCreate::FunctionCallOutput { call_id, output } = &item {
                    let mut log = self.shared.log.lock();
                    if !log.function_calls.iter().any(|(c, _, _)| c == call_id) {
                        drop(log);
                        self.shared.error(err("invalid_request_error", "invalid_value", format!("No function call with call_id '{call_id}'."), Some("item.call_id".into()), event_id));
                        return;
                    }
                    log.function_outputs.push((call_id.clone(), output.clone()));
                }
                if let ItemCreate::Message { role, .. } = &item {
                    // A re-injected conversation (a new session for a call under way): the
                    // scenario goes on from where the conversation is.
                    match role.as_str() {
                        "assistant" => self.next_agent_line += 1,
                        "user" => self.caller_turns += 1,
                        _ => {}
                    }
                }
                if let ItemCreate::Message { role, content } = &item
                    && role == "system" {
                        let text = content.iter().map(|c| match c {
                            watchfloor_wire::realtime::ContentPart::InputText { text } | watchfloor_wire::realtime::ContentPart::OutputText { text } => text.as_str(),
                        }).collect::<Vec<_>>().join(" ");
                        if let Some(instruction) = text.strip_prefix("Supervisor instruction: ") {
                            self.instruction = Some(instruction.to_string());
                        }
                        self.shared.log.lock().system_messages.push(text);
                    }
                let item = serde_json::to_value(&item).ok().and_then(|v| serde_json::from_value::<Item>(v).ok()).unwrap_or_default();
                self.shared.send(ServerEvent::ConversationItemAdded { event_id: self.shared.id("event"), previous_item_id: self.last_item.clone(), item: Item { id: Some(id.clone()), ..item } });
                self.last_item = Some(id);
            }
            ClientEvent::ConversationItemTruncate { item_id, audio_end_ms, content_index, .. } => {
                let sent = self.shared.item_audio.lock().get(&item_id).copied();
                match sent {
                    None => self.shared.error(err("invalid_request_error", "item_not_found", format!("Item with item_id '{item_id}' not found."), Some("item_id".into()), event_id)),
                    Some(bytes) if audio_end_ms > mulaw::bytes_to_ms(bytes as usize) => self.shared.error(err(
                        "invalid_request_error",
                        "invalid_value",
                        format!("Audio content of {}ms is already shorter than {audio_end_ms}ms", mulaw::bytes_to_ms(bytes as usize)),
                        Some("audio_end_ms".into()),
                        event_id,
                    )),
                    Some(_) => {
                        self.shared.log.lock().truncations.push((item_id.clone(), audio_end_ms));
                        self.shared.send(ServerEvent::ConversationItemTruncated { event_id: self.shared.id("event"), item_id, content_index, audio_end_ms });
                    }
                }
            }
            ClientEvent::ResponseCreate { response, .. } => {
                match response.as_ref().and_then(|r| r.conversation.as_deref()) {
                    None | Some("auto") => {}
                    Some("none") => {
                        // Invariant: `conversation` is set, so `response` is.
                        let params = response.expect("response params");
                        match out_of_band_text(&params) {
                            Ok(text) => self.start_out_of_band(params.metadata.unwrap_or_default(), text),
                            Err((param, message)) => self.shared.error(err("invalid_request_error", "invalid_value", message, Some(param), event_id)),
                        }
                        return;
                    }
                    Some(other) => {
                        self.shared.error(err("invalid_request_error", "invalid_value", format!("Invalid value: '{other}'. Supported values are: 'auto' and 'none'."), Some("response.conversation".into()), event_id));
                        return;
                    }
                }
                if self.shared.active.lock().is_some() {
                    self.shared.error(err("invalid_request_error", "conversation_already_has_active_response", "Conversation already has an active response in progress.".into(), None, event_id));
                    return;
                }
                self.start_response();
            }
            ClientEvent::ResponseCancel { response_id: Some(id), .. } if self.shared.out_of_band.lock().contains_key(&id) => {
                self.shared.log.lock().cancels += 1;
                if let Some(token) = self.shared.out_of_band.lock().get(&id) {
                    token.cancel();
                }
            }
            ClientEvent::ResponseCancel { .. } => {
                self.shared.log.lock().cancels += 1;
                if !self.cancel_active("client_cancelled") {
                    self.shared.error(err("invalid_request_error", "response_cancel_not_active", "Cancellation failed: no active response found.".into(), None, event_id));
                }
            }
        }
    }

    fn on_session_update(&mut self, session: SessionConfig) {
        if let Some(instr) = &session.instructions {
            let number = self.scenarios.iter().find(|s| instr.contains(&s.caller_number)).map(|s| s.caller_number.clone());
            if let Some(n) = &number {
                self.scenario = self.scenarios.iter().find(|s| &s.caller_number == n).cloned();
            }
            if let (Some(n), Some(probes)) = (&number, &self.opts.probes)
                && let Some(p) = probes.for_number(n) {
                    let _ = self.shared.probe.set(p);
                }
            self.shared.log.lock().caller_number = number;
        }
        self.shared.log.lock().session = Some(session.clone());
        let echo = serde_json::to_value(&session).unwrap_or(Value::Null);
        self.config = Some(session);
        self.shared.send(ServerEvent::SessionUpdated { event_id: self.shared.id("event"), session: echo });
    }

    fn vad_params(&self) -> (f32, u64, u64, bool, bool) {
        match self.config.as_ref().and_then(|c| c.audio.as_ref()).and_then(|a| a.input.as_ref()).and_then(|i| i.turn_detection.as_ref()) {
            Some(TurnDetection::ServerVad { threshold, prefix_padding_ms, silence_duration_ms, create_response, interrupt_response, .. }) => {
                (*threshold, *prefix_padding_ms as u64, *silence_duration_ms as u64, create_response.unwrap_or(true), interrupt_response.unwrap_or(true))
            }
            Some(TurnDetection::SemanticVad { create_response, interrupt_response, .. }) => (0.5, 300, 500, create_response.unwrap_or(true), interrupt_response.unwrap_or(true)),
            None => (0.5, 300, 500, true, true),
        }
    }

    fn on_append(&mut self, audio: &str, event_id: Option<String>) {
        if let Err(e) = mulaw::decode_base64_into(audio, &mut self.scratch) {
            self.shared.error(err("invalid_request_error", "invalid_value", format!("Invalid 'audio': {e}"), Some("audio".into()), event_id));
            return;
        }
        if self.opts.keep_audio {
            self.shared.log.lock().input_audio.extend_from_slice(&self.scratch);
        }
        if let Some(p) = self.shared.probe.get() {
            p.up_received(&self.scratch, self.read_at_ns);
        }
        let bytes = std::mem::take(&mut self.scratch);
        self.vad.pending.extend_from_slice(&bytes);
        self.scratch = bytes;
        let (threshold, prefix, silence, create, interrupt) = self.vad_params();
        let level = level_dbfs(threshold);
        while self.vad.pending.len() >= FRAME_BYTES {
            let speech = mulaw::rms_dbfs(&self.vad.pending[..FRAME_BYTES]) >= level;
            self.vad.pending.drain(..FRAME_BYTES);
            let start_ms = mulaw::bytes_to_ms(self.vad.processed_bytes as usize);
            self.vad.processed_bytes += FRAME_BYTES as u64;
            let end_ms = mulaw::bytes_to_ms(self.vad.processed_bytes as usize);
            if speech {
                self.vad.last_speech_end_ms = end_ms;
                if !self.vad.speaking {
                    self.vad.speaking = true;
                    self.vad.start_ms = start_ms.saturating_sub(prefix);
                    self.vad.item_id = self.shared.id("item");
                    self.shared.send(ServerEvent::SpeechStarted { event_id: self.shared.id("event"), audio_start_ms: self.vad.start_ms, item_id: self.vad.item_id.clone() });
                    if interrupt && !self.transcription {
                        self.cancel_active("turn_detected");
                    }
                }
            } else if self.vad.speaking && end_ms - self.vad.last_speech_end_ms >= silence {
                self.vad.speaking = false;
                self.end_caller_turn(create);
            }
            if !self.transcription {
                self.idle_check(speech, end_ms);
            }
        }
    }

    /// The server VAD's `idle_timeout_ms` (PROTOCOLS.md §5): after that much silence with no
    /// response running (counted from when the last response's audio has played), the service
    /// sends `input_audio_buffer.timeout_triggered`, commits the silent audio as the caller's
    /// turn and answers as if the turn had ended.
    fn idle_check(&mut self, speech: bool, end_ms: u64) {
        let limit = match self.config.as_ref().and_then(|c| c.audio.as_ref()).and_then(|a| a.input.as_ref()).and_then(|i| i.turn_detection.as_ref()) {
            Some(TurnDetection::ServerVad { idle_timeout_ms: Some(Some(ms)), .. }) => *ms as u64,
            _ => return,
        };
        if self.shared.active.lock().is_some() {
            self.vad.after_response = true;
            self.vad.idle_from_ms = None;
            return;
        }
        if speech || self.vad.speaking {
            self.vad.after_response = false;
            self.vad.idle_from_ms = None;
            return;
        }
        let from = match self.vad.idle_from_ms {
            Some(from) => from,
            None => {
                let played = if std::mem::take(&mut self.vad.after_response) {
                    self.shared.log.lock().agent_audio.last().map_or(0, |(_, a)| mulaw::bytes_to_ms(a.len()))
                } else {
                    0
                };
                *self.vad.idle_from_ms.insert(end_ms + played)
            }
        };
        if end_ms < from + limit {
            return;
        }
        self.vad.idle_from_ms = None;
        let item_id = self.shared.id("item");
        self.shared.send(ServerEvent::InputAudioBufferTimeoutTriggered { event_id: self.shared.id("event"), audio_start_ms: from, audio_end_ms: end_ms, item_id: item_id.clone() });
        self.shared.send(ServerEvent::InputAudioBufferCommitted { event_id: self.shared.id("event"), item_id: item_id.clone(), previous_item_id: self.last_item.replace(item_id) });
        self.shared.log.lock().idle_timeouts.push((from, end_ms));
        self.shared.activity.send_modify(|n| *n += 1);
        self.start_response();
    }

    /// A transcription session's utterance ended: its line (no item in a conversation, no answer).
    fn end_utterance(&mut self) {
        let item_id = self.vad.item_id.clone();
        let (start, end) = (self.vad.start_ms, self.vad.last_speech_end_ms);
        self.shared.log.lock().turns.push((start, end));
        self.shared.send(ServerEvent::SpeechStopped { event_id: self.shared.id("event"), audio_end_ms: end, item_id: item_id.clone() });
        self.shared.send(ServerEvent::InputAudioBufferCommitted { event_id: self.shared.id("event"), item_id: item_id.clone(), previous_item_id: self.last_item.replace(item_id.clone()) });
        let text = self.opts.transcripts.get(self.utterances).cloned().unwrap_or_else(|| format!("(speech, {:.1} s)", end.saturating_sub(start) as f64 / 1000.0));
        self.utterances += 1;
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        for chunk in words.chunks(3) {
            self.shared.send(ServerEvent::InputTranscriptionDelta { event_id: self.shared.id("event"), item_id: item_id.clone(), content_index: 0, delta: chunk.concat() });
        }
        self.shared.send(ServerEvent::InputTranscriptionCompleted { event_id: self.shared.id("event"), item_id, content_index: 0, transcript: text.clone() });
        self.shared.log.lock().transcripts.push(text);
        self.shared.activity.send_modify(|n| *n += 1);
    }

    fn end_caller_turn(&mut self, create_response: bool) {
        if self.transcription {
            self.end_utterance();
            return;
        }
        match &self.fault {
            Some(SessionFault::StallAfterTurns(n)) if self.caller_turns >= *n => {
                self.stalled = true;
                self.cancel_active("turn_detected");
                return;
            }
            Some(SessionFault::ErrorAfterFirstTurn(code)) if self.caller_turns >= 1 => {
                let code = code.clone();
                self.shared.error(err("insufficient_quota", &code, "You exceeded your current quota.".into(), None, None));
                return;
            }
            _ => {}
        }
        let item_id = self.vad.item_id.clone();
        let (start, end) = (self.vad.start_ms, self.vad.last_speech_end_ms);
        self.shared.log.lock().turns.push((start, end));
        self.shared.activity.send_modify(|n| *n += 1);
        self.shared.send(ServerEvent::SpeechStopped { event_id: self.shared.id("event"), audio_end_ms: end, item_id: item_id.clone() });
        self.shared.send(ServerEvent::InputAudioBufferCommitted { event_id: self.shared.id("event"), item_id: item_id.clone(), previous_item_id: self.last_item.clone() });
        self.shared.send(ServerEvent::ConversationItemAdded {
            event_id: self.shared.id("event"),
            previous_item_id: self.last_item.clone(),
            item: Item { id: Some(item_id.clone()), kind: "message".into(), role: Some("user".into()), status: Some("completed".into()), content: Some(vec![json!({"type":"input_audio","transcript":null})]), ..Default::default() },
        });
        self.last_item = Some(item_id.clone());
        let text = self.scenario.as_ref().and_then(|s| s.turns.get(self.caller_turns)).map(|t| t.caller.text.clone()).unwrap_or_else(|| "(inaudible)".into());
        self.caller_turns += 1;
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        for chunk in words.chunks(3) {
            self.shared.send(ServerEvent::InputTranscriptionDelta { event_id: self.shared.id("event"), item_id: item_id.clone(), content_index: 0, delta: chunk.concat() });
        }
        self.shared.send(ServerEvent::InputTranscriptionCompleted { event_id: self.shared.id("event"), item_id, content_index: 0, transcript: text });
        if create_response && self.shared.active.lock().is_none() {
            self.start_response();
        }
    }

    /// Cancels the active response; true if there was one.
    fn cancel_active(&mut self, reason: &'static str) -> bool {
        if let Some((_, token)) = self.shared.active.lock().as_ref() {
            *self.shared.cancel_reason.lock() = reason;
            token.cancel();
            return true;
        }
        false
    }

    /// An out-of-band response: voiced beside the conversation, adding nothing to it.
    fn start_out_of_band(&mut self, metadata: serde_json::Map<String, Value>, text: String) {
        let resp_id = self.shared.id("resp");
        let item_id = self.shared.id("item");
        let token = CancellationToken::new();
        self.shared.out_of_band.lock().insert(resp_id.clone(), token.clone());
        if let Some(p) = self.shared.probe.get() {
            p.out_of_band(&resp_id);
        }
        let beside_active = self.shared.active.lock().is_some();
        self.shared.log.lock().out_of_band.push(OutOfBandLog { response_id: resp_id.clone(), metadata: metadata.clone(), text: text.clone(), audio: Vec::new(), beside_active, status: "in_progress".into() });
        tokio::spawn(run_out_of_band(self.shared.clone(), resp_id, item_id, metadata, text, self.opts.clone(), token));
    }

    fn start_response(&mut self) {
        let resp_id = self.shared.id("resp");
        let call = self.scenario.as_ref().and_then(|s| s.agent_function_call(self.next_agent_line)).cloned();
        if let (Some(call), false) = (call, self.function_called) {
            // The model reports first; the line comes with the response after the output.
            self.function_called = true;
            let item_id = self.shared.id("item");
            let call_id = self.shared.id("call");
            let token = CancellationToken::new();
            *self.shared.active.lock() = Some((resp_id.clone(), token));
            self.last_item = Some(item_id.clone());
            self.shared.log.lock().function_calls.push((call_id.clone(), call.name.clone(), call.arguments.clone()));
            run_function_call(&self.shared, resp_id, item_id, call_id, call.name, call.arguments);
            return;
        }
        let mut line = self.scenario.as_ref().and_then(|s| s.agent_line(self.next_agent_line)).cloned();
        self.next_agent_line += 1;
        self.function_called = false;
        // The next response follows a whisper: its words say so (the audio stays the scenario's).
        if let (Some(l), Some(instruction)) = (line.as_mut(), self.instruction.take()) {
            l.text = format!("{} (Following the supervisor: {instruction})", l.text);
        }
        let item_id = self.shared.id("item");
        let token = CancellationToken::new();
        *self.shared.active.lock() = Some((resp_id.clone(), token.clone()));
        let previous = self.last_item.replace(item_id.clone());
        let shared = self.shared.clone();
        let opts = self.opts.clone();
        tokio::spawn(run_response(shared, resp_id, item_id, previous, line, opts, token));
    }
}

/// A pseudo-random u32 (ids only; not for anything that needs randomness).
fn rand_u32() -> u32 {
    rand::random()
}

/// Checks an out-of-band `response.create` and returns the text it asks to voice: the
/// `input` items' text (or the instructions when there is no input). Errors name the `param`.
fn out_of_band_text(p: &watchfloor_wire::realtime::ResponseCreateParams) -> Result<String, (String, String)> {
    if let Some(m) = &p.metadata {
        if m.len() > 16 {
            return Err(("response.metadata".into(), format!("Invalid 'response.metadata': too many properties. Expected an object with at most 16 properties, but got an object with {} properties instead.", m.len())));
        }
        for (k, v) in m {
            if k.chars().count() > 64 {
                return Err(("response.metadata".into(), format!("Invalid 'response.metadata': key '{k}' is longer than 64 characters.")));
            }
            match v.as_str() {
                Some(s) if s.chars().count() <= 512 => {}
                Some(_) => return Err((format!("response.metadata.{k}"), "Invalid 'response.metadata': string value too long. Expected a string with maximum length 512.".into())),
                None => return Err((format!("response.metadata.{k}"), "Invalid type for 'response.metadata': expected a string.".into())),
            }
        }
    }
    let text = match &p.input {
        Some(items) => items
            .iter()
            .filter_map(|i| match i {
                ItemCreate::Message { content, .. } => Some(
                    content
                        .iter()
                        .map(|c| match c {
                            watchfloor_wire::realtime::ContentPart::InputText { text } | watchfloor_wire::realtime::ContentPart::OutputText { text } => text.as_str(),
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => p.instructions.clone().unwrap_or_default(),
    };
    Ok(text)
}

/// Speech-like μ-law for a text: a tone burst per word (60 ms per letter, 200–600 ms, pitch
/// from the word) and 80 ms between words — about 150 words a minute.
pub fn voice(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let letters = word.chars().filter(|c| c.is_alphanumeric()).count() as u64;
        let ms = (letters * 60).clamp(200, 600);
        let pitch = 180.0 + (word.bytes().map(u32::from).sum::<u32>() % 7) as f64 * 30.0;
        let n = mulaw::ms_to_bytes(ms);
        for i in 0..n {
            let t = i as f64 / f64::from(mulaw::SAMPLE_RATE_HZ);
            // A soft attack and release so bursts do not click.
            let env = (i.min(n - i) as f64 / 80.0).min(1.0);
            let s = (t * pitch * std::f64::consts::TAU).sin() * 8000.0 * env;
            out.push(mulaw::encode(s as i16));
        }
        out.extend(std::iter::repeat_n(0xFF, mulaw::ms_to_bytes(80)));
    }
    out
}

/// An out-of-band response: `response.created` (with `conversation_id: null` and the metadata),
/// one assistant message item outside the conversation, its audio and transcript deltas paced
/// like a conversation response, then `response.done`.
async fn run_out_of_band(shared: Arc<Shared>, resp_id: String, item_id: String, metadata: serde_json::Map<String, Value>, text: String, opts: ModelFakeOptions, cancel: CancellationToken) {
    let ev = |s: &Shared| s.id("event");
    let response = |status: &str| Response { id: resp_id.clone(), object: Some("realtime.response".into()), status: status.into(), conversation_id: None, metadata: Some(Value::Object(metadata.clone())), ..Default::default() };
    shared.send(ServerEvent::ResponseCreated { event_id: ev(&shared), response: response("in_progress") });
    let item = |status: &str, transcript: Option<&str>| assistant_item(&item_id, status, transcript);
    shared.send(ServerEvent::ResponseOutputItemAdded { event_id: ev(&shared), response_id: resp_id.clone(), output_index: 0, item: item("in_progress", None) });
    let audio = voice(&text);
    let (status, _) = stream_audio(&shared, &resp_id, &item_id, &audio, &text, &opts, &cancel, false, |chunk| {
        if let Some(l) = shared.log.lock().out_of_band.iter_mut().find(|l| l.response_id == resp_id) {
            l.audio.extend_from_slice(chunk);
        }
    })
    .await;
    if status == "completed" {
        shared.send(ServerEvent::ResponseOutputAudioDone { event_id: ev(&shared), response_id: resp_id.clone(), item_id: item_id.clone(), output_index: 0, content_index: 0 });
        shared.send(ServerEvent::ResponseOutputAudioTranscriptDone { event_id: ev(&shared), response_id: resp_id.clone(), item_id: item_id.clone(), output_index: 0, content_index: 0, transcript: text.clone() });
    }
    shared.send(ServerEvent::ResponseOutputItemDone { event_id: ev(&shared), response_id: resp_id.clone(), output_index: 0, item: item(if status == "completed" { "completed" } else { "incomplete" }, Some(&text)) });
    shared.out_of_band.lock().remove(&resp_id);
    if let Some(l) = shared.log.lock().out_of_band.iter_mut().find(|l| l.response_id == resp_id) {
        l.status = status.into();
    }
    let details = (status == "cancelled").then(|| json!({"type":"cancelled","reason":"client_cancelled"}));
    shared.send(ServerEvent::ResponseDone { event_id: ev(&shared), response: Response { status_details: details, ..response(status) } });
}

/// Tells the session's probe what is being written now (the load generator's clock).
fn probe_written(p: &CallProbe, ev: &ServerEvent, scratch: &mut Vec<u8>) {
    match ev {
        ServerEvent::ResponseOutputAudioDelta { response_id, item_id, delta, .. } if mulaw::decode_base64_into(delta, scratch).is_ok() => p.down_sent(response_id, item_id, scratch),
        ServerEvent::ResponseOutputAudioDone { item_id, .. } => p.down_done(item_id),
        ServerEvent::SpeechStarted { .. } => p.speech_started(),
        ServerEvent::ResponseDone { response, .. } if response.status == "cancelled" => p.response_cancelled(&response.id),
        ServerEvent::ResponseOutputAudioTranscriptDelta { item_id, response_id, .. } => p.transcript_delta(item_id, Some(response_id)),
        ServerEvent::InputTranscriptionDelta { item_id, .. } => p.transcript_delta(item_id, None),
        _ => {}
    }
}

/// An assistant message item with audio (and its transcript once known).
fn assistant_item(item_id: &str, status: &str, transcript: Option<&str>) -> Item {
    Item {
        id: Some(item_id.to_string()),
        object: Some("realtime.item".into()),
        kind: "message".into(),
        status: Some(status.into()),
        role: Some("assistant".into()),
        content: Some(transcript.map(|t| vec![json!({"type":"output_audio","transcript":t})]).unwrap_or_default()),
        ..Default::default()
    }
}

/// Sends `audio` as `response.output_audio.delta`s cut and paced by `opts.pacing` (each delta
/// goes out when the service would have generated it), with the words of `text` as
/// transcript deltas keeping pace; `on_chunk` sees each chunk before it is sent. Stops at a
/// cancel. Returns `completed` or `cancelled`, and the words sent.
#[allow(clippy::too_many_arguments)]
async fn stream_audio(shared: &Shared, resp_id: &str, item_id: &str, audio: &[u8], text: &str, opts: &ModelFakeOptions, cancel: &CancellationToken, stamped: bool, mut on_chunk: impl FnMut(&[u8])) -> (&'static str, String) {
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = audio;
    for n in opts.pacing.delta_sizes(audio.len()) {
        let (c, r) = rest.split_at(n);
        chunks.push(c);
        rest = r;
    }
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let mut next = tokio::time::Instant::now();
    let mut spoken = String::new();
    let mut words_sent = 0;
    let mut item_offset = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        if cancel.is_cancelled() {
            return ("cancelled", spoken);
        }
        let mut owned = Vec::new();
        let chunk: &[u8] = match shared.probe.get() {
            Some(p) if stamped => {
                owned.extend_from_slice(chunk);
                p.stamp_down(&mut owned, item_offset);
                &owned
            }
            _ => chunk,
        };
        item_offset += chunk.len();
        on_chunk(chunk);
        shared.send(ServerEvent::ResponseOutputAudioDelta { event_id: shared.id("event"), response_id: resp_id.to_string(), item_id: item_id.to_string(), output_index: 0, content_index: 0, delta: mulaw::encode_base64(chunk) });
        let due = ((i + 1) * words.len()).div_ceil(chunks.len());
        while words_sent < due {
            spoken.push_str(words[words_sent]);
            shared.send(ServerEvent::ResponseOutputAudioTranscriptDelta { event_id: shared.id("event"), response_id: resp_id.to_string(), item_id: item_id.to_string(), output_index: 0, content_index: 0, delta: words[words_sent].to_string() });
            words_sent += 1;
        }
        next += opts.pacing.generation_time(chunk.len(), opts.speed);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = cancel.cancelled() => return ("cancelled", spoken),
        }
    }
    ("completed", spoken)
}

/// A response whose output is one `function_call` item (no audio), sent at once.
fn run_function_call(shared: &Shared, resp_id: String, item_id: String, call_id: String, name: String, arguments: String) {
    let ev = || shared.id("event");
    shared.send(ServerEvent::ResponseCreated { event_id: ev(), response: Response { id: resp_id.clone(), object: Some("realtime.response".into()), status: "in_progress".into(), conversation_id: Some(shared.conversation_id.clone()), ..Default::default() } });
    let item = |status: &str, args: &str| Item {
        id: Some(item_id.clone()),
        object: Some("realtime.item".into()),
        kind: "function_call".into(),
        status: Some(status.into()),
        name: Some(name.clone()),
        call_id: Some(call_id.clone()),
        arguments: Some(args.to_string()),
        ..Default::default()
    };
    shared.send(ServerEvent::ResponseOutputItemAdded { event_id: ev(), response_id: resp_id.clone(), output_index: 0, item: item("in_progress", "") });
    let mid = arguments.char_indices().nth(arguments.chars().count() / 2).map(|(i, _)| i).unwrap_or(0);
    for part in [&arguments[..mid], &arguments[mid..]] {
        shared.send(ServerEvent::FunctionCallArgumentsDelta { event_id: ev(), response_id: resp_id.clone(), item_id: item_id.clone(), output_index: 0, call_id: call_id.clone(), delta: part.to_string() });
    }
    shared.send(ServerEvent::FunctionCallArgumentsDone { event_id: ev(), response_id: resp_id.clone(), item_id: item_id.clone(), output_index: 0, call_id: call_id.clone(), name: Some(name.clone()), arguments: arguments.clone() });
    shared.send(ServerEvent::ResponseOutputItemDone { event_id: ev(), response_id: resp_id.clone(), output_index: 0, item: item("completed", &arguments) });
    {
        let mut active = shared.active.lock();
        if active.as_ref().is_some_and(|(id, _)| *id == resp_id) {
            *active = None;
        }
    }
    shared.send(ServerEvent::ResponseDone {
        event_id: ev(),
        response: Response { id: resp_id, object: Some("realtime.response".into()), status: "completed".into(), output: vec![item("completed", &arguments)], conversation_id: Some(shared.conversation_id.clone()), ..Default::default() },
    });
}

async fn run_response(shared: Arc<Shared>, resp_id: String, item_id: String, previous: Option<String>, line: Option<Line>, opts: ModelFakeOptions, cancel: CancellationToken) {
    let ev = |s: &Shared| s.id("event");
    shared.send(ServerEvent::ResponseCreated { event_id: ev(&shared), response: Response { id: resp_id.clone(), object: Some("realtime.response".into()), status: "in_progress".into(), conversation_id: Some(shared.conversation_id.clone()), ..Default::default() } });
    let item = |status: &str, transcript: Option<&str>| assistant_item(&item_id, status, transcript);
    let mut status = "completed";
    if let Some(line) = line {
        shared.send(ServerEvent::ResponseOutputItemAdded { event_id: ev(&shared), response_id: resp_id.clone(), output_index: 0, item: item("in_progress", None) });
        shared.send(ServerEvent::ConversationItemAdded { event_id: ev(&shared), previous_item_id: previous, item: item("in_progress", None) });
        shared.item_audio.lock().insert(item_id.clone(), 0);
        shared.log.lock().agent_audio.push((item_id.clone(), Vec::new()));
        let keep = opts.keep_audio;
        let (st, words) = stream_audio(&shared, &resp_id, &item_id, &line.audio, &line.text, &opts, &cancel, true, |chunk| {
            if keep {
                let mut log = shared.log.lock();
                if let Some((_, a)) = log.agent_audio.iter_mut().rev().find(|(id, _)| *id == item_id) {
                    a.extend_from_slice(chunk);
                }
            }
            *shared.item_audio.lock().entry(item_id.clone()).or_default() += chunk.len() as u64;
        })
        .await;
        status = st;
        let mut spoken = words;
        if status == "completed" {
            shared.send(ServerEvent::ResponseOutputAudioDone { event_id: ev(&shared), response_id: resp_id.clone(), item_id: item_id.clone(), output_index: 0, content_index: 0 });
            shared.send(ServerEvent::ResponseOutputAudioTranscriptDone { event_id: ev(&shared), response_id: resp_id.clone(), item_id: item_id.clone(), output_index: 0, content_index: 0, transcript: line.text.clone() });
            spoken = line.text.clone();
        }
        let item_status = if status == "completed" { "completed" } else { "incomplete" };
        shared.send(ServerEvent::ResponseOutputItemDone { event_id: ev(&shared), response_id: resp_id.clone(), output_index: 0, item: item(item_status, Some(&spoken)) });
    }
    let reason = *shared.cancel_reason.lock();
    let details = (status == "cancelled").then(|| json!({"type":"cancelled","reason":reason}));
    {
        let mut active = shared.active.lock();
        if active.as_ref().is_some_and(|(id, _)| *id == resp_id) {
            *active = None;
        }
    }
    shared.send(ServerEvent::ResponseDone {
        event_id: ev(&shared),
        response: Response { id: resp_id, object: Some("realtime.response".into()), status: status.into(), status_details: details, conversation_id: Some(shared.conversation_id.clone()), ..Default::default() },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_pacing_sends_a_six_second_reply_within_a_second_in_deltas_of_varying_size() {
        let audio = mulaw::ms_to_bytes(6_000);
        let sizes = Pacing::REAL.delta_sizes(audio);
        assert_eq!(sizes.iter().sum::<usize>(), audio);
        let (lo, hi) = (mulaw::ms_to_bytes(40), mulaw::ms_to_bytes(300));
        assert!(sizes[..sizes.len() - 1].iter().all(|n| (lo..=hi).contains(n)), "{sizes:?}");
        // Varying, and not cut on 20 ms frames: the bridge must frame them itself.
        assert!(sizes.iter().any(|n| n % mulaw::FRAME_BYTES != 0), "{sizes:?}");
        assert!(sizes.iter().collect::<std::collections::HashSet<_>>().len() > sizes.len() / 2, "{sizes:?}");
        let total: Duration = sizes.iter().map(|n| Pacing::REAL.generation_time(*n, 1.0)).sum();
        assert!((total.as_secs_f64() - 1.0).abs() < 0.001, "{total:?}");
        assert!((Pacing::REAL.generation_time(audio, 2.0).as_secs_f64() - 0.5).abs() < 0.001);
    }

    #[test]
    fn steady_pacing_is_round_ones() {
        let sizes = Pacing::STEADY.delta_sizes(mulaw::ms_to_bytes(1_050));
        assert_eq!(sizes, [vec![800; 10], vec![400]].concat());
        assert!(Pacing::STEADY.generation_time(800, 1.0).as_micros().abs_diff(66_667) <= 1);
    }

    #[test]
    fn pacing_from_the_command_line() {
        assert_eq!(Pacing::parse("real"), Ok(Pacing::REAL));
        assert_eq!(Pacing::parse("steady"), Ok(Pacing::STEADY));
        assert_eq!(Pacing::parse("burst:10"), Ok(Pacing::Burst { factor: 10.0, min_delta_ms: 40, max_delta_ms: 300 }));
        assert_eq!(Pacing::parse("steady:2"), Ok(Pacing::Steady { chunk_ms: 100, factor: 2.0 }));
        assert!(Pacing::parse("fast").is_err());
        assert!(Pacing::parse("burst:x").is_err());
    }
}
