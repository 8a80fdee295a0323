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
async fn session_values_the_ga_api_constrains_are_checked() {
    let fake = fake(10.0).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "session.created");
    let td = |v: serde_json::Value| json!({"type":"session.update","session":{"type":"realtime","audio":{"input":{"turn_detection": v}}}});
    for (ev, code, param) in [
        (td(json!({"type":"semantic_vad","eagerness":"low","idle_timeout_ms":8000})), "unknown_parameter", "session.audio.input.turn_detection.idle_timeout_ms"),
        (td(json!({"type":"semantic_vad","eagerness":"sometimes"})), "invalid_value", "session.audio.input.turn_detection.eagerness"),
        (td(json!({"type":"server_vad","idle_timeout_ms":1000})), "invalid_value", "session.audio.input.turn_detection.idle_timeout_ms"),
        (td(json!({"type":"push_to_talk"})), "invalid_value", "session.audio.input.turn_detection.type"),
        (json!({"type":"session.update","session":{"type":"realtime","audio":{"input":{"noise_reduction":{"type":"studio"}}}}}), "invalid_value", "session.audio.input.noise_reduction.type"),
        (json!({"type":"session.update","session":{"type":"realtime","audio":{"output":{"speed":3.0}}}}), "invalid_value", "session.audio.output.speed"),
        (json!({"type":"session.update","session":{"type":"realtime","audio":{"input":{"transcription":{"model":"gpt-4o-transcribe","language":"Spanish"}}}}}), "invalid_value", "session.audio.input.transcription.language"),
        (json!({"type":"session.update","session":{"type":"realtime","audio":{"output":{"voice":"robot"}}}}), "invalid_value", "session.audio.output.voice"),
        (json!({"type":"session.update","session":{"type":"realtime","prompt":{"id":"prompt-1"}}}), "invalid_value", "session.prompt.id"),
    ] {
        send(&mut ws, ev).await;
        let e = until(&mut ws, "error").await;
        assert_eq!((e["error"]["code"].as_str(), e["error"]["param"].as_str()), (Some(code), Some(param)), "{e}");
    }
    // The GA shape with every new setting is taken.
    send(&mut ws, json!({"type":"session.update","session":{"type":"realtime","prompt":{"id":"pmpt_abc","version":"2","variables":{"city":"Springfield"}},
        "audio":{"input":{"noise_reduction":null,"turn_detection":{"type":"semantic_vad","eagerness":"high","create_response":true,"interrupt_response":true}},"output":{"voice":"cedar","speed":1.25}}}})).await;
    assert_eq!(until(&mut ws, "session.updated").await["type"], "session.updated");
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
    // The real pacing's deltas hold 40–300 ms of audio, and the reply may be cancelled after its
    // first: truncates ask for less than 40 ms (accepted) or far more (refused).
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":item,"content_index":0,"audio_end_ms":5000})).await;
    let e = until(&mut ws, "error").await;
    assert_eq!(e["error"]["param"], "audio_end_ms");
    send(&mut ws, json!({"type":"response.cancel"})).await;
    let done = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["id"], created["response"]["id"]);
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(done["response"]["status_details"]["reason"], "client_cancelled");
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":item,"content_index":0,"audio_end_ms":30})).await;
    let t = until(&mut ws, "conversation.item.truncated").await;
    assert_eq!(t["audio_end_ms"], 30);
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":"item_nope","content_index":0,"audio_end_ms":0})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["code"], "item_not_found");
    let log = fake.sessions().pop().unwrap();
    assert_eq!(log.truncations, vec![(item, 30)]);
    assert_eq!(log.cancels, 1);
}

