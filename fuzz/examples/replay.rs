//! Replays inputs through a target's check without libFuzzer (stable Rust), timing each:
//! `cargo run --release --manifest-path fuzz/Cargo.toml --example replay -- <target> <file>...`
//! where `<target>` is decode_client_frame, decode_server_frame, session, validate_change or mls.
//! A panic here is the same finding the fuzz target reports.

use std::time::Instant;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: replay <target> <file>...");
        std::process::exit(2);
    };
    let fixture = (target == "validate_change").then(confab_fuzz::Fixture::new);
    let mls = (target == "mls").then(confab_fuzz::mls::MlsFixture::new);
    for path in args {
        let data = std::fs::read(&path)?;
        let start = Instant::now();
        match (target.as_str(), &fixture) {
            ("decode_client_frame", _) => confab_fuzz::check_client_frame(&data),
            ("decode_server_frame", _) => confab_fuzz::check_server_frame(&data),
            ("session", _) => confab_fuzz::run_session(&data),
            ("validate_change", Some(f)) => {
                f.check(&data);
                let [conv, msgs] = f.outcomes(&data);
                println!("  conv doc: {conv}; msgs doc: {msgs}");
            }
            ("mls", _) => {
                if let (Some(f), Some((&first, rest))) = (&mls, data.split_first()) {
                    f.check(confab_fuzz::mls::Sink::of(first), rest);
                }
            }
            _ => {
                eprintln!("unknown target {target}");
                std::process::exit(2);
            }
        }
        println!("{path}: {} bytes, ok in {:?}", data.len(), start.elapsed());
    }
    Ok(())
}
