//! The incident a call reports, field by field, each with its source and when it was set.

use serde::{Deserialize, Serialize};

use crate::types::{Discipline, Priority, incident_type};

/// Where a field's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// The model's `report_incident` function call.
    Model,
    /// The transcript keyword extractor.
    Keywords,
    /// A supervisor (console user).
    Supervisor {
        /// The user.
        user: String,
    },
}

impl Source {
    /// Rank for overriding: a supervisor beats the model, the model beats keywords.
    fn rank(&self) -> u8 {
        match self {
            Source::Keywords => 0,
            Source::Model => 1,
            Source::Supervisor { .. } => 2,
        }
    }
}

/// A value with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Field<T> {
    /// The value.
    pub value: T,
    /// Who set it.
    pub source: Source,
    /// When, ms since the Unix epoch.
    pub set_at_ms: u64,
}

/// Where the incident is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct Location {
    /// What the caller said (or the whole address as one line).
    pub said: String,
    /// House number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Street, with its suffix: `Main Street`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// Cross street.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_street: Option<String>,
    /// City or municipality, as said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// A landmark (`near the Riverside exit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmark: Option<String>,
    /// Apartment, suite, floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Location {
    /// One line for the radio: `123 Main Street` (or what the caller said).
    pub fn line(&self) -> String {
        match (&self.number, &self.street) {
            (Some(n), Some(s)) => format!("{n} {s}"),
            (None, Some(s)) => s.clone(),
            _ => self.said.clone(),
        }
    }
}

/// Hazards on scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    /// Weapons involved.
    Weapons,
    /// Fire spreading.
    FireSpreading,
    /// Traffic danger.
    Traffic,
    /// Someone trapped.
    Trapped,
    /// Hazardous materials, gas.
    Hazmat,
}

/// The incident, as known so far.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct Incident {
    /// APCO incident type code.
    pub incident_type: Option<Field<String>>,
    /// Where the incident is, with its source.
    pub location: Option<Field<Location>>,
    /// What is happening, in a sentence.
    pub description: Option<Field<String>>,
    /// Agency priority.
    pub priority: Option<Field<Priority>>,
    /// Callback number.
    pub callback: Option<Field<String>>,
    /// Hazards at the scene (weapons, fire, gas …), each with its source.
    #[serde(default)]
    pub hazards: Vec<Field<Hazard>>,
    /// People involved.
    pub people: Option<Field<u32>>,
    /// Injuries, in words.
    pub injuries: Option<Field<String>>,
}

fn set<T: PartialEq>(slot: &mut Option<Field<T>>, value: T, source: &Source, at_ms: u64) -> bool {
    match slot {
        Some(f) if f.source.rank() > source.rank() => false,
        Some(f) if f.value == value => false,
        _ => {
            *slot = Some(Field { value, source: source.clone(), set_at_ms: at_ms });
            true
        }
    }
}

/// Facts learned from one source at one moment; `None` means "not said".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Facts {
    /// APCO code.
    pub incident_type: Option<String>,
    /// Where the incident is.
    pub location: Option<Location>,
    /// What is happening, in a sentence.
    pub description: Option<String>,
    /// The priority the model proposes (P1–P4).
    pub priority: Option<Priority>,
    /// Callback number.
    pub callback: Option<String>,
    /// Hazards at the scene (weapons, fire, gas …).
    pub hazards: Vec<Hazard>,
    /// People involved.
    pub people: Option<u32>,
    /// Injuries, as described.
    pub injuries: Option<String>,
}

impl Incident {
    /// Applies facts from `source`: a field is set unless a higher-ranked source set it
    /// (supervisor > model > keywords). Returns whether anything changed.
    pub fn apply(&mut self, facts: &Facts, source: &Source, at_ms: u64) -> bool {
        let mut changed = false;
        if let Some(t) = &facts.incident_type {
            changed |= set(&mut self.incident_type, t.clone(), source, at_ms);
        }
        if let Some(l) = &facts.location {
            changed |= set(&mut self.location, l.clone(), source, at_ms);
        }
        if let Some(d) = &facts.description {
            changed |= set(&mut self.description, d.clone(), source, at_ms);
        }
        let priority = facts.priority.or_else(|| facts.incident_type.as_deref().and_then(incident_type).map(|t| t.priority));
        if let Some(p) = priority {
            changed |= set(&mut self.priority, p, source, at_ms);
        }
        if let Some(c) = &facts.callback {
            changed |= set(&mut self.callback, c.clone(), source, at_ms);
        }
        for h in &facts.hazards {
            if !self.hazards.iter().any(|f| f.value == *h) {
                self.hazards.push(Field { value: *h, source: source.clone(), set_at_ms: at_ms });
                changed = true;
            }
        }
        if let Some(n) = facts.people {
            changed |= set(&mut self.people, n, source, at_ms);
        }
        if let Some(i) = &facts.injuries {
            changed |= set(&mut self.injuries, i.clone(), source, at_ms);
        }
        changed
    }

    /// The incident type's discipline, if known.
    pub fn discipline(&self) -> Option<Discipline> {
        self.incident_type.as_ref().and_then(|f| incident_type(&f.value)).map(|t| t.discipline)
    }

    /// Location and type both known: enough to dispatch.
    pub fn is_dispatchable(&self) -> bool {
        self.incident_type.is_some() && self.location.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_beats_model_beats_keywords() {
        let mut i = Incident::default();
        let fire = Facts { incident_type: Some("FSMOKE".into()), ..Default::default() };
        assert!(i.apply(&fire, &Source::Keywords, 1));
        assert_eq!(i.priority.as_ref().unwrap().value, Priority::P2, "priority from the type");
        assert!(i.apply(&Facts { incident_type: Some("FSTRU".into()), ..Default::default() }, &Source::Model, 2));
        assert_eq!(i.incident_type.as_ref().unwrap().source, Source::Model);
        let sup = Source::Supervisor { user: "jdoe".into() };
        assert!(i.apply(&Facts { priority: Some(Priority::P2), ..Default::default() }, &sup, 3));
        assert!(!i.apply(&Facts { priority: Some(Priority::P1), ..Default::default() }, &Source::Model, 4), "the model cannot undo a supervisor");
        assert!(!i.apply(&Facts { incident_type: Some("FVEH".into()), ..Default::default() }, &Source::Keywords, 5));
        assert_eq!(i.priority.as_ref().unwrap().value, Priority::P2);
        assert_eq!(i.incident_type.as_ref().unwrap().set_at_ms, 2);
    }
}
