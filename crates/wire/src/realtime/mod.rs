//! OpenAI Realtime API (GA, model `gpt-realtime`) events, PROTOCOLS.md §1.
//!
//! [`ClientEvent`]: what the bridge sends. [`ServerEvent`]: what the service sends, with
//! [`ServerEvent::Unknown`] keeping the raw JSON of any `type` this version does not know.
//! Only GA names appear here (`response.output_audio.delta`, `audio/pcmu`, `audio.input.turn_detection`);
//! the beta shape (`OpenAI-Beta: realtime=v1`, `g711_ulaw`, `response.audio.delta`) is never produced.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::WireError;

// ---------------------------------------------------------------------------------------------
// Session configuration (session.update)
// ---------------------------------------------------------------------------------------------

/// The `session` object of `session.update` (GA shape), fully typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// `"realtime"` for a speech-to-speech session; `"transcription"` for a transcription-only
    /// session (PROTOCOLS.md §5: opened on `?intent=transcription`, it takes only `audio.input`
    /// and `include`, and never answers).
    #[serde(rename = "type")]
    pub kind: String,
    /// Model name, e.g. `"gpt-realtime"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<String>,
    /// `["audio"]` or `["text"]`, never both.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_modalities: Option<Vec<String>>,
    /// System instructions for the agent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub instructions: Option<String>,
    /// Input and output audio settings.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub audio: Option<AudioConfig>,
    /// Function tools the model may call.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tools: Option<Vec<Tool>>,
    /// `"auto"`, `"none"`, `"required"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tool_choice: Option<String>,
    /// A token count or `"inf"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_output_tokens: Option<MaxTokens>,
    /// Extra fields in the server's events, e.g.
    /// `["item.input_audio_transcription.logprobs"]` (a transcription session, PROTOCOLS.md §5).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub include: Option<Vec<String>>,
    /// A stored prompt used instead of, or beside, `instructions` (PROTOCOLS.md §5).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prompt: Option<Prompt>,
}

/// `session.prompt`: a prompt stored with OpenAI (PROTOCOLS.md §5,
/// `{"id":"pmpt_…","version":"3","variables":{…}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The prompt's id, `pmpt_…`.
    pub id: String,
    /// The version to use (a decimal string); absent: the prompt's current version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// Values of the prompt's `{{variables}}`, by name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variables: Option<std::collections::BTreeMap<String, String>>,
}

/// `max_output_tokens`: an integer 1–4096 or the string `"inf"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaxTokens {
    /// A hard limit.
    Count(u32),
    /// `"inf"`.
    Inf(String),
}

/// `session.audio`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioConfig {
    /// Caller-side audio.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input: Option<AudioInput>,
    /// Agent-side audio.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<AudioOutput>,
}

/// `session.audio.input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInput {
    /// `{"type":"audio/pcmu"}` for Twilio audio.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub format: Option<AudioFormat>,
    /// `{"type":"near_field"|"far_field"}`; `Some(None)` is written as `null` (no noise
    /// reduction), `None` leaves the field out (the service's default).
    #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "present")]
    pub noise_reduction: Option<Option<NoiseReduction>>,
    /// Input transcription (the caller's words).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transcription: Option<Transcription>,
    /// Voice activity detection.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub turn_detection: Option<TurnDetection>,
}

/// `session.audio.output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioOutput {
    /// `{"type":"audio/pcmu"}` for Twilio audio.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub format: Option<AudioFormat>,
    /// One of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub voice: Option<String>,
    /// Speaking rate, 0.25–1.5.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub speed: Option<f32>,
}

/// An audio format: `audio/pcmu`, `audio/pcma` (8 kHz) or `audio/pcm` (16-bit, 24 kHz).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioFormat {
    /// The MIME-like type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Only for `audio/pcm`: `24000`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rate: Option<u32>,
}

impl AudioFormat {
    /// G.711 μ-law, 8 kHz: what Twilio carries.
    pub fn pcmu() -> Self {
        AudioFormat { kind: "audio/pcmu".into(), rate: None }
    }
}

/// `noise_reduction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseReduction {
    /// Which filter.
    #[serde(rename = "type")]
    pub kind: NoiseReductionType,
}

/// `noise_reduction.type` (PROTOCOLS.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum NoiseReductionType {
    /// Close-talking microphones: headsets, phones held to the ear.
    NearField,
    /// Distant microphones: speakerphones, conference rooms.
    FarField,
}

