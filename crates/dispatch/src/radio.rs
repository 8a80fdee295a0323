//! The radio-style dispatch message: plain language, unit first (DOMAIN.md):
//! "Engine 7, Medic 3, respond priority one to a structure fire, 123 Main Street, cross street
//! Oak Avenue. Caller reports smoke from the second floor."

use crate::incident::Incident;
use crate::types::incident_type;

/// The message for `units` responding to `incident`.
pub fn message(units: &[String], incident: &Incident) -> String {
    let mut s = String::new();
    if !units.is_empty() {
        s.push_str(&units.join(", "));
        s.push_str(", respond");
    } else {
        s.push_str("Respond");
    }
    if let Some(p) = &incident.priority {
        s.push(' ');
        s.push_str(p.value.spoken());
    }
    let what = incident.incident_type.as_ref().and_then(|t| incident_type(&t.value)).map(|t| t.text).unwrap_or("an emergency");
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    if what == "an emergency" {
        s.push_str(" to an emergency");
    } else {
        s.push_str(&format!(" to {article} {what}"));
    }
    if let Some(loc) = &incident.location {
        s.push_str(", ");
        s.push_str(&loc.value.line());
        if let Some(u) = &loc.value.unit {
            s.push_str(&format!(", apartment {u}"));
        }
        if let Some(c) = &loc.value.cross_street {
            s.push_str(&format!(", cross street {c}"));
        }
        if let Some(l) = &loc.value.landmark {
            s.push_str(&format!(", near {l}"));
        }
    }
    s.push('.');
    if let Some(d) = &incident.description {
        let d = d.value.trim().trim_end_matches('.');
        if !d.is_empty() {
            s.push_str(&format!(" Caller reports {}{}.", d[..1].to_lowercase(), &d[1..]));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Facts, Location, Source};

    #[test]
    fn unit_first_plain_language() {
        let mut i = Incident::default();
        let loc = Location { said: String::new(), number: Some("123".into()), street: Some("Main Street".into()), cross_street: Some("Oak Avenue".into()), ..Default::default() };
        i.apply(&Facts { incident_type: Some("FSTRU".into()), location: Some(loc), description: Some("Smoke from the second floor".into()), ..Default::default() }, &Source::Model, 0);
        assert_eq!(
            message(&["Engine 7".into(), "Medic 3".into()], &i),
            "Engine 7, Medic 3, respond priority one to a structure fire, 123 Main Street, cross street Oak Avenue. Caller reports smoke from the second floor."
        );
        assert_eq!(message(&[], &Incident::default()), "Respond to an emergency.");
    }
}
