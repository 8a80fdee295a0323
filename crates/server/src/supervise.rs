//! The supervisor's decisions on a live call: confirm, dispatch now or recall the dispatch,
//! correct the incident, whisper to the agent, acknowledge an alert. Each goes to the call's
//! task as a command (so it becomes a `CallEvent` in order), is refused with a clear reason
//! when it makes no sense, and is audited with who, what, when and the outcome.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use watchfloor_bridge::{Command, Refusal};

use crate::AppState;
use crate::auth::User;
use crate::audit::audited_action;
use crate::error::ApiError;


/// Sends a command to a live call and returns its record once the command's events are stored.
pub(crate) async fn live_command(state: &AppState, id: &str, cmd: Command) -> Result<watchfloor_store::CallRecord, ApiError> {
    // Ended (its webhook was answered here or it is on record: 409) or never known (404). The
    // ledger knows a call from its webhook on, before its record is first written.
    let not_live = || match state.store.ledger().is_answered(id) || matches!(state.store.get_call(id), Ok(Some(_))) {
        true => ApiError(StatusCode::CONFLICT, format!("call {id} has ended")),
        false => ApiError(StatusCode::NOT_FOUND, format!("no call {id}")),
    };
    let handle = state.calls.handle(id).ok_or_else(not_live)?;
    match handle.command(cmd).await {
        Ok(()) => {}
        Err(Refusal::CallEnded) => return Err(not_live()),
        Err(why @ Refusal::HandOffFailed(_)) => return Err(ApiError(StatusCode::BAD_GATEWAY, why.to_string())),
        Err(why) => return Err(ApiError(StatusCode::CONFLICT, why.to_string())),
    }
    state.calls.hub().barrier().await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    state.store.get_call(id).ok().flatten().ok_or_else(not_live)
}

/// `POST /api/calls/{id}/dispatch/confirm`: confirm the proposed dispatch.
pub(crate) async fn confirm(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = live_command(&state, &id, Command::ConfirmDispatch { by: user.name.clone() }).await;
    audited_action(&state, &user, "dispatch.confirm", &id, String::new(), r).await
}

/// `POST /api/calls/{id}/dispatch/now`: dispatch now, proposed or not.
pub(crate) async fn dispatch_now(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = live_command(&state, &id, Command::DispatchNow { by: user.name.clone() }).await;
    audited_action(&state, &user, "dispatch.now", &id, String::new(), r).await
}

/// `POST /api/calls/{id}/dispatch/recall`: recall the dispatch (or the proposal).
pub(crate) async fn recall(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = live_command(&state, &id, Command::RecallDispatch { by: user.name.clone() }).await;
    audited_action(&state, &user, "dispatch.recall", &id, String::new(), r).await
}

/// `PATCH /api/calls/{id}/incident` with any of `incident_type` (APCO code), `location`,
/// `cross_street`, `landmark`, `city`, `description`, `priority` (`P1`–`P4`), `callback_number`,
/// `hazards`, `people_involved`, `injuries`, `units` (roster call signs): the supervisor's
/// correction wins over the model. Units replace the proposal's before dispatch; after it, new
/// ones are dispatched and dropped ones that have not arrived are released. 409 for a unit not
/// on the roster, busy on another call, or on scene and left out.
pub(crate) async fn edit_incident(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, body: Bytes) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let text = String::from_utf8_lossy(&body).into_owned();
    let (facts, mut errors) = watchfloor_dispatch::report::parse(&text);
    let units = crate::api::edit_units(&text).unwrap_or_else(|e| {
        if errors.is_empty() {
            errors.push(e); // (a body that is not JSON is reported once)
        }
        None
    });
    let r = if !errors.is_empty() {
        Err(ApiError(StatusCode::BAD_REQUEST, errors.join("; ")))
    } else if facts == watchfloor_dispatch::incident::Facts::default() && units.is_none() {
        Err(ApiError(StatusCode::BAD_REQUEST, "nothing to change: give incident_type, location, priority, description, units …".into()))
    } else {
        live_command(&state, &id, Command::EditIncident { facts: Box::new(facts), units, by: user.name.clone() }).await
    };
    audited_action(&state, &user, "incident.edit", &id, text.chars().take(300).collect(), r).await
}

#[derive(Deserialize)]
pub(crate) struct WhisperBody {
    text: String,
}

/// `POST /api/calls/{id}/whisper` `{"text": "…"}`: an instruction the agent follows from then on.
pub(crate) async fn whisper(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<WhisperBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let text = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text()))).and_then(|Json(b)| {
        let t = b.text.trim().to_string();
        if t.is_empty() || t.chars().count() > 500 { Err(ApiError(StatusCode::BAD_REQUEST, "text must be 1–500 characters".into())) } else { Ok(t) }
    });
    let detail = text.as_deref().unwrap_or("-").to_string();
    let r = match text {
        Ok(text) => live_command(&state, &id, Command::Whisper { text, by: user.name.clone() }).await,
        Err(e) => Err(e),
    };
    audited_action(&state, &user, "agent.whisper", &id, detail, r).await
}

/// `POST /api/calls/{id}/alerts/{alert_id}/ack`.
pub(crate) async fn acknowledge(State(state): State<AppState>, Extension(user): Extension<User>, Path((id, alert_id)): Path<(String, u32)>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = live_command(&state, &id, Command::AcknowledgeAlert { alert_id, by: user.name.clone() }).await;
    audited_action(&state, &user, "alert.acknowledge", &id, format!("alert {alert_id}"), r).await
}
