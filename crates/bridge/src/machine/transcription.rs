//! The supervisor's words (issue 17): while a supervisor holds a call's voice, what they say to
//! the caller is transcribed by a transcription-only Realtime session (PROTOCOLS.md §5:
//! `?intent=transcription`, a `session.update` of `type: "transcription"`, audio in with
//! `input_audio_buffer.append`, lines back as
//! `conversation.item.input_audio_transcription.delta|completed`; it never answers).
//!
//! A sans-IO sub-machine like the others: the call's machine feeds it the supervisor's frames as
//! they go to the caller, the session's events and the time; it asks for the socket to open and
//! close ([`Output::OpenTranscription`], [`Output::CloseTranscription`]), says what to send
//! ([`Output::ToTranscription`]) and hands back what it heard ([`Heard`]).
//!
//! - **Audio while the socket opens** is held (at most [`HELD_MAX_MS`]) and sent after the
//!   `session.update`, in order.
//! - **End of an utterance.** The supervisor's frames stop when they stop talking (push-to-talk
//!   released), and server VAD ends a turn only on silence it hears: [`TAIL_AFTER`] after the last
//!   frame, [`TAIL_SILENCE_MS`] of μ-law silence are appended (more than the VAD's
//!   `silence_duration_ms`), so the last words become a line.
//! - **Where a line starts** on the call's stream clock: the session's `audio_start_ms` is on its
//!   own input buffer's clock; each burst of frames records where it began on both clocks.
//! - **Hand-back** ([`SupervisorTranscription::finish`]): the tail is appended at once, then the
//!   machine waits until every utterance under way has its final line, at most [`LINES_WAIT`],
//!   before the agent answers again, so the agent is told everything the supervisor said.
//!   Then the socket closes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use watchfloor_wire::mulaw;
use watchfloor_wire::realtime::{ClientEvent, ServerEvent};

use super::Output;

/// Supervisor audio held while the transcription socket opens, ms (the oldest is dropped past it).
pub const HELD_MAX_MS: u64 = 10_000;
/// A pause in the supervisor's frames this long ends their burst (the jitter buffer sends one
/// every 20 ms while they talk), ms.
pub const TAIL_AFTER: Duration = Duration::from_millis(100);
/// Silence appended after a burst so the session's server VAD (`silence_duration_ms` 500) ends
/// the utterance, ms.
pub const TAIL_SILENCE_MS: u64 = 600;
/// How long a hand-back waits for the lines of utterances still being transcribed.
pub const LINES_WAIT: Duration = Duration::from_secs(3);

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No session (none yet, or closed after a hand-back).
    Closed,
    /// [`Output::OpenTranscription`] asked; audio is held.
    Connecting,
    /// Configured; audio goes straight in.
    Open,
    /// The session could not be opened or was lost: the supervisor's voice still reaches the
    /// caller, only the lines are missing until the next takeover.
    Failed,
}

/// What the session said that the call's record needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// Part of a line.
    Delta {
        /// The session's item id of the utterance.
        item_id: String,
        /// Text to append.
        delta: String,
    },
    /// A whole line.
    Final {
        /// The session's item id of the utterance.
        item_id: String,
        /// The words.
        text: String,
        /// Where the utterance starts on the call's stream clock, ms, when known.
        stream_ms: Option<u64>,
    },
    /// The session reported an error (or failed to transcribe an utterance).
    Error {
        /// The error's `code` (or `type`).
        code: String,
        /// What it said.
        message: String,
    },
}

/// The transcription session of one call's supervisor voice ([module docs](self)).
#[derive(Debug)]
pub struct SupervisorTranscription {
    state: State,
    /// Appends held while connecting (base64), with their audio, ms.
    held: std::collections::VecDeque<String>,
    held_ms: u64,
    /// Audio appended to the session's input buffer so far, ms (the session's clock).
    buffer_ms: u64,
    /// Where each burst began: (the session's clock, the call's stream clock), ms.
    anchors: Vec<(u64, u64)>,
    /// The last supervisor frame, while a burst is under way (the tail is owed).
    last_frame: Option<Instant>,
    /// Utterances the VAD started whose final line has not come, by item id: where they start
    /// on the call's stream clock.
    pending: HashMap<String, Option<u64>>,
    /// A hand-back is waiting for the last lines (since when).
    finishing: Option<Instant>,
}

impl Default for SupervisorTranscription {
    fn default() -> Self {
        SupervisorTranscription::new()
    }
}

