//! Builds a validator for NENA EIDO documents from the schema copy in `tests/eido/openapi.yaml`
//! (shared by the dispatch and server tests through `#[path]`).
//!
//! The schema is bundled: its components under a root `$ref`, a quirk of the published file
//! mended (`minItems: '1,'` written as a string) and the cross-file NIEM `$ref`s (whose targets
//! are not shipped) stubbed; Watchfloor emits no NIEM components.

use serde_json::{Value, json};

fn mend(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref")
                && !r.starts_with('#') {
                    m.clear();
                    return;
                }
            for k in ["minItems", "maxItems", "minLength", "maxLength"] {
                if let Some(Value::String(s)) = m.get(k) {
                    let n: u64 = s.trim_matches(|c: char| c == ',' || c.is_whitespace()).parse().unwrap();
                    m.insert(k.into(), json!(n));
                }
            }
            m.values_mut().for_each(mend);
        }
        Value::Array(a) => a.iter_mut().for_each(mend),
        _ => {}
    }
}

/// The validator (Draft 4, formats checked).
pub fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dispatch/tests/eido/openapi.yaml")).unwrap();
    let mut api: Value = serde_yaml::from_str(&text).unwrap();
    mend(&mut api);
    let schema = json!({"$ref": "#/components/schemas/EmergencyIncidentDataObjectType", "components": api["components"]});
    jsonschema::options().with_draft(jsonschema::Draft::Draft4).should_validate_formats(true).build(&schema).unwrap()
}

/// Every validation error of `doc`, as `path: message`.
pub fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| format!("{}: {e}", e.instance_path())).collect()
}
