use super::*;

const SERVER_EVENTS: &str = include_str!("../../tests/golden/realtime_server_events.jsonl");
const SESSION_UPDATE: &str = include_str!("../../tests/golden/session_update.json");

/// Beta names that must never appear in what we send (PROTOCOLS.md §1).
const BETA_NAMES: &[&str] = &["response.audio.delta", "g711_ulaw", "\"temperature\"", "\"modalities\"", "input_audio_format", "output_audio_format"];

#[test]
fn every_golden_server_event_parses_to_a_known_variant() {
    let mut n = 0;
    for line in SERVER_EVENTS.lines().filter(|l| !l.trim().is_empty()) {
        let ev = ServerEvent::parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(!matches!(ev, ServerEvent::Unknown { .. }), "{line}");
        let wire_type: Value = serde_json::from_str(line).unwrap();
        assert_eq!(ev.type_name(), wire_type["type"].as_str().unwrap());
        // Re-serialised, it parses back to the same value.
        assert_eq!(ServerEvent::parse(&ev.to_json()).unwrap(), ev);
        n += 1;
    }
    assert_eq!(n, 26);
}

#[test]
fn golden_fields_are_read() {
    let lines: Vec<ServerEvent> = SERVER_EVENTS.lines().map(|l| ServerEvent::parse(l).unwrap()).collect();
    assert!(lines.iter().any(|e| matches!(e, ServerEvent::SpeechStarted { audio_start_ms: 1000, item_id, .. } if item_id == "msg_003")));
    assert!(lines.iter().any(|e| matches!(e, ServerEvent::Error { error, .. } if error.code.as_deref() == Some("beta_api_shape_disabled"))));
    assert!(lines.iter().any(|e| matches!(e, ServerEvent::ResponseOutputItemDone { item, .. } if item.kind == "function_call" && item.name.as_deref() == Some("report_incident") && item.call_id.as_deref() == Some("call_Sdy0VxPbmTCIFkBG"))));
    assert!(lines.iter().any(|e| matches!(e, ServerEvent::ResponseDone { response, .. } if response.status == "cancelled")));
    assert!(lines.iter().any(|e| matches!(e, ServerEvent::InputTranscriptionCompleted { transcript, .. } if transcript == "Hey, can you hear me?")));
}

