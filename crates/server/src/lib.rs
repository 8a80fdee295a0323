//! Watchfloor's server: the Twilio voice webhook and media stream, the supervisor API, and the
//! store writer, in one axum application.
//!
//! [`serve`] binds nothing itself: it takes a listener (port 0 in tests) and returns a
//! [`ServerHandle`] with the bound address and a graceful shutdown.

pub mod api;
mod audit;
mod backup;
pub mod auth;
pub mod config;
pub mod conn;
mod control;
mod error;
pub mod live;
mod media;
mod qa;
mod incidents;
mod review;
pub mod routes;
pub mod scoring;
mod session;
pub mod settings;
mod supervise;
pub mod training;
pub mod tls;
mod users;
mod voice;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use watchfloor_bridge::model::ModelConfig;
use watchfloor_bridge::registry::BridgeConfig;
use watchfloor_bridge::Hub;
use watchfloor_store::Store;

pub use config::Config;
/// Live calls (the desktop app reads the board and sends commands through it).
pub use watchfloor_bridge::CallRegistry;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// The server's configuration (file, environment and flags, resolved at start).
    pub config: Arc<Config>,
    /// Public origin (`https://…`), for the stream URL and signatures.
    pub public_origin: Arc<str>,
    /// Live calls.
    pub calls: CallRegistry,
    /// The store.
    pub store: Store,
    /// Console authentication.
    pub auth: Arc<auth::Auth>,
    /// Per-address limiter of the webhook.
    pub webhook_limiter: Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// The unit roster, shared with every call.
    pub roster: watchfloor_bridge::SharedRoster,
    /// The incident list, shared with every call (issue 18).
    pub incidents: watchfloor_bridge::SharedIncidents,
    /// Cancelled when the server shuts down (ends console feeds).
    pub shutdown: CancellationToken,
    /// Training mode, when on.
    pub training: Option<Arc<training::Training>>,
    /// The supervisor's settings as they stand.
    pub settings: Arc<parking_lot::RwLock<settings::Settings>>,
    /// Sign-in attempts refused before a password check, to audit together.
    pub throttled: Arc<session::ThrottledSignIns>,
    /// The protocol cards in use and the job that scores every ended call with them (issue 19).
    pub scorer: Arc<scoring::Scorer>,
}

impl AppState {
    /// Where callers go when the AI cannot take them (the settings' line, the config's queue).
    pub fn human(&self) -> watchfloor_bridge::twilio_rest::HumanLine {
        let line = self.settings.read().human_line.clone();
        watchfloor_bridge::twilio_rest::HumanLine { number: line, queue: self.config.human_queue.clone() }
    }
}


