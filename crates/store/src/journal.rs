//! The journal: an append-only, CRC-framed, `fdatasync`'d log of what the store must never lose
//! once it has been acknowledged (issue 20). sled 0.34's `flush` is `sync_file_range`, which
//! makes no promise across a power cut (spacejam/sled#1452): a supervisor's dispatch
//! confirmation that got a 200 must outlive one. So every write the store acknowledges is also
//! appended here and synced before it is acknowledged, and on open whatever the journal has and
//! sled lacks is written back into sled ([`Store::open`](crate::Store::open)).
//!
//! What goes in:
//! - every call event the [`writer`](crate::writer) writes, one frame per batch (so a replayed
//!   call has all its events, not only its acknowledged ones); the writer syncs the journal
//!   before it answers a barrier (a supervisor action or dispatch decision, `CallHub::barrier`),
//!   an append to an ended call, at a call's end and with every periodic flush (200 ms);
//! - every audit entry ([`Store::audit`](crate::Store::audit) syncs before it returns);
//! - every acknowledged write of a QA review, a console user, the settings and a protocol cards
//!   version ([`Tree`]).
//!
//! Files: `<dir>/journal/<generation>` (20 decimal digits), written in order. A checkpoint
//! ([`Store::checkpoint`](crate::Store::checkpoint)) starts a new generation, makes sled durable
//! (its flush, then `fsync` of its files) and deletes the older generations: everything they
//! hold is then in sled on disk. Order makes this safe: an entry is written to sled before it is
//! appended here, and the new generation starts before sled is flushed.
//!
//! Frame: `len: u32 LE ‖ crc32(payload): u32 LE ‖ payload (len bytes)`; payload:
//! `kind: u8 ‖ body`:
//! - `1` events: `(len: u32 LE ‖ CallEvent as JSON)`*;
//! - `2` audit: the [`AuditEntry`] as JSON;
//! - `3` put: `tree: u8 ‖ key_len: u16 LE ‖ key ‖ value` (the value as sled holds it).
//!
//! A frame cut short or failing its CRC ends the file's read (a write torn by the crash, never
//! acknowledged: every acknowledged frame was synced whole); what follows is logged and ignored.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use watchfloor_call::CallEvent;

use crate::AuditEntry;

/// The journal's directory inside the store's.
pub const JOURNAL_DIR: &str = "journal";

/// Journal bytes after which the writer makes a checkpoint (the journal is read whole on open:
/// about 32 MiB of events is some 300 calls and replays in well under a second).
pub const CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;

/// Largest frame read back, bytes: a longer length is a damaged frame, not a huge one.
const MAX_FRAME: usize = 256 * 1024 * 1024;

const KIND_EVENTS: u8 = 1;
const KIND_AUDIT: u8 = 2;
const KIND_PUT: u8 = 3;

/// The sled trees whose acknowledged writes are journaled besides events and audit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tree {
    /// QA reviews (`reviews`).
    Reviews = 1,
    /// Console users (`users`).
    Users = 2,
    /// The saved settings (`settings`).
    Settings = 3,
    /// Saved protocol cards versions (`qa_cards`).
    QaCards = 4,
}

impl Tree {
    fn from_code(c: u8) -> Option<Tree> {
        [Tree::Reviews, Tree::Users, Tree::Settings, Tree::QaCards].into_iter().find(|t| *t as u8 == c)
    }
}

/// One journaled write, as read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A batch of call events, in the order written.
    Events(Vec<CallEvent>),
    /// An audit entry.
    Audit(AuditEntry),
    /// `key` set to `value` in `tree`.
    Put {
        /// The tree.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
        /// The value as sled holds it.
        value: Vec<u8>,
    },
}

/// The frame of a batch of events whose JSON is already made (the writer's sled values).
pub fn events_frame<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut payload = vec![KIND_EVENTS];
    for ev in events {
        payload.extend_from_slice(&(ev.len() as u32).to_le_bytes());
        payload.extend_from_slice(ev);
    }
    frame(&payload)
}

/// The frame of an audit entry.
pub fn audit_frame(e: &AuditEntry) -> Vec<u8> {
    let mut payload = vec![KIND_AUDIT];
    // Invariant: AuditEntry is plain data and serialises.
    payload.extend_from_slice(&serde_json::to_vec(e).expect("AuditEntry serialises"));
    frame(&payload)
}

