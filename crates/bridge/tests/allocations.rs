//! Issue 22: a steady-state frame on the hot path allocates nothing. Counted with `dhat`'s heap
//! profiler in testing mode over 1 000 frames after 500 of warm-up, for what the call's task does
//! per frame, up to the bytes handed to the socket:
//! - caller frame: one Twilio `media` text read in place → the machine → the
//!   `input_audio_buffer.append` text written into a tungstenite WebSocket (client role, as the
//!   model socket: masked) and flushed; the recording's copy handed over and let go (as the
//!   store writer does);
//! - agent frame: one 20 ms `response.output_audio.delta` read in place → the machine → the
//!   Twilio `media` and `mark` texts written into a tungstenite WebSocket (server role, as the
//!   Twilio socket) and flushed; Twilio's echo of the mark ten frames back read → the machine →
//!   the played frame handed to the recording and let go.
//!
//! Inputs are made beforehand (the socket's reader delivers them; reading shares the bytes it
//! read, `TwilioFrame::Text`). `cargo bench --bench allocs` prints the same counts.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes, WebSocket};
use watchfloor_bridge::machine::{CallMachine, Input, Output};
use watchfloor_wire::realtime::AudioDeltaRef;
use watchfloor_wire::twilio::{MarkRef, MediaRef};

#[path = "../benches/common/mod.rs"]
mod common;
use common::{delta_text, live_machine, mark_text, media_text, speaking_machine};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const WARM_UP: u64 = 500;
const FRAMES: u64 = 1_000;
/// Agent frames queued at Twilio ahead of the one playing (the model streams faster than real time).
const QUEUED: u64 = 10;

/// A socket that takes every write and has nothing to read.
struct Discard;

impl Read for Discard {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::hint::black_box(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Carries out the machine's outputs as the call's task does: texts into their socket, then one
/// flush each; everything else let go.
fn carry_out(m: &mut CallMachine, twilio: &mut WebSocket<Discard>, model: &mut WebSocket<Discard>) {
    while let Some(out) = m.poll_output() {
        match out {
            Output::ToTwilioText(text) => twilio
                .write(Message::Text(Utf8Bytes::try_from(text).expect("UTF-8")))
                .expect("written"),
            Output::AppendAudio { text, .. } => model
                .write(Message::Text(Utf8Bytes::try_from(text).expect("UTF-8")))
                .expect("written"),
            Output::ToTwilio(msg) => panic!("a typed Twilio message on the hot path: {msg:?}"),
            Output::ToModel(ev) => panic!("a typed model event on the hot path: {ev:?}"),
            other => drop(other),
        }
    }
    twilio.flush().expect("flushed");
    model.flush().expect("flushed");
}

/// Blocks allocated by `frame(i)` over [`FRAMES`] calls after [`WARM_UP`].
fn allocations(mut frame: impl FnMut(u64)) -> u64 {
    for i in 0..WARM_UP {
        frame(i);
    }
    let before = dhat::HeapStats::get();
    for i in WARM_UP..WARM_UP + FRAMES {
        frame(i);
    }
    dhat::HeapStats::get().total_blocks - before.total_blocks
}

#[test]
fn a_steady_state_frame_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let t0 = Instant::now();
    let at = |i: u64| t0 + Duration::from_millis(i * 20);
    let mut twilio = WebSocket::from_raw_socket(Discard, Role::Server, None);
    let mut model = WebSocket::from_raw_socket(Discard, Role::Client, None);

    let media: Vec<String> = (0..WARM_UP + FRAMES)
        .map(|i| media_text(i * 20, i + 2))
        .collect();
    let mut m = live_machine(t0);
    let caller = allocations(|i| {
        let f = MediaRef::parse(&media[i as usize]).expect("a media frame");
        m.handle_input(
            Input::CallerMedia {
                timestamp: &f.media.timestamp,
                payload: &f.media.payload,
            },
            at(i),
        );
        carry_out(&mut m, &mut twilio, &mut model);
    });

    let deltas: Vec<String> = (0..WARM_UP + FRAMES).map(delta_text).collect();
    let marks: Vec<String> = (1..=WARM_UP + FRAMES).map(mark_text).collect();
    let mut m = speaking_machine(t0);
    let mut echoed = VecDeque::new();
    let agent = allocations(|i| {
        let d = AudioDeltaRef::parse(&deltas[i as usize]).expect("a delta");
        m.handle_input(
            Input::AgentAudio {
                response_id: &d.response_id,
                item_id: &d.item_id,
                delta: &d.delta,
            },
            at(i),
        );
        carry_out(&mut m, &mut twilio, &mut model);
        echoed.push_back(i);
        if echoed.len() as u64 > QUEUED {
            let n = echoed.pop_front().expect("queued");
            let echo = MarkRef::parse(&marks[n as usize]).expect("a mark");
            assert!(
                m.expects_mark(&echo.mark.name),
                "{} was sent",
                echo.mark.name
            );
            m.handle_input(
                Input::MarkEcho {
                    name: &echo.mark.name,
                },
                at(i),
            );
            carry_out(&mut m, &mut twilio, &mut model);
        }
    });
    assert_eq!(
        (caller, agent),
        (0, 0),
        "heap blocks allocated over {FRAMES} steady-state frames (caller, agent)"
    );
}
