//! Issue 19, first step: a call's automatic scorecard over the API, from the stored events of a
//! real simulated call through the bridge: the call that never reads the address back scores
//! Low with the read-back missed; the structure fire has it met, with the agent's line as
//! evidence; the review queue holds the Low call and one sampled call for the day.

mod common;

use common::{client, rig, scenario, wait_record_ended};
use serde_json::Value;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_call_is_scored_from_its_record() {
    let poor = scenario("no-read-back");
    let fire = scenario("structure-fire");
    let speed = 2.0;
    let rig = rig(vec![poor.clone(), fire.clone()], speed, |c| {
        c.dispatch_policy = watchfloor_dispatch::policy::Policy::Automatic;
        c.units = vec![watchfloor_server::config::UnitConfig { id: "Engine 7".into(), unit_type: watchfloor_dispatch::types::UnitType::Engine }];
    })
    .await;
    let base = rig.server.base_url();
    let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };
    let (a, b) = tokio::join!(place_call(&base, &poor, &opts), place_call(&base, &fire, &opts));
    let (a, b) = (a.unwrap(), b.unwrap());
    let item = |card: &Value, id: &str| card["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();

    wait_record_ended(&rig.server, &a.call_sid).await;
    let card: Value = client().get(format!("{base}/api/calls/{}/qa", a.call_sid)).send().await.unwrap().json().await.unwrap();
    assert_eq!(card["level"], "low", "{card:#}");
    assert_eq!(card["card"]["id"], "watchfloor-default");
    assert_eq!(item(&card, "location_verified")["result"], "missed");
    assert_eq!(item(&card, "fire_anyone_inside")["evidence"][0]["line"], "Dispatcher: Is anyone inside the house?");
    assert!(card["times"]["answer_to_dispatch_ms"].as_u64().is_some(), "{card:#}");

    wait_record_ended(&rig.server, &b.call_sid).await;
    let card: Value = client().get(format!("{base}/api/calls/{}/qa", b.call_sid)).send().await.unwrap().json().await.unwrap();
    let read_back = item(&card, "location_verified");
    assert_eq!(read_back["result"], "met", "{card:#}");
    assert!(read_back["evidence"][0]["line"].as_str().unwrap().contains("123 Main Street"));
    assert_eq!(client().get(format!("{base}/api/calls/CAnope/qa")).send().await.unwrap().status(), 404);

    // The review queue: the low-scoring call for its score; the day has a sampled call (with
    // two calls and a 2 % rate, the draw alone rarely picks one: the day's one is the lowest).
    let q: Value = client().get(format!("{base}/api/qa/queue")).send().await.unwrap().json().await.unwrap();
    assert_eq!(q["calls"], 2, "{q:#}");
    assert_eq!(q["rate"], 0.02);
    let entries = q["entries"].as_array().unwrap();
    let low = entries.iter().find(|e| e["call_sid"] == a.call_sid.as_str()).expect("the low call is queued");
    assert!(low["reasons"].as_array().unwrap().contains(&Value::from("low_score")), "{low}");
    assert_eq!(low["level"], "low");
    // At least one sampled (two when the calls straddle midnight UTC or both are drawn).
    let sampled = entries.iter().filter(|e| e["reasons"].as_array().unwrap().contains(&Value::from("sample"))).count();
    assert!((1..=2).contains(&sampled), "{q:#}");
    assert_eq!(client().get(format!("{base}/api/qa/queue?from=5&to=4")).send().await.unwrap().status(), 400);

    // The statistics equal a direct computation over the two records and their scorecards.
    let f: Value = client().get(format!("{base}/api/stats")).send().await.unwrap().json().await.unwrap();
    let recs = [rig.server.store.get_call(&a.call_sid).unwrap().unwrap(), rig.server.store.get_call(&b.call_sid).unwrap().unwrap()];
    assert_eq!(f["calls"], 2, "{f:#}");
    let hours: u64 = f["calls_per_hour"].as_array().unwrap().iter().map(|h| h[1].as_u64().unwrap()).sum();
    assert_eq!(hours, 2);
    assert_eq!(f["handled_by_ai"], 2);
    assert_eq!((f["taken_over"].as_u64(), f["handed_off"].as_u64()), (Some(0), Some(0)));
    // Both structure fires: one Partial (no callback number), one Low.
    assert_eq!(f["compliance_by_type"]["FSTRU"], serde_json::json!({"high": 0, "partial": 1, "low": 1, "non_compliant": 0}), "{f:#}");
    let dispatched: Vec<u64> = recs.iter().map(|r| {
        let events = rig.server.store.events(&r.call_sid).unwrap();
        let answered = events.iter().find(|e| matches!(e.kind, watchfloor_bridge::CallEventKind::StreamStarted { .. })).unwrap().at_ms;
        let at = events.iter().find(|e| matches!(e.kind, watchfloor_bridge::CallEventKind::Dispatched { .. })).unwrap().at_ms;
        at - answered
    }).collect();
    let d = &f["answer_to_dispatch_ms"];
    assert_eq!(d["count"], 2);
    assert_eq!(d["p50"].as_u64(), dispatched.iter().min().copied(), "nearest rank of two values: the lower");
    assert_eq!(d["p90"].as_u64(), dispatched.iter().max().copied());
    assert_eq!(f["review"]["queued"], q["entries"].as_array().unwrap().len());
    let audit: Value = client().get(format!("{base}/api/audit?action=call.qa")).send().await.unwrap().json().await.unwrap();
    assert!(audit["entries"].as_array().unwrap().len() >= 2);
    rig.server.shutdown().await;
}
