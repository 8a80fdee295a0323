//! The console's view of a live call ([`LiveCall`], [`crate::CallFold::live`]) and the messages
//! of the live feed (`GET /api/live`).
//!
//! The console keeps it by applying [`CallEvent`]s with its own reducer (`ui/src/lib/live.ts`);
//! the server projects it from the one fold. Both are checked against one fixture of events and
//! the state they give (`ui/src/lib/fixtures/live-call.json`), so the console and the server
//! cannot drift.

use serde::{Deserialize, Serialize};
use watchfloor_dispatch::alerts::{AlertKind, Severity};
use watchfloor_dispatch::incident::Incident;
use watchfloor_dispatch::policy::DispatchedBy;
use watchfloor_dispatch::types::Priority;
use watchfloor_dispatch::units::UnitStatus;

use crate::event::{CallEvent, CallMode, CallStatus, HandOffAction, Speaker, Talking, Track};

/// Transcript lines a live call keeps for the board and a newly connected console (the record
/// has all of them).
pub const LIVE_TRANSCRIPT_LINES: usize = 40;

/// Where a live call's dispatch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DispatchPhase {
    /// Nothing proposed yet.
    #[default]
    None,
    /// Proposed, waiting for a supervisor (or the hold window).
    Proposed,
    /// Sent to the units.
    Dispatched,
    /// Recalled by a supervisor.
    Recalled,
}

/// The dispatch of a live call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct LiveDispatch {
    /// Where it stands.
    pub phase: DispatchPhase,
    /// The priority when proposed.
    pub priority: Option<Priority>,
    /// The radio message as it stands.
    pub message: Option<String>,
    /// Units proposed, or sent.
    pub units: Vec<String>,
    /// When a supervised P1 goes out on its own, ms since the Unix epoch.
    pub auto_dispatch_at_ms: Option<u64>,
    /// When it was (last) proposed, ms since the Unix epoch.
    pub proposed_at_ms: Option<u64>,
    /// When it went out, ms since the Unix epoch.
    pub dispatched_at_ms: Option<u64>,
    /// Who sent it.
    pub dispatched_by: Option<DispatchedBy>,
    /// Who recalled it.
    pub recalled_by: Option<String>,
    /// The proposal has waited past its hold window.
    pub waiting_too_long: bool,
    /// The latest voiced dispatch message (`/api/calls/{CallSid}/dispatch/{n}/audio.wav`).
    pub audio_url: Option<String>,
}

/// An alert on a live call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct LiveAlert {
    /// Per-call number (for acknowledgement).
    pub alert_id: u32,
    /// What was detected (the alert's kind and its facts).
    pub alert: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
}

/// A transcript line on a live call: partial while it streams, then final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct LiveLine {
    /// Who spoke the line (caller, agent or supervisor).
    pub speaker: Speaker,
    /// The model's item id.
    pub item_id: String,
    /// The text so far.
    pub text: String,
    /// When the line started (partial) or was final, ms since the Unix epoch.
    pub at_ms: u64,
    /// Final (no more deltas).
    #[serde(rename = "final")]
    #[ts(rename = "final")]
    pub is_final: bool,
    /// The agent was cut off by the caller.
    pub interrupted: bool,
    /// The supervisor speaking, for a `supervisor` line (shown "Supervisor (name): …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub by: Option<String>,
    /// The language it was spoken in (ISO 639-1), once final and told (issue 21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub language: Option<String>,
    /// Its machine translation into the centre's language, shown beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub translation: Option<crate::LineTranslation>,
}

/// A unit on a live call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct LiveUnit {
    /// Call sign.
    pub unit: String,
    /// Status on this call.
    pub status: UnitStatus,
}

