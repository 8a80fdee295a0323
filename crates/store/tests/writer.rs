mod common;

use std::sync::Arc;

use tokio::sync::mpsc;
use common::{call_events, ev};
use watchfloor_call::{CallEventKind, RecordMsg};
use watchfloor_store::{Store, writer};

/// A writer on the store in `dir`: the store, the writer's queue and its task.
fn start_writer(dir: &std::path::Path) -> (Store, mpsc::UnboundedSender<RecordMsg>, tokio::task::JoinHandle<()>) {
    let (store, _) = Store::open(dir).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let w = tokio::spawn(writer::run(store.clone(), rx, Default::default()));
    (store, tx, w)
}

#[tokio::test]
async fn writer_records_calls_and_rebuilds_them_from_events() {
    let dir = tempfile::tempdir().unwrap();
    let (store, interrupted) = Store::open(dir.path()).unwrap();
    assert!(interrupted.is_empty());
    let (tx, rx) = mpsc::unbounded_channel();
    let w = tokio::spawn(writer::run(store.clone(), rx, Default::default()));
    for e in call_events("CA1", true).into_iter().chain(call_events("CA2", false)) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    drop(tx);
    w.await.unwrap();
    let rec = store.get_call("CA1").unwrap().unwrap();
    assert_eq!(rec.status, watchfloor_call::CallStatus::Completed);
    assert_eq!(rec.from, "+15550100101");
    assert!(rec.simulated);
    assert_eq!(rec.transcript_text(), "Dispatcher: 911, what is the address of your emergency?\nCaller: 123 Main Street");
    assert_eq!(rec.agent_questions, 1);
    assert_eq!(rec.end_reason.as_deref(), Some("stop"));
    assert_eq!(store.rebuild("CA1").unwrap().unwrap(), rec);
    assert_eq!(store.events("CA2").unwrap().len(), 5);
    assert_eq!(store.list_calls().unwrap().len(), 2);
}

#[tokio::test]
async fn live_calls_are_marked_interrupted_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let w = tokio::spawn(writer::run(store.clone(), rx, Default::default()));
        for e in call_events("CA_live", false).into_iter().chain(call_events("CA_done", true)) {
            tx.send(RecordMsg::Event(e)).unwrap();
        }
        drop(tx);
        w.await.unwrap();
    }
    let (store, interrupted) = Store::open(dir.path()).unwrap();
    assert_eq!(interrupted, vec!["CA_live".to_string()]);
    let rec = store.get_call("CA_live").unwrap().unwrap();
    assert_eq!(rec.status, watchfloor_call::CallStatus::Interrupted);
    assert_eq!(rec.transcript.len(), 2, "partial transcript kept");
    assert_eq!(rec.end_reason.as_deref(), Some("server_stopped"));
    assert_eq!(store.rebuild("CA_live").unwrap().unwrap(), rec, "the interruption is in the event log too");
    assert_eq!(store.get_call("CA_done").unwrap().unwrap().status, watchfloor_call::CallStatus::Completed);
}

#[tokio::test]
async fn writer_stops_on_cancel_with_senders_alive_and_keeps_queued_events() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    for e in call_events("CA3", false) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    stop.cancel();
    writer::run(store.clone(), rx, stop).await;
    assert_eq!(store.get_call("CA3").unwrap().unwrap().transcript.len(), 2);
    drop(tx);
}

