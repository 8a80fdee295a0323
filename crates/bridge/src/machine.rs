//! The sans-IO relay of one call (str0m style): feed it inputs with [`CallMachine::handle_input`]
//! and the current time, then drain [`CallMachine::poll_output`]. No sockets, no clocks, no
//! sleeps: barge-in and timers are tested with plain values.
//!
//! What it does (PROTOCOLS.md):
//! - caller audio: μ-law passed through unchanged as `input_audio_buffer.append`; gaps in Twilio
//!   `timestamp`s padded with μ-law silence so the model's clock stays true (§2);
//! - agent audio: the `response.output_audio.delta`s of an item (of any size: the real service's
//!   are not cut on 20 ms) are sent to Twilio in whole 20 ms `media` frames — a part frame waits
//!   for the next delta, and the item's last one is filled with silence at `output_audio.done` —
//!   each followed by a named `mark` (`<item_id>:<end byte offset>`), so what has *played* is
//!   known to the frame and the agent's track "as heard" sits on an exact 20 ms grid (§2, §3);
//! - barge-in (§3): on `speech_started` while agent audio is playing: `clear`; `response.cancel`
//!   only if a response is in flight; `conversation.item.truncate` with `audio_end_ms` = audio
//!   played per the marks, never more than was received; late deltas of the cancelled response and
//!   the marks echoed because of the `clear` are dropped;
//! - transcripts of both speakers (partial and final), the conversation history, the count of agent
//!   questions, stage timings, and a `CallEvent` for every change.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use watchfloor_wire::mulaw::{self, FRAME_BYTES, FRAME_MS};
use watchfloor_wire::realtime::{ClientEvent, ItemCreate, ResponseCreateParams, ServerEvent};
use watchfloor_wire::twilio::{MarkName, OutboundMedia, TwilioInbound, TwilioOutbound};

use bytes::Bytes;

use watchfloor_dispatch::alerts::AlertKind;
use watchfloor_dispatch::call::{ActionRefused, CallDispatch, Effect, RosterAnswer, RosterRequest};
use watchfloor_dispatch::incident::Incident;
use watchfloor_dispatch::policy::Policy;
use watchfloor_dispatch::report;
use watchfloor_dispatch::units::{Roster, UnitStatus};

use watchfloor_call::{AudioFrame, CallEvent, CallEventKind, CallStatus, DispatchAudioStatus, FallbackRoute, HandOffAction, Speaker, Stage, Talking, Track};
use crate::profile::{AgentProfile, CallContext};

/// Longest gap in inbound timestamps that is padded with silence, ms. A larger jump is logged and
/// padded only up to this much (a 10-minute jump is a broken clock, not silence): the stream's
/// clock is re-based so the frames after the jump follow on.
pub const MAX_PADDED_GAP_MS: u64 = 10_000;

/// A `timestamp` this far or more behind the stream's clock is a clock that went back (re-based:
/// the frame follows on), not a repeated frame (skipped).
pub const MAX_CLOCK_STEP_BACK_MS: u64 = 1_000;

/// How far the stream's clock may run ahead of the wall clock since the stream started, as a
/// multiple of real time plus a burst, before its timestamps are re-based. A real stream's clock
/// never runs ahead of real time; a hostile one could move it hours ahead with one frame
/// (issue 15: a `timestamp` of 36 000 000 made a 1.15 GB recording) or 10 s with every frame.
/// The call's task sets it from the stream's flood limit ([`crate::flood::StreamLimits`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockLimit {
    /// Stream ms per wall ms.
    pub rate: f64,
    /// Stream ms allowed ahead of `rate` × the wall time.
    pub burst_ms: u64,
}

impl Default for ClockLimit {
    fn default() -> Self {
        let l = crate::flood::StreamLimits::default();
        ClockLimit { rate: l.audio_rate, burst_ms: l.audio_burst_ms as u64 }
    }
}
/// Caller audio for the recording is copied into blocks of this many bytes (a second of
/// μ-law), each frame a slice of one: one allocation per second of audio instead of per frame.
pub const RECORDING_BLOCK_BYTES: usize = 8000;

/// An input to the machine.
#[derive(Debug)]
pub enum Input {
    /// The model socket opened: send `session.update`.
    ModelConnected,
    /// A parsed Twilio media-stream message.
    Twilio(TwilioInbound),
    /// A Twilio frame that could not be parsed (`reason` says why).
    TwilioGarbage(String),
    /// A parsed model event.
    Model(ServerEvent),
    /// A model frame that could not be parsed.
    ModelGarbage(String),
    /// A supervisor command.
    Command(Command),
    /// The Twilio socket closed.
    TwilioClosed,
    /// The model socket closed (or failed).
    ModelClosed,
    /// A new model socket is open after [`Output::Reconnect`] (`renewed`: a planned renewal).
    ModelReconnected {
        /// A planned renewal before the session limit.
        renewed: bool,
    },
    /// [`Output::Reconnect`] failed.
    ReconnectFailed(String),
    /// A planned renewal failed; the current session goes on (retried a minute later).
    RenewFailed,
    /// [`Output::Fallback`] was carried out.
    FallbackDone {
        /// How the caller was sent on.
        via: FallbackRoute,
        /// REST requests made.
        attempts: u32,
        /// Why REST failed, if it did.
        rest_error: Option<String>,
    },
    /// The roster owner's answer to the oldest [`Output::Roster`] not yet answered.
    Roster(RosterAnswer),
    /// The roster changed (its owner published a new one): what proposals recommend from and
    /// supervisor unit lists are checked against.
    RosterChanged(Arc<Roster>),
    /// [`Output::HandOff`] was carried out: `Err` with Twilio REST's error (secrets left out).
    HandOffDone(Result<(), String>),
    /// The deadline given by [`CallMachine::poll_timeout`] has passed: dispatch hold window,
    /// silent caller, stall detection, session renewal.
    Timeout,
}

/// How long the model may stay silent while the caller speaks before the call goes to a human.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(8);
/// Caller speech (ms) that must accumulate without any model event before it counts as a stall.
pub const STALL_MIN_SPEECH_MS: u64 = 1500;
/// Level above which a caller frame counts as speech for stall detection, dBFS.
pub const STALL_SPEECH_DBFS: f32 = -40.0;
/// A caller silent this long while the agent waits raises an alert.
pub const SILENT_CALLER: Duration = Duration::from_secs(15);
/// Realtime sessions last at most 60 minutes (PROTOCOLS.md §1).
pub const SESSION_LIMIT: Duration = Duration::from_secs(60 * 60);
/// A session is renewed at a quiet moment after this age, and regardless at `SESSION_LIMIT - 1 min`.
pub const SESSION_RENEW_AFTER: Duration = Duration::from_secs(55 * 60);
/// How soon a deadline that passed without effect is checked again (a silent-caller alert
/// while the agent talks, a renewal waiting for a quiet moment).
pub const RECHECK_AFTER: Duration = Duration::from_millis(250);
/// Reconnects after a dropped model socket within one call before it goes to a human.
pub const MAX_RECONNECTS: u32 = 2;

/// Timers of a call, configurable for tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timers {
    /// See [`DEFAULT_STALL_TIMEOUT`].
    pub stall_timeout: Duration,
    /// See [`SESSION_RENEW_AFTER`].
    pub renew_after: Duration,
    /// See [`SESSION_LIMIT`].
    pub session_limit: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { stall_timeout: DEFAULT_STALL_TIMEOUT, renew_after: SESSION_RENEW_AFTER, session_limit: SESSION_LIMIT }
    }
}

/// How a model `error` event is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Logged and shown; the call goes on (a bad request of ours, a race such as cancelling a
    /// finished response).
    Recoverable,
    /// The session cannot serve this call (quota, key, shape, model): hand the caller to a human.
    Fatal,
    /// The session is gone but a new one may work (`session_expired`): reconnect.
    Reconnect,
}

/// Classifies an `error` event by its `type` and `code` (OpenAI Realtime error shapes).
/// `server_error` is recoverable once; the machine treats three in one call as fatal.
pub fn classify_error(error_type: &str, code: Option<&str>) -> ErrorClass {
    match code {
        Some("insufficient_quota" | "invalid_api_key" | "beta_api_shape_disabled" | "model_not_found" | "rate_limit_exceeded" | "account_deactivated") => ErrorClass::Fatal,
        Some("session_expired") => ErrorClass::Reconnect,
        _ => match error_type {
            "authentication_error" | "permission_error" | "insufficient_quota" => ErrorClass::Fatal,
            _ => ErrorClass::Recoverable,
        },
    }
}

