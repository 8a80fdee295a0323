//! Quality assurance over the API (issue 19, first step): a call's automatic scorecard.
//!
//! - `GET /api/calls/{CallSid}/qa` → the scorecard ([`watchfloor_qa::Scorecard`]): `{"card":
//!   {"id", "version"}, "incident_type", "level": "high|partial|low|non_compliant",
//!   "categories": {category: level}, "items": [{"id", "category", "text", "result":
//!   "met|missed|not_applicable", "evidence": [{"line", "at_ms"}]}…], "times": {…}}`, computed
//!   from the call's stored events with the shipped protocol cards (a live call is scored as far
//!   as it has gone); 404 for an unknown call. An audited read (`call.qa`).

use std::sync::{Arc, LazyLock};

use axum::extract::{Path, State};
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
    Router::new().route("/api/calls/{id}/qa", get(scorecard))
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
