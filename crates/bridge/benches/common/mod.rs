//! What the per-frame benchmarks share: a live call machine, its inbound frames as the wire
//! carries them, and draining its outputs as the call's task does.

#![allow(dead_code)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use watchfloor_bridge::machine::{CallMachine, Input, Output};
use watchfloor_bridge::profile::{AgentProfile, CallContext};
use watchfloor_wire::mulaw;
use watchfloor_wire::twilio::{StreamStart, TwilioInbound};

pub const SID: &str = "CA0123456789abcdef0123456789abcdef";
pub const STREAM: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

/// 160 bytes of speech-like μ-law (a 440 Hz tone at about -12 dBFS).
pub fn speech_frame() -> Vec<u8> {
    (0..mulaw::FRAME_BYTES).map(|i| mulaw::encode(((i as f64 / 8000.0 * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16)).collect()
}

pub fn media_text(ts_ms: u64, seq: u64) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{}","timestamp":"{ts_ms}","payload":"{}"}},"streamSid":"{STREAM}"}}"#,
        seq - 1,
        mulaw::encode_base64(&speech_frame())
    )
}

pub fn delta_text(n: u64) -> String {
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_{n:06}","response_id":"resp_000001","item_id":"item_000002","output_index":0,"content_index":0,"delta":"{}"}}"#,
        mulaw::encode_base64(&speech_frame())
    )
}

/// A call with its model connected and its stream started.
pub fn live_machine(now: Instant) -> CallMachine {
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
pub fn drain(m: &mut CallMachine) -> usize {
    let mut bytes = 0;
    while let Some(out) = m.poll_output() {
        match &out {
            Output::ToTwilio(msg) => bytes += msg.to_json().len(),
            Output::ToModel(ev) => bytes += ev.to_json().len(),
            // The hot path's texts, written by the machine: handed to the socket as they are.
            Output::ToTwilioText(text) | Output::AppendAudio { text, .. } => bytes += black_box(text).len(),
            other => {
                black_box(other);
            }
        }
    }
    bytes
}


/// Twilio's echo of the mark the bridge sends after agent frame `n` (1-based) of item
/// `item_000002`.
pub fn mark_text(n: u64) -> String {
    format!(r#"{{"event":"mark","sequenceNumber":"{}","streamSid":"{STREAM}","mark":{{"name":"item_000002:{}"}}}}"#, n + 2, n * 160)
}

/// A live machine with a response in flight (`resp_000001`), ready for its audio deltas.
pub fn speaking_machine(now: Instant) -> CallMachine {
    let mut m = live_machine(now);
    m.handle_input(Input::Model(watchfloor_wire::realtime::ServerEvent::parse(r#"{"type":"response.created","event_id":"e1","response":{"id":"resp_000001","object":"realtime.response","status":"in_progress"}}"#).expect("a response.created")), now);
    while m.poll_output().is_some() {}
    m
}
