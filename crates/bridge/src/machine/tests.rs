use super::*;
use watchfloor_wire::realtime::{ErrorDetail, Response};
use watchfloor_wire::twilio::{InboundMedia, MarkName, StreamStart};

const SID: &str = "CA00000000000000000000000000000001";

fn machine(now: Instant) -> CallMachine {
    CallMachine::new(
        SID.into(),
        Arc::new(AgentProfile::default()),
        CallContext { caller_number: "+15550100101".into(), history: None },
        "+15550000911".into(),
        false,
        now,
        1_700_000_000_000,
    )
}

fn drain(m: &mut CallMachine) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn start(m: &mut CallMachine, now: Instant) -> Vec<Output> {
    m.handle_input(Input::ModelConnected, now);
    m.handle_input(
        Input::Twilio(TwilioInbound::Start {
            sequence_number: "1".into(),
            stream_sid: "MZ1".into(),
            start: StreamStart {
                stream_sid: "MZ1".into(),
                account_sid: "AC1".into(),
                call_sid: SID.into(),
                tracks: vec!["inbound".into()],
                custom_parameters: Default::default(),
                media_format: None,
            },
        }),
        now,
    );
    drain(m)
}

/// A test's string that lives as long as the test process (the hot-path inputs borrow theirs).
fn keep(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A caller frame as the call's task feeds it: read in place (`Input::CallerMedia`).
fn media(ts: u64, bytes: &[u8]) -> Input<'static> {
    Input::CallerMedia { timestamp: keep(ts.to_string()), payload: keep(mulaw::encode_base64(bytes)) }
}

/// The same frame parsed whole (`TwilioInbound::Media`), as a message that is not read in place.
fn media_parsed(ts: u64, bytes: &[u8]) -> Input<'static> {
    Input::Twilio(TwilioInbound::Media {
        sequence_number: "2".into(),
        stream_sid: "MZ1".into(),
        media: InboundMedia { track: "inbound".into(), chunk: "1".into(), timestamp: ts.to_string(), payload: mulaw::encode_base64(bytes) },
    })
}

fn model(ev: ServerEvent) -> Input<'static> {
    Input::Model(ev)
}

fn response_created(id: &str) -> Input<'static> {
    model(ServerEvent::ResponseCreated { event_id: String::new(), response: Response { id: id.into(), status: "in_progress".into(), ..Default::default() } })
}

fn response_done(id: &str, status: &str) -> Input<'static> {
    model(ServerEvent::ResponseDone { event_id: String::new(), response: Response { id: id.into(), status: status.into(), ..Default::default() } })
}

/// An agent audio delta as the call's task feeds it: read in place (`Input::AgentAudio`).
fn delta(resp: &str, item: &str, bytes: usize) -> Input<'static> {
    Input::AgentAudio { response_id: keep(resp.into()), item_id: keep(item.into()), delta: keep(mulaw::encode_base64(&vec![0x10; bytes])) }
}

/// The same delta parsed whole (`ServerEvent::ResponseOutputAudioDelta`).
fn delta_parsed(resp: &str, item: &str, bytes: usize) -> Input<'static> {
    model(ServerEvent::ResponseOutputAudioDelta {
        event_id: String::new(),
        response_id: resp.into(),
        item_id: item.into(),
        output_index: 0,
        content_index: 0,
        delta: mulaw::encode_base64(&vec![0x10; bytes]),
    })
}

fn mark(name: &str) -> Input<'static> {
    Input::Twilio(TwilioInbound::Mark { sequence_number: "9".into(), stream_sid: "MZ1".into(), mark: MarkName { name: name.into() } })
}

/// Caller frames of silence from 0 ms up to `ms` on the stream clock (Twilio's timestamps):
/// the caller's clock, which places the agent's audio as it plays, moves to `ms`.
fn caller_clock_to(m: &mut CallMachine, ms: u64, now: Instant) {
    for ts in (0..ms).step_by(20) {
        m.handle_input(media(ts, &[mulaw::SILENCE; 160]), now);
    }
}

fn speech_started() -> Input<'static> {
    model(ServerEvent::SpeechStarted { event_id: String::new(), audio_start_ms: 0, item_id: "item_user".into() })
}

/// What goes to the model, typed (the appends the machine writes as text, parsed).
fn to_model(out: &[Output]) -> Vec<ClientEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToModel(e) => Some(e.clone()),
            Output::AppendAudio { text, .. } => Some(ClientEvent::parse(std::str::from_utf8(text).unwrap()).unwrap()),
            _ => None,
        })
        .collect()
}

/// What goes to Twilio, typed (the `media` and `mark` the machine writes as text, parsed).
fn to_twilio(out: &[Output]) -> Vec<TwilioOutbound> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToTwilio(e) => Some(e.clone()),
            Output::ToTwilioText(text) => Some(TwilioOutbound::parse(std::str::from_utf8(text).unwrap()).unwrap()),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<&CallEventKind> {
    out.iter().filter_map(|o| if let Output::Event(e) = o { Some(&e.kind) } else { None }).collect()
}

fn sent_marks(out: &[Output]) -> Vec<String> {
    to_twilio(out).into_iter().filter_map(|t| if let TwilioOutbound::Mark { mark, .. } = t { Some(mark.name.clone()) } else { None }).collect()
}

#[test]
fn set_up_sends_session_update_then_greeting_and_times_stages() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    let first = drain(&mut m);
    assert!(matches!(events(&first)[0], CallEventKind::CallCreated { from, .. } if from == "+15550100101"));
    let out = start(&mut m, t0 + Duration::from_millis(250));
    let model_out = to_model(&out);
    assert!(matches!(model_out[0], ClientEvent::SessionUpdate { .. }));
    assert!(matches!(model_out[1], ClientEvent::ResponseCreate { .. }));
    assert!(events(&out).contains(&&CallEventKind::Stage { stage: Stage::ModelConnected, elapsed_ms: 250 }));
    assert!(events(&out).contains(&&CallEventKind::StatusChanged { status: CallStatus::WithAgent }));
    // Sequence numbers run without gaps from 0.
    let seqs: Vec<u64> = first.iter().chain(out.iter()).filter_map(|o| if let Output::Event(e) = o { Some(e.seq) } else { None }).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn caller_audio_passes_through_and_gaps_are_padded() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    let frame = [0x42u8; 160];
    m.handle_input(media(0, &frame), t0);
    let out = drain(&mut m);
    let appended = to_model(&out);
    assert_eq!(appended.len(), 1);
    match &appended[0] {
        ClientEvent::InputAudioBufferAppend { audio, .. } => assert_eq!(audio, &mulaw::encode_base64(&frame)),
        other => panic!("{other:?}"),
    }
    // Next frame 60 ms late: 40 ms of silence (320 bytes of 0xFF) comes first.
    m.handle_input(media(60, &frame), t0);
    let out = drain(&mut m);
    let appended = to_model(&out);
    assert_eq!(appended.len(), 2);
    let mut buf = Vec::new();
    match &appended[0] {
        ClientEvent::InputAudioBufferAppend { audio, .. } => {
            mulaw::decode_base64_into(audio, &mut buf).unwrap();
            assert_eq!(buf, vec![mulaw::SILENCE; 320]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.stats().padded_bytes, 320);
    assert_eq!(m.stats().caller_bytes, 160 + 320 + 160);
    // A repeated frame is skipped, not appended.
    m.handle_input(media(60, &frame), t0);
    let out = drain(&mut m);
    assert!(to_model(&out).is_empty());
    assert!(matches!(events(&out)[0], CallEventKind::InputSkipped { .. }));
}

#[test]
fn garbage_is_skipped_and_the_call_goes_on() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    drain(&mut m);
    // media before start
    m.handle_input(media(0, &[1; 160]), t0);
    assert!(matches!(events(&drain(&mut m))[0], CallEventKind::InputSkipped { reason, .. } if reason.contains("before start")));
    start(&mut m, t0);
    let bad = Input::Twilio(TwilioInbound::Media {
        sequence_number: "3".into(),
        stream_sid: "MZ1".into(),
        media: InboundMedia { track: "inbound".into(), chunk: "2".into(), timestamp: "20".into(), payload: "%%%not base64%%%".into() },
    });
    m.handle_input(bad, t0);
    m.handle_input(Input::TwilioGarbage("bad JSON".into()), t0);
    m.handle_input(Input::Twilio(TwilioInbound::Unknown { event: "surprise".into(), raw: "{}".into() }), t0);
    m.handle_input(Input::Model(ServerEvent::Unknown { kind: "session.closed_soon".into(), raw: "{}".into() }), t0);
    m.handle_input(Input::ModelGarbage("not json".into()), t0);
    let out = drain(&mut m);
    assert_eq!(events(&out).iter().filter(|e| matches!(e, CallEventKind::InputSkipped { .. })).count(), 4);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::ModelEventUnknown { event_type } if event_type == "session.closed_soon")));
    assert!(!m.is_ended());
    m.handle_input(media(0, &[1; 160]), t0);
    assert_eq!(to_model(&drain(&mut m)).len(), 1);
}

