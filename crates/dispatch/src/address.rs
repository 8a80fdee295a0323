//! Is this the same place? Address matching for linking duplicate calls to one incident (issue
//! 18: a visible fire brings many calls, each saying the address its own way).
//!
//! A [`Location`] is reduced to a [`Place`]: a house number and street, an intersection of
//! two streets, or a landmark, each in a normal form:
//! - lower case, punctuation and `#`/`no.` dropped, `&`/`and`/`at` between streets as one;
//! - street suffixes and directionals to their USPS Publication 28 abbreviations
//!   (`Drive`/`Dr.` → `dr`, `North` → `n`), ordinal street names as numbers (`Fifth` → `5th`);
//!   house numbers are taken as digits, as the transcription writes them (`forty five twenty
//!   one` is not read: too ambiguous);
//! - the apartment or suite and the city do not take part (one fire, many flats; callers rarely
//!   say the city, and a different city would not be in the same centre's window).
//!
//! [`compare`] then says how two places relate ([`Match`]): the same address or intersection
//! (`Exact`: the automatic policy may link on it), the same street within one block of house
//! numbers or the same landmark (`Near`: proposed to the supervisor), or nothing. Two different
//! house numbers on the same street in different blocks, or streets that differ only in their
//! suffix (`Oak Street` and `Oak Avenue`), never match: a wrong link merges two emergencies, so
//! precision comes first (the held-out pairs in `tests/address_pairs.toml`).

use crate::incident::Location;

/// How two places relate, best first. JSON: `"none"`, `"near"`, `"exact"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// Nothing in common that says they are one place.
    None,
    /// The same street within one block (house numbers under 100 apart, same side or not), or
    /// the same landmark: likely the same incident, for a supervisor to confirm.
    Near,
    /// The same house number and street, or the same two cross streets.
    Exact,
}

/// A location in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A house number on a street: (`4521`, `willow creek dr`).
    Address {
        /// The house number as said (`4521`, `12b`).
        number: String,
        /// The street in normal form.
        street: String,
    },
    /// Two streets that cross, in order.
    Intersection(String, String),
    /// A street without a number.
    Street(String),
    /// A landmark in normal form (`riverside exit`).
    Landmark(String),
}

/// USPS Publication 28, Appendix C1 (street suffixes): the common forms callers say, to the
/// standard abbreviation.
const SUFFIXES: &[(&str, &str)] = &[
    ("street", "st"), ("st", "st"), ("str", "st"),
    ("avenue", "ave"), ("ave", "ave"), ("av", "ave"),
    ("road", "rd"), ("rd", "rd"),
    ("drive", "dr"), ("dr", "dr"), ("drv", "dr"),
    ("lane", "ln"), ("ln", "ln"),
    ("boulevard", "blvd"), ("blvd", "blvd"), ("boul", "blvd"),
    ("highway", "hwy"), ("hwy", "hwy"),
    ("court", "ct"), ("ct", "ct"),
    ("place", "pl"), ("pl", "pl"),
    ("parkway", "pkwy"), ("pkwy", "pkwy"),
    ("circle", "cir"), ("cir", "cir"),
    ("terrace", "ter"), ("ter", "ter"),
    ("trail", "trl"), ("trl", "trl"),
    ("way", "way"), ("wy", "way"),
    ("square", "sq"), ("sq", "sq"),
    ("freeway", "fwy"), ("fwy", "fwy"),
    ("expressway", "expy"), ("expy", "expy"),
    ("pike", "pike"), ("route", "rte"), ("rte", "rte"),
];

/// USPS Publication 28, Appendix C2 (directionals).
const DIRECTIONALS: &[(&str, &str)] = &[
    ("north", "n"), ("n", "n"), ("south", "s"), ("s", "s"), ("east", "e"), ("e", "e"), ("west", "w"), ("w", "w"),
    ("northeast", "ne"), ("ne", "ne"), ("northwest", "nw"), ("nw", "nw"), ("southeast", "se"), ("se", "se"), ("southwest", "sw"), ("sw", "sw"),
];

/// Ordinal street names as numbers.
const ORDINALS: &[(&str, &str)] = &[
    ("first", "1st"), ("second", "2nd"), ("third", "3rd"), ("fourth", "4th"), ("fifth", "5th"), ("sixth", "6th"), ("seventh", "7th"),
    ("eighth", "8th"), ("ninth", "9th"), ("tenth", "10th"), ("eleventh", "11th"), ("twelfth", "12th"),
];

