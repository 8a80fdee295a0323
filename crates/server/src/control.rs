//! The supervisor's hand-offs of a live call: take over (to the supervisor's own line),
//! transfer (to a chosen line), hang up. Hand-offs go through Twilio REST (the same
//! path as the fallback); each is audited with who, what, when and the outcome, and becomes a
//! `HandedOff` event of the call.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use watchfloor_bridge::{Command, HandOffAction};

use crate::AppState;
use crate::api::TransferBody;
use crate::auth::User;
use crate::audit::audited_action;
use crate::error::ApiError;


fn valid_number(n: &str) -> Result<String, ApiError> {
    crate::api::valid_number(n).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))
}

/// Hands a live call off: the call's task sends it to Twilio REST ([`Command::HandOff`]) and
/// answers once Twilio has it (502 with Twilio's error when it failed: the call stays with the
/// agent); the AI side then ends with a `HandedOff` event.
async fn hand_off(state: &AppState, user: &User, id: &str, action: HandOffAction, to: Option<String>) -> Result<watchfloor_store::CallRecord, ApiError> {
    if state.config.twilio_rest().is_none() {
        return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "Twilio REST is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)".into()));
    }
    crate::supervise::live_command(state, id, Command::HandOff { action, to, by: user.name.clone() }).await
}

/// `POST /api/calls/{id}/takeover`: the call goes to the signed-in supervisor's own line.
pub(crate) async fn takeover(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = match user.line.clone() {
        Some(line) => hand_off(&state, &user, &id, HandOffAction::Takeover, Some(line)).await,
        None => Err(ApiError(StatusCode::CONFLICT, format!("user {} has no line configured ([[users]] line)", user.name))),
    };
    let detail = format!("to {}", user.line.as_deref().unwrap_or("-"));
    audited_action(&state, &user, "call.takeover", &id, detail, r).await
}

/// `POST /api/calls/{id}/transfer` `{"to": "+15550001234"}`.
pub(crate) async fn transfer(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<TransferBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let to = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text()))).and_then(|Json(b)| valid_number(&b.to));
    let detail = format!("to {}", to.as_deref().unwrap_or("-"));
    let r = match to {
        Ok(to) => hand_off(&state, &user, &id, HandOffAction::Transfer, Some(to)).await,
        Err(e) => Err(e),
    };
    audited_action(&state, &user, "call.transfer", &id, detail, r).await
}

/// `POST /api/calls/{id}/hangup`: ends the call.
pub(crate) async fn hangup(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = hand_off(&state, &user, &id, HandOffAction::Hangup, None).await;
    audited_action(&state, &user, "call.hangup", &id, String::new(), r).await
}
