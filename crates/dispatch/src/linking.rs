//! Duplicate calls linked to one incident (issue 18): the CAD's incident list, as plain data.
//!
//! A visible emergency brings many calls; each starts as its own incident, and a call whose
//! location matches a live or recent incident ([`address::same_place`], within
//! [`LinkRules::window_ms`], default 30 min) and whose type is compatible ([`compatible`]) is a
//! [`Duplicate`] candidate of it. The policy decides what happens to a candidate: the supervised
//! policy proposes it (the supervisor links or keeps it apart), the automatic policy links an
//! exact match ([`Duplicate::links_automatically`]). Linking is undoable: an unlinked call gets
//! an incident of its own again.
//!
//! No I/O, no clock: every method takes the time (ms since the Unix epoch). The owner (the
//! server, as for the roster) holds one [`IncidentBook`] and publishes its changes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::address::{self, Match};
use crate::incident::Location;
use crate::types::{Discipline, incident_type};

/// An incident's number in this centre, shown as `I-<n>`; a JSON number. Numbers are not
/// reused across restarts: the owner starts the book after the highest one recorded
/// ([`IncidentBook::start_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[ts(type = "number")]
pub struct IncidentId(pub u64);

impl std::fmt::Display for IncidentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "I-{}", self.0)
    }
}

/// How duplicates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRules {
    /// How long after its last call an incident still takes duplicates, ms (default 30 min).
    pub window_ms: u64,
}

impl Default for LinkRules {
    fn default() -> Self {
        LinkRules { window_ms: 30 * 60 * 1000 }
    }
}

/// Whether calls of two incident types can be about one incident. Unknown types are compatible
/// with anything (the location decides); so are types of one discipline. Across disciplines: a
/// fire or a crash brings the injured (`Medical` with `Fire` or `Traffic`), a crash can burn
/// (`Fire` with `Traffic`), and a shooting or stabbing has victims (`Police` with `Medical`);
/// a fire and a police matter at one address are kept apart (a supervisor can still link them).
pub fn compatible(a: Option<&str>, b: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (a.and_then(incident_type), b.and_then(incident_type)) else { return true };
    use Discipline::*;
    match (a.discipline, b.discipline) {
        (x, y) if x == y => true,
        (Other, _) | (_, Other) => true,
        (Medical, Fire | Traffic | Police) | (Fire | Traffic | Police, Medical) => true,
        (Fire, Traffic) | (Traffic, Fire) => true,
        _ => false,
    }
}

/// A call that may be a duplicate of an incident. JSON: `{"incident": 3, "match": "exact"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Duplicate {
    /// The incident it may belong to.
    pub incident: IncidentId,
    /// How its location matches the incident's.
    #[serde(rename = "match")]
    pub by: Match,
}

impl Duplicate {
    /// The automatic policy links it without asking: the same address or intersection.
    pub fn links_automatically(&self) -> bool {
        self.by == Match::Exact
    }
}

/// What one call's dispatch needs of the incident list (dispatch once): its incident, the
/// calls it shares it with, and what the earlier of them have proposed. A call holds this, not
/// the list: a snapshot of the whole list held by every call would make each change copy it
/// (`Arc::make_mut`) and keep one copy per call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncidentView {
    /// The call's incident.
    pub incident: Option<IncidentId>,
    /// The other calls on it (CallSids), in the order they joined.
    pub others: Vec<String>,
    /// Units proposed (not yet sent) by the calls that joined before this one
    /// ([`IncidentBook::proposed_before`]).
    pub proposed_before: Vec<String>,
    /// An older incident this call (alone on its own) turned out to duplicate after the
    /// call's own check: the older one got its place later ([`IncidentBook::update`]).
    pub late_duplicate: Option<Duplicate>,
}

/// Why a link or unlink was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    /// No such call in the book.
    #[error("call {0} is not known")]
    UnknownCall(String),
    /// No such incident.
    #[error("incident {0} is not known")]
    UnknownIncident(IncidentId),
    /// The call is already on that incident.
    #[error("the call is already on incident {0}")]
    AlreadyLinked(IncidentId),
    /// The call is the only call of its incident: there is nothing to unlink it from.
    #[error("the call is alone on its incident")]
    Alone,
}

