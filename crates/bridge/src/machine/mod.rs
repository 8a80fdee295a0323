//! The sans-IO relay of one call (str0m style): feed it inputs with [`CallMachine::handle_input`]
//! and the current time, then drain [`CallMachine::poll_output`] and ask
//! [`CallMachine::poll_timeout`] for the next deadline. No sockets, no clocks, no sleeps:
//! barge-in and timers are tested with plain values.
//!
//! The machine is a composition of sub-machines, each with its own state and tests, and no
//! shared data between them: [`caller`] (the caller's stream clock), [`playout`] (agent frames,
//! marks, barge-in, the played position), [`session`] (model connect, reconnect, renewal,
//! stall, error classes), [`dispatch_audio`] (the out-of-band responses that voice the dispatch
//! message), and the call's dispatch ([`watchfloor_dispatch::call::CallDispatch`]). The machine
//! routes each input to them and turns what they decide into events and outputs.
//!
//! What it does (PROTOCOLS.md):
//! - caller audio: μ-law passed through unchanged as `input_audio_buffer.append`; gaps in Twilio
//!   `timestamp`s padded with μ-law silence so the model's clock stays true (§2);
//! - agent audio: the `response.output_audio.delta`s of an item (of any size: the real service's
//!   are not cut on 20 ms) each go to Twilio as one `media` of whole 20 ms frames — a part frame
//!   waits for the next delta, and the item's last one is filled with silence at
//!   `output_audio.done` — followed by one named `mark` (`<item_id>:<end byte offset>`); what has
//!   *played* is known to the frame from the marks and the caller's clock ([`playout`]), and the
//!   agent's track "as heard" sits on an exact 20 ms grid (§2, §3);
//! - barge-in (§3): on `speech_started` while agent audio is playing: `clear`; `response.cancel`
//!   only if a response is in flight; `conversation.item.truncate` with `audio_end_ms` = audio
//!   played per the marks and the clock since, never more than was received; late deltas of the cancelled response and
//!   the marks echoed because of the `clear` are dropped;
//! - transcripts of both speakers (partial and final), the conversation history, the count of agent
//!   questions, stage timings, and a `CallEvent` for every change.

pub mod buffers;
pub mod caller;
pub mod dispatch_audio;
pub mod playout;
pub mod session;
pub mod transcription;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use watchfloor_wire::mulaw;
use watchfloor_wire::realtime::{ClientEvent, ItemCreate, ResponseCreateParams, ResponseStatus, ServerEvent};
use watchfloor_wire::twilio::{TwilioInbound, TwilioOutbound};

use bytes::Bytes;

use watchfloor_dispatch::alerts::AlertKind;
use watchfloor_dispatch::call::{ActionRefused, CallDispatch, Effect, IncidentAnswer, IncidentRequest, RosterAnswer, RosterRequest};
use watchfloor_dispatch::linking::{IncidentId, IncidentView, LinkRefused};
use watchfloor_dispatch::incident::Incident;
use watchfloor_dispatch::policy::Policy;
use watchfloor_dispatch::report;
use watchfloor_dispatch::units::{Roster, UnitStatus};

use watchfloor_call::{AudioFrame, CallEvent, CallEventKind, CallMode, CallStatus, FallbackRoute, HandOffAction, Speaker, Stage, Talking, Track};
use crate::profile::{AgentProfile, CallContext};

pub use caller::{CallerClock, ClockLimit, MAX_CLOCK_STEP_BACK_MS, MAX_PADDED_GAP_MS};
pub use dispatch_audio::{DISPATCH_AUDIO_PURPOSE, DispatchAudio};
pub use playout::Playout;
pub use transcription::SupervisorTranscription;
pub use session::{DEFAULT_STALL_TIMEOUT, ErrorClass, MAX_RECONNECTS, ModelSession, SESSION_LIMIT, SESSION_RENEW_AFTER, STALL_MIN_SPEECH_MS, STALL_SPEECH_DBFS, Timers, classify_error};

/// An input to the machine. The hot path's two inputs borrow the frame they were read from
/// ([`MediaRef`](watchfloor_wire::twilio::MediaRef),
/// [`AudioDeltaRef`](watchfloor_wire::realtime::AudioDeltaRef)): nothing is copied to feed them.
#[derive(Debug)]
pub enum Input<'a> {
    /// A Twilio `media` message read in place: its `timestamp` and base64 `payload` (the same
    /// as `Twilio(TwilioInbound::Media { .. })`). The payload goes to the model as the same
    /// base64 text; it is decoded once, for the recording and the speech level.
    CallerMedia {
        /// `media.timestamp`, ms since the stream started, as Twilio wrote it.
        timestamp: &'a str,
        /// `media.payload`, base64 μ-law 8 kHz.
        payload: &'a str,
    },
    /// A model `response.output_audio.delta` read in place (the same as
    /// `Model(ServerEvent::ResponseOutputAudioDelta { .. })`). Dispatch audio is routed first,
    /// as for every model event.
    AgentAudio {
        /// The response.
        response_id: &'a str,
        /// The item.
        item_id: &'a str,
        /// Base64 μ-law 8 kHz, of any length.
        delta: &'a str,
    },
    /// One 20 ms frame (160 bytes of μ-law) of the supervisor's voice, due now (paced by the
    /// call's task through [`crate::jitter::Jitter`]): sent to the caller like the agent's audio,
    /// each with a mark so the recording has it as heard, while the supervisor holds the voice;
    /// dropped otherwise.
    SupervisorAudio {
        /// μ-law 8 kHz, 160 bytes.
        audio: &'a [u8],
    },
    /// The voice holder's console is alive (a keepalive while the supervisor only listens).
    VoiceKeepalive,
    /// A console of `user` is gone (its live feed closed): the voice is lost if they hold it.
    VoiceLost {
        /// The console's user.
        user: String,
    },
    /// A Twilio `mark` echo read in place: its name (the same as
    /// `Twilio(TwilioInbound::Mark { .. })`).
    MarkEcho {
        /// `mark.name`.
        name: &'a str,
    },
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
    /// The incident list changed in a way that may matter to this call (a link, an unlink, a
    /// proposal on a call sharing an incident), or the call's own incident was opened: the
    /// call's view of it ([`IncidentView`]: its incident, its other calls, what the earlier of
    /// them proposed; dispatch once, issue 18).
    IncidentsChanged(IncidentView),
    /// The incident list owner's answer to the oldest [`Output::Incidents`] not yet answered,
    /// with the call's view of the list as it now stands.
    Incidents(IncidentAnswer, IncidentView),
    /// [`Output::HandOff`] was carried out: `Err` with Twilio REST's error (secrets left out).
    HandOffDone(Result<(), String>),
    /// [`Output::CallTool`] was carried out: the model's `call_id`, the tool, and what came of it.
    ToolAnswered {
        /// The model's `call_id`.
        call_id: String,
        /// The tool.
        name: String,
        /// The outcome.
        outcome: crate::tools::ToolOutcome,
    },
    /// The deadline given by [`CallMachine::poll_timeout`] has passed: dispatch hold window,
    /// silent caller, stall detection, session renewal.
    Timeout,
    /// The supervisor's transcription socket ([`Output::OpenTranscription`]) is open.
    TranscriptionConnected,
    /// An event of the supervisor's transcription session.
    Transcription(ServerEvent),
    /// The transcription socket could not be opened, or closed (the reason): no more
    /// supervisor lines this takeover; the supervisor's voice is not affected.
    TranscriptionLost(String),
}