fn audio_done(resp: &str, item: &str) -> Input<'static> {
    model(ServerEvent::ResponseOutputAudioDone { event_id: String::new(), response_id: resp.into(), item_id: item.into(), output_index: 0, content_index: 0 })
}

fn media_payloads(out: &[Output]) -> Vec<Vec<u8>> {
    to_twilio(out).into_iter().filter_map(|t| if let TwilioOutbound::Media { media, .. } = t { { let mut v = Vec::new(); mulaw::decode_base64_into(&media.payload, &mut v).unwrap(); Some(v) } } else { None }).collect()
}

fn agent_frames(out: &[Output]) -> Vec<(Track, u64, usize)> {
    out.iter().filter_map(|o| if let Output::Audio(f) = o { (f.track != Track::Caller).then_some((f.track, f.stream_ms, f.audio.len())) } else { None }).collect()
}

#[test]
fn agent_audio_is_framed_with_named_marks() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(response_created("resp_1"), t0);
    m.handle_input(delta("resp_1", "item_a", 400), t0); // 50 ms → one media of 40 ms, 10 ms waits
    let out = drain(&mut m);
    assert_eq!(to_twilio(&out).len(), 2, "one media, one mark");
    assert_eq!(sent_marks(&out), vec!["item_a:320"]);
    assert_eq!(media_payloads(&out).iter().map(Vec::len).collect::<Vec<_>>(), [320]);
    assert!(events(&out).contains(&&CallEventKind::Talking { who: Talking::Agent }));
    // Deltas of any size: whole 20 ms frames across their boundaries.
    m.handle_input(delta("resp_1", "item_a", 250), t0); // 80 + 250 = 330 → 2 frames, 10 bytes wait
    let out = drain(&mut m);
    assert_eq!(sent_marks(&out), vec!["item_a:640"]);
    assert_eq!(media_payloads(&out).iter().map(Vec::len).collect::<Vec<_>>(), [320]);
    // The item's audio is done: its last part frame goes out filled with silence.
    m.handle_input(audio_done("resp_1", "item_a"), t0);
    let out = drain(&mut m);
    assert_eq!(sent_marks(&out), vec!["item_a:650"]);
    let last = &media_payloads(&out)[0];
    assert_eq!((&last[..10], last[10..].iter().all(|&b| b == mulaw::SILENCE), last.len()), (&[0x10u8; 10][..], true, 160));
    // All marks played: silence again; the agent's track as heard is on an exact 20 ms grid.
    m.handle_input(mark("item_a:320"), t0);
    m.handle_input(mark("item_a:650"), t0); // implies the mark between played too
    let out = drain(&mut m);
    assert!(events(&out).contains(&&CallEventKind::Talking { who: Talking::Silence }));
    let heard = agent_frames(&out);
    assert_eq!(heard.iter().map(|h| h.2).collect::<Vec<_>>(), [320, 320, 160]);
    assert!(heard.windows(2).all(|w| w[1].1 == w[0].1 + mulaw::bytes_to_ms(w[0].2)), "one after the other: {heard:?}");
    assert_eq!(m.stats().agent_bytes, 650);
}

#[test]
fn a_part_frame_is_sent_at_response_done_and_dropped_at_a_barge_in() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    // A response that ends without `output_audio.done` (incomplete) still plays what it sent.
    m.handle_input(response_created("resp_1"), t0);
    m.handle_input(delta("resp_1", "item_a", 170), t0);
    assert_eq!(sent_marks(&drain(&mut m)), vec!["item_a:160"]);
    m.handle_input(response_done("resp_1", "incomplete"), t0);
    assert_eq!(sent_marks(&drain(&mut m)), vec!["item_a:170"]);
    // The caller cuts in while a part frame waits: it is never sent, and neither is anything
    // more of that response.
    m.handle_input(response_created("resp_2"), t0);
    m.handle_input(delta("resp_2", "item_b", 330), t0);
    assert_eq!(sent_marks(&drain(&mut m)), vec!["item_b:320"]);
    m.handle_input(speech_started(), t0);
    let out = drain(&mut m);
    assert_eq!(to_twilio(&out), vec![TwilioOutbound::Clear { stream_sid: "MZ1".into() }]);
    m.handle_input(audio_done("resp_2", "item_b"), t0);
    m.handle_input(response_done("resp_2", "cancelled"), t0);
    assert!(to_twilio(&drain(&mut m)).is_empty());
}

#[test]
fn barge_in_clears_cancels_and_truncates_to_played_audio() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(response_created("resp_1"), t0);
    m.handle_input(delta("resp_1", "item_a", 1600), t0); // 200 ms = 10 frames, one media
    let out = drain(&mut m);
    let marks = sent_marks(&out);
    assert_eq!(marks, ["item_a:1600"]);
    // 60 ms later on the caller's clock, Twilio has played three frames.
    caller_clock_to(&mut m, 60, t0);
    drain(&mut m);
    m.handle_input(speech_started(), t0);
    let out = drain(&mut m);
    let tw = to_twilio(&out);
    assert_eq!(tw, vec![TwilioOutbound::Clear { stream_sid: "MZ1".into() }]);
    let md = to_model(&out);
    assert_eq!(md[0], ClientEvent::ResponseCancel { event_id: None, response_id: None });
    assert_eq!(md[1], ClientEvent::ConversationItemTruncate { event_id: None, item_id: "item_a".into(), content_index: 0, audio_end_ms: 60 });
    assert!(events(&out).contains(&&CallEventKind::BargeIn { item_id: "item_a".into(), audio_end_ms: 60, response_cancelled: true }));
    // Late deltas of the cancelled response are dropped; echoed marks are ignored silently.
    m.handle_input(delta("resp_1", "item_a", 800), t0);
    for name in &marks {
        m.handle_input(mark(name), t0);
    }
    let out = drain(&mut m);
    assert!(to_twilio(&out).is_empty(), "{out:?}");
    assert!(!events(&out).iter().any(|e| matches!(e, CallEventKind::InputSkipped { .. })), "{out:?}");
    assert_eq!(m.stats().dropped_deltas, 1);
    // The next response plays normally.
    m.handle_input(response_done("resp_1", "cancelled"), t0);
    m.handle_input(response_created("resp_2"), t0);
    m.handle_input(delta("resp_2", "item_b", 160), t0);
    assert_eq!(sent_marks(&drain(&mut m)), vec!["item_b:160"]);
}

#[test]
fn barge_in_after_the_response_finished_does_not_cancel() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(response_created("resp_1"), t0);
    m.handle_input(delta("resp_1", "item_a", 800), t0);
    m.handle_input(response_done("resp_1", "completed"), t0);
    drain(&mut m);
    m.handle_input(speech_started(), t0);
    let out = drain(&mut m);
    let md = to_model(&out);
    assert_eq!(md.len(), 1, "{md:?}");
    assert!(matches!(md[0], ClientEvent::ConversationItemTruncate { audio_end_ms: 0, .. }));
    assert_eq!(to_twilio(&out).len(), 1);
}

#[test]
fn speech_while_nothing_plays_is_not_a_barge_in() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(speech_started(), t0);
    let out = drain(&mut m);
    assert!(to_twilio(&out).is_empty());
    assert!(to_model(&out).is_empty());
    assert!(events(&out).contains(&&CallEventKind::Talking { who: Talking::Caller }));
}

#[test]
fn transcripts_history_and_questions() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(model(ServerEvent::ResponseOutputAudioTranscriptDelta { event_id: String::new(), response_id: "r".into(), item_id: "a1".into(), output_index: 0, content_index: 0, delta: "911, ".into() }), t0);
    m.handle_input(model(ServerEvent::ResponseOutputAudioTranscriptDone { event_id: String::new(), response_id: "r".into(), item_id: "a1".into(), output_index: 0, content_index: 0, transcript: "911, what is the address of your emergency?".into() }), t0);
    m.handle_input(model(ServerEvent::InputTranscriptionDelta { event_id: String::new(), item_id: "u1".into(), content_index: 0, delta: "123 Main".into() }), t0);
    m.handle_input(model(ServerEvent::InputTranscriptionCompleted { event_id: String::new(), item_id: "u1".into(), content_index: 0, transcript: "123 Main Street.".into() }), t0);
    let out = drain(&mut m);
    assert!(events(&out).contains(&&CallEventKind::AgentQuestions { count: 1 }));
    assert!(events(&out).contains(&&CallEventKind::TranscriptDelta { speaker: Speaker::Caller, item_id: "u1".into(), delta: "123 Main".into(), by: None }));
    assert_eq!(m.history_text(), "Dispatcher: 911, what is the address of your emergency?\nCaller: 123 Main Street.");
    assert_eq!(m.agent_questions(), 1);
}

