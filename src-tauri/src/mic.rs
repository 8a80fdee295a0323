//! The desk's microphone in a live call (issue 17): while the supervisor holds a call's voice,
//! what they say into the desk's microphone goes to the caller.
//!
//! Capture is rodio's microphone source (cpal underneath, rodio's own backend), converted to
//! mono 8 kHz by rodio's `UniformSourceIterator`, cut into 20 ms frames and encoded G.711 μ-law
//! ([`FrameEncoder`]). The frames take the browser console's path exactly: a live-feed
//! WebSocket to the embedded server, signed in with the console's token, `talk`, then `'S'`
//! frames (`encode_voice_frame`), `stop_talking` when the key is released. So the server checks,
//! audits, paces and records them like any console's, and a desk microphone that dies (its feed
//! closes) is a lost console: the call goes back to the agent (or the human line) with an alert.
//! The keepalives while the supervisor only listens come from the console's own feed (the
//! window holding the voice), as in a browser.
//!
//! The device lives on its own thread (a cpal stream is not `Send`). Push-to-talk and the
//! open-mic toggle are the console's keys; both call [`mic_talk`] / [`mic_stop_talking`]. The
//! device stays open from the first talk to the hand-back ([`mic_release`]), so a press of the
//! key starts sending at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rodio::Source;
use tauri::State;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use watchfloor_wire::mulaw;

/// Frames queued between the device thread and the feed, 20 ms each (a second): a feed that
/// cannot keep up loses the oldest audio (silence at the caller), never delays the rest.
const QUEUE_FRAMES: usize = 50;

/// Cuts mono 8 kHz samples (f32, −1.0–1.0) into 20 ms μ-law frames and measures their level.
#[derive(Debug, Default)]
pub struct FrameEncoder {
    pending: Vec<i16>,
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// 160 bytes of μ-law 8 kHz.
    pub audio: Vec<u8>,
    /// The frame's RMS level, dBFS (−100 for digital silence).
    pub level_dbfs: f32,
}

impl FrameEncoder {
    /// Takes one sample; returns a frame every 160 samples.
    pub fn push(&mut self, sample: f32) -> Option<Frame> {
        self.pending.push((sample.clamp(-1.0, 1.0) * 32767.0) as i16);
        if self.pending.len() < mulaw::FRAME_BYTES {
            return None;
        }
        let audio: Vec<u8> = self.pending.drain(..).map(mulaw::encode).collect();
        let level_dbfs = mulaw::rms_dbfs(&audio).max(-100.0);
        Some(Frame { audio, level_dbfs })
    }
}

/// What the console shows of the desk microphone.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MicStatus {
    /// The input device chosen (none: the system's default).
    pub device: Option<String>,
    /// The call the microphone is open for.
    pub call_sid: Option<String>,
    /// Frames are going to the caller (push-to-talk held, or the open mic on).
    pub talking: bool,
    /// The microphone's level over the last frame, dBFS (−100: silence or closed).
    pub level_dbfs: f32,
    /// Frames sent to the call since the microphone opened.
    pub frames_sent: u64,
    /// Why the microphone or its feed failed, if it did.
    pub error: Option<String>,
}

/// A microphone open for one call.
struct Session {
    call_sid: String,
    talking: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    commands: mpsc::UnboundedSender<FeedCommand>,
}

enum FeedCommand {
    Talk,
    StopTalking,
    Release,
}

/// The desk microphone (Tauri state).
pub struct DeskMic {
    /// The embedded server, e.g. `http://127.0.0.1:41234`.
    api: String,
    status: Arc<Mutex<MicStatus>>,
    session: Mutex<Option<Session>>,
}

impl DeskMic {
    /// The microphone of the desk whose server is at `api`.
    pub fn new(api: String) -> DeskMic {
        DeskMic { api, status: Arc::new(Mutex::new(MicStatus { level_dbfs: -100.0, ..Default::default() })), session: Mutex::new(None) }
    }

    /// Opens the device and a live feed signed in with `token` (the console's own: whoever is
    /// signed in at it, so a locked or signed-out console's token opens nothing).
    fn open(&self, call_sid: &str, token: &str) -> Session {
        let talking = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (frames_tx, frames_rx) = mpsc::channel::<Vec<u8>>(QUEUE_FRAMES);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        {
            let mut s = self.status.lock();
            s.call_sid = Some(call_sid.to_string());
            s.talking = true;
            s.frames_sent = 0;
            s.error = None;
        }
        let device = self.status.lock().device.clone();
        let (status, t, st) = (self.status.clone(), talking.clone(), stop.clone());
        let spawned = std::thread::Builder::new().name("desk-mic".into()).spawn(move || capture(device, frames_tx, t, st, status));
        if let Err(e) = spawned {
            self.status.lock().error = Some(format!("the microphone could not start: {e}"));
        }
        let (url, token, sid, status, stop2) = (self.api.replace("http://", "ws://") + "/api/live", token.to_string(), call_sid.to_string(), self.status.clone(), stop.clone());
        tauri::async_runtime::spawn(async move {
            if let Err(e) = feed(&url, &token, &sid, frames_rx, commands_rx, status.clone()).await {
                tracing::warn!(error = %e, "desk microphone: the live feed failed");
                status.lock().error = Some(e);
            }
            // The feed is gone: the device closes too.
            stop2.store(true, Ordering::Relaxed);
            let mut s = status.lock();
            s.talking = false;
            s.level_dbfs = -100.0;
        });
        Session { call_sid: call_sid.to_string(), talking, stop, commands }
    }

