//! X-Twilio-Signature: verification never panics, and a computed signature always verifies
//! while a changed parameter never does.
#![no_main]
use libfuzzer_sys::fuzz_target;
use watchfloor_wire::signature::{compute, verify};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let token = parts.next().unwrap_or("");
    let url = parts.next().unwrap_or("");
    let sig = parts.next().unwrap_or("");
    let params: Vec<(String, String)> = parts.collect::<Vec<_>>().chunks(2).map(|c| (c[0].to_string(), c.get(1).unwrap_or(&"").to_string())).collect();
    let _ = verify(token, url, &params, sig);
    let good = compute(token, url, &params);
    assert!(verify(token, url, &params, &good));
    let mut changed = params.clone();
    changed.push(("Injected".into(), "1".into()));
    assert!(!verify(token, url, &changed, &good));
});
