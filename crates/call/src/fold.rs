//! The one fold of a call's events ([`CallFold`]): everything the events say about a call, kept
//! by applying them in order. The console's view of a live call ([`LiveCall`], via
//! [`CallFold::live`]) and the stored record (`watchfloor_store::CallRecord`, built from the
//! fold by the store) are projections of it: no event is interpreted twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchfloor_dispatch::incident::Incident;
use watchfloor_dispatch::linking::{Duplicate, IncidentId};
use watchfloor_dispatch::units::UnitStatus;

use crate::event::{CallEvent, CallEventKind, CallMode, CallStatus, DispatchAudioStatus, HandOffAction, Speaker, Talking};
use crate::live::{DispatchPhase, LIVE_TRANSCRIPT_LINES, LiveAlert, LiveCall, LiveDispatch, LiveLine, LiveUnit, dispatch_audio_url};

/// A unit attached to a call, with the times of its moves (APCO unit status model).
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

/// A supervisor's takeover of the call's voice (issue 17).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct TakeoverRecord {
    /// The console user who held the voice.
    pub by: String,
    /// When they took it, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When they handed the call back (or it ended), ms since the Unix epoch.
    #[serde(default)]
    pub ended_at_ms: Option<u64>,
}

/// A transcript line as the fold keeps it: partial while its deltas stream, then final.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldLine {
    /// Who spoke the line (caller, agent or supervisor).
    pub speaker: Speaker,
    /// The model's item id.
    pub item_id: String,
    /// The text so far.
    pub text: String,
    /// When the line started (partial) or was final, ms since the Unix epoch.
    pub at_ms: u64,
    /// The agent was cut off by the caller.
    pub interrupted: bool,
    /// Where the line's audio starts on the stream clock, ms, when known.
    pub stream_ms: Option<u64>,
    /// The supervisor speaking, for a [`Speaker::Supervisor`] line.
    pub by: Option<String>,
    /// The sequence number of its `TranscriptFinal` (none while partial): the record lists
    /// lines in the order they became final, the console in the order they started.
    pub final_seq: Option<u64>,
    /// The language it was spoken in (ISO 639-1), once final and told.
    pub language: Option<String>,
    /// Its machine translation into the centre's language, once made.
    pub translation: Option<crate::LineTranslation>,
}

/// Everything a call's events say about it ([module docs](self)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallFold {
    /// The CallSid.
    pub call_sid: String,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// A training call.
    pub simulated: bool,
    /// ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Where the call stands (with the agent, taken over, ended …).
    pub status: CallStatus,
    /// Who is audible.
    pub talking: Talking,
    /// Twilio streamSid.
    pub stream_sid: Option<String>,
    /// Stage name → ms after the webhook.
    pub stages: BTreeMap<String, u64>,
    /// Every line, in the order it started (partials included).
    pub lines: Vec<FoldLine>,
    /// Questions the agent asked.
    pub agent_questions: u32,
    /// Times the caller talked over the agent.
    pub barge_ins: u32,
    /// Model errors seen.
    pub model_errors: u32,
    /// Inputs skipped as malformed.
    pub skipped_inputs: u32,
    /// Whispers sent to the agent.
    pub whispers: u32,
    /// The incident as known, each field with its source.
    pub incident: Option<Incident>,
    /// The incident the call is on (issue 18), once the list has given it one.
    pub incident_id: Option<IncidentId>,
    /// The agent profile the call runs with (issue 21).
    pub agent_profile: Option<crate::event::AgentProfileRef>,
    /// An older incident this call may duplicate, until it is linked or unlinked.
    pub possible_duplicate: Option<Duplicate>,
    /// The dispatch.
    pub dispatch: LiveDispatch,
    /// Alerts, in order.
    pub alerts: Vec<LiveAlert>,
    /// Units attached, in order.
    pub units: Vec<UnitRecord>,
    /// Each voicing of the dispatch message.
    pub dispatch_audio: Vec<DispatchAudioRecord>,
    /// Under legal hold.
    pub legal_hold: bool,
    /// Who speaks to the caller.
    pub mode: CallMode,
    /// The supervisor holding the call's voice, while one does.
    pub voice_holder: Option<String>,
    /// Every takeover, in order.
    pub takeovers: Vec<TakeoverRecord>,
    /// Why the call went to the human line, if it did.
    pub fallback_reason: Option<String>,
    /// What a supervisor did, if they handed the call off.
    pub handed_off: Option<HandOffAction>,
    /// ms since the Unix epoch, once ended.
    pub ended_at_ms: Option<u64>,
    /// Why the call ended, once it has.
    pub end_reason: Option<String>,
    /// Sequence number of the last event applied.
    pub last_seq: Option<u64>,
    /// Time of the last event applied, ms since the Unix epoch.
    pub last_at_ms: u64,
}

