//! Incidents and the calls linked to them (issue 18): the list, its EIDO, and a supervisor's
//! link, unlink and keep-apart (a live call carries each out itself: its dispatch adjusts).
//!
//! - `GET /api/incidents?live=true` → `[{"id", "calls", "incident_type", "priority", "location",
//!   "units", "dispatch", "duplicate_of"}…]`: incidents with a live call (`live=false`, the
//!   default: every incident of the duplicate window, 30 minutes by default, too). `priority` is the best of its live
//!   calls', `units` theirs together, `dispatch` the furthest phase any reached;
//!   `duplicate_of` `{"incident", "match": "exact"|"near"}` when a one-call incident's place
//!   matches another's (`dispatch::linking`).
//! - `GET /api/incidents/{id}`: one of them; 404 when unknown.
//! - `POST /api/calls/{CallSid}/link` `{"incident": id}`: the call joins that incident (its own,
//!   left without calls, is closed); 404 for an unknown call or incident, 409 when already on it.
//! - `POST /api/calls/{CallSid}/unlink`: the call gets an incident of its own again; 409 when it is
//!   alone on its incident. Both audited (`incident.link`, `incident.unlink`).
//! - `POST /api/calls/{CallSid}/keep-apart`: a live call is kept apart from its possible
//!   duplicate (audited `incident.keep_apart`); 409 when none stands.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use watchfloor_bridge::live::{DispatchPhase, LiveCall};
use watchfloor_dispatch::address::Match;
use watchfloor_dispatch::incident::Location;
use watchfloor_dispatch::linking::{IncidentBook, IncidentEntry, IncidentId, LinkRefused};
use watchfloor_dispatch::types::Priority;

use watchfloor_bridge::{CallEventKind, Command, Refusal};
use watchfloor_bridge::task::unix_ms;


use crate::AppState;
use crate::audit::audited_action;
use crate::auth::User;
use crate::error::ApiError;



/// An incident as the API gives it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    /// Its number.
    pub id: IncidentId,
    /// Its calls (CallSids), in the order they joined.
    pub calls: Vec<String>,
    /// APCO incident type code, when known.
    pub incident_type: Option<String>,
    /// The best priority among its live calls.
    pub priority: Option<Priority>,
    /// Where it is.
    pub location: Option<Location>,
    /// Units on its live calls.
    pub units: Vec<String>,
    /// The furthest dispatch phase of its live calls: `dispatched`, else `proposed`, `recalled`,
    /// `none`.
    pub dispatch: Option<String>,
    /// A one-call incident's likely twin.
    pub duplicate_of: Option<DuplicateView>,
}

/// A duplicate candidate.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateView {
    /// The incident it may be part of.
    pub incident: IncidentId,
    /// `exact` (the same address or intersection) or `near` (the same block, street or landmark).
    #[serde(rename = "match")]
    pub by: &'static str,
}

fn view(book: &IncidentBook, id: IncidentId, e: &IncidentEntry, live: &[LiveCall], now_ms: u64) -> IncidentView {
    let calls: Vec<&LiveCall> = e.calls.iter().filter_map(|c| live.iter().find(|l| &l.call_sid == c)).collect();
    let priority = calls.iter().filter_map(|c| c.incident.as_ref()?.priority.as_ref().map(|p| p.value)).min();
    let mut units: Vec<String> = calls.iter().flat_map(|c| c.units.iter().map(|u| u.unit.clone())).collect();
    units.sort();
    units.dedup();
    // Dispatched beats proposed beats recalled beats nothing.
    let rank = |p: DispatchPhase| match p {
        DispatchPhase::None => 0,
        DispatchPhase::Recalled => 1,
        DispatchPhase::Proposed => 2,
        DispatchPhase::Dispatched => 3,
    };
    let dispatch = calls.iter().map(|c| c.dispatch.phase).max_by_key(|p| rank(*p)).map(|p| serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default());
    let duplicate_of = match e.calls.as_slice() {
        [only] => book.duplicate_of(only, now_ms).map(|d| DuplicateView { incident: d.incident, by: if d.by == Match::Exact { "exact" } else { "near" } }),
        _ => None,
    };
    IncidentView { id, calls: e.calls.clone(), incident_type: e.incident_type.clone(), priority, location: e.location.clone(), units, dispatch, duplicate_of }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    live: bool,
}

/// `GET /api/incidents?live=true|false`.
pub(crate) async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Json<Vec<IncidentView>> {
    let book = state.incidents.snapshot();
    let live = state.calls.live_calls();
    let now = unix_ms();
    let views = book
        .recent(if q.live { 0 } else { now.saturating_sub(state.config.duplicate_window.as_millis() as u64) })
        .filter(|(_, e)| !q.live || e.calls.iter().any(|c| live.iter().any(|l| &l.call_sid == c)))
        .map(|(id, e)| view(&book, id, e, &live, now))
        .collect();
    Json(views)
}

