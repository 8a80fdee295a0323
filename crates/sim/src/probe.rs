//! Per-frame measurement hooks for the load generator, shared by the caller fake and the model
//! fake of one call (both run in the load generator's process, on one clock).
//!
//! Every 20 ms frame of audio is stamped with a sequence number where it enters the bridge — the
//! caller fake's `media` frames (caller → model) and each 160-byte piece of the model fake's
//! `response.output_audio.delta`s (model → caller) — and read where it leaves: the model fake's
//! `input_audio_buffer.append`s and the caller fake's `media`. The stamp is the first
//! [`STAMP_BYTES`] μ-law bytes of the frame: the 32-bit sequence number as eight nibbles and an
//! 8-bit check as two, each byte `0xF0 | nibble` (μ-law codes within ±120 of 32 767: about
//! -62 dBFS over a frame, below any VAD threshold, so a silent frame stays silent and speech
//! keeps its level). Frames the bridge makes itself (silence padding) carry no stamp.
//!
//! A supervisor's voice frames (issue 17: a console talking on a taken-over call) carry their own
//! stamp ([`stamp_voice`]: the same layout with `0xE0 | nibble` bytes, about −50 dBFS over
//! the stamp) and their own sequence: console send → the caller fake's `media`.
//!
//! From the stamps: latency per frame (send → receipt, ns on one `Instant` clock), and frames
//! lost, duplicated or reordered. Frames of model responses that were cancelled (barge-in) may
//! legitimately never reach the caller: they are counted apart, never as lost.
//! Barge-in reaction: the model fake's `input_audio_buffer.speech_started` written → the caller
//! fake's `clear` read. Live feed: the model fake's transcript deltas written → a console's
//! `transcript_delta` event read (keyed by CallSid, item and delta index within the item).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Instant;

use watchfloor_wire::mulaw::FRAME_BYTES;

/// Bytes at the start of a frame that carry the stamp.
pub const STAMP_BYTES: usize = 10;

/// Writes `seq` into the first [`STAMP_BYTES`] bytes of `frame` (left alone when shorter).
pub fn stamp(frame: &mut [u8], seq: u32) {
    if frame.len() < STAMP_BYTES {
        return;
    }
    for (i, b) in frame[..8].iter_mut().enumerate() {
        *b = 0xF0 | ((seq >> (28 - 4 * i)) & 0xF) as u8;
    }
    let check = check_byte(seq);
    frame[8] = 0xF0 | (check >> 4);
    frame[9] = 0xF0 | (check & 0xF);
}

/// The sequence number stamped on `frame`, if it carries a valid stamp.
pub fn read_stamp(frame: &[u8]) -> Option<u32> {
    if frame.len() < STAMP_BYTES || frame[..STAMP_BYTES].iter().any(|&b| b < 0xF0) {
        return None;
    }
    let seq = frame[..8].iter().fold(0u32, |acc, &b| (acc << 4) | u32::from(b & 0xF));
    let check = ((frame[8] & 0xF) << 4) | (frame[9] & 0xF);
    (check == check_byte(seq)).then_some(seq)
}

/// Writes `seq` as a supervisor-voice stamp: [`stamp`]'s layout with `0xE0 | nibble` bytes, so
/// it is never read as an agent frame's.
pub fn stamp_voice(frame: &mut [u8], seq: u32) {
    stamp(frame, seq);
    for b in frame.iter_mut().take(STAMP_BYTES) {
        *b = 0xE0 | (*b & 0xF);
    }
}

/// The sequence number of a supervisor-voice stamp ([`stamp_voice`]), if `frame` carries one.
pub fn read_voice_stamp(frame: &[u8]) -> Option<u32> {
    if frame.len() < STAMP_BYTES || frame[..STAMP_BYTES].iter().any(|&b| b & 0xF0 != 0xE0) {
        return None;
    }
    let mut copy = [0u8; STAMP_BYTES];
    for (c, &b) in copy.iter_mut().zip(&frame[..STAMP_BYTES]) {
        *c = 0xF0 | (b & 0xF);
    }
    read_stamp(&copy)
}

