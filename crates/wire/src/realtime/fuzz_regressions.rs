//! Inputs the fuzzer found, kept as regression tests.

use super::*;

/// fuzz/model_event: a `response.done` with an integer too large for u64/i64 in `usage`.
#[test]
fn fuzz_model_event_huge_integer_round_trips() {
    let text = String::from_utf8_lossy(include_bytes!("../../tests/fuzz/model_event_huge_integer.json")).into_owned();
    let ev = ServerEvent::parse(&text).unwrap();
    let again = ServerEvent::parse(&ev.to_json()).unwrap();
    assert_eq!(again, ev, "{}\\n{}", ev.to_json(), again.to_json());
}
