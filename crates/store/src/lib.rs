//! Call records in sled. The only crate that touches sled (DESIGN.md invariant).
//!
//! Trees:
//! - `calls`: CallSid → [`CallRecord`] (JSON, versioned; migrated on open);
//! - `events`: CallSid ‖ 0x00 ‖ seq (u64 BE) → the [`CallEvent`] as JSON, in order: the record
//!   can be rebuilt from its events ([`Store::rebuild`]);
//! - `audio`: recordings of stores written before recordings moved to files (read and purged,
//!   no longer written);
//! - `audit`: at_ms ‖ id → [`AuditEntry`] ([`audit`]);
//! - `index`, `words`: secondary indexes for the review queries ([`index`]);
//! - `reviews`: CallSid ‖ 0x00 ‖ reviewer → that reviewer's QA review of the call (JSON in the
//!   `watchfloor-qa` shape; the store keeps it whole and does not read it), purged with the call;
//! - `scorecards`, `scores`, `qa_cards`: each call's automatic QA scorecards (one per card
//!   version), their summaries by card version and start time, and the saved versions of the
//!   protocol cards ([`qa`]);
//! - `users`: login name → the console user (JSON in the server's shape: password hash, roles,
//!   line, disabled), as an administrator keeps them (the config file's `[[users]]` seed it);
//! - `answered`: CallSid → purge time (u64 BE ms) of calls removed by retention, so their
//!   webhook is still refused if replayed ([`ledger`]).
//!
//! Recordings are append-only files beside the trees, `<dir>/audio/<CallSid>.audio`
//! ([`audio::AudioFiles`]): in sled, each byte of audio cost about 50 bytes or more of disk writes.
//!
//! The [`writer`] task consumes the calls' events and audio from an unbounded queue in batches,
//! so a call never waits on the disk; it flushes at least every 200 ms while calls are live, at
//! the end of every call, and before it answers a barrier (a supervisor action's acknowledgement).
//! Events are written with every batch (at most every 50 ms); records (derived from events)
//! every second and at the call's end; audio in pieces of a second, and the rest at the end.
//! A live call's recording file is synced (`fdatasync`) every
//! [`writer::RECORDING_SYNC_INTERVAL`] (5 s) when it grew, and at the call's end.
//! On open, the records of calls that were live are rebuilt from their events.

pub mod audio;
pub mod audit;
pub mod backup;
pub mod index;
pub mod journal;
pub mod ledger;
pub mod qa;
pub mod record;
pub mod writer;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use watchfloor_call::CallEvent;

pub use audio::{AudioChunk, AudioFiles};
pub use audit::{AuditEntry, AuditQuery, NewAuditEntry};
pub use index::{CallPage, CallQuery};
pub use ledger::{CallLedger, PriorCall};
pub use record::{CallRecord, CallSummary, DispatchAudioRecord, RECORD_VERSION, TranscriptLine, UnitRecord, dispatch_audio_url};

/// Store errors. `Db` may be retried; `Corrupt` means a stored value does not parse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// A recording file could not be created, written, read or removed.
    #[error("recording file error: {0}")]
    Audio(#[from] std::io::Error),
    /// A stored value does not parse.
    #[error("corrupt stored value under {key}: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// The JSON error decoding it.
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
    audio: sled::Tree,
    audit: sled::Tree,
    index: sled::Tree,
    words: sled::Tree,
    settings: sled::Tree,
    answered: sled::Tree,
    reviews: sled::Tree,
    scorecards: sled::Tree,
    scores: sled::Tree,
    qa_cards: sled::Tree,
    users: sled::Tree,
    files: AudioFiles,
    /// The store's directory (sled's files, `audio/`, `journal/`).
    dir: std::path::PathBuf,
    /// The journal of acknowledged writes ([`journal`]).
    journal: Arc<journal::Journal>,
    flusher: Arc<Flusher>,
    /// Ids of audit entries (unique within a millisecond of `at_ms`), seeded from sled's
    /// `generate_id` once at open: no request path calls into sled's id generator.
    audit_ids: Arc<AtomicU64>,
    /// What the webhook asks, in memory ([`ledger`]).
    ledger: Arc<CallLedger>,
}

/// Every flush of the database goes through here: one at a time, and callers that ask while
/// one runs share the next (group commit). sled 0.34.7 deadlocks on concurrent flushes
/// (spacejam/sled#1308): 1 500 failed sign-ins, each audited with its own flush, once froze the
/// whole server (issue 15).
#[derive(Default)]
struct Flusher {
    /// Flushes asked for so far: each caller's ticket.
    asked: AtomicU64,
    /// The last ticket a completed flush covered; held while a flush runs.
    done: tokio::sync::Mutex<u64>,
}

