//! The audit trail of the API (CJIS 5.4): every read of a record and every supervisor action
//! is written with who, when, what, on which call, and the outcome.

use axum::Json;
use axum::http::StatusCode;
use watchfloor_bridge::task::unix_ms;
use watchfloor_store::NewAuditEntry;

use crate::AppState;
use crate::auth::User;
use crate::error::ApiError;

/// Records an access or action. Reads are recorded without waiting for the disk; actions are
/// flushed before the response (`flush`).
pub(crate) async fn audit(state: &AppState, user: &User, action: &str, target: &str, outcome: &str, detail: Option<String>, flush: bool) {
    let entry = NewAuditEntry { at_ms: unix_ms(), user: user.name.clone(), action: action.into(), target: target.into(), outcome: outcome.into(), detail };
    let r = if flush { state.store.audit(entry).await.map(|_| ()) } else { state.store.audit_unflushed(entry).map(|_| ()) };
    if let Err(e) = r {
        tracing::error!(error = %e, action, "audit entry could not be written");
    }
}

/// The audit outcome of an API result: `ok`, `not_found`, `invalid`, `refused` (409), `error`.
pub(crate) fn outcome_of<T>(r: &Result<T, ApiError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(ApiError(StatusCode::NOT_FOUND, _)) => "not_found",
        Err(ApiError(StatusCode::BAD_REQUEST, _)) => "invalid",
        Err(ApiError(StatusCode::CONFLICT, _)) => "refused",
        Err(_) => "error",
    }
}

/// Audits the outcome of a read of `target`, and returns the result.
pub(crate) async fn audited_read<T>(state: &AppState, user: &User, action: &str, target: &str, r: Result<T, ApiError>) -> Result<T, ApiError> {
    audit(state, user, action, target, outcome_of(&r), None, false).await;
    r
}

/// Audits a supervisor's action on call `id` (durably: the entry is flushed before the answer),
/// with `detail` and, on failure, the reason; returns the result as JSON (the call's record or
/// live state).
pub(crate) async fn audited_action<T>(state: &AppState, user: &User, action: &str, id: &str, detail: String, r: Result<T, ApiError>) -> Result<Json<T>, ApiError> {
    let outcome = outcome_of(&r);
    let detail = match &r {
        Err(ApiError(_, why)) => format!("{detail}; {why}"),
        Ok(_) => detail,
    };
    audit(state, user, action, id, outcome, Some(detail), true).await;
    r.map(Json)
}
