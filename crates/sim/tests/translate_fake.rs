//! The Chat Completions fake answers like the real API: its error shapes for a missing key, an
//! unknown argument and a bad role; the scenario's translation for a scenario line; anything
//! else unchanged; and injected 500s.

use std::time::Duration;

use serde_json::{Value, json};
use watchfloor_sim::Scenario;
use watchfloor_sim::translate::{TranslateFake, TranslateFakeOptions};

async fn post(url: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-4.1-mini", "messages": [{"role": "developer", "content": "Translate into English (en)."}, {"role": "user", "content": text}]})
}

#[tokio::test]
async fn the_fake_checks_requests_and_translates_scenario_lines() {
    let es = Scenario::load(&watchfloor_sim::scenario::default_dir(), "spanish-caller").unwrap();
    let fake = TranslateFake::start("127.0.0.1:0".parse().unwrap(), std::slice::from_ref(&es), TranslateFakeOptions { latency: Duration::ZERO, fail_first: 1, ..Default::default() }).await.unwrap();
    let url = fake.url();

    let (status, body) = post(&url, None, ask("Hola")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let mut extra = ask("Hola");
    extra["temperature_curve"] = json!(1);
    let (status, body) = post(&url, Some("k"), extra).await;
    assert_eq!((status, body["error"]["code"].as_str(), body["error"]["param"].as_str()), (400, Some("unknown_parameter"), Some("temperature_curve")));
    let (status, body) = post(&url, Some("k"), json!({"model": "m", "messages": [{"role": "caller", "content": "x"}]})).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("messages[0].role")));

    // The first well-formed request meets the injected server error; the next is answered.
    let line = &es.turns[0].caller;
    let (status, body) = post(&url, Some("k"), ask(&line.text)).await;
    assert_eq!((status, body["error"]["type"].as_str()), (500, Some("server_error")));
    let (status, body) = post(&url, Some("k"), ask(&line.text)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"].as_str(), line.translation.as_deref());
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let (_, body) = post(&url, Some("k"), ask("Una frase que no está en ningún escenario.")).await;
    assert_eq!(body["choices"][0]["message"]["content"], "Una frase que no está en ningún escenario.", "unknown text comes back unchanged");
    assert_eq!(fake.requests().len(), 6);
}