#[tokio::test]
async fn purge_removes_old_calls_but_keeps_held_ones_and_recent_audit() {
    use watchfloor_call::{AudioFrame, Track};
    use watchfloor_store::{AuditQuery, CallQuery, NewAuditEntry};
    let dir = tempfile::tempdir().unwrap();
    let (store, tx, w) = start_writer(dir.path());
    for sid in ["CA_old", "CA_held"] {
        for e in call_events(sid, true) {
            tx.send(RecordMsg::Event(e)).unwrap();
        }
        tx.send(RecordMsg::Audio(AudioFrame { call_sid: sid.into(), track: Track::Caller, stream_ms: 0, audio: vec![1u8; 160].into() })).unwrap();
    }
    tx.send(RecordMsg::Event(ev("CA_held", 7, CallEventKind::LegalHold { on: true, by: "jdoe".into() }))).unwrap();
    drop(tx);
    w.await.unwrap();
    store.audit(NewAuditEntry { at_ms: 10, user: "jdoe".into(), action: "call.read".into(), target: "CA_old".into(), outcome: "ok".into(), detail: None }).await.unwrap();
    store.audit(NewAuditEntry { at_ms: 5_000, user: "jdoe".into(), action: "call.read".into(), target: "CA_held".into(), outcome: "ok".into(), detail: None }).await.unwrap();
    assert!(store.get_call("CA_held").unwrap().unwrap().legal_hold);

    let report = store.purge(u64::MAX, 1_000).unwrap();
    assert_eq!((report.calls_removed, report.calls_held, report.audit_removed), (1, 1, 1));
    assert!(store.get_call("CA_old").unwrap().is_none());
    assert!(store.events("CA_old").unwrap().is_empty());
    assert!(store.audio("CA_old").unwrap().is_empty());
    assert_eq!(store.audio("CA_held").unwrap().len(), 1);
    let all = store.query(&CallQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(all.calls.len(), 1, "index entries of the purged call are gone");
    assert!(store.query(&CallQuery { text: Some("Main".into()), limit: 10, ..Default::default() }).unwrap().calls.iter().all(|c| c.call_sid == "CA_held"));
    let audit = store.audit_log(&AuditQuery { limit: 10, ..Default::default() }).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target, "CA_held");
}

fn frame(sid: &str, track: watchfloor_call::Track, stream_ms: u64) -> RecordMsg {
    RecordMsg::Audio(watchfloor_call::AudioFrame { call_sid: sid.into(), track, stream_ms, audio: bytes::Bytes::from(vec![0x55u8; 160]) })
}

fn stored_ms(store: &Store, sid: &str) -> u64 {
    store.audio(sid).unwrap().iter().map(|c| watchfloor_wire::mulaw::bytes_to_ms(c.audio.len())).sum()
}

#[tokio::test]
async fn live_audio_is_written_by_the_second_and_whole_at_a_barrier_or_a_shutdown() {
    use watchfloor_call::Track;
    let dir = tempfile::tempdir().unwrap();
    let (store, tx, w) = start_writer(dir.path());
    for e in call_events("CA_a", false) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    // 1.5 s of caller audio on a live call: the full second is written, the half second waits.
    for i in 0..75 {
        tx.send(frame("CA_a", Track::Caller, i * 20)).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(stored_ms(&store, "CA_a"), 1000);
    // A barrier (a supervisor action) writes everything published before it.
    let (btx, brx) = tokio::sync::oneshot::channel();
    tx.send(RecordMsg::Barrier(btx)).unwrap();
    brx.await.unwrap();
    assert_eq!(stored_ms(&store, "CA_a"), 1500);
    // Audio with no event after it, then the writer stops: nothing is left behind.
    for i in 75..100 {
        tx.send(frame("CA_a", Track::Caller, i * 20)).unwrap();
    }
    drop(tx);
    w.await.unwrap();
    assert_eq!(stored_ms(&store, "CA_a"), 2000);
    assert_eq!(store.get_call("CA_a").unwrap().unwrap().transcript.len(), 2, "the live record was written");
}

#[tokio::test]
async fn a_call_ending_writes_its_own_partial_audio_not_every_live_calls() {
    use watchfloor_call::Track;
    let dir = tempfile::tempdir().unwrap();
    let (store, tx, w) = start_writer(dir.path());
    for sid in ["CA_live", "CA_ends"] {
        for e in call_events(sid, false) {
            tx.send(RecordMsg::Event(e)).unwrap();
        }
        // Half a second each: less than a piece.
        for i in 0..25 {
            tx.send(frame(sid, Track::Caller, i * 20)).unwrap();
        }
    }
    for e in call_events("CA_ends", true).into_iter().skip(5) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(stored_ms(&store, "CA_ends"), 500, "the ended call's audio is whole on disk");
    assert_eq!(stored_ms(&store, "CA_live"), 0, "the live call's run keeps growing toward a whole piece");
    for i in 25..50 {
        tx.send(frame("CA_live", Track::Caller, i * 20)).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(store.audio("CA_live").unwrap().len(), 1, "one piece of a second, not fragments");
    drop(tx);
    w.await.unwrap();
}

#[tokio::test]
async fn a_barrier_waits_for_a_failing_recording_write_to_be_retried() {
    use watchfloor_call::Track;
    let dir = tempfile::tempdir().unwrap();
    let (store, tx, w) = start_writer(dir.path());
    // The call's recording file cannot be opened: a directory stands in its place.
    let blocker = watchfloor_store::AudioFiles::open(dir.path()).unwrap().path("CA_f");
    std::fs::create_dir(&blocker).unwrap();
    for e in call_events("CA_f", false) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    for i in 0..25 {
        tx.send(frame("CA_f", Track::Caller, i * 20)).unwrap();
    }
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        std::fs::remove_dir(&blocker).unwrap();
    });
    let (btx, brx) = tokio::sync::oneshot::channel();
    tx.send(RecordMsg::Barrier(btx)).unwrap();
    brx.await.unwrap();
    assert_eq!(stored_ms(&store, "CA_f"), 500, "the barrier was answered after the retried write");
    drop(tx);
    w.await.unwrap();
}

