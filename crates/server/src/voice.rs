//! The supervisor's voice in a live call (issue 17): take the call's voice over from the agent
//! and hand it back. One supervisor holds a call's voice at a time; every action is audited.
//!
//! - `POST /api/calls/{CallSid}/voice/take` → 200 with the call's live state (mode `takeover`,
//!   the user as `voice_holder`); 409 `{"error": "… held by <user>"}` when another supervisor
//!   holds it; 409 when the call has ended (404 when it was never seen).
//! - `POST /api/calls/{CallSid}/voice/hand-back` → 200 (mode `ai`); 409 when the user does not
//!   hold the voice.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use watchfloor_bridge::Command;
use watchfloor_bridge::live::LiveCall;

use crate::AppState;
use crate::audit::audited_action;
use crate::auth::User;
use crate::error::ApiError;


/// Sends a voice command to the live call and answers with its live state once the command's
/// events are published.
async fn voice_command(state: &AppState, id: &str, cmd: Command) -> Result<LiveCall, ApiError> {
    crate::supervise::live_command(state, id, cmd).await?;
    state.calls.live_call(id).ok_or_else(|| ApiError(StatusCode::CONFLICT, format!("call {id} has ended")))
}

/// `POST /api/calls/{id}/voice/take`: the signed-in supervisor takes the call's voice.
pub(crate) async fn take(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<LiveCall>, ApiError> {
    let r = voice_command(&state, &id, Command::TakeVoice { by: user.name.clone() }).await;
    audited_action(&state, &user, "voice.take", &id, String::new(), r).await
}

/// `POST /api/calls/{id}/voice/hand-back`: the holder hands the call back to the agent.
pub(crate) async fn hand_back(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<LiveCall>, ApiError> {
    let r = voice_command(&state, &id, Command::HandBack { by: user.name.clone() }).await;
    audited_action(&state, &user, "voice.hand_back", &id, String::new(), r).await
}
