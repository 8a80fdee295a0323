//! The supervisor API's JSON bodies and query strings: any bytes parse and validate or are
//! refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    watchfloor_server::api::check_any_body(data);
});
