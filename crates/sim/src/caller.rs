//! A fake Twilio caller on the media stream (PROTOCOLS.md §2).
//!
//! It sends `connected`, `start` (CallSid, customParameters) and then one 20 ms `media` frame per
//! tick of its stream clock — the scenario's caller speech when it is the caller's turn, μ-law
//! silence otherwise — at real-time pacing or N× faster. It plays what it receives on the same
//! clock: 160 bytes per tick from a queue; a `mark` is echoed only when the audio queued before it
//! has played; `clear` drops the queued audio and echoes the pending marks at once.
//! It records what it sent (the exact input stream the model should get), what the caller heard
//! and when, and every `clear`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use watchfloor_wire::mulaw::{self, FRAME_BYTES, FRAME_MS};
use watchfloor_wire::twilio::{Dtmf, InboundMedia, MarkName, MediaFormat, StreamStart, StreamStop, TwilioInbound, TwilioOutbound};

use crate::scenario::{Scenario, TurnStart};

/// How the caller behaves.
#[derive(Debug, Clone)]
pub struct CallerOptions {
    /// Time scale: 1.0 = real time; 10.0 = ten times faster.
    pub speed: f64,
    /// Skip every Nth silent frame (0 = never), leaving a gap in `timestamp`s as a real network
    /// or Twilio's silence suppression can; the bridge must pad it.
    pub skip_silent_every: u32,
    /// Raw frames to send between `connected` and `start` (garbage tests): sent as-is.
    pub inject_before_start: Vec<String>,
    /// Extra raw frames to send after `start` (garbage tests): sent as-is.
    pub inject_after_start: Vec<String>,
    /// Press this DTMF digit after the first caller turn.
    pub dtmf: Option<String>,
    /// Give up after this much stream time, ms.
    pub max_stream_ms: u64,
    /// `X-Twilio-Signature` to send on the upgrade.
    pub signature: Option<String>,
    /// Watch this Twilio REST fake: when the call's TwiML is replaced there (a hand-off to a
    /// human), end the stream the way Twilio does (`stop`, then the socket closes).
    pub rest: Option<crate::rest::RestFake>,
    /// Drop the TCP connection without `stop` after this much stream time, ms.
    pub disconnect_after_ms: Option<u64>,
    /// Send `stop` instead of `start` (and nothing else).
    pub stop_without_start: bool,
    /// Send `start` twice.
    pub duplicate_start: bool,
    /// Keep the audio sent, received and heard in the [`CallerReport`] (tests); off for load.
    pub keep_audio: bool,
    /// Per-frame measurement hooks (the load generator).
    pub probe: Option<crate::probe::CallProbe>,
    /// A network stall on the way to the bridge, as `(from stream ms, for ms)`: everything the
    /// caller side sends in that time (media frames with their true timestamps, mark echoes) is
    /// held, then delivered all at once and in order when it ends — what Twilio does after a
    /// network hiccup. Playout and the stream clock go on meanwhile.
    pub stall: Option<(u64, u64)>,
    /// For a `wss://` stream: the certificate (PEM) to trust besides the system's roots (a
    /// test's own; Twilio trusts public CAs only).
    pub tls_root: Option<Vec<u8>>,
}

impl Default for CallerOptions {
    fn default() -> Self {
        CallerOptions {
            speed: 1.0,
            skip_silent_every: 0,
            inject_before_start: Vec::new(),
            inject_after_start: Vec::new(),
            dtmf: None,
            max_stream_ms: 180_000,
            signature: None,
            rest: None,
            disconnect_after_ms: None,
            stop_without_start: false,
            duplicate_start: false,
            keep_audio: true,
            probe: None,
            stall: None,
            tls_root: None,
        }
    }
}

/// A `clear` as the caller saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearSeen {
    /// Stream time, ms.
    pub at_ms: u64,
    /// Agent bytes played (heard) before the clear, since the call began.
    pub played_total: u64,
    /// Agent bytes received before the clear, since the call began.
    pub received_total: u64,
    /// Marks pending at the clear, echoed at once because of it.
    pub marks_echoed: usize,
}

