//! The scorecards of the scenario calls match fixtures written by hand from the scenario
//! transcripts (`tests/expected/<scenario>.toml`: each item's result and a piece of its
//! evidence line), the deliberately poor call (`no-read-back`) scoring Low.
//!
//! Each call's events are made as the bridge makes them: the scenario's lines as final
//! transcript lines, the model's `report_incident` and every caller line through the call's
//! dispatch aggregate (`CallDispatch`, automatic policy, a roster), its effects as events.

use std::sync::Arc;

use serde::Deserialize;
use watchfloor_call::{CallEvent, CallEventKind, Speaker};
use watchfloor_dispatch::call::{CallDispatch, Effect, RosterAnswer, RosterRequest};
use watchfloor_dispatch::policy::Policy;
use watchfloor_dispatch::types::UnitType;
use watchfloor_dispatch::units::Roster;
use watchfloor_qa::{Cards, ItemResult, Level, score};

#[derive(Deserialize)]
struct Scenario {
    greeting: Line,
    turns: Vec<Turn>,
}
#[derive(Deserialize)]
struct Line {
    text: String,
}
#[derive(Deserialize)]
struct Turn {
    caller: String,
    agent: String,
    function_call: Option<FunctionCall>,
}
#[derive(Deserialize)]
struct FunctionCall {
    arguments: String,
}

#[derive(Deserialize)]
struct Expected {
    level: Level,
    items: std::collections::BTreeMap<String, ExpectedItem>,
}
#[derive(Deserialize)]
struct ExpectedItem {
    result: ItemResult,
    evidence: Option<String>,
}

const T0: u64 = 1_764_000_000_000;

/// The events of a scenario call, as the bridge would publish them.
fn events_of(name: &str) -> Vec<CallEvent> {
    let path = format!("{}/../sim/scenarios/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let sc: Scenario = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sid: Arc<str> = Arc::from("CAqa");
    let mut events = Vec::new();
    let mut push = |at_ms: u64, kind: CallEventKind| {
        let seq = events.len() as u64;
        events.push(CallEvent { call_sid: sid.clone(), seq, at_ms, kind });
    };
    let mut roster = Roster::new([("Engine 7", UnitType::Engine), ("Ladder 2", UnitType::Ladder), ("Medic 3", UnitType::Medic)].into_iter().map(|(u, t)| (u.to_string(), t)).collect()).unwrap();
    let mut d = CallDispatch::new("CAqa", Policy::Automatic);
    d.set_roster(Arc::new(roster.clone()), T0);
    let mut at = T0;
    push(at, CallEventKind::CallCreated { from: "+15550100101".into(), to: "+15550009111".into(), simulated: true });
    at += 300;
    push(at, CallEventKind::StreamStarted { stream_sid: "MZqa".into() });
    let line = |speaker: Speaker, n: usize, text: &str| CallEventKind::TranscriptFinal { speaker, item_id: format!("item_{n}"), text: text.to_string(), interrupted: false, stream_ms: None, by: None };
    at += 3000;
    push(at, line(Speaker::Agent, 0, &sc.greeting.text));
    let mut drain = |d: &mut CallDispatch, push: &mut dyn FnMut(u64, CallEventKind), at: u64| {
        while let Some(e) = d.poll_effect() {
            match e {
                Effect::IncidentUpdated(incident) => push(at, CallEventKind::IncidentUpdated { incident }),
                Effect::Alert { alert_id, alert } => push(at, CallEventKind::Alert { alert_id, severity: alert.severity(), alert }),
                Effect::Proposed { priority, auto_dispatch_at_ms, message, units } => push(at, CallEventKind::DispatchProposed { priority, auto_dispatch_at_ms, message, units }),
                Effect::Dispatched { by, message, units } => push(at, CallEventKind::Dispatched { by, message, units }),
                Effect::Roster(RosterRequest::Reserve { units }) => {
                    let granted = units.iter().flat_map(|u| roster.assign(std::slice::from_ref(u), "CAqa").unwrap_or_default()).collect();
                    d.on_roster(RosterAnswer::Reserved(granted), at);
                }
                _ => {}
            }
        }
    };
    for (i, t) in sc.turns.iter().enumerate() {
        at += 4000;
        push(at, line(Speaker::Caller, 2 * i + 1, &t.caller));
        d.on_final_line(true, &t.caller, at);
        drain(&mut d, &mut push, at);
        if let Some(f) = &t.function_call {
            at += 500;
            d.on_report(&f.arguments, at);
            drain(&mut d, &mut push, at);
        }
        at += 2500;
        push(at, line(Speaker::Agent, 2 * i + 2, &t.agent));
        d.on_final_line(false, &t.agent, at);
        drain(&mut d, &mut push, at);
    }
    push(at + 1000, CallEventKind::CallEnded { reason: "completed".into() });
    events
}

fn check(name: &str) {
    let path = format!("{}/tests/expected/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let want: Expected = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let card = score(&Cards::default_set(), &events_of(name));
    for item in &card.items {
        let w = want.items.get(&item.id).unwrap_or_else(|| panic!("{name}: the fixture has no {}", item.id));
        assert_eq!(item.result, w.result, "{name}: {} — evidence {:?}", item.id, item.evidence);
        if let Some(piece) = &w.evidence {
            assert!(item.evidence.iter().any(|e| e.line.contains(piece.as_str())), "{name}: {} evidence {:?} lacks {piece:?}", item.id, item.evidence);
        }
    }
    assert_eq!(card.items.len(), want.items.len(), "{name}: every fixture item is on the card");
    assert_eq!(card.level, want.level, "{name}: {card:#?}");
    assert_eq!(card.card.version, Cards::default_set().version);
    let t = &card.times;
    assert_eq!(t.answered_at_ms, Some(T0 + 300));
    assert!(t.answer_to_location_ms.is_some() && t.answer_to_dispatch_ms.is_some(), "{t:?}");
}

#[test]
fn the_structure_fire_scores_as_written_by_hand() {
    check("structure-fire");
}

#[test]
fn the_cardiac_arrest_scores_as_written_by_hand() {
    check("cardiac-arrest");
}

#[test]
fn the_call_that_never_reads_the_address_back_scores_low() {
    check("no-read-back");
}