fn lookup(table: &[(&str, &'static str)], word: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == word).map(|(_, v)| *v)
}

/// Lower case words, punctuation dropped (an apostrophe joins: `o'neil` → `oneil`).
fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .replace('\'', "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A street name in normal form: `North Fifth Avenue` → `n 5th ave`, `Willow Creek Dr.` →
/// `willow creek dr`. Empty when nothing is left.
pub fn normal_street(street: &str) -> String {
    let ws = words(street);
    let last = ws.len().saturating_sub(1);
    ws.iter()
        .enumerate()
        .map(|(i, w)| {
            // A directional only at either end (`North Street` keeps `north` as the name when
            // it is the whole name before the suffix).
            let is_name_itself = ws.len() == 2 && i == 0 && lookup(SUFFIXES, &ws[1]).is_some();
            if (i == 0 || i == last) && !is_name_itself
                && let Some(d) = lookup(DIRECTIONALS, w) {
                    return d.to_string();
                }
            if let Some(o) = lookup(ORDINALS, w) {
                return o.to_string();
            }
            if i == last && i > 0
                && let Some(s) = lookup(SUFFIXES, w) {
                    return s.to_string();
                }
            // A numbered road: `Route 9`, `Highway 101` (the kind before its number).
            if i + 1 == last && ws[last].chars().all(|c| c.is_ascii_digit())
                && let Some(s) = lookup(SUFFIXES, w) {
                    return s.to_string();
                }
            w.clone()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A house number in normal form: digits and a letter (`4521`, `12b`); `#` and `no` dropped.
fn normal_number(n: &str) -> Option<String> {
    let w: String = words(n).into_iter().filter(|w| w != "no" && w != "number").collect::<Vec<_>>().join("");
    (w.chars().next().is_some_and(|c| c.is_ascii_digit())).then_some(w)
}

/// The leading digits of a house number, for the block test.
fn numeric(n: &str) -> Option<u64> {
    n.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

impl Place {
    /// The place a location names, if it names one: an address, else an intersection, else a
    /// street, else a landmark.
    pub fn of(l: &Location) -> Option<Place> {
        let street = l.street.as_deref().map(normal_street).filter(|s| !s.is_empty());
        let number = l.number.as_deref().and_then(normal_number);
        let cross = l.cross_street.as_deref().map(normal_street).filter(|s| !s.is_empty());
        match (number, street, cross) {
            (Some(number), Some(street), _) => Some(Place::Address { number, street }),
            (None, Some(a), Some(b)) => {
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                Some(Place::Intersection(a, b))
            }
            (None, Some(s), None) => Some(Place::Street(s)),
            _ => {
                let landmark = words(l.landmark.as_deref()?).into_iter().filter(|w| !matches!(w.as_str(), "the" | "a" | "an" | "near" | "by" | "at" | "of")).collect::<Vec<_>>().join(" ");
                (!landmark.is_empty()).then_some(Place::Landmark(landmark))
            }
        }
    }
}

/// How two places relate ([`Match`]).
pub fn compare(a: &Place, b: &Place) -> Match {
    use Place::*;
    match (a, b) {
        (Address { number: n1, street: s1 }, Address { number: n2, street: s2 }) if s1 == s2 => {
            if n1 == n2 {
                Match::Exact
            } else {
                match (numeric(n1), numeric(n2)) {
                    (Some(x), Some(y)) if x / 100 == y / 100 => Match::Near,
                    _ => Match::None,
                }
            }
        }
        (Intersection(a1, b1), Intersection(a2, b2)) if a1 == a2 && b1 == b2 => Match::Exact,
        // An address on one of the streets of an intersection, or a street alone: near.
        (Address { street, .. }, Intersection(x, y)) | (Intersection(x, y), Address { street, .. }) if street == x || street == y => Match::Near,
        (Street(s1), Street(s2)) if s1 == s2 => Match::Near,
        (Landmark(l1), Landmark(l2)) if l1 == l2 => Match::Near,
        _ => Match::None,
    }
}

/// How two locations relate: [`compare`] of their places; [`Match::None`] when either names
/// no place.
pub fn same_place(a: &Location, b: &Location) -> Match {
    match (Place::of(a), Place::of(b)) {
        (Some(a), Some(b)) => compare(&a, &b),
        _ => Match::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(number: &str, street: &str) -> Location {
        Location { said: format!("{number} {street}"), number: Some(number.into()), street: Some(street.into()), ..Default::default() }
    }

    #[test]
    fn streets_reduce_to_their_usps_forms() {
        assert_eq!(normal_street("Willow Creek Drive"), "willow creek dr");
        assert_eq!(normal_street("willow creek dr."), "willow creek dr");
        assert_eq!(normal_street("North Fifth Avenue"), "n 5th ave");
        assert_eq!(normal_street("N. 5th Ave"), "n 5th ave");
        assert_eq!(normal_street("North Street"), "north st", "a directional that is the name itself stays");
        assert_eq!(normal_street("O'Neil Road"), "oneil rd");
        assert_eq!(normal_street("Route 9"), normal_street("Rte. 9"));
        assert_eq!(normal_street("Highway 101"), "hwy 101");
    }

    #[test]
    fn the_same_address_said_two_ways_is_exact_and_a_neighbour_is_near() {
        assert_eq!(same_place(&addr("4521", "Willow Creek Drive"), &addr("4521", "willow creek dr.")), Match::Exact);
        assert_eq!(same_place(&addr("4521", "Willow Creek Drive"), &addr("4525", "Willow Creek Drive")), Match::Near);
        assert_eq!(same_place(&addr("4521", "Willow Creek Drive"), &addr("4621", "Willow Creek Drive")), Match::None, "another block");
        assert_eq!(same_place(&addr("123", "Oak Street"), &addr("123", "Oak Avenue")), Match::None, "another street");
        assert_eq!(same_place(&addr("#12", "Main St"), &addr("12", "Main Street")), Match::Exact);
    }

    #[test]
    fn intersections_match_in_either_order() {
        let a = Location { street: Some("Main Street".into()), cross_street: Some("5th Avenue".into()), ..Default::default() };
        let b = Location { street: Some("Fifth Ave".into()), cross_street: Some("Main St".into()), ..Default::default() };
        assert_eq!(same_place(&a, &b), Match::Exact);
        assert_eq!(same_place(&a, &addr("120", "Main Street")), Match::Near);
        assert_eq!(same_place(&a, &Location::default()), Match::None);
    }
}
