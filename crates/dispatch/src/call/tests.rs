use super::*;
use crate::linking::IncidentBook;
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
            d.set_roster(Arc::new(owner.clone()), 0);
        }
        out.push(e);
    }
    out
}

fn dispatch(policy: Policy, owner: &Roster) -> CallDispatch {
    let mut d = CallDispatch::new(SID, policy);
    d.set_roster(Arc::new(owner.clone()), 0);
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
    d.set_roster(Arc::new(owner.clone()), 0);
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

/// Several calls, the roster and the incident list, wired as the bridge wires them: each
/// call's effects are carried out in order, requests answered at once, and every call sees
/// each new list and roster.
struct Centre {
    roster: Roster,
    book: IncidentBook,
    calls: Vec<(String, CallDispatch)>,
    log: Vec<(String, Effect)>,
}

impl Centre {
    fn new(policy: Policy, sids: &[&str]) -> Centre {
        let roster = Roster::new(
            [("Engine 7", UnitType::Engine), ("Engine 9", UnitType::Engine), ("Ladder 2", UnitType::Ladder), ("Medic 3", UnitType::Medic), ("Medic 5", UnitType::Medic), ("Battalion 1", UnitType::Battalion)]
                .into_iter()
                .map(|(u, t)| (u.to_string(), t))
                .collect(),
        )
        .unwrap();
        let mut c = Centre { roster, book: IncidentBook::new(crate::linking::LinkRules::default()), calls: Vec::new(), log: Vec::new() };
        for sid in sids {
            c.book.open(sid, T);
            let mut d = CallDispatch::new(sid, policy);
            d.set_roster(Arc::new(c.roster.clone()), T);
            d.set_incidents(c.book.view_of(sid), T);
            c.calls.push((sid.to_string(), d));
        }
        c.settle();
        c
    }

    fn call(&mut self, sid: &str) -> &mut CallDispatch {
        &mut self.calls.iter_mut().find(|(s, _)| s == sid).unwrap().1
    }

    /// Carries out every call's effects until none is left.
    fn settle(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.calls.len() {
                while let Some(e) = self.calls[i].1.poll_effect() {
                    any = true;
                    let sid = self.calls[i].0.clone();
                    let d = &mut self.calls[i].1;
                    match &e {
                        Effect::IncidentUpdated(inc) => {
                            let loc = inc.location.as_ref().map(|f| &f.value);
                            self.book.update(&sid, loc, inc.incident_type.as_ref().map(|f| f.value.as_str()), T);
                        }
                        Effect::Proposed { units, .. } => {
                            self.book.set_proposed(&sid, Some(units.clone()));
                        }
                        Effect::Dispatched { .. } | Effect::Withdrawn { .. } | Effect::Recalled { .. } => {
                            self.book.set_proposed(&sid, None);
                        }
                        Effect::Roster(req) => {
                            let answer = match req.clone() {
                                RosterRequest::Reserve { units } => RosterAnswer::Reserved(units.iter().flat_map(|u| self.roster.assign(std::slice::from_ref(u), &sid).unwrap_or_default()).collect()),
                                RosterRequest::Release { only } => RosterAnswer::Released(self.roster.release(&sid, only.as_deref())),
                                RosterRequest::Move { unit, status } => RosterAnswer::Moved(self.roster.set_status(&unit, &sid, status)),
                            };
                            d.on_roster(answer, T);
                        }
                        Effect::Incidents(req) => {
                            let answer = match req {
                                IncidentRequest::Check => IncidentAnswer::Checked(self.book.duplicate_of(&sid, T)),
                                IncidentRequest::Link { incident } => IncidentAnswer::Linked(self.book.link(&sid, *incident, T)),
                                IncidentRequest::Unlink => IncidentAnswer::Unlinked(self.book.unlink(&sid, T)),
                            };
                            d.on_incidents(answer, self.book.view_of(&sid), T);
                        }
                        _ => {}
                    }
                    self.log.push((sid, e));
                }
            }
            if !any {
                break;
            }
            // Every call sees the new list and roster.
            let roster = Arc::new(self.roster.clone());
            for (sid, d) in &mut self.calls {
                d.set_roster(roster.clone(), T);
                d.set_incidents(self.book.view_of(sid), T);
            }
        }
    }

    fn says(&mut self, sid: &str, text: &str) {
        self.call(sid).on_final_line(true, text, T);
        self.settle();
    }

    fn effects_of(&self, sid: &str) -> Vec<&Effect> {
        self.log.iter().filter(|(s, _)| s == sid).map(|(_, e)| e).collect()
    }
}

