//! Issue 18, first step: every call opens its own incident; a second call about the same fire is
//! proposed as its duplicate; a supervisor links it and unlinks it again; both are audited.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{client, rig, scenario};
use serde_json::{Value, json};
use watchfloor_bridge::CallEventKind;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};

async fn incidents(base: &str) -> Vec<Value> {
    client().get(format!("{base}/api/incidents?live=true")).send().await.unwrap().json::<Vec<Value>>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_call_about_the_same_fire_is_proposed_linked_and_unlinked() {
    let fire = scenario("structure-fire");
    let cardiac = scenario("cardiac-arrest");
    let rig = rig(vec![fire.clone(), cardiac.clone()], 1.0, |_| {}).await;
    let base = rig.server.base_url();
    let mut events = rig.server.calls.hub().subscribe();
    let opts = SimulateOptions { caller: CallerOptions { speed: 1.0, ..Default::default() }, ..Default::default() };
    let calls: Vec<_> = [&fire, &fire, &cardiac]
        .into_iter()
        .map(|sc| {
            let (base, sc, opts) = (base.clone(), sc.clone(), opts.clone());
            tokio::spawn(async move { place_call(&base, &sc, &opts).await.unwrap() })
        })
        .collect();
    // Each call learns its address from the caller's first turn.
    let mut located = HashSet::new();
    while located.len() < 3 {
        let ev = common::next_event(&mut events, Duration::from_secs(30), |e| matches!(&e.kind, CallEventKind::IncidentUpdated { incident } if incident.location.is_some())).await;
        located.insert(ev.call_sid.to_string());
    }
    let list = incidents(&base).await;
    assert_eq!(list.len(), 3, "every call its own incident: {list:?}");
    let fires: Vec<&Value> = list.iter().filter(|i| i["incident_type"] == "FSTRU").collect();
    assert_eq!(fires.len(), 2, "{list:?}");
    // The later fire call is proposed as a duplicate of the earlier one, exactly; the cardiac
    // arrest at another address is nobody's duplicate.
    let (first, second) = (fires[0], fires[1]);
    assert_eq!(second["duplicate_of"], json!({"incident": first["id"], "match": "exact"}), "{list:?}");
    assert!(first["duplicate_of"].is_null(), "the first call is the incident, not a duplicate: {list:?}");
    let other = list.iter().find(|i| i["incident_type"] == "CARDIAC").unwrap();
    assert!(other["duplicate_of"].is_null(), "{other:#}");

    // Keep apart: refused where nothing is suggested; for the second fire call, the suggestion
    // goes (its live state says so) and is audited.
    let sid = second["calls"][0].as_str().unwrap().to_string();
    let lone = other["calls"][0].as_str().unwrap();
    assert_eq!(client().post(format!("{base}/api/calls/{lone}/keep-apart")).send().await.unwrap().status(), 409);
    let r = client().post(format!("{base}/api/calls/{sid}/keep-apart")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(rig.server.calls.live_call(&sid).unwrap().possible_duplicate.is_none());
    assert_eq!(client().post(format!("{base}/api/calls/{sid}/keep-apart")).send().await.unwrap().status(), 409, "nothing stands any more");

    // The supervisor links it all the same: one incident with both calls.
    let r = client().post(format!("{base}/api/calls/{sid}/link")).json(&json!({"incident": first["id"]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let list = incidents(&base).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let joined = list.iter().find(|i| i["id"] == first["id"]).unwrap();
    assert_eq!(joined["calls"].as_array().unwrap().len(), 2);
    let one: Value = client().get(format!("{base}/api/incidents/{}", first["id"])).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["calls"], joined["calls"]);
    // Refusals: linked twice, an unknown incident, unlinking a call alone on its incident.
    assert_eq!(client().post(format!("{base}/api/calls/{sid}/link")).json(&json!({"incident": first["id"]})).send().await.unwrap().status(), 409);
    assert_eq!(client().post(format!("{base}/api/calls/{sid}/link")).json(&json!({"incident": 9999})).send().await.unwrap().status(), 404);
    assert_eq!(client().post(format!("{base}/api/calls/{sid}/link")).json(&json!({"incident": "I-1"})).send().await.unwrap().status(), 400);
    assert_eq!(client().post(format!("{base}/api/calls/{lone}/unlink")).send().await.unwrap().status(), 409);
    assert_eq!(client().get(format!("{base}/api/incidents/9999")).send().await.unwrap().status(), 404);

    // Undo: the call has an incident of its own again, and is proposed again.
    let r: Value = client().post(format!("{base}/api/calls/{sid}/unlink")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["from"], first["id"]);
    let list = incidents(&base).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let back = list.iter().find(|i| i["id"] == r["to"]).unwrap();
    assert_eq!(back["duplicate_of"]["incident"], first["id"]);

    let a: Value = client().get(format!("{base}/api/audit?target={sid}")).send().await.unwrap().json().await.unwrap();
    let acts: Vec<(String, String)> = a["entries"].as_array().unwrap().iter().map(|e| (e["action"].as_str().unwrap().into(), e["outcome"].as_str().unwrap().into())).collect();
    for want in [("incident.keep_apart", "ok"), ("incident.link", "ok"), ("incident.unlink", "ok"), ("incident.link", "refused")] {
        assert!(acts.iter().any(|(act, o)| (act.as_str(), o.as_str()) == want), "{want:?} in {acts:?}");
    }
    rig.server.shutdown().await;
    for c in calls {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }
}

/// Every event of every call, as they come, with a way to wait until they say something.
struct Timeline {
    events: std::sync::Arc<parking_lot::Mutex<Vec<std::sync::Arc<watchfloor_bridge::CallEvent>>>>,
    seen: tokio::sync::watch::Receiver<usize>,
}

impl Timeline {
    fn follow(hub: &watchfloor_bridge::Hub) -> Timeline {
        let mut rx = hub.subscribe();
        let events = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (tx, seen) = tokio::sync::watch::channel(0);
        let sink = events.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        let n = {
                            let mut v = sink.lock();
                            v.push(ev);
                            v.len()
                        };
                        let _ = tx.send(n);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => panic!("the test fell {n} events behind"),
                    Err(_) => return,
                }
            }
        });
        Timeline { events, seen }
    }

    /// Waits (event by event, at most `within`) until `done` holds over every event so far.
    async fn until(&mut self, what: &str, within: Duration, done: impl Fn(&[std::sync::Arc<watchfloor_bridge::CallEvent>]) -> bool) {
        let wait = async {
            loop {
                if done(&self.events.lock()) {
                    return;
                }
                self.seen.changed().await.expect("the hub closed");
            }
        };
        tokio::time::timeout(within, wait).await.unwrap_or_else(|_| panic!("{what}: not in {within:?}"));
    }

    fn of(&self, sid: &str) -> Vec<CallEventKind> {
        self.events.lock().iter().filter(|e| &*e.call_sid == sid).map(|e| e.kind.clone()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_callers_about_one_fire_make_one_incident_with_one_dispatch_and_an_unrelated_call_stays_apart() {
    use watchfloor_dispatch::types::UnitType;
    let names = ["willow-fire-resident", "willow-fire-neighbour", "willow-fire-driver", "harbor-cardiac", "willow-fire-landmark", "willow-fire-trapped"];
    let scenarios: Vec<_> = names.iter().map(|n| scenario(n)).collect();
    let speed = 2.0;
    let rig = rig(scenarios.clone(), speed, |c| {
        let unit = |id: &str, unit_type| watchfloor_server::config::UnitConfig { id: id.into(), unit_type };
        c.units = vec![
            unit("Engine 7", UnitType::Engine),
            unit("Engine 9", UnitType::Engine),
            unit("Engine 11", UnitType::Engine),
            unit("Ladder 2", UnitType::Ladder),
            unit("Ladder 4", UnitType::Ladder),
            unit("Medic 3", UnitType::Medic),
            unit("Medic 5", UnitType::Medic),
            unit("Battalion 1", UnitType::Battalion),
        ];
    })
    .await;
    let base = rig.server.base_url();
    let mut timeline = Timeline::follow(rig.server.calls.hub());
    let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };
    // The surge's own schedule (scenarios/surges/willow-creek-fire.toml), at the test's speed.
    let all = watchfloor_sim::Scenario::load_all(&watchfloor_sim::scenario::default_dir()).unwrap();
    let surge = watchfloor_sim::Surge::load_all(&watchfloor_sim::scenario::default_dir(), &all).unwrap().into_iter().find(|s| s.name == "willow-creek-fire").unwrap();
    let mut sids = std::collections::HashMap::new();
    let mut calls = Vec::new();
    for (name, after_ms) in surge.schedule(None) {
        let sc = scenarios.iter().find(|s| s.name == name).unwrap().clone();
        let sid = watchfloor_sim::simulate::new_call_sid();
        sids.insert(name.to_string(), sid.clone());
        let (base, opts) = (base.clone(), SimulateOptions { call_sid: Some(sid), ..opts.clone() });
        calls.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((after_ms as f64 / speed) as u64)).await;
            place_call(&base, &sc, &opts).await
        }));
    }
    let sid = |n: &str| sids[n].clone();
    let (resident, neighbour, driver, landmark, trapped, cardiac) =
        (sid("willow-fire-resident"), sid("willow-fire-neighbour"), sid("willow-fire-driver"), sid("willow-fire-landmark"), sid("willow-fire-trapped"), sid("harbor-cardiac"));

    // The callers who give the address are each proposed as a duplicate of the resident's
    // incident (an exact match); the supervisor links each with one request, as the console's
    // one key does. The landmark caller names no address: the supervisor links it by hand.
    let post = |path: String, body: Value| {
        let base = base.clone();
        async move {
            let r = client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        }
    };
    let possible = |evs: &[std::sync::Arc<watchfloor_bridge::CallEvent>], s: &str| {
        evs.iter().find_map(|e| match &e.kind {
            CallEventKind::PossibleDuplicate { duplicate } if &*e.call_sid == s && duplicate.by == watchfloor_dispatch::address::Match::Exact => Some(duplicate.incident),
            _ => None,
        })
    };
    let mut fire_id = None;
    for s in [&neighbour, &driver, &trapped] {
        timeline.until("an exact duplicate proposed", Duration::from_secs(60), |evs| possible(evs, s).is_some()).await;
        let id = possible(&timeline.events.lock(), s).unwrap();
        assert_eq!(*fire_id.get_or_insert(id), id, "every address caller is the same incident's duplicate");
        post(format!("/api/calls/{s}/link"), json!({"incident": id})).await;
    }
    let fire_id = fire_id.unwrap();
    timeline
        .until("the landmark caller located", Duration::from_secs(60), |evs| {
            evs.iter().any(|e| *e.call_sid == *landmark && matches!(&e.kind, CallEventKind::IncidentUpdated { incident } if incident.location.as_ref().is_some_and(|l| l.value.landmark.is_some())))
        })
        .await;
    assert!(possible(&timeline.events.lock(), &landmark).is_none(), "a landmark is not an address match");
    post(format!("/api/calls/{landmark}/link"), json!({"incident": fire_id})).await;
    // The supervisor confirms the incident's dispatch (the first call's) and the cardiac arrest's.
    timeline.until("the first call's proposal", Duration::from_secs(60), |evs| evs.iter().any(|e| *e.call_sid == *resident && matches!(e.kind, CallEventKind::DispatchProposed { .. }))).await;
    post(format!("/api/calls/{resident}/dispatch/confirm"), json!({})).await;
    timeline.until("the cardiac arrest's proposal", Duration::from_secs(60), |evs| evs.iter().any(|e| *e.call_sid == *cardiac && matches!(e.kind, CallEventKind::DispatchProposed { .. }))).await;
    post(format!("/api/calls/{cardiac}/dispatch/confirm"), json!({})).await;
    timeline.until("both dispatched", Duration::from_secs(60), |evs| [&resident, &cardiac].iter().all(|s| evs.iter().any(|e| &*e.call_sid == s.as_str() && matches!(e.kind, CallEventKind::Dispatched { .. })))).await;
    let fire = json!({"id": fire_id});
    let list = incidents(&base).await;
    let fire = list.iter().find(|i| i["id"] == fire["id"]).unwrap();
    let mut on_fire: Vec<String> = fire["calls"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    on_fire.sort();
    let mut want = vec![resident.clone(), neighbour.clone(), driver.clone(), landmark.clone(), trapped.clone()];
    want.sort();
    assert_eq!(on_fire, want, "one incident with the five fire calls: {list:#?}");
    let other = list.iter().find(|i| i["calls"].as_array().unwrap().iter().any(|c| c == cardiac.as_str())).unwrap();
    assert_ne!(other["id"], fire["id"]);
    assert_eq!(other["calls"].as_array().unwrap().len(), 1, "the cardiac arrest is its own incident");
    // One dispatch: every unit attached once, all to the first call; the linked calls sent none.
    let attached: Vec<(String, String)> = timeline.events.lock().iter().filter_map(|e| match &e.kind { CallEventKind::UnitAttached { unit, .. } => Some((e.call_sid.to_string(), unit.clone())), _ => None }).collect();
    let fire_units: Vec<&str> = attached.iter().filter(|(s, _)| on_fire.contains(s)).map(|(_, u)| u.as_str()).collect();
    assert_eq!(fire_units, ["Engine 7", "Engine 9", "Ladder 2", "Medic 3", "Battalion 1"], "{attached:?}");
    assert!(attached.iter().filter(|(s, _)| on_fire.contains(s)).all(|(s, _)| *s == resident));
    for s in [&neighbour, &driver, &landmark, &trapped] {
        let own = timeline.of(s);
        assert!(!own.iter().any(|k| matches!(k, CallEventKind::Dispatched { .. })), "{s} sent its own dispatch");
        // A proposal made before the link was withdrawn with it.
        if own.iter().any(|k| matches!(k, CallEventKind::DispatchProposed { .. })) {
            assert!(own.iter().any(|k| matches!(k, CallEventKind::DispatchWithdrawn { incident } if *incident == fire_id)), "{s}: {own:?}");
        }
    }
    assert!(fire["units"].as_array().unwrap().len() == 5 && fire["dispatch"] == "dispatched", "{fire:#}");
    // Each call's record and GET /api/calls/{sid} carry its incident.
    let rec: Value = client().get(format!("{base}/api/calls/{driver}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(rec["incident"], fire["id"]);

    // EIDO: one incident with the five calls, from the incident or any of its calls; the
    // supervisor's link is a note by them.
    let eido: Value = client().get(format!("{base}/api/incidents/{}/eido", fire_id.0)).send().await.unwrap().json().await.unwrap();
    assert_eq!(eido["callComponent"].as_array().unwrap().len(), 5, "{eido:#}");
    assert!(eido["$id"].as_str().unwrap().starts_with(&format!("urn:emergency:uid:incidentid:{fire_id}:")), "{}", eido["$id"]);
    let by_call: Value = client().get(format!("{base}/api/calls/{landmark}/eido")).send().await.unwrap().json().await.unwrap();
    assert_eq!(by_call["$id"], eido["$id"]);
    assert!(by_call["notesComponent"].as_array().unwrap().iter().any(|n| n["notesActionComments"].as_str().unwrap().contains(&format!("Linked to incident {fire_id}"))), "{by_call:#}");

    // The agent on a linked call was told the incident is known and the units are on the way.
    let told = |caller_number: &str| {
        rig.model.sessions().iter().filter(|s| s.caller_number.as_deref() == Some(caller_number)).flat_map(|s| s.system_messages.clone()).collect::<Vec<String>>()
    };
    let driver_number = &scenarios.iter().find(|s| s.name == "willow-fire-driver").unwrap().caller_number;
    assert!(rig.model.wait_until(Duration::from_secs(10), |_| {
        let t = told(driver_number);
        t.iter().any(|m| m.contains("already reported")) && t.iter().any(|m| m.contains("on the way") && m.contains("Engine 7, Engine 9, Ladder 2, Medic 3, Battalion 1"))
    }).await, "{:?}", told(driver_number));

    // Undo: the driver's call is its own incident again and proposes its own dispatch.
    let r: Value = client().post(format!("{base}/api/calls/{driver}/unlink")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["from"], fire["id"]);
    assert_ne!(r["to"], fire["id"]);
    let after_unlink: Vec<CallEventKind> = {
        let all = timeline.of(&driver);
        let at = all.iter().rposition(|k| matches!(k, CallEventKind::IncidentLinked { .. })).unwrap();
        all[at..].to_vec()
    };
    let own = after_unlink.iter().find_map(|k| match k { CallEventKind::DispatchProposed { units, .. } => Some(units.clone()), _ => None });
    // A structure fire's units that are still free (the cardiac arrest took Engine 11).
    assert_eq!(own, Some(vec!["Ladder 4".to_string()]), "its own proposal, after the unlink: {after_unlink:?}");
    let rec: Value = client().get(format!("{base}/api/calls/{driver}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(rec["incident"], r["to"]);
    assert_eq!(rec["dispatch"], "proposed");

    rig.server.shutdown().await;
    for c in calls {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }
}
