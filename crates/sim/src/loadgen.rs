//! The load generator (`watchfloor loadgen`): N concurrent real-time calls through a bridge in its
//! own process, measured frame by frame.
//!
//! One step: start `watchfloor serve` as a child process (a fresh data directory, recording and
//! the live feed on, signature checks on), the model fake and the callers in this process
//! (PROTOCOLS.md, real-time 20 ms pacing), K consoles on the live feed. Calls start evenly over
//! the ramp, each at its own phase of the 20 ms frame clock ([`frame_phase`]); each call slot plays its scenario whole, then dials again, until the hold ends (a
//! call still under way then hangs up with `stop`). Measured on one clock (see [`crate::probe`]):
//! caller → model and model → caller latency of every frame sent during the hold, frames lost,
//! duplicated or reordered, barge-in reaction (`speech_started` written → `clear` read),
//! live-feed latency (transcript delta written → each console's event read), the bridge
//! process's CPU and RSS from `/proc`, and this process's own timer lateness (if the load
//! generator itself falls behind, its figures say so).
//!
//! Ramp mode: steps of growing N (each a fresh bridge) to find the largest N that passes:
//! p99 < the limit both ways, nothing lost, duplicated or reordered, no call handed off.
//!
//! Every address is loopback.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::caller::CallerOptions;
use crate::model::{ModelFake, ModelFakeOptions, Pacing};
use crate::probe::{CallProbe, CallTotals, Probes};
use crate::scenario::Scenario;
use crate::simulate::{SimulateOptions, new_call_sid, place_call};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent calls.
    pub calls: usize,
    /// Calls start evenly over this time.
    pub ramp: Duration,
    /// Then the load is held (and measured) this long.
    pub hold: Duration,
    /// Consoles connected to the live feed.
    pub consoles: usize,
    /// The `watchfloor` binary to run as the bridge (`serve`).
    pub serve_bin: PathBuf,
    /// Scenarios, assigned to call slots in turn.
    pub scenarios: Vec<Scenario>,
    /// Pass limit on p99 latency, each way, µs.
    pub p99_limit_us: u64,
    /// Keep the bridge's data directory and log here (else a temporary directory, removed).
    pub keep_dir: Option<PathBuf>,
    /// How the model fake streams replies (default: the real service's bursts).
    pub pacing: Pacing,
    /// Attack the bridge while the calls run ([`Hostile`]): the soak of issue 15.
    pub hostile: bool,
    /// Calls taken over by a supervisor who talks for the rest of the call (issue 17): the
    /// first N call slots. [`TAKEOVER_AFTER`] into each call a console takes the voice and
    /// sends a stamped 20 ms frame every 20 ms on the live feed. Their relay figures are left
    /// out of `caller_to_model` / `model_to_caller` (those are the other calls'); their voice
    /// latency is `supervisor_to_caller`.
    pub takeovers: usize,
    /// Run the bridge on these CPUs only (`taskset -c`, e.g. `0`), so its CPU figures are its
    /// own (issue 22): run the load generator itself on the others (`taskset -c 1 watchfloor
    /// loadgen --bridge-cpus 0`). None: wherever the scheduler puts it.
    pub bridge_cpus: Option<String>,
}

/// How long into a taken-over call the supervisor takes the voice.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(3);

/// What the hostile clients did during a step (`--hostile`), and how the bridge answered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostileReport {
    /// Wrong-password sign-ins sent (16 clients, one every 50 ms each).
    pub sign_ins: u64,
    /// Of them, refused as too many (429) or busy (503) before any password check.
    pub sign_ins_throttled: u64,
    /// Idle TCP connections opened (300 kept open; each reopened when the bridge closes it).
    pub idle_sockets_opened: u64,
    /// Signed media streams opened that sent only junk (20 kept open; reopened when closed).
    pub junk_streams_opened: u64,
    /// Bridge RSS at the start and at the end of the hold, KiB (flat under attack?).
    pub rss_hold_start_kib: u64,
    /// See `rss_hold_start_kib`.
    pub rss_hold_end_kib: u64,
}

/// The attacks of the soak (issue 15), run against `base` until `stop`.
struct Hostile {
    sign_ins: std::sync::atomic::AtomicU64,
    throttled: std::sync::atomic::AtomicU64,
    idle: std::sync::atomic::AtomicU64,
    junk: std::sync::atomic::AtomicU64,
}

