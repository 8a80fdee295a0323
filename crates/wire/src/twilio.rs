//! Twilio Media Streams messages (bidirectional `<Connect><Stream>`), PROTOCOLS.md §2.
//!
//! Inbound (Twilio → us): `connected`, `start`, `media`, `dtmf`, `mark`, `stop`, and anything else
//! as [`TwilioInbound::Unknown`]. Outbound (us → Twilio): `media`, `mark`, `clear`.
//! `sequenceNumber`, `chunk` and `timestamp` are decimal strings on the wire; they stay strings
//! here and are parsed where they are used.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::WireError;

/// A message Twilio sends on the media stream WebSocket (text frames, JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum TwilioInbound {
    /// First message on a new socket.
    Connected {
        /// Always `"Call"`.
        protocol: String,
        /// Protocol version, e.g. `"1.0.0"`.
        version: String,
    },
    /// Stream metadata; the first message after `connected`.
    Start {
        /// Decimal string, increments by one per message.
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        /// The stream's id (`MZ…`).
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// Call and stream metadata.
        start: StreamStart,
    },
    /// 20 ms of caller audio (160 μ-law bytes, base64).
    Media {
        /// Decimal string.
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        /// The stream's id.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// The audio chunk.
        media: InboundMedia,
    },
    /// A DTMF key the caller pressed.
    Dtmf {
        /// Decimal string.
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        /// The stream's id.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// The digit.
        dtmf: Dtmf,
    },
    /// A mark we sent, echoed when the audio before it has played (or was cleared).
    Mark {
        /// Decimal string.
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        /// The stream's id.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// The mark's name as we sent it.
        mark: MarkName,
    },
    /// The stream ended (call hung up or the stream was stopped).
    Stop {
        /// Decimal string.
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        /// The stream's id.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// Which call stopped.
        stop: StreamStop,
    },
    /// An event this version does not know. Kept, logged and shown, never an error.
    #[serde(skip)]
    Unknown {
        /// The `event` field.
        event: String,
        /// The whole message as received.
        raw: String,
    },
}

/// The `start` object of a `start` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStart {
    /// The stream's id (`MZ…`).
    pub stream_sid: String,
    /// The Twilio account (`AC…`).
    pub account_sid: String,
    /// The call (`CA…`); Watchfloor's call id.
    pub call_sid: String,
    /// Tracks streamed, e.g. `["inbound"]`.
    #[serde(default)]
    pub tracks: Vec<String>,
    /// The `<Parameter>`s of the `<Stream>` TwiML.
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
    /// Audio format; always μ-law 8 kHz mono for bidirectional streams.
    #[serde(default)]
    pub media_format: Option<MediaFormat>,
}

/// Audio format of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    /// `"audio/x-mulaw"`.
    pub encoding: String,
    /// Hz, `8000`.
    pub sample_rate: u32,
    /// `1`.
    pub channels: u32,
}

/// The `media` object of an inbound `media` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMedia {
    /// `"inbound"` (or `"outbound"` on a both-tracks unidirectional stream).
    #[serde(default)]
    pub track: String,
    /// Decimal chunk counter, from `"1"`.
    #[serde(default)]
    pub chunk: String,
    /// Decimal ms since the stream started.
    pub timestamp: String,
    /// Base64 μ-law.
    pub payload: String,
}

/// The `dtmf` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dtmf {
    /// `"inbound_track"`.
    #[serde(default)]
    pub track: String,
    /// `0`–`9`, `*`, `#`.
    pub digit: String,
}

/// The `mark` object (both directions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkName {
    /// Required by Twilio; Watchfloor names marks so they identify item and offset.
    pub name: String,
}

/// The `stop` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStop {
    /// The Twilio account.
    pub account_sid: String,
    /// The call.
    pub call_sid: String,
}

/// Internal shape used to find the `event` of a message we do not know.
#[derive(Deserialize)]
struct EventOnly {
    event: String,
}

const KNOWN_INBOUND: [&str; 6] = ["connected", "start", "media", "dtmf", "mark", "stop"];

