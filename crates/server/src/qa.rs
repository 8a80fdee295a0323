//! Quality assurance over the API (issue 19). Scores come from the scorer
//! ([`crate::scoring`]), stored per card version.
//!
//! - `GET /api/calls/{CallSid}/qa[?version=N]` → the scorecard ([`watchfloor_qa::Scorecard`]):
//!   `{"card": {"id", "version"}, "incident_type", "level": "high|partial|low|non_compliant",
//!   "categories": {category: level}, "items": [{"id", "category", "text", "result":
//!   "met|missed|not_applicable", "evidence": [{"line", "at_ms"}]}…], "times": {…}}` with the
//!   current protocol cards (a live call is scored as far as it has gone), or the score kept
//!   from an older `version`; 404 for an unknown call or a version it was not scored with. An
//!   audited read (`call.qa`).
//! - `GET /api/qa/cards` → [`CardsState`] `{"current": {"version", "id", "toml", "saved_at_ms",
//!   "saved_by"}, "versions": [{"version", "saved_at_ms", "saved_by"}…]}`; `GET
//!   /api/qa/cards/{version}` → that version. `PUT /api/qa/cards` `{"toml"}` (at most 256 KiB):
//!   an edit of the current version (its `version` line names it) saved as the next version,
//!   flushed, and every call scored again with it; 400 with what is wrong, 409 when another
//!   version was saved since the edit began. Audited (`qa.cards`). Administrators only (the
//!   route table in `routes.rs`); reviewers and administrators read them.
//! - `GET /api/qa/queue?from=&to=` (ms since the epoch; default the last 7 days) → `{"rate",
//!   "from_ms", "to_ms", "calls", "entries": [{"call_sid", "started_at_ms", "reasons", "level", "incident_type", "signed_by"}…]}`
//!   (`signed_by`: the reviewers who have signed a review of the call):
//!   the human review queue ([`watchfloor_qa::queue`]): the stable random sample at the
//!   configured rate (`qa_sample_percent`, default 2 %: APCO/NENA ANS 1.107.1), at least one a
//!   day, and every call with a hand-off, a takeover, an override, a danger alert or a low score.
//!   Live calls are left out. An audited read (`qa.queue`).
//! - `GET /api/stats?from=&to=` → the period's figures ([`watchfloor_qa::Figures`]): calls per
//!   hour, answer → dispatch p50 / p90, handled by the AI / taken over / handed off, the override
//!   rate, compliance overall, by category and by incident type, review coverage. Ended calls
//!   only; an audited read (`qa.stats`).
//! - `POST /api/calls/{CallSid}/reviews` [`ReviewDraft`] `{"items": [{"id", "result",
//!   "comment"}…], "notes": [{"at_ms", "text"}…], "blind", "sign"}` → the stored
//!   [`Review`]: the signed-in user's review of an ended call against its automatic scorecard
//!   (items left out agree; a correction needs a comment; notes within the call). Unsigned it is
//!   a draft the reviewer may replace; signed it is final (409 after). 400 with the reason for a
//!   bad draft, 404 for an unknown call, 409 for a live one. Audited (`qa.review`), flushed
//!   before the answer.
//! - `GET /api/calls/{CallSid}/reviews?blind=true` → `[Review…]` in reviewer order; with
//!   `blind`, other reviewers' results and notes are withheld (who and when stay), so a second
//!   reviewer scores without seeing the first. An audited read (`qa.reviews`; a read that
//!   showed other reviewers' results says so in its detail). A blind review from a reviewer
//!   whose audit trail shows such a read of the call is refused (409): "blind" is checked,
//!   not only declared.
//! - `GET /api/qa/calibration?from=&to=` → [`watchfloor_qa::Calibration`] over the reviews
//!   signed in the period: agreement per item and per reviewer, with the automatic scorecard and
//!   between reviewers of the same call. An audited read (`qa.calibration`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use watchfloor_qa::{CallStats, Review, ReviewDraft, Scorecard};

use crate::AppState;
use crate::audit::{audit, audited_action, audited_read, outcome_of};
use crate::auth::User;
use crate::error::ApiError;
use crate::scoring::{CardsState, ReviseError, SavedCards};


#[derive(serde::Deserialize)]
pub(crate) struct Period {
    from: Option<u64>,
    to: Option<u64>,
}