/// `semantic_vad.eagerness`: how soon the model decides the caller's turn is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Eagerness {
    /// Waits longest (callers who pause to think).
    Low,
    /// Between low and high.
    Medium,
    /// Answers soonest.
    High,
    /// The service's choice (equivalent to medium).
    Auto,
}

/// `transcription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    /// e.g. `"gpt-4o-transcribe"`.
    pub model: String,
    /// ISO-639-1, e.g. `"en"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language: Option<String>,
    /// Optional prompt for the transcriber.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prompt: Option<String>,
}

/// `turn_detection`: server VAD or semantic VAD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnDetection {
    /// Energy/probability VAD with explicit timings.
    ServerVad {
        /// Activation threshold, 0.0–1.0 (higher needs louder speech).
        threshold: f32,
        /// Audio kept before detected speech, ms.
        prefix_padding_ms: u32,
        /// Silence that ends a turn, ms.
        silence_duration_ms: u32,
        /// Emits `input_audio_buffer.timeout_triggered` after this much caller silence, ms:
        /// `Some(None)` is written as `null` (no idle timeout, a conversation session as in
        /// PROTOCOLS.md §1); `None` leaves the field out (a transcription session, §5).
        #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "present")]
        idle_timeout_ms: Option<Option<u32>>,
        /// Reply automatically when a turn ends (absent in a transcription session, which never
        /// replies; the service's default is `true`).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        create_response: Option<bool>,
        /// Cancel the in-flight response when the caller starts speaking (absent in a
        /// transcription session; default `true`).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        interrupt_response: Option<bool>,
    },
    /// Model-judged end of turn.
    SemanticVad {
        /// How soon a turn ends.
        eagerness: Eagerness,
        /// Reply automatically when a turn ends.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        create_response: Option<bool>,
        /// Cancel the in-flight response when the caller starts speaking.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        interrupt_response: Option<bool>,
    },
}

/// A field that is present (even as `null`) deserializes to `Some`; an absent one stays `None`
/// by `#[serde(default)]`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A function tool declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `"function"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Function name.
    pub name: String,
    /// What the function is for (read by the model).
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

// ---------------------------------------------------------------------------------------------
// Conversation items
// ---------------------------------------------------------------------------------------------

/// An item the client creates with `conversation.item.create` (or passes as out-of-band `input`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemCreate {
    /// A text message from `system`, `user` or `assistant`.
    Message {
        /// `"system"`, `"user"`, `"assistant"`.
        role: String,
        /// Content parts.
        content: Vec<ContentPart>,
    },
    /// The result of a function call the model made.
    FunctionCallOutput {
        /// The `call_id` of the model's `function_call` item.
        call_id: String,
        /// The result as a JSON string.
        output: String,
    },
}

impl ItemCreate {
    /// A system message: instructions the model follows from then on (whisper, dispatch notices).
    pub fn system_text(text: impl Into<String>) -> Self {
        ItemCreate::Message { role: "system".into(), content: vec![ContentPart::InputText { text: text.into() }] }
    }

    /// A user message with text.
    pub fn user_text(text: impl Into<String>) -> Self {
        ItemCreate::Message { role: "user".into(), content: vec![ContentPart::InputText { text: text.into() }] }
    }

    /// An assistant message with text (used when re-injecting a conversation into a new session).
    pub fn assistant_text(text: impl Into<String>) -> Self {
        ItemCreate::Message { role: "assistant".into(), content: vec![ContentPart::OutputText { text: text.into() }] }
    }
}

/// A content part of a client-created message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text in a system or user message.
    InputText {
        /// The text.
        text: String,
    },
    /// Text in an assistant message.
    OutputText {
        /// The text.
        text: String,
    },
}

/// A conversation item as the server reports it. Fields not used by Watchfloor stay in `content` as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Item {
    /// Item id, e.g. `item_…`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// `"realtime.item"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<String>,
    /// `"message"`, `"function_call"`, `"function_call_output"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `"completed"`, `"in_progress"`, `"incomplete"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    /// For messages: `"user"`, `"assistant"`, `"system"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<String>,
    /// For messages: content parts as sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<Vec<Value>>,
    /// For function calls: the function name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// For function calls and outputs: the call id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub call_id: Option<String>,
    /// For function calls: the JSON arguments as a string.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arguments: Option<String>,
    /// For function call outputs: the output string.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// `response.create`'s `response` parameters (the fields Watchfloor uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ResponseCreateParams {
    /// Instructions for this response only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub instructions: Option<String>,
    /// `"auto"` (default: the call's conversation) or `"none"` (out-of-band: adds nothing to it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conversation: Option<String>,
    /// Items the out-of-band response sees instead of the conversation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input: Option<Vec<ItemCreate>>,
    /// Up to 16 string pairs; echoed on the response (tags out-of-band responses).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// `["audio"]` or `["text"]`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output_modalities: Option<Vec<String>>,
}

