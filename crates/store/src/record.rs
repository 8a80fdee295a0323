//! The stored call record: its own versioned struct, not a wire or UI type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchfloor_call::live::DispatchPhase;
use watchfloor_call::{CallEvent, CallEventKind, CallStatus, DispatchAudioStatus, Speaker};
use watchfloor_dispatch::units::UnitStatus;

/// Current record version. Older records are migrated on open.
pub const RECORD_VERSION: u32 = 4;

/// One final line of transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct TranscriptLine {
    /// `caller` or `agent`.
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
}

/// One voicing of the dispatch message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct DispatchAudioRecord {
    /// 1, 2, … per call.
    pub revision: u32,
    /// Whether there is audio, or why not.
    pub status: DispatchAudioStatus,
    /// Where the audio sits on the stream clock (`dispatch` track), ms.
    pub stream_ms: u64,
    /// Length, ms.
    pub duration_ms: u64,
    /// The words voiced.
    pub message: String,
    /// ms since the Unix epoch.
    pub at_ms: u64,
}

pub use watchfloor_call::live::dispatch_audio_url;

/// A unit attached to a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct UnitRecord {
    /// e.g. `Engine 7`.
    pub unit: String,
    /// ms since the Unix epoch.
    pub attached_at_ms: u64,
    /// ms since the Unix epoch, when it reported on scene.
    #[serde(default)]
    pub on_scene_at_ms: Option<u64>,
    /// Where the unit stands on this call: `dispatched`, `en_route`, `on_scene`, `cleared`, or
    /// `available` (released before it arrived: a recall or a correction).
    #[serde(default = "dispatched")]
    pub status: UnitStatus,
    /// ms since the Unix epoch, when it reported en route.
    #[serde(default)]
    pub en_route_at_ms: Option<u64>,
    /// ms since the Unix epoch, when it cleared (or was released).
    #[serde(default)]
    pub cleared_at_ms: Option<u64>,
}

fn dispatched() -> UnitStatus {
    UnitStatus::Dispatched
}

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

    /// Applies one event. Events at or below `last_seq` are ignored (idempotent replay).
    pub fn apply(&mut self, ev: &CallEvent) {
        if self.last_seq.is_some_and(|s| ev.seq <= s) {
            return;
        }
        self.last_seq = Some(ev.seq);
        match &ev.kind {
            CallEventKind::CallCreated { from, to, simulated } => {
                self.from = from.clone();
                self.to = to.clone();
                self.simulated = *simulated;
                self.started_at_ms = ev.at_ms;
            }
            CallEventKind::Stage { stage, elapsed_ms } => {
                let name = serde_json::to_value(stage).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                self.stages.insert(name, *elapsed_ms);
            }
            CallEventKind::StreamStarted { stream_sid } => self.stream_sid = Some(stream_sid.clone()),
            CallEventKind::StatusChanged { status } => self.status = *status,
            CallEventKind::TranscriptFinal { speaker, item_id, text, interrupted, stream_ms } => self.transcript.push(TranscriptLine {
                speaker: match speaker {
                    Speaker::Caller => "caller".into(),
                    Speaker::Agent => "agent".into(),
                },
                item_id: item_id.clone(),
                at_ms: ev.at_ms,
                text: text.clone(),
                interrupted: *interrupted,
                stream_ms: *stream_ms,
            }),
            CallEventKind::AgentQuestions { count } => self.agent_questions = *count,
            CallEventKind::BargeIn { .. } => self.barge_ins += 1,
            CallEventKind::ModelError { .. } => self.model_errors += 1,
            CallEventKind::InputSkipped { .. } => self.skipped_inputs += 1,
            CallEventKind::CallEnded { reason } => {
                self.ended_at_ms = Some(ev.at_ms);
                self.end_reason = Some(reason.clone());
            }
            CallEventKind::UnitAttached { unit, .. } => match self.units.iter_mut().find(|u| &u.unit == unit) {
                // Sent again after a release: a fresh assignment.
                Some(u) if u.status.is_free() => {
                    *u = UnitRecord { unit: unit.clone(), attached_at_ms: ev.at_ms, on_scene_at_ms: None, status: UnitStatus::Dispatched, en_route_at_ms: None, cleared_at_ms: None };
                }
                Some(_) => {}
                None => self.units.push(UnitRecord { unit: unit.clone(), attached_at_ms: ev.at_ms, on_scene_at_ms: None, status: UnitStatus::Dispatched, en_route_at_ms: None, cleared_at_ms: None }),
            },
            CallEventKind::UnitOnScene { unit, .. } => {
                if let Some(u) = self.units.iter_mut().find(|u| &u.unit == unit) {
                    u.on_scene_at_ms.get_or_insert(ev.at_ms);
                    u.status = UnitStatus::OnScene;
                }
            }
            CallEventKind::UnitStatusChanged { unit, status, .. } => {
                if let Some(u) = self.units.iter_mut().find(|u| &u.unit == unit) {
                    u.status = *status;
                    match status {
                        UnitStatus::EnRoute => u.en_route_at_ms = Some(ev.at_ms),
                        UnitStatus::OnScene => u.on_scene_at_ms = Some(ev.at_ms),
                        UnitStatus::Cleared | UnitStatus::Available => u.cleared_at_ms = Some(ev.at_ms),
                        UnitStatus::Dispatched => {}
                    }
                }
            }
            CallEventKind::DispatchAudio { revision, status, stream_ms, duration_ms, message } => {
                self.dispatch_audio.push(DispatchAudioRecord { revision: *revision, status: *status, stream_ms: *stream_ms, duration_ms: *duration_ms, message: message.clone(), at_ms: ev.at_ms });
                if *status == DispatchAudioStatus::Completed {
                    self.dispatch_audio_url = Some(dispatch_audio_url(&self.call_sid, *revision));
                }
            }
            CallEventKind::LegalHold { on, .. } => self.legal_hold = *on,
            CallEventKind::IncidentUpdated { incident } => {
                self.incident_type = incident.incident_type.as_ref().map(|f| f.value.clone());
                self.priority = incident.priority.as_ref().map(|f| f.value.label().to_string());
                self.location = incident.location.as_ref().map(|f| f.value.line());
            }
            CallEventKind::DispatchProposed { message, .. } => {
                self.dispatch = Some(DispatchPhase::Proposed);
                self.dispatch_message = Some(message.clone());
            }
            CallEventKind::Dispatched { message, .. } => {
                self.dispatch = Some(DispatchPhase::Dispatched);
                self.dispatch_message = Some(message.clone());
            }
            CallEventKind::DispatchRecalled { .. } => self.dispatch = Some(DispatchPhase::Recalled),
            CallEventKind::Alert { alert, .. } => self.alerts.push(alert.label()),
            CallEventKind::TranscriptDelta { .. }
            | CallEventKind::Talking { .. }
            | CallEventKind::Dtmf { .. }
            | CallEventKind::ModelEventUnknown { .. }
            | CallEventKind::FunctionCall { .. }
            | CallEventKind::Fallback { .. }
            | CallEventKind::FallbackCompleted { .. }
            | CallEventKind::ModelReconnected { .. }
            | CallEventKind::HandedOff { .. }
            | CallEventKind::DispatchWaiting
            | CallEventKind::AlertAcknowledged { .. }
            | CallEventKind::Whisper { .. } => {}
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
