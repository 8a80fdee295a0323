//! The review API: past calls, transcripts, timelines, recordings, units, legal hold, the audit
//! log and caller history. Every access to a record and every supervisor action is audited
//! (CJIS 5.4): who, when, what, on which call, and the outcome.

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use watchfloor_bridge::AppendError;
use watchfloor_bridge::task::unix_ms;
use watchfloor_bridge::{CallEventKind, Command, Refusal};
use watchfloor_dispatch::call::check_move;
use watchfloor_dispatch::units::UnitStatus;
use watchfloor_store::AuditQuery;

use crate::AppState;
use crate::api::{HoldBody, UnitBody};
use crate::auth::User;
use crate::audit::{audit, audited_action, audited_read, outcome_of};
use crate::error::{ApiError, bad};

use crate::api::DAY_MS;
use crate::api::MAX_PAGE;


fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "store error".into())
}

/// `GET /api/calls`: past calls, newest first. Filters: `from`, `to` (ms since the Unix epoch,
/// on the start time), `status`, `incident_type`, `priority` (`P1`–`P4`), `caller` (E.164),
/// `q` (words in the transcript), `limit` (1–500, default 50), `cursor` (from the previous page).
pub(crate) async fn list_calls(State(state): State<AppState>, Extension(user): Extension<User>, Query(q): Query<HashMap<String, String>>) -> Result<Json<watchfloor_store::CallPage>, ApiError> {
    let r = crate::api::call_query(&q).map_err(bad);
    let detail = serde_json::to_string(&q).ok();
    let r = match r {
        Ok(query) => state.store.query(&query).map(Json).map_err(internal),
        Err(e) => Err(e),
    };
    audit(&state, &user, "call.list", "calls", outcome_of(&r), detail, false).await;
    r
}

fn record_or_404(state: &AppState, id: &str) -> Result<watchfloor_store::CallRecord, ApiError> {
    state.store.get_call(id).map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no call {id}")))
}

/// A call's audio while the call is live is listening in: only a supervisor may (issue 20: a
/// reviewer hears a call once it has ended). 403 otherwise.
fn may_hear(state: &AppState, user: &User, id: &str) -> Result<(), ApiError> {
    if !user.has(crate::auth::Role::Supervisor) && state.calls.handle(id).is_some() {
        return Err(ApiError(StatusCode::FORBIDDEN, format!("call {id} is live: listening to a live call needs the supervisor role")));
    }
    Ok(())
}

/// The record as of now: for a live call, first wait until its events so far are written (a
/// live record on disk may lag by up to one flush interval).
async fn fresh_record(state: &AppState, id: &str) -> Result<watchfloor_store::CallRecord, ApiError> {
    if let Some(handle) = state.calls.handle(id) {
        // The call's task may not have published its first events yet (it was just started):
        // a round trip through it orders them before the barrier.
        let _ = handle.command(Command::Sync).await;
        state.calls.hub().barrier().await.map_err(internal)?;
    }
    record_or_404(state, id)
}

/// `GET /api/calls/{id}`: one call's record.
pub(crate) async fn call_record(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let r = record_or_404(&state, &id).map(Json);
    audited_read(&state, &user, "call.read", &id, r).await
}

#[derive(Deserialize)]
pub(crate) struct TranscriptQuery {
    format: Option<String>,
}

/// `GET /api/calls/{id}/transcript?format=json|text`: every final line with speaker and time
/// (ms since the Unix epoch and offset from the start of the call).
pub(crate) async fn transcript(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, Query(q): Query<TranscriptQuery>) -> Result<Response, ApiError> {
    let r = (|| {
        let rec = record_or_404(&state, &id)?;
        let lines: Vec<serde_json::Value> = rec
            .transcript
            .iter()
            .map(|l| json!({"speaker": l.speaker, "by": l.by, "at_ms": l.at_ms, "offset_ms": l.at_ms.saturating_sub(rec.started_at_ms), "text": l.text, "interrupted": l.interrupted}))
            .collect();
        match q.format.as_deref().unwrap_or("json") {
            "json" => Ok(Json(json!({"call_sid": rec.call_sid, "started_at_ms": rec.started_at_ms, "lines": lines})).into_response()),
            "text" => {
                let text: String = rec
                    .transcript
                    .iter()
                    .map(|l| {
                        let off = l.at_ms.saturating_sub(rec.started_at_ms) / 1000;
                        let who = match (l.speaker.as_str(), &l.by) {
                            ("caller", _) => "Caller".to_string(),
                            ("supervisor", Some(by)) => format!("Supervisor ({by})"),
                            ("supervisor", None) => "Supervisor".to_string(),
                            _ => "Dispatcher".to_string(),
                        };
                        format!("[{:02}:{:02}] {who}: {}{}\n", off / 60, off % 60, l.text, if l.interrupted { " [interrupted]" } else { "" })
                    })
                    .collect();
                Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
            }
            other => Err(bad(format!("format must be json or text, got {other:?}"))),
        }
    })();
    audited_read(&state, &user, "call.transcript", &id, r).await
}