/// Where, in a delta of `len` bytes starting `item_offset` bytes into its item, the item's
/// 20 ms frames start with room for a stamp.
fn grid_starts(len: usize, item_offset: usize) -> impl Iterator<Item = usize> {
    let first = (FRAME_BYTES - item_offset % FRAME_BYTES) % FRAME_BYTES;
    (first..len).step_by(FRAME_BYTES).filter(move |at| at + STAMP_BYTES <= len)
}

fn check_byte(seq: u32) -> u8 {
    // Fibonacci hashing: every bit of `seq` moves the top byte.
    (seq.wrapping_mul(0x9E37_79B1) >> 24) as u8 ^ 0x5A
}

/// One direction of audio through the bridge.
#[derive(Debug, Default)]
pub struct Direction {
    /// Send time of each sequence number, ns since the probe's epoch (`u64::MAX`: not sent).
    sent_ns: Vec<u64>,
    /// Receipts of each sequence number.
    received: Vec<u8>,
    /// Highest sequence number received so far.
    highest: Option<u32>,
    /// Latency of each frame sent inside the measurement window, µs.
    pub latencies_us: Vec<u32>,
    /// Frames received more than once.
    pub duplicated: u64,
    /// Frames received after a later one.
    pub reordered: u64,
    /// Frames with a stamp that was never sent (corruption).
    pub unknown: u64,
}

impl Direction {
    fn sent(&mut self, seq: u32, at_ns: u64) {
        let i = seq as usize;
        if self.sent_ns.len() <= i {
            self.sent_ns.resize(i + 1, u64::MAX);
        }
        self.sent_ns[i] = self.sent_ns[i].min(at_ns);
    }

    /// Frame `seq`'s last byte was written at `at_ns` (after its stamp): its latency counts from
    /// then.
    fn completed(&mut self, seq: u32, at_ns: u64) {
        if let Some(t) = self.sent_ns.get_mut(seq as usize).filter(|t| **t != u64::MAX) {
            *t = (*t).max(at_ns);
        }
    }

