//! Issue 17, first step: a supervisor takes a live call's voice from the agent and hands it back.
//! While taken over the model answers nothing but still hears (and transcribes) the caller; one
//! supervisor holds the voice at a time; the takeover is on the record and audited.

mod common;

use std::time::Duration;

use common::{TOKEN, client, rig, rig_with, scenario, wait_record_ended};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use watchfloor_bridge::live::encode_voice_frame;
use serde_json::Value;
use watchfloor_bridge::CallEventKind;
use watchfloor_server::auth::{UserConfig, hash_password};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{ModelFakeOptions, SessionLog};
use watchfloor_sim::simulate::{SimulateOptions, place_call};
use watchfloor_wire::realtime::TurnDetection;

fn answering(s: &SessionLog) -> Option<bool> {
    match s.session.as_ref()?.audio.as_ref()?.input.as_ref()?.turn_detection.as_ref()? {
        TurnDetection::ServerVad { create_response, .. } => *create_response,
        _ => None,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The live feed as the console token's user (`supervisor`).
async fn connect(base: &str) -> Ws {
    let mut req = format!("{}/api/live", base.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Reads the feed until a message of `kind` (events and snapshots pass by; an error fails).
async fn wait_for(ws: &mut Ws, kind: &str) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("the feed answers").expect("the feed is open").unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == kind {
                return;
            }
        }
    }
}

/// A console that sends a keepalive for the call every second (and reads what the feed sends).
/// Whether `heard` holds every frame of `frames` in order with nothing but silence between them.
/// On a loaded machine a frame can reach the server after the supervisor's jitter buffer ran
/// dry: the caller then hears a gap of silence before it (the buffer starts again), never
/// anything else, and no frame is lost.
fn heard_in_order(heard: &[u8], frames: &[Vec<u8>]) -> bool {
    let Some(first) = frames.first() else { return true };
    let Some(start) = heard.windows(first.len()).position(|w| w == first.as_slice()) else { return false };
    let mut at = start + first.len();
    for f in &frames[1..] {
        while at < heard.len() && !heard[at..].starts_with(f) && heard[at] == watchfloor_wire::mulaw::SILENCE {
            at += 1;
        }
        if !heard[at..].starts_with(f) {
            return false;
        }
        at += f.len();
    }
    true
}

/// The two calls of this file run one at a time: each paces a supervisor's voice in real time
/// against a jitter buffer, and on a 2-core machine two at once (each with its server, model
/// fake and caller fake) starved the feeds (see the session 11 note: a console feed reset under
/// load, not yet explained).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn keep_alive(base: &str, sid: &str) -> tokio::task::JoinHandle<()> {
    let mut ws = connect(base).await;
    let msg = serde_json::json!({"type":"voice_keepalive","call_sid":sid}).to_string();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => if let Err(e) = ws.send(Message::text(msg.clone())).await { eprintln!("KEEPER send {e:?}"); return },
                m = ws.next() => if !matches!(m, Some(Ok(_))) { eprintln!("KEEPER next {m:?}"); return },
            }
        }
    })
}

type Events = tokio::sync::broadcast::Receiver<std::sync::Arc<watchfloor_bridge::CallEvent>>;

/// Places the scenario's call and returns once the agent is greeting the caller: its CallSid, the
/// hub's events from before the call, and the caller fake's task.
async fn greeting_call(rig: &common::Rig, sc: &watchfloor_sim::Scenario) -> (String, Events, tokio::task::JoinHandle<watchfloor_sim::simulate::SimulatedCall>) {
    let mut events = rig.server.calls.hub().subscribe();
    let call = tokio::spawn({
        let (base, sc) = (rig.server.base_url(), sc.clone());
        async move { place_call(&base, &sc, &SimulateOptions { caller: CallerOptions { speed: 1.0, ..Default::default() }, ..Default::default() }).await.unwrap() }
    });
    let talking = common::next_event(&mut events, Duration::from_secs(20), |e| matches!(e.kind, CallEventKind::Talking { who: watchfloor_bridge::Talking::Agent })).await;
    (talking.call_sid.to_string(), events, call)
}

