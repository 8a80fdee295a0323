//! NENA EIDO (NENA-STA-021) JSON for one call, or one incident of several calls (issue 18): the
//! root `EmergencyIncidentDataObjectType` with agency, agent, call, incident, location and notes
//! components (schema: `shared/eido/openapi.yaml`,
//! copied to `tests/eido/openapi.yaml`).
//!
//! Every component carries the prologue (`$id`, `lastUpdateTimeStamp`, `updatedByAgencyReference`,
//! `updatedByAgentReference`), so every field says who set it: the AI call taker and each
//! supervisor are agents ("agent or automaton"). References are `{"$ref": "<$id>"}` objects.
//! Rules the schema leaves to the writer and this module enforces: timestamps are RFC 3339 with a
//! zone (UTC, ms); `incidentCommonPriorityNumber` is 0–10; notes are HTML-escaped text;
//! `incidentComponent` is one object, the other components arrays.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

/// Who set something: the AI agent or a named supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Agent {
    /// The AI call taker.
    Ai,
    /// A console user.
    Supervisor(String),
}

/// The incident as known.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentFacts {
    /// APCO ANS 2.103 common incident type code, e.g. `FSTRU`.
    pub type_code: String,
    /// Its text, e.g. `Structure fire`.
    pub type_text: Option<String>,
    /// EIDO common priority, 0–10 (10 highest); clamped.
    pub priority_number: Option<u8>,
    /// Who set it.
    pub set_by: Agent,
    /// When, ms since the Unix epoch.
    pub set_at_ms: u64,
}

/// The incident location as known.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationFacts {
    /// What the caller said, e.g. `123 Main Street`.
    pub text: String,
    /// Who set it.
    pub set_by: Agent,
    /// When, ms since the Unix epoch.
    pub set_at_ms: u64,
}

/// A note: a transcript line or a supervisor action.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who recorded it.
    pub by: Agent,
    /// Plain text (escaped here).
    pub text: String,
}

