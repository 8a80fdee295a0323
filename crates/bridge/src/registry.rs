//! Live calls by `CallSid`, and the [`Hub`] their events go out on.
//!
//! A call's task starts when the voice webhook arrives, so the model socket opens while the
//! phone rings (PROTOCOLS.md §4); the media stream *claims* the call at `start` by handing its
//! socket over. An unclaimed call closes after the claim window (30 s).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use watchfloor_call::{CallFold, CallMode, CallStatus, Hub, LiveCall};
use crate::jitter::VoiceMsg;
use crate::machine::{Command, Refusal};
use crate::model::ModelConfig;
use crate::profile::ProfileBook;
use crate::task::{CallSetup, TwilioSocket, run_call};

/// Voice frames queued for a call's task: half a second.
pub const VOICE_QUEUE: usize = 25;

/// A command with the channel that tells the sender whether it was carried out.
pub type CommandMsg = (Command, Option<oneshot::Sender<Result<(), Refusal>>>);

/// A supervisor's handle on one live call.
#[derive(Clone)]
pub struct CallHandle {
    commands: mpsc::Sender<CommandMsg>,
}

impl CallHandle {
    /// Sends a command to the call's task without waiting. Errors when the call has ended.
    pub async fn send(&self, cmd: Command) -> Result<(), CallGone> {
        self.commands.send((cmd, None)).await.map_err(|_| CallGone)
    }

    /// Sends a command and waits until the call's task has carried it out and published its
    /// events (they are then queued for the store ahead of anything published later). `Err`:
    /// refused, with the reason ([`Refusal::CallEnded`] when the call's task is gone).
    pub async fn command(&self, cmd: Command) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        self.commands.send((cmd, Some(tx))).await.map_err(|_| Refusal::CallEnded)?;
        rx.await.map_err(|_| Refusal::CallEnded)?
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
    /// Who speaks to the caller (issue 17).
    pub mode: CallMode,
    /// The supervisor holding the call's voice, while one does.
    pub voice_holder: Option<String>,
}

struct Entry {
    commands: mpsc::Sender<CommandMsg>,
    /// The supervisor's voice frames for the call's task (bounded: a frame the task cannot take
    /// is dropped by the sender, never waited for).
    voice: mpsc::Sender<VoiceMsg>,
    claim: Option<oneshot::Sender<TwilioSocket>>,
    /// The fold of the call's events so far (the console's view is a projection of it).
    live: Arc<Mutex<CallFold>>,
    /// The token the webhook put in the stream's `<Parameter>`s; only a `start` carrying it
    /// takes the call (the upgrade's signature never changes, so it proves nothing alone).
    stream_token: String,
}

/// Equal, in time that depends only on the lengths.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the registry needs to start calls.
#[derive(Clone)]
pub struct BridgeConfig {
    /// The model to connect to.
    pub model: Arc<ModelConfig>,
    /// The agent profiles of new calls, by called number (issue 21).
    pub profiles: Arc<ProfileBook>,
    /// How long a call waits for its media stream, default 30 s.
    pub claim_window: Duration,
    /// How callers reach a human when the AI cannot go on.
    pub fallback: Arc<crate::task::Fallback>,
    /// Stall and session timers.
    pub timers: crate::machine::Timers,
    /// What one media stream may send before its input is dropped ([`crate::flood`]).
    pub stream_limits: crate::flood::StreamLimits,
    /// The dispatch policy of new calls.
    pub policy: watchfloor_dispatch::policy::Policy,
    /// What a lost voice holder means for a call (issue 17).
    pub voice_loss: crate::machine::VoiceLossAction,
    /// The unit roster every call dispatches from.
    pub roster: crate::SharedRoster,
    /// The incident list every call opens its incident in (issue 18).
    pub incidents: crate::SharedIncidents,
    /// The model of training (simulated) calls, when it differs from the real one (training
    /// mode runs a model fake for them, so they never reach the real service).
    pub training_model: Option<Arc<ModelConfig>>,
    /// Calls the profiles' tools' endpoints, signing with the shared secret (issue 21).
    pub tools: crate::tools::ToolClient,
    /// Lines in another language than the centre's are translated by this (issue 21); none:
    /// no translations.
    pub translation: Option<crate::translate::Translation>,
    /// The translation of training calls (training mode's fake), like [`Self::training_model`].
    pub training_translation: Option<crate::translate::Translation>,
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

/// Facts of a new call from the webhook.
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
    /// One line about prior calls from this number, for the agent's instructions.
    pub history: Option<String>,
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
    /// A media stream named a call that is not waiting for its stream here: no webhook for it
    /// was answered by this server, its stream came already, or it has ended (issue 15: a
    /// captured stream signature never changes, so a replayed `start` must not reopen or start
    /// a call).
    #[error("call {0} is not waiting for a media stream")]
    NotAwaitingStream(String),
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

    /// Changes the configuration of calls started from now on (live calls keep theirs).
    pub fn update_config(&self, f: impl FnOnce(&mut BridgeConfig)) {
        f(&mut self.config.lock());
    }

