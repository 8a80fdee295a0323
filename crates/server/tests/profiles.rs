//! Agent profiles per line (issue 21): a call to the non-emergency number runs that profile (its
//! instructions, voice, turn detection, noise reduction, speed and stored prompt in the
//! `session.update` the model fake checks against the GA shape), a call to 911 the default;
//! each record names the profile and version it ran with; bad values are refused with the field
//! named. A silent caller: the profile's idle timeout has the model prompt them (a "caller
//! silent" alert and a timeline entry), and the keys they press reach the agent. A profile's
//! tool: called at its endpoint (signed), its answer reaches the model; an endpoint that hangs
//! is cut off at its timeout and the model is told.

mod common;

use std::time::Duration;

use common::{client, rig, scenario, wait_record_ended};
use serde_json::{Value, json};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::premise::{PremiseFake, PremiseOptions};
use watchfloor_sim::simulate::{SimulateOptions, place_call};
use watchfloor_wire::realtime::{Eagerness, NoiseReductionType, TurnDetection};

const NON_EMERGENCY: &str = "+15550000311";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_line_runs_its_profile_and_the_record_names_it() {
    let speed = 8.0;
    let emergency = scenario("structure-fire");
    let city = emergency.with_caller_number("+15550100311");
    let rig = rig(vec![emergency.clone(), city.clone()], speed, |_| {}).await;
    let base = rig.server.base_url();
    let url = format!("{base}/api/settings");
    let s: Value = client().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["profiles"].as_array().unwrap().len(), 1, "one profile to begin with: {s}");

    let mut main = s["profiles"][0].clone();
    main["idle_timeout_ms"] = json!(8000);
    let mut city_line = main.clone();
    city_line["name"] = json!("non-emergency");
    city_line["lines"] = json!([NON_EMERGENCY]);
    city_line["instructions"] = json!("You answer the city's non-emergency line. Take reports of noise, parking and lost property.");
    city_line["voice"] = json!("sage");
    city_line["turn_detection"] = json!("semantic_vad");
    city_line["eagerness"] = json!("low");
    city_line["idle_timeout_ms"] = Value::Null;
    city_line["noise_reduction"] = json!("far_field");
    city_line["speed"] = json!(1.2);
    city_line["prompt"] = json!({"id": "pmpt_city311", "version": "3", "variables": {"city": "Springfield"}});
    let mut new = s.clone();
    new["profiles"] = json!([main, city_line]);

    // Bad values are refused, each with its field named.
    for (field, value, why) in [
        ("speed", json!(3.0), "profiles.non-emergency.speed must be 0.25–1.5"),
        ("idle_timeout_ms", json!(8000), "profiles.non-emergency.idle_timeout_ms is for server VAD only"),
        ("eagerness", json!("sometimes"), "profiles[1].eagerness: unknown variant `sometimes`"),
        ("lines", json!(["311"]), "profiles.non-emergency.lines: \"311\" is not an E.164 number"),
        ("model", json!("gpt-4o"), "profiles.non-emergency.model must be a Realtime model name"),
    ] {
        let mut bad = new.clone();
        bad["profiles"][1][field] = value;
        let r = client().put(&url).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{field}");
        let error = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
        assert!(error.contains(why), "{field}: {error}");
    }
    let mut bad = new.clone();
    bad["profiles"][0]["lines"] = json!([NON_EMERGENCY]);
    let error = client().put(&url).json(&bad).send().await.unwrap().json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string();
    assert!(error.contains("is already the line of"), "one number, one profile: {error}");

    let r = client().put(&url).json(&new).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let saved: Value = r.json().await.unwrap();
    assert_eq!((saved["profiles"][0]["version"].as_u64(), saved["profiles"][1]["version"].as_u64()), (Some(2), Some(1)), "the changed default is v2, the new profile v1");

    let opts = |to: Option<&str>| SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, to: to.map(str::to_string), ..Default::default() };
    let a = place_call(&base, &city, &opts(Some(NON_EMERGENCY))).await.unwrap();
    let b = place_call(&base, &emergency, &opts(None)).await.unwrap();

    let session = rig.model.closed_session_of(&city.caller_number, Duration::from_secs(10)).await.unwrap().session.unwrap();
    assert!(session.instructions.as_deref().unwrap().starts_with("You answer the city's non-emergency line."), "{:?}", session.instructions);
    let input = session.audio.as_ref().unwrap().input.as_ref().unwrap();
    assert!(matches!(input.turn_detection, Some(TurnDetection::SemanticVad { eagerness: Eagerness::Low, .. })), "{:?}", input.turn_detection);
    assert_eq!(input.noise_reduction.as_ref().unwrap().as_ref().unwrap().kind, NoiseReductionType::FarField);
    let output = session.audio.as_ref().unwrap().output.as_ref().unwrap();
    assert_eq!((output.voice.as_deref(), output.speed), (Some("sage"), Some(1.2)));
    let prompt = session.prompt.as_ref().expect("the stored prompt");
    assert_eq!((prompt.id.as_str(), prompt.version.as_deref()), ("pmpt_city311", Some("3")));
    assert_eq!(prompt.variables.as_ref().unwrap()["city"], "Springfield");

    let session = rig.model.closed_session_of(&emergency.caller_number, Duration::from_secs(10)).await.unwrap().session.unwrap();
    let input = session.audio.as_ref().unwrap().input.as_ref().unwrap();
    assert!(matches!(input.turn_detection, Some(TurnDetection::ServerVad { idle_timeout_ms: Some(Some(8000)), .. })), "{:?}", input.turn_detection);
    assert_eq!(session.audio.as_ref().unwrap().output.as_ref().unwrap().voice.as_deref(), Some("marin"));
    assert!(session.prompt.is_none());

    let rec_a = wait_record_ended(&rig.server, &a.call_sid).await;
    let rec_b = wait_record_ended(&rig.server, &b.call_sid).await;
    let p = rec_a.agent_profile.expect("the record names its profile");
    assert_eq!((p.name.as_str(), p.version, p.turn_detection, p.prompt.as_deref()), ("non-emergency", 1, watchfloor_bridge::TurnDetectionKind::SemanticVad, Some("pmpt_city311@3")));
    let p = rec_b.agent_profile.expect("the record names its profile");
    assert_eq!((p.name.as_str(), p.version, p.model.as_str()), (s["default_profile"].as_str().unwrap(), 2, "gpt-realtime"));
    // The API's record carries it too.
    let api: Value = client().get(format!("{base}/api/calls/{}", a.call_sid)).send().await.unwrap().json().await.unwrap();
    assert_eq!(api["agent_profile"]["name"], "non-emergency");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_caller_is_prompted_and_answers_on_the_keypad() {
    let speed = 8.0;
    let sc = scenario("silent-caller");
    let rig = rig(vec![sc.clone()], speed, |c| c.agent.idle_timeout_ms = Some(5000)).await;
    let base = rig.server.base_url();
    let call = place_call(&base, &sc, &SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() }).await.unwrap();
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    let log = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(10)).await.unwrap();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    assert_eq!(log.idle_timeouts.len(), 1, "the silence before the first answer: {:?}", log.idle_timeouts);
    let (from, to) = log.idle_timeouts[0];
    assert!(to - from >= 5000, "{from}–{to}");
    let pressed: Vec<&String> = log.system_messages.iter().filter(|m| m.contains("The caller pressed 1 on the phone keypad.")).collect();
    assert_eq!(pressed.len(), 2, "each key reached the agent: {:?}", log.system_messages);

    let events = rig.server.store.events(&call.call_sid).unwrap();
    let kinds: Vec<&watchfloor_bridge::CallEventKind> = events.iter().map(|e| &e.kind).collect();
    let digits: Vec<&str> = kinds.iter().filter_map(|k| if let watchfloor_bridge::CallEventKind::Dtmf { digit } = k { Some(digit.as_str()) } else { None }).collect();
    assert_eq!(digits, ["1", "1"], "the keys on the timeline");
    assert!(kinds.iter().any(|k| matches!(k, watchfloor_bridge::CallEventKind::CallerSilent { audio_start_ms, audio_end_ms } if audio_end_ms - audio_start_ms >= 5000)), "caller silent on the timeline");
    assert!(rec.alerts.iter().any(|a| a == "silent_caller"), "the caller-silent alert: {:?}", rec.alerts);
    // The agent went on: the greeting, the prompt after the silence, and an answer to each key.
    let agent: Vec<&str> = rec.transcript.iter().filter(|l| l.speaker == "agent").map(|l| l.text.as_str()).collect();
    assert_eq!(agent.len(), 4, "{agent:?}");
    assert!(agent[1].contains("press 1 for yes"), "{agent:?}");
}

