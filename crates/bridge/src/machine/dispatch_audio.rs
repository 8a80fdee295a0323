//! The dispatch message voiced for the record (sub-machine of [`super::CallMachine`]): after
//! each dispatch and each correction after it, an out-of-band `response.create`
//! (`conversation: "none"`, the message as its only input, `metadata {purpose, revision}`;
//! PROTOCOLS.md §1). The events of those responses are told apart by response id, so they never
//! reach the caller, the transcript or barge-in; the audio becomes the record's `dispatch` track.

use std::collections::HashMap;

use watchfloor_call::DispatchAudioStatus;
use watchfloor_wire::mulaw;
use watchfloor_wire::realtime::{ClientEvent, ItemCreate, ResponseCreateParams, ResponseStatus, ServerEvent};

/// How the model voices the dispatch message.
const DISPATCH_VOICE_INSTRUCTIONS: &str = "You are the dispatch radio voice. Read the dispatch message you are given aloud exactly as written, word for word, in a calm, clear, even voice. Say nothing else.";

/// `metadata.purpose` of the out-of-band responses that voice the dispatch message.
pub const DISPATCH_AUDIO_PURPOSE: &str = "dispatch_audio";
/// Tries to get a dispatch message voiced before giving up (the text stays on the record).
pub const DISPATCH_AUDIO_TRIES: u32 = 3;

/// One revision of the message, voiced or not (the `DispatchAudio` event).
#[derive(Debug, Clone, PartialEq)]
pub struct Voiced {
    /// The revision, from 1.
    pub revision: u32,
    /// How it went.
    pub status: DispatchAudioStatus,
    /// Where it sits on the stream clock, ms (after the previous revision's audio).
    pub stream_ms: u64,
    /// Its length, ms.
    pub duration_ms: u64,
    /// The message.
    pub message: String,
    /// Its μ-law audio (empty when none came).
    pub audio: Vec<u8>,
}

/// A voicing's status from its `response.done` `status` and whether audio came: `completed`
/// without audio, and any status this version does not know, is a failure.
pub fn status_of(status: ResponseStatus, has_audio: bool) -> DispatchAudioStatus {
    match status {
        ResponseStatus::Completed if has_audio => DispatchAudioStatus::Completed,
        ResponseStatus::Cancelled => DispatchAudioStatus::Cancelled,
        ResponseStatus::Incomplete => DispatchAudioStatus::Incomplete,
        _ => DispatchAudioStatus::Failed,
    }
}

/// What a model event meant for the dispatch audio.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// Not one of ours: the call handles it.
    NotOurs,
    /// One of ours, kept.
    Ours,
    /// One of ours, malformed or unexpected: skipped (the reason for the timeline).
    Skip(String),
    /// A revision is done (voiced, failed, or refused for good).
    Done(Voiced),
}

/// The out-of-band responses voicing the dispatch message.
#[derive(Debug, Default)]
pub struct DispatchAudio {
    /// Last revision requested.
    revision: u32,
    /// Revisions requested and not yet answered by a `response.created`: revision → (message,
    /// stream ms when requested, tries).
    requested: HashMap<u32, (String, u64, u32)>,
    /// Revisions to ask for again after the next in-conversation `response.done` (the service
    /// refused them while a response was active).
    retry: Vec<u32>,
    /// Out-of-band responses under way: response id → (revision, μ-law so far).
    responses: HashMap<String, (u32, Vec<u8>)>,
    /// Where the last voiced message ends on the stream clock, ms (revisions never overlap).
    end_ms: u64,
}

impl DispatchAudio {
    /// The next revision of `message`, requested at stream time `stream_ms`: the
    /// `response.create` to send.
    pub fn request(&mut self, message: String, stream_ms: u64) -> ClientEvent {
        self.revision += 1;
        self.ask(self.revision, message, stream_ms, 1)
    }

    /// The next revision of `message`, which cannot be voiced (the call is going to a human).
    pub fn unavailable(&mut self, message: String, stream_ms: u64) -> Voiced {
        self.revision += 1;
        Voiced { revision: self.revision, status: DispatchAudioStatus::Unavailable, stream_ms, duration_ms: 0, message, audio: Vec::new() }
    }

    fn ask(&mut self, revision: u32, message: String, stream_ms: u64, tries: u32) -> ClientEvent {
        let mut metadata = serde_json::Map::new();
        metadata.insert("purpose".into(), DISPATCH_AUDIO_PURPOSE.into());
        metadata.insert("revision".into(), revision.to_string().into());
        let ev = ClientEvent::ResponseCreate {
            event_id: Some(format!("dispatch_audio_{revision}_{tries}")),
            response: Some(ResponseCreateParams {
                instructions: Some(DISPATCH_VOICE_INSTRUCTIONS.into()),
                conversation: Some("none".into()),
                input: Some(vec![ItemCreate::user_text(message.clone())]),
                metadata: Some(metadata),
                output_modalities: Some(vec!["audio".into()]),
            }),
        };
        self.requested.insert(revision, (message, stream_ms, tries));
        ev
    }

