//! A scenario call's events as the bridge would publish them, without running a call: for
//! tests and benchmarks of what reads call records (QA scoring, statistics) at volume.
//!
//! The scenario's lines become final transcript lines (agent greeting 3 s after the answer,
//! then per turn the caller 4 s later and the agent 2.5 s after that), each with its language
//! and, for a line in another language than English, its translation right after it; the model's
//! `report_incident` and every line go through the call's dispatch aggregate
//! (`watchfloor_dispatch::call::CallDispatch`, automatic policy, a roster of Engine 7, Ladder 2
//! and Medic 3), whose effects become events, as in the bridge.

use std::sync::Arc;

use watchfloor_call::{CallEvent, CallEventKind, Speaker};
use watchfloor_dispatch::call::{CallDispatch, Effect, RosterAnswer, RosterRequest};
use watchfloor_dispatch::policy::Policy;
use watchfloor_dispatch::types::UnitType;
use watchfloor_dispatch::units::Roster;

use crate::scenario::Scenario;

/// The events of one call of `sc` with CallSid `call_sid`, created at `t0_ms` (ms since the
/// epoch) and answered 300 ms later; it ends 1 s after the last line (`completed`).
pub fn scenario_events(sc: &Scenario, call_sid: &str, t0_ms: u64) -> Vec<CallEvent> {
    let sid: Arc<str> = Arc::from(call_sid);
    let mut events = Vec::new();
    let mut push = |at_ms: u64, kind: CallEventKind| {
        let seq = events.len() as u64;
        events.push(CallEvent { call_sid: sid.clone(), seq, at_ms, kind });
    };
    // Invariant: three distinct call signs make a valid roster.
    let mut roster = Roster::new([("Engine 7", UnitType::Engine), ("Ladder 2", UnitType::Ladder), ("Medic 3", UnitType::Medic)].into_iter().map(|(u, t)| (u.to_string(), t)).collect()).expect("a valid roster");
    let mut d = CallDispatch::new(call_sid, Policy::Automatic);
    d.set_roster(Arc::new(roster.clone()), t0_ms);
    let mut at = t0_ms;
    push(at, CallEventKind::CallCreated { from: sc.caller_number.clone(), to: "+15550009111".into(), simulated: true });
    at += 300;
    push(at, CallEventKind::StreamStarted { stream_sid: format!("MZ{}", call_sid.trim_start_matches("CA")) });
    // A line's language: the scenario's for a line with a translation (spoken in it), else
    // English; its translation follows it.
    let said = |speaker: Speaker, n: usize, l: &crate::scenario::Line| CallEventKind::TranscriptFinal {
        speaker,
        item_id: format!("item_{n}"),
        text: l.text.clone(),
        interrupted: false,
        stream_ms: None,
        by: None,
        language: Some(if l.translation.is_some() { sc.language.clone() } else { "en".into() }),
    };
    let line = |push: &mut dyn FnMut(u64, CallEventKind), at: u64, speaker: Speaker, n: usize, l: &crate::scenario::Line| {
        push(at, said(speaker, n, l));
        if let Some(t) = &l.translation {
            let translation = watchfloor_call::LineTranslation { from: sc.language.clone(), to: "en".into(), text: t.clone(), model: "gpt-4.1-mini".into() };
            push(at, CallEventKind::TranscriptTranslated { item_id: format!("item_{n}"), translation });
        }
    };
    at += 3000;
    line(&mut push, at, Speaker::Agent, 0, &sc.greeting);
    let mut drain = |d: &mut CallDispatch, push: &mut dyn FnMut(u64, CallEventKind), at: u64| {
        while let Some(e) = d.poll_effect() {
            match e {
                Effect::IncidentUpdated(incident) => push(at, CallEventKind::IncidentUpdated { incident }),
                Effect::Alert { alert_id, alert } => push(at, CallEventKind::Alert { alert_id, severity: alert.severity(), alert }),
                Effect::Proposed { priority, auto_dispatch_at_ms, message, units } => push(at, CallEventKind::DispatchProposed { priority, auto_dispatch_at_ms, message, units }),
                Effect::Dispatched { by, message, units } => push(at, CallEventKind::Dispatched { by, message, units }),
                Effect::Roster(RosterRequest::Reserve { units }) => {
                    let granted = units.iter().flat_map(|u| roster.assign(std::slice::from_ref(u), call_sid).unwrap_or_default()).collect();
                    d.on_roster(RosterAnswer::Reserved(granted), at);
                }
                _ => {}
            }
        }
    };
    for (i, t) in sc.turns.iter().enumerate() {
        at += 4000;
        line(&mut push, at, Speaker::Caller, 2 * i + 1, &t.caller);
        d.on_final_line(true, &t.caller.text, at);
        drain(&mut d, &mut push, at);
        if let Some(f) = &t.function_call {
            at += 500;
            d.on_report(&f.arguments, at);
            drain(&mut d, &mut push, at);
        }
        at += 2500;
        line(&mut push, at, Speaker::Agent, 2 * i + 2, &t.agent);
        d.on_final_line(false, &t.agent.text, at);
        drain(&mut d, &mut push, at);
    }
    push(at + 1000, CallEventKind::CallEnded { reason: "completed".into() });
    events
}
