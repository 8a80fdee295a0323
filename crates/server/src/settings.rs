//! The centre's settings, saved on the server: the agent profiles (one per line, issue 21:
//! model, instructions or stored prompt, voice, languages, turn detection, noise reduction,
//! speed), the centre's language and the translation model, the
//! dispatch policy and hold window, unit roster, human fallback line. `GET /api/settings`,
//! `PUT /api/settings` (validated field by field, audited, stored, applied to calls started
//! from then on; the roster at once). Saved settings override the configuration file at start;
//! settings saved before profiles (one agent's instructions, voice and VAD at the top level)
//! become the default profile ([`Settings::from_saved`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use watchfloor_bridge::{AgentProfile, TurnDetectionKind};
use watchfloor_dispatch::policy::Policy;

use crate::AppState;
use crate::auth::User;
use crate::config::{Config, UnitConfig};
use crate::audit::audit;
use crate::error::ApiError;

/// Voices of the Realtime API (PROTOCOLS.md §1).
pub const VOICES: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"];

/// What an administrator may change from the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The agent profiles (1–20, names unique); each answers the called numbers in its `lines`
    /// (a number in one profile at most).
    pub profiles: Vec<AgentProfile>,
    /// The profile of every called number no profile lists.
    pub default_profile: String,
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
    /// The centre's language (ISO 639-1, default `en`): every line spoken in another is shown
    /// to the supervisor with a machine translation into it (issue 21).
    #[serde(default = "default_language")]
    pub language: String,
    /// The OpenAI text model that translates lines (default
    /// [`watchfloor_bridge::translate::DEFAULT_TRANSLATION_MODEL`]); none: no translations.
    #[serde(default = "default_translation_model")]
    pub translation_model: Option<String>,
}

fn default_language() -> String {
    "en".into()
}

fn default_translation_model() -> Option<String> {
    Some(watchfloor_bridge::translate::DEFAULT_TRANSLATION_MODEL.into())
}

/// Most languages a profile may list.
pub const MAX_LANGUAGES: usize = 12;

/// The default surge rate: more than 8 new calls in a minute (DOMAIN.md: a mid-size PSAP has
/// 3–5 live calls at peak and surges reach 10×, 797 calls in 15 minutes in Dallas).
pub const DEFAULT_SURGE_CALLS_PER_MINUTE: u32 = 8;

fn default_surge() -> u32 {
    DEFAULT_SURGE_CALLS_PER_MINUTE
}

/// Longest instructions, characters.
pub const MAX_INSTRUCTIONS: usize = 8000;
/// Most profiles.
pub const MAX_PROFILES: usize = 20;

