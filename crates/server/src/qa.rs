//! Quality assurance over the API (issue 19, first step): a call's automatic scorecard.
//!
//! - `GET /api/calls/{CallSid}/qa` → the scorecard ([`watchfloor_qa::Scorecard`]): `{"card":
//!   {"id", "version"}, "incident_type", "level": "high|partial|low|non_compliant",
//!   "categories": {category: level}, "items": [{"id", "category", "text", "result":
//!   "met|missed|not_applicable", "evidence": [{"line", "at_ms"}]}…], "times": {…}}`, computed
//!   from the call's stored events with the shipped protocol cards (a live call is scored as far
//!   as it has gone); 404 for an unknown call. An audited read (`call.qa`).
//! - `GET /api/qa/queue?from=&to=` (ms since the epoch; default the last 7 days) → `{"rate",
//!   "from_ms", "to_ms", "calls", "entries": [{"call_sid", "started_at_ms", "reasons", "level"}…]}`:
//!   the human review queue ([`watchfloor_qa::queue`]): the stable random sample at the
//!   configured rate (`qa_sample_percent`, default 2 %: APCO/NENA ANS 1.107.1), at least one a
//!   day, and every call with a hand-off, a takeover, an override, a danger alert or a low score.
//!   Live calls are left out. An audited read (`qa.queue`).
//! - `GET /api/stats?from=&to=` → the period's figures ([`watchfloor_qa::Figures`]): calls per
//!   hour, answer → dispatch p50 / p90, handled by the AI / taken over / handed off, the override
//!   rate, compliance overall, by category and by incident type, review coverage. Ended calls
//!   only; an audited read (`qa.stats`).

use std::sync::{Arc, LazyLock};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use watchfloor_qa::{CallStats, Cards, Scorecard};

use crate::AppState;
use crate::audit::audited_read;
use crate::auth::User;
use crate::error::ApiError;

/// The shipped card set, parsed once.
static CARDS: LazyLock<Arc<Cards>> = LazyLock::new(|| Arc::new(Cards::default_set()));

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/calls/{id}/qa", get(scorecard)).route("/api/qa/queue", get(review_queue)).route("/api/stats", get(stats))
}

#[derive(serde::Deserialize)]
struct Period {
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

/// Every ended call that started in [`from`, `to`), scored with the shipped cards and flagged.
fn scored_calls(state: &AppState, from: u64, to: u64) -> Result<Vec<CallStats>, ApiError> {
    let internal = |e: watchfloor_store::StoreError| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let mut q = watchfloor_store::CallQuery { from_ms: Some(from), to_ms: Some(to), limit: crate::api::MAX_PAGE, ..Default::default() };
    let mut out = Vec::new();
    loop {
        let page = state.store.query(&q).map_err(internal)?;
        for s in &page.calls {
            if s.ended_at_ms.is_none() {
                continue;
            }
            let events = state.store.events(&s.call_sid).map_err(internal)?;
            let card = watchfloor_qa::score(&CARDS, &events);
            let flags = watchfloor_qa::flags(&events, &card);
            out.push(CallStats { call_sid: s.call_sid.clone(), started_at_ms: s.started_at_ms, card, flags });
        }
        match page.next_cursor.as_deref().and_then(watchfloor_store::index::decode_cursor) {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    Ok(out)
}

fn queue_of(state: &AppState, calls: &[CallStats]) -> Vec<watchfloor_qa::QueueEntry> {
    let candidates: Vec<watchfloor_qa::Candidate> = calls.iter().map(|c| watchfloor_qa::Candidate { call_sid: c.call_sid.clone(), started_at_ms: c.started_at_ms, flags: c.flags.clone() }).collect();
    watchfloor_qa::queue(&candidates, state.config.qa_sample_percent / 100.0)
}

/// `GET /api/qa/queue`.
async fn review_queue(State(state): State<AppState>, Extension(user): Extension<User>, q: Result<Query<Period>, QueryRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let r = period(q).and_then(|(from, to)| {
        let calls = scored_calls(&state, from, to)?;
        let levels: std::collections::HashMap<&str, watchfloor_qa::Level> = calls.iter().map(|c| (c.call_sid.as_str(), c.card.level)).collect();
        let entries: Vec<serde_json::Value> = queue_of(&state, &calls)
            .into_iter()
            .map(|e| serde_json::json!({"call_sid": e.call_sid, "started_at_ms": e.started_at_ms, "reasons": e.reasons, "level": levels.get(e.call_sid.as_str())}))
            .collect();
        Ok(Json(serde_json::json!({"rate": state.config.qa_sample_percent / 100.0, "from_ms": from, "to_ms": to, "calls": calls.len(), "entries": entries})))
    });
    audited_read(&state, &user, "qa.queue", "qa", r).await
}

/// `GET /api/stats`.
async fn stats(State(state): State<AppState>, Extension(user): Extension<User>, q: Result<Query<Period>, QueryRejection>) -> Result<Json<watchfloor_qa::Figures>, ApiError> {
    let r = period(q).and_then(|(from, to)| {
        let calls = scored_calls(&state, from, to)?;
        let queue = queue_of(&state, &calls);
        Ok(Json(watchfloor_qa::figures(from, to, &calls, &queue, 0)))
    });
    audited_read(&state, &user, "qa.stats", "qa", r).await
}

/// `GET /api/calls/{id}/qa`.
async fn scorecard(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<Scorecard>, ApiError> {
    let internal = |e: watchfloor_store::StoreError| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let r = match state.store.get_call(&id) {
        Ok(None) => Err(ApiError(StatusCode::NOT_FOUND, format!("no call {id}"))),
        Err(e) => Err(internal(e)),
        Ok(Some(_)) => state.store.events(&id).map(|events| Json(watchfloor_qa::score(&CARDS, &events))).map_err(internal),
    };
    audited_read(&state, &user, "call.qa", &id, r).await
}
