//! Calls' events for the store's tests.
#![allow(dead_code)] // each test binary uses its share

use std::sync::Arc;

use watchfloor_call::{CallEvent, CallEventKind, CallStatus, Speaker};

/// An event of call `sid` at `1000 + seq` ms.
pub fn ev(sid: &str, seq: u64, kind: CallEventKind) -> Arc<CallEvent> {
    Arc::new(CallEvent { call_sid: sid.into(), seq, at_ms: 1_000 + seq, kind })
}

/// A call's first five events (created, with the agent, a line each way), and with `end` its
/// completion (seq 5 and 6).
pub fn call_events(sid: &str, end: bool) -> Vec<Arc<CallEvent>> {
    let mut v = vec![
        ev(sid, 0, CallEventKind::CallCreated { from: "+15550100101".into(), to: "+15550000911".into(), simulated: true }),
        ev(sid, 1, CallEventKind::StatusChanged { status: CallStatus::WithAgent }),
        ev(sid, 2, CallEventKind::TranscriptFinal { speaker: Speaker::Agent, item_id: "a".into(), text: "911, what is the address of your emergency?".into(), interrupted: false, stream_ms: None, by: None, language: None }),
        ev(sid, 3, CallEventKind::AgentQuestions { count: 1 }),
        ev(sid, 4, CallEventKind::TranscriptFinal { speaker: Speaker::Caller, item_id: "u".into(), text: "123 Main Street".into(), interrupted: false, stream_ms: None, by: None, language: None }),
    ];
    if end {
        v.push(ev(sid, 5, CallEventKind::StatusChanged { status: CallStatus::Completed }));
        v.push(ev(sid, 6, CallEventKind::CallEnded { reason: "stop".into() }));
    }
    v
}