/// `GET /api/calls/{id}/timeline`: every `CallEvent` of the call, in order.
pub(crate) async fn timeline(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let r = (|| {
        record_or_404(&state, &id)?;
        let events = state.store.events(&id).map_err(internal)?;
        Ok(Json(json!({"call_sid": id, "events": events})))
    })();
    audited_read(&state, &user, "call.timeline", &id, r).await
}

/// `GET /api/calls/{id}/recording.wav`: stereo WAV, left the caller, right the agent as heard.
pub(crate) async fn recording(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let r = (|| {
        record_or_404(&state, &id)?;
        may_hear(&state, &user, &id)?;
        // Streamed a second at a time, never built whole in memory (issue 15).
        let blocks = state.store.recording_wav_blocks(&id).map_err(internal)?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("call {id} has no audio")))?;
        let len = blocks.len_bytes();
        let body = axum::body::Body::from_stream(futures_util::stream::iter(blocks.map(Ok::<_, std::convert::Infallible>)));
        Ok(([(header::CONTENT_TYPE, "audio/wav".to_string()), (header::CONTENT_DISPOSITION, "inline; filename=\"recording.wav\"".to_string()), (header::CONTENT_LENGTH, len.to_string())], body).into_response())
    })();
    audited_read(&state, &user, "call.recording", &id, r).await
}

/// `GET /api/calls/{id}/dispatch/{revision}/audio.wav`: the dispatch message as the model voiced
/// it (mono, 16-bit PCM, 8000 Hz) — the record's `dispatch_audio_url`.
pub(crate) async fn dispatch_audio(State(state): State<AppState>, Extension(user): Extension<User>, Path((id, revision)): Path<(String, u32)>) -> Result<Response, ApiError> {
    let r = match may_hear(&state, &user, &id) {
        Err(e) => Err(e),
        Ok(()) => fresh_record(&state, &id).await,
    };
    let r = match r {
        Ok(_) => state
            .store
            .dispatch_audio_wav(&id, revision)
            .map_err(internal)?
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("call {id} has no voiced dispatch message {revision}")))
            .map(|wav| ([(header::CONTENT_TYPE, "audio/wav"), (header::CONTENT_DISPOSITION, "inline; filename=\"dispatch.wav\"")], wav).into_response()),
        Err(e) => Err(e),
    };
    audited_read(&state, &user, "call.dispatch_audio", &id, r).await
}

/// `GET /api/calls/{id}/supervisor.wav`: the supervisor's own track (mono, 16-bit PCM, 8000 Hz)
/// over the whole recording, on the recording's clock; 404 when no supervisor spoke on the call.
pub(crate) async fn supervisor_audio(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let r = match may_hear(&state, &user, &id) {
        Err(e) => Err(e),
        Ok(()) => fresh_record(&state, &id).await,
    };
    let r = match r {
        Ok(_) => state
            .store
            .supervisor_wav(&id)
            .map_err(internal)?
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no supervisor spoke on call {id}")))
            .map(|wav| ([(header::CONTENT_TYPE, "audio/wav"), (header::CONTENT_DISPOSITION, "inline; filename=\"supervisor.wav\"")], wav).into_response()),
        Err(e) => Err(e),
    };
    audited_read(&state, &user, "call.supervisor_audio", &id, r).await
}

/// `GET /api/units`: the roster — each unit's call sign, type, status and the call it is on.
pub(crate) async fn units(State(state): State<AppState>) -> Json<watchfloor_dispatch::units::Roster> {
    Json((*state.roster.snapshot()).clone())
}

