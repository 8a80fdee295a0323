//! The stored call record: its own versioned struct, not a wire or UI type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchfloor_call::live::DispatchPhase;
use watchfloor_call::{CallFold, CallStatus, Speaker};
use watchfloor_dispatch::units::UnitStatus;

pub use watchfloor_call::{DispatchAudioRecord, TakeoverRecord, UnitRecord};

/// Current record version. Older records are migrated on open.
pub const RECORD_VERSION: u32 = 4;

/// One final line of transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct TranscriptLine {
    /// `caller`, `agent` or `supervisor` ([`Speaker`](watchfloor_call::Speaker) in snake case).
    pub speaker: String,
    /// The model's item id.
    pub item_id: String,
    /// ms since the Unix epoch when the line was final.
    pub at_ms: u64,
    /// The text.
    pub text: String,
    /// The agent was cut off here by the caller.
    #[serde(default)]
    pub interrupted: bool,
    /// Where the line's audio starts in the recording (stream clock), ms, when known.
    #[serde(default)]
    pub stream_ms: Option<u64>,
    /// The supervisor who spoke a `supervisor` line (issue 17: "Supervisor (name): …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub by: Option<String>,
    /// The language it was spoken in (ISO 639-1), when told (issue 21). `text` is always the
    /// original, as spoken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub language: Option<String>,
    /// A machine translation into the centre's language, labelled as such wherever shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub translation: Option<watchfloor_call::LineTranslation>,
}

/// A call's record, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CallRecord {
    /// Format version ([`RECORD_VERSION`]).
    pub version: u32,
    /// Twilio CallSid; the call's id.
    pub call_sid: String,
    /// Caller number.
    #[serde(default)]
    pub from: String,
    /// Called number.
    #[serde(default)]
    pub to: String,
    /// Placed by the simulator (a training call).
    #[serde(default)]
    pub simulated: bool,
    /// Where the call stands (`processing`, `with_agent`, … as JSON).
    pub status: CallStatus,
    /// ms since the Unix epoch.
    pub started_at_ms: u64,
    /// ms since the Unix epoch.
    #[serde(default)]
    pub ended_at_ms: Option<u64>,
    /// Why the call ended.
    #[serde(default)]
    pub end_reason: Option<String>,
    /// Twilio streamSid.
    #[serde(default)]
    pub stream_sid: Option<String>,
    /// Final transcript lines, in order.
    #[serde(default)]
    pub transcript: Vec<TranscriptLine>,
    /// Stage name → ms after the webhook.
    #[serde(default)]
    pub stages: BTreeMap<String, u64>,
    /// Questions the agent asked.
    #[serde(default)]
    pub agent_questions: u32,
    /// Times the caller talked over the agent.
    #[serde(default)]
    pub barge_ins: u32,
    /// Model errors seen.
    #[serde(default)]
    pub model_errors: u32,
    /// Inputs skipped as malformed.
    #[serde(default)]
    pub skipped_inputs: u32,
    /// Sequence number of the last event applied.
    #[serde(default)]
    pub last_seq: Option<u64>,
    /// APCO common incident type code (e.g. `FSTRU`), once known.
    #[serde(default)]
    pub incident_type: Option<String>,
    /// Agency priority (`P1`–`P4`), once known.
    #[serde(default)]
    pub priority: Option<String>,
    /// Units attached to the call, in order.
    #[serde(default)]
    pub units: Vec<UnitRecord>,
    /// Under legal hold: never purged by retention.
    #[serde(default)]
    pub legal_hold: bool,
    /// The incident location, one line (`123 Main Street`), once known.
    #[serde(default)]
    pub location: Option<String>,
    /// Where the dispatch stands (`proposed`, `dispatched`, `recalled` as JSON), once one was
    /// proposed.
    #[serde(default)]
    pub dispatch: Option<DispatchPhase>,
    /// The radio message of the dispatch.
    #[serde(default)]
    pub dispatch_message: Option<String>,
    /// Alerts raised, in order (`danger:gun`, `dispatch_waiting`, …).
    #[serde(default)]
    pub alerts: Vec<String>,
    /// The dispatch message voiced by the model, each revision (a correction after dispatch is
    /// voiced again).
    #[serde(default)]
    pub dispatch_audio: Vec<DispatchAudioRecord>,
    /// Where the latest voiced dispatch message is served as WAV
    /// (`/api/calls/{CallSid}/dispatch/{revision}/audio.wav`), once there is one.
    #[serde(default)]
    pub dispatch_audio_url: Option<String>,
    /// Every time a supervisor took the call's voice over, in order (issue 17).
    #[serde(default)]
    pub takeovers: Vec<TakeoverRecord>,
    /// The incident the call is on (issue 18; `I-<n>` as a number): calls about one emergency
    /// share it. Each link and unlink is an `incident_linked` event on the timeline.
    #[serde(default)]
    pub incident: Option<watchfloor_dispatch::linking::IncidentId>,
    /// The agent profile that answered the call, its version, model, turn detection and stored
    /// prompt (issue 21); none for calls recorded before profiles.
    #[serde(default)]
    pub agent_profile: Option<watchfloor_call::AgentProfileRef>,
}

pub use watchfloor_call::live::dispatch_audio_url;

