//! Listen-in on the supervisor's desk: one call's caller and agent audio, as the bridge relays it
//! (`AudioFrame`s from the Hub's audio broadcast), through a jitter buffer and mixed into one
//! mono rodio [`Source`] at 8000 Hz.
//!
//! - Both tracks sit on the call's stream clock (Twilio timestamps; agent audio where it played),
//!   so mixing by stream position keeps them aligned.
//! - The jitter buffer plays [`TARGET_DELAY_MS`] (60 ms) behind the newest audio received. A
//!   burst is absorbed; when the buffer runs dry the output fades to silence and waits for the
//!   target again; a frame that comes after its place was played (agent audio is published when
//!   Twilio confirms it played, so it can trail the caller's) makes the delay grow by its
//!   lateness (up to [`MAX_DELAY_MS`]) so the next ones fit. Level changes are ramped over
//!   [`RAMP_SAMPLES`] so nothing clicks.
//! - More than [`MAX_BUFFER_MS`] behind the newest audio (the desk stalled), it skips ahead.
//! - Switching calls drops everything buffered; frames of any other call are refused.
//! - The feeder ([`Mixer::push`]) never blocks on the device: it takes a short lock to queue the
//!   frame; the source refills [`REFILL_SAMPLES`] at a time under the same lock.

use std::collections::VecDeque;
use std::num::NonZero;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use watchfloor_call::{AudioFrame, Track};
use watchfloor_wire::mulaw;

/// Output sample rate, Hz (G.711).
pub const SAMPLE_RATE_HZ: u32 = mulaw::SAMPLE_RATE_HZ;
/// Samples per ms.
const SPMS: u64 = mulaw::BYTES_PER_MS as u64;
/// Jitter buffer target: how far behind the newest audio playback runs, ms.
pub const TARGET_DELAY_MS: u64 = 60;
/// Largest delay the buffer grows to for late frames, ms.
pub const MAX_DELAY_MS: u64 = 400;
/// Furthest playback may trail the newest audio before it skips ahead, ms.
pub const MAX_BUFFER_MS: u64 = 1000;
/// Length of a fade in or out, samples (5 ms).
pub const RAMP_SAMPLES: u32 = 40;
/// Samples the source takes per lock, (10 ms).
pub const REFILL_SAMPLES: usize = 80;

/// Counters of the mixer, for the UI and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixerStats {
    /// Frames played through to their end.
    pub frames_played: u64,
    /// Samples produced (silence included).
    pub samples_out: u64,
    /// Times the buffer ran dry while listening.
    pub underruns: u64,
    /// Frames that came after their place was played (dropped; the delay grew).
    pub late_frames: u64,
    /// Frames refused (another call, a track not listened to, not listening).
    pub refused_frames: u64,
    /// Current delay behind the newest audio, ms.
    pub delay_ms: u64,
}

#[derive(Debug, Default)]
struct TrackBuf {
    /// (start sample on the stream clock, linear samples), ordered by start.
    frames: VecDeque<(u64, Vec<i16>)>,
    gain: f32,
    muted: bool,
}

impl TrackBuf {
    fn level(&self) -> f32 {
        if self.muted { 0.0 } else { self.gain }
    }

    fn insert(&mut self, start: u64, pcm: Vec<i16>) {
        let at = self.frames.partition_point(|(s, _)| *s <= start);
        self.frames.insert(at, (start, pcm));
    }

