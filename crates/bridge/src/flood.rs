//! The media stream's flood limit: what one Twilio stream may send us, and what is dropped.
//!
//! What it protects against: a peer on the media-stream socket (a misbehaving or hostile client
//! that passed the signature check, or a broken proxy) sending far more than a real stream, so
//! that one call's task, its model session or the recording grows without bound. What a real
//! stream sends is fixed by PROTOCOLS.md §2: 20 ms `media` frames at the pace of real time —
//! delivered late and all at once after a network stall, never ahead of the caller's clock for
//! long — a `dtmf` per key pressed, and a `mark` echo for each mark *we* sent.
//!
//! So the limit measures the two things a flood is made of, and nothing the bridge caused:
//! - **caller audio**, in ms of μ-law (from the payload's length, not by counting messages):
//!   at most [`StreamLimits::audio_rate`] × real time on average, after a burst of
//!   [`StreamLimits::audio_burst_ms`] (the audio Twilio holds back during a stall and then
//!   delivers at once);
//! - **other messages** (`dtmf`, `start`/`stop`, unknown events, garbage, binary frames, a mark
//!   we never sent or one echoed twice): [`StreamLimits::messages_per_second`] with a burst of
//!   [`StreamLimits::message_burst`].
//!
//! Echoes of marks the bridge sent are not counted at all: their number is bounded by the marks
//! we sent (each name is accepted once), and after a `clear` Twilio echoes every pending mark at
//! once — hundreds when a reply was queued far ahead (issue 14: counting them dropped the
//! caller's first words after a barge-in).
//!
//! The buckets are governor's GCRA limiters (`governor`), generic over the clock so the tests
//! step time by hand.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use watchfloor_wire::mulaw;

/// What one media stream may send before input is dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamLimits {
    /// Caller audio accepted on average, as a multiple of real time (1.0 = 1 s of audio per
    /// second). Default 1.5: a real stream sends 1.0, and catches up after a stall at up to this
    /// rate while the burst below refills.
    pub audio_rate: f64,
    /// Caller audio accepted at once above the rate, ms. Default 10 000: Twilio delivers what it
    /// held during a network stall of up to 10 s in one burst, and none of it is dropped.
    pub audio_burst_ms: u32,
    /// Messages other than `media` and echoes of our marks accepted per second. Default 20
    /// (a caller pressing keys sends a few `dtmf` a second).
    pub messages_per_second: u32,
    /// Such messages accepted at once. Default 50.
    pub message_burst: u32,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits { audio_rate: 1.5, audio_burst_ms: 10_000, messages_per_second: 20, message_burst: 50 }
    }
}

impl StreamLimits {
    /// The same limits for a stream that runs `speed` × faster than real time (simulated callers
    /// in tests and training run at up to 8×): the rates scale, the bursts stay.
    pub fn scaled(self, speed: f64) -> StreamLimits {
        let speed = speed.max(1.0);
        StreamLimits { audio_rate: self.audio_rate * speed, messages_per_second: (self.messages_per_second as f64 * speed).ceil() as u32, ..self }
    }
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// What was dropped since the last report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// `media` messages dropped.
    pub media: u32,
    /// Caller audio in them, ms.
    pub audio_ms: u64,
    /// Other messages dropped.
    pub messages: u32,
}

/// The flood limit of one stream ([module docs](self)). Not shared: the call's task owns it.
pub struct FloodGuard<C: Clock + Clone = DefaultClock> {
    limits: StreamLimits,
    audio: Limiter<C>,
    messages: Limiter<C>,
    clock: C,
    dropped: Dropped,
    last_report: Option<C::Instant>,
}

/// Dropped input is reported at most this often (one log line and one timeline event).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

impl FloodGuard<DefaultClock> {
    /// A guard on the real-time clock.
    pub fn new(limits: StreamLimits) -> Self {
        Self::with_clock(limits, DefaultClock::default())
    }
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("max(1) is non-zero")
}

impl<C: Clock + Clone> FloodGuard<C> {
    /// A guard on `clock` (tests: governor's `FakeRelativeClock`).
    pub fn with_clock(limits: StreamLimits, clock: C) -> Self {
        // One cell per ms of audio, replenished at `audio_rate` ms per ms.
        let per_ms = Duration::from_nanos((1_000_000.0 / limits.audio_rate.max(0.001)).round().max(1.0) as u64);
        let audio_quota = Quota::with_period(per_ms).expect("period is at least 1 ns").allow_burst(non_zero(limits.audio_burst_ms));
        let message_quota = Quota::per_second(non_zero(limits.messages_per_second)).allow_burst(non_zero(limits.message_burst));
        FloodGuard {
            limits,
            audio: RateLimiter::direct_with_clock(audio_quota, clock.clone()),
            messages: RateLimiter::direct_with_clock(message_quota, clock.clone()),
            clock,
            dropped: Dropped::default(),
            last_report: None,
        }
    }

    /// Whether a `media` message whose payload is `payload_len` base64 characters is let
    /// through. Its audio (at least 1 ms) is counted against the audio rate; a message is
    /// accepted whole or dropped whole.
    pub fn admit_media(&mut self, payload_len: usize) -> bool {
        let ms = mulaw::bytes_to_ms(base64_decoded_len(payload_len)).max(1);
        let admitted = match u32::try_from(ms) {
            Ok(n) => matches!(self.audio.check_n(non_zero(n)), Ok(Ok(()))),
            Err(_) => false,
        };
        if !admitted {
            self.dropped.media += 1;
            self.dropped.audio_ms += ms;
        }
        admitted
    }

