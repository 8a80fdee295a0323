//! Scenarios: a caller, what they say, and what the agent answers, with committed speech.
//!
//! A scenario is `scenarios/<name>.toml` (see `structure-fire.toml`) plus
//! `scenarios/audio/<name>/{greeting,caller-NN,agent-NN}.wav`, made by `scenarios/make-audio.py`.
//! A turn may have the caller press keys (`keys = "1"`) or stay silent (`silent = true`)
//! instead of speaking (`silent-caller.toml`): such a turn has no caller audio.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::wav;

/// The scenarios shipped in the repository.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// A line of speech: its text and its 8 kHz μ-law audio.
#[derive(Debug, Clone)]
pub struct Line {
    /// What is said (the transcript the model fake reports).
    pub text: String,
    /// μ-law bytes, 8 per ms.
    pub audio: Arc<Vec<u8>>,
    /// Its English translation, for a line in another language (what the translation fake
    /// answers, [`crate::translate`]).
    pub translation: Option<String>,
}

/// When the caller starts a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnStart {
    /// After the agent's audio has finished playing, plus a pause (ms).
    AfterAgent {
        /// Pause, ms.
        pause_ms: u64,
    },
    /// While the agent is speaking: this many ms into the agent's reply (barge-in).
    BargeIn {
        /// ms of agent audio played before the caller starts.
        after_ms: u64,
    },
}

/// A function call the model makes before speaking a line (e.g. `report_incident`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string.
    pub arguments: String,
}

/// One exchange: the caller speaks, the agent answers.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The caller's line.
    pub caller: Line,
    /// The agent's answer.
    pub agent: Line,
    /// When the caller starts.
    pub start: TurnStart,
    /// A function call the model makes before answering (the answer waits for its output).
    pub function_call: Option<FunctionCall>,
    /// Keys the caller presses instead of speaking (Twilio `dtmf`, one event a key), e.g. `1`.
    pub keys: Option<String>,
    /// The caller says nothing this turn (the model's idle timeout makes the agent go on).
    pub silent: bool,
}

/// A whole simulated call.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// File stem, e.g. `structure-fire`.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// The caller's number (E.164); the model fake picks the scenario by it.
    pub caller_number: String,
    /// The language the caller speaks (ISO 639-1, default `en`); the agent answers in it after
    /// the greeting.
    pub language: String,
    /// The agent's first words.
    pub greeting: Line,
    /// The exchanges.
    pub turns: Vec<Turn>,
    /// What a dispatcher would record from this call.
    pub expect: Expect,
}

/// The incident a scenario should end with.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Expect {
    /// APCO code.
    pub incident_type: Option<String>,
    /// Location line, e.g. `123 Main Street`.
    pub location: Option<String>,
    /// `P1`–`P4`.
    pub priority: Option<String>,
}

#[derive(Deserialize)]
struct FileScenario {
    name: String,
    description: String,
    caller_number: String,
    #[serde(default = "english")]
    language: String,
    greeting: FileGreeting,
    turns: Vec<FileTurn>,
    #[serde(default)]
    expect: Expect,
}

fn english() -> String {
    "en".into()
}

#[derive(Deserialize)]
struct FileGreeting {
    text: String,
    translation: Option<String>,
}

#[derive(Deserialize)]
struct FileTurn {
    caller: String,
    agent: String,
    /// English translations of the two lines (a scenario in another language).
    caller_translation: Option<String>,
    agent_translation: Option<String>,
    pause_ms: Option<u64>,
    barge_in_after_ms: Option<u64>,
    function_call: Option<FunctionCall>,
    /// The caller presses these keys instead of speaking (no caller audio).
    keys: Option<String>,
    /// The caller says nothing this turn (no caller audio): the agent speaks again when the
    /// model's idle timeout fires.
    #[serde(default)]
    silent: bool,
}

/// Errors loading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// File missing or unreadable.
    #[error("cannot read scenario {0}: {1}")]
    Io(String, std::io::Error),
    /// Bad TOML.
    #[error("bad scenario file {0}: {1}")]
    Toml(String, toml::de::Error),
    /// Bad or missing audio.
    #[error(transparent)]
    Audio(#[from] wav::WavError),
}