/// A response object as the server reports it in `response.created` / `response.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    /// `resp_…`.
    pub id: String,
    /// `"realtime.response"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<String>,
    /// `in_progress`, `completed`, `cancelled`, `failed`, `incomplete`.
    pub status: String,
    /// Why it ended, when not `completed`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_details: Option<Value>,
    /// Output items.
    #[serde(default)]
    pub output: Vec<Item>,
    /// The conversation, or `null` for out-of-band responses.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conversation_id: Option<String>,
    /// Echo of `response.create`'s metadata.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<Value>,
    /// Token usage.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub usage: Option<Value>,
}

/// A response's `status`, typed (an unknown word reads as [`ResponseStatus::Unknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ResponseStatus {
    /// Still generating.
    InProgress,
    /// Generated in full.
    Completed,
    /// Cancelled (`response.cancel`, or cut by the server's turn detection).
    Cancelled,
    /// Failed (`status_details` says why).
    Failed,
    /// Stopped early (token limit, content filter).
    Incomplete,
    /// A word this version does not know.
    Unknown,
}

impl Response {
    /// [`Response::status`], typed.
    pub fn status_kind(&self) -> ResponseStatus {
        self.status.parse().unwrap_or(ResponseStatus::Unknown)
    }
}

// ---------------------------------------------------------------------------------------------
// Client events
// ---------------------------------------------------------------------------------------------

/// An event the client sends to the Realtime service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    /// Configure the session.
    #[serde(rename = "session.update")]
    SessionUpdate {
        /// Optional client event id (echoed in errors).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        event_id: Option<String>,
        /// The configuration (boxed: it is large and sent once per session).
        session: Box<SessionConfig>,
    },
    /// Caller audio (base64 μ-law). Under server VAD the client never commits.
    #[serde(rename = "input_audio_buffer.append")]
    InputAudioBufferAppend {
        /// Optional client event id.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        event_id: Option<String>,
        /// Base64 audio in the session's input format.
        audio: String,
    },
    /// Add an item to the conversation.
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate {
        /// Optional client event id.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        event_id: Option<String>,
        /// Insert after this item (default: at the end).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        previous_item_id: Option<String>,
        /// The item.
        item: ItemCreate,
    },
    /// Cut an assistant audio item to what the caller heard.
    #[serde(rename = "conversation.item.truncate")]
    ConversationItemTruncate {
        /// Optional client event id.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        event_id: Option<String>,
        /// The assistant message item.
        item_id: String,
        /// Always 0 for audio.
        content_index: u32,
        /// Audio played, ms; longer than the item's audio is an error.
        audio_end_ms: u64,
    },
    /// Ask for a response (in the conversation, or out-of-band with `conversation: "none"`).
    #[serde(rename = "response.create")]
    ResponseCreate {
        /// Optional client event id.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        event_id: Option<String>,
        /// Parameters; absent means the session defaults.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        response: Option<ResponseCreateParams>,
    },
    /// Cancel the in-flight response.
    #[serde(rename = "response.cancel")]
    ResponseCancel {
        /// Optional client event id.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        event_id: Option<String>,
        /// A specific response (default: the default conversation's in-flight one).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        response_id: Option<String>,
    },
}

impl ClientEvent {
    /// Serialises the event to JSON text.
    pub fn to_json(&self) -> String {
        if let ClientEvent::InputAudioBufferAppend { event_id: None, audio } = self {
            // The hot path: the base64 goes in as it is, with no escaping pass.
            return input_audio_buffer_append_json(audio);
        }
        // Invariant: all fields are plain data; serde_json cannot fail on them.
        serde_json::to_string(self).expect("ClientEvent serialises")
    }