    fn release(&self) {
        if let Some(s) = self.session.lock().take() {
            s.stop.store(true, Ordering::Relaxed);
            let _ = s.commands.send(FeedCommand::Release);
        }
        let mut st = self.status.lock();
        st.call_sid = None;
        st.talking = false;
        st.level_dbfs = -100.0;
    }
}

/// Reads the device until told to stop: mono 8 kHz, 20 ms frames, sent while talking.
fn capture(device: Option<String>, frames: mpsc::Sender<Vec<u8>>, talking: Arc<AtomicBool>, stop: Arc<AtomicBool>, status: Arc<Mutex<MicStatus>>) {
    let mic = match open_microphone(device.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "desk microphone unavailable");
            status.lock().error = Some(e);
            return;
        }
    };
    tracing::info!(channels = mic.channels().get(), rate = mic.sample_rate().get(), "desk microphone open");
    let mono_8k = rodio::source::UniformSourceIterator::new(mic, std::num::NonZero::<u16>::MIN, std::num::NonZero::new(mulaw::SAMPLE_RATE_HZ).expect("8000 is not zero"));
    let mut encoder = FrameEncoder::default();
    for sample in mono_8k {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(frame) = encoder.push(sample) else { continue };
        let on = talking.load(Ordering::Relaxed);
        status.lock().level_dbfs = frame.level_dbfs;
        if on && frames.try_send(frame.audio).is_err() && frames.is_closed() {
            break;
        }
    }
    status.lock().level_dbfs = -100.0;
    tracing::info!("desk microphone closed");
}

/// The chosen input device (by name) or the system's default, preferring mono at 8 or 16 kHz.
fn open_microphone(device: Option<&str>) -> Result<rodio::microphone::Microphone, String> {
    use rodio::microphone::{MicrophoneBuilder, available_inputs};
    let builder = MicrophoneBuilder::new();
    let builder = match device {
        Some(name) => {
            let input = available_inputs().map_err(|e| format!("no input devices: {e}"))?.into_iter().find(|i| i.to_string() == name).ok_or_else(|| format!("no input device named {name:?}"))?;
            builder.device(input).map_err(|e| format!("input device {name:?}: {e}"))?
        }
        None => builder.default_device().map_err(|e| format!("no default input device: {e}"))?,
    };
    let rates = [8_000u32, 16_000, 48_000].map(|r| std::num::NonZero::new(r).expect("not zero"));
    let configured = builder
        .default_config()
        .map_err(|e| format!("the input device has no usable configuration: {e}"))?
        .prefer_channel_counts([std::num::NonZero::<u16>::MIN])
        .prefer_sample_rates(rates);
    // Periods of 20 ms (else 40, 100): the device's default buffer can hold seconds (ALSA's
    // PulseAudio plugin's does), and every sample waits for its period to fill.
    let rate = configured.get_config().sample_rate.get();
    let configured = configured.prefer_buffer_sizes([rate / 50, rate / 25, rate / 10]);
    let c = configured.get_config();
    tracing::info!(rate = c.sample_rate.get(), channels = c.channel_count.get(), buffer = ?c.buffer_size, "desk microphone configuration");
    configured.open_stream().map_err(|e| format!("the microphone could not be opened: {e}"))
}