#[tokio::test]
async fn out_of_band_responses_run_beside_the_conversation_and_add_nothing_to_it() {
    let fake = fake(8.0).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
    send(&mut ws, session_update(0.5)).await;
    until(&mut ws, "session.updated").await;
    // A conversation response is in flight …
    send(&mut ws, json!({"type":"response.create"})).await;
    let talk = until(&mut ws, "response.created").await;
    assert!(talk["response"]["conversation_id"].as_str().unwrap().starts_with("conv_"));
    // … and an out-of-band one runs beside it.
    let message = "Medic 3, respond priority one to a cardiac arrest, 45 Elm Road.";
    send(&mut ws, json!({"type":"response.create","event_id":"oob_1","response":{"conversation":"none","metadata":{"purpose":"dispatch_audio","revision":"1"},
        "output_modalities":["audio"],"instructions":"Read it.","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":message}]}]}})).await;
    let mut oob_id = None;
    let mut oob_audio = 0usize;
    let mut oob_words = String::new();
    let mut added_to_conversation = Vec::new();
    let mut oob_item = String::new();
    let mut done = 0;
    while done < 2 {
        let v = next(&mut ws).await;
        match v["type"].as_str().unwrap() {
            "response.created" => {
                assert!(v["response"]["conversation_id"].is_null(), "out of band: no conversation");
                assert_eq!(v["response"]["metadata"]["purpose"], "dispatch_audio");
                oob_id = Some(v["response"]["id"].as_str().unwrap().to_string());
            }
            "response.output_audio.delta" if Some(v["response_id"].as_str().unwrap()) == oob_id.as_deref() => {
                oob_audio += mulaw::decode_base64_into(v["delta"].as_str().unwrap(), &mut Vec::new()).unwrap();
            }
            "response.output_item.added" if Some(v["response_id"].as_str().unwrap()) == oob_id.as_deref() => oob_item = v["item"]["id"].as_str().unwrap().to_string(),
            "response.output_audio_transcript.done" if Some(v["response_id"].as_str().unwrap()) == oob_id.as_deref() => oob_words = v["transcript"].as_str().unwrap().to_string(),
            "conversation.item.added" => added_to_conversation.push(v["item"]["id"].as_str().unwrap_or_default().to_string()),
            "response.done" => {
                done += 1;
                if Some(v["response"]["id"].as_str().unwrap()) == oob_id.as_deref() {
                    assert_eq!(v["response"]["status"], "completed");
                    assert_eq!(v["response"]["metadata"]["revision"], "1");
                    assert!(v["response"]["conversation_id"].is_null());
                }
            }
            "error" => panic!("unexpected error {v}"),
            _ => {}
        }
    }
    assert_eq!(oob_words, message, "voiced word for word");
    let log = fake.sessions().pop().unwrap();
    let oob = &log.out_of_band[0];
    assert!(oob.beside_active);
    assert_eq!(oob.audio.len(), oob_audio);
    assert_eq!(oob.audio, watchfloor_sim::model::voice(message));
    // ~150 words a minute: 11 words take 3–6 s.
    assert!((3000..6000).contains(&mulaw::bytes_to_ms(oob_audio)), "{} ms", mulaw::bytes_to_ms(oob_audio));
    assert_eq!(added_to_conversation.len(), 1, "only the conversation response's item was added: {added_to_conversation:?}");
    // Its item is not in the conversation: a truncate of it is refused.
    send(&mut ws, json!({"type":"conversation.item.truncate","item_id":oob_item,"content_index":0,"audio_end_ms":100})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["code"], "item_not_found");
    // Bad metadata gets the real error, naming the param.
    send(&mut ws, json!({"type":"response.create","response":{"conversation":"none","metadata":{"revision":1}}})).await;
    let e = until(&mut ws, "error").await;
    assert_eq!(e["error"]["param"], "response.metadata.revision");
    let many: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), Value::from("v"))).collect();
    send(&mut ws, json!({"type":"response.create","response":{"conversation":"none","metadata":many}})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["param"], "response.metadata");
    send(&mut ws, json!({"type":"response.create","response":{"conversation":"elsewhere"}})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["param"], "response.conversation");
}

#[tokio::test]
async fn an_out_of_band_response_is_cancelled_by_its_id_only() {
    let fake = fake(0.5).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
    send(&mut ws, session_update(0.5)).await;
    until(&mut ws, "session.updated").await;
    send(&mut ws, json!({"type":"response.create","response":{"conversation":"none","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"Engine 7 respond to a structure fire at 123 Main Street"}]}]}})).await;
    let created = until(&mut ws, "response.created").await;
    let id = created["response"]["id"].as_str().unwrap().to_string();
    until(&mut ws, "response.output_audio.delta").await;
    // A plain cancel is for the conversation's response: there is none.
    send(&mut ws, json!({"type":"response.cancel"})).await;
    assert_eq!(until(&mut ws, "error").await["error"]["code"], "response_cancel_not_active");
    send(&mut ws, json!({"type":"response.cancel","response_id":id})).await;
    let done = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["id"], id.as_str());
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(fake.sessions().pop().unwrap().out_of_band[0].status, "cancelled");
}

async fn connect_url(url: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer sk-x".parse().unwrap());
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

fn transcription_update() -> Value {
    json!({"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcmu"},"noise_reduction":{"type":"near_field"},"transcription":{"model":"gpt-4o-transcribe","language":"en"},"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":500}}},"include":["item.input_audio_transcription.logprobs"]}})
}

