//! EIDO documents validate against the NENA schema (`tests/eido/openapi.yaml`, a copy of
//! `shared/eido/openapi.yaml`), checked with the `jsonschema` crate.
//!

#[path = "support/eido_schema.rs"]
mod eido_schema;

use eido_schema::{errors, validator};
use serde_json::Value;
use watchfloor_dispatch::eido::{Agent, CallFacts, IncidentFacts, LocationFacts, Note, document, incident_document, timestamp};

fn facts() -> CallFacts {
    CallFacts {
        agency_id: "psap.example.org".into(),
        issuing_element: "watchfloor.psap.example.org".into(),
        call_sid: "CA0123456789abcdef0123456789abcdef".into(),
        caller_number: "+15550100101".into(),
        started_at_ms: 1_763_733_838_000,
        answered_at_ms: Some(1_763_733_838_050),
        ended: true,
        updated_at_ms: 1_763_733_900_000,
        incident: Some(IncidentFacts { type_code: "FSTRU".into(), type_text: Some("Structure fire".into()), priority_number: Some(9), set_by: Agent::Ai, set_at_ms: 1_763_733_850_000 }),
        location: Some(LocationFacts { text: "123 Main Street & Oak Avenue".into(), set_by: Agent::Supervisor("jdoe".into()), set_at_ms: 1_763_733_860_000 }),
        notes: vec![
            Note { at_ms: 1_763_733_840_000, by: Agent::Ai, text: "Caller: There's a fire at 123 Main Street <2nd floor>!".into() },
            Note { at_ms: 1_763_733_870_000, by: Agent::Supervisor("jdoe".into()), text: "Unit attached: Engine 7".into() },
        ],
        supervisors: vec![("jdoe".into(), 1_763_733_860_000)],
        call_takers: vec![],
    }
}

#[test]
fn the_shipped_sample_validates_so_the_validator_works() {
    let v = validator();
    let sample: Value = serde_json::from_str(include_str!("eido/sample-call-transfer.json")).unwrap();
    assert!(errors(&v, &sample).is_empty(), "{:?}", errors(&v, &sample));
    // And it rejects what it must.
    let mut broken = sample.clone();
    broken.as_object_mut().unwrap().remove("agencyComponent");
    assert!(!errors(&v, &broken).is_empty());
}

#[test]
fn a_full_call_validates_and_says_who_set_what() {
    let v = validator();
    let doc = document(&facts());
    assert!(errors(&v, &doc).is_empty(), "{:#?}\n{doc:#}", errors(&v, &doc));
    assert_eq!(doc["incidentComponent"]["incidentTypeCommonRegistryText"], "FSTRU");
    assert_eq!(doc["incidentComponent"]["updatedByAgentReference"]["$ref"], "ai-calltaker@psap.example.org");
    assert_eq!(doc["locationComponent"][0]["updatedByAgentReference"]["$ref"], "jdoe@psap.example.org");
    assert_eq!(doc["notesComponent"][1]["updatedByAgentReference"]["$ref"], "jdoe@psap.example.org");
    assert!(doc["notesComponent"][0]["notesActionComments"].as_str().unwrap().contains("&lt;2nd floor&gt;"));
    assert_eq!(doc["callComponent"][0]["callStateRegistryText"], "callEnd");
    // Every reference points at a component of the document.
    let ids: Vec<String> = ["agencyComponent", "agentComponent", "notesComponent", "locationComponent", "callComponent"]
        .iter()
        .flat_map(|c| doc[c].as_array().unwrap().iter().map(|x| x["$id"].as_str().unwrap().to_string()))
        .chain([doc["incidentComponent"]["$id"].as_str().unwrap().to_string()])
        .collect();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        assert!(ids.contains(&r), "dangling reference {r}");
    }
}

#[test]
fn an_incident_of_several_calls_is_one_incident_with_each_call_and_validates() {
    let v = validator();
    let first = facts();
    let mut second = facts();
    second.call_sid = "CAfedcba9876543210fedcba9876543210".into();
    second.caller_number = "+15550100202".into();
    second.started_at_ms += 20_000;
    second.incident.as_mut().unwrap().priority_number = Some(10);
    second.supervisors = vec![("asmith".into(), 1_763_733_880_000)];
    second.call_takers = vec!["asmith".into()];
    second.notes = vec![Note { at_ms: 1_763_733_881_000, by: Agent::Supervisor("asmith".into()), text: "Linked to incident I-7".into() }];
    let doc = incident_document(Some(7), &[first.clone(), second.clone()]);
    assert!(errors(&v, &doc).is_empty(), "{:#?}\n{doc:#}", errors(&v, &doc));
    assert_eq!(doc["$id"], "urn:emergency:uid:incidentid:I-7:psap.example.org");
    let calls = doc["callComponent"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "one call component per call");
    assert!(calls[1]["$id"].as_str().unwrap().contains(&second.call_sid));
    assert_eq!(doc["incidentComponent"]["incidentCommonPriorityNumber"], 10, "the incident's priority is its highest");
    assert_eq!(doc["notesComponent"].as_array().unwrap().len(), 3, "every call's notes");
    let agents: Vec<&str> = doc["agentComponent"].as_array().unwrap().iter().map(|a| a["$id"].as_str().unwrap()).collect();
    assert_eq!(agents, ["ai-calltaker@psap.example.org", "jdoe@psap.example.org", "asmith@psap.example.org"]);
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    let ids: Vec<String> = ["agencyComponent", "agentComponent", "notesComponent", "locationComponent", "callComponent"]
        .iter()
        .flat_map(|c| doc[c].as_array().unwrap().iter().map(|x| x["$id"].as_str().unwrap().to_string()))
        .chain([doc["incidentComponent"]["$id"].as_str().unwrap().to_string()])
        .collect();
    for r in refs {
        assert!(ids.contains(&r), "dangling reference {r}");
    }
    // One call alone is the same document as before.
    assert_eq!(incident_document(None, std::slice::from_ref(&first)), document(&first));
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[test]
fn a_call_with_nothing_known_yet_still_validates() {
    let v = validator();
    let mut f = facts();
    f.incident = None;
    f.location = None;
    f.supervisors.clear();
    f.notes.clear();
    f.ended = false;
    let doc = document(&f);
    assert!(errors(&v, &doc).is_empty(), "{:?}", errors(&v, &doc));
    assert!(doc.get("incidentComponent").is_none());
    assert_eq!(doc["callComponent"][0]["callStateRegistryText"], "callAnswered");
}

#[test]
fn priority_is_clamped_and_timestamps_carry_a_zone() {
    let mut f = facts();
    f.incident.as_mut().unwrap().priority_number = Some(42);
    assert_eq!(document(&f)["incidentComponent"]["incidentCommonPriorityNumber"], 10);
    assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
}

#[test]
fn the_test_copy_of_the_schema_matches_shared() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/eido/openapi.yaml");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        assert_eq!(text, include_str!("eido/openapi.yaml"), "shared/eido/openapi.yaml changed: copy it to crates/dispatch/tests/eido/");
    }
}