impl CallRecord {
    /// An empty record.
    pub fn new(call_sid: &str) -> Self {
        CallRecord {
            version: RECORD_VERSION,
            call_sid: call_sid.to_string(),
            from: String::new(),
            to: String::new(),
            simulated: false,
            status: CallStatus::Processing,
            started_at_ms: 0,
            ended_at_ms: None,
            end_reason: None,
            stream_sid: None,
            transcript: Vec::new(),
            stages: BTreeMap::new(),
            agent_questions: 0,
            barge_ins: 0,
            model_errors: 0,
            skipped_inputs: 0,
            last_seq: None,
            incident_type: None,
            priority: None,
            units: Vec::new(),
            legal_hold: false,
            location: None,
            dispatch: None,
            dispatch_message: None,
            alerts: Vec::new(),
            dispatch_audio: Vec::new(),
            dispatch_audio_url: None,
            takeovers: Vec::new(),
            incident: None,
            agent_profile: None,
        }
    }

    /// Whether the call was live at the last write.
    pub fn is_live(&self) -> bool {
        self.status.is_live()
    }

    /// The transcript as text, `Caller: …` / `Dispatcher: …`.
    pub fn transcript_text(&self) -> String {
        self.transcript
            .iter()
            .map(|l| format!("{}: {}", if l.speaker == "caller" { "Caller" } else { "Dispatcher" }, l.text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The record of a call as its events have it ([`CallFold`], the one fold): final lines in
    /// the order they became final, the incident's type, priority and location as one-line
    /// summaries, alerts by label.
    pub fn of(fold: &CallFold) -> Self {
        let incident = fold.incident.as_ref();
        CallRecord {
            version: RECORD_VERSION,
            call_sid: fold.call_sid.clone(),
            from: fold.from.clone(),
            to: fold.to.clone(),
            simulated: fold.simulated,
            status: fold.status,
            started_at_ms: fold.started_at_ms,
            ended_at_ms: fold.ended_at_ms,
            end_reason: fold.end_reason.clone(),
            stream_sid: fold.stream_sid.clone(),
            transcript: fold
                .final_lines()
                .into_iter()
                .map(|l| TranscriptLine {
                    speaker: match l.speaker {
                        Speaker::Caller => "caller".into(),
                        Speaker::Agent => "agent".into(),
                        Speaker::Supervisor => "supervisor".into(),
                    },
                    item_id: l.item_id.clone(),
                    at_ms: l.at_ms,
                    text: l.text.clone(),
                    interrupted: l.interrupted,
                    stream_ms: l.stream_ms,
                    by: l.by.clone(),
                    language: l.language.clone(),
                    translation: l.translation.clone(),
                })
                .collect(),
            stages: fold.stages.clone(),
            agent_questions: fold.agent_questions,
            barge_ins: fold.barge_ins,
            model_errors: fold.model_errors,
            skipped_inputs: fold.skipped_inputs,
            last_seq: fold.last_seq,
            incident_type: incident.and_then(|i| i.incident_type.as_ref()).map(|f| f.value.clone()),
            priority: incident.and_then(|i| i.priority.as_ref()).map(|f| f.value.label().to_string()),
            units: fold.units.clone(),
            legal_hold: fold.legal_hold,
            location: incident.and_then(|i| i.location.as_ref()).map(|f| f.value.line()),
            dispatch: (fold.dispatch.phase != DispatchPhase::None).then_some(fold.dispatch.phase),
            dispatch_message: fold.dispatch.message.clone(),
            alerts: fold.alerts.iter().map(|a| a.alert.label()).collect(),
            dispatch_audio: fold.dispatch_audio.clone(),
            dispatch_audio_url: fold.dispatch.audio_url.clone(),
            takeovers: fold.takeovers.clone(),
            incident: fold.incident_id,
            agent_profile: fold.agent_profile.clone(),
        }
    }
}

pub(crate) fn encode(rec: &CallRecord) -> Vec<u8> {
    // Invariant: CallRecord is plain data and serialises.
    serde_json::to_vec(rec).expect("CallRecord serialises")
}

/// Decodes a stored record of any known version. Fields added since version 1 have serde
/// defaults, so a version-1 record reads as the current version with those fields empty; a
/// change of meaning would add a step here, matched on `version`.
pub(crate) fn decode(bytes: &[u8]) -> Result<CallRecord, serde_json::Error> {
    let mut rec: CallRecord = serde_json::from_slice(bytes)?;
    if rec.version < 4 {
        // Version 4 gave units a status; before it, a unit was dispatched or on scene.
        for u in &mut rec.units {
            if u.on_scene_at_ms.is_some() {
                u.status = UnitStatus::OnScene;
            }
        }
        rec.version = RECORD_VERSION;
    }
    Ok(rec)
}

/// A call in a list: the record without its transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CallSummary {
    /// CallSid.
    pub call_sid: String,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Where the call stands.
    pub status: CallStatus,
    /// ms since the Unix epoch.
    pub started_at_ms: u64,
    /// ms since the Unix epoch.
    pub ended_at_ms: Option<u64>,
    /// APCO incident type code.
    pub incident_type: Option<String>,
    /// Agency priority.
    pub priority: Option<String>,
    /// A training call.
    pub simulated: bool,
    /// Under legal hold.
    pub legal_hold: bool,
    /// Final transcript lines.
    pub transcript_lines: usize,
}

impl From<&CallRecord> for CallSummary {
    fn from(r: &CallRecord) -> Self {
        CallSummary {
            call_sid: r.call_sid.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            status: r.status,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            incident_type: r.incident_type.clone(),
            priority: r.priority.clone(),
            simulated: r.simulated,
            legal_hold: r.legal_hold,
            transcript_lines: r.transcript.len(),
        }
    }
}