#[test]
fn stop_ends_the_call_once() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(Input::Twilio(TwilioInbound::Stop { sequence_number: "9".into(), stream_sid: "MZ1".into(), stop: watchfloor_wire::twilio::StreamStop { account_sid: "AC1".into(), call_sid: SID.into() } }), t0);
    let out = drain(&mut m);
    assert!(events(&out).contains(&&CallEventKind::CallEnded { reason: "stop".into() }));
    assert_eq!(out.last(), Some(&Output::Close));
    m.handle_input(Input::TwilioClosed, t0);
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.status(), CallStatus::Completed);
}

#[test]
fn duplicate_start_and_foreign_call_are_skipped() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    let out = start(&mut m, t0);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::InputSkipped { reason, .. } if reason.contains("duplicate start"))));
}

proptest::proptest! {
    /// Whatever the deltas and however many marks were echoed, the truncate never claims more
    /// audio than was sent and equals what the echoed marks say was played.
    #[test]
    fn truncate_matches_played_marks(sizes in proptest::collection::vec(1usize..2000, 1..8), echoed in 0usize..40) {
        let t0 = Instant::now();
        let mut m = machine(t0);
        start(&mut m, t0);
        m.handle_input(response_created("resp"), t0);
        let mut marks = Vec::new();
        let mut sent = 0usize;
        for n in &sizes {
            m.handle_input(delta("resp", "item", *n), t0);
            marks.extend(sent_marks(&drain(&mut m)));
            sent += n;
        }
        let echoed = echoed.min(marks.len());
        let mut played_ms = 0u64;
        if echoed > 0 {
            m.handle_input(mark(&marks[echoed - 1]), t0);
            played_ms = marks[echoed - 1].rsplit(':').next().unwrap().parse::<u64>().unwrap() / 8;
        }
        drain(&mut m);
        m.handle_input(speech_started(), t0);
        let out = drain(&mut m);
        if echoed == marks.len() {
            // Everything played: nothing to interrupt.
            proptest::prop_assert!(to_twilio(&out).is_empty());
        } else {
            let truncate = to_model(&out).iter().find_map(|e| if let ClientEvent::ConversationItemTruncate { audio_end_ms, .. } = e { Some(*audio_end_ms) } else { None });
            proptest::prop_assert_eq!(truncate, Some(played_ms));
            proptest::prop_assert!(played_ms <= (sent / 8) as u64);
        }
    }

    /// With no echo back yet, the truncate is where the caller's clock says Twilio is: the whole
    /// frames played since the reply started, never more than was sent (one mark per delta
    /// knows the played position to the frame).
    #[test]
    fn truncate_follows_the_clock_between_marks(sizes in proptest::collection::vec(1usize..2000, 1..8), frames in 0u64..120) {
        let t0 = Instant::now();
        let mut m = machine(t0);
        start(&mut m, t0);
        m.handle_input(response_created("resp"), t0);
        let mut received = 0usize;
        for n in &sizes {
            m.handle_input(delta("resp", "item", *n), t0);
            received += n;
        }
        drain(&mut m);
        // The part frame at the end waits for more: only whole frames went out.
        let sent_ms = (received / 160 * 160 / 8) as u64;
        caller_clock_to(&mut m, frames * 20, t0);
        drain(&mut m);
        m.handle_input(speech_started(), t0);
        let out = drain(&mut m);
        let truncate = to_model(&out).iter().find_map(|e| if let ClientEvent::ConversationItemTruncate { audio_end_ms, .. } = e { Some(*audio_end_ms) } else { None });
        if sent_ms == 0 {
            proptest::prop_assert_eq!(truncate, None, "nothing sent, nothing to cut");
        } else {
            proptest::prop_assert_eq!(truncate, Some((frames * 20).min(sent_ms)));
        }
    }
}

#[test]
fn an_interrupted_agent_line_is_kept_from_its_deltas() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(response_created("resp_1"), t0);
    m.handle_input(delta("resp_1", "item_a", 800), t0);
    let words = |w: &str| model(ServerEvent::ResponseOutputAudioTranscriptDelta { event_id: String::new(), response_id: "resp_1".into(), item_id: "item_a".into(), output_index: 0, content_index: 0, delta: w.into() });
    m.handle_input(words("How many "), t0);
    m.handle_input(words("vehicles "), t0);
    m.handle_input(speech_started(), t0);
    m.handle_input(words("are involved?"), t0); // late delta of the cancelled response: dropped
    let item = watchfloor_wire::realtime::Item { id: Some("item_a".into()), kind: "message".into(), role: Some("assistant".into()), status: Some("incomplete".into()), ..Default::default() };
    m.handle_input(model(ServerEvent::ResponseOutputItemDone { event_id: String::new(), response_id: "resp_1".into(), output_index: 0, item }), t0);
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::TranscriptFinal { speaker: Speaker::Agent, item_id, text, interrupted: true, stream_ms: Some(_), .. } if item_id == "item_a" && text == "How many vehicles")));
    assert_eq!(m.history_text(), "Dispatcher: How many vehicles");
}

#[test]
fn a_function_call_is_answered_then_the_reply_is_requested() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(response_created("resp_f"), t0);
    let item = watchfloor_wire::realtime::Item {
        id: Some("item_f".into()),
        kind: "function_call".into(),
        name: Some("report_incident".into()),
        call_id: Some("call_1".into()),
        arguments: Some(r#"{"incident_type":"FSTRU"}"#.into()),
        ..Default::default()
    };
    m.handle_input(model(ServerEvent::ResponseOutputItemDone { event_id: String::new(), response_id: "resp_f".into(), output_index: 0, item }), t0);
    let out = drain(&mut m);
    assert!(matches!(&to_model(&out)[0], ClientEvent::ConversationItemCreate { item: ItemCreate::FunctionCallOutput { call_id, .. }, .. } if call_id == "call_1"));
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::FunctionCall { name, .. } if name == "report_incident")));
    // No response.create while the calling response is active …
    assert!(!to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })));
    // … only once it is done.
    m.handle_input(response_done("resp_f", "completed"), t0);
    let out = drain(&mut m);
    assert_eq!(to_model(&out), vec![ClientEvent::ResponseCreate { event_id: None, response: None }]);
}

fn media_speech(ts: u64) -> Input<'static> {
    // A loud frame (well above the stall speech level).
    media(ts, &[0x10u8; 160])
}

#[test]
fn a_model_silent_while_the_caller_speaks_is_a_stall() {
    let t0 = Instant::now();
    let mut m = machine(t0).with_timers(Timers { stall_timeout: Duration::from_secs(5), ..Timers::default() });
    start(&mut m, t0);
    for i in 0..150 {
        m.handle_input(media_speech(i * 20), t0 + Duration::from_millis(i * 20));
    }
    m.handle_input(Input::Timeout, t0 + Duration::from_secs(4));
    assert!(!drain(&mut m).iter().any(|o| matches!(o, Output::Fallback { .. })), "not yet");
    m.handle_input(Input::Timeout, t0 + Duration::from_secs(6));
    let out = drain(&mut m);
    assert!(out.iter().any(|o| matches!(o, Output::Fallback { reason } if reason == "model_stalled")));
    assert_eq!(m.status(), CallStatus::Fallback);
    // A silent caller is not a stall: a fresh call with silence only.
    let mut m = machine(t0).with_timers(Timers { stall_timeout: Duration::from_secs(5), ..Timers::default() });
    start(&mut m, t0);
    for i in 0..400 {
        m.handle_input(media(i * 20, &[mulaw::SILENCE; 160]), t0);
    }
    m.handle_input(Input::Timeout, t0 + Duration::from_secs(10));
    assert!(!drain(&mut m).iter().any(|o| matches!(o, Output::Fallback { .. })));
}

/// The session's error classes (`session.rs`) as the call sees them: the third server error is
/// a fallback.
#[test]
fn a_third_server_error_hands_the_caller_to_a_human() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    let server_error = || model(ServerEvent::Error { event_id: String::new(), error: watchfloor_wire::realtime::ErrorDetail { kind: "server_error".into(), code: None, message: "oops".into(), param: None, event_id: None } });
    m.handle_input(server_error(), t0);
    m.handle_input(server_error(), t0);
    assert!(!drain(&mut m).iter().any(|o| matches!(o, Output::Fallback { .. })), "two server errors are survivable");
    m.handle_input(server_error(), t0);
    assert!(drain(&mut m).iter().any(|o| matches!(o, Output::Fallback { .. })), "the third is not");
}