impl Hostile {
    fn start(base: &str, auth_token: &str, stop: tokio_util::sync::CancellationToken) -> (Arc<Hostile>, Vec<tokio::task::JoinHandle<()>>) {
        use std::sync::atomic::Ordering::Relaxed;
        let h = Arc::new(Hostile { sign_ins: Default::default(), throttled: Default::default(), idle: Default::default(), junk: Default::default() });
        let mut tasks = Vec::new();
        let addr: SocketAddr = base.trim_start_matches("http://").parse().expect("the bridge's base URL is http://ip:port");
        for _ in 0..16 {
            let (h, stop, url) = (h.clone(), stop.clone(), format!("{base}/api/login"));
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::builder().no_proxy().build().expect("a client");
                while !stop.is_cancelled() {
                    if let Ok(r) = http.post(&url).json(&serde_json::json!({"user": "jdoe", "password": "wrong"})).send().await {
                        h.sign_ins.fetch_add(1, Relaxed);
                        if matches!(r.status().as_u16(), 429 | 503) {
                            h.throttled.fetch_add(1, Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
        for _ in 0..300 {
            let (h, stop) = (h.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                while !stop.is_cancelled() {
                    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    h.idle.fetch_add(1, Relaxed);
                    let mut buf = [0u8; 512];
                    // Sends nothing; waits for the bridge to close it.
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            r = s.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { break },
                        }
                    }
                }
            }));
        }
        for _ in 0..20 {
            let (h, stop) = (h.clone(), stop.clone());
            let ws_url = format!("{}/ws/media", base.replacen("http://", "ws://", 1));
            let sig = watchfloor_wire::signature::compute(auth_token, &ws_url, &[]);
            tasks.push(tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let Ok(mut req) = ws_url.as_str().into_client_request() else { return };
                    if let Ok(v) = sig.parse() {
                        req.headers_mut().insert("x-twilio-signature", v);
                    }
                    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    h.junk.fetch_add(1, Relaxed);
                    while !stop.is_cancelled() && ws.send(Message::text(r#"{"event":"junk"}"#)).await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }));
        }
        (h, tasks)
    }

    fn report(&self, rss: (u64, u64)) -> HostileReport {
        use std::sync::atomic::Ordering::Relaxed;
        HostileReport {
            sign_ins: self.sign_ins.load(Relaxed),
            sign_ins_throttled: self.throttled.load(Relaxed),
            idle_sockets_opened: self.idle.load(Relaxed),
            junk_streams_opened: self.junk.load(Relaxed),
            rss_hold_start_kib: rss.0,
            rss_hold_end_kib: rss.1,
        }
    }
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// How many samples the percentiles are over.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Largest, µs.
    pub max_us: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// One direction of audio.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DirectionReport {
    /// Frames sent (the whole run).
    pub frames: u64,
    /// Frames that never arrived.
    pub lost: u64,
    /// Frames that arrived more than once.
    pub duplicated: u64,
    /// Frames that arrived after a later one.
    pub reordered: u64,
    /// Stamps read that were never sent (corruption).
    pub corrupted: u64,
    /// Frames of barged-in responses the caller never got (expected: the bridge drops them).
    pub cancelled_unheard: u64,
    /// Latency of frames sent during the hold.
    pub latency: Percentiles,
}

/// Barge-in reaction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BargeInReport {
    /// `speech_started` events the model sent (the whole run).
    pub speech_started: u64,
    /// `clear`s the caller got with no `speech_started` before them.
    pub unexplained_clears: u64,
    /// `speech_started` written → `clear` read, during the hold.
    pub reaction: Percentiles,
}

/// The live feed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FeedReport {
    /// Consoles connected.
    pub consoles: usize,
    /// Events read, all consoles.
    pub events: u64,
    /// Resynchronisations (a console fell behind).
    pub resyncs: u64,
    /// Transcript delta written by the model → read by a console, during the hold.
    pub latency: Percentiles,
}

/// A process's resources.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessReport {
    /// CPU during the hold, % of one core.
    pub cpu_percent: f64,
    /// RSS before any call, KiB.
    pub rss_idle_kib: u64,
    /// Mean RSS during the hold, KiB.
    pub rss_hold_kib: u64,
    /// Largest RSS seen, KiB.
    pub rss_peak_kib: u64,
    /// (mean RSS during the hold − idle RSS) / concurrent calls, KiB.
    pub per_call_kib: f64,
    /// CPU per call: `cpu_percent` / concurrent calls, % of one core (× 10 = ms of CPU per
    /// call-second).
    pub per_call_cpu_percent: f64,
}

/// One step's report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    /// Concurrent calls.
    pub calls: usize,
    /// Ramp, s.
    pub ramp_s: f64,
    /// Hold, s.
    pub hold_s: f64,
    /// The model fake's pacing (`Pacing` as debug text).
    pub pacing: String,
    /// How long the voice webhook took to answer (send → whole TwiML read), each call placed.
    pub webhook: Percentiles,
    /// The attacks run beside the calls (`--hostile`), if any.
    pub hostile: Option<HostileReport>,
    /// Call slots taken over by a talking supervisor (`--takeovers`).
    pub takeovers: usize,
    /// A supervisor's voice, console → caller, on the taken-over calls.
    pub supervisor_to_caller: DirectionReport,
    /// Calls placed (the whole run).
    pub calls_placed: u64,
    /// Calls that failed to start or that the bridge ended early (handed to a human).
    pub calls_failed: u64,
    /// The first few failure reasons.
    pub failures: Vec<String>,
    /// Caller → model.
    pub caller_to_model: DirectionReport,
    /// Model → caller.
    pub model_to_caller: DirectionReport,
    /// Barge-in.
    pub barge_in: BargeInReport,
    /// Live feed.
    pub live_feed: FeedReport,
    /// The bridge process.
    pub bridge: ProcessReport,
    /// This process (the fakes).
    pub loadgen: ProcessReport,
    /// How late the callers' 20 ms timers fired, µs: when this grows, the load generator is the
    /// bottleneck, not the bridge.
    pub caller_timer_late: Percentiles,
    /// p99 under the limit both ways, nothing lost, duplicated, reordered or corrupted, no
    /// failed call.
    pub pass: bool,
}

