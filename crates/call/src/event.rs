//! `CallEvent`: every state change of a call. The store, the live feed and the timeline are all
//! built from these (DESIGN.md invariant); a call's record can be replayed from its events.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One event of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CallEvent {
    /// The call (its Twilio `CallSid`).
    pub call_sid: Arc<str>,
    /// Per-call sequence number, from 0, without gaps.
    pub seq: u64,
    /// Wall-clock time, ms since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: CallEventKind,
}

/// Who is speaking in a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The person who called.
    Caller,
    /// The AI call taker ("Dispatcher" in the conversation history).
    Agent,
    /// A supervisor who holds the call's voice (a takeover, issue 17), transcribed by a
    /// transcription-only session; the line's `by` names them.
    Supervisor,
}

impl Speaker {
    /// The label used in the conversation history: `Caller`, `Dispatcher` or `Supervisor`.
    pub fn label(self) -> &'static str {
        match self {
            Speaker::Caller => "Caller",
            Speaker::Agent => "Dispatcher",
            Speaker::Supervisor => "Supervisor",
        }
    }
}

/// Who is audible right now, for the board's "who is talking".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Talking {
    /// Nobody is audible.
    #[default]
    Silence,
    /// The caller (VAD says speech).
    Caller,
    /// The agent's audio is playing to the caller.
    Agent,
    /// A supervisor holding the call's voice is talking to the caller (issue 17).
    Supervisor,
}

/// Who speaks to the caller for the call (issue 17): the AI agent, or a supervisor who took the
/// voice over (the agent is silent, the caller still transcribed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ts_rs::TS, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum CallMode {
    /// The AI agent answers the caller.
    #[default]
    Ai,
    /// A supervisor holds the call's voice; the agent does not answer.
    Takeover,
}

/// How a voiced dispatch message came out (its out-of-band response's `status`, PROTOCOLS.md
/// §1, or why none was asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ts_rs::TS, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DispatchAudioStatus {
    /// The response completed with audio.
    Completed,
    /// The response failed, the model refused the request, or it completed with no audio.
    Failed,
    /// The response was cancelled.
    Cancelled,
    /// The response stopped early (`incomplete`: a token limit or a content filter).
    Incomplete,
    /// Not asked for: the call was falling back or had ended.
    Unavailable,
    /// A status this version does not know, read back from a stored event (so an old or a newer
    /// record still opens); never produced.
    Unknown,
}

impl<'de> Deserialize<'de> for DispatchAudioStatus {
    /// The snake_case name; any other word is [`DispatchAudioStatus::Unknown`].
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(word.parse().unwrap_or(DispatchAudioStatus::Unknown))
    }
}

/// How a call the AI could not keep reached the human line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FallbackRoute {
    /// A Twilio REST redirect of the live call to the human line's TwiML (PROTOCOLS.md).
    Rest,
    /// The media stream was closed, so Twilio ran the verbs after `</Connect>`.
    StreamClose,
}

/// What a supervisor did when handing a call off through Twilio (DOMAIN.md: takeover, transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HandOffAction {
    /// The supervisor took the call on their own line.
    Takeover,
    /// The call was transferred to another line.
    Transfer,
    /// The supervisor hung up the call.
    Hangup,
}

impl HandOffAction {
    /// The wire name (`takeover`, `transfer`, `hangup`): the call's end reason too.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status the call ends with.
    pub fn final_status(self) -> CallStatus {
        match self {
            HandOffAction::Takeover => CallStatus::TakenOver,
            HandOffAction::Transfer => CallStatus::Transferred,
            HandOffAction::Hangup => CallStatus::Completed,
        }
    }
}

/// The status of a call, as the board and the record show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ts_rs::TS, strum::IntoStaticStr, strum::EnumString, strum::VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum CallStatus {
    /// Webhook received; the model is being connected, the media stream not yet open.
    #[default]
    Processing,
    /// The media stream is open and the AI agent is handling the call.
    WithAgent,
    /// Handed to the human line (the TwiML fallback or a REST redirect).
    Fallback,
    /// The call ended normally.
    Completed,
    /// The server died while the call was live (set on restart by the store).
    Interrupted,
    /// The webhook came but no media stream followed within the claim window (30 s).
    NoStream,
    /// A supervisor took the call over (sent to their own line).
    TakenOver,
    /// A supervisor transferred the call to another line.
    Transferred,
}

