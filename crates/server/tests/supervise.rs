//! The supervisor's decisions through the API on a live call: each changes the call, reaches the
//! model as the right event, is audited, and is refused with a clear error when it makes no sense.

mod common;

use std::time::Duration;

use common::{client, rig, scenario, wait_record_ended};
use serde_json::{Value, json};
use watchfloor_bridge::CallEventKind;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};

async fn post(url: String, body: Value) -> (u16, Value) {
    let r = client().post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_decisions_on_a_live_call() {
    let sc = scenario("cardiac-arrest");
    let rig = rig(vec![sc.clone()], 1.0, |_| {}).await;
    let base = rig.server.base_url();
    let mut events = rig.server.calls.hub().subscribe();
    let call = tokio::spawn({
        let (base, sc) = (base.clone(), sc.clone());
        async move { place_call(&base, &sc, &SimulateOptions { caller: CallerOptions { speed: 1.0, ..Default::default() }, ..Default::default() }).await.unwrap() }
    });
    // Wait for the proposal: location and type are known after the caller's first turn.
    let proposed = common::next_event(&mut events, Duration::from_secs(20), |e| matches!(e.kind, CallEventKind::DispatchProposed { .. })).await;
    let sid = proposed.call_sid.to_string();
    rig.server.calls.hub().barrier().await.unwrap();
    let u = |p: &str| format!("{base}/api/calls/{sid}/{p}");
    // A danger alert ("not breathing") is acknowledged once; an unknown one is refused.
    let (s, rec) = post(u("alerts/1/ack"), json!({})).await;
    assert_eq!(s, 200, "{rec}");
    assert!(rec["alerts"].as_array().unwrap().iter().any(|a| a == "danger:not breathing"));
    assert_eq!(post(u("alerts/1/ack"), json!({})).await.0, 409);
    assert_eq!(post(u("alerts/99/ack"), json!({})).await.0, 409);
    // Whisper: the model gets a system item.
    let (s, _) = post(u("whisper"), json!({"text": "Ask whether there is an AED in the building."})).await;
    assert_eq!(s, 200);
    assert_eq!(post(u("whisper"), json!({"text": ""})).await.0, 400);
    // Correct the location: the supervisor's value wins.
    let r = client().patch(u("incident")).json(&json!({"location": "47 Elm Road, apartment 3"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["location"], "47 Elm Road");
    let r = client().patch(u("incident")).json(&json!({"incident_type": "NOT_A_CODE"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Confirm, confirm again (refused), recall, confirm a recalled dispatch (refused), dispatch now.
    let (s, rec) = post(u("dispatch/confirm"), json!({})).await;
    assert_eq!((s, rec["dispatch"].as_str()), (200, Some("dispatched")));
    assert!(rec["dispatch_message"].as_str().unwrap().contains("47 Elm Road"));
    let (s, why) = post(u("dispatch/confirm"), json!({})).await;
    assert_eq!(s, 409);
    assert!(why["error"].as_str().unwrap().contains("already"), "{why}");
    assert_eq!(post(u("dispatch/recall"), json!({})).await.1["dispatch"], "recalled");
    let (s, why) = post(u("dispatch/confirm"), json!({})).await;
    assert_eq!(s, 409);
    assert!(why["error"].as_str().unwrap().contains("recalled"), "{why}");
    assert_eq!(post(u("dispatch/now"), json!({})).await.1["dispatch"], "dispatched");

    let call = call.await.unwrap();
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    assert_eq!(rec.call_sid, sid);
    // After the call: every decision is refused as the call has ended.
    let (s, why) = post(u("dispatch/recall"), json!({})).await;
    assert_eq!(s, 409);
    assert!(why["error"].as_str().unwrap().contains("ended"));
    assert_eq!(client().patch(u("incident")).json(&json!({"priority": "P2"})).send().await.unwrap().status(), 409);

    // What the model got: the whisper, then the dispatch notices; and its next words followed it.
    let session = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(5)).await.unwrap();
    assert!(session.system_messages.iter().any(|m| m == "Supervisor instruction: Ask whether there is an AED in the building."));
    assert!(session.system_messages.iter().any(|m| m.starts_with("Dispatch has been sent: ")));
    assert!(session.system_messages.iter().any(|m| m.starts_with("The supervisor recalled the dispatch")));
    assert!(rec.transcript.iter().any(|l| l.speaker == "agent" && l.text.contains("(Following the supervisor: Ask whether there is an AED")), "{:#?}", rec.transcript);
    // The timeline says who did what; the audit log has every decision and refusal.
    let events = rig.server.store.events(&sid).unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind, CallEventKind::IncidentUpdated { incident } if matches!(&incident.location.as_ref().unwrap().source, watchfloor_dispatch::incident::Source::Supervisor { user } if user == "supervisor"))));
    assert!(events.iter().any(|e| matches!(&e.kind, CallEventKind::DispatchRecalled { by } if by == "supervisor")));
    let a: Value = client().get(format!("{base}/api/audit?target={sid}&limit=100")).send().await.unwrap().json().await.unwrap();
    let entries: Vec<(String, String)> = a["entries"].as_array().unwrap().iter().map(|e| (e["action"].as_str().unwrap().into(), e["outcome"].as_str().unwrap().into())).collect();
    for (action, outcome) in [("dispatch.confirm", "ok"), ("dispatch.confirm", "refused"), ("dispatch.recall", "ok"), ("dispatch.now", "ok"), ("agent.whisper", "ok"), ("agent.whisper", "invalid"), ("incident.edit", "ok"), ("incident.edit", "invalid"), ("alert.acknowledge", "ok"), ("alert.acknowledge", "refused")] {
        assert!(entries.contains(&(action.to_string(), outcome.to_string())), "{action}/{outcome} not audited: {entries:?}");
    }
    rig.server.shutdown().await;
}

async fn patch(url: String, body: Value) -> (u16, Value) {
    let r = client().patch(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn unit_status(rec: &Value, unit: &str) -> String {
    rec["units"].as_array().unwrap().iter().find(|u| u["unit"] == unit).map(|u| u["status"].as_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_from_the_roster_and_the_voiced_dispatch_message() {
    let sc = scenario("cardiac-arrest");
    let rig = rig(vec![sc.clone()], 2.0, |c| {
        use watchfloor_dispatch::types::UnitType;
        c.units = [("Medic 3", UnitType::Medic), ("Engine 7", UnitType::Engine), ("Engine 9", UnitType::Engine), ("Patrol 12", UnitType::Patrol)]
            .into_iter()
            .map(|(id, unit_type)| watchfloor_server::config::UnitConfig { id: id.into(), unit_type })
            .collect();
    })
    .await;
    let base = rig.server.base_url();
    let mut events = rig.server.calls.hub().subscribe();
    let call = tokio::spawn({
        let (base, sc) = (base.clone(), sc.clone());
        async move { place_call(&base, &sc, &SimulateOptions { caller: CallerOptions { speed: 2.0, ..Default::default() }, ..Default::default() }).await.unwrap() }
    });
    let proposed = common::next_event(&mut events, Duration::from_secs(20), |e| matches!(e.kind, CallEventKind::DispatchProposed { .. })).await;
    let sid = proposed.call_sid.to_string();
    rig.server.calls.hub().barrier().await.unwrap();
    let rec: Value = client().get(format!("{base}/api/calls/{sid}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(rec["dispatch"], "proposed");
    let u = |p: &str| format!("{base}/api/calls/{sid}/{p}");
    // The proposal recommends a medic and an engine, unit first.
    assert!(rec["dispatch_message"].as_str().unwrap().starts_with("Medic 3, Engine 7, respond priority one to a cardiac arrest"), "{rec}");
    // The supervisor sends Engine 9 instead; an unknown unit is refused and changes nothing.
    let (s, why) = patch(u("incident"), json!({"units": ["Truck 1"]})).await;
    assert_eq!((s, why["error"].as_str()), (409, Some("no unit Truck 1 on the roster")));
    let (s, rec) = patch(u("incident"), json!({"units": ["Medic 3", "Engine 9"]})).await;
    assert_eq!(s, 200, "{rec}");
    assert!(rec["dispatch_message"].as_str().unwrap().starts_with("Medic 3, Engine 9, respond"), "{rec}");
    assert_eq!(patch(u("incident"), json!({"units": "Medic 3"})).await.0, 400);
    let (s, rec) = post(u("dispatch/confirm"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!((unit_status(&rec, "Medic 3"), unit_status(&rec, "Engine 9")), ("dispatched".into(), "dispatched".into()));
    let roster: Value = client().get(format!("{base}/api/units")).send().await.unwrap().json().await.unwrap();
    let busy: Vec<&str> = roster["units"].as_array().unwrap().iter().filter(|u| u["call_sid"] == sid.as_str()).map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(busy, vec!["Medic 3", "Engine 9"]);
    // Status moves through the endpoints; a move that makes no sense is refused.
    assert_eq!(post(u("en-route"), json!({"unit": "Medic 3"})).await.0, 200);
    let (s, why) = post(u("en-route"), json!({"unit": "Medic 3"})).await;
    assert_eq!((s, why["error"].as_str()), (409, Some("Medic 3 cannot go from en route to en route")));
    assert_eq!(post(u("on-scene"), json!({"unit": "Medic 3"})).await.0, 200);
    assert_eq!(post(u("on-scene"), json!({"unit": "Patrol 12"})).await.0, 409, "not attached");
    assert_eq!(post(u("attach"), json!({"unit": "Engine 7"})).await.0, 200);
    assert_eq!(post(u("attach"), json!({"unit": "Engine 7"})).await.0, 409);
    let (s, rec) = post(u("cleared"), json!({"unit": "Engine 9"})).await;
    assert_eq!((s, unit_status(&rec, "Engine 9")), (200, "cleared".into()));
    assert_eq!((unit_status(&rec, "Medic 3"), unit_status(&rec, "Engine 7")), ("on_scene".into(), "dispatched".into()));
    let roster: Value = client().get(format!("{base}/api/units")).send().await.unwrap().json().await.unwrap();
    let status = |id: &str| roster["units"].as_array().unwrap().iter().find(|u| u["id"] == id).unwrap()["status"].as_str().unwrap().to_string();
    assert_eq!((status("Medic 3"), status("Engine 7"), status("Engine 9")), ("on_scene".into(), "dispatched".into(), "cleared".into()));

    // The dispatch message, voiced out of band, is served as WAV at dispatch_audio_url.
    common::next_event(&mut events, Duration::from_secs(15), |e| matches!(e.kind, CallEventKind::DispatchAudio { status: watchfloor_bridge::DispatchAudioStatus::Completed, .. })).await;
    rig.server.calls.hub().barrier().await.unwrap();
    let rec: Value = client().get(format!("{base}/api/calls/{sid}")).send().await.unwrap().json().await.unwrap();
    let url = rec["dispatch_audio_url"].as_str().expect("dispatch audio voiced").to_string();
    assert_eq!(url, format!("/api/calls/{sid}/dispatch/1/audio.wav"));
    let r = client().get(format!("{base}{url}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    let wav = r.bytes().await.unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(wav.to_vec())).unwrap();
    assert_eq!((reader.spec().channels, reader.spec().sample_rate), (1, 8000));
    assert_eq!(client().get(u("dispatch/2/audio.wav")).send().await.unwrap().status(), 404);

    let call = call.await.unwrap();
    wait_record_ended(&rig.server, &call.call_sid).await;
    let session = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(5)).await.unwrap();
    let oob = &session.out_of_band[0];
    assert_eq!(oob.metadata["purpose"], "dispatch_audio");
    assert!(oob.text.starts_with("Medic 3, Engine 9, respond priority one to a cardiac arrest"), "{}", oob.text);
    assert_eq!(reader.duration() as usize, oob.audio.len(), "every byte voiced is in the WAV");
    // The caller got exactly the conversation's audio: none of the dispatch audio.
    let conversation: usize = session.agent_audio.iter().map(|(_, a)| common::framed_len(a.len())).sum();
    assert_eq!(call.report.received_audio.len(), conversation);
    // The record's transcript has no dispatch line.
    let rec = rig.server.store.get_call(&sid).unwrap().unwrap();
    assert!(!rec.transcript.iter().any(|l| l.text.contains("respond priority one")), "{:#?}", rec.transcript);
    assert_eq!(rec.dispatch_audio.len(), 1);
    rig.server.shutdown().await;

    // A restart restores the roster's assignments from the records.
    let mut cfg = watchfloor_server::Config::defaults();
    cfg.data_dir = rig._dir.path().join("data");
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(common::TOKEN));
    cfg.units = ["Medic 3", "Engine 7", "Engine 9"].iter().map(|id| watchfloor_server::config::UnitConfig { id: id.to_string(), unit_type: if id.starts_with("Medic") { watchfloor_dispatch::types::UnitType::Medic } else { watchfloor_dispatch::types::UnitType::Engine } }).collect();
    let server = watchfloor_server::serve(cfg, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    let roster: Value = client().get(format!("{}/api/units", server.base_url())).send().await.unwrap().json().await.unwrap();
    let unit = |id: &str| roster["units"].as_array().unwrap().iter().find(|u| u["id"] == id).unwrap().clone();
    assert_eq!((unit("Medic 3")["status"].as_str(), unit("Medic 3")["call_sid"].as_str()), (Some("on_scene"), Some(sid.as_str())));
    assert_eq!(unit("Engine 7")["status"], "dispatched");
    assert_eq!((unit("Engine 9")["status"].as_str(), unit("Engine 9")["call_sid"].as_str()), (Some("available"), None), "cleared: back in service");
    server.shutdown().await;
}
