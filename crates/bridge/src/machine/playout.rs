//! The agent's audio on its way to the caller (sub-machine of [`super::CallMachine`]): the
//! model's `response.output_audio.delta`s of any size go to Twilio in whole 20 ms `media`
//! frames, each followed by a named `mark` (`<item_id>:<end byte offset>`), so what has *played*
//! is known to the frame (PROTOCOLS.md §2); barge-in (§3) clears Twilio's buffer, cancels a
//! response in flight and truncates the item at the played position.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use watchfloor_call::{AudioFrame, Track};
use watchfloor_wire::mulaw::{self, FRAME_BYTES};
use watchfloor_wire::realtime::ClientEvent;
use watchfloor_wire::twilio::{MarkName, OutboundMedia, TwilioOutbound};

use super::Output;

#[derive(Debug)]
struct PendingMark {
    name: String,
    item_id: Arc<str>,
    end_bytes: u64,
    /// The frame this mark follows, kept until it is known to have played (or been cleared).
    audio: Bytes,
    /// Where on the stream clock this frame plays: after everything queued before it.
    play_at_ms: u64,
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
    /// Its frame (and every one before it) played; `idle`: nothing is queued at Twilio now.
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
    pending_marks: VecDeque<PendingMark>,
    /// Stream time at which the audio queued at Twilio runs out, ms.
    queue_end_ms: u64,
    cleared_marks: HashSet<String>,
    /// Responses whose audio (and transcript) is dropped: cancelled, or cut by a barge-in.
    cancelled: HashSet<String>,
}

impl Playout {
    /// Nothing queued, for call `call_sid` (named in the recording's frames).
    pub fn new(call_sid: Arc<str>) -> Self {
        Playout { call_sid, items: HashMap::new(), pending_marks: VecDeque::new(), queue_end_ms: 0, cleared_marks: HashSet::new(), cancelled: HashSet::new() }
    }

    /// Whether agent audio is queued at Twilio and not yet known to have played.
    pub fn is_playing(&self) -> bool {
        !self.pending_marks.is_empty()
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
        self.pending_marks.iter().any(|m| m.name == name) || self.cleared_marks.contains(name)
    }

    /// Queues `audio` (decoded from the base64 `delta`) of `item_id` in `response_id`: whole
    /// 20 ms frames go to Twilio with their marks, a part frame waits for the next delta.
    /// `now_ms`: the stream clock now. Returns where the item starts on the stream clock when
    /// this is its first audio; none for a cancelled response's delta (dropped) or a later one.
    #[allow(clippy::too_many_arguments)]
    pub fn agent_audio(&mut self, stream_sid: &str, response_id: &str, item_id: &str, delta: &str, audio: &[u8], now_ms: u64, out: &mut VecDeque<Output>) -> Option<u64> {
        let mut started = None;
        let key: Arc<str> = match self.items.get_key_value(item_id) {
            Some((k, _)) => k.clone(),
            None => {
                started = Some(self.queue_end_ms.max(now_ms));
                let k: Arc<str> = item_id.into();
                self.items.insert(k.clone(), ItemAudio { response_id: response_id.to_owned(), ..Default::default() });
                k
            }
        };
        let item = self.items.get_mut(&key).expect("inserted above");
        if item.tail.is_empty() && audio.len() == FRAME_BYTES {
            // The common case of round-number deltas: the model's base64 goes out as it is.
            self.send_frame(stream_sid, &key, delta.to_owned(), Bytes::copy_from_slice(audio), FRAME_BYTES, now_ms, out);
        } else {
            let mut buf = std::mem::take(&mut item.tail);
            buf.extend_from_slice(audio);
            let whole = buf.len() - buf.len() % FRAME_BYTES;
            for frame in buf[..whole].chunks(FRAME_BYTES) {
                self.send_frame(stream_sid, &key, mulaw::encode_base64(frame), Bytes::copy_from_slice(frame), FRAME_BYTES, now_ms, out);
            }
            buf.drain(..whole);
            if let Some(item) = self.items.get_mut(&key) {
                item.tail = buf;
            }
        }
        started
    }

