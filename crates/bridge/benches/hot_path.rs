//! Micro-benchmarks of the per-frame hot path (not tests): `cargo bench -p watchfloor-bridge`.
//!
//! Each benchmark is one unit of work the bridge does for every 20 ms of audio:
//! - `twilio_media_parse`: read one inbound Twilio `media` frame (160 μ-law bytes, base64) in
//!   place, as the call's task does;
//! - `append_build`: build the `input_audio_buffer.append` text (with the payload's copy the
//!   machine makes) from a parsed frame;
//! - `delta_to_twilio`: parse one `response.output_audio.delta` (20 ms) and build the Twilio
//!   `media` text;
//! - `machine_caller_frame`: text in → the call machine → every output serialised, for one caller
//!   frame (what the call's task does per inbound frame);
//! - `machine_agent_frame`: the same for one 20 ms agent delta and the echo of its mark;
//! - `mulaw_decode`: base64 → μ-law → 160 linear samples.
//!
//! Figures are in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use watchfloor_bridge::machine::{CallMachine, Input, Output};
use watchfloor_bridge::profile::{AgentProfile, CallContext};
use watchfloor_wire::mulaw;
use watchfloor_wire::realtime::{AudioDeltaRef, ServerEvent};
use watchfloor_wire::twilio::{MediaRef, StreamStart, TwilioInbound};

const SID: &str = "CA0123456789abcdef0123456789abcdef";
const STREAM: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

/// 160 bytes of speech-like μ-law (a 440 Hz tone at about -12 dBFS).
fn speech_frame() -> Vec<u8> {
    (0..mulaw::FRAME_BYTES).map(|i| mulaw::encode(((i as f64 / 8000.0 * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16)).collect()
}

fn media_text(ts_ms: u64, seq: u64) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{}","timestamp":"{ts_ms}","payload":"{}"}},"streamSid":"{STREAM}"}}"#,
        seq - 1,
        mulaw::encode_base64(&speech_frame())
    )
}

fn delta_text(n: u64) -> String {
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_{n:06}","response_id":"resp_000001","item_id":"item_000002","output_index":0,"content_index":0,"delta":"{}"}}"#,
        mulaw::encode_base64(&speech_frame())
    )
}

/// A call with its model connected and its stream started.
fn live_machine(now: Instant) -> CallMachine {
    let mut m = CallMachine::new(SID.into(), Arc::new(AgentProfile::default()), CallContext { caller_number: "+15550100101".into(), history: None }, "+15550000911".into(), false, now, 1_700_000_000_000);
    m.handle_input(Input::ModelConnected, now);
    m.handle_input(
        Input::Twilio(TwilioInbound::Start {
            sequence_number: "1".into(),
            stream_sid: STREAM.into(),
            start: StreamStart { stream_sid: STREAM.into(), account_sid: "AC1".into(), call_sid: SID.into(), tracks: vec!["inbound".into()], custom_parameters: Default::default(), media_format: None },
        }),
        now,
    );
    while m.poll_output().is_some() {}
    m
}

/// Drains the machine's outputs the way the call's task does: messages serialised to text.
fn drain(m: &mut CallMachine) -> usize {
    let mut bytes = 0;
    while let Some(out) = m.poll_output() {
        match &out {
            Output::ToTwilio(msg) => bytes += msg.to_json().len(),
            Output::ToModel(ev) => bytes += ev.to_json().len(),
            other => {
                black_box(other);
            }
        }
    }
    bytes
}

/// Times `iters` frames in batches of at most 10 000 on fresh machines (stream timestamps must
/// advance): `setup(n)` builds a live machine and the batch's inputs, untimed; `run` is timed.
fn batched<T>(iters: u64, setup: impl Fn(u64, Instant) -> (CallMachine, T), run: impl Fn(&mut CallMachine, &T, Instant)) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let n = (iters - done).min(10_000);
        let t0 = Instant::now();
        let (mut m, inputs) = setup(n, t0);
        let start = Instant::now();
        run(&mut m, &inputs, t0);
        total += start.elapsed();
        done += n;
    }
    total
}

