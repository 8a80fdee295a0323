//! The review API over real calls: filters and paging, transcript, timeline, the stereo
//! recording, units, legal hold, caller history and the audit trail.

mod common;
#[path = "../../dispatch/tests/support/eido_schema.rs"]
mod eido_schema;

use std::io::Cursor;
use std::time::Duration;

use common::{client, rig, scenario, wait_record_ended};
use serde_json::{Value, json};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, new_call_sid, place_call};
use watchfloor_wire::mulaw;

async fn get(url: String) -> (u16, Value) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(url: String, body: Value) -> (u16, Value) {
    let r = client().post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_of_finished_calls() {
    let fire = scenario("structure-fire");
    let cardiac = scenario("cardiac-arrest");
    let speed = 8.0;
    let rig = rig(vec![fire.clone(), cardiac.clone()], speed, |_| {}).await;
    let base = rig.server.base_url();
    let opts = SimulateOptions { caller: CallerOptions { speed, skip_silent_every: 9, ..Default::default() }, ..Default::default() };
    let c1 = place_call(&base, &fire, &opts).await.unwrap();
    wait_record_ended(&rig.server, &c1.call_sid).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c2 = place_call(&base, &cardiac, &opts).await.unwrap();
    let rec2 = wait_record_ended(&rig.server, &c2.call_sid).await;

    // List, newest first; filters; paging.
    let (s, page) = get(format!("{base}/api/calls")).await;
    assert_eq!(s, 200);
    let sids: Vec<&str> = page["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap()).collect();
    assert_eq!(sids, vec![c2.call_sid.as_str(), c1.call_sid.as_str()]);
    let only = |v: &Value| v["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(only(&get(format!("{base}/api/calls?caller=%2B15550100101")).await.1), vec![c1.call_sid.clone()]);
    assert_eq!(only(&get(format!("{base}/api/calls?q=smoke")).await.1), vec![c1.call_sid.clone()]);
    assert_eq!(only(&get(format!("{base}/api/calls?q=Not%20Breathing")).await.1), vec![c2.call_sid.clone()]);
    assert_eq!(only(&get(format!("{base}/api/calls?q=smoke%20breathing")).await.1), Vec::<String>::new());
    assert_eq!(only(&get(format!("{base}/api/calls?status=completed")).await.1).len(), 2);
    assert_eq!(only(&get(format!("{base}/api/calls?status=fallback")).await.1).len(), 0);
    assert_eq!(only(&get(format!("{base}/api/calls?from={}", rec2.started_at_ms)).await.1), vec![c2.call_sid.clone()]);
    assert_eq!(only(&get(format!("{base}/api/calls?to={}", rec2.started_at_ms)).await.1), vec![c1.call_sid.clone()]);
    let (_, p1) = get(format!("{base}/api/calls?limit=1")).await;
    assert_eq!(only(&p1), vec![c2.call_sid.clone()]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = get(format!("{base}/api/calls?limit=1&cursor={cursor}")).await;
    assert_eq!(only(&p2), vec![c1.call_sid.clone()]);
    assert!(p2["next_cursor"].is_null());
    for bad in ["status=bogus", "limit=0", "limit=501", "from=yesterday", "priority=P9", "cursor=nonsense", "colour=red", "from=10&to=5"] {
        let (s, body) = get(format!("{base}/api/calls?{bad}")).await;
        assert_eq!(s, 400, "{bad}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}: {body}");
    }

    // Transcript, JSON and text.
    let (s, t) = get(format!("{base}/api/calls/{}/transcript", c1.call_sid)).await;
    assert_eq!(s, 200);
    let lines = t["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1 + 2 * fire.turns.len());
    assert_eq!(lines[0]["speaker"], "agent");
    assert_eq!(lines[1]["text"], fire.turns[0].caller.text);
    assert!(lines.windows(2).all(|w| w[0]["offset_ms"].as_u64() <= w[1]["offset_ms"].as_u64()));
    let text = client().get(format!("{base}/api/calls/{}/transcript?format=text", c1.call_sid)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("] Caller: There's a fire at 123 Main Street"), "{text}");
    assert!(text.starts_with("[00:00] Dispatcher: "), "{text}");
    assert_eq!(get(format!("{base}/api/calls/{}/transcript?format=pdf", c1.call_sid)).await.0, 400);

    // Timeline.
    let (_, tl) = get(format!("{base}/api/calls/{}/timeline", c1.call_sid)).await;
    let events = tl["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "call_created");
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == i as u64));
    assert!(events.iter().any(|e| e["type"] == "call_ended"));

    // The stereo recording: the caller's audio exactly, and the agent aligned where it was heard.
    let wav = client().get(format!("{base}/api/calls/{}/recording.wav", c1.call_sid)).send().await.unwrap().bytes().await.unwrap();
    let mut r = hound::WavReader::new(Cursor::new(wav.to_vec())).unwrap();
    assert_eq!((r.spec().channels, r.spec().sample_rate, r.spec().bits_per_sample), (2, 8000, 16));
    let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let expected_left: Vec<i16> = c1.report.expected_input.iter().map(|&b| mulaw::decode(b)).collect();
    assert!(left.len() >= expected_left.len());
    assert!(left[..expected_left.len()] == expected_left[..], "caller channel is the caller's audio");
    let first_agent_ms = right.iter().position(|&s| s != 0).unwrap() as i64 / 8;
    let heard_ms = c1.report.first_heard_ms.unwrap() as i64;
    assert!((first_agent_ms - heard_ms).abs() <= 40, "agent audio at {first_agent_ms} ms in the WAV, heard at {heard_ms} ms");
    let agent_in_wav = right.iter().filter(|&&s| s != 0).count();
    let agent_heard = c1.report.heard_audio.iter().filter(|&&b| mulaw::decode(b) != 0).count();
    assert_eq!(agent_in_wav, agent_heard, "every agent sample the caller heard is in the recording");
    eprintln!("recording: agent first audio at {first_agent_ms} ms in the WAV, heard by the caller at {heard_ms} ms");

    // Units.
    let u = |p: &str| format!("{base}/api/calls/{}/{p}", c1.call_sid);
    let (s, rec) = post(u("attach"), json!({"unit": "Engine 7"})).await;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["units"][0]["unit"], "Engine 7");
    assert_eq!(post(u("attach"), json!({"unit": "Engine 7"})).await.0, 409);
    assert_eq!(post(u("on-scene"), json!({"unit": "Medic 3"})).await.0, 409);
    assert_eq!(post(u("attach"), json!({"unit": ""})).await.0, 400);
    assert_eq!(post(u("attach"), json!({"crew": "x"})).await.0, 400);
    let (s, rec) = post(u("on-scene"), json!({"unit": "Engine 7"})).await;
    assert_eq!(s, 200);
    assert!(rec["units"][0]["on_scene_at_ms"].as_u64().is_some());
    assert_eq!(post(format!("{base}/api/calls/CA00000000000000000000000000000009/attach"), json!({"unit": "Engine 7"})).await.0, 404);
    let (s, rec) = post(u("legal-hold"), json!({"on": true})).await;
    assert_eq!(s, 200);
    assert_eq!(rec["legal_hold"], true);
    // Supervisor events went through the same event log: the record still rebuilds from it.
    let stored = rig.server.store.get_call(&c1.call_sid).unwrap().unwrap();
    assert_eq!(rig.server.store.rebuild(&c1.call_sid).unwrap().unwrap(), stored);

    // EIDO of both calls validates against the NENA schema; the supervisor is an agent.
    let schema = eido_schema::validator();
    for sid in [&c1.call_sid, &c2.call_sid] {
        let (s, doc) = get(format!("{base}/api/calls/{sid}/eido")).await;
        assert_eq!(s, 200);
        let errs = eido_schema::errors(&schema, &doc);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(doc["callComponent"][0]["callStateRegistryText"], "callEnd");
    }
    let (_, doc) = get(format!("{base}/api/calls/{}/eido", c1.call_sid)).await;
    assert_eq!(doc["incidentComponent"]["incidentTypeCommonRegistryText"], "FSTRU");
    assert_eq!(doc["incidentComponent"]["incidentCommonPriorityNumber"], 10);
    assert_eq!(doc["locationComponent"][0]["locationDescriptionText"], "123 Main Street");
    let agents: Vec<&str> = doc["agentComponent"].as_array().unwrap().iter().map(|a| a["$id"].as_str().unwrap()).collect();
    assert_eq!(agents, vec!["ai-calltaker@psap.invalid", "supervisor@psap.invalid"]);
    assert!(doc["notesComponent"].as_array().unwrap().iter().any(|n| n["notesActionComments"] == "<p>Unit attached: Engine 7</p>" && n["updatedByAgentReference"]["$ref"] == "supervisor@psap.invalid"));
    assert_eq!(get(format!("{base}/api/calls/CA00000000000000000000000000000009/eido")).await.0, 404);

    // Caller history, and the line it puts in the next call's instructions.
    let (s, h) = get(format!("{base}/api/callers/%2B15550100101/history?days=1")).await;
    assert_eq!(s, 200);
    assert_eq!(h["calls"].as_array().unwrap().len(), 1);
    assert_eq!(get(format!("{base}/api/callers/%2B15550100101/history?days=0")).await.0, 400);
    let c3 = place_call(&base, &fire, &opts).await.unwrap();
    wait_record_ended(&rig.server, &c3.call_sid).await;
    let sessions = rig.model.sessions();
    let instr = sessions.last().unwrap().session.as_ref().unwrap().instructions.clone().unwrap();
    assert!(instr.contains("Caller history: 1 prior call from this number in the last 30 days"), "{instr}");

    // The audit trail has every read and action, with outcomes.
    let (_, a) = get(format!("{base}/api/audit?action=call.attach_unit")).await;
    let outcomes: Vec<&str> = a["entries"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["not_found", "invalid", "invalid", "refused", "ok"], "newest first");
    let (_, a) = get(format!("{base}/api/audit?target={}", c1.call_sid)).await;
    let actions: Vec<&str> = a["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in ["call.transcript", "call.timeline", "call.recording", "call.attach_unit", "call.unit_on_scene", "call.legal_hold"] {
        assert!(actions.contains(&want), "{want} not audited: {actions:?}");
    }
    assert!(a["entries"].as_array().unwrap().iter().all(|e| e["user"] == "supervisor" && e["at_ms"].as_u64().is_some()));
    assert_eq!(get(format!("{base}/api/audit?limit=0")).await.0, 400);
    assert_eq!(get(format!("{base}/api/audit?from=abc")).await.0, 400);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_attached_to_a_live_call_goes_through_the_call() {
    let sc = scenario("structure-fire").with_caller_number("+15550500001");
    let rig = rig(vec![sc.clone()], 1.0, |c| c.claim_window = Duration::from_secs(3)).await;
    let base = rig.server.base_url();
    let sid = new_call_sid();
    let form = [("CallSid", sid.as_str()), ("From", "+15550500001"), ("To", "+15550000911"), ("AccountSid", "AC00000000000000000000000000000000")];
    assert_eq!(reqwest::Client::new().post(format!("{base}/api/webhooks/voice")).form(&form).send().await.unwrap().status(), 200);
    // Live (ringing, no stream yet): the attach is carried by the call's task.
    let (s, rec) = post(format!("{base}/api/calls/{sid}/attach"), json!({"unit": "Medic 3"})).await;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["units"][0]["unit"], "Medic 3");
    assert_eq!(rec["status"], "processing");
    let rec = wait_record_ended(&rig.server, &sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::NoStream);
    assert_eq!(rec.units.len(), 1);
    assert_eq!(rig.server.store.rebuild(&sid).unwrap().unwrap(), rec);
    rig.server.shutdown().await;
}
