//! The agent's audio on its way to the caller (sub-machine of [`super::CallMachine`]): each
//! model `response.output_audio.delta` goes to Twilio as one `media` message of whole 20 ms
//! frames (a part frame waits for the next delta), followed by one named `mark`
//! (`<item_id>:<end byte offset>`). Barge-in (PROTOCOLS.md §3) clears Twilio's buffer, cancels
//! a response in flight and truncates the item at the played position.
//!
//! **What has played, to the frame.** Twilio plays outbound media in order and echoes a mark
//! once the audio before it has played (PROTOCOLS.md §2). So each chunk's frames sit at known
//! byte offsets, and each chunk starts playing when the one before it ends (or when it arrives,
//! if Twilio's buffer ran dry). Each frame's place on the stream clock is estimated when it is
//! sent and moved later when an echo comes later than expected: at a barge-in, the frames whose
//! estimated end is past are the ones the caller heard. An echo confirms a chunk one network
//! hop late, as a mark per frame did; the estimate between echoes adds the frames played
//! since, so the truncation is as exact as with a mark per frame, with a tenth of the messages
//! (issue 22; BENCHMARKS.md has the figures).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use watchfloor_call::{AudioFrame, Track};
use watchfloor_wire::mulaw::{self, FRAME_BYTES, FRAME_MS};
use watchfloor_wire::realtime::ClientEvent;
use watchfloor_wire::twilio::{MediaPayload, TwilioOutbound};

use super::Output;
use super::buffers::{AudioBlocks, TextBlock};

/// One `media` message queued at Twilio and its `mark`.
#[derive(Debug)]
struct PendingChunk {
    item_id: Arc<str>,
    /// The item's model bytes before this chunk.
    start_bytes: u64,
    /// The item's model bytes up to this chunk's end: its mark is `<item_id>:<end_bytes>`.
    end_bytes: u64,
    /// The whole frames sent (the item's last chunk is filled to a frame with silence, so it may
    /// be longer than `end_bytes - start_bytes`), kept until known to have played or cleared.
    audio: Bytes,
    /// Where on the stream clock it starts playing (estimated): after everything queued before
    /// it, or when it was sent if Twilio's buffer was empty; moved later by a late echo (until
    /// it starts).
    play_at_ms: u64,
    /// Bytes of it already published as heard (whole frames), as the caller's clock passed them.
    published: usize,
}

impl PendingChunk {
    fn end_ms(&self) -> u64 {
        self.play_at_ms + mulaw::bytes_to_ms(self.audio.len())
    }

    /// Bytes of it played by `now_ms` on the stream clock: whole frames whose estimated end is past.
    fn heard_by(&self, now_ms: u64) -> usize {
        let frames = now_ms.saturating_sub(self.play_at_ms) / FRAME_MS;
        (frames as usize * FRAME_BYTES).min(self.audio.len())
    }

    fn is_named(&self, item_id: &str, end_bytes: u64) -> bool {
        self.end_bytes == end_bytes && &*self.item_id == item_id
    }

    /// Publishes its frames up to byte `to` (not yet published) as heard, where they play.
    fn publish(&mut self, to: usize, call_sid: &Arc<str>, out: &mut VecDeque<Output>) {
        if to > self.published {
            out.push_back(Output::Audio(AudioFrame {
                call_sid: call_sid.clone(),
                track: Track::Agent,
                stream_ms: self.play_at_ms + mulaw::bytes_to_ms(self.published),
                audio: self.audio.slice(self.published..to),
            }));
            self.published = to;
        }
    }
}

/// `(item_id, end byte offset)` of a mark name this module makes (`<item_id>:<offset>`).
fn parse_mark(name: &str) -> Option<(&str, u64)> {
    let (item, offset) = name.rsplit_once(':')?;
    Some((item, offset.parse().ok()?))
}

#[derive(Debug, Default)]
struct ItemAudio {
    response_id: String,
    /// μ-law bytes received from the model and sent to Twilio.
    sent_bytes: u64,
    /// μ-law bytes received from the model after the last whole frame sent (< 160): sent with
    /// the next delta, or filled with silence when the item's audio is done.
    tail: Vec<u8>,
    /// μ-law bytes Twilio confirmed as played (from marks).
    played_bytes: u64,
}

/// What a mark echoed by Twilio meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkEcho {
    /// Its chunk (and every one before it) played; `idle`: nothing is queued at Twilio now.
    Played {
        /// Nothing left queued.
        idle: bool,
    },
    /// Echoed because of our `clear`: its audio never played.
    Cleared,
    /// A mark this call never sent (or one echoed twice).
    Unknown,
}