/// `GET /api/incidents/{id}`.
pub(crate) async fn one(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Json<IncidentView>, ApiError> {
    let book = state.incidents.snapshot();
    let id = IncidentId(id);
    let e = book.get(id).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("incident {id} is not known")))?;
    Ok(Json(view(&book, id, e, &state.calls.live_calls(), unix_ms())))
}

/// `GET /api/incidents/{id}/eido`: the NENA EIDO of a live or recent incident, one incident
/// with each of its calls; 404 when the list no longer has it (a call's own EIDO,
/// `/api/calls/{CallSid}/eido`, still gives it).
pub(crate) async fn eido(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<u64>) -> Result<Json<serde_json::Value>, ApiError> {
    let id = IncidentId(id);
    let r = match state.incidents.snapshot().get(id) {
        Some(e) => crate::review::incident_eido(&state, id, &e.calls).map(Json),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("incident {id} is not known"))),
    };
    crate::audit::audited_read(&state, &user, "incident.eido", &id.to_string(), r).await
}

#[derive(Deserialize)]
struct LinkBody {
    incident: u64,
}

/// What a link or unlink answers: the call and the incidents it left and joined.
#[derive(Debug, Serialize)]
pub struct Linked {
    /// The call.
    pub call_sid: String,
    /// The incident it was on.
    pub from: IncidentId,
    /// The incident it is on now.
    pub to: IncidentId,
}

fn refused(e: LinkRefused) -> ApiError {
    let status = match e {
        LinkRefused::UnknownCall(_) | LinkRefused::UnknownIncident(_) => StatusCode::NOT_FOUND,
        LinkRefused::AlreadyLinked(_) | LinkRefused::Alone => StatusCode::CONFLICT,
    };
    ApiError(status, e.to_string())
}

/// A live call links or unlinks itself (`Command::Link` / `Command::Unlink`: its dispatch
/// adjusts and the event is on its timeline); an ended call's link is made on the list and
/// recorded on its timeline through the store.
async fn relink(state: &AppState, user: &User, id: &str, to: Option<IncidentId>) -> Result<Linked, ApiError> {
    let from = state.incidents.snapshot().incident_of(id).ok_or_else(|| refused(LinkRefused::UnknownCall(id.to_string())))?;
    if let Some(handle) = state.calls.handle(id) {
        let cmd = match to {
            Some(incident) => Command::Link { incident, by: user.name.clone() },
            None => Command::Unlink { by: user.name.clone() },
        };
        match handle.command(cmd).await {
            Ok(()) => {
                state.calls.hub().barrier().await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let now = state.incidents.snapshot().incident_of(id).unwrap_or(from);
                return Ok(Linked { call_sid: id.to_string(), from, to: now });
            }
            Err(Refusal::Link(e)) => return Err(refused(e)),
            // Ended meanwhile: as an ended call, below.
            Err(Refusal::CallEnded) => {}
            Err(why) => return Err(ApiError(StatusCode::CONFLICT, why.to_string())),
        }
    }
    let at = unix_ms();
    let now = match to {
        Some(incident) => state.incidents.link(id, incident, at).map(|_| incident),
        None => state.incidents.unlink(id, at),
    }
    .map_err(refused)?;
    let book = state.incidents.snapshot();
    let with_calls = book.others(id).into_iter().map(str::to_string).collect();
    let kind = CallEventKind::IncidentLinked { incident: now, with_calls, by: Some(user.name.clone()) };
    if let Err(e) = state.calls.hub().append_after_end(id, kind, at).await {
        tracing::warn!(error = %e, call_sid = id, "the link of an ended call is not on its record");
    }
    Ok(Linked { call_sid: id.to_string(), from, to: now })
}

/// `POST /api/calls/{id}/link` `{"incident": n}`.
pub(crate) async fn link(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<Linked>, ApiError> {
    let r = match serde_json::from_slice::<LinkBody>(&body) {
        Ok(b) => relink(&state, &user, &id, Some(IncidentId(b.incident))).await,
        Err(e) => Err(ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}"))),
    };
    let detail = r.as_ref().map(|l| format!("{} → {}", l.from, l.to)).unwrap_or_default();
    audited_action(&state, &user, "incident.link", &id, detail, r).await
}

/// `POST /api/calls/{id}/unlink`.
pub(crate) async fn unlink(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<Linked>, ApiError> {
    let r = relink(&state, &user, &id, None).await;
    let detail = r.as_ref().map(|l| format!("{} → {}", l.from, l.to)).unwrap_or_default();
    audited_action(&state, &user, "incident.unlink", &id, detail, r).await
}

/// `POST /api/calls/{id}/keep-apart`: a live call is kept apart from its possible duplicate
/// (never suggested or linked to that incident automatically again); 409 when none stands or
/// the call has ended. Answers the call's record.
pub(crate) async fn keep_apart(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let suggested = state.calls.live_call(&id).and_then(|c| c.possible_duplicate).map(|d| d.incident.to_string()).unwrap_or_default();
    let r = crate::supervise::live_command(&state, &id, Command::KeepApart { by: user.name.clone() }).await;
    audited_action(&state, &user, "incident.keep_apart", &id, suggested, r).await
}
