//! Protocol cards as data: what a call taker must cover, per incident type (issue 19).
//!
//! A card set is one TOML file (`cards/default.toml` ships): `id`, `version` (every scorecard
//! names the version it used), the `[levels]` bands and `[[items]]`, each with an `id`, a
//! `category`, the `text` a reviewer reads, the APCO incident type codes it applies to
//! (`types`; none: every call) and its `rule`. [`Cards::parse`] checks it whole: unique item
//! ids, known type codes, phrases that are not empty, bands in order.

use serde::{Deserialize, Serialize};

/// The default card set, as shipped (`cards/default.toml`).
pub const DEFAULT_CARDS: &str = include_str!("../cards/default.toml");

/// The protocol-compliance categories (IAED-style, `shared/DOMAIN.md`): case entry, key
/// questions, instructions, final code, customer service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The address verified, the callback number, the chief complaint.
    CaseEntry,
    /// The questions the incident type calls for.
    KeyQuestions,
    /// Dispatch life support and pre-arrival instructions.
    Instructions,
    /// The incident type the call ends with, and its dispatch.
    FinalCode,
    /// How the caller was treated.
    CustomerService,
}

/// How an item is checked against a call. Phrases are matched in the call taker's final lines
/// (the AI agent's and a supervisor's who held the voice), lower-cased, with curly apostrophes
/// made straight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    /// A call-taker line contains one of the phrases.
    AgentSays {
        /// The phrases, any of which will do.
        any: Vec<String>,
    },
    /// A call-taker question (a line with `?`) contains one of the phrases.
    AgentAsks {
        /// The phrases, any of which will do.
        any: Vec<String>,
    },
    /// A call-taker line, after the location became known, repeats it: the house number and
    /// the street's name (or both streets of an intersection, or the landmark's first word).
    LocationReadBack,
    /// The call ended with an incident type recorded.
    IncidentTypeKnown,
    /// A dispatch went out (by any policy or supervisor).
    Dispatched,
    /// No alert with this label was raised (`agent_stuck`, `dispatch_waiting`, …; the labels of
    /// `watchfloor_dispatch::alerts::AlertKind::label`).
    NoAlert {
        /// The alert's label.
        alert: String,
    },
}

/// One item of a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stable id (`location_verified`), unique in the set.
    pub id: String,
    /// Its category.
    pub category: Category,
    /// What a reviewer reads.
    pub text: String,
    /// APCO incident type codes it applies to; empty: every call.
    #[serde(default)]
    pub types: Vec<String>,
    /// How it is checked.
    pub rule: Rule,
}

/// The compliance bands: the share of applicable items met (0–1) at or above which a call is
/// High, Partial, Low; below `low` it is Non-compliant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// High at or above this share.
    pub high: f64,
    /// Partial at or above this share.
    pub partial: f64,
    /// Low at or above this share.
    pub low: f64,
}

/// A card set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cards {
    /// The set's id.
    pub id: String,
    /// Its version: every scorecard names the version it used.
    pub version: u32,
    /// The compliance bands.
    pub levels: Levels,
    /// The items, in the order a reviewer reads them.
    pub items: Vec<Item>,
}

/// Why a card set was refused.
#[derive(Debug, thiserror::Error)]
pub enum CardsError {
    /// Not TOML of the card shape.
    #[error("protocol cards: {0}")]
    Toml(#[from] toml::de::Error),
    /// Well-formed but wrong: what is wrong, item by item.
    #[error("protocol cards: {0}")]
    Invalid(String),
    /// An edit of another version than the current one (someone saved in between).
    #[error("protocol cards: this edit starts from version {edited}, but version {current} has been saved since: reload and edit again")]
    Stale {
        /// The version the edit started from (its `version` line).
        edited: i64,
        /// The current version.
        current: u32,
    },
}

impl Cards {
    /// The shipped default set.
    pub fn default_set() -> Cards {
        // Invariant: the shipped file parses (checked by a test).
        Cards::parse(DEFAULT_CARDS).expect("the shipped cards parse")
    }