#[test]
fn unknown_server_event_is_kept_raw() {
    let raw = r#"{"type":"input_audio_buffer.dtmf_event_received","event_id":"e1","digit":"5"}"#;
    match ServerEvent::parse(raw).unwrap() {
        ServerEvent::Unknown { kind, raw: kept } => {
            assert_eq!(kind, "input_audio_buffer.dtmf_event_received");
            assert_eq!(kept, raw);
        }
        other => panic!("{other:?}"),
    }
    assert!(ServerEvent::parse(r#"{"type":"session.closed"}"#).unwrap().type_name() == "session.closed");
}

#[test]
fn malformed_server_events_are_errors() {
    for bad in ["", "[]", "{", r#"{"type":"response.output_audio.delta"}"#, r#"{"type":7}"#, r#"{"no":"type"}"#] {
        assert!(ServerEvent::parse(bad).is_err(), "{bad}");
    }
}

fn golden_session() -> SessionConfig {
    SessionConfig {
        kind: "realtime".into(),
        model: Some("gpt-realtime".into()),
        output_modalities: Some(vec!["audio".into()]),
        instructions: Some("…".into()),
        audio: Some(AudioConfig {
            input: Some(AudioInput {
                format: Some(AudioFormat::pcmu()),
                noise_reduction: Some(Some(NoiseReduction { kind: NoiseReductionType::NearField })),
                transcription: Some(Transcription { model: "gpt-4o-transcribe".into(), language: Some("en".into()), prompt: None }),
                turn_detection: Some(TurnDetection::ServerVad {
                    threshold: 0.5,
                    prefix_padding_ms: 300,
                    silence_duration_ms: 500,
                    idle_timeout_ms: Some(None),
                    create_response: Some(true),
                    interrupt_response: Some(true),
                }),
            }),
            output: Some(AudioOutput { format: Some(AudioFormat::pcmu()), voice: Some("marin".into()), speed: Some(1.0) }),
        }),
        tools: Some(vec![Tool {
            kind: "function".into(),
            name: "report_incident".into(),
            description: "d".into(),
            parameters: serde_json::json!({"type":"object","properties":{}}),
        }]),
        tool_choice: Some("auto".into()),
        max_output_tokens: Some(MaxTokens::Inf("inf".into())),
        include: None,
        prompt: None,
    }
}

#[test]
fn session_update_matches_the_protocol_document_exactly() {
    let ev = ClientEvent::SessionUpdate { event_id: None, session: Box::new(golden_session()) };
    let ours: Value = serde_json::from_str(&ev.to_json()).unwrap();
    let golden: Value = serde_json::from_str(SESSION_UPDATE).unwrap();
    assert_eq!(ours, golden);
    assert_eq!(ClientEvent::parse(SESSION_UPDATE).unwrap(), ev);
}

#[test]
fn client_events_have_ga_shapes_and_no_beta_names() {
    let events = [ClientEvent::SessionUpdate { event_id: None, session: Box::new(golden_session()) },
        ClientEvent::InputAudioBufferAppend { event_id: None, audio: "//8=".into() },
        ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item: ItemCreate::system_text("Engine 7 dispatched.") },
        ClientEvent::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: ItemCreate::FunctionCallOutput { call_id: "call_1".into(), output: "{\"ok\":true}".into() },
        },
        ClientEvent::ConversationItemTruncate { event_id: None, item_id: "item_1".into(), content_index: 0, audio_end_ms: 1500 },
        ClientEvent::ResponseCreate { event_id: None, response: Some(ResponseCreateParams { instructions: Some("Tell the caller help is on the way.".into()), ..Default::default() }) },
        ClientEvent::ResponseCreate {
            event_id: None,
            response: Some(ResponseCreateParams {
                conversation: Some("none".into()),
                input: Some(vec![ItemCreate::user_text("Read this dispatch.")]),
                metadata: Some(serde_json::Map::from_iter([("purpose".to_string(), Value::from("dispatch_audio"))])),
                output_modalities: Some(vec!["audio".into()]),
                ..Default::default()
            }),
        },
        ClientEvent::ResponseCancel { event_id: None, response_id: None }];
    let expected = [
        None,
        Some(serde_json::json!({"type":"input_audio_buffer.append","audio":"//8="})),
        Some(serde_json::json!({"type":"conversation.item.create","item":{"type":"message","role":"system","content":[{"type":"input_text","text":"Engine 7 dispatched."}]}})),
        Some(serde_json::json!({"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_1","output":"{\"ok\":true}"}})),
        Some(serde_json::json!({"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":1500})),
        Some(serde_json::json!({"type":"response.create","response":{"instructions":"Tell the caller help is on the way."}})),
        Some(serde_json::json!({"type":"response.create","response":{"conversation":"none","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"Read this dispatch."}]}],"metadata":{"purpose":"dispatch_audio"},"output_modalities":["audio"]}})),
        Some(serde_json::json!({"type":"response.cancel"})),
    ];
    for (ev, want) in events.iter().zip(expected) {
        let text = ev.to_json();
        for beta in BETA_NAMES {
            assert!(!text.contains(beta), "{beta} in {text}");
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], ev.type_name());
        if let Some(want) = want {
            assert_eq!(v, want);
        }
        assert_eq!(&ClientEvent::parse(&text).unwrap(), ev);
    }
}

#[test]
fn audio_delta_is_read_in_place_and_agrees_with_the_full_parse() {
    let text = r#"{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_2","output_index":0,"content_index":0,"delta":"//8A/w=="}"#;
    let d = AudioDeltaRef::parse(text).unwrap();
    assert!(matches!(d.delta, std::borrow::Cow::Borrowed(_)));
    let ServerEvent::ResponseOutputAudioDelta { response_id, item_id, delta, .. } = ServerEvent::parse(text).unwrap() else { panic!() };
    assert_eq!((d.response_id.as_ref(), d.item_id.as_ref(), d.delta.as_ref()), (response_id.as_str(), item_id.as_str(), delta.as_str()));
    for other in [
        r#"{"type":"response.output_audio.done","response_id":"r","item_id":"i","output_index":0,"content_index":0}"#,
        r#"{"type":"response.output_audio.delta","response_id":"r","delta":"AA=="}"#,
        r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":42}"#,
        r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","output_index":"x","delta":"AA=="}"#,
        "not json",
    ] {
        assert!(AudioDeltaRef::parse(other).is_none(), "{other}");
        if other.contains("output_audio.delta") {
            assert!(ServerEvent::parse(other).is_err(), "the full parse refuses it too: {other}");
        }
    }
}

#[test]
fn fast_append_equals_typed_append() {
    let payload = crate::mulaw::encode_base64(&[0x7f; 160]);
    let fast: Value = serde_json::from_str(&input_audio_buffer_append_json(&payload)).unwrap();
    let mut written = bytes::BytesMut::from(&b"{}"[..]);
    write_input_audio_buffer_append(&mut written, &payload);
    assert_eq!(&written[2..], input_audio_buffer_append_json(&payload).as_bytes(), "appended after what was there");
    let ev = ClientEvent::InputAudioBufferAppend { event_id: None, audio: payload };
    let typed: Value = serde_json::to_value(&ev).unwrap();
    assert_eq!(fast, typed);
    // `to_json` takes the fast path and means the same.
    assert_eq!(serde_json::from_str::<Value>(&ev.to_json()).unwrap(), typed);
}

proptest::proptest! {
    #[test]
    fn server_parse_never_panics(s in ".{0,400}") {
        let _ = ServerEvent::parse(&s);
    }

    #[test]
    fn server_parse_never_panics_on_known_types(i in 0usize..25, body in "[{}\\[\\]\":,a-z0-9_ ]{0,80}") {
        let _ = ServerEvent::parse(&format!(r#"{{"type":"{}",{body}"#, KNOWN_SERVER[i]));
    }
}
