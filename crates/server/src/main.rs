//! `watchfloor`: the headless server and its tools.
//!
//! - `watchfloor serve`: the server (webhook, media stream, API) with its sled store.
//! - `watchfloor simulate <scenario>`: place a simulated call through a running server.
//! - `watchfloor model-fake`: run the Realtime model fake on loopback (for manual runs).
//! - `watchfloor hash-password`: hash a console user's password for the config file.
//! - `watchfloor scenarios`: list the scenarios.
//! - `watchfloor loadgen`: N concurrent real-time calls through a bridge in its own process,
//!   measured per frame (BENCHMARKS.md).

use std::net::SocketAddr;

/// jemalloc, not glibc's malloc: with glibc the bridge's resident memory was twice its heap
/// and kept growing (arena fragmentation across the tokio workers, the store writer and sled's
/// threads). Same 150 s of 200 calls: peak RSS 148 MiB with jemalloc, about 300 MiB with glibc,
/// and less CPU (BENCHMARKS.md, issue 15).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use watchfloor_server::{Config, serve};
use watchfloor_sim::caller::CallerOptions;
use watchfloor_sim::model::{ModelFake, ModelFakeOptions, Pacing};
use watchfloor_sim::simulate::{SimulateOptions, place_call};
use watchfloor_sim::{Scenario, scenario};

