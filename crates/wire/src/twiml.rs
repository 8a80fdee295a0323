//! A TwiML builder: `<Response>` with `<Connect><Stream>`/`<Parameter>`, `<Say>`, `<Pause>`, `<Dial>`,
//! `<Enqueue>`, `<Hangup>`. Text and attributes are XML-escaped (`&`, `<`, `>`, `'`, `"`).
//!
//! ```
//! use watchfloor_wire::twiml::{Response, Verb};
//! let xml = Response::new()
//!     .connect_stream("wss://example.test/ws/media", [("callId", "CA1")])
//!     .say("Connecting you to a dispatcher.")
//!     .dial("+15550100")
//!     .to_xml();
//! assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://example.test/ws/media">"#));
//! ```

use std::fmt::Write as _;

use quick_xml::escape::escape;

/// A TwiML verb.
#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    /// `<Connect><Stream url=…>` with `<Parameter>`s: a bidirectional media stream. Holds the call
    /// until our server closes the socket; then the next verb runs.
    ConnectStream {
        /// `wss://` URL, no query string.
        url: String,
        /// `<Parameter name= value=>` pairs, delivered in `start.customParameters`.
        parameters: Vec<(String, String)>,
    },
    /// `<Say>` text with Twilio's default voice.
    Say(String),
    /// `<Pause length=…>`, seconds.
    Pause(u32),
    /// `<Dial>` a phone number (E.164) or SIP URI.
    Dial {
        /// The number.
        number: String,
        /// Ring timeout, seconds.
        timeout_s: Option<u32>,
    },
    /// `<Enqueue>` into a named queue (a human call-taker queue).
    Enqueue(String),
    /// `<Hangup/>`.
    Hangup,
}

/// A `<Response>` document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// Verbs in the order Twilio runs them.
    pub verbs: Vec<Verb>,
}

impl Response {
    /// An empty `<Response/>`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a verb.
    pub fn verb(mut self, verb: Verb) -> Self {
        self.verbs.push(verb);
        self
    }

    /// Appends `<Connect><Stream>` with parameters.
    pub fn connect_stream<K: Into<String>, V: Into<String>>(
        self,
        url: impl Into<String>,
        parameters: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let parameters = parameters.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.verb(Verb::ConnectStream { url: url.into(), parameters })
    }

    /// Appends `<Say>`.
    pub fn say(self, text: impl Into<String>) -> Self {
        self.verb(Verb::Say(text.into()))
    }

    /// Appends `<Pause>`.
    pub fn pause(self, seconds: u32) -> Self {
        self.verb(Verb::Pause(seconds))
    }

    /// Appends `<Dial>number</Dial>`.
    pub fn dial(self, number: impl Into<String>) -> Self {
        self.verb(Verb::Dial { number: number.into(), timeout_s: None })
    }

    /// Appends `<Enqueue>`.
    pub fn enqueue(self, queue: impl Into<String>) -> Self {
        self.verb(Verb::Enqueue(queue.into()))
    }

    /// Appends `<Hangup/>`.
    pub fn hangup(self) -> Self {
        self.verb(Verb::Hangup)
    }

    /// The document, with XML declaration.
    pub fn to_xml(&self) -> String {
        let mut s = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
        for verb in &self.verbs {
            // Writing to a String cannot fail.
            let _ = match verb {
                Verb::ConnectStream { url, parameters } => {
                    let _ = write!(s, r#"<Connect><Stream url="{}">"#, escape(url.as_str()));
                    for (name, value) in parameters {
                        let _ = write!(s, r#"<Parameter name="{}" value="{}"/>"#, escape(name.as_str()), escape(value.as_str()));
                    }
                    write!(s, "</Stream></Connect>")
                }
                Verb::Say(text) => write!(s, "<Say>{}</Say>", escape(text.as_str())),
                Verb::Pause(len) => write!(s, r#"<Pause length="{len}"/>"#),
                Verb::Dial { number, timeout_s: Some(t) } => write!(s, r#"<Dial timeout="{t}">{}</Dial>"#, escape(number.as_str())),
                Verb::Dial { number, timeout_s: None } => write!(s, "<Dial>{}</Dial>", escape(number.as_str())),
                Verb::Enqueue(q) => write!(s, "<Enqueue>{}</Enqueue>", escape(q.as_str())),
                Verb::Hangup => write!(s, "<Hangup/>"),
            };
        }
        s.push_str("</Response>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_stream_then_fallback() {
        let xml = Response::new()
            .connect_stream("wss://watch.example/ws/media", [("callId", "CA123")])
            .say("Please hold while we connect you to a dispatcher.")
            .dial("+15550100")
            .to_xml();
        assert_eq!(
            xml,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
                r#"<Connect><Stream url="wss://watch.example/ws/media"><Parameter name="callId" value="CA123"/></Stream></Connect>"#,
                r#"<Say>Please hold while we connect you to a dispatcher.</Say><Dial>+15550100</Dial></Response>"#
            )
        );
    }

    #[test]
    fn escapes_text_and_attributes() {
        let xml = Response::new()
            .connect_stream("wss://h/ws?a=1&b=2", [("n\"ame", "<v>&'")])
            .say("Fire & smoke at <Main> \"St\"")
            .enqueue("A&B")
            .pause(1)
            .hangup()
            .to_xml();
        assert!(xml.contains(r#"url="wss://h/ws?a=1&amp;b=2""#), "{xml}");
        assert!(xml.contains(r#"<Parameter name="n&quot;ame" value="&lt;v&gt;&amp;&apos;"/>"#), "{xml}");
        assert!(xml.contains("<Say>Fire &amp; smoke at &lt;Main&gt; &quot;St&quot;</Say>"), "{xml}");
        assert!(xml.ends_with(r#"<Enqueue>A&amp;B</Enqueue><Pause length="1"/><Hangup/></Response>"#));
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_well_formed_xml(text in ".{0,60}", value in ".{0,30}") {
            let xml = Response::new().connect_stream("wss://h/ws/media", [("p", value.as_str())]).say(text.as_str()).to_xml();
            let mut reader = quick_xml::Reader::from_str(&xml);
            let mut depth = 0i32;
            loop {
                match reader.read_event() {
                    Ok(quick_xml::events::Event::Start(_)) => depth += 1,
                    Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                    Ok(quick_xml::events::Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => panic!("{e}: {xml}"),
                }
            }
            proptest::prop_assert_eq!(depth, 0);
        }
    }
}
