//! One emergency call between Twilio and the Realtime model.
//!
//! - [`machine`]: the sans-IO relay state machine ([`CallMachine`]).
//! - [`task`]: the async task that owns both sockets of one call and drives the machine.
//! - [`registry`]: live calls by `CallSid`; the model socket is opened at the webhook and the
//!   media stream claims it at `start`.
//! - [`event`], [`live`]: re-exported from `watchfloor-call` (the call's typed events and the
//!   console's view), which the store, listen-in and the desktop app use without this crate.
//! - [`flood`]: what one media stream may send before its input is dropped.
//! - [`profile`]: the agent profile sent in `session.update`.
//! - [`language`]: which language a transcript line was spoken in; [`translate`]: its machine
//!   translation for the supervisor.
//!
//! Architecture invariants: one task per call owns both sockets and nothing else writes to them;
//! a call never waits on a console, the store or listen-in (they consume a broadcast or an
//! unbounded queue); remote input never panics the task.

pub mod flood;
pub mod jitter;
pub mod language;
pub mod machine;
pub mod model;
pub mod profile;
pub mod registry;
pub mod incidents;
pub mod roster;
pub mod task;
pub mod tools;
pub mod translate;
pub mod twilio_rest;

pub use watchfloor_call::{AppendError, AudioFrame, CallEvent, CallEventKind, CallFold, CallMode, CallStatus, DispatchAudioStatus, FallbackRoute, HandOffAction, Hub, RecordMsg, Speaker, Stage, StoreGone, Talking, Track, event, live};
pub use machine::{CallMachine, Command, Input, Output, Refusal};
pub use profile::{AgentProfile, CallContext, ProfileBook, StoredPrompt, TurnDetectionKind, VadProfile};
pub use registry::{CallHandle, CallRegistry};

pub use incidents::SharedIncidents;
pub use roster::SharedRoster;