#[test]
fn the_automatic_policy_links_an_exact_duplicate_before_it_sends_anything_and_the_incident_is_dispatched_once() {
    let mut c = Centre::new(Policy::Automatic, &["CA1", "CA2", "CA3"]);
    c.says("CA1", "My house is on fire at 4521 Willow Creek Drive!");
    assert_eq!(c.roster.assigned_to("CA1"), ["Engine 7", "Engine 9", "Ladder 2", "Medic 3", "Battalion 1"]);
    c.says("CA2", "There's a fire, 4521 Willow Creek Dr, smoke everywhere");
    let first = c.book.incident_of("CA1").unwrap();
    assert_eq!(c.book.incident_of("CA2"), Some(first), "linked to the first call's incident");
    assert!(c.roster.assigned_to("CA2").is_empty(), "no unit sent twice, none taken from elsewhere");
    let e2 = c.effects_of("CA2");
    assert!(e2.iter().any(|e| matches!(e, Effect::Linked { incident, by: Some(by), with_calls } if *incident == first && by == "policy" && with_calls == &["CA1"])), "{e2:?}");
    assert!(!e2.iter().any(|e| matches!(e, Effect::Dispatched { .. } | Effect::Proposed { .. })), "a linked call proposes nothing its incident has: {e2:?}");
    let told = e2.iter().find_map(|e| match e { Effect::TellAgent(t) if t.contains("already reported") => Some(t.clone()), _ => None }).expect("the agent is told");
    assert!(told.contains("Units are on the way: Engine 7, Engine 9, Ladder 2, Medic 3, Battalion 1"), "{told}");
    // Someone is hurt: the fire's medic is there already; a second caller's unconscious
    // neighbour needs nothing more. A third call about a robbery elsewhere stays its own.
    c.says("CA2", "my neighbour is unconscious on the lawn");
    assert!(c.roster.assigned_to("CA2").is_empty());
    c.says("CA3", "I've been robbed at gunpoint at 77 Harbor Street");
    assert_ne!(c.book.incident_of("CA3"), Some(first));
}

#[test]
fn a_supervised_duplicate_is_suggested_then_linked_withdrawing_its_proposal_and_an_unlink_restores_it() {
    let mut c = Centre::new(Policy::Supervised { hold_ms: 20_000 }, &["CA1", "CA2"]);
    c.says("CA1", "My house is on fire at 4521 Willow Creek Drive!");
    let first = c.book.incident_of("CA1").unwrap();
    c.says("CA2", "Fire at 4521 Willow Creek Drive, flames out the windows");
    let e2 = c.effects_of("CA2");
    assert!(e2.iter().any(|e| matches!(e, Effect::PossibleDuplicate(d) if d.incident == first && d.links_automatically())), "{e2:?}");
    let proposed = e2.iter().filter(|e| matches!(e, Effect::Proposed { .. })).count();
    assert_eq!(proposed, 1, "supervised: not linked until the supervisor says so; it proposes meanwhile");
    assert_ne!(c.book.incident_of("CA2"), Some(first));
    // The supervisor links it: the second call's proposal is withdrawn (the first call's
    // proposal has every unit), and the agent hears help is being sent.
    c.call("CA2").link(first, "sup");
    c.settle();
    assert_eq!(c.book.incident_of("CA2"), Some(first));
    assert_eq!(*c.call("CA2").state(), DispatchState::None);
    let e2 = c.effects_of("CA2");
    assert!(e2.iter().any(|e| matches!(e, Effect::Withdrawn { incident } if *incident == first)));
    assert!(e2.iter().any(|e| matches!(e, Effect::Linked { by: Some(b), .. } if b == "sup")));
    assert!(e2.iter().any(|e| matches!(e, Effect::TellAgent(t) if t.contains("Help is being dispatched"))));
    // The first call's dispatch goes out: the linked call's agent hears the units are coming.
    c.call("CA1").confirm("sup", T).unwrap();
    c.settle();
    assert!(c.effects_of("CA2").iter().any(|e| matches!(e, Effect::TellAgent(t) if t.starts_with("Units are now on the way to this incident: Engine 7"))));
    // Undo: the call is its own incident again and proposes its own dispatch.
    c.call("CA2").unlink("sup");
    c.settle();
    assert_ne!(c.book.incident_of("CA2"), Some(first));
    assert!(matches!(c.call("CA2").state(), DispatchState::Proposed { .. }));
    let last = c.effects_of("CA2").into_iter().rev().find_map(|e| match e { Effect::Proposed { units, .. } => Some(units.clone()), _ => None }).unwrap();
    assert_eq!(last, ["Medic 5"], "its own proposal, from what is free: {last:?}");
    // Nothing stands to keep apart from now.
    assert_eq!(c.call("CA2").keep_apart("sup"), Err(ActionRefused::NoPossibleDuplicate));
    // Never linked back to the incident it was taken off, even as it learns more.
    c.says("CA2", "it's spreading to the garage at 4521 Willow Creek Drive");
    assert_ne!(c.book.incident_of("CA2"), Some(first));
}

