//! OpenAI Realtime server-event parser: any text parses or fails cleanly; unknown types are kept.
#![no_main]
use libfuzzer_sys::fuzz_target;
use watchfloor_wire::realtime::{ClientEvent, ServerEvent};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ev) = ServerEvent::parse(&text) {
        let _ = ev.type_name();
        if !matches!(ev, ServerEvent::Unknown { .. }) {
            assert_eq!(ServerEvent::parse(&ev.to_json()).expect("round trip"), ev);
        }
    }
    let _ = ClientEvent::parse(&text);
});