/// Everything the board and the call view show of one live call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct LiveCall {
    /// The CallSid.
    pub call_sid: String,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// A training call (SIMULATED).
    pub simulated: bool,
    /// ms since the Unix epoch.
    pub started_at_ms: u64,
    /// Where the call stands (with the agent, taken over, ended …).
    pub status: CallStatus,
    /// Who is audible.
    pub talking: Talking,
    /// The incident as known, each field with its source.
    pub incident: Option<Incident>,
    /// The incident the call is on (issue 18): calls about one emergency share it.
    #[serde(default)]
    pub incident_id: Option<watchfloor_dispatch::linking::IncidentId>,
    /// An older incident this call may duplicate, for the supervisor to link or keep apart.
    #[serde(default)]
    pub possible_duplicate: Option<watchfloor_dispatch::linking::Duplicate>,
    /// The dispatch.
    pub dispatch: LiveDispatch,
    /// Alerts, in order.
    pub alerts: Vec<LiveAlert>,
    /// The last [`LIVE_TRANSCRIPT_LINES`] lines (partials included), in order.
    pub transcript: Vec<LiveLine>,
    /// Units on the call.
    pub units: Vec<LiveUnit>,
    /// Questions the agent asked.
    pub agent_questions: u32,
    /// Times the caller talked over the agent.
    pub barge_ins: u32,
    /// Model errors seen.
    pub model_errors: u32,
    /// Why the call went to the human line, if it did.
    pub fallback_reason: Option<String>,
    /// What a supervisor did, if they handed the call off.
    pub handed_off: Option<HandOffAction>,
    /// Whispers sent to the agent.
    pub whispers: u32,
    /// Why the call ended, once it has.
    pub ended_reason: Option<String>,
    /// Who speaks to the caller.
    #[serde(default)]
    pub mode: CallMode,
    /// The supervisor holding the call's voice, while one does.
    #[serde(default)]
    pub voice_holder: Option<String>,
    /// Sequence number of the last event applied (a console skips events at or below it).
    pub last_seq: Option<u64>,
    /// Time of the last event applied, ms since the Unix epoch.
    pub last_at_ms: u64,
}

/// The URL where the voiced dispatch message `revision` of a call is served.
pub fn dispatch_audio_url(call_sid: &str, revision: u32) -> String {
    format!("/api/calls/{call_sid}/dispatch/{revision}/audio.wav")
}

/// What the live feed sends a console (text frames, JSON). Audio goes as binary frames
/// ([`encode_audio_frame`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// Every live call as it stands: on connect, and instead of the events a slow console
    /// missed (`reason: "resync"`).
    Snapshot {
        /// `connect` or `resync`.
        reason: String,
        /// The server's clock, ms since the Unix epoch (for countdowns).
        server_time_ms: u64,
        /// The calls.
        calls: Vec<LiveCall>,
    },
    /// One event of one call.
    Event {
        /// The event.
        event: CallEvent,
    },
    /// The console now gets this call's audio (binary frames).
    Listening {
        /// The call.
        call_sid: String,
        /// The tracks.
        tracks: Vec<Track>,
    },
    /// The console's voice frames now go to this call (after `talk`, issue 17).
    Talking {
        /// The call.
        call_sid: String,
    },
    /// The console's voice frames no longer go anywhere (`stop_talking`, the voice handed back
    /// or taken, or the call ended).
    TalkStopped {
        /// The call.
        call_sid: String,
    },
    /// Listen-in stopped (asked for, or the call ended).
    ListenStopped {
        /// The call.
        call_sid: String,
    },
    /// A console message was not understood or cannot be done.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// What a console sends on the live feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsoleMessage {
    /// Send this call's audio: `caller`, `agent`, or both.
    Listen {
        /// The call.
        call_sid: String,
        /// Tracks wanted.
        tracks: Vec<Track>,
    },
    /// Stop sending audio.
    StopListening,
    /// The supervisor's voice (issue 17): the binary frames that follow
    /// ([`decode_voice_frame`]) go to this call, whose voice the user holds.
    Talk {
        /// The call.
        call_sid: String,
    },
    /// Stop sending the supervisor's voice.
    StopTalking,
    /// The console holding this call's voice is alive (send at least every second while the
    /// supervisor only listens: 3 s without a frame or a keepalive is a lost console).
    VoiceKeepalive {
        /// The call.
        call_sid: String,
    },
    /// The console has processed this many text messages of this connection (flow control:
    /// with too many unacknowledged, events pause and a resync follows).
    Ack {
        /// Text messages processed, counting from 1.
        received: u64,
    },
}

/// First byte of a binary audio frame on the live feed.
pub const AUDIO_FRAME_MAGIC: u8 = b'A';

/// Encodes an audio frame for the live feed: `'A'`, track code (u8: 0 caller, 1 agent, …),
/// CallSid length (u8) and bytes, stream position (u64 big-endian, ms), then the raw μ-law
/// payload (8000 Hz, 8 bytes per ms).
pub fn encode_audio_frame(call_sid: &str, track: Track, stream_ms: u64, audio: &[u8]) -> Vec<u8> {
    let sid = &call_sid.as_bytes()[..call_sid.len().min(255)];
    let mut out = Vec::with_capacity(3 + sid.len() + 8 + audio.len());
    out.push(AUDIO_FRAME_MAGIC);
    out.push(track.code());
    out.push(sid.len() as u8);
    out.extend_from_slice(sid);
    out.extend_from_slice(&stream_ms.to_be_bytes());
    out.extend_from_slice(audio);
    out
}

