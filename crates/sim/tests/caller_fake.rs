//! The Twilio caller fake, tested on its own against a scripted bridge on loopback.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use watchfloor_sim::Scenario;
use watchfloor_sim::caller::{self, CallerOptions};
use watchfloor_wire::mulaw;
use watchfloor_wire::twilio::TwilioInbound;

/// A bridge stand-in: reads `connected` and `start`, sends 200 ms of audio with a mark after it,
/// 400 ms more with a mark, then a `clear` 100 ms later; records when each mark came back.
#[tokio::test]
async fn marks_come_back_only_after_playout_and_clear_flushes_them() {
    let sc = Scenario::load(&watchfloor_sim::scenario::default_dir(), "structure-fire").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws/media", listener.local_addr().unwrap());
    let bridge = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let (mut tx, mut rx) = ws.split();
        let mut first = Vec::new();
        while first.len() < 2 {
            if let Some(Ok(Message::Text(t))) = rx.next().await {
                first.push(TwilioInbound::parse(t.as_str()).unwrap());
            }
        }
        let stream_sid = match &first[1] {
            TwilioInbound::Start { stream_sid, start, .. } => {
                assert_eq!(start.custom_parameters["callId"], "CA1");
                stream_sid.clone()
            }
            other => panic!("expected start, got {other:?}"),
        };
        assert!(matches!(first[0], TwilioInbound::Connected { .. }));
        let t0 = Instant::now();
        let media = |n: usize| json!({"event":"media","streamSid":stream_sid,"media":{"payload":mulaw::encode_base64(&vec![0x20u8; n])}}).to_string();
        let mark = |name: &str| json!({"event":"mark","streamSid":stream_sid,"mark":{"name":name}}).to_string();
        tx.send(Message::text(media(1600))).await.unwrap();
        tx.send(Message::text(mark("a"))).await.unwrap();
        tx.send(Message::text(media(3200))).await.unwrap();
        tx.send(Message::text(mark("b"))).await.unwrap();
        let mut echoes = Vec::new();
        let mut media_frames = 0;
        let mut cleared = false;
        while echoes.len() < 2 {
            let deadline = tokio::time::sleep(Duration::from_millis(300).saturating_sub(t0.elapsed()));
            tokio::select! {
                _ = deadline, if !cleared => {
                    tx.send(Message::text(json!({"event":"clear","streamSid":stream_sid}).to_string())).await.unwrap();
                    cleared = true;
                }
                msg = rx.next() => match TwilioInbound::parse(msg.unwrap().unwrap().to_text().unwrap()).unwrap() {
                    TwilioInbound::Mark { mark, .. } => echoes.push((mark.name, t0.elapsed())),
                    TwilioInbound::Media { media, .. } => {
                        media_frames += 1;
                        assert_eq!(media.timestamp.parse::<u64>().unwrap() % 20, 0);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // Let the caller see the socket close.
        let _ = tx.close().await;
        (echoes, media_frames)
    });
    let opts = CallerOptions { speed: 1.0, max_stream_ms: 3_000, ..Default::default() };
    let params = BTreeMap::from([("callId".to_string(), "CA1".to_string())]);
    let report = caller::run(&url, "CA1", "AC1", params, &sc, &opts).await.unwrap();
    let (echoes, media_frames) = bridge.await.unwrap();
    assert_eq!(echoes[0].0, "a");
    assert!(echoes[0].1 >= Duration::from_millis(180), "mark a echoed before its 200 ms played: {:?}", echoes[0].1);
    assert_eq!(echoes[1].0, "b");
    assert!(echoes[1].1 < Duration::from_millis(450), "mark b must come back at the clear (300 ms), not after playout (600 ms): {:?}", echoes[1].1);
    assert!(media_frames >= 10, "the caller streams 20 ms frames all along");
    assert_eq!(report.clears.len(), 1);
    let clear = &report.clears[0];
    assert_eq!(clear.received_total, 4800);
    // ~300 ms played at the clear, at 160 bytes per 20 ms tick.
    assert!((2080..=2720).contains(&clear.played_total), "played {}", clear.played_total);
    assert_eq!(report.heard_audio.len() as u64, clear.played_total, "nothing plays after a clear");
    assert!(report.closed_by_server);
}