    /// Whether any other message (not `media`, not the echo of a mark we sent) is let through.
    pub fn admit_message(&mut self) -> bool {
        let admitted = self.messages.check().is_ok();
        if !admitted {
            self.dropped.messages += 1;
        }
        admitted
    }

    /// What was dropped since the last report, when there is something and the last report is
    /// at least [`REPORT_EVERY`] old; the count starts again.
    pub fn report_due(&mut self) -> Option<Dropped> {
        if self.dropped == Dropped::default() {
            return None;
        }
        let now = self.clock.now();
        if let Some(last) = self.last_report
            && Duration::from(now.duration_since(last)) < REPORT_EVERY
        {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.dropped))
    }

    /// The limits in force.
    pub fn limits(&self) -> StreamLimits {
        self.limits
    }
}

impl Dropped {
    /// One line for the log and the call's timeline.
    pub fn describe(&self, limits: &StreamLimits) -> String {
        format!(
            "stream flood: {} media messages ({} ms of caller audio) and {} other messages dropped, over the limit of {}x real time after a {} ms burst and {} other messages a second",
            self.media, self.audio_ms, self.messages, limits.audio_rate, limits.audio_burst_ms, limits.messages_per_second
        )
    }
}

/// Bytes a padded base64 text of `len` characters decodes to, at most (the padding is not
/// looked at: at most 2 bytes more, which is 0 ms of μ-law after rounding down).
fn base64_decoded_len(len: usize) -> usize {
    len / 4 * 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    const FRAME_B64: usize = 216; // 160 bytes of μ-law, 20 ms

    fn guard(limits: StreamLimits) -> (FloodGuard<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (FloodGuard::with_clock(limits, clock.clone()), clock)
    }

    #[test]
    fn a_real_time_stream_is_never_limited() {
        let (mut g, clock) = guard(StreamLimits::default());
        for _ in 0..50 * 600 {
            assert!(g.admit_media(FRAME_B64));
            clock.advance(Duration::from_millis(20));
        }
        assert_eq!(g.report_due(), None);
    }

    #[test]
    fn three_seconds_at_once_after_a_stall_are_all_let_through() {
        let (mut g, clock) = guard(StreamLimits::default());
        for round in 0..5 {
            // 3 s of silence on the wire, then the 150 frames Twilio held, then real time again.
            clock.advance(Duration::from_secs(3));
            for _ in 0..150 {
                assert!(g.admit_media(FRAME_B64), "round {round}");
            }
            for _ in 0..50 * 10 {
                assert!(g.admit_media(FRAME_B64), "round {round}");
                clock.advance(Duration::from_millis(20));
            }
        }
        assert_eq!(g.report_due(), None);
    }

    #[test]
    fn a_stream_far_faster_than_real_time_is_limited_to_the_rate() {
        let limits = StreamLimits::default();
        let (mut g, clock) = guard(limits);
        let mut admitted = 0u64;
        // 10× real time for 20 s: 500 frames a second.
        for _ in 0..500 * 20 {
            if g.admit_media(FRAME_B64) {
                admitted += 1;
            }
            clock.advance(Duration::from_millis(2));
        }
        let admitted_ms = admitted * 20;
        // The burst plus 1.5× real time over 20 s, within a frame.
        let allowed = limits.audio_burst_ms as u64 + (20_000.0 * limits.audio_rate) as u64;
        assert!(admitted_ms <= allowed + 20 && admitted_ms + 40 >= allowed, "{admitted_ms} ms admitted, {allowed} allowed");
        let d = g.report_due().expect("drops reported");
        assert_eq!(d.media as u64, 500 * 20 - admitted);
        assert_eq!(d.audio_ms, d.media as u64 * 20);
        assert!(d.describe(&limits).contains("over the limit"));
        // Reported at most once a second.
        assert!(!g.admit_media(FRAME_B64));
        assert_eq!(g.report_due(), None);
        clock.advance(REPORT_EVERY);
        assert_eq!(g.report_due(), Some(Dropped { media: 1, audio_ms: 20, messages: 0 }));
    }

    #[test]
    fn one_oversized_payload_counts_its_whole_audio() {
        let (mut g, _clock) = guard(StreamLimits::default());
        // 12 s of audio in one message: more than the burst, never admitted.
        assert!(!g.admit_media(12_000 * 8 * 4 / 3));
        // 9 s then 2 s: the second is over.
        assert!(g.admit_media(9_000 * 8 * 4 / 3));
        assert!(!g.admit_media(2_000 * 8 * 4 / 3));
        assert!(g.admit_media(FRAME_B64 * 40));
    }

    #[test]
    fn other_messages_have_their_own_budget() {
        let limits = StreamLimits::default();
        let (mut g, clock) = guard(limits);
        let admitted = (0..1000).filter(|_| g.admit_message()).count();
        assert_eq!(admitted, limits.message_burst as usize);
        // Media is not touched by a message flood.
        assert!(g.admit_media(FRAME_B64));
        clock.advance(Duration::from_secs(1));
        let admitted = (0..1000).filter(|_| g.admit_message()).count();
        assert_eq!(admitted, limits.messages_per_second as usize);
        assert_eq!(g.report_due().map(|d| d.messages), Some(2000 - 50 - 20));
    }

    #[test]
    fn scaled_limits_keep_the_bursts() {
        let s = StreamLimits::default().scaled(4.0);
        assert_eq!((s.audio_rate, s.audio_burst_ms, s.messages_per_second, s.message_burst), (6.0, 10_000, 80, 50));
        assert_eq!(StreamLimits::default().scaled(0.5), StreamLimits::default());
    }
}