/// Where call slot `i` starts within a 20 ms frame, spread evenly over the frame whatever the
/// number of calls (the fractional parts of `i × φ`, a low-discrepancy sequence).
///
/// Twilio paces each stream on its own clock, so real calls' frames arrive at unrelated
/// phases. Starts spaced by the ramp alone line up whenever the spacing is a multiple of 20 ms
/// (200 calls over 8 s: every 40 ms), and then every call's frame lands in the same instant
/// — a burst of N frames each 20 ms that no real load makes (measured: p99 6.2 ms at 200
/// calls aligned, against 2.9 ms at 270 spread).
pub fn frame_phase(i: usize) -> Duration {
    const PHI_FRACTION: f64 = 0.618_033_988_749_895;
    Duration::from_millis(watchfloor_wire::mulaw::FRAME_MS).mul_f64((i as f64 * PHI_FRACTION).fract())
}

/// A ramp's report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RampReport {
    /// Every step, in the order run.
    pub steps: Vec<StepReport>,
    /// The largest N that passed.
    pub largest_passing: Option<usize>,
}

struct Aggregate {
    webhook: Histogram<u64>,
    up: Histogram<u64>,
    down: Histogram<u64>,
    barge: Histogram<u64>,
    late: Histogram<u64>,
    voice: Histogram<u64>,
    totals: CallTotals,
    placed: u64,
    failed: u64,
    failures: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    // Invariant: 3 significant figures from 1 µs to 1 h is a valid configuration.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

impl Aggregate {
    fn new() -> Self {
        Aggregate { webhook: histogram(), up: histogram(), down: histogram(), barge: histogram(), late: histogram(), voice: histogram(), totals: CallTotals::default(), placed: 0, failed: 0, failures: Vec::new() }
    }

    /// A call's totals; a taken-over call's relay latencies are left out (the relay figures
    /// are the other calls'), its voice latencies kept.
    fn add(&mut self, t: CallTotals, taken_over: bool) {
        let none = Vec::new();
        let (up, down) = if taken_over { (&none, &none) } else { (&t.up_us, &t.down_us) };
        for (h, v) in [(&mut self.up, up), (&mut self.down, down), (&mut self.barge, &t.barge_us), (&mut self.late, &t.tick_late_us), (&mut self.voice, &t.voice_us)] {
            for &us in v {
                h.saturating_record(u64::from(us).max(1));
            }
        }
        self.totals.voice_sent += t.voice_sent;
        self.totals.voice_lost += t.voice_lost;
        let a = &mut self.totals;
        a.up_sent += t.up_sent;
        a.up_lost += t.up_lost;
        a.up_duplicated += t.up_duplicated;
        a.up_reordered += t.up_reordered;
        a.up_unknown += t.up_unknown;
        a.down_sent += t.down_sent;
        a.down_lost += t.down_lost;
        a.down_cancelled_unheard += t.down_cancelled_unheard;
        a.down_duplicated += t.down_duplicated;
        a.down_reordered += t.down_reordered;
        a.down_unknown += t.down_unknown;
        a.speech_started += t.speech_started;
        a.clears_unexplained += t.clears_unexplained;
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.failures.len() < 10 {
            self.failures.push(why);
        }
    }
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// CPU ticks (user + system) and RSS (KiB) of a process.
fn sample_process(pid: i32) -> Option<(u64, u64)> {
    let p = procfs::process::Process::new(pid).ok()?;
    let stat = p.stat().ok()?;
    let rss_kib = p.status().ok()?.vmrss?;
    Some((stat.utime + stat.stime, rss_kib))
}

#[derive(Default, Clone)]
struct Samples {
    /// (seconds since the step's start, CPU ticks, RSS KiB).
    points: Vec<(f64, u64, u64)>,
}

impl Samples {
    /// RSS at the first and the last sample of `window`, KiB.
    fn hold_ends(&self, window: (f64, f64)) -> (u64, u64) {
        let in_hold: Vec<u64> = self.points.iter().filter(|(t, _, _)| *t >= window.0 && *t <= window.1).map(|p| p.2).collect();
        (in_hold.first().copied().unwrap_or(0), in_hold.last().copied().unwrap_or(0))
    }

