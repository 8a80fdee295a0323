//! The dispatch side of one call, as one aggregate: its incident (facts with their sources),
//! the proposal and dispatch under the policy, its alerts and its units. It does no I/O and
//! writes nothing shared: every input is a method, every consequence an [`Effect`] drained with
//! [`CallDispatch::poll_effect`] (str0m's `poll_output` style), time is passed in (ms since the
//! Unix epoch).
//!
//! The unit roster has one owner outside the call. The aggregate reads a snapshot of it
//! ([`CallDispatch::set_roster`]) to recommend units and check a supervisor's choice, and asks
//! for every change with [`Effect::Roster`]; the owner's answer comes back through
//! [`CallDispatch::on_roster`], in the order the requests were made, and what the aggregate
//! does next (the `Dispatched` announcement, a correction, a recall) waits for it. A unit the
//! owner refuses (taken by another call since the snapshot) is left out and logged, never
//! announced.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::alerts::{self, AlertKind};
use crate::extract;
use crate::incident::{Facts, Incident, Source};
use crate::linking::{Duplicate, IncidentId, IncidentView, LinkRefused};
use crate::policy::{DEFAULT_HOLD_MS, Decision, DispatchState, Dispatcher, DispatchedBy, Policy, Refused};
use crate::radio;
use crate::report;
use crate::types::{Priority, incident_type};
use crate::units::{Roster, RosterError, UnitStatus};

/// Why a supervisor's action on a call's dispatch was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionRefused {
    /// The dispatch is not in a state the action applies to.
    #[error(transparent)]
    Policy(#[from] Refused),
    /// A unit named is unknown, busy on another call, or cannot make that move.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// Units were named but no roster is configured.
    #[error("no unit roster is configured")]
    NoRoster,
    /// A unit on scene was left out of an edit (it is cleared, not removed).
    #[error("{0} is on scene; clear it instead of removing it")]
    UnitOnScene(String),
    /// No alert with this number on the call.
    #[error("no alert {0} on this call")]
    NoSuchAlert(u32),
    /// Nothing to keep the call apart from: no possible duplicate stands (issue 18).
    #[error("the call has no possible duplicate to keep apart from")]
    NoPossibleDuplicate,
    /// The alert was acknowledged before.
    #[error("alert {0} is already acknowledged")]
    AlertAlreadyAcknowledged(u32),
    /// The unit is attached to the call already (its status in words).
    #[error("{0} is already attached ({1})")]
    AlreadyAttached(String, &'static str),
    /// The unit is not attached to the call.
    #[error("{0} is not attached to this call")]
    NotAttached(String),
    /// The unit cannot make that move (APCO status model, [`UnitStatus::can_move_to`]).
    #[error("{unit} cannot go from {from} to {to}")]
    BadMove {
        /// The unit.
        unit: String,
        /// Its status, in words.
        from: &'static str,
        /// The status asked for, in words.
        to: &'static str,
    },
}

/// Checks a move of `unit` on a call where its status is `current` (none: never attached) to
/// `next`: attaching (`Dispatched`) needs a unit that is not attached or is free again; any other
/// move needs an attached unit and a move the status model allows. The same rule for a live call
/// ([`CallDispatch::move_unit`]) and an ended one (the record).
pub fn check_move(unit: &str, current: Option<UnitStatus>, next: UnitStatus) -> Result<(), ActionRefused> {
    match (current, next) {
        (Some(s), UnitStatus::Dispatched) if !s.is_free() => Err(ActionRefused::AlreadyAttached(unit.to_string(), s.words())),
        (_, UnitStatus::Dispatched) => Ok(()),
        (None, _) => Err(ActionRefused::NotAttached(unit.to_string())),
        (Some(s), _) if !s.can_move_to(next) => Err(ActionRefused::BadMove { unit: unit.to_string(), from: s.words(), to: next.words() }),
        (Some(_), _) => Ok(()),
    }
}

/// A change asked of the roster's owner for this call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterRequest {
    /// Dispatch these units to the call, each on its own (one that is busy is left out).
    /// Answer: [`RosterAnswer::Reserved`].
    Reserve {
        /// Unit ids, in the order wanted.
        units: Vec<String>,
    },
    /// Put the call's units that have not arrived (dispatched, en route) back to Available: all,
    /// or `only` these. Answer: [`RosterAnswer::Released`].
    Release {
        /// A subset to release; none: all.
        only: Option<Vec<String>>,
    },
    /// Move one unit of the call to `status` (attach is `Dispatched`). Answer:
    /// [`RosterAnswer::Moved`].
    Move {
        /// The unit.
        unit: String,
        /// The status it moves to.
        status: UnitStatus,
    },
}

/// The roster owner's answer to a [`RosterRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterAnswer {
    /// The units newly dispatched to the call.
    Reserved(Vec<String>),
    /// The units put back to Available.
    Released(Vec<String>),
    /// The move was made, or why not.
    Moved(Result<(), RosterError>),
}