/// What a barge-in did (the `BargeIn` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BargeIn {
    /// The item that was playing.
    pub item_id: String,
    /// Where it was truncated: audio played, ms.
    pub audio_end_ms: u64,
    /// Whether a response in flight was cancelled.
    pub response_cancelled: bool,
}

/// The agent's audio queued at Twilio and what is known to have played.
#[derive(Debug)]
pub struct Playout {
    call_sid: Arc<str>,
    items: HashMap<Arc<str>, ItemAudio>,
    pending: VecDeque<PendingChunk>,
    /// Stream time at which the audio queued at Twilio runs out, ms.
    queue_end_ms: u64,
    cleared_marks: HashSet<String>,
    /// Responses whose audio (and transcript) is dropped: cancelled, or cut by a barge-in.
    cancelled: HashSet<String>,
    /// The `media` and `mark` texts.
    text: TextBlock,
    /// The recording's copies of the frames.
    audio: AudioBlocks,
    /// A part frame joined to the next delta (reused).
    joined: Vec<u8>,
}

impl Playout {
    /// Nothing queued, for call `call_sid` (named in the recording's frames).
    pub fn new(call_sid: Arc<str>) -> Self {
        Playout {
            call_sid,
            items: HashMap::new(),
            pending: VecDeque::new(),
            queue_end_ms: 0,
            cleared_marks: HashSet::new(),
            cancelled: HashSet::new(),
            text: TextBlock::new(TextBlock::MEDIA_BLOCK_BYTES),
            audio: AudioBlocks::default(),
            joined: Vec::new(),
        }
    }