impl Scenario {
    /// Loads `dir/<name>.toml` and its audio.
    pub fn load(dir: &Path, name: &str) -> Result<Scenario, ScenarioError> {
        let path = dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| ScenarioError::Io(path.display().to_string(), e))?;
        let file: FileScenario = toml::from_str(&text).map_err(|e| ScenarioError::Toml(path.display().to_string(), e))?;
        let audio_dir = dir.join("audio").join(&file.name);
        let line = |text: String, translation: Option<String>, wav: String| -> Result<Line, ScenarioError> {
            Ok(Line { text, audio: Arc::new(wav::read_mulaw(&audio_dir.join(wav))?), translation })
        };
        let greeting = line(file.greeting.text, file.greeting.translation, "greeting.wav".into())?;
        let mut turns = Vec::new();
        for (i, t) in file.turns.into_iter().enumerate() {
            let start = match t.barge_in_after_ms {
                Some(after_ms) => TurnStart::BargeIn { after_ms },
                None => TurnStart::AfterAgent { pause_ms: t.pause_ms.unwrap_or(600) },
            };
            let caller = if t.keys.is_some() || t.silent {
                Line { text: t.caller, audio: Arc::new(Vec::new()), translation: t.caller_translation }
            } else {
                line(t.caller, t.caller_translation, format!("caller-{i:02}.wav"))?
            };
            turns.push(Turn {
                caller,
                keys: t.keys,
                silent: t.silent,
                agent: line(t.agent, t.agent_translation, format!("agent-{i:02}.wav"))?,
                start,
                function_call: t.function_call,
            });
        }
        Ok(Scenario { name: file.name, description: file.description, caller_number: file.caller_number, language: file.language, greeting, turns, expect: file.expect })
    }

    /// Every scenario in `dir`, by name.
    pub fn load_all(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| ScenarioError::Io(dir.display().to_string(), e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|_| e.path().extension().is_some_and(|x| x == "toml")))
            .collect();
        names.sort();
        names.iter().map(|n| Scenario::load(dir, n)).collect()
    }

    /// The same scenario for a different caller number (so many copies can run at once and
    /// the model fake still tells them apart).
    pub fn with_caller_number(&self, number: impl Into<String>) -> Scenario {
        Scenario { caller_number: number.into(), ..self.clone() }
    }

    /// The function call before agent line `index` (0 is the greeting, which has none).
    pub fn agent_function_call(&self, index: usize) -> Option<&FunctionCall> {
        index.checked_sub(1).and_then(|i| self.turns.get(i)).and_then(|t| t.function_call.as_ref())
    }

    /// Every line with a translation: (the line as spoken, its English translation).
    pub fn translations(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once(&self.greeting)
            .chain(self.turns.iter().flat_map(|t| [&t.caller, &t.agent]))
            .filter_map(|l| l.translation.as_deref().map(|t| (l.text.as_str(), t)))
    }

    /// The agent's lines in the order the model fake speaks them: greeting, then each turn's answer.
    pub fn agent_line(&self, index: usize) -> Option<&Line> {
        if index == 0 { Some(&self.greeting) } else { self.turns.get(index - 1).map(|t| &t.agent) }
    }
}

/// A surge (issue 18): several scenarios placed on a schedule, as many people call about one
/// visible emergency (or a busy hour brings several). `scenarios/surges/<name>.toml`: `name`,
/// `description`, and `[[calls]]` each with a `scenario` name and `after_ms` (ms after the
/// surge starts, the calls in order).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Surge {
    /// File stem, e.g. `willow-creek-fire`.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// The calls, in the order they start.
    pub calls: Vec<SurgeCall>,
}

/// One call of a [`Surge`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SurgeCall {
    /// The scenario the caller plays.
    pub scenario: String,
    /// When the call is placed, ms after the surge starts.
    pub after_ms: u64,
}

/// Why a surge could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SurgeError {
    /// File missing or unreadable.
    #[error("cannot read surge {0}: {1}")]
    Io(String, std::io::Error),
    /// Bad TOML.
    #[error("bad surge file {0}: {1}")]
    Toml(String, toml::de::Error),
    /// A call names a scenario that is not in the set, or the surge has no calls.
    #[error("surge {0}: {1}")]
    Invalid(String, String),
}