#[tokio::test]
async fn a_recording_that_cannot_be_written_does_not_hold_up_the_record_or_the_shutdown() {
    use watchfloor_call::Track;
    let dir = tempfile::tempdir().unwrap();
    let (store, tx, w) = start_writer(dir.path());
    std::fs::create_dir(watchfloor_store::AudioFiles::open(dir.path()).unwrap().path("CA_f")).unwrap();
    for e in call_events("CA_f", false) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    for i in 0..25 {
        tx.send(frame("CA_f", Track::Caller, i * 20)).unwrap();
    }
    for e in call_events("CA_f", true).into_iter().skip(5) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    drop(tx);
    tokio::time::timeout(std::time::Duration::from_secs(15), w).await.expect("the writer stops").unwrap();
    assert_eq!(store.get_call("CA_f").unwrap().unwrap().status, watchfloor_call::CallStatus::Completed, "the record is whole");
    assert_eq!(store.events("CA_f").unwrap().len(), 7);
}

/// Issue 15: the webhook asks the store's in-memory ledger, never the disk. It learns every
/// record the writer writes, is rebuilt on open, and a CallSid purged by retention stays
/// answered across a reopen (a replayed webhook of it is refused years later).
#[tokio::test]
async fn the_ledger_knows_written_purged_and_reopened_calls() {
    const OLD: &str = "CA00000000000000000000000000000001";
    const NEW: &str = "CA00000000000000000000000000000002";
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, tx, w) = start_writer(dir.path());
        assert!(!store.ledger().is_answered(OLD));
        for sid in [OLD, NEW] {
            for e in call_events(sid, true) {
                tx.send(RecordMsg::Event(e)).unwrap();
            }
        }
        drop(tx);
        w.await.unwrap();
        assert!(store.ledger().is_answered(OLD) && store.ledger().is_answered(NEW));
        // The events' 1 000 ms start is older than the history window: answered, no history.
        assert!(store.ledger().caller_history("+15550100101", 0, "").is_empty());
        // Retention removes both records.
        let report = store.purge(u64::MAX, 0).unwrap();
        assert_eq!(report.calls_removed, 2);
        assert!(!store.ledger().first_answer(OLD), "a purged CallSid stays answered");
        store.flush().await.unwrap();
    }
    let (store, _) = Store::open(dir.path()).unwrap();
    assert!(store.get_call(OLD).unwrap().is_none());
    assert!(!store.ledger().first_answer(OLD), "still answered after a reopen");
    assert!(!store.ledger().first_answer(NEW));
    assert!(store.ledger().first_answer("CA00000000000000000000000000000003"));
}

/// The caller history the agent's instructions carry comes from the ledger: recent calls of
/// a number, the record's latest status and incident type, and it survives a reopen.
#[tokio::test]
async fn the_ledger_keeps_recent_calls_per_caller() {
    const SID: &str = "CA00000000000000000000000000000010";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, tx, w) = start_writer(dir.path());
        for e in call_events(SID, true) {
            let mut e = (*e).clone();
            e.at_ms = now - 60_000 + e.seq;
            tx.send(RecordMsg::Event(Arc::new(e))).unwrap();
        }
        drop(tx);
        w.await.unwrap();
        let h = store.ledger().caller_history("+15550100101", now - 3_600_000, "");
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].call_sid.as_str(), h[0].status), (SID, watchfloor_call::CallStatus::Completed));
        assert!(store.ledger().caller_history("+15550100101", now - 3_600_000, SID).is_empty());
        store.flush().await.unwrap();
    }
    let (store, _) = Store::open(dir.path()).unwrap();
    assert_eq!(store.ledger().caller_history("+15550100101", now - 3_600_000, "").len(), 1, "rebuilt on open");
}

