//! NENA EIDO (NENA-STA-021) JSON for one call: the root `EmergencyIncidentDataObjectType` with
//! agency, agent, call, incident, location and notes components (schema: `shared/eido/openapi.yaml`,
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

/// The EIDO document of one call.
pub fn document(f: &CallFacts) -> Value {
    let agency = f.agency_id.as_str();
    let ai = agent_id(&Agent::Ai, agency);
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
    let call_id = format!("urn:emergency:uid:callid:{}:{agency}", f.call_sid);
    let incident_id = format!("urn:emergency:uid:incidentid:{}:{agency}", f.call_sid);
    let location_id = format!("location-{}", f.call_sid);
    let note_ids: Vec<String> = (0..f.notes.len()).map(|i| format!("note-{}-{i}", f.call_sid)).collect();
    let mut agents = vec![merge(
        prologue(ai.clone(), f.started_at_ms, &Agent::Ai),
        json!({"agentRoleRegistryText": ["Call Taking"], "agentWorkstationPositionIdentification": "AI call taker", "agencyReference": reference(agency)}),
    )];
    for (user, at) in &f.supervisors {
        let who = Agent::Supervisor(user.clone());
        let roles: &[&str] = if f.call_takers.contains(user) { &["Supervisor", "Call Taking"] } else { &["Supervisor"] };
        agents.push(merge(prologue(agent_id(&who, agency), *at, &who), json!({"agentRoleRegistryText": roles, "agencyReference": reference(agency)})));
    }
    let agent_refs: Vec<Value> = agents.iter().map(|a| reference(a["$id"].as_str().unwrap_or_default())).collect();
    let note_refs: Vec<Value> = note_ids.iter().map(|n| reference(n)).collect();
    let mut call = merge(
        prologue(call_id, f.updated_at_ms, &Agent::Ai),
        json!({
            "callStateRegistryText": if f.ended { "callEnd" } else { "callAnswered" },
            "standardPrimaryCallType": "emergency",
            "direction": "incoming",
            "callStartTimestamp": timestamp(f.started_at_ms),
            "agentReference": agent_refs,
            "notesReference": note_refs,
        }),
    );
    if let Some(a) = f.answered_at_ms {
        call["answerDate"] = json!(timestamp(a));
    }
    let mut doc = merge(
        prologue(incident_id.clone(), f.updated_at_ms, &Agent::Ai),
        json!({
            "eidoVersion": "1.0",
            "issuingElementIdentification": f.issuing_element,
            "agencyComponent": [merge(
                prologue(agency.to_string(), f.started_at_ms, &Agent::Ai),
                json!({"agencyRoleDescriptionRegistryText": ["CallReceiving"], "agencyType": ["psap"], "incidentOwningAgencyIndicator": true}),
            )],
            "agentComponent": agents,
            "notesComponent": f.notes.iter().zip(&note_ids).map(|(n, id)| merge(
                prologue(id.clone(), n.at_ms, &n.by),
                json!({"agentReference": reference(&agent_id(&n.by, agency)), "notesActionComments": format!("<p>{}</p>", quick_xml::escape::escape(n.text.as_str()))}),
            )).collect::<Vec<_>>(),
        }),
    );
    if let Some(loc) = &f.location {
        doc["locationComponent"] = json!([merge(
            prologue(location_id.clone(), loc.set_at_ms, &loc.set_by),
            json!({"locationTypeDescriptionRegistryText": "Incident", "locationDescriptionText": loc.text}),
        )]);
        call["locationReference"] = json!([reference(&location_id)]);
    }
    if let Some(inc) = &f.incident {
        let mut i = merge(
            prologue(format!("incident-{}", f.call_sid), inc.set_at_ms, &inc.set_by),
            json!({"incidentTypeCommonRegistryText": inc.type_code, "agentReference": agent_refs_for(&doc), "notesReference": note_ids.iter().map(|n| reference(n)).collect::<Vec<_>>()}),
        );
        if let Some(t) = &inc.type_text {
            i["incidentTypeInternalText"] = json!(t);
        }
        if let Some(p) = inc.priority_number {
            i["incidentCommonPriorityNumber"] = json!(p.min(10));
        }
        if f.location.is_some() {
            i["locationReference"] = json!([reference(&location_id)]);
        }
        doc["incidentComponent"] = i;
    }
    doc["callComponent"] = json!([call]);
    doc
}

fn agent_refs_for(doc: &Value) -> Vec<Value> {
    doc["agentComponent"].as_array().map(|a| a.iter().map(|x| reference(x["$id"].as_str().unwrap_or_default())).collect()).unwrap_or_default()
}