    /// Queues one frame at Twilio: `media`, then its `mark`. `model_bytes` of it came from the
    /// model (the rest is silence filling the item's last frame).
    #[allow(clippy::too_many_arguments)]
    fn send_frame(&mut self, stream_sid: &str, key: &Arc<str>, payload: String, audio: Bytes, model_bytes: usize, now_ms: u64, out: &mut VecDeque<Output>) {
        let Some(item) = self.items.get_mut(key) else { return };
        item.sent_bytes += model_bytes as u64;
        let offset = item.sent_bytes;
        // Twilio plays queued audio in order, starting now if its buffer is empty.
        let play_at_ms = self.queue_end_ms.max(now_ms);
        self.queue_end_ms = play_at_ms + mulaw::bytes_to_ms(audio.len());
        out.push_back(Output::ToTwilio(TwilioOutbound::Media { stream_sid: stream_sid.to_owned(), media: OutboundMedia { payload } }));
        // Unique per call: the byte offset grows strictly within an item.
        let name = format!("{key}:{offset}");
        out.push_back(Output::ToTwilio(TwilioOutbound::Mark { stream_sid: stream_sid.to_owned(), mark: MarkName { name: name.clone() } }));
        self.pending_marks.push_back(PendingMark { name, item_id: key.clone(), end_bytes: offset, audio, play_at_ms });
    }

    /// The item's audio is done (`output_audio.done`): its part frame goes out, filled to 20 ms
    /// with silence.
    pub fn flush_item(&mut self, stream_sid: &str, item_id: &str, now_ms: u64, out: &mut VecDeque<Output>) {
        let Some(key) = self.items.get_key_value(item_id).map(|(k, _)| k.clone()) else { return };
        let Some(item) = self.items.get_mut(&key).filter(|i| !i.tail.is_empty()) else { return };
        let mut frame = std::mem::take(&mut item.tail);
        if self.cancelled.contains(&item.response_id) {
            return;
        }
        let model_bytes = frame.len();
        frame.resize(FRAME_BYTES, mulaw::SILENCE);
        self.send_frame(stream_sid, &key, mulaw::encode_base64(&frame), Bytes::from(frame), model_bytes, now_ms, out);
    }

    /// The response is done: a part frame of any of its items goes out (a response that ended
    /// without `output_audio.done`, incomplete or failed, still plays what it sent).
    pub fn flush_response(&mut self, stream_sid: &str, response_id: &str, now_ms: u64, out: &mut VecDeque<Output>) {
        let unflushed: Vec<Arc<str>> = self.items.iter().filter(|(_, i)| i.response_id == response_id && !i.tail.is_empty()).map(|(k, _)| k.clone()).collect();
        for item_id in unflushed {
            self.flush_item(stream_sid, &item_id, now_ms, out);
        }
    }