/// What happened on the caller's side.
#[derive(Debug, Clone, Default)]
pub struct CallerReport {
    /// The CallSid used.
    pub call_sid: String,
    /// The input stream the model should receive: every frame sent, with skipped frames as
    /// silence, up to the last frame sent.
    pub expected_input: Vec<u8>,
    /// Agent audio received (before any clear dropped it), in order.
    pub received_audio: Vec<u8>,
    /// Agent audio actually played to the caller, in order.
    pub heard_audio: Vec<u8>,
    /// Stream time (ms) when the first agent byte was played.
    pub first_heard_ms: Option<u64>,
    /// When the caller heard agent audio: `(stream ms, bytes)` runs of continuous playout, in order
    /// (the bytes are consecutive slices of `heard_audio`).
    pub heard_runs: Vec<(u64, usize)>,
    /// Marks echoed, in order.
    pub marks_echoed: Vec<String>,
    /// Every clear.
    pub clears: Vec<ClearSeen>,
    /// Frames skipped to make gaps.
    pub skipped_frames: u32,
    /// The stream time at the end, ms.
    pub ended_ms: u64,
    /// Whether the server closed the socket (rather than the caller sending `stop`).
    pub closed_by_server: bool,
    /// The REST update that replaced the call's TwiML (a hand-off), if one came.
    pub redirected: Option<std::collections::BTreeMap<String, String>>,
    /// The caller dropped the connection on purpose (`disconnect_after_ms`).
    pub disconnected: bool,
    /// Messages delivered at once when the stall (`CallerOptions::stall`) ended.
    pub stall_burst: usize,
}

