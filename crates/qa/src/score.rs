//! A call's automatic scorecard from its events (issue 19): each item of the card set met,
//! missed or not applicable, with its evidence; the times that matter; a compliance level per
//! category and overall. Deterministic: the same events and cards give the same scorecard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use watchfloor_call::{CallEvent, CallEventKind, CallFold, Speaker};
use watchfloor_dispatch::incident::{Location, Source};

use crate::card::{Cards, Category, Item, Levels, Rule};

/// What an item came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    /// The call did it (the evidence says where).
    Met,
    /// The call did not.
    Missed,
    /// It does not apply to this call (another incident type, or the type is unknown).
    NotApplicable,
}

/// A compliance level (IAED-style, `shared/DOMAIN.md`), from the share of applicable items met
/// against the card set's bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// At or above the `high` band.
    High,
    /// At or above `partial`.
    Partial,
    /// At or above `low`.
    Low,
    /// Below `low`.
    NonCompliant,
}

impl Level {
    /// The level of `met` items out of `applicable` under `bands` (none applicable: High —
    /// nothing was asked of the call).
    pub fn of(met: usize, applicable: usize, bands: &Levels) -> Level {
        if applicable == 0 {
            return Level::High;
        }
        let share = met as f64 / applicable as f64;
        if share >= bands.high {
            Level::High
        } else if share >= bands.partial {
            Level::Partial
        } else if share >= bands.low {
            Level::Low
        } else {
            Level::NonCompliant
        }
    }
}

/// Where an item was met (or, for an alert, where it was missed): a line of the call and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Evidence {
    /// The line as said (`Dispatcher: …`), or the event in words.
    pub line: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// One item's score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ItemScore {
    /// The item's id.
    pub id: String,
    /// Its category.
    pub category: Category,
    /// What a reviewer reads.
    pub text: String,
    /// What it came to.
    pub result: ItemResult,
    /// Where (empty when missed for want of anything to show, or not applicable).
    pub evidence: Vec<Evidence>,
}

/// The times that matter for QA, ms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Times {
    /// When the call was answered (its media stream started), ms since the Unix epoch.
    pub answered_at_ms: Option<u64>,
    /// Answer → the location first known.
    pub answer_to_location_ms: Option<u64>,
    /// Answer → the dispatch sent (NFPA 1225's goal: 60 s for 90 % of calls, DOMAIN.md).
    pub answer_to_dispatch_ms: Option<u64>,
    /// Supervisor interventions: whispers, takeovers, dispatch decisions and recalls, links.
    pub supervisor_interventions: u32,
    /// Takeovers (a supervisor held the caller's voice).
    pub takeovers: u32,
    /// Hand-offs: a supervisor's transfer, takeover to a line or hang-up, or the fallback to the
    /// human line.
    pub hand_offs: u32,
}

/// A card set's id and version, as a scorecard names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct CardRef {
    /// The set's id.
    pub id: String,
    /// Its version.
    pub version: u32,
}

/// A call's automatic scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Scorecard {
    /// The cards it was scored with.
    pub card: CardRef,
    /// The incident type it was scored as (the call's final type), if known.
    pub incident_type: Option<String>,
    /// The overall level.
    pub level: Level,
    /// Each category's level (categories with an applicable item only).
    pub categories: BTreeMap<Category, Level>,
    /// Each item, in the card's order.
    pub items: Vec<ItemScore>,
    /// The times that matter.
    pub times: Times,
}

/// Lower-cased, with curly apostrophes straightened and runs of white space made one.
fn normal(text: &str) -> String {
    text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A call-taker line: the AI agent's, or a supervisor's who held the voice.
struct Said<'a> {
    text: &'a str,
    /// Its machine translation, for a line in another language.
    read: Option<&'a str>,
    /// What the phrases are matched against: the translation if any, else the line, normalised.
    norm: String,
    at_ms: u64,
    by: Option<&'a str>,
}

impl Said<'_> {
    fn evidence(&self) -> Evidence {
        let who = match self.by {
            Some(user) => format!("Supervisor ({user})"),
            None => "Dispatcher".to_string(),
        };
        let line = match self.read {
            Some(t) => format!("{who}: {} (machine translation: {t})", self.text),
            None => format!("{who}: {}", self.text),
        };
        Evidence { line, at_ms: self.at_ms }
    }
}

