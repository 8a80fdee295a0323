//! Address matching for duplicate calls (issue 18) on held-out pairs (`tests/address/*.toml`,
//! written for this test): how often two callers' words for one place are linked (recall), and
//! how often two different places are (precision). A wrong link merges two emergencies, so
//! nothing that should not match may match. Run with `--nocapture` for the figures.

use serde::Deserialize;
use watchfloor_dispatch::address::{Match, same_place};
use watchfloor_dispatch::incident::Location;

#[derive(Deserialize)]
struct Set {
    pair: Vec<Pair>,
}

#[derive(Deserialize)]
struct Pair {
    a: Loc,
    b: Loc,
    expect: String,
}

#[derive(Deserialize, Default)]
struct Loc {
    number: Option<String>,
    street: Option<String>,
    cross_street: Option<String>,
    landmark: Option<String>,
}

impl Loc {
    fn location(&self) -> Location {
        Location { said: String::new(), number: self.number.clone(), street: self.street.clone(), cross_street: self.cross_street.clone(), landmark: self.landmark.clone(), ..Default::default() }
    }
}

fn expected(s: &str) -> Match {
    match s {
        "exact" => Match::Exact,
        "near" => Match::Near,
        "none" => Match::None,
        other => panic!("expect must be exact, near or none, not {other:?}"),
    }
}

/// Scores the pairs of `file`: (precision, recall, the pairs scored wrong); fails on a link
/// between two different places or a wrong exact match.
fn score(file: &str) -> (f64, f64, Vec<String>) {
    let text = std::fs::read_to_string(format!("{}/tests/address/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let set: Set = toml::from_str(&text).unwrap();
    let (mut tp, mut fp, mut fn_, mut exact_right, mut exact_expected, mut exact_wrong) = (0, 0, 0, 0, 0, 0);
    let mut wrong = Vec::new();
    for p in &set.pair {
        let want = expected(&p.expect);
        let got = same_place(&p.a.location(), &p.b.location());
        assert_eq!(got, same_place(&p.b.location(), &p.a.location()), "symmetric: {:?} / {:?}", p.a.street, p.b.street);
        match (want != Match::None, got != Match::None) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
        if want == Match::Exact {
            exact_expected += 1;
        }
        if got == Match::Exact {
            if want == Match::Exact { exact_right += 1 } else { exact_wrong += 1 }
        }
        if got != want {
            wrong.push(format!("{:?}/{:?} ~ {:?}/{:?}: want {want:?}, got {got:?}", p.a.number, p.a.street.as_ref().or(p.a.landmark.as_ref()), p.b.number, p.b.street.as_ref().or(p.b.landmark.as_ref())));
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    println!("{file}: {} pairs: any match precision {precision:.3}, recall {recall:.3}; exact {exact_right} of {exact_expected}, {exact_wrong} exact where not", set.pair.len());
    for w in &wrong {
        println!("  {w}");
    }
    assert_eq!(fp, 0, "a link between two different places: {wrong:?}");
    assert_eq!(exact_wrong, 0, "an exact match the automatic policy would link, wrongly: {wrong:?}");
    (precision, recall, wrong)
}

/// The pairs the matcher was written against (two misses, numbered routes, were fixed after the
/// first score).
#[test]
fn the_development_pairs_match_with_full_precision() {
    let (_, recall, wrong) = score("pairs.toml");
    assert!(recall >= 0.9, "recall {recall:.3}: {wrong:?}");
}

/// Pairs written after the matcher was tuned, scored untuned: precision must still be full;
/// recall is what it is (reported, floor 0.7).
#[test]
fn unseen_pairs_never_link_two_places() {
    let (_, recall, wrong) = score("pairs-unseen.toml");
    assert!(recall >= 0.7, "recall {recall:.3}: {wrong:?}");
}