/// The response id the supervisor's voice frames are queued under at Twilio (never a model
/// response: a barge-in or a cancel never names it).
pub const SUPERVISOR_RESPONSE: &str = "supervisor";

/// A supervisor holding the voice whose console sends nothing (no frame, no keepalive) this long
/// has lost it (issue 17): the caller is never left in silence.
pub const VOICE_LOST_AFTER: Duration = Duration::from_secs(3);

/// What happens to a call whose voice holder's console is lost ([`VOICE_LOST_AFTER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum VoiceLossAction {
    /// The agent takes the call back (with a critical alert).
    #[default]
    Ai,
    /// The call goes to the human line (the fallback).
    HumanLine,
}

/// The supervisor has stopped talking when no frame of theirs has gone out for this long (the
/// jitter buffer sends one every 20 ms while they talk).
pub const SUPERVISOR_PAUSE: Duration = Duration::from_millis(100);

/// A caller silent this long while the agent waits raises an alert.
pub const SILENT_CALLER: Duration = Duration::from_secs(15);
/// How soon a deadline that passed without effect is checked again (a silent-caller alert
/// while the agent talks, a renewal waiting for a quiet moment).
pub const RECHECK_AFTER: Duration = Duration::from_millis(250);

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
    /// The incident list refused a link or unlink (an unknown incident, already on it, alone).
    #[error(transparent)]
    Link(#[from] LinkRefused),
    /// [`Command::Record`] with an event that is not a record-keeping one.
    #[error("not a record-keeping event")]
    NotRecordKeeping,
    /// Another supervisor holds the call's voice (the HTTP API answers 409 with this text).
    #[error("the call's voice is held by {0}")]
    VoiceHeld(String),
    /// Only the supervisor holding the call's voice can hand it back.
    #[error("you do not hold this call's voice")]
    NotVoiceHolder,
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
    /// A supervisor takes the call's voice over (issue 17): the agent's reply in flight is cut
    /// at the played position, Twilio's buffer is cleared, and the model stops answering
    /// (`turn_detection.create_response: false`, PROTOCOLS.md §5) while the caller's audio still
    /// reaches it. Refused while another supervisor holds the voice ([`Refusal::VoiceHeld`]).
    TakeVoice {
        /// The console user.
        by: String,
    },
    /// The supervisor holding the voice hands the call back to the agent: the model answers
    /// again and is told a supervisor spoke with the caller. Refused to anyone else.
    HandBack {
        /// The console user.
        by: String,
    },
    /// Link the call to another incident (a duplicate call, issue 18): through the incident
    /// list's owner ([`Output::Incidents`]); its refusal comes back as the command's.
    Link {
        /// The incident it joins.
        incident: IncidentId,
        /// The console user.
        by: String,
    },
    /// Take the call off its incident (undo a link): it gets one of its own again and proposes
    /// its own dispatch.
    Unlink {
        /// The console user.
        by: String,
    },
    /// Keep the call apart from its possible duplicate (refused when none stands).
    KeepApart {
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
    /// Send to Twilio: one message's JSON text, written by the machine (the hot path's agent
    /// `media` and `mark`, [`watchfloor_wire::twilio::write_media`]) into a reused block
    /// ([`buffers::TextBlock`]). Valid UTF-8.
    ToTwilioText(Bytes),
    /// Send to the model.
    ToModel(ClientEvent),
    /// Send the caller's audio to the model: the JSON text of one `input_audio_buffer.append`
    /// ([`watchfloor_wire::realtime::write_input_audio_buffer_append`], valid UTF-8) and the
    /// μ-law bytes it carries (what the driver's backlog counts while no session can take it).
    AppendAudio {
        /// The message's text.
        text: Bytes,
        /// Caller audio in it, bytes (8 per ms).
        audio_bytes: usize,
    },
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
        /// Why the call goes to a human, for the record and the log.
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
    /// Ask the incident list's owner ([`crate::SharedIncidents`]) for a duplicate check, a
    /// link or an unlink for this call, then answer at once with [`Input::Incidents`] (before
    /// the next output is carried out).
    Incidents(IncidentRequest),
    /// Who speaks to the caller changed (a takeover or a hand-back): drop the supervisor's
    /// voice frames buffered so far (they belong to the voice before the change).
    ResetVoice,
    /// The new model session is configured (the `session.update` and history items before
    /// this output): send it the caller audio held while no session could take it, in order.
    FlushBacklog,
    /// Open the transcription-only session that transcribes the supervisor holding the voice
    /// (PROTOCOLS.md §5: the model URL's `?intent=transcription`), then answer with
    /// [`Input::TranscriptionConnected`] or [`Input::TranscriptionLost`].
    OpenTranscription,
    /// Send to the supervisor's transcription session.
    ToTranscription(ClientEvent),
    /// Close the supervisor's transcription session (its last lines are in, or the call ended).
    CloseTranscription,
    /// Call a profile's tool ([`crate::tools::ToolClient::call`]) for the model's function call,
    /// then answer with [`Input::ToolAnswered`]; the call goes on meanwhile, and several may run.
    CallTool {
        /// The model's `call_id`.
        call_id: String,
        /// The tool.
        tool: crate::tools::ToolConfig,
        /// The model's arguments (JSON text).
        arguments: String,
    },
    /// Close both sockets: the call is over for the bridge. Closing the Twilio socket lets the
    /// TwiML after `</Connect>` run (the human line).
    Close,
}

/// A line of the conversation history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryLine {
    /// Who spoke the line (caller, agent or supervisor).
    pub speaker: Speaker,
    /// The model's item id.
    pub item_id: String,
    /// What they said (final transcript).
    pub text: String,
    /// The supervisor, for a [`Speaker::Supervisor`] line.
    pub by: Option<String>,
}

