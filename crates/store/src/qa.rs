//! What quality assurance keeps (issue 19), in three trees the store writes and reads whole
//! without knowing their shape (the `watchfloor-qa` types; the store does not depend on it):
//!
//! - `scorecards`: CallSid ‖ 0x00 ‖ card version (u32 BE) → the call's automatic scorecard as
//!   scored with that version of the cards. Every version's score is kept: a score names the
//!   cards it used, and a change of the cards adds scores, never rewrites the old ones.
//! - `scores`: card version (u32 BE) ‖ started_at_ms (u64 BE) ‖ CallSid → the scorecard's
//!   summary (no items, a few hundred bytes), so a period's figures are one range scan.
//! - `qa_cards`: version (u32 BE) → one saved version of the protocol cards (its text, who saved
//!   it and when).
//!
//! Scores are derived from the call's events and are not flushed on their own: one lost to a
//! power cut is computed again. Saved cards are flushed before the save is acknowledged.
//! Scores are purged with their call ([`crate::Store::purge`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Store, StoreError, call_prefix, corrupt};

fn scorecard_key(call_sid: &str, version: u32) -> Vec<u8> {
    let mut k = call_prefix(call_sid);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn summary_key(version: u32, started_at_ms: u64, call_sid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(12 + call_sid.len());
    k.extend_from_slice(&version.to_be_bytes());
    k.extend_from_slice(&started_at_ms.to_be_bytes());
    k.extend_from_slice(call_sid.as_bytes());
    k
}

fn to_json(v: &impl Serialize) -> Vec<u8> {
    // Invariant: the QA types are plain data (strings, numbers, maps with string keys).
    serde_json::to_vec(v).expect("QA data serialises")
}

impl Store {
    /// Saves a call's scorecard for card `version` with its summary (replacing a score of the
    /// same version). Not flushed: scores are derived data.
    pub fn put_score(&self, call_sid: &str, started_at_ms: u64, version: u32, scorecard: &impl Serialize, summary: &impl Serialize) -> Result<(), StoreError> {
        self.scores.insert(summary_key(version, started_at_ms, call_sid), to_json(summary))?;
        self.scorecards.insert(scorecard_key(call_sid, version), to_json(scorecard))?;
        Ok(())
    }

    /// Whether the call has a score of card `version`.
    pub fn has_score(&self, call_sid: &str, version: u32) -> Result<bool, StoreError> {
        Ok(self.scorecards.contains_key(scorecard_key(call_sid, version))?)
    }

    /// The call's scorecard of card `version`, if it was scored with it.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the stored value is not of type `T`.
    pub fn scorecard<T: DeserializeOwned>(&self, call_sid: &str, version: u32) -> Result<Option<T>, StoreError> {
        let key = scorecard_key(call_sid, version);
        match self.scorecards.get(&key)? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| corrupt(&key, e)),
            None => Ok(None),
        }
    }

    /// The card versions a call has been scored with, oldest first.
    pub fn score_versions(&self, call_sid: &str) -> Result<Vec<u32>, StoreError> {
        let prefix = call_prefix(call_sid);
        self.scorecards
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k?;
                Ok(k.get(prefix.len()..).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).unwrap_or(0))
            })
            .collect()
    }

    /// The summaries of the calls scored with card `version` that started in [`from_ms`,
    /// `to_ms`), in start order. A value that is not a `T` (written by another version) is
    /// skipped with a warning: the others still count.
    pub fn score_summaries<T: DeserializeOwned>(&self, version: u32, from_ms: u64, to_ms: u64) -> Result<Vec<T>, StoreError> {
        let (lo, hi) = (summary_key(version, from_ms, ""), summary_key(version, to_ms, ""));
        let mut out = Vec::new();
        for item in self.scores.range(lo..hi) {
            let (k, v) = item?;
            match serde_json::from_slice(&v) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(key = %String::from_utf8_lossy(&k[12..]), error = %e, "a stored score summary does not read: skipped"),
            }
        }
        Ok(out)
    }

    /// Calls that started in [`from_ms`, `to_ms`) as `(started_at_ms, CallSid)`, oldest first,
    /// from the time index alone (no record is read).
    pub fn calls_started(&self, from_ms: u64, to_ms: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let prefix = crate::index::prefix(crate::index::TIME, "");
        let (mut lo, mut hi) = (prefix.clone(), prefix.clone());
        lo.extend_from_slice(&from_ms.to_be_bytes());
        hi.extend_from_slice(&to_ms.to_be_bytes());
        let mut out = Vec::new();
        for k in self.index.range(lo..hi).keys() {
            out.extend(crate::index::split(&k?, prefix.len()));
        }
        Ok(out)
    }

    /// Removes every score of a call (all card versions), into the two batches the purge applies.
    pub(crate) fn forget_scores(&self, call_sid: &str, started_at_ms: u64) -> Result<(), StoreError> {
        let versions = self.score_versions(call_sid)?;
        let (mut cards, mut summaries) = (sled::Batch::default(), sled::Batch::default());
        for v in versions {
            cards.remove(scorecard_key(call_sid, v));
            summaries.remove(summary_key(v, started_at_ms, call_sid));
        }
        self.scorecards.apply_batch(cards)?;
        self.scores.apply_batch(summaries)?;
        Ok(())
    }

    /// Saves version `version` of the protocol cards and makes it durable (journaled) before returning.
    pub async fn put_qa_cards(&self, version: u32, saved: &impl Serialize) -> Result<(), StoreError> {
        self.put_durable(crate::journal::Tree::QaCards, &version.to_be_bytes(), to_json(saved)).await
    }

    /// Every saved version of the protocol cards, oldest first (empty: none saved, the shipped
    /// set is in use).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a saved version is not of type `T`.
    pub fn qa_cards<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        crate::decode_all(self.qa_cards.iter())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Summary {
        sid: String,
        level: String,
    }

    #[test]
    fn scores_are_kept_per_card_version_and_read_by_period() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        for (i, sid) in ["CA1", "CA2", "CA3"].iter().enumerate() {
            let s = Summary { sid: sid.to_string(), level: "high".into() };
            store.put_score(sid, 1000 * (i as u64 + 1), 1, &serde_json::json!({"v": 1}), &s).unwrap();
        }
        store.put_score("CA2", 2000, 2, &serde_json::json!({"v": 2}), &Summary { sid: "CA2".into(), level: "low".into() }).unwrap();
        let period: Vec<Summary> = store.score_summaries(1, 1500, 3001).unwrap();
        assert_eq!(period.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(), ["CA2", "CA3"]);
        let v2: Vec<Summary> = store.score_summaries(2, 0, u64::MAX).unwrap();
        assert_eq!(v2, [Summary { sid: "CA2".into(), level: "low".into() }]);
        assert_eq!(store.score_versions("CA2").unwrap(), [1, 2]);
        assert_eq!(store.scorecard::<serde_json::Value>("CA2", 1).unwrap(), Some(serde_json::json!({"v": 1})));
        assert!(store.has_score("CA1", 1).unwrap() && !store.has_score("CA1", 2).unwrap());
        store.forget_scores("CA2", 2000).unwrap();
        assert!(store.score_versions("CA2").unwrap().is_empty());
        assert_eq!(store.score_summaries::<Summary>(2, 0, u64::MAX).unwrap(), []);
        assert_eq!(store.score_summaries::<Summary>(1, 0, u64::MAX).unwrap().len(), 2);
    }
}