    /// An in-conversation response is done: the revisions refused while it was active, asked
    /// again.
    pub fn after_response(&mut self) -> Vec<ClientEvent> {
        let retry = std::mem::take(&mut self.retry);
        retry.into_iter().filter_map(|r| self.again(r)).collect()
    }

    /// A new session: what the old one had under way is gone; every revision not yet voiced is
    /// asked again, in order.
    pub fn on_new_session(&mut self) -> Vec<ClientEvent> {
        self.responses.clear();
        self.retry.clear();
        let mut pending: Vec<u32> = self.requested.keys().copied().collect();
        pending.sort_unstable();
        pending.into_iter().filter_map(|r| self.again(r)).collect()
    }

    fn again(&mut self, revision: u32) -> Option<ClientEvent> {
        let (message, stream_ms, tries) = self.requested.remove(&revision)?;
        Some(self.ask(revision, message, stream_ms, tries + 1))
    }

    /// Keeps a delta (base64 μ-law) of `response_id` when it is one of ours (`scratch`: a
    /// decode buffer).
    pub fn delta(&mut self, response_id: &str, delta: &str, scratch: &mut Vec<u8>) -> Routed {
        let Some((_, audio)) = self.responses.get_mut(response_id) else { return Routed::NotOurs };
        match mulaw::decode_base64_into(delta, scratch) {
            Ok(_) => {
                audio.extend_from_slice(scratch);
                Routed::Ours
            }
            Err(e) => Routed::Skip(format!("dispatch audio: {e}")),
        }
    }

