//! The human review queue (issue 19; APCO/NENA ANS 1.107.1: review at least 2 % of calls,
//! chosen at random, `shared/DOMAIN.md`): a random sample of calls plus every call a reviewer
//! must see — a hand-off, a takeover, a supervisor's override, a danger alert, a low automatic
//! score.
//!
//! The sample is drawn from the CallSid itself: Twilio's CallSids are `CA` and 32 random hex
//! digits, so their first 16 digits as a fraction of 2⁶⁴ are uniform on [0, 1); a call is in the
//! sample when that fraction is below the rate. The draw is stable (a call never leaves or joins
//! the sample when the queue is computed again) and needs no state. Every day with calls has at
//! least one sampled: when the draw picked none, the call with the lowest fraction is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchfloor_call::{CallEvent, CallEventKind, CallMode};
use watchfloor_dispatch::alerts::AlertKind;
use watchfloor_dispatch::incident::Source;

use crate::score::{Level, Scorecard};

/// A day, ms.
pub const DAY_MS: u64 = 86_400_000;

/// Why a call is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Drawn in the random sample (or the day's one call when the draw picked none).
    Sample,
    /// Handed off: a supervisor's transfer, takeover to a line or hang-up, or the fallback to
    /// the human line.
    HandOff,
    /// A supervisor held the caller's voice.
    Takeover,
    /// A supervisor overrode the AI: corrected the incident or the units, or recalled a dispatch.
    Override,
    /// A danger alert was raised (a weapon, not breathing …).
    Danger,
    /// The automatic score was Low or Non-compliant.
    LowScore,
}

/// The sample fraction of a CallSid (`CA` + hex): its first 16 hex digits over 2⁶⁴, in [0, 1);
/// none for a CallSid that is not of that form.
pub fn draw(call_sid: &str) -> Option<f64> {
    let hex = call_sid.strip_prefix("CA")?.get(..16)?;
    let n = u64::from_str_radix(hex, 16).ok()?;
    Some(n as f64 / 18_446_744_073_709_551_616.0)
}

/// The reasons a reviewer must see a call, from its events and its scorecard (the sample is
/// not among them: [`queue`] draws it).
pub fn flags(events: &[CallEvent], card: &Scorecard) -> Vec<Reason> {
    let mut r = Vec::new();
    let mut add = |x: Reason| {
        if !r.contains(&x) {
            r.push(x);
        }
    };
    for ev in events {
        match &ev.kind {
            CallEventKind::HandedOff { .. } | CallEventKind::Fallback { .. } => add(Reason::HandOff),
            CallEventKind::ModeChanged { mode: CallMode::Takeover, .. } => add(Reason::Takeover),
            CallEventKind::DispatchRecalled { .. } => add(Reason::Override),
            CallEventKind::IncidentUpdated { incident } => {
                let by_supervisor = |s: &Source| matches!(s, Source::Supervisor { .. });
                let i = incident.as_ref();
                let fields = [i.incident_type.as_ref().map(|f| &f.source), i.location.as_ref().map(|f| &f.source), i.priority.as_ref().map(|f| &f.source)];
                if fields.into_iter().flatten().any(by_supervisor) {
                    add(Reason::Override);
                }
            }
            CallEventKind::UnitAttached { by, .. } if by != "policy" => add(Reason::Override),
            CallEventKind::Alert { alert: AlertKind::Danger { .. }, .. } => add(Reason::Danger),
            _ => {}
        }
    }
    if matches!(card.level, Level::Low | Level::NonCompliant) {
        add(Reason::LowScore);
    }
    r.sort();
    r
}

/// A call the queue considers.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its CallSid.
    pub call_sid: String,
    /// When it started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Its [`flags`].
    pub flags: Vec<Reason>,
}

/// A call in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Its CallSid.
    pub call_sid: String,
    /// When it started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Why it is here, in [`Reason`] order.
    pub reasons: Vec<Reason>,
}

