//! The caller's stream clock (sub-machine of [`super::CallMachine`]): places each Twilio
//! `media` frame on the stream's own clock from its `timestamp` (PROTOCOLS.md §2), so a gap is
//! padded with silence, a repeated frame is skipped, and a broken or hostile clock is re-based
//! instead of believed (issue 15).

use std::time::{Duration, Instant};

use watchfloor_wire::mulaw::{self, FRAME_MS};

/// Longest gap in inbound timestamps that is padded with silence, ms. A larger jump is logged and
/// padded only up to this much (a 10-minute jump is a broken clock, not silence): the stream's
/// clock is re-based so the frames after the jump follow on.
pub const MAX_PADDED_GAP_MS: u64 = 10_000;

/// A `timestamp` this far or more behind the stream's clock is a clock that went back (re-based:
/// the frame follows on), not a repeated frame (skipped).
pub const MAX_CLOCK_STEP_BACK_MS: u64 = 1_000;

/// How far the stream's clock may run ahead of the wall clock since the stream started, as a
/// multiple of real time plus a burst, before its timestamps are re-based. A real stream's clock
/// never runs ahead of real time; a hostile one could move it hours ahead with one frame
/// (issue 15: a `timestamp` of 36 000 000 made a 1.15 GB recording) or 10 s with every frame.
/// The call's task sets it from the stream's flood limit ([`crate::flood::StreamLimits`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockLimit {
    /// Stream ms per wall ms.
    pub rate: f64,
    /// Stream ms allowed ahead of `rate` × the wall time.
    pub burst_ms: u64,
}

impl Default for ClockLimit {
    fn default() -> Self {
        let l = crate::flood::StreamLimits::default();
        ClockLimit { rate: l.audio_rate, burst_ms: l.audio_burst_ms as u64 }
    }
}

/// Where a frame goes on the stream's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The frame plays at `stream_ms`, after `gap_ms` of silence to pad (at most
    /// [`MAX_PADDED_GAP_MS`]).
    Frame {
        /// Where it starts, ms.
        stream_ms: u64,
        /// Silence before it, ms.
        gap_ms: u64,
    },
    /// The frame repeats audio already placed: skipped (the reason says where).
    Repeat(String),
}

/// The caller's stream clock.
#[derive(Debug)]
pub struct CallerClock {
    /// The end of the audio placed so far, ms (none before the first frame).
    next_ms: Option<u64>,
    /// Subtracted from Twilio's `timestamp`s: what jumps past the gap and clock limits added (or
    /// a clock that went back by more than [`MAX_CLOCK_STEP_BACK_MS`] took away).
    offset_ms: i64,
    /// When the stream started (its clock's zero on the wall).
    started: Option<Instant>,
    limit: ClockLimit,
    /// The last time a re-based timestamp was reported (at most one report a second).
    rebase_reported: Option<Instant>,
}

impl CallerClock {
    /// A clock held to `limit`.
    pub fn new(limit: ClockLimit) -> Self {
        CallerClock { next_ms: None, offset_ms: 0, started: None, limit, rebase_reported: None }
    }

    /// Sets the limit ([`ClockLimit`]).
    pub fn set_limit(&mut self, limit: ClockLimit) {
        self.limit = limit;
    }

    /// The stream started (`start`) at `now`.
    pub fn start(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// The stream clock now, ms: the end of the caller audio placed so far (Twilio sends a frame
    /// every 20 ms, so this tracks the caller's clock at any speed).
    pub fn now_ms(&self) -> u64 {
        self.next_ms.unwrap_or(0)
    }

    /// Places a frame of `len` μ-law bytes whose `timestamp` is `raw_ts`, received at `now`.
    /// The second value is a report of a re-based clock, for the timeline (at most one a second).
    pub fn place(&mut self, raw_ts: u64, len: usize, now: Instant) -> (Placement, Option<String>) {
        let (ts, report) = self.rebase(raw_ts, now);
        let gap_ms = match self.next_ms {
            Some(expected) if ts + FRAME_MS / 2 < expected => {
                return (Placement::Repeat(format!("media at {ts} ms repeats audio before {expected} ms")), report);
            }
            Some(expected) => ts.saturating_sub(expected),
            // Audio before the first frame is silence too.
            None => ts,
        };
        self.next_ms = Some(ts + mulaw::bytes_to_ms(len));
        (Placement::Frame { stream_ms: ts, gap_ms: gap_ms.min(MAX_PADDED_GAP_MS) }, report)
    }

    /// Twilio's `timestamp` on the stream's own clock: a jump past [`MAX_PADDED_GAP_MS`], or
    /// ahead of the wall clock by more than the [`ClockLimit`], moves the clock only that far and
    /// re-bases the frames after it.
    fn rebase(&mut self, raw_ts: u64, now: Instant) -> (u64, Option<String>) {
        let ts = (i128::from(raw_ts) - i128::from(self.offset_ms)).clamp(0, i128::from(u64::MAX)) as u64;
        let expected = self.next_ms.unwrap_or(0);
        let wall_ms = self.started.map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64);
        let by_wall = (wall_ms as f64 * self.limit.rate) as u64 + self.limit.burst_ms;
        let max_ts = (expected + MAX_PADDED_GAP_MS).min(by_wall.max(expected));
        let to = if ts > max_ts {
            max_ts
        } else if ts + MAX_CLOCK_STEP_BACK_MS <= expected {
            expected
        } else {
            return (ts, None);
        };
        self.offset_ms = (i128::from(raw_ts) - i128::from(to)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let report = self.rebase_reported.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1)).then(|| {
            self.rebase_reported = Some(now);
            format!("media timestamp {raw_ts} ms jumps from the stream's clock ({expected} ms, {wall_ms} ms after start): taken as {to} ms")
        });
        (to, report)
    }
}