    /// Routes a model event: ours (kept, skipped, or a revision done) or not.
    pub fn on_event(&mut self, ev: &ServerEvent, scratch: &mut Vec<u8>) -> Routed {
        match ev {
            ServerEvent::ResponseCreated { response, .. } => {
                let meta = response.metadata.as_ref();
                if meta.and_then(|m| m.get("purpose")).and_then(|p| p.as_str()) != Some(DISPATCH_AUDIO_PURPOSE) {
                    return Routed::NotOurs;
                }
                let revision = meta.and_then(|m| m.get("revision")).and_then(|r| r.as_str()).and_then(|r| r.parse::<u32>().ok());
                match revision.filter(|r| self.requested.contains_key(r)) {
                    Some(r) => {
                        self.responses.insert(response.id.clone(), (r, Vec::new()));
                        Routed::Ours
                    }
                    None => Routed::Skip(format!("out-of-band response {} for no dispatch audio requested", response.id)),
                }
            }
            ServerEvent::ResponseOutputAudioDelta { response_id, delta, .. } => self.delta(response_id, delta, scratch),
            ServerEvent::ResponseOutputAudioTranscriptDelta { response_id, .. }
            | ServerEvent::ResponseOutputAudioTranscriptDone { response_id, .. }
            | ServerEvent::ResponseOutputAudioDone { response_id, .. }
            | ServerEvent::ResponseOutputItemAdded { response_id, .. }
            | ServerEvent::ResponseOutputItemDone { response_id, .. } => {
                if self.responses.contains_key(response_id) { Routed::Ours } else { Routed::NotOurs }
            }
            ServerEvent::ResponseDone { response, .. } => {
                let Some((revision, audio)) = self.responses.remove(&response.id) else { return Routed::NotOurs };
                let Some((message, requested_ms, _)) = self.requested.remove(&revision) else { return Routed::Ours };
                let stream_ms = requested_ms.max(self.end_ms);
                let duration_ms = mulaw::bytes_to_ms(audio.len());
                let status = status_of(response.status_kind(), !audio.is_empty());
                if !audio.is_empty() {
                    self.end_ms = stream_ms + duration_ms;
                }
                Routed::Done(Voiced { revision, status, stream_ms, duration_ms, message, audio })
            }
            ServerEvent::Error { error, .. } => {
                let Some(revision) = error.event_id.as_deref().and_then(|id| id.strip_prefix("dispatch_audio_")).and_then(|r| r.split('_').next()).and_then(|r| r.parse::<u32>().ok()) else { return Routed::NotOurs };
                let Some((_, _, tries)) = self.requested.get(&revision) else { return Routed::NotOurs };
                if error.code.as_deref() == Some("conversation_already_has_active_response") && *tries < DISPATCH_AUDIO_TRIES {
                    // Asked while a response was active: ask again when it is done.
                    tracing::debug!(revision, "dispatch audio: a response is active; asking again after it");
                    self.retry.push(revision);
                    return Routed::Ours;
                }
                tracing::warn!(revision, code = ?error.code, message = %error.message, "dispatch audio refused by the model");
                match self.requested.remove(&revision) {
                    Some((message, stream_ms, _)) => Routed::Done(Voiced { revision, status: DispatchAudioStatus::Failed, stream_ms, duration_ms: 0, message, audio: Vec::new() }),
                    None => Routed::Ours,
                }
            }
            _ => Routed::NotOurs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchfloor_wire::realtime::{ErrorDetail, Response};

    fn created(id: &str, revision: &str) -> ServerEvent {
        let mut meta = serde_json::Map::new();
        meta.insert("purpose".into(), DISPATCH_AUDIO_PURPOSE.into());
        meta.insert("revision".into(), revision.into());
        ServerEvent::ResponseCreated { event_id: String::new(), response: Response { id: id.into(), status: "in_progress".into(), metadata: Some(serde_json::Value::Object(meta)), ..Default::default() } }
    }

    fn done(id: &str) -> ServerEvent {
        ServerEvent::ResponseDone { event_id: String::new(), response: Response { id: id.into(), status: "completed".into(), ..Default::default() } }
    }

    #[test]
    fn revisions_are_voiced_one_after_another_on_the_stream_clock() {
        let mut d = DispatchAudio::default();
        let mut scratch = Vec::new();
        let ClientEvent::ResponseCreate { event_id, .. } = d.request("Engine 7, respond".into(), 1_000) else { panic!() };
        assert_eq!(event_id.as_deref(), Some("dispatch_audio_1_1"));
        assert_eq!(d.on_event(&created("resp_a", "1"), &mut scratch), Routed::Ours);
        assert_eq!(d.delta("resp_a", &mulaw::encode_base64(&[0x10; 8000]), &mut scratch), Routed::Ours);
        assert_eq!(d.delta("resp_talk", "AAAA", &mut scratch), Routed::NotOurs, "the agent's own audio");
        let Routed::Done(v) = d.on_event(&done("resp_a"), &mut scratch) else { panic!() };
        assert_eq!((v.revision, v.status, v.stream_ms, v.duration_ms, v.audio.len()), (1, DispatchAudioStatus::Completed, 1_000, 1_000, 8000));
        // A correction asked for at 1 500 ms follows the first message's audio.
        d.request("Engine 7, Medic 3, respond".into(), 1_500);
        d.on_event(&created("resp_b", "2"), &mut scratch);
        d.delta("resp_b", &mulaw::encode_base64(&[0x10; 800]), &mut scratch);
        let Routed::Done(v) = d.on_event(&done("resp_b"), &mut scratch) else { panic!() };
        assert_eq!((v.revision, v.stream_ms), (2, 2_000));
        assert!(matches!(d.on_event(&created("resp_c", "9"), &mut scratch), Routed::Skip(_)), "a revision never asked for");
    }

    #[test]
    fn a_voicing_without_audio_or_of_an_unknown_status_failed() {
        assert_eq!(status_of(ResponseStatus::Completed, true), DispatchAudioStatus::Completed);
        assert_eq!(status_of(ResponseStatus::Completed, false), DispatchAudioStatus::Failed);
        assert_eq!(status_of(ResponseStatus::Cancelled, true), DispatchAudioStatus::Cancelled);
        assert_eq!(status_of("paused".parse().unwrap_or(ResponseStatus::Unknown), true), DispatchAudioStatus::Failed);
    }

    #[test]
    fn a_busy_refusal_is_asked_again_after_the_response_and_then_gives_up() {
        let mut d = DispatchAudio::default();
        let mut scratch = Vec::new();
        d.request("Engine 7, respond".into(), 0);
        let busy = |try_: u32| ServerEvent::Error {
            event_id: String::new(),
            error: ErrorDetail { kind: "invalid_request_error".into(), code: Some("conversation_already_has_active_response".into()), message: "busy".into(), param: None, event_id: Some(format!("dispatch_audio_1_{try_}")) },
        };
        for try_ in 1..DISPATCH_AUDIO_TRIES {
            assert_eq!(d.on_event(&busy(try_), &mut scratch), Routed::Ours);
            let again = d.after_response();
            assert!(matches!(&again[..], [ClientEvent::ResponseCreate { event_id: Some(id), .. }] if *id == format!("dispatch_audio_1_{}", try_ + 1)));
        }
        let Routed::Done(v) = d.on_event(&busy(DISPATCH_AUDIO_TRIES), &mut scratch) else { panic!() };
        assert_eq!(v.status, DispatchAudioStatus::Failed);
        assert!(d.after_response().is_empty());
        assert!(d.on_new_session().is_empty(), "nothing left to ask for");
    }
}
