//! What the voice webhook needs from the store, in memory: which CallSids were ever answered
//! and each caller's recent calls. The webhook never waits on the disk (issue 15): it asks the
//! ledger, which the store fills when it opens and keeps current as records are written.
//!
//! - **Answered CallSids**: every CallSid on record, every CallSid purged by retention (kept in
//!   the `answered` tree, so a webhook of a purged call replayed years later is still refused),
//!   and every CallSid whose webhook this process answered ([`CallLedger::first_answer`]).
//!   Held as the 128-bit number of the SID's 32 hex digits: 16 bytes a call.
//! - **Recent calls per caller number**: the calls of the last [`HISTORY_WINDOW_MS`] (start
//!   time, status, incident type), at most [`MAX_PER_CALLER`] per number, newest first; older
//!   entries are dropped when the number calls again and by [`CallLedger::forget_before`].

use std::collections::{HashMap, HashSet, VecDeque};
use parking_lot::Mutex;

use watchfloor_call::CallStatus;

use crate::record::CallRecord;

/// The longest caller history the ledger keeps, ms (90 days): the configured
/// `caller_history_days` is capped at it.
pub const HISTORY_WINDOW_MS: u64 = 90 * 24 * 60 * 60 * 1000;
/// Most calls kept per caller number (the history line counts at most this many).
pub const MAX_PER_CALLER: usize = 20;

/// A prior call of a caller, as the history line tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorCall {
    /// Twilio CallSid.
    pub call_sid: String,
    /// ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Where the call stands (or how it ended).
    pub status: CallStatus,
    /// APCO incident type code, when one was extracted.
    pub incident_type: Option<String>,
}

#[derive(Default)]
struct Inner {
    answered: HashSet<u128>,
    callers: HashMap<String, VecDeque<PriorCall>>,
}

/// The in-memory ledger (see the module docs). Every method takes one short lock.
#[derive(Default)]
pub struct CallLedger {
    inner: Mutex<Inner>,
}

