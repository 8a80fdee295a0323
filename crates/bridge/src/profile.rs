//! The agent profile: what the bridge tells the model in `session.update`.

use serde::{Deserialize, Serialize};
use watchfloor_wire::realtime::{
    AudioConfig, AudioFormat, AudioInput, AudioOutput, ClientEvent, MaxTokens, NoiseReduction, SessionConfig, Tool, Transcription,
    TurnDetection,
};
pub use watchfloor_wire::realtime::{Eagerness, NoiseReductionType};

/// Instructions for a calm, professional 911 call taker.
pub const DEFAULT_INSTRUCTIONS: &str = "You are a 911 emergency call taker answering a live phone call. \
Stay calm, professional and kind. Speak in short, clear sentences, one question at a time. \
First get the exact location of the emergency: street address, cross street or landmark, and the city. \
Then ask what is happening: the nature of the emergency. Then ask whether anyone is hurt, whether there \
are weapons, fire or other dangers, and confirm the callback number. Reassure the caller that help is being \
sent. Never promise an arrival time. Never end the call yourself. If the caller cannot speak, ask yes-or-no \
questions. If a supervisor instruction arrives as a system message, follow it from then on.";

/// What the agent does for a caller who cannot speak (a domestic violence call, a choking
/// caller): appended to every profile's instructions unless the profile changes it.
pub const DEFAULT_KEYPAD_PROTOCOL: &str = "If the caller cannot speak (they stay silent, whisper, or press keys), \
ask short yes-or-no questions and tell them: press 1 for yes, 2 for no. When the caller presses a key you will \
get a message saying which. Keys pressed without being asked may mean the caller cannot talk safely: speak \
quietly, reassure them, and keep to yes-or-no questions about where they are, what is happening and whether \
they are safe.";

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

pub use watchfloor_call::TurnDetectionKind;

/// A prompt stored with OpenAI, used instead of (or beside) the inline instructions
/// (PROTOCOLS.md §5 `session.prompt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct StoredPrompt {
    /// `pmpt_…`.
    pub id: String,
    /// The version (decimal digits); none: the prompt's current version.
    #[serde(default)]
    pub version: Option<String>,
    /// Values of the prompt's variables, by name.
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
}

/// How the AI agent answers a line: one named profile (issue 21). The settings hold several,
/// each for some called numbers (`To`), one of them the default; a call keeps the profile (and
/// its version) it started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
pub struct AgentProfile {
    /// The profile's name, e.g. `911` or `non-emergency`.
    pub name: String,
    /// The called numbers (`To`, E.164) this profile answers; the default profile answers
    /// every number no profile lists.
    pub lines: Vec<String>,
    /// Its version: 1 when made, one more at every saved change (the record names it).
    pub version: u32,
    /// Realtime model, e.g. `gpt-realtime`.
    pub model: String,
    /// System instructions (may be empty with a stored prompt).
    pub instructions: String,
    /// How to help a caller who cannot speak and presses keys (Twilio `dtmf` reaches the agent
    /// as "the caller pressed N"); added to the instructions; empty: none.
    pub keypad_protocol: String,
    /// A stored prompt, sent as `session.prompt`.
    pub prompt: Option<StoredPrompt>,
    /// One of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar.
    pub voice: String,
    /// Function tools besides the built-in `report_incident`, each answered by an HTTP endpoint
    /// ([`crate::tools`]); at most 16.
    pub tools: Vec<crate::tools::ToolConfig>,
    /// Server VAD or semantic VAD.
    pub turn_detection: TurnDetectionKind,
    /// Server VAD's timings (with [`TurnDetectionKind::ServerVad`]).
    pub vad: VadProfile,
    /// Semantic VAD's eagerness (with [`TurnDetectionKind::SemanticVad`]).
    pub eagerness: Eagerness,
    /// Caller silence after which the service sends `input_audio_buffer.timeout_triggered`
    /// and the agent speaks again, ms (server VAD only); none: no idle timeout.
    pub idle_timeout_ms: Option<u32>,
    /// Input noise reduction; none: off.
    pub noise_reduction: Option<NoiseReductionType>,
    /// The agent's speaking rate, 0.25–1.5 (1.0 normal).
    pub speed: f32,
    /// Input transcription model, e.g. `gpt-4o-transcribe`.
    pub transcription_model: String,
    /// The languages the agent answers in, ISO 639-1, e.g. `["en", "es", "ja"]`; the first is
    /// the greeting's. With one, the transcription language is fixed to it; with several it is
    /// left to the transcription model (automatic) and each line's language is told from its
    /// text ([`crate::language`]).
    pub languages: Vec<String>,
}

