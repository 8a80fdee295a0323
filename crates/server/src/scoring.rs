//! The scorer (issue 19): every ended call's automatic scorecard, computed once and stored per
//! card version, so the statistics and the queue read summaries instead of scoring every call
//! on every request; and the protocol cards an administrator edits, versioned.
//!
//! - The current cards are the newest saved version (`qa_cards` in the store), else the shipped
//!   set (`crates/qa/cards/default.toml`). A saved version that no longer parses (written by
//!   another build) is skipped with an error in the log, and the newest one that parses is used.
//! - A background job scores calls with the current cards: at start, every 30 s, and at once
//!   when the cards change (every stored call is scored again with the new version; the old
//!   scores stay, under their version). It does not follow the calls' events: every read scores
//!   what it lacks first, so the job need not be prompt.
//! - A request for figures first scores the period's ended calls that have no score of the
//!   current version yet ([`Scorer::catch_up`]), so an answer never misses a call that has just
//!   ended.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use watchfloor_qa::{CallStats, Cards, CardsError, Scorecard};
use watchfloor_store::{Store, StoreError};

/// One version of the protocol cards as saved: `GET /api/qa/cards/{version}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SavedCards {
    /// The version (the text's `version` line says the same).
    pub version: u32,
    /// The card set's id.
    pub id: String,
    /// The TOML text, as the administrator wrote it (comments kept).
    pub toml: String,
    /// When it was saved, ms since the Unix epoch (none: the shipped set).
    pub saved_at_ms: Option<u64>,
    /// Who saved it (none: the shipped set).
    pub saved_by: Option<String>,
}

/// A version in the cards' history (`GET /api/qa/cards`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CardsVersion {
    /// The version.
    pub version: u32,
    /// When it was saved, ms since the Unix epoch (none: the shipped set).
    pub saved_at_ms: Option<u64>,
    /// Who saved it.
    pub saved_by: Option<String>,
}

/// `GET /api/qa/cards`: the cards in use and every version saved before them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct CardsState {
    /// The cards calls are scored with now.
    pub current: SavedCards,
    /// Every version, oldest first (the shipped set first when it was in use).
    pub versions: Vec<CardsVersion>,
}

struct Current {
    saved: SavedCards,
    cards: Arc<Cards>,
}

/// The current cards and the job that keeps every ended call scored with them.
pub struct Scorer {
    current: parking_lot::RwLock<Arc<Current>>,
    /// Rung when the cards change or a call ends.
    wake: tokio::sync::Notify,
    /// One catch-up at a time (the job and a request for figures may both start one).
    busy: parking_lot::Mutex<()>,
    /// One save of the cards at a time: two edits of version N must not both become N + 1.
    saving: tokio::sync::Mutex<()>,
}

/// The shipped set as a [`SavedCards`].
fn shipped() -> SavedCards {
    let c = Cards::default_set();
    SavedCards { version: c.version, id: c.id, toml: watchfloor_qa::card::DEFAULT_CARDS.to_string(), saved_at_ms: None, saved_by: None }
}

impl Scorer {
    /// The scorer with the newest saved cards that parse, else the shipped set.
    ///
    /// # Errors
    /// A store that cannot be read.
    pub fn load(store: &Store) -> Result<Scorer, StoreError> {
        let saved: Vec<SavedCards> = store.qa_cards()?;
        let mut current = None;
        for s in saved.into_iter().rev() {
            match Cards::parse(&s.toml) {
                Ok(cards) => {
                    current = Some(Current { saved: s, cards: Arc::new(cards) });
                    break;
                }
                Err(e) => tracing::error!(version = s.version, error = %e, "saved protocol cards do not parse: skipped"),
            }
        }
        let current = current.unwrap_or_else(|| Current { saved: shipped(), cards: Arc::new(Cards::default_set()) });
        Ok(Scorer { current: parking_lot::RwLock::new(Arc::new(current)), wake: tokio::sync::Notify::new(), busy: parking_lot::Mutex::new(()), saving: tokio::sync::Mutex::new(()) })
    }

    /// The cards calls are scored with now.
    pub fn cards(&self) -> Arc<Cards> {
        self.current.read().cards.clone()
    }

    /// The cards in use and the history of versions.
    pub fn state(&self, store: &Store) -> Result<CardsState, StoreError> {
        let saved: Vec<SavedCards> = store.qa_cards()?;
        let shipped = shipped();
        let mut versions: Vec<CardsVersion> = Vec::new();
        if saved.first().is_none_or(|s| s.version > shipped.version) {
            versions.push(CardsVersion { version: shipped.version, saved_at_ms: None, saved_by: None });
        }
        versions.extend(saved.iter().map(|s| CardsVersion { version: s.version, saved_at_ms: s.saved_at_ms, saved_by: s.saved_by.clone() }));
        Ok(CardsState { current: self.current.read().saved.clone(), versions })
    }

    /// Version `version` of the cards, if it exists.
    pub fn version(&self, store: &Store, version: u32) -> Result<Option<SavedCards>, StoreError> {
        let shipped = shipped();
        let saved: Vec<SavedCards> = store.qa_cards()?;
        Ok(saved.into_iter().find(|s| s.version == version).or((version == shipped.version).then_some(shipped)))
    }

