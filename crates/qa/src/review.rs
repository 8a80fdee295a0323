//! Human review of a call (issue 19; APCO/NENA ANS 1.107.1): a reviewer agrees with or corrects
//! each item of the automatic scorecard (a correction carries a comment), adds notes at times on
//! the recording, and signs. A second reviewer may score the same call blind (without seeing the
//! first review); [`calibration`] compares reviewers item by item.
//!
//! Sans-IO: [`Review::from_draft`] validates a submission against the call's scorecard; the
//! server stores the result and audits it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::score::{CardRef, ItemResult, Scorecard};

/// Longest comment or note, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Most notes on one review.
pub const MAX_NOTES: usize = 200;

/// A reviewer's verdict on one item, as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ItemVerdict {
    /// The item's id on the card (`ItemScore::id`).
    pub id: String,
    /// What the reviewer finds the item came to.
    pub result: ItemResult,
    /// Why; required when `result` differs from the automatic result (a correction).
    #[serde(default)]
    pub comment: Option<String>,
}

/// A note at a time on the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Where on the recording, ms from its start.
    pub at_ms: u64,
    /// The note, 1–2000 characters.
    pub text: String,
}

/// A review as submitted (`POST /api/calls/{CallSid}/reviews`): items not listed are taken as
/// agreeing with the automatic result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ReviewDraft {
    /// Verdicts, at most one per item.
    #[serde(default)]
    pub items: Vec<ItemVerdict>,
    /// Notes on the recording.
    #[serde(default)]
    pub notes: Vec<Note>,
    /// Scored without seeing another reviewer's review of the call (a calibration review).
    #[serde(default)]
    pub blind: bool,
    /// Sign it: a signed review is final. Unsigned, it is a draft the reviewer may replace.
    #[serde(default)]
    pub sign: bool,
}

/// One item of a stored review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ReviewedItem {
    /// The item's id.
    pub id: String,
    /// What the automatic scorecard said.
    pub automatic: ItemResult,
    /// What the reviewer says.
    pub result: ItemResult,
    /// The reviewer's comment, if any.
    pub comment: Option<String>,
}

impl ReviewedItem {
    /// Whether the reviewer agrees with the automatic result.
    pub fn agrees(&self) -> bool {
        self.automatic == self.result
    }
}

/// A stored review: every item of the scorecard with the reviewer's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Review {
    /// The call.
    pub call_sid: String,
    /// The reviewer's user name.
    pub reviewer: String,
    /// The cards the automatic scorecard it reviews was made with.
    pub card: CardRef,
    /// Scored without seeing another review of the call.
    pub blind: bool,
    /// Every item of the scorecard, in the card's order.
    pub items: Vec<ReviewedItem>,
    /// Notes on the recording, by time.
    pub notes: Vec<Note>,
    /// When it was last saved, ms since the Unix epoch.
    pub saved_at_ms: u64,
    /// When it was signed, ms since the Unix epoch; `None` for a draft.
    pub signed_at_ms: Option<u64>,
}

/// Why a review was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// An item id that is not on the call's scorecard.
    #[error("no item {0} on this call's scorecard")]
    UnknownItem(String),
    /// The same item twice.
    #[error("item {0} is given twice")]
    RepeatedItem(String),
    /// A correction without a comment.
    #[error("item {0} is corrected: a comment must say why")]
    CorrectionWithoutComment(String),
    /// A comment or note that is empty or too long.
    #[error("{0} must be 1 to 2000 characters")]
    BadText(String),
    /// Too many notes.
    #[error("at most 200 notes")]
    TooManyNotes,
    /// A note past the end of the recording.
    #[error("a note at {at_ms} ms is past the end of the recording ({length_ms} ms)")]
    NoteOutside {
        /// The note's time, ms.
        at_ms: u64,
        /// The recording's length, ms.
        length_ms: u64,
    },
    /// The reviewer already signed a review of this call.
    #[error("{0} has already signed a review of this call")]
    AlreadySigned(String),
}

