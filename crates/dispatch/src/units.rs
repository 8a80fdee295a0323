//! The unit roster: units, their type and status, moving Available → Dispatched → En route →
//! On scene → Cleared (then Available again).

use serde::{Deserialize, Serialize};

use crate::types::{UnitType, incident_type};

/// A unit's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// In quarters or in service, free.
    Available,
    /// Assigned to an incident.
    Dispatched,
    /// On the way.
    EnRoute,
    /// Arrived.
    OnScene,
    /// Done with the incident.
    Cleared,
}

impl UnitStatus {
    /// Whether a unit may move from `self` to `next`.
    pub fn can_move_to(self, next: UnitStatus) -> bool {
        use UnitStatus::*;
        matches!(
            (self, next),
            (Available, Dispatched) | (Dispatched, EnRoute) | (Dispatched, OnScene) | (EnRoute, OnScene) | (Dispatched | EnRoute | OnScene, Cleared) | (Cleared, Available) | (Dispatched | EnRoute, Available)
        )
    }
}

/// A unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Call sign, e.g. `Engine 7`.
    pub id: String,
    /// Kind.
    pub unit_type: UnitType,
    /// Status.
    pub status: UnitStatus,
}

/// The roster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Roster {
    /// Units.
    pub units: Vec<Unit>,
}

impl Roster {
    /// Recommends available units for an incident type: one per recommended unit type, in the
    /// type's order, skipping types with no available unit.
    pub fn recommend(&self, code: &str) -> Vec<String> {
        let Some(t) = incident_type(code) else { return Vec::new() };
        let mut picked: Vec<String> = Vec::new();
        for ut in t.units {
            if let Some(u) = self.units.iter().find(|u| u.unit_type == *ut && u.status == UnitStatus::Available && !picked.contains(&u.id)) {
                picked.push(u.id.clone());
            }
        }
        picked
    }

    /// Moves a unit to a status; errors on an unknown unit or a move that makes no sense.
    pub fn set_status(&mut self, id: &str, next: UnitStatus) -> Result<(), String> {
        let u = self.units.iter_mut().find(|u| u.id == id).ok_or_else(|| format!("no unit {id}"))?;
        if !u.status.can_move_to(next) {
            return Err(format!("{id} cannot go from {:?} to {next:?}", u.status));
        }
        u.status = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> Roster {
        let u = |id: &str, t| Unit { id: id.into(), unit_type: t, status: UnitStatus::Available };
        Roster { units: vec![u("Engine 7", UnitType::Engine), u("Engine 9", UnitType::Engine), u("Ladder 2", UnitType::Ladder), u("Medic 3", UnitType::Medic), u("Patrol 12", UnitType::Patrol)] }
    }

    #[test]
    fn recommendation_and_status_moves() {
        let mut r = roster();
        assert_eq!(r.recommend("FSTRU"), vec!["Engine 7", "Engine 9", "Ladder 2", "Medic 3"]);
        assert_eq!(r.recommend("CARDIAC"), vec!["Medic 3", "Engine 7"]);
        r.set_status("Medic 3", UnitStatus::Dispatched).unwrap();
        assert_eq!(r.recommend("CARDIAC"), vec!["Engine 7"], "busy units are not recommended");
        assert!(r.set_status("Medic 3", UnitStatus::Available).is_ok(), "a dispatched unit can be recalled");
        r.set_status("Medic 3", UnitStatus::Dispatched).unwrap();
        r.set_status("Medic 3", UnitStatus::EnRoute).unwrap();
        r.set_status("Medic 3", UnitStatus::OnScene).unwrap();
        assert!(r.set_status("Medic 3", UnitStatus::Dispatched).is_err());
        r.set_status("Medic 3", UnitStatus::Cleared).unwrap();
        assert!(r.set_status("Nope 1", UnitStatus::Cleared).is_err());
    }
}
