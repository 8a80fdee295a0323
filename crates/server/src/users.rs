//! Console users and their sessions, managed by an administrator (issue 20; CJIS Security
//! Policy 5.5 and 5.6). Users are kept in the store; the config file's `[[users]]` seed it (a
//! user the store already has is the store's).
//!
//! - `GET /api/users` → `[{"name", "roles", "line", "disabled", "has_password"}…]` (never a
//!   password or its hash).
//! - `POST /api/users` `{"name", "password", "roles", "line"}` → the user: 400 for a bad name
//!   (1–64 of `A–Z a–z 0–9 . _ -`), no role, a bad line or a password the policy refuses
//!   ([`crate::auth::check_password`]); 409 for a name in use (or the console token's).
//! - `PATCH /api/users/{name}` `{"roles"?, "line"?, "disabled"?}` → the user; their sessions end
//!   (a session carries what its user could do when it began).
//! - `POST /api/users/{name}/password` `{"password"}`: a reset by an administrator (the policy
//!   applies); ends the user's sessions and lifts a lockout.
//! - `GET /api/sessions` → the password sessions open ([`crate::auth::SessionInfo`]);
//!   `POST /api/sessions/{id}/revoke` ends one (its live feeds close at once).
//!
//! Every change is audited (`user.create`, `user.update`, `user.password`, `session.revoke`)
//! and flushed before it is acknowledged; a password never appears in the audit trail.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::audit::{audited_action, audited_read};
use crate::auth::{Role, SessionInfo, User, UserConfig};
use crate::error::{ApiError, bad};

/// A user as an administrator sees it.
fn view(u: &UserConfig) -> Value {
    json!({"name": u.name, "roles": u.effective_roles(), "line": u.line, "disabled": u.disabled, "has_password": u.password_hash.is_some()})
}

fn valid_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(()) } else { Err(bad("a user name is 1–64 of A–Z a–z 0–9 . _ -")) }
}

fn valid_roles(roles: &[Role]) -> Result<(), ApiError> {
    if roles.is_empty() { Err(bad("a user needs at least one role (supervisor, reviewer, admin)")) } else { Ok(()) }
}

fn valid_line(line: Option<&str>) -> Result<Option<String>, ApiError> {
    line.filter(|l| !l.trim().is_empty()).map(|l| crate::api::valid_number(l).map_err(|e| bad(format!("line: {e}")))).transpose()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))
}

/// Checks `password` against the policy and hashes it (argon2: on the blocking pool, it takes
/// tens of ms and 19 MiB).
async fn hashed(name: &str, password: String) -> Result<String, ApiError> {
    crate::auth::check_password(name, &password).map_err(bad)?;
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password)).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Saves a user (flushed) and puts it in effect; how many of their sessions ended.
async fn save(state: &AppState, user: UserConfig) -> Result<usize, ApiError> {
    state.store.put_user(&user.name, &user).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(state.auth.put_user(user))
}

fn find(state: &AppState, name: &str) -> Result<UserConfig, ApiError> {
    state.auth.users().into_iter().find(|u| u.name == name).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no user {name}")))
}

/// `GET /api/users`.
pub(crate) async fn list(State(state): State<AppState>, Extension(user): Extension<User>) -> Result<Json<Value>, ApiError> {
    let users: Vec<Value> = state.auth.users().iter().map(view).collect();
    audited_read(&state, &user, "user.list", "users", Ok(Json(Value::Array(users)))).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    roles: Vec<Role>,
    #[serde(default)]
    line: Option<String>,
}

