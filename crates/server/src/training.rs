//! Training mode: simulated calls from the scenario set, through the real bridge, answered by
//! the Realtime model fake running in this process (never the real service; their lines in
//! other languages translated by the Chat Completions fake beside it), marked SIMULATED
//! everywhere. `watchfloor serve --demo` places them on its own (one every `demo_interval`, at
//! most `demo_max_calls` at once); a console places one with `POST /api/training/calls`, or a
//! surge (issue 18: many callers about one emergency, `scenarios/surges/*.toml`) with
//! `POST /api/training/surges`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use watchfloor_sim::{Scenario, Surge};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{ModelFake, ModelFakeOptions};
use watchfloor_sim::translate::{TranslateFake, TranslateFakeOptions};
use watchfloor_sim::simulate::{SimulateOptions, new_call_sid, place_call};

use crate::AppState;
use crate::auth::User;
use crate::audit::audit;
use crate::error::ApiError;

/// The training set-up of a server.
pub struct Training {
    scenarios: Vec<Scenario>,
    surges: Vec<Surge>,
    fake: ModelFake,
    /// Translates the lines of training calls in other languages (issue 21).
    translate: TranslateFake,
    /// Where this server is reached locally (`http://127.0.0.1:port`).
    base_url: String,
    options: SimulateOptions,
    next: AtomicUsize,
}

impl Training {
    /// Starts the model fake (loopback, a free port) with the scenarios in `dir`.
    pub async fn start(dir: &std::path::Path, base_url: String, auth_token: Option<String>, public_url: Option<String>) -> anyhow::Result<Training> {
        let scenarios = Scenario::load_all(dir)?;
        anyhow::ensure!(!scenarios.is_empty(), "no scenarios in {}", dir.display());
        let surges = Surge::load_all(dir, &scenarios)?;
        let fake = ModelFake::start("127.0.0.1:0".parse()?, scenarios.clone(), ModelFakeOptions::default()).await?;
        let translate = TranslateFake::start("127.0.0.1:0".parse()?, &scenarios, TranslateFakeOptions::default()).await?;
        let options = SimulateOptions { caller: CallerOptions::default(), auth_token, public_url, call_sid: None, ..Default::default() };
        Ok(Training { scenarios, surges, fake, translate, base_url, options, next: AtomicUsize::new(0) })
    }

    /// The model fake's WebSocket URL.
    pub fn model_url(&self) -> String {
        self.fake.url()
    }

    /// The translation fake's Chat Completions URL.
    pub fn translate_url(&self) -> String {
        self.translate.url()
    }

    /// Scenario names.
    pub fn scenario_names(&self) -> Vec<String> {
        self.scenarios.iter().map(|s| s.name.clone()).collect()
    }

    /// Surges: name and description.
    pub fn surges(&self) -> Vec<(String, String)> {
        self.surges.iter().map(|s| (s.name.clone(), s.description.clone())).collect()
    }

    /// Places one simulated call (the named scenario, or the next in turn) and returns its
    /// CallSid and scenario at once; the call runs in the background.
    pub fn place(&self, scenario: Option<&str>) -> Result<(String, String), String> {
        self.place_after(scenario, std::time::Duration::ZERO)
    }

    fn place_after(&self, scenario: Option<&str>, after: std::time::Duration) -> Result<(String, String), String> {
        let sc = match scenario {
            Some(name) => self.scenarios.iter().find(|s| s.name == name).ok_or_else(|| format!("no scenario {name:?}; there are {}", self.scenario_names().join(", ")))?,
            None => &self.scenarios[self.next.fetch_add(1, Ordering::Relaxed) % self.scenarios.len()],
        }
        .clone();
        let call_sid = new_call_sid();
        let opts = SimulateOptions { call_sid: Some(call_sid.clone()), ..self.options.clone() };
        let base = self.base_url.clone();
        let name = sc.name.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Err(e) = place_call(&base, &sc, &opts).await {
                tracing::warn!(scenario = %sc.name, error = %e, "training call failed");
            }
        });
        Ok((call_sid, name))
    }

    /// Places a surge: `calls` calls (the surge's own count when none, at most
    /// [`MAX_SURGE_CALLS`]) on its schedule ([`Surge::schedule`]). Returns each call's CallSid,
    /// scenario and start (ms after now) at once; the calls run in the background.
    pub fn place_surge(&self, name: &str, calls: Option<usize>) -> Result<Vec<(String, String, u64)>, String> {
        let surge = self.surges.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.surges.iter().map(|s| s.name.as_str()).collect();
            format!("no surge {name:?}; there are {}", names.join(", "))
        })?;
        if calls.is_some_and(|n| n == 0 || n > MAX_SURGE_CALLS) {
            return Err(format!("calls must be 1–{MAX_SURGE_CALLS}"));
        }
        surge
            .schedule(calls)
            .into_iter()
            .map(|(scenario, after_ms)| self.place_after(Some(scenario), std::time::Duration::from_millis(after_ms)).map(|(sid, sc)| (sid, sc, after_ms)))
            .collect()
    }
}

