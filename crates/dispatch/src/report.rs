//! The `report_incident` function tool: its JSON schema (declared in `session.update`) and the
//! parsing of the model's arguments into [`Facts`].

use serde_json::{Value, json};

use crate::extract;
use crate::incident::{Facts, Hazard, Location};
use crate::types::{Priority, is_apco_code};

/// The tool's name.
pub const TOOL_NAME: &str = "report_incident";

/// What the model is told the tool is for.
pub const TOOL_DESCRIPTION: &str = "Record what you have learned about the emergency, as soon as you learn it. \
Call it again whenever a fact is added or corrected; include only what the caller said.";

/// The JSON schema of the arguments.
pub fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "incident_type": {"type": "string", "description": "APCO common incident type code, e.g. FSTRU (structure fire), CARDIAC, MVAINJY, SHOOT, WELFARE"},
            "location": {"type": "string", "description": "The address or place as the caller gave it, e.g. '123 Main Street, apartment 3'"},
            "cross_street": {"type": "string"},
            "landmark": {"type": "string"},
            "city": {"type": "string"},
            "description": {"type": "string", "description": "What is happening, in one sentence"},
            "priority": {"type": "string", "enum": ["P1", "P2", "P3", "P4"], "description": "P1: life threat now"},
            "callback_number": {"type": "string"},
            "hazards": {"type": "array", "items": {"type": "string", "enum": ["weapons", "fire_spreading", "traffic", "trapped", "hazmat"]}},
            "people_involved": {"type": "integer", "minimum": 0},
            "injuries": {"type": "string"}
        },
        "additionalProperties": false
    })
}

/// Parses the model's arguments (a JSON string). Unknown codes and bad values are reported,
/// not fatal: what is valid is kept.
pub fn parse(arguments: &str) -> (Facts, Vec<String>) {
    let mut errors = Vec::new();
    let v: Value = match serde_json::from_str(arguments) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return (Facts::default(), vec!["arguments must be a JSON object".into()]),
        Err(e) => return (Facts::default(), vec![format!("arguments are not JSON: {e}")]),
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let mut f = Facts::default();
    if let Some(t) = s("incident_type") {
        let code = t.to_uppercase();
        if is_apco_code(&code) {
            f.incident_type = Some(code);
        } else {
            errors.push(format!("incident_type {t:?} is not an APCO common incident type code"));
        }
    }
    if let Some(said) = s("location") {
        let mut loc = extract::location(&said).unwrap_or_default();
        loc.said = said;
        if let Some(c) = s("cross_street") {
            loc.cross_street = Some(c);
        }
        if let Some(l) = s("landmark") {
            loc.landmark = Some(l);
        }
        if let Some(c) = s("city") {
            loc.city = Some(c);
        }
        f.location = Some(loc);
    } else if let Some(l) = s("landmark") {
        f.location = Some(Location { said: l.clone(), landmark: Some(l), ..Default::default() });
    }
    f.description = s("description");
    if let Some(p) = s("priority") {
        match Priority::parse(&p) {
            Some(p) => f.priority = Some(p),
            None => errors.push(format!("priority {p:?} is not P1–P4")),
        }
    }
    f.callback = s("callback_number");
    if let Some(hs) = v.get("hazards").and_then(Value::as_array) {
        for h in hs.iter().filter_map(Value::as_str) {
            match h {
                "weapons" => f.hazards.push(Hazard::Weapons),
                "fire_spreading" => f.hazards.push(Hazard::FireSpreading),
                "traffic" => f.hazards.push(Hazard::Traffic),
                "trapped" => f.hazards.push(Hazard::Trapped),
                "hazmat" => f.hazards.push(Hazard::Hazmat),
                other => errors.push(format!("unknown hazard {other:?}")),
            }
        }
    }
    f.people = v.get("people_involved").and_then(Value::as_u64).map(|n| n.min(10_000) as u32);
    f.injuries = s("injuries");
    (f, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_is_valid_and_reports_the_rest() {
        let (f, errs) = parse(r#"{"incident_type":"fstru","location":"123 Main Street","cross_street":"Oak Avenue","priority":"P9","hazards":["trapped","lava"]}"#);
        assert_eq!(f.incident_type.as_deref(), Some("FSTRU"));
        let l = f.location.unwrap();
        assert_eq!((l.number.as_deref(), l.street.as_deref(), l.cross_street.as_deref()), (Some("123"), Some("Main Street"), Some("Oak Avenue")));
        assert_eq!(f.hazards, vec![Hazard::Trapped]);
        assert_eq!(errs.len(), 2);
        assert!(!parse("nonsense").1.is_empty());
        assert!(!parse("[1]").1.is_empty());
        assert!(parameters()["properties"]["incident_type"].is_object());
    }
}