/// `CallSid ‖ 0x00`: the prefix of a call's keys in `events` and `audio`.
pub(crate) fn call_prefix(call_sid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(call_sid.len() + 10);
    k.extend_from_slice(call_sid.as_bytes());
    k.push(0);
    k
}

fn event_key(call_sid: &str, seq: u64) -> Vec<u8> {
    let mut k = call_prefix(call_sid);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Every value of a scan, decoded from JSON as `T`, in key order.
///
/// # Errors
/// [`StoreError::Corrupt`] naming the first key whose value is not a `T`.
pub(crate) fn decode_all<T: serde::de::DeserializeOwned>(scan: sled::Iter) -> Result<Vec<T>, StoreError> {
    scan
        .map(|item| {
            let (k, v) = item?;
            serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))
        })
        .collect()
}

fn corrupt(key: &[u8], source: serde_json::Error) -> StoreError {
    StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), source }
}

/// `fsync`s sled's files in the store directory `dir` (`conf`, `db`, `snap.*`, `blobs/*`) and
/// the directory itself; the recording files and the journal are synced on their own.
fn sync_sled_files(dir: &Path) -> std::io::Result<()> {
    let sync = |p: &Path| std::fs::File::open(p)?.sync_all();
    for e in std::fs::read_dir(dir)?.flatten() {
        let ty = e.file_type()?;
        if ty.is_file() {
            sync(&e.path())?;
        } else if ty.is_dir() && e.file_name() == "blobs" {
            for b in std::fs::read_dir(e.path())?.flatten() {
                sync(&b.path())?;
            }
            sync(&e.path())?;
        }
    }
    sync(dir)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PurgeReport {
    /// Calls whose record, events and audio were deleted.
    pub calls_removed: usize,
    /// Calls old enough but kept under legal hold.
    pub calls_held: usize,
    /// Audit entries deleted (older than the audit retention).
    pub audit_removed: usize,
}

/// sled's page cache, bytes. sled's default (1 GiB) lets the cache of recordings just written
/// grow with every live call; recordings are written once and read rarely (review), so a small
/// cache costs nothing on the audio path. Measured with the load generator (BENCHMARKS.md).
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in `dir`. Records of older versions are migrated, and calls
    /// that were live when the process died are marked `interrupted` (their partial transcript
    /// and audio stay). Returns the store and the CallSids so marked.
    pub fn open(dir: &Path) -> Result<(Store, Vec<String>), StoreError> {
        // The store holds call records and audit trails: this user only (0700; issue 15 found
        // it world-readable). Files inside a 0700 directory are out of others' reach whatever
        // their own mode.
        std::fs::create_dir_all(dir)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).cache_capacity(CACHE_BYTES).open()?;
        let (journal, entries, generations) = journal::Journal::open(dir)?;
        let store = Store {
            calls: db.open_tree("calls")?,
            events: db.open_tree("events")?,
            audio: db.open_tree("audio")?,
            audit: db.open_tree("audit")?,
            index: db.open_tree("index")?,
            words: db.open_tree("words")?,
            settings: db.open_tree("settings")?,
            answered: db.open_tree("answered")?,
            reviews: db.open_tree("reviews")?,
            scorecards: db.open_tree("scorecards")?,
            scores: db.open_tree("scores")?,
            qa_cards: db.open_tree("qa_cards")?,
            users: db.open_tree("users")?,
            files: AudioFiles::open(dir)?,
            dir: dir.to_path_buf(),
            journal: Arc::new(journal),
            flusher: Arc::default(),
            audit_ids: Arc::new(AtomicU64::new(db.generate_id()?)),
            ledger: Arc::default(),
            db,
        };
        let replayed = !generations.is_empty();
        store.replay(entries)?;
        for item in store.answered.iter() {
            let (k, _) = item?;
            store.ledger.mark_answered(&String::from_utf8_lossy(&k));
        }
        let interrupted = store.recover()?;
        store.reindex_words()?;
        if replayed || !interrupted.is_empty() {
            // What was replayed (and the records recovery wrote) is made durable in sled, and the
            // generations read are done with.
            store.checkpoint_blocking()?;
        }
        Ok((store, interrupted))
    }

    /// Writes back into sled what the journal has and sled lacks (see [`journal`]): call events
    /// not in `events` (their calls' records are then rebuilt from their events), audit entries
    /// not in `audit`, and every journaled put, in order (the last one of a key is its latest
    /// acknowledged value).
    fn replay(&self, entries: Vec<journal::Entry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let (mut events, mut audits, mut puts) = (Vec::new(), 0usize, 0usize);
        let mut seen = std::collections::HashSet::new();
        let mut max_audit_id = None;
        for e in entries {
            match e {
                journal::Entry::Events(evs) => {
                    for ev in evs {
                        let key = event_key(&ev.call_sid, ev.seq);
                        if !self.events.contains_key(&key)? && seen.insert(key) {
                            events.push(std::sync::Arc::new(ev));
                        }
                    }
                }
                journal::Entry::Audit(a) => {
                    max_audit_id = max_audit_id.max(Some(a.id));
                    let key = audit::key(a.at_ms, a.id);
                    if !self.audit.contains_key(key)? {
                        // Invariant: AuditEntry is plain data and serialises.
                        self.audit.insert(key, serde_json::to_vec(&a).expect("AuditEntry serialises"))?;
                        audits += 1;
                    }
                }
                journal::Entry::Put { tree, key, value } => {
                    let t = self.tree(tree);
                    if t.get(&key)?.as_deref() != Some(value.as_slice()) {
                        t.insert(key, value)?;
                        puts += 1;
                    }
                }
            }
        }
        if let Some(id) = max_audit_id {
            self.audit_ids.fetch_max(id + 1, Ordering::Relaxed);
        }
        let calls: BTreeSet<String> = events.iter().map(|e| e.call_sid.to_string()).collect();
        self.write_sled_events(&events, &[])?;
        for sid in &calls {
            if let Some(rec) = self.rebuild(sid)? {
                let old = self.get_call(sid)?;
                self.put_record(old.as_ref(), &rec)?;
            }
        }
        if !events.is_empty() || audits + puts > 0 {
            tracing::warn!(events = events.len(), calls = calls.len(), audit_entries = audits, puts, "the journal held acknowledged writes sled had lost: written back");
        }
        Ok(())
    }

    fn recover(&self) -> Result<Vec<String>, StoreError> {
        let now_ms = unix_ms();
        let mut interrupted = Vec::new();
        for item in self.calls.iter() {
            let (k, v) = item?;
            let mut rec = record::decode(&v).map_err(|e| corrupt(&k, e))?;
            let before = rec.clone();
            rec.version = RECORD_VERSION;
            if rec.is_live() {
                // The record may lag its events by up to one flush interval: rebuild it from them.
                let mut fold = watchfloor_call::CallFold::of(&rec.call_sid, &self.events(&rec.call_sid)?);
                // The end is recorded as events too, so the record still rebuilds from them.
                let call_sid: std::sync::Arc<str> = rec.call_sid.as_str().into();
                let first = fold.last_seq.map_or(0, |s| s + 1);
                let kinds = [
                    watchfloor_call::CallEventKind::StatusChanged { status: watchfloor_call::CallStatus::Interrupted },
                    watchfloor_call::CallEventKind::CallEnded { reason: "server_stopped".into() },
                ];
                let events: Vec<std::sync::Arc<CallEvent>> = kinds
                    .into_iter()
                    .enumerate()
                    .map(|(i, kind)| std::sync::Arc::new(CallEvent { call_sid: call_sid.clone(), seq: first + i as u64, at_ms: now_ms.max(rec.started_at_ms), kind }))
                    .collect();
                for ev in &events {
                    fold.apply(ev);
                }
                self.write_events(&events, &[])?;
                if first == 0 {
                    // Every record is written after its events, so this cannot happen; if it
                    // did, the stored record keeps what it says and only ends.
                    tracing::error!(call_sid = %rec.call_sid, "a live record without events: closed as interrupted");
                    rec.status = watchfloor_call::CallStatus::Interrupted;
                    rec.ended_at_ms = Some(now_ms.max(rec.started_at_ms));
                    rec.end_reason = Some("server_stopped".into());
                } else {
                    rec = CallRecord::of(&fold);
                }
                interrupted.push(rec.call_sid.clone());
            }
            if rec != before {
                self.put_record(Some(&before), &rec)?;
            } else {
                self.ledger.observe(&rec, now_ms);
            }
        }
        if !interrupted.is_empty() {
            tracing::warn!(count = interrupted.len(), "calls were live when the server stopped: marked interrupted");
        }
        self.db.flush()?;
        Ok(interrupted)
    }

    /// Rebuilds the transcript index from every record when it was made by another version of
    /// [`index::words`] (its version is kept in the `words` tree under a key no term has).
    fn reindex_words(&self) -> Result<(), StoreError> {
        const VERSION_KEY: &[u8] = b"\x00version";
        if self.words.get(VERSION_KEY)?.as_deref() == Some(&[index::WORDS_VERSION][..]) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.words.clear()?;
        let mut calls = 0usize;
        let mut batch = sled::Batch::default();
        for item in self.calls.iter() {
            let (k, v) = item?;
            let rec = record::decode(&v).map_err(|e| corrupt(&k, e))?;
            for line in &rec.transcript {
                for w in index::words(&line.text) {
                    batch.insert(index::word_key(&w, &rec.call_sid), &[][..]);
                }
            }
            calls += 1;
            if calls.is_multiple_of(1000) {
                self.words.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        batch.insert(VERSION_KEY, &[index::WORDS_VERSION][..]);
        self.words.apply_batch(batch)?;
        if calls > 0 {
            tracing::info!(calls, ms = started.elapsed().as_millis() as u64, "transcript index rebuilt (accents and case folded, text without spaces indexed)");
        }
        Ok(())
    }

    /// Writes a record and moves its index entries from `old` to the new values.
    pub(crate) fn put_record(&self, old: Option<&CallRecord>, rec: &CallRecord) -> Result<(), StoreError> {
        self.put_records(&[(old.cloned(), rec.clone())])
    }

    /// Writes records and moves their index entries from the old values to the new: one sled
    /// batch per tree, whatever the number of records (every `apply_batch` writes sled's log
    /// buffer out and waits for the disk).
    pub(crate) fn put_records(&self, records: &[(Option<CallRecord>, CallRecord)]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut ib = sled::Batch::default();
        let mut cb = sled::Batch::default();
        for (old, rec) in records {
            let old_keys = old.as_ref().map(index::keys).unwrap_or_default();
            let new_keys = index::keys(rec);
            for k in old_keys.difference(&new_keys) {
                ib.remove(k.as_slice());
            }
            for k in new_keys.difference(&old_keys) {
                ib.insert(k.as_slice(), &[][..]);
            }
            cb.insert(rec.call_sid.as_bytes(), record::encode(rec));
        }
        self.index.apply_batch(ib)?;
        self.calls.apply_batch(cb)?;
        let now = unix_ms();
        for (_, rec) in records {
            self.ledger.observe(rec, now);
        }
        Ok(())
    }

    /// What the voice webhook asks (answered CallSids, callers' recent calls), in memory: no
    /// request on the call path waits on the disk (issue 15).
    pub fn ledger(&self) -> &CallLedger {
        &self.ledger
    }

    /// One call's record.
    pub fn get_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        match self.calls.get(call_sid.as_bytes())? {
            Some(v) => Ok(Some(record::decode(&v).map_err(|e| corrupt(call_sid.as_bytes(), e))?)),
            None => Ok(None),
        }
    }

    /// Every call record, newest first (for small stores and tests; the API pages with [`Store::query`]).
    pub fn list_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut v = Vec::new();
        for item in self.calls.iter() {
            let (k, val) = item?;
            v.push(record::decode(&val).map_err(|e| corrupt(&k, e))?);
        }
        v.sort_by_key(|r: &CallRecord| std::cmp::Reverse(r.started_at_ms));
        Ok(v)
    }

    /// Searches past calls, newest first, one page at a time.
    pub fn query(&self, q: &CallQuery) -> Result<CallPage, StoreError> {
        // The most selective index available drives the scan; the rest are filters.
        let (kind, value) = if let Some(c) = &q.caller {
            (index::CALLER, c.as_str())
        } else if let Some(t) = &q.incident_type {
            (index::INCIDENT, t.as_str())
        } else if let Some(p) = &q.priority {
            (index::PRIORITY, p.as_str())
        } else if let Some(s) = &q.status {
            (index::STATUS, s.as_str())
        } else {
            (index::TIME, "")
        };
        let prefix = index::prefix(kind, value);
        let text_sids: Option<BTreeSet<String>> = match q.text.as_deref().map(index::words) {
            Some(words) if !words.is_empty() => {
                let mut acc: Option<BTreeSet<String>> = None;
                for w in words {
                    let mut sids = BTreeSet::new();
                    let p = index::prefix_word(&w);
                    for item in self.words.scan_prefix(&p) {
                        let (k, _) = item?;
                        sids.insert(String::from_utf8_lossy(&k[p.len()..]).into_owned());
                    }
                    acc = Some(match acc {
                        None => sids,
                        Some(a) => a.intersection(&sids).cloned().collect(),
                    });
                }
                acc
            }
            _ => None,
        };
        let limit = q.limit.max(1);
        let mut calls = Vec::new();
        let mut next_cursor = None;
        for item in self.index.scan_prefix(&prefix).rev() {
            let (k, _) = item?;
            let Some((ms, sid)) = index::split(&k, prefix.len()) else { continue };
            if let Some((cms, csid)) = &q.after
                && (ms, sid.as_str()) >= (*cms, csid.as_str()) {
                    continue;
                }
            if q.to_ms.is_some_and(|to| ms >= to) {
                continue;
            }
            if q.from_ms.is_some_and(|from| ms < from) {
                break; // older from here on
            }
            if text_sids.as_ref().is_some_and(|s| !s.contains(&sid)) {
                continue;
            }
            let Some(rec) = self.get_call(&sid)? else { continue };
            let matches = q.status.as_ref().is_none_or(|s| rec.status.as_str() == s)
                && q.caller.as_ref().is_none_or(|c| &rec.from == c)
                && q.incident_type.as_ref().is_none_or(|t| rec.incident_type.as_ref() == Some(t))
                && q.priority.as_ref().is_none_or(|p| rec.priority.as_ref() == Some(p));
            if !matches {
                continue;
            }
            if calls.len() == limit {
                let last: &CallSummary = calls.last().expect("limit ≥ 1");
                next_cursor = Some(index::encode_cursor(last.started_at_ms, &last.call_sid));
                break;
            }
            calls.push(CallSummary::from(&rec));
        }
        Ok(CallPage { calls, next_cursor })
    }

    /// Prior calls from `number` that started at or after `since_ms`, newest first.
    pub fn caller_history(&self, number: &str, since_ms: u64, limit: usize) -> Result<Vec<CallSummary>, StoreError> {
        let q = CallQuery { caller: Some(number.to_string()), from_ms: Some(since_ms), limit, ..Default::default() };
        Ok(self.query(&q)?.calls)
    }

    /// Every stored event of a call, in sequence order.
    pub fn events(&self, call_sid: &str) -> Result<Vec<CallEvent>, StoreError> {
        let mut v = Vec::new();
        for item in self.events.scan_prefix(call_prefix(call_sid)) {
            let (k, val) = item?;
            v.push(serde_json::from_slice(&val).map_err(|e| corrupt(&k, e))?);
        }
        Ok(v)
    }

    /// Rebuilds a call's record from its stored events alone.
    pub fn rebuild(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        let events = self.events(call_sid)?;
        if events.is_empty() {
            return Ok(None);
        }
        Ok(Some(CallRecord::of(&watchfloor_call::CallFold::of(call_sid, &events))))
    }

    /// A call's recorded audio, every track, in stream order per track (pieces that start at
    /// the same point stay in the order they were written).
    pub fn audio(&self, call_sid: &str) -> Result<Vec<AudioChunk>, StoreError> {
        let mut v = Vec::new();
        for item in self.audio.scan_prefix(call_prefix(call_sid)) {
            let (k, val) = item?;
            if let Some((track, stream_ms)) = audio::parse_key(call_sid, &k) {
                v.push(AudioChunk { track, stream_ms, audio: val.to_vec() });
            }
        }
        v.extend(self.files.read(call_sid)?);
        v.sort_by_key(|c| (c.track.code(), c.stream_ms));
        Ok(v)
    }

    /// The call's recording as a stereo WAV (left caller, right agent) a second at a time
    /// ([`audio::WavBlocks`]), or `None` with no audio: what the review API serves.
    pub fn recording_wav_blocks(&self, call_sid: &str) -> Result<Option<audio::WavBlocks>, StoreError> {
        let chunks = self.audio(call_sid)?;
        Ok((!chunks.is_empty()).then(|| audio::WavBlocks::new(chunks)))
    }

    /// The voiced dispatch message of one revision as a mono WAV, or `None` when the call has no
    /// such revision or it was not voiced.
    pub fn dispatch_audio_wav(&self, call_sid: &str, revision: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(rec) = self.get_call(call_sid)? else { return Ok(None) };
        let Some(d) = rec.dispatch_audio.iter().find(|d| d.revision == revision && d.status == watchfloor_call::DispatchAudioStatus::Completed) else { return Ok(None) };
        let chunks: Vec<AudioChunk> = self.audio(call_sid)?.into_iter().filter(|c| c.track == watchfloor_call::Track::Dispatch).collect();
        Ok(Some(audio::render_track_wav(&chunks, watchfloor_call::Track::Dispatch, d.stream_ms, d.stream_ms + d.duration_ms)))
    }

    /// The supervisor's own track (their voice while they held the call's, issue 17) as a mono
    /// WAV over the whole recording, on the same clock as [`Store::recording_wav_blocks`] (a
    /// moment in one is the same moment in the other), or `None` when no supervisor spoke.
    pub fn supervisor_wav(&self, call_sid: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let chunks = self.audio(call_sid)?;
        if !chunks.iter().any(|c| c.track == watchfloor_call::Track::Supervisor) {
            return Ok(None);
        }
        let end = chunks.iter().map(AudioChunk::end_ms).max().unwrap_or(0);
        Ok(Some(audio::render_track_wav(&chunks, watchfloor_call::Track::Supervisor, 0, end)))
    }

    /// Writes a batch of events, the records they changed (with their index entries) and the
    /// transcript words, one sled batch per tree that has something to write, then appends the
    /// events to the journal (one frame). Not flushed or synced: returns the journal ticket to
    /// sync ([`Store::sync_journal`]), `None` without events.
    pub(crate) fn write_events(&self, events: &[std::sync::Arc<CallEvent>], records: &[(Option<CallRecord>, CallRecord)]) -> Result<Option<u64>, StoreError> {
        let json = self.write_sled_events(events, records)?;
        if json.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.journal.append(&journal::events_frame(json.iter().map(Vec::as_slice)))?))
    }

    /// [`Store::write_events`] without the journal; returns the events' JSON.
    fn write_sled_events(&self, events: &[std::sync::Arc<CallEvent>], records: &[(Option<CallRecord>, CallRecord)]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut eb = sled::Batch::default();
        let mut wb = sled::Batch::default();
        let mut words = false;
        let mut json = Vec::with_capacity(events.len());
        for ev in events {
            // Invariant: CallEvent is plain data and serialises.
            let v = serde_json::to_vec(&**ev).expect("CallEvent serialises");
            eb.insert(event_key(&ev.call_sid, ev.seq), v.as_slice());
            json.push(v);
            if let watchfloor_call::CallEventKind::TranscriptFinal { text, .. } = &ev.kind {
                for w in index::words(text) {
                    wb.insert(index::word_key(&w, &ev.call_sid), &[][..]);
                    words = true;
                }
            }
        }
        if !events.is_empty() {
            self.events.apply_batch(eb)?;
        }
        if words {
            self.words.apply_batch(wb)?;
        }
        self.put_records(records)?;
        Ok(json)
    }

    /// Appends pieces of a call's audio to its recording file, all or nothing; with `sync`,
    /// durable before it returns. Returns the file's new length (see [`AudioFiles::append`]).
    pub(crate) fn append_audio(&self, call_sid: &str, pieces: &[audio::Piece<'_>], sync: bool, good_len: Option<u64>) -> Result<u64, StoreError> {
        Ok(self.files.append(call_sid, pieces, sync, good_len)?)
    }

    /// Appends an audit entry and makes it durable (the journal, synced) before returning
    /// (concurrent callers share one sync).
    pub async fn audit(&self, entry: NewAuditEntry) -> Result<AuditEntry, StoreError> {
        let (e, ticket) = self.write_audit(entry)?;
        self.journal.sync(ticket).await?;
        Ok(e)
    }

    /// Appends an audit entry without waiting for the disk (record reads: the writer's periodic
    /// sync makes it durable within 200 ms while calls are live, and the next sync otherwise).
    pub fn audit_unflushed(&self, entry: NewAuditEntry) -> Result<AuditEntry, StoreError> {
        Ok(self.write_audit(entry)?.0)
    }

    fn write_audit(&self, entry: NewAuditEntry) -> Result<(AuditEntry, u64), StoreError> {
        let id = self.audit_ids.fetch_add(1, Ordering::Relaxed);
        let e = AuditEntry { id, at_ms: entry.at_ms, user: entry.user, action: entry.action, target: entry.target, outcome: entry.outcome, detail: entry.detail };
        // Invariant: AuditEntry is plain data and serialises.
        self.audit.insert(audit::key(e.at_ms, id), serde_json::to_vec(&e).expect("AuditEntry serialises"))?;
        let ticket = self.journal.append(&journal::audit_frame(&e))?;
        Ok((e, ticket))
    }

    /// The sled tree a journaled put names.
    fn tree(&self, tree: journal::Tree) -> &sled::Tree {
        match tree {
            journal::Tree::Reviews => &self.reviews,
            journal::Tree::Users => &self.users,
            journal::Tree::Settings => &self.settings,
            journal::Tree::QaCards => &self.qa_cards,
        }
    }

    /// Sets `key` to `value` in one of the journaled trees, and makes it durable (the journal,
    /// synced) before returning: an acknowledged change is kept.
    pub(crate) async fn put_durable(&self, tree: journal::Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        let frame = journal::put_frame(tree, key, &value);
        self.tree(tree).insert(key, value)?;
        let ticket = self.journal.append(&frame)?;
        self.journal.sync(ticket).await?;
        Ok(())
    }

    /// Makes the journal durable up to `ticket` (from [`Store::write_events`]).
    pub(crate) async fn sync_journal(&self, ticket: u64) -> Result<(), StoreError> {
        Ok(self.journal.sync(ticket).await?)
    }

    /// Bytes in the journal's current generation (the writer checkpoints past
    /// [`journal::CHECKPOINT_BYTES`]).
    pub fn journal_len(&self) -> u64 {
        self.journal.len()
    }

    /// `fdatasync`s of the journal done so far.
    pub fn journal_syncs(&self) -> u64 {
        self.journal.syncs()
    }

    /// Makes sled durable and drops the journal generations it then covers: starts a new
    /// generation, flushes sled ([`Store::flush`]), `fsync`s sled's files and directory, and
    /// deletes the older generations. Run by the writer when the journal grows past
    /// [`journal::CHECKPOINT_BYTES`] and at shutdown, and after a purge (whose deletions are not
    /// journaled: a replay must not bring back what it removed).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let journal = self.journal.clone();
        let ended = tokio::task::spawn_blocking(move || journal.rotate()).await.map_err(|e| std::io::Error::other(format!("journal rotate task failed: {e}")))??;
        self.flush().await?;
        let (dir, journal) = (self.dir.clone(), self.journal.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            sync_sled_files(&dir)?;
            journal.remove_through(ended)?;
            Ok(())
        })
        .await
        .map_err(|e| std::io::Error::other(format!("checkpoint task failed: {e}")))?
    }

    /// [`Store::checkpoint`] on this thread (at open, before anything else can flush).
    fn checkpoint_blocking(&self) -> Result<(), StoreError> {
        let ended = self.journal.rotate()?;
        self.db.flush()?;
        sync_sled_files(&self.dir)?;
        self.journal.remove_through(ended)?;
        Ok(())
    }

    /// Searches the audit log, newest first.
    pub fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = q.limit.max(1);
        let end = audit::key(q.to_ms.unwrap_or(u64::MAX), 0);
        let start = audit::key(q.from_ms.unwrap_or(0), 0);
        let mut v = Vec::new();
        for item in self.audit.range(start..end).rev() {
            let (k, val) = item?;
            let e: AuditEntry = serde_json::from_slice(&val).map_err(|err| corrupt(&k, err))?;
            if q.before_id.is_some_and(|b| e.id >= b)
                || q.user.as_ref().is_some_and(|u| &e.user != u)
                || q.action.as_ref().is_some_and(|a| &e.action != a)
                || q.target.as_ref().is_some_and(|t| &e.target != t)
            {
                continue;
            }
            v.push(e);
            if v.len() == limit {
                break;
            }
        }
        Ok(v)
    }

    /// Deletes calls that started before `calls_before_ms` (not live, not under legal hold) with
    /// their events, audio and index entries, and audit entries before `audit_before_ms`. Not
    /// flushed: the caller follows it with [`Store::checkpoint`] (durable, and the journal that could
    /// bring back what it removed done with).
    pub fn purge(&self, calls_before_ms: u64, audit_before_ms: u64) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let prefix = index::prefix(index::TIME, "");
        let mut doomed = Vec::new();
        for item in self.index.scan_prefix(&prefix) {
            let (k, _) = item?;
            let Some((ms, sid)) = index::split(&k, prefix.len()) else { continue };
            if ms >= calls_before_ms {
                break;
            }
            doomed.push(sid);
        }
        for sid in doomed {
            let Some(rec) = self.get_call(&sid)? else { continue };
            if rec.legal_hold {
                report.calls_held += 1;
                continue;
            }
            if rec.is_live() {
                continue;
            }
            self.files.remove(&sid)?;
            for tree in [&self.events, &self.audio, &self.reviews] {
                let mut b = sled::Batch::default();
                for item in tree.scan_prefix(call_prefix(&sid)) {
                    b.remove(item?.0);
                }
                tree.apply_batch(b)?;
            }
            self.forget_scores(&sid, rec.started_at_ms)?;
            let mut wb = sled::Batch::default();
            for line in &rec.transcript {
                for w in index::words(&line.text) {
                    wb.remove(index::word_key(&w, &sid));
                }
            }
            self.words.apply_batch(wb)?;
            let mut ib = sled::Batch::default();
            for k in index::keys(&rec) {
                ib.remove(k);
            }
            self.index.apply_batch(ib)?;
            // The SID stays answered after its record is gone (a replayed webhook of it is
            // refused), written before the record goes.
            self.answered.insert(sid.as_bytes(), &unix_ms().to_be_bytes())?;
            self.calls.remove(sid.as_bytes())?;
            self.ledger.forget_call(&rec.from, &sid);
            report.calls_removed += 1;
        }
        let mut ab = sled::Batch::default();
        for item in self.audit.range(..audit::key(audit_before_ms, 0)) {
            ab.remove(item?.0);
            report.audit_removed += 1;
        }
        self.audit.apply_batch(ab)?;
        Ok(report)
    }

    /// Syncs of recording files done so far (`fdatasync`: at a call's end, every
    /// [`writer::RECORDING_SYNC_INTERVAL`] of a live call, at shutdown).
    pub fn recording_syncs(&self) -> u64 {
        self.files.syncs()
    }

    /// Bytes the store takes on disk: the database and the recording files.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()? + self.files.size())
    }

    /// Saves `reviewer`'s review of a call (replacing the one stored) and makes it durable
    /// (journaled) before returning: a review that was acknowledged is kept.
    pub async fn put_review(&self, call_sid: &str, reviewer: &str, review: &serde_json::Value) -> Result<(), StoreError> {
        let mut key = call_prefix(call_sid);
        key.extend_from_slice(reviewer.as_bytes());
        // Invariant: a JSON value serialises.
        self.put_durable(journal::Tree::Reviews, &key, serde_json::to_vec(review).expect("JSON value serialises")).await
    }

    /// Every review of a call, in reviewer-name order.
    pub fn reviews(&self, call_sid: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        self.reviews.scan_prefix(call_prefix(call_sid)).map(|item| {
            let (k, v) = item?;
            serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))
        }).collect()
    }

    /// Every review of every call (for the calibration report and review coverage), in CallSid
    /// then reviewer order.
    pub fn all_reviews(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        decode_all(self.reviews.iter())
    }

    /// Saves the console user `name` (the server's shape, kept whole) and makes it durable
    /// (journaled) before returning: an acknowledged change of who may sign in is kept.
    pub async fn put_user(&self, name: &str, user: &impl serde::Serialize) -> Result<(), StoreError> {
        // Invariant: a user record is plain data and serialises.
        self.put_durable(journal::Tree::Users, name.as_bytes(), serde_json::to_vec(user).expect("user serialises")).await
    }

    /// Every console user saved, by name.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a saved user is not of type `T`.
    pub fn users<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        decode_all(self.users.iter())
    }

    /// The supervisor's saved settings (JSON, the server's own shape), if any were saved.
    pub fn settings(&self) -> Result<Option<serde_json::Value>, StoreError> {
        match self.settings.get(b"current")? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| corrupt(b"settings", e)),
            None => Ok(None),
        }
    }

    /// Saves the settings and makes them durable (journaled) before returning.
    pub async fn put_settings(&self, v: &serde_json::Value) -> Result<(), StoreError> {
        // Invariant: a JSON value serialises.
        self.put_durable(journal::Tree::Settings, b"current", serde_json::to_vec(v).expect("JSON value serialises")).await
    }

    /// Writes everything written to the database before the call to sled's files (sled's
    /// flush: `sync_file_range`, not durable across a power cut, spacejam/sled#1452; what must
    /// be durable is in the [`journal`], and [`Store::checkpoint`] `fsync`s sled's files). Never runs two flushes at once: a caller
    /// that asks while one runs waits for it and then shares the next one with every other
    /// caller that asked meanwhile (so a burst of N callers costs about two flushes, not N). The
    /// flush itself runs on the blocking pool.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.flusher.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let (flusher, db) = (self.flusher.clone(), self.db.clone());
        // In a task of its own: a caller that is dropped (a client gone, a shutdown) must not
        // release the gate while its flush still runs.
        let flush = tokio::spawn(async move {
            let mut done = flusher.done.lock().await;
            if *done >= ticket {
                return Ok(()); // a flush that started after we asked has completed
            }
            let covers = flusher.asked.load(Ordering::SeqCst);
            match tokio::task::spawn_blocking(move || db.flush()).await {
                Ok(r) => {
                    r?;
                }
                // The flush thread panicked (sled bug): report it as an I/O failure of the store.
                Err(e) => return Err(StoreError::Audio(std::io::Error::other(format!("flush task failed: {e}")))),
            }
            *done = covers;
            Ok(())
        });
        flush.await.map_err(|e| StoreError::Audio(std::io::Error::other(format!("flush task failed: {e}"))))?
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use watchfloor_call::Track;

    #[test]
    fn recordings_from_before_files_are_read_merged_and_purged() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        // A store written before recordings moved to files: audio in the `audio` tree.
        let mut key = call_prefix("CA1");
        key.push(Track::Caller.code());
        key.extend_from_slice(&0u64.to_be_bytes());
        store.audio.insert(key, vec![1u8; 160]).unwrap();
        store.append_audio("CA1", &[(Track::Agent, 0, &[2u8; 80][..]), (Track::Caller, 20, &[3u8; 160][..])], true, None).unwrap();
        let got = store.audio("CA1").unwrap();
        let order: Vec<(Track, u64)> = got.iter().map(|c| (c.track, c.stream_ms)).collect();
        assert_eq!(order, vec![(Track::Caller, 0), (Track::Caller, 20), (Track::Agent, 0)], "by track, then stream order");
        assert_eq!(got[0].audio, vec![1u8; 160]);

        let mut rec = CallRecord::new("CA1");
        rec.started_at_ms = 1_000;
        rec.status = watchfloor_call::CallStatus::Completed;
        store.put_record(None, &rec).unwrap();
        let report = store.purge(2_000, 0).unwrap();
        assert_eq!(report.calls_removed, 1);
        assert!(store.audio("CA1").unwrap().is_empty(), "both the tree and the file are gone");
        assert!(!store.files.path("CA1").exists());
    }
}
