//! Listen-in on the desk's speakers: the Hub's audio broadcast feeds the mixer
//! (`watchfloor_listen`), which plays through rodio on the default output device. The device
//! lives on its own thread (a cpal stream is not `Send`); without a device everything else works
//! and the console says so.

use std::sync::Arc;

use parking_lot::Mutex;

use tauri::State;
use tokio::sync::broadcast::error::RecvError;
use watchfloor_call::{Hub, Track};
use watchfloor_listen::Mixer;

/// What the listen-in commands share.
pub struct Desk {
    /// The mixer every frame goes through.
    pub mixer: Mixer,
    /// Why there is no sound, when there is no output device.
    pub device_error: Arc<Mutex<Option<String>>>,
}

impl Desk {
    /// Starts the device thread and the feeder task.
    pub fn start(hub: &Hub) -> Desk {
        let mixer = Mixer::new();
        let device_error = Arc::new(Mutex::new(None));
        let (m, err) = (mixer.clone(), device_error.clone());
        let spawned = std::thread::Builder::new().name("listen-in".into()).spawn(move || match rodio::DeviceSinkBuilder::open_default_sink() {
            Ok(mut sink) => {
                sink.log_on_drop(false);
                sink.mixer().add(m.source());
                tracing::info!("listen-in: playing on the default output device");
                // The sink plays as long as it lives: for the life of the app.
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                let why = format!("No sound device: listen-in is unavailable ({e})");
                tracing::warn!("{why}");
                *err.lock() = Some(why);
            }
        });
        if let Err(e) = spawned {
            *device_error.lock() = Some(format!("listen-in could not start: {e}"));
        }
        // The feeder: every relayed frame is offered to the mixer, which keeps only the call
        // listened to. It drops what it cannot keep up with; a call never waits on it.
        let mut rx = hub.subscribe_audio();
        let m = mixer.clone();
        tauri::async_runtime::spawn(async move {
            loop {
                match rx.recv().await {
                    // The mixer keeps only the call and tracks listened to (one short lock).
                    Ok(frame) => {
                        m.push(&frame);
                    }
                    Err(RecvError::Lagged(n)) => tracing::debug!(missed = n, "listen-in lagged"),
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Desk { mixer, device_error }
    }
}

fn track(name: &str) -> Result<Track, String> {
    match name {
        "caller" => Ok(Track::Caller),
        "agent" => Ok(Track::Agent),
        other => Err(format!("unknown track {other:?}: caller or agent")),
    }
}

/// `listen(call_id, tracks)`: listen to one call (caller, agent or both mixed); switches at once.
#[tauri::command]
pub fn listen(desk: State<'_, Desk>, server: State<'_, crate::Server>, call_id: String, tracks: Vec<String>) -> Result<(), String> {
    let tracks = tracks.iter().map(|t| track(t)).collect::<Result<Vec<_>, _>>()?;
    if tracks.is_empty() {
        return Err("name caller, agent or both".into());
    }
    if !server.is_live(&call_id) {
        return Err(format!("call {call_id} is not live"));
    }
    desk.mixer.listen(&call_id, &tracks);
    Ok(())
}

/// `stop_listening()`.
#[tauri::command]
pub fn stop_listening(desk: State<'_, Desk>) {
    desk.mixer.stop();
}

/// `set_volume(track, level)`: 0.0–2.0; 0 mutes.
#[tauri::command]
pub fn set_volume(desk: State<'_, Desk>, track: String, level: f32) -> Result<(), String> {
    let t = self::track(&track)?;
    desk.mixer.set_volume(t, level);
    desk.mixer.set_muted(t, level <= 0.0);
    Ok(())
}

/// What the console shows of listen-in.
#[derive(serde::Serialize)]
pub struct ListenStatus {
    listening: Option<String>,
    frames_played: u64,
    underruns: u64,
    delay_ms: u64,
    device_error: Option<String>,
}

/// `listen_status()`.
#[tauri::command]
pub fn listen_status(desk: State<'_, Desk>) -> ListenStatus {
    let s = desk.mixer.stats();
    ListenStatus {
        listening: desk.mixer.listening(),
        frames_played: s.frames_played,
        underruns: s.underruns,
        delay_ms: s.delay_ms,
        device_error: desk.device_error.lock().clone(),
    }
}
