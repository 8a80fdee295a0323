//! The router, built from one table ([`table`]): every route of the server with the roles it
//! allows (issue 20: least privilege, CJIS Security Policy 5.5). A route is added to the server
//! only through the table, so none exists without an access rule; a test walks the table and
//! checks every role against every route. Handlers live in one module per command family; this
//! module imports them, none imports it. Also the few routes of its own (health, live calls,
//! the signed-in user, incident types) and the layers every answer passes through.

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, patch, post, put};
use axum::{Json, Router};
use serde_json::json;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;
use crate::auth::{Role, User};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, sign-in.
    Public,
    /// Twilio: the webhook and the media stream, whose handlers check `X-Twilio-Signature`
    /// when an auth token is configured.
    Twilio,
    /// The console's live feed (WebSocket): its handler takes a single-use ticket from
    /// `POST /api/live/ticket` (a browser sends no `Authorization` header on a WebSocket).
    Ticket,
    /// Any signed-in user.
    SignedIn,
    /// A signed-in user with at least one of these roles; anyone else gets
    /// `403 {"error": "<METHOD> <path> needs the <role> role"}`.
    Roles(&'static [Role]),
}

/// One route: method, path (axum's syntax) and who may use it.
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path, with `{name}` for a path parameter.
    pub path: &'static str,
    /// Who may use it.
    pub access: Access,
    handler: fn() -> MethodRouter<AppState>,
}

const SUPERVISOR: &[Role] = &[Role::Supervisor];
const REVIEWER: &[Role] = &[Role::Reviewer];
const ADMIN: &[Role] = &[Role::Admin];
/// Call records: read by supervisors (their calls), reviewers and administrators (retention,
/// legal hold).
const RECORDS: &[Role] = &[Role::Supervisor, Role::Reviewer, Role::Admin];
/// Recordings and the incident list: supervisors and reviewers (a reviewer may not hear a call
/// while it is live: the recording's handler checks).
const LISTENERS: &[Role] = &[Role::Supervisor, Role::Reviewer];
/// The QA figures and cards: reviewers and administrators.
const QA_READERS: &[Role] = &[Role::Reviewer, Role::Admin];
/// The settings and the unit roster, read: supervisors (the board's surge rate) and
/// administrators (who change them).
const SETTINGS_READERS: &[Role] = &[Role::Supervisor, Role::Admin];

