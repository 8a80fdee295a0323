//! The supervisor's settings, saved on the server: agent instructions, voice, VAD profile,
//! dispatch policy and hold window, unit roster, human fallback line. `GET /api/settings`,
//! `PUT /api/settings` (validated, audited, stored in sled, applied to calls started from then
//! on; the roster at once). Saved settings override the configuration file at start.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use watchfloor_bridge::VadProfile;
use watchfloor_dispatch::policy::Policy;

use crate::AppState;
use crate::auth::User;
use crate::config::{Config, UnitConfig};
use crate::audit::audit;
use crate::error::ApiError;

/// Voices of the Realtime API (PROTOCOLS.md §1).
pub const VOICES: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"];

/// What a supervisor may change from the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The agent's instructions (1–8000 characters).
    pub instructions: String,
    /// The agent's voice (one of [`VOICES`]).
    pub voice: String,
    /// Server VAD: threshold 0–1, prefix padding 0–2000 ms, silence 100–5000 ms.
    pub vad: VadProfile,
    /// Supervised with a hold window (1–600 s) or automatic.
    pub dispatch_policy: Policy,
    /// The unit roster (unique call signs; a unit on a call cannot be removed).
    pub units: Vec<UnitConfig>,
    /// The human fallback line (E.164), or none.
    pub human_line: Option<String>,
    /// What a call whose voice holder's console is lost does (issue 17): the agent takes it
    /// back (`ai`, the default) or it goes to the human line (`human_line`).
    #[serde(default)]
    pub voice_lost: watchfloor_bridge::machine::VoiceLossAction,
    /// New calls per minute above which the board shows a surge banner (issue 18; 1–1000,
    /// default [`DEFAULT_SURGE_CALLS_PER_MINUTE`]).
    #[serde(default = "default_surge")]
    pub surge_calls_per_minute: u32,
}

/// The default surge rate: more than 8 new calls in a minute (DOMAIN.md: a mid-size PSAP has
/// 3–5 live calls at peak and surges reach 10×, 797 calls in 15 minutes in Dallas).
pub const DEFAULT_SURGE_CALLS_PER_MINUTE: u32 = 8;

fn default_surge() -> u32 {
    DEFAULT_SURGE_CALLS_PER_MINUTE
}

impl Settings {
    /// The settings as the configuration gives them.
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            instructions: c.agent.instructions.clone(),
            voice: c.agent.voice.clone(),
            vad: c.agent.vad,
            dispatch_policy: c.dispatch_policy,
            units: c.units.clone(),
            human_line: c.human_line.clone(),
            voice_lost: c.voice_lost,
            surge_calls_per_minute: DEFAULT_SURGE_CALLS_PER_MINUTE,
        }
    }

    /// Checks every field; returns what is wrong, field by field.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        let n = self.instructions.trim().chars().count();
        if n == 0 || n > 8000 {
            errors.push("instructions must be 1–8000 characters".to_string());
        }
        if !VOICES.contains(&self.voice.as_str()) {
            errors.push(format!("voice must be one of {}", VOICES.join(", ")));
        }
        if !(0.0..=1.0).contains(&self.vad.threshold) {
            errors.push("vad.threshold must be 0–1".into());
        }
        if self.vad.prefix_padding_ms > 2000 {
            errors.push("vad.prefix_padding_ms must be 0–2000".into());
        }
        if !(100..=5000).contains(&self.vad.silence_duration_ms) {
            errors.push("vad.silence_duration_ms must be 100–5000".into());
        }
        if let Policy::Supervised { hold_ms } = self.dispatch_policy
            && !(1000..=600_000).contains(&hold_ms) {
                errors.push("dispatch_policy.hold_ms must be 1000–600000 (1–600 s)".into());
            }
        if self.units.len() > 500 {
            errors.push("at most 500 units".into());
        }
        for u in &self.units {
            if let Err(e) = crate::api::valid_unit(&u.id) {
                errors.push(e);
            }
        }
        if let Some(l) = &self.human_line
            && let Err(e) = crate::api::valid_number(l) {
                errors.push(format!("human_line: {e}"));
            }
        if !(1..=1000).contains(&self.surge_calls_per_minute) {
            errors.push("surge_calls_per_minute must be 1–1000".into());
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// The sections that differ from `old`, for the audit trail.
    fn changes(&self, old: &Settings) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.instructions != old.instructions {
            v.push("instructions");
        }
        if self.voice != old.voice {
            v.push("voice");
        }
        if self.vad != old.vad {
            v.push("vad");
        }
        if self.dispatch_policy != old.dispatch_policy {
            v.push("dispatch_policy");
        }
        if self.units != old.units {
            v.push("units");
        }
        if self.human_line != old.human_line {
            v.push("human_line");
        }
        if self.voice_lost != old.voice_lost {
            v.push("voice_lost");
        }
        if self.surge_calls_per_minute != old.surge_calls_per_minute {
            v.push("surge_calls_per_minute");
        }
        v
    }
}

