//! The store writer: consumes every call's events and audio in batches, never making a call wait.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use watchfloor_call::{AppendError, CallEvent, CallEventKind, CallFold, RecordMsg, Track};
use watchfloor_wire::mulaw;

use crate::audio::CHUNK_BYTES;
use crate::{CallRecord, Store};

/// Longest time written events stay unflushed while calls are live.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Longest time a live call's record (and its index entries) lags its events on disk. Records
/// are derived from the events, which are flushed every [`FLUSH_INTERVAL`]; writing each live
/// record at every flush cost more than everything else the store does (load generator profile,
/// BENCHMARKS.md). A call's end writes its own record at once; a barrier and an append write
/// every changed record.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(1);
/// How often the recording files of live calls written to since their last sync are synced
/// (`fdatasync`; issue 20). A power cut then takes at most this much of a live call's audio
/// besides the second not yet written (audio goes to the file a second at a time): a few
/// seconds, while one sync per live call each time stays cheap (200 live calls: 40 a second).
pub const RECORDING_SYNC_INTERVAL: Duration = Duration::from_secs(5);
/// Most messages taken in one batch.
pub const MAX_BATCH: usize = 2048;
/// How long a barrier, an append, a call's end or the shutdown retries recording file writes
/// that failed before it goes on without them (the pieces stay in memory and are retried with
/// later batches; at shutdown they are reported lost).
pub const AUDIO_RETRY: Duration = Duration::from_secs(2);
/// Shortest time between two batches unless a barrier or an append is waiting: messages that
/// arrive within it are written together. Every sled `apply_batch` seals and writes sled's
/// current log buffer with a `sync_file_range` that waits for the disk, so batches of a few
/// messages at audio rates cost thousands of synchronous log writes a second (2 363/s at 120
/// calls, strace; BENCHMARKS.md). A call never waits on it: nothing on the audio path reads
/// the store.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How often the writer looks for a barrier or an append while it gathers a batch: the most
/// a supervisor action's acknowledgement waits for the batch to close.
pub const URGENT_CHECK: Duration = Duration::from_millis(5);

/// Where the result of an append to an ended call goes.
type AppendReply = oneshot::Sender<Result<CallEvent, AppendError>>;

/// Audio of a track not yet written: one contiguous run.
struct OpenChunk {
    stream_ms: u64,
    audio: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// The fold of each live call's events (and of ended calls touched in this batch): its
    /// record is a projection of it ([`CallRecord::of`]).
    live: HashMap<Arc<str>, CallFold>,
    /// Audio not yet written, per call and track. It is written (as a new piece, never by
    /// rewriting) when it reaches a second, when its run breaks, when its call ends, at a
    /// barrier or an append, and at shutdown.
    chunks: HashMap<(Arc<str>, Track), OpenChunk>,
    /// Pieces ready to be written with this batch, in the order they were closed (pieces whose
    /// write failed wait here for the next batch).
    closed: Vec<(Arc<str>, Track, u64, Vec<u8>)>,
    /// Each recording file's length after its last successful append (see
    /// [`crate::AudioFiles::append`]), while its call is live or its file still to be synced.
    file_len: HashMap<Arc<str>, u64>,
    /// Calls that ended (or all, at shutdown) whose recording file is still to be synced.
    to_sync: std::collections::HashSet<Arc<str>>,
    /// Each live call's file length when it was last put up for a periodic sync.
    synced_len: HashMap<Arc<str>, u64>,
    /// Records changed since they were last written, with their state then (for the index).
    /// Records are written every [`RECORD_INTERVAL`] and at their call's end: they can be
    /// rebuilt from the events, which are written with every batch.
    dirty: HashMap<Arc<str>, Option<CallRecord>>,
}