/// One incident of the book.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentEntry {
    /// Its calls, in the order they joined.
    pub calls: Vec<String>,
    /// Where it is: the first call's location that named a place, until a better one.
    pub location: Option<Location>,
    /// Its type: the first known.
    pub incident_type: Option<String>,
    /// Its latest call activity, ms since the Unix epoch.
    pub last_activity_ms: u64,
}

/// The incident list: live and recent incidents and their calls.
#[derive(Debug, Clone, Default)]
pub struct IncidentBook {
    rules: LinkRules,
    incidents: BTreeMap<IncidentId, IncidentEntry>,
    by_call: HashMap<String, IncidentId>,
    /// Each call's own facts (its location and type), kept to recompute an incident's on unlink.
    facts: HashMap<String, (Option<Location>, Option<String>)>,
    /// Calls that have ended.
    ended: std::collections::HashSet<String>,
    /// Each call's standing dispatch proposal (units proposed, not yet sent), while it has one:
    /// what a later call on the incident need not propose again.
    proposed: HashMap<String, Vec<String>>,
    /// Calls found, when an older incident got its place, to duplicate it
    /// ([`IncidentView::late_duplicate`]); dropped when the call is linked, unlinked or ends.
    late: HashMap<String, Duplicate>,
    next: u64,
}

impl IncidentBook {
    /// An empty book with `rules`.
    pub fn new(rules: LinkRules) -> Self {
        IncidentBook { rules, next: 1, ..Default::default() }
    }

    /// Numbers new incidents after `n` (the highest recorded before a restart).
    pub fn start_after(&mut self, n: u64) {
        self.next = self.next.max(n + 1);
    }

    fn new_incident(&mut self, call_sid: &str, at_ms: u64) -> IncidentId {
        let id = IncidentId(self.next.max(1));
        self.next = id.0 + 1;
        self.incidents.insert(id, IncidentEntry { calls: vec![call_sid.to_string()], location: None, incident_type: None, last_activity_ms: at_ms });
        self.by_call.insert(call_sid.to_string(), id);
        id
    }

    /// A new call: an incident of its own (idempotent: a known call keeps its incident).
    pub fn open(&mut self, call_sid: &str, at_ms: u64) -> IncidentId {
        if let Some(id) = self.by_call.get(call_sid) {
            return *id;
        }
        self.facts.insert(call_sid.to_string(), (None, None));
        self.new_incident(call_sid, at_ms)
    }