/// Issue 20: a live call's recording is made durable every few seconds, not only at its end.
#[tokio::test]
async fn a_live_calls_recording_is_synced_every_few_seconds() {
    use watchfloor_call::Track;
    let dir = tempfile::tempdir().unwrap();
    let (store, tx, w) = start_writer(dir.path());
    for e in call_events("CA_live", false) {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    // Audio keeps coming, as on a live call, until the writer has synced the file once
    // (within RECORDING_SYNC_INTERVAL and a batch).
    let before = store.recording_syncs();
    let deadline = std::time::Instant::now() + watchfloor_store::writer::RECORDING_SYNC_INTERVAL * 3;
    let mut ms = 0;
    while store.recording_syncs() == before {
        assert!(std::time::Instant::now() < deadline, "no sync of the live call's recording");
        for _ in 0..5 {
            tx.send(frame("CA_live", Track::Caller, ms)).unwrap();
            ms += 20;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(store.get_call("CA_live").unwrap().is_none_or(|r| r.is_live()), "still live when synced");
    drop(tx);
    w.await.unwrap();
}

#[tokio::test]
async fn search_folds_accents_and_finds_words_in_text_without_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let (store, tx, w) = start_writer(dir.path());
    let line = |sid: &str, seq: u64, text: &str| ev(sid, seq, CallEventKind::TranscriptFinal { speaker: watchfloor_call::Speaker::Caller, item_id: format!("u{seq}"), text: text.into(), interrupted: false, stream_ms: None, by: None, language: None });
    for e in [line("CA_ja", 0, "台所で火事です。煙がすごい"), line("CA_es", 0, "Está ardiendo la cocina del Café Central")] {
        tx.send(RecordMsg::Event(e)).unwrap();
    }
    drop(tx);
    w.await.unwrap();
    let find = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = store.query(&watchfloor_store::CallQuery { text: Some(text.into()), limit: 10, ..Default::default() }).unwrap().calls.into_iter().map(|c| c.call_sid).collect();
        v.sort();
        v
    };
    assert_eq!(find("火事"), ["CA_ja"]);
    assert_eq!(find("煙"), Vec::<String>::new(), "one character is not a term inside a longer run");
    assert_eq!(find("火山"), Vec::<String>::new());
    assert_eq!(find("cafe"), ["CA_es"]);
    assert_eq!(find("CAFÉ central"), ["CA_es"]);
    assert_eq!(find("esta cocina"), ["CA_es"]);
}

#[tokio::test]
async fn a_transcript_index_of_an_older_version_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_store, tx, w) = start_writer(dir.path());
        tx.send(RecordMsg::Event(ev("CA1", 0, CallEventKind::CallCreated { from: "+15550100101".into(), to: "+15550000911".into(), simulated: true }))).unwrap();
        tx.send(RecordMsg::Event(ev("CA1", 1, CallEventKind::TranscriptFinal { speaker: watchfloor_call::Speaker::Caller, item_id: "u".into(), text: "Humo en el Café".into(), interrupted: false, stream_ms: None, by: None, language: None }))).unwrap();
        tx.send(RecordMsg::Event(ev("CA1", 2, CallEventKind::CallEnded { reason: "stop".into() }))).unwrap();
        drop(tx);
        w.await.unwrap();
    }
    {
        // What version 1 wrote: lower-cased words with their accents, and no version.
        let db = sled::open(dir.path()).unwrap();
        let words = db.open_tree("words").unwrap();
        words.clear().unwrap();
        words.insert(b"caf\xc3\xa9\x00CA1", &[][..]).unwrap();
        db.flush().unwrap();
    }
    let (store, _) = Store::open(dir.path()).unwrap();
    let found = store.query(&watchfloor_store::CallQuery { text: Some("cafe".into()), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(found.calls.len(), 1, "rebuilt with the folded terms");
    let found = store.query(&watchfloor_store::CallQuery { text: Some("humo".into()), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(found.calls.len(), 1);
}