impl HistoryLine {
    /// The conversation item that tells a model session this line: the caller's words as a
    /// user message, the agent's as an assistant message, a supervisor's as a system message
    /// that says plainly who spoke (PROTOCOLS.md §5: the supervisor is neither).
    pub fn item(&self) -> ItemCreate {
        match self.speaker {
            Speaker::Caller => ItemCreate::user_text(self.text.clone()),
            Speaker::Agent => ItemCreate::assistant_text(self.text.clone()),
            Speaker::Supervisor => ItemCreate::system_text(supervisor_said(self.by.as_deref().unwrap_or("unknown"), &self.text)),
        }
    }
}

/// How a supervisor's line is told to the agent: `Supervisor (<user>) said to the caller: "…"`.
pub fn supervisor_said(by: &str, text: &str) -> String {
    format!("Supervisor ({by}) said to the caller: \"{text}\"")
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
    greeted: bool,
    stages_seen: HashSet<Stage>,
    /// The caller's stream clock ([`CallerClock`]).
    clock: CallerClock,
    /// The agent's audio queued at Twilio ([`Playout`]).
    playout: Playout,
    /// The model session ([`ModelSession`]).
    session: ModelSession,
    /// The dispatch message voiced for the record ([`DispatchAudio`]).
    dispatch_audio: DispatchAudio,
    /// The call's dispatch: incident, policy, alerts, units ([`CallDispatch`]).
    dispatch: CallDispatch,
    /// Where caller frames for the recording are copied.
    recording: buffers::AudioBlocks,
    /// The caller appends' texts.
    append_text: buffers::TextBlock,
    /// Base64 decode buffer.
    scratch: Vec<u8>,
    response_in_flight: Option<String>,
    /// A function call was answered: ask for the spoken reply when its response is done.
    reply_after_response: bool,
    talking: Talking,
    caller_speaking: bool,
    /// Last time the caller's audio carried speech.
    last_caller_speech: Option<Instant>,
    // transcripts
    partial_agent: HashMap<String, String>,
    history: Vec<HistoryLine>,
    /// Tells each final line's language among the profile's (issue 21).
    languages: crate::language::LineLanguages,
    /// Where each line's audio started on the stream clock, by item id (until its final line).
    line_starts: HashMap<String, u64>,
    stats: RelayStats,
    out: VecDeque<Output>,
    /// When [`Input::Timeout`] was last handled.
    last_timeout: Option<Instant>,
    falling_back: bool,
    fallback_reason: Option<String>,
    /// A supervisor hand-off sent to Twilio: (action, line, user).
    pending_handoff: Option<(HandOffAction, Option<String>, String)>,
    /// The supervisor holding the call's voice (takeover mode), while one does.
    voice_holder: Option<String>,
    /// Takeovers so far: the supervisor's audio of takeover `n` is item `supervisor-<n>`.
    takeovers: u32,
    /// The last sign of life of the voice holder's console (a frame or a keepalive).
    voice_heard: Instant,
    /// What a lost voice holder means for the call.
    voice_loss: VoiceLossAction,
    /// The transcription session of the supervisor's voice ([`SupervisorTranscription`]).
    transcription: SupervisorTranscription,
    /// The supervisor whose words the transcription session carries (kept after a hand-back
    /// for lines that arrive late).
    transcribed: Option<String>,
    /// When the supervisor's last frame went to the caller, while they are talking.
    supervisor_frame_at: Option<Instant>,
    /// The voice was handed back by this user, and the agent waits for the supervisor's last
    /// lines before it answers again ([`transcription::LINES_WAIT`] at most).
    resume_after_lines: Option<String>,
}

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
        let languages = crate::language::LineLanguages::new(&profile.languages);
        let mut m = CallMachine {
            dispatch: CallDispatch::new(&call_sid, Policy::default()),
            playout: Playout::new(call_sid.clone()),
            call_sid,
            profile,
            context,
            created: now,
            created_unix_ms: now_unix_ms,
            seq: 0,
            phase: Phase::AwaitingStream,
            status: CallStatus::Processing,
            stream_sid: None,
            greeted: false,
            stages_seen: HashSet::new(),
            clock: CallerClock::new(ClockLimit::default()),
            session: ModelSession::new(Timers::default(), now),
            dispatch_audio: DispatchAudio::default(),
            recording: buffers::AudioBlocks::default(),
            append_text: buffers::TextBlock::new(buffers::TextBlock::APPEND_BLOCK_BYTES),
            scratch: Vec::with_capacity(4096),
            response_in_flight: None,
            reply_after_response: false,
            talking: Talking::Silence,
            caller_speaking: false,
            last_caller_speech: None,
            partial_agent: HashMap::new(),
            history: Vec::new(),
            languages,
            line_starts: HashMap::new(),
            stats: RelayStats::default(),
            out: VecDeque::new(),
            last_timeout: None,
            falling_back: false,
            fallback_reason: None,
            pending_handoff: None,
            voice_holder: None,
            takeovers: 0,
            voice_heard: now,
            voice_loss: VoiceLossAction::default(),
            transcription: SupervisorTranscription::new(),
            transcribed: None,
            resume_after_lines: None,
            supervisor_frame_at: None,
        };
        let from = m.context.caller_number.clone();
        m.emit(now, CallEventKind::CallCreated { from, to, simulated });
        let profile = m.profile.reference();
        m.emit(now, CallEventKind::AgentProfile { profile });
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
        self.dispatch.set_roster(roster, 0);
        self
    }

    /// The incident as known.
    pub fn incident(&self) -> &Incident {
        self.dispatch.incident()
    }

    /// Sets how far the stream's clock may run ahead of the wall clock ([`ClockLimit`]).
    pub fn with_clock_limit(mut self, limit: ClockLimit) -> Self {
        self.clock.set_limit(limit);
        self
    }

    /// Sets what a lost voice holder means for the call ([`VoiceLossAction`]).
    pub fn with_voice_loss(mut self, action: VoiceLossAction) -> Self {
        self.voice_loss = action;
        self
    }

    /// Sets the timers (tests shorten them).
    pub fn with_timers(mut self, timers: Timers) -> Self {
        self.session.set_timers(timers);
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

    /// The stream clock now, ms: the end of the caller audio received so far.
    pub fn stream_now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// How long since the call was created.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// Whether `name` is a mark this call sent that Twilio has not echoed yet (played or cleared):
    /// each such echo is expected once and is not counted by the stream's flood limit.
    pub fn expects_mark(&self, name: &str) -> bool {
        self.playout.expects_mark(name)
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
        self.playout.end(&mut self.out);
        self.transcription.close(&mut self.out);
        self.set_status(now, status);
        self.emit(now, CallEventKind::CallEnded { reason });
        self.out.push_back(Output::Close);
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, input: Input<'_>, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        match input {
            Input::CallerMedia { timestamp, payload } => self.on_caller_media(timestamp, payload, now),
            Input::AgentAudio { response_id, item_id, delta } => {
                self.session.heard(now);
                match self.dispatch_audio.delta(response_id, delta, &mut self.scratch) {
                    dispatch_audio::Routed::NotOurs => self.on_agent_audio(response_id, item_id, delta, now),
                    routed => self.on_dispatch_audio(now, routed),
                }
            }
            Input::SupervisorAudio { audio } => self.on_supervisor_audio(audio, now),
            Input::VoiceKeepalive => {
                if self.voice_holder.is_some() {
                    self.voice_heard = now;
                }
            }
            Input::VoiceLost { user } => {
                if self.voice_holder.as_deref() == Some(user.as_str()) {
                    self.lose_voice(now);
                }
            }
            Input::ModelConnected => {
                self.session.connected(now);
                self.stage(now, Stage::ModelConnected);
                let update = self.session_update();
                self.out.push_back(Output::ToModel(update));
                self.out.push_back(Output::FlushBacklog);
                self.maybe_greet();
            }
            Input::Twilio(msg) => self.on_twilio(msg, now),
            Input::MarkEcho { name } => self.on_mark(name, now),
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
                let next = self.session.on_closed(self.falling_back);
                self.on_session(now, next, "model_closed");
            }
            Input::ModelReconnected { renewed } => self.on_reconnected(now, renewed),
            Input::ReconnectFailed(why) => {
                self.session.reconnect_failed();
                tracing::error!(%why, "model reconnect failed");
                self.fallback(now, "model_reconnect_failed");
            }
            Input::RenewFailed => self.session.renew_failed(now),
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
            Input::RosterChanged(roster) => {
                let at = self.unix_ms(now);
                self.dispatch.set_roster(roster, at);
                self.run_dispatch(now);
            }
            Input::IncidentsChanged(book) => {
                let at = self.unix_ms(now);
                self.dispatch.set_incidents(book, at);
                self.run_dispatch(now);
            }
            Input::Incidents(answer, book) => {
                let at = self.unix_ms(now);
                self.dispatch.on_incidents(answer, book, at);
                self.run_dispatch(now);
            }
            Input::HandOffDone(result) => self.on_hand_off_done(now, result),
            Input::ToolAnswered { call_id, name, outcome } => self.on_tool_answered(now, call_id, name, outcome),
            Input::TranscriptionConnected => {
                let update = self.profile.transcription_session_update();
                self.transcription.connected(update, &mut self.out);
            }
            Input::Transcription(ev) => {
                if let Some(heard) = self.transcription.on_event(ev, &mut self.out) {
                    self.on_supervisor_heard(now, heard);
                }
                self.resume_if_lines_in(now);
            }
            Input::TranscriptionLost(why) => {
                if self.transcription.failed() {
                    tracing::warn!(%why, "the supervisor's transcription session is lost");
                    self.emit(now, CallEventKind::ModelError { error_type: "transcription".into(), code: Some("transcription_unavailable".into()), message: format!("the supervisor's words are not transcribed: {why}") });
                }
                self.resume_if_lines_in(now);
            }
        }
    }

    /// What the supervisor's transcription session heard: their lines on the record (and told
    /// to the agent), its errors on the timeline.
    fn on_supervisor_heard(&mut self, now: Instant, heard: transcription::Heard) {
        let by = self.transcribed.clone();
        match heard {
            transcription::Heard::Delta { item_id, delta } => {
                self.emit(now, CallEventKind::TranscriptDelta { speaker: Speaker::Supervisor, item_id, delta, by });
            }
            transcription::Heard::Final { item_id, text, stream_ms } => {
                let line = HistoryLine { speaker: Speaker::Supervisor, item_id: item_id.clone(), text: text.clone(), by: by.clone() };
                // The agent hears it now, in its place in the conversation (muted, it does not
                // answer; PROTOCOLS.md §5).
                self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item: line.item() }));
                self.history.push(line);
                let language = self.languages.line(Speaker::Supervisor, &text);
                self.emit(now, CallEventKind::TranscriptFinal { speaker: Speaker::Supervisor, item_id, text, interrupted: false, stream_ms, by, language });
            }
            transcription::Heard::Error { code, message } => {
                tracing::warn!(%code, %message, "supervisor transcription error");
                self.emit(now, CallEventKind::ModelError { error_type: "transcription".into(), code: Some(code), message });
            }
        }
    }

    /// What the model session decided: a reconnect, or the caller to a human (`reason`).
    fn on_session(&mut self, now: Instant, next: session::Next, reason: &str) {
        match next {
            session::Next::Continue => {}
            session::Next::Reconnect { renew } => self.out.push_back(Output::Reconnect { renew }),
            session::Next::Fallback => self.fallback(now, reason),
        }
    }

    /// Hands the caller to a human: status `fallback`, a `Fallback` event, [`Output::Fallback`].
    /// Calling it again while a fallback runs, or after the call ended, does nothing.
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

    /// Whether the model session's timers run: the call is live with the agent, the session
    /// configured and not being replaced.
    fn session_timers_run(&self) -> bool {
        self.phase == Phase::Live && !self.falling_back && self.session.is_ready() && !self.session.is_reconnecting()
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
        if self.voice_holder.is_some() {
            consider(due(self.voice_heard + VOICE_LOST_AFTER));
        }
        if let Some(t) = self.transcription.next_deadline() {
            consider(t);
        }
        if let Some(t) = self.supervisor_frame_at {
            consider(t + SUPERVISOR_PAUSE);
        }
        if self.session_timers_run() {
            if self.stream_sid.is_some() && !self.dispatch.has_alert(&AlertKind::SilentCaller) {
                consider(due(self.last_caller_speech.unwrap_or(self.created) + SILENT_CALLER));
            }
            consider(due(self.session.stall_deadline()));
            consider(due(self.session.renew_deadline()));
        }
        next
    }

    fn on_timeout(&mut self, now: Instant) {
        self.last_timeout = Some(now);
        let at = self.unix_ms(now);
        self.dispatch.on_timeout(at);
        self.run_dispatch(now);
        if self.voice_holder.is_some() && now.saturating_duration_since(self.voice_heard) >= VOICE_LOST_AFTER {
            self.lose_voice(now);
        }
        self.transcription.on_timeout(now, &mut self.out);
        self.resume_if_lines_in(now);
        if self.supervisor_frame_at.is_some_and(|t| now.saturating_duration_since(t) >= SUPERVISOR_PAUSE) {
            self.supervisor_frame_at = None;
            if self.talking == Talking::Supervisor {
                let who = if self.caller_speaking { Talking::Caller } else { Talking::Silence };
                self.set_talking(now, who);
            }
        }
        if !self.session_timers_run() {
            return;
        }
        // A caller who says nothing while the agent waits: silent or unresponsive.
        let caller_quiet = now.saturating_duration_since(self.last_caller_speech.unwrap_or(self.created));
        if self.stream_sid.is_some() && caller_quiet >= SILENT_CALLER && !self.playout.is_playing() && self.response_in_flight.is_none() {
            self.alert(now, AlertKind::SilentCaller);
        }
        if self.session.stalled(now) {
            self.fallback(now, "model_stalled");
            return;
        }
        let quiet = self.response_in_flight.is_none() && !self.playout.is_playing() && !self.caller_speaking;
        if self.session.renewal_due(now, quiet) {
            self.out.push_back(Output::Reconnect { renew: true });
        }
    }

    fn on_reconnected(&mut self, now: Instant, renewed: bool) {
        // The new session's input buffer starts now.
        self.session.reconnected(now, self.clock.now_ms());
        // What the old session had in flight is gone with it.
        if let Some(resp) = self.response_in_flight.take() {
            self.playout.cancel(resp);
        }
        self.reply_after_response = false;
        self.out.push_back(Output::ToModel(self.session_update()));
        for line in &self.history {
            self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item: line.item() }));
        }
        let items = self.history.len() as u32;
        self.out.push_back(Output::FlushBacklog);
        // Dispatch messages not yet voiced are asked for again in the new session.
        for ev in self.dispatch_audio.on_new_session() {
            self.out.push_back(Output::ToModel(ev));
        }
        // After a drop, the caller may be waiting for an answer: ask for one unless the agent
        // spoke last (a renewal happens only at a quiet moment).
        if !renewed && !self.agent_muted() && self.history.last().is_some_and(|l| l.speaker == Speaker::Caller) {
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
                self.clock.start(now);
                self.phase = Phase::Live;
                self.stage(now, Stage::StreamStarted);
                self.emit(now, CallEventKind::StreamStarted { stream_sid });
                self.set_status(now, CallStatus::WithAgent);
                self.maybe_greet();
            }
            TwilioInbound::Media { media, .. } => self.on_caller_media(&media.timestamp, &media.payload, now),
            TwilioInbound::Dtmf { dtmf, .. } => self.on_dtmf(now, dtmf.digit),
            TwilioInbound::Mark { mark, .. } => self.on_mark(&mark.name, now),
            TwilioInbound::Stop { .. } => {
                self.end(now, "stop", CallStatus::Completed);
            }
            TwilioInbound::Unknown { event, .. } => {
                self.skip(now, "twilio", format!("unknown event {event:?}"));
            }
        }
    }

    /// A caller frame: placed on the stream clock, its gap padded with silence, its base64
    /// passed to the model as it is; decoded once, for the recording and the speech level.
    fn on_caller_media(&mut self, timestamp: &str, payload: &str, now: Instant) {
        if self.phase != Phase::Live {
            self.skip(now, "twilio", "media before start".into());
            return;
        }
        let Ok(raw_ts) = timestamp.parse::<u64>() else {
            self.skip(now, "twilio", format!("media timestamp {timestamp:?} is not a number"));
            return;
        };
        let len = match mulaw::decode_base64_into(payload, &mut self.scratch) {
            Ok(0) => {
                self.skip(now, "twilio", "empty media payload".into());
                return;
            }
            Ok(n) => n,
            Err(e) => {
                self.skip(now, "twilio", e.to_string());
                return;
            }
        };
        let (placement, rebased) = self.clock.place(raw_ts, len, now);
        if let Some(report) = rebased {
            self.skip(now, "twilio", report);
        }
        let ts = match placement {
            caller::Placement::Repeat(reason) => {
                self.skip(now, "twilio", reason);
                return;
            }
            caller::Placement::Frame { stream_ms, gap_ms } => {
                if gap_ms > 0 {
                    let (bytes, appends) = caller::silence(gap_ms);
                    self.stats.padded_bytes += bytes as u64;
                    self.stats.caller_bytes += bytes as u64;
                    for audio in appends {
                        self.out.push_back(Output::ToModel(ClientEvent::InputAudioBufferAppend { event_id: None, audio }));
                    }
                }
                stream_ms
            }
        };
        self.stats.caller_bytes += len as u64;
        // The agent's frames the caller's clock has now passed have played.
        self.playout.clock_passed(self.clock.now_ms(), &mut self.out);
        if mulaw::louder_than(&self.scratch, STALL_SPEECH_DBFS) {
            self.session.caller_spoke(mulaw::bytes_to_ms(len), now);
            self.last_caller_speech = Some(now);
        }
        // The recording's copy and the append's text come out of reused blocks: a steady-state
        // frame allocates nothing.
        self.out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Caller, stream_ms: ts, audio: self.recording.copy(&self.scratch) }));
        self.stage(now, Stage::FirstCallerAudio);
        // The base64 goes on as Twilio sent it (it decoded above, so it needs no escaping).
        let text = self.append_text.write(|b| watchfloor_wire::realtime::write_input_audio_buffer_append(b, payload));
        self.out.push_back(Output::AppendAudio { text, audio_bytes: len });
    }

    fn on_mark(&mut self, name: &str, now: Instant) {
        match self.playout.on_mark(name, self.clock.now_ms(), &mut self.out) {
            playout::MarkEcho::Played { idle } => {
                // The supervisor's frames come one at a time, each played before the next: their
                // talking ends when the frames stop (`SUPERVISOR_PAUSE`, on the timer), not
                // between two frames.
                if idle && self.talking == Talking::Agent {
                    let who = if self.caller_speaking { Talking::Caller } else { Talking::Silence };
                    self.set_talking(now, who);
                }
            }
            playout::MarkEcho::Cleared => {}
            playout::MarkEcho::Unknown => self.skip(now, "twilio", format!("mark {name:?} was never sent")),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Model → Twilio
    // ----------------------------------------------------------------------------------------

    fn on_model(&mut self, ev: ServerEvent, now: Instant) {
        self.session.heard(now);
        match self.dispatch_audio.on_event(&ev, &mut self.scratch) {
            dispatch_audio::Routed::NotOurs => {}
            routed => {
                self.on_dispatch_audio(now, routed);
                return;
            }
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
                let next = self.session.on_error(&error.kind, error.code.as_deref());
                let reason = format!("model_error:{}", error.code.as_deref().unwrap_or(&error.kind));
                self.emit(now, CallEventKind::ModelError { error_type: error.kind, code: error.code, message: error.message });
                self.on_session(now, next, &reason);
            }
            ServerEvent::SpeechStarted { audio_start_ms, item_id, .. } => {
                self.line_starts.insert(item_id, self.session.input_origin_ms() + audio_start_ms);
                self.caller_speaking = true;
                self.session.set_listening(true);
                // A supervisor with the caller is not cut off by the caller's speech.
                if self.voice_holder.is_none()
                    && let Some(stream_sid) = self.stream_sid.as_deref()
                    && let Some(b) = self.playout.barge_in(stream_sid, &mut self.response_in_flight, self.clock.now_ms(), &mut self.out)
                {
                    self.emit(now, CallEventKind::BargeIn { item_id: b.item_id, audio_end_ms: b.audio_end_ms, response_cancelled: b.response_cancelled });
                }
                self.set_talking(now, Talking::Caller);
            }
            ServerEvent::SpeechStopped { .. } => {
                self.caller_speaking = false;
                self.session.set_listening(false);
                if self.talking == Talking::Caller {
                    self.set_talking(now, Talking::Silence);
                }
            }
            ServerEvent::ResponseCreated { response, .. } => {
                if self.voice_holder.is_some() {
                    // The supervisor has the caller: the agent stays silent whatever asked it.
                    self.out.push_back(Output::ToModel(ClientEvent::ResponseCancel { event_id: None, response_id: Some(response.id.clone()) }));
                    self.playout.cancel(response.id);
                    return;
                }
                self.response_in_flight = Some(response.id);
            }
            ServerEvent::ResponseDone { response, .. } => {
                if self.phase == Phase::Live
                    && let Some(stream_sid) = self.stream_sid.as_deref()
                {
                    self.playout.flush_response(stream_sid, &response.id, self.clock.now_ms(), &mut self.out);
                }
                if self.response_in_flight.as_deref() == Some(response.id.as_str()) {
                    self.response_in_flight = None;
                }
                if std::mem::take(&mut self.reply_after_response) && self.voice_holder.is_none() {
                    self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate { event_id: None, response: None }));
                }
                for ev in self.dispatch_audio.after_response() {
                    self.out.push_back(Output::ToModel(ev));
                }
                if response.status_kind() == ResponseStatus::Failed {
                    let message = response.status_details.map(|d| d.to_string()).unwrap_or_default();
                    self.emit(now, CallEventKind::ModelError { error_type: "response_failed".into(), code: None, message });
                }
            }
            ServerEvent::ResponseOutputAudioDelta { response_id, item_id, delta, .. } => {
                self.on_agent_audio(&response_id, &item_id, &delta, now);
            }
            ServerEvent::ResponseOutputAudioDone { item_id, .. } => {
                if self.phase == Phase::Live
                    && let Some(stream_sid) = self.stream_sid.as_deref()
                {
                    self.playout.flush_item(stream_sid, &item_id, self.clock.now_ms(), &mut self.out);
                }
            }
            ServerEvent::ResponseOutputAudioTranscriptDelta { item_id, delta, response_id, .. } => {
                if self.playout.is_cancelled(&response_id) {
                    return;
                }
                self.partial_agent.entry(item_id.clone()).or_default().push_str(&delta);
                self.emit(now, CallEventKind::TranscriptDelta { speaker: Speaker::Agent, item_id, delta, by: None });
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
                // A profile's tool is answered by its endpoint: the output (and the reply) follow
                // when it answers.
                if let Some(tool) = self.profile.tools.iter().find(|t| t.name == name) {
                    self.out.push_back(Output::CallTool { call_id: call_id.clone(), tool: tool.clone(), arguments: arguments.clone() });
                    self.emit(now, CallEventKind::FunctionCall { name, call_id, arguments });
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
                    && let Some(text) = self.partial_agent.remove(&id).filter(|t| !t.trim().is_empty())
                {
                    self.final_line(now, Speaker::Agent, id, text.trim().to_string(), true);
                }
            }
            ServerEvent::ConversationItemTruncated { item_id, audio_end_ms, .. } => {
                // The model cut its own transcript to what was heard; our final line stays as
                // transcribed and the BargeIn event records the cut.
                tracing::debug!(%item_id, audio_end_ms, "model truncated item");
            }
            ServerEvent::InputTranscriptionDelta { item_id, delta, .. } => {
                self.emit(now, CallEventKind::TranscriptDelta { speaker: Speaker::Caller, item_id, delta, by: None });
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
            ServerEvent::InputAudioBufferTimeoutTriggered { audio_start_ms, audio_end_ms, .. } => {
                // The model prompts the caller on its own (it answers as if the turn had ended).
                self.emit(now, CallEventKind::CallerSilent { audio_start_ms, audio_end_ms });
                self.alert(now, AlertKind::SilentCaller);
            }
            ServerEvent::InputAudioBufferCommitted { .. }
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

    /// A frame of the supervisor's voice: to the caller with its mark, as an item of its own.
    fn on_supervisor_audio(&mut self, audio: &[u8], now: Instant) {
        if self.phase != Phase::Live || self.voice_holder.is_none() {
            return;
        }
        let Some(stream_sid) = self.stream_sid.as_deref() else { return };
        if audio.len() != mulaw::FRAME_BYTES {
            self.skip(now, "supervisor", format!("a voice frame of {} bytes (not 160)", audio.len()));
            return;
        }
        self.voice_heard = now;
        self.supervisor_frame_at = Some(now);
        let item_id = format!("supervisor-{}", self.takeovers);
        // The supervisor's own track: each frame where it plays for the caller (the position
        // its mark confirms on the agent track), so the two line up sample for sample.
        let stream_ms = self.playout.next_play_at_ms(self.clock.now_ms());
        self.playout.agent_audio(stream_sid, SUPERVISOR_RESPONSE, &item_id, &mulaw::encode_base64(audio), audio, self.clock.now_ms(), &mut self.out);
        self.out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Supervisor, stream_ms, audio: Bytes::copy_from_slice(audio) }));
        self.transcription.audio(audio, stream_ms, now, &mut self.out);
        if self.talking != Talking::Supervisor && !self.caller_speaking {
            self.set_talking(now, Talking::Supervisor);
        }
    }

    fn on_agent_audio(&mut self, response_id: &str, item_id: &str, delta: &str, now: Instant) {
        if self.playout.is_cancelled(response_id) {
            self.stats.dropped_deltas += 1;
            return;
        }
        if self.stream_sid.is_none() {
            self.skip(now, "model", "agent audio before the media stream started".into());
            return;
        }
        if self.phase != Phase::Live {
            return;
        }
        let len = match mulaw::decode_base64_into(delta, &mut self.scratch) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                self.skip(now, "model", e.to_string());
                return;
            }
        };
        let stream_sid = self.stream_sid.as_deref().unwrap_or_default();
        if let Some(start_ms) = self.playout.agent_audio(stream_sid, response_id, item_id, delta, &self.scratch, self.clock.now_ms(), &mut self.out) {
            self.line_starts.insert(item_id.to_owned(), start_ms);
        }
        self.stats.agent_bytes += len as u64;
        self.stage(now, Stage::FirstAgentAudio);
        if self.talking != Talking::Agent && !self.caller_speaking {
            self.set_talking(now, Talking::Agent);
        }
    }

    /// A dispatch-audio event routed away from the conversation: a revision done becomes its
    /// `dispatch` track and the `DispatchAudio` event.
    fn on_dispatch_audio(&mut self, now: Instant, routed: dispatch_audio::Routed) {
        match routed {
            dispatch_audio::Routed::NotOurs | dispatch_audio::Routed::Ours => {}
            dispatch_audio::Routed::Skip(reason) => self.skip(now, "model", reason),
            dispatch_audio::Routed::Done(v) => self.voiced(now, v),
        }
    }

    fn voiced(&mut self, now: Instant, v: dispatch_audio::Voiced) {
        if !v.audio.is_empty() {
            self.out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Dispatch, stream_ms: v.stream_ms, audio: Bytes::from(v.audio) }));
        }
        self.emit(now, CallEventKind::DispatchAudio { revision: v.revision, status: v.status, stream_ms: v.stream_ms, duration_ms: v.duration_ms, message: v.message });
    }

    /// Asks the model to voice the dispatch message out of band ([`DispatchAudio`]); its audio
    /// is recorded as the `dispatch` track, never sent to the caller.
    fn request_dispatch_audio(&mut self, now: Instant, message: String) {
        let stream_ms = self.clock.now_ms();
        if self.falling_back || self.phase == Phase::Ended {
            let v = self.dispatch_audio.unavailable(message, stream_ms);
            self.voiced(now, v);
            return;
        }
        let ev = self.dispatch_audio.request(message, stream_ms);
        self.out.push_back(Output::ToModel(ev));
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
            Command::Link { incident, by } => {
                d.link(incident, &by);
                Ok(())
            }
            Command::Unlink { by } => {
                d.unlink(&by);
                Ok(())
            }
            Command::KeepApart { by } => d.keep_apart(&by),
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
                    if self.response_in_flight.is_none() && !self.reply_after_response && !self.agent_muted() {
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
                Effect::Incidents(request) => {
                    self.out.push_back(Output::Incidents(request));
                    continue;
                }
                Effect::Linked { incident, with_calls, by } => CallEventKind::IncidentLinked { incident, with_calls, by },
                Effect::PossibleDuplicate(duplicate) => CallEventKind::PossibleDuplicate { duplicate },
                Effect::Withdrawn { incident } => CallEventKind::DispatchWithdrawn { incident },
                Effect::KeptApart { incident, by } => CallEventKind::KeptApart { incident, by },
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
            Command::ConfirmDispatch { .. } | Command::DispatchNow { .. } | Command::RecallDispatch { .. } | Command::EditIncident { .. } | Command::AcknowledgeAlert { .. } | Command::MoveUnit { .. } | Command::Link { .. } | Command::Unlink { .. } | Command::KeepApart { .. } => {
                if let Err(why) = self.supervise(cmd, now) {
                    tracing::info!(%why, "supervisor action refused");
                    return Err(why);
                }
            }
            Command::Record(kind @ CallEventKind::LegalHold { .. }) => {
                self.emit(now, kind);
            }
            Command::TakeVoice { by } => return self.take_voice(now, by),
            Command::HandBack { by } => return self.hand_back(now, by),
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

    /// The `session.update` for the current mode: the agent answers turns unless a supervisor
    /// holds the voice.
    fn session_update(&self) -> ClientEvent {
        self.profile.session_update_answering(&self.context, !self.agent_muted())
    }

    fn take_voice(&mut self, now: Instant, by: String) -> Result<(), Refusal> {
        match &self.voice_holder {
            Some(holder) if *holder == by => return Ok(()),
            Some(holder) => return Err(Refusal::VoiceHeld(holder.clone())),
            None => {}
        }
        if self.falling_back || self.pending_handoff.is_some() {
            return Err(Refusal::HandOffUnderWay);
        }
        self.voice_holder = Some(by.clone());
        self.voice_heard = now;
        self.takeovers += 1;
        // Taken again while the last takeover's lines were awaited: the agent stays silent.
        self.resume_after_lines = None;
        self.transcribed = Some(by.clone());
        self.transcription.start(&mut self.out);
        // The agent stops now: what plays is cleared and cut where the caller heard it (the
        // barge-in steps, PROTOCOLS.md §3); a reply still being generated is cancelled.
        let cut = match self.stream_sid.as_deref() {
            Some(stream_sid) => self.playout.barge_in(stream_sid, &mut self.response_in_flight, self.clock.now_ms(), &mut self.out),
            None => None,
        };
        if cut.is_none()
            && let Some(resp) = self.response_in_flight.take()
        {
            self.out.push_back(Output::ToModel(ClientEvent::ResponseCancel { event_id: None, response_id: None }));
            self.playout.cancel(resp);
        }
        self.reply_after_response = false;
        self.out.push_back(Output::ToModel(self.session_update()));
        if self.talking == Talking::Agent {
            let who = if self.caller_speaking { Talking::Caller } else { Talking::Silence };
            self.set_talking(now, who);
        }
        self.out.push_back(Output::ResetVoice);
        self.emit(now, CallEventKind::ModeChanged { mode: CallMode::Takeover, by });
        Ok(())
    }

    /// The voice holder's console is gone: the caller is never left in silence — a critical
    /// alert, then the agent takes the call back or it goes to the human line, by setting.
    fn lose_voice(&mut self, now: Instant) {
        let Some(holder) = self.voice_holder.clone() else { return };
        tracing::warn!(supervisor = %holder, "the voice holder's console was lost");
        self.alert(now, AlertKind::SupervisorLost { user: holder.clone() });
        match self.voice_loss {
            VoiceLossAction::Ai => {
                let _ = self.hand_back(now, holder);
            }
            VoiceLossAction::HumanLine => self.fallback(now, "supervisor_voice_lost"),
        }
    }

    fn hand_back(&mut self, now: Instant, by: String) -> Result<(), Refusal> {
        if self.voice_holder.as_deref() != Some(by.as_str()) {
            return Err(Refusal::NotVoiceHolder);
        }
        self.voice_holder = None;
        self.out.push_back(Output::ResetVoice);
        self.emit(now, CallEventKind::ModeChanged { mode: CallMode::Ai, by: by.clone() });
        // The supervisor's last words are still being transcribed: the agent answers once they
        // are in its conversation (at most `LINES_WAIT` later).
        self.transcription.finish(now, &mut self.out);
        self.resume_after_lines = Some(by);
        self.resume_if_lines_in(now);
        Ok(())
    }

    /// The agent answers again after a hand-back, once the supervisor's lines are in (or
    /// waiting for them has timed out).
    fn resume_if_lines_in(&mut self, _now: Instant) {
        if self.transcription.is_waiting() || self.phase != Phase::Live || self.falling_back {
            return;
        }
        let Some(by) = self.resume_after_lines.take() else { return };
        self.out.push_back(Output::ToModel(self.session_update()));
        self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: ItemCreate::system_text(format!(
                "A supervisor ({by}) spoke with the caller directly and has now handed the call back to you. The caller's words meanwhile are in the conversation. Do not repeat questions already answered; continue the call."
            )),
        }));
        if self.response_in_flight.is_none() {
            self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate {
                event_id: None,
                response: Some(ResponseCreateParams { instructions: Some("Tell the caller briefly that you are back with them, then continue gathering information.".into()), ..Default::default() }),
            }));
        }
    }

    /// The agent does not answer: a supervisor holds the voice, or handed it back and their
    /// last lines are awaited.
    fn agent_muted(&self) -> bool {
        self.voice_holder.is_some() || self.resume_after_lines.is_some()
    }

    // ----------------------------------------------------------------------------------------
    // helpers
    // ----------------------------------------------------------------------------------------

    /// The call taker answers first: once the model is configured and the stream is open, ask for
    /// the greeting.
    fn maybe_greet(&mut self) {
        if self.session.is_ready() && self.stream_sid.is_some() && !self.greeted && !self.agent_muted() {
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
        self.history.push(HistoryLine { speaker, item_id: item_id.clone(), text: text.clone(), by: None });
        let stream_ms = self.line_starts.remove(&item_id);
        let at = self.unix_ms(now);
        self.dispatch.on_final_line(speaker == Speaker::Caller, &text, at);
        let language = self.languages.line(speaker, &text);
        self.emit(now, CallEventKind::TranscriptFinal { speaker, item_id, text, interrupted, stream_ms, by: None, language });
        self.run_dispatch(now);
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        self.created_unix_ms + now.saturating_duration_since(self.created).as_millis() as u64
    }

    /// A profile's tool answered (or failed): the model gets the answer, or the error in
    /// `{"status": "error", "error": …}`, as the call's `function_call_output`, and replies at once
    /// (after the response in flight, if one is). On the timeline either way.
    fn on_tool_answered(&mut self, now: Instant, call_id: String, name: String, outcome: crate::tools::ToolOutcome) {
        if self.phase == Phase::Ended {
            // Nothing follows a call's end on its timeline.
            tracing::info!(tool = %name, "a tool answered after the call ended");
            return;
        }
        let ok = outcome.result.is_ok();
        let output = match outcome.result {
            Ok(answer) => answer,
            Err(why) => {
                tracing::warn!(tool = %name, %why, "tool call failed; the model is told");
                crate::tools::error_output(&why)
            }
        };
        let shown: String = output.chars().take(2000).collect();
        self.emit(now, CallEventKind::ToolAnswered { call_id: call_id.clone(), name, ok, output: shown, attempts: outcome.attempts, elapsed_ms: outcome.elapsed_ms });
        self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item: ItemCreate::FunctionCallOutput { call_id, output } }));
        if self.agent_muted() {
            return;
        }
        if self.response_in_flight.is_none() {
            self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate { event_id: None, response: None }));
        } else {
            self.reply_after_response = true;
        }
    }

    /// A key the caller pressed (Twilio `dtmf`): on the timeline, and told to the agent as a
    /// system message, which it answers at once unless it is speaking (then after its reply) or
    /// muted (a supervisor holds the call's voice and sees the key on the timeline). A caller who
    /// cannot speak answers the agent's yes-or-no questions this way (the profile's keypad
    /// protocol, in its instructions).
    fn on_dtmf(&mut self, now: Instant, digit: String) {
        let valid = digit.len() == 1 && digit.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#');
        if !valid {
            self.skip(now, "twilio", format!("dtmf digit {digit:?} is not a keypad key"));
            return;
        }
        self.emit(now, CallEventKind::Dtmf { digit: digit.clone() });
        if self.agent_muted() {
            return;
        }
        let text = format!("The caller pressed {digit} on the phone keypad.");
        self.out.push_back(Output::ToModel(ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item: ItemCreate::system_text(text) }));
        if self.response_in_flight.is_none() {
            self.out.push_back(Output::ToModel(ClientEvent::ResponseCreate { event_id: None, response: None }));
        } else {
            self.reply_after_response = true;
        }
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

}

#[cfg(test)]
mod tests;
