//! Any sequence of messages into a `Session` (authenticated first for inputs whose flag byte
//! says so): never panics, and every batch of actions is well formed
//! (`confab_fuzz::run_session`, `confab_fuzz::Checker`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| confab_fuzz::run_session(data));