/// Every route of the server and who may use it: the router is built from this table.
pub fn table() -> Vec<Route> {
    use Access::*;
    use crate::{backup, control, incidents, live, qa, review, session, settings, supervise, training, users, voice};
    let r = |method: Method, path: &'static str, access: Access, handler: fn() -> MethodRouter<AppState>| Route { method, path, access, handler };
    vec![
        r(Method::GET, "/health", Public, || get(health)),
        r(Method::POST, crate::webhook::WEBHOOK_PATH, Twilio, || post(crate::webhook::voice_webhook)),
        r(Method::GET, crate::media::MEDIA_PATH, Twilio, || get(crate::media::media_stream)),
        r(Method::POST, "/api/login", Public, || post(session::login)),
        r(Method::POST, "/api/login/link", Public, || post(session::login_link)),
        r(Method::GET, "/api/live", Ticket, || get(live::live)),
        r(Method::POST, "/api/logout", SignedIn, || post(session::logout)),
        r(Method::POST, "/api/session/lock", SignedIn, || post(session::lock)),
        r(Method::POST, session::UNLOCK_PATH, SignedIn, || post(session::unlock)),
        r(Method::GET, "/api/me", SignedIn, || get(me)),
        r(Method::GET, "/api/incident-types", SignedIn, || get(incident_types)),
        // Live calls.
        r(Method::POST, "/api/live/ticket", Roles(SUPERVISOR), || post(live::ticket)),
        r(Method::GET, "/api/calls/active", Roles(SUPERVISOR), || get(active_calls)),
        r(Method::POST, "/api/calls/{id}/takeover", Roles(SUPERVISOR), || post(control::takeover)),
        r(Method::POST, "/api/calls/{id}/transfer", Roles(SUPERVISOR), || post(control::transfer)),
        r(Method::POST, "/api/calls/{id}/hangup", Roles(SUPERVISOR), || post(control::hangup)),
        r(Method::POST, "/api/calls/{id}/voice/take", Roles(SUPERVISOR), || post(voice::take)),
        r(Method::POST, "/api/calls/{id}/voice/hand-back", Roles(SUPERVISOR), || post(voice::hand_back)),
        r(Method::POST, "/api/calls/{id}/dispatch/confirm", Roles(SUPERVISOR), || post(supervise::confirm)),
        r(Method::POST, "/api/calls/{id}/dispatch/now", Roles(SUPERVISOR), || post(supervise::dispatch_now)),
        r(Method::POST, "/api/calls/{id}/dispatch/recall", Roles(SUPERVISOR), || post(supervise::recall)),
        r(Method::PATCH, "/api/calls/{id}/incident", Roles(SUPERVISOR), || patch(supervise::edit_incident)),
        r(Method::POST, "/api/calls/{id}/whisper", Roles(SUPERVISOR), || post(supervise::whisper)),
        r(Method::POST, "/api/calls/{id}/alerts/{alert_id}/ack", Roles(SUPERVISOR), || post(supervise::acknowledge)),
        r(Method::POST, "/api/calls/{id}/link", Roles(SUPERVISOR), || post(incidents::link)),
        r(Method::POST, "/api/calls/{id}/unlink", Roles(SUPERVISOR), || post(incidents::unlink)),
        r(Method::POST, "/api/calls/{id}/keep-apart", Roles(SUPERVISOR), || post(incidents::keep_apart)),
        r(Method::POST, "/api/calls/{id}/attach", Roles(SUPERVISOR), || post(review::attach_unit)),
        r(Method::POST, "/api/calls/{id}/en-route", Roles(SUPERVISOR), || post(review::unit_en_route)),
        r(Method::POST, "/api/calls/{id}/on-scene", Roles(SUPERVISOR), || post(review::unit_on_scene)),
        r(Method::POST, "/api/calls/{id}/cleared", Roles(SUPERVISOR), || post(review::unit_cleared)),
        r(Method::GET, "/api/training/scenarios", Roles(SUPERVISOR), || get(training::scenarios)),
        r(Method::POST, "/api/training/calls", Roles(SUPERVISOR), || post(training::place)),
        r(Method::POST, "/api/training/surges", Roles(SUPERVISOR), || post(training::place_surge)),
        // Incidents.
        r(Method::GET, "/api/incidents", Roles(LISTENERS), || get(incidents::list)),
        r(Method::GET, "/api/incidents/{id}", Roles(LISTENERS), || get(incidents::one)),
        r(Method::GET, "/api/incidents/{id}/eido", Roles(LISTENERS), || get(incidents::eido)),
        // Records.
        r(Method::GET, "/api/calls", Roles(RECORDS), || get(review::list_calls)),
        r(Method::GET, "/api/calls/{id}", Roles(RECORDS), || get(review::call_record)),
        r(Method::GET, "/api/calls/{id}/transcript", Roles(RECORDS), || get(review::transcript)),
        r(Method::GET, "/api/calls/{id}/timeline", Roles(RECORDS), || get(review::timeline)),
        r(Method::GET, "/api/calls/{id}/eido", Roles(RECORDS), || get(review::eido)),
        r(Method::GET, "/api/calls/{id}/recording.wav", Roles(LISTENERS), || get(review::recording)),
        r(Method::GET, "/api/calls/{id}/dispatch/{revision}/audio.wav", Roles(LISTENERS), || get(review::dispatch_audio)),
        r(Method::GET, "/api/calls/{id}/supervisor.wav", Roles(LISTENERS), || get(review::supervisor_audio)),
        r(Method::GET, "/api/callers/{number}/history", Roles(LISTENERS), || get(review::caller_history)),
        // Quality assurance.
        r(Method::GET, "/api/calls/{id}/qa", Roles(REVIEWER), || get(qa::scorecard)),
        r(Method::GET, "/api/calls/{id}/reviews", Roles(REVIEWER), || get(qa::call_reviews)),
        r(Method::POST, "/api/calls/{id}/reviews", Roles(REVIEWER), || post(qa::submit_review)),
        r(Method::GET, "/api/qa/queue", Roles(REVIEWER), || get(qa::review_queue)),
        r(Method::GET, "/api/qa/calibration", Roles(REVIEWER), || get(qa::calibration)),
        r(Method::GET, "/api/stats", Roles(QA_READERS), || get(qa::stats)),
        r(Method::GET, "/api/qa/cards", Roles(QA_READERS), || get(qa::cards)),
        r(Method::GET, "/api/qa/cards/{version}", Roles(QA_READERS), || get(qa::cards_version)),
        r(Method::PUT, "/api/qa/cards", Roles(ADMIN), || put(qa::revise_cards)),
        // Administration.
        r(Method::GET, "/api/settings", Roles(SETTINGS_READERS), || get(settings::get_settings)),
        r(Method::PUT, "/api/settings", Roles(ADMIN), || put(settings::put_settings)),
        r(Method::GET, "/api/units", Roles(SETTINGS_READERS), || get(review::units)),
        r(Method::POST, "/api/calls/{id}/legal-hold", Roles(ADMIN), || post(review::legal_hold)),
        r(Method::GET, "/api/audit", Roles(ADMIN), || get(review::audit_log)),
        r(Method::POST, "/api/backup", Roles(ADMIN), || post(backup::backup)),
        r(Method::GET, "/api/users", Roles(ADMIN), || get(users::list)),
        r(Method::POST, "/api/users", Roles(ADMIN), || post(users::create)),
        r(Method::PATCH, "/api/users/{name}", Roles(ADMIN), || patch(users::update)),
        r(Method::POST, "/api/users/{name}/password", Roles(ADMIN), || post(users::reset_password)),
        r(Method::GET, "/api/sessions", Roles(ADMIN), || get(users::sessions)),
        r(Method::POST, "/api/sessions/{id}/revoke", Roles(ADMIN), || post(users::revoke)),
    ]
}

