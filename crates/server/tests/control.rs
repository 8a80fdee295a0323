//! Console authentication, the bind rule, and the supervisor's hand-offs (take over, transfer,
//! hang up) through the Twilio REST fake; limits on calls and the webhook.

mod common;

use std::time::Duration;

use common::{TOKEN, client, rig, scenario, wait_record_ended};
use serde_json::{Value, json};
use watchfloor_bridge::model::Secret;
use watchfloor_server::auth::{UserConfig, hash_password};
use watchfloor_server::{Config, ServeError, serve};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::rest::RestFake;
use watchfloor_sim::simulate::{SimulateOptions, new_call_sid, place_call};

const ACCOUNT: &str = "AC00000000000000000000000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_api_needs_a_token_and_logons_are_audited() {
    let rig = rig(vec![], 1.0, |c| {
        c.users = vec![UserConfig { name: "jdoe".into(), password_hash: Some(hash_password("s3cret pass")), line: Some("+15550009999".into()), roles: vec![], disabled: false }];
    })
    .await;
    let base = rig.server.base_url();
    let plain = reqwest::Client::new();
    for path in ["/api/calls", "/api/calls/active", "/api/audit", "/api/calls/CA00000000000000000000000000000000/eido"] {
        let r = plain.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = plain.get(format!("{base}{path}")).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    assert_eq!(plain.get(format!("{base}/health")).send().await.unwrap().status(), 200, "health stays open");
    // Password login gives a session token for the named user.
    let r = plain.post(format!("{base}/api/login")).json(&json!({"user":"jdoe","password":"nope"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r: Value = plain.post(format!("{base}/api/login")).json(&json!({"user":"jdoe","password":"s3cret pass"})).send().await.unwrap().json().await.unwrap();
    let session = r["token"].as_str().unwrap().to_string();
    assert_eq!(r["user"], "jdoe");
    assert_eq!(plain.get(format!("{base}/api/calls")).bearer_auth(&session).send().await.unwrap().status(), 200);
    let out: Value = plain.post(format!("{base}/api/logout")).bearer_auth(&session).send().await.unwrap().json().await.unwrap();
    assert_eq!(out["ended"], true);
    assert_eq!(plain.get(format!("{base}/api/calls")).bearer_auth(&session).send().await.unwrap().status(), 401);
    // The audit trail names the users.
    let a: Value = client().get(format!("{base}/api/audit?target=console")).send().await.unwrap().json().await.unwrap();
    let seen: Vec<(String, String, String)> = a["entries"].as_array().unwrap().iter().map(|e| (e["user"].as_str().unwrap().into(), e["action"].as_str().unwrap().into(), e["outcome"].as_str().unwrap().into())).collect();
    assert_eq!(seen, vec![
        ("jdoe".into(), "console.logout".into(), "ok".into()),
        ("jdoe".into(), "console.login".into(), "ok".into()),
        ("jdoe".into(), "console.login".into(), "denied".into()),
    ]);
    let a: Value = client().get(format!("{base}/api/audit?user=jdoe&action=call.list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(a["entries"].as_array().unwrap().len(), 1);
    rig.server.shutdown().await;
}

/// Issue 20: Twilio reaches only https and wss, and signs what it sends: a public bind needs
/// TLS and the auth token, or a trusted proxy in front that terminates TLS.
#[tokio::test]
async fn a_public_bind_needs_tls_and_a_twilio_auth_token_or_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::defaults();
    cfg.data_dir = dir.path().to_path_buf();
    let bind = || async { tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap() };
    assert!(matches!(serve(cfg.clone(), bind().await).await, Err(ServeError::Insecure(_))));
    cfg.twilio_auth_token = Some(Secret::new("tok"));
    assert!(matches!(serve(cfg.clone(), bind().await).await, Err(ServeError::Insecure(_))), "signatures without TLS");
    let mut proxied = cfg.clone();
    proxied.twilio_auth_token = None;
    proxied.trusted_proxy = true;
    proxied.data_dir = dir.path().join("proxied");
    serve(proxied, bind().await).await.unwrap().shutdown().await;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    cfg.tls_cert = Some(cert);
    let half = serve(cfg.clone(), bind().await).await;
    assert!(matches!(half, Err(ServeError::Tls(ref e)) if e.contains("go together")));
    cfg.tls_key = Some(key);
    let server = serve(cfg, bind().await).await.unwrap();
    // The console token was generated, 0600, and is not printed anywhere but its file.
    let token = std::fs::read_to_string(dir.path().join("console-token")).unwrap();
    assert_eq!(token.len(), 64);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_transfer_and_hangup_go_through_twilio_rest() {
    let rest = RestFake::start("127.0.0.1:0".parse().unwrap(), ACCOUNT, "tok").await.unwrap();
    let rest_base = rest.base_url();
    let sc = scenario("cardiac-arrest");
    let numbers = ["+15550800001", "+15550800002", "+15550800003"];
    let scs: Vec<_> = numbers.iter().map(|n| sc.with_caller_number(*n)).collect();
    let rig = rig(scs.clone(), 1.0, move |c| {
        c.twilio_account_sid = Some(ACCOUNT.into());
        c.twilio_auth_token = Some(Secret::new("tok"));
        c.twilio_api_base = rest_base;
        c.users = vec![UserConfig { name: "supervisor".into(), password_hash: None, line: Some("+15550009999".into()), roles: vec![], disabled: false }];
    })
    .await;
    let base = rig.server.base_url();
    let mut calls = Vec::new();
    for s in scs.clone() {
        let (base, rest) = (base.clone(), rest.clone());
        calls.push(tokio::spawn(async move {
            let opts = SimulateOptions { caller: CallerOptions { speed: 1.0, rest: Some(rest), ..Default::default() }, auth_token: Some("tok".into()), public_url: None, call_sid: None, ..Default::default() };
            place_call(&base, &s, &opts).await.unwrap()
        }));
    }
    // Wait until all three are with the agent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let live = loop {
        let a: Value = client().get(format!("{base}/api/calls/active")).send().await.unwrap().json().await.unwrap();
        let with_agent: Vec<(String, String)> = a["calls"].as_array().unwrap().iter().filter(|c| c["status"] == "with_agent").map(|c| (c["from"].as_str().unwrap().to_string(), c["call_sid"].as_str().unwrap().to_string())).collect();
        if with_agent.len() == 3 {
            break with_agent;
        }
        assert!(tokio::time::Instant::now() < deadline, "calls did not start: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sid_of = |n: &str| live.iter().find(|(f, _)| f == n).unwrap().1.clone();
    let (s1, s2, s3) = (sid_of(numbers[0]), sid_of(numbers[1]), sid_of(numbers[2]));
    let post = |path: String, body: Value| async move { let r = client().post(path).json(&body).send().await.unwrap(); (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)) };
    // Twilio refuses (a 404 is not retried): 502, and the call stays with the agent.
    rest.fail_next(1, 404);
    let (st, rec) = post(format!("{base}/api/calls/{s1}/takeover"), json!({})).await;
    assert_eq!(st, 502, "{rec}");
    let a: Value = client().get(format!("{base}/api/calls/active")).send().await.unwrap().json().await.unwrap();
    assert!(a["calls"].as_array().unwrap().iter().any(|c| c["call_sid"] == s1.as_str() && c["status"] == "with_agent"), "{a}");
    let (st, rec) = post(format!("{base}/api/calls/{s1}/takeover"), json!({})).await;
    assert_eq!(st, 200, "{rec}");
    assert_eq!(rec["status"], "taken_over");
    assert_eq!(post(format!("{base}/api/calls/{s2}/transfer"), json!({"to": "555-CALL"})).await.0, 400);
    let (st, rec) = post(format!("{base}/api/calls/{s2}/transfer"), json!({"to": "+15550004444"})).await;
    assert_eq!(st, 200, "{rec}");
    assert_eq!(rec["status"], "transferred");
    let (st, rec) = post(format!("{base}/api/calls/{s3}/hangup"), json!({})).await;
    assert_eq!(st, 200, "{rec}");
    assert_eq!(rec["status"], "completed");
    assert_eq!(post(format!("{base}/api/calls/{s3}/hangup"), json!({})).await.0, 409, "an ended call cannot be hung up");
    assert_eq!(post(format!("{base}/api/calls/{}/hangup", new_call_sid()), json!({})).await.0, 404);
    // What Twilio saw, and what the callers experienced.
    let reqs = rest.requests();
    let form_of = |sid: &str| reqs.iter().find(|r| r.call_sid == sid).unwrap().form.clone();
    assert!(form_of(&s1)["Twiml"].contains("<Dial>+15550009999</Dial>"));
    assert!(form_of(&s2)["Twiml"].contains("<Dial>+15550004444</Dial>"));
    assert_eq!(form_of(&s3)["Status"], "completed");
    for c in calls {
        let c = tokio::time::timeout(Duration::from_secs(10), c).await.unwrap().unwrap();
        assert!(c.report.redirected.is_some(), "caller {} was handed off", c.call_sid);
    }
    for (sid, action) in [(&s1, "call.takeover"), (&s2, "call.transfer"), (&s3, "call.hangup")] {
        let rec = wait_record_ended(&rig.server, sid).await;
        assert_eq!(rig.server.store.rebuild(sid).unwrap().unwrap(), rec);
        let a: Value = client().get(format!("{base}/api/audit?target={sid}&action={action}")).send().await.unwrap().json().await.unwrap();
        let entries = a["entries"].as_array().unwrap();
        assert!(entries.iter().any(|e| e["outcome"] == "ok" && e["user"] == "supervisor"), "{action}: {entries:?}");
        if action == "call.takeover" {
            assert!(entries.iter().any(|e| e["outcome"] != "ok"), "the refused takeover is audited too: {entries:?}");
        }
    }
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_call_limit_a_caller_goes_to_a_human_and_the_webhook_is_rate_limited() {
    let sc = scenario("structure-fire");
    let rig = rig(vec![sc.clone()], 1.0, |c| {
        c.max_calls = 1;
        c.webhook_rate_per_second = 2;
    })
    .await;
    let base = rig.server.base_url();
    let hook = |sid: String| {
        let base = base.clone();
        async move {
            let form = [("CallSid", sid.as_str()), ("From", "+15550900001"), ("To", "+15550000911"), ("AccountSid", ACCOUNT)];
            let r = reqwest::Client::new().post(format!("{base}/api/webhooks/voice")).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let first = new_call_sid();
    let (st, body) = hook(first.clone()).await;
    assert_eq!(st, 200);
    assert!(body.contains("<Connect>"), "the first call goes to the AI");
    let second = new_call_sid();
    let (st, body) = hook(second.clone()).await;
    assert_eq!(st, 200);
    assert!(!body.contains("<Connect>") && body.contains("<Dial>+15550001234</Dial>"), "over the limit: straight to the human line: {body}");
    let rec = wait_record_ended(&rig.server, &second).await;
    assert_eq!((rec.status.as_str(), rec.end_reason.as_deref()), ("fallback", Some("over_capacity")));
    // A burst from one address: some are refused with 429.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(hook(new_call_sid()).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let _ = TOKEN;
    rig.server.shutdown().await;
}
