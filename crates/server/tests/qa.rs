//! Issue 19, first step: a call's automatic scorecard over the API, from the stored events of a
//! real simulated call through the bridge: the call that never reads the address back scores
//! Low with the read-back missed; the structure fire has it met, with the agent's line as
//! evidence; the review queue holds the Low call and one sampled call for the day.

mod common;

use common::{client, rig, scenario, wait_record_ended};
use serde_json::Value;
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::simulate::{SimulateOptions, place_call};
use watchfloor_server::auth::Role;

/// The console token's roles in these tests: one desk that supervises, reviews and administers.
const ALL_ROLES: [Role; 3] = [Role::Supervisor, Role::Reviewer, Role::Admin];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_call_is_scored_from_its_record() {
    let poor = scenario("no-read-back");
    let fire = scenario("structure-fire");
    let speed = 2.0;
    let rig = rig(vec![poor.clone(), fire.clone()], speed, |c| {
        c.dispatch_policy = watchfloor_dispatch::policy::Policy::Automatic;
        c.units = vec![watchfloor_server::config::UnitConfig { id: "Engine 7".into(), unit_type: watchfloor_dispatch::types::UnitType::Engine }];
        // The one desk of a small centre, which also reviews calls.
        c.console_roles = ALL_ROLES.to_vec();
    })
    .await;
    let base = rig.server.base_url();
    let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };
    let (a, b) = tokio::join!(place_call(&base, &poor, &opts), place_call(&base, &fire, &opts));
    let (a, b) = (a.unwrap(), b.unwrap());
    let item = |card: &Value, id: &str| card["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();

    wait_record_ended(&rig.server, &a.call_sid).await;
    let card: Value = client().get(format!("{base}/api/calls/{}/qa", a.call_sid)).send().await.unwrap().json().await.unwrap();
    assert_eq!(card["level"], "low", "{card:#}");
    assert_eq!(card["card"]["id"], "watchfloor-default");
    assert_eq!(item(&card, "location_verified")["result"], "missed");
    assert_eq!(item(&card, "fire_anyone_inside")["evidence"][0]["line"], "Dispatcher: Is anyone inside the house?");
    assert!(card["times"]["answer_to_dispatch_ms"].as_u64().is_some(), "{card:#}");

    wait_record_ended(&rig.server, &b.call_sid).await;
    let card: Value = client().get(format!("{base}/api/calls/{}/qa", b.call_sid)).send().await.unwrap().json().await.unwrap();
    let read_back = item(&card, "location_verified");
    assert_eq!(read_back["result"], "met", "{card:#}");
    assert!(read_back["evidence"][0]["line"].as_str().unwrap().contains("123 Main Street"));
    assert_eq!(client().get(format!("{base}/api/calls/CAnope/qa")).send().await.unwrap().status(), 404);

    // The review queue: the low-scoring call for its score; the day has a sampled call (with
    // two calls and a 2 % rate, the draw alone rarely picks one: the day's one is the lowest).
    let q: Value = client().get(format!("{base}/api/qa/queue")).send().await.unwrap().json().await.unwrap();
    assert_eq!(q["calls"], 2, "{q:#}");
    assert_eq!(q["rate"], 0.02);
    let entries = q["entries"].as_array().unwrap();
    let low = entries.iter().find(|e| e["call_sid"] == a.call_sid.as_str()).expect("the low call is queued");
    assert!(low["reasons"].as_array().unwrap().contains(&Value::from("low_score")), "{low}");
    assert_eq!(low["level"], "low");
    // At least one sampled (two when the calls straddle midnight UTC or both are drawn).
    let sampled = entries.iter().filter(|e| e["reasons"].as_array().unwrap().contains(&Value::from("sample"))).count();
    assert!((1..=2).contains(&sampled), "{q:#}");
    assert_eq!(client().get(format!("{base}/api/qa/queue?from=5&to=4")).send().await.unwrap().status(), 400);

    // The statistics equal a direct computation over the two records and their scorecards.
    let f: Value = client().get(format!("{base}/api/stats")).send().await.unwrap().json().await.unwrap();
    let recs = [rig.server.store.get_call(&a.call_sid).unwrap().unwrap(), rig.server.store.get_call(&b.call_sid).unwrap().unwrap()];
    assert_eq!(f["calls"], 2, "{f:#}");
    let hours: u64 = f["calls_per_hour"].as_array().unwrap().iter().map(|h| h[1].as_u64().unwrap()).sum();
    assert_eq!(hours, 2);
    assert_eq!(f["handled_by_ai"], 2);
    assert_eq!((f["taken_over"].as_u64(), f["handed_off"].as_u64()), (Some(0), Some(0)));
    // Both structure fires: one Partial (no callback number), one Low.
    assert_eq!(f["compliance_by_type"]["FSTRU"], serde_json::json!({"high": 0, "partial": 1, "low": 1, "non_compliant": 0}), "{f:#}");
    let dispatched: Vec<u64> = recs.iter().map(|r| {
        let events = rig.server.store.events(&r.call_sid).unwrap();
        let answered = events.iter().find(|e| matches!(e.kind, watchfloor_bridge::CallEventKind::StreamStarted { .. })).unwrap().at_ms;
        let at = events.iter().find(|e| matches!(e.kind, watchfloor_bridge::CallEventKind::Dispatched { .. })).unwrap().at_ms;
        at - answered
    }).collect();
    let d = &f["answer_to_dispatch_ms"];
    assert_eq!(d["count"], 2);
    assert_eq!(d["p50"].as_u64(), dispatched.iter().min().copied(), "nearest rank of two values: the lower");
    assert_eq!(d["p90"].as_u64(), dispatched.iter().max().copied());
    assert_eq!(f["review"]["queued"], q["entries"].as_array().unwrap().len());
    let audit: Value = client().get(format!("{base}/api/audit?action=call.qa")).send().await.unwrap().json().await.unwrap();
    assert!(audit["entries"].as_array().unwrap().len() >= 2);

    // An administrator tightens the bands: version 2. Every call is scored again with it (the
    // Partial call is now Low); the version-1 scores are kept and still served.
    let cards: Value = client().get(format!("{base}/api/qa/cards")).send().await.unwrap().json().await.unwrap();
    assert_eq!(cards["current"]["version"], 1, "{cards:#}");
    let text = cards["current"]["toml"].as_str().unwrap().replace("high = 0.9", "high = 1.0").replace("partial = 0.75", "partial = 0.99");
    let put = |toml: String| client().put(format!("{base}/api/qa/cards")).json(&serde_json::json!({"toml": toml})).send();
    let bad = put(text.replace("low = 0.5", "low = 2.5")).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("levels"));
    let saved = put(text.clone()).await.unwrap();
    assert_eq!(saved.status(), 200);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!(saved["version"], 2);
    assert!(saved["toml"].as_str().unwrap().contains("version = 2"));
    let stale = put(text).await.unwrap();
    assert_eq!(stale.status(), 409, "an edit of version 1 after version 2 was saved");
    let f: Value = client().get(format!("{base}/api/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(f["compliance_by_type"]["FSTRU"], serde_json::json!({"high": 0, "partial": 0, "low": 2, "non_compliant": 0}), "{f:#}");
    let now: Value = client().get(format!("{base}/api/calls/{}/qa", b.call_sid)).send().await.unwrap().json().await.unwrap();
    let old: Value = client().get(format!("{base}/api/calls/{}/qa?version=1", b.call_sid)).send().await.unwrap().json().await.unwrap();
    assert_eq!((now["card"]["version"].as_u64(), now["level"].as_str()), (Some(2), Some("low")));
    assert_eq!((old["card"]["version"].as_u64(), old["level"].as_str()), (Some(1), Some("partial")));
    assert_eq!(client().get(format!("{base}/api/calls/{}/qa?version=7", b.call_sid)).send().await.unwrap().status(), 404);
    let cards: Value = client().get(format!("{base}/api/qa/cards")).send().await.unwrap().json().await.unwrap();
    let versions: Vec<u64> = cards["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(cards["versions"][1]["saved_by"], "supervisor");
    let v1: Value = client().get(format!("{base}/api/qa/cards/1")).send().await.unwrap().json().await.unwrap();
    assert!(v1["toml"].as_str().unwrap().contains("high = 0.9"));
    let audit: Value = client().get(format!("{base}/api/audit?action=qa.cards")).send().await.unwrap().json().await.unwrap();
    let outcomes: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert!(outcomes.len() >= 3, "{audit:#}");
    rig.server.shutdown().await;

    // After a restart the saved version is the one in use.
    let (store, _) = watchfloor_store::Store::open(&rig._dir.path().join("data")).unwrap();
    let scorer = watchfloor_server::scoring::Scorer::load(&store).unwrap();
    assert_eq!(scorer.cards().version, 2);
}

/// Two reviewers review a real simulated call: a draft, a correction that needs its comment, a
/// note on the recording, a signature that is final; the second scores blind, a third who read
/// the results may not; the calibration
/// report and the review coverage count both; every step audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_review_a_call_and_calibration_compares_them() {
    use watchfloor_server::auth::{UserConfig, hash_password};
    let poor = scenario("no-read-back");
    let speed = 2.0;
    let rig = rig(vec![poor.clone()], speed, |c| {
        c.console_roles = ALL_ROLES.to_vec();
        c.users = ["rita", "sam", "tess"].iter().map(|n| UserConfig { name: n.to_string(), password_hash: Some(hash_password("review pass 1")), line: None, roles: vec![watchfloor_server::auth::Role::Reviewer], disabled: false }).collect();
    })
    .await;
    let base = rig.server.base_url();
    let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, ..Default::default() };
    let sid = place_call(&base, &poor, &opts).await.unwrap().call_sid;
    wait_record_ended(&rig.server, &sid).await;
    let http = reqwest::Client::new();
    let mut token = std::collections::HashMap::new();
    for who in ["rita", "sam", "tess"] {
        let r: Value = http.post(format!("{base}/api/login")).json(&serde_json::json!({"user": who, "password": "review pass 1"})).send().await.unwrap().json().await.unwrap();
        token.insert(who, r["token"].as_str().unwrap().to_string());
    }
    let post = |who: &'static str, body: Value| {
        let (http, url, t) = (http.clone(), format!("{base}/api/calls/{sid}/reviews"), token[who].clone());
        async move {
            let r = http.post(url).bearer_auth(t).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // The automatic card has the read-back missed; rita finds it met. Without a comment: refused.
    let correction = serde_json::json!({"id": "location_verified", "result": "met"});
    let (status, body) = post("rita", serde_json::json!({"items": [correction]})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("item location_verified is corrected: a comment must say why")));
    let (status, body) = post("rita", serde_json::json!({"items": [{"id": "nope", "result": "met"}]})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("no item nope on this call's scorecard")));
    let draft = serde_json::json!({
        "items": [{"id": "location_verified", "result": "met", "comment": "the caller repeated it and the agent confirmed"}],
        "notes": [{"at_ms": 4000, "text": "address given here"}],
    });
    let (status, saved) = post("rita", draft.clone()).await;
    assert_eq!(status, 200, "{saved:#}");
    assert_eq!(saved["signed_at_ms"], Value::Null);
    let mut signed = draft.clone();
    signed["sign"] = Value::Bool(true);
    let (status, saved) = post("rita", signed.clone()).await;
    assert_eq!(status, 200, "{saved:#}");
    assert!(saved["signed_at_ms"].as_u64().is_some());
    let items = saved["items"].as_array().unwrap();
    let read_back = items.iter().find(|i| i["id"] == "location_verified").unwrap();
    assert_eq!((read_back["automatic"].as_str(), read_back["result"].as_str()), (Some("missed"), Some("met")));
    assert_eq!(post("rita", signed).await.0, 409, "a signed review is final");
    let (status, _) = post("rita", serde_json::json!({"notes": [{"at_ms": 10_000_000, "text": "past the end"}]})).await;
    assert_eq!(status, 409, "still final, whatever the draft");

    // sam scores blind: rita's results are withheld from him, her name and signature shown.
    let seen: Value = http.get(format!("{base}/api/calls/{sid}/reviews?blind=true")).bearer_auth(&token["sam"]).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen.as_array().unwrap().len(), 1);
    assert_eq!((seen[0]["reviewer"].as_str(), seen[0]["items"].as_array().unwrap().len()), (Some("rita"), 0));
    assert!(seen[0]["signed_at_ms"].as_u64().is_some());
    let (status, sams) = post("sam", serde_json::json!({"blind": true, "sign": true})).await;
    assert_eq!(status, 200, "{sams:#}");
    let all: Value = client().get(format!("{base}/api/calls/{sid}/reviews")).send().await.unwrap().json().await.unwrap();
    assert_eq!(all.as_array().unwrap().iter().map(|r| r["reviewer"].as_str().unwrap()).collect::<Vec<_>>(), vec!["rita", "sam"]);
    assert_eq!(all[0]["items"].as_array().unwrap().len(), items.len());
    // tess reads the reviews with their results, then claims a blind score: refused (the audit
    // log has her read).
    let read = http.get(format!("{base}/api/calls/{sid}/reviews")).bearer_auth(&token["tess"]).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let (status, body) = post("tess", serde_json::json!({"blind": true, "sign": true})).await;
    assert_eq!(status, 409, "{body:#}");
    assert!(body["error"].as_str().unwrap().contains("read other reviewers' results"), "{body:#}");

    // Calibration: the two disagree on the read-back only; sam agrees with the automatic card.
    let c: Value = client().get(format!("{base}/api/qa/calibration")).send().await.unwrap().json().await.unwrap();
    assert_eq!((c["reviews"].as_u64(), c["calls_with_several"].as_u64()), (Some(2), Some(1)), "{c:#}");
    let n = items.len() as u64;
    let item = |id: &str| c["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(item("location_verified"), serde_json::json!({"id": "location_verified", "reviews": 2, "with_automatic": 1, "pairs": 1, "pairs_agreeing": 0}));
    let reviewer = |name: &str| c["reviewers"].as_array().unwrap().iter().find(|r| r["reviewer"] == name).unwrap().clone();
    assert_eq!(reviewer("rita"), serde_json::json!({"reviewer": "rita", "reviews": 1, "blind": 0, "items": n, "with_automatic": n - 1, "pairs": n, "pairs_agreeing": n - 1}));
    assert_eq!(reviewer("sam")["blind"], 1);
    assert_eq!(reviewer("sam")["with_automatic"], n);

    // The low call is queued, and now reviewed.
    let f: Value = client().get(format!("{base}/api/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(f["review"]["reviewed"], 1, "{f:#}");
    // Audited: the refusals and the saves, with what was done.
    let a: Value = client().get(format!("{base}/api/audit?action=qa.review")).send().await.unwrap().json().await.unwrap();
    let outcomes: Vec<(&str, &str)> = a["entries"].as_array().unwrap().iter().map(|e| (e["user"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(outcomes.iter().filter(|(_, o)| *o == "ok").count(), 3, "{a:#}");
    assert_eq!(outcomes.len(), 8, "{a:#}");
    let details: Vec<&str> = a["entries"].as_array().unwrap().iter().filter_map(|e| e["detail"].as_str()).collect();
    assert!(details.contains(&format!("signed, blind; 0 of {n} items corrected; 0 notes").as_str()), "{details:?}");
    rig.server.shutdown().await;
}

/// Issue 19's figure check: 200 simulated calls through training mode (the real bridge, the
/// model fake at the real service's pace); `/api/stats` equals a computation made here from the
/// records' events alone, and the review queue holds every flagged call plus a random sample
/// of 2 % within three standard deviations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_training_calls_make_the_figures_a_direct_computation_gives() {
    use watchfloor_bridge::CallEventKind;
    const CALLS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = watchfloor_server::Config::defaults();
    cfg.data_dir = dir.path().join("data");
    cfg.console_token = Some(watchfloor_bridge::model::Secret::new(common::TOKEN));
    cfg.training = true;
    cfg.console_roles = ALL_ROLES.to_vec();
    cfg.max_calls = CALLS;
    cfg.dispatch_policy = watchfloor_dispatch::policy::Policy::Automatic;
    let server = watchfloor_server::serve(cfg, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    let base = server.base_url();
    let t0 = watchfloor_bridge::task::unix_ms();
    let mut sids = Vec::with_capacity(CALLS);
    // Ten calls a second (a busy centre's surge), under the webhook limit of 20 per second
    // from one address: training calls reach this server from loopback like Twilio would.
    let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
    for _ in 0..CALLS {
        every.tick().await;
        let r: Value = client().post(format!("{base}/api/training/calls")).json(&serde_json::json!({})).send().await.unwrap().json().await.unwrap();
        sids.push(r["call_sid"].as_str().unwrap().to_string());
    }
    // Every call ends on its own (the scenarios hang up); wait for their records.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
    let mut recs = Vec::with_capacity(CALLS);
    for sid in &sids {
        loop {
            if let Ok(Some(rec)) = server.store.get_call(sid)
                && rec.ended_at_ms.is_some()
                && !rec.is_live()
            {
                recs.push(rec);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "call {sid} did not end");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let t1 = watchfloor_bridge::task::unix_ms() + 1;
    let f: Value = client().get(format!("{base}/api/stats?from={t0}&to={t1}")).send().await.unwrap().json().await.unwrap();
    let q: Value = client().get(format!("{base}/api/qa/queue?from={t0}&to={t1}")).send().await.unwrap().json().await.unwrap();

    // The direct computation, from each record's events.
    let cards = watchfloor_qa::Cards::default_set();
    let mut per_hour: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut to_dispatch = Vec::new();
    let (mut taken, mut handed, mut overridden) = (0u64, 0u64, 0u64);
    let mut levels: std::collections::BTreeMap<String, u64> = Default::default();
    let mut flagged = std::collections::BTreeSet::new();
    for rec in &recs {
        let events = server.store.events(&rec.call_sid).unwrap();
        *per_hour.entry(rec.started_at_ms / 3_600_000 * 3_600_000).or_default() += 1;
        let first = |p: &dyn Fn(&CallEventKind) -> bool| events.iter().find(|e| p(&e.kind)).map(|e| e.at_ms);
        if let (Some(a), Some(d)) = (first(&|k| matches!(k, CallEventKind::StreamStarted { .. })), first(&|k| matches!(k, CallEventKind::Dispatched { .. }))) {
            to_dispatch.push(d - a);
        }
        let handed_off = events.iter().any(|e| matches!(e.kind, CallEventKind::HandedOff { .. } | CallEventKind::Fallback { .. }));
        let took = events.iter().any(|e| matches!(e.kind, CallEventKind::ModeChanged { mode: watchfloor_bridge::CallMode::Takeover, .. }));
        if handed_off {
            handed += 1;
        } else if took {
            taken += 1;
        }
        let card = watchfloor_qa::score(&cards, &events);
        let reasons = watchfloor_qa::flags(&events, &card);
        overridden += u64::from(reasons.contains(&watchfloor_qa::Reason::Override));
        if !reasons.is_empty() {
            flagged.insert(rec.call_sid.clone());
        }
        *levels.entry(serde_json::to_value(card.level).unwrap().as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(f["calls"], CALLS, "{f:#}");
    let hours: Vec<(u64, u64)> = f["calls_per_hour"].as_array().unwrap().iter().map(|h| (h[0].as_u64().unwrap(), h[1].as_u64().unwrap())).collect();
    assert_eq!(hours, per_hour.into_iter().collect::<Vec<_>>());
    to_dispatch.sort_unstable();
    let rank = |p: usize| to_dispatch[(p * to_dispatch.len()).div_ceil(100).max(1) - 1];
    let d = &f["answer_to_dispatch_ms"];
    assert_eq!((d["count"].as_u64(), d["p50"].as_u64(), d["p90"].as_u64()), (Some(to_dispatch.len() as u64), Some(rank(50)), Some(rank(90))), "{d}");
    // Not every call dispatches: repeat callers are linked to an incident that already has its
    // units (issue 18), and the roster runs out.
    assert!(to_dispatch.len() >= 10, "calls dispatched: {}", to_dispatch.len());
    assert_eq!((f["taken_over"].as_u64(), f["handed_off"].as_u64()), (Some(taken), Some(handed)));
    assert_eq!(f["handled_by_ai"].as_u64(), Some(CALLS as u64 - taken - handed));
    assert!((f["override_rate"].as_f64().unwrap() - overridden as f64 / CALLS as f64).abs() < 1e-9);
    for level in ["high", "partial", "low", "non_compliant"] {
        assert_eq!(f["compliance"][level].as_u64(), Some(levels.get(level).copied().unwrap_or(0)), "{level}: {f:#}");
    }
    // The queue: every flagged call, and a sample of 2 % ± 3σ (σ = √(n·p·(1−p)) ≈ 2 calls).
    let queued: std::collections::BTreeSet<String> = q["entries"].as_array().unwrap().iter().map(|e| e["call_sid"].as_str().unwrap().to_string()).collect();
    assert!(flagged.is_subset(&queued), "flagged calls missing from the queue: {:?}", flagged.difference(&queued).collect::<Vec<_>>());
    let sampled = q["entries"].as_array().unwrap().iter().filter(|e| e["reasons"].as_array().unwrap().contains(&Value::from("sample"))).count();
    let sigma = (CALLS as f64 * 0.02 * 0.98).sqrt();
    assert!((sampled as f64 - CALLS as f64 * 0.02).abs() <= 3.0 * sigma + 1.0, "{sampled} sampled of {CALLS} (the +1: at least one a day)");
    assert_eq!(f["review"]["queued"], queued.len());
    assert_eq!(f["review"]["sampled"], sampled);
    server.shutdown().await;
}
