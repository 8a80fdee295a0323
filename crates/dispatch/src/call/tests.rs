use super::*;
use crate::types::UnitType;

const SID: &str = "CA01";
const T: u64 = 1_700_000_000_000;

fn roster() -> Roster {
    Roster::new(vec![("Engine 7".into(), UnitType::Engine), ("Ladder 2".into(), UnitType::Ladder), ("Medic 3".into(), UnitType::Medic), ("Patrol 12".into(), UnitType::Patrol)]).unwrap()
}

/// Drains the effects, answering roster requests from `owner` as its owner would.
fn run(d: &mut CallDispatch, owner: &mut Roster) -> Vec<Effect> {
    let mut out = Vec::new();
    while let Some(e) = d.poll_effect() {
        if let Effect::Roster(req) = &e {
            let answer = match req.clone() {
                RosterRequest::Reserve { units } => RosterAnswer::Reserved(units.iter().flat_map(|u| owner.assign(std::slice::from_ref(u), SID).unwrap_or_default()).collect()),
                RosterRequest::Release { only } => RosterAnswer::Released(owner.release(SID, only.as_deref())),
                RosterRequest::Move { unit, status } => RosterAnswer::Moved(if status == UnitStatus::Dispatched { owner.assign(&[unit], SID).map(|_| ()) } else { owner.set_status(&unit, SID, status) }),
            };
            d.on_roster(answer, T);
            d.set_roster(Arc::new(owner.clone()));
        }
        out.push(e);
    }
    out
}

fn dispatch(policy: Policy, owner: &Roster) -> CallDispatch {
    let mut d = CallDispatch::new(SID, policy);
    d.set_roster(Arc::new(owner.clone()));
    d
}

fn dispatched(effects: &[Effect]) -> Option<(&DispatchedBy, &str, &[String])> {
    effects.iter().find_map(|e| match e {
        Effect::Dispatched { by, message, units } => Some((by, message.as_str(), units.as_slice())),
        _ => None,
    })
}

#[test]
fn an_automatic_dispatch_reserves_the_recommended_units_then_announces_them() {
    let mut owner = roster();
    let mut d = dispatch(Policy::Automatic, &owner);
    d.on_final_line(true, "My house is on fire at 4521 Willow Creek Drive!", T);
    // The announcement waits for the roster owner's answer.
    let first: Vec<Effect> = std::iter::from_fn(|| d.poll_effect()).collect();
    let reserve = first.iter().position(|e| matches!(e, Effect::Roster(RosterRequest::Reserve { .. }))).expect("units reserved");
    assert!(dispatched(&first).is_none(), "nothing announced before the roster answers");
    assert!(d.awaits_roster());
    let Effect::Roster(RosterRequest::Reserve { units }) = &first[reserve] else { unreachable!() };
    assert_eq!(units, &vec!["Engine 7".to_string(), "Ladder 2".to_string(), "Medic 3".to_string()]);
    // Ladder 2 went to another call since the snapshot: it is left out of the announcement.
    owner.assign(&["Ladder 2".into()], "CA02").unwrap();
    let granted = units.iter().flat_map(|u| owner.assign(std::slice::from_ref(u), SID).unwrap_or_default()).collect();
    d.on_roster(RosterAnswer::Reserved(granted), T);
    let after = run(&mut d, &mut owner);
    let (by, message, units) = dispatched(&after).expect("dispatched");
    assert_eq!(by, &DispatchedBy::Automatic);
    assert_eq!(units, ["Engine 7".to_string(), "Medic 3".to_string()]);
    assert!(message.starts_with("Engine 7, Medic 3, respond"), "{message}");
    assert!(after.iter().any(|e| matches!(e, Effect::Unit { unit, status: UnitStatus::Dispatched, by } if unit == "Engine 7" && by == "policy")));
    assert!(after.iter().any(|e| matches!(e, Effect::VoiceMessage(m) if m == message)));
    assert!(after.iter().any(|e| matches!(e, Effect::TellAgent(t) if t.contains(message))));
    assert!(!d.awaits_roster());
}

