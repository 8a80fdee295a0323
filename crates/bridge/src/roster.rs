//! The unit roster's one owner. Every change to a unit — a call's dispatch, recall and
//! correction (asked by its machine as `Output::Roster`, carried out by its task), a
//! supervisor's attach / en route / on scene / cleared, a settings change — is a method here,
//! made on the current roster and published whole to every reader. Readers (each call's
//! machine, the roster API) hold a snapshot and never lock anything.
//!
//! The roster lives in a `tokio::sync::watch` channel: a change is `send_if_modified` on it
//! (the channel's own lock, held for the change only; the roster is a few dozen units, cloned
//! when readers hold the previous snapshot), and each call's task wakes on `changed()` to hand
//! its machine the new snapshot.

use std::sync::Arc;

use tokio::sync::watch;
use watchfloor_dispatch::types::UnitType;
use watchfloor_dispatch::units::{Roster, RosterError, Unit, UnitStatus};

/// The unit roster shared by every call and the API (cheap to clone: one channel).
#[derive(Clone, Debug)]
pub struct SharedRoster {
    tx: Arc<watch::Sender<Arc<Roster>>>,
}

impl SharedRoster {
    /// The owner of `roster` (as loaded and restored from the records at start-up).
    pub fn new(roster: Roster) -> Self {
        SharedRoster { tx: Arc::new(watch::Sender::new(Arc::new(roster))) }
    }

    /// The roster now.
    pub fn snapshot(&self) -> Arc<Roster> {
        self.tx.borrow().clone()
    }

    /// A receiver of every new roster (the current one marked as seen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Roster>> {
        self.tx.subscribe()
    }

    /// Applies `f` to the roster and publishes the result when `f` says it changed anything.
    fn change<T>(&self, f: impl FnOnce(&mut Roster) -> (T, bool)) -> T {
        let mut out = None;
        self.tx.send_if_modified(|r| {
            let mut next = (**r).clone();
            let (value, changed) = f(&mut next);
            out = Some(value);
            if changed {
                *r = Arc::new(next);
            }
            changed
        });
        out.expect("send_if_modified runs the closure once")
    }

    /// Dispatches `units` to `call_sid`, each on its own: a unit that is unknown or busy on
    /// another call is left out (the reason logged). Returns the units newly dispatched.
    pub fn reserve(&self, call_sid: &str, units: &[String]) -> Vec<String> {
        self.change(|r| {
            let mut newly = Vec::new();
            for unit in units {
                match r.assign(std::slice::from_ref(unit), call_sid) {
                    Ok(n) => newly.extend(n),
                    Err(e) => tracing::warn!(error = %e, "unit left out of the dispatch"),
                }
            }
            let changed = !newly.is_empty();
            (newly, changed)
        })
    }

    /// Releases `call_sid`'s units that have not arrived (all, or `only` these) back to
    /// Available. Returns the units released.
    pub fn release(&self, call_sid: &str, only: Option<&[String]>) -> Vec<String> {
        self.change(|r| {
            let released = r.release(call_sid, only);
            let changed = !released.is_empty();
            (released, changed)
        })
    }

    /// Moves `unit` on `call_sid` to `next` (attach is `Dispatched`). Returns the unit as it
    /// was (for [`SharedRoster::put_back`]), or none for a unit off the roster (mutual aid:
    /// nothing to change). Errors: unknown to a call, busy on another call, a move the status
    /// model forbids.
    pub fn move_unit(&self, call_sid: &str, unit: &str, next: UnitStatus) -> Result<Option<Unit>, RosterError> {
        self.change(|r| {
            let Some(before) = r.get(unit).cloned() else { return (Ok(None), false) };
            let result = if next == UnitStatus::Dispatched { r.assign(&[unit.to_string()], call_sid).map(|_| ()) } else { r.set_status(unit, call_sid, next) };
            let changed = result.is_ok();
            (result.map(|()| Some(before)), changed)
        })
    }

    /// Puts a unit back as it was before [`SharedRoster::move_unit`] (the move could not be
    /// recorded).
    pub fn put_back(&self, before: Unit) {
        self.change(|r| match r.units.iter_mut().find(|u| u.id == before.id) {
            Some(u) => {
                *u = before;
                ((), true)
            }
            None => ((), false),
        })
    }

    /// Replaces the roster's units (a supervisor's settings; [`Roster::reconfigure`]).
    pub fn reconfigure(&self, units: Vec<(String, UnitType)>) -> Result<(), RosterError> {
        self.change(|r| {
            let result = r.reconfigure(units);
            let changed = result.is_ok();
            (result, changed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> SharedRoster {
        SharedRoster::new(Roster::new(vec![("Engine 7".into(), UnitType::Engine), ("Medic 3".into(), UnitType::Medic)]).unwrap())
    }

    #[test]
    fn every_change_is_published_and_a_refused_one_is_not() {
        let roster = owner();
        let mut rx = roster.subscribe();
        assert_eq!(roster.reserve("CA1", &["Engine 7".into(), "Nope 1".into()]), ["Engine 7"]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().assigned_to("CA1"), ["Engine 7"]);
        // Busy on CA1: CA2 gets nothing, and nothing is published.
        assert!(roster.reserve("CA2", &["Engine 7".into()]).is_empty());
        assert!(matches!(roster.move_unit("CA2", "Engine 7", UnitStatus::Dispatched), Err(RosterError::Busy { .. })));
        assert!(!rx.has_changed().unwrap());
        let before = roster.move_unit("CA1", "Engine 7", UnitStatus::OnScene).unwrap().unwrap();
        assert_eq!(before.status, UnitStatus::Dispatched);
        assert_eq!(roster.snapshot().get("Engine 7").unwrap().status, UnitStatus::OnScene);
        roster.put_back(before);
        assert_eq!(roster.snapshot().get("Engine 7").unwrap().status, UnitStatus::Dispatched);
        assert_eq!(roster.move_unit("CA1", "County Medic 51", UnitStatus::Dispatched), Ok(None), "off the roster");
        assert_eq!(roster.release("CA1", None), ["Engine 7"]);
        assert!(roster.snapshot().assigned_to("CA1").is_empty());
    }
}