#[test]
fn a_dropped_model_reconnects_with_the_conversation_then_falls_back_when_it_cannot() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(model(ServerEvent::InputTranscriptionCompleted { event_id: String::new(), item_id: "u1".into(), content_index: 0, transcript: "Fire at 123 Main Street".into() }), t0);
    drain(&mut m);
    m.handle_input(Input::ModelClosed, t0);
    assert_eq!(drain(&mut m), vec![Output::Reconnect { renew: false }]);
    m.handle_input(Input::ModelReconnected { renewed: false }, t0);
    let out = drain(&mut m);
    let md = to_model(&out);
    assert!(matches!(md[0], ClientEvent::SessionUpdate { .. }));
    assert_eq!(md[1], ClientEvent::ConversationItemCreate { event_id: None, previous_item_id: None, item: ItemCreate::user_text("Fire at 123 Main Street") });
    assert!(matches!(md[2], ClientEvent::ResponseCreate { .. }), "the caller spoke last: ask for an answer");
    assert!(events(&out).contains(&&CallEventKind::ModelReconnected { renewed: false, items: 1 }));
    // Drops again, reconnect fails: to a human.
    m.handle_input(Input::ModelClosed, t0);
    drain(&mut m);
    m.handle_input(Input::ReconnectFailed("refused".into()), t0);
    assert!(drain(&mut m).iter().any(|o| matches!(o, Output::Fallback { reason } if reason == "model_reconnect_failed")));
    m.handle_input(Input::FallbackDone { via: watchfloor_call::FallbackRoute::Rest, attempts: 1, rest_error: None }, t0);
    let out = drain(&mut m);
    assert!(events(&out).contains(&&CallEventKind::CallEnded { reason: "model_reconnect_failed".into() }));
    assert_eq!(out.last(), Some(&Output::Close));
}

#[test]
fn the_session_is_renewed_at_a_quiet_moment() {
    let t0 = Instant::now();
    let mut m = machine(t0).with_timers(Timers { renew_after: Duration::from_secs(10), ..Timers::default() });
    start(&mut m, t0);
    m.handle_input(response_created("resp_1"), t0);
    m.handle_input(Input::Timeout, t0 + Duration::from_secs(11));
    assert!(drain(&mut m).is_empty(), "not while a response is in flight");
    m.handle_input(response_done("resp_1", "completed"), t0 + Duration::from_secs(11));
    m.handle_input(Input::Timeout, t0 + Duration::from_secs(12));
    assert!(drain(&mut m).contains(&Output::Reconnect { renew: true }));
    m.handle_input(Input::ModelReconnected { renewed: true }, t0 + Duration::from_secs(12));
    let out = drain(&mut m);
    assert!(!to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "a renewal asks for nothing");
}

fn caller_says(m: &mut CallMachine, item: &str, text: &str, now: Instant) {
    m.handle_input(model(ServerEvent::InputTranscriptionCompleted { event_id: String::new(), item_id: item.into(), content_index: 0, transcript: text.into() }), now);
}

#[test]
fn keywords_fill_the_incident_and_a_supervised_p1_goes_out_after_the_hold_window() {
    use watchfloor_dispatch::policy::{DispatchedBy, Policy};
    let t0 = Instant::now();
    let mut m = machine(t0).with_policy(Policy::Supervised { hold_ms: 20_000 });
    start(&mut m, t0);
    caller_says(&mut m, "u1", "My husband collapsed, he's not breathing! We're at 45 Elm Road, apartment 3.", t0);
    let out = drain(&mut m);
    let ev = events(&out);
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::Alert { alert: watchfloor_dispatch::alerts::AlertKind::Danger { word }, .. } if word == "not breathing")));
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::IncidentUpdated { incident } if incident.incident_type.as_ref().unwrap().value == "CARDIAC")));
    let proposed = ev.iter().find_map(|e| if let CallEventKind::DispatchProposed { auto_dispatch_at_ms, message, .. } = e { Some((*auto_dispatch_at_ms, message.clone())) } else { None });
    let (auto_at, message) = proposed.expect("location and type known: proposed");
    assert_eq!(message, "Respond priority one to a cardiac arrest, 45 Elm Road, apartment 3.");
    assert_eq!(auto_at, Some(1_700_000_000_000 + 20_000), "a P1 goes out 20 s after the proposal");
    // Nobody acts: at 19.9 s nothing, at 20 s it goes out, with an alert, and the agent is told.
    m.handle_input(Input::Timeout, t0 + Duration::from_millis(19_900));
    assert!(!events(&drain(&mut m)).iter().any(|e| matches!(e, CallEventKind::Dispatched { .. })));
    m.handle_input(Input::Timeout, t0 + Duration::from_millis(20_000));
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::Dispatched { by: DispatchedBy::HoldExpired, .. })));
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::Alert { alert: watchfloor_dispatch::alerts::AlertKind::AutoDispatched, .. })));
    let told = to_model(&out).into_iter().any(|e| matches!(e, ClientEvent::ConversationItemCreate { item: ItemCreate::Message { role, .. }, .. } if role == "system"));
    assert!(told, "the agent is told what was dispatched");
    assert!(to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "and tells the caller");
}

#[test]
fn the_model_report_wins_over_keywords_and_disagreement_alerts() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(response_created("resp_f"), t0);
    let item = watchfloor_wire::realtime::Item {
        id: Some("item_f".into()),
        kind: "function_call".into(),
        name: Some("report_incident".into()),
        call_id: Some("call_1".into()),
        arguments: Some(r#"{"incident_type":"FSTRU","location":"123 Main Street","priority":"P1"}"#.into()),
        ..Default::default()
    };
    m.handle_input(model(ServerEvent::ResponseOutputItemDone { event_id: String::new(), response_id: "resp_f".into(), output_index: 0, item }), t0);
    let out = drain(&mut m);
    let output = to_model(&out).iter().find_map(|e| if let ClientEvent::ConversationItemCreate { item: ItemCreate::FunctionCallOutput { output, .. }, .. } = e { Some(output.clone()) } else { None }).unwrap();
    assert!(output.contains("\"recorded\""), "{output}");
    assert_eq!(m.incident().incident_type.as_ref().unwrap().source, watchfloor_dispatch::incident::Source::Model);
    // The caller's words point at a shooting: the keywords disagree with the model.
    caller_says(&mut m, "u1", "Shots fired, someone is shooting!", t0);
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::Alert { alert: watchfloor_dispatch::alerts::AlertKind::ExtractionDisagreement { .. }, .. })));
    assert_eq!(m.incident().incident_type.as_ref().unwrap().value, "FSTRU", "keywords do not overwrite the model");
}

#[test]
fn a_silent_caller_and_a_repeating_agent_raise_alerts() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    for i in 0..10 {
        m.handle_input(media(i * 20, &[mulaw::SILENCE; 160]), t0);
    }
    m.handle_input(Input::Timeout, t0 + Duration::from_secs(16));
    assert!(events(&drain(&mut m)).iter().any(|e| matches!(e, CallEventKind::Alert { alert: watchfloor_dispatch::alerts::AlertKind::SilentCaller, .. })));
    let line = |m: &mut CallMachine, item: &str| m.handle_input(model(ServerEvent::ResponseOutputAudioTranscriptDone { event_id: String::new(), response_id: "r".into(), item_id: item.into(), output_index: 0, content_index: 0, transcript: "What is the address of your emergency?".into() }), t0);
    line(&mut m, "a1");
    line(&mut m, "a2");
    assert!(events(&drain(&mut m)).iter().any(|e| matches!(e, CallEventKind::Alert { alert: watchfloor_dispatch::alerts::AlertKind::AgentStuck, .. })));
}

#[test]
fn a_weak_cue_without_a_model_report_is_a_low_confidence_alert() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    caller_says(&mut m, "u1", "I need an ambulance.", t0);
    assert!(events(&drain(&mut m)).iter().any(|e| matches!(e, CallEventKind::Alert { alert: watchfloor_dispatch::alerts::AlertKind::LowConfidence, severity: watchfloor_dispatch::alerts::Severity::Info, .. })));
}

fn roster() -> crate::SharedRoster {
    use watchfloor_dispatch::types::UnitType;
    let units = [("Medic 3", UnitType::Medic), ("Engine 7", UnitType::Engine), ("Engine 9", UnitType::Engine), ("Patrol 12", UnitType::Patrol)];
    crate::SharedRoster::new(watchfloor_dispatch::units::Roster::new(units.iter().map(|(i, t)| (i.to_string(), *t)).collect()).unwrap())
}

/// [`drain`], answering the machine's roster requests from `r` as the call's task does.
fn drain_r(m: &mut CallMachine, r: &crate::SharedRoster) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(o) = m.poll_output() {
        if let Output::Roster(req) = &o {
            let answer = match req.clone() {
                RosterRequest::Reserve { units } => RosterAnswer::Reserved(r.reserve(SID, &units)),
                RosterRequest::Release { only } => RosterAnswer::Released(r.release(SID, only.as_deref())),
                RosterRequest::Move { unit, status } => RosterAnswer::Moved(r.move_unit(SID, &unit, status).map(|_| ())),
            };
            m.handle_input(Input::Roster(answer), Instant::now());
            m.handle_input(Input::RosterChanged(r.snapshot()), Instant::now());
        }
        out.push(o);
    }
    out
}