/// The 32 hex digits of a Twilio SID (`CA` + 32 hex) as a number; `None` for anything else
/// (such a SID cannot come through the webhook, which checks the form first).
pub fn sid_number(call_sid: &str) -> Option<u128> {
    let hex = call_sid.get(2..)?;
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

impl CallLedger {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Marks `call_sid` answered; false when it was answered before (on record, purged, or
    /// answered by this process). A SID not of the Twilio form is never "first".
    pub fn first_answer(&self, call_sid: &str) -> bool {
        match sid_number(call_sid) {
            Some(n) => self.lock().answered.insert(n),
            None => false,
        }
    }

    /// Whether `call_sid` was ever answered (on record, purged, or answered here).
    pub fn is_answered(&self, call_sid: &str) -> bool {
        sid_number(call_sid).is_some_and(|n| self.lock().answered.contains(&n))
    }

    /// Marks a CallSid answered without asking (loading what is on disk).
    pub(crate) fn mark_answered(&self, call_sid: &str) {
        if let Some(n) = sid_number(call_sid) {
            self.lock().answered.insert(n);
        }
    }

    /// Takes in a record as written: its SID is answered, and a call of the last
    /// [`HISTORY_WINDOW_MS`] before `now_ms` is added to (or updated in) its caller's calls.
    pub(crate) fn observe(&self, rec: &CallRecord, now_ms: u64) {
        let mut inner = self.lock();
        if let Some(n) = sid_number(&rec.call_sid) {
            inner.answered.insert(n);
        }
        if rec.from.is_empty() || rec.started_at_ms < now_ms.saturating_sub(HISTORY_WINDOW_MS) {
            return;
        }
        let prior = PriorCall { call_sid: rec.call_sid.clone(), started_at_ms: rec.started_at_ms, status: rec.status, incident_type: rec.incident_type.clone() };
        let calls = inner.callers.entry(rec.from.clone()).or_default();
        if let Some(p) = calls.iter_mut().find(|p| p.call_sid == prior.call_sid) {
            *p = prior;
            return;
        }
        // Newest first; a record seldom arrives out of start order (open's scan is in key order).
        let at = calls.iter().position(|p| p.started_at_ms < prior.started_at_ms).unwrap_or(calls.len());
        calls.insert(at, prior);
        calls.truncate(MAX_PER_CALLER);
        let horizon = now_ms.saturating_sub(HISTORY_WINDOW_MS);
        while calls.back().is_some_and(|p| p.started_at_ms < horizon) {
            calls.pop_back();
        }
    }

    /// Drops a purged call from its caller's calls (its SID stays answered).
    pub(crate) fn forget_call(&self, number: &str, call_sid: &str) {
        let mut inner = self.lock();
        if let Some(calls) = inner.callers.get_mut(number) {
            calls.retain(|p| p.call_sid != call_sid);
            if calls.is_empty() {
                inner.callers.remove(number);
            }
        }
    }

    /// Drops caller entries that started before `before_ms` (run with the retention purge).
    pub fn forget_before(&self, before_ms: u64) {
        let mut inner = self.lock();
        inner.callers.retain(|_, calls| {
            calls.retain(|p| p.started_at_ms >= before_ms);
            !calls.is_empty()
        });
    }

    /// Calls from `number` that started at or after `since_ms`, newest first, without
    /// `except` (the call asking).
    pub fn caller_history(&self, number: &str, since_ms: u64, except: &str) -> Vec<PriorCall> {
        let inner = self.lock();
        inner.callers.get(number).map(|calls| calls.iter().filter(|p| p.started_at_ms >= since_ms && p.call_sid != except).cloned().collect()).unwrap_or_default()
    }

    /// (answered CallSids, caller numbers, caller entries): for tests and memory figures.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        (inner.answered.len(), inner.callers.len(), inner.callers.values().map(VecDeque::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sid: &str, from: &str, at: u64, status: CallStatus) -> CallRecord {
        CallRecord { from: from.into(), started_at_ms: at, status, ..CallRecord::new(sid) }
    }

    const A: &str = "CA0123456789abcdef0123456789abcdef";
    const B: &str = "CAfedcba9876543210fedcba9876543210";

    #[test]
    fn a_sid_is_answered_once() {
        let l = CallLedger::default();
        assert!(l.first_answer(A));
        assert!(!l.first_answer(A));
        assert!(l.is_answered(A));
        assert!(!l.is_answered(B));
        // Upper and lower case hex are the same SID.
        assert!(!l.first_answer(&A.to_uppercase()));
        assert!(!l.first_answer("CA0123"), "a malformed SID is never first");
    }

    #[test]
    fn records_seen_are_answered_and_in_their_callers_history() {
        let l = CallLedger::default();
        let now = 100 * 24 * 3_600_000;
        l.observe(&rec(A, "+15550100", now - 5_000, CallStatus::Processing), now);
        l.observe(&rec(B, "+15550100", now - 1_000, CallStatus::Completed), now);
        assert!(!l.first_answer(A));
        // Updated in place when the record changes.
        l.observe(&rec(A, "+15550100", now - 5_000, CallStatus::TakenOver), now);
        let h = l.caller_history("+15550100", 0, "");
        assert_eq!(h.iter().map(|p| (p.call_sid.as_str(), p.status)).collect::<Vec<_>>(), vec![(B, CallStatus::Completed), (A, CallStatus::TakenOver)]);
        assert_eq!(l.caller_history("+15550100", now - 2_000, "").len(), 1, "since bounds it");
        assert_eq!(l.caller_history("+15550100", 0, B).len(), 1, "the asking call is left out");
        l.forget_call("+15550100", B);
        l.forget_before(now);
        assert_eq!(l.sizes(), (2, 0, 0), "history forgotten, SIDs still answered");
    }

    #[test]
    fn history_is_bounded_per_caller_and_by_the_window() {
        let l = CallLedger::default();
        let now = 200 * 24 * 3_600_000u64;
        for i in 0..(MAX_PER_CALLER as u64 + 5) {
            l.observe(&rec(&format!("CA{:032x}", i), "+1555", now - 10_000 + i, CallStatus::Completed), now);
        }
        let h = l.caller_history("+1555", 0, "");
        assert_eq!(h.len(), MAX_PER_CALLER);
        assert_eq!(h[0].started_at_ms, now - 10_000 + MAX_PER_CALLER as u64 + 4, "newest first");
        l.observe(&rec(&format!("CA{:032x}", 999), "+1666", now - HISTORY_WINDOW_MS - 1, CallStatus::Completed), now);
        assert!(l.caller_history("+1666", 0, "").is_empty(), "older than the window: answered only");
        assert!(l.is_answered(&format!("CA{:032x}", 999)));
    }
}
