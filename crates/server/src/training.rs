//! Training mode: simulated calls from the scenario set, through the real bridge, answered by
//! the Realtime model fake running in this process (never the real service), marked SIMULATED
//! everywhere. `watchfloor serve --demo` places them on its own (one every `demo_interval`, at
//! most `demo_max_calls` at once); a console places one with `POST /api/training/calls`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use watchfloor_sim::Scenario;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{ModelFake, ModelFakeOptions};
use watchfloor_sim::simulate::{SimulateOptions, new_call_sid, place_call};

use crate::AppState;
use crate::auth::User;
use crate::audit::audit;
use crate::error::ApiError;

/// The training set-up of a server.
pub struct Training {
    scenarios: Vec<Scenario>,
    fake: ModelFake,
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
        let fake = ModelFake::start("127.0.0.1:0".parse()?, scenarios.clone(), ModelFakeOptions::default()).await?;
        let options = SimulateOptions { caller: CallerOptions::default(), auth_token, public_url, call_sid: None, ..Default::default() };
        Ok(Training { scenarios, fake, base_url, options, next: AtomicUsize::new(0) })
    }

    /// The model fake's WebSocket URL.
    pub fn model_url(&self) -> String {
        self.fake.url()
    }

    /// Scenario names.
    pub fn scenario_names(&self) -> Vec<String> {
        self.scenarios.iter().map(|s| s.name.clone()).collect()
    }

    /// Places one simulated call (the named scenario, or the next in turn) and returns its
    /// CallSid and scenario at once; the call runs in the background.
    pub fn place(&self, scenario: Option<&str>) -> Result<(String, String), String> {
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
            if let Err(e) = place_call(&base, &sc, &opts).await {
                tracing::warn!(scenario = %sc.name, error = %e, "training call failed");
            }
        });
        Ok((call_sid, name))
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

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/training/scenarios", get(scenarios)).route("/api/training/calls", post(place))
}

fn training(state: &AppState) -> Result<&Arc<Training>, ApiError> {
    state.training.as_ref().ok_or_else(|| ApiError(StatusCode::CONFLICT, "training mode is off (start with --demo or training = true)".into()))
}

/// `GET /api/training/scenarios` → `{"scenarios": [...]}`.
async fn scenarios(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({"scenarios": training(&state)?.scenario_names()})))
}

#[derive(Deserialize, Default)]
struct PlaceBody {
    scenario: Option<String>,
}

/// `POST /api/training/calls` `{"scenario": "structure-fire"}` (optional) → `{"call_sid","scenario"}`.
async fn place(State(state): State<AppState>, Extension(user): Extension<User>, b: Result<Json<PlaceBody>, JsonRejection>) -> Result<Json<serde_json::Value>, ApiError> {
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