    /// Twilio echoed mark `name`: Twilio plays in order, so every frame before it has played too
    /// (each recorded as heard, at the time it played).
    pub fn on_mark(&mut self, name: &str, out: &mut VecDeque<Output>) -> MarkEcho {
        if let Some(pos) = self.pending_marks.iter().position(|m| m.name == name) {
            for m in self.pending_marks.drain(..=pos) {
                if let Some(item) = self.items.get_mut(&m.item_id) {
                    item.played_bytes = item.played_bytes.max(m.end_bytes);
                }
                out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Agent, stream_ms: m.play_at_ms, audio: m.audio }));
            }
            MarkEcho::Played { idle: self.pending_marks.is_empty() }
        } else if self.cleared_marks.remove(name) {
            MarkEcho::Cleared
        } else {
            MarkEcho::Unknown
        }
    }

    /// The caller started speaking (PROTOCOLS.md §3, steps 1–4): if agent audio is queued,
    /// `clear` it at Twilio, cancel the response in flight (`in_flight`, taken), truncate the
    /// playing item at the played position (never past what was received), and drop what was
    /// queued and the late deltas of every response it belonged to. None when nothing plays.
    pub fn barge_in(&mut self, stream_sid: &str, in_flight: &mut Option<String>, now_ms: u64, out: &mut VecDeque<Output>) -> Option<BargeIn> {
        let item_id = self.pending_marks.front()?.item_id.clone();
        // 1. stop playback now.
        out.push_back(Output::ToTwilio(TwilioOutbound::Clear { stream_sid: stream_sid.to_owned() }));
        // 2. cancel only if a response is still in flight.
        let response_cancelled = match in_flight.take() {
            Some(resp) => {
                out.push_back(Output::ToModel(ClientEvent::ResponseCancel { event_id: None, response_id: None }));
                self.cancelled.insert(resp);
                true
            }
            None => false,
        };
        // Audio of every response still queued is gone: late deltas of those responses are dropped.
        for m in &self.pending_marks {
            if let Some(item) = self.items.get(&m.item_id) {
                self.cancelled.insert(item.response_id.clone());
            }
        }
        // So is a part frame of theirs that was never sent.
        for item in self.items.values_mut() {
            if self.cancelled.contains(&item.response_id) {
                item.tail.clear();
            }
        }
        // 3. truncate to what was played, never more than what was received.
        let (played, sent) = self.items.get(&item_id).map(|i| (i.played_bytes, i.sent_bytes)).unwrap_or((0, 0));
        let audio_end_ms = mulaw::bytes_to_ms(played.min(sent) as usize);
        out.push_back(Output::ToModel(ClientEvent::ConversationItemTruncate { event_id: None, item_id: item_id.to_string(), content_index: 0, audio_end_ms }));
        // 4. the marks Twilio echoes because of the clear are not playback.
        for m in self.pending_marks.drain(..) {
            self.cleared_marks.insert(m.name);
            out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::AgentCleared, stream_ms: m.play_at_ms, audio: m.audio }));
        }
        self.queue_end_ms = now_ms;
        Some(BargeIn { item_id: item_id.to_string(), audio_end_ms, response_cancelled })
    }

    /// The call ended: audio still queued at Twilio is recorded where it was to play.
    pub fn end(&mut self, out: &mut VecDeque<Output>) {
        for m in self.pending_marks.drain(..) {
            out.push_back(Output::Audio(AudioFrame { call_sid: self.call_sid.clone(), track: Track::Agent, stream_ms: m.play_at_ms, audio: m.audio }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(out: &VecDeque<Output>) -> Vec<String> {
        out.iter().filter_map(|o| if let Output::ToTwilio(TwilioOutbound::Mark { mark, .. }) = o { Some(mark.name.clone()) } else { None }).collect()
    }

    fn feed(p: &mut Playout, resp: &str, item: &str, bytes: usize, now_ms: u64, out: &mut VecDeque<Output>) -> Option<u64> {
        let audio = vec![0x10u8; bytes];
        p.agent_audio("MZ1", resp, item, &mulaw::encode_base64(&audio), &audio, now_ms, out)
    }

    #[test]
    fn deltas_of_any_size_go_out_as_whole_frames_each_with_a_mark() {
        let mut p = Playout::new("CA1".into());
        let mut out = VecDeque::new();
        assert_eq!(feed(&mut p, "r1", "i1", 250, 1_000, &mut out), Some(1_000), "the item starts now");
        assert_eq!(marks(&out), ["i1:160"], "90 bytes wait for the next delta");
        assert_eq!(feed(&mut p, "r1", "i1", 70, 1_000, &mut out), None);
        assert_eq!(marks(&out), ["i1:160", "i1:320"]);
        feed(&mut p, "r1", "i1", 10, 1_000, &mut out);
        p.flush_item("MZ1", "i1", 1_000, &mut out);
        assert_eq!(marks(&out), ["i1:160", "i1:320", "i1:330"], "the last part frame is filled with silence; its mark counts model bytes");
        assert!(p.is_playing());
        out.clear();
        assert_eq!(p.on_mark("i1:320", &mut out), MarkEcho::Played { idle: false });
        let heard: Vec<u64> = out.iter().filter_map(|o| if let Output::Audio(f) = o { Some(f.stream_ms) } else { None }).collect();
        assert_eq!(heard, [1_000, 1_020], "both frames before the mark played, on a 20 ms grid");
        assert_eq!(p.on_mark("i1:330", &mut out), MarkEcho::Played { idle: true });
        assert_eq!(p.on_mark("i1:330", &mut out), MarkEcho::Unknown, "each echo once");
    }

    #[test]
    fn a_barge_in_truncates_at_the_played_position_and_drops_what_was_queued() {
        let mut p = Playout::new("CA1".into());
        let mut out = VecDeque::new();
        feed(&mut p, "r1", "i1", 160 * 10 + 40, 0, &mut out);
        p.on_mark("i1:480", &mut out);
        out.clear();
        let mut in_flight = Some("r1".to_string());
        let b = p.barge_in("MZ1", &mut in_flight, 200, &mut out).unwrap();
        assert_eq!(b, BargeIn { item_id: "i1".into(), audio_end_ms: 60, response_cancelled: true });
        assert!(in_flight.is_none());
        assert!(matches!(out.front(), Some(Output::ToTwilio(TwilioOutbound::Clear { .. }))));
        assert!(out.iter().any(|o| matches!(o, Output::ToModel(ClientEvent::ConversationItemTruncate { audio_end_ms: 60, .. }))));
        assert_eq!(out.iter().filter(|o| matches!(o, Output::Audio(f) if f.track == Track::AgentCleared)).count(), 7);
        assert!(!p.is_playing());
        assert!(p.is_cancelled("r1"));
        // The marks echoed because of the clear are expected once, then unknown.
        assert!(p.expects_mark("i1:1600"));
        assert_eq!(p.on_mark("i1:1600", &mut out), MarkEcho::Cleared);
        assert!(!p.expects_mark("i1:1600"));
        // Nothing plays: a second barge-in does nothing.
        assert!(p.barge_in("MZ1", &mut None, 300, &mut out).is_none());
        // The cut response's part frame was dropped with it.
        out.clear();
        p.flush_item("MZ1", "i1", 300, &mut out);
        assert!(out.is_empty());
    }
}
