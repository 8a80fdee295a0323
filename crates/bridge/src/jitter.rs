//! The supervisor's voice on its way into a call (issue 17): a small jitter buffer between the
//! console's 20 ms frames, which arrive when the network delivers them, and the call's outbound
//! stream, which the server paces at one frame every 20 ms. Sans-IO: time is passed in.
//!
//! Playout starts once [`TARGET_MS`] of audio is buffered (or the first frame has waited that
//! long); from then on each tick plays the frame due, or μ-law silence when it is missing or late
//! — never a stall of the call. When the buffer runs dry the playout stops and the next frame
//! buffers again. Frames are placed by their position on the supervisor's own clock (ms, +20 per
//! frame), so reordered frames play in order and a frame that comes after its time is dropped.
//!
//! The delay adapts down (as WebRTC's NetEq "accelerates"): a takeover starts with whatever
//! delay its first frames met, and a console whose first frames came late together (its feed
//! busy writing a snapshot) would keep that extra delay for the whole takeover. When, over
//! [`SHRINK_WINDOW`] frames played (300 ms), the buffer never held less than
//! [`SHRINK_ABOVE_MS`] after a frame played, one frame is skipped: a quiet one (under
//! [`QUIET_DBFS`]) if one comes within as many frames again, else the next. A skip takes 20 ms off
//! the delay and leaves at least 40 ms of margin; it never empties the buffer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use watchfloor_wire::mulaw::{self, FRAME_BYTES, FRAME_MS};

/// Audio buffered before playout starts, ms (the target: at most 60 ms).
pub const TARGET_MS: u64 = 60;
/// Audio held at most, ms: frames past this are dropped, oldest first (a console that sends
/// faster than real time cannot grow the call's memory or its delay).
pub const MAX_HELD_MS: u64 = 1_000;
/// Frames played (300 ms) over which the buffer must never have run below
/// [`SHRINK_ABOVE_MS`] for a frame to be skipped.
pub const SHRINK_WINDOW: u32 = 15;
/// When the buffer held at least this much after every frame played for [`SHRINK_WINDOW`]
/// frames, a frame is skipped, ms. A console on pace leaves 40 ms held after each frame plays
/// (playout starts on the third frame); 60 ms throughout means a frame or more of extra delay,
/// and a skip still leaves 40 ms of margin. (At 40 ms the buffer shrank takeovers to 20 ms of
/// margin under 200 calls: p50 21 ms, 25 frames skipped or late.)
pub const SHRINK_ABOVE_MS: u64 = TARGET_MS;
/// A frame quieter than this (RMS, dBFS) is skipped first when the delay shrinks.
pub const QUIET_DBFS: f32 = -45.0;

/// One frame of the supervisor's voice: 160 bytes of μ-law 8 kHz (20 ms) at `position_ms` on the
/// supervisor's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceFrame {
    /// Position on the supervisor's own clock, ms (+20 per frame).
    pub position_ms: u64,
    /// μ-law 8 kHz, [`FRAME_BYTES`] bytes.
    pub audio: Bytes,
}

/// What a console sends a call's task about its voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceMsg {
    /// A frame of the supervisor's voice.
    Frame(VoiceFrame),
    /// The console is alive (the supervisor only listens).
    Keepalive,
    /// The console of this user is gone (its live feed closed): the voice is lost if they still
    /// hold it.
    Lost {
        /// The console's user.
        user: String,
    },
}

/// Counters, for tests and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames played as sent.
    pub played: u64,
    /// Silence frames played in place of a missing one.
    pub concealed: u64,
    /// Frames dropped: after their time, or past [`MAX_HELD_MS`].
    pub dropped: u64,
    /// Frames skipped to bring the delay back down (see the module docs).
    pub skipped: u64,
}

/// The jitter buffer of one call's supervisor voice.
#[derive(Debug, Default)]
pub struct Jitter {
    frames: BTreeMap<u64, Bytes>,
    /// The position the next tick plays (none: not playing).
    next_ms: Option<u64>,
    /// When the first frame of the current burst arrived (buffering).
    buffering_since: Option<Instant>,
    /// While playing: when playout started, and the position it started at. Frame `p` is due at
    /// `start + (p − first)`, so a tick that comes late plays every frame due (it catches up)
    /// instead of pushing all later frames back: the delay stays at the target however often
    /// the call's task is late.
    clock: Option<(Instant, u64)>,
    /// The least audio held after a frame played in the current window, ms, and the frames
    /// played in it.
    window: (u64, u32),
    /// A skip is due: frames played since it became due.
    shrink: Option<u32>,
    stats: JitterStats,
}