/// `input_audio_buffer.append` payloads (base64 μ-law silence) for `gap_ms` of silence, at most
/// a second each so every message stays small. Returns the bytes of silence and the payloads.
pub fn silence(gap_ms: u64) -> (usize, Vec<String>) {
    let bytes = mulaw::ms_to_bytes(gap_ms.min(MAX_PADDED_GAP_MS));
    let mut payloads = Vec::new();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(8000);
        payloads.push(mulaw::encode_base64(&vec![mulaw::SILENCE; n]));
        left -= n;
    }
    (bytes, payloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;

    fn clock(now: Instant) -> CallerClock {
        let mut c = CallerClock::new(ClockLimit { rate: 1.5, burst_ms: 10_000 });
        c.start(now);
        c
    }

    #[test]
    fn frames_follow_on_gaps_are_padded_and_repeats_skipped() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        assert_eq!(c.place(40, FRAME, t0).0, Placement::Frame { stream_ms: 40, gap_ms: 40 }, "audio before the first frame is silence");
        assert_eq!(c.place(60, FRAME, t0).0, Placement::Frame { stream_ms: 60, gap_ms: 0 });
        assert_eq!(c.now_ms(), 80);
        assert!(matches!(c.place(40, FRAME, t0).0, Placement::Repeat(_)));
        assert_eq!(c.place(140, FRAME, t0 + Duration::from_millis(140)).0, Placement::Frame { stream_ms: 140, gap_ms: 60 });
        assert_eq!(c.now_ms(), 160);
    }

    #[test]
    fn a_clock_that_jumps_ahead_of_the_wall_or_back_is_rebased_and_reported_once_a_second() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        c.place(0, FRAME, t0);
        // Ten hours ahead, 20 ms after the start: moved on by the longest gap padded, reported.
        let (p, report) = c.place(36_000_000, FRAME, t0 + Duration::from_millis(20));
        assert_eq!(p, Placement::Frame { stream_ms: 10_020, gap_ms: 10_000 });
        assert!(report.unwrap().contains("taken as 10020 ms"));
        // The frames after it follow on, on the re-based clock.
        assert_eq!(c.place(36_000_020, FRAME, t0 + Duration::from_millis(40)), (Placement::Frame { stream_ms: 10_040, gap_ms: 0 }, None));
        // Further ahead than 1.5 × the wall clock plus the burst: held to it.
        let (p, _) = c.place(36_009_000, FRAME, t0 + Duration::from_millis(60));
        assert_eq!(p, Placement::Frame { stream_ms: 10_090, gap_ms: 30 });
        // A clock that goes back a minute is re-based to follow on; within the second, unreported.
        let (p, report) = c.place(35_940_000, FRAME, t0 + Duration::from_millis(80));
        assert_eq!(p, Placement::Frame { stream_ms: 10_110, gap_ms: 0 });
        assert!(report.is_none());
    }

    #[test]
    fn silence_comes_in_appends_of_at_most_a_second() {
        let (bytes, payloads) = silence(2_500);
        assert_eq!(bytes, 20_000);
        assert_eq!(payloads.len(), 3);
        assert_eq!(silence(0), (0, vec![]));
        assert_eq!(silence(60_000).0, mulaw::ms_to_bytes(MAX_PADDED_GAP_MS));
    }
}