    fn received(&mut self, seq: u32, at_ns: u64, window: (u64, u64)) {
        let i = seq as usize;
        let Some(&sent) = self.sent_ns.get(i).filter(|&&t| t != u64::MAX) else {
            self.unknown += 1;
            return;
        };
        if self.received.len() <= i {
            self.received.resize(i + 1, 0);
        }
        self.received[i] = self.received[i].saturating_add(1);
        if self.received[i] > 1 {
            self.duplicated += 1;
            return;
        }
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        if sent >= window.0 && sent < window.1 {
            self.latencies_us.push((at_ns.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32);
        }
    }

    /// Sequence numbers sent (and required) that never arrived, among those `required(seq)`
    /// says must.
    fn lost(&self, required: impl Fn(usize) -> bool) -> Vec<u32> {
        self.sent_ns
            .iter()
            .enumerate()
            .filter(|&(i, &t)| t != u64::MAX && required(i) && self.received.get(i).copied().unwrap_or(0) == 0)
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Frames sent.
    pub fn sent_count(&self) -> u64 {
        self.sent_ns.iter().filter(|&&t| t != u64::MAX).count() as u64
    }
}

/// What one call measured.
#[derive(Debug, Default)]
pub struct CallMeasure {
    /// Caller → model.
    pub up: Direction,
    /// Model → caller.
    pub down: Direction,
    /// A supervisor's voice: console → caller (a taken-over call).
    pub voice: Direction,
    /// Next supervisor-voice sequence number to stamp.
    next_voice: u32,
    /// Response index of each model → caller frame (index into `responses`).
    down_response: Vec<u32>,
    /// Response ids in the order their audio was first sent.
    responses: Vec<String>,
    /// Responses that ended cancelled (barge-in): their audio may stop anywhere.
    cancelled: HashSet<u32>,
    /// Out-of-band responses (their audio never goes to the caller).
    out_of_band: HashSet<String>,
    /// Next model → caller sequence number to stamp.
    next_down: u32,
    /// Audio bytes of each conversation item written so far (where its 20 ms grid falls in
    /// the next delta).
    down_item_bytes: HashMap<String, usize>,
    /// Per item, the frame that started in a delta written earlier and is not complete yet: the
    /// bridge cannot send it before its last byte exists, so its latency counts from the delta
    /// (or the `output_audio.done`) that completes it.
    down_open: HashMap<String, u32>,
    /// Next caller → model sequence number to stamp.
    next_up: u32,
    /// `speech_started` written and no `clear` read since, ns.
    barge_pending: Option<u64>,
    /// Barge-in reaction of each `clear`, µs.
    pub barge_us: Vec<u32>,
    /// `clear`s read with no `speech_started` before them.
    pub clears_unexplained: u64,
    /// `speech_started` events written.
    pub speech_started: u64,
    /// Transcript deltas written, by (item id, index within the item): ns.
    feed_sent: HashMap<(String, u32), u64>,
    /// Transcript deltas written per item so far.
    feed_counts: HashMap<String, u32>,
    /// Caller fake timer lateness per frame, µs (load-generator health).
    pub tick_late_us: Vec<u32>,
    /// When the caller stopped listening (hung up), ns.
    hung_up_ns: Option<u64>,
}

/// Agent frames the model sent less than this before the caller hung up may still have been on
/// their way: they are not counted as lost.
pub const IN_FLIGHT_AT_HANGUP_NS: u64 = 1_000_000_000;

/// Shared measurement state of one call; cheap to clone (an `Arc`). Locked per frame by the
/// call's own caller and model tasks only — never by another call.
#[derive(Debug, Clone)]
pub struct CallProbe {
    inner: Arc<Mutex<CallMeasure>>,
    epoch: Instant,
    /// Frames sent in `[start, end)` ns count for latency.
    window: Arc<Mutex<(u64, u64)>>,
}

impl CallProbe {
    /// A probe on the clock `epoch`, counting latency for frames sent inside `window`.
    pub fn new(epoch: Instant, window: Arc<Mutex<(u64, u64)>>) -> Self {
        CallProbe { inner: Arc::default(), epoch, window }
    }

    /// ns since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn lock(&self) -> MutexGuard<'_, CallMeasure> {
        // A panic while holding the lock cannot leave the measures inconsistent beyond one frame.
        self.inner.lock()
    }

    fn window(&self) -> (u64, u64) {
        *self.window.lock()
    }

    /// Caller fake: stamps a frame about to be sent; returns its sequence number.
    pub fn stamp_up(&self, frame: &mut [u8]) -> u32 {
        let mut m = self.lock();
        let seq = m.next_up;
        m.next_up += 1;
        stamp(frame, seq);
        seq
    }

    /// Caller fake: frame `seq` is being written now.
    pub fn up_sent(&self, seq: u32) {
        let t = self.now_ns();
        self.lock().up.sent(seq, t);
    }

    /// Caller fake: how late its timer fired for this frame, µs.
    pub fn tick_late(&self, late_us: u32) {
        let window = self.window();
        let t = self.now_ns();
        if t >= window.0 && t < window.1 {
            self.lock().tick_late_us.push(late_us);
        }
    }

    /// Model fake: caller audio appended (the decoded μ-law of one `input_audio_buffer.append`).
    pub fn up_received(&self, audio: &[u8], at_ns: u64) {
        let window = self.window();
        let mut m = self.lock();
        for frame in audio.chunks(FRAME_BYTES) {
            if let Some(seq) = read_stamp(frame) {
                m.up.received(seq, at_ns, window);
            }
        }
    }

    /// Model fake: stamps each 20 ms frame of a conversation item's audio that starts in this
    /// delta, `item_offset` bytes into the item. Frames are counted from the item's start (the
    /// bridge sends an item in whole 20 ms frames whatever the deltas' sizes); a frame that
    /// starts too near the delta's end to hold a stamp is not stamped.
    pub fn stamp_down(&self, chunk: &mut [u8], item_offset: usize) {
        let mut m = self.lock();
        for at in grid_starts(chunk.len(), item_offset) {
            let seq = m.next_down;
            m.next_down += 1;
            stamp(&mut chunk[at..], seq);
        }
    }

    /// Model fake: an out-of-band response started (its audio is not for the caller).
    pub fn out_of_band(&self, response_id: &str) {
        self.lock().out_of_band.insert(response_id.to_string());
    }

    /// Model fake: an audio delta of `item_id` of `response_id` (decoded) is being written now.
    pub fn down_sent(&self, response_id: &str, item_id: &str, audio: &[u8]) {
        let t = self.now_ns();
        let mut m = self.lock();
        if m.out_of_band.contains(response_id) {
            return;
        }
        let item_offset = {
            let n = m.down_item_bytes.entry(item_id.to_string()).or_default();
            let at = *n;
            *n += audio.len();
            at
        };
        let r = match m.responses.iter().position(|r| r == response_id) {
            Some(i) => i as u32,
            None => {
                m.responses.push(response_id.to_string());
                (m.responses.len() - 1) as u32
            }
        };
        // A frame left open by an earlier delta that this one completes.
        let open_left = (FRAME_BYTES - item_offset % FRAME_BYTES) % FRAME_BYTES;
        if open_left > 0 && audio.len() >= open_left
            && let Some(seq) = m.down_open.remove(item_id) {
                m.down.completed(seq, t);
            }
        for at in grid_starts(audio.len(), item_offset) {
            if let Some(seq) = read_stamp(&audio[at..]) {
                m.down.sent(seq, t);
                let i = seq as usize;
                if m.down_response.len() <= i {
                    m.down_response.resize(i + 1, u32::MAX);
                }
                m.down_response[i] = r;
                if at + FRAME_BYTES > audio.len() {
                    m.down_open.insert(item_id.to_string(), seq);
                }
            }
        }
    }

    /// Model fake: `response.output_audio.done` of `item_id` is being written now: the item's
    /// last part frame is complete (the bridge fills it with silence and sends it).
    pub fn down_done(&self, item_id: &str) {
        let t = self.now_ns();
        let mut m = self.lock();
        if let Some(seq) = m.down_open.remove(item_id) {
            m.down.completed(seq, t);
        }
    }

    /// Model fake: `response_id` ended `cancelled`.
    pub fn response_cancelled(&self, response_id: &str) {
        let mut m = self.lock();
        if let Some(i) = m.responses.iter().position(|r| r == response_id) {
            m.cancelled.insert(i as u32);
        }
    }

    /// Model fake: `input_audio_buffer.speech_started` is being written now.
    pub fn speech_started(&self) {
        let t = self.now_ns();
        let mut m = self.lock();
        m.speech_started += 1;
        m.barge_pending = Some(t);
    }

    /// Model fake: a transcript delta of `item_id` (of `response_id` for the agent's) is being
    /// written now. Out-of-band responses' deltas never reach a console and are not counted.
    pub fn transcript_delta(&self, item_id: &str, response_id: Option<&str>) {
        let t = self.now_ns();
        let mut m = self.lock();
        if response_id.is_some_and(|r| m.out_of_band.contains(r)) {
            return;
        }
        let n = m.feed_counts.entry(item_id.to_string()).or_default();
        let idx = *n;
        *n += 1;
        m.feed_sent.insert((item_id.to_string(), idx), t);
    }

    /// Caller fake: agent audio received (decoded μ-law of one Twilio `media`): the agent's
    /// frames and a supervisor's.
    pub fn down_received(&self, audio: &[u8], at_ns: u64) {
        let window = self.window();
        let mut m = self.lock();
        for frame in audio.chunks(FRAME_BYTES) {
            if let Some(seq) = read_stamp(frame) {
                m.down.received(seq, at_ns, window);
            } else if let Some(seq) = read_voice_stamp(frame) {
                m.voice.received(seq, at_ns, window);
            }
        }
    }

    /// A supervisor's console: stamps a voice frame about to be sent now.
    pub fn stamp_voice_sent(&self, frame: &mut [u8]) {
        let t = self.now_ns();
        let mut m = self.lock();
        let seq = m.next_voice;
        m.next_voice += 1;
        stamp_voice(frame, seq);
        m.voice.sent(seq, t);
    }

    /// Caller fake: the caller hangs up now and reads nothing more.
    pub fn hung_up(&self) {
        let t = self.now_ns();
        self.lock().hung_up_ns = Some(t);
    }

    /// Caller fake: a `clear` was read.
    pub fn clear_received(&self, at_ns: u64) {
        let window = self.window();
        let mut m = self.lock();
        match m.barge_pending.take() {
            Some(t) if t >= window.0 && t < window.1 => m.barge_us.push((at_ns.saturating_sub(t) / 1000) as u32),
            Some(_) => {}
            None => m.clears_unexplained += 1,
        }
    }

    /// A console read transcript delta number `index` of `item_id`: its latency, µs, when the
    /// delta was written inside the window.
    pub fn feed_latency_us(&self, item_id: &str, index: u32, at_ns: u64) -> Option<u32> {
        let window = self.window();
        let m = self.lock();
        let &t = m.feed_sent.get(&(item_id.to_string(), index))?;
        (t >= window.0 && t < window.1).then(|| (at_ns.saturating_sub(t) / 1000) as u32)
    }

    /// The measures, once the call is over: latencies drained, counts final.
    pub fn finish(&self) -> CallTotals {
        let mut m = self.lock();
        let cancelled = m.cancelled.clone();
        let resp = m.down_response.clone();
        let hung_up = m.hung_up_ns.unwrap_or(u64::MAX).saturating_sub(IN_FLIGHT_AT_HANGUP_NS);
        let sent = m.down.sent_ns.clone();
        let down_lost = m.down.lost(|i| resp.get(i).is_none_or(|r| !cancelled.contains(r)) && sent[i] < hung_up);
        let down_cancelled_unheard = m.down.lost(|i| resp.get(i).is_some_and(|r| cancelled.contains(r))).len() as u64;
        let up_lost = m.up.lost(|_| true);
        let voice_sent_ns = m.voice.sent_ns.clone();
        let voice_lost = m.voice.lost(|i| voice_sent_ns[i] < hung_up).len() as u64;
        let mut lost_detail = String::new();
        for (name, lost, sent) in [("caller → model", &up_lost, m.up.sent_count()), ("model → caller", &down_lost, m.down.sent_count())] {
            if !lost.is_empty() {
                let first: Vec<String> = lost.iter().take(8).map(u32::to_string).collect();
                lost_detail.push_str(&format!("{name}: lost {} of {sent} (seq {}{}); ", lost.len(), first.join(", "), if lost.len() > 8 { ", …" } else { "" }));
            }
        }
        CallTotals {
            lost_detail,
            up_sent: m.up.sent_count(),
            up_lost: up_lost.len() as u64,
            up_duplicated: m.up.duplicated,
            up_reordered: m.up.reordered,
            up_unknown: m.up.unknown,
            down_sent: m.down.sent_count(),
            down_lost: down_lost.len() as u64,
            down_cancelled_unheard,
            down_duplicated: m.down.duplicated,
            down_reordered: m.down.reordered,
            down_unknown: m.down.unknown,
            speech_started: m.speech_started,
            clears_unexplained: m.clears_unexplained,
            up_us: std::mem::take(&mut m.up.latencies_us),
            down_us: std::mem::take(&mut m.down.latencies_us),
            barge_us: std::mem::take(&mut m.barge_us),
            tick_late_us: std::mem::take(&mut m.tick_late_us),
            voice_sent: m.voice.sent_count(),
            voice_lost,
            voice_us: std::mem::take(&mut m.voice.latencies_us),
        }
    }
}

/// The final counts and samples of one call.
#[derive(Debug, Default, Clone)]
pub struct CallTotals {
    /// Which frames were lost, for the report (empty when none were).
    pub lost_detail: String,
    /// Caller frames sent.
    pub up_sent: u64,
    /// Caller frames the model never got.
    pub up_lost: u64,
    /// Caller frames the model got twice or more.
    pub up_duplicated: u64,
    /// Caller frames the model got after a later one.
    pub up_reordered: u64,
    /// Stamps read by the model that the caller never sent.
    pub up_unknown: u64,
    /// Agent frames the model sent (conversation responses).
    pub down_sent: u64,
    /// Agent frames of completed responses the caller never got.
    pub down_lost: u64,
    /// Agent frames of cancelled (barged-in) responses the caller never got: expected.
    pub down_cancelled_unheard: u64,
    /// Agent frames the caller got twice or more.
    pub down_duplicated: u64,
    /// Agent frames the caller got after a later one.
    pub down_reordered: u64,
    /// Stamps read by the caller that the model never sent.
    pub down_unknown: u64,
    /// `speech_started` events the model sent.
    pub speech_started: u64,
    /// `clear`s with no `speech_started` before them.
    pub clears_unexplained: u64,
    /// Caller → model latencies, µs.
    pub up_us: Vec<u32>,
    /// Model → caller latencies, µs.
    pub down_us: Vec<u32>,
    /// Barge-in reactions, µs.
    pub barge_us: Vec<u32>,
    /// Caller timer lateness, µs.
    pub tick_late_us: Vec<u32>,
    /// A supervisor's voice frames sent (a taken-over call).
    pub voice_sent: u64,
    /// Of them, never heard by the caller (a frame the jitter buffer found late is silence).
    pub voice_lost: u64,
    /// Supervisor's console → caller latencies, µs.
    pub voice_us: Vec<u32>,
}

/// Probes by the caller number the model fake finds in a session's instructions.
#[derive(Debug, Default)]
pub struct Probes {
    by_number: Mutex<HashMap<String, CallProbe>>,
}

impl Probes {
    /// Registers the probe of the call about to be placed from `number` (replacing the last
    /// call's from the same number).
    pub fn register(&self, number: &str, probe: CallProbe) {
        self.by_number.lock().insert(number.to_string(), probe);
    }

