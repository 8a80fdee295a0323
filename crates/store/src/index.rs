//! Secondary indexes and the call query.
//!
//! One tree, `index`, holds every index; a key is
//! `kind byte ‖ value ‖ 0x00 ‖ started_at_ms (u64 BE) ‖ CallSid`, so a prefix scan of one value
//! walks its calls in start-time order (reversed for newest first). Kinds: `T` start time (no
//! value), `S` status, `C` caller number, `I` incident type, `P` priority.
//! The `words` tree is an inverted index of transcript words: `word ‖ 0x00 ‖ CallSid`.

use std::collections::BTreeSet;

use crate::record::CallRecord;

pub(crate) const TIME: u8 = b'T';
pub(crate) const STATUS: u8 = b'S';
pub(crate) const CALLER: u8 = b'C';
pub(crate) const INCIDENT: u8 = b'I';
pub(crate) const PRIORITY: u8 = b'P';

pub(crate) fn prefix(kind: u8, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 2);
    k.push(kind);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

fn key(kind: u8, value: &str, rec: &CallRecord) -> Vec<u8> {
    let mut k = prefix(kind, value);
    k.extend_from_slice(&rec.started_at_ms.to_be_bytes());
    k.extend_from_slice(rec.call_sid.as_bytes());
    k
}

/// Splits an index key back into `(started_at_ms, CallSid)`.
pub(crate) fn split(key: &[u8], prefix_len: usize) -> Option<(u64, String)> {
    let rest = key.get(prefix_len..)?;
    let ms = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    Some((ms, String::from_utf8_lossy(&rest[8..]).into_owned()))
}

/// Every index key of a record.
pub(crate) fn keys(rec: &CallRecord) -> BTreeSet<Vec<u8>> {
    let mut set = BTreeSet::new();
    set.insert(key(TIME, "", rec));
    set.insert(key(STATUS, rec.status.as_str(), rec));
    if !rec.from.is_empty() {
        set.insert(key(CALLER, &rec.from, rec));
    }
    if let Some(t) = &rec.incident_type {
        set.insert(key(INCIDENT, t, rec));
    }
    if let Some(p) = &rec.priority {
        set.insert(key(PRIORITY, p, rec));
    }
    set
}

/// Lower-case words of a text, for the transcript index (letters and digits; 2+ characters).
pub fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 2).map(|w| w.to_lowercase()).collect()
}

pub(crate) fn word_key(word: &str, call_sid: &str) -> Vec<u8> {
    let mut k = prefix_word(word);
    k.extend_from_slice(call_sid.as_bytes());
    k
}

pub(crate) fn prefix_word(word: &str) -> Vec<u8> {
    let mut k = word.as_bytes().to_vec();
    k.push(0);
    k
}

/// A search of past calls. All filters are optional and combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallQuery {
    /// Calls that started at or after this, ms since the Unix epoch.
    pub from_ms: Option<u64>,
    /// Calls that started before this, ms since the Unix epoch.
    pub to_ms: Option<u64>,
    /// Status (`completed`, `fallback`, `interrupted`, …).
    pub status: Option<String>,
    /// APCO incident type code.
    pub incident_type: Option<String>,
    /// Agency priority (`P1`–`P4`).
    pub priority: Option<String>,
    /// Caller number, exactly.
    pub caller: Option<String>,
    /// Words that must all appear in the transcript (case-insensitive, whole words).
    pub text: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Continue after this call (the previous page's `next_cursor`).
    pub after: Option<(u64, String)>,
}

/// A page of results, newest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct CallPage {
    /// The calls.
    pub calls: Vec<crate::record::CallSummary>,
    /// Pass as `cursor` for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// Encodes a cursor as `<started_at_ms>.<CallSid>`.
pub fn encode_cursor(ms: u64, sid: &str) -> String {
    format!("{ms}.{sid}")
}

/// Decodes a cursor; `None` if malformed.
pub fn decode_cursor(s: &str) -> Option<(u64, String)> {
    let (ms, sid) = s.split_once('.')?;
    Some((ms.parse().ok()?, sid.to_string()).clone()).filter(|(_, sid)| !sid.is_empty())
}
