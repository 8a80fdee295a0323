//! The async task of one call: owns the Twilio socket and the model socket, feeds the
//! [`CallMachine`], and carries out its outputs. Nothing else writes to either socket.

use std::future::pending;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use watchfloor_wire::realtime::ServerEvent;
use watchfloor_wire::twilio::TwilioInbound;

use crate::event::{CallEventKind, CallStatus};
use crate::machine::{CallMachine, Input, Output};
use crate::model::{self, ModelConfig, ModelSocket};
use crate::profile::{AgentProfile, CallContext};
use crate::registry::{ActiveCall, CommandMsg, Hub, lock};

/// A frame read from the Twilio WebSocket, independent of the server framework.
#[derive(Debug)]
pub enum TwilioFrame {
    /// A text frame (every Twilio message).
    Text(String),
    /// A binary frame (Twilio never sends these): its size in bytes.
    Binary(usize),
    /// The socket closed or failed.
    Closed,
}

/// Error type of the Twilio sink.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// The media-stream socket of one call, handed from the HTTP server to the call's task.
pub struct TwilioSocket {
    /// Frames from Twilio.
    pub rx: Pin<Box<dyn Stream<Item = TwilioFrame> + Send>>,
    /// Text frames to Twilio; `close()` closes the WebSocket.
    pub tx: Pin<Box<dyn Sink<String, Error = SinkError> + Send>>,
    /// Messages the server already read before handing over (`connected`, `start`).
    pub already_read: Vec<TwilioInbound>,
}

/// Everything a call's task needs to start.
pub struct CallSetup {
    /// CallSid.
    pub call_sid: Arc<str>,
    /// Caller number.
    pub from: String,
    /// Called number.
    pub to: String,
    /// Placed by the simulator.
    pub simulated: bool,
    /// When the webhook (or stream) arrived.
    pub received: Instant,
    /// Same, ms since the Unix epoch.
    pub received_unix_ms: u64,
    /// Agent profile.
    pub profile: Arc<AgentProfile>,
    /// Model to connect to.
    pub model: Arc<ModelConfig>,
    /// How long to wait for the media stream.
    pub claim_window: Duration,
    /// Caller history line for the agent's instructions.
    pub history: Option<String>,
}

/// Current wall-clock time, ms since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn next_twilio(sock: &mut Option<TwilioSocket>) -> TwilioFrame {
    match sock {
        Some(s) => s.rx.next().await.unwrap_or(TwilioFrame::Closed),
        None => pending().await,
    }
}

async fn next_model(sock: &mut Option<ModelSocket>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match sock {
        Some(s) => s.next().await,
        None => pending().await,
    }
}

