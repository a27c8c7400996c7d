//! `cargo run --release -p confab-e2e --example bucket_memory [N]`: resident memory a
//! message bucket holds in a conversation's unit, per message.
//!
//! The server keeps each loaded bucket as an accepted Automerge document (validation reads
//! it). This builds one the way a unit does (changes staged, then applied 64 at a time),
//! with N real message changes (40-character bodies, like the load generator's), in a
//! fresh process, and reports how much its resident memory grew. Used to tell the
//! document's growth from leaks in a soak (docs/BENCHMARKS.md, "Memory").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::Change;
use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::message::NewMessage;
use confab_core::validate::{AcceptedDoc, Footprint};
use confab_e2e::text::{body, message_id, Rng};
use confab_e2e::Device;

/// This process's resident memory (VmRSS), in bytes.
fn rss() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

/// Two writers' message changes, alternating (as in a two-person conversation), and the
/// writers (kept alive: memory they free would be reused and hide the document's).
fn changes(bucket: &DocId, n: usize) -> (Vec<Vec<u8>>, [Device; 2]) {
    let mut devices = [Device::new("alice", 1), Device::new("bob", 1)];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = 1_700_000_000_000i64;
    let raw = (0..n)
        .map(|i| {
            let device = &mut devices[i % 2];
            let at = start + i as i64;
            let author = AccountId::new(device.account.clone()).unwrap();
            let id = MessageId::new(message_id(&mut rng, at)).unwrap();
            let message = NewMessage::text(id, author, body(&mut rng, 40), at);
            let change = device
                .write(bucket, |d, t| write::post_message(d, t, &message))
                .unwrap();
            change.raw_bytes().to_vec()
        })
        .collect();
    (raw, devices)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(40_000, |a| a.parse().expect("a message count"));
    let tenant = TenantId::new("bench").unwrap();
    let bucket = DocId::msgs(&tenant, &ConvId::new("room").unwrap(), 19_675);
    let (raw, writers) = changes(&bucket, n);
    let change_bytes: usize = raw.iter().map(Vec::len).sum();
    let before = rss();
    let mut doc = AcceptedDoc::new(bucket.clone()).unwrap();
    let mut marks = Vec::new();
    for (i, bytes) in raw.iter().enumerate() {
        let change = Change::try_from(&bytes[..]).unwrap();
        doc.stage(change, Footprint::default()).unwrap();
        if i % 64 == 63 {
            doc.apply_staged().unwrap();
        }
        if (i + 1) % (n / 4).max(1) == 0 {
            marks.push((i + 1, rss() - before));
        }
    }
    doc.apply_staged().unwrap();
    let saved = doc.save().len();
    println!(
        "{n} messages, {:.0} B of change per message, saved document {:.0} B per message",
        change_bytes as f64 / n as f64,
        saved as f64 / n as f64
    );
    for (count, grown) in marks {
        println!(
            "  after {count:>7}: resident memory +{:>6.1} MiB, {:>5.0} B per message",
            grown / 1048576.0,
            grown / count as f64
        );
    }
    // The same document loaded from its saved form (as a unit loads a compacted bucket).
    let bytes = doc.save();
    let before = rss();
    let started = std::time::Instant::now();
    let loaded = AcceptedDoc::load(bucket.clone(), &bytes).unwrap();
    println!(
        "  loaded from its saved form in {:.0} ms: resident memory +{:.1} MiB, {:.0} B per message",
        started.elapsed().as_secs_f64() * 1000.0,
        (rss() - before) / 1048576.0,
        (rss() - before) / n as f64
    );
    drop((doc, loaded, writers));
}