    /// Parses and checks a card set.
    ///
    /// # Errors
    /// [`CardsError::Toml`] for bad TOML or an unknown field or rule; [`CardsError::Invalid`]
    /// for a repeated item id, an unknown incident type code, an empty phrase list or phrase,
    /// or bands out of order.
    pub fn parse(text: &str) -> Result<Cards, CardsError> {
        let cards: Cards = toml::from_str(text)?;
        let mut errors = Vec::new();
        let l = cards.levels;
        if !(0.0 < l.low && l.low <= l.partial && l.partial <= l.high && l.high <= 1.0) {
            errors.push("levels must be 0 < low ≤ partial ≤ high ≤ 1".to_string());
        }
        if cards.items.is_empty() {
            errors.push("no items".to_string());
        }
        for (i, item) in cards.items.iter().enumerate() {
            if item.id.trim().is_empty() || cards.items[..i].iter().any(|x| x.id == item.id) {
                errors.push(format!("item {}: id {:?} is empty or repeated", i + 1, item.id));
            }
            for t in &item.types {
                if watchfloor_dispatch::types::incident_type(t).is_none() {
                    errors.push(format!("item {}: {t:?} is not a known incident type code", item.id));
                }
            }
            if let Rule::AgentSays { any } | Rule::AgentAsks { any } = &item.rule
                && (any.is_empty() || any.iter().any(|p| p.trim().is_empty()))
            {
                errors.push(format!("item {}: phrases must not be empty", item.id));
            }
        }
        if errors.is_empty() { Ok(cards) } else { Err(CardsError::Invalid(errors.join("; "))) }
    }

    /// An administrator's edit of the current set (version `current`): `text` is the edited
    /// TOML, whose `version` line names the version it started from (left out: the current
    /// one). Returns the new set as version `current + 1` and its text with the `version` line
    /// set to it (the rest of the text as written, comments kept).
    ///
    /// # Errors
    /// [`CardsError::Stale`] when the edit started from another version (a concurrent save);
    /// otherwise as [`Cards::parse`].
    pub fn revise(current: u32, text: &str) -> Result<(Cards, String), CardsError> {
        let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| CardsError::Invalid(format!("not TOML: {}", e.message())))?;
        match doc.get("version").map(|v| v.as_integer()) {
            None => {}
            Some(Some(v)) if v == i64::from(current) => {}
            Some(Some(v)) => return Err(CardsError::Stale { edited: v, current }),
            Some(None) => return Err(CardsError::Invalid("version must be a whole number".into())),
        }
        doc["version"] = toml_edit::value(i64::from(current) + 1);
        let text = doc.to_string();
        let cards = Cards::parse(&text)?;
        Ok((cards, text))
    }

    /// Whether `item` applies to a call of incident type `code` (none: type unknown; only
    /// items for every call apply).
    pub fn applies(item: &Item, code: Option<&str>) -> bool {
        item.types.is_empty() || code.is_some_and(|c| item.types.iter().any(|t| t == c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_cards_parse_and_bad_ones_say_why() {
        let c = Cards::default_set();
        assert_eq!(c.id, "watchfloor-default");
        assert!(c.items.iter().any(|i| i.category == Category::KeyQuestions));
        let bad = DEFAULT_CARDS.replace("types = [\"CARDIAC\"]", "types = [\"NOPE\"]");
        assert!(matches!(Cards::parse(&bad), Err(CardsError::Invalid(e)) if e.contains("NOPE")));
        let dup = format!("{DEFAULT_CARDS}\n[[items]]\nid = \"callback_number\"\ncategory = \"case_entry\"\ntext = \"x\"\nrule = {{ kind = \"dispatched\" }}\n");
        assert!(matches!(Cards::parse(&dup), Err(CardsError::Invalid(e)) if e.contains("repeated")));
        assert!(matches!(Cards::parse("id = 1"), Err(CardsError::Toml(_))));
    }

    #[test]
    fn an_edit_becomes_the_next_version_and_a_stale_one_is_refused() {
        let edited = DEFAULT_CARDS.replace("high = 0.9", "high = 0.95");
        let (c, text) = Cards::revise(1, &edited).unwrap();
        assert_eq!((c.version, c.levels.high), (2, 0.95));
        assert!(text.contains("version = 2") && text.contains("# Watchfloor's default protocol cards"), "comments kept");
        assert!(matches!(Cards::revise(2, &edited), Err(CardsError::Stale { edited: 1, current: 2 })));
        let unversioned = edited.replace("version = 1\n", "");
        assert_eq!(Cards::revise(4, &unversioned).unwrap().0.version, 5);
        assert!(matches!(Cards::revise(1, "id = [unclosed"), Err(CardsError::Invalid(e)) if e.contains("not TOML")));
        assert!(matches!(Cards::revise(1, &edited.replace("high = 0.95", "high = 1.5")), Err(CardsError::Invalid(_))));
    }
}
