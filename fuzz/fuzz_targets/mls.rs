//! Any bytes as MLS messages from the network: the first byte picks the reader (a key
//! package, Welcome, group info, ratchet tree, commit, application message, or a saved view or
//! device state), the rest is the message. See `confab_fuzz::mls` for the properties.
#![no_main]

use std::cell::OnceCell;

use confab_fuzz::mls::{MlsFixture, Sink};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static FIXTURE: OnceCell<MlsFixture> = const { OnceCell::new() };
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    FIXTURE.with(|cell| {
        cell.get_or_init(MlsFixture::new)
            .check(Sink::of(first), rest)
    });
});