    /// A call ended. Incidents whose calls have all ended and that saw nothing for the window
    /// are dropped then: the book holds live and recent incidents only.
    pub fn end(&mut self, call_sid: &str, at_ms: u64) {
        if self.by_call.contains_key(call_sid) {
            self.ended.insert(call_sid.to_string());
        }
        // An ended call's proposal goes nowhere: the incident's other calls propose for it.
        self.proposed.remove(call_sid);
        self.late.remove(call_sid);
        let horizon = at_ms.saturating_sub(self.rules.window_ms);
        let stale: Vec<IncidentId> = self
            .incidents
            .iter()
            .filter(|(_, e)| e.last_activity_ms < horizon && e.calls.iter().all(|c| self.ended.contains(c)))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(e) = self.incidents.remove(&id) {
                for c in e.calls {
                    self.by_call.remove(&c);
                    self.facts.remove(&c);
                    self.ended.remove(&c);
                    self.proposed.remove(&c);
                }
            }
        }
    }

    /// Incidents in the book (live and recent).
    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    /// The incident a call is on.
    pub fn incident_of(&self, call_sid: &str) -> Option<IncidentId> {
        self.by_call.get(call_sid).copied()
    }

    /// An incident.
    pub fn get(&self, id: IncidentId) -> Option<&IncidentEntry> {
        self.incidents.get(&id)
    }

    /// Incidents with activity at or after `since_ms`, by id.
    pub fn recent(&self, since_ms: u64) -> impl Iterator<Item = (IncidentId, &IncidentEntry)> {
        self.incidents.iter().filter(move |(_, e)| e.last_activity_ms >= since_ms).map(|(id, e)| (*id, e))
    }

    /// What a call now says of its location and type: its incident takes what it lacks.
    /// When its incident gets its place, every younger incident of one located call that it
    /// matches (a compatible type, within the window) records that call's late duplicate
    /// ([`IncidentView::late_duplicate`]): that call was located first and its own check found
    /// nothing. Returns whether any call got one (its task should be woken).
    pub fn update(&mut self, call_sid: &str, location: Option<&Location>, incident_type: Option<&str>, at_ms: u64) -> bool {
        let Some(id) = self.by_call.get(call_sid).copied() else { return false };
        let f = self.facts.entry(call_sid.to_string()).or_default();
        if let Some(l) = location {
            f.0 = Some(l.clone());
        }
        if let Some(t) = incident_type {
            f.1 = Some(t.to_string());
        }
        if let Some(e) = self.incidents.get_mut(&id) {
            e.last_activity_ms = e.last_activity_ms.max(at_ms);
            let mut placed = false;
            if e.location.as_ref().and_then(address::Place::of).is_none()
                && let Some(l) = location.filter(|l| address::Place::of(l).is_some()) {
                    e.location = Some(l.clone());
                    placed = true;
                }
            if e.incident_type.is_none() {
                e.incident_type = incident_type.map(str::to_string);
            }
            if placed {
                return self.find_late_duplicates(id, at_ms);
            }
        }
        false
    }

    /// Records, for each younger one-call incident whose call's place matches incident `older`,
    /// that call's late duplicate (the best match kept). One pass over the book.
    fn find_late_duplicates(&mut self, older: IncidentId, at_ms: u64) -> bool {
        let Some(o) = self.incidents.get(&older) else { return false };
        let (Some(place), otype) = (o.location.clone(), o.incident_type.clone()) else { return false };
        if at_ms.saturating_sub(o.last_activity_ms) > self.rules.window_ms {
            return false;
        }
        let mut found = Vec::new();
        for (id, e) in self.incidents.range(IncidentId(older.0 + 1)..) {
            let [call] = e.calls.as_slice() else { continue };
            let Some((Some(loc), ctype)) = self.facts.get(call) else { continue };
            if !compatible(ctype.as_deref(), otype.as_deref()) {
                continue;
            }
            let by = address::same_place(loc, &place);
            if by != Match::None && *id > older {
                found.push((call.clone(), Duplicate { incident: older, by }));
            }
        }
        let any = !found.is_empty();
        for (call, d) in found {
            match self.late.get(&call) {
                Some(prev) if prev.by >= d.by => {}
                _ => {
                    self.late.insert(call, d);
                }
            }
        }
        any
    }

    /// The incident a call most likely duplicates, if any ([`IncidentBook::candidate`] with
    /// the call's own facts as the book has them). Only a call alone on its incident has one.
    pub fn duplicate_of(&self, call_sid: &str, at_ms: u64) -> Option<Duplicate> {
        let own = *self.by_call.get(call_sid)?;
        if self.incidents.get(&own).is_some_and(|e| e.calls.len() > 1) {
            return None;
        }
        let (location, incident_type) = self.facts.get(call_sid)?;
        self.candidate(own, location.as_ref()?, incident_type.as_deref(), at_ms)
    }

    /// The live or recent incident a call on incident `own` at `location` of `incident_type`
    /// most likely duplicates: one opened before `own` (of two calls about one fire, the later
    /// is the duplicate), with activity within the window, whose location matches
    /// ([`address::same_place`]) and whose type is compatible ([`compatible`]); the best match,
    /// then the most recent.
    pub fn candidate(&self, own: IncidentId, location: &Location, incident_type: Option<&str>, at_ms: u64) -> Option<Duplicate> {
        self.recent(at_ms.saturating_sub(self.rules.window_ms))
            .filter(|(id, _)| *id < own)
            .filter(|(_, e)| compatible(incident_type, e.incident_type.as_deref()))
            .filter_map(|(id, e)| {
                let by = address::same_place(location, e.location.as_ref()?);
                (by != Match::None).then_some((by, e.last_activity_ms, id))
            })
            .max_by_key(|(by, at, _)| (*by, *at))
            .map(|(by, _, incident)| Duplicate { incident, by })
    }

    /// The other calls on a call's incident, in the order they joined (empty: alone, or unknown).
    pub fn others(&self, call_sid: &str) -> Vec<&str> {
        self.by_call
            .get(call_sid)
            .and_then(|id| self.incidents.get(id))
            .map(|e| e.calls.iter().map(String::as_str).filter(|c| *c != call_sid).collect())
            .unwrap_or_default()
    }

    /// A call's view of its incident ([`IncidentView`]).
    pub fn view_of(&self, call_sid: &str) -> IncidentView {
        IncidentView {
            incident: self.incident_of(call_sid),
            others: self.others(call_sid).into_iter().map(str::to_string).collect(),
            proposed_before: self.proposed_before(call_sid),
            late_duplicate: self.late.get(call_sid).copied(),
        }
    }

    /// Sets (`Some`) or clears (`None`) a call's standing dispatch proposal. Returns whether a
    /// call sharing its incident may see a difference (the incident has other calls).
    pub fn set_proposed(&mut self, call_sid: &str, units: Option<Vec<String>>) -> bool {
        let changed = match units {
            Some(u) => self.proposed.insert(call_sid.to_string(), u.clone()).as_ref() != Some(&u),
            None => self.proposed.remove(call_sid).is_some(),
        };
        changed && !self.others(call_sid).is_empty()
    }

    /// What the calls that joined a call's incident before it have proposed and not yet sent:
    /// a later call need not propose those units again (only earlier calls count, so two calls
    /// never each leave the dispatch to the other).
    pub fn proposed_before(&self, call_sid: &str) -> Vec<String> {
        let Some(e) = self.by_call.get(call_sid).and_then(|id| self.incidents.get(id)) else { return Vec::new() };
        e.calls.iter().take_while(|c| *c != call_sid).filter_map(|c| self.proposed.get(c)).flatten().cloned().collect()
    }

    /// Moves a call to `incident`. Its old incident keeps its other calls, or is closed when it
    /// had no other. Returns the incident it left.
    pub fn link(&mut self, call_sid: &str, incident: IncidentId, at_ms: u64) -> Result<IncidentId, LinkRefused> {
        let from = self.by_call.get(call_sid).copied().ok_or_else(|| LinkRefused::UnknownCall(call_sid.to_string()))?;
        if from == incident {
            return Err(LinkRefused::AlreadyLinked(incident));
        }
        if !self.incidents.contains_key(&incident) {
            return Err(LinkRefused::UnknownIncident(incident));
        }
        self.leave(call_sid, from);
        self.late.remove(call_sid);
        let to = self.incidents.get_mut(&incident).expect("checked above");
        to.calls.push(call_sid.to_string());
        to.last_activity_ms = to.last_activity_ms.max(at_ms);
        self.by_call.insert(call_sid.to_string(), incident);
        if let Some((l, t)) = self.facts.get(call_sid).cloned() {
            self.update(call_sid, l.as_ref(), t.as_deref(), at_ms);
        }
        Ok(from)
    }

    /// Takes a call off its incident (undoing a link): it gets an incident of its own again,
    /// with its own facts. Returns the new incident.
    pub fn unlink(&mut self, call_sid: &str, at_ms: u64) -> Result<IncidentId, LinkRefused> {
        let from = self.by_call.get(call_sid).copied().ok_or_else(|| LinkRefused::UnknownCall(call_sid.to_string()))?;
        if self.incidents.get(&from).is_some_and(|e| e.calls.len() <= 1) {
            return Err(LinkRefused::Alone);
        }
        self.leave(call_sid, from);
        self.late.remove(call_sid);
        let id = self.new_incident(call_sid, at_ms);
        if let Some((l, t)) = self.facts.get(call_sid).cloned() {
            self.update(call_sid, l.as_ref(), t.as_deref(), at_ms);
        }
        Ok(id)
    }

    /// Takes a call off `from`; an incident left without calls is closed, one left with calls
    /// has its location and type recomputed from them (the departing call's may have set them).
    fn leave(&mut self, call_sid: &str, from: IncidentId) {
        self.by_call.remove(call_sid);
        let Some(e) = self.incidents.get_mut(&from) else { return };
        e.calls.retain(|c| c != call_sid);
        if e.calls.is_empty() {
            self.incidents.remove(&from);
            return;
        }
        let remaining = e.calls.clone();
        e.location = None;
        e.incident_type = None;
        for c in remaining {
            if let Some((l, t)) = self.facts.get(&c) {
                if e.location.is_none() && l.as_ref().is_some_and(|l| address::Place::of(l).is_some()) {
                    e.location = l.clone();
                }
                if e.incident_type.is_none() {
                    e.incident_type = t.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn at(number: &str, street: &str) -> Location {
        Location { said: format!("{number} {street}"), number: Some(number.into()), street: Some(street.into()), ..Default::default() }
    }

    #[test]
    fn a_second_caller_about_the_same_fire_is_a_duplicate_of_the_first_incident() {
        let mut book = IncidentBook::new(LinkRules::default());
        let first = book.open("CA1", 0);
        book.update("CA1", Some(&at("4521", "Willow Creek Drive")), Some("FSTRU"), 0);
        let second = book.open("CA2", MIN);
        assert_ne!(first, second, "every call starts as its own incident");
        assert_eq!(book.duplicate_of("CA2", MIN), None, "nothing known of the new call yet");
        book.update("CA2", Some(&at("4521", "Willow Creek Dr.")), Some("FSTRU"), MIN);
        let dup = book.duplicate_of("CA2", MIN).unwrap();
        assert_eq!(dup, Duplicate { incident: first, by: Match::Exact });
        assert_eq!(book.duplicate_of("CA1", MIN), None, "the first call is not the duplicate of the second");
        assert!(dup.links_automatically());
        // A neighbour's address is proposed, never linked on its own.
        book.open("CA3", MIN);
        book.update("CA3", Some(&at("4525", "Willow Creek Drive")), None, MIN);
        let near = book.duplicate_of("CA3", MIN).unwrap();
        assert_eq!(near.by, Match::Near);
        assert!(!near.links_automatically());
    }

    #[test]
    fn old_incidents_and_incompatible_types_are_not_candidates() {
        let mut book = IncidentBook::new(LinkRules { window_ms: 30 * MIN });
        book.open("CA1", 0);
        book.update("CA1", Some(&at("12", "Main Street")), Some("FSTRU"), 0);
        book.open("CA2", 31 * MIN);
        book.update("CA2", Some(&at("12", "Main St")), Some("FSTRU"), 31 * MIN);
        assert_eq!(book.duplicate_of("CA2", 31 * MIN), None, "past the window");
        book.open("CA3", 10 * MIN);
        book.update("CA3", Some(&at("40", "Oak Avenue")), Some("FSTRU"), 10 * MIN);
        book.open("CA4", 11 * MIN);
        book.update("CA4", Some(&at("40", "Oak Avenue")), Some("BURGLARY"), 11 * MIN);
        assert_eq!(book.duplicate_of("CA4", 11 * MIN), None, "a fire and a burglary at one address stay apart");
        book.open("CA5", 12 * MIN);
        book.update("CA5", Some(&at("40", "Oak Avenue")), Some("PERUNCON"), 12 * MIN);
        assert!(book.duplicate_of("CA5", 12 * MIN).is_some(), "an unconscious person at the fire is the fire's");
    }

    #[test]
    fn linking_moves_the_call_and_unlinking_gives_it_its_own_incident_back() {
        let mut book = IncidentBook::new(LinkRules::default());
        let fire = book.open("CA1", 0);
        book.update("CA1", Some(&at("4521", "Willow Creek Drive")), Some("FSTRU"), 0);
        let own = book.open("CA2", MIN);
        book.update("CA2", Some(&at("4521", "Willow Creek Drive")), Some("FSTRU"), MIN);
        assert_eq!(book.link("CA2", fire, MIN), Ok(own));
        assert_eq!(book.get(fire).unwrap().calls, ["CA1", "CA2"]);
        assert!(book.get(own).is_none(), "an incident left without calls is closed");
        assert_eq!(book.link("CA2", fire, MIN), Err(LinkRefused::AlreadyLinked(fire)));
        assert_eq!(book.link("CA9", fire, MIN), Err(LinkRefused::UnknownCall("CA9".into())));
        // Undo: the call is on its own again, with its own facts.
        let back = book.unlink("CA2", 2 * MIN).unwrap();
        assert_ne!(back, fire);
        assert_eq!(book.get(back).unwrap().incident_type.as_deref(), Some("FSTRU"));
        assert_eq!(book.get(fire).unwrap().calls, ["CA1"]);
        assert_eq!(book.unlink("CA1", 2 * MIN), Err(LinkRefused::Alone));
    }

    #[test]
    fn an_incident_a_call_leaves_takes_its_location_from_the_calls_that_stay() {
        let mut book = IncidentBook::new(LinkRules::default());
        let a = book.open("CA1", 0);
        book.update("CA1", Some(&at("7", "Elm Road")), None, 0);
        book.open("CA2", 0);
        book.link("CA2", a, 0).unwrap();
        book.update("CA2", Some(&at("7", "Elm Rd")), Some("CARDIAC"), 0);
        assert_eq!(book.get(a).unwrap().incident_type.as_deref(), Some("CARDIAC"), "a linked call's facts fill what the incident lacks");
        book.unlink("CA2", MIN).unwrap();
        assert_eq!(book.get(a).unwrap().incident_type, None, "the type came from the call that left");
        assert_eq!(book.get(a).unwrap().location.as_ref().and_then(|l| l.number.as_deref()), Some("7"));
    }

    #[test]
    fn incidents_whose_calls_ended_leave_the_book_after_the_window() {
        let mut book = IncidentBook::new(LinkRules { window_ms: 30 * MIN });
        book.open("CA1", 0);
        book.update("CA1", Some(&at("12", "Main Street")), Some("FSTRU"), 0);
        book.open("CA2", 0);
        book.end("CA1", 5 * MIN);
        assert_eq!(book.len(), 2, "an ended call's incident stays for the window (duplicates)");
        book.end("CA3", 40 * MIN);
        assert_eq!(book.len(), 1, "past the window, the incident of ended calls goes; a live call's stays");
        assert_eq!(book.incident_of("CA1"), None);
        assert!(book.incident_of("CA2").is_some());
    }

    #[test]
    fn the_surge_scenarios_report_places_that_link_exactly() {
        // As the model fake reports them (crates/sim/scenarios): an address written two ways,
        // and a junction given as a street and its cross street.
        let place = |args: &str| crate::report::parse(args).0.location.unwrap();
        let a = place(r#"{"location":"4521 Willow Creek Drive"}"#);
        let b = place(r#"{"location":"4521 Willow Creek Dr"}"#);
        assert_eq!(address::same_place(&a, &b), Match::Exact);
        let j = place(r#"{"location":"Oak Avenue","cross_street":"5th Street"}"#);
        assert_eq!(address::same_place(&j, &j.clone()), Match::Exact);
        let school = place(r#"{"location":"across from Willow Creek Elementary School","landmark":"Willow Creek Elementary School"}"#);
        assert_eq!(address::same_place(&school, &a), Match::None, "a landmark is linked by the supervisor");
    }

    #[test]
    fn types_are_compatible_within_a_discipline_and_across_the_usual_pairs() {
        assert!(compatible(Some("FSTRU"), Some("FUNK")));
        assert!(compatible(Some("MVAINJY"), Some("FVEH")));
        assert!(compatible(Some("SHOOT"), Some("BLEEDING")));
        assert!(compatible(None, Some("SHOOT")));
        assert!(!compatible(Some("FSTRU"), Some("ROBBERY")));
    }
}
