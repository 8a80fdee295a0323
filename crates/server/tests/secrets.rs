//! Secrets never appear in logs, records, API responses: after calls that exercise the model,
//! Twilio REST (fallback), signatures and a password login, every log line (debug level), every
//! byte of the data directory and every API answer is scanned for each secret.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{client, rig_with, scenario, wait_record_ended};
use serde_json::json;
use watchfloor_bridge::model::Secret;
use watchfloor_server::auth::{UserConfig, hash_password};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{Faults, ModelFakeOptions};
use watchfloor_sim::rest::RestFake;
use watchfloor_sim::simulate::{SimulateOptions, place_call};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_logs_records_and_responses() {
    let logs = Capture::default();
    let sink = logs.clone();
    tracing_subscriber::fmt().with_env_filter("debug").with_writer(move || sink.clone()).with_ansi(false).init();

    const OPENAI_KEY: &str = "sk-SECRET-openai-key-7f3a9";
    const TWILIO_TOKEN: &str = "SECRET-twilio-token-44c1";
    const PASSWORD: &str = "SECRET-password-d00d";
    const ACCOUNT: &str = "AC00000000000000000000000000000000";
    let rest = RestFake::start("127.0.0.1:0".parse().unwrap(), ACCOUNT, TWILIO_TOKEN).await.unwrap();
    let rest_base = rest.base_url();
    let sc = scenario("cardiac-arrest");
    let fails = sc.with_caller_number("+15550990002");
    let rig = rig_with(vec![sc.clone(), fails.clone()], ModelFakeOptions { speed: 8.0, faults: Faults { refuse_first: 0, ..Default::default() }, ..Default::default() }, move |c| {
        c.openai_api_key = Some(Secret::new(OPENAI_KEY));
        c.twilio_account_sid = Some(ACCOUNT.into());
        c.twilio_auth_token = Some(Secret::new(TWILIO_TOKEN));
        c.twilio_api_base = rest_base;
        c.users = vec![UserConfig { name: "jdoe".into(), password_hash: Some(hash_password(PASSWORD)), line: Some("+15550009999".into()), roles: vec![], disabled: false }];
    })
    .await;
    let base = rig.server.base_url();
    let opts = SimulateOptions { caller: CallerOptions { speed: 8.0, rest: Some(rest.clone()), ..Default::default() }, auth_token: Some(TWILIO_TOKEN.into()), public_url: None, call_sid: None, ..Default::default() };
    let ok = place_call(&base, &sc, &opts).await.unwrap();
    wait_record_ended(&rig.server, &ok.call_sid).await;
    // A second call transferred by a supervisor through Twilio REST (Basic auth with the token).
    let live = tokio::spawn({
        let (base, opts, fails) = (base.clone(), opts.clone(), fails.clone());
        async move { place_call(&base, &fails, &opts).await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let active: serde_json::Value = client().get(format!("{base}/api/calls/active")).send().await.unwrap().json().await.unwrap();
    let sid = active["calls"][0]["call_sid"].as_str().unwrap().to_string();
    let r = client().post(format!("{base}/api/calls/{sid}/transfer")).json(&json!({"to":"+15550004444"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = live.await;
    let r = reqwest::Client::new().post(format!("{base}/api/login")).json(&json!({"user":"jdoe","password":PASSWORD})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();

    // Every API answer.
    let mut answers = String::new();
    for path in ["/health", "/api/calls", "/api/calls/active", "/api/audit?limit=500"] {
        answers += &client().get(format!("{base}{path}")).send().await.unwrap().text().await.unwrap();
    }
    for id in [&ok.call_sid, &sid] {
        for p in ["", "/transcript", "/transcript?format=text", "/timeline", "/eido"] {
            answers += &client().get(format!("{base}/api/calls/{id}{p}")).send().await.unwrap().text().await.unwrap();
        }
    }
    let data_dir = rig._dir.path().to_path_buf();
    rig.server.shutdown().await;

    let mut stored = Vec::new();
    let mut paths = Vec::new();
    files(&data_dir, &mut paths);
    for p in paths {
        stored.extend(std::fs::read(p).unwrap());
    }
    let stored = String::from_utf8_lossy(&stored).into_owned();
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("voice webhook"), "the log capture works");
    for secret in [OPENAI_KEY, TWILIO_TOKEN, PASSWORD, common::TOKEN, session.as_str()] {
        assert!(!logs.contains(secret), "a secret is in the logs");
        assert!(!stored.contains(secret), "a secret is in the stored records");
        assert!(!answers.contains(secret), "a secret is in an API answer");
    }
    // And none went to the model.
    for s in rig.model.sessions() {
        let instr = s.session.and_then(|x| x.instructions).unwrap_or_default();
        assert!(!instr.contains(OPENAI_KEY) && !instr.contains(TWILIO_TOKEN));
    }
}