/// Runs one call to its end. Never panics on remote input; returns when the call is over for
/// the bridge (both sockets closed).
pub async fn run_call(
    setup: CallSetup,
    mut claim_rx: oneshot::Receiver<TwilioSocket>,
    mut commands: mpsc::Receiver<CommandMsg>,
    hub: Hub,
    cancel: CancellationToken,
    summary: Arc<Mutex<ActiveCall>>,
) {
    let mut machine = CallMachine::new(
        setup.call_sid.clone(),
        setup.profile.clone(),
        CallContext { caller_number: setup.from.clone(), history: setup.history.clone() },
        setup.to.clone(),
        setup.simulated,
        setup.received,
        setup.received_unix_ms,
    );
    let mut twilio: Option<TwilioSocket> = None;
    let mut model_sock: Option<ModelSocket> = None;
    let mut awaiting_claim = true;
    let mut connecting = true;
    let model_cfg = setup.model.clone();
    let connect = async move { model::connect(&model_cfg).await };
    tokio::pin!(connect);
    let claim_deadline = tokio::time::sleep(setup.claim_window);
    tokio::pin!(claim_deadline);
    let mut commands_open = true;
    let mut pending_ack: Option<(oneshot::Sender<bool>, bool)> = None;

    loop {
        tokio::select! {
            res = &mut connect, if connecting => {
                connecting = false;
                let now = Instant::now();
                match res {
                    Ok(ws) => {
                        tracing::info!("model connected");
                        model_sock = Some(ws);
                        machine.handle_input(Input::ModelConnected, now);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "model unavailable: the caller goes to the human line");
                        machine.publish_model_error(now, &e.to_string());
                        machine.end(now, "model_unavailable", CallStatus::Fallback);
                    }
                }
            }
            sock = &mut claim_rx, if awaiting_claim => {
                awaiting_claim = false;
                if let Ok(mut sock) = sock {
                    let now = Instant::now();
                    for msg in std::mem::take(&mut sock.already_read) {
                        machine.handle_input(Input::Twilio(msg), now);
                    }
                    twilio = Some(sock);
                    if machine.is_ended() {
                        // Model failed before the stream came: drop it at once so the TwiML
                        // fallback runs.
                    }
                }
            }
            _ = &mut claim_deadline, if awaiting_claim => {
                awaiting_claim = false;
                tracing::warn!("no media stream within the claim window");
                machine.end(Instant::now(), "no_stream", CallStatus::NoStream);
            }
            frame = next_twilio(&mut twilio) => {
                let now = Instant::now();
                match frame {
                    TwilioFrame::Text(text) => match TwilioInbound::parse(&text) {
                        Ok(msg) => machine.handle_input(Input::Twilio(msg), now),
                        Err(e) => machine.handle_input(Input::TwilioGarbage(e.to_string()), now),
                    },
                    TwilioFrame::Binary(n) => machine.handle_input(Input::TwilioGarbage(format!("binary frame of {n} bytes")), now),
                    TwilioFrame::Closed => machine.handle_input(Input::TwilioClosed, now),
                }
            }
            msg = next_model(&mut model_sock) => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => match ServerEvent::parse(text.as_str()) {
                        Ok(ev) => machine.handle_input(Input::Model(ev), now),
                        Err(e) => machine.handle_input(Input::ModelGarbage(e.to_string()), now),
                    },
                    Some(Ok(Message::Binary(b))) => machine.handle_input(Input::ModelGarbage(format!("binary frame of {} bytes", b.len())), now),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        tracing::warn!(?frame, "model closed the socket");
                        machine.handle_input(Input::ModelClosed, now);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "model socket failed");
                        machine.handle_input(Input::ModelClosed, now);
                    }
                    None => machine.handle_input(Input::ModelClosed, now),
                }
            }
            cmd = commands.recv(), if commands_open => {
                match cmd {
                    Some((cmd, ack)) => {
                        let accepted = machine.accepts_commands();
                        machine.handle_input(Input::Command(cmd), Instant::now());
                        pending_ack = ack.map(|a| (a, accepted));
                    }
                    None => commands_open = false,
                }
            }
            _ = cancel.cancelled() => {
                machine.end(Instant::now(), "shutdown", CallStatus::Fallback);
            }
        }

        let mut close = false;
        while let Some(out) = machine.poll_output() {
            match out {
                Output::ToTwilio(msg) => {
                    if let Some(sock) = twilio.as_mut()
                        && let Err(e) = sock.tx.send(msg.to_json()).await {
                            tracing::warn!(error = %e, "twilio send failed");
                            machine.handle_input(Input::TwilioClosed, Instant::now());
                        }
                }
                Output::ToModel(ev) => {
                    if let Some(ws) = model_sock.as_mut()
                        && let Err(e) = ws.send(Message::text(ev.to_json())).await {
                            tracing::warn!(error = %e, "model send failed");
                            machine.handle_input(Input::ModelClosed, Instant::now());
                        }
                }
                Output::Event(ev) => {
                    if let CallEventKind::StatusChanged { status } = &ev.kind {
                        lock(&summary).status = *status;
                    }
                    hub.publish(ev);
                }
                Output::Audio(frame) => hub.publish_audio(frame),
                Output::Close => close = true,
            }
        }
        if let Some((ack, accepted)) = pending_ack.take() {
            // The command's events are published (queued for the store ahead of later ones).
            let _ = ack.send(accepted);
        }
        if close {
            if let Some(mut ws) = model_sock.take() {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            }
            if let Some(mut sock) = twilio.take() {
                let _ = tokio::time::timeout(Duration::from_secs(1), sock.tx.close()).await;
            } else if awaiting_claim && machine.status() == CallStatus::Fallback {
                // The stream may still come (model failed during ringing): accept it only to
                // close it at once, so Twilio runs the fallback verbs without delay.
                let remaining = setup.claim_window.saturating_sub(machine.age(Instant::now()));
                if let Ok(Ok(mut sock)) = tokio::time::timeout(remaining, &mut claim_rx).await {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sock.tx.close()).await;
                }
            }
            tracing::info!(stats = ?machine.stats(), "call task ended");
            return;
        }
    }
}

impl CallMachine {
    /// Records that the model could not be reached (a `ModelError` event with code `model_unavailable`).
    pub fn publish_model_error(&mut self, now: Instant, message: &str) {
        self.emit_external(now, CallEventKind::ModelError { error_type: "connect".into(), code: Some("model_unavailable".into()), message: message.to_string() });
    }
}