impl SupervisorTranscription {
    /// No session.
    pub fn new() -> Self {
        SupervisorTranscription { state: State::Closed, held: Default::default(), held_ms: 0, buffer_ms: 0, anchors: Vec::new(), last_frame: None, pending: HashMap::new(), finishing: None }
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// A takeover began: opens a session unless one is still open (a supervisor who takes the
    /// voice again while the last lines of a hand-back are coming keeps it).
    pub fn start(&mut self, out: &mut std::collections::VecDeque<Output>) {
        self.finishing = None;
        if matches!(self.state, State::Closed | State::Failed) {
            *self = SupervisorTranscription::new();
            self.state = State::Connecting;
            out.push_back(Output::OpenTranscription);
        }
    }

    /// The socket opened: the `session.update`, then the audio held meanwhile.
    pub fn connected(&mut self, session_update: ClientEvent, out: &mut std::collections::VecDeque<Output>) {
        if self.state != State::Connecting {
            // Opened after the takeover ended (or failed): not needed any more.
            out.push_back(Output::CloseTranscription);
            return;
        }
        self.state = State::Open;
        out.push_back(Output::ToTranscription(session_update));
        self.held_ms = 0;
        for audio in self.held.drain(..) {
            out.push_back(Output::ToTranscription(ClientEvent::InputAudioBufferAppend { event_id: None, audio }));
        }
    }

    /// The session could not be opened, or its socket closed: no more lines this takeover.
    /// Returns whether that was unexpected (the call's record says so).
    pub fn failed(&mut self) -> bool {
        let unexpected = matches!(self.state, State::Connecting | State::Open);
        self.state = if unexpected { State::Failed } else { self.state };
        self.held.clear();
        self.pending.clear();
        unexpected
    }

    /// A frame of the supervisor's voice (160 bytes of μ-law) went to the caller at `stream_ms`.
    pub fn audio(&mut self, frame: &[u8], stream_ms: u64, now: Instant, out: &mut std::collections::VecDeque<Output>) {
        if self.last_frame.is_none() {
            self.anchors.push((self.buffer_ms, stream_ms));
        }
        self.last_frame = Some(now);
        self.append(mulaw::encode_base64(frame), mulaw::bytes_to_ms(frame.len()), out);
    }

    fn append(&mut self, audio: String, ms: u64, out: &mut std::collections::VecDeque<Output>) {
        match self.state {
            State::Open => {
                self.buffer_ms += ms;
                out.push_back(Output::ToTranscription(ClientEvent::InputAudioBufferAppend { event_id: None, audio }));
            }
            State::Connecting => {
                self.buffer_ms += ms;
                self.held.push_back(audio);
                self.held_ms += ms;
                while self.held_ms > HELD_MAX_MS {
                    let Some(old) = self.held.pop_front() else { break };
                    self.held_ms = self.held_ms.saturating_sub(mulaw::bytes_to_ms(old.len() / 4 * 3));
                }
            }
            State::Closed | State::Failed => {}
        }
    }

    /// Appends the silence that ends the supervisor's last utterance, if a burst is under way.
    fn tail(&mut self, out: &mut std::collections::VecDeque<Output>) {
        if self.last_frame.take().is_some() {
            let silence = vec![mulaw::SILENCE; mulaw::ms_to_bytes(TAIL_SILENCE_MS)];
            self.append(mulaw::encode_base64(&silence), TAIL_SILENCE_MS, out);
        }
    }

    /// The voice was handed back: the last utterance is ended now; the caller's agent waits
    /// until [`SupervisorTranscription::is_waiting`] is false.
    pub fn finish(&mut self, now: Instant, out: &mut std::collections::VecDeque<Output>) {
        self.tail(out);
        self.finishing = Some(now);
        self.close_if_done(out);
    }

    /// A hand-back is waiting for lines still being transcribed.
    pub fn is_waiting(&self) -> bool {
        self.finishing.is_some()
    }

    fn close_if_done(&mut self, out: &mut std::collections::VecDeque<Output>) {
        if self.finishing.is_none() {
            return;
        }
        let under_way = self.state == State::Open || self.state == State::Connecting;
        if !under_way || self.pending.is_empty() {
            self.finishing = None;
            if under_way {
                out.push_back(Output::CloseTranscription);
            }
            self.state = State::Closed;
            self.held.clear();
        }
    }

    /// The next time [`SupervisorTranscription::on_timeout`] has work: the tail after a burst,
    /// or the end of a hand-back's wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tail = self.last_frame.map(|t| t + TAIL_AFTER);
        let wait = self.finishing.map(|t| t + LINES_WAIT);
        match (tail, wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: the tail after a burst that ended; a hand-back that waited long enough
    /// gives up on the lines still missing.
    pub fn on_timeout(&mut self, now: Instant, out: &mut std::collections::VecDeque<Output>) {
        if self.last_frame.is_some_and(|t| now.saturating_duration_since(t) >= TAIL_AFTER) {
            self.tail(out);
        }
        if self.finishing.is_some_and(|t| now.saturating_duration_since(t) >= LINES_WAIT) {
            if !self.pending.is_empty() {
                tracing::warn!(lines = self.pending.len(), "supervisor lines still being transcribed at hand-back; the agent goes on without them");
            }
            self.pending.clear();
            self.close_if_done(out);
        }
    }

    /// The call is over: the socket closes.
    pub fn close(&mut self, out: &mut std::collections::VecDeque<Output>) {
        if matches!(self.state, State::Open | State::Connecting) {
            out.push_back(Output::CloseTranscription);
        }
        *self = SupervisorTranscription::new();
    }

    fn stream_ms_of(&self, audio_start_ms: u64) -> Option<u64> {
        let (buffer, stream) = self.anchors.iter().rev().find(|(b, _)| *b <= audio_start_ms).or(self.anchors.first())?;
        Some((stream + audio_start_ms).saturating_sub(*buffer))
    }

    /// An event of the session: what the record needs, if anything.
    pub fn on_event(&mut self, ev: ServerEvent, out: &mut std::collections::VecDeque<Output>) -> Option<Heard> {
        let heard = match ev {
            ServerEvent::SpeechStarted { audio_start_ms, item_id, .. } => {
                let at = self.stream_ms_of(audio_start_ms);
                self.pending.insert(item_id, at);
                None
            }
            ServerEvent::InputTranscriptionDelta { item_id, delta, .. } => Some(Heard::Delta { item_id, delta }),
            ServerEvent::InputTranscriptionCompleted { item_id, transcript, .. } => {
                let stream_ms = self.pending.remove(&item_id).flatten();
                let text = transcript.trim().to_string();
                (!text.is_empty()).then_some(Heard::Final { item_id, text, stream_ms })
            }
            ServerEvent::InputTranscriptionFailed { item_id, error, .. } => {
                self.pending.remove(&item_id);
                let field = |k: &str| error.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
                Some(Heard::Error {
                    code: field("code").or_else(|| field("type")).unwrap_or_else(|| "transcription_failed".into()),
                    message: field("message").unwrap_or_else(|| format!("the transcription of {item_id} failed")),
                })
            }
            ServerEvent::Error { error, .. } => Some(Heard::Error { code: error.code.clone().unwrap_or_else(|| error.kind.clone()), message: error.message }),
            _ => None,
        };
        self.close_if_done(out);
        heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use watchfloor_wire::realtime::ErrorDetail;

    fn sent(out: &mut VecDeque<Output>) -> Vec<String> {
        out.drain(..)
            .map(|o| match o {
                Output::OpenTranscription => "open".to_string(),
                Output::CloseTranscription => "close".to_string(),
                Output::ToTranscription(ev) => ev.type_name().to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn update() -> ClientEvent {
        crate::profile::AgentProfile::default().transcription_session_update()
    }

    #[test]
    fn audio_held_while_the_socket_opens_follows_the_session_update() {
        let (mut t, mut out, now) = (SupervisorTranscription::new(), VecDeque::new(), Instant::now());
        t.start(&mut out);
        t.audio(&[0x10; 160], 5_000, now, &mut out);
        t.audio(&[0x10; 160], 5_020, now, &mut out);
        assert_eq!(sent(&mut out), ["open"]);
        t.connected(update(), &mut out);
        assert_eq!(sent(&mut out), ["session.update", "input_audio_buffer.append", "input_audio_buffer.append"]);
        t.audio(&[0x10; 160], 5_040, now, &mut out);
        assert_eq!(sent(&mut out), ["input_audio_buffer.append"]);
    }

    #[test]
    fn a_pause_in_the_frames_appends_the_silence_that_ends_the_utterance() {
        let (mut t, mut out, now) = (SupervisorTranscription::new(), VecDeque::new(), Instant::now());
        t.start(&mut out);
        t.connected(update(), &mut out);
        out.clear();
        t.audio(&[0x10; 160], 0, now, &mut out);
        out.clear();
        assert_eq!(t.next_deadline(), Some(now + TAIL_AFTER));
        t.on_timeout(now + TAIL_AFTER, &mut out);
        let tail: Vec<Output> = out.drain(..).collect();
        assert_eq!(tail.len(), 1);
        let Output::ToTranscription(ClientEvent::InputAudioBufferAppend { audio, .. }) = &tail[0] else { panic!("{tail:?}") };
        let mut bytes = Vec::new();
        mulaw::decode_base64_into(audio, &mut bytes).unwrap();
        assert_eq!(bytes.len(), mulaw::ms_to_bytes(TAIL_SILENCE_MS));
        assert_eq!(t.next_deadline(), None, "one tail per burst");
    }

    #[test]
    fn a_line_starts_where_its_burst_played_on_the_call_clock() {
        let (mut t, mut out, now) = (SupervisorTranscription::new(), VecDeque::new(), Instant::now());
        t.start(&mut out);
        t.connected(update(), &mut out);
        // First burst: 1 s at stream 10 s; then the tail (600 ms); second burst at stream 30 s.
        for i in 0..50 {
            t.audio(&[0x10; 160], 10_000 + i * 20, now, &mut out);
        }
        t.on_timeout(now + TAIL_AFTER, &mut out);
        for i in 0..50 {
            t.audio(&[0x10; 160], 30_000 + i * 20, now + Duration::from_secs(20), &mut out);
        }
        t.on_event(ServerEvent::SpeechStarted { event_id: "e".into(), audio_start_ms: 1_700, item_id: "i2".into() }, &mut out);
        let heard = t.on_event(ServerEvent::InputTranscriptionCompleted { event_id: "e".into(), item_id: "i2".into(), content_index: 0, transcript: " Stay on the line. ".into() }, &mut out);
        assert_eq!(heard, Some(Heard::Final { item_id: "i2".into(), text: "Stay on the line.".into(), stream_ms: Some(30_100) }));
    }

    #[test]
    fn a_hand_back_waits_for_the_lines_under_way_then_closes() {
        let (mut t, mut out, now) = (SupervisorTranscription::new(), VecDeque::new(), Instant::now());
        t.start(&mut out);
        t.connected(update(), &mut out);
        t.audio(&[0x10; 160], 0, now, &mut out);
        t.on_event(ServerEvent::SpeechStarted { event_id: "e".into(), audio_start_ms: 0, item_id: "i1".into() }, &mut out);
        out.clear();
        t.finish(now, &mut out);
        assert_eq!(sent(&mut out), ["input_audio_buffer.append"], "the tail, and no close yet");
        assert!(t.is_waiting());
        t.on_event(ServerEvent::InputTranscriptionCompleted { event_id: "e".into(), item_id: "i1".into(), content_index: 0, transcript: "Help is on the way.".into() }, &mut out);
        assert!(!t.is_waiting());
        assert_eq!(sent(&mut out), ["close"]);
        assert_eq!(t.state(), State::Closed);
    }

    #[test]
    fn a_hand_back_gives_up_on_missing_lines_after_the_wait() {
        let (mut t, mut out, now) = (SupervisorTranscription::new(), VecDeque::new(), Instant::now());
        t.start(&mut out);
        t.connected(update(), &mut out);
        t.on_event(ServerEvent::SpeechStarted { event_id: "e".into(), audio_start_ms: 0, item_id: "i1".into() }, &mut out);
        t.finish(now, &mut out);
        out.clear();
        assert_eq!(t.next_deadline(), Some(now + LINES_WAIT));
        t.on_timeout(now + LINES_WAIT, &mut out);
        assert!(!t.is_waiting());
        assert_eq!(sent(&mut out), ["close"]);
    }

    #[test]
    fn a_lost_session_stops_the_wait_and_reports_once() {
        let (mut t, mut out, now) = (SupervisorTranscription::new(), VecDeque::new(), Instant::now());
        t.start(&mut out);
        assert!(t.failed(), "unexpected while connecting");
        assert!(!t.failed());
        t.audio(&[0x10; 160], 0, now, &mut out);
        out.clear();
        assert_eq!(t.state(), State::Failed);
        t.finish(now, &mut out);
        assert!(!t.is_waiting());
        assert!(out.is_empty(), "{out:?}");
        // The next takeover tries again.
        t.start(&mut out);
        assert_eq!(sent(&mut out), ["open"]);
    }

    #[test]
    fn errors_and_failed_utterances_are_reported() {
        let (mut t, mut out) = (SupervisorTranscription::new(), VecDeque::new());
        t.start(&mut out);
        t.connected(update(), &mut out);
        let e = ErrorDetail { kind: "invalid_request_error".into(), code: Some("invalid_value".into()), message: "bad".into(), param: None, event_id: None };
        assert!(matches!(t.on_event(ServerEvent::Error { event_id: "e".into(), error: e.clone() }, &mut out), Some(Heard::Error { code, .. }) if code == "invalid_value"));
        t.on_event(ServerEvent::SpeechStarted { event_id: "e".into(), audio_start_ms: 0, item_id: "i1".into() }, &mut out);
        assert!(matches!(t.on_event(ServerEvent::InputTranscriptionFailed { event_id: "e".into(), item_id: "i1".into(), content_index: 0, error: serde_json::json!({"type":"transcription_error","message":"no"}) }, &mut out), Some(Heard::Error { .. })));
        assert!(t.pending.is_empty());
    }
}