/// A cardiac arrest at 45 Elm Road, proposed (supervised, P1).
fn proposed_cardiac(m: &mut CallMachine, t0: Instant) -> Vec<Output> {
    start(m, t0);
    caller_says(m, "u1", "My husband collapsed, he's not breathing! We're at 45 Elm Road.", t0);
    drain(m)
}

fn dispatch_audio_request(out: &[Output]) -> Option<(String, ResponseCreateParams)> {
    to_model(out).into_iter().find_map(|e| match e {
        ClientEvent::ResponseCreate { event_id, response: Some(p) } if p.conversation.as_deref() == Some("none") => Some((event_id.clone().unwrap_or_default(), p.clone())),
        _ => None,
    })
}

#[test]
fn the_proposal_names_recommended_units_and_a_dispatch_assigns_them() {
    let t0 = Instant::now();
    let r = roster();
    let mut m = machine(t0).with_roster(r.snapshot());
    let out = proposed_cardiac(&mut m, t0);
    let (units, message) = events(&out).into_iter().find_map(|e| if let CallEventKind::DispatchProposed { units, message, .. } = e { Some((units.clone(), message.clone())) } else { None }).unwrap();
    assert_eq!(units, vec!["Medic 3", "Engine 7"]);
    assert_eq!(message, "Medic 3, Engine 7, respond priority one to a cardiac arrest, 45 Elm Road.");
    assert!(r.snapshot().assigned_to(SID).is_empty(), "a proposal assigns nothing");
    m.command(Command::ConfirmDispatch { by: "sup".into() }, t0).unwrap();
    let out = drain_r(&mut m, &r);
    let ev = events(&out);
    assert!(ev.contains(&&CallEventKind::UnitAttached { unit: "Medic 3".into(), by: "sup".into() }));
    assert!(ev.contains(&&CallEventKind::UnitAttached { unit: "Engine 7".into(), by: "sup".into() }));
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::Dispatched { units, .. } if units == &vec!["Medic 3".to_string(), "Engine 7".to_string()])));
    assert_eq!(r.snapshot().get("Medic 3").unwrap().status, watchfloor_dispatch::units::UnitStatus::Dispatched);
    // A recall releases them.
    m.command(Command::RecallDispatch { by: "sup".into() }, t0).unwrap();
    let ev = drain_r(&mut m, &r);
    assert_eq!(events(&ev).iter().filter(|e| matches!(e, CallEventKind::UnitStatusChanged { status: watchfloor_dispatch::units::UnitStatus::Available, .. })).count(), 2);
    assert!(r.snapshot().assigned_to(SID).is_empty());
}

#[test]
fn supervisor_units_replace_the_recommendation_and_are_checked() {
    let t0 = Instant::now();
    let r = roster();
    let mut m = machine(t0).with_roster(r.snapshot());
    proposed_cardiac(&mut m, t0);
    let edit = |units: &[&str]| Command::EditIncident { facts: Box::default(), units: Some(units.iter().map(|s| s.to_string()).collect()), by: "sup".into() };
    assert_eq!(m.command(edit(&["Truck 99"]), t0), Err(Refusal::Dispatch(ActionRefused::Roster(watchfloor_dispatch::units::RosterError::Unknown("Truck 99".into())))));
    assert_eq!(r.reserve("CA_OTHER", &["Engine 9".into()]), ["Engine 9"]);
    m.handle_input(Input::RosterChanged(r.snapshot()), t0);
    assert_eq!(m.command(edit(&["Engine 9"]), t0).map_err(|e| e.to_string()), Err("Engine 9 is dispatched on another call (CA_OTHER)".into()));
    m.command(edit(&["Medic 3", "Patrol 12", "Medic 3"]), t0).unwrap();
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::DispatchProposed { units, message, .. } if units == &vec!["Medic 3".to_string(), "Patrol 12".to_string()] && message.starts_with("Medic 3, Patrol 12, respond"))), "the proposal is revised");
    m.command(Command::DispatchNow { by: "sup".into() }, t0).unwrap();
    drain_r(&mut m, &r);
    assert_eq!(r.snapshot().assigned_to(SID), vec!["Medic 3", "Patrol 12"]);
    // After dispatch: add Engine 7, drop Patrol 12 (not arrived: released); Medic 3 on scene
    // cannot be dropped.
    m.command(Command::MoveUnit { unit: "Medic 3".into(), status: watchfloor_dispatch::units::UnitStatus::OnScene, by: "sup".into() }, t0).unwrap();
    assert!(events(&drain_r(&mut m, &r)).contains(&&CallEventKind::UnitOnScene { unit: "Medic 3".into(), by: "sup".into() }));
    assert_eq!(r.snapshot().get("Medic 3").unwrap().status, watchfloor_dispatch::units::UnitStatus::OnScene);
    assert_eq!(m.command(edit(&["Engine 7"]), t0), Err(Refusal::Dispatch(ActionRefused::UnitOnScene("Medic 3".into()))));
    m.command(edit(&["Medic 3", "Engine 7"]), t0).unwrap();
    let out = drain_r(&mut m, &r);
    let ev = events(&out);
    assert!(ev.contains(&&CallEventKind::UnitAttached { unit: "Engine 7".into(), by: "sup".into() }));
    assert!(ev.contains(&&CallEventKind::UnitStatusChanged { unit: "Patrol 12".into(), status: watchfloor_dispatch::units::UnitStatus::Available, by: "sup".into() }));
    let corrected = to_model(&out).into_iter().any(|e| matches!(e, ClientEvent::ConversationItemCreate { item: ItemCreate::Message { content, .. }, .. } if format!("{content:?}").contains("corrected the dispatch: Medic 3, Engine 7, respond")));
    assert!(corrected, "the agent is told the corrected dispatch");
    assert!(dispatch_audio_request(&out).is_some(), "the correction is voiced again");
}

#[test]
fn the_dispatch_message_is_voiced_out_of_band_and_never_reaches_the_caller() {
    let t0 = Instant::now();
    let r = roster();
    let mut m = machine(t0).with_roster(r.snapshot());
    proposed_cardiac(&mut m, t0);
    m.command(Command::ConfirmDispatch { by: "sup".into() }, t0).unwrap();
    let out = drain_r(&mut m, &r);
    let (event_id, p) = dispatch_audio_request(&out).expect("an out-of-band response.create");
    assert_eq!(p.metadata.as_ref().unwrap()["purpose"], "dispatch_audio");
    assert_eq!(p.metadata.as_ref().unwrap()["revision"], "1");
    assert_eq!(p.output_modalities, Some(vec!["audio".to_string()]));
    let Some(ItemCreate::Message { content, .. }) = p.input.as_ref().and_then(|i| i.first()) else { panic!("the message is the input") };
    assert!(format!("{content:?}").contains("Medic 3, Engine 7, respond priority one to a cardiac arrest"));
    // The service refuses once (a response is active): asked again after that response.
    m.handle_input(response_created("resp_talk"), t0);
    let refusal = ErrorDetail { kind: "invalid_request_error".into(), code: Some("conversation_already_has_active_response".into()), message: "busy".into(), param: None, event_id: Some(event_id) };
    m.handle_input(model(ServerEvent::Error { event_id: String::new(), error: refusal }), t0);
    let out = drain(&mut m);
    assert!(!events(&out).iter().any(|e| matches!(e, CallEventKind::ModelError { .. })), "not a model error");
    m.handle_input(response_done("resp_talk", "completed"), t0);
    let out = drain(&mut m);
    let (event_id, _) = dispatch_audio_request(&out).expect("asked again");
    assert_eq!(event_id, "dispatch_audio_1_2");
    // The out-of-band response: its audio and words go to the dispatch track only.
    let mut meta = serde_json::Map::new();
    meta.insert("purpose".into(), "dispatch_audio".into());
    meta.insert("revision".into(), "1".into());
    m.handle_input(model(ServerEvent::ResponseCreated { event_id: String::new(), response: Response { id: "resp_oob".into(), status: "in_progress".into(), metadata: Some(serde_json::Value::Object(meta)), ..Default::default() } }), t0);
    m.handle_input(delta("resp_oob", "item_oob", 1600), t0);
    m.handle_input(delta("resp_oob", "item_oob", 800), t0);
    m.handle_input(model(ServerEvent::ResponseOutputAudioTranscriptDone { event_id: String::new(), response_id: "resp_oob".into(), item_id: "item_oob".into(), output_index: 0, content_index: 0, transcript: "Medic 3, Engine 7, respond".into() }), t0);
    // Barge-in meanwhile does not cancel it (nothing of it is queued at Twilio).
    m.handle_input(speech_started(), t0);
    m.handle_input(response_done("resp_oob", "completed"), t0);
    let out = drain(&mut m);
    assert!(to_twilio(&out).is_empty(), "nothing to the caller: {out:?}");
    assert!(!to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCancel { .. })));
    assert!(!events(&out).iter().any(|e| matches!(e, CallEventKind::TranscriptFinal { .. } | CallEventKind::TranscriptDelta { .. })), "not a line of the conversation");
    let frame = out.iter().find_map(|o| if let Output::Audio(f) = o { Some(f.clone()) } else { None }).expect("recorded");
    assert_eq!((frame.track, frame.audio.len()), (Track::Dispatch, 2400));
    let ev = events(&out);
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::DispatchAudio { revision: 1, status, duration_ms: 300, message, .. } if *status == watchfloor_call::DispatchAudioStatus::Completed && message.starts_with("Medic 3"))));
    assert!(m.history().iter().all(|l| l.speaker == Speaker::Caller), "the conversation history has no dispatch line");
}