/// Why a live call refused a supervisor's command ([`CallMachine::command`]); nothing changed.
/// The HTTP API answers each with 409 and this text (a call that has ended: 409, or 404 when
/// there is no record of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The call has ended (or its task is gone).
    #[error("the call has ended")]
    CallEnded,
    /// The call's dispatch refused it: the dispatch is not in a state the command applies to,
    /// a unit is unknown, busy, on scene or cannot make that move, no such alert …
    #[error(transparent)]
    Dispatch(#[from] ActionRefused),
    /// [`Command::Record`] with an event that is not a record-keeping one.
    #[error("not a record-keeping event")]
    NotRecordKeeping,
    /// A hand-off (or the fallback to the human line) is already under way.
    #[error("the call is already being handed off")]
    HandOffUnderWay,
    /// Twilio REST did not carry out the hand-off (the reason, secrets left out); the call
    /// stays with the agent. The HTTP API answers 502.
    #[error("{0}")]
    HandOffFailed(String),
}

/// A supervisor command to a live call.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Whisper: an instruction the agent follows from then on (a system message item).
    Whisper {
        /// The instruction.
        text: String,
        /// The console user.
        by: String,
    },
    /// Confirm the proposed dispatch.
    ConfirmDispatch {
        /// The console user.
        by: String,
    },
    /// Dispatch now, proposed or not (or again after a recall).
    DispatchNow {
        /// The console user.
        by: String,
    },
    /// Recall the dispatch (or the proposal).
    RecallDispatch {
        /// The console user.
        by: String,
    },
    /// Correct the incident (type, location, priority, description …) and/or the units.
    EditIncident {
        /// The corrected facts (boxed: large).
        facts: Box<watchfloor_dispatch::incident::Facts>,
        /// The units to send, replacing the recommendation (before dispatch) or the units sent
        /// (after: new ones are dispatched, dropped ones that have not arrived are released).
        units: Option<Vec<String>>,
        /// The console user.
        by: String,
    },
    /// Acknowledge an alert.
    AcknowledgeAlert {
        /// The alert's number.
        alert_id: u32,
        /// The console user.
        by: String,
    },
    /// Move a unit on the call: attach (`Dispatched`), en route, on scene, cleared. A unit on
    /// the roster moves through the roster's owner ([`Output::Roster`]); the outcome comes back
    /// as [`Input::Roster`] and the call's task answers the supervisor with it.
    MoveUnit {
        /// The unit.
        unit: String,
        /// The status it moves to.
        status: UnitStatus,
        /// The console user.
        by: String,
    },
    /// Record a supervisor event on the call's timeline (legal hold). Only record-keeping kinds
    /// are accepted (a unit's move is [`Command::MoveUnit`]); others are skipped.
    Record(CallEventKind),
    /// Does nothing: waiting for it means every event the call published before is queued for
    /// the store (a just-started call has published its first events).
    Sync,
    /// The call's media stream ended before it started (`stop` before `start`): Twilio now runs
    /// the verbs after `</Connect>` (the human line); the AI side ends.
    StreamStoppedBeforeStart,
    /// A supervisor hands the call off (takeover to a line, transfer, hang up): the machine
    /// emits [`Output::HandOff`], the call's task sends it to Twilio REST and answers with
    /// [`Input::HandOffDone`]. If the stream stops first (Twilio ends it when it replaces the
    /// call's TwiML), the call still ends as this hand-off. Refused while another hand-off or
    /// the fallback is under way.
    HandOff {
        /// What the supervisor does.
        action: HandOffAction,
        /// The line the call goes to (none: hang up).
        to: Option<String>,
        /// The console user.
        by: String,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send to Twilio.
    ToTwilio(TwilioOutbound),
    /// Send to the model.
    ToModel(ClientEvent),
    /// Publish to the store and the live feed.
    Event(CallEvent),
    /// Audio for the recording and listen-in (already relayed; never delays the call).
    Audio(AudioFrame),
    /// Open a new model session (the old one dropped, or is near its limit when `renew`), then
    /// answer with [`Input::ModelReconnected`] or [`Input::ReconnectFailed`]. Until then,
    /// `ToModel` outputs are held by the driver.
    Reconnect {
        /// A planned renewal: keep the old socket until the new one is ready.
        renew: bool,
    },
    /// Hand the caller to the human line (Twilio REST redirect, else close the stream), then
    /// answer with [`Input::FallbackDone`].
    Fallback {
        /// Why.
        reason: String,
    },
    /// Hand the call off through Twilio REST (a supervisor's [`Command::HandOff`]): redirect to
    /// `to` with a short announcement, or hang up when `to` is none; then answer with
    /// [`Input::HandOffDone`]. The call goes on meanwhile.
    HandOff {
        /// What the supervisor does.
        action: HandOffAction,
        /// The line the call goes to.
        to: Option<String>,
    },
    /// Ask the unit roster's owner for a change for this call (reserve, release, move a unit),
    /// then answer at once with [`Input::Roster`] (before the next output is carried out, so
    /// the call's events stay in order).
    Roster(RosterRequest),
    /// The new model session is configured (the `session.update` and history items before
    /// this output): send it the caller audio held while no session could take it, in order.
    FlushBacklog,
    /// Close both sockets: the call is over for the bridge. Closing the Twilio socket lets the
    /// TwiML after `</Connect>` run (the human line).
    Close,
}

/// A line of the conversation history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryLine {
    /// Who.
    pub speaker: Speaker,
    /// The model's item id.
    pub item_id: String,
    /// What they said (final transcript).
    pub text: String,
}

#[derive(Debug)]
struct PendingMark {
    name: String,
    item_id: Arc<str>,
    end_bytes: u64,
    /// The frame this mark follows, kept until it is known to have played (or been cleared).
    audio: Bytes,
    /// Where on the stream clock this frame plays: after everything queued before it.
    play_at_ms: u64,
}

#[derive(Debug, Default)]
struct ItemAudio {
    response_id: String,
    /// μ-law bytes received from the model and sent to Twilio.
    sent_bytes: u64,
    /// μ-law bytes received from the model after the last whole frame sent (< 160): sent with
    /// the next delta, or filled with silence when the item's audio is done.
    tail: Vec<u8>,
    /// μ-law bytes Twilio confirmed as played (from marks).
    played_bytes: u64,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    AwaitingStream,
    Live,
    Ended,
}

/// Counters for tests, the load generator and the record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Caller audio bytes relayed to the model (padding included).
    pub caller_bytes: u64,
    /// Silence bytes inserted for timestamp gaps.
    pub padded_bytes: u64,
    /// Agent audio bytes relayed to Twilio.
    pub agent_bytes: u64,
    /// Agent audio deltas dropped because their response was cancelled.
    pub dropped_deltas: u64,
    /// Messages skipped as malformed or out of place.
    pub skipped: u64,
}

/// The relay state machine of one call.
pub struct CallMachine {
    call_sid: Arc<str>,
    profile: Arc<AgentProfile>,
    context: CallContext,
    created: Instant,
    created_unix_ms: u64,
    seq: u64,
    phase: Phase,
    status: CallStatus,
    stream_sid: Option<String>,
    model_ready: bool,
    /// Where caller frames for the recording are copied (see [`RECORDING_BLOCK_BYTES`]).
    recording_block: bytes::BytesMut,
    greeted: bool,
    stages_seen: HashSet<Stage>,
    // caller → model
    next_inbound_ms: Option<u64>,
    /// Subtracted from Twilio's `timestamp`s: what jumps past the gap and clock limits added (or
    /// a clock that went back by more than [`MAX_CLOCK_STEP_BACK_MS`] took away).
    ts_offset_ms: i64,
    /// When the stream started (its clock's zero on the wall).
    stream_started: Option<Instant>,
    clock_limit: ClockLimit,
    /// The last time a re-based timestamp was reported (at most one event a second).
    rebase_reported: Option<Instant>,
    scratch: Vec<u8>,
    // model → caller
    items: HashMap<Arc<str>, ItemAudio>,
    pending_marks: VecDeque<PendingMark>,
    /// Stream time at which the audio queued at Twilio runs out.
    agent_queue_end_ms: u64,
    cleared_marks: HashSet<String>,
    response_in_flight: Option<String>,
    /// A function call was answered: ask for the spoken reply when its response is done.
    reply_after_response: bool,
    cancelled_responses: HashSet<String>,
    talking: Talking,
    caller_speaking: bool,
    // transcripts
    partial_agent: HashMap<String, String>,
    history: Vec<HistoryLine>,
    stats: RelayStats,
    out: VecDeque<Output>,
    timers: Timers,
    /// Last model event, and caller speech (ms) since then: stall detection.
    last_model_event: Instant,
    caller_speech_since_model_ms: u64,
    /// When the current model session started.
    session_started: Instant,
    /// When [`Input::Timeout`] was last handled.
    last_timeout: Option<Instant>,
    reconnecting: bool,
    next_renew_attempt: Option<Instant>,
    reconnects: u32,
    server_errors: u32,
    falling_back: bool,
    fallback_reason: Option<String>,
    /// A supervisor hand-off sent to Twilio: (action, line, user).
    pending_handoff: Option<(HandOffAction, Option<String>, String)>,
    /// The call's dispatch: incident, policy, alerts, units ([`CallDispatch`]).
    dispatch: CallDispatch,
    /// Last time the caller's audio carried speech.
    last_caller_speech: Option<Instant>,
    /// The radio message voiced out of band.
    dispatch_audio: DispatchAudio,
    /// Where each line's audio started on the stream clock, by item id (until its final line).
    line_starts: HashMap<String, u64>,
    /// Stream time at which the current model session's input buffer started, ms (its
    /// `audio_start_ms` counts from there).
    input_origin_ms: u64,
}