/// A change asked of the incident list's owner for this call (issue 18). Answered at once
/// with [`CallDispatch::on_incidents`], in the order asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentRequest {
    /// Find the incident this call may duplicate, from the call's facts as the list now has
    /// them ([`IncidentBook::duplicate_of`]). Answer: [`IncidentAnswer::Checked`].
    Check,
    /// Link the call to `incident` ([`IncidentBook::link`]). Answer: [`IncidentAnswer::Linked`].
    Link {
        /// The incident it joins.
        incident: IncidentId,
    },
    /// Give the call an incident of its own again ([`IncidentBook::unlink`]). Answer:
    /// [`IncidentAnswer::Unlinked`].
    Unlink,
}

/// The incident list owner's answer to an [`IncidentRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentAnswer {
    /// The incident the call may duplicate, if any.
    Checked(Option<Duplicate>),
    /// The incident the call left, or why it was not linked.
    Linked(Result<IncidentId, LinkRefused>),
    /// The call's new incident, or why it was not unlinked.
    Unlinked(Result<IncidentId, LinkRefused>),
}

/// What waits on the incident list owner's answer.
#[derive(Debug, Clone, PartialEq)]
enum IncidentStep {
    /// Decide on the dispatch once the duplicate check is answered.
    Check,
    /// A link asked by `by` (a console user, or `policy`).
    Link { by: String },
    /// An unlink asked by `by`.
    Unlink { by: String },
}

/// A consequence of an input, for the call's machine to carry out: most become a call event of
/// the same name; the rest are words to the agent or a request to the roster's owner.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The incident changed (event `IncidentUpdated`).
    IncidentUpdated(Box<Incident>),
    /// An alert, numbered from 1 in the order raised, each kind once per call (event `Alert`).
    Alert {
        /// Its number on the call.
        alert_id: u32,
        /// What it is about.
        alert: AlertKind,
    },
    /// A supervisor acknowledged an alert (event `AlertAcknowledged`).
    AlertAcknowledged {
        /// Its number.
        alert_id: u32,
        /// The console user.
        by: String,
    },
    /// The agent's questions so far (event `AgentQuestions`).
    AgentQuestions {
        /// Questions asked, counted by `?` in the agent's final lines.
        count: u32,
    },
    /// A dispatch is proposed, or the standing proposal changed (event `DispatchProposed`).
    Proposed {
        /// The incident's priority.
        priority: Option<Priority>,
        /// When a supervised P1 goes out on its own, ms since the Unix epoch.
        auto_dispatch_at_ms: Option<u64>,
        /// The radio message ([`radio::message`]).
        message: String,
        /// The units proposed.
        units: Vec<String>,
    },
    /// The dispatch went out (event `Dispatched`), with the units the roster gave it.
    Dispatched {
        /// Who sent it.
        by: DispatchedBy,
        /// The radio message.
        message: String,
        /// The units on the call.
        units: Vec<String>,
    },
    /// A supervisor recalled the dispatch (event `DispatchRecalled`).
    Recalled {
        /// The console user.
        by: String,
    },
    /// A supervised proposal has waited past its hold window (event `DispatchWaiting`).
    Waiting,
    /// A unit of the call changed status: attached (`Dispatched`), en route, on scene, cleared,
    /// or released (`Available`).
    Unit {
        /// The unit.
        unit: String,
        /// Its new status.
        status: UnitStatus,
        /// The console user, or `policy`.
        by: String,
    },
    /// Tell the agent (a system message in the conversation).
    TellAgent(String),
    /// Ask the agent to speak with these instructions, unless a response is under way or due.
    AskAgent(String),
    /// Voice the dispatch message out of band for the record (PROTOCOLS.md §1).
    VoiceMessage(String),
    /// Ask the roster's owner for a change; answer with [`CallDispatch::on_roster`].
    Roster(RosterRequest),
    /// Ask the incident list's owner; answer with [`CallDispatch::on_incidents`].
    Incidents(IncidentRequest),
    /// The call is on `incident` (event `IncidentLinked`): its own when it starts or is
    /// unlinked, another's when linked as a duplicate.
    Linked {
        /// The incident.
        incident: IncidentId,
        /// The other calls on it (CallSids), in the order they joined; empty: its own.
        with_calls: Vec<String>,
        /// Who linked or unlinked it (a console user, or `policy`); none: a new call's own.
        by: Option<String>,
    },
    /// The call may be a duplicate of an older incident (event `PossibleDuplicate`), once per
    /// incident: for a supervisor to link or keep apart.
    PossibleDuplicate(Duplicate),
    /// A supervisor kept the call apart from its possible duplicate (event `KeptApart`).
    KeptApart {
        /// The incident it is not part of.
        incident: IncidentId,
        /// The console user.
        by: String,
    },
    /// The call's standing proposal is withdrawn: its incident's other calls already have (or
    /// propose) every unit it would send (event `DispatchWithdrawn`).
    Withdrawn {
        /// The incident that covers it.
        incident: IncidentId,
    },
}

