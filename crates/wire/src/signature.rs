//! `X-Twilio-Signature`: base64(HMAC-SHA1(auth_token, URL + concat(sorted params as name+value))),
//! PROTOCOLS.md §2 "Signatures". The URL is the full public URL Twilio called (scheme, host, path,
//! query); the WebSocket upgrade is signed with its `wss://` URL and no params.
//! Verification compares in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

fn mac_for(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    // Invariant: HMAC accepts keys of any length.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Computes the signature Twilio would send for a request to `url` with form `params`
/// (empty for GET and for the WebSocket upgrade). Returns base64 text (28 characters).
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac_for(auth_token, url, params).finalize().into_bytes())
}

/// Checks `signature` (the header's value) in constant time. A signature that is not valid
/// base64 or has the wrong length is simply invalid.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac_for(auth_token, url, params).verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    /// The worked example of Twilio's request-validation documentation (twilio-php `RequestValidator` docs).
    #[test]
    fn twilio_documentation_example() {
        let token = "12345";
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(compute(token, url, &p), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify(token, url, &p, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn order_of_params_does_not_matter_but_values_do() {
        let a = params(&[("To", "+1"), ("From", "+2")]);
        let b = params(&[("From", "+2"), ("To", "+1")]);
        let sig = compute("tok", "https://h/api/webhooks/voice", &a);
        assert!(verify("tok", "https://h/api/webhooks/voice", &b, &sig));
        assert!(!verify("tok", "https://h/api/webhooks/voice", &params(&[("From", "+3"), ("To", "+1")]), &sig));
        assert!(!verify("other", "https://h/api/webhooks/voice", &a, &sig));
        assert!(!verify("tok", "https://h/api/webhooks/voice?x=1", &a, &sig));
    }

    #[test]
    fn websocket_upgrade_is_signed_without_params() {
        let sig = compute("tok", "wss://h/ws/media", &[]);
        assert!(verify("tok", "wss://h/ws/media", &[], &sig));
        assert!(!verify("tok", "https://h/ws/media", &[], &sig));
    }

    #[test]
    fn garbage_signatures_are_invalid() {
        for bad in ["", "!!!", "AAAA", "RSOYDt4T1cUTdK1PDd93/VVr8B8", "RSOYDt4T1cUTdK1PDd93/VVr8B8=extra"] {
            assert!(!verify("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &[], bad), "{bad}");
        }
    }
}