impl Jitter {
    /// An empty buffer.
    pub fn new() -> Self {
        Jitter::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Whether playout is on (a frame plays every 20 ms).
    pub fn is_playing(&self) -> bool {
        self.next_ms.is_some()
    }

    /// Whether frames are buffered or playing (the call's task ticks every 20 ms while so).
    pub fn is_active(&self) -> bool {
        !self.frames.is_empty() || self.next_ms.is_some()
    }

    /// After a frame played (`next` the one after it): keeps the window's low-water mark and,
    /// when a skip is due, skips a frame — a quiet one if one comes within [`SHRINK_WINDOW`]
    /// frames, else the next — as long as another is buffered after it.
    fn adapt(&mut self, next: u64) {
        let held = self.frames.range(next..).count() as u64 * FRAME_MS;
        let (low, n) = self.window;
        let low = if n == 0 { held } else { low.min(held) };
        self.window = if n + 1 >= SHRINK_WINDOW {
            if low >= SHRINK_ABOVE_MS && self.shrink.is_none() {
                self.shrink = Some(0);
            }
            (0, 0)
        } else {
            (low, n + 1)
        };
        let Some(waited) = self.shrink else { return };
        let quiet = self.frames.get(&next).is_some_and(|f| mulaw::rms_dbfs(f) < QUIET_DBFS);
        if (quiet || waited >= SHRINK_WINDOW) && self.frames.contains_key(&next) && self.frames.range(next + FRAME_MS..).next().is_some() {
            self.frames.remove(&next);
            self.next_ms = Some(next + FRAME_MS);
            if let Some((_, first)) = self.clock.as_mut() {
                // Every later frame is due 20 ms sooner.
                *first += FRAME_MS;
            }
            self.stats.skipped += 1;
            self.shrink = None;
            self.window = (0, 0);
        } else {
            self.shrink = Some(waited + 1);
        }
    }

    /// A frame arrived at `now`. Frames of the wrong size are refused by the caller of this
    /// (the live feed); a frame after its time is dropped.
    pub fn push(&mut self, frame: VoiceFrame, now: Instant) {
        if self.next_ms.is_some_and(|next| frame.position_ms < next) {
            self.stats.dropped += 1;
            return;
        }
        if self.next_ms.is_none() && self.buffering_since.is_none() {
            self.buffering_since = Some(now);
        }
        self.frames.insert(frame.position_ms, frame.audio);
        while self.frames.len() as u64 * FRAME_MS > MAX_HELD_MS {
            self.frames.pop_first();
            self.stats.dropped += 1;
        }
    }

    /// Everything buffered, in order, at once (a hand-back: what the supervisor already said is
    /// queued at Twilio ahead of the agent's answer); the buffer is empty afterwards.
    pub fn drain(&mut self) -> Vec<Bytes> {
        self.next_ms = None;
        self.clock = None;
        self.buffering_since = None;
        let frames = std::mem::take(&mut self.frames);
        self.stats.played += frames.len() as u64;
        frames.into_values().collect()
    }

    /// A frame due at `now`, if playout is on (silence for a missing one); none while
    /// buffering, when the next frame is not due yet, or when the buffer ran dry (playout
    /// stops). The call's task calls it every 20 ms until it says none (after a late tick,
    /// more than one frame is due).
    pub fn pop(&mut self, now: Instant) -> Option<Bytes> {
        let next = match self.next_ms {
            Some(n) => n,
            None => {
                let (&first, _) = self.frames.first_key_value()?;
                let held = self.frames.len() as u64 * FRAME_MS;
                let waited = self.buffering_since.is_some_and(|t| now.saturating_duration_since(t) >= Duration::from_millis(TARGET_MS));
                if held < TARGET_MS && !waited {
                    return None;
                }
                self.buffering_since = None;
                self.clock = Some((now, first));
                first
            }
        };
        if let Some((start, first)) = self.clock
            && start + Duration::from_millis(next.saturating_sub(first)) > now
        {
            // Not due yet; the next frame is kept in place.
            self.next_ms = Some(next);
            return None;
        }
        if let Some(audio) = self.frames.remove(&next) {
            self.next_ms = Some(next + FRAME_MS);
            self.stats.played += 1;
            self.adapt(next + FRAME_MS);
            return Some(audio);
        }
        if self.frames.is_empty() {
            // Ran dry: the supervisor stopped sending (or the network stalled for longer than
            // the buffer). The next frame buffers again.
            self.next_ms = None;
            self.clock = None;
            return None;
        }
        self.next_ms = Some(next + FRAME_MS);
        self.stats.concealed += 1;
        Some(Bytes::from_static(&[mulaw::SILENCE; FRAME_BYTES]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pos: u64) -> VoiceFrame {
        VoiceFrame { position_ms: pos, audio: Bytes::from(vec![(pos / 20) as u8; FRAME_BYTES]) }
    }

    fn id(b: &Bytes) -> u8 {
        b[0]
    }

    #[test]
    fn playout_waits_for_the_target_then_plays_in_order_and_conceals_a_gap() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut j = Jitter::new();
        assert!(!j.is_active());
        j.push(frame(1000), ms(0));
        j.push(frame(1040), ms(5)); // reordered
        assert_eq!(j.pop(ms(20)), None, "40 ms held: still buffering");
        j.push(frame(1020), ms(25));
        // 60 ms held: playout starts at the earliest frame, in order.
        assert_eq!(j.pop(ms(40)).map(|b| id(&b)), Some(50));
        assert_eq!(j.pop(ms(60)).map(|b| id(&b)), Some(51));
        j.push(frame(1080), ms(70)); // 1060 never comes
        assert_eq!(j.pop(ms(80)).map(|b| id(&b)), Some(52));
        assert_eq!(j.pop(ms(100)).map(|b| b[0]), Some(mulaw::SILENCE), "the missing frame is silence");
        assert_eq!(j.pop(ms(120)).map(|b| id(&b)), Some(54));
        j.push(frame(1060), ms(125));
        assert_eq!(j.stats(), JitterStats { played: 4, concealed: 1, dropped: 1, skipped: 0 }, "a frame after its time is dropped");
        // Ran dry: playout stops; the next burst buffers again.
        assert_eq!(j.pop(ms(140)), None);
        assert!(!j.is_active());
        j.push(frame(5000), ms(1000));
        assert_eq!(j.pop(ms(1020)), None);
        assert_eq!(j.pop(ms(1060)).map(|b| id(&b)), Some(250), "one frame that waited the target plays");
    }

    #[test]
    fn a_late_tick_plays_every_frame_due_so_the_delay_does_not_grow() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut j = Jitter::new();
        for i in 0..3 {
            j.push(frame(i * 20), ms(i * 20));
        }
        assert_eq!(j.pop(ms(40)).map(|b| id(&b)), Some(0), "60 ms held: playout starts");
        assert_eq!(j.pop(ms(40)), None, "the next frame is not due before 60 ms");
        for i in 3..10 {
            j.push(frame(i * 20), ms(i * 20));
        }
        // The task's tick comes 35 ms late: the frames due at 60 and 80 ms play at once.
        let caught_up: Vec<u8> = std::iter::from_fn(|| j.pop(ms(95))).map(|b| id(&b)).collect();
        assert_eq!(caught_up, [1, 2]);
        assert_eq!(j.pop(ms(100)).map(|b| id(&b)), Some(3), "back on time");
        assert_eq!(j.stats().concealed, 0);
    }

    #[test]
    fn a_delay_that_stays_above_the_target_for_a_second_is_brought_down_by_a_skipped_frame() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut j = Jitter::new();
        // The first five frames come together (the console's feed was busy): playout starts
        // with 100 ms held, and every later frame arrives 100 ms before it is due.
        for i in 0..5 {
            j.push(frame(i * 20), ms(80));
        }
        let mut delays = Vec::new();
        for k in 0..200u64 {
            // Frame k+5 arrives 20 ms after frame k+4, on the console's pace.
            j.push(frame((k + 5) * 20), ms(80 + (k + 1) * 20 - 1));
            let played: Vec<Bytes> = std::iter::from_fn(|| j.pop(ms(80 + k * 20))).collect();
            if !played.is_empty() {
                let held = j.frames.len() as u64 * FRAME_MS;
                delays.push(held);
            }
        }
        assert_eq!(j.stats().concealed, 0, "never dry");
        assert!(j.stats().skipped >= 1, "{:?}", j.stats());
        let end = *delays.last().unwrap();
        assert!((40..60).contains(&end), "held after the skips: {end} ms (100 before them)");
    }

