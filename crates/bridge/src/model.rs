//! Connecting to the Realtime model: `wss://…/v1/realtime?model=…` with
//! `Authorization: Bearer <key>` and nothing else (no `OpenAI-Beta` header: PROTOCOLS.md §1).

use std::fmt;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read buffer of the model's and the consoles' WebSockets, bytes (tungstenite's default is
/// 128 KiB; tungstenite zeroes the room it reads into on every read, and it is held per
/// socket). A model audio delta of 300 ms is ~3.3 KB; a larger message is simply read in
/// several pieces. Measured with the load generator (BENCHMARKS.md).
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Read buffer of each call's Twilio media stream, bytes: a `media` frame is ~400 bytes and a
/// `mark` ~150, so a read takes several (issue 22: at 8 KiB, zeroing it was 3 % of the bridge's
/// CPU).
pub const MEDIA_READ_BUFFER_BYTES: usize = 2 * 1024;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The model's WebSocket.
pub type ModelSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A secret (API key, auth token), held in `secrecy`'s `SecretString`: the copy it holds is
/// zeroed when dropped (the string it was made from, and what `expose` hands out, are not), and
/// its `Debug` never shows the value, so it cannot leak into logs or debug output; `expose` is
/// for the one place that must send it.
pub struct Secret(secrecy::SecretString);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(secrecy::SecretString::from(value.into()))
    }

    /// The value itself, for an `Authorization` header or a signature only.
    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Secret::new(self.expose())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The OpenAI API key.
pub type ApiKey = Secret;

/// Where and how to reach the model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// `wss://api.openai.com/v1/realtime?model=gpt-realtime` or a local fake's `ws://127.0.0.1:…`.
    pub url: String,
    /// The API key; `None` means no model is configured (every call goes to the human line).
    pub api_key: Option<ApiKey>,
    /// How long a connect may take before the call falls back (default 3 s).
    pub connect_timeout: Duration,
    /// Largest model message accepted, bytes.
    pub max_message_bytes: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            url: "wss://api.openai.com/v1/realtime?model=gpt-realtime".into(),
            api_key: None,
            connect_timeout: Duration::from_secs(3),
            max_message_bytes: 4 << 20,
        }
    }
}

/// The URL of a transcription-only session beside a model URL (PROTOCOLS.md §5): the same
/// endpoint with `?intent=transcription` in place of the query (no `model`: the model URL makes a
/// conversation session, which refuses the transcription `session.update`).
pub fn transcription_url(model_url: &str) -> String {
    let endpoint = model_url.split(['?', '#']).next().unwrap_or(model_url);
    format!("{endpoint}?intent=transcription")
}

/// Why the model could not be reached. All variants are retryable in principle; the bridge
/// does not retry within a call's set-up (the caller goes to a human instead).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No API key is configured.
    #[error("no OpenAI API key is configured")]
    NoApiKey,
    /// The URL is not a valid WebSocket URL.
    #[error("bad model URL: {0}")]
    BadUrl(String),
    /// Refused, TLS failure, HTTP error status, …
    #[error("model connect failed: {0}")]
    Failed(String),
    /// No answer within the connect timeout.
    #[error("model did not answer within {0:?}")]
    Timeout(Duration),
}

/// Opens the model socket.
///
/// # Errors
/// See [`ConnectError`]; the key never appears in an error.
pub async fn connect(cfg: &ModelConfig) -> Result<ModelSocket, ConnectError> {
    let key = cfg.api_key.as_ref().ok_or(ConnectError::NoApiKey)?;
    let mut request = cfg.url.as_str().into_client_request().map_err(|e| ConnectError::BadUrl(e.to_string()))?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| ConnectError::Failed("API key is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", auth);
    let ws_config = WebSocketConfig::default().max_message_size(Some(cfg.max_message_bytes)).max_frame_size(Some(cfg.max_message_bytes)).read_buffer_size(READ_BUFFER_BYTES);
    match tokio::time::timeout(cfg.connect_timeout, tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true)).await {
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(ConnectError::Failed(e.to_string())),
        Err(_) => Err(ConnectError::Timeout(cfg.connect_timeout)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_transcription_url_is_the_endpoint_with_intent_transcription_and_no_model() {
        assert_eq!(super::transcription_url("wss://api.openai.com/v1/realtime?model=gpt-realtime"), "wss://api.openai.com/v1/realtime?intent=transcription");
        assert_eq!(super::transcription_url("ws://127.0.0.1:4000/v1/realtime"), "ws://127.0.0.1:4000/v1/realtime?intent=transcription");
    }
}
