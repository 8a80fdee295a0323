//! Crash test: 10 live simulated calls, `kill -9` of the `watchfloor serve` process mid-call,
//! restart on the same data directory: the store opens, every event the API showed more than one
//! flush interval before the kill is there, and the calls are `interrupted` with their partial
//! transcript and audio.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use watchfloor_sim::Scenario;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{ModelFake, ModelFakeOptions};
use watchfloor_sim::simulate::{SimulateOptions, place_call};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `watchfloor serve` on a port of its choosing and waits for the line that says where it
/// listens (written once the socket is bound and the store is open).
#[allow(clippy::zombie_processes)] // the child is waited for in `Server::drop`
async fn start_server(data: &std::path::Path, model_url: &str) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchfloor"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("OPENAI_API_KEY", "sk-test-not-a-real-key")
        .env("OPENAI_REALTIME_URL", model_url)
        .env("WATCHFLOOR_HUMAN_LINE", "+15550001234")
        .env("WATCHFLOOR_CONSOLE_TOKEN", "crash-test-token")
        .env("RUST_LOG", "warn")
        .env("HOME", data.parent().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watchfloor binary runs");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Read on a thread of its own until the line comes, then drain (a full pipe would stall
    // the server).
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Watchfloor is listening on ").and_then(|r| r.split_whitespace().next())
                && let Some(tx) = tx.take() {
                    let _ = tx.send(url.to_string());
                }
        }
    });
    let base = tokio::time::timeout(Duration::from_secs(30), rx).await.expect("server did not come up").expect("server exited before listening");
    (Server(child), base)
}

async fn json(url: String) -> Value {
    reqwest::Client::new().get(url).bearer_auth("crash-test-token").send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_call_loses_nothing_acknowledged() {
    let base_sc = Scenario::load(&watchfloor_sim::scenario::default_dir(), "cardiac-arrest").unwrap();
    let scenarios: Vec<Scenario> = (0..10).map(|i| base_sc.with_caller_number(format!("+1555060{i:04}"))).collect();
    let speed = 2.0;
    let model = ModelFake::start("127.0.0.1:0".parse().unwrap(), scenarios.clone(), ModelFakeOptions { speed, ..Default::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, base) = start_server(&data, &model.url()).await;

    let mut callers = Vec::new();
    for sc in scenarios.clone() {
        let base = base.clone();
        callers.push(tokio::spawn(async move {
            let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };
            place_call(&base, &sc, &opts).await
        }));
    }
    // Mid-call: every call's first caller turn has been heard by the model.
    let mid_call = model.wait_until(Duration::from_secs(30), |s| s.len() == 10 && s.iter().all(|s| !s.turns.is_empty())).await;
    assert!(mid_call, "every call reached its first caller turn");
    let active = json(format!("{base}/api/calls/active")).await;
    let live: Vec<String> = active["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_string()).collect();
    assert_eq!(live.len(), 10, "all calls live at the kill: {active}");
    let mut seen = Vec::new();
    for sid in &live {
        let tl = json(format!("{base}/api/calls/{sid}/timeline")).await;
        seen.push((sid.clone(), tl["events"].as_array().unwrap().clone()));
    }
    // The property under test is time itself: what the API showed more than one flush interval
    // (200 ms) before the kill is on disk. This wait is that interval, not a guess at readiness.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut server = server;
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    drop(server);
    for c in callers {
        // The callers lose their stream; whatever they report, they end.
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await.expect("caller ends after the kill");
    }

    let (_server, base) = start_server(&data, &model.url()).await;
    let page = json(format!("{base}/api/calls?status=interrupted")).await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 10, "{page}");
    for (sid, before) in seen {
        let after = json(format!("{base}/api/calls/{sid}/timeline")).await;
        let after = after["events"].as_array().unwrap();
        assert!(after.len() >= before.len() + 2, "{sid}: {} events before, {} after", before.len(), after.len());
        for ev in &before {
            let seq = ev["seq"].as_u64().unwrap() as usize;
            assert_eq!(&after[seq], ev, "{sid}: event {seq} changed or lost");
        }
        let rec = json(format!("{base}/api/calls/{sid}")).await;
        assert_eq!(rec["status"], "interrupted");
        assert_eq!(rec["end_reason"], "server_stopped");
        assert!(!rec["transcript"].as_array().unwrap().is_empty(), "{sid}: partial transcript kept");
        let wav = reqwest::Client::new().get(format!("{base}/api/calls/{sid}/recording.wav")).bearer_auth("crash-test-token").send().await.unwrap();
        assert_eq!(wav.status(), 200, "{sid}: partial audio kept");
        let bytes = wav.bytes().await.unwrap();
        let r = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        assert!(r.duration() >= 8000, "{sid}: at least a second of audio, got {} samples", r.duration());
    }
}