    /// The sample at `pos` (0 when there is none); drops frames that end at or before `pos`
    /// and returns how many ended.
    fn take(&mut self, pos: u64) -> (i16, u64) {
        let mut ended = 0;
        while let Some((s, pcm)) = self.frames.front() {
            if s + pcm.len() as u64 <= pos {
                self.frames.pop_front();
                ended += 1;
            } else {
                break;
            }
        }
        let v = self.frames.iter().find(|(s, pcm)| *s <= pos && pos < s + pcm.len() as u64).map(|(s, pcm)| pcm[(pos - s) as usize]).unwrap_or(0);
        (v, ended)
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    /// Waiting until the buffer holds the delay.
    Buffering,
    /// Playing from the buffer; back to `Buffering` when it runs dry.
    Playing,
}

#[derive(Debug)]
struct State {
    call: Option<String>,
    caller: Option<TrackBuf>,
    agent: Option<TrackBuf>,
    /// Next sample to play, on the stream clock.
    playhead: Option<u64>,
    /// End of the newest audio received, samples.
    live_edge: u64,
    delay: u64,
    phase: Phase,
    /// Output gain ramp, 0..=RAMP_SAMPLES.
    ramp: u32,
    stats: MixerStats,
}

impl State {
    fn new() -> State {
        State { call: None, caller: None, agent: None, playhead: None, live_edge: 0, delay: TARGET_DELAY_MS * SPMS, phase: Phase::Buffering, ramp: 0, stats: MixerStats::default() }
    }

    fn track(&mut self, t: Track) -> Option<&mut TrackBuf> {
        match t {
            Track::Caller => self.caller.as_mut(),
            Track::Agent => self.agent.as_mut(),
            Track::AgentCleared | Track::Dispatch | Track::Supervisor => None,
        }
    }

    fn buffered(&self) -> u64 {
        self.playhead.map_or(0, |p| self.live_edge.saturating_sub(p))
    }

    fn next_sample(&mut self) -> f32 {
        self.stats.samples_out += 1;
        let Some(pos) = self.playhead else { return 0.0 };
        if self.phase == Phase::Buffering {
            if self.buffered() >= self.delay {
                self.phase = Phase::Playing;
            } else {
                return 0.0;
            }
        }
        if self.buffered() > MAX_BUFFER_MS * SPMS {
            // Far behind (the desk stalled): jump to the delay behind the newest audio.
            let to = self.live_edge - self.delay;
            for t in [self.caller.as_mut(), self.agent.as_mut()].into_iter().flatten() {
                t.take(to);
            }
            self.playhead = Some(to);
            return self.next_sample_at(to);
        }
        if pos >= self.live_edge {
            // Dry: fade out (the ramp is already at 0 when the last sample had it), wait for the target.
            self.stats.underruns += 1;
            self.phase = Phase::Buffering;
            self.ramp = 0;
            return 0.0;
        }
        self.next_sample_at(pos)
    }

    fn next_sample_at(&mut self, pos: u64) -> f32 {
        let mut mix = 0.0f32;
        for t in [self.caller.as_mut(), self.agent.as_mut()].into_iter().flatten() {
            let (v, ended) = t.take(pos);
            self.stats.frames_played += ended;
            mix += f32::from(v) / 32768.0 * t.level();
        }
        self.playhead = Some(pos + 1);
        // Fade in after silence; fade out as the buffer is about to run dry.
        let remaining = self.live_edge.saturating_sub(pos + 1);
        if remaining < u64::from(RAMP_SAMPLES) {
            self.ramp = self.ramp.min(remaining as u32);
        } else if self.ramp < RAMP_SAMPLES {
            self.ramp += 1;
        }
        (mix * self.ramp as f32 / RAMP_SAMPLES as f32).clamp(-1.0, 1.0)
    }
}

/// The listen-in mixer: feed it frames, play its [`MixerSource`].
#[derive(Debug, Clone)]
pub struct Mixer {
    state: Arc<Mutex<State>>,
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer::new()
    }
}