impl Surge {
    /// Every surge in `dir/surges` (none when the folder is absent), checked against the
    /// scenarios `known`: each call's scenario must be one of them and `after_ms` must not go
    /// backwards.
    pub fn load_all(dir: &Path, known: &[Scenario]) -> Result<Vec<Surge>, SurgeError> {
        let dir = dir.join("surges");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut paths: Vec<std::path::PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| SurgeError::Io(shown.clone(), e))?;
            let surge: Surge = toml::from_str(&text).map_err(|e| SurgeError::Toml(shown.clone(), e))?;
            if surge.calls.is_empty() {
                return Err(SurgeError::Invalid(surge.name, "no calls".into()));
            }
            for (i, c) in surge.calls.iter().enumerate() {
                if !known.iter().any(|s| s.name == c.scenario) {
                    return Err(SurgeError::Invalid(surge.name.clone(), format!("call {} plays {:?}, which is not a scenario", i + 1, c.scenario)));
                }
                if i > 0 && c.after_ms < surge.calls[i - 1].after_ms {
                    return Err(SurgeError::Invalid(surge.name.clone(), format!("call {} starts before the call ahead of it", i + 1)));
                }
            }
            out.push(surge);
        }
        Ok(out)
    }

    /// The schedule of `n` calls (the surge's own count when none): the calls in order, then
    /// again from the first, each repeat starting one surge length (the last call's `after_ms`
    /// plus the gap between the first two, at least 250 ms) after the one before. Returns
    /// (scenario, ms after the start) pairs.
    pub fn schedule(&self, n: Option<usize>) -> Vec<(&str, u64)> {
        let n = n.unwrap_or(self.calls.len());
        let last = self.calls.last().map_or(0, |c| c.after_ms);
        let gap = self.calls.get(1).map_or(0, |c| c.after_ms - self.calls[0].after_ms).max(250);
        let cycle = last + gap;
        (0..n)
            .map(|i| {
                let c = &self.calls[i % self.calls.len()];
                (c.scenario.as_str(), c.after_ms + (i / self.calls.len()) as u64 * cycle)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_surges_name_shipped_scenarios_and_repeat_on_schedule() {
        let all = Scenario::load_all(&default_dir()).unwrap();
        let surges = Surge::load_all(&default_dir(), &all).unwrap();
        let fire = surges.iter().find(|s| s.name == "willow-creek-fire").expect("the fire surge ships");
        let fire_calls = fire.calls.iter().filter(|c| c.scenario.starts_with("willow-fire")).count();
        assert_eq!((fire_calls, fire.calls.len()), (5, 6), "five callers about the fire, one about something else");
        let city = surges.iter().find(|s| s.name == "city-surge").unwrap();
        let plan = city.schedule(Some(60));
        assert_eq!(plan.len(), 60);
        assert_eq!(plan[8], (city.calls[0].scenario.as_str(), 1750 + 250), "the second round starts one surge length later");
        assert!(plan.windows(2).all(|w| w[0].1 <= w[1].1), "in order of time");
        let bad = Surge { name: "x".into(), description: String::new(), calls: vec![SurgeCall { scenario: "nope".into(), after_ms: 0 }] };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("surges")).unwrap();
        std::fs::write(dir.path().join("surges/x.toml"), format!("name = {:?}\ndescription = \"\"\n[[calls]]\nscenario = \"nope\"\nafter_ms = 0\n", bad.name)).unwrap();
        assert!(matches!(Surge::load_all(dir.path(), &all), Err(SurgeError::Invalid(..))));
    }

    #[test]
    fn shipped_scenarios_load_with_speech() {
        let all = Scenario::load_all(&default_dir()).unwrap();
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"structure-fire") && names.contains(&"cardiac-arrest") && names.contains(&"talk-over"), "{names:?}");
        for s in &all {
            assert!(!s.turns.is_empty());
            assert!(s.caller_number.starts_with('+'));
            for t in &s.turns {
                if t.keys.is_none() && !t.silent {
                    assert!(t.caller.audio.len() > 4000, "{}: caller speech too short", s.name);
                } else {
                    assert!(t.caller.audio.is_empty(), "{}: a turn of keys or silence has no speech", s.name);
                }
                assert!(t.agent.audio.len() > 4000, "{}: agent speech too short", s.name);
            }
        }
        let silent = all.iter().find(|s| s.name == "silent-caller").unwrap();
        assert!(silent.turns[0].silent && silent.turns[1].keys.as_deref() == Some("1"));
        let talk = all.iter().find(|s| s.name == "talk-over").unwrap();
        assert!(talk.turns.iter().any(|t| matches!(t.start, TurnStart::BargeIn { .. })));
    }
}
