//! The transcript keyword extractor: the second opinion beside the model's `report_incident`.
//!
//! It reads the caller's words only and finds:
//! - location cues: a house number and a street with its suffix (street, avenue, road, lane,
//!   drive, boulevard, highway, …), numbered highways and routes, `cross street X` or
//!   `X and Y` intersections, `near`/`at` landmarks, apartment numbers;
//! - incident cues (fire, smoke, not breathing, unconscious, chest pain, gun, weapon, break-in,
//!   crash, …) mapped to an APCO incident type and a priority, with a confidence;
//! - hazards and danger words that raise an alert at once.

use std::sync::LazyLock;

use regex::Regex;

use crate::incident::{Facts, Hazard, Location};
use crate::types::{Priority, incident_type};

/// A finding of the keyword extractor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extraction {
    /// The facts found.
    pub facts: Facts,
    /// Confidence in the incident type, 0.0–1.0 (0 when none was found).
    pub type_confidence: f32,
    /// Danger words heard (for alerts): `gun`, `not breathing`, …
    pub danger: Vec<&'static str>,
}

/// Words that must reach a supervisor at once (DOMAIN.md; the dispatch issue).
pub const DANGER_WORDS: &[&str] = &[
    "gun", "weapon", "shots", "shot", "shooting", "knife", "stabbed", "not breathing", "unconscious", "unresponsive", "child", "baby",
    "fire spreading", "spreading", "trapped", "explosion",
];

struct Cue {
    phrases: &'static [&'static str],
    code: &'static str,
    /// How strongly the phrase alone indicates the type.
    confidence: f32,
}

/// Incident cues, most specific first: the first cue that matches wins.
const CUES: &[Cue] = &[
    Cue { phrases: &["drowning", "under the water", "pulled from the pool", "pulled him from the pool", "pulled her from the pool", "from the pool"], code: "DROWN", confidence: 0.85 },
    Cue { phrases: &["not breathing", "stopped breathing", "no pulse", "cardiac arrest", "heart stopped", "collapsed and"], code: "CARDIAC", confidence: 0.9 },
    Cue { phrases: &["shots fired", "been shot", "shooting", "gunshot", "shot him", "shot her", "shots"], code: "SHOOT", confidence: 0.9 },
    Cue { phrases: &["stabbed", "stabbing"], code: "STABBING", confidence: 0.9 },
    Cue { phrases: &["has a gun", "with a gun", "a gun", "has a knife", "a knife", "weapon"], code: "WEAPON", confidence: 0.8 },
    Cue { phrases: &["choking"], code: "CHOKE", confidence: 0.9 },
    Cue { phrases: &["overdose", "overdosed", "took too many pills"], code: "OD", confidence: 0.85 },
    Cue { phrases: &["chest pain", "chest hurts", "pain in his chest", "pain in her chest", "pain in my chest"], code: "CHESPAIN", confidence: 0.85 },
    Cue { phrases: &["can't breathe", "cannot breathe", "trouble breathing", "hard to breathe", "difficulty breathing"], code: "RESP", confidence: 0.85 },
    Cue { phrases: &["unconscious", "unresponsive", "passed out", "won't wake up", "not waking up"], code: "PERUNCON", confidence: 0.8 },
    Cue { phrases: &["stroke", "face is drooping", "slurring"], code: "STROKE", confidence: 0.75 },
    Cue { phrases: &["seizure", "seizing", "convulsing"], code: "SEIZURE", confidence: 0.85 },
    Cue { phrases: &["car is on fire", "car on fire", "vehicle fire", "truck is on fire", "car fire"], code: "FVEH", confidence: 0.85 },
    Cue { phrases: &["brush fire", "grass fire", "wildfire", "woods are on fire", "field is on fire", "woods behind", "the woods", "forest fire"], code: "FBRUSH", confidence: 0.8 },
    Cue { phrases: &["house is on fire", "house fire", "building is on fire", "apartment is on fire", "kitchen is on fire", "structure fire", "on fire", "fire at", "fire in", "flames"], code: "FSTRU", confidence: 0.8 },
    Cue { phrases: &["smell gas", "gas leak", "smells like gas"], code: "GASLEAK", confidence: 0.85 },
    Cue { phrases: &["smoke"], code: "FSMOKE", confidence: 0.6 },
    Cue { phrases: &["trapped in the car", "pinned", "can't get out of the car", "driver is trapped", "trapped"], code: "MVAINJY", confidence: 0.7 },
    Cue { phrases: &["crash", "accident", "collision", "hit by a car", "hit a pedestrian", "pedestrian struck", "rolled over", "rear-ended", "ran off the road"], code: "MVA", confidence: 0.75 },
    Cue { phrases: &["broke in", "broke into", "break-in", "breaking in", "burglar", "someone in my house", "broken into"], code: "BURGLARY", confidence: 0.8 },
    Cue { phrases: &["robbed", "robbery", "held up"], code: "ROBBERY", confidence: 0.85 },
    Cue { phrases: &["hitting me", "beating", "attacked", "assaulted", "punched"], code: "ASSAULT", confidence: 0.75 },
    Cue { phrases: &["fell", "fallen", "a fall"], code: "FALL", confidence: 0.6 },
    Cue { phrases: &["bleeding"], code: "BLEEDING", confidence: 0.6 },
    Cue { phrases: &["fire"], code: "FUNK", confidence: 0.5 },
    Cue { phrases: &["medical", "sick", "ambulance"], code: "SICK", confidence: 0.4 },
    Cue { phrases: &["suspicious"], code: "SUSP", confidence: 0.5 },
];