/// The frame of a put. Keys are short (a name, a CallSid and a reviewer): at most 65 535 bytes.
pub fn put_frame(tree: Tree, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(4 + key.len() + value.len());
    payload.push(KIND_PUT);
    payload.push(tree as u8);
    payload.extend_from_slice(&(key.len().min(u16::MAX as usize) as u16).to_le_bytes());
    payload.extend_from_slice(&key[..key.len().min(u16::MAX as usize)]);
    payload.extend_from_slice(value);
    frame(&payload)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Why a journal file's read stopped before its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Torn {
    /// Byte offset of the first frame not read.
    pub at: usize,
    /// Bytes from there to the end of the file.
    pub rest: usize,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// Decodes the frames of one journal file, in order, up to the first frame cut short, failing
/// its CRC or not decoding (see the module docs), which is reported.
pub fn decode(bytes: &[u8]) -> (Vec<Entry>, Option<Torn>) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let torn = |reason| Some(Torn { at, rest: bytes.len() - at, reason });
        if bytes.len() - at < 8 {
            return (out, torn("a frame header cut short"));
        }
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len > MAX_FRAME || bytes.len() - at - 8 < len {
            return (out, torn("a frame cut short"));
        }
        let payload = &bytes[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            return (out, torn("a frame failing its CRC"));
        }
        match decode_payload(payload) {
            Some(e) => out.push(e),
            None => return (out, torn("a frame that does not decode")),
        }
        at += 8 + len;
    }
    (out, None)
}

fn decode_payload(p: &[u8]) -> Option<Entry> {
    let (&kind, body) = p.split_first()?;
    match kind {
        KIND_EVENTS => {
            let mut events = Vec::new();
            let mut b = body;
            while !b.is_empty() {
                if b.len() < 4 {
                    return None;
                }
                let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let json = b.get(4..4 + n)?;
                events.push(serde_json::from_slice(json).ok()?);
                b = &b[4 + n..];
            }
            Some(Entry::Events(events))
        }
        KIND_AUDIT => serde_json::from_slice(body).ok().map(Entry::Audit),
        KIND_PUT => {
            let tree = Tree::from_code(*body.first()?)?;
            let klen = u16::from_le_bytes([*body.get(1)?, *body.get(2)?]) as usize;
            let key = body.get(3..3 + klen)?.to_vec();
            let value = body[3 + klen..].to_vec();
            Some(Entry::Put { tree, key, value })
        }
        _ => None,
    }
}

struct Current {
    file: Arc<File>,
    generation: u64,
    /// Bytes in this generation's file.
    len: u64,
}

/// The open journal: appends, syncs (group commit) and generations. Shared by every clone of the
/// store.
pub(crate) struct Journal {
    dir: PathBuf,
    current: parking_lot::Mutex<Current>,
    /// Frames appended so far (all generations): each append's ticket for [`Journal::sync`].
    appended: AtomicU64,
    /// The last ticket a completed sync covered; held while a sync runs.
    synced: tokio::sync::Mutex<u64>,
    /// `fdatasync`s done so far.
    syncs: AtomicU64,
}

impl Journal {
    /// Reads every generation in `store_dir`'s journal, in order (for replay), and opens a new
    /// generation after them for appends. Returns the journal, the entries and the generations
    /// read (deleted by the first checkpoint).
    pub(crate) fn open(store_dir: &Path) -> std::io::Result<(Journal, Vec<Entry>, Vec<u64>)> {
        let dir = store_dir.join(JOURNAL_DIR);
        std::fs::create_dir_all(&dir)?;
        let generations = generations(&dir)?;
        let mut entries = Vec::new();
        for g in &generations {
            let path = dir.join(file_name(*g));
            let bytes = std::fs::read(&path)?;
            let (mut e, torn) = decode(&bytes);
            if let Some(t) = torn {
                tracing::warn!(file = %path.display(), at = t.at, bytes = t.rest, reason = t.reason, "journal ends in a write torn by a crash (never acknowledged): the rest is ignored");
            }
            entries.append(&mut e);
        }
        let next = generations.last().map_or(1, |g| g + 1);
        let file = create(&dir, next)?;
        let journal = Journal {
            dir,
            current: parking_lot::Mutex::new(Current { file: Arc::new(file), generation: next, len: 0 }),
            appended: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
            syncs: AtomicU64::new(0),
        };
        Ok((journal, entries, generations))
    }

    /// Appends one frame (one `write`); returns its ticket for [`Journal::sync`]. Not durable
    /// until synced.
    ///
    /// # Errors
    /// The write failed; what was written of the frame is cut off again (the caller fails too).
    pub(crate) fn append(&self, frame: &[u8]) -> std::io::Result<u64> {
        let mut cur = self.current.lock();
        if let Err(e) = (&*cur.file).write_all(frame) {
            // Cut back what was written of the frame, so later frames follow the last whole one.
            if let Err(cut) = cur.file.set_len(cur.len) {
                tracing::error!(error = %cut, "journal: a failed append could not be cut back; later frames of this generation are lost to replay until the next checkpoint");
            }
            return Err(e);
        }
        cur.len += frame.len() as u64;
        Ok(self.appended.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Bytes in the current generation.
    pub(crate) fn len(&self) -> u64 {
        self.current.lock().len
    }

    /// `fdatasync`s done so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Makes every frame up to `ticket` durable. One sync at a time; callers that ask while one
    /// runs share the next (group commit). The sync runs on the blocking pool.
    pub(crate) async fn sync(&self, ticket: u64) -> std::io::Result<()> {
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            return Ok(());
        }
        let covers = self.appended.load(Ordering::SeqCst);
        let file = self.current.lock().file.clone();
        match tokio::task::spawn_blocking(move || file.sync_data()).await {
            Ok(r) => r?,
            Err(e) => return Err(std::io::Error::other(format!("journal sync task failed: {e}"))),
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = covers;
        Ok(())
    }

    /// Starts a new generation: the current file is synced (what was appended to it is durable
    /// whoever asked) and later appends go to a new one. Returns the generation that ended.
    pub(crate) fn rotate(&self) -> std::io::Result<u64> {
        let mut cur = self.current.lock();
        cur.file.sync_data()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let next = cur.generation + 1;
        let file = create(&self.dir, next)?;
        let ended = cur.generation;
        *cur = Current { file: Arc::new(file), generation: next, len: 0 };
        Ok(ended)
    }

    /// Deletes every generation up to `upto` (their entries are durable in sled).
    pub(crate) fn remove_through(&self, upto: u64) -> std::io::Result<()> {
        for g in generations(&self.dir)?.into_iter().filter(|g| *g <= upto) {
            std::fs::remove_file(self.dir.join(file_name(g)))?;
        }
        File::open(&self.dir)?.sync_all()
    }
}

fn file_name(generation: u64) -> String {
    format!("{generation:020}")
}

/// The generations in `dir`, oldest first (other files are left alone).
fn generations(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut g: Vec<u64> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok()).flatten()
        })
        .collect();
    g.sort_unstable();
    Ok(g)
}