#[test]
fn a_linked_call_proposes_only_what_the_incident_lacks_and_the_first_calls_proposal_stands() {
    let mut c = Centre::new(Policy::Supervised { hold_ms: 20_000 }, &["CA1", "CA2", "CA3"]);
    let last_proposal = |c: &Centre, sid: &str| c.effects_of(sid).into_iter().rev().find_map(|e| match e { Effect::Proposed { units, .. } => Some(units.clone()), _ => None });
    // The first caller reports a man down; the second, outside, a car on fire.
    c.says("CA1", "Someone collapsed, he's unconscious at 12 Main Street");
    c.says("CA2", "There's a car on fire outside 12 Main Street");
    let first = c.book.incident_of("CA1").unwrap();
    c.call("CA2").link(first, "sup");
    c.settle();
    assert_eq!(last_proposal(&c, "CA1").unwrap(), ["Medic 3", "Engine 7"], "the first call's proposal is untouched by a later call's");
    assert!(c.effects_of("CA2").iter().any(|e| matches!(e, Effect::Withdrawn { .. })), "the car fire's engine is the first call's Engine 7");
    // A third caller says the house is burning: linked, it proposes only what a structure fire
    // needs beyond the medic and engine already proposed.
    c.says("CA3", "The house at 12 Main Street is on fire!");
    c.call("CA3").link(first, "sup");
    c.settle();
    assert_eq!(last_proposal(&c, "CA3").unwrap(), ["Engine 9", "Ladder 2", "Battalion 1"]);
    // Confirmed by the supervisor, it goes out; nothing is sent twice.
    c.call("CA1").confirm("sup", T).unwrap();
    c.call("CA3").confirm("sup", T).unwrap();
    c.settle();
    assert_eq!(c.roster.assigned_to("CA1"), ["Engine 7", "Medic 3"]);
    assert_eq!(c.roster.assigned_to("CA3"), ["Engine 9", "Ladder 2", "Battalion 1"]);
    assert!(c.roster.assigned_to("CA2").is_empty());
}

#[test]
fn a_possible_duplicate_kept_apart_is_not_suggested_again() {
    let mut c = Centre::new(Policy::Automatic, &["CA1", "CA2"]);
    c.says("CA1", "My house is on fire at 4521 Willow Creek Drive!");
    // A neighbour's house on the same block: near, so suggested, not linked.
    c.says("CA2", "There's smoke pouring out of 4535 Willow Creek Drive");
    let first = c.book.incident_of("CA1").unwrap();
    assert!(c.effects_of("CA2").iter().any(|e| matches!(e, Effect::PossibleDuplicate(d) if d.incident == first && !d.links_automatically())));
    assert_ne!(c.book.incident_of("CA2"), Some(first));
    c.call("CA2").keep_apart("sup").unwrap();
    c.settle();
    assert!(c.effects_of("CA2").iter().any(|e| matches!(e, Effect::KeptApart { incident, by } if *incident == first && by == "sup")));
    c.says("CA2", "it's a different house, 4535 Willow Creek Drive, the smoke is from the garage");
    let suggestions = c.effects_of("CA2").iter().filter(|e| matches!(e, Effect::PossibleDuplicate(_))).count();
    assert_eq!(suggestions, 1, "kept apart: never suggested again");
    assert_eq!(c.call("CA2").keep_apart("sup"), Err(ActionRefused::NoPossibleDuplicate));
}

#[test]
fn a_call_located_before_the_older_incident_is_checked_again_when_that_one_gets_its_place() {
    let mut c = Centre::new(Policy::Supervised { hold_ms: 20_000 }, &["CA1", "CA2"]);
    // The later call gives the address first: the older incident has no place yet.
    c.says("CA2", "Fire at 4521 Willow Creek Drive!");
    assert!(!c.effects_of("CA2").iter().any(|e| matches!(e, Effect::PossibleDuplicate(_))));
    // The first caller's address comes: the later call is its possible duplicate now.
    c.says("CA1", "My house is on fire, 4521 Willow Creek Drive");
    let first = c.book.incident_of("CA1").unwrap();
    assert!(c.effects_of("CA2").iter().any(|e| matches!(e, Effect::PossibleDuplicate(d) if d.incident == first)), "{:?}", c.effects_of("CA2"));
    assert!(!c.effects_of("CA1").iter().any(|e| matches!(e, Effect::PossibleDuplicate(_))), "the older call is nobody's duplicate");
}
