//! Crash tests of the `watchfloor serve` process.
//!
//! - 10 live simulated calls, `kill -9` mid-call, restart on the same data directory: the store
//!   opens, every event the API showed more than one flush interval before the kill is there, and
//!   the calls are `interrupted` with their partial transcript and audio.
//! - Durable acknowledgements (issue 20): 10 live calls, 50 supervisor actions acknowledged,
//!   `kill -9` at once, and sled's files replaced by a copy made before the actions (sled's
//!   unsynced tail thrown away, and more): on restart every acknowledged action is there, from
//!   the journal.
//! - The order of system calls under `strace`: each acknowledged action's journal write is
//!   followed by a sync of the journal before the HTTP response is written.

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
async fn start_server(data: &std::path::Path, model_url: &str) -> (Server, String) {
    start_server_under(&[], data, model_url).await
}

/// [`start_server`], run by `wrapper` (a program and its arguments, e.g. `strace …`) when given.
#[allow(clippy::zombie_processes)] // the child is waited for in `Server::drop`
async fn start_server_under(wrapper: &[&str], data: &std::path::Path, model_url: &str) -> (Server, String) {
    let bin = env!("CARGO_BIN_EXE_watchfloor");
    let mut cmd = match wrapper.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = cmd
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

/// Live simulated calls: their model fake and the callers' tasks.
struct LiveCalls {
    model: ModelFake,
    callers: Vec<tokio::task::JoinHandle<()>>,
}

/// A model fake for ten simulated calls about a cardiac arrest (distinct callers).
async fn model_for_ten(speed: f64) -> (ModelFake, Vec<Scenario>) {
    let base_sc = Scenario::load(&watchfloor_sim::scenario::default_dir(), "cardiac-arrest").unwrap();
    let scenarios: Vec<Scenario> = (0..10).map(|i| base_sc.with_caller_number(format!("+1555061{i:04}"))).collect();
    let model = ModelFake::start("127.0.0.1:0".parse().unwrap(), scenarios.clone(), ModelFakeOptions { speed, ..Default::default() }).await.unwrap();
    (model, scenarios)
}

/// Places the scenarios' calls; returns once every call is past its first caller turn, with
/// their CallSids.
async fn place(base: &str, model: ModelFake, scenarios: Vec<Scenario>, speed: f64) -> (LiveCalls, Vec<String>) {
    let mut callers = Vec::new();
    for sc in scenarios.clone() {
        let base = base.to_string();
        callers.push(tokio::spawn(async move {
            let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };
            // Killed servers end these calls: whatever the caller reports is beside the point.
            let _ = place_call(&base, &sc, &opts).await;
        }));
    }
    let n = scenarios.len();
    assert!(model.wait_until(Duration::from_secs(60), |s| s.len() == n && s.iter().all(|s| !s.turns.is_empty())).await, "every call reached its first caller turn");
    let active = json(format!("{base}/api/calls/active")).await;
    let live: Vec<String> = active["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_string()).collect();
    assert_eq!(live.len(), n, "all calls live: {active}");
    (LiveCalls { model, callers }, live)
}

/// `POST /api/calls/{sid}/whisper` with `text`: 200 is the acknowledgement.
async fn whisper(base: &str, sid: &str, text: &str) {
    let r = reqwest::Client::new().post(format!("{base}/api/calls/{sid}/whisper")).bearer_auth("crash-test-token").json(&serde_json::json!({"text": text})).send().await.unwrap();
    assert_eq!(r.status(), 200, "{sid} {text}: {}", r.text().await.unwrap());
}

/// Copies the directory tree `from` into `to` (files overwritten), leaving out `skip` names.
fn copy_tree(from: &std::path::Path, to: &std::path::Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if skip.iter().any(|s| e.file_name() == *s) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()), &[]);
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_actions_survive_kill_9_and_a_lost_sled_tail() {
    let speed = 2.0;
    let (model, scenarios) = model_for_ten(speed).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, base) = start_server(&data, &model.url()).await;
    let (calls, live) = place(&base, model, scenarios, speed).await;

    // sled as of a moment before the actions: a consistent copy made by the server itself.
    let earlier = dir.path().join("earlier");
    let r = reqwest::Client::new().post(format!("{base}/api/backup")).bearer_auth("crash-test-token").json(&serde_json::json!({"dest": earlier})).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // 50 supervisor actions, 5 on each call (the calls' in parallel), each acknowledged.
    let mut acked = Vec::new();
    for round in 0..5 {
        let mut tasks = Vec::new();
        for sid in &live {
            let (base, sid, text) = (base.clone(), sid.clone(), format!("durable action {round} on {sid}"));
            acked.push((sid.clone(), text.clone()));
            tasks.push(tokio::spawn(async move { whisper(&base, &sid, &text).await }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    assert_eq!(acked.len(), 50);
    // At once: no time for sled to write anything more.
    let mut server = server;
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    drop(server);
    for c in calls.callers {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await.expect("caller ends after the kill");
    }

    // A data directory whose sled lost everything since the copy: the copy's trees, with the
    // killed server's recordings and journal.
    let after = dir.path().join("after");
    copy_tree(&earlier, &after, &["BACKUP.json", "journal", "audio"]);
    copy_tree(&data.join("journal"), &after.join("journal"), &[]);
    copy_tree(&data.join("audio"), &after.join("audio"), &[]);
    let (_server, base) = start_server(&after, &calls.model.url()).await;
    let page = json(format!("{base}/api/calls?status=interrupted")).await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 10, "{page}");
    for sid in &live {
        let tl = json(format!("{base}/api/calls/{sid}/timeline")).await;
        let whispers: Vec<&str> = tl["events"].as_array().unwrap().iter().filter(|e| e["type"] == "whisper").filter_map(|e| e["text"].as_str()).collect();
        let want: Vec<&str> = acked.iter().filter(|(s, _)| s == sid).map(|(_, t)| t.as_str()).collect();
        for w in &want {
            assert!(whispers.contains(w), "{sid}: acknowledged action {w:?} lost; the timeline has {whispers:?}");
        }
        let rec = json(format!("{base}/api/calls/{sid}")).await;
        assert_eq!(rec["status"], "interrupted", "{sid}");
    }
    let audit = json(format!("{base}/api/audit?action=agent.whisper&limit=500")).await;
    let details: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["detail"].as_str()).collect();
    for (_, text) in &acked {
        assert!(details.contains(&text.as_str()), "audit entry of {text:?} lost");
    }
}

/// Every line of an strace log (`-f -yy`), with the thread id and the call's start dropped to
/// what matters here: which call, on what, and whether it contains `needle`.
#[derive(Debug)]
struct Syscall<'a> {
    /// The line number in the log.
    line: usize,
    name: &'a str,
    /// The descriptor's annotation (`-yy`): a path or a socket.
    fd: &'a str,
    text: &'a str,
}