#[test]
fn final_lines_carry_where_their_audio_starts_in_the_recording() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(model(ServerEvent::SpeechStarted { event_id: String::new(), audio_start_ms: 740, item_id: "u1".into() }), t0);
    caller_says(&mut m, "u1", "Fire at 123 Main Street", t0);
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::TranscriptFinal { item_id, stream_ms: Some(740), .. } if item_id == "u1")));
    // Agent audio queued behind nothing plays from the stream's now (the last caller frame).
    for i in 0..10 {
        m.handle_input(media(i * 20, &[mulaw::SILENCE; 160]), t0);
    }
    m.handle_input(response_created("r1"), t0);
    m.handle_input(delta("r1", "a1", 160), t0);
    m.handle_input(model(ServerEvent::ResponseOutputAudioTranscriptDone { event_id: String::new(), response_id: "r1".into(), item_id: "a1".into(), output_index: 0, content_index: 0, transcript: "Is anyone inside?".into() }), t0);
    let out = drain(&mut m);
    let at = events(&out).iter().find_map(|e| if let CallEventKind::TranscriptFinal { item_id, stream_ms, .. } = e { (item_id == "a1").then_some(*stream_ms) } else { None }).unwrap();
    assert_eq!(at, Some(m.stream_now_ms()));
    assert!(at.unwrap() >= 180);
}

fn caller_positions(out: &[Output]) -> Vec<u64> {
    out.iter().filter_map(|o| if let Output::Audio(f) = o { (f.track == Track::Caller).then_some(f.stream_ms) } else { None }).collect()
}

fn padded_ms(out: &[Output]) -> u64 {
    let mut buf = Vec::new();
    to_model(out)
        .iter()
        .map(|e| match e {
            ClientEvent::InputAudioBufferAppend { audio, .. } => {
                mulaw::decode_base64_into(audio, &mut buf).unwrap();
                if buf.iter().all(|&b| b == mulaw::SILENCE) { buf.len() as u64 / 8 } else { 0 }
            }
            _ => 0,
        })
        .sum()
}

/// Issue 15: one frame with `timestamp` 36 000 000 made a ten-hour recording. A jump moves the
/// stream's clock by at most [`MAX_PADDED_GAP_MS`], and never ahead of the wall clock by more
/// than the clock limit, however many frames jump; the frames after a jump follow on.
#[test]
fn issue_15_a_huge_timestamp_moves_the_clock_only_so_far() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    let frame = [0x42u8; 160];
    m.handle_input(media(0, &frame), t0);
    drain(&mut m);
    let t1 = t0 + Duration::from_millis(20);
    m.handle_input(media(36_000_000, &frame), t1);
    let out = drain(&mut m);
    assert_eq!(padded_ms(&out), MAX_PADDED_GAP_MS);
    assert_eq!(caller_positions(&out), vec![20 + MAX_PADDED_GAP_MS]);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::InputSkipped { reason, .. } if reason.contains("jumps"))));
    // The next frame follows on, no padding.
    m.handle_input(media(36_000_020, &frame), t1);
    let out = drain(&mut m);
    assert_eq!((padded_ms(&out), caller_positions(&out)), (0, vec![40 + MAX_PADDED_GAP_MS]));
    // Frames that each jump 10 s, all at once: the clock stays within the burst of the wall.
    for i in 1..=50u64 {
        m.handle_input(media(36_000_040 + i * 10_000, &frame), t1);
    }
    let out = drain(&mut m);
    let limit = ClockLimit::default();
    let last = *caller_positions(&out).last().unwrap();
    assert_eq!(padded_ms(&out), 0, "no silence added: the clock is past the wall's burst already");
    // The burst, plus the 53 frames' own audio.
    assert!(last + 20 <= limit.burst_ms + (20.0 * limit.rate) as u64 + 20 * 53, "the clock ran to {last} ms 20 ms after the start");
    assert_eq!(m.stream_now_ms(), last + 20);
    // The sender's clock goes back to where it was before the jump: the frames follow on too
    // (a frame a little behind is still a repeat, skipped).
    let here = m.stream_now_ms();
    m.handle_input(media(60, &frame), t1);
    m.handle_input(media(80, &frame), t1);
    let out = drain(&mut m);
    assert_eq!((padded_ms(&out), caller_positions(&out)), (0, vec![here, here + 20]));
    m.handle_input(media(80, &frame), t1);
    assert!(caller_positions(&drain(&mut m)).is_empty());
}

#[test]
fn a_hand_off_is_an_output_and_ends_the_call_once_twilio_has_it() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    let cmd = |to: &str| Command::HandOff { action: HandOffAction::Transfer, to: Some(to.into()), by: "sup".into() };
    assert_eq!(m.command(cmd("+15550001111"), t0), Ok(()));
    let out = drain(&mut m);
    assert!(out.contains(&Output::HandOff { action: HandOffAction::Transfer, to: Some("+15550001111".into()) }));
    assert_eq!(m.command(cmd("+15550002222"), t0), Err(Refusal::HandOffUnderWay), "one hand-off at a time");
    // Twilio refused: the call stays with the agent, and a new hand-off may be tried.
    m.handle_input(Input::HandOffDone(Err("Twilio answered 404".into())), t0);
    assert!(!m.is_ended());
    assert!(events(&drain(&mut m)).is_empty(), "a failed hand-off changes nothing on the call");
    assert_eq!(m.command(cmd("+15550002222"), t0), Ok(()));
    drain(&mut m);
    m.handle_input(Input::HandOffDone(Ok(())), t0);
    let out = drain(&mut m);
    let ev = events(&out);
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::HandedOff { action: HandOffAction::Transfer, to: Some(to), by } if to == "+15550002222" && by == "sup")));
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::CallEnded { reason } if reason == "transfer")));
    assert_eq!(m.status(), CallStatus::Transferred);
    assert!(m.is_ended());
}

#[test]
fn a_stream_that_stops_during_a_hand_off_ends_as_the_hand_off() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.command(Command::HandOff { action: HandOffAction::Hangup, to: None, by: "sup".into() }, t0).unwrap();
    drain(&mut m);
    m.handle_input(stop(), t0);
    let out = drain(&mut m);
    let ev = events(&out);
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::HandedOff { action: HandOffAction::Hangup, .. })));
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::CallEnded { reason } if reason == "hangup")));
}

#[test]
fn the_machine_names_its_next_deadline() {
    let t0 = Instant::now();
    let mut m = machine(t0).with_timers(Timers { stall_timeout: Duration::from_secs(5), renew_after: Duration::from_secs(3000), session_limit: Duration::from_secs(3600) });
    assert_eq!(m.poll_timeout(), None, "nothing waits on time before the stream and the model");
    start(&mut m, t0);
    // The model has been heard at t0: the stall check is first (silent caller at 15 s).
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    // Checked at its deadline without effect (the caller said nothing): again 250 ms later.
    m.handle_input(Input::Timeout, t0 + Duration::from_secs(5));
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(5) + RECHECK_AFTER));
    // A model event moves the stall deadline on.
    m.handle_input(model(ServerEvent::SpeechStopped { event_id: String::new(), audio_end_ms: 0, item_id: "i".into() }), t0 + Duration::from_secs(6));
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(11)));
    // A P2 proposal under the supervised policy: the end of its 20 s hold window.
    caller_says(&mut m, "u1", "There is a car crash at 100 Main Street.", t0 + Duration::from_secs(6));
    drain(&mut m);
    m.handle_input(model(ServerEvent::SpeechStopped { event_id: String::new(), audio_end_ms: 0, item_id: "i".into() }), t0 + Duration::from_secs(30));
    let hold_end = m.poll_timeout().unwrap();
    assert!(hold_end <= t0 + Duration::from_secs(26), "the hold window ends before the next stall check: {:?}", hold_end - t0);
    m.end(t0 + Duration::from_secs(31), "stop", CallStatus::Completed);
    assert_eq!(m.poll_timeout(), None);
}