impl TwilioInbound {
    /// Parses one text frame from Twilio.
    ///
    /// An unknown `event` gives [`TwilioInbound::Unknown`]; a known event with the wrong shape, or
    /// text that is not a JSON object with an `event` string, is [`WireError::Malformed`].
    pub fn parse(text: &str) -> Result<Self, WireError> {
        match serde_json::from_str::<TwilioInbound>(text) {
            Ok(msg) => Ok(msg),
            Err(source) => {
                let malformed = || WireError::Malformed { protocol: "twilio", source };
                match serde_json::from_str::<EventOnly>(text) {
                    Ok(EventOnly { event }) if !KNOWN_INBOUND.contains(&event.as_str()) => {
                        Ok(TwilioInbound::Unknown { event, raw: text.to_owned() })
                    }
                    _ => Err(malformed()),
                }
            }
        }
    }

    /// The `event` name on the wire.
    pub fn event_name(&self) -> &str {
        match self {
            TwilioInbound::Connected { .. } => "connected",
            TwilioInbound::Start { .. } => "start",
            TwilioInbound::Media { .. } => "media",
            TwilioInbound::Dtmf { .. } => "dtmf",
            TwilioInbound::Mark { .. } => "mark",
            TwilioInbound::Stop { .. } => "stop",
            TwilioInbound::Unknown { event, .. } => event,
        }
    }

    /// Serialises a message as Twilio would send it (used by the caller fake).
    /// [`TwilioInbound::Unknown`] gives back its raw text.
    pub fn to_json(&self) -> String {
        match self {
            TwilioInbound::Unknown { raw, .. } => raw.clone(),
            // Invariant: every known variant is plain data that serialises without error.
            other => serde_json::to_string(other).expect("TwilioInbound serialises"),
        }
    }
}

/// An inbound `media` message read in place (the hot path: 50 per second per call): its
/// strings borrow from the frame's text, nothing is copied. Same required fields as
/// [`TwilioInbound::Media`]; other fields are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MediaRef<'a> {
    /// Always `"media"` for a value [`MediaRef::parse`] returns.
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    /// Decimal string.
    #[serde(borrow, rename = "sequenceNumber")]
    pub sequence_number: Cow<'a, str>,
    /// The stream's id.
    #[serde(borrow, rename = "streamSid")]
    pub stream_sid: Cow<'a, str>,
    /// The audio chunk.
    #[serde(borrow)]
    pub media: InboundMediaRef<'a>,
}

/// The `media` object of a [`MediaRef`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InboundMediaRef<'a> {
    /// `"inbound"`.
    #[serde(borrow, default)]
    pub track: Cow<'a, str>,
    /// Decimal ms since the stream started.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    /// Base64 μ-law (base64 has no characters JSON escapes, so this borrows).
    #[serde(borrow)]
    pub payload: Cow<'a, str>,
}

impl<'a> MediaRef<'a> {
    /// Reads `text` as a well-formed `media` message, or `None` (anything else, or a malformed
    /// `media`: [`TwilioInbound::parse`] then gives the message or the error).
    pub fn parse(text: &'a str) -> Option<MediaRef<'a>> {
        if !text.contains(r#""media""#) {
            return None;
        }
        serde_json::from_str::<MediaRef<'a>>(text).ok().filter(|m| m.event == "media")
    }
}

/// An inbound `mark` echo read in place (the hot path while the agent speaks: one per chunk of
/// agent audio played): its name borrows from the frame's text unless it has JSON escapes. Same
/// required fields as [`TwilioInbound::Mark`]; other fields are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MarkRef<'a> {
    /// Always `"mark"` for a value [`MarkRef::parse`] returns.
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    /// The stream's id.
    #[serde(borrow, rename = "streamSid")]
    pub stream_sid: Cow<'a, str>,
    /// The mark.
    #[serde(borrow)]
    pub mark: MarkNameRef<'a>,
}

