//! Call records in sled. The only crate that touches sled (DESIGN.md invariant).
//!
//! Trees:
//! - `calls`: CallSid → [`CallRecord`] (JSON, versioned; migrated on open);
//! - `events`: CallSid ‖ 0x00 ‖ seq (u64 big-endian) → the [`CallEvent`] as JSON, in order:
//!   the record can be rebuilt from its events ([`Store::rebuild`]).
//!
//! The [`writer`] task consumes the calls' events from an unbounded queue in batches, so a call
//! never waits on the disk; it flushes at least every 200 ms while calls are live and at the end
//! of every call.

pub mod record;
pub mod writer;

use std::path::Path;

use watchfloor_bridge::CallEvent;

pub use record::{CallRecord, RECORD_VERSION, TranscriptLine};

/// Store errors. `Db` and `Io` may be retried; `Corrupt` means a stored value does not parse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// A stored value does not parse.
    #[error("corrupt stored value under {key}: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// The database handle. Cheap to clone (sled handles are reference-counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    calls: sled::Tree,
    events: sled::Tree,
}

fn event_key(call_sid: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(call_sid.len() + 9);
    k.extend_from_slice(call_sid.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn event_prefix(call_sid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(call_sid.len() + 1);
    k.extend_from_slice(call_sid.as_bytes());
    k.push(0);
    k
}

impl Store {
    /// Opens (or creates) the store in `dir`. Records of older versions are migrated, and calls
    /// that were live when the process died are marked `interrupted` (their partial transcript
    /// stays). Returns the store and the CallSids so marked.
    pub fn open(dir: &Path) -> Result<(Store, Vec<String>), StoreError> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        let calls = db.open_tree("calls")?;
        let events = db.open_tree("events")?;
        let store = Store { db, calls, events };
        let interrupted = store.recover()?;
        Ok((store, interrupted))
    }

    /// Migrates records and marks dead live calls interrupted.
    fn recover(&self) -> Result<Vec<String>, StoreError> {
        let mut interrupted = Vec::new();
        for item in self.calls.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let mut rec = record::decode(&v).map_err(|source| StoreError::Corrupt { key: key.clone(), source })?;
            let migrated = rec.version != RECORD_VERSION;
            rec.version = RECORD_VERSION;
            let live = rec.is_live();
            if live {
                rec.status = "interrupted".into();
                rec.end_reason = Some("server_stopped".into());
                interrupted.push(key.clone());
            }
            if live || migrated {
                self.calls.insert(k, record::encode(&rec))?;
            }
        }
        if !interrupted.is_empty() {
            tracing::warn!(count = interrupted.len(), "calls were live when the server stopped: marked interrupted");
            self.db.flush()?;
        }
        Ok(interrupted)
    }

    /// One call's record.
    pub fn get_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        match self.calls.get(call_sid.as_bytes())? {
            Some(v) => Ok(Some(record::decode(&v).map_err(|source| StoreError::Corrupt { key: call_sid.into(), source })?)),
            None => Ok(None),
        }
    }

    /// Every call record, newest first.
    pub fn list_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut v = Vec::new();
        for item in self.calls.iter() {
            let (k, val) = item?;
            v.push(record::decode(&val).map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(&k).into(), source })?);
        }
        v.sort_by_key(|r: &CallRecord| std::cmp::Reverse(r.started_at_ms));
        Ok(v)
    }

    /// Every stored event of a call, in sequence order.
    pub fn events(&self, call_sid: &str) -> Result<Vec<CallEvent>, StoreError> {
        let mut v = Vec::new();
        for item in self.events.scan_prefix(event_prefix(call_sid)) {
            let (k, val) = item?;
            v.push(serde_json::from_slice(&val).map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(&k).into(), source })?);
        }
        Ok(v)
    }

    /// Rebuilds a call's record from its stored events alone.
    pub fn rebuild(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        let events = self.events(call_sid)?;
        if events.is_empty() {
            return Ok(None);
        }
        let mut rec = CallRecord::new(call_sid);
        for ev in &events {
            rec.apply(ev);
        }
        Ok(Some(rec))
    }

    /// Writes a batch of events and the records they changed. Not flushed.
    pub(crate) fn write_batch(&self, events: &[std::sync::Arc<CallEvent>], records: &[&CallRecord]) -> Result<(), StoreError> {
        let mut eb = sled::Batch::default();
        for ev in events {
            // Invariant: CallEvent is plain data and serialises.
            eb.insert(event_key(&ev.call_sid, ev.seq), serde_json::to_vec(&**ev).expect("CallEvent serialises"));
        }
        self.events.apply_batch(eb)?;
        let mut cb = sled::Batch::default();
        for rec in records {
            cb.insert(rec.call_sid.as_bytes(), record::encode(rec));
        }
        self.calls.apply_batch(cb)?;
        Ok(())
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}
