//! The Realtime model fake, tested on its own over a real loopback WebSocket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use watchfloor_sim::Scenario;
use watchfloor_sim::model::{ModelFake, ModelFakeOptions};
use watchfloor_wire::mulaw;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn scenario() -> Scenario {
    Scenario::load(&watchfloor_sim::scenario::default_dir(), "structure-fire").unwrap()
}

async fn fake(speed: f64) -> ModelFake {
    ModelFake::start("127.0.0.1:0".parse().unwrap(), vec![scenario()], ModelFakeOptions { speed, ..Default::default() }).await.unwrap()
}

async fn connect(fake: &ModelFake, extra: &[(&'static str, &str)]) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = fake.url().into_client_request().unwrap();
    for (k, v) in extra {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("event within 10 s") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn until(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

fn session_update(threshold: f64) -> Value {
    json!({"type":"session.update","session":{"type":"realtime","model":"gpt-realtime","output_modalities":["audio"],
        "instructions":"Caller ID (callback number on record): +15550100101.",
        "audio":{"input":{"format":{"type":"audio/pcmu"},"turn_detection":{"type":"server_vad","threshold":threshold,"prefix_padding_ms":300,"silence_duration_ms":500,"idle_timeout_ms":null,"create_response":true,"interrupt_response":true}},
                 "output":{"format":{"type":"audio/pcmu"},"voice":"marin"}}}})
}

async fn append(ws: &mut Ws, bytes: &[u8]) {
    for chunk in bytes.chunks(160) {
        send(ws, json!({"type":"input_audio_buffer.append","audio": mulaw::encode_base64(chunk)})).await;
    }
}

#[tokio::test]
async fn refuses_a_connect_without_a_bearer_token() {
    let fake = fake(10.0).await;
    let err = connect(&fake, &[]).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn the_beta_header_gets_the_real_error() {
    let fake = fake(10.0).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x"), ("openai-beta", "realtime=v1")]).await.unwrap();
    let ev = next(&mut ws).await;
    assert_eq!(ev["type"], "error");
    assert_eq!(ev["error"]["code"], "beta_api_shape_disabled");
}

#[tokio::test]
async fn beta_and_unknown_fields_and_types_are_rejected_with_the_real_shape() {
    let fake = fake(10.0).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "session.created");
    send(&mut ws, json!({"type":"session.update","session":{"type":"realtime","temperature":0.8}})).await;
    let e = until(&mut ws, "error").await;
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "unknown_parameter");
    assert_eq!(e["error"]["param"], "session.temperature");
    send(&mut ws, json!({"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcmu"},"turn_detection":{"type":"server_vad","bogus":1}}}}})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["param"], "session.audio.input.turn_detection.bogus");
    send(&mut ws, json!({"type":"response.audio.delta"})).await;
    let e = until(&mut ws, "error").await;
    assert_eq!(e["error"]["code"], "invalid_value");
    assert_eq!(e["error"]["param"], "type");
    send(&mut ws, json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_never_made","output":"{}"}})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["param"], "item.call_id");
    send(&mut ws, json!({"type":"response.cancel","event_id":"evt_1"})).await;
    let e = until(&mut ws, "error").await;
    assert_eq!(e["error"]["code"], "response_cancel_not_active");
    assert_eq!(e["error"]["event_id"], "evt_1");
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(until(&mut ws, "error").await["error"]["code"], "invalid_json");
}

#[tokio::test]
async fn vad_on_real_speech_drives_a_full_turn() {
    let sc = scenario();
    let fake = fake(20.0).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
    send(&mut ws, session_update(0.5)).await;
    until(&mut ws, "session.updated").await;
    // 500 ms of silence, the caller's first line, 1 s of silence.
    let mut audio = vec![mulaw::SILENCE; 4000];
    audio.extend_from_slice(&sc.turns[0].caller.audio);
    let speech_end_ms = audio.len() as u64 / 8;
    audio.extend(std::iter::repeat_n(mulaw::SILENCE, 8000));
    append(&mut ws, &audio).await;
    let started = until(&mut ws, "input_audio_buffer.speech_started").await;
    let start_ms = started["audio_start_ms"].as_u64().unwrap();
    assert!((200..=240).contains(&start_ms), "speech at 500 ms less 300 ms prefix padding, got {start_ms}");
    let stopped = until(&mut ws, "input_audio_buffer.speech_stopped").await;
    let end_ms = stopped["audio_end_ms"].as_u64().unwrap();
    // Frame resolution is 20 ms; the trailing syllable may be below the threshold.
    assert!(end_ms <= speech_end_ms + 20 && end_ms + 300 >= speech_end_ms, "speech ends near {speech_end_ms}, got {end_ms}");
    assert_eq!(until(&mut ws, "input_audio_buffer.committed").await["item_id"], started["item_id"]);
    let done = until(&mut ws, "conversation.item.input_audio_transcription.completed").await;
    assert_eq!(done["transcript"], sc.turns[0].caller.text);
    // The response speaks the scenario's first agent line (the greeting: no response.create came first).
    let created = until(&mut ws, "response.created").await;
    let resp_id = created["response"]["id"].as_str().unwrap().to_string();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    loop {
        let v = next(&mut ws).await;
        match v["type"].as_str().unwrap() {
            "response.output_audio.delta" => {
                assert_eq!(v["response_id"], resp_id.as_str());
                mulaw::decode_base64_into(v["delta"].as_str().unwrap(), &mut buf).unwrap();
                got.extend_from_slice(&buf);
            }
            "response.output_audio_transcript.done" => assert_eq!(v["transcript"], sc.greeting.text),
            "response.done" => {
                assert_eq!(v["response"]["status"], "completed");
                break;
            }
            _ => {}
        }
    }
    assert!(got == *sc.greeting.audio, "agent audio is the scenario's speech");
    let log = fake.sessions().pop().unwrap();
    assert_eq!(log.caller_number.as_deref(), Some("+15550100101"));
    assert_eq!(log.input_audio, audio);
}

#[tokio::test]
async fn a_high_threshold_ignores_quiet_speech_that_a_normal_one_hears() {
    let sc = scenario();
    // The caller's line 26 dB quieter.
    let quiet: Vec<u8> = sc.turns[0].caller.audio.iter().map(|&b| mulaw::encode((mulaw::decode(b) as f32 * 0.05) as i16)).collect();
    let mut audio = vec![mulaw::SILENCE; 1600];
    audio.extend_from_slice(&quiet);
    audio.extend(std::iter::repeat_n(mulaw::SILENCE, 8000));
    for (threshold, heard) in [(0.5, true), (0.9, false)] {
        let fake = fake(20.0).await;
        let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
        send(&mut ws, session_update(threshold)).await;
        until(&mut ws, "session.updated").await;
        append(&mut ws, &audio).await;
        // A marker event after the audio: the fake answers events in order.
        send(&mut ws, json!({"type":"response.cancel"})).await;
        let mut saw_speech = false;
        loop {
            let v = next(&mut ws).await;
            if v["type"] == "input_audio_buffer.speech_started" {
                saw_speech = true;
            }
            if v["type"] == "error" && v["error"]["code"] == "response_cancel_not_active" || v["type"] == "response.created" {
                break;
            }
        }
        assert_eq!(saw_speech, heard, "threshold {threshold}");
    }
}

#[tokio::test]
async fn cancel_and_truncate_follow_the_service_rules() {
    let fake = fake(1.0).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
    send(&mut ws, session_update(0.5)).await;
    until(&mut ws, "session.updated").await;
    send(&mut ws, json!({"type":"response.create"})).await;
    let created = until(&mut ws, "response.created").await;
    let first = until(&mut ws, "response.output_audio.delta").await;
    let item = first["item_id"].as_str().unwrap().to_string();
    // 100 ms of audio per delta: ask to truncate past what was sent.
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":item,"content_index":0,"audio_end_ms":5000})).await;
    let e = until(&mut ws, "error").await;
    assert_eq!(e["error"]["param"], "audio_end_ms");
    send(&mut ws, json!({"type":"response.cancel"})).await;
    let done = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["id"], created["response"]["id"]);
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(done["response"]["status_details"]["reason"], "client_cancelled");
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":item,"content_index":0,"audio_end_ms":50})).await;
    let t = until(&mut ws, "conversation.item.truncated").await;
    assert_eq!(t["audio_end_ms"], 50);
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":"item_nope","content_index":0,"audio_end_ms":0})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["code"], "item_not_found");
    let log = fake.sessions().pop().unwrap();
    assert_eq!(log.truncations, vec![(item, 50)]);
    assert_eq!(log.cancels, 1);
}
