//! Heap allocations per steady-state frame on the hot path (issue 22's baseline; not a test):
//! `cargo bench -p watchfloor-bridge --bench allocs`. Counted with `dhat`'s heap profiler in
//! testing mode, over 1 000 frames after 500 frames of warm-up, for what the call's task does
//! per frame:
//! - caller frame: parse one Twilio `media` text in place → the machine → every output
//!   serialised to its wire text (the `input_audio_buffer.append`);
//! - agent frame: parse one 20 ms `response.output_audio.delta` → the machine → the Twilio
//!   `media` and `mark` texts; then Twilio's echo of the mark read in place → the machine (the
//!   played frame published for the recording). All the deltas come first, then all the echoes
//!   (a thousand frames queued at Twilio): the queue's growth is counted here;
//!   `tests/allocations.rs` keeps ten queued, as a call does, and asserts no allocation.
//!
//! Figures are in BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use watchfloor_bridge::machine::Input;
use watchfloor_wire::realtime::AudioDeltaRef;
use watchfloor_wire::twilio::{MarkRef, MediaRef};

mod common;
use common::{delta_text, drain, live_machine, mark_text, media_text, speaking_machine};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const WARM_UP: u64 = 500;
const FRAMES: u64 = 1_000;

/// Allocations (blocks, bytes) that `frame(i)` makes per call, over [`FRAMES`] calls after
/// [`WARM_UP`].
fn per_frame(mut frame: impl FnMut(u64)) -> (f64, f64) {
    for i in 0..WARM_UP {
        frame(i);
    }
    let before = dhat::HeapStats::get();
    for i in WARM_UP..WARM_UP + FRAMES {
        frame(i);
    }
    let after = dhat::HeapStats::get();
    ((after.total_blocks - before.total_blocks) as f64 / FRAMES as f64, (after.total_bytes - before.total_bytes) as f64 / FRAMES as f64)
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let t0 = Instant::now();
    let at = |i: u64| t0 + Duration::from_millis(i * 20);

    // Inputs are made beforehand: the wire delivers them; their allocations are not the bridge's.
    let media: Vec<String> = (0..WARM_UP + FRAMES).map(|i| media_text(i * 20, i + 2)).collect();
    let mut m = live_machine(t0);
    let (blocks, bytes) = per_frame(|i| {
        let text = &media[i as usize];
        match MediaRef::parse(text) {
            Some(f) => m.handle_input(Input::CallerMedia { timestamp: &f.media.timestamp, payload: &f.media.payload }, at(i)),
            None => m.handle_input(Input::TwilioGarbage("not media".into()), at(i)),
        }
        black_box(drain(&mut m));
    });
    println!("caller frame (media in → append out):           {blocks:>6.2} allocations, {bytes:>8.1} bytes per frame");

    let deltas: Vec<String> = (0..WARM_UP + FRAMES).map(delta_text).collect();
    let marks: Vec<String> = (1..=WARM_UP + FRAMES).map(mark_text).collect();
    let mut m = speaking_machine(t0);
    let (blocks, bytes) = per_frame(|i| {
        match AudioDeltaRef::parse(&deltas[i as usize]) {
            Some(d) => m.handle_input(Input::AgentAudio { response_id: &d.response_id, item_id: &d.item_id, delta: &d.delta }, at(i)),
            None => m.handle_input(Input::ModelGarbage("not a delta".into()), at(i)),
        }
        black_box(drain(&mut m));
    });
    println!("agent frame (20 ms delta in → media + mark out): {blocks:>6.2} allocations, {bytes:>8.1} bytes per frame");

    // The echoes of those marks, in order.
    let mut i = 0;
    let (blocks, bytes) = per_frame(|_| {
        match MarkRef::parse(&marks[i]) {
            Some(echo) => m.handle_input(Input::MarkEcho { name: &echo.mark.name }, at(WARM_UP + FRAMES + i as u64)),
            None => m.handle_input(Input::TwilioGarbage("not a mark".into()), at(i as u64)),
        }
        black_box(drain(&mut m));
        i += 1;
    });
    println!("mark echo (mark in → frame played):             {blocks:>6.2} allocations, {bytes:>8.1} bytes per frame");
}
