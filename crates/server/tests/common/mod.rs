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
    let speed = opts.speed;
    let model = ModelFake::start("127.0.0.1:0".parse().unwrap(), scenarios, opts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::defaults();
    cfg.data_dir = dir.path().join("data");
    cfg.openai_api_key = Some(ApiKey::new("sk-test-not-a-real-key"));
    cfg.openai_realtime_url = model.url();
    cfg.human_line = Some("+15550001234".into());
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(TOKEN));
    // Simulated callers run at `speed` × real time: the stream's limits scale with it.
    cfg.stream_limits = cfg.stream_limits.scaled(speed);
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

/// Bytes of a model item's audio as the bridge sends it to Twilio: whole 20 ms frames, the last
/// one filled with silence.
pub fn framed_len(model_bytes: usize) -> usize {
    model_bytes.div_ceil(watchfloor_wire::mulaw::FRAME_BYTES) * watchfloor_wire::mulaw::FRAME_BYTES
}

/// The model's audio items as the caller receives them: each filled to whole 20 ms frames with
/// μ-law silence, in order.
pub fn as_framed(items: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, a) in items {
        out.extend_from_slice(a);
        out.resize(framed_len(out.len()), watchfloor_wire::mulaw::SILENCE);
    }
    out
}

/// The next event on the hub that `pred` accepts, waited for up to `within` (a failed test past
/// it). Subscribe (`server.calls.hub().subscribe()`) before whatever makes the event happen; a
/// receiver that lags skips what it missed and goes on.
pub async fn next_event(rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<watchfloor_bridge::CallEvent>>, within: Duration, pred: impl Fn(&watchfloor_bridge::CallEvent) -> bool) -> std::sync::Arc<watchfloor_bridge::CallEvent> {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(ev) if pred(&ev) => return ev,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("the hub closed"),
            }
        }
    };
    tokio::time::timeout(within, wait).await.expect("the event did not come in time")
}
