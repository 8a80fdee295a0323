//! Issue 17, first step: a supervisor takes a live call's voice from the agent and hands it back.
//! While taken over the model answers nothing but still hears (and transcribes) the caller; one
//! supervisor holds the voice at a time; the takeover is on the record and audited.

mod common;

use std::time::Duration;

use common::{client, rig, scenario, wait_record_ended};
use serde_json::Value;
use watchfloor_bridge::CallEventKind;
use watchfloor_server::auth::{UserConfig, hash_password};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::SessionLog;
use watchfloor_sim::simulate::{SimulateOptions, place_call};
use watchfloor_wire::realtime::TurnDetection;

fn answering(s: &SessionLog) -> Option<bool> {
    match s.session.as_ref()?.audio.as_ref()?.input.as_ref()?.turn_detection.as_ref()? {
        TurnDetection::ServerVad { create_response, .. } => Some(*create_response),
        _ => None,
    }
}

fn responses_asked(s: &SessionLog) -> usize {
    s.received.iter().filter(|t| *t == "response.create").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_takes_the_voice_the_agent_falls_silent_and_answers_again_after_the_hand_back() {
    let sc = scenario("cardiac-arrest");
    let rig = rig(vec![sc.clone()], 1.0, |c| {
        c.users = vec![
            UserConfig { name: "supervisor".into(), password_hash: None, line: None },
            UserConfig { name: "jdoe".into(), password_hash: Some(hash_password("s3cret pass")), line: None },
        ];
    })
    .await;
    let base = rig.server.base_url();
    let mut events = rig.server.calls.hub().subscribe();
    let call = tokio::spawn({
        let (base, sc) = (base.clone(), sc.clone());
        async move { place_call(&base, &sc, &SimulateOptions { caller: CallerOptions { speed: 1.0, ..Default::default() }, ..Default::default() }).await.unwrap() }
    });
    // The agent is greeting the caller.
    let talking = common::next_event(&mut events, Duration::from_secs(20), |e| matches!(e.kind, CallEventKind::Talking { who: watchfloor_bridge::Talking::Agent })).await;
    let sid = talking.call_sid.to_string();
    let url = |p: &str| format!("{base}/api/calls/{sid}/voice/{p}");
    let post = |c: reqwest::Client, u: String| async move {
        let r = c.post(u).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
    };

    let (st, live) = post(client(), url("take")).await;
    assert_eq!(st, 200, "{live}");
    assert_eq!((live["mode"].as_str(), live["voice_holder"].as_str()), (Some("takeover"), Some("supervisor")));
    // The model was told to stop answering turns, and nothing is asked of it from now on.
    assert!(rig.model.wait_until(Duration::from_secs(5), |s| s.first().and_then(answering) == Some(false)).await, "session.update with create_response false");
    let held = rig.model.sessions()[0].clone();

    // A second supervisor is refused, naming the holder; neither can hand back what they do not hold.
    let plain = reqwest::Client::new();
    let login: Value = plain.post(format!("{base}/api/login")).json(&serde_json::json!({"user":"jdoe","password":"s3cret pass"})).send().await.unwrap().json().await.unwrap();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("authorization", format!("Bearer {}", login["token"].as_str().unwrap()).parse().unwrap());
    let jdoe = reqwest::Client::builder().default_headers(h).build().unwrap();
    let (st, body) = post(jdoe.clone(), url("take")).await;
    assert_eq!(st, 409, "{body}");
    assert!(body["error"].as_str().unwrap().ends_with("held by supervisor"), "{body}");
    assert_eq!(post(jdoe.clone(), url("hand-back")).await.0, 409);
    let active: Value = client().get(format!("{base}/api/calls/active")).send().await.unwrap().json().await.unwrap();
    assert_eq!(active["calls"][0]["voice_holder"], "supervisor", "{active}");

    // The caller speaks on: the model hears the turn and answers nothing.
    let turns = held.turns.len();
    assert!(rig.model.wait_until(Duration::from_secs(20), |s| s[0].turns.len() > turns).await, "the caller's next turn reached the model");
    let muted = rig.model.sessions()[0].clone();
    assert_eq!(responses_asked(&muted), responses_asked(&held), "no response.create while taken over");
    assert_eq!(muted.agent_audio.len(), held.agent_audio.len(), "no agent audio while taken over");
    assert!(muted.input_audio.len() > held.input_audio.len(), "caller audio kept flowing");

    // Hand back: the agent answers again.
    let (st, live) = post(client(), url("hand-back")).await;
    assert_eq!(st, 200, "{live}");
    assert_eq!((live["mode"].as_str(), live["voice_holder"].as_str()), (Some("ai"), None));
    assert!(rig.model.wait_until(Duration::from_secs(10), |s| s[0].agent_audio.len() > muted.agent_audio.len()).await, "the agent speaks after the hand back");
    let back = rig.model.sessions()[0].clone();
    assert_eq!(answering(&back), Some(true));
    assert!(back.system_messages.iter().any(|m| m.contains("A supervisor (supervisor) spoke with the caller")), "{:?}", back.system_messages);

    let done = tokio::time::timeout(Duration::from_secs(60), call).await.unwrap().unwrap();
    let rec = wait_record_ended(&rig.server, &done.call_sid).await;
    assert_eq!(rec.takeovers.len(), 1);
    assert_eq!(rec.takeovers[0].by, "supervisor");
    assert!(rec.takeovers[0].ended_at_ms.is_some_and(|e| e >= rec.takeovers[0].started_at_ms));
    let a: Value = client().get(format!("{base}/api/audit?target={sid}")).send().await.unwrap().json().await.unwrap();
    let acts: Vec<(String, String, String)> = a["entries"].as_array().unwrap().iter().map(|e| (e["user"].as_str().unwrap().into(), e["action"].as_str().unwrap().into(), e["outcome"].as_str().unwrap().into())).collect();
    for want in [("supervisor", "voice.take", "ok"), ("jdoe", "voice.take", "refused"), ("supervisor", "voice.hand_back", "ok")] {
        assert!(acts.iter().any(|(u, act, o)| (u.as_str(), act.as_str(), o.as_str()) == want), "{want:?} in {acts:?}");
    }
    rig.server.shutdown().await;
}