fn benches(c: &mut Criterion) {
    let media = media_text(20, 3);
    c.bench_function("twilio_media_parse", |b| b.iter(|| MediaRef::parse(black_box(&media)).unwrap()));

    let parsed = MediaRef::parse(&media).unwrap();
    c.bench_function("append_build", |b| {
        b.iter(|| watchfloor_wire::realtime::ClientEvent::InputAudioBufferAppend { event_id: None, audio: black_box(&parsed.media.payload).to_string() }.to_json())
    });

    let delta = delta_text(7);
    c.bench_function("delta_to_twilio", |b| {
        b.iter(|| {
            let d = AudioDeltaRef::parse(black_box(&delta)).unwrap();
            watchfloor_wire::twilio::TwilioOutbound::Media { stream_sid: STREAM.into(), media: watchfloor_wire::twilio::OutboundMedia { payload: d.delta.into_owned() } }.to_json()
        })
    });

    c.bench_function("machine_caller_frame", |b| {
        b.iter_custom(|iters| {
            batched(
                iters,
                |n, t0| (live_machine(t0), (0..n).map(|i| media_text(i * 20, i + 2)).collect::<Vec<_>>()),
                |m, texts, t0| {
                    for (i, text) in texts.iter().enumerate() {
                        let now = t0 + Duration::from_millis(i as u64 * 20);
                        match MediaRef::parse(text) {
                            Some(media) => m.handle_input(Input::CallerMedia { timestamp: &media.media.timestamp, payload: &media.media.payload }, now),
                            None => m.handle_input(Input::TwilioGarbage("not media".into()), now),
                        }
                        black_box(drain(m));
                    }
                },
            )
        })
    });

    // Agent frames: a 20 ms delta, then Twilio's echo of the mark that follows it.
    c.bench_function("machine_agent_frame", |b| {
        b.iter_custom(|iters| {
            batched(
                iters,
                |n, t0| {
                    let mut m = live_machine(t0);
                    m.handle_input(Input::Model(ServerEvent::parse(r#"{"type":"response.created","event_id":"e1","response":{"id":"resp_000001","object":"realtime.response","status":"in_progress"}}"#).unwrap()), t0);
                    while m.poll_output().is_some() {}
                    let texts: Vec<String> = (0..n).map(delta_text).collect();
                    let marks: Vec<String> = (1..=n).map(|i| format!(r#"{{"event":"mark","sequenceNumber":"{}","streamSid":"{STREAM}","mark":{{"name":"item_000002:{}"}}}}"#, i + 2, i * 160)).collect();
                    (m, (texts, marks))
                },
                |m, (texts, marks), t0| {
                    for (i, (text, mark)) in texts.iter().zip(marks).enumerate() {
                        let now = t0 + Duration::from_millis(i as u64 * 20);
                        match AudioDeltaRef::parse(text) {
                            Some(d) => m.handle_input(Input::AgentAudio { response_id: &d.response_id, item_id: &d.item_id, delta: &d.delta }, now),
                            None => m.handle_input(Input::ModelGarbage("not a delta".into()), now),
                        }
                        black_box(drain(m));
                        match TwilioInbound::parse(mark) {
                            Ok(msg) => m.handle_input(Input::Twilio(msg), now),
                            Err(e) => m.handle_input(Input::TwilioGarbage(e.to_string()), now),
                        }
                        black_box(drain(m));
                    }
                },
            )
        })
    });

    let payload = mulaw::encode_base64(&speech_frame());
    let mut bytes = Vec::with_capacity(256);
    let mut pcm = vec![0i16; mulaw::FRAME_BYTES];
    c.bench_function("mulaw_decode", |b| {
        b.iter(|| {
            mulaw::decode_base64_into(black_box(&payload), &mut bytes).unwrap();
            for (s, &code) in pcm.iter_mut().zip(&bytes) {
                *s = mulaw::decode(code);
            }
            black_box(&pcm);
        })
    });
}

criterion_group! {
    name = hot_path;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(hot_path);