/// First byte of a binary voice frame a console sends (issue 17).
pub const VOICE_FRAME_MAGIC: u8 = b'S';

/// Encodes one 20 ms frame of a supervisor's voice as a console sends it on the live feed: laid
/// out like listen-in's frames ([`encode_audio_frame`]) with `'S'` first and track byte 0, then
/// the CallSid's length (u8) and bytes, the frame's position on the supervisor's own clock (u64
/// big-endian, ms, +20 per frame), and 160 bytes of μ-law 8 kHz.
pub fn encode_voice_frame(call_sid: &str, position_ms: u64, audio: &[u8]) -> Vec<u8> {
    let mut out = encode_audio_frame(call_sid, Track::Caller, position_ms, audio);
    out[0] = VOICE_FRAME_MAGIC;
    out
}

/// Decodes a console's voice frame into (CallSid, position ms, μ-law), or `None` when it is not
/// one or its audio is not exactly 20 ms (160 bytes).
pub fn decode_voice_frame(b: &[u8]) -> Option<(String, u64, &[u8])> {
    if *b.first()? != VOICE_FRAME_MAGIC || *b.get(1)? != 0 {
        return None;
    }
    let n = *b.get(2)? as usize;
    let sid = std::str::from_utf8(b.get(3..3 + n)?).ok()?.to_string();
    let ms = u64::from_be_bytes(b.get(3 + n..11 + n)?.try_into().ok()?);
    let audio = &b[11 + n..];
    (audio.len() == 160).then_some((sid, ms, audio))
}

/// Decodes a live-feed audio frame into (CallSid, track, stream ms, μ-law), or `None` if malformed.
pub fn decode_audio_frame(b: &[u8]) -> Option<(String, Track, u64, &[u8])> {
    if *b.first()? != AUDIO_FRAME_MAGIC {
        return None;
    }
    let track = Track::from_code(*b.get(1)?)?;
    let n = *b.get(2)? as usize;
    let sid = std::str::from_utf8(b.get(3..3 + n)?).ok()?.to_string();
    let ms = u64::from_be_bytes(b.get(3 + n..11 + n)?.try_into().ok()?);
    Some((sid, track, ms, &b[11 + n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_frames_round_trip_and_only_whole_frames_pass() {
        let f = encode_voice_frame("CA9", 40, &[7u8; 160]);
        assert_eq!(f[0], b'S');
        assert_eq!(decode_voice_frame(&f), Some(("CA9".to_string(), 40, &[7u8; 160][..])));
        assert_eq!(decode_voice_frame(&encode_voice_frame("CA9", 40, &[7u8; 80])), None, "half a frame");
        assert_eq!(decode_voice_frame(&encode_audio_frame("CA9", Track::Caller, 40, &[7u8; 160])), None, "listen-in's framing");
        assert_eq!(decode_voice_frame(b"S"), None);
    }

    #[test]
    fn audio_frames_round_trip_and_garbage_is_refused() {
        let f = encode_audio_frame("CA123", Track::Agent, 1_234_567, &[1, 2, 3]);
        assert_eq!(decode_audio_frame(&f), Some(("CA123".to_string(), Track::Agent, 1_234_567, &[1u8, 2, 3][..])));
        assert_eq!(decode_audio_frame(&f[..6]), None);
        assert_eq!(decode_audio_frame(b"Xjunk"), None);
        assert_eq!(decode_audio_frame(&[]), None);
    }
}

#[cfg(test)]
mod fixture {
    use super::*;

    /// The committed fixture the console's reducer is tested with (written by the live-feed
    /// test from a real simulated call) still holds for the fold's view.
    #[test]
    fn the_console_fixture_holds_for_the_fold() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/fixtures/live-call.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let events: Vec<CallEvent> = serde_json::from_value(v["events"].clone()).unwrap();
        let expected: LiveCall = serde_json::from_value(v["state"].clone()).unwrap();
        assert!(events.len() > 50, "a whole call");
        let fold = crate::CallFold::of("", &events);
        assert_eq!(fold.live(), expected);
    }
}
