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

use std::sync::{Arc, LazyLock};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use watchfloor_qa::{Cards, Scorecard};

use crate::AppState;
use crate::audit::audited_read;
use crate::auth::User;
use crate::error::ApiError;

/// The shipped card set, parsed once.
static CARDS: LazyLock<Arc<Cards>> = LazyLock::new(|| Arc::new(Cards::default_set()));

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/calls/{id}/qa", get(scorecard)).route("/api/qa/queue", get(review_queue))
}

#[derive(serde::Deserialize)]
struct Period {
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /api/qa/queue`.
async fn review_queue(State(state): State<AppState>, Extension(user): Extension<User>, q: Result<Query<Period>, QueryRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let r = match q {
        Err(e) => Err(ApiError(StatusCode::BAD_REQUEST, e.body_text())),
        Ok(Query(p)) => {
            let to = p.to.unwrap_or_else(watchfloor_bridge::task::unix_ms);
            let from = p.from.unwrap_or(to.saturating_sub(7 * crate::api::DAY_MS));
            if from >= to {
                Err(ApiError(StatusCode::BAD_REQUEST, "from must be before to".into()))
            } else {
                build_queue(&state, from, to)
            }
        }
    };
    audited_read(&state, &user, "qa.queue", "qa", r).await
}

fn build_queue(state: &AppState, from: u64, to: u64) -> Result<Json<serde_json::Value>, ApiError> {
    let internal = |e: watchfloor_store::StoreError| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let mut q = watchfloor_store::CallQuery { from_ms: Some(from), to_ms: Some(to), limit: crate::api::MAX_PAGE, ..Default::default() };
    let mut candidates = Vec::new();
    let mut levels = std::collections::HashMap::new();
    loop {
        let page = state.store.query(&q).map_err(internal)?;
        for s in &page.calls {
            if s.ended_at_ms.is_none() {
                continue;
            }
            let events = state.store.events(&s.call_sid).map_err(internal)?;
            let card = watchfloor_qa::score(&CARDS, &events);
            levels.insert(s.call_sid.clone(), card.level);
            candidates.push(watchfloor_qa::Candidate { call_sid: s.call_sid.clone(), started_at_ms: s.started_at_ms, flags: watchfloor_qa::flags(&events, &card) });
        }
        match page.next_cursor.as_deref().and_then(watchfloor_store::index::decode_cursor) {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    let rate = state.config.qa_sample_percent / 100.0;
    let entries: Vec<serde_json::Value> = watchfloor_qa::queue(&candidates, rate)
        .into_iter()
        .map(|e| serde_json::json!({"call_sid": e.call_sid, "started_at_ms": e.started_at_ms, "reasons": e.reasons, "level": levels.get(&e.call_sid)}))
        .collect();
    Ok(Json(serde_json::json!({"rate": rate, "from_ms": from, "to_ms": to, "calls": candidates.len(), "entries": entries})))
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