/// The out-of-band responses voicing the dispatch message (PROTOCOLS.md §1, `response.create`
/// with `conversation: "none"`): requested after each dispatch and each correction after it.
#[derive(Debug, Default)]
struct DispatchAudio {
    /// Last revision requested.
    revision: u32,
    /// Revisions requested and not yet answered by a `response.created`: revision → (message,
    /// stream ms when requested, tries).
    requested: HashMap<u32, (String, u64, u32)>,
    /// Revisions to ask for again after the next in-conversation `response.done` (the service
    /// refused them while a response was active).
    retry: Vec<u32>,
    /// Out-of-band responses under way: response id → (revision, μ-law so far).
    responses: HashMap<String, (u32, Vec<u8>)>,
    /// Where the last voiced message ends on the stream clock, ms (revisions never overlap).
    end_ms: u64,
}

/// How the model voices the dispatch message.
const DISPATCH_VOICE_INSTRUCTIONS: &str = "You are the dispatch radio voice. Read the dispatch message you are given aloud exactly as written, word for word, in a calm, clear, even voice. Say nothing else.";

/// `metadata.purpose` of the out-of-band responses that voice the dispatch message.
pub const DISPATCH_AUDIO_PURPOSE: &str = "dispatch_audio";
/// Tries to get a dispatch message voiced before giving up (the text stays on the record).
const DISPATCH_AUDIO_TRIES: u32 = 3;

impl CallMachine {
    /// A new call, created when the webhook arrives (`now`, `now_unix_ms`) or at stream start.
    /// Emits `CallCreated`, `StatusChanged(Processing)` and the `WebhookReceived` stage.
    pub fn new(
        call_sid: Arc<str>,
        profile: Arc<AgentProfile>,
        context: CallContext,
        to: String,
        simulated: bool,
        now: Instant,
        now_unix_ms: u64,
    ) -> Self {
        let call_sid_str = call_sid.to_string();
        let mut m = CallMachine {
            call_sid,
            profile,
            context,
            created: now,
            created_unix_ms: now_unix_ms,
            seq: 0,
            phase: Phase::AwaitingStream,
            status: CallStatus::Processing,
            stream_sid: None,
            model_ready: false,
            greeted: false,
            stages_seen: HashSet::new(),
            next_inbound_ms: None,
            ts_offset_ms: 0,
            stream_started: None,
            clock_limit: ClockLimit::default(),
            rebase_reported: None,
            scratch: Vec::with_capacity(4096),
            recording_block: bytes::BytesMut::new(),
            items: HashMap::new(),
            pending_marks: VecDeque::new(),
            agent_queue_end_ms: 0,
            cleared_marks: HashSet::new(),
            response_in_flight: None,
            reply_after_response: false,
            cancelled_responses: HashSet::new(),
            talking: Talking::Silence,
            caller_speaking: false,
            partial_agent: HashMap::new(),
            history: Vec::new(),
            stats: RelayStats::default(),
            out: VecDeque::new(),
            timers: Timers::default(),
            last_model_event: now,
            caller_speech_since_model_ms: 0,
            session_started: now,
            last_timeout: None,
            reconnecting: false,
            next_renew_attempt: None,
            reconnects: 0,
            server_errors: 0,
            falling_back: false,
            fallback_reason: None,
            pending_handoff: None,
            dispatch: CallDispatch::new(&call_sid_str, Policy::default()),
            last_caller_speech: None,
            dispatch_audio: DispatchAudio::default(),
            line_starts: HashMap::new(),
            input_origin_ms: 0,
        };
        let from = m.context.caller_number.clone();
        m.emit(now, CallEventKind::CallCreated { from, to, simulated });
        m.emit(now, CallEventKind::StatusChanged { status: CallStatus::Processing });
        m.stage(now, Stage::WebhookReceived);
        m
    }