/// The review queue of `calls` with sample `rate` (0–1; ANS 1.107.1 asks at least 0.02):
/// sampled and flagged calls, oldest first. Every UTC day with calls has at least one sampled.
pub fn queue(calls: &[Candidate], rate: f64) -> Vec<QueueEntry> {
    let rate = rate.clamp(0.0, 1.0);
    let mut sampled: Vec<bool> = calls.iter().map(|c| draw(&c.call_sid).is_some_and(|d| d < rate)).collect();
    let mut days: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        days.entry(c.started_at_ms / DAY_MS).or_default().push(i);
    }
    for idx in days.values() {
        if rate > 0.0 && !idx.iter().any(|&i| sampled[i]) {
            let lowest = idx.iter().min_by(|&&a, &&b| {
                let (da, db) = (draw(&calls[a].call_sid).unwrap_or(1.0), draw(&calls[b].call_sid).unwrap_or(1.0));
                da.total_cmp(&db).then_with(|| calls[a].call_sid.cmp(&calls[b].call_sid))
            });
            if let Some(&i) = lowest {
                sampled[i] = true;
            }
        }
    }
    let mut out: Vec<QueueEntry> = calls
        .iter()
        .zip(sampled)
        .filter_map(|(c, s)| {
            let mut reasons = c.flags.clone();
            if s {
                reasons.push(Reason::Sample);
            }
            reasons.sort();
            reasons.dedup();
            (!reasons.is_empty()).then(|| QueueEntry { call_sid: c.call_sid.clone(), started_at_ms: c.started_at_ms, reasons })
        })
        .collect();
    out.sort_by(|a, b| a.started_at_ms.cmp(&b.started_at_ms).then_with(|| a.call_sid.cmp(&b.call_sid)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CallSids as Twilio makes them: `CA` + 32 random hex digits (a fixed-seed xorshift here, so
    /// the test is the same every run).
    fn sids(n: usize) -> Vec<String> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n).map(|_| format!("CA{:016x}{:016x}", next(), next())).collect()
    }

    #[test]
    fn two_percent_of_ten_thousand_calls_within_sampling_error_and_every_flag_queued() {
        let n = 10_000;
        let calls: Vec<Candidate> = sids(n)
            .into_iter()
            .enumerate()
            .map(|(i, call_sid)| Candidate { call_sid, started_at_ms: (i as u64) * 60_000, flags: if i % 500 == 7 { vec![Reason::Takeover] } else { vec![] } })
            .collect();
        let q = queue(&calls, 0.02);
        let sampled = q.iter().filter(|e| e.reasons.contains(&Reason::Sample)).count();
        // Binomial: mean 200, σ = √(10 000 × 0.02 × 0.98) = 14; within 3σ.
        assert!((158..=242).contains(&sampled), "{sampled} sampled");
        let flagged = q.iter().filter(|e| e.reasons.contains(&Reason::Takeover)).count();
        assert_eq!(flagged, n / 500, "every flagged call is queued");
        // Stable: computed again, the same queue.
        assert_eq!(queue(&calls, 0.02), q);
    }

    #[test]
    fn a_day_the_draw_missed_still_has_one_sampled_call() {
        let calls: Vec<Candidate> = sids(3).into_iter().enumerate().map(|(i, call_sid)| Candidate { call_sid, started_at_ms: 5 * DAY_MS + i as u64, flags: vec![] }).collect();
        let q = queue(&calls, 0.000_001);
        assert_eq!(q.len(), 1, "{q:?}");
        let lowest = calls.iter().min_by(|a, b| draw(&a.call_sid).unwrap().total_cmp(&draw(&b.call_sid).unwrap())).unwrap();
        assert_eq!(q[0].call_sid, lowest.call_sid);
        assert!(queue(&calls, 0.0).is_empty(), "a rate of 0 samples nothing");
        assert_eq!(draw("not-a-sid"), None);
    }
}