/// The live feed of the desk microphone: `talk`, the frames, `stop_talking`.
async fn feed(url: &str, token: &str, call_sid: &str, mut frames: mpsc::Receiver<Vec<u8>>, mut commands: mpsc::UnboundedReceiver<FeedCommand>, status: Arc<Mutex<MicStatus>>) -> Result<(), String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().map_err(|_| "the console token is not a header value".to_string())?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| format!("the live feed: {e}"))?;
    let json = |v: serde_json::Value| Message::text(v.to_string());
    let talk = json(serde_json::json!({"type":"talk","call_sid":call_sid}));
    ws.send(talk.clone()).await.map_err(|e| e.to_string())?;
    let mut talking = true;
    let mut position_ms: u64 = 0;
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(audio) if talking => {
                    let msg = watchfloor_call::live::encode_voice_frame(call_sid, position_ms, &audio);
                    position_ms += mulaw::FRAME_MS;
                    ws.send(Message::binary(msg)).await.map_err(|e| e.to_string())?;
                    status.lock().frames_sent += 1;
                }
                Some(_) => {}
                // The device closed (an error is in the status).
                None => break,
            },
            cmd = commands.recv() => match cmd {
                Some(FeedCommand::Talk) if !talking => {
                    talking = true;
                    ws.send(talk.clone()).await.map_err(|e| e.to_string())?;
                }
                Some(FeedCommand::StopTalking) if talking => {
                    talking = false;
                    ws.send(json(serde_json::json!({"type":"stop_talking"}))).await.map_err(|e| e.to_string())?;
                }
                Some(FeedCommand::Talk | FeedCommand::StopTalking) => {}
                Some(FeedCommand::Release) | None => break,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("error") => {
                            let why = v["message"].as_str().unwrap_or("refused").to_string();
                            tracing::warn!(%why, "desk microphone: the server refused");
                            status.lock().error = Some(why);
                        }
                        // The voice was handed back or taken by another: nothing more to send.
                        Some("talk_stopped") if v["call_sid"] == call_sid => {
                            talking = false;
                            status.lock().talking = false;
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("the live feed: {e}")),
                None => return Err("the live feed closed".into()),
            },
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// `mic_devices()`: the names of the desk's input devices.
#[tauri::command]
pub fn mic_devices() -> Result<Vec<String>, String> {
    rodio::microphone::available_inputs().map(|v| v.iter().map(ToString::to_string).collect()).map_err(|e| e.to_string())
}

/// `mic_select(device)`: the input device to use from the next talk (none: the default).
#[tauri::command]
pub fn mic_select(mic: State<'_, DeskMic>, device: Option<String>) {
    mic.status.lock().device = device;
}

/// `mic_talk(call_id, token)`: the desk microphone goes to the caller of a call whose voice the
/// console holds (push-to-talk pressed, or the open mic turned on). Opens the device and a live
/// feed signed in with `token` (the console's current token: the desk's own, or the session of
/// a user who signed in at the desk) the first time; refusals (not the holder, the call ended,
/// the console locked) come back in [`mic_status`]'s `error`.
#[tauri::command]
pub fn mic_talk(mic: State<'_, DeskMic>, server: State<'_, crate::Server>, call_id: String, token: String) -> Result<(), String> {
    if !server.is_live(&call_id) {
        return Err(format!("call {call_id} is not live"));
    }
    let mut session = mic.session.lock();
    match session.as_ref() {
        Some(s) if s.call_sid == call_id => {
            s.talking.store(true, Ordering::Relaxed);
            let _ = s.commands.send(FeedCommand::Talk);
            mic.status.lock().talking = true;
        }
        _ => {
            drop(session);
            mic.release();
            let s = mic.open(&call_id, &token);
            session = mic.session.lock();
            *session = Some(s);
        }
    }
    Ok(())
}

/// `mic_stop_talking()`: the key released (or the open mic turned off): nothing more goes to the
/// caller; the device stays open while the console holds the voice.
#[tauri::command]
pub fn mic_stop_talking(mic: State<'_, DeskMic>) {
    if let Some(s) = mic.session.lock().as_ref() {
        s.talking.store(false, Ordering::Relaxed);
        let _ = s.commands.send(FeedCommand::StopTalking);
    }
    let mut st = mic.status.lock();
    st.talking = false;
}

/// `mic_release()`: the voice was handed back: the device and its feed close.
#[tauri::command]
pub fn mic_release(mic: State<'_, DeskMic>) {
    mic.release();
}

/// `mic_status()`.
#[tauri::command]
pub fn mic_status(mic: State<'_, DeskMic>) -> MicStatus {
    mic.status.lock().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_20_ms_mulaw_frames_with_their_level() {
        let mut enc = FrameEncoder::default();
        let tone: Vec<f32> = (0..480).map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * 400.0 / 8000.0).sin()).collect();
        let frames: Vec<Frame> = tone.iter().filter_map(|&s| enc.push(s)).collect();
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.audio.len() == 160));
        // A sine at half scale: RMS 0.354, about −9 dBFS.
        assert!((frames[0].level_dbfs + 9.0).abs() < 1.0, "{}", frames[0].level_dbfs);
        assert_eq!(mulaw::decode(frames[0].audio[20]), mulaw::decode(mulaw::encode((tone[20] * 32767.0) as i16)));
        let silent: Vec<Frame> = (0..160).filter_map(|_| enc.push(0.0)).collect();
        assert!(silent[0].level_dbfs < -60.0);
        assert!(enc.push(2.0).is_none(), "out-of-range samples are clipped, not refused");
    }
}