    /// The `type` name on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientEvent::SessionUpdate { .. } => "session.update",
            ClientEvent::InputAudioBufferAppend { .. } => "input_audio_buffer.append",
            ClientEvent::ConversationItemCreate { .. } => "conversation.item.create",
            ClientEvent::ConversationItemTruncate { .. } => "conversation.item.truncate",
            ClientEvent::ResponseCreate { .. } => "response.create",
            ClientEvent::ResponseCancel { .. } => "response.cancel",
        }
    }

    /// Parses a client event (used by the model fake).
    pub fn parse(text: &str) -> Result<Self, WireError> {
        serde_json::from_str(text).map_err(|source| WireError::Malformed { protocol: "realtime", source })
    }
}

/// Builds the JSON text of `input_audio_buffer.append` around an already-base64 payload without
/// decoding or re-serialising the audio (the hot path). Base64 needs no JSON escaping.
pub fn input_audio_buffer_append_json(base64_audio: &str) -> String {
    let mut s = String::with_capacity(base64_audio.len() + 48);
    s.push_str(APPEND_HEAD);
    s.push_str(base64_audio);
    s.push_str(APPEND_TAIL);
    s
}

const APPEND_HEAD: &str = r#"{"type":"input_audio_buffer.append","audio":""#;
const APPEND_TAIL: &str = r#""}"#;

