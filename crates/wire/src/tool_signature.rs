//! The signature of a request to an agent profile's tool endpoint (issue 21):
//! `X-Watchfloor-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` with
//! `X-Watchfloor-Timestamp: <unix seconds>`. The timestamp in the signed text lets the endpoint
//! refuse a replayed request (see [`verify`]). Verification compares in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Largest difference between the timestamp and the endpoint's clock [`verify`] accepts, s.
pub const MAX_SKEW_S: u64 = 300;

fn mac_for(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    // Invariant: HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `sha256=` and the hex HMAC-SHA256 of `timestamp + "." + body` under `secret` (71 characters).
pub fn compute(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let bytes = mac_for(secret, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `signature` signs `body` at `timestamp` under `secret`, and `timestamp` is within
/// [`MAX_SKEW_S`] of `now_s`.
pub fn verify(secret: &[u8], timestamp: u64, body: &[u8], signature: &str, now_s: u64) -> bool {
    if timestamp.abs_diff(now_s) > MAX_SKEW_S {
        return false;
    }
    let Some(hex) = signature.strip_prefix("sha256=") else { return false };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
    mac_for(secret, timestamp, body).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_of_timestamp_dot_body() {
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`
        let sig = compute(b"secret", 1_700_000_000, b"{}");
        assert_eq!(sig, "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163");
        assert!(verify(b"secret", 1_700_000_000, b"{}", &sig, 1_700_000_100));
        assert!(!verify(b"secret", 1_700_000_000, b"{}", &sig, 1_700_000_000 + MAX_SKEW_S + 1), "too old: a replay");
        assert!(!verify(b"other", 1_700_000_000, b"{}", &sig, 1_700_000_000));
        assert!(!verify(b"secret", 1_700_000_000, b"{ }", &sig, 1_700_000_000));
        assert!(!verify(b"secret", 1_700_000_000, b"{}", "sha256=zz", 1_700_000_000));
    }
}
