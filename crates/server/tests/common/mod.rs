//! Shared set-up for the end-to-end tests: a real server on 127.0.0.1:0 with a real sled store in
//! a temporary directory, and the model fake on loopback.

#![allow(dead_code)]

use std::time::Duration;

use watchfloor_server::{Config, ServerHandle, serve};
use watchfloor_sim::Scenario;
use watchfloor_sim::model::{ModelFake, ModelFakeOptions};
use watchfloor_bridge::model::ApiKey;

/// The console token the test servers use.
pub const TOKEN: &str = "test-console-token";

/// A client that signs every request with the console token.
pub fn client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    reqwest::Client::builder().default_headers(h).build().unwrap()
}

pub struct Rig {
    pub server: ServerHandle,
    pub model: ModelFake,
    pub _dir: tempfile::TempDir,
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&watchfloor_sim::scenario::default_dir(), name).unwrap()
}

pub async fn rig(scenarios: Vec<Scenario>, speed: f64, tweak: impl FnOnce(&mut Config)) -> Rig {
    rig_with(scenarios, ModelFakeOptions { speed, ..Default::default() }, tweak).await
}

pub async fn rig_with(scenarios: Vec<Scenario>, opts: ModelFakeOptions, tweak: impl FnOnce(&mut Config)) -> Rig {
    let _ = tracing_subscriber_init();
    let model = ModelFake::start("127.0.0.1:0".parse().unwrap(), scenarios, opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::defaults();
    cfg.data_dir = dir.path().join("data");
    cfg.openai_api_key = Some(ApiKey::new("sk-test-not-a-real-key"));
    cfg.openai_realtime_url = model.url();
    cfg.human_line = Some("+15550001234".into());
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(TOKEN));
    // Simulated callers run up to 8× real time: 8 × (50 media + 50 marks) frames per second.
    cfg.max_frames_per_second = 1000;
    tweak(&mut cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve(cfg, listener).await.unwrap();
    Rig { server, model, _dir: dir }
}

fn tracing_subscriber_init() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TEST_LOG").unwrap_or_else(|_| "warn".into())).with_test_writer().try_init()
}

/// Waits until the call's record is no longer live (the writer flushes at call end).
pub async fn wait_record_ended(server: &ServerHandle, call_sid: &str) -> watchfloor_store::CallRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(rec)) = server.store.get_call(call_sid)
            && !rec.is_live() && rec.ended_at_ms.is_some() {
                return rec;
            }
        assert!(tokio::time::Instant::now() < deadline, "record of {call_sid} did not end: {:?}", server.store.get_call(call_sid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
