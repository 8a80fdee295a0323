//! The model session (sub-machine of [`super::CallMachine`]): connect, reconnect after a drop,
//! planned renewal before the 60-minute limit (PROTOCOLS.md §1), stall detection, and what an
//! `error` event means for the call.

use std::time::{Duration, Instant};

/// How long the model may stay silent while the caller speaks before the call goes to a human.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(8);
/// Caller speech (ms) that must accumulate without any model event before it counts as a stall.
pub const STALL_MIN_SPEECH_MS: u64 = 1500;
/// Level above which a caller frame counts as speech for stall detection, dBFS.
pub const STALL_SPEECH_DBFS: f32 = -40.0;
/// Realtime sessions last at most 60 minutes (PROTOCOLS.md §1).
pub const SESSION_LIMIT: Duration = Duration::from_secs(60 * 60);
/// A session is renewed at a quiet moment after this age, and regardless at `SESSION_LIMIT - 1 min`.
pub const SESSION_RENEW_AFTER: Duration = Duration::from_secs(55 * 60);
/// Reconnects after a dropped model socket within one call before it goes to a human.
pub const MAX_RECONNECTS: u32 = 2;
/// A failed renewal is tried again this much later; the current session goes on meanwhile.
pub const RENEW_RETRY: Duration = Duration::from_secs(60);

/// Timers of a call, configurable for tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timers {
    /// See [`DEFAULT_STALL_TIMEOUT`].
    pub stall_timeout: Duration,
    /// See [`SESSION_RENEW_AFTER`].
    pub renew_after: Duration,
    /// See [`SESSION_LIMIT`].
    pub session_limit: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { stall_timeout: DEFAULT_STALL_TIMEOUT, renew_after: SESSION_RENEW_AFTER, session_limit: SESSION_LIMIT }
    }
}

/// How a model `error` event is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Logged and shown; the call goes on (a bad request of ours, a race such as cancelling a
    /// finished response).
    Recoverable,
    /// The session cannot serve this call (quota, key, shape, model): hand the caller to a human.
    Fatal,
    /// The session is gone but a new one may work (`session_expired`): reconnect.
    Reconnect,
}

/// Classifies an `error` event by its `type` and `code` (OpenAI Realtime error shapes).
/// `server_error` is recoverable once; the session treats three in one call as fatal.
pub fn classify_error(error_type: &str, code: Option<&str>) -> ErrorClass {
    match code {
        Some("insufficient_quota" | "invalid_api_key" | "beta_api_shape_disabled" | "model_not_found" | "rate_limit_exceeded" | "account_deactivated") => ErrorClass::Fatal,
        Some("session_expired") => ErrorClass::Reconnect,
        _ => match error_type {
            "authentication_error" | "permission_error" | "insufficient_quota" => ErrorClass::Fatal,
            _ => ErrorClass::Recoverable,
        },
    }
}

/// What the call does next about its model session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the session goes on (or a reconnect is already under way).
    Continue,
    /// Open a new session (`renew`: a planned renewal, the old one kept until it is ready).
    Reconnect {
        /// A planned renewal.
        renew: bool,
    },
    /// The model cannot serve this call: hand the caller to a human.
    Fallback,
}

/// The model session of one call.
#[derive(Debug)]
pub struct ModelSession {
    timers: Timers,
    /// The first session is configured (`session.update` sent).
    ready: bool,
    reconnecting: bool,
    reconnects: u32,
    server_errors: u32,
    /// When the current session started.
    started: Instant,
    /// The last model event, and caller speech (ms) since then: stall detection.
    last_event: Instant,
    speech_since_event_ms: u64,
    /// The model reported `speech_started` and no `speech_stopped` yet: it is hearing the
    /// caller's turn and says nothing until the turn ends, however long the caller talks.
    listening: bool,
    /// The caller's last frame above [`STALL_SPEECH_DBFS`].
    last_speech: Instant,
    next_renew_attempt: Option<Instant>,
    /// Stream time at which the current session's input buffer started, ms (its
    /// `audio_start_ms` counts from there).
    input_origin_ms: u64,
}

impl ModelSession {
    /// No session yet (the call was created at `now`).
    pub fn new(timers: Timers, now: Instant) -> Self {
        ModelSession { timers, ready: false, reconnecting: false, reconnects: 0, server_errors: 0, started: now, last_event: now, speech_since_event_ms: 0, listening: false, last_speech: now, next_renew_attempt: None, input_origin_ms: 0 }
    }

    /// Sets the timers (tests shorten them).
    pub fn set_timers(&mut self, timers: Timers) {
        self.timers = timers;
    }

    /// The first session is open and configured.
    pub fn connected(&mut self, now: Instant) {
        self.started = now;
        self.last_event = now;
        self.ready = true;
    }

    /// Whether the first session is configured.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether a new session is being opened.
    pub fn is_reconnecting(&self) -> bool {
        self.reconnecting
    }