impl Settings {
    /// The settings as the configuration gives them: its `[agent]` as the one profile.
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            profiles: vec![c.agent.clone()],
            default_profile: c.agent.name.clone(),
            dispatch_policy: c.dispatch_policy,
            units: c.units.clone(),
            human_line: c.human_line.clone(),
            voice_lost: c.voice_lost,
            surge_calls_per_minute: DEFAULT_SURGE_CALLS_PER_MINUTE,
            language: default_language(),
            translation_model: default_translation_model(),
        }
    }

    /// Settings as saved in the store. Settings saved before profiles had one agent's
    /// `instructions`, `voice` and `vad` at the top level: they become the configuration's
    /// profile with those three changed, and the default.
    ///
    /// # Errors
    /// The saved value is not settings of either shape (the JSON error).
    pub fn from_saved(mut v: serde_json::Value, c: &Config) -> Result<Settings, serde_json::Error> {
        if let Some(obj) = v.as_object_mut()
            && !obj.contains_key("profiles")
        {
            let mut profile = c.agent.clone();
            if let Some(i) = obj.remove("instructions") {
                profile.instructions = serde_json::from_value(i)?;
            }
            if let Some(voice) = obj.remove("voice") {
                profile.voice = serde_json::from_value(voice)?;
            }
            if let Some(vad) = obj.remove("vad") {
                profile.vad = serde_json::from_value(vad)?;
            }
            obj.insert("default_profile".into(), profile.name.clone().into());
            obj.insert("profiles".into(), serde_json::to_value(vec![profile]).expect("a profile serialises"));
        }
        // Profiles saved before issue 21's languages had one `language`: a list of one.
        if let Some(profiles) = v.get_mut("profiles").and_then(|p| p.as_array_mut()) {
            for p in profiles.iter_mut().filter_map(|p| p.as_object_mut()) {
                if let Some(one) = p.remove("language")
                    && !p.contains_key("languages")
                {
                    p.insert("languages".into(), serde_json::Value::Array(vec![one]));
                }
            }
        }
        serde_json::from_value(v)
    }

    /// The profiles by line, for the bridge.
    pub fn profile_book(&self) -> watchfloor_bridge::ProfileBook {
        let default = self.profiles.iter().find(|p| p.name == self.default_profile).or(self.profiles.first()).cloned().unwrap_or_default();
        let lines = self.profiles.iter().flat_map(|p| {
            let shared = std::sync::Arc::new(p.clone());
            p.lines.iter().map(move |n| (n.clone(), shared.clone()))
        });
        watchfloor_bridge::ProfileBook::new(default, lines.collect::<Vec<_>>())
    }

    /// Checks every field; returns what is wrong, field by field (a profile's fields as
    /// `profiles.<name>.<field>`).
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if self.profiles.is_empty() || self.profiles.len() > MAX_PROFILES {
            errors.push(format!("profiles: 1–{MAX_PROFILES} profiles"));
        }
        let mut names = std::collections::HashSet::new();
        let mut numbers = std::collections::HashMap::new();
        for p in &self.profiles {
            if !names.insert(p.name.as_str()) {
                errors.push(format!("profiles: the name {} is used twice", p.name));
            }
            validate_profile(p, &mut errors);
            for n in &p.lines {
                if let Some(other) = numbers.insert(n.as_str(), p.name.as_str()) {
                    errors.push(format!("profiles.{}.lines: {n} is already the line of {other}", p.name));
                }
            }
        }
        if !self.profiles.iter().any(|p| p.name == self.default_profile) {
            errors.push(format!("default_profile: no profile is named {}", self.default_profile));
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
        if watchfloor_bridge::language::name(&self.language).is_none() {
            errors.push(format!("language must be an ISO 639-1 code, e.g. en (got {:?})", self.language));
        }
        if let Some(m) = &self.translation_model
            && (m.is_empty() || m.len() > 64 || !m.starts_with("gpt-") || !m.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
        {
            errors.push("translation_model must be an OpenAI text model name, e.g. gpt-4.1-mini".into());
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// Gives each profile its version: a new name starts at 1, a changed profile is one more
    /// than it was, an unchanged one keeps its own (what the client sent is ignored).
    fn number_versions(&mut self, old: &Settings) {
        for p in &mut self.profiles {
            p.version = match old.profiles.iter().find(|o| o.name == p.name) {
                Some(o) if AgentProfile { version: o.version, ..p.clone() } == *o => o.version,
                Some(o) => o.version + 1,
                None => 1,
            };
        }
    }

    /// The sections that differ from `old`, for the audit trail (a profile as
    /// `profile <name> v<version>`).
    fn changes(&self, old: &Settings) -> Vec<String> {
        let mut v = Vec::new();
        for p in &self.profiles {
            if !old.profiles.contains(p) {
                v.push(format!("profile {} v{}", p.name, p.version));
            }
        }
        for o in &old.profiles {
            if !self.profiles.iter().any(|p| p.name == o.name) {
                v.push(format!("profile {} removed", o.name));
            }
        }
        if self.default_profile != old.default_profile {
            v.push("default_profile".into());
        }
        if self.dispatch_policy != old.dispatch_policy {
            v.push("dispatch_policy".into());
        }
        if self.units != old.units {
            v.push("units".into());
        }
        if self.human_line != old.human_line {
            v.push("human_line".into());
        }
        if self.voice_lost != old.voice_lost {
            v.push("voice_lost".into());
        }
        if self.surge_calls_per_minute != old.surge_calls_per_minute {
            v.push("surge_calls_per_minute".into());
        }
        if self.language != old.language {
            v.push("language".into());
        }
        if self.translation_model != old.translation_model {
            v.push("translation_model".into());
        }
        v
    }
}

/// Checks one profile's fields into `errors` (PROTOCOLS.md §1 and §5 give the ranges).
fn validate_profile(p: &AgentProfile, errors: &mut Vec<String>) {
    let f = |field: &str, why: String| format!("profiles.{}.{field} {why}", p.name);
    let n = p.name.chars().count();
    if n == 0 || n > 40 || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ' ') {
        errors.push(format!("profiles: a name must be 1–40 letters, digits, spaces, - or _ (got {:?})", p.name));
    }
    let model_ok = p.model.len() <= 64 && p.model.starts_with("gpt-") && p.model.contains("realtime") && p.model.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !model_ok {
        errors.push(f("model", "must be a Realtime model name, e.g. gpt-realtime or gpt-realtime-mini".into()));
    }
    let chars = p.instructions.trim().chars().count();
    if chars > MAX_INSTRUCTIONS {
        errors.push(f("instructions", format!("must be at most {MAX_INSTRUCTIONS} characters")));
    }
    if p.keypad_protocol.chars().count() > 2000 {
        errors.push(f("keypad_protocol", "must be at most 2000 characters".into()));
    }
    if chars == 0 && p.prompt.is_none() {
        errors.push(f("instructions", "must be given unless a stored prompt is".into()));
    }
    if let Some(pr) = &p.prompt {
        if !(pr.id.starts_with("pmpt_") && pr.id.len() <= 80 && pr.id[5..].chars().all(|c| c.is_ascii_alphanumeric()) && pr.id.len() > 5) {
            errors.push(f("prompt.id", "must be a stored prompt's id, pmpt_ and letters or digits".into()));
        }
        if pr.version.as_ref().is_some_and(|v| v.is_empty() || v.len() > 10 || !v.chars().all(|c| c.is_ascii_digit())) {
            errors.push(f("prompt.version", "must be digits".into()));
        }
        if pr.variables.len() > 50 || pr.variables.iter().any(|(k, v)| k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || v.chars().count() > 2000) {
            errors.push(f("prompt.variables", "must be at most 50 names of letters, digits and _, each value at most 2000 characters".into()));
        }
    }
    if !VOICES.contains(&p.voice.as_str()) {
        errors.push(f("voice", format!("must be one of {}", VOICES.join(", "))));
    }
    if !(0.0..=1.0).contains(&p.vad.threshold) {
        errors.push(f("vad.threshold", "must be 0–1".into()));
    }
    if p.vad.prefix_padding_ms > 2000 {
        errors.push(f("vad.prefix_padding_ms", "must be 0–2000".into()));
    }
    if !(100..=5000).contains(&p.vad.silence_duration_ms) {
        errors.push(f("vad.silence_duration_ms", "must be 100–5000".into()));
    }
    if let Some(ms) = p.idle_timeout_ms {
        if p.turn_detection == TurnDetectionKind::SemanticVad {
            errors.push(f("idle_timeout_ms", "is for server VAD only (semantic VAD has none)".into()));
        } else if !(5000..=30_000).contains(&ms) {
            errors.push(f("idle_timeout_ms", "must be 5000–30000".into()));
        }
    }
    if !(0.25..=1.5).contains(&p.speed) {
        errors.push(f("speed", "must be 0.25–1.5".into()));
    }
    if p.languages.is_empty() || p.languages.len() > MAX_LANGUAGES {
        errors.push(f("languages", format!("must list 1–{MAX_LANGUAGES} languages")));
    }
    let mut seen = std::collections::HashSet::new();
    for code in &p.languages {
        if watchfloor_bridge::language::name(code).is_none() {
            errors.push(f("languages", format!("{code:?} is not an ISO 639-1 code (e.g. en, es, ja, vi)")));
        } else if !seen.insert(code.as_str()) {
            errors.push(f("languages", format!("lists {code} twice")));
        }
    }
    if p.transcription_model.is_empty() || p.transcription_model.len() > 64 || !p.transcription_model.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
        errors.push(f("transcription_model", "must be a transcription model name, e.g. gpt-4o-transcribe".into()));
    }
    if p.tools.len() > 16 {
        errors.push(f("tools", "must be at most 16".into()));
    }
    let mut tool_names = std::collections::HashSet::new();
    for t in &p.tools {
        if !tool_names.insert(t.name.as_str()) {
            errors.push(f("tools", format!("has {} twice", t.name)));
        }
        for why in t.problems() {
            errors.push(format!("profiles.{}.tools.{}.{why}", p.name, t.name));
        }
    }
    if p.lines.len() > 50 {
        errors.push(f("lines", "must be at most 50 numbers".into()));
    }
    for n in &p.lines {
        if let Err(e) = crate::api::valid_number(n) {
            errors.push(format!("profiles.{}.lines: {e}", p.name));
        }
    }
}

