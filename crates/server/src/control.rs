//! The supervisor's hand-offs of a live call: take over (to the supervisor's own line),
//! transfer (to a chosen line), hang up. Hand-offs go through Twilio REST (the same
//! path as the fallback); each is audited with who, what, when and the outcome, and becomes a
//! `HandedOff` event of the call.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use watchfloor_bridge::{Command, HandOffAction};
use watchfloor_bridge::twilio_rest::CallUpdate;

use crate::AppState;
use crate::api::TransferBody;
use crate::auth::User;
use crate::audit::audited_action;
use crate::error::ApiError;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/calls/{id}/takeover", post(takeover))
        .route("/api/calls/{id}/transfer", post(transfer))
        .route("/api/calls/{id}/hangup", post(hangup))
}

fn valid_number(n: &str) -> Result<String, ApiError> {
    crate::api::valid_number(n).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))
}

/// Carries out a hand-off: REST update, then the call's AI side ends with a `HandedOff` event.
async fn hand_off(state: &AppState, user: &User, id: &str, action: HandOffAction, to: Option<String>) -> Result<watchfloor_store::CallRecord, ApiError> {
    let handle = state.calls.handle(id).ok_or_else(|| match state.store.get_call(id) {
        Ok(Some(_)) => ApiError(StatusCode::CONFLICT, format!("call {id} is not live")),
        _ => ApiError(StatusCode::NOT_FOUND, format!("no call {id}")),
    })?;
    let rest = state.config.twilio_rest().ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "Twilio REST is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)".into()))?;
    let update = match &to {
        Some(line) => CallUpdate::Twiml(watchfloor_wire::twiml::Response::new().say("Please hold. Connecting you now.").dial(line.clone())),
        None => CallUpdate::Hangup,
    };
    let pending = Command::HandOffPending { action, to: to.clone(), by: user.name.clone() };
    if handle.command(pending).await.is_err() {
        return Err(ApiError(StatusCode::CONFLICT, format!("call {id} is not live")));
    }
    if let Err(e) = rest.update_call(id, &update).await {
        let _ = handle.send(Command::HandOffFailed).await;
        return Err(ApiError(StatusCode::BAD_GATEWAY, e.to_string()));
    }
    // The call may have ended on its own meanwhile (Twilio stops the stream when it replaces
    // the call's TwiML): the pending hand-off then decided how it ended.
    let _ = handle.command(Command::HandedOff { action, to, by: user.name.clone() }).await;
    state.calls.hub().barrier().await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    state.store.get_call(id).ok().flatten().ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {id}")))
}

/// `POST /api/calls/{id}/takeover`: the call goes to the signed-in supervisor's own line.
async fn takeover(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = match user.line.clone() {
        Some(line) => hand_off(&state, &user, &id, HandOffAction::Takeover, Some(line)).await,
        None => Err(ApiError(StatusCode::CONFLICT, format!("user {} has no line configured ([[users]] line)", user.name))),
    };
    let detail = format!("to {}", user.line.as_deref().unwrap_or("-"));
    audited_action(&state, &user, "call.takeover", &id, detail, r).await
}

/// `POST /api/calls/{id}/transfer` `{"to": "+15550001234"}`.
async fn transfer(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<TransferBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let to = b.map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text()))).and_then(|Json(b)| valid_number(&b.to));
    let detail = format!("to {}", to.as_deref().unwrap_or("-"));
    let r = match to {
        Ok(to) => hand_off(&state, &user, &id, HandOffAction::Transfer, Some(to)).await,
        Err(e) => Err(e),
    };
    audited_action(&state, &user, "call.transfer", &id, detail, r).await
}

/// `POST /api/calls/{id}/hangup`: ends the call.
async fn hangup(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = hand_off(&state, &user, &id, HandOffAction::Hangup, None).await;
    audited_action(&state, &user, "call.hangup", &id, String::new(), r).await
}
