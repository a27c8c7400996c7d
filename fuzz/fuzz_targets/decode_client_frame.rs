//! Any bytes: `decode_client` never panics, and a frame it decodes re-encodes into bytes that
//! decode to the same frame (`confab_fuzz::check_client_frame`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| confab_fuzz::check_client_frame(data));