fn stop() -> Input<'static> {
    Input::Twilio(TwilioInbound::Stop { sequence_number: "9".into(), stream_sid: "MZ1".into(), stop: watchfloor_wire::twilio::StreamStop { account_sid: "AC1".into(), call_sid: SID.into() } })
}

#[test]
fn frames_read_in_place_and_parsed_whole_give_the_same_outputs() {
    let t0 = Instant::now();
    let run = |borrowed: bool| {
        let mut m = machine(t0);
        start(&mut m, t0);
        let caller = if borrowed { media(40, &[0x10; 160]) } else { media_parsed(40, &[0x10; 160]) };
        m.handle_input(caller, t0);
        m.handle_input(response_created("r1"), t0);
        let agent = if borrowed { delta("r1", "i1", 250) } else { delta_parsed("r1", "i1", 250) };
        m.handle_input(agent, t0);
        drain(&mut m)
    };
    assert_eq!(run(true), run(false));
}

fn turn_detection_answers(out: &[Output]) -> Option<bool> {
    to_model(out).into_iter().find_map(|e| match e {
        ClientEvent::SessionUpdate { session, .. } => match session.audio.as_ref()?.input.as_ref()?.turn_detection.as_ref()? {
            watchfloor_wire::realtime::TurnDetection::ServerVad { create_response, .. } => *create_response,
            _ => None,
        },
        _ => None,
    })
}

#[test]
fn a_takeover_cuts_the_agent_mutes_it_and_keeps_the_caller_flowing() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(response_created("r1"), t0);
    m.handle_input(delta("r1", "a1", 160 * 5), t0);
    caller_clock_to(&mut m, 40, t0);
    drain(&mut m);
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    let out = drain(&mut m);
    assert!(to_twilio(&out).iter().any(|t| matches!(t, TwilioOutbound::Clear { .. })), "Twilio's buffer is cleared");
    assert!(to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCancel { .. })), "the reply in flight is cancelled");
    assert!(to_model(&out).iter().any(|e| matches!(e, ClientEvent::ConversationItemTruncate { item_id, audio_end_ms: 40, .. } if item_id == "a1")), "cut where the caller heard it");
    assert_eq!(turn_detection_answers(&out), Some(false), "the model stops answering");
    assert!(events(&out).contains(&&CallEventKind::ModeChanged { mode: CallMode::Takeover, by: "ana".into() }));
    assert!(!events(&out).iter().any(|e| matches!(e, CallEventKind::BargeIn { .. })), "not the caller's barge-in");
    // Another supervisor is refused; the holder taking it again changes nothing.
    assert_eq!(m.command(Command::TakeVoice { by: "ben".into() }, t0), Err(Refusal::VoiceHeld("ana".into())));
    assert_eq!(m.command(Command::TakeVoice { by: "ana".into() }, t0), Ok(()));
    assert!(drain(&mut m).is_empty());
    // The caller's audio still reaches the model; a reply the model starts anyway is cancelled
    // and its audio never reaches the caller.
    m.handle_input(media(40, &[0x10; 160]), t0);
    assert!(to_model(&drain(&mut m)).iter().any(|e| matches!(e, ClientEvent::InputAudioBufferAppend { .. })));
    m.handle_input(response_created("r2"), t0);
    assert!(to_model(&drain(&mut m)).iter().any(|e| matches!(e, ClientEvent::ResponseCancel { response_id: Some(r), .. } if r == "r2")));
    m.handle_input(delta("r2", "a2", 160), t0);
    assert!(to_twilio(&drain(&mut m)).is_empty());
    // A dispatch while taken over tells the agent but does not make it speak.
    m.command(Command::DispatchNow { by: "ana".into() }, t0).unwrap();
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::Dispatched { .. })));
    assert!(!to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { response: Some(p), .. } if p.conversation.is_none())), "no in-conversation response while taken over");
}

#[test]
fn only_the_holder_hands_back_and_the_agent_answers_again() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    assert_eq!(m.command(Command::HandBack { by: "ana".into() }, t0), Err(Refusal::NotVoiceHolder));
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    drain(&mut m);
    assert_eq!(m.command(Command::HandBack { by: "ben".into() }, t0), Err(Refusal::NotVoiceHolder));
    m.command(Command::HandBack { by: "ana".into() }, t0).unwrap();
    let out = drain(&mut m);
    assert_eq!(turn_detection_answers(&out), Some(true));
    assert!(to_model(&out).iter().any(|e| matches!(e, ClientEvent::ConversationItemCreate { item: ItemCreate::Message { content, .. }, .. } if format!("{content:?}").contains("A supervisor (ana) spoke with the caller"))));
    assert!(to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "the agent answers again");
    assert!(events(&out).contains(&&CallEventKind::ModeChanged { mode: CallMode::Ai, by: "ana".into() }));
    // A reconnect while taken over keeps the agent silent.
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    drain(&mut m);
    m.handle_input(Input::ModelClosed, t0);
    drain(&mut m);
    m.handle_input(Input::ModelReconnected { renewed: false }, t0);
    assert_eq!(turn_detection_answers(&drain(&mut m)), Some(false));
}

#[test]
fn the_supervisors_voice_goes_to_the_caller_with_marks_and_is_not_cut_by_the_caller() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(Input::SupervisorAudio { audio: &[0x42; 160] }, t0);
    assert!(to_twilio(&drain(&mut m)).is_empty(), "no voice without the takeover");
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    let out = drain(&mut m);
    assert!(out.contains(&Output::ResetVoice), "frames buffered before the takeover are not played");
    m.handle_input(Input::SupervisorAudio { audio: &[0x42; 160] }, t0);
    m.handle_input(Input::SupervisorAudio { audio: &[0x43; 160] }, t0);
    let out = drain(&mut m);
    let payloads: Vec<Vec<u8>> = to_twilio(&out).iter().filter_map(|t| if let TwilioOutbound::Media { media, .. } = t { let mut b = Vec::new();
        mulaw::decode_base64_into(&media.payload, &mut b).unwrap();
        Some(b) } else { None }).collect();
    assert_eq!(payloads, vec![vec![0x42; 160], vec![0x43; 160]]);
    assert_eq!(sent_marks(&out), ["supervisor-1:160", "supervisor-1:320"]);
    assert!(events(&out).contains(&&CallEventKind::Talking { who: Talking::Supervisor }));
    // The caller talking over the supervisor clears nothing.
    m.handle_input(speech_started(), t0);
    let out = drain(&mut m);
    assert!(to_twilio(&out).is_empty());
    assert!(events(&out).contains(&&CallEventKind::Talking { who: Talking::Caller }));
    m.handle_input(mark("supervisor-1:320"), t0);
    let out = drain(&mut m);
    let heard = out.iter().filter(|o| matches!(o, Output::Audio(f) if f.track == Track::Agent)).count();
    assert_eq!(heard, 2, "both frames recorded as heard on the agent track");
}

#[test]
fn the_supervisor_is_talking_from_their_first_frame_until_their_frames_stop_not_between_frames() {
    let t0 = Instant::now();
    let s = |n: u64| t0 + Duration::from_millis(n);
    let mut m = machine(t0);
    start(&mut m, t0);
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    drain(&mut m);
    let mut talking = Vec::new();
    let mut own_track = Vec::new();
    for i in 0..10u64 {
        m.handle_input(Input::SupervisorAudio { audio: &[0x42; 160] }, s(i * 20));
        m.handle_input(mark(&format!("supervisor-1:{}", (i + 1) * 160)), s(i * 20 + 19));
        let out = drain(&mut m);
        own_track.extend(out.iter().filter_map(|o| if let Output::Audio(f) = o { (f.track == Track::Supervisor).then_some(f.stream_ms) } else { None }));
        talking.extend(events(&out).into_iter().filter_map(|e| if let CallEventKind::Talking { who } = e { Some(*who) } else { None }));
    }
    assert_eq!(talking, [Talking::Supervisor], "one change for the whole burst, none per frame");
    let first = own_track[0];
    assert_eq!(own_track, (0..10).map(|i| first + i * 20).collect::<Vec<_>>(), "the supervisor's own track: where each frame plays (end to end while queued)");
    assert_eq!(m.poll_timeout().map(|t| t <= s(180) + SUPERVISOR_PAUSE), Some(true));
    m.handle_input(Input::Timeout, s(180) + SUPERVISOR_PAUSE);
    assert!(events(&drain(&mut m)).contains(&&CallEventKind::Talking { who: Talking::Silence }), "silence once the frames stop");
}