#[test]
fn a_recall_releases_what_has_not_arrived_before_it_is_announced() {
    let mut owner = roster();
    let mut d = dispatch(Policy::Automatic, &owner);
    d.on_final_line(true, "My house is on fire at 4521 Willow Creek Drive!", T);
    run(&mut d, &mut owner);
    d.move_unit("Engine 7", UnitStatus::OnScene, "sup").unwrap();
    run(&mut d, &mut owner);
    d.recall("sup", T).unwrap();
    let out = run(&mut d, &mut owner);
    let released: Vec<&str> = out.iter().filter_map(|e| match e { Effect::Unit { unit, status: UnitStatus::Available, .. } => Some(unit.as_str()), _ => None }).collect();
    assert_eq!(released, ["Ladder 2", "Medic 3"], "the unit on scene stays");
    let recalled = out.iter().position(|e| matches!(e, Effect::Recalled { .. })).unwrap();
    assert!(out.iter().rposition(|e| matches!(e, Effect::Unit { .. })).unwrap() < recalled);
    assert_eq!(owner.assigned_to(SID), ["Engine 7"]);
}

#[test]
fn a_correction_after_dispatch_adds_and_drops_units_and_voices_the_new_message() {
    let mut owner = roster();
    let mut d = dispatch(Policy::Automatic, &owner);
    d.on_final_line(true, "My house is on fire at 4521 Willow Creek Drive!", T);
    run(&mut d, &mut owner);
    d.edit(&Facts::default(), Some(vec!["Engine 7".into(), "Patrol 12".into()]), "sup", T).unwrap();
    let out = run(&mut d, &mut owner);
    assert!(out.iter().any(|e| matches!(e, Effect::Unit { unit, status: UnitStatus::Dispatched, .. } if unit == "Patrol 12")));
    assert!(out.iter().any(|e| matches!(e, Effect::Unit { unit, status: UnitStatus::Available, .. } if unit == "Ladder 2")));
    assert!(out.iter().any(|e| matches!(e, Effect::VoiceMessage(m) if m.starts_with("Engine 7, Patrol 12, respond"))), "{out:?}");
    assert_eq!(owner.assigned_to(SID), ["Engine 7", "Patrol 12"]);
    // A unit on scene cannot be dropped; a unit of another call cannot be added: nothing changes.
    d.move_unit("Engine 7", UnitStatus::OnScene, "sup").unwrap();
    run(&mut d, &mut owner);
    assert_eq!(d.edit(&Facts::default(), Some(vec!["Patrol 12".into()]), "sup", T), Err(ActionRefused::UnitOnScene("Engine 7".into())));
    owner.assign(&["Medic 3".into()], "CA02").unwrap();
    d.set_roster(Arc::new(owner.clone()));
    assert!(matches!(d.edit(&Facts::default(), Some(vec!["Engine 7".into(), "Medic 3".into()]), "sup", T), Err(ActionRefused::Roster(RosterError::Busy { .. }))));
    assert!(d.poll_effect().is_none());
}

#[test]
fn a_supervised_p1_goes_out_at_the_end_of_its_hold_window() {
    let mut owner = roster();
    let mut d = dispatch(Policy::Supervised { hold_ms: 20_000 }, &owner);
    d.on_final_line(true, "My house is on fire at 4521 Willow Creek Drive!", T);
    let out = run(&mut d, &mut owner);
    let Some(Effect::Proposed { auto_dispatch_at_ms, units, .. }) = out.iter().find(|e| matches!(e, Effect::Proposed { .. })) else { panic!("{out:?}") };
    assert_eq!(*auto_dispatch_at_ms, Some(T + 20_000));
    assert_eq!(units.len(), 3);
    assert_eq!(d.next_deadline_ms(), Some(T + 20_000));
    d.on_timeout(T + 19_999);
    assert!(run(&mut d, &mut owner).is_empty());
    d.on_timeout(T + 20_000);
    let out = run(&mut d, &mut owner);
    assert!(out.iter().any(|e| matches!(e, Effect::Alert { alert: AlertKind::AutoDispatched, .. })));
    assert_eq!(dispatched(&out).unwrap().0, &DispatchedBy::HoldExpired);
    assert_eq!(d.confirm("sup", T + 21_000), Err(ActionRefused::Policy(Refused::AlreadyDispatched)));
}

