//! Controlling a live call through Twilio's REST API (PROTOCOLS.md §2 "Controlling a live call"):
//! `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with HTTP Basic
//! (AccountSid:AuthToken) and a form: `Twiml=<Response>…</Response>` replaces what the call runs
//! now (which ends the media stream: the way to hand a caller to a human), or `Status=completed`
//! hangs up. Retried with exponential backoff on network errors, 5xx and 429.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use watchfloor_wire::twiml;

use crate::model::Secret;

/// How a call is changed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallUpdate {
    /// Replace the call's TwiML (e.g. `<Say>` then `<Dial>` a human line).
    Twiml(twiml::Response),
    /// End the call (`Status=completed`).
    Hangup,
}

/// The outcome of a successful update.
#[derive(Debug, Clone, PartialEq)]
pub struct RestOutcome {
    /// Requests made (1 = no retry).
    pub attempts: u32,
    /// HTTP status of the last answer.
    pub status: u16,
}

/// Why an update failed after its retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    /// No account SID or auth token is configured.
    #[error("Twilio REST is not configured (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)")]
    NotConfigured,
    /// Twilio answered with an error that retrying will not fix (4xx other than 429).
    #[error("Twilio refused the update: HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Response body (Twilio's JSON error).
        body: String,
        /// Requests made.
        attempts: u32,
    },
    /// Network failures or 5xx/429 until the retries ran out.
    #[error("Twilio REST failed after {attempts} attempts: {last}")]
    Exhausted {
        /// Requests made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

impl RestError {
    /// Requests made before giving up.
    pub fn attempts(&self) -> u32 {
        match self {
            RestError::NotConfigured => 0,
            RestError::Refused { attempts, .. } | RestError::Exhausted { attempts, .. } => *attempts,
        }
    }
}

/// A Twilio REST client for one account.
#[derive(Clone)]
pub struct TwilioRest {
    base: String,
    account_sid: String,
    auth_token: Secret,
    client: reqwest::Client,
    /// Retry schedule: first delay, and the number of retries after the first attempt.
    retry_min_delay: Duration,
    retries: usize,
}

impl std::fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRest").field("base", &self.base).field("account_sid", &self.account_sid).finish_non_exhaustive()
    }
}

enum Attempt {
    Retry(String),
    Fatal(u16, String),
}

impl TwilioRest {
    /// A client for `api_base` (e.g. `https://api.twilio.com`; tests use a local fake).
    /// Each request times out after 3 s; up to 3 retries at 200, 400, 800 ms.
    pub fn new(api_base: &str, account_sid: &str, auth_token: Secret) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap_or_default();
        TwilioRest {
            base: api_base.trim_end_matches('/').to_string(),
            account_sid: account_sid.to_string(),
            auth_token,
            client,
            retry_min_delay: Duration::from_millis(200),
            retries: 3,
        }
    }

    /// Changes a live call.
    pub async fn update_call(&self, call_sid: &str, update: &CallUpdate) -> Result<RestOutcome, RestError> {
        let url = format!("{}/2010-04-01/Accounts/{}/Calls/{}.json", self.base, self.account_sid, call_sid);
        let form: Vec<(&str, String)> = match update {
            CallUpdate::Twiml(doc) => vec![("Twiml", doc.to_xml())],
            CallUpdate::Hangup => vec![("Status", "completed".to_string())],
        };
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let once = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let resp = self
                .client
                .post(&url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
                .form(&form)
                .send()
                .await
                .map_err(|e| Attempt::Retry(e.without_url().to_string()))?;
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Ok(status);
            }
            let body: String = resp.text().await.unwrap_or_default().chars().take(500).collect();
            if status == 429 || status >= 500 {
                Err(Attempt::Retry(format!("HTTP {status}: {body}")))
            } else {
                Err(Attempt::Fatal(status, body))
            }
        };
        let backoff = ExponentialBuilder::default().with_min_delay(self.retry_min_delay).with_factor(2.0).with_max_times(self.retries);
        let result = once.retry(backoff).when(|e| matches!(e, Attempt::Retry(_))).notify(|e, after| {
            if let Attempt::Retry(why) = e {
                tracing::warn!(%why, retry_in = ?after, "Twilio REST update failed; retrying");
            }
        }).await;
        let attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(status) => Ok(RestOutcome { attempts, status }),
            Err(Attempt::Fatal(status, body)) => Err(RestError::Refused { status, body, attempts }),
            Err(Attempt::Retry(last)) => Err(RestError::Exhausted { attempts, last }),
        }
    }
}

/// Where callers go when the AI cannot take them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HumanLine {
    /// A number to `<Dial>` (E.164).
    pub number: Option<String>,
    /// A queue to `<Enqueue>` into instead (takes precedence).
    pub queue: Option<String>,
}

impl HumanLine {
    /// Appends the verbs that hand the caller to a human: a short sentence, then `<Enqueue>` or
    /// `<Dial>`; with neither configured, a sentence asking the caller to dial again.
    pub fn append_to(&self, doc: twiml::Response, sentence: &str) -> twiml::Response {
        match (&self.queue, &self.number) {
            (Some(q), _) => doc.say(sentence).enqueue(q.clone()),
            (None, Some(n)) => doc.say(sentence).dial(n.clone()),
            (None, None) => doc.say("We are unable to take your call right now. Please hang up and dial 9 1 1 again."),
        }
    }
}