/// The `mark` object of a [`MarkRef`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MarkNameRef<'a> {
    /// The name we gave it.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

impl<'a> MarkRef<'a> {
    /// Reads `text` as a well-formed `mark` message, or `None` (anything else, or a malformed
    /// `mark`: [`TwilioInbound::parse`] then gives the message or the error).
    pub fn parse(text: &'a str) -> Option<MarkRef<'a>> {
        if !text.contains(r#""mark""#) {
            return None;
        }
        serde_json::from_str::<MarkRef<'a>>(text).ok().filter(|m| m.event == "mark")
    }
}

/// A message we send to Twilio on the media stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum TwilioOutbound {
    /// Agent audio to play to the caller (raw μ-law, base64, no header). Twilio buffers and plays in order.
    Media {
        /// The stream's id.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// The audio.
        media: OutboundMedia,
    },
    /// Ask Twilio to echo this name once the audio queued before it has played.
    Mark {
        /// The stream's id.
        #[serde(rename = "streamSid")]
        stream_sid: String,
        /// The name (required).
        mark: MarkName,
    },
    /// Drop all buffered outbound audio now (barge-in); pending marks are echoed.
    Clear {
        /// The stream's id.
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
}

/// The `media` object of an outbound `media` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMedia {
    /// Base64 μ-law.
    pub payload: String,
}

impl TwilioOutbound {
    /// Serialises the message to its JSON text.
    pub fn to_json(&self) -> String {
        // Invariant: plain data of strings serialises without error.
        serde_json::to_string(self).expect("TwilioOutbound serialises")
    }

    /// Parses a message we sent (used by the caller fake). Unknown events are malformed here:
    /// Twilio itself closes the stream on them.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        serde_json::from_str(text).map_err(|source| WireError::Malformed { protocol: "twilio", source })
    }
}

