//! The unit roster: units, their type and status, and the call each one is assigned to.
//!
//! Status moves (APCO unit status model, simplified): Available → Dispatched → En route →
//! On scene → Cleared. A cleared unit is back in service: it can be recommended and dispatched
//! again. A dispatched or en-route unit can be released back to Available (a recalled dispatch).

use serde::{Deserialize, Serialize};

use crate::types::{UnitType, incident_type};

/// A unit's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// In quarters or in service, free.
    Available,
    /// Assigned to an incident.
    Dispatched,
    /// On the way.
    EnRoute,
    /// Arrived at the incident.
    OnScene,
    /// Done with the incident and back in service.
    Cleared,
}

impl UnitStatus {
    /// Whether a unit may move from `self` to `next`.
    pub fn can_move_to(self, next: UnitStatus) -> bool {
        use UnitStatus::*;
        matches!(
            (self, next),
            (Available | Cleared, Dispatched)
                | (Dispatched, EnRoute)
                | (Dispatched | EnRoute, OnScene)
                | (Dispatched | EnRoute | OnScene, Cleared)
                | (Cleared, Available)
                | (Dispatched | EnRoute, Available)
        )
    }

    /// Free to be dispatched (available, or cleared and back in service).
    pub fn is_free(self) -> bool {
        matches!(self, UnitStatus::Available | UnitStatus::Cleared)
    }

    /// The status in words, e.g. `en route`.
    pub fn words(self) -> &'static str {
        match self {
            UnitStatus::Available => "available",
            UnitStatus::Dispatched => "dispatched",
            UnitStatus::EnRoute => "en route",
            UnitStatus::OnScene => "on scene",
            UnitStatus::Cleared => "cleared",
        }
    }
}

/// A unit of the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Unit {
    /// Call sign, e.g. `Engine 7`.
    pub id: String,
    /// The unit's type (engine, ladder, medic …), which decides what incidents it is sent to.
    #[serde(rename = "type")]
    pub unit_type: UnitType,
    /// Where the unit is in its dispatch cycle (available unless given).
    #[serde(default = "available")]
    pub status: UnitStatus,
    /// The call (CallSid) the unit is assigned to, while it is dispatched, en route or on scene.
    #[serde(default)]
    pub call_sid: Option<String>,
}

fn available() -> UnitStatus {
    UnitStatus::Available
}

/// Why a roster change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// The unit is not on the roster.
    #[error("no unit {0} on the roster")]
    Unknown(String),
    /// The unit is busy with another call.
    #[error("{unit} is {status} on another call ({call_sid})")]
    Busy {
        /// The unit.
        unit: String,
        /// Its status, in words.
        status: &'static str,
        /// The call it is assigned to.
        call_sid: String,
    },
    /// The move makes no sense from the unit's status.
    #[error("{unit} cannot go from {from} to {to}")]
    BadMove {
        /// The unit.
        unit: String,
        /// From, in words.
        from: &'static str,
        /// To, in words.
        to: &'static str,
    },
    /// The unit is assigned to a different call than the one named.
    #[error("{unit} is not assigned to this call")]
    NotOnCall {
        /// The unit.
        unit: String,
    },
    /// A unit id appears twice in a roster.
    #[error("unit {0} is listed twice")]
    Duplicate(String),
}

/// The roster: every unit the centre can dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct Roster {
    /// Units, in the configured order (recommendations follow this order).
    pub units: Vec<Unit>,
}

impl Roster {
    /// A roster of free units; errors on a duplicate id.
    pub fn new(units: Vec<(String, UnitType)>) -> Result<Roster, RosterError> {
        let mut r = Roster::default();
        for (id, unit_type) in units {
            if r.get(&id).is_some() {
                return Err(RosterError::Duplicate(id));
            }
            r.units.push(Unit { id, unit_type, status: UnitStatus::Available, call_sid: None });
        }
        Ok(r)
    }