impl CallFold {
    /// The fold of no events yet, for call `call_sid`.
    pub fn new(call_sid: &str) -> Self {
        CallFold { call_sid: call_sid.to_string(), ..CallFold::default() }
    }

    /// The fold of `events`, in order.
    pub fn of<'a>(call_sid: &str, events: impl IntoIterator<Item = &'a CallEvent>) -> Self {
        let mut f = CallFold::new(call_sid);
        for ev in events {
            f.apply(ev);
        }
        f
    }

    /// Applies one event. Events at or below `last_seq` are ignored (idempotent replay; a
    /// console's snapshot may already hold them).
    pub fn apply(&mut self, ev: &CallEvent) {
        if self.last_seq.is_some_and(|s| ev.seq <= s) {
            return;
        }
        self.last_seq = Some(ev.seq);
        self.last_at_ms = ev.at_ms;
        if self.call_sid.is_empty() {
            self.call_sid = ev.call_sid.to_string();
        }
        match &ev.kind {
            CallEventKind::CallCreated { from, to, simulated } => {
                self.from = from.clone();
                self.to = to.clone();
                self.simulated = *simulated;
                self.started_at_ms = ev.at_ms;
            }
            CallEventKind::AgentProfile { profile } => self.agent_profile = Some(profile.clone()),
            CallEventKind::Stage { stage, elapsed_ms } => {
                self.stages.insert(stage.as_str().to_string(), *elapsed_ms);
            }
            CallEventKind::StreamStarted { stream_sid } => self.stream_sid = Some(stream_sid.clone()),
            CallEventKind::StatusChanged { status } => self.status = *status,
            CallEventKind::Talking { who } => self.talking = *who,
            CallEventKind::TranscriptDelta { speaker, item_id, delta, by } => match self.open_line(item_id) {
                Some(line) => line.text.push_str(delta),
                None => self.lines.push(FoldLine { speaker: *speaker, item_id: item_id.clone(), text: delta.clone(), at_ms: ev.at_ms, interrupted: false, stream_ms: None, by: by.clone(), final_seq: None, language: None, translation: None }),
            },
            CallEventKind::TranscriptFinal { speaker, item_id, text, interrupted, stream_ms, by, language } => {
                let line = FoldLine { speaker: *speaker, item_id: item_id.clone(), text: text.clone(), at_ms: ev.at_ms, interrupted: *interrupted, stream_ms: *stream_ms, by: by.clone(), final_seq: Some(ev.seq), language: language.clone(), translation: None };
                match self.open_line(item_id) {
                    Some(partial) => *partial = line,
                    None => self.lines.push(line),
                }
            }
            CallEventKind::TranscriptTranslated { item_id, translation } => {
                // The final line it translates (the latest of that item id).
                if let Some(line) = self.lines.iter_mut().rev().find(|l| l.item_id == *item_id && l.final_seq.is_some()) {
                    line.translation = Some(translation.clone());
                }
            }
            CallEventKind::AgentQuestions { count } => self.agent_questions = *count,
            CallEventKind::BargeIn { .. } => self.barge_ins += 1,
            CallEventKind::ModelError { .. } => self.model_errors += 1,
            CallEventKind::InputSkipped { .. } => self.skipped_inputs += 1,
            CallEventKind::IncidentUpdated { incident } => self.incident = Some((**incident).clone()),
            CallEventKind::Alert { alert_id, alert, severity } => {
                self.alerts.push(LiveAlert { alert_id: *alert_id, alert: alert.clone(), severity: *severity, at_ms: ev.at_ms, acknowledged_by: None });
            }
            CallEventKind::AlertAcknowledged { alert_id, by } => {
                if let Some(a) = self.alerts.iter_mut().find(|a| a.alert_id == *alert_id) {
                    a.acknowledged_by = Some(by.clone());
                }
            }
            CallEventKind::DispatchProposed { priority, auto_dispatch_at_ms, message, units } => {
                let d = &mut self.dispatch;
                d.phase = DispatchPhase::Proposed;
                d.priority = *priority;
                d.message = Some(message.clone());
                d.units = units.clone();
                d.auto_dispatch_at_ms = *auto_dispatch_at_ms;
                d.proposed_at_ms = Some(ev.at_ms);
            }
            CallEventKind::Dispatched { by, message, units } => {
                let d = &mut self.dispatch;
                d.phase = DispatchPhase::Dispatched;
                d.message = Some(message.clone());
                d.units = units.clone();
                d.auto_dispatch_at_ms = None;
                d.dispatched_at_ms = Some(ev.at_ms);
                d.dispatched_by = Some(by.clone());
                d.recalled_by = None;
                d.waiting_too_long = false;
            }
            CallEventKind::DispatchWaiting => self.dispatch.waiting_too_long = true,
            CallEventKind::IncidentLinked { incident, .. } => {
                self.incident_id = Some(*incident);
                self.possible_duplicate = None;
            }
            CallEventKind::PossibleDuplicate { duplicate } => self.possible_duplicate = Some(*duplicate),
            CallEventKind::KeptApart { .. } => self.possible_duplicate = None,
            CallEventKind::DispatchWithdrawn { .. } => {
                let d = &mut self.dispatch;
                d.phase = DispatchPhase::None;
                d.units.clear();
                d.message = None;
                d.auto_dispatch_at_ms = None;
                d.waiting_too_long = false;
            }
            CallEventKind::DispatchRecalled { by } => {
                let d = &mut self.dispatch;
                d.phase = DispatchPhase::Recalled;
                d.recalled_by = Some(by.clone());
                d.auto_dispatch_at_ms = None;
            }
            CallEventKind::DispatchAudio { revision, status, stream_ms, duration_ms, message } => {
                self.dispatch_audio.push(DispatchAudioRecord { revision: *revision, status: *status, stream_ms: *stream_ms, duration_ms: *duration_ms, message: message.clone(), at_ms: ev.at_ms });
                if *status == DispatchAudioStatus::Completed {
                    self.dispatch.audio_url = Some(dispatch_audio_url(&self.call_sid, *revision));
                }
            }
            CallEventKind::UnitAttached { unit, .. } => {
                let fresh = UnitRecord { unit: unit.clone(), attached_at_ms: ev.at_ms, on_scene_at_ms: None, status: UnitStatus::Dispatched, en_route_at_ms: None, cleared_at_ms: None };
                match self.units.iter_mut().find(|u| &u.unit == unit) {
                    // Sent again after a release or a clear: a fresh assignment.
                    Some(u) if u.status.is_free() => *u = fresh,
                    Some(_) => {}
                    None => self.units.push(fresh),
                }
            }
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
            CallEventKind::LegalHold { on, .. } => self.legal_hold = *on,
            CallEventKind::Whisper { .. } => self.whispers += 1,
            CallEventKind::Fallback { reason } => self.fallback_reason = Some(reason.clone()),
            CallEventKind::HandedOff { action, .. } => self.handed_off = Some(*action),
            CallEventKind::ModeChanged { mode, by } => {
                self.close_takeover(ev.at_ms);
                self.mode = *mode;
                self.voice_holder = None;
                if *mode == CallMode::Takeover {
                    self.voice_holder = Some(by.clone());
                    self.takeovers.push(TakeoverRecord { by: by.clone(), started_at_ms: ev.at_ms, ended_at_ms: None });
                }
            }
            CallEventKind::CallEnded { reason } => {
                self.ended_at_ms = Some(ev.at_ms);
                self.end_reason = Some(reason.clone());
                self.talking = Talking::Silence;
                self.close_takeover(ev.at_ms);
                self.voice_holder = None;
            }
            CallEventKind::Dtmf { .. }
            | CallEventKind::CallerSilent { .. }
            | CallEventKind::ToolAnswered { .. }
            | CallEventKind::ModelEventUnknown { .. }
            | CallEventKind::FunctionCall { .. }
            | CallEventKind::FallbackCompleted { .. }
            | CallEventKind::ModelReconnected { .. } => {}
        }
    }

    fn close_takeover(&mut self, at_ms: u64) {
        if let Some(t) = self.takeovers.last_mut().filter(|t| t.ended_at_ms.is_none()) {
            t.ended_at_ms = Some(at_ms);
        }
    }

    /// The line of `item_id` still streaming, if any.
    fn open_line(&mut self, item_id: &str) -> Option<&mut FoldLine> {
        self.lines.iter_mut().rev().find(|l| l.item_id == item_id && l.final_seq.is_none())
    }

    /// Final lines in the order they became final.
    pub fn final_lines(&self) -> Vec<&FoldLine> {
        let mut finals: Vec<&FoldLine> = self.lines.iter().filter(|l| l.final_seq.is_some()).collect();
        finals.sort_by_key(|l| l.final_seq);
        finals
    }

    /// The console's view of the call: the last [`LIVE_TRANSCRIPT_LINES`] lines in the order
    /// they started (partials included), each unit's status on the call.
    pub fn live(&self) -> LiveCall {
        let skip = self.lines.len().saturating_sub(LIVE_TRANSCRIPT_LINES);
        LiveCall {
            call_sid: self.call_sid.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            simulated: self.simulated,
            started_at_ms: self.started_at_ms,
            status: self.status,
            talking: self.talking,
            incident: self.incident.clone(),
            incident_id: self.incident_id,
            possible_duplicate: self.possible_duplicate,
            dispatch: self.dispatch.clone(),
            alerts: self.alerts.clone(),
            transcript: self.lines[skip..]
                .iter()
                .map(|l| LiveLine {
                    speaker: l.speaker,
                    item_id: l.item_id.clone(),
                    text: l.text.clone(),
                    at_ms: l.at_ms,
                    is_final: l.final_seq.is_some(),
                    interrupted: l.interrupted,
                    by: l.by.clone(),
                    language: l.language.clone(),
                    translation: l.translation.clone(),
                })
                .collect(),
            units: self.units.iter().map(|u| LiveUnit { unit: u.unit.clone(), status: u.status }).collect(),
            agent_questions: self.agent_questions,
            barge_ins: self.barge_ins,
            model_errors: self.model_errors,
            fallback_reason: self.fallback_reason.clone(),
            handed_off: self.handed_off,
            whispers: self.whispers,
            ended_reason: self.end_reason.clone(),
            mode: self.mode,
            voice_holder: self.voice_holder.clone(),
            last_seq: self.last_seq,
            last_at_ms: self.last_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ev(seq: u64, kind: CallEventKind) -> CallEvent {
        CallEvent { call_sid: Arc::from("CA1"), seq, at_ms: 1000 + seq, kind }
    }

    fn final_line(speaker: Speaker, item: &str, text: &str) -> CallEventKind {
        CallEventKind::TranscriptFinal { speaker, item_id: item.into(), text: text.into(), interrupted: false, stream_ms: None, by: None, language: None }
    }

    #[test]
    fn partials_are_replaced_by_the_final_line_and_the_console_sees_the_last_lines() {
        let mut f = CallFold::default();
        f.apply(&ev(0, CallEventKind::CallCreated { from: "+1555".into(), to: "+1911".into(), simulated: true }));
        f.apply(&ev(1, CallEventKind::TranscriptDelta { speaker: Speaker::Agent, item_id: "i1".into(), delta: "9 1 1, ".into(), by: None }));
        f.apply(&ev(2, CallEventKind::TranscriptDelta { speaker: Speaker::Agent, item_id: "i1".into(), delta: "what is".into(), by: None }));
        assert_eq!(f.live().transcript[0].text, "9 1 1, what is");
        assert!(!f.live().transcript[0].is_final);
        f.apply(&ev(3, final_line(Speaker::Agent, "i1", "9 1 1, what is the address?")));
        assert_eq!(f.lines.len(), 1);
        assert!(f.live().transcript[0].is_final);
        f.apply(&ev(3, final_line(Speaker::Agent, "dup", "x")));
        assert_eq!(f.lines.len(), 1, "an event at or below last_seq is skipped");
        for i in 0..100u64 {
            f.apply(&ev(4 + i, final_line(Speaker::Caller, &format!("u{i}"), "help")));
        }
        let live = f.live();
        assert_eq!(live.transcript.len(), LIVE_TRANSCRIPT_LINES);
        assert_eq!(live.transcript.last().unwrap().item_id, "u99");
        assert_eq!(f.final_lines().len(), 101, "the fold keeps every line");
    }

    #[test]
    fn lines_start_in_one_order_and_become_final_in_another() {
        let mut f = CallFold::new("CA1");
        // The agent starts speaking; the caller cuts in and their line is final first.
        f.apply(&ev(1, CallEventKind::TranscriptDelta { speaker: Speaker::Agent, item_id: "a1".into(), delta: "Is anyone".into(), by: None }));
        f.apply(&ev(2, CallEventKind::TranscriptDelta { speaker: Speaker::Caller, item_id: "u1".into(), delta: "He's not".into(), by: None }));
        f.apply(&ev(3, final_line(Speaker::Caller, "u1", "He's not breathing!")));
        f.apply(&ev(4, CallEventKind::TranscriptFinal { speaker: Speaker::Agent, item_id: "a1".into(), text: "Is anyone".into(), interrupted: true, stream_ms: Some(2_000), by: None, language: None }));
        let started: Vec<String> = f.live().transcript.iter().map(|l| l.item_id.clone()).collect();
        assert_eq!(started, ["a1", "u1"], "the console: in the order the lines started");
        let finals: Vec<&str> = f.final_lines().iter().map(|l| l.item_id.as_str()).collect();
        assert_eq!(finals, ["u1", "a1"], "the record: in the order they became final");
        assert!(f.final_lines()[1].interrupted);
    }

    #[test]
    fn units_follow_the_status_model_and_a_re_attach_after_release_is_fresh() {
        let mut f = CallFold::new("CA1");
        let by = || "sup".to_string();
        f.apply(&ev(1, CallEventKind::UnitAttached { unit: "Engine 7".into(), by: by() }));
        f.apply(&ev(2, CallEventKind::UnitStatusChanged { unit: "Engine 7".into(), status: UnitStatus::EnRoute, by: by() }));
        f.apply(&ev(3, CallEventKind::UnitAttached { unit: "Engine 7".into(), by: by() }));
        assert_eq!((f.units[0].status, f.units[0].attached_at_ms), (UnitStatus::EnRoute, 1001), "attaching an attached unit changes nothing");
        f.apply(&ev(4, CallEventKind::UnitStatusChanged { unit: "Engine 7".into(), status: UnitStatus::Available, by: by() }));
        f.apply(&ev(5, CallEventKind::UnitAttached { unit: "Engine 7".into(), by: by() }));
        assert_eq!(f.units[0], UnitRecord { unit: "Engine 7".into(), attached_at_ms: 1005, on_scene_at_ms: None, status: UnitStatus::Dispatched, en_route_at_ms: None, cleared_at_ms: None });
        f.apply(&ev(6, CallEventKind::UnitOnScene { unit: "Ladder 2".into(), by: by() }));
        assert_eq!(f.units.len(), 1, "a unit never attached cannot arrive");
        assert_eq!(f.live().units, vec![LiveUnit { unit: "Engine 7".into(), status: UnitStatus::Dispatched }]);
    }
}

#[cfg(test)]
mod takeover_tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_takeover_names_its_holder_until_the_hand_back_or_the_end() {
        let ev = |seq: u64, kind: CallEventKind| CallEvent { call_sid: Arc::from("CA1"), seq, at_ms: 1000 + seq, kind };
        let mut f = CallFold::new("CA1");
        f.apply(&ev(1, CallEventKind::ModeChanged { mode: CallMode::Takeover, by: "ana".into() }));
        assert_eq!((f.live().mode, f.live().voice_holder.as_deref()), (CallMode::Takeover, Some("ana")));
        f.apply(&ev(2, CallEventKind::ModeChanged { mode: CallMode::Ai, by: "ana".into() }));
        assert_eq!((f.mode, f.voice_holder.as_deref()), (CallMode::Ai, None));
        f.apply(&ev(3, CallEventKind::ModeChanged { mode: CallMode::Takeover, by: "ben".into() }));
        f.apply(&ev(4, CallEventKind::CallEnded { reason: "stop".into() }));
        assert_eq!(f.takeovers, vec![
            TakeoverRecord { by: "ana".into(), started_at_ms: 1001, ended_at_ms: Some(1002) },
            TakeoverRecord { by: "ben".into(), started_at_ms: 1003, ended_at_ms: Some(1004) },
        ]);
        assert_eq!(f.voice_holder, None);
    }
}