/// What waits on the roster owner's answer to a request, in request order.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Announce the dispatch once its units are reserved.
    Dispatch { by: DispatchedBy, who: String },
    /// A correction after dispatch: units reserved, the dropped ones to release next.
    EditReserved { by: String, dropped: Vec<String>, before: Vec<String>, facts_changed: bool },
    /// A correction after dispatch: the dropped units released.
    EditReleased { by: String, before: Vec<String>, facts_changed: bool },
    /// A recall: the units released.
    Recall { by: String },
    /// A supervisor's unit move.
    Move { unit: String, status: UnitStatus, by: String },
}

/// The dispatch side of one call ([module docs](self)).
#[derive(Debug)]
pub struct CallDispatch {
    call_sid: String,
    incident: Incident,
    dispatcher: Dispatcher,
    /// Everything the caller said (final lines), for the keyword extractor.
    caller_text: String,
    last_agent_line: Option<String>,
    agent_questions: u32,
    alerts_raised: Vec<AlertKind>,
    alerts_acked: Vec<u32>,
    /// The roster as last seen (none: no roster; messages start "Respond").
    roster: Option<Arc<Roster>>,
    /// Units a supervisor chose for the proposal, replacing the recommendation.
    chosen_units: Option<Vec<String>>,
    /// The call's units and their status, as the roster's owner answered and the supervisor
    /// moved them (mutual-aid units off the roster included), in the order attached.
    units: Vec<(String, UnitStatus)>,
    awaiting: VecDeque<Step>,
    /// The policy configured for the call; a linked call's further units wait for a supervisor.
    own_policy: Policy,
    /// The call's view of the incident list as last seen (none: no list; every call is its
    /// own incident).
    view: Option<IncidentView>,
    /// The call's incident as last recorded (`Effect::Linked`).
    on_incident: Option<IncidentId>,
    /// The other calls on its incident, in the order they joined.
    others: Vec<String>,
    /// Units its incident already has for other calls: out for any of them, or proposed by a
    /// call that joined before this one.
    covered: Vec<String>,
    /// Of those, the units out (dispatched, en route, on scene).
    covered_out: Vec<String>,
    /// Whether the agent was told units are out for its incident.
    told_units_out: bool,
    /// The location and type last checked for a duplicate.
    checked: Option<(crate::incident::Location, Option<String>)>,
    /// Incidents already suggested as duplicates, or that a supervisor took the call off.
    suggested: Vec<IncidentId>,
    /// The standing suggestion: the incident of the last `PossibleDuplicate`, until the call is
    /// linked, unlinked or kept apart.
    suggestion: Option<IncidentId>,
    kept_apart: Vec<IncidentId>,
    /// Who made the link the list will show next.
    link_by: Option<String>,
    /// A supervisor unlinked the call: its dispatch waits for them from then on.
    hands_on: bool,
    /// The units of the standing proposal, as last emitted.
    proposed_units: Option<Vec<String>>,
    awaiting_incidents: VecDeque<IncidentStep>,
    effects: VecDeque<Effect>,
}

impl CallDispatch {
    /// The dispatch side of call `call_sid` under `policy`, with no roster.
    pub fn new(call_sid: &str, policy: Policy) -> Self {
        CallDispatch {
            call_sid: call_sid.to_string(),
            incident: Incident::default(),
            dispatcher: Dispatcher::new(policy),
            caller_text: String::new(),
            last_agent_line: None,
            agent_questions: 0,
            alerts_raised: Vec::new(),
            alerts_acked: Vec::new(),
            roster: None,
            chosen_units: None,
            units: Vec::new(),
            awaiting: VecDeque::new(),
            own_policy: policy,
            view: None,
            on_incident: None,
            others: Vec::new(),
            covered: Vec::new(),
            covered_out: Vec::new(),
            told_units_out: false,
            checked: None,
            suggested: Vec::new(),
            suggestion: None,
            kept_apart: Vec::new(),
            link_by: None,
            hands_on: false,
            proposed_units: None,
            awaiting_incidents: VecDeque::new(),
            effects: VecDeque::new(),
        }
    }

    /// Sets the policy (before the call has proposed anything).
    pub fn set_policy(&mut self, policy: Policy) {
        self.own_policy = policy;
        self.dispatcher = Dispatcher::new(policy);
    }

    /// The roster as its owner last published it (the units out for the incident's other calls
    /// may have changed: [`CallDispatch::set_incidents`]).
    pub fn set_roster(&mut self, roster: Arc<Roster>, at_ms: u64) {
        self.roster = Some(roster);
        self.refresh_incident(at_ms);
    }

    /// The call's view of the incident list as its owner last published it
    /// ([`IncidentBook::view_of`](crate::linking::IncidentBook::view_of)): the call's incident,
    /// the calls it shares it with and what they have sent or proposed (dispatch once, issue 18). A change
    /// is recorded (`Effect::Linked`), told to the agent, and the standing proposal shrinks to
    /// what the incident still lacks (withdrawn when nothing), or is made again after an unlink.
    pub fn set_incidents(&mut self, view: IncidentView, at_ms: u64) {
        self.view = Some(view);
        self.refresh_incident(at_ms);
    }