    /// Where the current session's input buffer starts on the stream clock, ms.
    pub fn input_origin_ms(&self) -> u64 {
        self.input_origin_ms
    }

    /// The model said something.
    pub fn heard(&mut self, now: Instant) {
        self.last_event = now;
        self.speech_since_event_ms = 0;
    }

    /// The caller spoke for `ms` (a frame above [`STALL_SPEECH_DBFS`]) at `now`.
    pub fn caller_spoke(&mut self, ms: u64, now: Instant) {
        self.speech_since_event_ms += ms;
        self.last_speech = now;
    }

    /// The model's VAD opened (`speech_started`) or closed (`speech_stopped`) the caller's turn.
    pub fn set_listening(&mut self, listening: bool) {
        self.listening = listening;
    }

    /// Where the stall clock counts from: the model's last event, or — while it hears an open
    /// turn, in which the real service says nothing until the turn ends — the caller's last
    /// speech if later (a caller who talks for 20 s without a pause is not a stalled model; a
    /// turn that stays open for the stall timeout after the caller fell quiet is).
    fn stall_clock(&self) -> Instant {
        if self.listening { self.last_event.max(self.last_speech) } else { self.last_event }
    }

    /// The model socket closed; `falling_back`: the call is already going to a human.
    pub fn on_closed(&mut self, falling_back: bool) -> Next {
        if self.reconnecting || falling_back {
            return Next::Continue;
        }
        if self.ready && self.reconnects < MAX_RECONNECTS {
            tracing::warn!("model socket dropped: reconnecting");
            self.reconnects += 1;
            self.reconnecting = true;
            Next::Reconnect { renew: false }
        } else {
            Next::Fallback
        }
    }

    /// A model `error` event of `error_type` / `code` ([`classify_error`]; a third
    /// `server_error` in one call is fatal; a session that expired is reopened within the
    /// reconnect budget).
    pub fn on_error(&mut self, error_type: &str, code: Option<&str>) -> Next {
        let mut class = classify_error(error_type, code);
        if error_type == "server_error" {
            self.server_errors += 1;
            if self.server_errors >= 3 {
                class = ErrorClass::Fatal;
            }
        }
        match class {
            ErrorClass::Recoverable => Next::Continue,
            ErrorClass::Fatal => Next::Fallback,
            ErrorClass::Reconnect if !self.reconnecting && self.reconnects < MAX_RECONNECTS => {
                self.reconnects += 1;
                self.reconnecting = true;
                Next::Reconnect { renew: false }
            }
            ErrorClass::Reconnect => Next::Fallback,
        }
    }

    /// A new session is open at `now`; its input buffer starts at stream time `stream_ms`.
    pub fn reconnected(&mut self, now: Instant, stream_ms: u64) {
        self.reconnecting = false;
        self.listening = false;
        self.input_origin_ms = stream_ms;
        self.next_renew_attempt = None;
        self.started = now;
        self.heard(now);
    }

    /// Opening a new session failed (after a drop: the call goes to a human).
    pub fn reconnect_failed(&mut self) {
        self.reconnecting = false;
    }

    /// A planned renewal failed: the current session goes on; tried again [`RENEW_RETRY`] later.
    pub fn renew_failed(&mut self, now: Instant) {
        self.reconnecting = false;
        self.next_renew_attempt = Some(now + RENEW_RETRY);
    }

    /// Whether the model has said nothing for the stall timeout while the caller spoke at least
    /// [`STALL_MIN_SPEECH_MS`].
    pub fn stalled(&self, now: Instant) -> bool {
        let silent_for = now.saturating_duration_since(self.stall_clock());
        let stalled = silent_for >= self.timers.stall_timeout && self.speech_since_event_ms >= STALL_MIN_SPEECH_MS;
        if stalled {
            tracing::error!(?silent_for, speech_ms = self.speech_since_event_ms, "model stalled while the caller speaks");
        }
        stalled
    }

    /// Whether to renew the session now: past [`Timers::renew_after`] at a `quiet` moment (no
    /// response, nothing playing, the caller silent), or a minute before the limit regardless.
    /// Marks the renewal as under way when it is due.
    pub fn renewal_due(&mut self, now: Instant, quiet: bool) -> bool {
        let age = now.saturating_duration_since(self.started);
        let hard = self.timers.session_limit.saturating_sub(Duration::from_secs(60));
        let may_try = self.next_renew_attempt.is_none_or(|t| now >= t);
        let due = may_try && ((age >= self.timers.renew_after && quiet) || age >= hard);
        if due {
            tracing::info!(?age, "renewing the model session before its limit");
            self.reconnecting = true;
        }
        due
    }

    /// When [`ModelSession::stalled`] can first be true.
    pub fn stall_deadline(&self) -> Instant {
        self.stall_clock() + self.timers.stall_timeout
    }