/// Parses the strace lines that begin a call (`write(17</…/journal/…>, "…"…` or one resumed:
/// `<... fdatasync resumed>` counts at the line it completes on).
fn syscalls(log: &str) -> Vec<Syscall<'_>> {
    let mut out = Vec::new();
    for (i, l) in log.lines().enumerate() {
        // "<pid> <name>(<fd><annotation>, …" — the pid is left off by -o with one process too.
        let rest = l.split_once(' ').map_or(l, |(first, rest)| if first.bytes().all(|b| b.is_ascii_digit()) { rest } else { l }).trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            // The call completes here; its start was logged earlier with its descriptor.
            let name = resumed.split_whitespace().next().unwrap_or("");
            out.push(Syscall { line: i, name, fd: "", text: rest });
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else { continue };
        let fd = args.split_once('>').map_or("", |(fd, _)| fd);
        out.push(Syscall { line: i, name, fd, text: rest });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_acknowledgement_is_synced_before_its_response_is_written() {
    let speed = 2.0;
    let (model, scenarios) = model_for_ten(speed).await;
    let scenarios = scenarios[..1].to_vec();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("strace.log");
    let log_arg = log.to_str().unwrap().to_string();
    let wrapper = ["strace", "-f", "-yy", "-s", "4096", "--seccomp-bpf", "-e", "trace=write,writev,sendto,sendmsg,fdatasync,fsync", "-o", log_arg.as_str()];
    let (server, base) = start_server_under(&wrapper, &data, &model.url()).await;
    let (calls, live) = place(&base, model, scenarios, speed).await;
    let sid = &live[0];
    let markers: Vec<String> = (0..10).map(|i| format!("ordered-ack-{i:02}")).collect();
    for m in &markers {
        whisper(&base, sid, m).await; // one at a time: the next response is this one's
    }
    drop(server); // killed: the log holds everything up to here
    drop(calls);

    let text = std::fs::read_to_string(&log).expect("strace wrote its log (is strace installed? scripts/setup --browser installs it)");
    let calls = syscalls(&text);
    // Threads: a call left unfinished by one thread completes on a later "resumed" line; a sync
    // counts where it completes.
    let journal_syncs: Vec<usize> = {
        let mut started: std::collections::HashMap<String, bool> = Default::default();
        let mut done = Vec::new();
        for c in &calls {
            let pid = text.lines().nth(c.line).and_then(|l| l.split_whitespace().next()).unwrap_or("").to_string();
            let is_sync = matches!(c.name, "fdatasync" | "fsync");
            if is_sync && c.fd.contains("/journal/") {
                if c.text.contains("<unfinished") {
                    started.insert(pid, true);
                } else if c.text.contains("= 0") {
                    done.push(c.line);
                }
            } else if (c.text.starts_with("<... fdatasync resumed>") || c.text.starts_with("<... fsync resumed>")) && started.remove(&pid).is_some() && c.text.contains("= 0") {
                done.push(c.line);
            }
        }
        done
    };
    let responses: Vec<usize> = calls.iter().filter(|c| matches!(c.name, "write" | "writev" | "sendto" | "sendmsg") && c.fd.contains("TCP") && c.text.contains("HTTP/1.1 ")).map(|c| c.line).collect();
    assert!(!journal_syncs.is_empty() && !responses.is_empty(), "the log has journal syncs and HTTP responses");
    for m in &markers {
        // The action's event and its audit entry, each in a journal frame.
        let writes: Vec<usize> = calls.iter().filter(|c| matches!(c.name, "write" | "writev") && c.fd.contains("/journal/") && c.text.contains(m.as_str())).map(|c| c.line).collect();
        assert!(writes.len() >= 2, "{m}: its event and its audit entry are journaled ({} writes)", writes.len());
        let last_write = *writes.iter().max().unwrap();
        let response = *responses.iter().find(|r| **r > writes[0]).unwrap_or_else(|| panic!("{m}: no response after its journal write"));
        assert!(last_write < response, "{m}: a journal write after the response");
        let synced = journal_syncs.iter().any(|s| *s > last_write && *s < response);
        assert!(synced, "{m}: no journal sync between its journal write (line {last_write}) and its response (line {response})");
    }
}
