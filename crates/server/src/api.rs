//! The supervisor API's request shapes and their validation, pure (no state, no I/O), so the
//! handlers, the tests and the fuzz targets share them.

use std::collections::HashMap;

use serde::Deserialize;
use watchfloor_store::{CallQuery, index};

/// One day, ms (retention, caller history).
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Largest page of calls or audit entries.
pub const MAX_PAGE: usize = 500;
/// Call statuses a filter may name.
pub const STATUSES: &[&str] = watchfloor_bridge::CallStatus::NAMES;
/// Filters of `GET /api/calls`.
pub const CALL_FILTERS: &[&str] = &["from", "to", "status", "incident_type", "priority", "caller", "q", "limit", "cursor"];

/// `POST /api/calls/{id}/attach` and `/on-scene`.
#[derive(Debug, Deserialize)]
pub struct UnitBody {
    /// e.g. `Engine 7`.
    pub unit: String,
}

/// `POST /api/calls/{id}/legal-hold`.
#[derive(Debug, Deserialize)]
pub struct HoldBody {
    /// Hold or release.
    pub on: bool,
}

/// `POST /api/calls/{id}/transfer`.
#[derive(Debug, Deserialize)]
pub struct TransferBody {
    /// E.164 number.
    pub to: String,
}

/// `POST /api/login`.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    /// Login name.
    pub user: String,
    /// Password in clear over the request (checked against the stored Argon2 hash; never logged).
    pub password: String,
}

/// A unit name: 1–64 printable characters, trimmed.
pub fn valid_unit(unit: &str) -> Result<String, String> {
    let u = unit.trim();
    if u.is_empty() || u.chars().count() > 64 || u.chars().any(char::is_control) {
        return Err("unit must be 1–64 printable characters, e.g. \"Engine 7\"".into());
    }
    Ok(u.to_string())
}

/// The `units` of an incident edit (`PATCH /api/calls/{id}/incident`): absent, or a list of
/// 0–16 unit names (each as [`valid_unit`]). Other keys are the incident's, read by
/// `watchfloor_dispatch::report::parse`.
pub fn edit_units(body: &str) -> Result<Option<Vec<String>>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("request body is not JSON: {e}"))?;
    let Some(units) = v.get("units") else { return Ok(None) };
    let list = units.as_array().ok_or("units must be a list of unit names, e.g. [\"Engine 7\", \"Medic 3\"]")?;
    if list.len() > 16 {
        return Err("at most 16 units".into());
    }
    list.iter()
        .map(|u| u.as_str().ok_or_else(|| "units must be a list of unit names".to_string()).and_then(valid_unit))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// An E.164 number: `+` and 7–15 digits.
pub fn valid_number(n: &str) -> Result<String, String> {
    let n = n.trim();
    let ok = n.starts_with('+') && (8..=16).contains(&n.len()) && n[1..].bytes().all(|b| b.is_ascii_digit());
    if ok { Ok(n.to_string()) } else { Err(format!("{n:?} is not an E.164 number (+ and 7–15 digits)")) }
}

fn parse_u64(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, String> {
    q.get(key).map(|v| v.parse::<u64>().map_err(|_| format!("{key} must be a whole number (ms since the Unix epoch or a count), got {v:?}"))).transpose()
}

/// The filters of `GET /api/calls` as a store query, or what is wrong with them.
pub fn call_query(q: &HashMap<String, String>) -> Result<CallQuery, String> {
    if let Some(unknown) = q.keys().find(|k| !CALL_FILTERS.contains(&k.as_str())) {
        return Err(format!("unknown filter {unknown:?}; filters are {}", CALL_FILTERS.join(", ")));
    }
    let status = q.get("status").cloned();
    if status.as_ref().is_some_and(|s| !STATUSES.contains(&s.as_str())) {
        return Err(format!("status must be one of {}", STATUSES.join(", ")));
    }
    let priority = q.get("priority").cloned();
    if priority.as_ref().is_some_and(|p| !matches!(p.as_str(), "P1" | "P2" | "P3" | "P4")) {
        return Err("priority must be P1, P2, P3 or P4".into());
    }
    let limit = parse_u64(q, "limit")?.unwrap_or(50) as usize;
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(format!("limit must be 1–{MAX_PAGE}"));
    }
    let (from_ms, to_ms) = (parse_u64(q, "from")?, parse_u64(q, "to")?);
    if let (Some(f), Some(t)) = (from_ms, to_ms)
        && f >= t
    {
        return Err("from must be before to".into());
    }
    let after = match q.get("cursor") {
        Some(c) => Some(index::decode_cursor(c).ok_or("cursor is malformed")?),
        None => None,
    };
    Ok(CallQuery { from_ms, to_ms, status, incident_type: q.get("incident_type").cloned(), priority, caller: q.get("caller").cloned(), text: q.get("q").cloned(), limit, after })
}

/// Parses a request body of each API shape and validates it; used by the fuzz target (never
/// panics, whatever the bytes).
pub fn check_any_body(bytes: &[u8]) {
    if let Ok(b) = serde_json::from_slice::<UnitBody>(bytes) {
        let _ = valid_unit(&b.unit);
    }
    let _ = serde_json::from_slice::<HoldBody>(bytes);
    if let Ok(b) = serde_json::from_slice::<TransferBody>(bytes) {
        let _ = valid_number(&b.to);
    }
    let _ = serde_json::from_slice::<LoginBody>(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = edit_units(text);
        let _ = watchfloor_dispatch::report::parse(text);
    }
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes) {
        let _ = call_query(&pairs.into_iter().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn bodies_and_queries_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            check_any_body(&bytes);
        }

        #[test]
        fn numbers_and_units(s in ".{0,80}") {
            if let Ok(n) = valid_number(&s) {
                proptest::prop_assert!(n.starts_with('+'));
            }
            if let Ok(u) = valid_unit(&s) {
                proptest::prop_assert!(!u.is_empty() && u.chars().count() <= 64);
            }
        }
    }

    #[test]
    fn query_rules() {
        let q = |s: &str| call_query(&serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap().into_iter().collect());
        assert!(q("status=completed&limit=10").is_ok());
        assert!(q("status=bogus").is_err());
        assert!(q("limit=0").is_err());
        assert!(q("from=5&to=5").is_err());
        assert!(q("cursor=12.CA1").unwrap().after.is_some());
        assert!(valid_number("+15550001234").is_ok());
        assert!(valid_number("+1555000123456789").is_err());
    }

    #[test]
    fn edit_units_rules() {
        assert_eq!(edit_units(r#"{"priority":"P1"}"#), Ok(None));
        assert_eq!(edit_units(r#"{"units":[" Engine 7 ","Medic 3"]}"#), Ok(Some(vec!["Engine 7".into(), "Medic 3".into()])));
        assert_eq!(edit_units(r#"{"units":[]}"#), Ok(Some(vec![])));
        assert!(edit_units(r#"{"units":"Engine 7"}"#).is_err());
        assert!(edit_units(r#"{"units":[7]}"#).is_err());
        assert!(edit_units(r#"{"units":[""]}"#).is_err());
        assert!(edit_units("not json").is_err());
    }
}
