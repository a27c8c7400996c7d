//! Any bytes as a change to a prepared group's `conv` document (author: its owner) and to a
//! message bucket (author: a member): `validate_bytes` never panics, and a change it accepts
//! applies and leaves a document that saves and loads (`confab_fuzz::Fixture::check`).
//!
//! Automerge 0.12's decoder panics on some malformed changes; `validate` runs it under
//! `catch_unwind` and rejects such changes as malformed. libFuzzer's panic hook would abort on
//! those caught panics, so this target lets panics raised inside Automerge unwind, and reports
//! one only if it escapes the check.
#![no_main]

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use confab_fuzz::Fixture;
use libfuzzer_sys::fuzz_target;

static FIXTURE: OnceLock<Fixture> = OnceLock::new();
static LAST_AUTOMERGE_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_hook() {
    let abort = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let in_automerge = info
            .location()
            .is_some_and(|l| l.file().contains("/automerge-"));
        if in_automerge {
            if let Ok(mut last) = LAST_AUTOMERGE_PANIC.lock() {
                *last = Some(info.to_string());
            }
        } else {
            abort(info);
        }
    }));
}

fuzz_target!(|data: &[u8]| {
    let fixture = FIXTURE.get_or_init(|| {
        install_hook();
        Fixture::new()
    });
    if panic::catch_unwind(AssertUnwindSafe(|| fixture.check(data))).is_err() {
        let last = LAST_AUTOMERGE_PANIC.lock().ok().and_then(|mut l| l.take());
        eprintln!("a panic inside Automerge escaped validation: {last:?}");
        std::process::abort();
    }
});
