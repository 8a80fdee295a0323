//! Alerts a supervisor must see at once, each with a severity, acknowledged one by one.

use serde::{Deserialize, Serialize};

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertKind {
    /// A danger word in the caller's words (`gun`, `not breathing`, …).
    Danger {
        /// The word.
        word: String,
    },
    /// The caller has been silent or unresponsive.
    SilentCaller,
    /// The agent repeats itself or is stuck.
    AgentStuck,
    /// The model's report and the keywords disagree.
    ExtractionDisagreement {
        /// What the model said.
        model: String,
        /// What the keywords said.
        keywords: String,
    },
    /// The keyword extractor is unsure and the model has not reported.
    LowConfidence,
    /// The model failed (error, stall, fallback).
    ModelError {
        /// What failed, in words (the model's error code, a stall, the fallback's reason).
        reason: String,
    },
    /// A dispatch proposal has waited past its hold window.
    DispatchWaiting,
    /// A supervised P1 went out on its own after the hold window.
    AutoDispatched,
    /// The console of the supervisor holding the call's voice was lost (issue 17): the call went
    /// back to the agent, or to the human line, by setting.
    SupervisorLost {
        /// The supervisor.
        user: String,
    },
}

impl AlertKind {
    /// A short stable label: `danger:<word>`, `silent_caller`, `dispatch_waiting`, …
    pub fn label(&self) -> String {
        match self {
            AlertKind::Danger { word } => format!("danger:{word}"),
            AlertKind::SilentCaller => "silent_caller".into(),
            AlertKind::AgentStuck => "agent_stuck".into(),
            AlertKind::ExtractionDisagreement { .. } => "extraction_disagreement".into(),
            AlertKind::LowConfidence => "low_confidence".into(),
            AlertKind::ModelError { .. } => "model_error".into(),
            AlertKind::DispatchWaiting => "dispatch_waiting".into(),
            AlertKind::AutoDispatched => "auto_dispatched".into(),
            AlertKind::SupervisorLost { .. } => "supervisor_lost".into(),
        }
    }

    /// The severity of this kind of alert.
    pub fn severity(&self) -> Severity {
        match self {
            AlertKind::Danger { .. } | AlertKind::ModelError { .. } | AlertKind::AutoDispatched | AlertKind::SupervisorLost { .. } => Severity::Critical,
            AlertKind::DispatchWaiting | AlertKind::ExtractionDisagreement { .. } | AlertKind::SilentCaller | AlertKind::AgentStuck => Severity::Warning,
            AlertKind::LowConfidence => Severity::Info,
        }
    }
}

/// Whether the agent is repeating itself: its last two lines are (nearly) the same.
pub fn agent_repeats(previous: &str, latest: &str) -> bool {
    let norm = |s: &str| s.to_lowercase().chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ");
    let (a, b) = (norm(previous), norm(latest));
    !a.is_empty() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_and_repeats() {
        assert_eq!(AlertKind::Danger { word: "gun".into() }.severity(), Severity::Critical);
        assert!(Severity::Critical > Severity::Warning);
        assert!(agent_repeats("What is the address?", "what is the address"));
        assert!(!agent_repeats("What is the address?", "Is anyone hurt?"));
    }
}