/// `GET /api/calls/{id}/eido`: the call as a NENA EIDO document (NENA-STA-021).
pub(crate) async fn eido(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let r = (|| {
        let rec = record_or_404(&state, &id)?;
        let events = state.store.events(&id).map_err(internal)?;
        // A call linked with others is one incident with several calls (issue 18): the calls
        // the incident list has for it, else those its last link named.
        let Some(number) = rec.incident else {
            return Ok(Json(watchfloor_dispatch::eido::document(&eido_facts(&state, &rec, &events))));
        };
        let mut sids: Vec<String> = match state.incidents.snapshot().get(number) {
            Some(e) => e.calls.clone(),
            None => events.iter().rev().find_map(|e| match &e.kind { CallEventKind::IncidentLinked { with_calls, .. } => Some(with_calls.clone()), _ => None }).unwrap_or_default(),
        };
        if !sids.contains(&id) {
            sids.insert(0, id.clone());
        }
        Ok(Json(incident_eido(&state, number, &sids)?))
    })();
    audited_read(&state, &user, "call.eido", &id, r).await
}

/// The EIDO of incident `number` with calls `sids` (in the order they joined; records missing
/// from the store are left out).
pub(crate) fn incident_eido(state: &AppState, number: watchfloor_dispatch::linking::IncidentId, sids: &[String]) -> Result<serde_json::Value, ApiError> {
    let mut facts = Vec::new();
    for sid in sids {
        if let Some(rec) = state.store.get_call(sid).map_err(internal)? {
            let events = state.store.events(sid).map_err(internal)?;
            facts.push(eido_facts(state, &rec, &events));
        }
    }
    Ok(watchfloor_dispatch::eido::incident_document(Some(number.0), &facts))
}

/// What the EIDO of a call is built from: its record and, for who did what, its events.
fn eido_facts(state: &AppState, rec: &watchfloor_store::CallRecord, events: &[watchfloor_bridge::CallEvent]) -> watchfloor_dispatch::eido::CallFacts {
    use watchfloor_dispatch::eido::{Agent, CallFacts, Note};
    let mut notes: Vec<Note> = rec
        .transcript
        .iter()
        .map(|l| match (l.speaker.as_str(), &l.by) {
            ("supervisor", Some(by)) => Note { at_ms: l.at_ms, by: Agent::Supervisor(by.clone()), text: format!("Supervisor ({by}): {}", l.text) },
            _ => Note { at_ms: l.at_ms, by: Agent::Ai, text: format!("{}: {}{}", if l.speaker == "caller" { "Caller" } else { "AI call taker" }, l.text, if l.interrupted { " [interrupted by the caller]" } else { "" }) },
        })
        .collect();
    let mut supervisors: Vec<(String, u64)> = Vec::new();
    let mut call_takers: Vec<String> = Vec::new();
    for ev in events {
        if let CallEventKind::IncidentLinked { incident, with_calls, by: Some(by) } = &ev.kind {
            // A link is the supervisor's, or the automatic policy's (the AI's).
            let text = if with_calls.is_empty() { format!("Made its own incident {incident}") } else { format!("Linked to incident {incident} with {}", with_calls.join(", ")) };
            let who = if by == "policy" { Agent::Ai } else { Agent::Supervisor(by.clone()) };
            if let Agent::Supervisor(u) = &who
                && !supervisors.iter().any(|(s, _)| s == u) {
                    supervisors.push((u.clone(), ev.at_ms));
                }
            notes.push(Note { at_ms: ev.at_ms, by: who, text });
            continue;
        }
        let (by, text) = match &ev.kind {
            CallEventKind::ModeChanged { mode: watchfloor_bridge::CallMode::Takeover, by } => {
                if !call_takers.contains(by) {
                    call_takers.push(by.clone());
                }
                (by, "Took over the call: talking with the caller; the AI call taker is silent".to_string())
            }
            CallEventKind::ModeChanged { mode: watchfloor_bridge::CallMode::Ai, by } => (by, "Handed the call back to the AI call taker".to_string()),
            CallEventKind::UnitAttached { unit, by } => (by, format!("Unit attached: {unit}")),
            CallEventKind::UnitOnScene { unit, by } => (by, format!("Unit on scene: {unit}")),
            CallEventKind::LegalHold { on, by } => (by, format!("Legal hold {}", if *on { "placed" } else { "released" })),
            _ => continue,
        };
        if !supervisors.iter().any(|(u, _)| u == by) {
            supervisors.push((by.clone(), ev.at_ms));
        }
        notes.push(Note { at_ms: ev.at_ms, by: Agent::Supervisor(by.clone()), text });
    }
    notes.sort_by_key(|n| n.at_ms);
    let updated = events.last().map_or(rec.started_at_ms, |e| e.at_ms);
    // The incident as it last stood, each part said by whoever set it.
    let latest = events.iter().rev().find_map(|e| if let CallEventKind::IncidentUpdated { incident } = &e.kind { Some(incident) } else { None });
    let agent_of = |s: &watchfloor_dispatch::incident::Source| match s {
        watchfloor_dispatch::incident::Source::Supervisor { user } => Agent::Supervisor(user.clone()),
        _ => Agent::Ai,
    };
    let incident = latest.and_then(|i| {
        let t = i.incident_type.as_ref()?;
        Some(watchfloor_dispatch::eido::IncidentFacts {
            type_code: t.value.clone(),
            type_text: watchfloor_dispatch::types::incident_type(&t.value).map(|x| x.text.to_string()),
            priority_number: i.priority.as_ref().map(|p| p.value.eido_number()),
            set_by: agent_of(&t.source),
            set_at_ms: t.set_at_ms,
        })
    });
    let location = latest.and_then(|i| i.location.as_ref()).map(|l| watchfloor_dispatch::eido::LocationFacts { text: l.value.line(), set_by: agent_of(&l.source), set_at_ms: l.set_at_ms });
    CallFacts {
        agency_id: state.config.agency_id.clone(),
        issuing_element: format!("watchfloor.{}", state.config.agency_id),
        call_sid: rec.call_sid.clone(),
        caller_number: rec.from.clone(),
        started_at_ms: rec.started_at_ms,
        answered_at_ms: rec.stages.get("stream_started").map(|ms| rec.started_at_ms + ms),
        ended: !rec.is_live(),
        updated_at_ms: updated,
        incident,
        location,
        notes,
        supervisors,
        call_takers,
    }
}


fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t).map_err(|e| bad(format!("request body: {}", e.body_text())))
}

fn valid_unit(unit: &str) -> Result<String, ApiError> {
    crate::api::valid_unit(unit).map_err(bad)
}

/// Records a supervisor event on a call: through the call's task while it is live (so sequence
/// numbers stay in order), else through the store writer; flushed before it returns.
async fn record_action(state: &AppState, id: &str, kind: CallEventKind) -> Result<watchfloor_store::CallRecord, ApiError> {
    if let Some(handle) = state.calls.handle(id)
        && handle.command(Command::Record(kind.clone())).await.is_ok() {
            state.calls.hub().barrier().await.map_err(internal)?;
            return record_or_404(state, id);
        }
    match state.calls.hub().append_after_end(id, kind, unix_ms()).await {
        Ok(_) => record_or_404(state, id),
        Err(e @ AppendError::NoSuchCall(_)) => Err(ApiError(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ AppendError::StillLive(_)) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
        Err(e @ (AppendError::Store(_) | AppendError::StoreGone)) => Err(internal(e)),
    }
}

/// Moves a unit on a call (attach = dispatched, en route, on scene, cleared). A live call moves
/// it itself (`Command::MoveUnit`: checked against the call's units, then the roster's owner);
/// an ended one is checked against its record ([`check_move`]), then the roster's owner moves a
/// unit on the roster (a unit busy on another call cannot be attached: 409) and the record takes
/// the event — or the unit is put back when it cannot. Units not on the roster (mutual aid) are
/// recorded only.
async fn move_unit(state: &AppState, user: &User, id: &str, unit: &str, next: UnitStatus) -> Result<watchfloor_store::CallRecord, ApiError> {
    let refused = |m: String| ApiError(StatusCode::CONFLICT, m);
    if let Some(handle) = state.calls.handle(id) {
        match handle.command(Command::MoveUnit { unit: unit.to_string(), status: next, by: user.name.clone() }).await {
            Ok(()) => {
                state.calls.hub().barrier().await.map_err(internal)?;
                return record_or_404(state, id);
            }
            // Ended meanwhile: as an ended call, below.
            Err(Refusal::CallEnded) => {}
            Err(why) => return Err(refused(why.to_string())),
        }
    }
    let rec = fresh_record(state, id).await?;
    let current = rec.units.iter().find(|u| u.unit == unit).map(|u| u.status);
    check_move(unit, current, next).map_err(|e| refused(e.to_string()))?;
    let before = state.roster.move_unit(id, unit, next).map_err(|e| refused(e.to_string()))?;
    let kind = match next {
        UnitStatus::Dispatched => CallEventKind::UnitAttached { unit: unit.to_string(), by: user.name.clone() },
        UnitStatus::OnScene => CallEventKind::UnitOnScene { unit: unit.to_string(), by: user.name.clone() },
        status => CallEventKind::UnitStatusChanged { unit: unit.to_string(), status, by: user.name.clone() },
    };
    let r = record_action(state, id, kind).await;
    if r.is_err()
        && let Some(before) = before {
            state.roster.put_back(before);
        }
    r
}

async fn unit_action(state: AppState, user: User, id: String, b: Result<Json<UnitBody>, JsonRejection>, next: UnitStatus, action: &str) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let (detail, r) = match body(b).and_then(|b| valid_unit(&b.unit)) {
        Ok(unit) => (format!("unit {unit}"), move_unit(&state, &user, &id, &unit, next).await),
        Err(e) => (String::from("bad request"), Err(e)),
    };
    audited_action(&state, &user, action, &id, detail, r).await
}

