//! Configuration: a TOML file in the user's config directory, overridden by environment variables.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OPENAI_API_KEY` | Realtime API key; without it every call goes to the human line | none |
//! | `OPENAI_REALTIME_URL` | model WebSocket URL | `wss://api.openai.com/v1/realtime?model=gpt-realtime` |
//! | `OPENAI_TRANSLATE_URL` | Chat Completions URL that translates lines for the supervisor (issue 21) | `https://api.openai.com/v1/chat/completions` |
//! | `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` | Twilio account; the token turns on signature checks | none |
//! | `TWILIO_API_BASE` | Twilio REST base | `https://api.twilio.com` |
//! | `WATCHFLOOR_PUBLIC_URL` | public https origin Twilio reaches (stream URL, signatures) | `http://<bind>` |
//! | `WATCHFLOOR_BIND` | listen address | `127.0.0.1:8080` |
//! | `WATCHFLOOR_DATA_DIR` | sled store directory | the OS data dir + `/watchfloor` |
//! | `WATCHFLOOR_HUMAN_LINE` | number calls fall back to | none |
//! | `WATCHFLOOR_HUMAN_QUEUE` | a Twilio queue to `<Enqueue>` fallback calls into instead | none |
//! | `WATCHFLOOR_CONSOLE_TOKEN` | presets the console token (else `<data dir>/console-token`, made at first start) | none |
//! | `WATCHFLOOR_TRUSTED_PROXY` | `1`: behind an authenticating proxy; allows a public bind without a Twilio auth token | off |
//! | `WATCHFLOOR_UI_DIR` | the built console served at `/` | the repository's `ui/dist` |
//! | `WATCHFLOOR_TOOL_SECRET` | signs the requests to agent profiles' tool endpoints (HMAC-SHA256, `crates/bridge/src/tools.rs`) | none: unsigned |
//!
//! File-only settings: `retention_days` (365), `audit_retention_days` (365, never less),
//! `caller_history_days` (30), `agency_id` (the EIDO agency domain), `console_user`
//! (`supervisor`), `console_roles` (`["supervisor", "admin"]`), `[[users]]` (name,
//! password_hash, line, roles: `supervisor`, `reviewer`, `admin`), `max_calls` (200),
//! `stream_audio_rate` (1.5 × real time), `stream_audio_burst_ms` (10 000), `stream_messages_per_second` (20),
//! `stream_message_burst` (50) — the media stream's flood limit, see `watchfloor_bridge::flood` —
//! `webhook_rate_per_second` (20), `duplicate_window_minutes` (30: how long after its last call
//! an incident still takes duplicates, 1–1440), `qa_sample_percent` (2: the share of calls drawn
//! for human QA review), `dispatch_policy`
//! (`{ mode = "supervised", hold_ms = 20000 }` or `{ mode = "automatic" }`), `[agent]`,
//! `[[units]]` (the roster: `id = "Engine 7"`, `type = "engine"` — engine, ladder, medic, rescue,
//! patrol, hazmat, battalion).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use watchfloor_bridge::AgentProfile;
pub use watchfloor_bridge::model::{ApiKey, Secret};

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Public origin (`https://watch.example.org`), no trailing slash. `None`: `http://<bind>`.
    pub public_url: Option<String>,
    /// sled directory.
    pub data_dir: PathBuf,
    /// Realtime API key.
    pub openai_api_key: Option<ApiKey>,
    /// Realtime WebSocket URL.
    pub openai_realtime_url: String,
    /// The Chat Completions endpoint that translates transcript lines
    /// ([`watchfloor_bridge::translate::OpenAiTranslator`]).
    pub openai_translate_url: String,
    /// Twilio account.
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token (signatures; REST).
    pub twilio_auth_token: Option<Secret>,
    /// The shared secret that signs requests to the agent profiles' tool endpoints (issue 21;
    /// environment only, never in settings or the console).
    pub tool_secret: Option<Secret>,
    /// Twilio REST base URL.
    pub twilio_api_base: String,
    /// The human line calls fall back to (E.164).
    pub human_line: Option<String>,
    /// A Twilio queue to `<Enqueue>` fallback calls into instead of dialling the human line.
    pub human_queue: Option<String>,
    /// The AI agent's profile.
    pub agent: AgentProfile,
    /// Model connect timeout (default 3 s).
    pub model_connect_timeout: Duration,
    /// How long a call waits for its media stream after the webhook (default 30 s).
    pub claim_window: Duration,
    /// Most connections open at once; `None`: the open-file limit less 256, at most 8 192
    /// (`crate::conn`).
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address (default 512; not applied behind a
    /// trusted proxy, where every client shares its address).
    pub max_connections_per_address: usize,
    /// How long a request's headers may take to arrive (default 10 s): idle and slowloris
    /// sockets are closed after it.
    pub header_read_timeout: Duration,
    /// How long a media stream may take, from its upgrade, to send `start` (default 10 s; a
    /// deadline that messages before `start` do not extend).
    pub stream_start_timeout: Duration,
    /// Stall and session-renewal timers of calls.
    pub timers: watchfloor_bridge::machine::Timers,
    /// Largest media-stream message accepted, bytes (default 64 KiB; a 20 ms frame is ~350 bytes).
    pub max_ws_message_bytes: usize,
    /// Largest HTTP request body, bytes (default 64 KiB).
    pub max_body_bytes: usize,
    /// Call records (with transcripts and audio) are purged this many days after the call
    /// started, unless under legal hold (default 365; state law sets the minimum).
    pub retention_days: u64,
    /// Audit entries are kept this many days (at least 365, CJIS 5.4).
    pub audit_retention_days: u64,
    /// Caller history (the agent's "prior calls" line) covers this many days (default 30, at
    /// most 90: the store's in-memory ledger keeps [`watchfloor_store::ledger::HISTORY_WINDOW_MS`]).
    pub caller_history_days: u64,
    /// The agency's identifier in EIDO documents, a domain (default `psap.invalid`: set it).
    pub agency_id: String,
    /// Presets the console token (`WATCHFLOOR_CONSOLE_TOKEN`); else it is read from or created in
    /// the data directory.
    pub console_token: Option<Secret>,
    /// The user the console token belongs to (default `supervisor`).
    pub console_user: String,
    /// The console token's roles (default supervisor and admin: the one desk of a small
    /// centre, issue 20; add `reviewer` where that desk also reviews calls).
    pub console_roles: Vec<crate::auth::Role>,
    /// Console users who log in with a password.
    pub users: Vec<crate::auth::UserConfig>,
    /// Behind a trusted reverse proxy that terminates TLS: allows a non-loopback bind without
    /// TLS or a Twilio auth token (`WATCHFLOOR_TRUSTED_PROXY=1`).
    pub trusted_proxy: bool,
    /// The certificate chain (PEM) the server serves https and wss with (`tls_cert`; with
    /// `tls_key`). Reloaded when the file changes (`crate::tls`).
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Most calls the AI handles at once; more go straight to the human line (default 200).
    pub max_calls: usize,
    /// What one media stream may send before its input is dropped: caller audio against real time
    /// with a burst, other messages per second; echoes of our own marks are never counted
    /// (`watchfloor_bridge::flood`, defaults 1.5× real time after a 10 s burst, 20 messages a
    /// second after 50).
    pub stream_limits: watchfloor_bridge::flood::StreamLimits,
    /// Webhook requests per second per client address (default 20, bursts of 40).
    pub webhook_rate_per_second: u32,
    /// The dispatch policy: supervised with a hold window (default 20 s) or automatic.
    pub dispatch_policy: watchfloor_dispatch::policy::Policy,
    /// When the console of the supervisor holding a call's voice is lost (3 s without a frame
    /// or a keepalive, or its live feed closed): `ai` (default: the agent takes the call back,
    /// with a critical alert) or `human_line`.
    pub voice_lost: watchfloor_bridge::machine::VoiceLossAction,
    /// The share of calls drawn for human QA review, percent (issue 19; file:
    /// `qa_sample_percent`, 0–100, default 2: APCO/NENA ANS 1.107.1 asks at least 2 %).
    pub qa_sample_percent: f64,
    /// How long after its last call an incident still takes duplicates (issue 18; file:
    /// `duplicate_window_minutes`, 1–1440, default 30).
    pub duplicate_window: Duration,
    /// The unit roster (empty: proposals name no units).
    pub units: Vec<UnitConfig>,
    /// Training mode with simulated calls placed on their own (`serve --demo`).
    pub demo: bool,
    /// Training mode: simulated calls may be placed from the console (on with `demo`).
    pub training: bool,
    /// How often demo mode places a training call (default 30 s).
    pub demo_interval: Duration,
    /// Most training calls demo mode keeps live at once (default 3).
    pub demo_max_calls: usize,
    /// The scenarios of training calls (default: the repository's `crates/sim/scenarios`).
    pub scenarios_dir: PathBuf,
    /// Origins allowed to call the API from a browser (CORS), exactly as given; empty: none
    /// (the console is served from this origin). The desktop app sets its webview's origin.
    pub cors_origins: Vec<String>,
    /// The built console (`ui/dist`) served at `/` (`WATCHFLOOR_UI_DIR`; default: the
    /// repository's `ui/dist`).
    pub ui_dir: PathBuf,
    /// Text messages a console may leave unacknowledged on the live feed before its events
    /// pause (and a resync follows); default [`crate::live::MAX_UNACKED`].
    pub live_max_unacked: u64,
    /// Seconds without keyboard or mouse input after which a console locks and asks for the
    /// password again (`session_lock_seconds`; default 1800: CJIS Security Policy 5.5.5 asks
    /// at most 30 minutes; 5–1800).
    pub session_lock_seconds: u64,
}