/// Everything the EIDO of one call is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFacts {
    /// The agency's identifier, a domain (e.g. `psap.example.org`).
    pub agency_id: String,
    /// This system's identifier (`issuingElementIdentification`).
    pub issuing_element: String,
    /// Twilio CallSid.
    pub call_sid: String,
    /// Caller number (E.164).
    pub caller_number: String,
    /// ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When the agent answered (stream started), ms since the Unix epoch.
    pub answered_at_ms: Option<u64>,
    /// The call has ended.
    pub ended: bool,
    /// Last change to anything in the call, ms since the Unix epoch.
    pub updated_at_ms: u64,
    /// The incident, once its type is known.
    pub incident: Option<IncidentFacts>,
    /// The location, once known.
    pub location: Option<LocationFacts>,
    /// Transcript lines and supervisor actions, in order.
    pub notes: Vec<Note>,
    /// Supervisors who acted on the call, with when they first did.
    pub supervisors: Vec<(String, u64)>,
    /// Those of [`CallFacts::supervisors`] who held the call's voice (a takeover, issue 17): a
    /// call taker as well as a supervisor (`agentRoleRegistryText` has both).
    pub call_takers: Vec<String>,
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-21T14:05:30.123Z`.
pub fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn reference(id: &str) -> Value {
    json!({ "$ref": id })
}

fn agent_id(agent: &Agent, agency: &str) -> String {
    match agent {
        Agent::Ai => format!("ai-calltaker@{agency}"),
        Agent::Supervisor(user) => {
            let safe: String = user.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
            format!("{safe}@{agency}")
        }
    }
}

/// The EIDO document of one call (its own incident).
pub fn document(f: &CallFacts) -> Value {
    incident_document(None, std::slice::from_ref(f))
}

/// The EIDO document of one incident and its calls (issue 18: calls linked as duplicates are
/// one incident with several calls): one `incidentComponent`, a `callComponent` per call (each
/// with its own notes, agents and location), every agent and note of every call. The incident
/// takes its type from the first call (in `calls` order) that knows it, the highest priority
/// of any call, and the first call's location that is known. `number`: the incident's number in
/// this centre (`I-<n>`); none: the call's own (its id is the CallSid's). `calls` must not be
/// empty (an empty slice gives an empty object).
pub fn incident_document(number: Option<u64>, calls: &[CallFacts]) -> Value {
    let Some(first) = calls.first() else { return json!({}) };
    let agency = first.agency_id.as_str();
    let key = number.map_or_else(|| first.call_sid.clone(), |n| format!("I-{n}"));
    let prologue = |id: String, at_ms: u64, by: &Agent| {
        json!({
            "$id": id,
            "lastUpdateTimeStamp": timestamp(at_ms),
            "updatedByAgencyReference": reference(agency),
            "updatedByAgentReference": reference(&agent_id(by, agency)),
        })
    };
    let merge = |mut base: Value, extra: Value| {
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base
    };
    let incident_id = format!("urn:emergency:uid:incidentid:{key}:{agency}");
    let started = calls.iter().map(|c| c.started_at_ms).min().unwrap_or(first.started_at_ms);
    let updated = calls.iter().map(|c| c.updated_at_ms).max().unwrap_or(first.updated_at_ms);
    // Agents: the AI call taker, then every supervisor of any call (first action, call-taker role).
    let mut supervisors: Vec<(String, u64)> = Vec::new();
    for (user, at) in calls.iter().flat_map(|c| c.supervisors.iter()) {
        match supervisors.iter_mut().find(|(u, _)| u == user) {
            Some((_, first_at)) => *first_at = (*first_at).min(*at),
            None => supervisors.push((user.clone(), *at)),
        }
    }
    let mut agents = vec![merge(
        prologue(agent_id(&Agent::Ai, agency), started, &Agent::Ai),
        json!({"agentRoleRegistryText": ["Call Taking"], "agentWorkstationPositionIdentification": "AI call taker", "agencyReference": reference(agency)}),
    )];
    for (user, at) in &supervisors {
        let who = Agent::Supervisor(user.clone());
        let call_taker = calls.iter().any(|c| c.call_takers.contains(user));
        let roles: &[&str] = if call_taker { &["Supervisor", "Call Taking"] } else { &["Supervisor"] };
        agents.push(merge(prologue(agent_id(&who, agency), *at, &who), json!({"agentRoleRegistryText": roles, "agencyReference": reference(agency)})));
    }
    let mut notes = Vec::new();
    let mut locations = Vec::new();
    let mut call_components = Vec::new();
    for f in calls {
        let note_ids: Vec<String> = (0..f.notes.len()).map(|i| format!("note-{}-{i}", f.call_sid)).collect();
        for (n, id) in f.notes.iter().zip(&note_ids) {
            notes.push(merge(
                prologue(id.clone(), n.at_ms, &n.by),
                json!({"agentReference": reference(&agent_id(&n.by, agency)), "notesActionComments": format!("<p>{}</p>", quick_xml::escape::escape(n.text.as_str()))}),
            ));
        }
        let mut agent_refs = vec![reference(&agent_id(&Agent::Ai, agency))];
        agent_refs.extend(f.supervisors.iter().map(|(u, _)| reference(&agent_id(&Agent::Supervisor(u.clone()), agency))));
        let mut call = merge(
            prologue(format!("urn:emergency:uid:callid:{}:{agency}", f.call_sid), f.updated_at_ms, &Agent::Ai),
            json!({
                "callStateRegistryText": if f.ended { "callEnd" } else { "callAnswered" },
                "standardPrimaryCallType": "emergency",
                "direction": "incoming",
                "callStartTimestamp": timestamp(f.started_at_ms),
                "agentReference": agent_refs,
                "notesReference": note_ids.iter().map(|n| reference(n)).collect::<Vec<_>>(),
            }),
        );
        if let Some(a) = f.answered_at_ms {
            call["answerDate"] = json!(timestamp(a));
        }
        if let Some(loc) = &f.location {
            let location_id = format!("location-{}", f.call_sid);
            locations.push(merge(
                prologue(location_id.clone(), loc.set_at_ms, &loc.set_by),
                json!({"locationTypeDescriptionRegistryText": "Incident", "locationDescriptionText": loc.text}),
            ));
            call["locationReference"] = json!([reference(&location_id)]);
        }
        call_components.push(call);
    }
    let note_refs: Vec<Value> = notes.iter().map(|n| reference(n["$id"].as_str().unwrap_or_default())).collect();
    let mut doc = merge(
        prologue(incident_id, updated, &Agent::Ai),
        json!({
            "eidoVersion": "1.0",
            "issuingElementIdentification": first.issuing_element,
            "agencyComponent": [merge(
                prologue(agency.to_string(), started, &Agent::Ai),
                json!({"agencyRoleDescriptionRegistryText": ["CallReceiving"], "agencyType": ["psap"], "incidentOwningAgencyIndicator": true}),
            )],
            "agentComponent": agents,
            "notesComponent": notes,
        }),
    );
    let location_ref = locations.first().map(|l| reference(l["$id"].as_str().unwrap_or_default()));
    if !locations.is_empty() {
        doc["locationComponent"] = json!(locations);
    }
    if let Some(inc) = calls.iter().find_map(|c| c.incident.as_ref()) {
        let mut i = merge(
            prologue(format!("incident-{key}"), inc.set_at_ms, &inc.set_by),
            json!({"incidentTypeCommonRegistryText": inc.type_code, "agentReference": agent_refs_for(&doc), "notesReference": note_refs}),
        );
        if let Some(t) = &inc.type_text {
            i["incidentTypeInternalText"] = json!(t);
        }
        if let Some(p) = calls.iter().filter_map(|c| c.incident.as_ref()?.priority_number).max() {
            i["incidentCommonPriorityNumber"] = json!(p.min(10));
        }
        if let Some(r) = &location_ref {
            i["locationReference"] = json!([r]);
        }
        doc["incidentComponent"] = i;
    }
    doc["callComponent"] = json!(call_components);
    doc
}

fn agent_refs_for(doc: &Value) -> Vec<Value> {
    doc["agentComponent"].as_array().map(|a| a.iter().map(|x| reference(x["$id"].as_str().unwrap_or_default())).collect()).unwrap_or_default()
}