/// The audio of an outbound `media` message written by [`write_media`].
#[derive(Debug, Clone, Copy)]
pub enum MediaPayload<'a> {
    /// Already standard base64 (the model's `delta` passed through as it came): validated by
    /// the caller, who decoded it. Base64 needs no JSON escaping.
    Base64(&'a str),
    /// Raw μ-law, encoded here.
    Mulaw(&'a [u8]),
}

/// Writes `s` as a JSON string (quoted, escaped) into `out`. No allocation beyond `out`'s growth.
fn write_json_str(out: &mut bytes::BytesMut, s: &(impl std::fmt::Display + ?Sized)) {
    use bytes::BufMut as _;
    // Invariant: writing into a growable buffer cannot fail, and `collect_str` escapes as it
    // goes (no intermediate String).
    serde::Serializer::collect_str(&mut serde_json::Serializer::new((&mut *out).writer()), s).expect("writing JSON into memory");
}

/// Appends the JSON text of an outbound `media` message to `out` (the hot path: no
/// intermediate values; the same text as [`TwilioOutbound::Media`]'s [`TwilioOutbound::to_json`]).
pub fn write_media(out: &mut bytes::BytesMut, stream_sid: &str, payload: MediaPayload<'_>) {
    out.extend_from_slice(br#"{"event":"media","streamSid":"#);
    write_json_str(out, stream_sid);
    out.extend_from_slice(br#","media":{"payload":""#);
    match payload {
        MediaPayload::Base64(text) => out.extend_from_slice(text.as_bytes()),
        MediaPayload::Mulaw(audio) => crate::mulaw::encode_base64_into(audio, out),
    }
    out.extend_from_slice(br#""}}"#);
}

/// Appends the JSON text of an outbound `mark` named `name` to `out` (the hot path; the same
/// text as [`TwilioOutbound::Mark`]'s [`TwilioOutbound::to_json`]).
pub fn write_mark(out: &mut bytes::BytesMut, stream_sid: &str, name: &(impl std::fmt::Display + ?Sized)) {
    out.extend_from_slice(br#"{"event":"mark","streamSid":"#);
    write_json_str(out, stream_sid);
    out.extend_from_slice(br#","mark":{"name":"#);
    write_json_str(out, name);
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden messages in the shape Twilio's Media Streams documentation shows.
    const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC0123456789abcdef0123456789abcdef","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","callSid":"CA0123456789abcdef0123456789abcdef","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"callId":"CA0123456789abcdef0123456789abcdef"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}"#;
    const MEDIA: &str = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"//Ln3tnY2+Pt+oaTnaSmpZ+Wiv3x5d3Y2Nzk7/yIlJ6kpqSelIj77+Tc2Njd5fH+ipafpaaknZKG+u3i29jZ3ufz/4yYoKWmo5uQhPjr4drY2d/p9YGOmaGmpqKaj4L26eDa2Nrg6veDkJuipqahmI2A9Ojf2djb4uz5hZGco6aloJeL//Lm3djY2+Pu+4eTnaSmpZ+Vif3w5dzY2Nzl8A=="},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}"#;
    const DTMF: &str = r#"{"event":"dtmf","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#;
    const MARK: &str = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","mark":{"name":"my label"}}"#;
    const STOP: &str = r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","stop":{"accountSid":"AC0123456789abcdef0123456789abcdef","callSid":"CA0123456789abcdef0123456789abcdef"}}"#;

    #[test]
    fn golden_inbound_messages_parse() {
        assert!(matches!(TwilioInbound::parse(CONNECTED).unwrap(), TwilioInbound::Connected { ref version, .. } if version == "1.0.0"));
        match TwilioInbound::parse(START).unwrap() {
            TwilioInbound::Start { start, sequence_number, .. } => {
                assert_eq!(sequence_number, "1");
                assert_eq!(start.call_sid, "CA0123456789abcdef0123456789abcdef");
                assert_eq!(start.custom_parameters["callId"], start.call_sid);
                assert_eq!(start.media_format.unwrap().sample_rate, 8000);
            }
            other => panic!("{other:?}"),
        }
        match TwilioInbound::parse(MEDIA).unwrap() {
            TwilioInbound::Media { media, .. } => {
                assert_eq!(media.timestamp, "5");
                let mut out = Vec::new();
                assert!(crate::mulaw::decode_base64_into(&media.payload, &mut out).unwrap() > 0);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(TwilioInbound::parse(DTMF).unwrap(), TwilioInbound::Dtmf { ref dtmf, .. } if dtmf.digit == "1"));
        assert!(matches!(TwilioInbound::parse(MARK).unwrap(), TwilioInbound::Mark { ref mark, .. } if mark.name == "my label"));
        assert!(matches!(TwilioInbound::parse(STOP).unwrap(), TwilioInbound::Stop { ref stop, .. } if stop.call_sid.starts_with("CA")));
    }

    #[test]
    fn media_is_read_in_place_and_agrees_with_the_full_parse() {
        let m = MediaRef::parse(MEDIA).unwrap();
        assert!(matches!(m.media.payload, Cow::Borrowed(_)), "the payload borrows from the frame");
        let TwilioInbound::Media { media, stream_sid, sequence_number } = TwilioInbound::parse(MEDIA).unwrap() else { panic!() };
        assert_eq!((m.media.payload.as_ref(), m.media.timestamp.as_ref(), m.media.track.as_ref()), (media.payload.as_str(), media.timestamp.as_str(), media.track.as_str()));
        assert_eq!((m.stream_sid.as_ref(), m.sequence_number.as_ref()), (stream_sid.as_str(), sequence_number.as_str()));
        // Other events, and a media message the full parse refuses, are not read in place.
        for other in [CONNECTED, START, DTMF, MARK, STOP, r#"{"event":"media","streamSid":"MZ1","sequenceNumber":"2"}"#, r#"{"event":"media","streamSid":"MZ1","media":{"timestamp":"0","payload":"AA=="}}"#, "not json"] {
            assert!(MediaRef::parse(other).is_none(), "{other}");
        }
    }

    #[test]
    fn unknown_event_is_a_value() {
        let raw = r#"{"event":"transcription","streamSid":"MZ1","whatever":{"a":1}}"#;
        match TwilioInbound::parse(raw).unwrap() {
            TwilioInbound::Unknown { event, raw: kept } => {
                assert_eq!(event, "transcription");
                assert_eq!(kept, raw);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_known_events_and_garbage_are_errors() {
        for bad in [
            "not json",
            "{}",
            r#"{"event":42}"#,
            r#"{"event":"media","streamSid":"MZ1","sequenceNumber":"2"}"#,
            r#"{"event":"start","streamSid":"MZ1"}"#,
        ] {
            assert!(TwilioInbound::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn outbound_shapes_match_protocol() {
        let media = TwilioOutbound::Media {
            stream_sid: "MZ1".into(),
            media: OutboundMedia { payload: "//8=".into() },
        };
        let v: serde_json::Value = serde_json::from_str(&media.to_json()).unwrap();
        assert_eq!(v, serde_json::json!({"event":"media","streamSid":"MZ1","media":{"payload":"//8="}}));
        let mark = TwilioOutbound::Mark { stream_sid: "MZ1".into(), mark: MarkName { name: "item_1:200".into() } };
        let mut text = bytes::BytesMut::new();
        write_mark(&mut text, "MZ1", "item_1:200");
        assert_eq!(std::str::from_utf8(&text).unwrap(), mark.to_json(), "the hot path's mark is the typed one's text");
        let v: serde_json::Value = serde_json::from_str(&mark.to_json()).unwrap();
        assert_eq!(v, serde_json::json!({"event":"mark","streamSid":"MZ1","mark":{"name":"item_1:200"}}));
        let clear = TwilioOutbound::Clear { stream_sid: "MZ1".into() };
        assert_eq!(clear.to_json(), r#"{"event":"clear","streamSid":"MZ1"}"#);
        // The hot path's media, from base64 or from μ-law, is the typed message's text.
        let mut text = bytes::BytesMut::new();
        write_media(&mut text, "MZ1", MediaPayload::Base64("//8="));
        assert_eq!(std::str::from_utf8(&text).unwrap(), media.to_json());
        text.clear();
        write_media(&mut text, "MZ1", MediaPayload::Mulaw(&[0xff, 0xff]));
        assert_eq!(std::str::from_utf8(&text).unwrap(), media.to_json());
        // Names from elsewhere (a model's item id) are escaped, never spliced in raw.
        text.clear();
        write_mark(&mut text, "MZ\"1", &format_args!("{}:{}", "item\"}\n", 160));
        let parsed = TwilioOutbound::parse(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(parsed, TwilioOutbound::Mark { stream_sid: "MZ\"1".into(), mark: MarkName { name: "item\"}\n:160".into() } });
        assert_eq!(TwilioOutbound::parse(&clear.to_json()).unwrap(), clear);
    }

    #[test]
    fn a_mark_echo_reads_in_place() {
        let m = MarkRef::parse(MARK).unwrap();
        assert_eq!(m.mark.name, "my label");
        assert!(matches!(m.mark.name, Cow::Borrowed(_)), "no copy");
        assert!(MarkRef::parse(MEDIA).is_none() && MarkRef::parse(r#"{"event":"mark","streamSid":"MZ1"}"#).is_none());
        let escaped = MarkRef::parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"a\"b"}}"#).unwrap();
        assert_eq!(escaped.mark.name, "a\"b");
    }

    #[test]
    fn inbound_round_trips() {
        for text in [CONNECTED, START, MEDIA, DTMF, MARK, STOP] {
            let msg = TwilioInbound::parse(text).unwrap();
            assert_eq!(TwilioInbound::parse(&msg.to_json()).unwrap(), msg);
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = TwilioInbound::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_jsonish(event in "[a-z]{0,10}", body in "[{}\\[\\]\":,a-z0-9 ]{0,80}") {
            let _ = TwilioInbound::parse(&format!(r#"{{"event":"{event}",{body}"#));
        }
    }
}