/// Appends the JSON text of `input_audio_buffer.append` around an already-base64 payload to
/// `out` (the hot path: the same text as [`input_audio_buffer_append_json`], written into a
/// reused block instead of a new String). `base64_audio` must be standard base64 (validated by
/// the caller, who decoded it): it is not escaped.
pub fn write_input_audio_buffer_append(out: &mut bytes::BytesMut, base64_audio: &str) {
    out.extend_from_slice(APPEND_HEAD.as_bytes());
    out.extend_from_slice(base64_audio.as_bytes());
    out.extend_from_slice(APPEND_TAIL.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Server events
// ---------------------------------------------------------------------------------------------

/// A `response.output_audio.delta` read in place (the hot path): its strings borrow from the
/// event's text. Same required fields as [`ServerEvent::ResponseOutputAudioDelta`]; the
/// indexes are checked for type and otherwise ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AudioDeltaRef<'a> {
    /// Always `response.output_audio.delta` for a value [`AudioDeltaRef::parse`] returns.
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Base64 audio (base64 has no characters JSON escapes, so this borrows).
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
    /// Position in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// 0.
    #[serde(default)]
    pub content_index: u32,
}

impl<'a> AudioDeltaRef<'a> {
    /// Reads `text` as a well-formed audio delta, or `None` (anything else, or a malformed
    /// delta: [`ServerEvent::parse`] then gives the event or the error).
    pub fn parse(text: &'a str) -> Option<AudioDeltaRef<'a>> {
        if !text.contains(r#""response.output_audio.delta""#) {
            return None;
        }
        serde_json::from_str::<AudioDeltaRef<'a>>(text).ok().filter(|d| d.kind == "response.output_audio.delta")
    }
}

/// The `error` object of an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ErrorDetail {
    /// e.g. `"invalid_request_error"`, `"server_error"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// e.g. `"unknown_parameter"`, `"beta_api_shape_disabled"`.
    #[serde(default)]
    pub code: Option<String>,
    /// Human-readable.
    #[serde(default)]
    pub message: String,
    /// The offending parameter path.
    #[serde(default)]
    pub param: Option<String>,
    /// The client event that caused it.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// An event the Realtime service sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    /// The session exists (first event).
    #[serde(rename = "session.created")]
    SessionCreated {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The session configuration.
        session: Value,
    },
    /// A `session.update` took effect.
    #[serde(rename = "session.updated")]
    SessionUpdated {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The session configuration.
        session: Value,
    },
    /// Something went wrong; the session usually goes on.
    #[serde(rename = "error")]
    Error {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The error's type, code, message and the parameter it refers to.
        error: ErrorDetail,
    },
    /// VAD heard the caller start speaking: the barge-in trigger.
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// ms into the input buffer where speech starts (prefix padding included).
        audio_start_ms: u64,
        /// The user item that will hold this turn.
        item_id: String,
    },
    /// VAD heard the caller stop.
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// ms into the input buffer where speech ended.
        audio_end_ms: u64,
        /// The user item.
        item_id: String,
    },
    /// The input buffer became a user item.
    #[serde(rename = "input_audio_buffer.committed")]
    InputAudioBufferCommitted {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The new user item.
        item_id: String,
        /// The item before it.
        #[serde(default)]
        previous_item_id: Option<String>,
    },
    /// The caller was silent for `idle_timeout_ms`.
    #[serde(rename = "input_audio_buffer.timeout_triggered")]
    InputAudioBufferTimeoutTriggered {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// ms.
        #[serde(default)]
        audio_start_ms: u64,
        /// ms.
        #[serde(default)]
        audio_end_ms: u64,
        /// The item.
        #[serde(default)]
        item_id: String,
    },
    /// An item was added to the conversation (GA).
    #[serde(rename = "conversation.item.added")]
    ConversationItemAdded {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The item before it.
        #[serde(default)]
        previous_item_id: Option<String>,
        /// The item.
        item: Item,
    },
    /// An item is complete (GA).
    #[serde(rename = "conversation.item.done")]
    ConversationItemDone {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The item before it.
        #[serde(default)]
        previous_item_id: Option<String>,
        /// The item.
        item: Item,
    },
    /// An item was created (still sent by GA servers).
    #[serde(rename = "conversation.item.created")]
    ConversationItemCreated {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The item before it.
        #[serde(default)]
        previous_item_id: Option<String>,
        /// The item.
        item: Item,
    },
    /// An assistant audio item was truncated.
    #[serde(rename = "conversation.item.truncated")]
    ConversationItemTruncated {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The item.
        item_id: String,
        /// 0.
        #[serde(default)]
        content_index: u32,
        /// ms kept.
        audio_end_ms: u64,
    },
    /// Partial caller transcript.
    #[serde(rename = "conversation.item.input_audio_transcription.delta")]
    InputTranscriptionDelta {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The user item.
        item_id: String,
        /// 0.
        #[serde(default)]
        content_index: u32,
        /// Text to append.
        delta: String,
    },
    /// Final caller transcript of one turn (may arrive after the reply began).
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    InputTranscriptionCompleted {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The user item.
        item_id: String,
        /// 0.
        #[serde(default)]
        content_index: u32,
        /// The whole transcript of the turn.
        transcript: String,
    },
    /// Caller transcription failed for one turn.
    #[serde(rename = "conversation.item.input_audio_transcription.failed")]
    InputTranscriptionFailed {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The user item.
        item_id: String,
        /// 0.
        #[serde(default)]
        content_index: u32,
        /// Error details.
        #[serde(default)]
        error: Value,
    },
    /// A response started.
    #[serde(rename = "response.created")]
    ResponseCreated {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response (status `in_progress`).
        response: Response,
    },
    /// A response produced a new item.
    #[serde(rename = "response.output_item.added")]
    ResponseOutputItemAdded {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        response_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// The item (a function call carries `name`, `call_id`, `arguments`).
        item: Item,
    },
    /// A response item is complete.
    #[serde(rename = "response.output_item.done")]
    ResponseOutputItemDone {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        response_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// The item.
        item: Item,
    },
    /// Agent audio (base64 in the session's output format).
    #[serde(rename = "response.output_audio.delta")]
    ResponseOutputAudioDelta {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        response_id: String,
        /// The assistant item.
        item_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// 0.
        #[serde(default)]
        content_index: u32,
        /// Base64 audio.
        delta: String,
    },
    /// The item's audio is complete.
    #[serde(rename = "response.output_audio.done")]
    ResponseOutputAudioDone {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        response_id: String,
        /// The assistant item.
        item_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// 0.
        #[serde(default)]
        content_index: u32,
    },
    /// Partial agent transcript.
    #[serde(rename = "response.output_audio_transcript.delta")]
    ResponseOutputAudioTranscriptDelta {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        #[serde(default)]
        response_id: String,
        /// The assistant item.
        item_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// 0.
        #[serde(default)]
        content_index: u32,
        /// Text to append.
        delta: String,
    },
    /// Final agent transcript of one item.
    #[serde(rename = "response.output_audio_transcript.done")]
    ResponseOutputAudioTranscriptDone {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        #[serde(default)]
        response_id: String,
        /// The assistant item.
        item_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// 0.
        #[serde(default)]
        content_index: u32,
        /// The whole transcript.
        transcript: String,
    },
    /// Partial function-call arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        #[serde(default)]
        response_id: String,
        /// The function call item.
        item_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// The call id to answer with `function_call_output`.
        call_id: String,
        /// JSON text to append.
        delta: String,
    },
    /// Complete function-call arguments.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The response.
        #[serde(default)]
        response_id: String,
        /// The function call item.
        item_id: String,
        /// Position in the response's output.
        #[serde(default)]
        output_index: u32,
        /// The call id.
        call_id: String,
        /// The function name (newer servers).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        name: Option<String>,
        /// The JSON arguments.
        arguments: String,
    },
    /// A response ended: `completed`, `cancelled`, `failed` or `incomplete`.
    #[serde(rename = "response.done")]
    ResponseDone {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The final response object.
        response: Response,
    },
    /// Rate limits changed.
    #[serde(rename = "rate_limits.updated")]
    RateLimitsUpdated {
        /// Server event id.
        #[serde(default)]
        event_id: String,
        /// The limits.
        #[serde(default)]
        rate_limits: Value,
    },
    /// Any `type` this version does not know. Tolerated, logged and passed to the supervisor feed.
    #[serde(skip)]
    Unknown {
        /// The `type` field.
        kind: String,
        /// The whole event as received.
        raw: String,
    },
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

