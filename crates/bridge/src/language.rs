//! Which language a transcript line was spoken in (issue 21).
//!
//! Languages are ISO 639-1 codes (`en`, `es`, `ja`, `vi` …) everywhere in settings, events and
//! records; names come from ISO 639 (`isolang`). A line's language is told from its text by
//! `whatlang` (trigrams, and the script: kana is Japanese, Hangul Korean), restricted to the
//! agent profile's languages:
//! - a profile with one language: every line is in it (the transcription language is fixed to it,
//!   PROTOCOLS.md §1 `audio.input.transcription.language`);
//! - several: the detector's answer when it is reliable; a short or ambiguous line ("Sí.", "OK")
//!   keeps the language its speaker spoke last, or else the caller's (the agent answers in the
//!   caller's language), or else the detector's best guess; none when nothing is known.
//!
//! A profile language `whatlang` cannot detect is still valid (the agent is told to speak it);
//! its lines are told by the rules above among the others, or by the speaker's last language.

use std::collections::HashMap;

use watchfloor_call::Speaker;

/// The English name of an ISO 639-1 code (`es` → `Spanish`); none for a code that is not one.
pub fn name(code: &str) -> Option<&'static str> {
    isolang::Language::from_639_1(code).map(|l| l.to_name())
}

/// The `whatlang` language of an ISO 639-1 code, if it can detect it. Chinese (`zh`) is
/// Mandarin (`cmn`) to `whatlang`; ISO 639-3 codes it lacks give none.
fn detectable(code: &str) -> Option<whatlang::Lang> {
    if code == "zh" {
        return Some(whatlang::Lang::Cmn);
    }
    let three = isolang::Language::from_639_1(code)?.to_639_3();
    whatlang::Lang::from_code(three)
}

/// Tells the language of each final line of one call ([module docs](self)).
#[derive(Debug, Clone)]
pub struct LineLanguages {
    /// The profile's languages, ISO 639-1, in its order.
    languages: Vec<String>,
    /// `whatlang` restricted to the detectable ones, with their codes; none with one language.
    detector: Option<(whatlang::Detector, Vec<(whatlang::Lang, String)>)>,
    /// The language each speaker spoke last.
    last: HashMap<Speaker, String>,
}

impl LineLanguages {
    /// For a profile's languages (ISO 639-1; validated by the settings).
    pub fn new(languages: &[String]) -> LineLanguages {
        let detectable: Vec<(whatlang::Lang, String)> = languages.iter().filter_map(|c| detectable(c).map(|l| (l, c.clone()))).collect();
        let detector = (languages.len() > 1 && !detectable.is_empty()).then(|| (whatlang::Detector::with_allowlist(detectable.iter().map(|(l, _)| *l).collect()), detectable));
        LineLanguages { languages: languages.to_vec(), detector, last: HashMap::new() }
    }

    /// The language of a final line `text` said by `speaker`, remembered for the speaker's
    /// next line.
    pub fn line(&mut self, speaker: Speaker, text: &str) -> Option<String> {
        let told = match &self.detector {
            None => self.languages.first().cloned(),
            Some((detector, codes)) => {
                let info = detector.detect(text);
                let code_of = |lang: whatlang::Lang| codes.iter().find(|(l, _)| *l == lang).map(|(_, c)| c.clone());
                let reliable = info.as_ref().filter(|i| i.is_reliable()).and_then(|i| code_of(i.lang()));
                reliable
                    .or_else(|| self.last.get(&speaker).cloned())
                    .or_else(|| self.last.get(&Speaker::Caller).cloned())
                    .or_else(|| info.and_then(|i| code_of(i.lang())))
            }
        };
        if let Some(code) = &told {
            self.last.insert(speaker, code.clone());
        }
        told
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn names_come_from_iso_639() {
        assert_eq!(name("es"), Some("Spanish"));
        assert_eq!(name("ja"), Some("Japanese"));
        assert_eq!(name("vi"), Some("Vietnamese"));
        assert_eq!(name("xx"), None);
        assert_eq!(name("eng"), None);
    }

    #[test]
    fn one_language_is_every_lines_language() {
        let mut l = LineLanguages::new(&langs(&["en"]));
        assert_eq!(l.line(Speaker::Caller, "Hay humo en la cocina").as_deref(), Some("en"));
    }

    #[test]
    fn lines_are_told_among_the_profiles_languages() {
        let mut l = LineLanguages::new(&langs(&["en", "es", "ja"]));
        assert_eq!(l.line(Speaker::Agent, "Nine one one, what is the address of your emergency?").as_deref(), Some("en"));
        assert_eq!(l.line(Speaker::Caller, "Hay mucho humo saliendo de la cocina de mi casa en la calle Olmo").as_deref(), Some("es"));
        assert_eq!(l.line(Speaker::Caller, "家の台所から煙が出ています").as_deref(), Some("ja"));
        assert_eq!(l.line(Speaker::Caller, "かじです").as_deref(), Some("ja"));
    }

    #[test]
    fn a_short_line_keeps_its_speakers_language_or_the_callers() {
        let mut l = LineLanguages::new(&langs(&["en", "es"]));
        assert_eq!(l.line(Speaker::Caller, "Hay mucho humo saliendo de la cocina de mi casa").as_deref(), Some("es"));
        assert_eq!(l.line(Speaker::Caller, "Sí.").as_deref(), Some("es"));
        // The agent's first short line follows the caller.
        assert_eq!(l.line(Speaker::Agent, "¿Sí?").as_deref(), Some("es"));
    }

    #[test]
    fn chinese_is_mandarin_to_the_detector() {
        let mut l = LineLanguages::new(&langs(&["en", "zh"]));
        assert_eq!(l.line(Speaker::Caller, "我的房子着火了，请快点派人来").as_deref(), Some("zh"));
    }
}
