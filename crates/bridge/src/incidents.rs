//! The incident list's one owner (issue 18): every call opens an incident of its own; what a
//! call learns of its location and type updates its incident; a supervisor links a duplicate
//! call to another incident or unlinks it. Like the roster ([`crate::SharedRoster`]), the list
//! lives in a `tokio::sync::watch` channel: each change is made on the current list and
//! published whole; readers (the incidents API) hold a snapshot and lock nothing.
//!
//! Each call's task reports its own `CallCreated` and `IncidentUpdated` events here as it
//! publishes them ([`SharedIncidents::observe`]); nothing on the audio path waits on it.

use std::sync::Arc;

use tokio::sync::watch;
use watchfloor_call::{CallEvent, CallEventKind};
use watchfloor_dispatch::linking::{IncidentBook, IncidentId, LinkRefused, LinkRules};

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

    /// A receiver of every new list.
    pub fn subscribe(&self) -> watch::Receiver<Arc<IncidentBook>> {
        self.tx.subscribe()
    }

    /// Applies `f` to the list and publishes it. The list is changed in place unless a reader
    /// still holds the last snapshot (then it is copied first, `Arc::make_mut`): a call's events
    /// never copy the whole list (a copy per event cost every call's task O(incidents)).
    fn change<T>(&self, f: impl FnOnce(&mut IncidentBook) -> T) -> T {
        let mut out = None;
        self.tx.send_modify(|b| out = Some(f(Arc::make_mut(b))));
        out.expect("send_modify runs the closure once")
    }

    /// A call's own event: a new call opens its incident; an incident update gives its
    /// incident what the call now knows of the location and type; a call's end lets incidents
    /// past the window go (the book keeps live and recent ones). Other events change nothing
    /// (and publish nothing).
    pub fn observe(&self, ev: &CallEvent) {
        match &ev.kind {
            CallEventKind::CallCreated { .. } => {
                self.change(|b| b.open(&ev.call_sid, ev.at_ms));
            }
            CallEventKind::IncidentUpdated { incident } => {
                let location = incident.location.as_ref().map(|f| &f.value);
                let incident_type = incident.incident_type.as_ref().map(|f| f.value.as_str());
                self.change(|b| b.update(&ev.call_sid, location, incident_type, ev.at_ms));
            }
            CallEventKind::CallEnded { .. } => {
                self.change(|b| b.end(&ev.call_sid, ev.at_ms));
            }
            _ => {}
        }
    }

    /// Moves a call to `incident` (a supervisor's link); returns the incident it left.
    ///
    /// # Errors
    /// [`LinkRefused`]: an unknown call or incident, or the call already on it.
    pub fn link(&self, call_sid: &str, incident: IncidentId, at_ms: u64) -> Result<IncidentId, LinkRefused> {
        self.change(|b| b.link(call_sid, incident, at_ms))
    }

    /// Takes a call off its incident (undoing a link); returns its new incident.
    ///
    /// # Errors
    /// [`LinkRefused`]: an unknown call, or one alone on its incident.
    pub fn unlink(&self, call_sid: &str, at_ms: u64) -> Result<IncidentId, LinkRefused> {
        self.change(|b| b.unlink(call_sid, at_ms))
    }
}