    /// The probe of the newest call from `number`.
    pub fn for_number(&self, number: &str) -> Option<CallProbe> {
        self.by_number.lock().get(number).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use watchfloor_wire::mulaw;

    #[test]
    fn voice_stamps_are_their_own() {
        let mut frame = vec![0x10u8; FRAME_BYTES];
        stamp_voice(&mut frame, 123_456);
        assert_eq!(read_voice_stamp(&frame), Some(123_456));
        assert_eq!(read_stamp(&frame), None, "never taken for an agent frame");
        let mut agent = vec![0x10u8; FRAME_BYTES];
        stamp(&mut agent, 7);
        assert_eq!(read_voice_stamp(&agent), None);
    }

    #[test]
    fn stamps_round_trip_and_stay_quiet() {
        for seq in [0u32, 1, 15, 16, 255, 4096, 123_456, u32::MAX - 1] {
            let mut frame = vec![mulaw::SILENCE; FRAME_BYTES];
            stamp(&mut frame, seq);
            assert_eq!(read_stamp(&frame), Some(seq));
            assert!(mulaw::rms_dbfs(&frame) < -55.0, "seq {seq}: {} dBFS", mulaw::rms_dbfs(&frame));
        }
        // Silence and speech carry no stamp; a corrupted stamp is refused by its check.
        assert_eq!(read_stamp(&[mulaw::SILENCE; FRAME_BYTES]), None);
        let tone: Vec<u8> = (0..FRAME_BYTES).map(|i| mulaw::encode(((i as f64 * 0.3).sin() * 8000.0) as i16)).collect();
        assert_eq!(read_stamp(&tone), None);
        let mut frame = vec![mulaw::SILENCE; FRAME_BYTES];
        stamp(&mut frame, 77);
        frame[3] ^= 0x01;
        assert_eq!(read_stamp(&frame), None);
        assert_eq!(read_stamp(&frame[..5]), None);
    }

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let epoch = Instant::now();
        let probe = CallProbe::new(epoch, Arc::new(Mutex::new((0, u64::MAX))));
        let frames: Vec<Vec<u8>> = (0..6)
            .map(|_| {
                let mut f = vec![mulaw::SILENCE; FRAME_BYTES];
                let seq = probe.stamp_up(&mut f);
                probe.up_sent(seq);
                f
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2));
        // 0, 2, 1 (reordered), 2 again (duplicate), 4, 5: frame 3 is lost; plus padding.
        for i in [0usize, 2, 1, 2, 4, 5] {
            probe.up_received(&frames[i], probe.now_ns());
        }
        probe.up_received(&[mulaw::SILENCE; 8000], probe.now_ns());
        let t = probe.finish();
        assert_eq!((t.up_sent, t.up_lost, t.up_duplicated, t.up_reordered, t.up_unknown), (6, 1, 1, 1, 0));
        assert_eq!(t.up_us.len(), 5);
        assert!(t.up_us.iter().all(|&us| us >= 2000), "{:?}", t.up_us);
    }

