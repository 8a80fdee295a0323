//! Issue 20: users managed by an administrator, the password policy, lockout after failed
//! sign-ins and revocation of sessions, through the API (CJIS Security Policy 5.5, 5.6; NIST SP
//! 800-63B). Users are kept in the store: they outlive a restart.

mod common;

use common::{TOKEN, rig};
use serde_json::{Value, json};

const GOOD: &str = "harbor lantern mosaic 42";
const NEW: &str = "quiet copper meadow 77";

async fn sign_in(http: &reqwest::Client, base: &str, user: &str, password: &str) -> (u16, Value) {
    let r = http.post(format!("{base}/api/login")).json(&json!({"user": user, "password": password})).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_manages_users_and_sessions_and_failed_sign_ins_lock_a_name() {
    let rig = rig(vec![], 1.0, |_| {}).await;
    let base = rig.server.base_url();
    let http = reqwest::Client::new();
    let admin = |m: reqwest::Method, path: &str| http.request(m, format!("{base}{path}")).bearer_auth(TOKEN);

    // The policy: at least 12 characters, and not guessable.
    for (password, why) in [("short pw 1", "at least 12 characters"), ("password1234", "too easy to guess"), ("ritaritarita", "too easy to guess")] {
        let r = admin(reqwest::Method::POST, "/api/users").json(&json!({"name": "rita", "password": password, "roles": ["reviewer"]})).send().await.unwrap();
        assert_eq!(r.status(), 400, "{password}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(why), "{password}: {body}");
    }
    let r = admin(reqwest::Method::POST, "/api/users").json(&json!({"name": "rita", "password": GOOD, "roles": ["reviewer"]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let again = admin(reqwest::Method::POST, "/api/users").json(&json!({"name": "rita", "password": GOOD, "roles": ["reviewer"]})).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let list = admin(reqwest::Method::GET, "/api/users").send().await.unwrap().text().await.unwrap();
    assert!(list.contains("\"rita\"") && list.contains("\"reviewer\"") && !list.contains("argon2") && !list.contains(GOOD), "{list}");

    // rita signs in; the administrator sees her session and revokes it.
    let (status, s) = sign_in(&http, &base, "rita", GOOD).await;
    assert_eq!(status, 200, "{s}");
    let token = s["token"].as_str().unwrap().to_string();
    let me = |t: String| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}/api/me")).bearer_auth(t).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me(token.clone()).await, 200);
    let sessions: Value = admin(reqwest::Method::GET, "/api/sessions").send().await.unwrap().json().await.unwrap();
    let id = sessions.as_array().unwrap().iter().find(|x| x["user"] == "rita").unwrap()["id"].as_str().unwrap().to_string();
    assert!(!token.starts_with(&id) && id.len() == 16, "the id is not the token");
    assert_eq!(admin(reqwest::Method::POST, &format!("/api/sessions/{id}/revoke")).send().await.unwrap().status(), 200);
    assert_eq!(me(token).await, 401, "a revoked session signs nothing in");

    // A change of her roles ends her sessions: she signs in again with what she may do now.
    let (_, s) = sign_in(&http, &base, "rita", GOOD).await;
    let token = s["token"].as_str().unwrap().to_string();
    let r = admin(reqwest::Method::PATCH, "/api/users/rita").json(&json!({"roles": ["reviewer", "supervisor"]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(token).await, 401);
    let (_, s) = sign_in(&http, &base, "rita", GOOD).await;
    let roles: Value = http.get(format!("{base}/api/me")).bearer_auth(s["token"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(roles["roles"], json!(["reviewer", "supervisor"]));
    assert_eq!(roles["has_password"], true, "rita unlocks a locked console with her password");

    // Five wrong passwords in a row lock the name for 10 minutes, even for the right password
    // (sam, a supervisor: each name has its own budget of 10 attempts a minute besides).
    let r = admin(reqwest::Method::POST, "/api/users").json(&json!({"name": "sam", "password": GOOD, "roles": ["supervisor"]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for i in 1..=5 {
        let (status, _) = sign_in(&http, &base, "sam", "not his password at all").await;
        assert_eq!(status, 401, "attempt {i}");
    }
    let (status, body) = sign_in(&http, &base, "sam", GOOD).await;
    assert_eq!(status, 423, "{body}");
    assert!(body["error"].as_str().unwrap().contains("locked after 5 failed sign-ins"), "{body}");
    // A name that does not exist locks the same way (the answer tells no names apart).
    for _ in 1..=5 {
        sign_in(&http, &base, "nobody-here", "whatever it is 1").await;
    }
    assert_eq!(sign_in(&http, &base, "nobody-here", "whatever it is 1").await.0, 423);
    // An administrator's reset lifts the lock; the old password no longer works.
    let r = admin(reqwest::Method::POST, "/api/users/sam/password").json(&json!({"password": "123456789012"})).send().await.unwrap();
    assert_eq!(r.status(), 400, "the policy holds for a reset too");
    let r = admin(reqwest::Method::POST, "/api/users/sam/password").json(&json!({"password": NEW})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sign_in(&http, &base, "sam", GOOD).await.0, 401);
    assert_eq!(sign_in(&http, &base, "sam", NEW).await.0, 200);

    // Disabled, she cannot sign in; enabled again, she can.
    assert_eq!(admin(reqwest::Method::PATCH, "/api/users/rita").json(&json!({"disabled": true})).send().await.unwrap().status(), 200);
    assert_eq!(sign_in(&http, &base, "rita", GOOD).await.0, 401);
    assert_eq!(admin(reqwest::Method::PATCH, "/api/users/rita").json(&json!({"disabled": false})).send().await.unwrap().status(), 200);

    // Session lock (CJIS 5.5.5): a locked console's token is refused (423) until its user's
    // password unlocks it; a wrong one is refused and counted.
    let (_, s) = sign_in(&http, &base, "rita", GOOD).await;
    let token = s["token"].as_str().unwrap().to_string();
    let post = |path: &'static str, t: String, body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.post(format!("{base}{path}")).bearer_auth(t).json(&body).send().await.unwrap().status().as_u16() }
    };
    let me_status = |t: String| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}/api/me")).bearer_auth(t).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post("/api/session/lock", token.clone(), json!({})).await, 200);
    assert_eq!(me_status(token.clone()).await, 423);
    assert_eq!(post("/api/session/unlock", token.clone(), json!({"password": "not it at all 9"})).await, 401);
    assert_eq!(me_status(token.clone()).await, 423, "still locked");
    assert_eq!(post("/api/session/unlock", token.clone(), json!({"password": GOOD})).await, 200);
    assert_eq!(me_status(token.clone()).await, 200);
    // The console token's desk unlocks with the token itself (it has no password).
    assert_eq!(post("/api/session/lock", TOKEN.to_string(), json!({})).await, 200);
    assert_eq!(me_status(TOKEN.to_string()).await, 423);
    assert_eq!(post("/api/session/unlock", TOKEN.to_string(), json!({"password": GOOD})).await, 401);
    assert_eq!(post("/api/session/unlock", TOKEN.to_string(), json!({"password": TOKEN})).await, 200);
    assert_eq!(me_status(TOKEN.to_string()).await, 200);

    // Audited, with no password anywhere in the trail.
    let audit = admin(reqwest::Method::GET, "/api/audit?limit=500").send().await.unwrap().text().await.unwrap();
    for action in ["user.create", "user.update", "user.password", "session.revoke", "console.lockout", "console.lock", "console.unlock"] {
        assert!(audit.contains(&format!("\"{action}\"")), "{action} audited");
    }
    assert!(!audit.contains(GOOD) && !audit.contains(NEW) && !audit.contains("argon2"), "no password in the audit trail");

    // A one-time sign-in link (the terminal's, for a newcomer): a session of the console
    // token's user, once.
    let link = rig.server.sign_in_link();
    let code = link.split("#signin=").nth(1).unwrap().to_string();
    assert!(link.starts_with(&base), "{link}");
    let r = http.post(format!("{base}/api/login/link")).json(&json!({"code": code})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let me: Value = http.get(format!("{base}/api/me")).bearer_auth(v["token"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!((me["user"].as_str(), me["roles"].clone()), (Some("supervisor"), json!(["supervisor", "admin"])));
    assert_eq!(me["has_password"], false, "the console token's user has none: a desktop console of it cannot be unlocked, only signed out");
    let again = http.post(format!("{base}/api/login/link")).json(&json!({"code": code})).send().await.unwrap();
    assert_eq!(again.status(), 401, "a link works once");

    // Kept in the store: after a restart sam signs in with his new password.
    let data = rig._dir.path().join("data");
    rig.server.shutdown().await;
    let mut cfg = watchfloor_server::Config::defaults();
    cfg.data_dir = data;
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(TOKEN));
    let server = watchfloor_server::serve(cfg, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    assert_eq!(sign_in(&http, &server.base_url(), "sam", NEW).await.0, 200);
    server.shutdown().await;
}
