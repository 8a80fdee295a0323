//! The server's edges: no model configured, signatures, a stream that never comes, a model that
//! cannot be reached, and the small API.

mod common;

use std::time::Duration;

use common::{client, rig, scenario, wait_record_ended};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, new_call_sid, parse_twiml, place_call};
use watchfloor_wire::signature;

fn form(call_sid: &str) -> Vec<(String, String)> {
    vec![
        ("AccountSid".into(), "AC00000000000000000000000000000000".into()),
        ("CallSid".into(), call_sid.into()),
        ("From".into(), "+15550100199".into()),
        ("To".into(), "+15550000911".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_model_key_every_call_goes_to_the_human_line() {
    let rig = rig(vec![], 1.0, |c| c.openai_api_key = None).await;
    let health: serde_json::Value = reqwest::get(format!("{}/health", rig.server.base_url())).await.unwrap().json().await.unwrap();
    assert_eq!(health["model_configured"], false);
    let sid = new_call_sid();
    let resp = reqwest::Client::new().post(format!("{}/api/webhooks/voice", rig.server.base_url())).form(&form(&sid)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let twiml = parse_twiml(&resp.text().await.unwrap()).unwrap();
    assert!(twiml.url.is_empty(), "no stream without a model");
    assert_eq!(twiml.dial.as_deref(), Some("+15550001234"));
    let rec = wait_record_ended(&rig.server, &sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Fallback);
    assert_eq!(rec.end_reason.as_deref(), Some("no_model_configured"));
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_required_when_an_auth_token_is_set() {
    let sc = scenario("cardiac-arrest").with_caller_number("+15550400001");
    let rig = rig(vec![sc.clone()], 8.0, |c| c.twilio_auth_token = Some(watchfloor_server::config::Secret::new("tok-secret"))).await;
    let base = rig.server.base_url();
    let client = reqwest::Client::new();
    let url = format!("{base}/api/webhooks/voice");
    // Unsigned and wrongly signed webhooks: 403 and no record.
    let sid = new_call_sid();
    let r = client.post(&url).form(&form(&sid)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let bad = signature::compute("wrong-token", &url, &form(&sid));
    let r = client.post(&url).header("x-twilio-signature", bad).form(&form(&sid)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // Everything published before this is written: a refused webhook published nothing.
    rig.server.calls.hub().barrier().await.unwrap();
    assert!(rig.server.store.get_call(&sid).unwrap().is_none());
    // An unsigned media-stream upgrade is refused.
    let ws = tokio_tungstenite::connect_async(format!("ws://{}/ws/media", rig.server.addr)).await;
    assert!(ws.unwrap_err().to_string().contains("403"));
    // A signed call goes through end to end.
    let opts = SimulateOptions { caller: CallerOptions { speed: 8.0, ..Default::default() }, auth_token: Some("tok-secret".into()), public_url: None, call_sid: None, ..Default::default() };
    let call = place_call(&base, &sc, &opts).await.unwrap();
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Completed);
    assert_eq!(rec.transcript.len(), 1 + 2 * sc.turns.len());
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_a_stream_closes_its_model_socket_after_the_claim_window() {
    let sc = scenario("structure-fire").with_caller_number("+15550400002");
    let rig = rig(vec![sc.clone()], 8.0, |c| c.claim_window = Duration::from_millis(400)).await;
    let sid = new_call_sid();
    let mut f = form(&sid);
    f[2].1 = sc.caller_number.clone();
    let r = reqwest::Client::new().post(format!("{}/api/webhooks/voice", rig.server.base_url())).form(&f).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The model socket was opened at the webhook …
    let session = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(5)).await.expect("model socket opened at the webhook and closed after the window");
    assert!(session.session.is_some(), "session.update sent while ringing");
    // … and the record says why nothing followed.
    let rec = wait_record_ended(&rig.server, &sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::NoStream);
    assert!(rec.stages.contains_key("model_connected"));
    assert!(rig.server.calls.is_empty());
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_model_sends_the_caller_to_the_human_line_at_once() {
    // A port with nothing listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("ws://{}/v1/realtime?model=gpt-realtime", closed.local_addr().unwrap());
    drop(closed);
    let sc = scenario("structure-fire").with_caller_number("+15550400003");
    let rig = rig(vec![], 4.0, move |c| c.openai_realtime_url = dead_url).await;
    let started = std::time::Instant::now();
    let opts = SimulateOptions { caller: CallerOptions { speed: 4.0, ..Default::default() }, ..Default::default() };
    let call = place_call(&rig.server.base_url(), &sc, &opts).await.unwrap();
    assert!(call.report.closed_by_server, "the bridge closed the stream so Twilio runs the fallback verbs");
    assert!(started.elapsed() < Duration::from_secs(3), "fallback took {:?}", started.elapsed());
    assert_eq!(call.twiml.dial.as_deref(), Some("+15550001234"));
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Fallback);
    assert_eq!(rec.end_reason.as_deref(), Some("model_unavailable"));
    assert_eq!(rec.model_errors, 1);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_api_answers_json_errors() {
    let rig = rig(vec![], 1.0, |_| {}).await;
    let base = rig.server.base_url();
    let r = client().get(format!("{base}/api/calls/CA00000000000000000000000000000000")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("no call"));
    let r = reqwest::Client::new().post(format!("{base}/api/webhooks/voice")).form(&[("CallSid", "bogus")]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let active: serde_json::Value = client().get(format!("{base}/api/calls/active")).send().await.unwrap().json().await.unwrap();
    assert_eq!(active["calls"].as_array().unwrap().len(), 0);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_exactly_the_configured_origin() {
    let rig = common::rig(vec![], 1.0, |c| c.cors_origins = vec!["tauri://localhost".into()]).await;
    let url = format!("{}/api/calls/active", rig.server.base_url());
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("tauri://localhost").await.unwrap();
    assert_eq!(ok.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("tauri://localhost"));
    let other = preflight("http://elsewhere.invalid").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none(), "{:?}", other.headers());
    let r = common::client().get(&url).header("origin", "tauri://localhost").send().await.unwrap();
    assert_eq!(r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("tauri://localhost"));
    rig.server.shutdown().await;
}
