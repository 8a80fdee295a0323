//! Chaos tests, one per fault: whatever fails, the caller ends with a human (the Twilio REST
//! fake saw the hand-off) or the call goes on; the record is complete; other calls are
//! untouched; nothing panics.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Rig, rig_with, scenario, wait_record_ended};
use watchfloor_bridge::CallEventKind;
use watchfloor_bridge::machine::Timers;
use watchfloor_server::config::Secret;
use watchfloor_sim::Scenario;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{Faults, ModelFakeOptions, SessionFault};
use watchfloor_sim::rest::RestFake;
use watchfloor_sim::simulate::{SimulateOptions, SimulatedCall, place_call};
use watchfloor_wire::mulaw;

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const TOKEN: &str = "chaos-auth-token";
const SPEED: f64 = 4.0;

async fn chaos_rig(scenarios: Vec<Scenario>, faults: Faults, tweak: impl FnOnce(&mut watchfloor_server::Config)) -> (Rig, RestFake) {
    let rest = RestFake::start("127.0.0.1:0".parse().unwrap(), ACCOUNT, TOKEN).await.unwrap();
    let base = rest.base_url();
    let rig = rig_with(scenarios, ModelFakeOptions { speed: SPEED, faults, ..Default::default() }, move |c| {
        c.twilio_account_sid = Some(ACCOUNT.into());
        c.twilio_auth_token = Some(Secret::new(TOKEN));
        c.twilio_api_base = base;
        tweak(c);
    })
    .await;
    (rig, rest)
}

async fn call(rig: &Rig, rest: &RestFake, sc: &Scenario, caller: CallerOptions) -> SimulatedCall {
    let opts = SimulateOptions { caller: CallerOptions { speed: SPEED, rest: Some(rest.clone()), ..caller }, auth_token: Some(TOKEN.into()), public_url: None, call_sid: None, ..Default::default() };
    place_call(&rig.server.base_url(), sc, &opts).await.unwrap()
}

/// The call went to the human line by REST, and the record says so, completely.
async fn assert_handed_to_human(rig: &Rig, rest: &RestFake, c: &SimulatedCall, reason: &str) {
    let redirect = c.report.redirected.as_ref().expect("the caller's call was redirected by REST");
    let twiml = &redirect["Twiml"];
    assert!(twiml.contains("<Dial>+15550001234</Dial>"), "{twiml}");
    assert!(rest.requests().iter().any(|r| r.call_sid == c.call_sid && r.authorized && r.answered == 200));
    let rec = wait_record_ended(&rig.server, &c.call_sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Fallback);
    let events = rig.server.store.events(&c.call_sid).unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind, CallEventKind::Fallback { reason: r } if r == reason)), "no Fallback({reason}): {:?}", events.iter().map(|e| &e.kind).collect::<Vec<_>>());
    assert!(events.iter().any(|e| matches!(&e.kind, CallEventKind::FallbackCompleted { via, .. } if *via == watchfloor_bridge::FallbackRoute::Rest)));
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(rig.server.store.rebuild(&c.call_sid).unwrap().unwrap(), rec);
}

