//! What applying accepted message changes costs per change, by how many go into one
//! `apply_changes` call (the reason the server stages them; docs/SERVER.md, "Staged apply").
//!
//! `cargo run --release -p confab-core --example apply_batches`

use std::error::Error;
use std::time::Instant;

use confab_core::automerge::{ActorId, Change};
use confab_core::doc::{self, write, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::model::message::NewMessage;
use confab_core::validate::AcceptedDoc;

const MESSAGES: usize = 20_000;
const WRITERS: usize = 10;

fn main() -> Result<(), Box<dyn Error>> {
    let day = 20_000;
    let bucket = DocId::msgs(&TenantId::new("acme")?, &ConvId::new("c")?, day);
    let now = day * DEFAULT_BUCKET_MS + 1000;
    let mut replicas = Vec::new();
    for w in 0..WRITERS {
        let actor = ActorId::from(&[w as u8 + 1; 16][..]);
        replicas.push(doc::genesis(&bucket)?.with_actor(actor));
    }
    let mut changes: Vec<Change> = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let w = i % WRITERS;
        let message = NewMessage::text(
            MessageId::new(format!("m{i:06}"))?,
            AccountId::new(format!("u{w}"))?,
            "a forty character message body goes here",
            now,
        );
        let tag = IntentTag::new(format!("i{i}"), "send");
        write::post_message(&mut replicas[w], &tag, &message)?;
        changes.extend(replicas[w].get_last_local_change());
    }
    println!("{MESSAGES} message changes from {WRITERS} writers into one bucket:");
    for batch in [1usize, 16, 128, 512, 2048] {
        let mut accepted = AcceptedDoc::new(bucket.clone())?;
        let started = Instant::now();
        for chunk in changes.chunks(batch) {
            accepted.apply_all(chunk.to_vec())?;
        }
        let per_change = started.elapsed().as_secs_f64() * 1e6 / MESSAGES as f64;
        println!("  {batch:>5} per call: {per_change:6.1} µs per change");
    }
    Ok(())
}