enum Queued {
    Audio(Vec<u8>),
    Mark(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for the agent to finish speaking before turn `i`.
    Waiting(usize),
    /// Speaking turn `i`, `offset` bytes in.
    Speaking(usize, usize),
    /// All turns done; waiting for the last answer to play, then `stop`.
    Finishing,
}

/// Runs a whole call as the caller, against `ws_url` (`ws://127.0.0.1:…/ws/media`).
pub async fn run(ws_url: &str, call_sid: &str, account_sid: &str, custom_parameters: BTreeMap<String, String>, scenario: &Scenario, opts: &CallerOptions) -> anyhow::Result<CallerReport> {
    let mut req = ws_url.into_client_request()?;
    if let Some(sig) = &opts.signature {
        req.headers_mut().insert("x-twilio-signature", HeaderValue::from_str(sig)?);
    }
    let connector = match &opts.tls_root {
        Some(pem) => Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(crate::tls::client_config(pem)?))),
        None => None,
    };
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, true, connector).await?;
    let (mut tx, mut rx) = ws.split();
    let stream_sid = format!("MZ{:032x}", rand::random::<u128>());
    let mut seq: u64 = 0;
    let mut next_seq = || {
        seq += 1;
        seq.to_string()
    };
    let mut report = CallerReport { call_sid: call_sid.to_string(), ..Default::default() };
    tx.send(Message::text(TwilioInbound::Connected { protocol: "Call".into(), version: "1.0.0".into() }.to_json())).await?;
    for raw in &opts.inject_before_start {
        tx.send(Message::text(raw.clone())).await?;
    }
    if opts.stop_without_start {
        let stop = TwilioInbound::Stop { sequence_number: next_seq(), stream_sid: stream_sid.clone(), stop: StreamStop { account_sid: account_sid.to_string(), call_sid: call_sid.to_string() } };
        tx.send(Message::text(stop.to_json())).await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(m)) = rx.next().await { if m.is_close() { break; } } }).await;
        report.closed_by_server = true;
        return Ok(report);
    }
    let start = TwilioInbound::Start {
        sequence_number: next_seq(),
        stream_sid: stream_sid.clone(),
        start: StreamStart {
            stream_sid: stream_sid.clone(),
            account_sid: account_sid.to_string(),
            call_sid: call_sid.to_string(),
            tracks: vec!["inbound".into()],
            custom_parameters,
            media_format: Some(MediaFormat { encoding: "audio/x-mulaw".into(), sample_rate: 8000, channels: 1 }),
        },
    };
    tx.send(Message::text(start.to_json())).await?;
    // From here a failed send means the server closed the stream; the loop below notices.
    if opts.duplicate_start {
        let _ = tx.send(Message::text(start.to_json())).await;
    }
    for raw in &opts.inject_after_start {
        if tx.send(Message::text(raw.clone())).await.is_err() {
            break;
        }
    }

    let tick = Duration::from_secs_f64(FRAME_MS as f64 / 1000.0 / opts.speed.max(0.001));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut played_total: u64 = 0;
    let mut received_total: u64 = 0;
    let mut now_ms: u64 = 0;
    let mut chunk: u64 = 0;
    let mut phase = Phase::Waiting(0);
    // Agent audio playing in this turn: ms played since the caller last finished speaking.
    let mut agent_ms_this_turn: u64 = 0;
    // Stream time of the last agent byte played or received.
    let mut last_agent_activity_ms: Option<u64> = None;
    let mut last_agent_wall: Option<std::time::Instant> = None;
    let mut quiet_since_turn: Option<u64> = None;
    let mut dtmf_sent = false;
    let mut silent_frames: u32 = 0;
    let mut last_sent_len: usize = 0;
    let mut sent_total: usize = 0;
    let mut buf = Vec::new();

    // What a stall holds back (`opts.stall`).
    let mut held: Vec<Message> = Vec::new();
    let stalled = |now_ms: u64| opts.stall.is_some_and(|(from, len)| now_ms >= from && now_ms < from + len);
    // A send that fails means the server closed the stream (e.g. right after a hand-off).
    macro_rules! send {
        ($label:lifetime, $m:expr) => {
            let m = $m;
            if stalled(now_ms) {
                held.push(m);
            } else {
                let mut failed = false;
                if !held.is_empty() {
                    report.stall_burst = held.len();
                    for h in held.drain(..) {
                        failed |= tx.feed(h).await.is_err();
                    }
                }
                if failed || tx.send(m).await.is_err() {
                    report.closed_by_server = true;
                    break $label;
                }
            }
        };
    }
    let rest = opts.rest.clone();
    let redirect = async {
        match &rest {
            Some(r) => r.wait_for_update(call_sid).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(redirect);
    'call: loop {
        tokio::select! {
            update = &mut redirect, if report.redirected.is_none() => {
                // Twilio replaced the call's TwiML: the stream ends (stop, then close).
                report.redirected = Some(update.form);
                break 'call;
            }
            scheduled = interval.tick() => {
                if let Some(p) = &opts.probe {
                    p.tick_late(scheduled.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
                // 1. Playout of 20 ms.
                let mut need = FRAME_BYTES;
                while let Some(front) = queue.front_mut() {
                    match front {
                        Queued::Mark(name) => {
                            let name = name.clone();
                            queue.pop_front();
                            send!('call, Message::text(TwilioInbound::Mark { sequence_number: next_seq(), stream_sid: stream_sid.clone(), mark: MarkName { name: name.clone() } }.to_json()));
                            report.marks_echoed.push(name);
                        }
                        Queued::Audio(a) if need > 0 => {
                            let n = need.min(a.len());
                            if opts.keep_audio {
                                report.heard_audio.extend(a.drain(..n));
                            } else {
                                a.drain(..n);
                            }
                            report.first_heard_ms.get_or_insert(now_ms);
                            played_total += n as u64;
                            need -= n;
                            if a.is_empty() {
                                queue.pop_front();
                            }
                        }
                        Queued::Audio(_) => break,
                    }
                }
                let playing = need < FRAME_BYTES;
                if playing {
                    let n = FRAME_BYTES - need;
                    match report.heard_runs.last_mut() {
                        Some((start, len)) if *start + mulaw::bytes_to_ms(*len) == now_ms && *len % FRAME_BYTES == 0 => *len += n,
                        _ => report.heard_runs.push((now_ms, n)),
                    }
                    agent_ms_this_turn += FRAME_MS;
                    last_agent_activity_ms = Some(now_ms);
                }
                // The agent is done when nothing has played or arrived for 400 ms of stream time
                // and 250 ms of wall time (at N× speed, a loaded machine's scheduling delays
                // must not look like the end of the agent's turn).
                let agent_quiet = queue.is_empty()
                    && last_agent_activity_ms.is_some_and(|t| now_ms >= t + 400)
                    && last_agent_wall.is_none_or(|w: std::time::Instant| w.elapsed() >= Duration::from_millis(250));

                // 2. The caller's script.
                let mut frame: Option<Vec<u8>> = None;
                match phase {
                    Phase::Waiting(i) => {
                        let go = match scenario.turns[i].start {
                            TurnStart::AfterAgent { pause_ms } => {
                                if agent_quiet {
                                    let since = *quiet_since_turn.get_or_insert(now_ms);
                                    now_ms >= since + pause_ms
                                } else {
                                    quiet_since_turn = None;
                                    false
                                }
                            }
                            TurnStart::BargeIn { after_ms } => agent_ms_this_turn >= after_ms,
                        };
                        if go {
                            phase = Phase::Speaking(i, 0);
                        }
                    }
                    Phase::Finishing => {
                        if agent_quiet && quiet_since_turn.is_some_and(|t| now_ms >= t + 500) || now_ms >= opts.max_stream_ms {
                            break 'call;
                        }
                        if agent_quiet {
                            quiet_since_turn.get_or_insert(now_ms);
                        }
                    }
                    Phase::Speaking(..) => {}
                }
                if let Phase::Speaking(i, off) = phase {
                    if let (Some(keys), 0) = (&scenario.turns[i].keys, off) {
                        // A caller who cannot speak answers on the keypad: one `dtmf` a key.
                        for digit in keys.chars() {
                            send!('call, Message::text(TwilioInbound::Dtmf { sequence_number: next_seq(), stream_sid: stream_sid.clone(), dtmf: Dtmf { track: "inbound_track".into(), digit: digit.to_string() } }.to_json()));
                        }
                    }
                    let audio = &scenario.turns[i].caller.audio;
                    let mut f = audio[off..(off + FRAME_BYTES).min(audio.len())].to_vec();
                    if !f.is_empty() {
                        f.resize(FRAME_BYTES, mulaw::SILENCE);
                        frame = Some(f);
                    }
                    let off = off + FRAME_BYTES;
                    if off >= audio.len() {
                        agent_ms_this_turn = 0;
                        quiet_since_turn = None;
                        last_agent_activity_ms = None;
                        phase = if i + 1 < scenario.turns.len() { Phase::Waiting(i + 1) } else { Phase::Finishing };
                        if let (Some(d), false) = (&opts.dtmf, dtmf_sent) {
                            dtmf_sent = true;
                            send!('call, Message::text(TwilioInbound::Dtmf { sequence_number: next_seq(), stream_sid: stream_sid.clone(), dtmf: Dtmf { track: "inbound_track".into(), digit: d.clone() } }.to_json()));
                        }
                    } else {
                        phase = Phase::Speaking(i, off);
                    }
                }

                // 3. Send 20 ms (or skip a silent frame to leave a gap).
                let speech = frame.is_some();
                let mut bytes = frame.unwrap_or_else(|| vec![mulaw::SILENCE; FRAME_BYTES]);
                let stamp = opts.probe.as_ref().map(|p| p.stamp_up(&mut bytes));
                if opts.keep_audio {
                    report.expected_input.extend_from_slice(&bytes);
                }
                sent_total += bytes.len();
                let skip = !speech && opts.skip_silent_every > 0 && { silent_frames += 1; silent_frames.is_multiple_of(opts.skip_silent_every) };
                if skip {
                    report.skipped_frames += 1;
                } else {
                    chunk += 1;
                    let msg = TwilioInbound::Media {
                        sequence_number: next_seq(),
                        stream_sid: stream_sid.clone(),
                        media: InboundMedia { track: "inbound".into(), chunk: chunk.to_string(), timestamp: now_ms.to_string(), payload: mulaw::encode_base64(&bytes) },
                    };
                    let text = msg.to_json();
                    if let (Some(p), Some(seq)) = (&opts.probe, stamp) {
                        p.up_sent(seq);
                    }
                    send!('call, Message::text(text));
                    last_sent_len = sent_total;
                }
                now_ms += FRAME_MS;
                if now_ms >= opts.max_stream_ms {
                    break 'call;
                }
                if opts.disconnect_after_ms.is_some_and(|d| now_ms >= d) {
                    // Gone without a word: drop the TCP connection, no stop, no close frame.
                    report.disconnected = true;
                    report.ended_ms = now_ms;
                    drop(tx);
                    drop(rx);
                    report.expected_input.truncate(last_sent_len.min(report.expected_input.len()));
                    return Ok(report);
                }
            }
            msg = rx.next() => {
                let read_at_ns = opts.probe.as_ref().map_or(0, |p| p.now_ns());
                match msg {
                    Some(Ok(Message::Text(text))) => match TwilioOutbound::parse(text.as_str()) {
                        Ok(TwilioOutbound::Media { media, .. }) => {
                            mulaw::decode_base64_into(&media.payload, &mut buf)?;
                            if let Some(p) = &opts.probe {
                                p.down_received(&buf, read_at_ns);
                            }
                            received_total += buf.len() as u64;
                            if opts.keep_audio {
                                report.received_audio.extend_from_slice(&buf);
                            }
                            last_agent_activity_ms = Some(now_ms);
                            last_agent_wall = Some(std::time::Instant::now());
                            queue.push_back(Queued::Audio(buf.clone()));
                        }
                        Ok(TwilioOutbound::Mark { mark, .. }) => queue.push_back(Queued::Mark(mark.name)),
                        Ok(TwilioOutbound::Clear { .. }) => {
                            if let Some(p) = &opts.probe {
                                p.clear_received(read_at_ns);
                            }
                            let pending = queue.iter().filter(|q| matches!(q, Queued::Mark(_))).count();
                            report.clears.push(ClearSeen { at_ms: now_ms, played_total, received_total, marks_echoed: pending });
                            for q in queue.drain(..) {
                                if let Queued::Mark(name) = q {
                                    send!('call, Message::text(TwilioInbound::Mark { sequence_number: next_seq(), stream_sid: stream_sid.clone(), mark: MarkName { name: name.clone() } }.to_json()));
                                    report.marks_echoed.push(name);
                                }
                            }
                        }
                        Err(e) => anyhow::bail!("the bridge sent Twilio something it would reject: {e}: {text}"),
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        report.closed_by_server = true;
                        break 'call;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        // A reset is how a server's abrupt close looks from here: the stream is over.
                        tracing::debug!(error = %e, "media stream read failed");
                        report.closed_by_server = true;
                        break 'call;
                    }
                }
            }
        }
    }
    if let Some(p) = &opts.probe {
        p.hung_up();
    }
    report.expected_input.truncate(last_sent_len.min(report.expected_input.len()));
    report.ended_ms = now_ms;
    if report.redirected.is_none() {
        // The server may close the stream a moment before the REST update is seen here.
        if let Some(r) = &rest
            && let Ok(u) = tokio::time::timeout(Duration::from_millis(500), r.wait_for_update(call_sid)).await {
                report.redirected = Some(u.form);
            }
    }
    if !report.closed_by_server && !report.disconnected {
        let stop = TwilioInbound::Stop { sequence_number: next_seq(), stream_sid: stream_sid.clone(), stop: StreamStop { account_sid: account_sid.to_string(), call_sid: call_sid.to_string() } };
        let _ = tx.send(Message::text(stop.to_json())).await;
        // Twilio waits for our server to close the socket.
        let _ = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(m)) = rx.next().await { if m.is_close() { break; } } }).await;
    }
    Ok(report)
}
