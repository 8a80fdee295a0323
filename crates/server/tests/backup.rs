//! Issue 20: a backup made while 20 calls are live, restored into a fresh directory: the review
//! API of a server on the restored store returns the same calls and audit trail, and the
//! recordings of the calls that had ended, byte for byte.

mod common;

use std::time::Duration;

use common::{TOKEN, client, rig, scenario, wait_record_ended};
use serde_json::{Value, json};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_twenty_live_calls_restores_whole() {
    let speed = 4.0;
    let sc = scenario("cardiac-arrest");
    let rig = rig(vec![sc.clone()], speed, |_| {}).await;
    let base = rig.server.base_url();
    let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };

    // Two calls that end before the backup.
    let mut ended = Vec::new();
    for _ in 0..2 {
        let c = place_call(&base, &sc, &opts).await.unwrap();
        wait_record_ended(&rig.server, &c.call_sid).await;
        ended.push(c.call_sid);
    }
    // Twenty live while it is made, each past its greeting.
    let mut events = rig.server.calls.hub().subscribe();
    let mut live = Vec::new();
    for _ in 0..20 {
        let (b, sc, o) = (base.clone(), sc.clone(), opts.clone());
        live.push(tokio::spawn(async move { place_call(&b, &sc, &o).await.unwrap() }));
    }
    let mut greeted = std::collections::HashSet::new();
    while greeted.len() < 20 {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.recv()).await.expect("20 calls greeted").unwrap();
        if matches!(ev.kind, watchfloor_bridge::CallEventKind::TranscriptFinal { .. }) && !ended.iter().any(|s| **s == *ev.call_sid) {
            greeted.insert(ev.call_sid.to_string());
        }
    }
    let dest = rig._dir.path().join("backup");
    let r = client().post(format!("{base}/api/backup")).json(&json!({"dest": dest})).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let report: Value = r.json().await.unwrap();
    assert!(report["recordings"].as_u64().unwrap() == 22 && report["entries"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(rig.server.calls.len(), 20, "the calls went on while the copy was made");
    // A second backup into the same directory is refused; a relative path too.
    assert_eq!(client().post(format!("{base}/api/backup")).json(&json!({"dest": dest})).send().await.unwrap().status(), 400);
    assert_eq!(client().post(format!("{base}/api/backup")).json(&json!({"dest": "relative/dir"})).send().await.unwrap().status(), 400);

    // What the original says of the ended calls, and its audit trail up to the backup.
    let recording = |b: String, sid: String| async move { client().get(format!("{b}/api/calls/{sid}/recording.wav")).send().await.unwrap().bytes().await.unwrap() };
    let mut before = Vec::new();
    for sid in &ended {
        let rec: Value = client().get(format!("{base}/api/calls/{sid}")).send().await.unwrap().json().await.unwrap();
        before.push((rec, recording(base.clone(), sid.clone()).await));
    }
    let backup_at = report["created_at_ms"].as_u64().unwrap();
    let audit: Value = client().get(format!("{base}/api/audit?limit=500&to={}", backup_at - 1000)).send().await.unwrap().json().await.unwrap();
    for t in live {
        t.await.unwrap();
    }
    rig.server.shutdown().await;

    // Restore into a fresh data directory and serve it.
    let restored_dir = rig._dir.path().join("restored");
    let restored = watchfloor_store::backup::restore(&dest, &restored_dir).unwrap();
    assert_eq!(restored.entries, report["entries"].as_u64().unwrap());
    assert!(watchfloor_store::backup::restore(&dest, &restored_dir).is_err(), "a restore goes into an empty directory only");
    let mut cfg = watchfloor_server::Config::defaults();
    cfg.data_dir = restored_dir;
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(TOKEN));
    let server = watchfloor_server::serve(cfg, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    let b2 = server.base_url();
    let page: Value = client().get(format!("{b2}/api/calls?limit=100")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["calls"].as_array().unwrap().len(), 22, "every call of the backup: {page:#}");
    for (sid, (rec, wav)) in ended.iter().zip(before) {
        let again: Value = client().get(format!("{b2}/api/calls/{sid}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(again["transcript"], rec["transcript"], "{sid}");
        assert_eq!((again["status"].as_str(), again["ended_at_ms"].as_u64()), (rec["status"].as_str(), rec["ended_at_ms"].as_u64()));
        assert!(recording(b2.clone(), sid.clone()).await == wav, "{sid}: the recording byte for byte");
    }
    let audit2: Value = client().get(format!("{b2}/api/audit?limit=500&to={}", backup_at - 1000)).send().await.unwrap().json().await.unwrap();
    assert_eq!(audit2["entries"], audit["entries"], "the audit trail up to the backup");
    server.shutdown().await;
}