#[test]
fn unit_moves_follow_the_status_model_and_mutual_aid_needs_no_roster() {
    let mut owner = roster();
    let mut d = dispatch(Policy::Automatic, &owner);
    assert_eq!(d.move_unit("Engine 7", UnitStatus::OnScene, "sup"), Err(ActionRefused::NotAttached("Engine 7".into())));
    d.move_unit("Engine 7", UnitStatus::Dispatched, "sup").unwrap();
    run(&mut d, &mut owner);
    assert_eq!(d.move_unit("Engine 7", UnitStatus::Dispatched, "sup"), Err(ActionRefused::AlreadyAttached("Engine 7".into(), "dispatched")));
    d.move_unit("Engine 7", UnitStatus::Cleared, "sup").unwrap();
    run(&mut d, &mut owner);
    assert_eq!(d.move_unit("Engine 7", UnitStatus::EnRoute, "sup"), Err(ActionRefused::BadMove { unit: "Engine 7".into(), from: "cleared", to: "en route" }));
    assert_eq!(owner.get("Engine 7").unwrap().status, UnitStatus::Cleared);
    // Off the roster: recorded at once, nothing asked of the owner.
    d.move_unit("County Medic 51", UnitStatus::Dispatched, "sup").unwrap();
    let out: Vec<Effect> = std::iter::from_fn(|| d.poll_effect()).collect();
    assert_eq!(out, vec![Effect::Unit { unit: "County Medic 51".into(), status: UnitStatus::Dispatched, by: "sup".into() }]);
    // A move the owner refuses (raced) changes nothing.
    d.move_unit("Medic 3", UnitStatus::Dispatched, "sup").unwrap();
    assert!(matches!(d.poll_effect(), Some(Effect::Roster(RosterRequest::Move { .. }))));
    d.on_roster(RosterAnswer::Moved(Err(RosterError::Unknown("Medic 3".into()))), T);
    assert!(d.poll_effect().is_none());
    assert_eq!(d.move_unit("Medic 3", UnitStatus::EnRoute, "sup"), Err(ActionRefused::NotAttached("Medic 3".into())));
}

#[test]
fn alerts_are_numbered_once_per_kind_and_acknowledged_once() {
    let mut d = CallDispatch::new(SID, Policy::default());
    d.on_final_line(false, "What is the address of your emergency?", T);
    d.on_final_line(false, "What is the address of your emergency?", T);
    d.alert(AlertKind::SilentCaller);
    d.alert(AlertKind::SilentCaller);
    let out: Vec<Effect> = std::iter::from_fn(|| d.poll_effect()).collect();
    let alerts: Vec<(u32, &AlertKind)> = out.iter().filter_map(|e| match e { Effect::Alert { alert_id, alert } => Some((*alert_id, alert)), _ => None }).collect();
    assert_eq!(alerts, vec![(1, &AlertKind::AgentStuck), (2, &AlertKind::SilentCaller)]);
    assert!(out.contains(&Effect::AgentQuestions { count: 2 }));
    assert_eq!(d.acknowledge(3, "sup"), Err(ActionRefused::NoSuchAlert(3)));
    assert_eq!(d.acknowledge(2, "sup"), Ok(()));
    assert_eq!(d.acknowledge(2, "sup"), Err(ActionRefused::AlertAlreadyAcknowledged(2)));
}

#[test]
fn check_move_is_the_status_model() {
    assert!(check_move("E7", None, UnitStatus::Dispatched).is_ok());
    assert!(check_move("E7", Some(UnitStatus::Cleared), UnitStatus::Dispatched).is_ok());
    assert!(check_move("E7", Some(UnitStatus::EnRoute), UnitStatus::OnScene).is_ok());
    assert_eq!(check_move("E7", None, UnitStatus::Cleared), Err(ActionRefused::NotAttached("E7".into())));
    assert_eq!(check_move("E7", Some(UnitStatus::OnScene), UnitStatus::Dispatched), Err(ActionRefused::AlreadyAttached("E7".into(), "on scene")));
}
