//! The journal of acknowledged writes (issue 20): whatever sled loses, what was acknowledged is
//! written back on open.

mod common;

use tokio::sync::{mpsc, oneshot};
use common::{call_events, ev};
use watchfloor_call::{CallEventKind, CallStatus, RecordMsg};
use watchfloor_store::{CallQuery, NewAuditEntry, Store, writer};

/// sled's own files in `dir` removed (what a power cut can do to what sled had not made
/// durable, at its worst): the journal and the recordings stay.
fn lose_sled(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name();
        if name == "journal" || name == "audio" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        } else {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_come_back_when_sled_lost_them() {
    let dir = tempfile::tempdir().unwrap();
    let audit_id;
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let w = tokio::spawn(writer::run(store.clone(), rx, Default::default()));
        for e in call_events("CA_done", true).into_iter().chain(call_events("CA_live", false)) {
            tx.send(RecordMsg::Event(e)).unwrap();
        }
        // A supervisor action: its event, then the barrier its acknowledgement waits on.
        tx.send(RecordMsg::Event(ev("CA_live", 5, CallEventKind::LegalHold { on: true, by: "sam".into() }))).unwrap();
        let (btx, brx) = oneshot::channel();
        tx.send(RecordMsg::Barrier(btx)).unwrap();
        brx.await.unwrap();
        audit_id = store
            .audit(NewAuditEntry { at_ms: 5_000, user: "sam".into(), action: "call.legal_hold".into(), target: "CA_live".into(), outcome: "ok".into(), detail: None })
            .await
            .unwrap()
            .id;
        store.put_user("rita", &serde_json::json!({"roles": ["reviewer"]})).await.unwrap();
        store.put_settings(&serde_json::json!({"policy": "supervised"})).await.unwrap();
        assert!(store.journal_syncs() >= 3, "the barrier, the audit entry, the user and the settings were synced");
        // The process dies: the writer never checkpoints.
        w.abort();
        let _ = w.await;
    }
    lose_sled(dir.path());
    let (store, interrupted) = Store::open(dir.path()).unwrap();
    assert_eq!(interrupted, vec!["CA_live".to_string()], "the live call is rebuilt from the journal, then closed as interrupted");
    let done = store.get_call("CA_done").unwrap().expect("the ended call is back");
    assert_eq!(done.status, CallStatus::Completed);
    assert_eq!(done, store.rebuild("CA_done").unwrap().unwrap(), "its record is its events' projection");
    let live = store.get_call("CA_live").unwrap().unwrap();
    assert!(live.legal_hold, "the acknowledged action is there");
    assert_eq!(live.status, CallStatus::Interrupted);
    let found = store.query(&CallQuery { text: Some("main".into()), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(found.calls.len(), 2, "the transcript index is rebuilt too");
    let audit = store.audit_log(&Default::default()).unwrap();
    assert!(audit.iter().any(|a| a.id == audit_id && a.action == "call.legal_hold"), "{audit:?}");
    let users: Vec<serde_json::Value> = store.users().unwrap();
    assert_eq!(users, vec![serde_json::json!({"roles": ["reviewer"]})]);
    assert_eq!(store.settings().unwrap(), Some(serde_json::json!({"policy": "supervised"})));
    // New audit ids do not reuse a replayed one.
    let next = store.audit_unflushed(NewAuditEntry { at_ms: 5_000, user: "sam".into(), action: "x".into(), target: "y".into(), outcome: "ok".into(), detail: None }).unwrap();
    assert!(next.id > audit_id);
    drop(store);

    // The open made the replay durable and dropped the replayed generations: sled now holds
    // it all, and a second loss of sled's tail has nothing to take from before that open.
    let (store, interrupted) = Store::open(dir.path()).unwrap();
    assert!(interrupted.is_empty());
    assert_eq!(store.list_calls().unwrap().len(), 2);
}

#[tokio::test]
async fn a_clean_stop_leaves_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let w = tokio::spawn(writer::run(store.clone(), rx, Default::default()));
    for e in call_events("CA1", true) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    store.audit(NewAuditEntry { at_ms: 1, user: "sam".into(), action: "call.read".into(), target: "CA1".into(), outcome: "ok".into(), detail: None }).await.unwrap();
    drop(tx);
    w.await.unwrap();
    let bytes: u64 = std::fs::read_dir(dir.path().join("journal")).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    assert_eq!(bytes, 0, "the writer's last checkpoint made sled durable and dropped the journal");
    assert_eq!(store.journal_len(), 0);
}
