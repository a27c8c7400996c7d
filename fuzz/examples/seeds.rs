//! Writes seed inputs for every target into `fuzz/corpus/<target>/`:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use std::fs;
use std::path::{Path, PathBuf};

use confab_core::protocol::{encode_client, encode_server};

fn write_all(dir: &Path, seeds: &[Vec<u8>]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i:02}")), seed)?;
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let client: Vec<Vec<u8>> = confab_fuzz::client_frames()
        .iter()
        .map(encode_client)
        .collect();
    let server: Vec<Vec<u8>> = confab_fuzz::server_frames()
        .iter()
        .map(encode_server)
        .collect();
    write_all(&corpus.join("decode_client_frame"), &client)?;
    write_all(&corpus.join("decode_server_frame"), &server)?;
    write_all(&corpus.join("session"), &confab_fuzz::session_seeds())?;
    let fixture = confab_fuzz::Fixture::new();
    let mut changes = fixture.conv_seeds.clone();
    changes.extend(fixture.msgs_seeds.iter().cloned());
    for c in &changes {
        fixture.check(c);
        let [conv, msgs] = fixture.outcomes(c);
        println!(
            "change of {} bytes: conv doc: {conv}; msgs doc: {msgs}",
            c.len()
        );
    }
    write_all(&corpus.join("validate_change"), &changes)?;
    let mls = confab_fuzz::mls::MlsFixture::new();
    let mls_seeds: Vec<Vec<u8>> = (0u8..)
        .zip(confab_fuzz::mls::Sink::ALL)
        .map(|(selector, sink)| {
            let mut seed = vec![selector];
            seed.extend_from_slice(mls.valid(sink));
            mls.check(sink, &seed[1..]);
            seed
        })
        .collect();
    write_all(&corpus.join("mls"), &mls_seeds)?;
    Ok(())
}
