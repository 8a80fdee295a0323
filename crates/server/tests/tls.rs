//! Issue 20: the server speaks https and wss itself (Twilio reaches only those), with a
//! certificate the test makes (rcgen). The Twilio caller fake places a whole call over TLS with
//! the webhook and the stream signed on their `https://` and `wss://` URLs; a wrong signature is
//! refused; the console reads the record over https and opens its live feed over wss; plain
//! http to the TLS port gets nowhere.

mod common;

use std::time::Duration;

use common::{TOKEN, scenario};
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use watchfloor_bridge::model::{ApiKey, Secret};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{ModelFake, ModelFakeOptions};
use watchfloor_sim::simulate::{SimulateOptions, place_call};

const AUTH_TOKEN: &str = "tls-test-twilio-auth-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_and_the_console_over_https_and_wss_with_signatures_on_https_urls() {
    let speed = 4.0;
    let sc = scenario("structure-fire");
    let model = ModelFake::start("127.0.0.1:0".parse().unwrap(), vec![sc.clone()], ModelFakeOptions { speed, ..Default::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A certificate for this machine's loopback, made here.
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert_pem = made.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let mut cfg = watchfloor_server::Config::defaults();
    cfg.data_dir = dir.path().join("data");
    cfg.openai_api_key = Some(ApiKey::new("sk-test-not-a-real-key"));
    cfg.openai_realtime_url = model.url();
    cfg.human_line = Some("+15550001234".into());
    cfg.console_token = Some(Secret::new(TOKEN));
    cfg.twilio_auth_token = Some(Secret::new(AUTH_TOKEN));
    cfg.public_url = Some(base.clone());
    cfg.tls_cert = Some(cert.clone());
    cfg.tls_key = Some(key.clone());
    cfg.stream_limits = cfg.stream_limits.scaled(speed);
    let server = watchfloor_server::serve(cfg, listener).await.unwrap();

    let https = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()).no_proxy().build().unwrap();
    let health: Value = https.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["signatures_checked"], true, "{health}");
    // Plain http to the TLS port: no answer comes back (the handshake fails).
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    assert!(plain.get(format!("{}/health", base.replace("https://", "http://"))).send().await.is_err(), "no plain http on the TLS port");
    // A webhook signed for another URL is refused.
    let forged = https.post(format!("{base}/api/webhooks/voice")).header("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl").form(&[("CallSid", "CA0123456789abcdef0123456789abcdef")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);

    // A whole call from the Twilio caller fake, over https and wss, signed on those URLs.
    let opts = SimulateOptions {
        caller: CallerOptions { speed, tls_root: Some(cert_pem.clone().into_bytes()), ..Default::default() },
        auth_token: Some(AUTH_TOKEN.into()),
        public_url: Some(base.clone()),
        client: Some(https.clone()),
        ..Default::default()
    };
    let call = place_call(&base, &sc, &opts).await.unwrap();
    assert!(call.twiml.url.starts_with(&format!("{}/", base.replace("https://", "wss://"))), "the stream URL is wss: {}", call.twiml.url);
    assert!(call.report.closed_by_server || !call.report.heard_audio.is_empty(), "the call ran: {:?}", call.report.closed_by_server);
    let rec = common::wait_record_ended(&server, &call.call_sid).await;
    assert!(rec.transcript.len() > 2, "{:?}", rec.transcript);

    // The console: the record over https, the live feed over wss.
    let r = https.get(format!("{base}/api/calls/{}", call.call_sid)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut req = format!("{}/api/live", base.replace("https://", "wss://")).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let tls = watchfloor_sim::tls::client_config(cert_pem.as_bytes()).unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(tls)))).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    let v: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "snapshot", "{v}");
    server.shutdown().await;
}

#[test]
fn a_changed_certificate_is_used_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    // Each write stamps the files `n` seconds on: a change the reload sees, without waiting.
    let stamp = |n: u64| {
        for p in [&cert, &key] {
            std::fs::File::options().write(true).open(p).unwrap().set_modified(std::time::SystemTime::now() + Duration::from_secs(n)).unwrap();
        }
    };
    let write = |names: Vec<String>| {
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    };
    write(vec!["localhost".into()]);
    let tls = watchfloor_server::tls::Tls::load(&cert, &key).unwrap();
    assert!(!tls.reload_if_changed().unwrap(), "unchanged files are not read again");
    // A renewal: new files (a later modification time).
    write(vec!["127.0.0.1".into()]);
    stamp(1);
    assert!(tls.reload_if_changed().unwrap(), "the renewed certificate is used");
    // A renewal half written: refused, the one in use stays, and it is retried.
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\ntruncated").unwrap();
    stamp(2);
    assert!(tls.reload_if_changed().is_err());
    assert!(tls.reload_if_changed().is_err(), "retried while the files stay broken");
    assert!(watchfloor_server::tls::Tls::load(&cert, &dir.path().join("missing.pem")).is_err());
}