    /// Starts a call's task (model connect begins at once). Called by the webhook. Returns the
    /// stream token (32 hex digits) the TwiML must pass as the stream's `streamToken`
    /// `<Parameter>`: [`CallRegistry::claim`] requires it.
    pub fn start_call(&self, call: NewCall) -> Result<String, RegistryError> {
        if self.cancel.is_cancelled() {
            return Err(RegistryError::ShuttingDown);
        }
        let sid: Arc<str> = call.call_sid.as_str().into();
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (voice_tx, voice_rx) = mpsc::channel(VOICE_QUEUE);
        let (claim_tx, claim_rx) = oneshot::channel();
        let stream_token = format!("{:032x}", rand::random::<u128>());
        let live = Arc::new(Mutex::new(CallFold {
            from: call.from.clone(),
            to: call.to.clone(),
            simulated: call.simulated,
            started_at_ms: call.received_unix_ms,
            status: CallStatus::Processing,
            ..CallFold::new(&call.call_sid)
        }));
        {
            let mut calls = self.calls.lock();
            if calls.contains_key(&sid) {
                return Err(RegistryError::AlreadyLive(call.call_sid));
            }
            calls.insert(sid.clone(), Entry { commands: cmd_tx, voice: voice_tx, claim: Some(claim_tx), live: live.clone(), stream_token: stream_token.clone() });
        }
        let cfg = self.config.lock().clone();
        let profile = cfg.profiles.for_line(&call.to);
        let setup = CallSetup {
            call_sid: sid.clone(),
            from: call.from,
            to: call.to,
            simulated: call.simulated,
            received: call.received,
            received_unix_ms: call.received_unix_ms,
            profile,
            model: match (&cfg.training_model, call.simulated) {
                (Some(training), true) => training.clone(),
                _ => cfg.model,
            },
            claim_window: cfg.claim_window,
            history: call.history,
            fallback: cfg.fallback,
            timers: cfg.timers,
            stream_limits: cfg.stream_limits,
            policy: cfg.policy,
            voice_loss: cfg.voice_loss,
            roster: cfg.roster,
            incidents: cfg.incidents,
            tools: cfg.tools,
            translation: if call.simulated && cfg.training_model.is_some() { cfg.training_translation } else { cfg.translation },
        };
        let span = tracing::info_span!(parent: None, "call", call_sid = %sid);
        let calls = self.calls.clone();
        let hub = self.hub.clone();
        let cancel = self.cancel.child_token();
        self.tracker.spawn(
            async move {
                run_call(setup, claim_rx, cmd_rx, voice_rx, hub, cancel, live).await;
                calls.lock().remove(&sid);
            }
            .instrument(span),
        );
        Ok(stream_token)
    }

    /// Whether a live call waits for its media stream.
    pub fn awaiting_stream(&self, call_sid: &str) -> bool {
        self.calls.lock().get(call_sid).is_some_and(|e| e.claim.is_some())
    }

    /// Hands a media stream to its call: only a live call whose webhook this server answered
    /// and that still waits for its stream takes one, once, and only with the stream token the
    /// webhook gave it. Anything else is
    /// [`RegistryError::NotAwaitingStream`] and the socket is dropped (closed), so a stream can
    /// neither start a call that bypasses the webhook's checks and `max_calls` nor reopen an
    /// ended one.
    pub fn claim(&self, call_sid: &str, stream_token: Option<&str>, socket: TwilioSocket) -> Result<(), RegistryError> {
        let claim = self.calls.lock().get_mut(call_sid).filter(|e| stream_token.is_some_and(|t| same_token(t, &e.stream_token))).and_then(|entry| entry.claim.take());
        match claim {
            // The task may have ended between the lookup and the hand-over: then the socket
            // comes back and is dropped.
            Some(tx) => tx.send(socket).map_err(|_| RegistryError::NotAwaitingStream(call_sid.to_string())),
            None => Err(RegistryError::NotAwaitingStream(call_sid.to_string())),
        }
    }


    /// Where a live call takes its supervisor's voice ([`VoiceMsg`]: frames, keepalives, the
    /// console's loss; send with
    /// `try_send`: a full queue drops the frame, never the caller's audio).
    pub fn voice(&self, call_sid: &str) -> Option<mpsc::Sender<VoiceMsg>> {
        self.calls.lock().get(call_sid).map(|e| e.voice.clone())
    }

    /// The handle of a live call.
    pub fn handle(&self, call_sid: &str) -> Option<CallHandle> {
        self.calls.lock().get(call_sid).map(|e| CallHandle { commands: e.commands.clone() })
    }

    /// Live calls, oldest first.
    pub fn active(&self) -> Vec<ActiveCall> {
        self.live_calls()
            .into_iter()
            .map(|c| ActiveCall { call_sid: c.call_sid, from: c.from, to: c.to, simulated: c.simulated, started_at_ms: c.started_at_ms, status: c.status, mode: c.mode, voice_holder: c.voice_holder })
            .collect()
    }

    /// Who holds a live call's voice (the outer `None`: no such live call). Cheaper than
    /// [`CallRegistry::live_call`]: the live feed asks at every `talk` and keepalive.
    pub fn voice_holder(&self, call_sid: &str) -> Option<Option<String>> {
        let state = self.calls.lock().get(call_sid).map(|e| e.live.clone())?;
        let holder = state.lock().voice_holder.clone();
        Some(holder)
    }

    /// One live call as the console shows it.
    pub fn live_call(&self, call_sid: &str) -> Option<LiveCall> {
        let state = self.calls.lock().get(call_sid).map(|e| e.live.clone())?;
        let view = state.lock().live();
        Some(view)
    }

    /// Every live call as the console shows it, oldest first. Each call's state is locked on
    /// its own (never one lock for all calls).
    pub fn live_calls(&self) -> Vec<LiveCall> {
        let states: Vec<Arc<Mutex<CallFold>>> = self.calls.lock().values().map(|e| e.live.clone()).collect();
        let mut v: Vec<LiveCall> = states.iter().map(|s| s.lock().live()).collect();
        v.sort_by(|a, b| a.started_at_ms.cmp(&b.started_at_ms).then_with(|| a.call_sid.cmp(&b.call_sid)));
        v
    }

    /// Number of live calls.
    pub fn len(&self) -> usize {
        self.calls.lock().len()
    }

    /// Whether no call is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

