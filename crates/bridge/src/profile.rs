//! The agent profile: what the bridge tells the model in `session.update`.

use serde::{Deserialize, Serialize};
use watchfloor_wire::realtime::{
    AudioConfig, AudioFormat, AudioInput, AudioOutput, ClientEvent, MaxTokens, NoiseReduction, SessionConfig, Tool, Transcription,
    TurnDetection,
};

/// Instructions for a calm, professional 911 call taker.
pub const DEFAULT_INSTRUCTIONS: &str = "You are a 911 emergency call taker answering a live phone call. \
Stay calm, professional and kind. Speak in short, clear sentences, one question at a time. \
First get the exact location of the emergency: street address, cross street or landmark, and the city. \
Then ask what is happening: the nature of the emergency. Then ask whether anyone is hurt, whether there \
are weapons, fire or other dangers, and confirm the callback number. Reassure the caller that help is being \
sent. Never promise an arrival time. Never end the call yourself. If the caller cannot speak, ask yes-or-no \
questions. If a supervisor instruction arrives as a system message, follow it from then on.";

/// Server VAD settings (PROTOCOLS.md §1, `audio.input.turn_detection`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct VadProfile {
    /// 0.0–1.0; higher needs louder speech.
    pub threshold: f32,
    /// Audio kept before detected speech, ms.
    pub prefix_padding_ms: u32,
    /// Silence that ends a caller turn, ms.
    pub silence_duration_ms: u32,
}

impl VadProfile {
    /// A quiet line: 0.5 / 300 ms / 500 ms.
    pub const NORMAL: VadProfile = VadProfile { threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 };
    /// A noisy line (traffic, wind, shouting): 0.9 / 800 ms / 2500 ms.
    pub const NOISY_LINE: VadProfile = VadProfile { threshold: 0.9, prefix_padding_ms: 800, silence_duration_ms: 2500 };
}

impl Default for VadProfile {
    fn default() -> Self {
        VadProfile::NORMAL
    }
}

/// How the AI agent is configured for every call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentProfile {
    /// Realtime model, e.g. `gpt-realtime`.
    pub model: String,
    /// System instructions.
    pub instructions: String,
    /// One of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar.
    pub voice: String,
    /// Server VAD.
    pub vad: VadProfile,
    /// Input transcription model, e.g. `gpt-4o-transcribe`.
    pub transcription_model: String,
    /// ISO-639-1 language of the caller, e.g. `en`.
    pub language: String,
}

impl Default for AgentProfile {
    fn default() -> Self {
        AgentProfile {
            model: "gpt-realtime".into(),
            instructions: DEFAULT_INSTRUCTIONS.into(),
            voice: "marin".into(),
            vad: VadProfile::NORMAL,
            transcription_model: "gpt-4o-transcribe".into(),
            language: "en".into(),
        }
    }
}

/// Facts about this call that go into the agent's instructions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallContext {
    /// The caller's number (ANI), the callback number on record.
    pub caller_number: String,
    /// One line about prior calls from this number (caller history), if any.
    pub history: Option<String>,
}

impl AgentProfile {
    /// The full instructions for one call: the profile's text plus a line with the callback number.
    pub fn instructions_for(&self, ctx: &CallContext) -> String {
        let mut s = self.instructions.clone();
        if !ctx.caller_number.is_empty() {
            s.push_str(&format!("\nCaller ID (callback number on record): {}.", ctx.caller_number));
        }
        if let Some(h) = &ctx.history {
            s.push_str(&format!("\nCaller history: {h}"));
        }
        s
    }

    /// The `session.update` for one call: μ-law both ways, server VAD, transcription, voice.
    pub fn session_update(&self, ctx: &CallContext) -> ClientEvent {
        self.session_update_answering(ctx, true)
    }

