//! The [`Hub`] every call's events and audio go out on, and what the store writer receives
//! ([`RecordMsg`]).

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::event::{AudioFrame, CallEvent, CallEventKind};

/// What the store writer receives, in the order it was published.
#[derive(Debug)]
pub enum RecordMsg {
    /// A call's event.
    Event(Arc<CallEvent>),
    /// A call's audio.
    Audio(AudioFrame),
    /// Reply once everything before this message is written: events and records flushed to
    /// disk, audio appended to the recording files (which are made durable at each call's end).
    Barrier(oneshot::Sender<()>),
    /// Append an event to a call that has ended (its task is gone, so the writer assigns the
    /// next sequence number); reply with the stored event, flushed.
    AppendAfterEnd {
        /// The call.
        call_sid: Arc<str>,
        /// What happened.
        kind: CallEventKind,
        /// Wall-clock time, ms since the Unix epoch.
        at_ms: u64,
        /// The stored event, or why not.
        reply: oneshot::Sender<Result<CallEvent, AppendError>>,
    },
}

/// Where every call's events and audio go: an unbounded queue to the store writer (nothing
/// acknowledged is lost, and a call never waits on the store) and bounded broadcasts to live
/// consoles and listen-in (a slow consumer lags and resynchronises; it never slows a call).
#[derive(Clone)]
pub struct Hub {
    live: broadcast::Sender<Arc<CallEvent>>,
    audio: broadcast::Sender<AudioFrame>,
    record: mpsc::UnboundedSender<RecordMsg>,
}

impl Hub {
    /// A hub whose broadcasts hold `live_capacity` events (and as many audio frames); returns
    /// the store writer's receiver.
    pub fn new(live_capacity: usize) -> (Hub, mpsc::UnboundedReceiver<RecordMsg>) {
        let (live, _) = broadcast::channel(live_capacity);
        let (audio, _) = broadcast::channel(live_capacity);
        let (record, rx) = mpsc::unbounded_channel();
        (Hub { live, audio, record }, rx)
    }

    /// Publishes one event. Never blocks.
    pub fn publish(&self, ev: CallEvent) {
        let ev = Arc::new(ev);
        if self.record.send(RecordMsg::Event(ev.clone())).is_err() {
            tracing::error!("store writer is gone: event not recorded");
        }
        let _ = self.live.send(ev); // no console connected is fine
    }

    /// Publishes one audio frame. Never blocks.
    pub fn publish_audio(&self, frame: AudioFrame) {
        if self.audio.receiver_count() > 0 {
            let _ = self.audio.send(frame.clone());
        }
        if self.record.send(RecordMsg::Audio(frame)).is_err() {
            tracing::error!("store writer is gone: audio not recorded");
        }
    }

    /// Waits until everything published so far is written (see [`RecordMsg::Barrier`]).
    pub async fn barrier(&self) -> Result<(), StoreGone> {
        let (tx, rx) = oneshot::channel();
        self.record.send(RecordMsg::Barrier(tx)).map_err(|_| StoreGone)?;
        rx.await.map_err(|_| StoreGone)
    }

    /// Appends an event to an ended call through the store writer; returns it once flushed,
    /// and publishes it to live consoles (a console still showing the ended call updates it;
    /// one that no longer shows it ignores an event of a call it does not know).
    /// Errors: [`AppendError`].
    pub async fn append_after_end(&self, call_sid: &str, kind: CallEventKind, at_ms: u64) -> Result<CallEvent, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.record.send(RecordMsg::AppendAfterEnd { call_sid: call_sid.into(), kind, at_ms, reply }).map_err(|_| AppendError::StoreGone)?;
        let ev = rx.await.map_err(|_| AppendError::StoreGone)??;
        let _ = self.live.send(Arc::new(ev.clone())); // no console connected is fine
        Ok(ev)
    }

    /// A live audio subscription (listen-in).
    pub fn subscribe_audio(&self) -> broadcast::Receiver<AudioFrame> {
        self.audio.subscribe()
    }

    /// A live subscription (for consoles and tests).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CallEvent>> {
        self.live.subscribe()
    }
}

/// The store writer has stopped (the server is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the store writer has stopped")]
pub struct StoreGone;


/// Why an event could not be appended to an ended call ([`Hub::append_after_end`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// No record of this CallSid.
    #[error("no call {0}")]
    NoSuchCall(String),
    /// The call is still live: its own task writes its events.
    #[error("call {0} is still live")]
    StillLive(String),
    /// The store could not be read (the message says why).
    #[error("store: {0}")]
    Store(String),
    /// The store writer has stopped (the server is shutting down).
    #[error("the store writer has stopped")]
    StoreGone,
}