/// `403 {"error": "<METHOD> <path> needs the <role> role"}` unless the signed-in user holds one
/// of `roles` (the request went through [`crate::session::require_user`] first).
async fn require_roles(method: &'static str, path: &'static str, roles: &'static [Role], req: Request, next: Next) -> Response {
    let allowed = req.extensions().get::<User>().is_some_and(|u| u.has_any(roles));
    if allowed {
        return next.run(req).await;
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    (StatusCode::FORBIDDEN, Json(json!({"error": format!("{method} {path} needs the {} role", names.join(" or "))}))).into_response()
}

/// The route's handler behind the checks its access asks for.
fn guarded(state: &AppState, route: &Route) -> MethodRouter<AppState> {
    let handler = (route.handler)();
    let signed_in = axum::middleware::from_fn_with_state(state.clone(), crate::session::require_user);
    match route.access {
        Access::Public | Access::Twilio | Access::Ticket => handler,
        Access::SignedIn => handler.layer(signed_in),
        Access::Roles(roles) => {
            let (method, path): (&'static str, &'static str) = (method_name(&route.method), route.path);
            handler.layer(axum::middleware::from_fn(move |req: Request, next: Next| require_roles(method, path, roles, req, next))).layer(signed_in)
        }
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in table() {
        let mr = guarded(&state, &route);
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(mr),
            None => mr,
        };
        by_path.insert(route.path, merged);
    }
    let mut routes = Router::new();
    for (path, mr) in by_path {
        routes = routes.route(path, mr);
    }
    // Every API answer is JSON and never cached (issue 15: some 400/413 bodies were plain text);
    // a path under /api/ that no route has is a JSON 404, never the console's page.
    let routes = routes
        .route("/api/{*rest}", any(api_not_found))
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    routes
        .fallback_service(console_files(&state.config.ui_dir))
        .layer(DefaultBodyLimit::max(limit))
        .layer(cors(&state.config.cors_origins))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .with_state(state)
}

/// A path under `/api/` that no route has: `404 {"error": "no route <METHOD> <path>"}`.
async fn api_not_found(method: Method, uri: axum::http::Uri) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": format!("no route {method} {}", uri.path())}))).into_response()
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

/// The console (ui/dist): its files as they are, `index.html` at `/`; any other path is a 404
/// (the console keeps its views in its own state, not in the URL, so its page lives only at
/// `/`). Without a built console, a page that says how to build it.
fn console_files(dir: &std::path::Path) -> axum::routing::MethodRouter {
    let index = dir.join("index.html");
    if index.exists() {
        let serve = tower_http::services::ServeDir::new(dir);
        axum::routing::get_service(serve)
    } else {
        let msg = format!("The console is not built (no {}). Run scripts/run, or `npm ci && npm run build` in ui/.", index.display());
        axum::routing::get(move || async move { (StatusCode::NOT_FOUND, msg) })
    }
}

/// `GET /api/me`: the signed-in user, `{"user", "line": bool, "roles": [role…], "lock_after_s",
/// "has_password": bool}` (the console shows only what the roles allow, locks after
/// `lock_after_s` without input, and unlocks with the password — or, for a console token's user
/// without one, the token).
async fn me(State(state): State<AppState>, axum::Extension(user): axum::Extension<crate::auth::User>) -> Json<serde_json::Value> {
    let has_password = state.auth.has_password(&user.name);
    Json(json!({"user": user.name, "line": user.line.is_some(), "roles": user.roles, "lock_after_s": state.config.session_lock_seconds, "has_password": has_password}))
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