#[derive(Parser)]
#[command(name = "watchfloor", version, about = "Supervisor console for AI-answered emergency calls")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (configuration: config file, then environment; see README).
    Serve {
        /// Config file (default: the user's config directory, watchfloor/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address (overrides WATCHFLOOR_BIND).
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Data directory (overrides WATCHFLOOR_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Training mode: place simulated calls (the scenario set, answered by the model fake,
        /// marked SIMULATED) so the console shows live calls at once.
        #[arg(long)]
        demo: bool,
    },
    /// Place a simulated call through a running server.
    Simulate {
        /// Scenario name (see `watchfloor scenarios`).
        scenario: String,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Time scale of the caller (1 = real time).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Twilio auth token to sign with, when the server checks signatures.
        #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
        auth_token: Option<String>,
        /// The server's public URL, when it differs from --server (signatures).
        #[arg(long, env = "WATCHFLOOR_PUBLIC_URL")]
        public_url: Option<String>,
        /// Scenario directory.
        #[arg(long)]
        scenarios: Option<PathBuf>,
    },
    /// Run the Realtime model fake (point OPENAI_REALTIME_URL at it; any OPENAI_API_KEY).
    ModelFake {
        /// Listen address (loopback).
        #[arg(long, default_value = "127.0.0.1:9090")]
        bind: SocketAddr,
        /// Time scale (1 = real time).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// How replies are streamed: `real` (a whole reply within about a second, deltas of
        /// varying size, as the real service), `burst:<× real time>`, `steady` (100 ms deltas at
        /// 1.5× real time) or `steady:<× real time>`.
        #[arg(long, default_value = "real", value_parser = Pacing::parse)]
        pacing: Pacing,
        /// Scenario directory.
        #[arg(long)]
        scenarios: Option<PathBuf>,
    },
    /// Hash a console user's password for the config file (reads one line from standard input).
    HashPassword,
    /// A consistent copy of the store into DEST (a new or empty directory): through the
    /// running server (`POST /api/backup`, with the console token), or, when none answers,
    /// from the data directory directly.
    Backup {
        /// Where the backup goes (made absolute).
        dest: PathBuf,
        /// The running server (default: the configured bind address).
        #[arg(long)]
        server: Option<String>,
        /// Config file (for the data directory and the bind address).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Brings a backup back into the data directory (new or empty; stop the server first).
    Restore {
        /// The backup (a directory `watchfloor backup` made).
        src: PathBuf,
        /// Data directory (overrides WATCHFLOOR_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Config file (for the data directory).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Load generator: N concurrent real-time calls through `watchfloor serve` started as a child
    /// process, the model and caller fakes here; latency per frame, loss, barge-in, live feed,
    /// the bridge's CPU and memory. Build with --release for meaningful figures (cargo feature
    /// `loadgen`, on by default for this binary).
    #[cfg(feature = "loadgen")]
    Loadgen {
        /// Concurrent calls (the first step in --ramp mode).
        #[arg(long, default_value_t = 200)]
        calls: usize,
        /// Seconds over which the calls start.
        #[arg(long, default_value_t = 10.0)]
        ramp_s: f64,
        /// Seconds the load is held and measured after the ramp.
        #[arg(long, default_value_t = 30.0)]
        hold_s: f64,
        /// Consoles on the live feed.
        #[arg(long, default_value_t = 2)]
        consoles: usize,
        /// Find the largest N that passes (p99 under --p99-limit-ms both ways, nothing lost).
        #[arg(long)]
        ramp: bool,
        /// Largest N the ramp tries.
        #[arg(long, default_value_t = 3000)]
        max_calls: usize,
        /// Pass limit on p99 latency each way, ms.
        #[arg(long, default_value_t = 5.0)]
        p99_limit_ms: f64,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The watchfloor binary to run as the bridge (default: this one).
        #[arg(long)]
        serve_bin: Option<PathBuf>,
        /// Keep the bridge's data directory and log here.
        #[arg(long)]
        keep_dir: Option<PathBuf>,
        /// How the model fake streams replies: `real` (default), `burst:<×>`, `steady`, `steady:<×>`
        /// (see `model-fake --help`).
        #[arg(long, default_value = "real", value_parser = Pacing::parse)]
        pacing: Pacing,
        /// Attack the bridge while the calls run (issue 15's soak): 16 clients sending
        /// wrong-password sign-ins, 300 idle sockets, 20 signed media streams sending only junk.
        #[arg(long)]
        hostile: bool,
        /// Calls taken over by a supervisor who talks on the live feed for the rest of the call
        /// (issue 17): the first N; their voice latency is measured apart, and their relay
        /// figures are left out of the other calls'.
        #[arg(long, default_value_t = 0)]
        takeovers: usize,
        /// Run the bridge on these CPUs only (`taskset -c` list, e.g. `0`); run the load
        /// generator on the others (`taskset -c 1 watchfloor loadgen --bridge-cpus 0`), so the
        /// bridge's figures are per core (issue 22).
        #[arg(long)]
        bridge_cpus: Option<String>,
        /// Scenario directory.
        #[arg(long)]
        scenarios: Option<PathBuf>,
    },
    /// List the scenarios.
    Scenarios {
        /// Scenario directory.
        #[arg(long)]
        scenarios: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    // tokio-tungstenite's rustls selects no crypto provider: install one (TOOLCHAIN.md).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve { config, bind, data_dir, demo } => {
            let mut cfg = Config::load(config.as_deref())?;
            cfg.demo = demo;
            if let Some(b) = bind {
                cfg.bind = b;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
            let listener = tokio::net::TcpListener::bind(cfg.bind).await.with_context(|| format!("binding {}", cfg.bind))?;
            let token_file = watchfloor_server::auth::token_path(&cfg.data_dir);
            let preset = cfg.console_token.is_some();
            let handle = serve(cfg, listener).await?;
            eprintln!("Watchfloor is listening on {} (Ctrl-C to stop)", handle.base_url());
            if !preset {
                eprintln!("Console token: in {} (send it as Authorization: Bearer <token>)", token_file.display());
            }
            // A newcomer signs in from here: a one-time link, on the terminal only (never in a
            // log: it is printed, not traced, and only when stderr is a terminal).
            use std::io::IsTerminal as _;
            if std::io::stderr().is_terminal() {
                eprintln!("Open the console (one-time sign-in link, 15 minutes): {}", handle.sign_in_link());
            }
            let cancel = handle.cancel_token();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("shutting down: live calls go to the human line");
                cancel.cancel();
            });
            handle.wait().await;
        }
        Cmd::Simulate { scenario, server, speed, auth_token, public_url, scenarios } => {
            let dir = scenarios.unwrap_or_else(scenario::default_dir);
            let sc = Scenario::load(&dir, &scenario)?;
            let opts = SimulateOptions { caller: CallerOptions { speed, ..Default::default() }, auth_token, public_url, call_sid: None, ..Default::default() };
            let call = place_call(&server, &sc, &opts).await?;
            println!("call {} ({}): heard {} ms of agent audio, {} barge-in clear(s), stream {} ms", call.call_sid, sc.name, call.report.heard_audio.len() / 8, call.report.clears.len(), call.report.ended_ms);
        }
        Cmd::ModelFake { bind, speed, pacing, scenarios } => {
            anyhow::ensure!(bind.ip().is_loopback(), "the model fake listens on loopback only");
            let dir = scenarios.unwrap_or_else(scenario::default_dir);
            let fake = ModelFake::start(bind, Scenario::load_all(&dir)?, ModelFakeOptions { speed, pacing, ..Default::default() }).await?;
            eprintln!("Realtime model fake at {} (Ctrl-C to stop)", fake.url());
            tokio::signal::ctrl_c().await?;
        }
        Cmd::Backup { dest, server, config } => {
            let cfg = Config::load(config.as_deref())?;
            let dest = std::path::absolute(&dest)?;
            let server = server.unwrap_or_else(|| format!("http://{}", cfg.bind));
            let token = match &cfg.console_token {
                Some(t) => Some(t.expose().to_string()),
                None => std::fs::read_to_string(watchfloor_server::auth::token_path(&cfg.data_dir)).ok().map(|t| t.trim().to_string()),
            };
            let http = reqwest::Client::builder().no_proxy().build()?;
            let answer = http.post(format!("{}/api/backup", server.trim_end_matches('/'))).bearer_auth(token.unwrap_or_default()).json(&serde_json::json!({"dest": dest})).send().await;
            match answer {
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await?;
                    anyhow::ensure!(status.is_success(), "the server refused the backup ({status}): {body}");
                    println!("{body}");
                }
                Err(e) if e.is_connect() => {
                    eprintln!("no server answers at {server}: copying {} directly", cfg.data_dir.display());
                    let (store, _) = watchfloor_store::Store::open(&cfg.data_dir).context("opening the store (is a server running on it?)")?;
                    let report = store.backup(&dest).await?;
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Cmd::Restore { src, data_dir, config } => {
            let mut cfg = Config::load(config.as_deref())?;
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            let report = watchfloor_store::backup::restore(&src, &cfg.data_dir)?;
            eprintln!("restored into {} (a new console token is made at the next start)", cfg.data_dir.display());
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Cmd::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let pw = line.trim_end_matches(['\r', '\n']);
            // The policy an administrator's console applies (NIST SP 800-63B).
            watchfloor_server::auth::check_password("", pw).map_err(anyhow::Error::msg)?;
            println!("{}", watchfloor_server::auth::hash_password(pw));
        }
        #[cfg(feature = "loadgen")]
        Cmd::Loadgen { calls, ramp_s, hold_s, consoles, ramp, max_calls, p99_limit_ms, json, serve_bin, keep_dir, pacing, hostile, takeovers, bridge_cpus, scenarios } => {
            use watchfloor_sim::loadgen;
            let dir = scenarios.unwrap_or_else(scenario::default_dir);
            let opts = loadgen::LoadOptions {
                calls,
                ramp: std::time::Duration::from_secs_f64(ramp_s),
                hold: std::time::Duration::from_secs_f64(hold_s),
                consoles,
                serve_bin: match serve_bin {
                    Some(b) => b,
                    None => std::env::current_exe()?,
                },
                scenarios: Scenario::load_all(&dir)?,
                p99_limit_us: (p99_limit_ms * 1000.0) as u64,
                keep_dir,
                pacing,
                hostile,
                takeovers,
                bridge_cpus,
            };
            if ramp {
                let report = loadgen::ramp(&opts, max_calls, |step| println!("{}", loadgen::table(step))).await?;
                match report.largest_passing {
                    Some(n) => println!("largest N passing: {n} concurrent calls"),
                    None => println!("no step passed"),
                }
                if let Some(path) = json {
                    loadgen::write_json(&path, &report)?;
                }
            } else {
                let report = loadgen::run_step(&opts).await?;
                println!("{}", loadgen::table(&report));
                if let Some(path) = json {
                    loadgen::write_json(&path, &report)?;
                }
            }
        }
        Cmd::Scenarios { scenarios } => {
            let dir = scenarios.unwrap_or_else(scenario::default_dir);
            for s in Scenario::load_all(&dir)? {
                println!("{:<16} {} (caller {})", s.name, s.description, s.caller_number);
            }
        }
    }
    Ok(())
}