/// Builds the roster from the configuration and restores each unit's assignment from the call
/// records of the last 7 days (a unit dispatched, en route or on scene when the server stopped).
fn load_roster(config: &Config, units: &[config::UnitConfig], store: &Store) -> Result<watchfloor_dispatch::units::Roster, ServeError> {
    let mut roster = watchfloor_dispatch::units::Roster::new(units.iter().map(|u| (u.id.clone(), u.unit_type)).collect()).map_err(ServeError::Roster)?;
    const WEEK_MS: u64 = 7 * api::DAY_MS;
    let mut q = watchfloor_store::CallQuery { from_ms: Some(watchfloor_bridge::task::unix_ms().saturating_sub(WEEK_MS)), limit: api::MAX_PAGE, ..Default::default() };
    loop {
        let page = store.query(&q).map_err(|e| ServeError::Store(config.data_dir.display().to_string(), e))?;
        for s in &page.calls {
            if let Ok(Some(rec)) = store.get_call(&s.call_sid) {
                for u in &rec.units {
                    roster.restore(&u.unit, &rec.call_sid, u.status);
                }
            }
        }
        match page.next_cursor.as_deref().and_then(watchfloor_store::index::decode_cursor) {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    Ok(roster)
}

/// The highest incident number in the newest records (numbers grow with time, so it is among
/// them): a restart numbers new incidents after it, never reusing one a record holds.
fn last_incident_number(config: &Config, store: &Store) -> Result<u64, ServeError> {
    let q = watchfloor_store::CallQuery { limit: api::MAX_PAGE, ..Default::default() };
    let page = store.query(&q).map_err(|e| ServeError::Store(config.data_dir.display().to_string(), e))?;
    Ok(page.calls.iter().filter_map(|s| store.get_call(&s.call_sid).ok().flatten()?.incident).map(|i| i.0).max().unwrap_or(0))
}

/// The console users: the store's (an administrator's changes), with the config file's
/// `[[users]]` the store does not have yet saved into it (the config seeds; a user the store has
/// is the store's).
async fn seed_users(config: &Config, store: &Store) -> Result<Vec<auth::UserConfig>, ServeError> {
    let err = |e| ServeError::Store(config.data_dir.display().to_string(), e);
    let mut users: Vec<auth::UserConfig> = store.users().map_err(err)?;
    for u in &config.users {
        if !users.iter().any(|s| s.name == u.name) {
            store.put_user(&u.name, u).await.map_err(err)?;
            users.push(u.clone());
        }
    }
    Ok(users)
}

/// A running server.
pub struct ServerHandle {
    /// The address bound.
    pub addr: SocketAddr,
    /// The store (for tests and the desktop app).
    pub store: Store,
    /// Live calls.
    pub calls: CallRegistry,
    auth: Arc<auth::Auth>,
    /// The console's origin on this machine (`https://` with TLS).
    local_origin: String,
    cancel: CancellationToken,
    join: JoinHandle<()>,
}

impl ServerHandle {
    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A one-time sign-in link to the console for the console token's user (valid for 15
    /// minutes, once): `<origin>/#signin=<code>`. For the terminal that started the server
    /// only: never log it.
    pub fn sign_in_link(&self) -> String {
        format!("{}/#signin={}", self.local_origin, self.auth.issue_sign_in_link().expose())
    }

    /// Stops accepting, ends live calls (their Twilio sockets close, so Twilio runs the fallback
    /// verbs and callers reach the human line), waits for call tasks (up to 5 s) and the final
    /// store checkpoint.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.join.await;
    }

    /// Waits until the server stops (after a shutdown signal elsewhere).
    pub async fn wait(self) {
        let _ = self.join.await;
    }

    /// The token that stops the server.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("cannot open the store in {0}: {1}")]
    Store(String, watchfloor_store::StoreError),
    /// The console token could not be set up.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// A non-loopback bind without TLS and a Twilio auth token (signatures), and not behind a
    /// trusted proxy.
    #[error("refusing to listen on {0}: a non-loopback address needs tls_cert and tls_key (Twilio reaches only https and wss) and TWILIO_AUTH_TOKEN (signed webhooks and streams), or WATCHFLOOR_TRUSTED_PROXY=1 behind a proxy that terminates TLS")]
    Insecure(SocketAddr),
    /// `tls_cert` or `tls_key` is missing its pair or cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The store writer's thread could not start.
    #[error("cannot start the store writer: {0}")]
    Writer(std::io::Error),
    /// The unit roster is invalid (a call sign listed twice).
    #[error("unit roster: {0}")]
    Roster(watchfloor_dispatch::units::RosterError),
    /// Training mode could not start (its model fake or scenarios).
    #[error("training mode: {0}")]
    Training(String),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// How often the retention purge runs.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Purges records past the retention period (not under legal hold) at start and then hourly.
async fn retention_job(state: AppState, cancel: CancellationToken) {
    use api::DAY_MS;
    loop {
        let now = watchfloor_bridge::task::unix_ms();
        let calls_before = now.saturating_sub(state.config.retention_days * DAY_MS);
        let audit_days = state.config.audit_retention_days.max(watchfloor_store::audit::MIN_AUDIT_RETENTION_DAYS);
        let audit_before = now.saturating_sub(audit_days * DAY_MS);
        let store = state.store.clone();
        // The ledger's caller history keeps its own window (the purge drops only what it removes).
        state.store.ledger().forget_before(now.saturating_sub(watchfloor_store::ledger::HISTORY_WINDOW_MS));
        match tokio::task::spawn_blocking(move || store.purge(calls_before, audit_before)).await {
            Ok(Ok(report)) => {
                if report.calls_removed + report.audit_removed > 0 {
                    tracing::info!(?report, "retention purge");
                    // The deletions are made durable, and the journal that might bring back
                    // what they removed is done with.
                    if let Err(e) = state.store.checkpoint().await {
                        tracing::error!(error = %e, "checkpoint after the purge failed");
                    }
                }
                let entry = watchfloor_store::NewAuditEntry {
                    at_ms: now,
                    user: "system".into(),
                    action: "retention.purge".into(),
                    target: "calls".into(),
                    outcome: "ok".into(),
                    detail: Some(format!("{} calls removed, {} held, {} audit entries removed", report.calls_removed, report.calls_held, report.audit_removed)),
                };
                if let Err(e) = state.store.audit(entry).await {
                    tracing::error!(error = %e, "audit of the purge failed");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
            Err(e) => tracing::error!(error = %e, "retention purge panicked"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
        }
    }
}

/// Starts the server on `listener`.
pub async fn serve(config: Config, listener: TcpListener) -> Result<ServerHandle, ServeError> {
    let addr = listener.local_addr()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(Arc::new(tls::Tls::load(c, k).map_err(|e| ServeError::Tls(e.to_string()))?)),
        (None, None) => None,
        _ => return Err(ServeError::Tls("tls_cert and tls_key go together".into())),
    };
    if !addr.ip().is_loopback() && !config.trusted_proxy && (tls.is_none() || config.twilio_auth_token.is_none()) {
        return Err(ServeError::Insecure(addr));
    }
    let tls_on = tls.is_some();
    let (console_token, created) = auth::console_token(&config.data_dir, config.console_token.as_ref())?;
    if created {
        tracing::warn!(path = %auth::token_path(&config.data_dir).display(), user = %config.console_user, "created the console token (mode 0600): sign in with it");
    } else if config.console_token.is_none() {
        tracing::info!(path = %auth::token_path(&config.data_dir).display(), user = %config.console_user, "console token: sign in with the one in this file");
    }
    for u in config.users.iter().filter(|u| u.roles.is_empty()) {
        tracing::warn!(user = %u.name, "config: a user without roles is given the supervisor role: set roles = [\"supervisor\" | \"reviewer\" | \"admin\", …]");
    }
    let (store, interrupted) = Store::open(&config.data_dir).map_err(|e| ServeError::Store(config.data_dir.display().to_string(), e))?;
    let users = seed_users(&config, &store).await?;
    let auth = Arc::new(auth::Auth::new(&console_token, &config.console_user, config.console_roles.clone(), users));
    let quota = governor::Quota::per_second(std::num::NonZeroU32::new(config.webhook_rate_per_second.max(1)).expect("max(1) is non-zero"))
        .allow_burst(std::num::NonZeroU32::new(config.webhook_rate_per_second.max(1) * 2).expect("non-zero"));
    let webhook_limiter = Arc::new(governor::RateLimiter::keyed(quota));
    for sid in &interrupted {
        tracing::warn!(call_sid = %sid, "call was live when the server stopped: marked interrupted");
    }
    // Settings saved from the console override the configuration file.
    let settings = match store.settings() {
        Ok(Some(v)) => match settings::Settings::from_saved(v, &config) {
            Ok(s) if s.validate().is_ok() => {
                tracing::info!("using the settings saved from the console");
                s
            }
            _ => {
                tracing::error!("saved settings are not valid: using the configuration file");
                settings::Settings::from_config(&config)
            }
        },
        Ok(None) => settings::Settings::from_config(&config),
        Err(e) => return Err(ServeError::Store(config.data_dir.display().to_string(), e)),
    };
    let scorer = Arc::new(scoring::Scorer::load(&store).map_err(|e| ServeError::Store(config.data_dir.display().to_string(), e))?);
    let roster = watchfloor_bridge::SharedRoster::new(load_roster(&config, &settings.units, &store)?);
    // Live and recent incidents are kept in memory: a restart starts the list afresh, numbered
    // after the last recorded incident.
    let incidents = watchfloor_bridge::SharedIncidents::new(watchfloor_dispatch::linking::LinkRules { window_ms: config.duplicate_window.as_millis() as u64 });
    incidents.start_after(last_incident_number(&config, &store)?);
    if config.openai_api_key.is_none() {
        tracing::warn!("==============================================================");
        tracing::warn!("NO OPENAI_API_KEY: the AI agent is OFF. Every call goes straight");
        tracing::warn!("to the human line{}.", config.human_line.as_deref().map(|l| format!(" ({l})")).unwrap_or_default());
        if config.demo || config.training {
            tracing::warn!("(Training calls are answered by the model fake.)");
        }
        tracing::warn!("==============================================================");
    }
    if config.human_line.is_none() {
        tracing::warn!("WATCHFLOOR_HUMAN_LINE is not set: a call the AI cannot take has nowhere to go");
    }
    if config.twilio_auth_token.is_none() {
        tracing::warn!("TWILIO_AUTH_TOKEN is not set: webhook and media-stream signatures are NOT checked");
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (hub, record_rx) = Hub::new(4096);
    let writer_stop = CancellationToken::new();
    // The writer's sled calls block (a batch, a flush): on its own thread with its own runtime
    // they never hold up a worker that runs calls' tasks.
    let (writer_done, writer) = tokio::sync::oneshot::channel::<()>();
    let (writer_store, writer_stop2) = (store.clone(), writer_stop.clone());
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(watchfloor_store::writer::run(writer_store, record_rx, writer_stop2)),
                Err(e) => tracing::error!(error = %e, "the store writer's runtime could not start: nothing will be recorded"),
            }
            let _ = writer_done.send(());
        })
        .map_err(ServeError::Writer)?;
    let training = if config.demo || config.training {
        let ip = if addr.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { addr.ip() };
        let base = format!("http://{}", SocketAddr::new(ip, addr.port()));
        let t = training::Training::start(&config.scenarios_dir, base, config.twilio_auth_token.as_ref().map(|t| t.expose().to_string()), config.public_url.clone())
            .await
            .map_err(|e| ServeError::Training(e.to_string()))?;
        tracing::info!(scenarios = ?t.scenario_names(), "training mode: simulated calls are answered by the model fake, marked SIMULATED");
        Some(Arc::new(t))
    } else {
        None
    };
    let bridge = BridgeConfig {
        model: Arc::new(ModelConfig {
            url: config.openai_realtime_url.clone(),
            api_key: config.openai_api_key.clone(),
            connect_timeout: config.model_connect_timeout,
            ..ModelConfig::default()
        }),
        profiles: Arc::new(settings.profile_book()),
        claim_window: config.claim_window,
        fallback: Arc::new(watchfloor_bridge::task::Fallback { rest: config.twilio_rest(), human_line: config.human() }),
        timers: config.timers,
        stream_limits: config.stream_limits,
        policy: config.dispatch_policy,
        voice_loss: config.voice_lost,
        roster: roster.clone(),
        incidents: incidents.clone(),
        training_model: training.as_ref().map(|t| {
            Arc::new(ModelConfig { url: t.model_url(), api_key: Some(watchfloor_bridge::model::ApiKey::new("training")), connect_timeout: config.model_connect_timeout, ..ModelConfig::default() })
        }),
        tools: watchfloor_bridge::tools::ToolClient::new(config.tool_secret.clone()),
        // Set from the settings below (`apply_to_bridge`).
        translation: None,
        training_translation: None,
    };
    if config.twilio_rest().is_none() {
        tracing::warn!("TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN not set: a failing AI call is handed to a human by closing its stream only (no REST redirect)");
    }
    let calls = CallRegistry::new(hub, bridge, cancel.child_token(), tracker.clone());
    settings::apply_to_bridge(&config, &settings, &calls, training.as_deref());
    let public_origin: Arc<str> = config.public_origin(addr).into();
    tracing::info!(%addr, public = %public_origin, data_dir = %config.data_dir.display(), "watchfloor listening");
    let state_auth = auth.clone();
    let state = AppState { config: Arc::new(config), public_origin, calls: calls.clone(), store: store.clone(), auth, webhook_limiter, roster, incidents, shutdown: cancel.clone(), training: training.clone(), settings: Arc::new(parking_lot::RwLock::new(settings)), throttled: Arc::default(), scorer };
    tokio::spawn(retention_job(state.clone(), cancel.clone()));
    let scoring = tokio::spawn(scoring::job(state.scorer.clone(), store.clone(), cancel.clone()));
    let throttled_audit = tokio::spawn(session::audit_throttled(state.clone(), cancel.clone()));
    if let (Some(t), true) = (&training, state.config.demo) {
        tokio::spawn(training::demo_loop(state.clone(), t.clone(), state.config.demo_interval, state.config.demo_max_calls, cancel.clone()));
    }
    if let Some(t) = &tls {
        tokio::spawn(t.clone().watch(cancel.clone()));
        tracing::info!("serving https and wss (TLS)");
    }
    let app = routes::router(state.clone());
    let mut limits = conn::ConnLimits::for_nofile(conn::raise_nofile());
    if let Some(n) = state.config.max_connections {
        limits.max_connections = n.max(1);
    }
    limits.max_per_address = if state.config.trusted_proxy { limits.max_connections } else { state.config.max_connections_per_address.max(1) };
    limits.header_read_timeout = state.config.header_read_timeout;
    tracing::info!(?limits, "connection limits");
    let c2 = cancel.clone();
    let join = tokio::spawn(async move {
        conn::serve(listener, app, limits, tls, c2.clone()).await;
        c2.cancel();
        // The last count of throttled sign-ins is audited before the store closes.
        let _ = throttled_audit.await;
        // The scorer holds the store while it scores: it stops between two calls, and the
        // store is closed only after (a restart in the same process would find it locked).
        let _ = scoring.await;
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_err() {
            tracing::error!("call tasks did not end within 5 s of shutdown");
        }
        // Call tasks have ended: their last events are queued. The writer writes them, flushes
        // and returns.
        writer_stop.cancel();
        let _ = writer.await;
        tracing::info!("watchfloor stopped");
    });
    let local_origin = format!("{}://{}", if tls_on { "https" } else { "http" }, if addr.ip().is_unspecified() { SocketAddr::new(std::net::IpAddr::from([127, 0, 0, 1]), addr.port()) } else { addr });
    Ok(ServerHandle { addr, store, calls, auth: state_auth, local_origin, cancel, join })
}