impl Default for AgentProfile {
    fn default() -> Self {
        AgentProfile {
            name: "default".into(),
            lines: Vec::new(),
            version: 1,
            model: "gpt-realtime".into(),
            instructions: DEFAULT_INSTRUCTIONS.into(),
            keypad_protocol: DEFAULT_KEYPAD_PROTOCOL.into(),
            prompt: None,
            voice: "marin".into(),
            tools: Vec::new(),
            turn_detection: TurnDetectionKind::ServerVad,
            vad: VadProfile::NORMAL,
            eagerness: Eagerness::Auto,
            idle_timeout_ms: None,
            noise_reduction: Some(NoiseReductionType::NearField),
            speed: 1.0,
            transcription_model: "gpt-4o-transcribe".into(),
            languages: vec!["en".into()],
        }
    }
}

/// The agent profiles of every line: which profile answers a called number (`To`, E.164), and
/// the default for every other number.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileBook {
    default: std::sync::Arc<AgentProfile>,
    lines: std::collections::HashMap<String, std::sync::Arc<AgentProfile>>,
}

impl ProfileBook {
    /// `default` for every number not in `lines`; `lines` maps called numbers to profiles.
    pub fn new(default: AgentProfile, lines: impl IntoIterator<Item = (String, std::sync::Arc<AgentProfile>)>) -> ProfileBook {
        ProfileBook { default: std::sync::Arc::new(default), lines: lines.into_iter().collect() }
    }

    /// The profile that answers calls to `to`.
    pub fn for_line(&self, to: &str) -> std::sync::Arc<AgentProfile> {
        self.lines.get(to).unwrap_or(&self.default).clone()
    }
}

impl AgentProfile {
    /// What a call's record says of this profile.
    pub fn reference(&self) -> watchfloor_call::AgentProfileRef {
        watchfloor_call::AgentProfileRef {
            name: self.name.clone(),
            version: self.version,
            model: self.model.clone(),
            turn_detection: self.turn_detection,
            prompt: self.prompt.as_ref().map(|p| match &p.version {
                Some(v) => format!("{}@{v}", p.id),
                None => p.id.clone(),
            }),
            languages: self.languages.clone(),
        }
    }

