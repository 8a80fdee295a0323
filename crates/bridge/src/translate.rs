//! Machine translation of transcript lines for the supervisor (issue 21).
//!
//! Every final line spoken in a language other than the centre's is translated into the
//! centre's language and shown beside the original, labelled machine translation; the original
//! is what the record's transcript keeps. The translation is behind [`Translator`]; the shipped
//! one is [`OpenAiTranslator`] (OpenAI's Chat Completions API, a text model), and
//! `watchfloor_sim::translate` is a fake of that API for tests and training.
//!
//! A translation never holds up the call: the call's task runs it beside the call and puts the
//! result on the timeline when it comes (`TranscriptTranslated`), after the call's end if need
//! be. A failure is a `model_error` of type `translation` on the timeline; the line stays as
//! spoken.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::model::ApiKey;

/// One line to translate. Languages are ISO 639-1 codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationRequest {
    /// The line as spoken.
    pub text: String,
    /// Its language.
    pub from: String,
    /// The centre's language.
    pub to: String,
}

/// Why a line has no translation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The service could not be reached, or did not answer in time (after retries).
    #[error("translation service unreachable: {0}")]
    Unreachable(String),
    /// The service refused the request (after retries for 429 and 5xx).
    #[error("translation refused: HTTP {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The service's `error.message`, or the start of its body.
        message: String,
    },
    /// The answer was not the API's shape.
    #[error("translation answer malformed: {0}")]
    Malformed(String),
}

/// A boxed translation in flight.
pub type TranslationFuture<'a> = Pin<Box<dyn Future<Output = Result<String, TranslateError>> + Send + 'a>>;

/// Translates one line at a time; shared by every call (one HTTP client).
pub trait Translator: Send + Sync + std::fmt::Debug {
    /// The model named on each translation (the record's label), e.g. `gpt-4.1-mini`.
    fn model(&self) -> &str;
    /// The translation of `request.text` into `request.to`.
    fn translate(&self, request: TranslationRequest) -> TranslationFuture<'_>;
}

/// Where and how [`OpenAiTranslator`] reaches the API.
#[derive(Debug, Clone)]
pub struct TranslatorConfig {
    /// The Chat Completions endpoint, `https://api.openai.com/v1/chat/completions`.
    pub url: String,
    /// The API key (the Realtime key).
    pub api_key: Option<ApiKey>,
    /// The text model, e.g. `gpt-4.1-mini`.
    pub model: String,
    /// One try's limit (default 8 s).
    pub timeout: Duration,
    /// Tries after the first on a timeout, a connection error, 429 or 5xx (default 2).
    pub retries: u32,
}

/// The OpenAI text model the console's translations come from by default.
pub const DEFAULT_TRANSLATION_MODEL: &str = "gpt-4.1-mini";

impl Default for TranslatorConfig {
    fn default() -> Self {
        TranslatorConfig { url: "https://api.openai.com/v1/chat/completions".into(), api_key: None, model: DEFAULT_TRANSLATION_MODEL.into(), timeout: Duration::from_secs(8), retries: 2 }
    }
}

/// Translates through OpenAI's Chat Completions API: `POST {url}` with
/// `{"model", "messages": [{"role": "developer", "content": <how>}, {"role": "user", "content": <line>}]}`;
/// the translation is `choices[0].message.content`. Errors carry the API's `error.message`.
#[derive(Debug, Clone)]
pub struct OpenAiTranslator {
    http: reqwest::Client,
    cfg: TranslatorConfig,
}

enum Attempt {
    Retry(TranslateError),
    Fatal(TranslateError),
}

impl OpenAiTranslator {
    /// A translator with its own HTTP client.
    pub fn new(cfg: TranslatorConfig) -> OpenAiTranslator {
        OpenAiTranslator { http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default(), cfg }
    }

    /// The developer message: translate faithfully, keep numbers and addresses as spoken, answer
    /// with the translation only.
    pub fn instructions(from: &str, to: &str) -> String {
        let name = |c: &str| crate::language::name(c).map_or_else(|| c.to_string(), |n| format!("{n} ({c})"));
        format!(
            "You translate lines of a live emergency call for the call centre's supervisor. Translate the user's message from {} into {}. \
Translate faithfully and completely: keep names, street names, house numbers, phone numbers and every detail as spoken; add nothing, \
leave nothing out, do not answer or comment. Reply with the translation only.",
            name(from),
            name(to)
        )
    }

    async fn once(&self, body: &str) -> Result<String, Attempt> {
        let mut req = self.http.post(&self.cfg.url).timeout(self.cfg.timeout).header("content-type", "application/json").body(body.to_string());
        if let Some(key) = &self.cfg.api_key {
            req = req.bearer_auth(key.expose());
        }
        let resp = req.send().await.map_err(|e| {
            Attempt::Retry(TranslateError::Unreachable(if e.is_timeout() { format!("no answer within {} ms", self.cfg.timeout.as_millis()) } else { e.without_url().to_string() }))
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| Attempt::Retry(TranslateError::Unreachable(format!("the answer broke off: {}", e.without_url()))))?;
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if !(200..300).contains(&status) {
            let message = json.as_ref().and_then(|v| v["error"]["message"].as_str()).map(str::to_string).unwrap_or_else(|| text.chars().take(200).collect());
            let e = TranslateError::Refused { status, message };
            return Err(if status == 429 || status >= 500 { Attempt::Retry(e) } else { Attempt::Fatal(e) });
        }
        json.as_ref()
            .and_then(|v| v["choices"][0]["message"]["content"].as_str())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Attempt::Fatal(TranslateError::Malformed(format!("no choices[0].message.content in {}", text.chars().take(200).collect::<String>()))))
    }
}

impl Translator for OpenAiTranslator {
    fn model(&self) -> &str {
        &self.cfg.model
    }

    fn translate(&self, request: TranslationRequest) -> TranslationFuture<'_> {
        Box::pin(async move {
            let body = serde_json::json!({
                "model": self.cfg.model,
                "messages": [
                    {"role": "developer", "content": Self::instructions(&request.from, &request.to)},
                    {"role": "user", "content": request.text},
                ],
            })
            .to_string();
            let backoff = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_factor(2.0).with_max_times(self.cfg.retries as usize);
            (|| self.once(&body))
                .retry(backoff)
                .when(|e| matches!(e, Attempt::Retry(_)))
                .notify(|e, after| {
                    if let Attempt::Retry(why) = e {
                        tracing::warn!(%why, retry_in = ?after, "translation failed; trying again");
                    }
                })
                .await
                .map_err(|e| match e {
                    Attempt::Retry(e) | Attempt::Fatal(e) => e,
                })
        })
    }
}

/// The translation of a call's lines: who translates, and into which language (the centre's,
/// ISO 639-1). A call keeps the one it started with.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The translator.
    pub translator: std::sync::Arc<dyn Translator>,
    /// The centre's language.
    pub into: String,
}