    /// A supervisor links the call to `incident`; the list's owner answers
    /// ([`IncidentAnswer::Linked`]) and its refusal is the supervisor's.
    pub fn link(&mut self, incident: IncidentId, by: &str) {
        self.request_incidents(IncidentRequest::Link { incident }, IncidentStep::Link { by: by.to_string() });
    }

    /// A supervisor takes the call off its incident (undoing a link): it gets its own again and
    /// proposes its own dispatch; it is never linked back to that incident automatically.
    pub fn unlink(&mut self, by: &str) {
        self.request_incidents(IncidentRequest::Unlink, IncidentStep::Unlink { by: by.to_string() });
    }

    /// A supervisor keeps the call apart from its possible duplicate: the suggestion is
    /// withdrawn (`Effect::KeptApart`) and that incident is never suggested or linked to it
    /// automatically again. Refused when no suggestion stands.
    pub fn keep_apart(&mut self, by: &str) -> Result<(), ActionRefused> {
        let incident = self.suggestion.take().ok_or(ActionRefused::NoPossibleDuplicate)?;
        self.kept_apart.push(incident);
        self.effects.push_back(Effect::KeptApart { incident, by: by.to_string() });
        Ok(())
    }

    /// Whether requests to the incident list's owner are unanswered.
    pub fn awaits_incidents(&self) -> bool {
        !self.awaiting_incidents.is_empty()
    }

    /// The incident list owner's answer to the oldest request not yet answered, with the call's
    /// view of the list as it now stands. An answer nothing waits for is ignored.
    pub fn on_incidents(&mut self, answer: IncidentAnswer, view: IncidentView, at_ms: u64) {
        self.view = Some(view);
        let Some(step) = self.awaiting_incidents.pop_front() else { return };
        match (step, answer) {
            (IncidentStep::Check, IncidentAnswer::Checked(found)) => {
                if let Some(dup) = found
                    && self.on_candidate(dup)
                {
                    return;
                }
                self.refresh_incident(at_ms);
                self.decide(at_ms);
            }
            (IncidentStep::Link { by }, IncidentAnswer::Linked(result)) => {
                if result.is_ok() {
                    self.link_by = Some(by);
                }
                self.refresh_incident(at_ms);
                if self.dispatcher.state == DispatchState::None {
                    self.decide(at_ms);
                }
            }
            (IncidentStep::Unlink { by }, IncidentAnswer::Unlinked(result)) => {
                if result.is_ok() {
                    self.kept_apart.extend(self.on_incident);
                    self.link_by = Some(by);
                    self.hands_on = true;
                }
                self.refresh_incident(at_ms);
            }
            (step, answer) => debug_assert!(false, "incident list answer {answer:?} to {step:?}"),
        }
    }

    /// The incident as known.
    pub fn incident(&self) -> &Incident {
        &self.incident
    }

    /// Where the dispatch stands.
    pub fn state(&self) -> &DispatchState {
        &self.dispatcher.state
    }

    /// Agent questions counted so far.
    pub fn agent_questions(&self) -> u32 {
        self.agent_questions
    }

    /// Whether an alert of this kind was raised on the call.
    pub fn has_alert(&self, kind: &AlertKind) -> bool {
        self.alerts_raised.contains(kind)
    }

    /// Whether requests to the roster's owner are unanswered.
    pub fn awaits_roster(&self) -> bool {
        !self.awaiting.is_empty()
    }