/// Applies settings to calls started from now on (profile, policy, fallback line).
pub(crate) fn apply_to_bridge(state_config: &Config, s: &Settings, calls: &watchfloor_bridge::CallRegistry) {
    calls.update_config(|b| {
        let mut profile = (*b.profile).clone();
        profile.instructions = s.instructions.clone();
        profile.voice = s.voice.clone();
        profile.vad = s.vad;
        b.profile = std::sync::Arc::new(profile);
        b.policy = s.dispatch_policy;
        b.voice_loss = s.voice_lost;
        let human = watchfloor_bridge::twilio_rest::HumanLine { number: s.human_line.clone(), queue: state_config.human_queue.clone() };
        b.fallback = std::sync::Arc::new(watchfloor_bridge::task::Fallback { rest: state_config.twilio_rest(), human_line: human });
    });
}


fn current(state: &AppState) -> Settings {
    state.settings.read().clone()
}

/// `GET /api/settings`.
pub(crate) async fn get_settings(State(state): State<AppState>) -> Json<Settings> {
    Json(current(&state))
}

/// `PUT /api/settings` with the whole [`Settings`]: 400 with every problem, 409 when a unit on
/// a call would be removed; else saved, applied and returned.
pub(crate) async fn put_settings(State(state): State<AppState>, Extension(user): Extension<User>, body: Bytes) -> Result<Json<Settings>, ApiError> {
    let r = update(&state, &body).await;
    let (outcome, detail) = match &r {
        Ok((_, changed)) => ("ok", if changed.is_empty() { "no change".to_string() } else { changed.join(", ") }),
        Err(ApiError(StatusCode::BAD_REQUEST, why)) => ("invalid", why.clone()),
        Err(ApiError(StatusCode::CONFLICT, why)) => ("refused", why.clone()),
        Err(ApiError(_, why)) => ("error", why.clone()),
    };
    audit(&state, &user, "settings.update", "settings", outcome, Some(detail), true).await;
    r.map(|(s, _)| Json(s))
}

async fn update(state: &AppState, body: &[u8]) -> Result<(Settings, Vec<&'static str>), ApiError> {
    let new: Settings = serde_json::from_slice(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    new.validate().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let old = current(state);
    let changed = new.changes(&old);
    if changed.contains(&"units") {
        state.roster
            .reconfigure(new.units.iter().map(|u| (u.id.clone(), u.unit_type)).collect())
            .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
    }
    // Invariant: Settings is plain data and serialises.
    let value = serde_json::to_value(&new).expect("settings serialise");
    state.store.put_settings(&value).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    apply_to_bridge(&state.config, &new, &state.calls);
    *state.settings.write() = new.clone();
    tracing::info!(changed = ?changed, "settings updated");
    Ok((new, changed))
}