fn text_ok(what: &str, t: &str) -> Result<(), ReviewError> {
    let n = t.trim().chars().count();
    if n == 0 || t.chars().count() > MAX_TEXT_CHARS { Err(ReviewError::BadText(what.to_string())) } else { Ok(()) }
}

impl Review {
    /// Checks `draft` against the call's automatic `scorecard` and makes the review of
    /// `reviewer` saved at `now_ms` (signed then when the draft asks). `length_ms`: the
    /// recording's length, when known (notes must fall within it). `previous`: the reviewer's
    /// stored review of this call, if any (a signed one cannot be replaced).
    ///
    /// Errors: [`ReviewError`].
    pub fn from_draft(call_sid: &str, reviewer: &str, draft: ReviewDraft, scorecard: &Scorecard, length_ms: Option<u64>, previous: Option<&Review>, now_ms: u64) -> Result<Review, ReviewError> {
        if previous.is_some_and(|p| p.signed_at_ms.is_some()) {
            return Err(ReviewError::AlreadySigned(reviewer.to_string()));
        }
        let mut given: BTreeMap<&str, &ItemVerdict> = BTreeMap::new();
        for v in &draft.items {
            if !scorecard.items.iter().any(|i| i.id == v.id) {
                return Err(ReviewError::UnknownItem(v.id.clone()));
            }
            if given.insert(v.id.as_str(), v).is_some() {
                return Err(ReviewError::RepeatedItem(v.id.clone()));
            }
            if let Some(c) = &v.comment {
                text_ok(&format!("the comment on {}", v.id), c)?;
            }
        }
        let mut items = Vec::with_capacity(scorecard.items.len());
        for i in &scorecard.items {
            let (result, comment) = match given.get(i.id.as_str()) {
                Some(v) => (v.result, v.comment.clone()),
                None => (i.result, None),
            };
            if result != i.result && comment.is_none() {
                return Err(ReviewError::CorrectionWithoutComment(i.id.clone()));
            }
            items.push(ReviewedItem { id: i.id.clone(), automatic: i.result, result, comment });
        }
        if draft.notes.len() > MAX_NOTES {
            return Err(ReviewError::TooManyNotes);
        }
        for n in &draft.notes {
            text_ok("a note", &n.text)?;
            if let Some(length_ms) = length_ms
                && n.at_ms > length_ms
            {
                return Err(ReviewError::NoteOutside { at_ms: n.at_ms, length_ms });
            }
        }
        let mut notes = draft.notes;
        notes.sort_by_key(|n| n.at_ms);
        Ok(Review {
            call_sid: call_sid.to_string(),
            reviewer: reviewer.to_string(),
            card: scorecard.card.clone(),
            blind: draft.blind,
            items,
            notes,
            saved_at_ms: now_ms,
            signed_at_ms: draft.sign.then_some(now_ms),
        })
    }

    /// The review as another reviewer who scores blind may see it: who and when, no results.
    pub fn withheld(&self) -> Review {
        Review { items: Vec::new(), notes: Vec::new(), ..self.clone() }
    }
}

/// Agreement on one item across the signed reviews of a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ItemAgreement {
    /// The item's id.
    pub id: String,
    /// Signed reviews that scored it.
    pub reviews: u32,
    /// Of those, how many agree with the automatic result.
    pub with_automatic: u32,
    /// Pairs of reviewers who scored it on the same call.
    pub pairs: u32,
    /// Of those pairs, how many gave the same result.
    pub pairs_agreeing: u32,
}

/// One reviewer's agreement across the signed reviews of a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ReviewerAgreement {
    /// The reviewer's user name.
    pub reviewer: String,
    /// Signed reviews.
    pub reviews: u32,
    /// Of those, scored blind.
    pub blind: u32,
    /// Items scored.
    pub items: u32,
    /// Of those, how many agree with the automatic result.
    pub with_automatic: u32,
    /// Items this reviewer and another both scored on the same call.
    pub pairs: u32,
    /// Of those, how many the two gave the same result.
    pub pairs_agreeing: u32,
}