/// The period of a request: `from` and `to`, ms since the epoch (default: the last 7 days).
fn period(q: Result<Query<Period>, QueryRejection>) -> Result<(u64, u64), ApiError> {
    let Query(p) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let to = p.to.unwrap_or_else(watchfloor_bridge::task::unix_ms);
    let from = p.from.unwrap_or(to.saturating_sub(7 * crate::api::DAY_MS));
    if from >= to {
        return Err(ApiError(StatusCode::BAD_REQUEST, "from must be before to".into()));
    }
    Ok((from, to))
}

/// The scored summaries of every ended call that started in [`from`, `to`), read on the
/// blocking pool (calls not scored yet are scored first).
async fn scored_calls(state: &AppState, from: u64, to: u64) -> Result<Vec<CallStats>, ApiError> {
    let (scorer, store) = (state.scorer.clone(), state.store.clone());
    tokio::task::spawn_blocking(move || scorer.summaries(&store, from, to)).await.map_err(internal)?.map_err(internal)
}

fn queue_of(state: &AppState, calls: &[CallStats]) -> Vec<watchfloor_qa::QueueEntry> {
    let candidates: Vec<watchfloor_qa::Candidate> = calls.iter().map(|c| watchfloor_qa::Candidate { call_sid: c.call_sid.clone(), started_at_ms: c.started_at_ms, flags: c.flags.clone() }).collect();
    watchfloor_qa::queue(&candidates, state.config.qa_sample_percent / 100.0)
}

/// `GET /api/qa/queue`.
pub(crate) async fn review_queue(State(state): State<AppState>, Extension(user): Extension<User>, q: Result<Query<Period>, QueryRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let r = async {
        let (from, to) = period(q)?;
        let calls = scored_calls(&state, from, to).await?;
        let by_sid: std::collections::HashMap<&str, &CallStats> = calls.iter().map(|c| (c.call_sid.as_str(), c)).collect();
        let mut signed: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for r in stored_reviews(&state)?.into_iter().filter(|r| r.signed_at_ms.is_some()) {
            signed.entry(r.call_sid).or_default().push(r.reviewer);
        }
        let entries: Vec<serde_json::Value> = queue_of(&state, &calls)
            .into_iter()
            .map(|e| {
                let by = signed.get(&e.call_sid).cloned().unwrap_or_default();
                serde_json::json!({"call_sid": e.call_sid, "started_at_ms": e.started_at_ms, "reasons": e.reasons, "level": by_sid.get(e.call_sid.as_str()).map(|c| c.level), "incident_type": by_sid.get(e.call_sid.as_str()).and_then(|c| c.incident_type.clone()), "signed_by": by})
            })
            .collect();
        Ok(Json(serde_json::json!({"rate": state.config.qa_sample_percent / 100.0, "from_ms": from, "to_ms": to, "calls": calls.len(), "entries": entries})))
    }
    .await;
    audited_read(&state, &user, "qa.queue", "qa", r).await
}

/// `GET /api/stats`.
pub(crate) async fn stats(State(state): State<AppState>, Extension(user): Extension<User>, q: Result<Query<Period>, QueryRejection>) -> Result<Json<watchfloor_qa::Figures>, ApiError> {
    let r = async {
        let (from, to) = period(q)?;
        let calls = scored_calls(&state, from, to).await?;
        let queue = queue_of(&state, &calls);
        let signed: std::collections::HashSet<String> = stored_reviews(&state)?.into_iter().filter(|r| r.signed_at_ms.is_some()).map(|r| r.call_sid).collect();
        let reviewed = queue.iter().filter(|e| signed.contains(&e.call_sid)).count();
        Ok(Json(watchfloor_qa::figures(from, to, &calls, &queue, reviewed)))
    }
    .await;
    audited_read(&state, &user, "qa.stats", "qa", r).await
}

#[derive(serde::Deserialize)]
pub(crate) struct VersionQuery {
    version: Option<u32>,
}