/// `POST /api/users`.
pub(crate) async fn create(State(state): State<AppState>, Extension(user): Extension<User>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let r = async {
        let n: NewUser = parse(&body)?;
        valid_name(&n.name)?;
        valid_roles(&n.roles)?;
        let line = valid_line(n.line.as_deref())?;
        if n.name == state.config.console_user || state.auth.users().iter().any(|u| u.name == n.name) {
            return Err(ApiError(StatusCode::CONFLICT, format!("the name {} is in use", n.name)));
        }
        let hash = hashed(&n.name, n.password).await?;
        let u = UserConfig { name: n.name, password_hash: Some(hash), line, roles: n.roles, disabled: false };
        save(&state, u.clone()).await?;
        Ok(view(&u))
    }
    .await;
    let detail = match &r {
        Ok(v) => format!("roles {}", v["roles"]),
        Err(_) => String::new(),
    };
    let target = r.as_ref().ok().and_then(|v| v["name"].as_str().map(str::to_string)).unwrap_or_else(|| "users".into());
    audited_action(&state, &user, "user.create", &target, detail, r).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    #[serde(default)]
    roles: Option<Vec<Role>>,
    /// `Some(None)` clears the line (`"line": null`); absent leaves it.
    #[serde(default, deserialize_with = "serde_with_null::deserialize")]
    line: Option<Option<String>>,
    #[serde(default)]
    disabled: Option<bool>,
}

/// `"line": null` (clear it) told apart from no `line` at all (leave it).
mod serde_with_null {
    use serde::{Deserialize, Deserializer};
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// `PATCH /api/users/{name}`.
pub(crate) async fn update(State(state): State<AppState>, Extension(user): Extension<User>, Path(name): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let mut changes = Vec::new();
    let r = async {
        let c: UserChange = parse(&body)?;
        let mut u = find(&state, &name)?;
        if let Some(roles) = c.roles {
            valid_roles(&roles)?;
            if name == user.name && !roles.contains(&Role::Admin) && u.effective_roles().contains(&Role::Admin) {
                return Err(ApiError(StatusCode::CONFLICT, "you cannot take the admin role from yourself: another administrator can".into()));
            }
            changes.push(format!("roles {}", serde_json::to_string(&roles).unwrap_or_default()));
            u.roles = roles;
        }
        if let Some(line) = c.line {
            u.line = valid_line(line.as_deref())?;
            changes.push("line".to_string());
        }
        if let Some(disabled) = c.disabled {
            if disabled && name == user.name {
                return Err(ApiError(StatusCode::CONFLICT, "you cannot disable yourself".into()));
            }
            changes.push(if disabled { "disabled" } else { "enabled" }.to_string());
            u.disabled = disabled;
        }
        let ended = save(&state, u.clone()).await?;
        if ended > 0 {
            changes.push(format!("{ended} sessions ended"));
        }
        Ok(view(&u))
    }
    .await;
    audited_action(&state, &user, "user.update", &name, changes.join("; "), r).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    password: String,
}

/// `POST /api/users/{name}/password`.
pub(crate) async fn reset_password(State(state): State<AppState>, Extension(user): Extension<User>, Path(name): Path<String>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let mut detail = String::from("password reset");
    let r = async {
        let p: PasswordReset = parse(&body)?;
        let mut u = find(&state, &name)?;
        u.password_hash = Some(hashed(&name, p.password).await?);
        let ended = save(&state, u.clone()).await?;
        detail = format!("password reset; {ended} sessions ended");
        Ok(view(&u))
    }
    .await;
    audited_action(&state, &user, "user.password", &name, detail, r).await
}

/// `GET /api/sessions`.
pub(crate) async fn sessions(State(state): State<AppState>, Extension(user): Extension<User>) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    audited_read(&state, &user, "session.list", "sessions", Ok(Json(state.auth.sessions()))).await
}

/// `POST /api/sessions/{id}/revoke`.
pub(crate) async fn revoke(State(state): State<AppState>, Extension(user): Extension<User>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let r = state.auth.revoke(&id).map(|whose| json!({"revoked": id, "user": whose})).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no session {id}")));
    let detail = r.as_ref().ok().and_then(|v| v["user"].as_str().map(|u| format!("a session of {u}"))).unwrap_or_default();
    audited_action(&state, &user, "session.revoke", &id, detail, r).await
}