    /// [`AgentProfile::session_update`], with the agent answering the caller's turns or not
    /// (`turn_detection.create_response` and `interrupt_response`, PROTOCOLS.md §5: while a
    /// supervisor holds the call's voice the caller is still transcribed, the agent silent).
    pub fn session_update_answering(&self, ctx: &CallContext, answering: bool) -> ClientEvent {
        ClientEvent::SessionUpdate {
            event_id: None,
            session: Box::new(SessionConfig {
                kind: "realtime".into(),
                model: Some(self.model.clone()),
                output_modalities: Some(vec!["audio".into()]),
                instructions: Some(self.instructions_for(ctx)),
                audio: Some(AudioConfig {
                    input: Some(AudioInput {
                        format: Some(AudioFormat::pcmu()),
                        noise_reduction: Some(NoiseReduction { kind: "near_field".into() }),
                        transcription: Some(Transcription {
                            model: self.transcription_model.clone(),
                            language: Some(self.language.clone()),
                            prompt: None,
                        }),
                        turn_detection: Some(TurnDetection::ServerVad {
                            threshold: self.vad.threshold,
                            prefix_padding_ms: self.vad.prefix_padding_ms,
                            silence_duration_ms: self.vad.silence_duration_ms,
                            idle_timeout_ms: Some(None),
                            create_response: Some(answering),
                            interrupt_response: Some(answering),
                        }),
                    }),
                    output: Some(AudioOutput { format: Some(AudioFormat::pcmu()), voice: Some(self.voice.clone()), speed: Some(1.0) }),
                }),
                tools: Some(vec![Tool {
                    kind: "function".into(),
                    name: watchfloor_dispatch::report::TOOL_NAME.into(),
                    description: watchfloor_dispatch::report::TOOL_DESCRIPTION.into(),
                    parameters: watchfloor_dispatch::report::parameters(),
                }]),
                tool_choice: Some("auto".into()),
                max_output_tokens: Some(MaxTokens::Inf("inf".into())),
                include: None,
            }),
        }
    }

    /// The `session.update` of the transcription-only session that transcribes a supervisor who
    /// holds a call's voice (PROTOCOLS.md §5, `RealtimeTranscriptionSessionCreateRequest`):
    /// μ-law in, the profile's transcription model and language, server VAD with the profile's
    /// timings, logprobs included; no instructions, voice, output or tools.
    pub fn transcription_session_update(&self) -> ClientEvent {
        ClientEvent::SessionUpdate {
            event_id: None,
            session: Box::new(SessionConfig {
                kind: "transcription".into(),
                model: None,
                output_modalities: None,
                instructions: None,
                audio: Some(AudioConfig {
                    input: Some(AudioInput {
                        format: Some(AudioFormat::pcmu()),
                        noise_reduction: Some(NoiseReduction { kind: "near_field".into() }),
                        transcription: Some(Transcription { model: self.transcription_model.clone(), language: Some(self.language.clone()), prompt: None }),
                        turn_detection: Some(TurnDetection::ServerVad {
                            threshold: VadProfile::NORMAL.threshold,
                            prefix_padding_ms: VadProfile::NORMAL.prefix_padding_ms,
                            silence_duration_ms: VadProfile::NORMAL.silence_duration_ms,
                            idle_timeout_ms: None,
                            create_response: None,
                            interrupt_response: None,
                        }),
                    }),
                    output: None,
                }),
                tools: None,
                tool_choice: None,
                max_output_tokens: None,
                include: Some(vec!["item.input_audio_transcription.logprobs".into()]),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_update_carries_profile_and_callback_number() {
        let p = AgentProfile { vad: VadProfile::NOISY_LINE, ..Default::default() };
        let ev = p.session_update(&CallContext { caller_number: "+15550100101".into(), history: Some("1 prior call from this number in the last 30 days.".into()) });
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["session"]["audio"]["input"]["format"]["type"], "audio/pcmu");
        assert_eq!(v["session"]["audio"]["output"]["format"]["type"], "audio/pcmu");
        let td = &v["session"]["audio"]["input"]["turn_detection"];
        assert_eq!(td["type"], "server_vad");
        assert!((td["threshold"].as_f64().unwrap() - 0.9).abs() < 1e-6);
        assert_eq!(td["prefix_padding_ms"], 800);
        assert_eq!(td["silence_duration_ms"], 2500);
        assert!(v["session"]["instructions"].as_str().unwrap().contains("+15550100101"));
        assert!(v["session"]["instructions"].as_str().unwrap().contains("location"));
        assert!(v["session"]["instructions"].as_str().unwrap().contains("Caller history: 1 prior call"));
        assert!(v["session"].get("temperature").is_none());
    }

    #[test]
    fn the_transcription_session_update_is_the_shape_of_protocols_section_5() {
        let ev = AgentProfile::default().transcription_session_update();
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcmu"},"noise_reduction":{"type":"near_field"},"transcription":{"model":"gpt-4o-transcribe","language":"en"},"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":500}}},"include":["item.input_audio_transcription.logprobs"]}}"#,
        )
        .unwrap();
        assert_eq!(v, expected);
    }
}