const INJURY_WORDS: &[&str] = &["hurt", "injured", "bleeding", "trapped", "unconscious", "not moving", "pinned"];

const SUFFIXES: &str = r"street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|highway|hwy|way|court|ct|place|pl|parkway|pkwy|circle|terrace|trail";

static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    // Invariant: a literal pattern that compiles.
    Regex::new(&format!(r"(?i)\b(\d{{1,6}})\s+((?:[a-z0-9'.]+\s+){{0,3}}?(?:{SUFFIXES}))\b")).expect("address pattern")
});
// Invariant (all patterns below): literal patterns that compile; every extractor test builds them.
static HIGHWAY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b((?:highway|route|interstate|hwy|i-)\s*\d{1,4})\b").expect("highway pattern"));
// Street names are capitalised words (or ordinals like 5th); only the suffix is case-free.
static STREET_ONLY: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"\b((?:[A-Z0-9][A-Za-z0-9']*\s+){{1,3}}(?i:{SUFFIXES}))\b")).expect("street pattern"));
static CROSS: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"(?i)\bcross street (?:is\s+)?((?:[a-z0-9']+\s+){{0,3}}?(?:{SUFFIXES})?)(?:[.,!?]|$|\s)")).expect("cross pattern"));
static CORNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"\b((?:[A-Z0-9][A-Za-z0-9']*\s+){{1,2}}(?i:{SUFFIXES}))\s+and\s+((?:[A-Z0-9][A-Za-z0-9']*\s+){{1,2}}(?i:{SUFFIXES}))\b")).expect("corner pattern")
});
static NEAR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(?:near|by|next to|in front of|behind|outside) (the [a-z0-9' ]{3,40}?)(?:[.,!?]|$| and )").expect("near pattern"));
static APARTMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(?:apartment|apt\.?|unit|suite)\s*#?\s*([0-9a-z]{1,5})\b").expect("apartment pattern"));
static CITY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\bin ([A-Z][a-z]+(?: [A-Z][a-z]+)?)(?:[.,!?]|$)").expect("city pattern"));

fn title(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn expand_suffix(street: &str) -> String {
    let mut words: Vec<String> = street.split_whitespace().map(str::to_string).collect();
    if let Some(last) = words.last_mut() {
        let full = match last.to_lowercase().trim_end_matches('.') {
            "st" => Some("Street"),
            "ave" => Some("Avenue"),
            "rd" => Some("Road"),
            "ln" => Some("Lane"),
            "dr" => Some("Drive"),
            "blvd" => Some("Boulevard"),
            "hwy" => Some("Highway"),
            "ct" => Some("Court"),
            "pl" => Some("Place"),
            "pkwy" => Some("Parkway"),
            _ => None,
        };
        if let Some(f) = full {
            *last = f.to_string();
        }
    }
    title(&words.join(" "))
}

/// Finds the location in `text`, if any.
pub fn location(text: &str) -> Option<Location> {
    let mut loc = Location::default();
    if let Some(c) = ADDRESS.captures(text) {
        loc.number = Some(c[1].to_string());
        loc.street = Some(expand_suffix(&c[2]));
    } else if let Some(c) = HIGHWAY.captures(text) {
        loc.street = Some(title(&c[1]));
    } else if let Some(c) = CORNER.captures(text) {
        loc.street = Some(expand_suffix(c[1].trim()));
        loc.cross_street = Some(expand_suffix(c[2].trim()));
    } else if let Some(c) = STREET_ONLY.captures(text) {
        loc.street = Some(expand_suffix(c[1].trim()));
    }
    if let Some(c) = CROSS.captures(text) {
        let s = c[1].trim();
        if !s.is_empty() {
            loc.cross_street = Some(expand_suffix(s));
        }
    }
    if let Some(c) = NEAR.captures(text) {
        loc.landmark = Some(c[1].trim().to_string());
    }
    if let Some(c) = APARTMENT.captures(text) {
        loc.unit = Some(c[1].to_uppercase());
    }
    if loc.street.is_none() && loc.landmark.is_none() {
        return None;
    }
    if let Some(c) = CITY.captures(text) {
        let city = c[1].to_string();
        if !SUFFIXES.split('|').any(|s| city.to_lowercase().ends_with(s)) {
            loc.city = Some(city);
        }
    }
    loc.said = text.trim().to_string();
    Some(loc)
}

fn contains_phrase(hay: &str, phrase: &str) -> bool {
    let mut start = 0;
    while let Some(i) = hay[start..].find(phrase) {
        let at = start + i;
        let before_ok = at == 0 || !hay.as_bytes()[at - 1].is_ascii_alphanumeric();
        let end = at + phrase.len();
        let after_ok = end >= hay.len() || !hay.as_bytes()[end].is_ascii_alphanumeric();
        if before_ok && after_ok {
            return true;
        }
        start = at + 1;
    }
    false
}

/// Extracts facts from the caller's words (all of them so far, joined).
pub fn extract(caller_text: &str) -> Extraction {
    let lower = caller_text.to_lowercase().replace(['’'], "'");
    let mut out = Extraction::default();
    if let Some(cue) = CUES.iter().find(|c| c.phrases.iter().any(|p| contains_phrase(&lower, p))) {
        let mut code = cue.code;
        // A crash with someone hurt or trapped is a crash with injuries (unless the caller
        // says nobody is hurt).
        let denied = ["nobody looks hurt", "nobody is hurt", "no one is hurt", "no one hurt", "nobody hurt", "not hurt", "no injuries"].iter().any(|p| lower.contains(p));
        if code == "MVA" && !denied && INJURY_WORDS.iter().any(|w| contains_phrase(&lower, w)) {
            code = "MVAINJY";
        }
        out.facts.incident_type = Some(code.to_string());
        out.facts.priority = incident_type(code).map(|t| t.priority);
        out.type_confidence = cue.confidence;
    }
    out.facts.location = location(caller_text);
    for (words, hazard) in [
        (&["gun", "knife", "weapon"][..], Hazard::Weapons),
        (&["spreading", "spread to"][..], Hazard::FireSpreading),
        (&["trapped", "pinned"][..], Hazard::Trapped),
        (&["traffic", "in the road", "blocking the lane"][..], Hazard::Traffic),
        (&["gas", "chemical"][..], Hazard::Hazmat),
    ] {
        if words.iter().any(|w| contains_phrase(&lower, w)) {
            out.facts.hazards.push(hazard);
        }
    }
    if let Some(w) = INJURY_WORDS.iter().find(|w| contains_phrase(&lower, w)) {
        out.facts.injuries = Some(format!("caller said \"{w}\""));
    }
    out.danger = DANGER_WORDS.iter().copied().filter(|w| contains_phrase(&lower, w)).collect();
    if out.facts.priority.is_none() && !out.danger.is_empty() {
        out.facts.priority = Some(Priority::P1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let l = location("There's a fire at 123 Main Street, the house is on fire!").unwrap();
        assert_eq!((l.number.as_deref(), l.street.as_deref()), (Some("123"), Some("Main Street")));
        let l = location("We're at 45 Elm Rd, apartment 3.").unwrap();
        assert_eq!((l.street.as_deref(), l.unit.as_deref()), (Some("Elm Road"), Some("3")));
        let l = location("There's been a crash on Highway 9 near the Riverside exit.").unwrap();
        assert_eq!(l.street.as_deref(), Some("Highway 9"));
        assert_eq!(l.landmark.as_deref(), Some("the Riverside exit"));
        let l = location("Oak Avenue. The cross street is Pine Road.").unwrap();
        assert_eq!(l.cross_street.as_deref(), Some("Pine Road"));
        let l = location("I'm at the corner of Maple Avenue and 5th Street").unwrap();
        assert_eq!((l.street.as_deref(), l.cross_street.as_deref()), (Some("Maple Avenue"), Some("5th Street")));
        assert!(location("Please hurry.").is_none());
    }

    #[test]
    fn incidents_and_danger() {
        let e = extract("My husband collapsed, he's not breathing!");
        assert_eq!(e.facts.incident_type.as_deref(), Some("CARDIAC"));
        assert_eq!(e.facts.priority, Some(Priority::P1));
        assert!(e.danger.contains(&"not breathing"));
        let e = extract("There's been a crash, the driver is trapped");
        assert_eq!(e.facts.incident_type.as_deref(), Some("MVAINJY"));
        assert!(e.facts.hazards.contains(&Hazard::Trapped));
        let e = extract("Someone broke in, I think he has a gun");
        assert_eq!(e.facts.incident_type.as_deref(), Some("WEAPON"));
        assert!(e.facts.hazards.contains(&Hazard::Weapons));
        let e = extract("I'd like to know the weather");
        assert_eq!(e.facts.incident_type, None);
        assert_eq!(e.type_confidence, 0.0);
        assert!(!extract("the shotgun seat").danger.contains(&"shot"), "whole words only");
    }
}