const KNOWN_SERVER: &[&str] = &[
    "session.created",
    "session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.timeout_triggered",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.created",
    "conversation.item.truncated",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "response.created",
    "response.output_item.added",
    "response.output_item.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.done",
    "rate_limits.updated",
];

impl ServerEvent {
    /// Parses one text frame from the service.
    ///
    /// An unknown `type` gives [`ServerEvent::Unknown`]; a known type with the wrong shape, or text
    /// that is not a JSON object with a `type` string, is [`WireError::Malformed`].
    pub fn parse(text: &str) -> Result<Self, WireError> {
        match serde_json::from_str::<ServerEvent>(text) {
            Ok(ev) => Ok(ev),
            Err(source) => match serde_json::from_str::<TypeOnly>(text) {
                Ok(TypeOnly { kind }) if !KNOWN_SERVER.contains(&kind.as_str()) => {
                    Ok(ServerEvent::Unknown { kind, raw: text.to_owned() })
                }
                _ => Err(WireError::Malformed { protocol: "realtime", source }),
            },
        }
    }

    /// Serialises the event (used by the model fake). `Unknown` gives back its raw text.
    pub fn to_json(&self) -> String {
        match self {
            ServerEvent::Unknown { raw, .. } => raw.clone(),
            // Invariant: known variants are plain data.
            other => serde_json::to_string(other).expect("ServerEvent serialises"),
        }
    }

    /// The `type` name on the wire.
    pub fn type_name(&self) -> &str {
        match self {
            ServerEvent::SessionCreated { .. } => "session.created",
            ServerEvent::SessionUpdated { .. } => "session.updated",
            ServerEvent::Error { .. } => "error",
            ServerEvent::SpeechStarted { .. } => "input_audio_buffer.speech_started",
            ServerEvent::SpeechStopped { .. } => "input_audio_buffer.speech_stopped",
            ServerEvent::InputAudioBufferCommitted { .. } => "input_audio_buffer.committed",
            ServerEvent::InputAudioBufferTimeoutTriggered { .. } => "input_audio_buffer.timeout_triggered",
            ServerEvent::ConversationItemAdded { .. } => "conversation.item.added",
            ServerEvent::ConversationItemDone { .. } => "conversation.item.done",
            ServerEvent::ConversationItemCreated { .. } => "conversation.item.created",
            ServerEvent::ConversationItemTruncated { .. } => "conversation.item.truncated",
            ServerEvent::InputTranscriptionDelta { .. } => "conversation.item.input_audio_transcription.delta",
            ServerEvent::InputTranscriptionCompleted { .. } => "conversation.item.input_audio_transcription.completed",
            ServerEvent::InputTranscriptionFailed { .. } => "conversation.item.input_audio_transcription.failed",
            ServerEvent::ResponseCreated { .. } => "response.created",
            ServerEvent::ResponseOutputItemAdded { .. } => "response.output_item.added",
            ServerEvent::ResponseOutputItemDone { .. } => "response.output_item.done",
            ServerEvent::ResponseOutputAudioDelta { .. } => "response.output_audio.delta",
            ServerEvent::ResponseOutputAudioDone { .. } => "response.output_audio.done",
            ServerEvent::ResponseOutputAudioTranscriptDelta { .. } => "response.output_audio_transcript.delta",
            ServerEvent::ResponseOutputAudioTranscriptDone { .. } => "response.output_audio_transcript.done",
            ServerEvent::FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            ServerEvent::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            ServerEvent::ResponseDone { .. } => "response.done",
            ServerEvent::RateLimitsUpdated { .. } => "rate_limits.updated",
            ServerEvent::Unknown { kind, .. } => kind,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod fuzz_regressions;
