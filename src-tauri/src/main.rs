//! Watchfloor on the supervisor's desk: the whole bridge server in-process on loopback (a free
//! port, a fresh console token each launch), the console in a window already signed in,
//! listen-in on the desk's speakers, a tray icon with the live calls and the highest priority,
//! notifications for new P1 calls and danger alerts, and a quit that hands live calls to the
//! human line first.
//!
//! Places (the OS's standard ones, from Tauri's path resolver): the sled store in the app data
//! directory, `config.toml` in the app config directory, rolling daily logs in the app log
//! directory (and on stderr). `WATCHFLOOR_BIND` / `WATCHFLOOR_DATA_DIR` override them (tests).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// jemalloc, as in the headless server (its main.rs and BENCHMARKS.md say why).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod desk;
mod mic;
mod watch;

use std::net::SocketAddr;
use parking_lot::Mutex;
use std::time::Duration;

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tauri_plugin_dialog::{DialogExt, MessageDialogButtons};
use watchfloor_server::{Config, ServerHandle};

/// Longest a quit waits for live calls to be handed off and the store to be flushed.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
/// The webview's origins, allowed by the embedded server's CORS (Linux/macOS, Windows).
const WEBVIEW_ORIGINS: [&str; 2] = ["tauri://localhost", "http://tauri.localhost"];

/// The embedded server.
pub struct Server {
    handle: Mutex<Option<ServerHandle>>,
    calls: watchfloor_server::CallRegistry,
}

impl Server {
    /// Whether a call is live.
    pub fn is_live(&self, call_sid: &str) -> bool {
        self.calls.handle(call_sid).is_some()
    }
}

fn init_logging(dir: &std::path::Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::prelude::*;
    let filter = || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter());
    match std::fs::create_dir_all(dir).map(|_| tracing_appender::rolling::daily(dir, "watchfloor.log")) {
        Ok(file) => {
            let (writer, guard) = tracing_appender::non_blocking(file);
            let file_layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer).with_filter(filter());
            let _ = tracing_subscriber::registry().with(stderr).with(file_layer).try_init();
            Some(guard)
        }
        Err(e) => {
            let _ = tracing_subscriber::registry().with(stderr).try_init();
            tracing::warn!(error = %e, dir = %dir.display(), "no log file: logging to stderr only");
            None
        }
    }
}

/// The server's configuration on the desk: the config file from the app config directory,
/// the store in the app data directory, loopback on a free port, a fresh console token.
fn desk_config(app: &AppHandle) -> anyhow::Result<(Config, String)> {
    let paths = app.path();
    let config_file = paths.app_config_dir()?.join("config.toml");
    let mut cfg = Config::load(Some(&config_file))?;
    if std::env::var_os("WATCHFLOOR_DATA_DIR").is_none() {
        cfg.data_dir = paths.app_data_dir()?.join("store");
    }
    if std::env::var_os("WATCHFLOOR_BIND").is_none() {
        cfg.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    anyhow::ensure!(cfg.bind.ip().is_loopback(), "the desktop app serves on loopback only, not {}", cfg.bind);
    let token: String = {
        let bytes: [u8; 24] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    cfg.console_token = Some(watchfloor_server::config::Secret::new(token.clone()));
    cfg.cors_origins = WEBVIEW_ORIGINS.iter().map(|s| s.to_string()).collect();
    // Training scenarios ship with the app (bundle resources); in a checkout, the repository's.
    if let Ok(dir) = paths.resource_dir().map(|d| d.join("scenarios"))
        && dir.is_dir() {
            cfg.scenarios_dir = dir;
        }
    if cfg.openai_api_key.is_none() {
        // No model: real calls go to the human line; training calls show the console live.
        cfg.demo = true;
    }
    Ok((cfg, token))
}

fn setup(app: &mut tauri::App) -> Result<(), Box<dyn std::error::Error>> {
    let handle = app.handle().clone();
    let logs = handle.path().app_log_dir()?;
    if let Some(guard) = init_logging(&logs) {
        app.manage(guard);
    }
    let (cfg, token) = desk_config(&handle)?;
    let server = tauri::async_runtime::block_on(async {
        let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
        watchfloor_server::serve(cfg, listener).await.map_err(anyhow::Error::from)
    })?;
    let api = server.base_url();
    tracing::info!(%api, logs = %logs.display(), "watchfloor desktop: server started");
    let hub = server.calls.hub().clone();
    let calls = server.calls.clone();
    app.manage(Server { handle: Mutex::new(Some(server)), calls: calls.clone() });
    app.manage(desk::Desk::start(&hub));
    app.manage(mic::DeskMic::new(api.clone()));

    let init = format!("window.__WATCHFLOOR__ = {{ api: {}, token: {} }};", serde_json::to_string(&api)?, serde_json::to_string(&token)?);
    WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
        .title("Watchfloor")
        .inner_size(1440.0, 900.0)
        .min_inner_size(1280.0, 800.0)
        .initialization_script(&init)
        .build()?;

    let show = MenuItem::with_id(app, "show", "Open Watchfloor", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut tray = TrayIconBuilder::with_id("main").tooltip("Watchfloor: no live calls").menu(&menu).on_menu_event(|app, event| match event.id.as_ref() {
        "show" => show_main(app),
        "quit" => request_quit(app),
        _ => {}
    });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    watch::start(&handle, hub, calls);
    Ok(())
}

/// Brings the console window to the front.
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Quits, asking first when calls are live; those are handed to the human line before the
/// server stops.
fn request_quit(app: &AppHandle) {
    let live = app.state::<Server>().calls.len();
    if live == 0 {
        shutdown_and_exit(app.clone());
        return;
    }
    let app2 = app.clone();
    app.dialog()
        .message(format!("{live} call(s) are live. Quit Watchfloor and hand them to the human line?"))
        .title("Quit Watchfloor")
        .buttons(MessageDialogButtons::OkCancelCustom("Hand off and quit".into(), "Keep running".into()))
        .show(move |quit| {
            if quit {
                shutdown_and_exit(app2);
            }
        });
}

/// Stops the server — live calls' streams close, so Twilio runs the fallback verbs (the human
/// line) — waits for the store to flush (at most [`SHUTDOWN_DEADLINE`]), then exits.
fn shutdown_and_exit(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        let server = app.state::<Server>().handle.lock().take();
        if let Some(s) = server {
            let live = s.calls.len();
            tracing::info!(live, "quitting: handing live calls to the human line");
            if tokio::time::timeout(SHUTDOWN_DEADLINE, s.shutdown()).await.is_err() {
                tracing::error!("the server did not stop within {SHUTDOWN_DEADLINE:?}");
            }
        }
        app.exit(0);
    });
}

fn main() {
    // tokio-tungstenite's rustls selects no crypto provider: install one (TOOLCHAIN.md).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| show_main(app)))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .invoke_handler(tauri::generate_handler![desk::listen, desk::stop_listening, desk::set_volume, desk::listen_status, mic::mic_devices, mic::mic_select, mic::mic_talk, mic::mic_stop_talking, mic::mic_release, mic::mic_status])
        .setup(setup)
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.label() == "main" {
                    api.prevent_close();
                    request_quit(window.app_handle());
                }
        })
        .build(tauri::generate_context!("tauri.conf.json"));
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("watchfloor: cannot start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        if let RunEvent::ExitRequested { api, code, .. } = event
            && code.is_none() && app.state::<Server>().handle.lock().is_some() {
                // Not through our quit (e.g. the last window went away): quit properly.
                api.prevent_exit();
                request_quit(app);
            }
    });
}