    /// The next effect to carry out, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`CallDispatch::on_timeout`] next has something to do, ms since the Unix epoch.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.dispatcher.next_deadline_ms(self.priority())
    }

    /// Raises an alert, once per kind per call.
    pub fn alert(&mut self, kind: AlertKind) {
        if self.alerts_raised.contains(&kind) {
            return;
        }
        self.alerts_raised.push(kind.clone());
        let alert_id = self.alerts_raised.len() as u32;
        self.effects.push_back(Effect::Alert { alert_id, alert: kind });
    }

    /// A final transcript line (`caller` or the agent's) at `at_ms`: counts the agent's
    /// questions, notices an agent repeating itself, runs the keyword extractor over everything
    /// the caller said (danger words, disagreement with the model, weak cues), then the
    /// proposal trigger and the policy.
    pub fn on_final_line(&mut self, caller: bool, text: &str, at_ms: u64) {
        if !caller {
            if self.last_agent_line.as_deref().is_some_and(|prev| alerts::agent_repeats(prev, text)) {
                self.alert(AlertKind::AgentStuck);
            }
            self.last_agent_line = Some(text.to_string());
            let questions = text.matches('?').count() as u32;
            if questions == 0 {
                return;
            }
            self.agent_questions += questions;
            self.effects.push_back(Effect::AgentQuestions { count: self.agent_questions });
            self.evaluate(at_ms);
            return;
        }
        self.caller_text.push_str(text);
        self.caller_text.push('\n');
        let found = extract::extract(&self.caller_text);
        for word in &found.danger {
            self.alert(AlertKind::Danger { word: (*word).to_string() });
        }
        // Cross-check: the model and the keywords name different disciplines.
        if let (Some(model), Some(kw)) = (self.incident.incident_type.as_ref().filter(|f| f.source == Source::Model), found.facts.incident_type.as_deref()) {
            let d = |c: &str| incident_type(c).map(|t| t.discipline);
            if d(&model.value) != d(kw) {
                let kind = AlertKind::ExtractionDisagreement { model: model.value.clone(), keywords: kw.to_string() };
                self.alert(kind);
            }
        }
        // Only a weak cue and nothing from the model: the supervisor should look.
        let model_silent = !self.incident.incident_type.as_ref().is_some_and(|f| f.source != Source::Keywords);
        if found.type_confidence > 0.0 && found.type_confidence < 0.5 && model_silent {
            self.alert(AlertKind::LowConfidence);
        }
        if self.incident.apply(&found.facts, &Source::Keywords, at_ms) {
            self.incident_changed();
        }
        self.evaluate(at_ms);
    }

    /// The model's `report_incident` call with its JSON `arguments` ([`report::parse`]):
    /// applies what it says, then runs the trigger and the policy. Returns the function call's
    /// output for the model (`recorded`, the argument errors, what is still needed).
    pub fn on_report(&mut self, arguments: &str, at_ms: u64) -> String {
        let (facts, errors) = report::parse(arguments);
        if self.incident.apply(&facts, &Source::Model, at_ms) {
            self.incident_changed();
        }
        let mut missing = Vec::new();
        if self.incident.location.is_none() {
            missing.push("location");
        }
        if self.incident.incident_type.is_none() {
            missing.push("incident_type");
        }
        let output = serde_json::json!({"status": if errors.is_empty() { "recorded" } else { "recorded_with_errors" }, "errors": errors, "still_needed": missing}).to_string();
        self.evaluate(at_ms);
        output
    }

    /// Time passes ([`CallDispatch::next_deadline_ms`]): a supervised P1 goes out when its hold
    /// window ends; others raise the "waiting too long" alert once.
    pub fn on_timeout(&mut self, at_ms: u64) {
        let d = self.dispatcher.tick(at_ms, self.priority());
        self.on_decision(d);
    }

    /// A supervisor confirms the proposal.
    pub fn confirm(&mut self, by: &str, at_ms: u64) -> Result<(), ActionRefused> {
        let d = self.dispatcher.confirm(at_ms, by)?;
        self.on_decision(d);
        Ok(())
    }

    /// A supervisor dispatches now: proposed or not, or again after a recall.
    pub fn dispatch_now(&mut self, by: &str, at_ms: u64) -> Result<(), ActionRefused> {
        let d = self.dispatcher.dispatch_now(at_ms, by)?;
        self.on_decision(d);
        Ok(())
    }

    /// A supervisor recalls the dispatch (or the proposal): units that have not arrived are
    /// released, the agent is told.
    pub fn recall(&mut self, by: &str, at_ms: u64) -> Result<(), ActionRefused> {
        self.dispatcher.recall(at_ms, by)?;
        if self.units.iter().any(|(_, s)| matches!(s, UnitStatus::Dispatched | UnitStatus::EnRoute)) {
            self.request(RosterRequest::Release { only: None }, Step::Recall { by: by.to_string() });
        } else {
            self.finish_recall(by.to_string());
        }
        Ok(())
    }

    /// A supervisor corrects the incident and/or the units: before dispatch the units replace
    /// the recommendation; after it, new ones are dispatched and dropped ones that have not
    /// arrived released, and the agent and the dispatch audio get the corrected message. The
    /// units are checked first (each known, free or already on this call, none on scene left
    /// out): a refused edit changes nothing.
    pub fn edit(&mut self, facts: &Facts, units: Option<Vec<String>>, by: &str, at_ms: u64) -> Result<(), ActionRefused> {
        let units = match units {
            None => None,
            Some(units) => Some(self.check_units(units)?),
        };
        let facts_changed = self.incident.apply(facts, &Source::Supervisor { user: by.to_string() }, at_ms);
        if facts_changed {
            self.incident_changed();
        }
        let mut units_changed = false;
        if let Some(units) = units {
            units_changed = self.chosen_units.as_ref() != Some(&units);
            self.chosen_units = Some(units.clone());
            if self.is_dispatched() {
                let before = self.dispatched_units();
                let dropped: Vec<String> = before.iter().filter(|u| !units.contains(u)).cloned().collect();
                self.request(RosterRequest::Reserve { units }, Step::EditReserved { by: by.to_string(), dropped, before, facts_changed });
                return Ok(());
            }
        }
        if facts_changed || units_changed {
            self.after_edit(at_ms);
        }
        Ok(())
    }

    /// A supervisor acknowledges alert `alert_id`.
    pub fn acknowledge(&mut self, alert_id: u32, by: &str) -> Result<(), ActionRefused> {
        if alert_id == 0 || alert_id as usize > self.alerts_raised.len() {
            return Err(ActionRefused::NoSuchAlert(alert_id));
        }
        if self.alerts_acked.contains(&alert_id) {
            return Err(ActionRefused::AlertAlreadyAcknowledged(alert_id));
        }
        self.alerts_acked.push(alert_id);
        self.effects.push_back(Effect::AlertAcknowledged { alert_id, by: by.to_string() });
        Ok(())
    }

    /// A supervisor moves a unit on the call ([`check_move`]): a unit on the roster through its
    /// owner (the effect follows the answer), a unit off it (mutual aid) at once.
    pub fn move_unit(&mut self, unit: &str, status: UnitStatus, by: &str) -> Result<(), ActionRefused> {
        check_move(unit, self.unit_status(unit), status)?;
        let on_roster = self.roster.as_ref().is_some_and(|r| r.get(unit).is_some());
        if on_roster {
            let step = Step::Move { unit: unit.to_string(), status, by: by.to_string() };
            self.request(RosterRequest::Move { unit: unit.to_string(), status }, step);
        } else {
            self.set_unit(unit, status, by);
        }
        Ok(())
    }

    /// The roster owner's answer to the oldest request not yet answered. An answer nothing
    /// waits for is ignored.
    pub fn on_roster(&mut self, answer: RosterAnswer, at_ms: u64) {
        let Some(step) = self.awaiting.pop_front() else { return };
        match (step, answer) {
            (Step::Dispatch { by, who }, RosterAnswer::Reserved(granted)) => {
                for unit in granted {
                    self.set_unit(&unit, UnitStatus::Dispatched, &who);
                }
                self.finish_dispatch(by);
            }
            (Step::EditReserved { by, dropped, before, facts_changed }, RosterAnswer::Reserved(granted)) => {
                for unit in granted {
                    self.set_unit(&unit, UnitStatus::Dispatched, &by);
                }
                self.request(RosterRequest::Release { only: Some(dropped) }, Step::EditReleased { by, before, facts_changed });
            }
            (Step::EditReleased { by, before, facts_changed }, RosterAnswer::Released(released)) => {
                for unit in released {
                    self.set_unit(&unit, UnitStatus::Available, &by);
                }
                if facts_changed || self.dispatched_units() != before {
                    self.after_edit(at_ms);
                }
            }
            (Step::Recall { by }, RosterAnswer::Released(released)) => {
                for unit in released {
                    self.set_unit(&unit, UnitStatus::Available, &by);
                }
                self.finish_recall(by);
            }
            (Step::Move { unit, status, by }, RosterAnswer::Moved(Ok(()))) => self.set_unit(&unit, status, &by),
            (Step::Move { .. }, RosterAnswer::Moved(Err(_))) => {}
            (step, answer) => debug_assert!(false, "roster answer {answer:?} to {step:?}"),
        }
    }

    fn request(&mut self, request: RosterRequest, then: Step) {
        self.awaiting.push_back(then);
        self.effects.push_back(Effect::Roster(request));
    }

    fn priority(&self) -> Option<Priority> {
        self.incident.priority.as_ref().map(|f| f.value)
    }

    fn incident_changed(&mut self) {
        self.effects.push_back(Effect::IncidentUpdated(Box::new(self.incident.clone())));
    }

    fn is_dispatched(&self) -> bool {
        matches!(self.dispatcher.state, DispatchState::Dispatched { .. })
    }

    fn unit_status(&self, unit: &str) -> Option<UnitStatus> {
        self.units.iter().find(|(u, _)| u == unit).map(|(_, s)| *s)
    }

    fn set_unit(&mut self, unit: &str, status: UnitStatus, by: &str) {
        match self.units.iter_mut().find(|(u, _)| u == unit) {
            Some((_, s)) => *s = status,
            None => self.units.push((unit.to_string(), status)),
        }
        self.effects.push_back(Effect::Unit { unit: unit.to_string(), status, by: by.to_string() });
    }

    /// The call's units that are out (dispatched, en route, on scene): those on the roster in
    /// its order, then the others in the order attached.
    fn dispatched_units(&self) -> Vec<String> {
        let out = |s: &UnitStatus| !s.is_free();
        let mut ids: Vec<String> = Vec::new();
        if let Some(roster) = &self.roster {
            ids.extend(roster.units.iter().filter(|u| self.unit_status(&u.id).as_ref().is_some_and(out)).map(|u| u.id.clone()));
        }
        let off_roster: Vec<String> = self.units.iter().filter(|(u, s)| out(s) && !ids.contains(u)).map(|(u, _)| u.clone()).collect();
        ids.extend(off_roster);
        ids
    }

    /// The units of the dispatch: those out (once dispatched), else the supervisor's choice,
    /// else the roster's recommendation for the incident type.
    fn dispatch_units(&self) -> Vec<String> {
        if self.is_dispatched() {
            return self.dispatched_units();
        }
        self.wanted_units()
    }

    fn wanted_units(&self) -> Vec<String> {
        let Some(roster) = &self.roster else { return Vec::new() };
        if let Some(chosen) = &self.chosen_units {
            return chosen.clone();
        }
        self.incident.incident_type.as_ref().map(|t| roster.recommend_beyond(&t.value, &self.covered)).unwrap_or_default()
    }

    /// Checks a supervisor's unit list against the roster: each unit known, free or already on
    /// this call, and none that has arrived left out. Returns the list without repeats.
    fn check_units(&self, units: Vec<String>) -> Result<Vec<String>, ActionRefused> {
        let Some(roster) = &self.roster else { return Err(ActionRefused::NoRoster) };
        let mut unique: Vec<String> = Vec::with_capacity(units.len());
        for u in units {
            if !unique.contains(&u) {
                unique.push(u);
            }
        }
        roster.check_assignable(&unique, &self.call_sid)?;
        if let Some((u, _)) = self.units.iter().find(|(u, s)| *s == UnitStatus::OnScene && !unique.contains(u)) {
            return Err(ActionRefused::UnitOnScene(u.clone()));
        }
        Ok(unique)
    }

    /// Runs the trigger and the policy after a change. A call alone on its incident whose
    /// location (or type) is new first asks the incident list whether it duplicates an older
    /// incident, and decides on the answer: the automatic policy links an exact match before
    /// it sends anything.
    fn evaluate(&mut self, at_ms: u64) {
        if self.awaits_incidents() {
            return;
        }
        if self.view.is_some()
            && self.others.is_empty()
            && let Some(loc) = &self.incident.location
        {
            let key = (loc.value.clone(), self.incident.incident_type.as_ref().map(|t| t.value.clone()));
            if self.checked.as_ref() != Some(&key) {
                self.checked = Some(key);
                self.request_incidents(IncidentRequest::Check, IncidentStep::Check);
                return;
            }
        }
        self.decide(at_ms);
    }

    /// The trigger and the policy. A linked call whose incident already has every unit it
    /// would send proposes nothing (a standing proposal is withdrawn).
    fn decide(&mut self, at_ms: u64) {
        if !self.others.is_empty() && self.chosen_units.is_none() && self.wanted_units().is_empty() {
            self.withdraw();
            return;
        }
        let d = self.dispatcher.update(at_ms, self.agent_questions, self.incident.location.is_some(), self.incident.incident_type.is_some(), self.priority());
        self.on_decision(d);
    }

    fn withdraw(&mut self) {
        if matches!(self.dispatcher.state, DispatchState::Proposed { .. })
            && let Some(incident) = self.on_incident
        {
            self.dispatcher.state = DispatchState::None;
            self.proposed_units = None;
            self.effects.push_back(Effect::Withdrawn { incident });
        }
    }

    /// A duplicate candidate for this call (its own check's, or a late one): the automatic
    /// policy links an exact match (returns true: the link is asked, the decision waits for it);
    /// otherwise it is suggested, once per incident. Incidents the call was kept apart from, or
    /// is on, are ignored.
    fn on_candidate(&mut self, dup: Duplicate) -> bool {
        if self.kept_apart.contains(&dup.incident) || Some(dup.incident) == self.on_incident {
            return false;
        }
        if self.own_policy == Policy::Automatic && dup.links_automatically() {
            // The automatic policy links an exact match before it dispatches anything.
            self.request_incidents(IncidentRequest::Link { incident: dup.incident }, IncidentStep::Link { by: "policy".into() });
            return true;
        }
        if !self.suggested.contains(&dup.incident) {
            self.suggested.push(dup.incident);
            self.suggestion = Some(dup.incident);
            self.effects.push_back(Effect::PossibleDuplicate(dup));
        }
        false
    }

    fn request_incidents(&mut self, request: IncidentRequest, then: IncidentStep) {
        self.awaiting_incidents.push_back(then);
        self.effects.push_back(Effect::Incidents(request));
    }

    /// Reads the call's incident from the list and the roster: records a new link, tells the
    /// agent what the incident already has, and adjusts the standing proposal.
    fn refresh_incident(&mut self, at_ms: u64) {
        let Some(view) = &self.view else { return };
        let own = view.incident;
        let others = view.others.clone();
        let proposed_before = view.proposed_before.clone();
        let late = view.late_duplicate;
        let mut out: Vec<String> = Vec::new();
        if let Some(roster) = &self.roster {
            for c in &others {
                out.extend(roster.assigned_to(c));
            }
        }
        let mut covered = out.clone();
        for u in proposed_before {
            if !covered.contains(&u) {
                covered.push(u);
            }
        }
        if own != self.on_incident
            && let Some(id) = own
        {
            if self.on_incident.is_some() {
                self.suggestion = None;
            }
            self.on_incident = own;
            self.effects.push_back(Effect::Linked { incident: id, with_calls: others.clone(), by: self.link_by.take() });
        }
        let was_linked = !self.others.is_empty();
        let linked = !others.is_empty();
        let changed = others != self.others || covered != self.covered;
        self.others = others;
        self.covered = covered;
        self.covered_out = out;
        // A linked call's further units are a proposal the supervisor confirms; so is the own
        // dispatch of a call a supervisor unlinked.
        self.dispatcher.policy = match (linked || self.hands_on, self.own_policy) {
            (true, Policy::Automatic) => Policy::Supervised { hold_ms: DEFAULT_HOLD_MS },
            _ => self.own_policy,
        };
        if linked && !was_linked {
            self.told_units_out = !self.covered_out.is_empty();
            self.effects.push_back(Effect::TellAgent(self.incident_known_words()));
        } else if linked && !self.told_units_out && !self.covered_out.is_empty() {
            self.told_units_out = true;
            self.effects.push_back(Effect::TellAgent(format!(
                "Units are now on the way to this incident: {}. Tell the caller help is on the way; do not promise an arrival time.",
                self.covered_out.join(", ")
            )));
        } else if !linked && was_linked {
            self.told_units_out = false;
            self.effects.push_back(Effect::TellAgent(
                "The supervisor has made this call a separate incident: what other callers reported does not apply to it. Do not tell the caller help is coming unless told; confirm the location and what happened.".into(),
            ));
        }
        if !changed {
            // Alone: an older incident that got its place after this call's own check may be
            // its match now (the list found it: the late duplicate).
            if let Some(dup) = late.filter(|_| !linked && !self.awaits_incidents()) {
                self.on_candidate(dup);
            }
            return;
        }
        match self.dispatcher.state {
            DispatchState::None => self.evaluate(at_ms),
            DispatchState::Proposed { .. } => {
                if linked && self.chosen_units.is_none() && self.wanted_units().is_empty() {
                    self.withdraw();
                } else if self.proposed_units.as_ref() != Some(&self.dispatch_units()) {
                    self.propose();
                }
            }
            _ => {}
        }
    }

    /// What the agent on a linked call is told: the incident is known, what it has, and what
    /// to gather now.
    fn incident_known_words(&self) -> String {
        let n = self.others.len();
        let callers = if n == 1 { "another caller".to_string() } else { format!("{n} other callers") };
        let help = if !self.covered_out.is_empty() {
            format!("Units are on the way: {}. Reassure the caller that help is on the way; do not promise an arrival time.", self.covered_out.join(", "))
        } else {
            "Help is being dispatched. Reassure the caller that the emergency is known and help is being sent; do not promise an arrival time.".to_string()
        };
        format!(
            "This emergency was already reported by {callers} and is being handled as one incident. {help} Do not ask again for what is known; gather what is new: anyone trapped or still inside, how far it has spread, injuries, hazards, and the caller's own safety."
        )
    }

    fn on_decision(&mut self, d: Decision) {
        match d {
            Decision::None | Decision::Recalled => {}
            Decision::Proposed => self.propose(),
            Decision::Dispatched(by) => {
                if by == DispatchedBy::HoldExpired {
                    self.alert(AlertKind::AutoDispatched);
                }
                let who = match &by {
                    DispatchedBy::Supervisor { user } => user.clone(),
                    _ => "policy".to_string(),
                };
                // The units were chosen (or recommended) before the state moved to dispatched.
                let wanted = self.wanted_units();
                if wanted.is_empty() {
                    self.finish_dispatch(by);
                } else {
                    self.request(RosterRequest::Reserve { units: wanted }, Step::Dispatch { by, who });
                }
            }
            Decision::WaitingTooLong => {
                self.effects.push_back(Effect::Waiting);
                self.alert(AlertKind::DispatchWaiting);
            }
        }
    }

    /// Emits the standing proposal (new, or its units or message changed).
    fn propose(&mut self) {
        let DispatchState::Proposed { auto_at_ms, .. } = &self.dispatcher.state else { return };
        let auto_dispatch_at_ms = *auto_at_ms;
        let units = self.dispatch_units();
        let message = radio::message(&units, &self.incident);
        self.proposed_units = Some(units.clone());
        self.effects.push_back(Effect::Proposed { priority: self.priority(), auto_dispatch_at_ms, message, units });
    }

    fn finish_dispatch(&mut self, by: DispatchedBy) {
        let units = self.dispatched_units();
        let message = radio::message(&units, &self.incident);
        self.effects.push_back(Effect::Dispatched { by, message: message.clone(), units });
        // The agent must never contradict the dispatch: tell it, and let it tell the caller.
        self.effects.push_back(Effect::TellAgent(format!("Dispatch has been sent: {message} Tell the caller help is on the way; do not promise an arrival time.")));
        self.effects.push_back(Effect::VoiceMessage(message));
        self.effects.push_back(Effect::AskAgent("Tell the caller, briefly and calmly, that help is on the way, then keep gathering information.".into()));
    }

    fn finish_recall(&mut self, by: String) {
        self.effects.push_back(Effect::Recalled { by });
        self.effects.push_back(Effect::TellAgent("The supervisor recalled the dispatch. Do not tell the caller help is coming unless told again; keep gathering information.".into()));
    }

    /// After a correction that changed something: the corrected message to the agent and the
    /// dispatch audio (dispatched), or the proposal again; then the trigger and the policy.
    fn after_edit(&mut self, at_ms: u64) {
        if self.is_dispatched() {
            let message = radio::message(&self.dispatched_units(), &self.incident);
            self.effects.push_back(Effect::TellAgent(format!("The supervisor corrected the dispatch: {message}")));
            self.effects.push_back(Effect::VoiceMessage(message));
        } else {
            self.propose();
        }
        self.evaluate(at_ms);
    }
}

#[cfg(test)]
mod tests;