/// The structure-fire scenario with the model calling `premise_history` before its first answer.
fn fire_with_premise_lookup() -> watchfloor_sim::Scenario {
    let mut sc = scenario("structure-fire");
    sc.turns[0].function_call = Some(watchfloor_sim::scenario::FunctionCall { name: "premise_history".into(), arguments: json!({"address": "4521 Willow Creek Drive"}).to_string() });
    sc
}

fn premise_tool(url: String, timeout_ms: u32) -> watchfloor_bridge::tools::ToolConfig {
    watchfloor_bridge::tools::ToolConfig {
        name: "premise_history".into(),
        description: "Prior incidents and hazards on record at an address".into(),
        parameters: watchfloor_sim::premise::tool_parameters(),
        url,
        timeout_ms,
        retries: 1,
        max_response_bytes: 16384,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiles_tool_is_called_signed_and_its_answer_reaches_the_model() {
    let speed = 8.0;
    let secret = "tool-secret-for-tests-only";
    let premise = PremiseFake::start("127.0.0.1:0".parse().unwrap(), PremiseOptions { secret: Some(secret.into()), hang: false }).await.unwrap();
    let sc = fire_with_premise_lookup();
    let url = premise.url();
    let rig = rig(vec![sc.clone()], speed, |c| {
        c.tool_secret = Some(watchfloor_bridge::model::Secret::new(secret));
        c.agent.tools = vec![premise_tool(url, 2000)];
    })
    .await;
    let call = place_call(&rig.server.base_url(), &sc, &SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() }).await.unwrap();
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    let log = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(10)).await.unwrap();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    let declared: Vec<String> = log.session.as_ref().unwrap().tools.as_ref().unwrap().iter().map(|t| t.name.clone()).collect();
    assert_eq!(declared, ["report_incident", "premise_history"]);

    let requests = premise.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].signed, "signed with the shared secret");
    assert_eq!((requests[0].body["tool"].as_str(), requests[0].body["call_sid"].as_str()), (Some("premise_history"), Some(call.call_sid.as_str())));
    assert_eq!(requests[0].body["arguments"]["address"], "4521 Willow Creek Drive");
    let (call_id, _, _) = log.function_calls.iter().find(|(_, n, _)| n == "premise_history").expect("the model called the tool").clone();
    let output = &log.function_outputs.iter().find(|(c, _)| *c == call_id).expect("its output reached the model").1;
    assert!(output.contains("oxygen tanks in the garage"), "{output}");

    let events = rig.server.store.events(&call.call_sid).unwrap();
    let answered = events.iter().find_map(|e| if let watchfloor_bridge::CallEventKind::ToolAnswered { name, ok, attempts, output, .. } = &e.kind { Some((name.clone(), *ok, *attempts, output.clone())) } else { None });
    let (name, ok, attempts, shown) = answered.expect("the answer is on the timeline");
    assert_eq!((name.as_str(), ok, attempts), ("premise_history", true, 1));
    assert!(shown.contains("prior_incidents"));
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Completed, "the call went on");
    let agent_lines = rec.transcript.iter().filter(|l| l.speaker == "agent").count();
    assert_eq!(agent_lines, sc.turns.len() + 1, "every answer was spoken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_endpoint_that_hangs_is_cut_off_and_the_model_is_told() {
    let speed = 8.0;
    let premise = PremiseFake::start("127.0.0.1:0".parse().unwrap(), PremiseOptions { secret: None, hang: true }).await.unwrap();
    let sc = fire_with_premise_lookup();
    let url = premise.url();
    let rig = rig(vec![sc.clone()], speed, |c| c.agent.tools = vec![premise_tool(url, 300)]).await;
    let call = place_call(&rig.server.base_url(), &sc, &SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() }).await.unwrap();
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    let log = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(10)).await.unwrap();
    assert_eq!(premise.requests().len(), 2, "one try and one retry");
    let (call_id, _, _) = log.function_calls.iter().find(|(_, n, _)| n == "premise_history").unwrap().clone();
    let output: Value = serde_json::from_str(&log.function_outputs.iter().find(|(c, _)| *c == call_id).expect("the model is told").1).unwrap();
    assert_eq!(output["status"], "error");
    assert_eq!(output["error"], "the premise_history tool failed: no answer within 300 ms (2 tries)");
    let events = rig.server.store.events(&call.call_sid).unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind, watchfloor_bridge::CallEventKind::ToolAnswered { ok: false, attempts: 2, .. })));
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Completed, "the call went on");
}
