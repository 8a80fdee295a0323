//! Places a simulated call through a running Watchfloor server, the way Twilio would: the voice
//! webhook (form-encoded, signed when an auth token is given), then the media stream named in
//! the TwiML answer, driven by the caller fake.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use watchfloor_wire::signature;

use crate::caller::{self, CallerOptions, CallerReport};
use crate::scenario::Scenario;

/// What the webhook's TwiML asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamTwiml {
    /// `<Stream url=…>`.
    pub url: String,
    /// `<Parameter>`s.
    pub parameters: BTreeMap<String, String>,
    /// Verbs after `</Connect>` (the fallback path), e.g. `["Say", "Dial"]`.
    pub fallback_verbs: Vec<String>,
    /// The number in `<Dial>`, if any.
    pub dial: Option<String>,
}

/// Reads the `<Connect><Stream>` and the fallback verbs out of a TwiML document.
pub fn parse_twiml(xml: &str) -> anyhow::Result<StreamTwiml> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = StreamTwiml::default();
    let mut depth_in_connect = false;
    let mut in_dial = false;
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) => {
                let name: String = AsRef::<str>::as_ref(&e.name()).to_string();
                let attr = |key: &str| -> Option<String> {
                    e.attributes().flatten().find(|a| AsRef::<str>::as_ref(&a.key) == key).and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok()).map(|v| v.into_owned())
                };
                match name.as_str() {
                    "Response" => {}
                    "Connect" => depth_in_connect = true,
                    "Stream" => out.url = attr("url").unwrap_or_default(),
                    "Parameter" => {
                        if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
                            out.parameters.insert(n, v);
                        }
                    }
                    other if !depth_in_connect => {
                        out.fallback_verbs.push(other.to_string());
                        in_dial = other == "Dial";
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_dial => {
                out.dial = Some(AsRef::<str>::as_ref(&t).trim().to_string());
            }
            Event::End(e) => {
                match AsRef::<str>::as_ref(&e.name()) {
                    "Connect" => depth_in_connect = false,
                    "Dial" => in_dial = false,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Options for a simulated call.
#[derive(Debug, Clone, Default)]
pub struct SimulateOptions {
    /// The caller fake's behaviour.
    pub caller: CallerOptions,
    /// Twilio auth token to sign the webhook and the upgrade with (when the server checks).
    pub auth_token: Option<String>,
    /// The server's public origin as configured (`WATCHFLOOR_PUBLIC_URL`), for signatures;
    /// defaults to `base_url`.
    pub public_url: Option<String>,
    /// The CallSid to use (default: a fresh one).
    pub call_sid: Option<String>,
    /// The HTTP client for the webhook (default: a new one per call); the load generator shares
    /// one across calls.
    pub client: Option<reqwest::Client>,
    /// The called number, the webhook's `To` (default [`EMERGENCY_LINE`]): which agent profile
    /// answers depends on it.
    pub to: Option<String>,
}

/// The called number of simulated calls unless told otherwise: the centre's 911 line.
pub const EMERGENCY_LINE: &str = "+15550000911";

/// The outcome of a simulated call.
#[derive(Debug, Clone)]
pub struct SimulatedCall {
    /// The CallSid used.
    pub call_sid: String,
    /// The TwiML the webhook returned.
    pub twiml: StreamTwiml,
    /// How long the webhook took to answer, µs (request sent → whole answer read).
    pub webhook_us: u64,
    /// What the caller fake saw.
    pub report: CallerReport,
}

/// A fresh CallSid (`CA` + 32 hex digits).
pub fn new_call_sid() -> String {
    format!("CA{:032x}", rand::random::<u128>())
}

/// Places one call through the server at `base_url` (`http://127.0.0.1:8080`).
pub async fn place_call(base_url: &str, scenario: &Scenario, opts: &SimulateOptions) -> anyhow::Result<SimulatedCall> {
    let call_sid = opts.call_sid.clone().unwrap_or_else(new_call_sid);
    let account_sid = "AC00000000000000000000000000000000".to_string();
    let params: Vec<(String, String)> = vec![
        ("AccountSid".into(), account_sid.clone()),
        ("CallSid".into(), call_sid.clone()),
        ("CallStatus".into(), "ringing".into()),
        ("Direction".into(), "inbound".into()),
        ("From".into(), scenario.caller_number.clone()),
        ("To".into(), opts.to.clone().unwrap_or_else(|| EMERGENCY_LINE.into())),
        ("Simulated".into(), "true".into()),
    ];
    let public = opts.public_url.clone().unwrap_or_else(|| base_url.to_string());
    let webhook_path = "/api/webhooks/voice";
    let client = match &opts.client {
        Some(c) => c.clone(),
        None => reqwest::Client::builder().no_proxy().build()?,
    };
    let mut req = client.post(format!("{}{webhook_path}", base_url.trim_end_matches('/'))).form(&params);
    if let Some(token) = &opts.auth_token {
        req = req.header("x-twilio-signature", signature::compute(token, &format!("{}{webhook_path}", public.trim_end_matches('/')), &params));
    }
    let sent = std::time::Instant::now();
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.text().await?;
    let webhook_us = sent.elapsed().as_micros() as u64;
    if !status.is_success() {
        anyhow::bail!("webhook answered {status}: {body}");
    }
    let twiml = parse_twiml(&body)?;
    if twiml.url.is_empty() {
        anyhow::bail!("webhook TwiML has no <Stream>: {body}");
    }
    let mut caller_opts = opts.caller.clone();
    if let Some(token) = &opts.auth_token {
        caller_opts.signature = Some(signature::compute(token, &twiml.url, &[]));
    }
    // The stream URL is the public one; a local simulator reaches the server at base_url.
    let ws_url = local_ws_url(base_url, &twiml.url);
    let report = caller::run(&ws_url, &call_sid, &account_sid, twiml.parameters.clone(), scenario, &caller_opts).await?;
    Ok(SimulatedCall { call_sid, twiml, webhook_us, report })
}

/// Maps the public stream URL onto the server's local address (same path).
fn local_ws_url(base_url: &str, stream_url: &str) -> String {
    let path = stream_url.splitn(4, '/').nth(3).unwrap_or("ws/media");
    let base = base_url.trim_end_matches('/').replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    format!("{base}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stream_and_fallback() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://h.example/ws/media"><Parameter name="callId" value="CA1"/></Stream></Connect><Say>Connecting you to a dispatcher.</Say><Dial>+15550100</Dial></Response>"#;
        let t = parse_twiml(xml).unwrap();
        assert_eq!(t.url, "wss://h.example/ws/media");
        assert_eq!(t.parameters["callId"], "CA1");
        assert_eq!(t.fallback_verbs, vec!["Say", "Dial"]);
        assert_eq!(t.dial.as_deref(), Some("+15550100"));
        assert_eq!(local_ws_url("http://127.0.0.1:9000", &t.url), "ws://127.0.0.1:9000/ws/media");
    }
}