/// Creates a generation's file (append-only) and makes its directory entry durable.
fn create(dir: &Path, generation: u64) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(file_name(generation)))?;
    File::open(dir)?.sync_all()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchfloor_call::CallEventKind;

    fn event(seq: u64) -> CallEvent {
        CallEvent { call_sid: "CA1".into(), seq, at_ms: 1_000 + seq, kind: CallEventKind::CallEnded { reason: "completed".into() } }
    }

    fn audit() -> AuditEntry {
        AuditEntry { id: 7, at_ms: 9, user: "sam".into(), action: "call.hangup".into(), target: "CA1".into(), outcome: "ok".into(), detail: None }
    }

    #[test]
    fn frames_round_trip_in_order() {
        let evs: Vec<Vec<u8>> = (0..3).map(|s| serde_json::to_vec(&event(s)).unwrap()).collect();
        let mut bytes = events_frame(evs.iter().map(Vec::as_slice));
        bytes.extend(audit_frame(&audit()));
        bytes.extend(put_frame(Tree::Users, b"rita", b"{\"x\":1}"));
        let (entries, torn) = decode(&bytes);
        assert_eq!(torn, None);
        assert_eq!(entries, vec![
            Entry::Events((0..3).map(event).collect()),
            Entry::Audit(audit()),
            Entry::Put { tree: Tree::Users, key: b"rita".to_vec(), value: b"{\"x\":1}".to_vec() },
        ]);
    }

    #[test]
    fn a_torn_or_damaged_frame_ends_the_read_and_keeps_what_came_before() {
        let one = audit_frame(&audit());
        let two = put_frame(Tree::Settings, b"current", b"{}");
        let whole = [one.clone(), two.clone()].concat();
        // Cut anywhere inside the second frame: the first is kept, the rest reported.
        for cut in one.len() + 1..whole.len() {
            let (entries, torn) = decode(&whole[..cut]);
            assert_eq!(entries, vec![Entry::Audit(audit())], "cut at {cut}");
            let torn = torn.expect("reported");
            assert_eq!((torn.at, torn.rest), (one.len(), cut - one.len()));
        }
        // A flipped bit in the second frame's payload fails its CRC.
        let mut bad = whole.clone();
        *bad.last_mut().unwrap() ^= 1;
        let (entries, torn) = decode(&bad);
        assert_eq!(entries.len(), 1);
        assert_eq!(torn.unwrap().reason, "a frame failing its CRC");
        // A frame with a good CRC and an unknown kind does not decode.
        let odd = frame(&[9, 1, 2]);
        assert_eq!(decode(&odd).1.unwrap().reason, "a frame that does not decode");
    }

    #[tokio::test]
    async fn generations_rotate_and_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (j, entries, gens) = Journal::open(dir.path()).unwrap();
        assert!(entries.is_empty() && gens.is_empty());
        let t = j.append(&put_frame(Tree::Users, b"a", b"1")).unwrap();
        j.sync(t).await.unwrap();
        let ended = j.rotate().unwrap();
        j.append(&put_frame(Tree::Users, b"b", b"2")).unwrap();
        drop(j);
        let (j, entries, gens) = Journal::open(dir.path()).unwrap();
        assert_eq!(gens, vec![ended, ended + 1]);
        let keys: Vec<Vec<u8>> = entries.into_iter().map(|e| match e { Entry::Put { key, .. } => key, other => panic!("{other:?}") }).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        j.remove_through(ended + 1).unwrap();
        drop(j);
        let (_, entries, gens) = Journal::open(dir.path()).unwrap();
        assert!(entries.is_empty(), "removed generations are gone");
        assert_eq!(gens, vec![ended + 2], "only the generation the last open made (empty)");
    }
}
