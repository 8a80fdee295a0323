//! Issue 20: who may do what. Every route of the router's table, with every role, gets the
//! answer its rule says: allowed → neither 401 nor 403; forbidden → 403 with a JSON reason that
//! names the role; no token → 401. A route can only be added through the table, so a new one is
//! checked here the moment it exists. Unknown paths under `/api/` are JSON 404s, never the
//! console's page.

mod common;

use axum::http::Method;
use common::{client, rig};
use serde_json::Value;
use watchfloor_server::auth::{Role, UserConfig, hash_password};
use watchfloor_server::routes::{Access, table};

const PASSWORD: &str = "access test pass 1";

/// A path of the table with its parameters filled: ids no call or incident has (the handlers
/// answer 404), numbers that parse.
fn concrete(path: &str) -> String {
    path.replace("{id}", "CA00000000000000000000000000000000")
        .replace("{alert_id}", "1")
        .replace("{revision}", "1")
        .replace("{version}", "1")
        .replace("{number}", "+15550000000")
}

async fn send(http: &reqwest::Client, base: &str, method: &Method, path: &str, token: Option<&str>) -> (u16, String) {
    let url = format!("{base}{path}");
    let mut req = http.request(method.clone(), &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        req = req.header("content-type", "application/json").body("{}");
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_its_rule_says() {
    let roles = [("sup", Role::Supervisor), ("rev", Role::Reviewer), ("adm", Role::Admin)];
    let rig = rig(vec![], 1.0, |c| {
        c.users = roles.iter().map(|(n, r)| UserConfig { name: n.to_string(), password_hash: Some(hash_password(PASSWORD)), line: None, roles: vec![*r], disabled: false }).collect();
    })
    .await;
    let base = rig.server.base_url();
    let http = reqwest::Client::new();
    let sign_in = |name: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r: Value = http.post(format!("{base}/api/login")).json(&serde_json::json!({"user": name, "password": PASSWORD})).send().await.unwrap().json().await.unwrap();
            r["token"].as_str().unwrap().to_string()
        }
    };
    let mut tokens = Vec::new();
    for (name, role) in roles {
        tokens.push((role, sign_in(name).await));
    }
    let mut checked = 0;
    for route in table() {
        let path = concrete(route.path);
        let m = &route.method;
        let (status, body) = send(&http, &base, m, &path, None).await;
        match route.access {
            Access::Public | Access::Twilio => assert!(status != 401 && status != 403, "{m} {path} without a token: {status} {body}"),
            // Not a WebSocket upgrade (400), or no ticket (401): never opened.
            Access::Ticket => assert!(matches!(status, 400 | 401), "{m} {path} without a ticket: {status} {body}"),
            Access::SignedIn | Access::Roles(_) => assert_eq!(status, 401, "{m} {path} without a token: {body}"),
        }
        for (role, token) in &tokens {
            // Signing out or locking ends or locks the session the other routes need: each of
            // those has its own.
            let fresh;
            let token = if path == "/api/logout" || path.starts_with("/api/session/") {
                fresh = sign_in(roles.iter().find(|(_, r)| r == role).unwrap().0).await;
                &fresh
            } else {
                token
            };
            let (status, body) = send(&http, &base, m, &path, Some(token)).await;
            let allowed = match route.access {
                Access::Roles(allowed) => allowed.contains(role),
                _ => true,
            };
            if allowed {
                assert!(status != 401 && status != 403, "{m} {path} as {role:?}: {status} {body}");
            } else {
                assert_eq!(status, 403, "{m} {path} as {role:?}: {body}");
                let reason: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{m} {path}: a JSON reason, got {body}"));
                let text = reason["error"].as_str().unwrap();
                assert!(text.starts_with(&format!("{m} {} needs the ", route.path)) && text.ends_with(" role"), "{text}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 3 * 55, "{checked} checks: every route with every role");

    // The administrator's and the supervisor's duties are apart: spot checks of the table.
    let rule = |m: Method, p: &str| table().into_iter().find(|r| r.method == m && r.path == p).unwrap().access;
    assert_eq!(rule(Method::POST, "/api/calls/{id}/hangup"), Access::Roles(&[Role::Supervisor]));
    assert_eq!(rule(Method::PUT, "/api/settings"), Access::Roles(&[Role::Admin]));
    assert_eq!(rule(Method::POST, "/api/calls/{id}/reviews"), Access::Roles(&[Role::Reviewer]));

    // Paths no route has: JSON 404s under /api/ (with a token or without), no console page.
    for token in [None, Some(tokens[0].1.as_str())] {
        let (status, body) = send(&http, &base, &Method::GET, "/api/no-such-thing", token).await;
        assert_eq!(status, 404, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "no route GET /api/no-such-thing");
        let (status, _) = send(&http, &base, &Method::POST, "/api/calls/CA1/no-such-action", token).await;
        assert_eq!(status, 404);
    }
    // The live feed opened with a token in the header holds to the same rule as its ticket:
    // a reviewer may not (no listen-in of live calls), a supervisor may.
    for (role, token) in &tokens {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("{}/api/live", base.replace("http://", "ws://")).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => assert_eq!(*role, Role::Supervisor, "{role:?} opened the live feed"),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert!(*role != Role::Supervisor && r.status() == 403, "{role:?}: {}", r.status()),
            Err(e) => panic!("{role:?}: {e}"),
        }
    }
    let page = client().get(format!("{base}/some/client/path")).send().await.unwrap();
    assert_eq!(page.status(), 404, "the console's page lives at / only");
    rig.server.shutdown().await;
}