    /// The unit with this id.
    pub fn get(&self, id: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// Recommends free units for an incident type: one per unit type the type calls for
    /// (`types::KNOWN_TYPES`), in that order, skipping types with no free unit.
    pub fn recommend(&self, code: &str) -> Vec<String> {
        let Some(t) = incident_type(code) else { return Vec::new() };
        let mut picked: Vec<String> = Vec::new();
        for ut in t.units {
            if let Some(u) = self.units.iter().find(|u| u.unit_type == *ut && u.status.is_free() && !picked.contains(&u.id)) {
                picked.push(u.id.clone());
            }
        }
        picked
    }

    /// Recommends what an incident of type `code` still needs when `covered` units are already
    /// on it (sent or proposed for its other calls, issue 18's dispatch-once): each unit type
    /// the type calls for is taken first by a covered unit of that type, and only the rest is
    /// recommended from the free units. Covered units off the roster count for nothing.
    pub fn recommend_beyond(&self, code: &str, covered: &[String]) -> Vec<String> {
        let Some(t) = incident_type(code) else { return Vec::new() };
        let mut cover: Vec<UnitType> = covered.iter().filter_map(|id| self.get(id)).map(|u| u.unit_type).collect();
        let mut picked: Vec<String> = Vec::new();
        for ut in t.units {
            if let Some(i) = cover.iter().position(|c| c == ut) {
                cover.swap_remove(i);
                continue;
            }
            if let Some(u) = self.units.iter().find(|u| u.unit_type == *ut && u.status.is_free() && !picked.contains(&u.id) && !covered.contains(&u.id)) {
                picked.push(u.id.clone());
            }
        }
        picked
    }

    /// Units assigned to a call (dispatched, en route or on scene), in roster order.
    pub fn assigned_to(&self, call_sid: &str) -> Vec<String> {
        self.units.iter().filter(|u| u.call_sid.as_deref() == Some(call_sid)).map(|u| u.id.clone()).collect()
    }

    /// Checks that every unit exists and is free or already on `call_sid`, without changing
    /// anything. Units not on the roster are refused.
    pub fn check_assignable(&self, ids: &[String], call_sid: &str) -> Result<(), RosterError> {
        for id in ids {
            let u = self.get(id).ok_or_else(|| RosterError::Unknown(id.clone()))?;
            match &u.call_sid {
                Some(c) if c != call_sid => return Err(RosterError::Busy { unit: id.clone(), status: u.status.words(), call_sid: c.clone() }),
                _ => {}
            }
        }
        Ok(())
    }

    /// Dispatches units to a call: all or nothing. Units already on that call stay as they are.
    /// Returns the units newly dispatched.
    pub fn assign(&mut self, ids: &[String], call_sid: &str) -> Result<Vec<String>, RosterError> {
        self.check_assignable(ids, call_sid)?;
        let mut newly = Vec::new();
        for id in ids {
            if let Some(u) = self.units.iter_mut().find(|u| &u.id == id)
                && u.call_sid.is_none() {
                    u.status = UnitStatus::Dispatched;
                    u.call_sid = Some(call_sid.to_string());
                    newly.push(id.clone());
                }
        }
        Ok(newly)
    }

    /// Releases a call's units that have not arrived (dispatched or en route) back to
    /// Available — a recalled dispatch. Returns the units released.
    pub fn release(&mut self, call_sid: &str, only: Option<&[String]>) -> Vec<String> {
        let mut released = Vec::new();
        for u in &mut self.units {
            if u.call_sid.as_deref() == Some(call_sid)
                && matches!(u.status, UnitStatus::Dispatched | UnitStatus::EnRoute)
                && only.is_none_or(|o| o.contains(&u.id)) {
                    u.status = UnitStatus::Available;
                    u.call_sid = None;
                    released.push(u.id.clone());
                }
        }
        released
    }

    /// Moves a unit on a call to a status (en route, on scene, cleared). Clearing ends the
    /// assignment. Errors on an unknown unit, a unit on another call, or a move that makes no sense.
    pub fn set_status(&mut self, id: &str, call_sid: &str, next: UnitStatus) -> Result<(), RosterError> {
        let u = self.units.iter_mut().find(|u| u.id == id).ok_or_else(|| RosterError::Unknown(id.to_string()))?;
        if u.call_sid.as_deref() != Some(call_sid) {
            return Err(RosterError::NotOnCall { unit: id.to_string() });
        }
        if !u.status.can_move_to(next) {
            return Err(RosterError::BadMove { unit: id.to_string(), from: u.status.words(), to: next.words() });
        }
        u.status = next;
        if next.is_free() {
            u.call_sid = None;
        }
        Ok(())
    }

    /// Replaces the roster's units by `units` (a supervisor's settings): units kept keep their
    /// status and call; a unit on a call cannot be removed; ids must be unique.
    pub fn reconfigure(&mut self, units: Vec<(String, UnitType)>) -> Result<(), RosterError> {
        let mut next = Roster::new(units)?;
        for old in &self.units {
            match next.units.iter_mut().find(|u| u.id == old.id) {
                Some(u) => {
                    u.status = old.status;
                    u.call_sid = old.call_sid.clone();
                }
                None => {
                    if let Some(c) = &old.call_sid {
                        return Err(RosterError::Busy { unit: old.id.clone(), status: old.status.words(), call_sid: c.clone() });
                    }
                }
            }
        }
        *self = next;
        Ok(())
    }

    /// Restores a unit's status and assignment as recorded (start-up, from the call records).
    /// Unknown units are ignored; a unit already assigned keeps its first assignment.
    pub fn restore(&mut self, id: &str, call_sid: &str, status: UnitStatus) {
        if let Some(u) = self.units.iter_mut().find(|u| u.id == id)
            && u.call_sid.is_none() && !status.is_free() {
                u.status = status;
                u.call_sid = Some(call_sid.to_string());
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roster() -> Roster {
        Roster::new(
            [("Engine 7", UnitType::Engine), ("Engine 9", UnitType::Engine), ("Ladder 2", UnitType::Ladder), ("Medic 3", UnitType::Medic), ("Patrol 12", UnitType::Patrol)]
                .into_iter()
                .map(|(i, t)| (i.to_string(), t))
                .collect(),
        )
        .unwrap()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recommendation_follows_the_type_and_skips_busy_units() {
        let mut r = roster();
        assert_eq!(r.recommend("FSTRU"), ids(&["Engine 7", "Engine 9", "Ladder 2", "Medic 3"]));
        assert_eq!(r.recommend("CARDIAC"), ids(&["Medic 3", "Engine 7"]));
        assert_eq!(r.recommend("NOPE"), Vec::<String>::new());
        r.assign(&ids(&["Medic 3"]), "CA1").unwrap();
        assert_eq!(r.recommend("CARDIAC"), ids(&["Engine 7"]), "busy units are not recommended");
    }

    #[test]
    fn a_covered_incident_needs_only_what_its_units_lack() {
        let r = roster();
        // A structure fire wants two engines, a ladder, a medic and a battalion chief.
        let covered = ids(&["Engine 7", "Ladder 2"]);
        assert_eq!(r.recommend_beyond("FSTRU", &covered), ids(&["Engine 9", "Medic 3"]), "one engine and the ladder are there; no chief on this roster");
        assert!(r.recommend_beyond("PERUNCON", &ids(&["Medic 3", "Engine 9"])).is_empty(), "the fire's medic and engine serve the injured caller");
        assert_eq!(r.recommend_beyond("PERUNCON", &ids(&["County Medic 51"])), ids(&["Medic 3", "Engine 7"]), "units off the roster cover nothing");
    }

    #[test]
    fn assignment_is_all_or_nothing_and_one_call_at_a_time() {
        let mut r = roster();
        assert_eq!(r.assign(&ids(&["Engine 7", "Medic 3"]), "CA1").unwrap(), ids(&["Engine 7", "Medic 3"]));
        assert_eq!(r.assign(&ids(&["Engine 7"]), "CA1").unwrap(), Vec::<String>::new(), "already on this call");
        let e = r.assign(&ids(&["Engine 9", "Medic 3"]), "CA2").unwrap_err();
        assert_eq!(e.to_string(), "Medic 3 is dispatched on another call (CA1)");
        assert!(r.get("Engine 9").unwrap().status.is_free(), "nothing assigned when one unit is busy");
        assert_eq!(r.assign(&ids(&["Truck 99"]), "CA2").unwrap_err(), RosterError::Unknown("Truck 99".into()));
        assert_eq!(r.assigned_to("CA1"), ids(&["Engine 7", "Medic 3"]));
    }

    #[test]
    fn status_moves_and_release() {
        let mut r = roster();
        r.assign(&ids(&["Engine 7", "Medic 3"]), "CA1").unwrap();
        r.set_status("Medic 3", "CA1", UnitStatus::EnRoute).unwrap();
        r.set_status("Medic 3", "CA1", UnitStatus::OnScene).unwrap();
        assert!(matches!(r.set_status("Medic 3", "CA1", UnitStatus::Dispatched), Err(RosterError::BadMove { .. })));
        assert_eq!(r.set_status("Medic 3", "CA2", UnitStatus::Cleared), Err(RosterError::NotOnCall { unit: "Medic 3".into() }));
        // A recall releases units that have not arrived; the one on scene stays.
        assert_eq!(r.release("CA1", None), ids(&["Engine 7"]));
        assert_eq!(r.assigned_to("CA1"), ids(&["Medic 3"]));
        r.set_status("Medic 3", "CA1", UnitStatus::Cleared).unwrap();
        assert!(r.assigned_to("CA1").is_empty());
        assert_eq!(r.recommend("CARDIAC"), ids(&["Medic 3", "Engine 7"]), "a cleared unit is back in service");
        r.assign(&ids(&["Medic 3"]), "CA3").unwrap();
        assert_eq!(r.get("Medic 3").unwrap().status, UnitStatus::Dispatched);
    }

    #[test]
    fn duplicate_ids_are_refused_and_restore_keeps_first_assignment() {
        assert_eq!(Roster::new(vec![("E1".into(), UnitType::Engine), ("E1".into(), UnitType::Engine)]), Err(RosterError::Duplicate("E1".into())));
        let mut r = roster();
        r.restore("Engine 7", "CA1", UnitStatus::OnScene);
        r.restore("Engine 7", "CA2", UnitStatus::Dispatched);
        r.restore("Ghost 1", "CA2", UnitStatus::Dispatched);
        assert_eq!(r.get("Engine 7").unwrap().call_sid.as_deref(), Some("CA1"));
        assert_eq!(r.get("Engine 7").unwrap().status, UnitStatus::OnScene);
    }

    #[test]
    fn reconfigure_keeps_statuses_and_refuses_to_drop_a_busy_unit() {
        let mut r = roster();
        r.assign(&ids(&["Medic 3"]), "CA1").unwrap();
        let keep = |extra: &[(&str, UnitType)]| -> Vec<(String, UnitType)> { extra.iter().map(|(i, t)| (i.to_string(), *t)).collect() };
        assert!(matches!(r.reconfigure(keep(&[("Engine 7", UnitType::Engine)])), Err(RosterError::Busy { .. })));
        assert_eq!(r.units.len(), 5, "unchanged after a refusal");
        r.reconfigure(keep(&[("Medic 3", UnitType::Medic), ("Rescue 1", UnitType::Rescue)])).unwrap();
        assert_eq!(r.get("Medic 3").unwrap().call_sid.as_deref(), Some("CA1"));
        assert_eq!(r.get("Rescue 1").unwrap().status, UnitStatus::Available);
        assert!(r.get("Engine 7").is_none());
    }

    proptest! {
        /// Whatever the sequence of operations, a unit is on a call exactly when it is
        /// dispatched, en route or on scene, and no call's units are ever on another call.
        #[test]
        fn assignment_matches_status(ops in proptest::collection::vec((0u8..5, 0usize..5, 0usize..3), 0..60)) {
            let mut r = roster();
            let calls = ["CA1", "CA2", "CA3"];
            for (op, unit, call) in ops {
                let id = r.units[unit].id.clone();
                let c = calls[call];
                let _ = match op {
                    0 => r.assign(std::slice::from_ref(&id), c).map(|_| ()),
                    1 => r.set_status(&id, c, UnitStatus::EnRoute),
                    2 => r.set_status(&id, c, UnitStatus::OnScene),
                    3 => r.set_status(&id, c, UnitStatus::Cleared),
                    _ => { r.release(c, None); Ok(()) }
                };
                for u in &r.units {
                    prop_assert_eq!(u.call_sid.is_some(), !u.status.is_free(), "{:?}", u);
                }
                let total: usize = calls.iter().map(|c| r.assigned_to(c).len()).sum();
                prop_assert_eq!(total, r.units.iter().filter(|u| u.call_sid.is_some()).count());
            }
        }
    }
}
