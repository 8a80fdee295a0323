//! Twilio Media Streams parser: any bytes, as a text frame, must parse or fail cleanly, and what
//! parses must serialise and parse back to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use watchfloor_wire::twilio::TwilioInbound;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(msg) = TwilioInbound::parse(&text) {
        let again = TwilioInbound::parse(&msg.to_json()).expect("our own serialisation parses");
        assert_eq!(again, msg);
        if let TwilioInbound::Media { media, .. } = &msg {
            let mut buf = Vec::new();
            let _ = watchfloor_wire::mulaw::decode_base64_into(&media.payload, &mut buf);
        }
    }
});
