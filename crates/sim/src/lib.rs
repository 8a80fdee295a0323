//! Faithful fakes of what Watchfloor talks to, following PROTOCOLS.md to the letter:
//!
//! - [`model`]: an OpenAI Realtime (GA) model fake: checks what it receives, runs server VAD on
//!   the actual audio, answers each caller turn with the scenario's speech, honours
//!   `response.cancel` and `conversation.item.truncate`.
//! - [`caller`]: a Twilio Media Streams caller fake: real-time (or N×) media from WAV, a playout
//!   clock, marks echoed only once their audio has played, `clear` honoured.
//! - [`scenario`]: scenario files (TOML) with committed 8 kHz μ-law speech.
//! - [`translate`]: a fake of OpenAI's Chat Completions API that translates scenario lines.
//! - [`rest`]: a Twilio REST fake (call updates) that records requests and can fail on purpose.
//! - [`probe`] and `loadgen` (cargo feature `loadgen`): the load generator (`watchfloor
//!   loadgen`) and its per-frame measurement hooks in the fakes.
//! - [`simulate`]: places a simulated call through a running server (webhook, then media stream).
//!
//! The fakes only listen on and connect to loopback addresses given to them.

pub mod caller;
pub mod events;
#[cfg(feature = "loadgen")]
pub mod loadgen;
pub mod model;
pub mod premise;
pub mod probe;
pub mod rest;
pub mod scenario;
pub mod simulate;
pub mod tls;
pub mod translate;
pub mod wav;

pub use scenario::{Scenario, Surge, Turn};