/// Runs until every sender of `rx` is gone or `stop` is cancelled, then writes what is queued,
/// flushes and returns.
///
/// A batch is what arrives within [`BATCH_WINDOW`] of the previous one (a barrier or an append
/// closes it within [`URGENT_CHECK`]). Each batch: apply events to the cached records of live
/// calls; gather audio into contiguous runs of up to a second; write events and the audio runs
/// that are full (or broken by a gap); every [`RECORD_INTERVAL`], the changed records (with
/// their index entries); append the batch's events to the journal ([`crate::journal`]); sync
/// the journal and flush sled at least every [`FLUSH_INTERVAL`], at a call's end and before
/// answering a barrier or an append; checkpoint when the journal passes
/// [`crate::journal::CHECKPOINT_BYTES`] and at the end. When a call ends, its record
/// and partial audio runs are written, the database flushed and its recording file synced;
/// when a barrier or an append asks for it, every pending record and partial audio run is
/// written and the database flushed before barriers are answered. On a
/// process crash a live call loses at most the last second of its audio; its events are on disk
/// within [`FLUSH_INTERVAL`] and its record is rebuilt from them. Audio is appended to the
/// call's recording file as new pieces, never rewritten. A database write error is logged and
/// the batch retried until it succeeds. A recording file write error is logged and its pieces
/// kept and retried: a barrier, an append, a call's end or the shutdown waits up to
/// [`AUDIO_RETRY`] for them, then goes on (a barrier is answered: its events and records are
/// durable); at shutdown, audio still failing then is reported lost. The writer never stops on
/// an error. A barrier makes events durable (journal synced; records are rebuilt from them) and the audio before it written to the
/// recording files (readable); a recording file is made durable at its call's end.
pub async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<RecordMsg>, stop: CancellationToken) {
    let mut st = State::default();
    let mut buf: Vec<RecordMsg> = Vec::with_capacity(MAX_BATCH);
    let mut last_flush = tokio::time::Instant::now();
    let mut last_records = tokio::time::Instant::now();
    let mut last_recording_sync = tokio::time::Instant::now();
    let mut unflushed = false;
    // The last journal frame appended and the last one synced ([`crate::journal`]).
    let (mut journaled, mut journal_synced) = (0u64, 0u64);
    let mut last_batch = tokio::time::Instant::now();
    loop {
        let mut n = tokio::select! {
            n = rx.recv_many(&mut buf, MAX_BATCH) => n,
            _ = stop.cancelled(), if !rx.is_closed() => {
                // No new messages from now on; what is queued is still written.
                rx.close();
                continue;
            }
            _ = tokio::time::sleep(FLUSH_INTERVAL), if unflushed || !st.dirty.is_empty() || !st.closed.is_empty() || !st.to_sync.is_empty() => 0,
        };
        if n > 0 {
            n += gather(&mut rx, &mut buf, last_batch + BATCH_WINDOW).await;
        }
        last_batch = tokio::time::Instant::now();
        if n == 0 && buf.is_empty() && !unflushed && st.chunks.is_empty() && st.dirty.is_empty() && st.closed.is_empty() && st.to_sync.is_empty() {
            break; // closed and drained
        }
        let mut must_flush = false;
        // A barrier or an append: every pending record and partial audio run is written.
        let mut everything = false;
        let mut barriers: Vec<oneshot::Sender<()>> = Vec::new();
        let mut replies: Vec<(AppendReply, Result<CallEvent, AppendError>)> = Vec::new();
        let mut events: Vec<Arc<CallEvent>> = Vec::new();
        let mut ended: Vec<Arc<str>> = Vec::new();
        for msg in buf.drain(..) {
            match msg {
                RecordMsg::Event(ev) => {
                    let fold = cached(&store, &mut st.live, &ev.call_sid);
                    st.dirty.entry(ev.call_sid.clone()).or_insert_with(|| fold.last_seq.is_some().then(|| CallRecord::of(fold)));
                    fold.apply(&ev);
                    if matches!(ev.kind, CallEventKind::CallEnded { .. }) {
                        ended.push(ev.call_sid.clone());
                        must_flush = true;
                    }
                    events.push(ev);
                }
                RecordMsg::Audio(frame) => add_audio(&mut st, frame.call_sid, frame.track, frame.stream_ms, &frame.audio),
                RecordMsg::Barrier(tx) => {
                    barriers.push(tx);
                    must_flush = true;
                    everything = true;
                }
                RecordMsg::AppendAfterEnd { call_sid, kind, at_ms, reply } => {
                    must_flush = true;
                    everything = true;
                    let result = if st.live.contains_key(&call_sid) && !ended.contains(&call_sid) {
                        Err(AppendError::StillLive(call_sid.to_string()))
                    } else {
                        match store.get_call(&call_sid) {
                            Ok(Some(rec)) if rec.is_live() => Err(AppendError::StillLive(call_sid.to_string())),
                            Ok(Some(rec)) => {
                                let entry = cached(&store, &mut st.live, &call_sid);
                                let seq = entry.last_seq.map_or(0, |s| s + 1);
                                let ev = Arc::new(CallEvent { call_sid: call_sid.clone(), seq, at_ms, kind });
                                st.dirty.entry(call_sid.clone()).or_insert(Some(rec));
                                entry.apply(&ev);
                                ended.push(call_sid.clone());
                                events.push(ev.clone());
                                Ok((*ev).clone())
                            }
                            Ok(None) => Err(AppendError::NoSuchCall(call_sid.to_string())),
                            Err(e) => Err(AppendError::Store(e.to_string())),
                        }
                    };
                    replies.push((reply, result));
                }
            }
        }
        let flush_due = must_flush || last_flush.elapsed() >= FLUSH_INTERVAL || n == 0;
        let closing = n == 0 && rx.is_closed();
        // Every changed record when one is due; otherwise only those of the calls that ended.
        let all_records_due = everything || closing || last_records.elapsed() >= RECORD_INTERVAL;
        if everything || closing {
            for ((sid, track), c) in st.chunks.drain() {
                st.closed.push((sid, track, c.stream_ms, c.audio));
            }
        } else if !ended.is_empty() {
            let done: Vec<(Arc<str>, Track)> = st.chunks.keys().filter(|(sid, _)| ended.contains(sid)).cloned().collect();
            for key in done {
                // Invariant: the key was just read from the map.
                let c = st.chunks.remove(&key).expect("chunk present");
                st.closed.push((key.0, key.1, c.stream_ms, c.audio));
            }
        }
        // Write events (and records when due); retry on error (the data stays in memory).
        let wrote_records = loop {
            let changed: Vec<(Option<CallRecord>, CallRecord)> = st
                .dirty
                .iter()
                .filter(|(sid, _)| all_records_due || ended.contains(sid))
                .filter_map(|(sid, old)| st.live.get(sid).map(|f| (old.clone(), CallRecord::of(f))))
                .collect();
            match store.write_events(&events, &changed) {
                Ok(ticket) => {
                    journaled = ticket.unwrap_or(journaled);
                    break !changed.is_empty();
                }
                Err(e) => {
                    tracing::error!(error = %e, "store write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        if !events.is_empty() || wrote_records {
            unflushed = true;
        }
        st.to_sync.extend(ended.iter().cloned());
        if closing {
            st.to_sync.extend(st.file_len.keys().cloned());
        }
        if last_recording_sync.elapsed() >= RECORDING_SYNC_INTERVAL {
            // Live calls' files written to since their last sync are synced with this batch.
            let grown: Vec<Arc<str>> = st.file_len.iter().filter(|(sid, len)| st.synced_len.get(*sid) != Some(*len)).map(|(sid, _)| sid.clone()).collect();
            for sid in grown {
                st.synced_len.insert(sid.clone(), st.file_len[&sid]);
                st.to_sync.insert(sid);
            }
            let file_len = &st.file_len;
            st.synced_len.retain(|sid, _| file_len.contains_key(sid));
            last_recording_sync = tokio::time::Instant::now();
        }
        write_audio(&store, &mut st, closing);
        if (everything || closing || !ended.is_empty()) && !(st.closed.is_empty() && st.to_sync.is_empty()) {
            // What waits on this batch waits for its audio too, for a while.
            let give_up = tokio::time::Instant::now() + AUDIO_RETRY;
            while !(st.closed.is_empty() && st.to_sync.is_empty()) && tokio::time::Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(50)).await;
                write_audio(&store, &mut st, closing);
            }
            if closing && !st.closed.is_empty() {
                let bytes: usize = st.closed.iter().map(|p| p.3.len()).sum();
                tracing::error!(pieces = st.closed.len(), bytes, "recording writes still failing at shutdown: this audio is lost");
                st.closed.clear();
            }
            if closing {
                st.to_sync.clear();
            }
        }
        if all_records_due {
            st.dirty.clear();
            last_records = tokio::time::Instant::now();
        } else {
            for sid in &ended {
                st.dirty.remove(sid);
            }
        }
        if journal_synced < journaled && flush_due {
            // Acknowledgements wait for their events to be durable: retried until they are.
            loop {
                match store.sync_journal(journaled).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "journal sync failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            journal_synced = journaled;
        }
        if unflushed && flush_due {
            match store.flush().await {
                Ok(()) => {
                    unflushed = false;
                    last_flush = tokio::time::Instant::now();
                }
                Err(e) => tracing::error!(error = %e, "store flush failed"),
            }
        }
        for tx in barriers {
            let _ = tx.send(());
        }
        for (tx, r) in replies {
            let _ = tx.send(r);
        }
        for sid in ended {
            st.live.remove(&sid);
        }
        if store.journal_len() >= crate::journal::CHECKPOINT_BYTES
            && let Err(e) = store.checkpoint().await
        {
            tracing::error!(error = %e, "journal checkpoint failed (the journal keeps growing; retried after the next batch)");
        }
        if closing && rx.is_empty() && !unflushed && st.chunks.is_empty() {
            break;
        }
    }
    // sled made durable, the journal emptied: the next open has nothing to replay.
    if let Err(e) = store.checkpoint().await {
        tracing::error!(error = %e, "final store checkpoint failed (the journal is replayed on the next open)");
    }
}

/// Takes more messages into `buf` until `deadline`, a barrier or an append (which should not
/// wait longer than [`URGENT_CHECK`]), or [`MAX_BATCH`] messages; returns how many it took.
///
/// It looks at the channel every [`URGENT_CHECK`] rather than waiting on it: waiting on it
/// wakes this thread for every message (a context switch per audio frame, and a futex wake on
/// the sending call task's worker).
async fn gather(rx: &mut mpsc::UnboundedReceiver<RecordMsg>, buf: &mut Vec<RecordMsg>, deadline: tokio::time::Instant) -> usize {
    let urgent = |m: &RecordMsg| matches!(m, RecordMsg::Barrier(_) | RecordMsg::AppendAfterEnd { .. });
    let mut checked = 0;
    let mut taken = 0;
    loop {
        if buf[checked..].iter().any(urgent) || buf.len() >= MAX_BATCH {
            return taken;
        }
        checked = buf.len();
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return taken;
        }
        tokio::time::sleep_until((now + URGENT_CHECK).min(deadline)).await;
        // What has arrived, without waiting (an empty or closed channel ends the take).
        while buf.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    buf.push(m);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
    }
}

/// Appends the closed pieces to their calls' recording files, one write per call, and syncs
/// the files in `st.to_sync` (with the write, or alone when the call has nothing left to
/// write). The pieces of a call whose write fails stay in `st.closed`, in order, for the next
/// try; a file whose sync fails stays in `st.to_sync`. Every failure is logged.
fn write_audio(store: &Store, st: &mut State, closing: bool) {
    let mut closed = std::mem::take(&mut st.closed);
    // Stable: each call's pieces keep their order.
    closed.sort_by(|a, b| a.0.cmp(&b.0));
    for group in closed.chunk_by(|a, b| a.0 == b.0) {
        let sid = &group[0].0;
        let pieces: Vec<crate::audio::Piece<'_>> = group.iter().map(|(_, t, ms, a)| (*t, *ms, a.as_slice())).collect();
        let sync = st.to_sync.contains(sid);
        match store.append_audio(sid, &pieces, sync, st.file_len.get(sid).copied()) {
            Ok(len) => {
                st.file_len.insert(sid.clone(), len);
                if sync {
                    st.to_sync.remove(sid);
                }
            }
            Err(e) => {
                tracing::error!(call_sid = %sid, error = %e, "recording write failed; retried");
                st.closed.extend(group.iter().cloned());
            }
        }
    }
    // Files to sync with nothing (left) to write.
    let waiting: Vec<Arc<str>> = st.to_sync.iter().filter(|sid| !st.closed.iter().any(|p| &p.0 == *sid)).cloned().collect();
    for sid in waiting {
        match store.append_audio(&sid, &[], true, None) {
            Ok(_) => {
                st.to_sync.remove(&sid);
            }
            Err(e) => tracing::error!(call_sid = %sid, error = %e, "recording sync failed; retried"),
        }
    }
    // A synced file of an ended call is done with; live calls keep their length (at shutdown
    // every call is done with).
    let live = &st.live;
    let pending = &st.closed;
    let to_sync = &st.to_sync;
    st.file_len.retain(|sid, _| to_sync.contains(sid) || pending.iter().any(|p| &p.0 == sid) || (!closing && live.contains_key(sid)));
}

/// The fold of a call the writer holds, or one made from its stored events (none yet for a new
/// call; an ended call's whole history for an append after its end).
fn cached<'a>(store: &Store, live: &'a mut HashMap<Arc<str>, CallFold>, sid: &Arc<str>) -> &'a mut CallFold {
    live.entry(sid.clone()).or_insert_with(|| match store.events(sid) {
        Ok(events) => CallFold::of(sid, &events),
        Err(e) => {
            tracing::error!(call_sid = %sid, error = %e, "stored events unreadable: the call's fold starts empty");
            CallFold::new(sid)
        }
    })
}

fn add_audio(st: &mut State, sid: Arc<str>, track: Track, stream_ms: u64, audio: &[u8]) {
    let key = (sid, track);
    match st.chunks.get_mut(&key) {
        Some(c) if c.stream_ms + mulaw::bytes_to_ms(c.audio.len()) == stream_ms && c.audio.len() % mulaw::BYTES_PER_MS == 0 => {
            c.audio.extend_from_slice(audio);
            if c.audio.len() >= CHUNK_BYTES {
                // Invariant: the entry exists, we hold it.
                let full = st.chunks.remove(&key).expect("chunk present");
                st.closed.push((key.0, key.1, full.stream_ms, full.audio));
            }
        }
        _ => {
            // A new run (a gap, or the first audio): the pending one is written with this batch.
            if let Some(old) = st.chunks.insert(key.clone(), OpenChunk { stream_ms, audio: audio.to_vec() }) {
                st.closed.push((key.0, key.1, old.stream_ms, old.audio));
            }
        }
    }
}