    #[test]
    fn deltas_of_any_size_are_stamped_on_the_items_20_ms_grid() {
        let probe = CallProbe::new(Instant::now(), Arc::new(Mutex::new((0, u64::MAX))));
        // One item in deltas of 250, 90 and 140 bytes: its frames start at 0, 160 and 320.
        let mut item = Vec::new();
        let mut offset = 0;
        for n in [250usize, 90, 140] {
            let mut d = vec![0x55u8; n];
            probe.stamp_down(&mut d, offset);
            probe.down_sent("resp_1", "item_1", &d);
            offset += n;
            item.extend_from_slice(&d);
            if n == 250 {
                // The frame at 160 is completed only by the next delta.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let stamps: Vec<Option<u32>> = item.chunks(mulaw::FRAME_BYTES).map(read_stamp).collect();
        assert_eq!(stamps, vec![Some(0), Some(1), Some(2)]);
        // The bridge sends them as whole 20 ms frames: all three arrive.
        for frame in item.chunks(mulaw::FRAME_BYTES) {
            probe.down_received(frame, probe.now_ns());
        }
        let t = probe.finish();
        assert_eq!((t.down_sent, t.down_lost, t.down_unknown), (3, 0, 0));
        // Latency counts from the delta that completes a frame: only the first waited 50 ms.
        let mut us = t.down_us.clone();
        us.sort();
        assert!(us[0] < 50_000 && us[1] < 50_000 && us[2] >= 50_000, "{us:?}");
        // A frame starting 5 bytes before a delta's end has no room for a stamp.
        assert_eq!(grid_starts(165, 0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(grid_starts(100, 155).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn cancelled_responses_are_not_loss() {
        let probe = CallProbe::new(Instant::now(), Arc::new(Mutex::new((0, u64::MAX))));
        let mut a = vec![0x55u8; 800];
        probe.stamp_down(&mut a, 0);
        probe.down_sent("resp_1", "item_a", &a);
        let mut b = vec![0x55u8; 800];
        probe.stamp_down(&mut b, 0);
        probe.down_sent("resp_2", "item_b", &b);
        let mut oob = vec![0x55u8; 320];
        probe.out_of_band("resp_3");
        probe.stamp_down(&mut oob, 0);
        probe.down_sent("resp_3", "item_oob", &oob);
        // The caller hears resp_1 whole and the first 2 frames of resp_2, which was barged in on.
        probe.down_received(&a, probe.now_ns());
        probe.down_received(&b[..320], probe.now_ns());
        probe.response_cancelled("resp_2");
        let t = probe.finish();
        assert_eq!((t.down_sent, t.down_lost, t.down_cancelled_unheard), (10, 0, 3));
        // Without the cancel the missing frames are loss...
        let probe = CallProbe::new(Instant::now(), Arc::new(Mutex::new((0, u64::MAX))));
        let mut c = vec![0x55u8; 800];
        probe.stamp_down(&mut c, 0);
        probe.down_sent("resp_1", "item_c", &c);
        probe.down_received(&c[..480], probe.now_ns());
        let t0 = probe.now_ns();
        assert_eq!(probe.finish().down_lost, 2);
        // ...unless the caller hung up while they were on their way.
        probe.hung_up();
        assert!(probe.now_ns() < t0 + IN_FLIGHT_AT_HANGUP_NS);
        assert_eq!(probe.finish().down_lost, 0);
    }

    #[test]
    fn barge_in_and_feed_latency() {
        let probe = CallProbe::new(Instant::now(), Arc::new(Mutex::new((0, u64::MAX))));
        probe.clear_received(probe.now_ns());
        probe.speech_started();
        std::thread::sleep(Duration::from_millis(1));
        probe.clear_received(probe.now_ns());
        probe.transcript_delta("item_1", None);
        probe.transcript_delta("item_1", Some("resp_1"));
        probe.out_of_band("resp_2");
        probe.transcript_delta("item_2", Some("resp_2"));
        assert_eq!(probe.feed_latency_us("item_2", 0, probe.now_ns()), None);
        assert!(probe.feed_latency_us("item_1", 1, probe.now_ns() + 3_000_000).is_some_and(|us| us >= 3000));
        assert_eq!(probe.feed_latency_us("item_1", 2, probe.now_ns()), None);
        let t = probe.finish();
        assert_eq!((t.speech_started, t.clears_unexplained, t.barge_us.len()), (1, 1, 1));
        assert!(t.barge_us[0] >= 1000);
    }
}