    /// Sets the dispatch policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.dispatch.set_policy(policy);
        self
    }

    /// Gives the call the unit roster as its owner last published it: proposals recommend
    /// units from it; a dispatch reserves them through [`Output::Roster`].
    pub fn with_roster(mut self, roster: Arc<Roster>) -> Self {
        self.dispatch.set_roster(roster);
        self
    }

    /// The incident as known.
    pub fn incident(&self) -> &Incident {
        self.dispatch.incident()
    }

    /// Sets how far the stream's clock may run ahead of the wall clock ([`ClockLimit`]).
    pub fn with_clock_limit(mut self, limit: ClockLimit) -> Self {
        self.clock_limit = limit;
        self
    }

    /// Sets the timers (tests shorten them).
    pub fn with_timers(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }

    /// The call's id.
    pub fn call_sid(&self) -> &Arc<str> {
        &self.call_sid
    }

    /// The current status.
    pub fn status(&self) -> CallStatus {
        self.status
    }

    /// Whether the bridge is done with this call.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The conversation so far, final lines in order.
    pub fn history(&self) -> &[HistoryLine] {
        &self.history
    }

    /// The conversation as text, one `Caller: …` / `Dispatcher: …` line per turn.
    pub fn history_text(&self) -> String {
        self.history.iter().map(|l| format!("{}: {}", l.speaker.label(), l.text)).collect::<Vec<_>>().join("\n")
    }

    /// Relay counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Agent questions counted so far.
    pub fn agent_questions(&self) -> u32 {
        self.dispatch.agent_questions()
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether outputs are waiting to be polled.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether a command can still change this call (it has not ended).
    pub fn accepts_commands(&self) -> bool {
        self.phase != Phase::Ended
    }

    /// Ends the call from outside (shutdown, model unavailable, no stream): emits the final
    /// status and `CallEnded`, then [`Output::Close`]. Idempotent.
    pub fn end(&mut self, now: Instant, reason: &str, status: CallStatus) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        // A supervisor hand-off under way decides how the call ended (Twilio stops the stream
        // when it replaces the call's TwiML).
        let (reason, status) = match self.pending_handoff.take() {
            Some((action, to, by)) => {
                self.emit(now, CallEventKind::HandedOff { action, to, by });
                (action.as_str().to_string(), action.final_status())
            }
            None => (reason.to_string(), status),
        };
        let reason = reason.as_str();
        // Audio still queued at Twilio when the call ended: recorded where it was to play.
        for m in self.pending_marks.drain(..) {
            self.out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Agent, stream_ms: m.play_at_ms, audio: m.audio }));
        }
        self.set_status(now, status);
        self.emit(now, CallEventKind::CallEnded { reason: reason.to_string() });
        self.out.push_back(Output::Close);
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        match input {
            Input::ModelConnected => {
                self.session_started = now;
                self.last_model_event = now;
                self.stage(now, Stage::ModelConnected);
                let update = self.profile.session_update(&self.context);
                self.out.push_back(Output::ToModel(update));
                self.out.push_back(Output::FlushBacklog);
                self.model_ready = true;
                self.maybe_greet();
            }
            Input::Twilio(msg) => self.on_twilio(msg, now),
            Input::TwilioGarbage(reason) => self.skip(now, "twilio", reason),
            Input::Model(ev) => self.on_model(ev, now),
            Input::ModelGarbage(reason) => self.skip(now, "model", reason),
            Input::Command(cmd) => {
                // Fed as an input, a refusal is only logged (`command` returns it).
                let _ = self.on_command(cmd, now);
            }
            Input::TwilioClosed => {
                // The socket closed without `stop`: the stream broke (Twilio hangs up the stream
                // with `stop` when the caller hangs up). Twilio now runs the verbs after
                // </Connect>: the caller goes to the human line.
                self.end(now, "stream_closed", CallStatus::Fallback);
            }
            Input::ModelClosed => {
                if self.reconnecting || self.falling_back {
                    return;
                }
                if self.model_ready && self.reconnects < MAX_RECONNECTS {
                    tracing::warn!("model socket dropped: reconnecting");
                    self.reconnects += 1;
                    self.reconnecting = true;
                    self.out.push_back(Output::Reconnect { renew: false });
                } else {
                    self.fallback(now, "model_closed");
                }
            }
            Input::ModelReconnected { renewed } => self.on_reconnected(now, renewed),
            Input::ReconnectFailed(why) => {
                self.reconnecting = false;
                tracing::error!(%why, "model reconnect failed");
                self.fallback(now, "model_reconnect_failed");
            }
            Input::FallbackDone { via, attempts, rest_error } => {
                self.emit(now, CallEventKind::FallbackCompleted { via, attempts, rest_error });
                let reason = self.fallback_reason.clone().unwrap_or_else(|| "fallback".into());
                self.end(now, &reason, CallStatus::Fallback);
            }
            Input::Timeout => self.on_timeout(now),
            Input::Roster(answer) => {
                let at = self.unix_ms(now);
                self.dispatch.on_roster(answer, at);
                self.run_dispatch(now);
            }
            Input::RosterChanged(roster) => self.dispatch.set_roster(roster),
            Input::HandOffDone(result) => self.on_hand_off_done(now, result),
            Input::RenewFailed => {
                self.reconnecting = false;
                self.next_renew_attempt = Some(now + Duration::from_secs(60));
            }
        }
    }

    /// Hands the caller to a human: status `fallback`, a `Fallback` event, [`Output::Fallback`].
    /// Idempotent.
    pub fn fallback(&mut self, now: Instant, reason: &str) {
        if self.falling_back || self.phase == Phase::Ended {
            return;
        }
        self.falling_back = true;
        self.fallback_reason = Some(reason.to_string());
        tracing::error!(reason, "the AI cannot go on: handing the caller to the human line");
        self.set_status(now, CallStatus::Fallback);
        self.emit(now, CallEventKind::Fallback { reason: reason.to_string() });
        self.alert(now, AlertKind::ModelError { reason: reason.to_string() });
        self.out.push_back(Output::Fallback { reason: reason.to_string() });
    }

    /// The outcome of [`Output::HandOff`]: done, the AI side ends as the hand-off; failed, the
    /// call stays with the agent.
    fn on_hand_off_done(&mut self, now: Instant, result: Result<(), String>) {
        match result {
            Ok(()) => {
                let action = self.pending_handoff.as_ref().map(|h| h.0);
                if let Some(action) = action {
                    self.end(now, action.as_str(), action.final_status());
                }
            }
            Err(why) => {
                tracing::warn!(%why, "hand-off failed at Twilio: the call stays with the agent");
                self.pending_handoff = None;
            }
        }
    }

    /// When the machine next needs [`Input::Timeout`] (str0m's `Output::Timeout`): the
    /// earliest of the dispatch hold window, the silent-caller alert, stall detection and the
    /// session renewal. A deadline that has passed and was checked without effect (the agent
    /// was talking, no quiet moment yet) is checked again [`RECHECK_AFTER`] later. None: nothing
    /// waits on time (the call has ended).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Ended {
            return None;
        }
        let checked = self.last_timeout;
        let due = |t: Instant| match checked {
            Some(c) if c >= t => c + RECHECK_AFTER,
            _ => t,
        };
        let mut next = self.dispatch.next_deadline_ms().map(|ms| due(self.created + Duration::from_millis(ms.saturating_sub(self.created_unix_ms))));
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if self.phase == Phase::Live && !self.falling_back && self.model_ready && !self.reconnecting {
            if self.stream_sid.is_some() && !self.dispatch.has_alert(&AlertKind::SilentCaller) {
                consider(due(self.last_caller_speech.unwrap_or(self.created) + SILENT_CALLER));
            }
            consider(due(self.last_model_event + self.timers.stall_timeout));
            let renew = self.session_started + self.timers.renew_after;
            consider(due(self.next_renew_attempt.map_or(renew, |t| t.max(renew))));
        }
        next
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        self.last_timeout = Some(now);
        let at = self.unix_ms(now);
        self.dispatch.on_timeout(at);
        self.run_dispatch(now);
        if self.phase != Phase::Live || self.falling_back || !self.model_ready || self.reconnecting {
            return;
        }
        // A caller who says nothing while the agent waits: silent or unresponsive.
        let caller_quiet = self.last_caller_speech.map_or(now.saturating_duration_since(self.created), |t| now.saturating_duration_since(t));
        if self.stream_sid.is_some() && caller_quiet >= SILENT_CALLER && self.pending_marks.is_empty() && self.response_in_flight.is_none() {
            self.alert(now, AlertKind::SilentCaller);
        }
        let silent_for = now.saturating_duration_since(self.last_model_event);
        if silent_for >= self.timers.stall_timeout && self.caller_speech_since_model_ms >= STALL_MIN_SPEECH_MS {
            tracing::error!(?silent_for, speech_ms = self.caller_speech_since_model_ms, "model stalled while the caller speaks");
            self.fallback(now, "model_stalled");
            return;
        }
        let age = now.saturating_duration_since(self.session_started);
        let quiet = self.response_in_flight.is_none() && self.pending_marks.is_empty() && !self.caller_speaking;
        let hard = self.timers.session_limit.saturating_sub(Duration::from_secs(60));
        let may_try = self.next_renew_attempt.is_none_or(|t| now >= t);
        if may_try && ((age >= self.timers.renew_after && quiet) || age >= hard) {
            tracing::info!(?age, "renewing the model session before its limit");
            self.reconnecting = true;
            self.out.push_back(Output::Reconnect { renew: true });
        }
    }

    fn on_reconnected(&mut self, now: Instant, renewed: bool) {
        self.reconnecting = false;
        // The new session's input buffer starts now.
        self.input_origin_ms = self.stream_now_ms();
        self.next_renew_attempt = None;
        self.session_started = now;
        self.last_model_event = now;
        self.caller_speech_since_model_ms = 0;
        // What the old session had in flight is gone with it.
        if let Some(resp) = self.response_in_flight.take() {
            self.cancelled_responses.insert(resp);
        }
        self.reply_after_response = false;
        self.out.push_back(Output::ToModel(self.profile.session_update(&self.context)));
        for line in &self.history {
            let item = match line.speaker {
                Speaker::Caller => ItemCreate::user_text(line.text.clone()),
                Speaker::Agent => ItemCreate::assistant_text(line.text.clone()),
            };
            self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item }));
        }
        let items = self.history.len() as u32;
        self.out.push_back(Output::FlushBacklog);
        // Dispatch messages not yet voiced are asked for again in the new session.
        self.dispatch_audio.responses.clear();
        self.dispatch_audio.retry.clear();
        let mut pending: Vec<u32> = self.dispatch_audio.requested.keys().copied().collect();
        pending.sort_unstable();
        for revision in pending {
            if let Some((message, stream_ms, tries)) = self.dispatch_audio.requested.remove(&revision) {
                self.send_dispatch_audio_request(revision, message, stream_ms, tries + 1);
            }
        }
        // After a drop, the caller may be waiting for an answer: ask for one unless the agent
        // spoke last (a renewal happens only at a quiet moment).
        if !renewed && self.history.last().is_some_and(|l| l.speaker == Speaker::Caller) {
            self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate { event_id: None, response: None }));
        }
        self.emit(now, CallEventKind::ModelReconnected { renewed, items });
    }

    // ----------------------------------------------------------------------------------------
    // Twilio → model
    // ----------------------------------------------------------------------------------------

    fn on_twilio(&mut self, msg: TwilioInbound, now: Instant) {
        match msg {
            TwilioInbound::Connected { .. } => {}
            TwilioInbound::Start { stream_sid, start, .. } => {
                if self.stream_sid.is_some() {
                    self.skip(now, "twilio", format!("duplicate start for stream {stream_sid}"));
                    return;
                }
                if start.call_sid != *self.call_sid {
                    self.skip(now, "twilio", format!("start names call {} on call {}", start.call_sid, self.call_sid));
                    return;
                }
                self.stream_sid = Some(stream_sid.clone());
                self.stream_started = Some(now);
                self.phase = Phase::Live;
                self.stage(now, Stage::StreamStarted);
                self.emit(now, CallEventKind::StreamStarted { stream_sid });
                self.set_status(now, CallStatus::WithAgent);
                self.maybe_greet();
            }
            TwilioInbound::Media { media, .. } => self.on_caller_media(&media.timestamp, &media.payload, now),
            TwilioInbound::Dtmf { dtmf, .. } => {
                self.emit(now, CallEventKind::Dtmf { digit: dtmf.digit });
            }
            TwilioInbound::Mark { mark, .. } => self.on_mark(mark.name, now),
            TwilioInbound::Stop { .. } => {
                self.end(now, "stop", CallStatus::Completed);
            }
            TwilioInbound::Unknown { event, .. } => {
                self.skip(now, "twilio", format!("unknown event {event:?}"));
            }
        }
    }

    /// A Twilio `media` message read in place ([`MediaRef`](watchfloor_wire::twilio::MediaRef)):
    /// the same as `Input::Twilio(TwilioInbound::Media { .. })`, without copying the frame's
    /// strings. The payload goes to the model as the same base64 text; it is decoded once, for
    /// the recording and the speech level.
    pub fn handle_caller_media(&mut self, timestamp: &str, payload: &str, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        self.on_caller_media(timestamp, payload, now);
    }

    /// A model `response.output_audio.delta` read in place
    /// ([`AudioDeltaRef`](watchfloor_wire::realtime::AudioDeltaRef)): the same as
    /// `Input::Model(ServerEvent::ResponseOutputAudioDelta { .. })`, without copying the event's
    /// strings. Dispatch audio is routed first, as for every model event.
    pub fn handle_agent_delta(&mut self, response_id: &str, item_id: &str, delta: &str, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        self.last_model_event = now;
        self.caller_speech_since_model_ms = 0;
        if self.dispatch_audio_delta(response_id, delta, now) {
            return;
        }
        self.on_agent_audio(response_id, item_id, delta, now);
    }

    /// Keeps a delta of a dispatch-audio (out-of-band) response; false when `response_id` is
    /// not one.
    fn dispatch_audio_delta(&mut self, response_id: &str, delta: &str, now: Instant) -> bool {
        let Some((_, audio)) = self.dispatch_audio.responses.get_mut(response_id) else { return false };
        match mulaw::decode_base64_into(delta, &mut self.scratch) {
            Ok(_) => audio.extend_from_slice(&self.scratch),
            Err(e) => self.skip(now, "model", format!("dispatch audio: {e}")),
        }
        true
    }

    fn on_caller_media(&mut self, timestamp: &str, payload: &str, now: Instant) {
        if self.phase != Phase::Live {
            self.skip(now, "twilio", "media before start".into());
            return;
        }
        let Ok(raw_ts) = timestamp.parse::<u64>() else {
            self.skip(now, "twilio", format!("media timestamp {timestamp:?} is not a number"));
            return;
        };
        let ts = self.rebase(raw_ts, now);
        let len = match mulaw::decode_base64_into(payload, &mut self.scratch) {
            Ok(0) => {
                self.skip(now, "twilio", "empty media payload".into());
                return;
            }
            Ok(n) => n as u64,
            Err(e) => {
                self.skip(now, "twilio", e.to_string());
                return;
            }
        };
        if let Some(expected) = self.next_inbound_ms {
            if ts + FRAME_MS / 2 < expected {
                self.skip(now, "twilio", format!("media at {ts} ms repeats audio before {expected} ms"));
                return;
            }
            if ts > expected {
                self.pad_silence(ts - expected);
            }
        } else if ts > 0 {
            // Audio before the first frame is silence too.
            self.pad_silence(ts);
        }
        self.next_inbound_ms = Some(ts + mulaw::bytes_to_ms(len as usize));
        self.stats.caller_bytes += len;
        if mulaw::louder_than(&self.scratch, STALL_SPEECH_DBFS) {
            self.caller_speech_since_model_ms += mulaw::bytes_to_ms(len as usize);
            self.last_caller_speech = Some(now);
        }
        // The recording's copy comes out of a per-call block of a second of audio: one
        // allocation per 50 frames, not one per frame.
        if self.recording_block.capacity() < self.scratch.len() {
            self.recording_block.reserve(RECORDING_BLOCK_BYTES.max(self.scratch.len()));
        }
        self.recording_block.extend_from_slice(&self.scratch);
        self.out.push_back(Output::Audio(AudioFrame {
            call_sid: self.call_sid.clone(),
            track: Track::Caller,
            stream_ms: ts,
            audio: self.recording_block.split().freeze(),
        }));
        self.stage(now, Stage::FirstCallerAudio);
        self.out.push_back(Output::ToModel(ClientEvent::InputAudioBufferAppend { event_id: None, audio: payload.to_owned() }));
    }

    /// Twilio's `timestamp` on the stream's own clock: a jump past [`MAX_PADDED_GAP_MS`], or
    /// ahead of the wall clock by more than the [`ClockLimit`], moves the clock only that far and
    /// re-bases the frames after it (reported at most once a second).
    fn rebase(&mut self, raw_ts: u64, now: Instant) -> u64 {
        let ts = (i128::from(raw_ts) - i128::from(self.ts_offset_ms)).clamp(0, i128::from(u64::MAX)) as u64;
        let expected = self.next_inbound_ms.unwrap_or(0);
        let wall_ms = self.stream_started.map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64);
        let by_wall = (wall_ms as f64 * self.clock_limit.rate) as u64 + self.clock_limit.burst_ms;
        let max_ts = (expected + MAX_PADDED_GAP_MS).min(by_wall.max(expected));
        let to = if ts > max_ts {
            max_ts
        } else if ts + MAX_CLOCK_STEP_BACK_MS <= expected {
            expected
        } else {
            return ts;
        };
        self.ts_offset_ms = (i128::from(raw_ts) - i128::from(to)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        if self.rebase_reported.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1)) {
            self.rebase_reported = Some(now);
            self.skip(now, "twilio", format!("media timestamp {raw_ts} ms jumps from the stream's clock ({expected} ms, {wall_ms} ms after start): taken as {to} ms"));
        }
        to
    }

    fn pad_silence(&mut self, gap_ms: u64) {
        let gap_ms = gap_ms.min(MAX_PADDED_GAP_MS);
        let bytes = mulaw::ms_to_bytes(gap_ms);
        if bytes == 0 {
            return;
        }
        self.stats.padded_bytes += bytes as u64;
        self.stats.caller_bytes += bytes as u64;
        // One append per second of silence at most keeps each message small.
        let mut left = bytes;
        while left > 0 {
            let n = left.min(8000);
            let audio = mulaw::encode_base64(&vec![mulaw::SILENCE; n]);
            self.out.push_back(Output::ToModel(ClientEvent::InputAudioBufferAppend { event_id: None, audio }));
            left -= n;
        }
    }

    /// Whether `name` is a mark this call sent that Twilio has not echoed yet (played or cleared):
    /// each such echo is expected once and is not counted by the stream's flood limit.
    pub fn expects_mark(&self, name: &str) -> bool {
        self.pending_marks.iter().any(|m| m.name == name) || self.cleared_marks.contains(name)
    }

    fn on_mark(&mut self, name: String, now: Instant) {
        if let Some(pos) = self.pending_marks.iter().position(|m| m.name == name) {
            // Twilio plays in order: every mark before this one has played too.
            for m in self.pending_marks.drain(..=pos) {
                if let Some(item) = self.items.get_mut(&m.item_id) {
                    item.played_bytes = item.played_bytes.max(m.end_bytes);
                }
                self.out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Agent, stream_ms: m.play_at_ms, audio: m.audio }));
            }
            if self.pending_marks.is_empty() && self.talking == Talking::Agent {
                let who = if self.caller_speaking { Talking::Caller } else { Talking::Silence };
                self.set_talking(now, who);
            }
        } else if self.cleared_marks.remove(&name) {
            // Echoed because of our `clear`: its audio never played.
        } else {
            self.skip(now, "twilio", format!("mark {name:?} was never sent"));
        }
    }

    // ----------------------------------------------------------------------------------------
    // Model → Twilio
    // ----------------------------------------------------------------------------------------

    fn on_model(&mut self, ev: ServerEvent, now: Instant) {
        self.last_model_event = now;
        self.caller_speech_since_model_ms = 0;
        if self.on_dispatch_audio_event(&ev, now) {
            return;
        }
        match ev {
            ServerEvent::SessionCreated { .. } => {}
            ServerEvent::SessionUpdated { .. } => self.stage(now, Stage::SessionUpdated),
            ServerEvent::Error { error, .. } => {
                let benign = error.code.as_deref() == Some("response_cancel_not_active");
                if benign {
                    tracing::debug!(code = ?error.code, "model: cancel raced the end of the response");
                } else {
                    tracing::warn!(error_type = %error.kind, code = ?error.code, message = %error.message, "model error");
                }
                let mut class = classify_error(&error.kind, error.code.as_deref());
                if error.kind == "server_error" {
                    self.server_errors += 1;
                    if self.server_errors >= 3 {
                        class = ErrorClass::Fatal;
                    }
                }
                let reason = format!("model_error:{}", error.code.as_deref().unwrap_or(&error.kind));
                self.emit(now, CallEventKind::ModelError { error_type: error.kind, code: error.code, message: error.message });
                match class {
                    ErrorClass::Recoverable => {}
                    ErrorClass::Fatal => self.fallback(now, &reason),
                    ErrorClass::Reconnect if !self.reconnecting && self.reconnects < MAX_RECONNECTS => {
                        self.reconnects += 1;
                        self.reconnecting = true;
                        self.out.push_back(Output::Reconnect { renew: false });
                    }
                    ErrorClass::Reconnect => self.fallback(now, &reason),
                }
            }
            ServerEvent::SpeechStarted { audio_start_ms, item_id, .. } => {
                self.line_starts.insert(item_id, self.input_origin_ms + audio_start_ms);
                self.caller_speaking = true;
                self.barge_in(now);
                self.set_talking(now, Talking::Caller);
            }
            ServerEvent::SpeechStopped { .. } => {
                self.caller_speaking = false;
                if self.talking == Talking::Caller {
                    self.set_talking(now, Talking::Silence);
                }
            }
            ServerEvent::ResponseCreated { response, .. } => {
                self.response_in_flight = Some(response.id);
            }
            ServerEvent::ResponseDone { response, .. } => {
                // A response that ended without `output_audio.done` (incomplete, failed) still
                // plays what it sent.
                let unflushed: Vec<Arc<str>> = self.items.iter().filter(|(_, i)| i.response_id == response.id && !i.tail.is_empty()).map(|(k, _)| k.clone()).collect();
                for item_id in unflushed {
                    self.flush_agent_tail(&item_id);
                }
                if self.response_in_flight.as_deref() == Some(response.id.as_str()) {
                    self.response_in_flight = None;
                }
                if std::mem::take(&mut self.reply_after_response) {
                    self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate { event_id: None, response: None }));
                }
                for revision in std::mem::take(&mut self.dispatch_audio.retry) {
                    if let Some((message, stream_ms, tries)) = self.dispatch_audio.requested.remove(&revision) {
                        self.send_dispatch_audio_request(revision, message, stream_ms, tries + 1);
                    }
                }
                if response.status == "failed" {
                    let message = response.status_details.map(|d| d.to_string()).unwrap_or_default();
                    self.emit(now, CallEventKind::ModelError { error_type: "response_failed".into(), code: None, message });
                }
            }
            ServerEvent::ResponseOutputAudioDelta { response_id, item_id, delta, .. } => {
                self.on_agent_audio(&response_id, &item_id, &delta, now);
            }
            ServerEvent::ResponseOutputAudioDone { item_id, .. } => self.flush_agent_tail(&item_id),
            ServerEvent::ResponseOutputAudioTranscriptDelta { item_id, delta, response_id, .. } => {
                if self.cancelled_responses.contains(&response_id) {
                    return;
                }
                self.partial_agent.entry(item_id.clone()).or_default().push_str(&delta);
                self.emit(now, CallEventKind::TranscriptDelta { speaker: Speaker::Agent, item_id, delta });
            }
            ServerEvent::ResponseOutputAudioTranscriptDone { item_id, transcript, .. } => {
                self.partial_agent.remove(&item_id);
                self.final_line(now, Speaker::Agent, item_id, transcript, false);
            }
            ServerEvent::ResponseOutputItemDone { item, .. } if item.kind == "function_call" => {
                let (name, call_id, arguments) = (item.name.unwrap_or_default(), item.call_id.unwrap_or_default(), item.arguments.unwrap_or_default());
                if call_id.is_empty() {
                    self.skip(now, "model", format!("function call {name:?} without a call_id"));
                    return;
                }
                // Every call gets an output, or the model waits for it; the reply follows once the
                // response that made the call is done (a response cannot start while one is active).
                let output = if name == report::TOOL_NAME {
                    let at = self.unix_ms(now);
                    self.dispatch.on_report(&arguments, at)
                } else {
                    serde_json::json!({"status": "error", "error": format!("unknown function {name}")}).to_string()
                };
                self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate {
                    event_id: None,
                    previous_item_id: None,
                    item: ItemCreate::FunctionCallOutput { call_id: call_id.clone(), output },
                }));
                self.reply_after_response = true;
                self.emit(now, CallEventKind::FunctionCall { name, call_id, arguments });
                self.run_dispatch(now);
            }
            ServerEvent::ResponseOutputItemDone { item, .. } => {
                // A cancelled response sends no transcript `done`: the line ends with what was
                // generated before the cut (later deltas of a cancelled response were dropped).
                if let Some(id) = item.id.filter(|_| item.role.as_deref() == Some("assistant"))
                    && let Some(text) = self.partial_agent.remove(&id).filter(|t| !t.trim().is_empty()) {
                        self.final_line(now, Speaker::Agent, id, text.trim().to_string(), true);
                    }
            }
            ServerEvent::ConversationItemTruncated { item_id, audio_end_ms, .. } => {
                // The model cut its own transcript to what was heard; our final line stays as
                // transcribed and the BargeIn event records the cut.
                tracing::debug!(%item_id, audio_end_ms, "model truncated item");
            }
            ServerEvent::InputTranscriptionDelta { item_id, delta, .. } => {
                self.emit(now, CallEventKind::TranscriptDelta { speaker: Speaker::Caller, item_id, delta });
            }
            ServerEvent::InputTranscriptionCompleted { item_id, transcript, .. } => {
                self.final_line(now, Speaker::Caller, item_id, transcript, false);
            }
            ServerEvent::InputTranscriptionFailed { item_id, error, .. } => {
                self.emit(now, CallEventKind::ModelError {
                    error_type: "transcription_failed".into(),
                    code: error.get("code").and_then(|c| c.as_str()).map(str::to_string),
                    message: format!("caller transcription failed for {item_id}"),
                });
            }
            ServerEvent::InputAudioBufferCommitted { .. }
            | ServerEvent::InputAudioBufferTimeoutTriggered { .. }
            | ServerEvent::ConversationItemAdded { .. }
            | ServerEvent::ConversationItemDone { .. }
            | ServerEvent::ConversationItemCreated { .. }
            | ServerEvent::ResponseOutputItemAdded { .. }
            | ServerEvent::FunctionCallArgumentsDelta { .. }
            | ServerEvent::FunctionCallArgumentsDone { .. }
            | ServerEvent::RateLimitsUpdated { .. } => {}
            ServerEvent::Unknown { kind, .. } => {
                tracing::info!(event_type = %kind, "model event of unknown type");
                self.emit(now, CallEventKind::ModelEventUnknown { event_type: kind });
            }
        }
    }

    fn on_agent_audio(&mut self, response_id: &str, item_id: &str, delta: &str, now: Instant) {
        if self.cancelled_responses.contains(response_id) {
            self.stats.dropped_deltas += 1;
            return;
        }
        let Some(stream_sid) = self.stream_sid.clone() else {
            self.skip(now, "model", "agent audio before the media stream started".into());
            return;
        };
        if self.phase != Phase::Live {
            return;
        }
        let len = match mulaw::decode_base64_into(delta, &mut self.scratch) {
            Ok(n) => n,
            Err(e) => {
                self.skip(now, "model", e.to_string());
                return;
            }
        };
        if len == 0 {
            return;
        }
        let item_key: Arc<str> = match self.items.get_key_value(item_id) {
            Some((k, _)) => k.clone(),
            None => {
                self.line_starts.insert(item_id.to_owned(), self.agent_queue_end_ms.max(self.stream_now_ms()));
                let k: Arc<str> = item_id.into();
                self.items.insert(k.clone(), ItemAudio { response_id: response_id.to_owned(), ..Default::default() });
                k
            }
        };
        // Whole 20 ms Twilio frames, so the marks tell what was heard to within one frame.
        let item = self.items.get_mut(&item_key).expect("inserted above");
        if item.tail.is_empty() && len == FRAME_BYTES {
            // The common case of round-number deltas: the model's base64 goes out as it is.
            let audio = Bytes::copy_from_slice(&self.scratch);
            self.send_agent_frame(&stream_sid, &item_key, delta.to_owned(), audio, FRAME_BYTES);
        } else {
            let mut audio = std::mem::take(&mut item.tail);
            audio.extend_from_slice(&self.scratch);
            let whole = audio.len() - audio.len() % FRAME_BYTES;
            for frame in audio[..whole].chunks(FRAME_BYTES) {
                self.send_agent_frame(&stream_sid, &item_key, mulaw::encode_base64(frame), Bytes::copy_from_slice(frame), FRAME_BYTES);
            }
            audio.drain(..whole);
            if let Some(item) = self.items.get_mut(&item_key) {
                item.tail = audio;
            }
        }
        self.stats.agent_bytes += len as u64;
        self.stage(now, Stage::FirstAgentAudio);
        if self.talking != Talking::Agent && !self.caller_speaking {
            self.set_talking(now, Talking::Agent);
        }
    }

    /// Queues one frame of agent audio at Twilio: `media`, then its `mark`. `model_bytes` of it
    /// came from the model (the rest is silence filling the item's last frame).
    fn send_agent_frame(&mut self, stream_sid: &str, item_key: &Arc<str>, payload: String, audio: Bytes, model_bytes: usize) {
        let Some(item) = self.items.get_mut(item_key) else { return };
        item.sent_bytes += model_bytes as u64;
        let offset = item.sent_bytes;
        // Twilio plays queued audio in order, starting now if its buffer is empty.
        let play_at_ms = self.agent_queue_end_ms.max(self.stream_now_ms());
        self.agent_queue_end_ms = play_at_ms + mulaw::bytes_to_ms(audio.len());
        self.out.push_back(Output::ToTwilio(TwilioOutbound::Media { stream_sid: stream_sid.to_owned(), media: OutboundMedia { payload } }));
        // Unique per call: the byte offset grows strictly within an item.
        let name = format!("{item_key}:{offset}");
        self.out.push_back(Output::ToTwilio(TwilioOutbound::Mark { stream_sid: stream_sid.to_owned(), mark: MarkName { name: name.clone() } }));
        self.pending_marks.push_back(PendingMark { name, item_id: item_key.clone(), end_bytes: offset, audio, play_at_ms });
    }

    /// The item's audio is done: its part frame goes out, filled to 20 ms with silence.
    fn flush_agent_tail(&mut self, item_id: &str) {
        let Some(key) = self.items.get_key_value(item_id).map(|(k, _)| k.clone()) else { return };
        let Some(item) = self.items.get_mut(&key).filter(|i| !i.tail.is_empty()) else { return };
        let mut frame = std::mem::take(&mut item.tail);
        if self.cancelled_responses.contains(&item.response_id) || self.phase != Phase::Live {
            return;
        }
        let Some(stream_sid) = self.stream_sid.clone() else { return };
        let model_bytes = frame.len();
        frame.resize(FRAME_BYTES, mulaw::SILENCE);
        self.send_agent_frame(&stream_sid, &key, mulaw::encode_base64(&frame), Bytes::from(frame), model_bytes);
    }

    /// Handles the events of the out-of-band responses that voice the dispatch message; true
    /// when `ev` was one of them (it then never reaches the caller, the transcript or the
    /// barge-in logic).
    fn on_dispatch_audio_event(&mut self, ev: &ServerEvent, now: Instant) -> bool {
        let da = &mut self.dispatch_audio;
        match ev {
            ServerEvent::ResponseCreated { response, .. } => {
                let meta = response.metadata.as_ref();
                if meta.and_then(|m| m.get("purpose")).and_then(|p| p.as_str()) != Some(DISPATCH_AUDIO_PURPOSE) {
                    return false;
                }
                let revision = meta.and_then(|m| m.get("revision")).and_then(|r| r.as_str()).and_then(|r| r.parse::<u32>().ok());
                match revision.filter(|r| da.requested.contains_key(r)) {
                    Some(r) => {
                        da.responses.insert(response.id.clone(), (r, Vec::new()));
                    }
                    None => self.skip(now, "model", format!("out-of-band response {} for no dispatch audio requested", response.id)),
                }
                true
            }
            ServerEvent::ResponseOutputAudioDelta { response_id, delta, .. } => self.dispatch_audio_delta(response_id, delta, now),
            ServerEvent::ResponseOutputAudioTranscriptDelta { response_id, .. }
            | ServerEvent::ResponseOutputAudioTranscriptDone { response_id, .. }
            | ServerEvent::ResponseOutputAudioDone { response_id, .. }
            | ServerEvent::ResponseOutputItemAdded { response_id, .. }
            | ServerEvent::ResponseOutputItemDone { response_id, .. } => da.responses.contains_key(response_id),
            ServerEvent::ResponseDone { response, .. } => {
                let Some((revision, audio)) = da.responses.remove(&response.id) else { return false };
                let Some((message, requested_ms, _)) = da.requested.remove(&revision) else { return true };
                let stream_ms = requested_ms.max(da.end_ms);
                let duration_ms = mulaw::bytes_to_ms(audio.len());
                let status = DispatchAudioStatus::from_response(&response.status, !audio.is_empty());
                if !audio.is_empty() {
                    da.end_ms = stream_ms + duration_ms;
                    self.out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Dispatch, stream_ms, audio: Bytes::from(audio) }));
                }
                self.emit(now, CallEventKind::DispatchAudio { revision, status, stream_ms, duration_ms, message });
                true
            }
            ServerEvent::Error { error, .. } => {
                let Some(revision) = error.event_id.as_deref().and_then(|id| id.strip_prefix("dispatch_audio_")).and_then(|r| r.split('_').next()).and_then(|r| r.parse::<u32>().ok()) else { return false };
                let Some((_, _, tries)) = da.requested.get(&revision) else { return false };
                if error.code.as_deref() == Some("conversation_already_has_active_response") && *tries < DISPATCH_AUDIO_TRIES {
                    // Asked while a response was active: ask again when it is done.
                    tracing::debug!(revision, "dispatch audio: a response is active; asking again after it");
                    da.retry.push(revision);
                    return true;
                }
                tracing::warn!(revision, code = ?error.code, message = %error.message, "dispatch audio refused by the model");
                if let Some((message, stream_ms, _)) = da.requested.remove(&revision) {
                    self.emit(now, CallEventKind::DispatchAudio { revision, status: DispatchAudioStatus::Failed, stream_ms, duration_ms: 0, message });
                }
                true
            }
            _ => false,
        }
    }

    /// Asks the model to voice the dispatch message out of band: `response.create` with
    /// `conversation: "none"`, the message as its only input and `metadata` naming it
    /// (PROTOCOLS.md §1). Its audio is recorded as the `dispatch` track, never sent to the caller.
    fn request_dispatch_audio(&mut self, now: Instant, message: String) {
        self.dispatch_audio.revision += 1;
        let revision = self.dispatch_audio.revision;
        let stream_ms = self.stream_now_ms();
        if self.falling_back || self.phase == Phase::Ended {
            self.emit(now, CallEventKind::DispatchAudio { revision, status: DispatchAudioStatus::Unavailable, stream_ms, duration_ms: 0, message });
            return;
        }
        self.send_dispatch_audio_request(revision, message, stream_ms, 1);
    }

    fn send_dispatch_audio_request(&mut self, revision: u32, message: String, stream_ms: u64, tries: u32) {
        let mut metadata = serde_json::Map::new();
        metadata.insert("purpose".into(), DISPATCH_AUDIO_PURPOSE.into());
        metadata.insert("revision".into(), revision.to_string().into());
        self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate {
            event_id: Some(format!("dispatch_audio_{revision}_{tries}")),
            response: Some(ResponseCreateParams {
                instructions: Some(DISPATCH_VOICE_INSTRUCTIONS.into()),
                conversation: Some("none".into()),
                input: Some(vec![ItemCreate::user_text(message.clone())]),
                metadata: Some(metadata),
                output_modalities: Some(vec!["audio".into()]),
            }),
        }));
        self.dispatch_audio.requested.insert(revision, (message, stream_ms, tries));
    }

    /// PROTOCOLS.md §3, steps 1–4.
    fn barge_in(&mut self, now: Instant) {
        let Some(playing) = self.pending_marks.front() else {
            return; // nothing queued at Twilio: nothing to interrupt
        };
        let Some(stream_sid) = self.stream_sid.clone() else {
            return;
        };
        let item_id = playing.item_id.clone();
        // 1. stop playback now.
        self.out.push_back(Output::ToTwilio(TwilioOutbound::Clear { stream_sid }));
        // 2. cancel only if a response is still in flight.
        let response_cancelled = if let Some(resp) = self.response_in_flight.take() {
            self.out.push_back(Output::ToModel(ClientEvent::ResponseCancel { event_id: None, response_id: None }));
            self.cancelled_responses.insert(resp);
            true
        } else {
            false
        };
        // Audio of every response still queued is gone: late deltas of those responses are dropped.
        for m in &self.pending_marks {
            if let Some(item) = self.items.get(&m.item_id) {
                self.cancelled_responses.insert(item.response_id.clone());
            }
        }
        // So is a part frame of theirs that was never sent.
        for item in self.items.values_mut() {
            if self.cancelled_responses.contains(&item.response_id) {
                item.tail.clear();
            }
        }
        // 3. truncate to what was played, never more than what was received.
        let (played, sent) = self.items.get(&item_id).map(|i| (i.played_bytes, i.sent_bytes)).unwrap_or((0, 0));
        let audio_end_ms = mulaw::bytes_to_ms(played.min(sent) as usize);
        self.out.push_back(Output::ToModel(ClientEvent::ConversationItemTruncate {
            event_id: None,
            item_id: item_id.to_string(),
            content_index: 0,
            audio_end_ms,
        }));
        // 4. the marks Twilio echoes because of the clear are not playback.
        for m in self.pending_marks.drain(..) {
            self.cleared_marks.insert(m.name);
            self.out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::AgentCleared, stream_ms: m.play_at_ms, audio: m.audio }));
        }
        self.agent_queue_end_ms = self.stream_now_ms();
        self.emit(now, CallEventKind::BargeIn { item_id: item_id.to_string(), audio_end_ms, response_cancelled });
    }

    // ----------------------------------------------------------------------------------------
    // Supervisor
    // ----------------------------------------------------------------------------------------

    /// Carries out a supervisor command and says whether it made sense: `Err` with the reason
    /// when it did not (confirming a recalled dispatch, acknowledging an unknown alert, any
    /// action on an ended call). Nothing changes on `Err` (a [`Command::Record`] of an event that
    /// is not a record-keeping one is still recorded as a skipped input).
    pub fn command(&mut self, cmd: Command, now: Instant) -> Result<(), Refusal> {
        if self.phase == Phase::Ended {
            return Err(Refusal::CallEnded);
        }
        self.on_command(cmd, now)
    }

    fn supervise(&mut self, cmd: Command, now: Instant) -> Result<(), Refusal> {
        let at = self.unix_ms(now);
        let d = &mut self.dispatch;
        let result = match cmd {
            Command::ConfirmDispatch { by } => d.confirm(&by, at),
            Command::DispatchNow { by } => d.dispatch_now(&by, at),
            Command::RecallDispatch { by } => d.recall(&by, at),
            Command::EditIncident { facts, units, by } => d.edit(&facts, units, &by, at),
            Command::AcknowledgeAlert { alert_id, by } => d.acknowledge(alert_id, &by),
            Command::MoveUnit { unit, status, by } => d.move_unit(&unit, status, &by),
            _ => Ok(()),
        };
        self.run_dispatch(now);
        Ok(result?)
    }

    /// Carries out what the call's dispatch decided, in order: its events, words to the agent,
    /// the dispatch audio, requests to the roster's owner.
    fn run_dispatch(&mut self, now: Instant) {
        while let Some(effect) = self.dispatch.poll_effect() {
            let kind = match effect {
                Effect::IncidentUpdated(incident) => CallEventKind::IncidentUpdated { incident },
                Effect::Alert { alert_id, alert } => CallEventKind::Alert { alert_id, severity: alert.severity(), alert },
                Effect::AlertAcknowledged { alert_id, by } => CallEventKind::AlertAcknowledged { alert_id, by },
                Effect::AgentQuestions { count } => CallEventKind::AgentQuestions { count },
                Effect::Proposed { priority, auto_dispatch_at_ms, message, units } => CallEventKind::DispatchProposed { priority, auto_dispatch_at_ms, message, units },
                Effect::Dispatched { by, message, units } => CallEventKind::Dispatched { by, message, units },
                Effect::Recalled { by } => CallEventKind::DispatchRecalled { by },
                Effect::Waiting => CallEventKind::DispatchWaiting,
                Effect::Unit { unit, status: UnitStatus::Dispatched, by } => CallEventKind::UnitAttached { unit, by },
                Effect::Unit { unit, status: UnitStatus::OnScene, by } => CallEventKind::UnitOnScene { unit, by },
                Effect::Unit { unit, status, by } => CallEventKind::UnitStatusChanged { unit, status, by },
                Effect::TellAgent(text) => {
                    self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item: ItemCreate::system_text(text) }));
                    continue;
                }
                Effect::AskAgent(instructions) => {
                    if self.response_in_flight.is_none() && !self.reply_after_response {
                        self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate {
                            event_id: None,
                            response: Some(ResponseCreateParams { instructions: Some(instructions), ..Default::default() }),
                        }));
                    }
                    continue;
                }
                Effect::VoiceMessage(message) => {
                    self.request_dispatch_audio(now, message);
                    continue;
                }
                Effect::Roster(request) => {
                    self.out.push_back(Output::Roster(request));
                    continue;
                }
            };
            self.emit(now, kind);
        }
    }

    /// Carries out a command; `Err` says why it was refused (and nothing changed).
    fn on_command(&mut self, cmd: Command, now: Instant) -> Result<(), Refusal> {
        match cmd {
            Command::Whisper { text, by } => {
                self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate {
                    event_id: None,
                    previous_item_id: None,
                    item: ItemCreate::system_text(format!("Supervisor instruction: {text}")),
                }));
                self.emit(now, CallEventKind::Whisper { text, by });
            }
            Command::ConfirmDispatch { .. } | Command::DispatchNow { .. } | Command::RecallDispatch { .. } | Command::EditIncident { .. } | Command::AcknowledgeAlert { .. } | Command::MoveUnit { .. } => {
                if let Err(why) = self.supervise(cmd, now) {
                    tracing::info!(%why, "supervisor action refused");
                    return Err(why);
                }
            }
            Command::Record(kind @ CallEventKind::LegalHold { .. }) => {
                self.emit(now, kind);
            }
            Command::Sync => {}
            Command::StreamStoppedBeforeStart => self.end(now, "stream_stopped_before_start", CallStatus::Fallback),
            Command::HandOff { action, to, by } => {
                if self.pending_handoff.is_some() || self.falling_back {
                    return Err(Refusal::HandOffUnderWay);
                }
                self.pending_handoff = Some((action, to.clone(), by));
                self.out.push_back(Output::HandOff { action, to });
            }
            Command::Record(other) => {
                self.skip(now, "supervisor", format!("not a record-keeping event: {other:?}"));
                return Err(Refusal::NotRecordKeeping);
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // helpers
    // ----------------------------------------------------------------------------------------

    /// The call taker answers first: once the model is configured and the stream is open, ask for
    /// the greeting.
    fn maybe_greet(&mut self) {
        if self.model_ready && self.stream_sid.is_some() && !self.greeted {
            self.greeted = true;
            self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate {
                event_id: None,
                response: Some(ResponseCreateParams {
                    instructions: Some("Answer the call now: say \"9 1 1, what is the address of your emergency?\"".into()),
                    ..Default::default()
                }),
            }));
        }
    }

    fn final_line(&mut self, now: Instant, speaker: Speaker, item_id: String, text: String, interrupted: bool) {
        self.history.push(HistoryLine { speaker, item_id: item_id.clone(), text: text.clone() });
        let stream_ms = self.line_starts.remove(&item_id);
        let at = self.unix_ms(now);
        self.dispatch.on_final_line(speaker == Speaker::Caller, &text, at);
        self.emit(now, CallEventKind::TranscriptFinal { speaker, item_id, text, interrupted, stream_ms });
        self.run_dispatch(now);
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        self.created_unix_ms + now.saturating_duration_since(self.created).as_millis() as u64
    }

    /// Raises an alert, once per kind per call.
    fn alert(&mut self, now: Instant, kind: AlertKind) {
        self.dispatch.alert(kind);
        self.run_dispatch(now);
    }

    /// Records skipped input: a warning and an `InputSkipped` event from `source`.
    pub(crate) fn skip(&mut self, now: Instant, source: &str, reason: String) {
        tracing::warn!(source, %reason, "skipped input");
        self.stats.skipped += 1;
        self.emit(now, CallEventKind::InputSkipped { source: source.to_string(), reason });
    }

    fn set_status(&mut self, now: Instant, status: CallStatus) {
        if self.status != status {
            self.status = status;
            self.emit(now, CallEventKind::StatusChanged { status });
        }
    }

    fn set_talking(&mut self, now: Instant, who: Talking) {
        if self.talking != who {
            self.talking = who;
            self.emit(now, CallEventKind::Talking { who });
        }
    }

    fn stage(&mut self, now: Instant, stage: Stage) {
        if self.stages_seen.insert(stage) {
            let elapsed_ms = now.saturating_duration_since(self.created).as_millis() as u64;
            self.emit(now, CallEventKind::Stage { stage, elapsed_ms });
        }
    }

    fn emit(&mut self, now: Instant, kind: CallEventKind) {
        let at_ms = self.created_unix_ms + now.saturating_duration_since(self.created).as_millis() as u64;
        let ev = CallEvent { call_sid: self.call_sid.clone(), seq: self.seq, at_ms, kind };
        self.seq += 1;
        self.out.push_back(Output::Event(ev));
    }

    /// Emits an event decided by the driver (e.g. a connect failure).
    pub(crate) fn emit_external(&mut self, now: Instant, kind: CallEventKind) {
        self.emit(now, kind);
    }

    /// The stream clock now, ms: the end of the caller audio received so far (Twilio sends a
    /// frame every 20 ms, so this tracks the caller's clock at any speed).
    pub fn stream_now_ms(&self) -> u64 {
        self.next_inbound_ms.unwrap_or(0)
    }

    /// How long since the call was created.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }
}

#[cfg(test)]
mod tests;