/// The words that show a location was read back: the house number and the street's first word,
/// both streets of an intersection, or a landmark's first word (none: nothing to read back).
fn read_back_words(l: &Location) -> Vec<String> {
    let first = |s: &str| normal(s).split(' ').find(|w| !matches!(*w, "the" | "a" | "an" | "north" | "south" | "east" | "west" | "n" | "s" | "e" | "w")).map(str::to_string);
    match (&l.number, &l.street, &l.cross_street, &l.landmark) {
        (Some(n), Some(s), _, _) => [Some(normal(n)), first(s)].into_iter().flatten().collect(),
        (None, Some(s), Some(c), _) => [first(s), first(c)].into_iter().flatten().collect(),
        (None, Some(s), None, _) => first(s).into_iter().collect(),
        (None, None, _, Some(m)) => first(m).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Scores a call from its events (in order) with `cards`.
pub fn score(cards: &Cards, events: &[CallEvent]) -> Scorecard {
    let call_sid = events.first().map(|e| e.call_sid.to_string()).unwrap_or_default();
    let fold = CallFold::of(&call_sid, events);
    let said: Vec<Said> = fold
        .final_lines()
        .into_iter()
        .filter(|l| matches!(l.speaker, Speaker::Agent | Speaker::Supervisor))
        // A line in another language is scored by its machine translation into the centre's
        // (the cards' phrases are in that language); the evidence quotes both.
        .map(|l| Said { text: &l.text, read: l.translation.as_ref().map(|t| t.text.as_str()), norm: normal(l.translation.as_ref().map_or(&l.text, |t| &t.text)), at_ms: l.at_ms, by: l.by.as_deref() })
        .collect();
    let incident = fold.incident.as_ref();
    let code = incident.and_then(|i| i.incident_type.as_ref()).map(|t| t.value.clone());
    let find = |any: &[String], question: bool| -> Vec<Evidence> {
        let phrases: Vec<String> = any.iter().map(|p| normal(p)).collect();
        said.iter().find(|s| (!question || s.read.unwrap_or(s.text).contains('?')) && phrases.iter().any(|p| s.norm.contains(p.as_str()))).map(Said::evidence).into_iter().collect()
    };
    let alert_at = |label: &str| fold.alerts.iter().find(|a| a.alert.label() == label).map(|a| Evidence { line: format!("Alert: {label}"), at_ms: a.at_ms });
    let judge = |item: &Item| -> (ItemResult, Vec<Evidence>) {
        if !Cards::applies(item, code.as_deref()) {
            return (ItemResult::NotApplicable, Vec::new());
        }
        let found = match &item.rule {
            Rule::AgentSays { any } => find(any, false),
            Rule::AgentAsks { any } => find(any, true),
            Rule::LocationReadBack => {
                let words = incident.and_then(|i| i.location.as_ref()).map(|l| read_back_words(&l.value)).unwrap_or_default();
                if words.is_empty() {
                    Vec::new()
                } else {
                    said.iter().find(|s| words.iter().all(|w| s.norm.split(|c: char| !c.is_alphanumeric()).any(|t| t == w))).map(Said::evidence).into_iter().collect()
                }
            }
            Rule::IncidentTypeKnown => incident
                .and_then(|i| i.incident_type.as_ref())
                .map(|t| {
                    let by = match &t.source {
                        Source::Supervisor { user } => format!("supervisor {user}"),
                        Source::Model => "the AI".to_string(),
                        Source::Keywords => "keywords".to_string(),
                    };
                    Evidence { line: format!("Incident type {} (set by {by})", t.value), at_ms: t.set_at_ms }
                })
                .into_iter()
                .collect(),
            Rule::Dispatched => fold
                .dispatch
                .dispatched_at_ms
                .map(|at| Evidence { line: format!("Dispatched: {}", fold.dispatch.message.clone().unwrap_or_default()), at_ms: at })
                .into_iter()
                .collect(),
            Rule::NoAlert { alert } => {
                return match alert_at(alert) {
                    Some(e) => (ItemResult::Missed, vec![e]),
                    None => (ItemResult::Met, Vec::new()),
                };
            }
        };
        if found.is_empty() { (ItemResult::Missed, found) } else { (ItemResult::Met, found) }
    };
    let items: Vec<ItemScore> = cards
        .items
        .iter()
        .map(|item| {
            let (result, evidence) = judge(item);
            ItemScore { id: item.id.clone(), category: item.category, text: item.text.clone(), result, evidence }
        })
        .collect();
    let tally = |pick: &dyn Fn(&ItemScore) -> bool| {
        let applicable = items.iter().filter(|i| pick(i) && i.result != ItemResult::NotApplicable).count();
        let met = items.iter().filter(|i| pick(i) && i.result == ItemResult::Met).count();
        (met, applicable)
    };
    let mut categories = BTreeMap::new();
    for c in items.iter().map(|i| i.category) {
        let (met, applicable) = tally(&|i: &ItemScore| i.category == c);
        if applicable > 0 {
            categories.insert(c, Level::of(met, applicable, &cards.levels));
        }
    }
    let (met, applicable) = tally(&|_| true);
    Scorecard {
        card: CardRef { id: cards.id.clone(), version: cards.version },
        incident_type: code,
        level: Level::of(met, applicable, &cards.levels),
        categories,
        items,
        times: times(events),
    }
}

/// The times and counts of [`Times`] from the events.
fn times(events: &[CallEvent]) -> Times {
    let mut t = Times::default();
    let mut located_at = None;
    let mut dispatched_at = None;
    for ev in events {
        match &ev.kind {
            CallEventKind::StreamStarted { .. } => {
                t.answered_at_ms.get_or_insert(ev.at_ms);
            }
            CallEventKind::IncidentUpdated { incident } if incident.location.is_some() => {
                located_at.get_or_insert(ev.at_ms);
            }
            CallEventKind::Dispatched { by, .. } => {
                dispatched_at.get_or_insert(ev.at_ms);
                if matches!(by, watchfloor_dispatch::policy::DispatchedBy::Supervisor { .. }) {
                    t.supervisor_interventions += 1;
                }
            }
            CallEventKind::Whisper { .. } | CallEventKind::DispatchRecalled { .. } | CallEventKind::KeptApart { .. } => t.supervisor_interventions += 1,
            CallEventKind::IncidentLinked { by: Some(by), .. } if by != "policy" => t.supervisor_interventions += 1,
            CallEventKind::ModeChanged { mode: watchfloor_call::CallMode::Takeover, .. } => {
                t.takeovers += 1;
                t.supervisor_interventions += 1;
            }
            CallEventKind::HandedOff { .. } => {
                t.hand_offs += 1;
                t.supervisor_interventions += 1;
            }
            CallEventKind::Fallback { .. } => t.hand_offs += 1,
            _ => {}
        }
    }
    if let Some(a) = t.answered_at_ms {
        t.answer_to_location_ms = located_at.map(|l: u64| l.saturating_sub(a));
        t.answer_to_dispatch_ms = dispatched_at.map(|d: u64| d.saturating_sub(a));
    }
    t
}
