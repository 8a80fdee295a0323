//! Store benchmark (not a test): `cargo bench -p watchfloor-store`.
//!
//! 1. Live load: `CALLS` calls (default 200) for `SECONDS` (default 20 s) at real-time pace, each
//!    sending per 20 ms one caller and one agent audio frame (160 bytes each) and an event every
//!    100 ms (10 events/s/call: transcript deltas, talking, stages). Every 240 ms a barrier
//!    measures the append-to-durable latency (publish → written and flushed), as a supervisor
//!    action's acknowledgement waits for it.
//! 2. Flood: as many events as the writer takes, to find the rate it sustains.
//! 3. Bytes on disk per call-minute (the store directory after the live load).
//!
//! Environment: `WF_BENCH_CALLS`, `WF_BENCH_SECONDS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use watchfloor_call::{AudioFrame, CallEvent, CallEventKind, CallStatus, RecordMsg, Speaker, Track};
use watchfloor_store::{Store, writer};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path).map(|rd| rd.filter_map(Result::ok).map(|e| {
        let m = e.metadata().unwrap();
        if m.is_dir() { dir_size(&e.path()) } else { m.len() }
    }).sum()).unwrap_or(0)
}

fn event(sid: &Arc<str>, seq: u64, kind: CallEventKind) -> RecordMsg {
    RecordMsg::Event(Arc::new(CallEvent { call_sid: sid.clone(), seq, at_ms: 1_763_700_000_000 + seq * 100, kind }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env("WF_BENCH_CALLS", 200) as usize;
    let seconds = env("WF_BENCH_SECONDS", 20);
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("db")).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    let w = tokio::spawn(writer::run(store.clone(), rx, stop.clone()));

    // 1. Live load.
    let sids: Vec<Arc<str>> = (0..calls).map(|i| Arc::from(format!("CA{i:032x}"))).collect();
    let mut seqs = vec![0u64; calls];
    for (i, sid) in sids.iter().enumerate() {
        tx.send(event(sid, 0, CallEventKind::CallCreated { from: format!("+1555{i:07}"), to: "+15550000911".into(), simulated: true })).unwrap();
        tx.send(event(sid, 1, CallEventKind::StatusChanged { status: CallStatus::WithAgent })).unwrap();
        seqs[i] = 2;
    }
    let frame = Bytes::from(vec![0x55u8; 160]);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut pending: Vec<(Instant, oneshot::Receiver<()>)> = Vec::new();
    let mut sent_events = 0u64;
    let mut sent_frames = 0u64;
    let ticks = seconds * 50;
    for t in 0..ticks {
        tick.tick().await;
        let stream_ms = t * 20;
        for (i, sid) in sids.iter().enumerate() {
            for track in [Track::Caller, Track::Agent] {
                tx.send(RecordMsg::Audio(AudioFrame { call_sid: sid.clone(), track, stream_ms, audio: frame.clone() })).unwrap();
                sent_frames += 1;
            }
            if t % 5 == (i as u64 % 5) {
                let kind = if t % 50 == 0 {
                    CallEventKind::TranscriptFinal { speaker: Speaker::Caller, item_id: format!("item_{t}"), text: "There is smoke coming out of the second floor at 123 Main Street".into(), interrupted: false, stream_ms: None, by: None, language: None }
                } else {
                    CallEventKind::TranscriptDelta { speaker: Speaker::Agent, item_id: format!("item_{t}"), delta: "help is on the way ".into(), by: None }
                };
                tx.send(event(sid, seqs[i], kind)).unwrap();
                seqs[i] += 1;
                sent_events += 1;
            }
        }
        if t % 12 == 0 {
            let (btx, brx) = oneshot::channel();
            tx.send(RecordMsg::Barrier(btx)).unwrap();
            pending.push((Instant::now(), brx));
        }
        let mut still = Vec::new();
        for (at, mut rx) in pending.drain(..) {
            match rx.try_recv() {
                Ok(()) => latencies.push(at.elapsed()),
                Err(oneshot::error::TryRecvError::Empty) => still.push((at, rx)),
                Err(_) => {}
            }
        }
        pending = still;
    }
    for (at, rx) in pending.drain(..) {
        let _ = rx.await;
        latencies.push(at.elapsed());
    }
    let live_elapsed = start.elapsed();
    // End every call and wait until all is on disk.
    for (i, sid) in sids.iter().enumerate() {
        tx.send(event(sid, seqs[i], CallEventKind::CallEnded { reason: "stop".into() })).unwrap();
    }
    let (btx, brx) = oneshot::channel();
    tx.send(RecordMsg::Barrier(btx)).unwrap();
    brx.await.unwrap();
    latencies.sort();
    let disk = dir_size(&dir.path().join("db"));
    let mut payload = 0usize;
    let mut pieces = 0usize;
    for sid in &sids {
        let a = store.audio(sid).unwrap();
        pieces += a.len();
        payload += a.iter().map(|c| c.audio.len()).sum::<usize>();
        payload += store.events(sid).unwrap().iter().map(|e| serde_json::to_vec(e).unwrap().len()).sum::<usize>();
    }
    let call_minutes = calls as f64 * seconds as f64 / 60.0;

    // 2. Flood: events only, as fast as the writer takes them.
    let flood_n = 200_000u64;
    let flood_sid: Arc<str> = Arc::from("CAflood0000000000000000000000000000");
    let t0 = Instant::now();
    for seq in 0..flood_n {
        tx.send(event(&flood_sid, seq, CallEventKind::TranscriptDelta { speaker: Speaker::Agent, item_id: "item_1".into(), delta: "word ".into(), by: None })).unwrap();
    }
    let (btx, brx) = oneshot::channel();
    tx.send(RecordMsg::Barrier(btx)).unwrap();
    brx.await.unwrap();
    let flood = t0.elapsed();
    stop.cancel();
    drop(tx);
    w.await.unwrap();

    println!("store benchmark ({calls} calls, {seconds} s live at real-time pace, 2 tokio workers)");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| live load: events/s offered | {:.0} |", sent_events as f64 / live_elapsed.as_secs_f64());
    println!("| live load: audio frames/s offered | {:.0} |", sent_frames as f64 / live_elapsed.as_secs_f64());
    println!("| append → durable latency p50 | {:.1} ms |", percentile(&latencies, 0.50).as_secs_f64() * 1e3);
    println!("| append → durable latency p99 | {:.1} ms |", percentile(&latencies, 0.99).as_secs_f64() * 1e3);
    println!("| append → durable latency max | {:.1} ms |", percentile(&latencies, 1.0).as_secs_f64() * 1e3);
    println!("| flood: events/s sustained (written + flushed) | {:.0} |", flood_n as f64 / flood.as_secs_f64());
    println!("| bytes on disk per call-minute (audio both tracks + events) | {:.0} KiB |", disk as f64 / call_minutes / 1024.0);
    println!("| stored payload per call-minute (audio + event JSON, before sled's overhead) | {:.0} KiB |", payload as f64 / call_minutes / 1024.0);
    println!("| audio pieces per call-minute | {:.0} |", pieces as f64 / call_minutes);
    println!("| raw audio per call-minute (2 × 8000 B/s) | {:.0} KiB |", 2.0 * 8000.0 * 60.0 / 1024.0);
}