impl Mixer {
    /// A mixer listening to nothing.
    pub fn new() -> Mixer {
        Mixer { state: Arc::new(Mutex::new(State::new())) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The source to play (rodio `Player::append`, or pulled directly in tests). Endless; silence
    /// while there is nothing to play.
    pub fn source(&self) -> MixerSource {
        MixerSource { state: self.state.clone(), buf: VecDeque::with_capacity(REFILL_SAMPLES) }
    }

    /// Listens to `call_sid`'s `tracks` (caller, agent or both), dropping whatever was buffered
    /// (no stale audio from the previous call). Volumes and mutes are kept.
    pub fn listen(&self, call_sid: &str, tracks: &[Track]) {
        let mut s = self.lock();
        let keep = |old: &Option<TrackBuf>| TrackBuf { frames: VecDeque::new(), gain: old.as_ref().map_or(1.0, |t| t.gain), muted: old.as_ref().is_some_and(|t| t.muted) };
        let caller = tracks.contains(&Track::Caller).then(|| keep(&s.caller));
        let agent = tracks.contains(&Track::Agent).then(|| keep(&s.agent));
        // Counters start again with each call listened to.
        let stats = MixerStats { delay_ms: TARGET_DELAY_MS, ..MixerStats::default() };
        *s = State { call: Some(call_sid.to_string()), caller, agent, stats, ..State::new() };
    }

    /// Stops listening; the source plays silence.
    pub fn stop(&self) {
        let mut s = self.lock();
        let stats = s.stats;
        *s = State { stats, ..State::new() };
    }

    /// The call listened to.
    pub fn listening(&self) -> Option<String> {
        self.lock().call.clone()
    }

    /// Sets a track's volume (0.0–2.0; 1.0 as relayed).
    pub fn set_volume(&self, track: Track, level: f32) {
        if let Some(t) = self.lock().track(track) {
            t.gain = level.clamp(0.0, 2.0);
        }
    }

    /// Mutes or unmutes a track.
    pub fn set_muted(&self, track: Track, muted: bool) {
        if let Some(t) = self.lock().track(track) {
            t.muted = muted;
        }
    }

    /// Queues a frame; `false` when it is not for the call and tracks listened to (or it came
    /// too late to play: then the delay grows).
    pub fn push(&self, frame: &AudioFrame) -> bool {
        let mut s = self.lock();
        if s.call.as_deref() != Some(&*frame.call_sid) || s.track(frame.track).is_none() || frame.audio.is_empty() {
            s.stats.refused_frames += 1;
            return false;
        }
        let start = frame.stream_ms * SPMS;
        let end = start + frame.audio.len() as u64;
        if let Some(p) = s.playhead
            && end <= p {
                // Its place was played: drop it, and let the delay grow by its lateness so the
                // next ones fit (the playhead waits while the buffer refills to the new delay).
                s.stats.late_frames += 1;
                let grown = (s.delay + (p - start)).min(MAX_DELAY_MS * SPMS);
                if grown > s.delay {
                    s.delay = grown;
                    s.stats.delay_ms = grown / SPMS;
                    s.phase = Phase::Buffering;
                    s.ramp = 0;
                }
                return false;
            }
        let pcm: Vec<i16> = frame.audio.iter().map(|&b| mulaw::decode(b)).collect();
        if let Some(t) = s.track(frame.track) {
            t.insert(start, pcm);
        }
        if s.playhead.is_none() {
            s.playhead = Some(start);
        }
        s.live_edge = s.live_edge.max(end);
        true
    }

    /// The counters.
    pub fn stats(&self) -> MixerStats {
        self.lock().stats
    }
}

/// The mixer's output: mono f32 samples at 8000 Hz, endless.
#[derive(Debug)]
pub struct MixerSource {
    state: Arc<Mutex<State>>,
    buf: VecDeque<f32>,
}

impl Iterator for MixerSource {
    type Item = f32;

    fn next(&mut self) -> Option<f32> {
        if self.buf.is_empty() {
            let mut s = self.state.lock();
            for _ in 0..REFILL_SAMPLES {
                let v = s.next_sample();
                self.buf.push_back(v);
            }
        }
        self.buf.pop_front()
    }
}

impl rodio::Source for MixerSource {
    fn current_span_len(&self) -> Option<usize> {
        None
    }

    fn channels(&self) -> rodio::ChannelCount {
        // Invariant: a non-zero literal.
        NonZero::new(1).expect("1 is not zero")
    }

    fn sample_rate(&self) -> rodio::SampleRate {
        // Invariant: a non-zero constant.
        NonZero::new(SAMPLE_RATE_HZ).expect("8000 is not zero")
    }

    fn total_duration(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests;
