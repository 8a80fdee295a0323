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
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use watchfloor_bridge::machine::{CallMachine, Input};
use watchfloor_wire::mulaw;
use watchfloor_wire::realtime::AudioDeltaRef;
use watchfloor_wire::twilio::{MediaRef, TwilioInbound};

mod common;
use common::{delta_text, drain, live_machine, mark_text, media_text, speaking_machine, speech_frame};

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
            watchfloor_wire::twilio::TwilioOutbound::Media { stream_sid: common::STREAM.into(), media: watchfloor_wire::twilio::OutboundMedia { payload: d.delta.into_owned() } }.to_json()
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
                    let texts: Vec<String> = (0..n).map(delta_text).collect();
                    let marks: Vec<String> = (1..=n).map(mark_text).collect();
                    (speaking_machine(t0), (texts, marks))
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