fn responses_asked(s: &SessionLog) -> usize {
    s.received.iter().filter(|t| *t == "response.create").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_takes_the_voice_the_agent_falls_silent_and_answers_again_after_the_hand_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let sc = scenario("cardiac-arrest");
    // What the supervisor says: a committed speech recording, and its words for the fake's
    // transcription session.
    const SAID: &str = "Is everyone out of the house?";
    let speech = watchfloor_sim::wav::read_mulaw(&watchfloor_sim::scenario::default_dir().join("audio/structure-fire/agent-01.wav")).unwrap();
    let frames: Vec<Vec<u8>> = speech.chunks_exact(160).map(<[u8]>::to_vec).collect();
    let rig = rig_with(vec![sc.clone()], ModelFakeOptions { speed: 1.0, transcripts: vec![SAID.into()], ..Default::default() }, |c| {
        c.users = vec![
            UserConfig { name: "supervisor".into(), password_hash: None, line: None, roles: vec![], disabled: false },
            UserConfig { name: "jdoe".into(), password_hash: Some(hash_password("s3cret pass")), line: None, roles: vec![], disabled: false },
        ];
    })
    .await;
    let base = rig.server.base_url();
    let (sid, _events, call) = greeting_call(&rig, &sc).await;
    let url = |p: &str| format!("{base}/api/calls/{sid}/voice/{p}");
    let post = |c: reqwest::Client, u: String| async move {
        let r = c.post(u).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
    };

    let (st, live) = post(client(), url("take")).await;
    assert_eq!(st, 200, "{live}");
    assert_eq!((live["mode"].as_str(), live["voice_holder"].as_str()), (Some("takeover"), Some("supervisor")));
    // The supervisor's console keeps the voice alive while they listen.
    let keeper = keep_alive(&base, &sid).await;
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

    // The supervisor speaks through the live feed, paced like a microphone.
    let mut ws = connect(&base).await;
    ws.send(Message::text(serde_json::json!({"type":"talk","call_sid":sid}).to_string())).await.unwrap();
    wait_for(&mut ws, "talking").await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (i, f) in frames.iter().enumerate() {
        tick.tick().await;
        ws.send(Message::binary(encode_voice_frame(&sid, 1_000_000 + i as u64 * 20, f))).await.unwrap();
    }
    ws.send(Message::text(r#"{"type":"stop_talking"}"#)).await.unwrap();
    wait_for(&mut ws, "talk_stopped").await;

    // Hand back at once, while the supervisor's words are still being transcribed: the agent
    // answers again only once they are in its conversation.
    let (st, live) = post(client(), url("hand-back")).await;
    assert_eq!(st, 200, "{live}");
    assert_eq!((live["mode"].as_str(), live["voice_holder"].as_str()), (Some("ai"), None));
    assert!(rig.model.wait_until(Duration::from_secs(10), |s| s[0].agent_audio.len() > muted.agent_audio.len()).await, "the agent speaks after the hand back");
    let back = rig.model.sessions()[0].clone();
    assert_eq!(answering(&back), Some(true));
    let told = back.system_messages.iter().position(|m| m == &format!("Supervisor (supervisor) said to the caller: \"{SAID}\""));
    let returned = back.system_messages.iter().position(|m| m.contains("A supervisor (supervisor) spoke with the caller"));
    assert!(told.is_some() && returned.is_some() && told < returned, "the supervisor's line, then the hand-back: {:?}", back.system_messages);
    // The transcription-only session heard the supervisor, answered nothing, and is closed.
    assert!(rig.model.wait_until(Duration::from_secs(5), |s| s.iter().any(|x| x.transcription && x.closed)).await, "the transcription session closes after the hand-back");
    let scribe = rig.model.sessions().into_iter().find(|x| x.transcription).unwrap();
    assert_eq!(scribe.session.as_ref().map(|c| c.kind.as_str()), Some("transcription"));
    assert_eq!(scribe.transcripts, [SAID]);
    assert!(scribe.errors.is_empty(), "{:?}", scribe.errors);
    assert!(scribe.input_audio.windows(speech.len() / 2).any(|w| w == &speech[..speech.len() / 2]), "it heard the supervisor's audio");

    keeper.abort();
    let done = tokio::time::timeout(Duration::from_secs(60), call).await.unwrap().unwrap();
    // The caller heard exactly the supervisor's frames, in order, with nothing but silence in
    // between (none when the machine keeps up).
    let said: Vec<u8> = frames.concat();
    let heard = &done.report.heard_audio;
    assert!(heard_in_order(heard, &frames), "the caller heard the supervisor's {} bytes in order", said.len());
    // The recording's agent track is what the caller heard: the supervisor's voice included.
    rig.server.calls.hub().barrier().await.unwrap();
    let agent: Vec<u8> = rig.server.store.audio(&sid).unwrap().into_iter().filter(|c| c.track == watchfloor_bridge::Track::Agent).flat_map(|c| c.audio).collect();
    assert!(heard_in_order(&agent, &frames), "the recording holds the supervisor's voice as heard");
    let rec = wait_record_ended(&rig.server, &done.call_sid).await;
    let line = rec.transcript.iter().find(|l| l.speaker == "supervisor").expect("the supervisor's line is on the record");
    assert_eq!((line.text.as_str(), line.by.as_deref()), (SAID, Some("supervisor")));
    // The WAV's channels are aligned: the supervisor's voice sits on the agent channel where
    // the caller heard it (within 40 ms), and on the supervisor's own track near the same moment.
    let heard_at = {
        let offset = heard.windows(frames[0].len()).position(|w| w == frames[0].as_slice()).unwrap();
        let mut start = 0;
        let mut at = None;
        for (ms, len) in &done.report.heard_runs {
            if (start..start + len).contains(&offset) {
                at = Some(ms + watchfloor_wire::mulaw::bytes_to_ms(offset - start));
            }
            start += len;
        }
        at.expect("a run holds the supervisor's first byte")
    };
    let wav = client().get(format!("{base}/api/calls/{sid}/recording.wav")).send().await.unwrap().bytes().await.unwrap();
    let channel = |wav: &[u8], channels: usize, c: usize| -> Vec<i16> { wav[44..].chunks_exact(2 * channels).map(|f| i16::from_le_bytes([f[2 * c], f[2 * c + 1]])).collect() };
    let pcm: Vec<i16> = said[..160].iter().map(|&b| watchfloor_wire::mulaw::decode(b)).collect();
    let find = |samples: &[i16]| samples.windows(pcm.len()).position(|w| w == pcm.as_slice()).map(|i| i as u64 / 8);
    let in_wav = find(&channel(&wav, 2, 1)).expect("the supervisor's voice in the WAV's agent channel");
    assert!(in_wav.abs_diff(heard_at) <= 40, "agent channel at {in_wav} ms, heard at {heard_at} ms");
    let own = client().get(format!("{base}/api/calls/{sid}/supervisor.wav")).send().await.unwrap();
    assert_eq!(own.status(), 200);
    let own = own.bytes().await.unwrap();
    let in_own = find(&channel(&own, 1, 0)).expect("the supervisor's own track");
    println!("supervisor voice: heard at {heard_at} ms, agent channel {in_wav} ms, own track {in_own} ms");
    assert!(in_own.abs_diff(in_wav) <= 40, "own track at {in_own} ms, agent channel at {in_wav} ms");
    // The exports show the supervisor as an agent of the call from the takeover.
    let text = client().get(format!("{base}/api/calls/{sid}/transcript?format=text")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(&format!("Supervisor (supervisor): {SAID}")), "{text}");
    let eido: Value = client().get(format!("{base}/api/calls/{sid}/eido")).send().await.unwrap().json().await.unwrap();
    let agent = eido["agentComponent"].as_array().unwrap().iter().find(|a| a["$id"].as_str().unwrap().starts_with("supervisor@")).expect("the supervisor is an agent");
    assert_eq!(agent["agentRoleRegistryText"], serde_json::json!(["Supervisor", "Call Taking"]));
    let notes: Vec<&str> = eido["notesComponent"].as_array().unwrap().iter().map(|n| n["notesActionComments"].as_str().unwrap()).collect();
    assert!(notes.iter().any(|n| n.contains(&format!("Supervisor (supervisor): {SAID}"))), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("Took over the call")), "{notes:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_console_gives_the_call_back_to_the_agent_with_an_alert() {
    let _one = ONE_AT_A_TIME.lock().await;
    let sc = scenario("cardiac-arrest");
    let rig = rig(vec![sc.clone()], 1.0, |_| {}).await;
    let base = rig.server.base_url();
    let (sid, mut events, call) = greeting_call(&rig, &sc).await;
    let r = client().post(format!("{base}/api/calls/{sid}/voice/take")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut ws = connect(&base).await;
    ws.send(Message::text(serde_json::json!({"type":"talk","call_sid":sid}).to_string())).await.unwrap();
    wait_for(&mut ws, "talking").await;
    let agent_audio = rig.model.sessions()[0].agent_audio.len();
    // The console dies (its feed closes without a word): the agent has the caller again at once.
    drop(ws);
    let lost = common::next_event(&mut events, Duration::from_secs(5), |e| matches!(&e.kind, CallEventKind::Alert { alert: watchfloor_dispatch::alerts::AlertKind::SupervisorLost { user }, .. } if user == "supervisor")).await;
    assert_eq!(*lost.call_sid, *sid);
    common::next_event(&mut events, Duration::from_secs(1), |e| matches!(&e.kind, CallEventKind::ModeChanged { mode: watchfloor_bridge::CallMode::Ai, .. })).await;
    assert!(rig.model.wait_until(Duration::from_secs(10), |s| s[0].agent_audio.len() > agent_audio).await, "the agent speaks again");
    // A holder whose console never says anything loses the voice after 3 s as well.
    let r = client().post(format!("{base}/api/calls/{sid}/voice/take")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    common::next_event(&mut events, Duration::from_secs(6), |e| matches!(&e.kind, CallEventKind::ModeChanged { mode: watchfloor_bridge::CallMode::Ai, .. })).await;
    // (The scripted caller's call is cut short by the shutdown: the fake's script was answered
    // out of turn by the two hand-backs.)
    rig.server.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), call).await;
}
