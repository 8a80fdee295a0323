//! A call as the rest of Watchfloor sees it, with no sockets and no HTTP: the store, listen-in
//! and the desktop app depend on this crate, not on the bridge (which pulls WebSockets, an HTTP
//! client and retry loops).
//!
//! - [`event`]: [`CallEvent`], every state change of a call, and the [`AudioFrame`]s of its
//!   tracks;
//! - [`fold`]: [`CallFold`], the one fold of a call's events; the console's view and the stored
//!   record are projections of it;
//! - [`live`]: [`LiveCall`], the console's view of a live call, and the live feed's messages;
//! - [`hub`]: the [`Hub`] events and audio go out on, and what the store writer receives.

pub mod event;
pub mod fold;
pub mod hub;
pub mod live;

pub use event::{AgentProfileRef, LineTranslation, TurnDetectionKind, AudioFrame, CallEvent, CallEventKind, CallMode, CallStatus, DispatchAudioStatus, FallbackRoute, HandOffAction, Speaker, Stage, Talking, Track};
pub use hub::{AppendError, Hub, RecordMsg, StoreGone};
pub use fold::{CallFold, DispatchAudioRecord, FoldLine, TakeoverRecord, UnitRecord};
pub use live::{LiveCall, dispatch_audio_url};
