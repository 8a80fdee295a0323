//! The incident list's one owner (issue 18): every call opens an incident of its own; what a
//! call learns of its location and type updates its incident; a supervisor links a duplicate
//! call to another incident or unlinks it. Like the roster ([`crate::SharedRoster`]), the list
//! lives in a `tokio::sync::watch` channel: each change is made on the current list and
//! published whole; readers (the incidents API) hold a snapshot and lock nothing.
//!
//! Each call's task reports its own events here as it publishes them
//! ([`SharedIncidents::observe`]); nothing on the audio path waits on it. A call's machine asks
//! through its task for a duplicate check, a link or an unlink (`Output::Incidents`), and is
//! woken with the new list when a change may matter to it (dispatch once).

use std::sync::Arc;

use tokio::sync::watch;
use watchfloor_call::{CallEvent, CallEventKind};
use watchfloor_dispatch::linking::{Duplicate, IncidentBook, IncidentId, IncidentView, LinkRefused, LinkRules};

/// The incident list shared by every call and the API (cheap to clone: one channel).
#[derive(Clone, Debug)]
pub struct SharedIncidents {
    tx: Arc<watch::Sender<Arc<IncidentBook>>>,
}

impl Default for SharedIncidents {
    fn default() -> Self {
        SharedIncidents::new(LinkRules::default())
    }
}

impl SharedIncidents {
    /// An empty list under `rules`.
    pub fn new(rules: LinkRules) -> Self {
        SharedIncidents { tx: Arc::new(watch::Sender::new(Arc::new(IncidentBook::new(rules)))) }
    }

    /// The list now.
    pub fn snapshot(&self) -> Arc<IncidentBook> {
        self.tx.borrow().clone()
    }

    /// A call's view of its incident ([`IncidentBook::view_of`]), read under the channel's lock.
    pub fn view_of(&self, call_sid: &str) -> IncidentView {
        self.tx.borrow().view_of(call_sid)
    }

    /// A receiver of every new list.
    pub fn subscribe(&self) -> watch::Receiver<Arc<IncidentBook>> {
        self.tx.subscribe()
    }

    /// Applies `f` to the list; receivers are woken only when `f` says the change may matter
    /// to a call other than the one that made it (`true`): a link, an unlink, a proposal on a
    /// call that shares its incident. Other changes are made silently (readers see them at
    /// their next `borrow`): a call's own facts change its incident on every extraction, and
    /// waking every call's task for each would cost O(calls) per event. The list is changed in
    /// place unless a reader still holds the last snapshot (then it is copied first,
    /// `Arc::make_mut`).
    fn change<T>(&self, f: impl FnOnce(&mut IncidentBook) -> (T, bool)) -> T {
        let mut out = None;
        self.tx.send_if_modified(|b| {
            let (value, notify) = f(Arc::make_mut(b));
            out = Some(value);
            notify
        });
        out.expect("send_if_modified runs the closure once")
    }

    /// Numbers new incidents after `n` (the highest in the records, at start-up).
    pub fn start_after(&self, n: u64) {
        self.change(|b| (b.start_after(n), false));
    }

    /// A call's own event: a new call opens its incident; an incident update gives its
    /// incident what the call now knows of the location and type; a proposal, a dispatch, a
    /// recall or a withdrawal sets or clears the call's standing proposal (what later calls on
    /// its incident need not propose again); a call's end lets incidents past the window go.
    /// Returns whether the call's own machine should be given the list now (its incident was
    /// just opened). Other events change nothing.
    pub fn observe(&self, ev: &CallEvent) -> bool {
        match &ev.kind {
            CallEventKind::CallCreated { .. } => {
                self.change(|b| (b.open(&ev.call_sid, ev.at_ms), false));
                return true;
            }
            CallEventKind::IncidentUpdated { incident } => {
                let location = incident.location.as_ref().map(|f| &f.value);
                let incident_type = incident.incident_type.as_ref().map(|f| f.value.as_str());
                // An incident that got its place and matches a younger call located before it:
                // wake the tasks (that call reads its late duplicate from its view).
                self.change(|b| ((), b.update(&ev.call_sid, location, incident_type, ev.at_ms)));
            }
            CallEventKind::DispatchProposed { units, .. } => {
                self.change(|b| ((), b.set_proposed(&ev.call_sid, Some(units.clone()))));
            }
            CallEventKind::Dispatched { .. } | CallEventKind::DispatchRecalled { .. } | CallEventKind::DispatchWithdrawn { .. } => {
                self.change(|b| ((), b.set_proposed(&ev.call_sid, None)));
            }
            CallEventKind::CallEnded { .. } => {
                self.change(|b| {
                    let notify = b.set_proposed(&ev.call_sid, None);
                    b.end(&ev.call_sid, ev.at_ms);
                    ((), notify)
                });
            }
            _ => {}
        }
        false
    }

    /// The incident a call alone on its incident most likely duplicates
    /// ([`IncidentBook::duplicate_of`]).
    pub fn duplicate_of(&self, call_sid: &str, at_ms: u64) -> Option<Duplicate> {
        self.tx.borrow().duplicate_of(call_sid, at_ms)
    }

    /// Moves a call to `incident` (a supervisor's link, or the automatic policy's); returns
    /// the incident it left. Every call's task is woken (the calls of both incidents see it).
    ///
    /// # Errors
    /// [`LinkRefused`]: an unknown call or incident, or the call already on it.
    pub fn link(&self, call_sid: &str, incident: IncidentId, at_ms: u64) -> Result<IncidentId, LinkRefused> {
        self.change(|b| {
            let r = b.link(call_sid, incident, at_ms);
            let ok = r.is_ok();
            (r, ok)
        })
    }

    /// Takes a call off its incident (undoing a link); returns its new incident.
    ///
    /// # Errors
    /// [`LinkRefused`]: an unknown call, or one alone on its incident.
    pub fn unlink(&self, call_sid: &str, at_ms: u64) -> Result<IncidentId, LinkRefused> {
        self.change(|b| {
            let r = b.unlink(call_sid, at_ms);
            let ok = r.is_ok();
            (r, ok)
        })
    }
}