/// The calibration report: agreement per item and per reviewer (APCO/NENA ANS 1.107.1 asks
/// for calibration between evaluators). Rates are left to the reader: each count comes with
/// its total, so nothing is hidden by a rate over a handful of reviews.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Calibration {
    /// Signed reviews counted.
    pub reviews: u32,
    /// Calls with two or more signed reviews.
    pub calls_with_several: u32,
    /// Per item, in id order.
    pub items: Vec<ItemAgreement>,
    /// Per reviewer, in name order.
    pub reviewers: Vec<ReviewerAgreement>,
}

/// The calibration report over `reviews` (drafts are left out; any order).
pub fn calibration(reviews: &[Review]) -> Calibration {
    let signed: Vec<&Review> = reviews.iter().filter(|r| r.signed_at_ms.is_some()).collect();
    let mut items: BTreeMap<&str, ItemAgreement> = BTreeMap::new();
    let mut reviewers: BTreeMap<&str, ReviewerAgreement> = BTreeMap::new();
    let mut by_call: BTreeMap<&str, Vec<&Review>> = BTreeMap::new();
    for r in &signed {
        by_call.entry(r.call_sid.as_str()).or_default().push(r);
        let who = reviewers.entry(r.reviewer.as_str()).or_insert_with(|| ReviewerAgreement { reviewer: r.reviewer.clone(), ..Default::default() });
        who.reviews += 1;
        who.blind += u32::from(r.blind);
        for i in &r.items {
            who.items += 1;
            who.with_automatic += u32::from(i.agrees());
            let it = items.entry(i.id.as_str()).or_insert_with(|| ItemAgreement { id: i.id.clone(), ..Default::default() });
            it.reviews += 1;
            it.with_automatic += u32::from(i.agrees());
        }
    }
    let mut calls_with_several = 0;
    for list in by_call.values().filter(|l| l.len() > 1) {
        calls_with_several += 1;
        for (n, a) in list.iter().enumerate() {
            for b in &list[n + 1..] {
                for ia in &a.items {
                    let Some(ib) = b.items.iter().find(|x| x.id == ia.id) else { continue };
                    let same = u32::from(ia.result == ib.result);
                    if let Some(it) = items.get_mut(ia.id.as_str()) {
                        it.pairs += 1;
                        it.pairs_agreeing += same;
                    }
                    for who in [a.reviewer.as_str(), b.reviewer.as_str()] {
                        if let Some(w) = reviewers.get_mut(who) {
                            w.pairs += 1;
                            w.pairs_agreeing += same;
                        }
                    }
                }
            }
        }
    }
    Calibration { reviews: signed.len() as u32, calls_with_several, items: items.into_values().collect(), reviewers: reviewers.into_values().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{ItemScore, Level, Times};
    use crate::Category;

    fn card(results: &[(&str, ItemResult)]) -> Scorecard {
        Scorecard {
            card: CardRef { id: "default".into(), version: 1 },
            incident_type: Some("structure_fire".into()),
            level: Level::High,
            categories: BTreeMap::new(),
            items: results.iter().map(|(id, r)| ItemScore { id: id.to_string(), category: Category::CaseEntry, text: id.to_string(), result: *r, evidence: Vec::new() }).collect(),
            times: Times::default(),
        }
    }

    fn verdict(id: &str, result: ItemResult, comment: Option<&str>) -> ItemVerdict {
        ItemVerdict { id: id.into(), result, comment: comment.map(str::to_string) }
    }

    use ItemResult::{Met, Missed, NotApplicable};

    #[test]
    fn items_not_given_agree_and_a_correction_needs_a_comment() {
        let sc = card(&[("location", Met), ("callback", Missed), ("inside", NotApplicable)]);
        let draft = ReviewDraft { items: vec![verdict("callback", Met, Some("asked at 0:41"))], notes: vec![Note { at_ms: 41_000, text: "callback read back".into() }], blind: false, sign: true };
        let r = Review::from_draft("CA1", "rita", draft, &sc, Some(60_000), None, 5).unwrap();
        assert_eq!(r.items.iter().map(|i| (i.id.as_str(), i.result, i.agrees())).collect::<Vec<_>>(), vec![("location", Met, true), ("callback", Met, false), ("inside", NotApplicable, true)]);
        assert_eq!(r.signed_at_ms, Some(5));
        let bad = ReviewDraft { items: vec![verdict("callback", Met, None)], ..Default::default() };
        assert_eq!(Review::from_draft("CA1", "rita", bad, &sc, None, None, 5), Err(ReviewError::CorrectionWithoutComment("callback".into())));
    }

    #[test]
    fn bad_drafts_are_refused_with_the_reason() {
        let sc = card(&[("location", Met)]);
        let refuse = |d: ReviewDraft| Review::from_draft("CA1", "rita", d, &sc, Some(10_000), None, 5).unwrap_err();
        assert_eq!(refuse(ReviewDraft { items: vec![verdict("nope", Met, None)], ..Default::default() }), ReviewError::UnknownItem("nope".into()));
        assert_eq!(refuse(ReviewDraft { items: vec![verdict("location", Met, None), verdict("location", Met, None)], ..Default::default() }), ReviewError::RepeatedItem("location".into()));
        assert_eq!(refuse(ReviewDraft { notes: vec![Note { at_ms: 10_001, text: "late".into() }], ..Default::default() }), ReviewError::NoteOutside { at_ms: 10_001, length_ms: 10_000 });
        assert!(matches!(refuse(ReviewDraft { notes: vec![Note { at_ms: 1, text: "  ".into() }], ..Default::default() }), ReviewError::BadText(_)));
        assert!(matches!(refuse(ReviewDraft { items: vec![verdict("location", Missed, Some(&"x".repeat(2001)))], ..Default::default() }), ReviewError::BadText(_)));
        // A draft may be replaced; a signed review may not.
        let draft = Review::from_draft("CA1", "rita", ReviewDraft::default(), &sc, None, None, 5).unwrap();
        assert!(Review::from_draft("CA1", "rita", ReviewDraft { sign: true, ..Default::default() }, &sc, None, Some(&draft), 6).is_ok());
        let signed = Review { signed_at_ms: Some(6), ..draft };
        assert_eq!(Review::from_draft("CA1", "rita", ReviewDraft::default(), &sc, None, Some(&signed), 7), Err(ReviewError::AlreadySigned("rita".into())));
    }

    #[test]
    fn calibration_counts_agreement_per_item_and_per_reviewer() {
        let sc = card(&[("location", Met), ("callback", Missed)]);
        let review = |call: &str, who: &str, items: Vec<ItemVerdict>, blind: bool, sign: bool| Review::from_draft(call, who, ReviewDraft { items, notes: vec![], blind, sign }, &sc, None, None, 1).unwrap();
        let reviews = vec![
            // CA1: rita agrees throughout; sam (blind) corrects callback.
            review("CA1", "rita", vec![], false, true),
            review("CA1", "sam", vec![verdict("callback", Met, Some("heard it"))], true, true),
            // CA2: only rita; a draft of sam's is left out.
            review("CA2", "rita", vec![verdict("location", Missed, Some("never read back"))], false, true),
            review("CA2", "sam", vec![], true, false),
        ];
        let c = calibration(&reviews);
        assert_eq!((c.reviews, c.calls_with_several), (3, 1));
        let item = |id: &str| c.items.iter().find(|i| i.id == id).unwrap().clone();
        assert_eq!(item("location"), ItemAgreement { id: "location".into(), reviews: 3, with_automatic: 2, pairs: 1, pairs_agreeing: 1 });
        assert_eq!(item("callback"), ItemAgreement { id: "callback".into(), reviews: 3, with_automatic: 2, pairs: 1, pairs_agreeing: 0 });
        assert_eq!(c.reviewers[0], ReviewerAgreement { reviewer: "rita".into(), reviews: 2, blind: 0, items: 4, with_automatic: 3, pairs: 2, pairs_agreeing: 1 });
        assert_eq!(c.reviewers[1], ReviewerAgreement { reviewer: "sam".into(), reviews: 1, blind: 1, items: 2, with_automatic: 1, pairs: 2, pairs_agreeing: 1 });
    }
}