    fn report(&self, idle_kib: u64, window: (f64, f64), calls: usize) -> ProcessReport {
        let in_hold: Vec<&(f64, u64, u64)> = self.points.iter().filter(|(t, _, _)| *t >= window.0 && *t <= window.1).collect();
        let tps = procfs::ticks_per_second() as f64;
        let cpu_percent = match (in_hold.first(), in_hold.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / tps / (b.0 - a.0) * 100.0,
            _ => 0.0,
        };
        let rss_hold_kib = if in_hold.is_empty() { 0 } else { in_hold.iter().map(|p| p.2).sum::<u64>() / in_hold.len() as u64 };
        ProcessReport {
            cpu_percent: (cpu_percent * 10.0).round() / 10.0,
            rss_idle_kib: idle_kib,
            rss_hold_kib,
            rss_peak_kib: self.points.iter().map(|p| p.2).max().unwrap_or(0),
            per_call_kib: if calls == 0 { 0.0 } else { ((rss_hold_kib.saturating_sub(idle_kib)) as f64 / calls as f64 * 10.0).round() / 10.0 },
            per_call_cpu_percent: if calls == 0 { 0.0 } else { (cpu_percent / calls as f64 * 10_000.0).round() / 10_000.0 },
        }
    }
}

/// The bridge as a child process.
struct Bridge {
    child: Child,
    base_url: String,
    token: String,
    auth_token: String,
    _dir: Option<tempfile::TempDir>,
}

async fn start_bridge(opts: &LoadOptions, model_url: &str) -> anyhow::Result<Bridge> {
    let (dir, tmp) = match &opts.keep_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("watchfloor-loadgen-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let port = free_port()?;
    let config = dir.join("config.toml");
    // Room for every call plus the ones still closing; the webhook rate limit above the ramp's.
    std::fs::write(&config, format!("max_calls = {}\nwebhook_rate_per_second = {}\n", opts.calls * 2 + 50, 10_000))?;
    let base_url = format!("http://127.0.0.1:{port}");
    let token = random_hex(24);
    let auth_token = random_hex(16);
    let log = std::fs::File::create(dir.join("bridge.log"))?;
    let mut cmd = match &opts.bridge_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(&opts.serve_bin);
            c
        }
        None => Command::new(&opts.serve_bin),
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("OPENAI_") || k.starts_with("TWILIO_") || k.starts_with("WATCHFLOOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        // The fake accepts any bearer key; this one is not a secret.
        .env("OPENAI_API_KEY", "loadgen-fake-key")
        .env("OPENAI_REALTIME_URL", model_url)
        .env("TWILIO_AUTH_TOKEN", &auth_token)
        .env("WATCHFLOOR_PUBLIC_URL", &base_url)
        .env("WATCHFLOOR_CONSOLE_TOKEN", &token)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("starting {}", opts.serve_bin.display()))?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base_url}/health")).send().await
            && r.status().is_success() {
                break;
            }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the bridge exited at start ({status}); see {}", dir.join("bridge.log").display());
        }
        anyhow::ensure!(Instant::now() < deadline, "the bridge did not answer /health within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Bridge { child, base_url, token, auth_token, _dir: tmp })
}

/// Calls by CallSid, for the consoles.
type CallsBySid = Arc<Mutex<HashMap<String, CallProbe>>>;

#[derive(Default)]
struct ConsoleStats {
    latencies: Vec<u32>,
    events: u64,
    resyncs: u64,
}

/// One console: reads the feed, acknowledges, measures transcript deltas.
async fn run_console(url: String, token: String, calls: CallsBySid, epoch: Instant, stop: tokio_util::sync::CancellationToken) -> anyhow::Result<ConsoleStats> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
    let (mut tx, mut rx) = ws.split();
    let mut stats = ConsoleStats::default();
    let mut received: u64 = 0;
    let mut indexes: HashMap<(String, String), u32> = HashMap::new();
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            m = rx.next() => m,
        };
        let at_ns = epoch.elapsed().as_nanos() as u64;
        let Some(Ok(msg)) = msg else { break };
        let Message::Text(text) = msg else { continue };
        received += 1;
        stats.events += 1;
        let text = text.as_str();
        if text.contains(r#""type":"transcript_delta""#) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
                let ev = &v["event"];
                if let (Some(sid), Some(item)) = (ev["call_sid"].as_str(), ev["item_id"].as_str()) {
                    let n = indexes.entry((sid.to_string(), item.to_string())).or_default();
                    let index = *n;
                    *n += 1;
                    let probe = calls.lock().get(sid).cloned();
                    if let Some(p) = probe
                        && let Some(us) = p.feed_latency_us(item, index, at_ns) {
                            stats.latencies.push(us);
                        }
                }
            }
        } else if text.contains(r#""reason":"resync""#) {
            stats.resyncs += 1;
        }
        // Acknowledge in batches, as the console does.
        if received.is_multiple_of(16) {
            tx.send(Message::text(format!(r#"{{"type":"ack","received":{received}}}"#))).await?;
        }
    }
    Ok(stats)
}

/// Runs one step: N calls through a fresh bridge.
pub async fn run_step(opts: &LoadOptions) -> anyhow::Result<StepReport> {
    anyhow::ensure!(opts.calls > 0 && !opts.scenarios.is_empty(), "at least one call and one scenario");
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    // One scenario per call slot, each with its own caller number (the model fake and the
    // probes find a call by it).
    let slots: Vec<Scenario> = (0..opts.calls)
        .map(|i| {
            let mut s = opts.scenarios[i % opts.scenarios.len()].clone();
            s.caller_number = format!("+1555{:07}", 1_000_000 + i);
            s
        })
        .collect();
    let probes = Arc::new(Probes::default());
    let fake = ModelFake::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), slots.clone(), ModelFakeOptions { keep_audio: false, probes: Some(probes.clone()), pacing: opts.pacing, ..Default::default() }).await?;
    let mut bridge = start_bridge(opts, &fake.url()).await?;
    let pid = bridge.child.id().context("the bridge has no pid")? as i32;
    let me = std::process::id() as i32;

    let epoch = Instant::now();
    let window_ns = (opts.ramp.as_nanos() as u64, (opts.ramp + opts.hold).as_nanos() as u64);
    let window = Arc::new(Mutex::new(window_ns));
    let idle = sample_process(pid).map(|s| s.1).unwrap_or(0);
    let idle_me = sample_process(me).map(|s| s.1).unwrap_or(0);

    // /proc sampler, once a second.
    let stop_sampler = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let stop = stop_sampler.clone();
        tokio::spawn(async move {
            let (mut bridge_s, mut me_s) = (Samples::default(), Samples::default());
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        let t = epoch.elapsed().as_secs_f64();
                        if let Some((cpu, rss)) = sample_process(pid) { bridge_s.points.push((t, cpu, rss)); }
                        if let Some((cpu, rss)) = sample_process(me) { me_s.points.push((t, cpu, rss)); }
                    }
                }
            }
            (bridge_s, me_s)
        })
    };

    // Consoles.
    let calls_by_sid: CallsBySid = Arc::default();
    let stop_consoles = tokio_util::sync::CancellationToken::new();
    let live_url = format!("{}/api/live", bridge.base_url.replace("http://", "ws://"));
    let consoles: Vec<_> = (0..opts.consoles).map(|_| tokio::spawn(run_console(live_url.clone(), bridge.token.clone(), calls_by_sid.clone(), epoch, stop_consoles.clone()))).collect();

    // The attackers (the soak of issue 15).
    let stop_hostile = tokio_util::sync::CancellationToken::new();
    let hostile = opts.hostile.then(|| Hostile::start(&bridge.base_url, &bridge.auth_token, stop_hostile.clone()));

    // Call slots.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let agg = Arc::new(Mutex::new(Aggregate::new()));
    let hold_end = epoch + opts.ramp + opts.hold;
    let mut slot_tasks = Vec::new();
    for (i, scenario) in slots.into_iter().enumerate() {
        let start_at = epoch + opts.ramp.mul_f64(i as f64 / opts.calls as f64) + frame_phase(i);
        let (agg, probes, calls_by_sid, window) = (agg.clone(), probes.clone(), calls_by_sid.clone(), window.clone());
        let (base, auth_token, client) = (bridge.base_url.clone(), bridge.auth_token.clone(), http.clone());
        let taken_over = i < opts.takeovers;
        let console_token = bridge.token.clone();
        slot_tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            while Instant::now() + Duration::from_secs(1) < hold_end {
                let probe = CallProbe::new(epoch, window.clone());
                let call_sid = new_call_sid();
                probes.register(&scenario.caller_number, probe.clone());
                calls_by_sid.lock().insert(call_sid.clone(), probe.clone());
                let caller = CallerOptions { keep_audio: false, probe: Some(probe.clone()), max_stream_ms: hold_end.saturating_duration_since(Instant::now()).as_millis() as u64, ..Default::default() };
                let sim = SimulateOptions { caller, auth_token: Some(auth_token.clone()), public_url: Some(base.clone()), call_sid: Some(call_sid.clone()), client: Some(client.clone()), to: None };
                let supervisor = taken_over.then(|| tokio::spawn(supervise(base.clone(), console_token.clone(), call_sid.clone(), probe.clone(), client.clone())));
                let result = place_call(&base, &scenario, &sim).await;
                if let Some(s) = supervisor {
                    s.abort();
                }
                // The model fake's last writes for this call may trail the caller's stop.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let totals = probe.finish();
                let mut a = agg.lock();
                a.placed += 1;
                if let Ok(call) = &result {
                    a.webhook.saturating_record(call.webhook_us.max(1));
                }
                match result {
                    Ok(call) if call.report.closed_by_server => a.fail(format!("{call_sid}: the bridge ended the call at {} ms", call.report.ended_ms)),
                    Ok(_) => {}
                    Err(e) => a.fail(format!("{call_sid}: {e:#}")),
                }
                if !totals.lost_detail.is_empty() && a.failures.len() < 10 {
                    a.failures.push(format!("{call_sid}: {}", totals.lost_detail));
                }
                a.add(totals, taken_over);
            }
        }));
    }
    for t in slot_tasks {
        let _ = t.await;
    }
    stop_hostile.cancel();
    let hostile = match hostile {
        Some((h, tasks)) => {
            for t in tasks {
                let _ = t.await;
            }
            Some(h)
        }
        None => None,
    };
    stop_consoles.cancel();
    let mut feed = histogram();
    let (mut events, mut resyncs) = (0, 0);
    for c in consoles {
        match c.await {
            Ok(Ok(s)) => {
                for us in s.latencies {
                    feed.saturating_record(u64::from(us).max(1));
                }
                events += s.events;
                resyncs += s.resyncs;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "a console failed"),
            Err(e) => tracing::warn!(error = %e, "a console task failed"),
        }
    }
    stop_sampler.cancel();
    let (bridge_s, me_s) = sampler.await.unwrap_or_default();
    let _ = bridge.child.kill().await;
    fake.stop();

    let a = agg.lock();
    let t = &a.totals;
    let hold = (opts.ramp.as_secs_f64(), (opts.ramp + opts.hold).as_secs_f64());
    let mut report = StepReport {
        calls: opts.calls,
        ramp_s: opts.ramp.as_secs_f64(),
        hold_s: opts.hold.as_secs_f64(),
        pacing: format!("{:?}", opts.pacing),
        webhook: Percentiles::of(&a.webhook),
        hostile: hostile.map(|h| h.report(bridge_s.hold_ends(hold))),
        takeovers: opts.takeovers.min(opts.calls),
        supervisor_to_caller: DirectionReport { frames: t.voice_sent, lost: t.voice_lost, latency: Percentiles::of(&a.voice), ..Default::default() },
        calls_placed: a.placed,
        calls_failed: a.failed,
        failures: a.failures.clone(),
        caller_to_model: DirectionReport { frames: t.up_sent, lost: t.up_lost, duplicated: t.up_duplicated, reordered: t.up_reordered, corrupted: t.up_unknown, cancelled_unheard: 0, latency: Percentiles::of(&a.up) },
        model_to_caller: DirectionReport {
            frames: t.down_sent,
            lost: t.down_lost,
            duplicated: t.down_duplicated,
            reordered: t.down_reordered,
            corrupted: t.down_unknown,
            cancelled_unheard: t.down_cancelled_unheard,
            latency: Percentiles::of(&a.down),
        },
        barge_in: BargeInReport { speech_started: t.speech_started, unexplained_clears: t.clears_unexplained, reaction: Percentiles::of(&a.barge) },
        live_feed: FeedReport { consoles: opts.consoles, events, resyncs, latency: Percentiles::of(&feed) },
        bridge: bridge_s.report(idle, hold, opts.calls),
        loadgen: me_s.report(idle_me, hold, opts.calls),
        caller_timer_late: Percentiles::of(&a.late),
        pass: false,
    };
    report.pass = passes(&report, opts.p99_limit_us);
    Ok(report)
}