    /// Whether agent audio is queued at Twilio and not yet known to have played.
    pub fn is_playing(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Where a frame queued now at `now_ms` plays on the stream clock: after what is queued
    /// at Twilio, or at once when its buffer is empty (the position its mark will confirm).
    pub fn next_play_at_ms(&self, now_ms: u64) -> u64 {
        self.queue_end_ms.max(now_ms)
    }

    /// Whether the audio of `response_id` is dropped.
    pub fn is_cancelled(&self, response_id: &str) -> bool {
        self.cancelled.contains(response_id)
    }

    /// Drops the rest of `response_id`'s audio (its session is gone).
    pub fn cancel(&mut self, response_id: String) {
        self.cancelled.insert(response_id);
    }

    /// Whether `name` is a mark this call sent that Twilio has not echoed yet (played or
    /// cleared): each such echo is expected once.
    pub fn expects_mark(&self, name: &str) -> bool {
        parse_mark(name)
            .is_some_and(|(item, end)| self.pending.iter().any(|c| c.is_named(item, end)))
            || self.cleared_marks.contains(name)
    }

    /// Queues `audio` (decoded from the base64 `delta`) of `item_id` in `response_id`: its
    /// whole 20 ms frames go to Twilio as one `media` and its `mark`, a part frame waits for the
    /// next delta. `now_ms`: the stream clock now. Returns where the item starts on the stream
    /// clock when this is its first audio; none for a later one.
    #[allow(clippy::too_many_arguments)]
    pub fn agent_audio(
        &mut self,
        stream_sid: &str,
        response_id: &str,
        item_id: &str,
        delta: &str,
        audio: &[u8],
        now_ms: u64,
        out: &mut VecDeque<Output>,
    ) -> Option<u64> {
        let mut started = None;
        let key: Arc<str> = match self.items.get_key_value(item_id) {
            Some((k, _)) => k.clone(),
            None => {
                started = Some(self.queue_end_ms.max(now_ms));
                let k: Arc<str> = item_id.into();
                self.items.insert(
                    k.clone(),
                    ItemAudio {
                        response_id: response_id.to_owned(),
                        ..Default::default()
                    },
                );
                k
            }
        };
        let Some(item) = self.items.get_mut(&key) else {
            return started;
        };
        if item.tail.is_empty() && audio.len().is_multiple_of(FRAME_BYTES) {
            // The common case of whole-frame deltas: the model's base64 goes out as it is.
            self.send_chunk(
                stream_sid,
                &key,
                MediaPayload::Base64(delta),
                audio,
                audio.len(),
                now_ms,
                out,
            );
        } else {
            let mut joined = std::mem::take(&mut self.joined);
            joined.clear();
            joined.extend_from_slice(&item.tail);
            joined.extend_from_slice(audio);
            let whole = joined.len() - joined.len() % FRAME_BYTES;
            if whole > 0 {
                self.send_chunk(
                    stream_sid,
                    &key,
                    MediaPayload::Mulaw(&joined[..whole]),
                    &joined[..whole],
                    whole,
                    now_ms,
                    out,
                );
            }
            if let Some(item) = self.items.get_mut(&key) {
                item.tail.clear();
                item.tail.extend_from_slice(&joined[whole..]);
            }
            self.joined = joined;
        }
        started
    }

    /// Queues one chunk of whole frames at Twilio: `media`, then its `mark`. `model_bytes` of
    /// `audio` came from the model (the rest is silence filling the item's last frame).
    #[allow(clippy::too_many_arguments)]
    fn send_chunk(
        &mut self,
        stream_sid: &str,
        key: &Arc<str>,
        payload: MediaPayload<'_>,
        audio: &[u8],
        model_bytes: usize,
        now_ms: u64,
        out: &mut VecDeque<Output>,
    ) {
        let Some(item) = self.items.get_mut(key) else {
            return;
        };
        let start_bytes = item.sent_bytes;
        item.sent_bytes += model_bytes as u64;
        let end_bytes = item.sent_bytes;
        // Twilio plays queued audio in order, starting now if its buffer is empty.
        let play_at_ms = self.queue_end_ms.max(now_ms);
        self.queue_end_ms = play_at_ms + mulaw::bytes_to_ms(audio.len());
        out.push_back(Output::ToTwilioText(self.text.write(|b| {
            watchfloor_wire::twilio::write_media(b, stream_sid, payload)
        })));
        // Unique per call: the byte offset grows strictly within an item.
        out.push_back(Output::ToTwilioText(self.text.write(|b| {
            watchfloor_wire::twilio::write_mark(b, stream_sid, &format_args!("{key}:{end_bytes}"))
        })));
        self.pending.push_back(PendingChunk {
            item_id: key.clone(),
            start_bytes,
            end_bytes,
            audio: self.audio.copy(audio),
            play_at_ms,
            published: 0,
        });
    }

    /// The item's audio is done (`output_audio.done`): its part frame goes out, filled to 20 ms
    /// with silence.
    pub fn flush_item(
        &mut self,
        stream_sid: &str,
        item_id: &str,
        now_ms: u64,
        out: &mut VecDeque<Output>,
    ) {
        let Some(key) = self.items.get_key_value(item_id).map(|(k, _)| k.clone()) else {
            return;
        };
        let Some(item) = self.items.get_mut(&key).filter(|i| !i.tail.is_empty()) else {
            return;
        };
        let mut frame = std::mem::take(&mut item.tail);
        if self.cancelled.contains(&item.response_id) {
            return;
        }
        let model_bytes = frame.len();
        frame.resize(FRAME_BYTES, mulaw::SILENCE);
        self.send_chunk(
            stream_sid,
            &key,
            MediaPayload::Mulaw(&frame),
            &frame,
            model_bytes,
            now_ms,
            out,
        );
    }

    /// The response is done: a part frame of any of its items goes out (a response that ended
    /// without `output_audio.done`, incomplete or failed, still plays what it sent).
    pub fn flush_response(
        &mut self,
        stream_sid: &str,
        response_id: &str,
        now_ms: u64,
        out: &mut VecDeque<Output>,
    ) {
        let unflushed: Vec<Arc<str>> = self
            .items
            .iter()
            .filter(|(_, i)| i.response_id == response_id && !i.tail.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for item_id in unflushed {
            self.flush_item(stream_sid, &item_id, now_ms, out);
        }
    }

    /// The caller's clock moved to `now_ms`: the queued frames whose place it has passed have
    /// played, and are published as heard (for listen-in and the recording) a frame at a time,
    /// not only when their chunk's mark comes back.
    pub fn clock_passed(&mut self, now_ms: u64, out: &mut VecDeque<Output>) {
        for c in &mut self.pending {
            let heard = c.heard_by(now_ms);
            c.publish(heard, &self.call_sid, out);
            if heard < c.audio.len() {
                break;
            }
        }
    }

    /// Twilio echoed mark `name` at `now_ms` on the stream clock: Twilio plays in order, so
    /// every chunk up to it has played (what was not yet published as heard is, where it
    /// played), and the chunks after it play from now on.
    pub fn on_mark(&mut self, name: &str, now_ms: u64, out: &mut VecDeque<Output>) -> MarkEcho {
        let pos = parse_mark(name)
            .and_then(|(item, end)| self.pending.iter().position(|c| c.is_named(item, end)));
        if let Some(pos) = pos {
            for mut c in self.pending.drain(..=pos) {
                if let Some(item) = self.items.get_mut(&c.item_id) {
                    item.played_bytes = item.played_bytes.max(c.end_bytes);
                }
                c.publish(c.audio.len(), &self.call_sid, out);
            }
            // An echo later than expected moves what is queued after it later (never earlier:
            // an estimate is already the soonest it can play; nor a chunk already playing).
            let mut next_ms = now_ms;
            for c in &mut self.pending {
                if c.published == 0 {
                    c.play_at_ms = c.play_at_ms.max(next_ms);
                }
                next_ms = c.end_ms();
            }
            self.queue_end_ms = self.queue_end_ms.max(next_ms);
            MarkEcho::Played {
                idle: self.pending.is_empty(),
            }
        } else if self.cleared_marks.remove(name) {
            MarkEcho::Cleared
        } else {
            MarkEcho::Unknown
        }
    }

    /// The caller started speaking (PROTOCOLS.md §3, steps 1–4): if agent audio is queued,
    /// `clear` it at Twilio, cancel the response in flight (`in_flight`, taken), truncate the
    /// playing item at the played position by `now_ms` (never past what was received), and drop
    /// what was queued and the late deltas of every response it belonged to. None when nothing
    /// plays.
    pub fn barge_in(
        &mut self,
        stream_sid: &str,
        in_flight: &mut Option<String>,
        now_ms: u64,
        out: &mut VecDeque<Output>,
    ) -> Option<BargeIn> {
        // The item playing now: the first whose queued audio has not all played by now (or the
        // last queued, when all of it has and its echo is on its way).
        let item_id = self
            .pending
            .iter()
            .find(|c| c.heard_by(now_ms).max(c.published) < c.audio.len())
            .or(self.pending.back())?
            .item_id
            .clone();
        // 1. stop playback now.
        out.push_back(Output::ToTwilio(TwilioOutbound::Clear {
            stream_sid: stream_sid.to_owned(),
        }));
        // 2. cancel only if a response is still in flight.
        let response_cancelled = match in_flight.take() {
            Some(resp) => {
                out.push_back(Output::ToModel(ClientEvent::ResponseCancel {
                    event_id: None,
                    response_id: None,
                }));
                self.cancelled.insert(resp);
                true
            }
            None => false,
        };
        // Audio of every response still queued is gone: late deltas of those responses are dropped.
        for c in &self.pending {
            if let Some(item) = self.items.get(&c.item_id) {
                self.cancelled.insert(item.response_id.clone());
            }
        }
        // So is a part frame of theirs that was never sent.
        for item in self.items.values_mut() {
            if self.cancelled.contains(&item.response_id) {
                item.tail.clear();
            }
        }
        // What has played of the queued chunks by now is heard (recorded where it played); the
        // rest never plays (recorded as cleared). Twilio echoes their marks because of the clear:
        // 4. those echoes are not playback.
        for mut c in std::mem::take(&mut self.pending) {
            let heard = c.heard_by(now_ms).max(c.published);
            if heard > 0 {
                if let Some(item) = self.items.get_mut(&c.item_id) {
                    item.played_bytes = item
                        .played_bytes
                        .max((c.start_bytes + heard as u64).min(c.end_bytes));
                }
                c.publish(heard, &self.call_sid, out);
            }
            if heard < c.audio.len() {
                out.push_back(Output::Audio(AudioFrame {
                    call_sid: self.call_sid.clone(),
                    track: Track::AgentCleared,
                    stream_ms: c.play_at_ms + mulaw::bytes_to_ms(heard),
                    audio: c.audio.slice(heard..),
                }));
            }
            self.cleared_marks
                .insert(format!("{}:{}", c.item_id, c.end_bytes));
        }
        // 3. truncate to what was played, never more than what was received.
        let (played, sent) = self
            .items
            .get(&item_id)
            .map(|i| (i.played_bytes, i.sent_bytes))
            .unwrap_or((0, 0));
        let audio_end_ms = mulaw::bytes_to_ms(played.min(sent) as usize);
        out.push_back(Output::ToModel(ClientEvent::ConversationItemTruncate {
            event_id: None,
            item_id: item_id.to_string(),
            content_index: 0,
            audio_end_ms,
        }));
        self.queue_end_ms = now_ms;
        Some(BargeIn {
            item_id: item_id.to_string(),
            audio_end_ms,
            response_cancelled,
        })
    }

    /// The call ended: audio still queued at Twilio is recorded where it was to play.
    pub fn end(&mut self, out: &mut VecDeque<Output>) {
        for mut c in self.pending.drain(..) {
            c.publish(c.audio.len(), &self.call_sid, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_twilio(out: &VecDeque<Output>) -> Vec<TwilioOutbound> {
        out.iter()
            .filter_map(|o| match o {
                Output::ToTwilioText(t) => {
                    Some(TwilioOutbound::parse(std::str::from_utf8(t).unwrap()).unwrap())
                }
                Output::ToTwilio(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn marks(out: &VecDeque<Output>) -> Vec<String> {
        to_twilio(out)
            .into_iter()
            .filter_map(|t| {
                if let TwilioOutbound::Mark { mark, .. } = t {
                    Some(mark.name)
                } else {
                    None
                }
            })
            .collect()
    }

    fn media_bytes(out: &VecDeque<Output>) -> Vec<usize> {
        let mut audio = Vec::new();
        to_twilio(out)
            .into_iter()
            .filter_map(|t| {
                if let TwilioOutbound::Media { media, .. } = t {
                    mulaw::decode_base64_into(&media.payload, &mut audio).ok()
                } else {
                    None
                }
            })
            .collect()
    }

    fn heard(out: &VecDeque<Output>, track: Track) -> Vec<(u64, usize)> {
        out.iter()
            .filter_map(|o| {
                if let Output::Audio(f) = o {
                    (f.track == track).then_some((f.stream_ms, f.audio.len()))
                } else {
                    None
                }
            })
            .collect()
    }

    fn feed(
        p: &mut Playout,
        resp: &str,
        item: &str,
        bytes: usize,
        now_ms: u64,
        out: &mut VecDeque<Output>,
    ) -> Option<u64> {
        let audio = vec![0x10u8; bytes];
        p.agent_audio(
            "MZ1",
            resp,
            item,
            &mulaw::encode_base64(&audio),
            &audio,
            now_ms,
            out,
        )
    }

    #[test]
    fn each_delta_goes_out_as_one_media_of_whole_frames_and_one_mark() {
        let mut p = Playout::new("CA1".into());
        let mut out = VecDeque::new();
        assert_eq!(
            feed(&mut p, "r1", "i1", 810, 1_000, &mut out),
            Some(1_000),
            "the item starts now"
        );
        assert_eq!(
            marks(&out),
            ["i1:800"],
            "five frames in one media; 10 bytes wait for the next delta"
        );
        assert_eq!(media_bytes(&out), [800]);
        assert_eq!(feed(&mut p, "r1", "i1", 310, 1_000, &mut out), None);
        assert_eq!(
            marks(&out),
            ["i1:800", "i1:1120"],
            "the part frame joins the next delta"
        );
        assert_eq!(media_bytes(&out), [800, 320]);
        feed(&mut p, "r1", "i1", 10, 1_000, &mut out);
        assert_eq!(marks(&out).len(), 2, "less than a frame waits");
        p.flush_item("MZ1", "i1", 1_000, &mut out);
        assert_eq!(
            marks(&out),
            ["i1:800", "i1:1120", "i1:1130"],
            "the last part frame is filled with silence; its mark counts model bytes"
        );
        assert_eq!(media_bytes(&out), [800, 320, 160]);
        assert!(p.is_playing());
        assert!(
            p.expects_mark("i1:1120") && !p.expects_mark("i1:1000") && !p.expects_mark("i1:1120x")
        );
        out.clear();
        assert_eq!(
            p.on_mark("i1:1120", 1_140, &mut out),
            MarkEcho::Played { idle: false }
        );
        assert_eq!(
            heard(&out, Track::Agent),
            [(1_000, 800), (1_100, 320)],
            "both chunks before the mark played, one after the other"
        );
        assert_eq!(
            p.on_mark("i1:1130", 1_160, &mut out),
            MarkEcho::Played { idle: true }
        );
        assert_eq!(
            p.on_mark("i1:1130", 1_160, &mut out),
            MarkEcho::Unknown,
            "each echo once"
        );
    }

    #[test]
    fn a_barge_in_truncates_at_the_frame_playing_and_drops_what_was_queued() {
        let mut p = Playout::new("CA1".into());
        let mut out = VecDeque::new();
        // 205 ms of a reply in one delta at 0 ms: ten frames play 0–200 ms, 5 ms wait.
        feed(&mut p, "r1", "i1", 160 * 10 + 40, 0, &mut out);
        out.clear();
        let mut in_flight = Some("r1".to_string());
        // The caller speaks at 70 ms: three frames (60 ms) have played, the fourth is playing.
        let b = p.barge_in("MZ1", &mut in_flight, 70, &mut out).unwrap();
        assert_eq!(
            b,
            BargeIn {
                item_id: "i1".into(),
                audio_end_ms: 60,
                response_cancelled: true
            }
        );
        assert!(in_flight.is_none());
        assert!(matches!(
            out.front(),
            Some(Output::ToTwilio(TwilioOutbound::Clear { .. }))
        ));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::ToModel(ClientEvent::ConversationItemTruncate {
                audio_end_ms: 60,
                ..
            })
        )));
        assert_eq!(
            heard(&out, Track::Agent),
            [(0, 480)],
            "what played is recorded as heard"
        );
        assert_eq!(
            heard(&out, Track::AgentCleared),
            [(60, 1120)],
            "the rest as cleared, where it would have played"
        );
        assert!(!p.is_playing());
        assert!(p.is_cancelled("r1"));
        // The mark echoed because of the clear is expected once, then unknown.
        assert!(p.expects_mark("i1:1600"));
        assert_eq!(p.on_mark("i1:1600", 80, &mut out), MarkEcho::Cleared);
        assert!(!p.expects_mark("i1:1600"));
        // Nothing plays: a second barge-in does nothing.
        assert!(p.barge_in("MZ1", &mut None, 300, &mut out).is_none());
        // The cut response's part frame was dropped with it.
        out.clear();
        p.flush_item("MZ1", "i1", 300, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_late_echo_moves_what_is_queued_after_it_and_a_dry_buffer_starts_at_the_send() {
        let mut p = Playout::new("CA1".into());
        let mut out = VecDeque::new();
        // Two chunks queued at once: 0–100 ms and 100–200 ms.
        feed(&mut p, "r1", "i1", 800, 0, &mut out);
        feed(&mut p, "r1", "i1", 800, 0, &mut out);
        // The first chunk's echo comes 30 ms late: the second plays from 130 ms.
        p.on_mark("i1:800", 130, &mut out);
        let b = p.barge_in("MZ1", &mut None, 175, &mut out).unwrap();
        assert_eq!(
            b.audio_end_ms,
            100 + 40,
            "two whole frames of the second chunk by 175 ms"
        );
        // When Twilio's buffer ran dry (the first chunk echoed at 110 ms), the next plays when it
        // is sent (500 ms), not after the last one placed.
        let mut p = Playout::new("CA1".into());
        feed(&mut p, "r1", "i1", 800, 0, &mut out);
        out.clear();
        p.on_mark("i1:800", 110, &mut out);
        feed(&mut p, "r1", "i1", 800, 500, &mut out);
        p.on_mark("i1:1600", 600, &mut out);
        assert_eq!(heard(&out, Track::Agent), [(0, 800), (500, 800)]);
    }

    #[test]
    fn frames_are_published_as_heard_as_the_clock_passes_them_once_each() {
        let mut p = Playout::new("CA1".into());
        let mut out = VecDeque::new();
        // 100 ms in one delta at 0 ms, then 100 ms more.
        feed(&mut p, "r1", "i1", 800, 0, &mut out);
        feed(&mut p, "r1", "i1", 800, 0, &mut out);
        out.clear();
        p.clock_passed(20, &mut out);
        p.clock_passed(40, &mut out);
        p.clock_passed(50, &mut out);
        assert_eq!(heard(&out, Track::Agent), [(0, 160), (20, 160)], "listen-in hears a frame once it has played");
        out.clear();
        // The first chunk's echo: the rest of it is published; the second stays placed at 100 ms.
        p.on_mark("i1:800", 100, &mut out);
        assert_eq!(heard(&out, Track::Agent), [(40, 480)]);
        out.clear();
        p.clock_passed(140, &mut out);
        assert_eq!(heard(&out, Track::Agent), [(100, 320)]);
        out.clear();
        // A barge-in at 150 ms: nothing more has played whole; the rest is cleared, nothing twice.
        let b = p.barge_in("MZ1", &mut None, 150, &mut out).unwrap();
        assert_eq!(b.audio_end_ms, 140);
        assert_eq!(heard(&out, Track::Agent), []);
        assert_eq!(heard(&out, Track::AgentCleared), [(140, 480)]);
    }
}