/// PROTOCOLS.md §5: `?intent=transcription` without a model makes a transcription session; it
/// takes only the transcription shape, transcribes each utterance the VAD finds, never answers.
#[tokio::test]
async fn a_transcription_session_transcribes_utterances_and_never_answers() {
    let opts = ModelFakeOptions { speed: 10.0, transcripts: vec!["Stay on the line, help is coming.".into()], ..Default::default() };
    let fake = ModelFake::start("127.0.0.1:0".parse().unwrap(), vec![scenario()], opts).await.unwrap();
    let url = format!("ws://{}/v1/realtime?intent=transcription", fake.addr());
    let err = connect_url(&format!("{url}&model=gpt-realtime")).await.unwrap_err();
    assert!(err.to_string().contains("400"), "a transcription URL with a model is refused: {err}");
    let mut ws = connect_url(&url).await.unwrap();
    let created = next(&mut ws).await;
    assert_eq!((created["type"].as_str(), created["session"]["type"].as_str()), (Some("session.created"), Some("transcription")));
    // A conversation session's update, and conversation fields, are refused.
    send(&mut ws, session_update(0.5)).await;
    assert_eq!(until(&mut ws, "error").await["error"]["param"], "session.type");
    let mut with_voice = transcription_update();
    with_voice["session"]["instructions"] = json!("be nice");
    send(&mut ws, with_voice).await;
    assert_eq!(until(&mut ws, "error").await["error"]["param"], "session.instructions");
    let mut answering = transcription_update();
    answering["session"]["audio"]["input"]["turn_detection"]["create_response"] = json!(true);
    send(&mut ws, answering).await;
    assert_eq!(until(&mut ws, "error").await["error"]["param"], "session.audio.input.turn_detection.create_response");
    send(&mut ws, transcription_update()).await;
    assert_eq!(until(&mut ws, "session.updated").await["session"]["type"], "transcription");
    // One utterance, then silence: a line, and no response.
    let speech = watchfloor_sim::model::voice("stay on the line help is coming");
    append(&mut ws, &speech).await;
    append(&mut ws, &vec![mulaw::SILENCE; 8_000]).await;
    assert_eq!(until(&mut ws, "input_audio_buffer.speech_started").await["type"], "input_audio_buffer.speech_started");
    let done = until(&mut ws, "conversation.item.input_audio_transcription.completed").await;
    assert_eq!(done["transcript"], "Stay on the line, help is coming.");
    send(&mut ws, json!({"type":"response.create"})).await;
    let e = next(&mut ws).await;
    assert_eq!((e["type"].as_str(), e["error"]["code"].as_str()), (Some("error"), Some("invalid_value")), "{e}");
    // A second utterance past the configured lines is described by its length.
    append(&mut ws, &speech).await;
    append(&mut ws, &vec![mulaw::SILENCE; 8_000]).await;
    let second = until(&mut ws, "conversation.item.input_audio_transcription.completed").await;
    assert!(second["transcript"].as_str().unwrap().starts_with("(speech, "), "{second}");
    drop(ws);
    let log = fake.sessions().pop().unwrap();
    assert!(log.transcription);
    assert_eq!(log.transcripts.len(), 2);
    assert!(log.errors.iter().any(|e| e.message.contains("not supported in a transcription session")), "{:?}", log.errors);
}

/// A conversation session refuses the transcription update (PROTOCOLS.md §5).
#[tokio::test]
async fn a_conversation_session_refuses_the_transcription_update() {
    let fake = fake(10.0).await;
    let mut ws = connect(&fake, &[("authorization", "Bearer sk-x")]).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "session.created");
    send(&mut ws, transcription_update()).await;
    let e = until(&mut ws, "error").await;
    assert_eq!((e["error"]["code"].as_str(), e["error"]["param"].as_str()), (Some("invalid_value"), Some("session.type")));
}
