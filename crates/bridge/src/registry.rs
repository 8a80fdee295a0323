//! Live calls by `CallSid`, and the [`Hub`] their events go out on.
//!
//! A call's task starts when the voice webhook arrives, so the model socket opens while the
//! phone rings (PROTOCOLS.md §4); the media stream *claims* the call at `start` by handing its
//! socket over. An unclaimed call closes after the claim window (30 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::event::{CallEvent, CallStatus};
use crate::machine::Command;
use crate::model::ModelConfig;
use crate::profile::AgentProfile;
use crate::task::{CallSetup, TwilioSocket, run_call};

/// Where every call's events go: an unbounded queue to the store writer (nothing acknowledged is
/// lost, and a call never waits on the store) and a bounded broadcast to live consoles (a slow
/// console lags and resynchronises; it never slows a call).
#[derive(Clone)]
pub struct Hub {
    live: broadcast::Sender<Arc<CallEvent>>,
    record: mpsc::UnboundedSender<Arc<CallEvent>>,
}

impl Hub {
    /// A hub whose broadcast holds `live_capacity` events; returns the store writer's receiver.
    pub fn new(live_capacity: usize) -> (Hub, mpsc::UnboundedReceiver<Arc<CallEvent>>) {
        let (live, _) = broadcast::channel(live_capacity);
        let (record, rx) = mpsc::unbounded_channel();
        (Hub { live, record }, rx)
    }

    /// Publishes one event. Never blocks.
    pub fn publish(&self, ev: CallEvent) {
        let ev = Arc::new(ev);
        if self.record.send(ev.clone()).is_err() {
            tracing::error!("store writer is gone: event not recorded");
        }
        let _ = self.live.send(ev); // no console connected is fine
    }

    /// A live subscription (for consoles and tests).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CallEvent>> {
        self.live.subscribe()
    }
}

/// A supervisor's handle on one live call.
#[derive(Clone)]
pub struct CallHandle {
    commands: mpsc::Sender<Command>,
}

impl CallHandle {
    /// Sends a command to the call's task. Errors when the call has ended.
    pub async fn send(&self, cmd: Command) -> Result<(), CallGone> {
        self.commands.send(cmd).await.map_err(|_| CallGone)
    }
}

/// The call is no longer live.
#[derive(Debug, thiserror::Error)]
#[error("the call is no longer live")]
pub struct CallGone;

/// A summary of a live call for `GET /api/calls/active`.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveCall {
    /// The CallSid.
    pub call_sid: String,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Placed by the simulator.
    pub simulated: bool,
    /// ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Current status.
    pub status: CallStatus,
}

struct Entry {
    commands: mpsc::Sender<Command>,
    claim: Option<oneshot::Sender<TwilioSocket>>,
    summary: Arc<Mutex<ActiveCall>>,
}

/// What the registry needs to start calls.
#[derive(Clone)]
pub struct BridgeConfig {
    /// The model to connect to.
    pub model: Arc<ModelConfig>,
    /// The agent profile for new calls.
    pub profile: Arc<AgentProfile>,
    /// How long a call waits for its media stream, default 30 s.
    pub claim_window: Duration,
}