    #[test]
    fn a_quiet_frame_is_skipped_before_a_loud_one() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut j = Jitter::new();
        let loud = |pos: u64| VoiceFrame { position_ms: pos, audio: Bytes::from(vec![0x10; FRAME_BYTES]) };
        let quiet = |pos: u64| VoiceFrame { position_ms: pos, audio: Bytes::from(vec![mulaw::SILENCE; FRAME_BYTES]) };
        for i in 0..6 {
            j.push(loud(i * 20), ms(0));
        }
        let (mut loud_pushed, mut loud_played) = (6, 0);
        for k in 0..150u64 {
            // Every tenth frame is a pause in the supervisor's speech.
            let pos = (k + 6) * 20;
            if k % 10 == 9 {
                j.push(quiet(pos), ms(k * 20));
            } else {
                j.push(loud(pos), ms(k * 20));
                loud_pushed += 1;
            }
            loud_played += std::iter::from_fn(|| j.pop(ms(k * 20))).filter(|f| f[0] == 0x10).count();
        }
        let loud_held = j.frames.values().filter(|f| f[0] == 0x10).count();
        assert!(j.stats().skipped >= 1, "{:?}", j.stats());
        assert_eq!(loud_played + loud_held, loud_pushed, "only pauses were skipped");
    }

    #[test]
    fn a_drain_gives_what_is_buffered_in_order() {
        let t0 = Instant::now();
        let mut j = Jitter::new();
        j.push(frame(40), t0);
        j.push(frame(20), t0);
        assert_eq!(j.drain().iter().map(id).collect::<Vec<_>>(), [1, 2]);
        assert!(!j.is_active());
    }

    #[test]
    fn a_console_that_sends_too_fast_cannot_grow_the_buffer() {
        let t0 = Instant::now();
        let mut j = Jitter::new();
        for i in 0..200 {
            j.push(frame(i * 20), t0);
        }
        assert_eq!(j.stats().dropped, 200 - MAX_HELD_MS / FRAME_MS);
        assert_eq!(j.pop(t0).map(|b| id(&b)), Some(150), "the newest second is kept");
    }
}
