//! Every caller's language (issue 21): a profile with English, Spanish and Japanese leaves the
//! transcription language to the model and tells the agent to answer in the caller's language
//! (`session.update`, checked by the model fake); the Spanish and Japanese scenario calls keep
//! each line as spoken with the language it was spoken in; every line not in the centre's
//! language gets a machine translation (through the Chat Completions fake) on the timeline and
//! in the record beside the original; a Japanese word and a Spanish word each find their call;
//! bad language settings are refused with the field named; a translation service that keeps
//! failing leaves the lines as spoken with the failure on the timeline.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{client, next_event, rig, scenario, wait_record_ended};
use serde_json::{Value, json};
use watchfloor_bridge::CallEventKind;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};
use watchfloor_sim::translate::{TranslateFake, TranslateFakeOptions};

/// Saves the default profile with `languages` (and the centre's language and translation model
/// as they are); returns the PUT's status and body.
async fn set_languages(base: &str, languages: Value, centre: Value) -> (u16, Value) {
    let url = format!("{base}/api/settings");
    let mut s: Value = client().get(&url).send().await.unwrap().json().await.unwrap();
    s["profiles"][0]["languages"] = languages;
    s["language"] = centre;
    let r = client().put(&url).json(&s).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spanish_and_japanese_callers_are_answered_in_their_language_and_translated_for_the_supervisor() {
    let speed = 8.0;
    let (es, ja) = (scenario("spanish-caller"), scenario("japanese-caller"));
    let translate = TranslateFake::start("127.0.0.1:0".parse().unwrap(), &[es.clone(), ja.clone()], TranslateFakeOptions::default()).await.unwrap();
    let url = translate.url();
    let rig = rig(vec![es.clone(), ja.clone()], speed, |c| c.openai_translate_url = url).await;
    let base = rig.server.base_url();

    // Bad values are refused with the field named.
    let (status, body) = set_languages(&base, json!(["en", "xx"]), json!("en")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("profiles.default.languages \"xx\" is not an ISO 639-1 code"), "{body}");
    let (status, body) = set_languages(&base, json!(["en", "es", "es"]), json!("en")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("profiles.default.languages lists es twice"), "{body}");
    let (status, body) = set_languages(&base, json!(["en"]), json!("english")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("language must be an ISO 639-1 code"), "{body}");
    let (status, body) = set_languages(&base, json!(["en", "es", "ja"]), json!("en")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profiles"][0]["languages"], json!(["en", "es", "ja"]));
    assert_eq!(body["translation_model"], "gpt-4.1-mini");

    let mut feed = rig.server.calls.hub().subscribe();
    let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };
    let (a, b) = tokio::join!(place_call(&base, &es, &opts), place_call(&base, &ja, &opts));
    let (a, b) = (a.unwrap(), b.unwrap());

    // The session: transcription language automatic, the agent told to answer in the caller's.
    for sc in [&es, &ja] {
        let log = rig.model.closed_session_of(&sc.caller_number, Duration::from_secs(20)).await.unwrap();
        assert!(log.errors.is_empty(), "{:?}", log.errors);
        let session = log.session.unwrap();
        let t = session.audio.as_ref().unwrap().input.as_ref().unwrap().transcription.as_ref().unwrap();
        assert_eq!((t.model.as_str(), t.language.as_deref()), ("gpt-4o-transcribe", None), "automatic with several languages");
        let instructions = session.instructions.unwrap();
        assert!(instructions.contains("may speak English, Spanish or Japanese. Greet in English."), "{instructions}");
    }

    // Every line not in English is translated: both callers' lines and the agent's answers in
    // their language (3 turns each); the greetings are English.
    let foreign = |sc: &watchfloor_sim::Scenario| sc.turns.len() * 2;
    let want = foreign(&es) + foreign(&ja);
    let mut got: HashMap<String, HashMap<String, watchfloor_bridge::event::LineTranslation>> = HashMap::new();
    for _ in 0..want {
        let ev = next_event(&mut feed, Duration::from_secs(30), |e| matches!(e.kind, CallEventKind::TranscriptTranslated { .. })).await;
        if let CallEventKind::TranscriptTranslated { item_id, translation } = &ev.kind {
            got.entry(ev.call_sid.to_string()).or_default().insert(item_id.clone(), translation.clone());
        }
    }

    for (call, sc, lang) in [(&a, &es, "es"), (&b, &ja, "ja")] {
        let rec = wait_record_ended(&rig.server, &call.call_sid).await;
        // Appended after the end: the record may trail the feed by the writer's flush.
        let rec = {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut rec = rec;
            while rec.transcript.iter().filter(|l| l.translation.is_some()).count() < foreign(sc) {
                assert!(tokio::time::Instant::now() < deadline, "translations missing from the record: {:?}", rec.transcript);
                tokio::time::sleep(Duration::from_millis(20)).await;
                rec = rig.server.store.get_call(&call.call_sid).unwrap().unwrap();
            }
            rec
        };
        assert_eq!(rec.agent_profile.as_ref().unwrap().languages, vec!["en", "es", "ja"]);
        let greeting = &rec.transcript[0];
        assert_eq!((greeting.speaker.as_str(), greeting.language.as_deref()), ("agent", Some("en")));
        assert!(greeting.translation.is_none(), "English needs no translation");
        let caller: Vec<&watchfloor_store::TranscriptLine> = rec.transcript.iter().filter(|l| l.speaker == "caller").collect();
        assert_eq!(caller.len(), sc.turns.len());
        for (line, turn) in caller.iter().zip(&sc.turns) {
            assert_eq!(line.text, turn.caller.text, "the original is what the record keeps");
            assert_eq!(line.language.as_deref(), Some(lang), "{}", line.text);
            let t = line.translation.as_ref().expect("a translation beside the line");
            assert_eq!((t.from.as_str(), t.to.as_str(), t.model.as_str()), (lang, "en", "gpt-4.1-mini"));
            assert_eq!(Some(t.text.as_str()), turn.caller.translation.as_deref());
            assert_eq!(got[&call.call_sid].get(&line.item_id), Some(t), "the feed carried the same translation");
        }
        let agent: Vec<&watchfloor_store::TranscriptLine> = rec.transcript.iter().filter(|l| l.speaker == "agent").skip(1).collect();
        assert!(agent.iter().all(|l| l.language.as_deref() == Some(lang) && l.translation.is_some()), "the agent answered in {lang}: {agent:?}");
    }
    assert_eq!(translate.requests().len(), want, "one request per line not in English");

    // Words find their call: Japanese (no spaces: character bigrams) and Spanish (accents folded).
    let search = |q: &str| {
        let url = format!("{base}/api/calls?q={}", urlencoding(q));
        async move {
            let v: Value = client().get(url).send().await.unwrap().json().await.unwrap();
            v["calls"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(search("意識").await, vec![b.call_sid.clone()], "a Japanese word");
    assert_eq!(search("ハーバービューホテル").await, vec![b.call_sid.clone()]);
    assert_eq!(search("abuela").await, vec![a.call_sid.clone()], "a Spanish word");
    assert_eq!(search("Dormitorio").await, vec![a.call_sid.clone()], "case folded");
    assert!(search("grandmother").await.is_empty(), "the index holds what was said, not its translation");
}

/// Percent-encodes a query value (UTF-8 bytes outside the unreserved set).
fn urlencoding(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_translation_service_leaves_the_lines_as_spoken() {
    let speed = 8.0;
    let es = scenario("spanish-caller");
    let translate = TranslateFake::start("127.0.0.1:0".parse().unwrap(), std::slice::from_ref(&es), TranslateFakeOptions { always_fail: true, latency: Duration::from_millis(50), ..Default::default() }).await.unwrap();
    let url = translate.url();
    let rig = rig(vec![es.clone()], speed, |c| {
        c.openai_translate_url = url;
        c.agent.languages = vec!["en".into(), "es".into()];
    })
    .await;
    let base = rig.server.base_url();
    let mut feed = rig.server.calls.hub().subscribe();
    let call = place_call(&base, &es, &SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() }).await.unwrap();
    let ev = next_event(&mut feed, Duration::from_secs(30), |e| matches!(&e.kind, CallEventKind::ModelError { error_type, .. } if error_type == "translation")).await;
    let CallEventKind::ModelError { code, message, .. } = &ev.kind else { unreachable!() };
    assert_eq!(code.as_deref(), Some("translation_failed"));
    assert!(message.contains("HTTP 500") && message.contains("(es) has no en translation"), "{message}");
    let rec = wait_record_ended(&rig.server, &call.call_sid).await;
    assert_eq!(rec.status, watchfloor_bridge::CallStatus::Completed, "the call went on");
    let caller: Vec<&str> = rec.transcript.iter().filter(|l| l.speaker == "caller").map(|l| l.text.as_str()).collect();
    assert_eq!(caller, es.turns.iter().map(|t| t.caller.text.as_str()).collect::<Vec<_>>());
    assert!(rec.transcript.iter().all(|l| l.translation.is_none()));
    // Each line was tried three times (two retries on 500) before giving up.
    let first = translate.requests().iter().filter(|r| r.body["messages"][1]["content"] == es.turns[0].caller.text).count();
    assert_eq!(first, 3, "one try and two retries");
}