/// Live calls.
#[derive(Clone)]
pub struct CallRegistry {
    calls: Arc<Mutex<HashMap<Arc<str>, Entry>>>,
    hub: Hub,
    config: Arc<Mutex<BridgeConfig>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// Facts of a new call from the webhook (or the stream's `start` when no webhook came first).
#[derive(Debug, Clone)]
pub struct NewCall {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Placed by the simulator.
    pub simulated: bool,
    /// When the webhook arrived.
    pub received: Instant,
    /// Same, ms since the Unix epoch.
    pub received_unix_ms: u64,
}

/// Errors from the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A call with this CallSid is already live.
    #[error("call {0} is already live")]
    AlreadyLive(String),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl CallRegistry {
    /// A registry whose call tasks are children of `cancel` and tracked by `tracker`.
    pub fn new(hub: Hub, config: BridgeConfig, cancel: CancellationToken, tracker: TaskTracker) -> Self {
        CallRegistry { calls: Arc::default(), hub, config: Arc::new(Mutex::new(config)), cancel, tracker }
    }

    /// The hub events go out on.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Replaces the agent profile used by calls started from now on.
    pub fn set_profile(&self, profile: AgentProfile) {
        lock(&self.config).profile = Arc::new(profile);
    }

    /// Starts a call's task (model connect begins at once). Called by the webhook.
    pub fn start_call(&self, call: NewCall) -> Result<(), RegistryError> {
        self.start_inner(call, None)
    }

    /// Hands a media stream to its call; starts the call first if no webhook came for it
    /// (a stream placed directly, or a webhook served by another node).
    pub fn claim(&self, call: NewCall, socket: TwilioSocket) -> Result<(), RegistryError> {
        let sid: Arc<str> = call.call_sid.as_str().into();
        let claim = {
            let mut calls = lock(&self.calls);
            match calls.get_mut(&sid) {
                Some(entry) => Some(entry.claim.take()),
                None => None,
            }
        };
        match claim {
            Some(Some(tx)) => {
                if let Err(socket) = tx.send(socket) {
                    // The task ended between lookup and hand-over: start a fresh one.
                    return self.start_inner(call, Some(socket));
                }
                Ok(())
            }
            Some(None) => Err(RegistryError::AlreadyLive(call.call_sid)),
            None => self.start_inner(call, Some(socket)),
        }
    }

    fn start_inner(&self, call: NewCall, socket: Option<TwilioSocket>) -> Result<(), RegistryError> {
        if self.cancel.is_cancelled() {
            return Err(RegistryError::ShuttingDown);
        }
        let sid: Arc<str> = call.call_sid.as_str().into();
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (claim_tx, claim_rx) = oneshot::channel();
        let summary = Arc::new(Mutex::new(ActiveCall {
            call_sid: call.call_sid.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            simulated: call.simulated,
            started_at_ms: call.received_unix_ms,
            status: CallStatus::Processing,
        }));
        {
            let mut calls = lock(&self.calls);
            if calls.contains_key(&sid) {
                return Err(RegistryError::AlreadyLive(call.call_sid));
            }
            let claim = match socket {
                Some(socket) => {
                    // Invariant: the receiver is alive, we hold it right here.
                    let _ = claim_tx.send(socket);
                    None
                }
                None => Some(claim_tx),
            };
            calls.insert(sid.clone(), Entry { commands: cmd_tx, claim, summary: summary.clone() });
        }
        let cfg = lock(&self.config).clone();
        let setup = CallSetup {
            call_sid: sid.clone(),
            from: call.from,
            to: call.to,
            simulated: call.simulated,
            received: call.received,
            received_unix_ms: call.received_unix_ms,
            profile: cfg.profile,
            model: cfg.model,
            claim_window: cfg.claim_window,
        };
        let span = tracing::info_span!(parent: None, "call", call_sid = %sid);
        let calls = self.calls.clone();
        let hub = self.hub.clone();
        let cancel = self.cancel.child_token();
        self.tracker.spawn(
            async move {
                run_call(setup, claim_rx, cmd_rx, hub, cancel, summary).await;
                lock(&calls).remove(&sid);
            }
            .instrument(span),
        );
        Ok(())
    }

    /// The handle of a live call.
    pub fn handle(&self, call_sid: &str) -> Option<CallHandle> {
        lock(&self.calls).get(call_sid).map(|e| CallHandle { commands: e.commands.clone() })
    }

    /// Live calls, oldest first.
    pub fn active(&self) -> Vec<ActiveCall> {
        let mut v: Vec<ActiveCall> = lock(&self.calls).values().map(|e| lock(&e.summary).clone()).collect();
        v.sort_by_key(|c| c.started_at_ms);
        v
    }

    /// Number of live calls.
    pub fn len(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Whether no call is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Locks a mutex, recovering from poisoning: the data are plain summaries, still valid after a
/// panic elsewhere, and a poisoned lock must not take every other call down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