impl CallStatus {
    /// Every status's wire name, in declaration order (a filter's valid values).
    pub const NAMES: &'static [&'static str] = <CallStatus as strum::VariantNames>::VARIANTS;

    /// The wire name (`processing`, `with_agent`, …), as serde writes it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the call is still live (counts on the board).
    pub fn is_live(self) -> bool {
        matches!(self, CallStatus::Processing | CallStatus::WithAgent)
    }
}

/// Stages of call set-up, timed from the webhook (the stage timings of the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Stage {
    /// Twilio's voice webhook arrived.
    WebhookReceived,
    /// The model WebSocket is open.
    ModelConnected,
    /// The model confirmed `session.update` (`session.updated`).
    SessionUpdated,
    /// Twilio's `start` message arrived on the media stream.
    StreamStarted,
    /// The first caller audio frame was relayed to the model.
    FirstCallerAudio,
    /// The first agent audio frame was relayed to Twilio.
    FirstAgentAudio,
}

impl Stage {
    /// The wire name (`webhook_received`, …), as serde writes it: the record's stage keys.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How the end of a caller's turn is detected (the GA `turn_detection.type`, PROTOCOLS.md §1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum TurnDetectionKind {
    /// Voice activity by level and silence, with explicit timings.
    #[default]
    ServerVad,
    /// The model judges whether the caller has finished, with an eagerness.
    SemanticVad,
}

/// The agent profile a call ran with (issue 21): which one, which version of it, and the model
/// settings that matter in review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AgentProfileRef {
    /// The profile's name.
    pub name: String,
    /// Its version when the call started.
    pub version: u32,
    /// The Realtime model, e.g. `gpt-realtime`.
    pub model: String,
    /// Server or semantic VAD.
    pub turn_detection: TurnDetectionKind,
    /// The stored prompt, `pmpt_…` with `@version` when one is fixed; none: inline instructions.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The languages the agent answers in (ISO 639-1, the first the greeting's); empty in
    /// records made before languages were a setting.
    #[serde(default)]
    pub languages: Vec<String>,
}

