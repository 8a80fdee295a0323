//! Watchfloor's wire formats: everything that crosses a socket, and nothing that opens one.
//!
//! - [`twilio`]: Twilio Media Streams messages in both directions (PROTOCOLS.md §2).
//! - [`realtime`]: OpenAI Realtime API (GA) client and server events (PROTOCOLS.md §1).
//! - [`twiml`]: a TwiML builder with correct XML escaping.
//! - [`signature`]: `X-Twilio-Signature` computation and constant-time verification.
//! - [`mulaw`]: G.711 μ-law facts and helpers (8 kHz, 1 byte per sample, 8 bytes per ms).
//!
//! Architecture invariant: this crate does no I/O and knows nothing of tokio, axum, sled or tauri.
//! Unknown message types are values (`Unknown` variants keeping the raw JSON), never errors.

pub mod mulaw;
pub mod realtime;
pub mod signature;
pub mod tool_signature;
pub mod twilio;
pub mod twiml;

/// Errors from parsing wire messages.
///
/// None of them is retryable: the same bytes give the same error. Callers log and skip the
/// message; a bad message never ends a call.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The text is not JSON, or a known message has the wrong shape.
    #[error("malformed {protocol} message: {source}")]
    Malformed {
        /// Which protocol the message claimed to be (`"twilio"` or `"realtime"`).
        protocol: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A message was larger than the caller's limit (bytes).
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message, bytes.
        len: usize,
        /// The limit, bytes.
        limit: usize,
    },
    /// An audio payload was not valid standard base64.
    #[error("bad base64 audio payload: {0}")]
    BadBase64(#[from] base64::DecodeSliceError),
}
