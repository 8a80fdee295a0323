//! Training mode: simulated calls through the real bridge, answered by the in-process model
//! fake even with no OpenAI key, marked SIMULATED; real calls still go to the human line.

mod common;

use common::{TOKEN, client, rig, wait_record_ended};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_calls_need_training_mode() {
    let rig = rig(vec![], 1.0, |_| {}).await;
    let base = rig.server.base_url();
    let r = client().post(format!("{base}/api/training/calls")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("training mode is off"));
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_call_runs_on_the_model_fake_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = watchfloor_server::Config::defaults();
    cfg.data_dir = dir.path().join("data");
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(TOKEN));
    cfg.training = true;
    assert!(cfg.openai_api_key.is_none());
    let server = watchfloor_server::serve(cfg, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    let base = server.base_url();
    let s: Value = client().get(format!("{base}/api/training/scenarios")).send().await.unwrap().json().await.unwrap();
    assert!(s["scenarios"].as_array().unwrap().iter().any(|n| n == "structure-fire"));
    let bad = client().post(format!("{base}/api/training/calls")).json(&json!({"scenario": "nope"})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let r: Value = client().post(format!("{base}/api/training/calls")).json(&json!({"scenario": "structure-fire"})).send().await.unwrap().json().await.unwrap();
    let sid = r["call_sid"].as_str().unwrap().to_string();
    assert_eq!(r["scenario"], "structure-fire");
    let rec = tokio::time::timeout(std::time::Duration::from_secs(60), wait_record_ended_long(&server, &sid)).await.expect("the training call ends");
    assert!(rec.simulated);
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Completed);
    assert!(rec.transcript.iter().any(|l| l.speaker == "agent"), "the model fake answered");
    // A real (not simulated) call with no key still goes straight to the human line.
    let params = [("CallSid", "CA00000000000000000000000000000042"), ("From", "+15550001111"), ("To", "+15550000911"), ("AccountSid", "AC0")];
    let twiml = reqwest::Client::new().post(format!("{base}/api/webhooks/voice")).form(&params).send().await.unwrap().text().await.unwrap();
    assert!(!twiml.contains("<Stream"), "{twiml}");
    // The placement is audited.
    let a: Value = client().get(format!("{base}/api/audit?action=training.place_call")).send().await.unwrap().json().await.unwrap();
    assert_eq!(a["entries"].as_array().unwrap().len(), 2, "{a}");
    server.shutdown().await;
}

async fn wait_record_ended_long(server: &watchfloor_server::ServerHandle, sid: &str) -> watchfloor_store::CallRecord {
    loop {
        if let Ok(Some(rec)) = server.store.get_call(sid)
            && rec.ended_at_ms.is_some() {
                return wait_record_ended(server, sid).await;
            }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