/// A machine translation of one transcript line (issue 21): never the record of what was said,
/// always shown labelled as machine translation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct LineTranslation {
    /// The language translated from (ISO 639-1): the line's.
    pub from: String,
    /// The language translated into (ISO 639-1): the centre's.
    pub to: String,
    /// The translated text.
    pub text: String,
    /// The model that translated it, e.g. `gpt-4.1-mini`.
    pub model: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallEventKind {
    /// The call exists (webhook or stream start). First event of every call.
    CallCreated {
        /// Caller number (E.164), from the webhook's `From`.
        from: String,
        /// Called number, from the webhook's `To`.
        to: String,
        /// A training or test call placed by `watchfloor simulate`.
        simulated: bool,
    },
    /// The agent profile that answers the call, chosen by its called number (issue 21).
    AgentProfile {
        /// The profile and its version.
        profile: AgentProfileRef,
    },
    /// A set-up stage was reached, `elapsed_ms` after the webhook.
    Stage {
        /// Which stage.
        stage: Stage,
        /// ms since the call was created.
        elapsed_ms: u64,
    },
    /// The media stream started.
    StreamStarted {
        /// Twilio's `streamSid`.
        stream_sid: String,
    },
    /// The call's status changed.
    StatusChanged {
        /// The new status.
        status: CallStatus,
    },
    /// Part of a line of transcript (partial, replaced by the final line).
    TranscriptDelta {
        /// Who is speaking (caller, agent or supervisor).
        speaker: Speaker,
        /// The model's conversation item id.
        item_id: String,
        /// Text to append.
        delta: String,
        /// The supervisor speaking (a [`Speaker::Supervisor`] line); none otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        by: Option<String>,
    },
    /// A final line of transcript.
    TranscriptFinal {
        /// Who spoke the line (caller, agent or supervisor).
        speaker: Speaker,
        /// The model's conversation item id.
        item_id: String,
        /// The whole line (for an interrupted agent line: what was generated before the cut).
        text: String,
        /// The agent was cut off by the caller (barge-in) before finishing this line.
        #[serde(default)]
        interrupted: bool,
        /// Where the line's audio starts on the stream clock (the recording's time), ms: the
        /// caller's `speech_started`, or where the agent's first frame of it played.
        #[serde(default)]
        stream_ms: Option<u64>,
        /// The supervisor speaking (a [`Speaker::Supervisor`] line); none otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        by: Option<String>,
        /// The language the line was spoken in (ISO 639-1, e.g. `es`), told from its text among
        /// the profile's languages (issue 21); none when it could not be told.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        language: Option<String>,
    },
    /// A machine translation of a final line into the centre's language (issue 21), for the
    /// supervisor: shown beside the line, labelled machine translation. The line's own text
    /// (the original) is what the transcript keeps; this never replaces it. May follow the
    /// call's end (a translation still under way when the call ended).
    TranscriptTranslated {
        /// The line's item id (its `TranscriptFinal`).
        item_id: String,
        /// The translation.
        translation: LineTranslation,
    },
    /// The agent's audio was cut short because the caller spoke (PROTOCOLS.md §3).
    BargeIn {
        /// The assistant item that was playing.
        item_id: String,
        /// Audio of it the caller heard, ms (the `truncate` sent to the model).
        audio_end_ms: u64,
        /// Whether a `response.cancel` was sent (a response was still in flight).
        response_cancelled: bool,
    },
    /// Who is audible changed.
    Talking {
        /// Who is audible from now on.
        who: Talking,
    },
    /// The agent has asked this many questions so far (counted from its final transcript lines).
    AgentQuestions {
        /// Questions asked by the agent since the call began.
        count: u32,
    },
    /// The caller pressed a key.
    Dtmf {
        /// The digit.
        digit: String,
    },
    /// A profile's tool answered the model's call (issue 21), or failed and the model was told
    /// why; the call itself is the `function_call` before it.
    ToolAnswered {
        /// The model's `call_id`.
        call_id: String,
        /// The tool.
        name: String,
        /// The endpoint answered with JSON.
        ok: bool,
        /// What the model got (the answer, or the error), cut to 2000 characters.
        output: String,
        /// Tries made (1 = no retry).
        attempts: u32,
        /// From the first try to the outcome, ms.
        elapsed_ms: u64,
    },
    /// The caller said nothing for the profile's idle timeout: the model's
    /// `input_audio_buffer.timeout_triggered` (PROTOCOLS.md §5), after which it prompts the
    /// caller; a "caller silent" alert goes with it.
    CallerSilent {
        /// Start of the silent stretch, ms of the model's input audio.
        audio_start_ms: u64,
        /// Its end, ms of the model's input audio.
        audio_end_ms: u64,
    },
    /// The model sent an `error` event.
    ModelError {
        /// `error.type`.
        error_type: String,
        /// `error.code`.
        code: Option<String>,
        /// `error.message`.
        message: String,
    },
    /// The model sent an event type this version does not know (passed on to the feed).
    ModelEventUnknown {
        /// Its `type`.
        event_type: String,
    },
    /// A message was malformed or out of place and was skipped; the call went on.
    InputSkipped {
        /// `twilio` or `model`.
        source: String,
        /// What went wrong, in words.
        reason: String,
    },
    /// The model called a function (e.g. `report_incident`); the bridge answered it.
    FunctionCall {
        /// Function name.
        name: String,
        /// The model's call id.
        call_id: String,
        /// The arguments as the model sent them (JSON text; may be malformed).
        arguments: String,
    },
    /// A unit was attached to the call's incident (dispatch). `by`: the console user.
    UnitAttached {
        /// The unit, e.g. `Engine 7`.
        unit: String,
        /// Who recorded it.
        by: String,
    },
    /// A unit reported on scene.
    UnitOnScene {
        /// The unit.
        unit: String,
        /// Who recorded it.
        by: String,
    },
    /// A unit's status changed: `en_route`, `cleared`, or `available` (released by a recall or
    /// a correction of the units before it arrived).
    UnitStatusChanged {
        /// The unit.
        unit: String,
        /// The new status.
        status: watchfloor_dispatch::units::UnitStatus,
        /// Who recorded it (a console user, or `policy`).
        by: String,
    },
    /// A legal hold was put on (or taken off) the call's record: held records are never purged.
    LegalHold {
        /// Held or not.
        on: bool,
        /// Who set it.
        by: String,
    },
    /// The incident changed (the whole incident as it stands, each field with its source).
    IncidentUpdated {
        /// The incident (boxed: it is large and changes rarely).
        incident: Box<watchfloor_dispatch::incident::Incident>,
    },
    /// An alert for the supervisor.
    Alert {
        /// Per-call alert number (for acknowledgement).
        alert_id: u32,
        /// What was detected (the alert's kind and its facts).
        alert: watchfloor_dispatch::alerts::AlertKind,
        /// How urgent.
        severity: watchfloor_dispatch::alerts::Severity,
    },
    /// The call is on an incident (issue 18): its own when the call starts or a supervisor
    /// unlinks it, another's when it is linked as a duplicate (by a supervisor, or by the
    /// automatic policy on an exact address match).
    IncidentLinked {
        /// The incident's number (`I-<n>`).
        incident: watchfloor_dispatch::linking::IncidentId,
        /// The other calls on it when linked (CallSids), in the order they joined; empty: the
        /// call's own.
        #[serde(default)]
        with_calls: Vec<String>,
        /// Who linked or unlinked it: a console user, or `policy`; none for a new call's own.
        #[serde(default)]
        by: Option<String>,
    },
    /// The call may be a duplicate of an older live or recent incident (the same or a nearby
    /// place, a compatible type): for a supervisor to link, or keep apart. Once per incident.
    PossibleDuplicate {
        /// The incident it may be part of, and how its place matches.
        #[serde(flatten)]
        duplicate: watchfloor_dispatch::linking::Duplicate,
    },
    /// A supervisor kept the call apart from its possible duplicate: that incident is not
    /// suggested (nor linked automatically) for it again.
    KeptApart {
        /// The incident it is not part of.
        incident: watchfloor_dispatch::linking::IncidentId,
        /// The console user.
        by: String,
    },
    /// The call's standing proposal was withdrawn: its incident's other calls already have (or
    /// propose) every unit it would send (dispatch once, issue 18).
    DispatchWithdrawn {
        /// The incident whose dispatch covers it.
        incident: watchfloor_dispatch::linking::IncidentId,
    },
    /// A dispatch is proposed and waits for the supervisor (supervised policy).
    DispatchProposed {
        /// The priority as known.
        priority: Option<watchfloor_dispatch::types::Priority>,
        /// When a P1 goes out on its own, ms since the Unix epoch.
        auto_dispatch_at_ms: Option<u64>,
        /// The radio message as it stands.
        message: String,
        /// The units proposed (recommended from the roster by incident type, or chosen by a
        /// supervisor), unit first as in the message.
        #[serde(default)]
        units: Vec<String>,
    },
    /// The dispatch went out.
    Dispatched {
        /// By whom.
        by: watchfloor_dispatch::policy::DispatchedBy,
        /// The radio message.
        message: String,
        /// The units dispatched (each also has a `UnitAttached`).
        #[serde(default)]
        units: Vec<String>,
    },
    /// The radio message was voiced by the model as an out-of-band response (never sent to the
    /// caller). Its audio is the `dispatch` track at `stream_ms` for `duration_ms`.
    DispatchAudio {
        /// Per-call number of the voiced message (1, 2, … for corrections after dispatch).
        revision: u32,
        /// Whether there is audio, or why not.
        status: DispatchAudioStatus,
        /// Where the audio sits on the call's stream clock, ms.
        stream_ms: u64,
        /// Length of the audio, ms.
        duration_ms: u64,
        /// The words voiced.
        message: String,
    },
    /// A supervised proposal has waited past its hold window.
    DispatchWaiting,
    /// A supervisor recalled the dispatch (or the proposal).
    DispatchRecalled {
        /// The console user.
        by: String,
    },
    /// A supervisor acknowledged an alert.
    AlertAcknowledged {
        /// The alert's number.
        alert_id: u32,
        /// The console user.
        by: String,
    },
    /// A supervisor instruction was sent to the agent as a system message.
    Whisper {
        /// The instruction.
        text: String,
        /// The console user.
        #[serde(default)]
        by: String,
    },
    /// The AI cannot go on with this call: it is being handed to the human line.
    Fallback {
        /// Why (`model_unavailable`, `model_error:<code>`, `model_stalled`, `model_reconnect_failed`, …).
        reason: String,
    },
    /// The hand-off to the human line was carried out.
    FallbackCompleted {
        /// How the caller was sent on.
        via: FallbackRoute,
        /// Twilio REST requests made.
        attempts: u32,
        /// Why REST failed, when it did (the stream close then sends the caller on).
        rest_error: Option<String>,
    },
    /// The model socket dropped (or reached its session limit) and a new session took over, with
    /// the conversation so far re-injected.
    ModelReconnected {
        /// A planned renewal before the 60-minute session limit (not a failure).
        renewed: bool,
        /// Transcript lines re-injected.
        items: u32,
    },
    /// A supervisor handed the call off: took it over, transferred it, or hung up.
    HandedOff {
        /// What the supervisor did.
        action: HandOffAction,
        /// The line the call went to, if any.
        to: Option<String>,
        /// The console user.
        by: String,
    },
    /// Who speaks to the caller changed: a supervisor took the voice over (`takeover`) or
    /// handed the call back to the agent (`ai`).
    ModeChanged {
        /// The mode from now on.
        mode: CallMode,
        /// The console user who took the voice or handed it back.
        by: String,
    },
    /// The call ended.
    CallEnded {
        /// Why (`stop`, `twilio_closed`, `model_unavailable`, `no_stream`, `shutdown`, …).
        reason: String,
    },
}