/// A unit of the roster, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// Call sign, e.g. `Engine 7`.
    pub id: String,
    /// `engine`, `ladder`, `medic`, `rescue`, `patrol`, `hazmat` or `battalion`.
    #[serde(rename = "type")]
    pub unit_type: watchfloor_dispatch::types::UnitType,
}

/// The file form: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::bind`].
    pub bind: Option<SocketAddr>,
    /// See [`Config::public_url`].
    pub public_url: Option<String>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::openai_api_key`] (prefer the environment variable).
    pub openai_api_key: Option<String>,
    /// See [`Config::openai_realtime_url`].
    pub openai_realtime_url: Option<String>,
    /// See [`Config::openai_translate_url`].
    pub openai_translate_url: Option<String>,
    /// See [`Config::twilio_account_sid`].
    pub twilio_account_sid: Option<String>,
    /// See [`Config::twilio_auth_token`] (prefer the environment variable).
    pub twilio_auth_token: Option<String>,
    /// See [`Config::twilio_api_base`].
    pub twilio_api_base: Option<String>,
    /// See [`Config::human_line`].
    pub human_line: Option<String>,
    /// See [`Config::human_queue`].
    pub human_queue: Option<String>,
    /// See [`Config::agent`].
    pub agent: Option<AgentProfile>,
    /// See [`Config::retention_days`].
    pub retention_days: Option<u64>,
    /// See [`Config::audit_retention_days`].
    pub audit_retention_days: Option<u64>,
    /// See [`Config::caller_history_days`].
    pub caller_history_days: Option<u64>,
    /// See [`Config::agency_id`].
    pub agency_id: Option<String>,
    /// See [`Config::console_user`].
    pub console_user: Option<String>,
    /// See [`Config::console_roles`].
    pub console_roles: Option<Vec<crate::auth::Role>>,
    /// See [`Config::users`].
    #[serde(default)]
    pub users: Vec<crate::auth::UserConfig>,
    /// See [`Config::trusted_proxy`].
    pub trusted_proxy: Option<bool>,
    /// See [`Config::tls_cert`].
    pub tls_cert: Option<PathBuf>,
    /// See [`Config::tls_key`].
    pub tls_key: Option<PathBuf>,
    /// See [`Config::max_calls`].
    pub max_calls: Option<usize>,
    /// No longer used (it counted every message, our own mark echoes too: issue 14); accepted so
    /// that old files still load, with a warning. See the `stream_*` keys.
    pub max_frames_per_second: Option<u32>,
    /// See [`watchfloor_bridge::flood::StreamLimits::audio_rate`].
    pub stream_audio_rate: Option<f64>,
    /// See [`watchfloor_bridge::flood::StreamLimits::audio_burst_ms`].
    pub stream_audio_burst_ms: Option<u32>,
    /// See [`watchfloor_bridge::flood::StreamLimits::messages_per_second`].
    pub stream_messages_per_second: Option<u32>,
    /// See [`watchfloor_bridge::flood::StreamLimits::message_burst`].
    pub stream_message_burst: Option<u32>,
    /// See [`Config::webhook_rate_per_second`].
    pub webhook_rate_per_second: Option<u32>,
    /// See [`Config::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`Config::max_connections_per_address`].
    pub max_connections_per_address: Option<usize>,
    /// See [`Config::header_read_timeout`], seconds.
    pub header_read_timeout_s: Option<u64>,
    /// See [`Config::dispatch_policy`]: `{ mode = "supervised", hold_ms = 20000 }` or `{ mode = "automatic" }`.
    pub dispatch_policy: Option<watchfloor_dispatch::policy::Policy>,
    /// See [`Config::voice_lost`]: `"ai"` or `"human_line"`.
    pub voice_lost: Option<watchfloor_bridge::machine::VoiceLossAction>,
    /// See [`Config::duplicate_window`], in minutes.
    pub duplicate_window_minutes: Option<u64>,
    /// See [`Config::qa_sample_percent`].
    pub qa_sample_percent: Option<f64>,
    /// See [`Config::units`].
    #[serde(default)]
    pub units: Vec<UnitConfig>,
    /// See [`Config::live_max_unacked`].
    pub live_max_unacked: Option<u64>,
    /// See [`Config::session_lock_seconds`].
    pub session_lock_seconds: Option<u64>,
    /// See [`Config::training`].
    pub training: Option<bool>,
    /// See [`Config::demo_interval`] (seconds).
    pub demo_interval_s: Option<u64>,
    /// See [`Config::demo_max_calls`].
    pub demo_max_calls: Option<usize>,
    /// See [`Config::scenarios_dir`].
    pub scenarios_dir: Option<PathBuf>,
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// The file is not valid TOML of the expected shape.
    #[error("bad config file {0}: {1}")]
    Parse(String, toml::de::Error),
    /// An environment variable has a bad value.
    #[error("bad value for {0}: {1}")]
    Env(&'static str, String),
}

