//! Secondary indexes and the call query.
//!
//! One tree, `index`, holds every index; a key is
//! `kind byte ‖ value ‖ 0x00 ‖ started_at_ms (u64 BE) ‖ CallSid`, so a prefix scan of one value
//! walks its calls in start-time order (reversed for newest first). Kinds: `T` start time (no
//! value), `S` status, `C` caller number, `I` incident type, `P` priority.
//! The `words` tree is an inverted index of transcript terms: `term ‖ 0x00 ‖ CallSid` ([`words`]:
//! accents and case folded away; text without spaces — Chinese, Japanese, Korean — indexed as
//! overlapping pairs of characters).

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

/// The version of [`words`]' terms; the store re-indexes every transcript when the `words` tree
/// was made by another (1: lower-cased words only).
pub const WORDS_VERSION: u8 = 2;

/// The search terms of a text, for the transcript index and for a query (a query matches a call
/// whose transcript has all its terms):
/// - Unicode compatibility forms and case are folded (NFKD, lower case), and accents dropped
///   (combining marks, except the Japanese voicing marks, which recompose: `が` stays `が`), so
///   `CAFÉ`, `café` and `cafe` are one term;
/// - runs of letters and digits in scripts written with spaces are words of 2+ characters;
/// - runs of Han, Hiragana, Katakana or Hangul characters, written without spaces, are cut
///   into every pair of neighbouring characters (character bigrams; a run of one character is
///   itself a term), so `火事です` indexes `火事`, `事で`, `です` and a search for `火事` finds it.
pub fn words(text: &str) -> BTreeSet<String> {
    use unicode_normalization::UnicodeNormalization as _;
    use unicode_normalization::char::is_combining_mark;
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c) || matches!(*c, '\u{3099}' | '\u{309A}'))
        .nfc()
        .flat_map(char::to_lowercase)
        .collect();
    let mut out = BTreeSet::new();
    for run in folded.split(|c: char| !c.is_alphanumeric()) {
        let mut word = String::new();
        let mut cjk: Vec<char> = Vec::new();
        // A run may mix scripts (`ＧＰＳで` → `gps` and `で`): each stretch on its own.
        for c in run.chars().chain(std::iter::once(' ')) {
            if c != ' ' && no_spaces(c) {
                if word.chars().count() >= 2 {
                    out.insert(std::mem::take(&mut word));
                }
                word.clear();
                cjk.push(c);
            } else {
                match cjk.len() {
                    0 => {}
                    1 => {
                        out.insert(cjk[0].to_string());
                    }
                    _ => {
                        for pair in cjk.windows(2) {
                            out.insert(pair.iter().collect());
                        }
                    }
                }
                cjk.clear();
                if c != ' ' {
                    word.push(c);
                }
            }
        }
        if word.chars().count() >= 2 {
            out.insert(word);
        }
    }
    out
}

/// A character of a script written without spaces between words: Han (CJK ideographs and
/// their extensions), Hiragana, Katakana (full and half width), Hangul syllables.
fn no_spaces(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F | 0xAC00..=0xD7AF | 0x20000..=0x2FA1F)
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

#[cfg(test)]
mod word_tests {
    use super::words;

    fn w(text: &str) -> Vec<String> {
        words(text).into_iter().collect()
    }

    #[test]
    fn accents_and_case_fold_away() {
        assert_eq!(w("CAFÉ café cafe"), ["cafe"]);
        assert_eq!(w("Está ardiendo la cocina"), ["ardiendo", "cocina", "esta", "la"]);
        assert_eq!(w("Ｆｉｒｅ at No. 5"), ["at", "fire", "no"], "full-width letters fold to ASCII; one-character words are left out");
        assert_eq!(w("Ñandú"), ["nandu"]);
    }

    #[test]
    fn text_without_spaces_is_indexed_by_character_pairs() {
        assert_eq!(w("火事です"), ["です", "事で", "火事"]);
        // The voicing mark stays: が is not か.
        assert!(w("ガスが漏れています").contains(&"ガス".to_string()));
        assert!(!w("ガスが漏れています").contains(&"カス".to_string()));
        // Half-width katakana folds to full width.
        assert_eq!(w("ｶﾞｽ"), ["ガス"]);
        // Mixed scripts in one run are cut apart.
        assert_eq!(w("GPSで確認"), ["gps", "で確", "確認"]);
        assert_eq!(w("火"), ["火"]);
        // A query is cut the same way, so every pair of a longer word must be in the line.
        let line = words("台所で火事です");
        assert!(words("火事").is_subset(&line));
        assert!(!words("火山").is_subset(&line));
    }
}