    /// When [`ModelSession::renewal_due`] can first be true.
    pub fn renew_deadline(&self) -> Instant {
        let renew = self.started + self.timers.renew_after;
        self.next_renew_attempt.map_or(renew, |t| t.max(renew))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        assert_eq!(classify_error("invalid_request_error", Some("unknown_parameter")), ErrorClass::Recoverable);
        assert_eq!(classify_error("insufficient_quota", Some("insufficient_quota")), ErrorClass::Fatal);
        assert_eq!(classify_error("invalid_request_error", Some("beta_api_shape_disabled")), ErrorClass::Fatal);
        assert_eq!(classify_error("invalid_request_error", Some("session_expired")), ErrorClass::Reconnect);
        assert_eq!(classify_error("authentication_error", None), ErrorClass::Fatal);
    }

    #[test]
    fn drops_reconnect_twice_then_fall_back_and_a_third_server_error_is_fatal() {
        let t0 = Instant::now();
        let mut s = ModelSession::new(Timers::default(), t0);
        assert_eq!(s.on_closed(false), Next::Fallback, "never connected: nothing to reconnect");
        s.connected(t0);
        assert_eq!(s.on_closed(false), Next::Reconnect { renew: false });
        assert_eq!(s.on_closed(false), Next::Continue, "already reconnecting");
        s.reconnected(t0, 4_000);
        assert_eq!(s.input_origin_ms(), 4_000);
        assert_eq!(s.on_error("invalid_request_error", Some("session_expired")), Next::Reconnect { renew: false });
        s.reconnected(t0, 5_000);
        assert_eq!(s.on_closed(false), Next::Fallback, "the reconnect budget is spent");
        assert_eq!(s.on_closed(true), Next::Continue, "already falling back");
        let mut s = ModelSession::new(Timers::default(), t0);
        s.connected(t0);
        assert_eq!(s.on_error("server_error", None), Next::Continue);
        assert_eq!(s.on_error("server_error", None), Next::Continue);
        assert_eq!(s.on_error("server_error", None), Next::Fallback);
    }

    #[test]
    fn a_stall_needs_caller_speech_and_model_silence() {
        let t0 = Instant::now();
        let mut s = ModelSession::new(Timers { stall_timeout: Duration::from_secs(5), ..Timers::default() }, t0);
        s.connected(t0);
        assert_eq!(s.stall_deadline(), t0 + Duration::from_secs(5));
        assert!(!s.stalled(t0 + Duration::from_secs(6)), "a silent caller is not a stall");
        s.caller_spoke(1_500, t0 + Duration::from_secs(1));
        assert!(!s.stalled(t0 + Duration::from_secs(4)));
        assert!(s.stalled(t0 + Duration::from_secs(5)));
        s.heard(t0 + Duration::from_secs(5));
        assert!(!s.stalled(t0 + Duration::from_secs(9)));
    }

    #[test]
    fn a_long_turn_the_model_hears_is_not_a_stall_until_the_caller_falls_quiet() {
        let t0 = Instant::now();
        let sec = Duration::from_secs;
        let mut s = ModelSession::new(Timers { stall_timeout: sec(5), ..Timers::default() }, t0);
        s.connected(t0);
        // speech_started at 1 s; the caller talks without a pause until 12 s.
        s.heard(t0 + sec(1));
        s.set_listening(true);
        for t in 1..=12 {
            s.caller_spoke(1_000, t0 + sec(t));
            assert!(!s.stalled(t0 + sec(t)), "{t} s into the turn");
        }
        assert_eq!(s.stall_deadline(), t0 + sec(17));
        assert!(!s.stalled(t0 + sec(16)));
        assert!(s.stalled(t0 + sec(17)), "the turn stayed open 5 s after the caller fell quiet");
        // Without an open turn, the same speech is a stall 5 s after the model's last event.
        s.heard(t0 + sec(20));
        s.set_listening(false);
        s.caller_spoke(2_000, t0 + sec(24));
        assert!(s.stalled(t0 + sec(25)));
    }

    #[test]
    fn renewal_waits_for_a_quiet_moment_until_a_minute_before_the_limit() {
        let t0 = Instant::now();
        let timers = Timers { renew_after: Duration::from_secs(100), session_limit: Duration::from_secs(200), ..Timers::default() };
        let mut s = ModelSession::new(timers, t0);
        s.connected(t0);
        assert_eq!(s.renew_deadline(), t0 + Duration::from_secs(100));
        assert!(!s.renewal_due(t0 + Duration::from_secs(99), true));
        assert!(!s.renewal_due(t0 + Duration::from_secs(120), false), "not quiet");
        assert!(s.renewal_due(t0 + Duration::from_secs(140), false), "a minute before the limit regardless");
        assert!(s.is_reconnecting());
        s.renew_failed(t0 + Duration::from_secs(140));
        assert_eq!(s.renew_deadline(), t0 + Duration::from_secs(200));
        assert!(!s.renewal_due(t0 + Duration::from_secs(150), true), "retried a minute later");
    }
}
