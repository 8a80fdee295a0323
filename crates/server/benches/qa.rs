//! Quality-assurance benchmark (not a test): `cargo bench -p watchfloor-server --bench qa`.
//!
//! 1. Fills a store with `CALLS` ended calls (default 10 000) over the last 7 days, each one of
//!    the committed scenarios (`crates/sim/scenarios`, rotating) as the bridge would record it
//!    (`watchfloor_sim::events`), with uniformly random CallSids; written by the real store
//!    writer.
//! 2. Scores every call with the shipped cards (`Scorer::catch_up`, what the server's scoring
//!    job does at start and after a change of the cards): wall time, per call, and the peak
//!    resident memory of the process during it (VmHWM, reset before the step).
//! 3. Starts the real server on that store (loopback) and asks `GET /api/stats` and
//!    `GET /api/qa/queue` for the 7 days, `ROUNDS` times each (default 20): latency p50 / max
//!    over HTTP, the figures of 10 000 calls (the statistics page's goal: within 500 ms).
//!
//! Environment: `WF_BENCH_QA_CALLS`, `WF_BENCH_QA_ROUNDS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use watchfloor_bridge::RecordMsg;
use watchfloor_server::config::Config;
use watchfloor_server::scoring::Scorer;
use watchfloor_sim::scenario::Scenario;
use watchfloor_store::{Store, writer};

const TOKEN: &str = "bench-console-token-0123456789";
const DAY_MS: u64 = 86_400_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A `/proc/self/status` figure in KiB (`VmHWM`, `VmRSS`).
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// SplitMix64: uniform CallSids without a dependency.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    format!("p50 {:.1} ms, max {:.1} ms", v[v.len() / 2].as_secs_f64() * 1e3, v[v.len() - 1].as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env("WF_BENCH_QA_CALLS", 10_000) as usize;
    let rounds = env("WF_BENCH_QA_ROUNDS", 20) as usize;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scenarios: Vec<Scenario> = Scenario::load_all(&watchfloor_sim::scenario::default_dir()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let from = now - 7 * DAY_MS;

    // 1. The store.
    let t = Instant::now();
    {
        let (store, _) = Store::open(&data).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let w = tokio::spawn(writer::run(store.clone(), rx, stop.clone()));
        let mut seed = 19u64;
        for i in 0..calls {
            let sid = format!("CA{:016x}{:016x}", splitmix(&mut seed), splitmix(&mut seed));
            let t0 = from + (i as u64) * (7 * DAY_MS - 3_600_000) / calls as u64;
            for ev in watchfloor_sim::events::scenario_events(&scenarios[i % scenarios.len()], &sid, t0) {
                tx.send(RecordMsg::Event(Arc::new(ev))).unwrap();
            }
            if i % 500 == 499 {
                let (btx, brx) = oneshot::channel();
                tx.send(RecordMsg::Barrier(btx)).unwrap();
                brx.await.unwrap();
            }
        }
        let (btx, brx) = oneshot::channel();
        tx.send(RecordMsg::Barrier(btx)).unwrap();
        brx.await.unwrap();
        stop.cancel();
        w.await.unwrap();
        let events: usize = store.calls_started(0, u64::MAX).unwrap().len();
        assert_eq!(events, calls, "every call recorded");
    }
    println!("store: {calls} calls of {} scenarios written in {:.1} s", scenarios.len(), t.elapsed().as_secs_f64());

    // 2. Scoring every call.
    {
        let (store, _) = Store::open(&data).unwrap();
        let scorer = Scorer::load(&store).unwrap();
        let _ = std::fs::write("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
        let (rss0, t) = (status_kib("VmRSS:"), Instant::now());
        let scored = scorer.catch_up(&store, 0, u64::MAX).unwrap();
        let took = t.elapsed();
        let hwm = status_kib("VmHWM:");
        assert_eq!(scored, calls);
        println!(
            "scoring: {scored} calls in {:.2} s ({:.0} µs per call); peak RSS {:.1} MiB, {:.1} MiB above the {:.1} MiB before",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / scored as f64,
            hwm as f64 / 1024.0,
            hwm.saturating_sub(rss0) as f64 / 1024.0,
            rss0 as f64 / 1024.0
        );
        println!("store on disk after scoring: {:.1} MiB", store.size_on_disk().unwrap() as f64 / 1048576.0);
    }

    // 3. The statistics page and the queue over HTTP.
    let mut cfg = Config::defaults();
    cfg.data_dir = data.clone();
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = watchfloor_server::serve(cfg, listener).await.unwrap();
    let base = server.base_url();
    let client = reqwest::Client::new();
    let get = async |path: String| {
        let t = Instant::now();
        let r = client.get(format!("{base}{path}")).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let body: serde_json::Value = r.json().await.unwrap();
        (t.elapsed(), body)
    };
    let (mut stats, mut queue) = (Vec::new(), Vec::new());
    let mut last = (serde_json::Value::Null, serde_json::Value::Null);
    for _ in 0..rounds {
        let (d, f) = get(format!("/api/stats?from={from}&to={now}")).await;
        stats.push(d);
        let (d, q) = get(format!("/api/qa/queue?from={from}&to={now}")).await;
        queue.push(d);
        last = (f, q);
    }
    assert_eq!(last.0["calls"], calls, "the figures count every call");
    println!("GET /api/stats over {} calls: {} ({rounds} rounds)", last.0["calls"], summary(stats));
    println!("GET /api/qa/queue over {} calls: {} ({} queued)", last.1["calls"], summary(queue), last.1["entries"].as_array().map_or(0, Vec::len));
    server.shutdown().await;
}