/// Places a training call every `interval` while fewer than `max` simulated calls are live.
pub(crate) async fn demo_loop(state: AppState, training: Arc<Training>, interval: std::time::Duration, max: usize, cancel: CancellationToken) {
    loop {
        let live = state.calls.live_calls().iter().filter(|c| c.simulated).count();
        if live < max {
            match training.place(None) {
                Ok((sid, name)) => tracing::info!(call_sid = %sid, scenario = %name, "demo: training call placed"),
                Err(e) => tracing::warn!(error = %e, "demo: no training call"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// The most calls one surge request places.
pub const MAX_SURGE_CALLS: usize = 200;


fn training(state: &AppState) -> Result<&Arc<Training>, ApiError> {
    state.training.as_ref().ok_or_else(|| ApiError(StatusCode::CONFLICT, "training mode is off (start with --demo or training = true)".into()))
}

/// `GET /api/training/scenarios` → `{"scenarios": [name…], "surges": [{"name", "description"}…]}`.
pub(crate) async fn scenarios(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let t = training(&state)?;
    let surges: Vec<serde_json::Value> = t.surges().into_iter().map(|(name, description)| json!({"name": name, "description": description})).collect();
    Ok(Json(json!({"scenarios": t.scenario_names(), "surges": surges})))
}

#[derive(Deserialize)]
pub(crate) struct SurgeBody {
    surge: String,
    calls: Option<usize>,
}

/// `POST /api/training/surges` `{"surge": "willow-creek-fire", "calls": 60}` (`calls` optional)
/// → `{"surge", "calls": [{"call_sid", "scenario", "after_ms"}…]}`.
pub(crate) async fn place_surge(State(state): State<AppState>, Extension(user): Extension<User>, b: Result<Json<SurgeBody>, JsonRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let r = match b {
        Ok(Json(b)) => training(&state).and_then(|t| t.place_surge(&b.surge, b.calls).map(|calls| (b.surge, calls)).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))),
        Err(e) => Err(ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text()))),
    };
    let (outcome, detail) = match &r {
        Ok((name, calls)) => ("ok", Some(format!("{name}: {} calls", calls.len()))),
        Err(ApiError(_, why)) => ("refused", Some(why.clone())),
    };
    audit(&state, &user, "training.place_surge", "training", outcome, detail, true).await;
    let (surge, calls) = r?;
    let calls: Vec<serde_json::Value> = calls.into_iter().map(|(call_sid, scenario, after_ms)| json!({"call_sid": call_sid, "scenario": scenario, "after_ms": after_ms})).collect();
    Ok(Json(json!({"surge": surge, "calls": calls})))
}

#[derive(Deserialize, Default)]
pub(crate) struct PlaceBody {
    scenario: Option<String>,
}

/// `POST /api/training/calls` `{"scenario": "structure-fire"}` (optional) → `{"call_sid","scenario"}`.
pub(crate) async fn place(State(state): State<AppState>, Extension(user): Extension<User>, b: Result<Json<PlaceBody>, JsonRejection>) -> Result<Json<serde_json::Value>, ApiError> {
    let body = match b {
        Ok(Json(b)) => b,
        Err(JsonRejection::MissingJsonContentType(_)) => PlaceBody::default(),
        Err(e) => return Err(ApiError(StatusCode::BAD_REQUEST, format!("request body: {}", e.body_text()))),
    };
    let r = training(&state).and_then(|t| t.place(body.scenario.as_deref()).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e)));
    let (outcome, target, detail) = match &r {
        Ok((sid, name)) => ("ok", sid.clone(), Some(name.clone())),
        Err(ApiError(_, why)) => ("refused", "training".to_string(), Some(why.clone())),
    };
    audit(&state, &user, "training.place_call", &target, outcome, detail, true).await;
    let (call_sid, scenario) = r?;
    Ok(Json(json!({"call_sid": call_sid, "scenario": scenario})))
}