    /// Saves an administrator's edit of the current cards as the next version (flushed), makes
    /// it current and wakes the job to score every call with it.
    ///
    /// # Errors
    /// [`ReviseError::Cards`] for text that is not a valid card set or an edit of an older
    /// version; [`ReviseError::Store`] when it cannot be saved.
    pub async fn revise(&self, store: &Store, text: &str, by: &str, now_ms: u64) -> Result<SavedCards, ReviseError> {
        let _one = self.saving.lock().await;
        let base = self.current.read().saved.version;
        let (cards, toml) = Cards::revise(base, text)?;
        let saved = SavedCards { version: cards.version, id: cards.id.clone(), toml, saved_at_ms: Some(now_ms), saved_by: Some(by.to_string()) };
        store.put_qa_cards(saved.version, &saved).await?;
        *self.current.write() = Arc::new(Current { saved: saved.clone(), cards: Arc::new(cards) });
        self.wake.notify_one();
        Ok(saved)
    }

    /// The call's scorecard with the current cards: the stored one, else computed from its
    /// events (and stored when the call has ended; a live call is scored as far as it has gone
    /// and not stored). None for an unknown call.
    pub fn scorecard(&self, store: &Store, call_sid: &str) -> Result<Option<Scorecard>, StoreError> {
        let cards = self.cards();
        if let Some(card) = store.scorecard::<Scorecard>(call_sid, cards.version)? {
            return Ok(Some(card));
        }
        let Some(rec) = store.get_call(call_sid)? else { return Ok(None) };
        let events = store.events(call_sid)?;
        let card = watchfloor_qa::score(&cards, &events);
        if rec.ended_at_ms.is_some() {
            let flags = watchfloor_qa::flags(&events, &card);
            store.put_score(call_sid, rec.started_at_ms, cards.version, &card, &CallStats::of(call_sid, rec.started_at_ms, &card, flags))?;
        }
        Ok(Some(card))
    }

    /// Scores, with the current cards, every ended call that started in [`from_ms`, `to_ms`) and
    /// has no score of their version yet; returns how many it scored. Blocking (sled reads and
    /// writes): run it on the blocking pool.
    pub fn catch_up(&self, store: &Store, from_ms: u64, to_ms: u64) -> Result<usize, StoreError> {
        self.catch_up_until(store, from_ms, to_ms, &CancellationToken::new())
    }

    /// [`Scorer::catch_up`], stopping between two calls once `stop` is cancelled.
    pub fn catch_up_until(&self, store: &Store, from_ms: u64, to_ms: u64, stop: &CancellationToken) -> Result<usize, StoreError> {
        let _one = self.busy.lock();
        let cards = self.cards();
        let mut scored = 0;
        for (started, sid) in store.calls_started(from_ms, to_ms)? {
            if stop.is_cancelled() {
                break;
            }
            if store.has_score(&sid, cards.version)? {
                continue;
            }
            let Some(rec) = store.get_call(&sid)? else { continue };
            if rec.ended_at_ms.is_none() {
                continue;
            }
            let events = store.events(&sid)?;
            let card = watchfloor_qa::score(&cards, &events);
            let flags = watchfloor_qa::flags(&events, &card);
            store.put_score(&sid, started, cards.version, &card, &CallStats::of(&sid, started, &card, flags))?;
            scored += 1;
        }
        Ok(scored)
    }

    /// The summaries of the ended calls that started in [`from_ms`, `to_ms`), scored with the
    /// current cards (the ones not scored yet are scored first). Blocking.
    pub fn summaries(&self, store: &Store, from_ms: u64, to_ms: u64) -> Result<Vec<CallStats>, StoreError> {
        self.catch_up(store, from_ms, to_ms)?;
        let version = self.cards().version;
        store.score_summaries(version, from_ms, to_ms)
    }
}

/// Why an edit of the cards was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviseError {
    /// Not a valid card set, or an edit of an older version.
    #[error(transparent)]
    Cards(#[from] CardsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often the job looks for ended calls not scored yet. Every read of the figures, the
/// queue or a scorecard scores what it needs first, so this only keeps the stored scores near
/// complete between reads.
const EVERY: Duration = Duration::from_secs(30);

/// Keeps every ended call scored with the current cards until `cancel`: at start, every
/// [`EVERY`], and at once when the cards change.
pub(crate) async fn job(scorer: Arc<Scorer>, store: Store, cancel: CancellationToken) {
    loop {
        let (s, st, stop) = (scorer.clone(), store.clone(), cancel.clone());
        match tokio::task::spawn_blocking(move || s.catch_up_until(&st, 0, u64::MAX, &stop)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(calls = n, version = scorer.cards().version, "scored ended calls"),
            Ok(Err(e)) => tracing::error!(error = %e, "scoring ended calls failed"),
            Err(e) => tracing::error!(error = %e, "the scorer panicked"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = scorer.wake.notified() => {}
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