    /// The transcription language: the profile's one language, or none (automatic: the
    /// transcription model detects it) when it has several.
    pub fn transcription_language(&self) -> Option<String> {
        match self.languages.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// The instruction that makes the agent answer in the caller's language, when the profile
    /// has several: "Callers on this line may speak English, Spanish or Japanese …".
    pub fn language_instruction(&self) -> Option<String> {
        if self.languages.len() < 2 {
            return None;
        }
        let names: Vec<&str> = self.languages.iter().map(|c| crate::language::name(c).unwrap_or(c)).collect();
        let (last, rest) = names.split_last()?;
        Some(format!(
            "Callers on this line may speak {} or {last}. Greet in {}. From the caller's first words on, always answer in the language the caller speaks, \
and switch if the caller switches. Keep street names, numbers and names exactly as the caller says them.",
            rest.join(", "),
            names[0]
        ))
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
        let mut lines: Vec<String> = Vec::new();
        if !self.instructions.trim().is_empty() {
            lines.push(self.instructions.clone());
        }
        if let Some(l) = self.language_instruction() {
            lines.push(l);
        }
        if !self.keypad_protocol.trim().is_empty() {
            lines.push(self.keypad_protocol.clone());
        }
        if !ctx.caller_number.is_empty() {
            lines.push(format!("Caller ID (callback number on record): {}.", ctx.caller_number));
        }
        if let Some(h) = &ctx.history {
            lines.push(format!("Caller history: {h}"));
        }
        lines.join("\n")
    }

    /// The `session.update` for one call: μ-law both ways, server VAD, transcription, voice.
    pub fn session_update(&self, ctx: &CallContext) -> ClientEvent {
        self.session_update_answering(ctx, true)
    }

    /// [`AgentProfile::session_update`], with the agent answering the caller's turns or not
    /// (`turn_detection.create_response` and `interrupt_response`, PROTOCOLS.md §5: while a
    /// supervisor holds the call's voice the caller is still transcribed, the agent silent).
    pub fn session_update_answering(&self, ctx: &CallContext, answering: bool) -> ClientEvent {
        let turn_detection = match self.turn_detection {
            TurnDetectionKind::ServerVad => TurnDetection::ServerVad {
                threshold: self.vad.threshold,
                prefix_padding_ms: self.vad.prefix_padding_ms,
                silence_duration_ms: self.vad.silence_duration_ms,
                idle_timeout_ms: Some(self.idle_timeout_ms),
                create_response: Some(answering),
                interrupt_response: Some(answering),
            },
            TurnDetectionKind::SemanticVad => TurnDetection::SemanticVad { eagerness: self.eagerness, create_response: Some(answering), interrupt_response: Some(answering) },
        };
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
                        noise_reduction: Some(self.noise_reduction.map(|kind| NoiseReduction { kind })),
                        transcription: Some(Transcription { model: self.transcription_model.clone(), language: self.transcription_language(), prompt: None }),
                        turn_detection: Some(turn_detection),
                    }),
                    output: Some(AudioOutput { format: Some(AudioFormat::pcmu()), voice: Some(self.voice.clone()), speed: Some(self.speed) }),
                }),
                tools: Some(
                    std::iter::once(Tool {
                        kind: "function".into(),
                        name: watchfloor_dispatch::report::TOOL_NAME.into(),
                        description: watchfloor_dispatch::report::TOOL_DESCRIPTION.into(),
                        parameters: watchfloor_dispatch::report::parameters(),
                    })
                    .chain(self.tools.iter().map(crate::tools::ToolConfig::declaration))
                    .collect(),
                ),
                tool_choice: Some("auto".into()),
                max_output_tokens: Some(MaxTokens::Inf("inf".into())),
                include: None,
                prompt: self.prompt.as_ref().map(|p| watchfloor_wire::realtime::Prompt {
                    id: p.id.clone(),
                    version: p.version.clone(),
                    variables: (!p.variables.is_empty()).then(|| p.variables.clone()),
                }),
            }),
        }
    }

    /// The `session.update` of the transcription-only session that transcribes a supervisor who
    /// holds a call's voice (PROTOCOLS.md §5, `RealtimeTranscriptionSessionCreateRequest`):
    /// μ-law in, the profile's transcription model and language (automatic with several), server VAD with the profile's
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
                        noise_reduction: Some(self.noise_reduction.map(|kind| NoiseReduction { kind })),
                        transcription: Some(Transcription { model: self.transcription_model.clone(), language: self.transcription_language(), prompt: None }),
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
                prompt: None,
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
    fn several_languages_leave_transcription_automatic_and_tell_the_agent() {
        let p = AgentProfile { languages: vec!["en".into(), "es".into(), "ja".into()], ..Default::default() };
        let v: serde_json::Value = serde_json::from_str(&p.session_update(&CallContext::default()).to_json()).unwrap();
        let t = &v["session"]["audio"]["input"]["transcription"];
        assert_eq!(t["model"], "gpt-4o-transcribe");
        assert!(t.get("language").is_none(), "{t}");
        let instructions = v["session"]["instructions"].as_str().unwrap();
        assert!(instructions.contains("may speak English, Spanish or Japanese. Greet in English."), "{instructions}");
        let one: serde_json::Value = serde_json::from_str(&AgentProfile::default().session_update(&CallContext::default()).to_json()).unwrap();
        assert_eq!(one["session"]["audio"]["input"]["transcription"]["language"], "en");
        assert!(!one["session"]["instructions"].as_str().unwrap().contains("may speak"));
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