/// The standard places: config file and data directory.
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("org", "Watchfloor", "watchfloor")
}

/// The default config file: `<config dir>/watchfloor/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Defaults with no file and no environment.
    pub fn defaults() -> Config {
        Config {
            bind: "127.0.0.1:8080".parse().expect("literal address"),
            public_url: None,
            data_dir: project_dirs().map(|d| d.data_dir().to_path_buf()).unwrap_or_else(|| PathBuf::from("watchfloor-data")),
            openai_api_key: None,
            openai_realtime_url: "wss://api.openai.com/v1/realtime?model=gpt-realtime".into(),
            openai_translate_url: watchfloor_bridge::translate::TranslatorConfig::default().url,
            twilio_account_sid: None,
            twilio_auth_token: None,
            tool_secret: None,
            twilio_api_base: "https://api.twilio.com".into(),
            human_line: None,
            human_queue: None,
            agent: AgentProfile::default(),
            model_connect_timeout: Duration::from_secs(3),
            claim_window: Duration::from_secs(30),
            stream_start_timeout: Duration::from_secs(10),
            max_connections: None,
            max_connections_per_address: 512,
            header_read_timeout: Duration::from_secs(10),
            timers: watchfloor_bridge::machine::Timers::default(),
            max_ws_message_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024,
            retention_days: 365,
            audit_retention_days: watchfloor_store::audit::MIN_AUDIT_RETENTION_DAYS,
            caller_history_days: 30,
            agency_id: "psap.invalid".into(),
            console_token: None,
            console_user: "supervisor".into(),
            console_roles: vec![crate::auth::Role::Supervisor, crate::auth::Role::Admin],
            users: Vec::new(),
            trusted_proxy: false,
            tls_cert: None,
            tls_key: None,
            max_calls: 200,
            stream_limits: watchfloor_bridge::flood::StreamLimits::default(),
            webhook_rate_per_second: 20,
            dispatch_policy: watchfloor_dispatch::policy::Policy::default(),
            voice_lost: watchfloor_bridge::machine::VoiceLossAction::default(),
            duplicate_window: Duration::from_secs(30 * 60),
            qa_sample_percent: 2.0,
            units: Vec::new(),
            demo: false,
            training: false,
            cors_origins: Vec::new(),
            demo_interval: Duration::from_secs(30),
            demo_max_calls: 3,
            scenarios_dir: watchfloor_sim::scenario::default_dir(),
            ui_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui/dist")),
            live_max_unacked: crate::live::MAX_UNACKED,
            session_lock_seconds: 1800,
        }
    }

    /// Loads the file (if it exists; `path` or the default place) and then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut cfg = Config::defaults();
        let path = path.map(Path::to_path_buf).or_else(default_config_path);
        if let Some(p) = path.filter(|p| p.exists()) {
            let text = std::fs::read_to_string(&p).map_err(|e| ConfigError::Read(p.display().to_string(), e))?;
            let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse(p.display().to_string(), e))?;
            cfg.apply_file(file);
        }
        cfg.apply_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?;
        Ok(cfg)
    }

    fn apply_file(&mut self, f: FileConfig) {
        if let Some(v) = f.bind { self.bind = v; }
        if let Some(v) = f.public_url { self.public_url = Some(v.trim_end_matches('/').to_string()); }
        if let Some(v) = f.data_dir { self.data_dir = v; }
        if let Some(v) = f.openai_api_key { self.openai_api_key = Some(ApiKey::new(v)); }
        if let Some(v) = f.openai_realtime_url { self.openai_realtime_url = v; }
        if let Some(v) = f.openai_translate_url { self.openai_translate_url = v; }
        if let Some(v) = f.twilio_account_sid { self.twilio_account_sid = Some(v); }
        if let Some(v) = f.twilio_auth_token { self.twilio_auth_token = Some(Secret::new(v)); }
        if let Some(v) = f.twilio_api_base { self.twilio_api_base = v; }
        if let Some(v) = f.human_line { self.human_line = Some(v); }
        if let Some(v) = f.human_queue { self.human_queue = Some(v); }
        if let Some(v) = f.agent { self.agent = v; }
        if let Some(v) = f.retention_days { self.retention_days = v; }
        if let Some(v) = f.audit_retention_days { self.audit_retention_days = v.max(watchfloor_store::audit::MIN_AUDIT_RETENTION_DAYS); }
        if let Some(v) = f.caller_history_days {
            const MAX_DAYS: u64 = watchfloor_store::ledger::HISTORY_WINDOW_MS / crate::api::DAY_MS;
            if v > MAX_DAYS {
                tracing::warn!(days = v, max = MAX_DAYS, "config: caller_history_days is capped");
            }
            self.caller_history_days = v.min(MAX_DAYS);
        }
        if let Some(v) = f.agency_id { self.agency_id = v; }
        if let Some(v) = f.console_user { self.console_user = v; }
        if let Some(v) = f.console_roles { self.console_roles = v; }
        if !f.users.is_empty() { self.users = f.users; }
        if let Some(v) = f.trusted_proxy { self.trusted_proxy = v; }
        if let Some(v) = f.tls_cert { self.tls_cert = Some(v); }
        if let Some(v) = f.tls_key { self.tls_key = Some(v); }
        if let Some(v) = f.max_calls { self.max_calls = v; }
        if f.max_frames_per_second.is_some() {
            tracing::warn!("config: max_frames_per_second is no longer used (it counted our own mark echoes); the stream_audio_rate, stream_audio_burst_ms, stream_messages_per_second and stream_message_burst keys set the flood limit");
        }
        if let Some(v) = f.stream_audio_rate { self.stream_limits.audio_rate = v.max(1.0); }
        if let Some(v) = f.stream_audio_burst_ms { self.stream_limits.audio_burst_ms = v.max(1000); }
        if let Some(v) = f.stream_messages_per_second { self.stream_limits.messages_per_second = v.max(1); }
        if let Some(v) = f.stream_message_burst { self.stream_limits.message_burst = v.max(1); }
        if let Some(v) = f.webhook_rate_per_second { self.webhook_rate_per_second = v.max(1); }
        if let Some(v) = f.max_connections { self.max_connections = Some(v.max(16)); }
        if let Some(v) = f.max_connections_per_address { self.max_connections_per_address = v.max(1); }
        if let Some(v) = f.header_read_timeout_s { self.header_read_timeout = Duration::from_secs(v.clamp(1, 300)); }
        if let Some(v) = f.dispatch_policy { self.dispatch_policy = v; }
        if let Some(v) = f.voice_lost { self.voice_lost = v; }
        if let Some(v) = f.duplicate_window_minutes { self.duplicate_window = Duration::from_secs(v.clamp(1, 1440) * 60); }
        if let Some(v) = f.qa_sample_percent { self.qa_sample_percent = if v.is_finite() { v.clamp(0.0, 100.0) } else { 2.0 }; }
        if !f.units.is_empty() { self.units = f.units; }
        if let Some(v) = f.live_max_unacked { self.live_max_unacked = v.max(16); }
        if let Some(v) = f.session_lock_seconds { self.session_lock_seconds = v.clamp(5, 1800); }
        if let Some(v) = f.training { self.training = v; }
        if let Some(v) = f.demo_interval_s { self.demo_interval = Duration::from_secs(v.max(5)); }
        if let Some(v) = f.demo_max_calls { self.demo_max_calls = v; }
        if let Some(v) = f.scenarios_dir { self.scenarios_dir = v; }
    }

    /// Applies environment variables read through `get` (testable without touching the process env).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("OPENAI_API_KEY") { self.openai_api_key = Some(ApiKey::new(v)); }
        if let Some(v) = get("OPENAI_REALTIME_URL") { self.openai_realtime_url = v; }
        if let Some(v) = get("OPENAI_TRANSLATE_URL") { self.openai_translate_url = v; }
        if let Some(v) = get("TWILIO_ACCOUNT_SID") { self.twilio_account_sid = Some(v); }
        if let Some(v) = get("TWILIO_AUTH_TOKEN") { self.twilio_auth_token = Some(Secret::new(v)); }
        if let Some(v) = get("WATCHFLOOR_TOOL_SECRET") { self.tool_secret = Some(Secret::new(v)); }
        if let Some(v) = get("TWILIO_API_BASE") { self.twilio_api_base = v; }
        if let Some(v) = get("WATCHFLOOR_PUBLIC_URL") { self.public_url = Some(v.trim_end_matches('/').to_string()); }
        if let Some(v) = get("WATCHFLOOR_BIND") {
            self.bind = v.parse().map_err(|e| ConfigError::Env("WATCHFLOOR_BIND", format!("{v:?}: {e}")))?;
        }
        if let Some(v) = get("WATCHFLOOR_DATA_DIR") { self.data_dir = PathBuf::from(v); }
        if let Some(v) = get("WATCHFLOOR_HUMAN_LINE") { self.human_line = Some(v); }
        if let Some(v) = get("WATCHFLOOR_HUMAN_QUEUE") { self.human_queue = Some(v); }
        if let Some(v) = get("WATCHFLOOR_CONSOLE_TOKEN") { self.console_token = Some(Secret::new(v)); }
        if let Some(v) = get("WATCHFLOOR_UI_DIR") { self.ui_dir = PathBuf::from(v); }
        if let Some(v) = get("WATCHFLOOR_TRUSTED_PROXY") { self.trusted_proxy = matches!(v.as_str(), "1" | "true" | "yes"); }
        Ok(())
    }

    /// Where callers go when the AI cannot take them.
    pub fn human(&self) -> watchfloor_bridge::twilio_rest::HumanLine {
        watchfloor_bridge::twilio_rest::HumanLine { number: self.human_line.clone(), queue: self.human_queue.clone() }
    }

    /// The Twilio REST client, when an account SID and auth token are configured.
    pub fn twilio_rest(&self) -> Option<watchfloor_bridge::twilio_rest::TwilioRest> {
        match (&self.twilio_account_sid, &self.twilio_auth_token) {
            (Some(sid), Some(token)) => Some(watchfloor_bridge::twilio_rest::TwilioRest::new(&self.twilio_api_base, sid, token.clone())),
            _ => None,
        }
    }

    /// The public origin, given the address actually bound.
    pub fn public_origin(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        self.public_url.clone().unwrap_or_else(|| format!("{scheme}://{bound}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_secrets_stay_hidden() {
        let mut cfg = Config::defaults();
        cfg.apply_file(toml::from_str("bind = \"127.0.0.1:9000\"\nhuman_line = \"+15550001111\"\n[agent]\nvoice = \"cedar\"\n").unwrap());
        assert_eq!(cfg.bind.port(), 9000);
        assert_eq!(cfg.agent.voice, "cedar");
        assert_eq!(cfg.agent.model, "gpt-realtime", "unset agent fields keep defaults");
        let env = |k: &str| match k {
            "OPENAI_API_KEY" => Some("sk-test-secret".to_string()),
            "WATCHFLOOR_BIND" => Some("127.0.0.1:7000".to_string()),
            "WATCHFLOOR_PUBLIC_URL" => Some("https://watch.example/".to_string()),
            _ => None,
        };
        cfg.apply_env(env).unwrap();
        assert_eq!(cfg.bind.port(), 7000);
        assert_eq!(cfg.public_url.as_deref(), Some("https://watch.example"));
        assert!(!format!("{cfg:?}").contains("sk-test-secret"));
        assert!(cfg.apply_env(|k| (k == "WATCHFLOOR_BIND").then(|| "nonsense".to_string())).is_err());
        assert!(toml::from_str::<FileConfig>("unknown_key = 1").is_err());
        cfg.apply_file(toml::from_str("[[units]]\nid = \"Engine 7\"\ntype = \"engine\"\n[[units]]\nid = \"Medic 3\"\ntype = \"medic\"\n").unwrap());
        assert_eq!(cfg.units.len(), 2);
        assert_eq!(cfg.units[1].unit_type, watchfloor_dispatch::types::UnitType::Medic);
        assert!(toml::from_str::<FileConfig>("[[units]]\nid = \"Truck 1\"\ntype = \"truck\"\n").is_err(), "unknown unit type");
    }
}