/// Which side of the call an audio frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// The caller, as Twilio delivered it.
    Caller,
    /// The agent, as sent to Twilio and confirmed played (by its mark).
    Agent,
    /// Agent audio sent to Twilio but dropped by a `clear` (barge-in): never heard.
    AgentCleared,
    /// The dispatch radio message voiced by the model out of band: never sent to the caller.
    Dispatch,
    /// The supervisor's voice as it went to the caller, frame by frame, while they held the
    /// call's voice (issue 17): their own track for review. The caller heard it on `agent`.
    Supervisor,
}

impl Track {
    /// A stable one-byte code for storage keys.
    pub fn code(self) -> u8 {
        match self {
            Track::Caller => 0,
            Track::Agent => 1,
            Track::AgentCleared => 2,
            Track::Dispatch => 3,
            Track::Supervisor => 4,
        }
    }

    /// The track of a storage code.
    pub fn from_code(c: u8) -> Option<Track> {
        match c {
            0 => Some(Track::Caller),
            1 => Some(Track::Agent),
            2 => Some(Track::AgentCleared),
            3 => Some(Track::Dispatch),
            4 => Some(Track::Supervisor),
            _ => None,
        }
    }
}

/// A piece of one call's audio on the stream clock, for recording and listen-in. Never on the
/// audio path: published after the audio was relayed.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    /// The call.
    pub call_sid: Arc<str>,
    /// Which side.
    pub track: Track,
    /// Position on the stream clock (Twilio `timestamp`s: ms since the stream started) where
    /// this audio starts. For agent audio: where it played (or would have, for cleared audio).
    pub stream_ms: u64,
    /// Raw μ-law, 8 bytes per ms.
    pub audio: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed values keep the words stored by earlier versions, and a dispatch-audio status
    /// this version does not know still reads (a stored record must always open).
    #[test]
    fn typed_values_read_the_stored_words() {
        for (s, v) in [("\"no_stream\"", CallStatus::NoStream), ("\"with_agent\"", CallStatus::WithAgent), ("\"taken_over\"", CallStatus::TakenOver)] {
            assert_eq!(serde_json::from_str::<CallStatus>(s).unwrap(), v);
            assert_eq!(format!("\"{}\"", v.as_str()), s, "strum and serde agree");
        }
        assert_eq!(serde_json::to_string(&Stage::FirstCallerAudio).unwrap(), format!("\"{}\"", Stage::FirstCallerAudio.as_str()));
        assert_eq!(serde_json::from_str::<FallbackRoute>("\"stream_close\"").unwrap(), FallbackRoute::StreamClose);
        assert_eq!(serde_json::from_str::<HandOffAction>("\"hangup\"").unwrap().final_status(), CallStatus::Completed);
        assert_eq!(serde_json::from_str::<DispatchAudioStatus>("\"in_progress\"").unwrap(), DispatchAudioStatus::Unknown);
        assert_eq!(CallStatus::NAMES.len(), 8);
    }
}
