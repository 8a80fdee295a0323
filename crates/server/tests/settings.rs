//! Settings from the console: validated, audited, saved in the store (they survive a restart),
//! applied to calls started afterwards, and the roster changed without dropping a busy unit.

mod common;

use std::time::Duration;

use common::{TOKEN, client, rig, scenario, wait_record_ended};
use serde_json::{Value, json};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_checked_saved_applied_and_audited() {
    let sc = scenario("structure-fire");
    let rig = rig(vec![sc.clone()], 8.0, |_| {}).await;
    let base = rig.server.base_url();
    let url = format!("{base}/api/settings");
    let s: Value = client().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["profiles"][0]["voice"], "marin");
    assert_eq!(s["default_profile"], s["profiles"][0]["name"]);
    assert_eq!(s["dispatch_policy"], json!({"mode": "supervised", "hold_ms": 20000}));
    assert_eq!(s["human_line"], "+15550001234");
    assert_eq!(s["voice_lost"], "ai", "a lost supervisor console gives the call back to the AI unless set otherwise");

    // Every problem is reported at once.
    let mut bad = s.clone();
    bad["profiles"][0]["voice"] = json!("robot");
    bad["dispatch_policy"] = json!({"mode": "supervised", "hold_ms": 10});
    bad["human_line"] = json!("555");
    let r = client().put(&url).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let why = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
    assert!(why.contains("profiles.default.voice must be one of") && why.contains("hold_ms") && why.contains("human_line"), "{why}");
    assert_eq!(client().put(&url).body("{\"voice\":").header("content-type", "application/json").send().await.unwrap().status(), 400);
    let mut bad_loss = s.clone();
    bad_loss["voice_lost"] = json!("hang_up");
    assert_eq!(client().put(&url).json(&bad_loss).send().await.unwrap().status(), 400);

    let mut good = s.clone();
    good["profiles"][0]["voice"] = json!("cedar");
    good["dispatch_policy"] = json!({"mode": "supervised", "hold_ms": 5000});
    good["human_line"] = json!("+15550009999");
    good["voice_lost"] = json!("human_line");
    good["units"] = json!([{"id": "Engine 7", "type": "engine"}, {"id": "Medic 3", "type": "medic"}]);
    let r = client().put(&url).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A changed profile is one version more (numbered by the server).
    good["profiles"][0]["version"] = json!(2);
    assert_eq!(client().get(&url).send().await.unwrap().json::<Value>().await.unwrap(), good);
    let roster: Value = client().get(format!("{base}/api/units")).send().await.unwrap().json().await.unwrap();
    assert_eq!(roster["units"].as_array().unwrap().len(), 2);

    // A call started now uses them: the new voice, the new fallback line, the new hold window.
    let call = place_call(&base, &sc, &SimulateOptions { caller: CallerOptions { speed: 8.0, ..Default::default() }, ..Default::default() }).await.unwrap();
    assert!(call.twiml.dial.as_deref() == Some("+15550009999"), "{:?}", call.twiml);
    let session = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(5)).await.unwrap();
    assert_eq!(session.session.unwrap().audio.unwrap().output.unwrap().voice.as_deref(), Some("cedar"));
    wait_record_ended(&rig.server, &call.call_sid).await;

    // A unit on a call cannot be removed from the roster.
    assert_eq!(client().post(format!("{base}/api/calls/{}/attach", call.call_sid)).json(&json!({"unit": "Medic 3"})).send().await.unwrap().status(), 200);
    let mut drop_medic = good.clone();
    drop_medic["units"] = json!([{"id": "Engine 7", "type": "engine"}]);
    let r = client().put(&url).json(&drop_medic).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("Medic 3"));

    let a: Value = client().get(format!("{base}/api/audit?action=settings.update")).send().await.unwrap().json().await.unwrap();
    let outcomes: Vec<&str> = a["entries"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert!(outcomes.contains(&"ok") && outcomes.contains(&"invalid") && outcomes.contains(&"refused"), "{outcomes:?}");
    let data_dir = rig._dir.path().join("data");
    rig.server.shutdown().await;

    // Saved: a restart keeps them.
    let mut cfg = watchfloor_server::Config::defaults();
    cfg.data_dir = data_dir;
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(TOKEN));
    let server = watchfloor_server::serve(cfg, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    let s: Value = client().get(format!("{}/api/settings", server.base_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(s, good);
    server.shutdown().await;
}