#[test]
fn a_silent_voice_holder_is_lost_after_three_seconds_and_the_agent_takes_the_call_back() {
    let t0 = Instant::now();
    let s = |n: u64| t0 + Duration::from_millis(n);
    let mut m = machine(t0);
    start(&mut m, t0);
    m.command(Command::TakeVoice { by: "ana".into() }, s(1_000)).unwrap();
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(s(4_000)), "three seconds to show a sign of life");
    m.handle_input(Input::VoiceKeepalive, s(2_500));
    assert_eq!(m.poll_timeout(), Some(s(5_500)));
    m.handle_input(Input::VoiceLost { user: "ben".into() }, s(2_600));
    assert!(events(&drain(&mut m)).is_empty(), "another user's console closing changes nothing");
    m.handle_input(Input::Timeout, s(5_500));
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::Alert { alert: AlertKind::SupervisorLost { user }, severity: watchfloor_dispatch::alerts::Severity::Critical, .. } if user == "ana")));
    assert!(events(&out).contains(&&CallEventKind::ModeChanged { mode: CallMode::Ai, by: "ana".into() }));
    assert!(to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "the agent speaks again");
    // By setting, a lost console sends the call to the human line instead.
    let mut m = machine(t0).with_voice_loss(VoiceLossAction::HumanLine);
    start(&mut m, t0);
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    m.handle_input(Input::VoiceLost { user: "ana".into() }, s(100));
    assert!(drain(&mut m).iter().any(|o| matches!(o, Output::Fallback { reason } if reason == "supervisor_voice_lost")));
}

fn to_transcription(out: &[Output]) -> Vec<&ClientEvent> {
    out.iter().filter_map(|o| if let Output::ToTranscription(e) = o { Some(e) } else { None }).collect()
}

#[test]
fn the_supervisors_words_are_transcribed_on_the_record_told_to_the_agent_before_it_answers_again() {
    let t0 = Instant::now();
    let s = |n: u64| t0 + Duration::from_millis(n);
    let mut m = machine(t0);
    start(&mut m, t0);
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    assert!(drain(&mut m).contains(&Output::OpenTranscription), "a transcription session for the takeover");
    // Frames while the socket opens are held, then follow the transcription session.update.
    m.handle_input(Input::SupervisorAudio { audio: &[0x10; 160] }, s(20));
    assert!(to_transcription(&drain(&mut m)).is_empty());
    m.handle_input(Input::TranscriptionConnected, s(30));
    let out = drain(&mut m);
    let sent = to_transcription(&out);
    assert!(matches!(sent[0], ClientEvent::SessionUpdate { session, .. } if session.kind == "transcription" && session.instructions.is_none()));
    assert!(matches!(sent[1], ClientEvent::InputAudioBufferAppend { .. }));
    m.handle_input(Input::SupervisorAudio { audio: &[0x10; 160] }, s(40));
    assert_eq!(to_transcription(&drain(&mut m)).len(), 1, "live frames go straight in");
    // An utterance under way; its words arrive as deltas then the final line.
    m.handle_input(Input::Transcription(ServerEvent::SpeechStarted { event_id: String::new(), audio_start_ms: 0, item_id: "sup_1".into() }), s(60));
    m.handle_input(Input::Transcription(ServerEvent::InputTranscriptionDelta { event_id: String::new(), item_id: "sup_1".into(), content_index: 0, delta: "Stay on ".into() }), s(70));
    let out = drain(&mut m);
    assert!(events(&out).contains(&&CallEventKind::TranscriptDelta { speaker: Speaker::Supervisor, item_id: "sup_1".into(), delta: "Stay on ".into(), by: Some("ana".into()) }));
    // Handed back before the line is final: the agent waits for it.
    m.command(Command::HandBack { by: "ana".into() }, s(100)).unwrap();
    let out = drain(&mut m);
    assert!(events(&out).contains(&&CallEventKind::ModeChanged { mode: CallMode::Ai, by: "ana".into() }));
    assert!(matches!(to_transcription(&out)[..], [ClientEvent::InputAudioBufferAppend { .. }]), "the silence that ends the utterance");
    assert!(!to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "not before the supervisor's last words are in");
    assert_eq!(m.poll_timeout().map(|t| t <= s(100) + transcription::LINES_WAIT), Some(true));
    m.handle_input(Input::Transcription(ServerEvent::InputTranscriptionCompleted { event_id: String::new(), item_id: "sup_1".into(), content_index: 0, transcript: "Stay on the line with me.".into() }), s(900));
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::TranscriptFinal { speaker: Speaker::Supervisor, text, by: Some(by), stream_ms: Some(_), .. } if text == "Stay on the line with me." && by == "ana")));
    let model_sent = to_model(&out);
    let told = model_sent.iter().position(|e| matches!(e, ClientEvent::ConversationItemCreate { item: ItemCreate::Message { role, content }, .. } if role == "system" && format!("{content:?}").contains("Supervisor (ana) said to the caller: \\\"Stay on the line with me.\\\"")));
    let answers = model_sent.iter().position(|e| matches!(e, ClientEvent::ResponseCreate { .. }));
    assert!(told.is_some() && answers.is_some() && told < answers, "the line is in the conversation before the agent answers: {model_sent:?}");
    assert_eq!(turn_detection_answers(&out), Some(true));
    assert!(out.contains(&Output::CloseTranscription));
    assert!(m.history_text().ends_with("Supervisor: Stay on the line with me."));
}

#[test]
fn a_lost_transcription_session_is_on_the_record_and_does_not_hold_the_agent() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.command(Command::TakeVoice { by: "ana".into() }, t0).unwrap();
    drain(&mut m);
    m.handle_input(Input::TranscriptionLost("refused".into()), t0);
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::ModelError { error_type, .. } if error_type == "transcription")));
    m.handle_input(Input::SupervisorAudio { audio: &[0x10; 160] }, t0);
    assert!(!to_twilio(&drain(&mut m)).is_empty(), "the caller still hears the supervisor");
    m.command(Command::HandBack { by: "ana".into() }, t0).unwrap();
    assert!(to_model(&drain(&mut m)).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "the agent answers at once");
}

fn dtmf(digit: &str) -> Input<'static> {
    Input::Twilio(TwilioInbound::Dtmf { sequence_number: "5".into(), stream_sid: "MZ1".into(), dtmf: watchfloor_wire::twilio::Dtmf { track: "inbound_track".into(), digit: digit.into() } })
}

/// The texts of the system messages sent to the model.
fn system_texts(out: &[Output]) -> Vec<String> {
    to_model(out)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::ConversationItemCreate { item: ItemCreate::Message { role, content }, .. } if role == "system" => Some(format!("{content:?}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_key_the_caller_presses_is_on_the_timeline_and_reaches_the_agent() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(dtmf("5"), t0);
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::Dtmf { digit } if digit == "5")));
    assert!(system_texts(&out).iter().any(|t| t.contains("The caller pressed 5")), "{:?}", system_texts(&out));
    assert!(to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "the agent answers at once");

    // While the agent speaks, the key is told at once and answered after its reply.
    m.handle_input(response_created("resp_1"), t0);
    drain(&mut m);
    m.handle_input(dtmf("1"), t0);
    let out = drain(&mut m);
    assert!(system_texts(&out).iter().any(|t| t.contains("pressed 1")));
    assert!(!to_model(&out).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "no second response while one is in flight");
    m.handle_input(response_done("resp_1", "completed"), t0);
    assert!(to_model(&drain(&mut m)).iter().any(|e| matches!(e, ClientEvent::ResponseCreate { .. })), "answered after the reply");

    // Not a keypad key: skipped, nothing reaches the agent.
    m.handle_input(dtmf("Z"), t0);
    let out = drain(&mut m);
    assert!(events(&out).iter().any(|e| matches!(e, CallEventKind::InputSkipped { .. })));
    assert!(system_texts(&out).is_empty());
}

#[test]
fn the_models_idle_timeout_raises_a_caller_silent_alert() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    start(&mut m, t0);
    m.handle_input(model(ServerEvent::InputAudioBufferTimeoutTriggered { event_id: String::new(), audio_start_ms: 4_000, audio_end_ms: 12_000, item_id: "item_idle".into() }), t0);
    let out = drain(&mut m);
    let ev = events(&out);
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::CallerSilent { audio_start_ms: 4_000, audio_end_ms: 12_000 })), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, CallEventKind::Alert { alert, .. } if *alert == AlertKind::SilentCaller)), "{ev:?}");
}

#[test]
fn the_keypad_protocol_is_in_the_instructions() {
    let p = AgentProfile::default();
    let update = p.session_update(&CallContext { caller_number: "+15550100101".into(), history: None });
    let ClientEvent::SessionUpdate { session, .. } = update else { panic!("a session.update") };
    let instructions = session.instructions.unwrap();
    assert!(instructions.contains("press 1 for yes, 2 for no"), "{instructions}");
    let none = AgentProfile { keypad_protocol: String::new(), ..Default::default() };
    let ClientEvent::SessionUpdate { session, .. } = none.session_update(&CallContext::default()) else { panic!() };
    assert!(!session.instructions.unwrap().contains("press 1"));
}