async fn assert_completes(rig: &Rig, c: &SimulatedCall, sc: &Scenario) {
    assert!(c.report.redirected.is_none(), "{}: handed off unexpectedly", sc.caller_number);
    let rec = wait_record_ended(&rig.server, &c.call_sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Completed, "{}", sc.caller_number);
    let caller_lines = rec.transcript.iter().filter(|l| l.speaker == "caller").count();
    assert_eq!(caller_lines, sc.turns.len(), "{}: {:#?}", sc.caller_number, rec.transcript);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_refuses_then_the_next_call_is_fine() {
    let sc = scenario("structure-fire");
    let (rig, rest) = chaos_rig(vec![sc.clone()], Faults { refuse_first: 1, ..Default::default() }, |_| {}).await;
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_handed_to_human(&rig, &rest, &c, "model_unavailable").await;
    let ok = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_completes(&rig, &ok, &sc).await;
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_answers_too_late() {
    let sc = scenario("structure-fire");
    let (rig, rest) = chaos_rig(vec![sc.clone()], Faults { delay_first: Some((1, Duration::from_secs(4))), ..Default::default() }, |c| {
        c.model_connect_timeout = Duration::from_millis(800);
    })
    .await;
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_handed_to_human(&rig, &rest, &c, "model_unavailable").await;
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_answers_slowly_and_no_caller_audio_is_lost() {
    // The stream starts (and the caller speaks) before the model's socket is open: the audio
    // held meanwhile follows the `session.update`, every byte, in order.
    let sc = scenario("structure-fire");
    let (rig, rest) = chaos_rig(vec![sc.clone()], Faults { delay_first: Some((1, Duration::from_millis(600))), ..Default::default() }, |_| {}).await;
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_completes(&rig, &c, &sc).await;
    let session = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(5)).await.expect("the session closed");
    assert_eq!(session.received.first().map(String::as_str), Some("session.update"));
    assert_eq!(session.input_audio.len(), c.report.expected_input.len(), "every caller byte reached the model");
    assert!(session.input_audio == c.report.expected_input, "the caller's audio reached the model unchanged and in order");
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_drops_mid_response_and_the_call_goes_on_in_a_new_session() {
    let faulty = scenario("structure-fire").with_caller_number("+15550700001");
    let other = scenario("cardiac-arrest").with_caller_number("+15550700002");
    let faults = Faults { by_caller: HashMap::from([(faulty.caller_number.clone(), SessionFault::DropAfterDeltas(25))]), ..Default::default() };
    let (rig, rest) = chaos_rig(vec![faulty.clone(), other.clone()], faults, |_| {}).await;
    let (c1, c2) = tokio::join!(call(&rig, &rest, &faulty, CallerOptions::default()), call(&rig, &rest, &other, CallerOptions::default()));
    assert_completes(&rig, &c1, &faulty).await;
    assert_completes(&rig, &c2, &other).await;
    let events = rig.server.store.events(&c1.call_sid).unwrap();
    let reconnected: Vec<u32> = events.iter().filter_map(|e| if let CallEventKind::ModelReconnected { renewed: false, items } = e.kind { Some(items) } else { None }).collect();
    assert_eq!(reconnected.len(), 1, "one reconnect");
    // The new session got the conversation so far.
    let sessions: Vec<_> = rig.model.sessions().into_iter().filter(|s| s.caller_number.as_deref() == Some(faulty.caller_number.as_str())).collect();
    assert_eq!(sessions.len(), 2);
    assert!(sessions[1].received.iter().filter(|t| *t == "conversation.item.create").count() as u32 >= reconnected[0]);
    assert!(!rig.server.store.events(&c2.call_sid).unwrap().iter().any(|e| matches!(e.kind, CallEventKind::ModelReconnected { .. })), "the other call is untouched");
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_sends_garbage_and_the_call_goes_on() {
    let sc = scenario("cardiac-arrest").with_caller_number("+15550700003");
    let faults = Faults { by_caller: HashMap::from([(sc.caller_number.clone(), SessionFault::Garbage)]), ..Default::default() };
    let (rig, rest) = chaos_rig(vec![sc.clone()], faults, |_| {}).await;
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_completes(&rig, &c, &sc).await;
    let rec = rig.server.store.get_call(&c.call_sid).unwrap().unwrap();
    assert!(rec.skipped_inputs > 20, "garbage skipped: {}", rec.skipped_inputs);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_stalls_while_the_caller_speaks() {
    let sc = scenario("structure-fire").with_caller_number("+15550700004");
    let faults = Faults { by_caller: HashMap::from([(sc.caller_number.clone(), SessionFault::StallAfterTurns(1))]), ..Default::default() };
    let (rig, rest) = chaos_rig(vec![sc.clone()], faults, |c| c.timers = Timers { stall_timeout: Duration::from_millis(1500), ..Timers::default() }).await;
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_handed_to_human(&rig, &rest, &c, "model_stalled").await;
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_returns_a_fatal_error() {
    let sc = scenario("structure-fire").with_caller_number("+15550700005");
    let faults = Faults { by_caller: HashMap::from([(sc.caller_number.clone(), SessionFault::ErrorAfterFirstTurn("insufficient_quota".into()))]), ..Default::default() };
    let (rig, rest) = chaos_rig(vec![sc.clone()], faults, |_| {}).await;
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_handed_to_human(&rig, &rest, &c, "model_error:insufficient_quota").await;
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_rest_fails_twice_then_succeeds() {
    let sc = scenario("structure-fire");
    let (rig, rest) = chaos_rig(vec![sc.clone()], Faults { refuse_first: 1, ..Default::default() }, |_| {}).await;
    rest.fail_next(2, 500);
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert_handed_to_human(&rig, &rest, &c, "model_unavailable").await;
    let answers: Vec<u16> = rest.requests().iter().filter(|r| r.call_sid == c.call_sid).map(|r| r.answered).collect();
    assert_eq!(answers, vec![500, 500, 200]);
    let events = rig.server.store.events(&c.call_sid).unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind, CallEventKind::FallbackCompleted { attempts: 3, .. })));
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_twilio_rest_is_down_closing_the_stream_still_sends_the_caller_on() {
    let sc = scenario("structure-fire");
    let (rig, rest) = chaos_rig(vec![sc.clone()], Faults { refuse_first: 1, ..Default::default() }, |_| {}).await;
    rest.fail_next(10, 503);
    let c = call(&rig, &rest, &sc, CallerOptions::default()).await;
    assert!(c.report.closed_by_server, "the stream closed, so Twilio runs the <Dial> after </Connect>");
    assert_eq!(c.twiml.dial.as_deref(), Some("+15550001234"));
    let rec = wait_record_ended(&rig.server, &c.call_sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Fallback);
    let events = rig.server.store.events(&c.call_sid).unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind, CallEventKind::FallbackCompleted { via, rest_error: Some(_), .. } if *via == watchfloor_bridge::FallbackRoute::StreamClose)));
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_side_faults_do_not_touch_other_calls() {
    let base = scenario("cardiac-arrest");
    let steady = base.with_caller_number("+15550700010");
    let gone = base.with_caller_number("+15550700011");
    let twice = base.with_caller_number("+15550700012");
    let big = base.with_caller_number("+15550700013");
    let stopper = base.with_caller_number("+15550700014");
    let (rig, rest) = chaos_rig(vec![steady.clone(), gone.clone(), twice.clone(), big.clone(), stopper.clone()], Faults::default(), |_| {}).await;
    let oversized = format!(r#"{{"event":"media","streamSid":"MZ1","sequenceNumber":"3","media":{{"track":"inbound","chunk":"1","timestamp":"20","payload":"{}"}}}}"#, "A".repeat(100 * 1024));
    let (c_steady, c_gone, c_twice, c_big, c_stop) = tokio::join!(
        call(&rig, &rest, &steady, CallerOptions::default()),
        call(&rig, &rest, &gone, CallerOptions { disconnect_after_ms: Some(4000), ..Default::default() }),
        call(&rig, &rest, &twice, CallerOptions { duplicate_start: true, ..Default::default() }),
        call(&rig, &rest, &big, CallerOptions { inject_after_start: vec![oversized], ..Default::default() }),
        call(&rig, &rest, &stopper, CallerOptions { stop_without_start: true, ..Default::default() }),
    );
    // Unaffected and duplicate-start calls go on to the end.
    assert_completes(&rig, &c_steady, &steady).await;
    assert_completes(&rig, &c_twice, &twice).await;
    let rec = rig.server.store.get_call(&c_twice.call_sid).unwrap().unwrap();
    assert_eq!(rec.skipped_inputs, 1, "the second start is skipped");
    // An abrupt disconnect or an oversized frame breaks the stream: Twilio runs the fallback
    // verbs; the record ends as a fallback with what was said so far.
    for c in [&c_gone, &c_big] {
        let rec = wait_record_ended(&rig.server, &c.call_sid).await;
        assert_eq!(rec.status, watchfloor_bridge::CallStatus::Fallback, "{}", c.call_sid);
        assert_eq!(rec.end_reason.as_deref(), Some("stream_closed"));
        assert_eq!(rig.server.store.rebuild(&c.call_sid).unwrap().unwrap(), rec);
    }
    assert!(c_big.report.closed_by_server);
    // `stop` without `start`: the call (started at the webhook) ends at once as a fallback.
    assert!(c_stop.report.closed_by_server);
    let rec = wait_record_ended(&rig.server, &c_stop.call_sid).await;
    assert_eq!((rec.status.as_str(), rec.end_reason.as_deref()), ("fallback", Some("stream_stopped_before_start")));
    let health: serde_json::Value = reqwest::get(format!("{}/health", rig.server.base_url())).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_flood_is_dropped_and_the_call_goes_on() {
    let sc = scenario("cardiac-arrest").with_caller_number("+15550700020");
    // The default limits, scaled to the callers' 4× speed: 6× real time after a 10 s burst.
    let (rig, rest) = chaos_rig(vec![sc.clone()], Faults::default(), |_| {}).await;
    // 60 s of audio (3 000 frames of 20 ms) sent at once, far more than real time; and 500
    // marks that were never sent, 200 unknown events.
    let payload = mulaw::encode_base64(&[mulaw::SILENCE; mulaw::FRAME_BYTES]);
    let mut flood: Vec<String> = (0..3000).map(|_| format!(r#"{{"event":"media","streamSid":"MZ1","sequenceNumber":"2","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{payload}"}}}}"#)).collect();
    flood.extend((0..500).map(|i| format!(r#"{{"event":"mark","streamSid":"MZ1","sequenceNumber":"3","mark":{{"name":"forged:{i}"}}}}"#)));
    flood.extend((0..200).map(|_| r#"{"event":"surprise","streamSid":"MZ1"}"#.to_string()));
    let c = call(&rig, &rest, &sc, CallerOptions { inject_after_start: flood, ..Default::default() }).await;
    assert_completes(&rig, &c, &sc).await;
    let events = rig.server.store.events(&c.call_sid).unwrap();
    let floods: Vec<&String> = events.iter().filter_map(|e| match &e.kind { CallEventKind::InputSkipped { reason, .. } if reason.contains("over the limit") => Some(reason), _ => None }).collect();
    assert!(!floods.is_empty(), "the flood is on the timeline");
    eprintln!("flood: {floods:?}");
    // Most of the 60 s of audio and of the forged marks were dropped, not relayed.
    let dropped = |what: &str| -> u64 {
        floods.iter().map(|r| r.split(what).next().and_then(|h| h.split_whitespace().last()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)).sum()
    };
    assert!(dropped(" media messages") >= 1500, "{floods:?}");
    assert!(dropped(" other messages dropped") >= 500, "{floods:?}");
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_session_is_renewed_seamlessly_before_its_limit() {
    let sc = scenario("structure-fire").with_caller_number("+15550700021");
    // A "60-minute" limit of 8 s, renewed after 3 s at a quiet moment.
    let timers = Timers { renew_after: Duration::from_secs(3), session_limit: Duration::from_secs(68), ..Timers::default() };
    let (rig, rest) = chaos_rig(vec![sc.clone()], Faults::default(), move |c| c.timers = timers).await;
    let c = call(&rig, &rest, &sc, CallerOptions { speed: 1.0, ..Default::default() }).await;
    assert_completes(&rig, &c, &sc).await;
    let events = rig.server.store.events(&c.call_sid).unwrap();
    let renewals = events.iter().filter(|e| matches!(e.kind, CallEventKind::ModelReconnected { renewed: true, .. })).count();
    assert!(renewals >= 1, "renewed at least once");
    assert!(!events.iter().any(|e| matches!(e.kind, CallEventKind::Fallback { .. })));
    let rec = rig.server.store.get_call(&c.call_sid).unwrap().unwrap();
    assert_eq!(rec.transcript.len(), 1 + 2 * sc.turns.len(), "nothing lost across sessions: {:#?}", rec.transcript);
    assert!(rig.model.sessions().iter().filter(|s| s.caller_number.as_deref() == Some(sc.caller_number.as_str())).count() >= 2);
    rig.server.shutdown().await;
}
