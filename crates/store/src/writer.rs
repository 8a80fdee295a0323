//! The store writer: consumes every call's events in batches, never making a call wait.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use watchfloor_bridge::{CallEvent, CallEventKind};

use crate::{CallRecord, Store};

/// Longest time written events stay unflushed while calls are live.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Most events taken in one batch.
pub const MAX_BATCH: usize = 1024;

/// Runs until every sender of `rx` is gone or `stop` is cancelled, then writes what is queued,
/// flushes and returns.
///
/// Each batch: apply the events to the cached records of live calls, write events and changed
/// records in two sled batches, then flush if a call ended in the batch or the last flush is
/// older than [`FLUSH_INTERVAL`]. A write error is logged and the events stay in the cache for
/// the next batch; the writer never stops on one.
pub async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Arc<CallEvent>>, stop: CancellationToken) {
    let mut live: HashMap<Arc<str>, CallRecord> = HashMap::new();
    let mut buf: Vec<Arc<CallEvent>> = Vec::with_capacity(MAX_BATCH);
    let mut last_flush = tokio::time::Instant::now();
    let mut unflushed = false;
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut buf, MAX_BATCH) => n,
            _ = stop.cancelled(), if !rx.is_closed() => {
                // No new events from now on; what is queued is still written below.
                rx.close();
                continue;
            }
            _ = tokio::time::sleep(FLUSH_INTERVAL), if unflushed => 0,
        };
        if n == 0 && buf.is_empty() && !unflushed {
            break; // channel closed and drained
        }
        let mut ended = Vec::new();
        let mut dirty: Vec<Arc<str>> = Vec::new();
        for ev in &buf {
            let rec = match live.get_mut(&ev.call_sid) {
                Some(r) => r,
                None => {
                    let existing = store.get_call(&ev.call_sid).ok().flatten();
                    live.entry(ev.call_sid.clone()).or_insert_with(|| existing.unwrap_or_else(|| CallRecord::new(&ev.call_sid)))
                }
            };
            rec.apply(ev);
            if !dirty.contains(&ev.call_sid) {
                dirty.push(ev.call_sid.clone());
            }
            if matches!(ev.kind, CallEventKind::CallEnded { .. }) {
                ended.push(ev.call_sid.clone());
            }
        }
        if !buf.is_empty() {
            let records: Vec<&CallRecord> = dirty.iter().filter_map(|sid| live.get(sid)).collect();
            match store.write_batch(&buf, &records) {
                Ok(()) => {
                    buf.clear();
                    unflushed = true;
                }
                Err(e) => {
                    tracing::error!(error = %e, "store write failed; retrying with the next batch");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        if unflushed && (!ended.is_empty() || last_flush.elapsed() >= FLUSH_INTERVAL || n == 0) {
            if let Err(e) = store.flush().await {
                tracing::error!(error = %e, "store flush failed");
            } else {
                unflushed = false;
                last_flush = tokio::time::Instant::now();
            }
        }
        for sid in ended {
            live.remove(&sid);
        }
        if n == 0 && rx.is_closed() && rx.is_empty() && !unflushed {
            break;
        }
    }
    if let Err(e) = store.flush().await {
        tracing::error!(error = %e, "final store flush failed");
    }
}
