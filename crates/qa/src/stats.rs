//! Figures at a glance (issue 19): what the statistics page draws for a period, computed from
//! each call's scorecard and flags — calls per hour, answer → dispatch (p50 / p90), AI-handled
//! against handed off and taken over, the supervisor override rate, compliance by category and
//! by incident type, review coverage.
//!
//! Percentiles are nearest-rank: the p-th percentile of n sorted values is the value at rank
//! ⌈p/100 · n⌉ (1-based).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::card::Category;
use crate::queue::{QueueEntry, Reason};
use crate::score::{CardRef, Level, Scorecard, Times};

/// An hour, ms.
pub const HOUR_MS: u64 = 3_600_000;

/// How a call was handled, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// The AI kept the call to its end.
    Ai,
    /// A supervisor held the caller's voice (and handed it back or kept it to the end).
    TakenOver,
    /// Handed off: transferred, taken over to a line, hung up by a supervisor, or sent to the
    /// human line by the fallback. Counted before a takeover.
    HandedOff,
}

/// What the statistics and the queue need of one scored call: its scorecard without the items
/// (about 300 bytes of JSON where the whole card is several KB), so a period of 10,000 calls
/// reads quickly. Stored beside each scorecard, per card version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    /// Its CallSid.
    pub call_sid: String,
    /// When it started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// The cards it was scored with.
    pub card: CardRef,
    /// The incident type it was scored as, if known.
    pub incident_type: Option<String>,
    /// The overall level.
    pub level: Level,
    /// Each category's level.
    pub categories: BTreeMap<Category, Level>,
    /// The times that matter.
    pub times: Times,
    /// Its queue flags ([`crate::queue::flags`]).
    pub flags: Vec<Reason>,
}

impl CallStats {
    /// The summary of `card`, the scorecard of the call `call_sid` started at `started_at_ms`
    /// (ms since the epoch), with its queue `flags`.
    pub fn of(call_sid: &str, started_at_ms: u64, card: &Scorecard, flags: Vec<Reason>) -> CallStats {
        CallStats {
            call_sid: call_sid.to_string(),
            started_at_ms,
            card: card.card.clone(),
            incident_type: card.incident_type.clone(),
            level: card.level,
            categories: card.categories.clone(),
            times: card.times.clone(),
            flags,
        }
    }

    /// How the call was handled: a hand-off first, then a takeover, else the AI.
    pub fn handling(&self) -> Handling {
        if self.times.hand_offs > 0 {
            Handling::HandedOff
        } else if self.times.takeovers > 0 {
            Handling::TakenOver
        } else {
            Handling::Ai
        }
    }
}

/// Nearest-rank percentiles of a distribution, ms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Distribution {
    /// How many values.
    pub count: usize,
    /// The median (none without values).
    pub p50: Option<u64>,
    /// The 90th percentile.
    pub p90: Option<u64>,
    /// A histogram: `(bin start, count)` for bins of [`Distribution::BIN_MS`], from 0 up to the
    /// bin of the largest value (empty bins included, so a chart's axis is even).
    pub histogram: Vec<(u64, u32)>,
}

impl Distribution {
    /// The histogram's bin width: 10 s (NFPA 1225's 60 s goal falls on a bin edge).
    pub const BIN_MS: u64 = 10_000;

    /// The distribution of `values` (any order); percentiles by nearest rank.
    pub fn of(mut values: Vec<u64>) -> Distribution {
        values.sort_unstable();
        let rank = |p: u64| values.get(((p as usize * values.len()).div_ceil(100)).max(1) - 1).copied();
        let bins = values.last().map_or(0, |max| max / Self::BIN_MS + 1);
        let mut histogram: Vec<(u64, u32)> = (0..bins).map(|b| (b * Self::BIN_MS, 0)).collect();
        for v in &values {
            histogram[(v / Self::BIN_MS) as usize].1 += 1;
        }
        Distribution { count: values.len(), p50: rank(50), p90: rank(90), histogram }
    }
}

/// Calls at each compliance level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LevelCounts {
    /// Calls at High (the share of applicable items met at or above the cards' `high` band).
    pub high: u32,
    /// Calls at Partial (at or above the `partial` band).
    pub partial: u32,
    /// Calls at Low (at or above the `low` band).
    pub low: u32,
    /// Non-compliant.
    pub non_compliant: u32,
}

impl LevelCounts {
    fn add(&mut self, l: Level) {
        match l {
            Level::High => self.high += 1,
            Level::Partial => self.partial += 1,
            Level::Low => self.low += 1,
            Level::NonCompliant => self.non_compliant += 1,
        }
    }
}