/// `POST /api/calls/{id}/attach` `{"unit": "Engine 7"}`: a unit is dispatched to the call.
pub(crate) async fn attach_unit(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<UnitBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    unit_action(state, user, id, b, UnitStatus::Dispatched, "call.attach_unit").await
}

/// `POST /api/calls/{id}/en-route` `{"unit": "Engine 7"}`: an attached unit is on its way.
pub(crate) async fn unit_en_route(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<UnitBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    unit_action(state, user, id, b, UnitStatus::EnRoute, "call.unit_en_route").await
}

/// `POST /api/calls/{id}/on-scene` `{"unit": "Engine 7"}`: an attached unit is on scene.
pub(crate) async fn unit_on_scene(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<UnitBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    unit_action(state, user, id, b, UnitStatus::OnScene, "call.unit_on_scene").await
}

/// `POST /api/calls/{id}/cleared` `{"unit": "Engine 7"}`: a unit is done and back in service.
pub(crate) async fn unit_cleared(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<UnitBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    unit_action(state, user, id, b, UnitStatus::Cleared, "call.unit_cleared").await
}

/// `POST /api/calls/{id}/legal-hold` `{"on": true}`: hold (or release) a record from purging.
pub(crate) async fn legal_hold(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>, b: Result<Json<HoldBody>, JsonRejection>) -> Result<Json<watchfloor_store::CallRecord>, ApiError> {
    let (detail, r) = match body(b) {
        Ok(HoldBody { on }) => (format!("legal hold {}", if on { "on" } else { "off" }), record_action(&state, &id, CallEventKind::LegalHold { on, by: user.name.clone() }).await),
        Err(e) => (String::from("bad request"), Err(e)),
    };
    audited_action(&state, &user, "call.legal_hold", &id, detail, r).await
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    days: Option<u64>,
}

/// `GET /api/callers/{number}/history?days=N`: prior calls from a number (default: the configured
/// caller-history window).
pub(crate) async fn caller_history(State(state): State<AppState>, Extension(user): Extension<User>, Path(number): Path<String>, Query(q): Query<HistoryQuery>) -> Result<Json<serde_json::Value>, ApiError> {
    let days = q.days.unwrap_or(state.config.caller_history_days);
    let r = if days == 0 || days > 3660 {
        Err(bad("days must be 1–3660"))
    } else {
        let since = unix_ms().saturating_sub(days * DAY_MS);
        state.store.caller_history(&number, since, MAX_PAGE).map(|calls| Json(json!({"number": number, "days": days, "calls": calls}))).map_err(internal)
    };
    audited_read(&state, &user, "caller.history", &number, r).await
}

#[derive(Deserialize)]
pub(crate) struct AuditParams {
    from: Option<u64>,
    to: Option<u64>,
    user: Option<String>,
    action: Option<String>,
    target: Option<String>,
    limit: Option<usize>,
    before: Option<u64>,
}

/// `GET /api/audit`: the audit log, newest first. Filters: `from`, `to` (ms since the Unix
/// epoch), `user`, `action`, `target`, `limit` (1–500, default 100), `before` (an entry id).
pub(crate) async fn audit_log(State(state): State<AppState>, Extension(user): Extension<User>, q: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let r = match q {
        Err(e) => Err(bad(e.body_text())),
        Ok(Query(p)) if p.limit.is_some_and(|l| l == 0 || l > MAX_PAGE) => Err(bad(format!("limit must be 1–{MAX_PAGE}"))),
        Ok(Query(p)) => {
            let q = AuditQuery { from_ms: p.from, to_ms: p.to, user: p.user, action: p.action, target: p.target, limit: p.limit.unwrap_or(100), before_id: p.before };
            state.store.audit_log(&q).map(|entries| {
                let next = (entries.len() == q.limit).then(|| entries.last().map(|e| e.id)).flatten();
                Json(json!({"entries": entries, "next_before": next}))
            }).map_err(internal)
        }
    };
    audited_read(&state, &user, "audit.read", "audit", r).await
}