impl StepReport {
    /// True when the step failed on its latency limit only: every frame arrived once, in
    /// order and whole, and no call failed.
    pub fn latency_only_failure(&self) -> bool {
        let whole = |d: &DirectionReport| d.latency.count > 0 && d.lost == 0 && d.duplicated == 0 && d.reordered == 0 && d.corrupted == 0;
        !self.pass && self.calls_failed == 0 && whole(&self.caller_to_model) && whole(&self.model_to_caller)
    }
}

fn passes(r: &StepReport, limit_us: u64) -> bool {
    let dir_ok = |d: &DirectionReport| d.latency.count > 0 && d.latency.p99_us < limit_us && d.lost == 0 && d.duplicated == 0 && d.reordered == 0 && d.corrupted == 0;
    r.calls_failed == 0 && dir_ok(&r.caller_to_model) && dir_ok(&r.model_to_caller)
}

/// Ramp mode: steps from `opts.calls`, ×1.5 while they pass (up to `max_calls`), then halving the
/// gap between the last pass and the first failure until it is within 10 %. A step that fails
/// on latency alone (nothing lost, no call failed) is run once more and fails only if it fails
/// again: on this shared, virtualised machine one run in a few has a stall of several ms that
/// is the machine's, not the load's (the load generator's own timers are late by as much), and
/// a single such run would end the ramp far below what the bridge carries. Both runs are
/// reported.
pub async fn ramp(opts: &LoadOptions, max_calls: usize, mut on_step: impl FnMut(&StepReport)) -> anyhow::Result<RampReport> {
    let mut report = RampReport::default();
    let mut n = opts.calls;
    let (mut pass, mut fail): (Option<usize>, Option<usize>) = (None, None);
    loop {
        let mut step = run_step(&LoadOptions { calls: n, ..opts.clone() }).await?;
        on_step(&step);
        if !step.pass && step.latency_only_failure() {
            report.steps.push(step);
            step = run_step(&LoadOptions { calls: n, ..opts.clone() }).await?;
            on_step(&step);
        }
        if step.pass {
            pass = Some(pass.map_or(n, |p| p.max(n)));
        } else {
            fail = Some(fail.map_or(n, |f| f.min(n)));
        }
        report.steps.push(step);
        n = match (pass, fail) {
            (Some(p), None) if p >= max_calls => break,
            (Some(p), None) => ((p as f64 * 1.5) as usize).min(max_calls),
            (None, Some(f)) if f <= 10 => break,
            (None, Some(f)) => f / 2,
            (Some(p), Some(f)) if (f - p) as f64 <= p as f64 * 0.1 => break,
            (Some(p), Some(f)) => (p + f) / 2,
            (None, None) => break,
        };
    }
    report.largest_passing = pass;
    Ok(report)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// A supervisor on a call (`--takeovers`): [`TAKEOVER_AFTER`] into the call, takes its voice
/// (`POST /api/calls/{sid}/voice/take`, retried until the call is live) and talks on the live
/// feed until the call ends: a loud 20 ms frame every 20 ms, each stamped for the probe, as a
/// microphone would send them. Aborted when the call ends.
async fn supervise(base: String, token: String, call_sid: String, probe: CallProbe, http: reqwest::Client) -> anyhow::Result<()> {
    tokio::time::sleep(TAKEOVER_AFTER).await;
    let take = format!("{base}/api/calls/{call_sid}/voice/take");
    let mut tries = 0;
    loop {
        let r = http.post(&take).bearer_auth(&token).send().await?;
        if r.status().is_success() {
            break;
        }
        tries += 1;
        anyhow::ensure!(tries < 50, "voice/take for {call_sid}: {}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut req = format!("{}/api/live", base.replace("http://", "ws://")).into_client_request()?;
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text(serde_json::json!({"type":"talk","call_sid":call_sid}).to_string())).await?;
    // What the feed sends (every call's events) is read and dropped, as a console would; the
    // reader (which holds the socket open) goes when this task is aborted at the call's end.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _reader = AbortOnDrop(tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} }));
    let mut tick = tokio::time::interval(Duration::from_millis(watchfloor_wire::mulaw::FRAME_MS));
    let mut position_ms = 0;
    loop {
        tick.tick().await;
        let mut frame = vec![0x10u8; watchfloor_wire::mulaw::FRAME_BYTES];
        probe.stamp_voice_sent(&mut frame);
        tx.send(Message::binary(watchfloor_call::live::encode_voice_frame(&call_sid, position_ms, &frame))).await?;
        position_ms += watchfloor_wire::mulaw::FRAME_MS;
    }
}

/// A readable table of one step.
pub fn table(r: &StepReport) -> String {
    let mut s = String::new();
    let line = |s: &mut String, name: &str, p: &Percentiles, extra: String| {
        s.push_str(&format!("  {name:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  {extra}\n", p.count, ms(p.p50_us), ms(p.p90_us), ms(p.p99_us), ms(p.p999_us), ms(p.max_us)));
    };
    s.push_str(&format!(
        "{} concurrent calls (ramp {:.0} s, hold {:.0} s, model {}): {} placed, {} failed — {}\n",
        r.calls,
        r.ramp_s,
        r.hold_s,
        r.pacing,
        r.calls_placed,
        r.calls_failed,
        if r.pass { "PASS" } else { "FAIL" }
    ));
    s.push_str(&format!("  {:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "latency (ms)", "samples", "p50", "p90", "p99", "p99.9", "max"));
    let d = |d: &DirectionReport| format!("{} frames, lost {}, dup {}, reordered {}, corrupt {}", d.frames, d.lost, d.duplicated, d.reordered, d.corrupted);
    line(&mut s, "caller → model", &r.caller_to_model.latency, d(&r.caller_to_model));
    line(&mut s, "model → caller", &r.model_to_caller.latency, format!("{}; barged-in unheard {}", d(&r.model_to_caller), r.model_to_caller.cancelled_unheard));
    if r.takeovers > 0 {
        line(&mut s, "supervisor → caller", &r.supervisor_to_caller.latency, format!("{} taken-over calls (left out of the relay rows above); {} frames, unheard {}", r.takeovers, r.supervisor_to_caller.frames, r.supervisor_to_caller.lost));
    }
    line(&mut s, "barge-in → clear", &r.barge_in.reaction, format!("{} speech_started, {} unexplained clears", r.barge_in.speech_started, r.barge_in.unexplained_clears));
    line(&mut s, &format!("live feed ({} consoles)", r.live_feed.consoles), &r.live_feed.latency, format!("{} events, {} resyncs", r.live_feed.events, r.live_feed.resyncs));
    line(&mut s, "caller timer lateness", &r.caller_timer_late, "load generator health".into());
    line(&mut s, "voice webhook answer", &r.webhook, "send → TwiML read, every call placed".into());
    let p = |name: &str, p: &ProcessReport| {
        format!(
            "  {name:<22} CPU {:>6.1} % of a core ({:.3} % per call), RSS idle {} MiB, hold {} MiB, peak {} MiB, {:.1} KiB/call\n",
            p.cpu_percent,
            p.per_call_cpu_percent,
            p.rss_idle_kib / 1024,
            p.rss_hold_kib / 1024,
            p.rss_peak_kib / 1024,
            p.per_call_kib
        )
    };
    s.push_str(&p("bridge process", &r.bridge));
    s.push_str(&p("load generator", &r.loadgen));
    if let Some(h) = &r.hostile {
        s.push_str(&format!(
            "  hostile clients         {} wrong-password sign-ins ({} refused before a check), {} idle sockets opened, {} junk streams opened; bridge RSS {} → {} MiB over the hold\n",
            h.sign_ins, h.sign_ins_throttled, h.idle_sockets_opened, h.junk_streams_opened, h.rss_hold_start_kib / 1024, h.rss_hold_end_kib / 1024
        ));
    }
    for f in &r.failures {
        s.push_str(&format!("  failure: {f}\n"));
    }
    s
}

/// Writes a report as pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_starts_cover_the_frame_evenly_for_any_number_of_calls() {
        for n in [10usize, 200, 320, 1000] {
            // Ten 2 ms bins over the 20 ms frame.
            let mut bins = [0usize; 10];
            for i in 0..n {
                let phase = frame_phase(i);
                assert!(phase < Duration::from_millis(20));
                bins[(phase.as_micros() / 2000) as usize] += 1;
            }
            let (lo, hi) = (*bins.iter().min().unwrap(), *bins.iter().max().unwrap());
            assert!(lo >= n / 10 - 1 && hi <= n / 10 + 2, "{n} calls: bins {bins:?}");
        }
    }
}
