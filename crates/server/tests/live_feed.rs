//! The live feed (`GET /api/live`) against the real server and simulated calls: sign-in,
//! snapshot then events, the same state on the console as on the server, listen-in audio, and
//! a console that stops reading (it is paused, then resynchronised; the calls are unaffected).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TOKEN, client, rig, scenario, wait_record_ended};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use watchfloor_bridge::live::{LiveCall, decode_audio_frame};
use watchfloor_bridge::{CallEvent, Track};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, ticket: Option<&str>, bearer: bool) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{}/api/live{}", base.replace("http://", "ws://"), ticket.map(|t| format!("?ticket={t}")).unwrap_or_default());
    let mut req = url.into_client_request().unwrap();
    if bearer {
        req.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

enum In {
    Text(Value),
    Audio(Vec<u8>),
}

async fn recv(ws: &mut Ws) -> In {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("a message within 20 s") {
            Some(Ok(Message::Text(t))) => return In::Text(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Binary(b))) => return In::Audio(b.to_vec()),
            Some(Ok(_)) => continue,
            other => panic!("feed ended: {other:?}"),
        }
    }
}

async fn recv_text(ws: &mut Ws) -> Value {
    loop {
        if let In::Text(v) = recv(ws).await {
            return v;
        }
    }
}

fn options(speed: f64) -> SimulateOptions {
    SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_by_ticket_or_token_and_nothing_else() {
    let rig = rig(vec![], 1.0, |_| {}).await;
    let base = rig.server.base_url();
    assert!(connect(&base, None, false).await.is_err(), "no credentials: refused");
    assert!(connect(&base, Some("not-a-ticket"), false).await.is_err());
    let t: Value = client().post(format!("{base}/api/live/ticket")).send().await.unwrap().json().await.unwrap();
    let ticket = t["ticket"].as_str().unwrap().to_string();
    assert_eq!(t["expires_in_s"], 30);
    let mut ws = connect(&base, Some(&ticket), false).await.expect("a fresh ticket signs in");
    let snap = recv_text(&mut ws).await;
    assert_eq!((snap["type"].as_str(), snap["reason"].as_str()), (Some("snapshot"), Some("connect")));
    assert_eq!(snap["calls"], json!([]));
    assert!(connect(&base, Some(&ticket), false).await.is_err(), "a ticket is used once");
    assert_eq!(reqwest::Client::new().post(format!("{base}/api/live/ticket")).send().await.unwrap().status(), 401);
    // A message the feed does not understand gets an error, and the feed goes on.
    ws.send(Message::text("{\"type\":\"dance\"}")).await.unwrap();
    assert_eq!(recv_text(&mut ws).await["type"], "error");
    ws.send(Message::text(json!({"type":"listen","call_sid":"CA_nope","tracks":["caller"]}).to_string())).await.unwrap();
    let e = recv_text(&mut ws).await;
    assert_eq!(e["message"], "call CA_nope is not live");
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_rebuild_the_servers_state_and_listen_in_streams_audio() {
    let sc = scenario("cardiac-arrest");
    let rig = rig(vec![sc.clone()], 2.0, |_| {}).await;
    let base = rig.server.base_url();
    let mut a = connect(&base, None, true).await.unwrap();
    assert_eq!(recv_text(&mut a).await["type"], "snapshot");
    let call = tokio::spawn({
        let (base, sc) = (base.clone(), sc.clone());
        async move { place_call(&base, &sc, &options(2.0)).await.unwrap() }
    });
    // Console A applies every event; keep its state after each one.
    let mut fold = watchfloor_bridge::CallFold::default();
    let mut state = LiveCall::default();
    let mut states: HashMap<u64, LiveCall> = HashMap::new();
    let mut listening = false;
    let mut audio: HashMap<Track, Vec<u64>> = HashMap::new();
    let mut b_snapshot: Option<LiveCall> = None;
    let mut b: Option<Ws> = None;
    let mut received = 0u64;
    let mut all_events: Vec<CallEvent> = Vec::new();
    let mut acted = false;
    loop {
        let msg = recv(&mut a).await;
        let v = match msg {
            In::Audio(bytes) => {
                let (sid, track, ms, payload) = decode_audio_frame(&bytes).expect("a well-formed frame");
                assert_eq!(sid, state.call_sid);
                assert!(!payload.is_empty());
                audio.entry(track).or_default().push(ms);
                continue;
            }
            In::Text(v) => v,
        };
        received += 1;
        a.send(Message::text(json!({"type":"ack","received":received}).to_string())).await.unwrap();
        match v["type"].as_str().unwrap() {
            "event" => {
                let ev: CallEvent = serde_json::from_value(v["event"].clone()).unwrap();
                fold.apply(&ev);
                state = fold.live();
                states.insert(ev.seq, state.clone());
                all_events.push(ev.clone());
                // A supervisor acts on the proposal: their events reach the feed too.
                if !acted && matches!(ev.kind, watchfloor_bridge::CallEventKind::DispatchProposed { .. }) {
                    acted = true;
                    let u = |p: &str| format!("{base}/api/calls/{}/{p}", ev.call_sid);
                    let (ack, whisper, confirm) = (u("alerts/1/ack"), u("whisper"), u("dispatch/confirm"));
                    tokio::spawn(async move {
                        assert_eq!(client().post(ack).send().await.unwrap().status(), 200);
                        assert_eq!(client().post(whisper).json(&json!({"text":"Ask about an AED."})).send().await.unwrap().status(), 200);
                        assert_eq!(client().post(confirm).send().await.unwrap().status(), 200);
                    });
                }
                if matches!(ev.kind, watchfloor_bridge::CallEventKind::CallEnded { .. }) {
                    break;
                }
            }
            "listening" => listening = true,
            "listen_stopped" => {}
            other => panic!("unexpected {other}: {v}"),
        }
        // Once the call is with the agent: listen in, and connect a second console.
        if !listening && state.status == watchfloor_bridge::CallStatus::WithAgent {
            a.send(Message::text(json!({"type":"listen","call_sid":state.call_sid,"tracks":["caller","agent"]}).to_string())).await.unwrap();
            listening = true;
            let mut ws = connect(&base, None, true).await.unwrap();
            let snap = recv_text(&mut ws).await;
            let calls: Vec<LiveCall> = serde_json::from_value(snap["calls"].clone()).unwrap();
            assert_eq!(calls.len(), 1);
            b_snapshot = Some(calls[0].clone());
            b = Some(ws);
        }
    }
    // The second console's snapshot is what the first built from events, at the same point.
    let snap = b_snapshot.expect("second console connected");
    let at = snap.last_seq.unwrap();
    assert_eq!(states.get(&at), Some(&snap), "snapshot and events agree at seq {at}");
    // The second console then follows with events after its snapshot only.
    let mut b = b.unwrap();
    let first = recv_text(&mut b).await;
    assert!(first["event"]["seq"].as_u64().unwrap() > at || first["type"] != "event", "{first}");
    assert!(state.alerts[0].acknowledged_by.is_some() && state.whispers == 1 && state.dispatch.phase == watchfloor_bridge::live::DispatchPhase::Dispatched, "{state:#?}");
    // The console's reducer (ui/src/lib/live.ts) is checked against these events and this state.
    if std::env::var_os("WATCHFLOOR_WRITE_TYPES").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/fixtures/live-call.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&json!({"events": all_events, "state": state})).unwrap()).unwrap();
    }
    // The end state matches the record.
    let call = call.await.unwrap();
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    assert_eq!(state.incident.as_ref().unwrap().incident_type.as_ref().unwrap().value, rec.incident_type.clone().unwrap());
    let finals: Vec<&str> = state.transcript.iter().filter(|l| l.is_final).map(|l| l.text.as_str()).collect();
    let stored: Vec<&str> = rec.transcript.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(finals, stored[stored.len() - finals.len()..].to_vec());
    // Listen-in delivered both tracks, each in stream order.
    for track in [Track::Caller, Track::Agent] {
        let ms = audio.get(&track).unwrap_or_else(|| panic!("no {track:?} audio"));
        assert!(ms.len() > 10, "{track:?}: {} frames", ms.len());
        assert!(ms.windows(2).all(|w| w[0] <= w[1]), "{track:?} frames in order");
    }
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_that_stops_reading_is_paused_then_resynced_and_calls_go_on() {
    let scs = vec![scenario("structure-fire"), scenario("cardiac-arrest"), scenario("talk-over")];
    let rig = rig(scs.clone(), 4.0, |c| c.live_max_unacked = 64).await;
    let base = rig.server.base_url();
    // A console that reads but never acknowledges.
    let mut slow = connect(&base, None, true).await.unwrap();
    assert_eq!(recv_text(&mut slow).await["reason"], "connect");
    let calls: Vec<_> = scs
        .iter()
        .map(|sc| {
            let (base, sc) = (base.clone(), sc.clone());
            tokio::spawn(async move { place_call(&base, &sc, &options(4.0)).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for c in calls {
        results.push(c.await.unwrap());
    }
    // It got the snapshot and at most MAX_UNACKED + 1 more text messages, then nothing.
    let mut texts = 1u64;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(500), slow.next()).await {
        if matches!(m, Message::Text(_)) {
            texts += 1;
        }
    }
    let limit = 64;
    assert!(texts <= limit + 2, "the feed paused: {texts} messages");
    // The three calls made more events than that, and were not slowed or cut.
    let mut total_events = 0;
    for r in &results {
        let rec = wait_record_ended(&rig.server, &r.call_sid).await;
        assert_eq!(rec.status, watchfloor_bridge::CallStatus::Completed, "{}", r.call_sid);
        assert_eq!(rec.end_reason.as_deref(), Some("stop"));
        total_events += rig.server.store.events(&r.call_sid).unwrap().len() as u64;
    }
    assert!(total_events > limit + 100, "the test must overrun the console: {total_events} events");
    // Catching up: a fresh snapshot.
    slow.send(Message::text(json!({"type":"ack","received":texts}).to_string())).await.unwrap();
    let resync = recv_text(&mut slow).await;
    assert_eq!((resync["type"].as_str(), resync["reason"].as_str()), (Some("snapshot"), Some("resync")), "{resync}");
    rig.server.shutdown().await;
}
