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

    // The supervisor links it: one incident with both calls.
    let sid = second["calls"][0].as_str().unwrap().to_string();
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
    let lone = other["calls"][0].as_str().unwrap();
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
    for want in [("incident.link", "ok"), ("incident.unlink", "ok"), ("incident.link", "refused")] {
        assert!(acts.iter().any(|(act, o)| (act.as_str(), o.as_str()) == want), "{want:?} in {acts:?}");
    }
    rig.server.shutdown().await;
    for c in calls {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }
}