/// Review coverage for the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Coverage {
    /// Calls in the queue (sampled or flagged).
    pub queued: usize,
    /// Of those, drawn in the random sample.
    pub sampled: usize,
    /// Of those, calls with a signed review.
    pub reviewed: usize,
    /// Queued and not yet reviewed.
    pub due: usize,
}

/// The figures of a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Figures {
    /// The period's start, ms since the Unix epoch.
    pub from_ms: u64,
    /// Its end (exclusive).
    pub to_ms: u64,
    /// Ended calls that started in it.
    pub calls: usize,
    /// Calls started in each hour that had any: (the hour's start, ms since the epoch, count).
    pub calls_per_hour: Vec<(u64, u32)>,
    /// Answer → dispatch, of the calls dispatched.
    pub answer_to_dispatch_ms: Distribution,
    /// Calls by how they were handled.
    pub handled_by_ai: usize,
    /// Calls a supervisor took over.
    pub taken_over: usize,
    /// Calls handed off.
    pub handed_off: usize,
    /// The share of calls where a supervisor overrode the AI (0–1; 0 without calls).
    pub override_rate: f64,
    /// The overall level of every call.
    pub compliance: LevelCounts,
    /// Calls by level in each category.
    pub compliance_by_category: BTreeMap<Category, LevelCounts>,
    /// Calls by overall level for each incident type (`unknown` when none).
    pub compliance_by_type: BTreeMap<String, LevelCounts>,
    /// Review coverage.
    pub review: Coverage,
}

/// The figures of `calls` (ended calls started in [`from_ms`, `to_ms`)) and their review
/// `queue`; `reviewed`: how many queued calls have a signed review.
pub fn figures(from_ms: u64, to_ms: u64, calls: &[CallStats], queue: &[QueueEntry], reviewed: usize) -> Figures {
    let mut per_hour: BTreeMap<u64, u32> = BTreeMap::new();
    let mut to_dispatch = Vec::new();
    let (mut ai, mut taken, mut handed, mut overridden) = (0, 0, 0, 0);
    let mut compliance = LevelCounts::default();
    let mut by_category: BTreeMap<Category, LevelCounts> = BTreeMap::new();
    let mut by_type: BTreeMap<String, LevelCounts> = BTreeMap::new();
    for c in calls {
        *per_hour.entry(c.started_at_ms / HOUR_MS * HOUR_MS).or_default() += 1;
        if let Some(d) = c.times.answer_to_dispatch_ms {
            to_dispatch.push(d);
        }
        match c.handling() {
            Handling::Ai => ai += 1,
            Handling::TakenOver => taken += 1,
            Handling::HandedOff => handed += 1,
        }
        if c.flags.contains(&Reason::Override) {
            overridden += 1;
        }
        compliance.add(c.level);
        for (cat, level) in &c.categories {
            by_category.entry(*cat).or_default().add(*level);
        }
        by_type.entry(c.incident_type.clone().unwrap_or_else(|| "unknown".into())).or_default().add(c.level);
    }
    let queued = queue.len();
    let sampled = queue.iter().filter(|e| e.reasons.contains(&Reason::Sample)).count();
    Figures {
        from_ms,
        to_ms,
        calls: calls.len(),
        calls_per_hour: per_hour.into_iter().collect(),
        answer_to_dispatch_ms: Distribution::of(to_dispatch),
        handled_by_ai: ai,
        taken_over: taken,
        handed_off: handed,
        override_rate: if calls.is_empty() { 0.0 } else { overridden as f64 / calls.len() as f64 },
        compliance,
        compliance_by_category: by_category,
        compliance_by_type: by_type,
        review: Coverage { queued, sampled, reviewed: reviewed.min(queued), due: queued - reviewed.min(queued) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Distribution::of(vec![50, 10, 40, 20, 30, 60, 70, 80, 90, 100]);
        assert_eq!((d.count, d.p50, d.p90), (10, Some(50), Some(90)));
        let one = Distribution::of(vec![7]);
        assert_eq!((one.p50, one.p90), (Some(7), Some(7)));
        assert_eq!(Distribution::of(vec![]), Distribution::default());
        let d = Distribution::of((1..=3).collect());
        assert_eq!((d.p50, d.p90), (Some(2), Some(3)));
    }

    #[test]
    fn the_histogram_has_every_bin_up_to_the_largest_value() {
        let d = Distribution::of(vec![0, 9_999, 10_000, 35_000]);
        assert_eq!(d.histogram, vec![(0, 2), (10_000, 1), (20_000, 0), (30_000, 1)]);
        assert_eq!(d.histogram.iter().map(|b| b.1 as usize).sum::<usize>(), d.count);
    }
}