/// Applies settings to calls started from now on (profile, policy, fallback line, translation).
pub(crate) fn apply_to_bridge(state_config: &Config, s: &Settings, calls: &watchfloor_bridge::CallRegistry, training: Option<&crate::training::Training>) {
    use watchfloor_bridge::translate::{OpenAiTranslator, Translation, TranslatorConfig};
    let translation = |url: String, api_key: Option<watchfloor_bridge::model::ApiKey>| {
        s.translation_model.as_ref().map(|model| Translation {
            translator: std::sync::Arc::new(OpenAiTranslator::new(TranslatorConfig { url, api_key, model: model.clone(), ..TranslatorConfig::default() })),
            into: s.language.clone(),
        })
    };
    let real = translation(state_config.openai_translate_url.clone(), state_config.openai_api_key.clone());
    let fake = training.and_then(|t| translation(t.translate_url(), Some(watchfloor_bridge::model::ApiKey::new("training"))));
    calls.update_config(|b| {
        b.translation = real;
        b.training_translation = fake;
        b.profiles = std::sync::Arc::new(s.profile_book());
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

async fn update(state: &AppState, body: &[u8]) -> Result<(Settings, Vec<String>), ApiError> {
    // The path of a value that does not parse is named (`profiles[1].eagerness: unknown variant …`).
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut new: Settings = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError(StatusCode::BAD_REQUEST, if path == "." { format!("request body: {inner}") } else { format!("{path}: {inner}") })
    })?;
    new.validate().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let old = current(state);
    new.number_versions(&old);
    let changed = new.changes(&old);
    if changed.iter().any(|c| c == "units") {
        state.roster
            .reconfigure(new.units.iter().map(|u| (u.id.clone(), u.unit_type)).collect())
            .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
    }
    // Invariant: Settings is plain data and serialises.
    let value = serde_json::to_value(&new).expect("settings serialise");
    state.store.put_settings(&value).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    apply_to_bridge(&state.config, &new, &state.calls, state.training.as_deref());
    *state.settings.write() = new.clone();
    tracing::info!(changed = ?changed, "settings updated");
    Ok((new, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_saved_before_profiles_become_the_default_profile() {
        let cfg = Config::defaults();
        let old = serde_json::json!({
            "instructions": "You answer 911 calls for Springfield.",
            "voice": "cedar",
            "vad": {"threshold": 0.9, "prefix_padding_ms": 800, "silence_duration_ms": 2500},
            "dispatch_policy": {"mode": "automatic"},
            "units": [],
            "human_line": null,
            "voice_lost": "ai",
            "surge_calls_per_minute": 8,
        });
        let s = Settings::from_saved(old, &cfg).unwrap();
        assert_eq!(s.profiles.len(), 1);
        let p = &s.profiles[0];
        assert_eq!((p.name.as_str(), p.voice.as_str(), p.vad.threshold), ("default", "cedar", 0.9));
        assert_eq!(p.instructions, "You answer 911 calls for Springfield.");
        assert_eq!(s.default_profile, "default");
        assert_eq!(s.dispatch_policy, Policy::Automatic);
        assert!(s.validate().is_ok(), "{:?}", s.validate());
        // Saved in the new shape, read back as it is.
        let again = Settings::from_saved(serde_json::to_value(&s).unwrap(), &cfg).unwrap();
        assert_eq!(again, s);
        // A profile saved with one `language` (before languages) has a list of one.
        let mut one = serde_json::to_value(&s).unwrap();
        let profile = one["profiles"][0].as_object_mut().unwrap();
        profile.remove("languages");
        profile.insert("language".into(), "es".into());
        assert_eq!(Settings::from_saved(one, &cfg).unwrap().profiles[0].languages, vec!["es".to_string()]);
        // Any number not listed goes to the default; a listed one to its profile.
        let mut two = s.clone();
        two.profiles.push(AgentProfile { name: "non-emergency".into(), lines: vec!["+15550000311".into()], voice: "sage".into(), ..Default::default() });
        assert!(two.validate().is_ok(), "{:?}", two.validate());
        let book = two.profile_book();
        assert_eq!(book.for_line("+15550000311").voice, "sage");
        assert_eq!(book.for_line("+15550000911").voice, "cedar");
    }

    #[test]
    fn versions_count_saved_changes() {
        let cfg = Config::defaults();
        let old = Settings::from_config(&cfg);
        let mut same = old.clone();
        same.profiles[0].version = 41; // what a client sends is ignored
        same.number_versions(&old);
        assert_eq!(same.profiles[0].version, old.profiles[0].version);
        let mut changed = old.clone();
        changed.profiles[0].speed = 1.1;
        changed.number_versions(&old);
        assert_eq!(changed.profiles[0].version, old.profiles[0].version + 1);
        assert_eq!(changed.changes(&old), vec![format!("profile default v{}", old.profiles[0].version + 1)]);
    }
}