/// `GET /api/calls/{id}/qa[?version=N]`.
pub(crate) async fn scorecard(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, q: Result<Query<VersionQuery>, QueryRejection>) -> Result<Json<Scorecard>, ApiError> {
    let r = async {
        let Query(q) = q.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
        let (scorer, store, sid) = (state.scorer.clone(), state.store.clone(), id.clone());
        let card = tokio::task::spawn_blocking(move || match q.version {
            Some(v) if v != scorer.cards().version => store.scorecard::<Scorecard>(&sid, v).map(|c| c.ok_or(Some(v))),
            _ => scorer.scorecard(&store, &sid).map(|c| c.ok_or(None)),
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        card.map(Json).map_err(|v| match v {
            Some(v) => ApiError(StatusCode::NOT_FOUND, format!("call {id} has no score of card version {v}")),
            None => ApiError(StatusCode::NOT_FOUND, format!("no call {id}")),
        })
    }
    .await;
    audited_read(&state, &user, "call.qa", &id, r).await
}

/// `GET /api/qa/cards`.
pub(crate) async fn cards(State(state): State<AppState>, Extension(user): Extension<User>) -> Result<Json<CardsState>, ApiError> {
    let r = state.scorer.state(&state.store).map(Json).map_err(internal);
    audited_read(&state, &user, "qa.cards", "qa", r).await
}

/// `GET /api/qa/cards/{version}`.
pub(crate) async fn cards_version(State(state): State<AppState>, Extension(user): Extension<User>, Path(version): Path<u32>) -> Result<Json<SavedCards>, ApiError> {
    let r = match state.scorer.version(&state.store, version) {
        Ok(Some(c)) => Ok(Json(c)),
        Ok(None) => Err(ApiError(StatusCode::NOT_FOUND, format!("no version {version} of the protocol cards"))),
        Err(e) => Err(internal(e)),
    };
    audited_read(&state, &user, "qa.cards", "qa", r).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CardsEdit {
    toml: String,
}

/// The largest card text accepted, bytes.
const MAX_CARDS_BYTES: usize = 256 * 1024;

/// `PUT /api/qa/cards`.
pub(crate) async fn revise_cards(State(state): State<AppState>, Extension(user): Extension<User>, body: axum::body::Bytes) -> Result<Json<SavedCards>, ApiError> {
    let r = async {
        let edit: CardsEdit = serde_json::from_slice(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
        if edit.toml.len() > MAX_CARDS_BYTES {
            return Err(ApiError(StatusCode::BAD_REQUEST, format!("protocol cards: at most {MAX_CARDS_BYTES} bytes")));
        }
        state.scorer.revise(&state.store, &edit.toml, &user.name, watchfloor_bridge::task::unix_ms()).await.map_err(|e| match e {
            ReviseError::Cards(e @ watchfloor_qa::CardsError::Stale { .. }) => ApiError(StatusCode::CONFLICT, e.to_string()),
            ReviseError::Cards(e) => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
            ReviseError::Store(e) => internal(e),
        })
    }
    .await;
    let detail = match &r {
        Ok(c) => format!("version {}; every call is scored again with it", c.version),
        Err(_) => String::new(),
    };
    audited_action(&state, &user, "qa.cards", "qa", detail, r).await
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Stored reviews in the `watchfloor-qa` shape: one that no longer reads as a review (a store
/// written by another version) is skipped with a warning, never an error for the others.
fn parse_reviews(values: Vec<serde_json::Value>) -> Vec<Review> {
    values
        .into_iter()
        .filter_map(|v| match serde_json::from_value::<Review>(v) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "a stored review does not read as a review: skipped");
                None
            }
        })
        .collect()
}

fn stored_reviews(state: &AppState) -> Result<Vec<Review>, ApiError> {
    state.store.all_reviews().map(parse_reviews).map_err(internal)
}

#[derive(serde::Deserialize)]
pub(crate) struct BlindQuery {
    #[serde(default)]
    blind: bool,
}

/// The audit detail of a read that showed other reviewers' results: a later blind review of the
/// same call by the same reviewer is refused.
const OTHERS_SHOWN: &str = "others' results shown";

/// `GET /api/calls/{id}/reviews`.
pub(crate) async fn call_reviews(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, q: Result<Query<BlindQuery>, QueryRejection>) -> Result<Json<Vec<Review>>, ApiError> {
    let r = match (q, state.store.get_call(&id)) {
        (Err(e), _) => Err(ApiError(StatusCode::BAD_REQUEST, e.body_text())),
        (_, Err(e)) => Err(internal(e)),
        (_, Ok(None)) => Err(ApiError(StatusCode::NOT_FOUND, format!("no call {id}"))),
        (Ok(Query(q)), Ok(Some(_))) => state.store.reviews(&id).map_err(internal).map(|v| {
            let list = parse_reviews(v);
            (q.blind, if q.blind { list.into_iter().map(|r| if r.reviewer == user.name { r } else { r.withheld() }).collect() } else { list })
        }),
    };
    // Which reviewers' results this read showed (none when blind): the blind check reads it.
    let shown: Vec<&str> = match &r {
        Ok((false, list)) => list.iter().filter(|rv| rv.reviewer != user.name).map(|rv| rv.reviewer.as_str()).collect(),
        _ => Vec::new(),
    };
    let detail = (!shown.is_empty()).then(|| format!("{OTHERS_SHOWN}: {}", shown.join(", ")));
    audit(&state, &user, "qa.reviews", &id, outcome_of(&r), detail, false).await;
    r.map(|(_, list)| Json(list))
}

/// Whether `user` has read other reviewers' results of call `id` (a non-blind read that showed
/// any, from the audit log): such a reviewer can no longer score it blind.
fn has_seen_others(state: &AppState, user: &User, id: &str) -> Result<bool, ApiError> {
    let q = watchfloor_store::AuditQuery { user: Some(user.name.clone()), action: Some("qa.reviews".into()), target: Some(id.to_string()), limit: 1000, ..Default::default() };
    Ok(state.store.audit_log(&q).map_err(internal)?.iter().any(|e| e.detail.as_deref().is_some_and(|d| d.starts_with(OTHERS_SHOWN))))
}

/// `POST /api/calls/{id}/reviews`.
pub(crate) async fn submit_review(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<Review>, ApiError> {
    let r = review_of(&state, &user, &id, &body).await;
    let detail = match &r {
        Ok(rv) => format!(
            "{}{}; {} of {} items corrected; {} notes",
            if rv.signed_at_ms.is_some() { "signed" } else { "draft" },
            if rv.blind { ", blind" } else { "" },
            rv.items.iter().filter(|i| !i.agrees()).count(),
            rv.items.len(),
            rv.notes.len()
        ),
        Err(_) => String::new(),
    };
    audited_action(&state, &user, "qa.review", &id, detail, r).await
}

async fn review_of(state: &AppState, user: &User, id: &str, body: &[u8]) -> Result<Review, ApiError> {
    let draft: ReviewDraft = serde_json::from_slice(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    let rec = state.store.get_call(id).map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {id}")))?;
    let Some(ended) = rec.ended_at_ms else {
        return Err(ApiError(StatusCode::CONFLICT, format!("call {id} is live: review it when it has ended")));
    };
    let card = state.scorer.scorecard(&state.store, id).map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {id}")))?;
    let previous = parse_reviews(state.store.reviews(id).map_err(internal)?).into_iter().find(|r| r.reviewer == user.name);
    if draft.blind && previous.as_ref().is_none_or(|p| p.signed_at_ms.is_none()) && has_seen_others(state, user, id)? {
        return Err(ApiError(StatusCode::CONFLICT, format!("a blind review of call {id} is refused: you have read other reviewers' results of it (audit log)")));
    }
    let length_ms = ended.saturating_sub(rec.started_at_ms);
    let review = Review::from_draft(id, &user.name, draft, &card, Some(length_ms), previous.as_ref(), watchfloor_bridge::task::unix_ms()).map_err(|e| {
        let status = if matches!(e, watchfloor_qa::ReviewError::AlreadySigned(_)) { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
        ApiError(status, e.to_string())
    })?;
    // Invariant: a review is plain data and serialises.
    let value = serde_json::to_value(&review).expect("review serialises");
    state.store.put_review(id, &user.name, &value).await.map_err(internal)?;
    Ok(review)
}

/// `GET /api/qa/calibration`.
pub(crate) async fn calibration(State(state): State<AppState>, Extension(user): Extension<User>, q: Result<Query<Period>, QueryRejection>) -> Result<Json<watchfloor_qa::Calibration>, ApiError> {
    let r = period(q).and_then(|(from, to)| {
        let signed: Vec<Review> = stored_reviews(&state)?.into_iter().filter(|r| r.signed_at_ms.is_some_and(|t| t >= from && t < to)).collect();
        Ok(Json(watchfloor_qa::calibration(&signed)))
    });
    audited_read(&state, &user, "qa.calibration", "qa", r).await
}
