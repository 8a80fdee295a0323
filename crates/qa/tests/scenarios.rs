//! The scorecards of the scenario calls match fixtures written by hand from the scenario
//! transcripts (`tests/expected/<scenario>.toml`: each item's result and a piece of its
//! evidence line), the deliberately poor call (`no-read-back`) scoring Low, and a call taken in
//! Spanish scored by its lines' machine translations (`spanish-caller`).
//!
//! Each call's events are made as the bridge makes them (`watchfloor_sim::events`): the
//! scenario's lines as final transcript lines, the model's `report_incident` and every caller
//! line through the call's dispatch aggregate, its effects as events.

use serde::Deserialize;
use watchfloor_qa::{Cards, ItemResult, Level, score};
use watchfloor_sim::scenario::Scenario;

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
fn events_of(name: &str) -> Vec<watchfloor_call::CallEvent> {
    let sc = Scenario::load(&watchfloor_sim::scenario::default_dir(), name).unwrap();
    watchfloor_sim::events::scenario_events(&sc, "CAqa", T0)
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

#[test]
fn a_call_taken_in_spanish_is_scored_by_its_machine_translation() {
    check("spanish-caller");
}
