//! The router: every route of the server, built from each module's own routes (one module per
//! command family), with the layers every answer passes through; and the few routes of its own
//! (health, live calls, the signed-in user, incident types). It imports the modules; none
//! imports it.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use tower_http::set_header::SetResponseHeaderLayer;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    // Everything for the console needs a signed-in user; Twilio's endpoints are signed instead.
    let console = Router::new()
        .route("/api/calls/active", get(active_calls))
        .route("/api/me", get(me))
        .route("/api/incident-types", get(incident_types))
        .merge(crate::review::routes())
        .merge(crate::incidents::routes())
        .merge(crate::qa::routes())
        .merge(crate::session::routes())
        .merge(crate::control::routes())
        .merge(crate::voice::routes())
        .merge(crate::supervise::routes())
        .merge(crate::live::routes())
        .merge(crate::training::routes())
        .merge(crate::settings::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::session::require_user));
    // Every API answer is JSON and never cached (issue 15: some 400/413 bodies were plain text).
    let api = Router::new()
        .route(crate::webhook::WEBHOOK_PATH, post(crate::webhook::voice_webhook))
        .route("/health", get(health))
        .merge(crate::session::public_routes())
        .merge(crate::live::public_routes())
        .merge(console)
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    Router::new()
        .route(crate::media::MEDIA_PATH, get(crate::media::media_stream))
        .merge(api)
        .fallback_service(console_files(&state.config.ui_dir))
        .layer(DefaultBodyLimit::max(limit))
        .layer(cors(&state.config.cors_origins))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .with_state(state)
}

/// The console's Content-Security-Policy: its own scripts and styles only (Svelte sets inline
/// styles), recordings and exports as `blob:` URLs, the live feed over WebSocket, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// CORS for exactly the configured origins (the desktop app's webview); none by default.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// The console (ui/dist): files as they are, and `index.html` for any other path (the console
/// routes itself). Without a built console, a page that says how to build it.
fn console_files(dir: &std::path::Path) -> axum::routing::MethodRouter {
    let index = dir.join("index.html");
    if index.exists() {
        let serve = tower_http::services::ServeDir::new(dir).fallback(tower_http::services::ServeFile::new(index));
        axum::routing::get_service(serve)
    } else {
        let msg = format!("The console is not built (no {}). Run scripts/run, or `npm ci && npm run build` in ui/.", index.display());
        axum::routing::get(move || async move { (StatusCode::NOT_FOUND, msg) })
    }
}

/// `GET /api/me`: the signed-in user.
async fn me(axum::Extension(user): axum::Extension<crate::auth::User>) -> Json<serde_json::Value> {
    Json(json!({"user": user.name, "line": user.line.is_some()}))
}

/// `GET /api/incident-types`: the APCO incident types the dispatch rules know (code, words,
/// discipline, default priority).
async fn incident_types() -> Json<serde_json::Value> {
    let list: Vec<_> = watchfloor_dispatch::types::KNOWN_TYPES
        .iter()
        .map(|t| json!({"code": t.code, "text": t.text, "discipline": t.discipline, "priority": t.priority}))
        .collect();
    Json(serde_json::Value::Array(list))
}

/// `GET /health`.
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "model_configured": state.config.openai_api_key.is_some(),
        "human_line_configured": state.human().number.is_some(),
        "signatures_checked": state.config.twilio_auth_token.is_some(),
        "live_calls": state.calls.len(),
    }))
}

/// `GET /api/calls/active`: live calls, oldest first.
async fn active_calls(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "calls": state.calls.active() }))
}

