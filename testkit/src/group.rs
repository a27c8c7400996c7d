//! A group of `n` members as a client receives it: the conversation document (its creation,
//! then one read marker per member, each from that member's device) and its newest bucket
//! (messages of this account and of others, reactions). Used by the client-operation
//! benchmarks (native `core/benches/client_ops.rs`, wasm `wasm/tests/bench.rs`) and by the
//! test that a send does not read the member list (`core/tests/client_cost.rs`).

use anyhow::{Context, Result};
use confab_core::automerge::{ActorId, Automerge};
use confab_core::client::{apply, ClientEngine, Intent};
use confab_core::doc::{genesis, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId};
use confab_core::model::conversation::{ConvKind, Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{SeqChange, ServerFrame};
use serde_bytes::ByteBuf;

use crate::ids::{acc, conv_id, msg_id, tenant};

/// The account that owns the group (not the one the client runs as).
pub const OWNER: &str = "owner";
/// The account the client runs as: a plain member.
pub const ME: &str = "m0001";
/// Changes per `changes` frame, as the server pages a catch-up.
const PAGE: usize = 100;

/// Member `i` of the group (`0` is the owner, `1` is [`ME`]).
pub fn member(i: usize) -> AccountId {
    if i == 0 {
        acc(OWNER)
    } else {
        acc(&format!("m{i:04}"))
    }
}

/// A fixed actor for member `i`'s device.
pub fn actor(i: usize) -> ActorId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    bytes[15] = 0xc1;
    ActorId::from(&bytes[..])
}

/// The accepted history of a group, ready to hand to a client.
#[derive(Debug, Clone)]
pub struct Group {
    pub conv: ConvId,
    pub conv_doc: DocId,
    pub bucket_doc: DocId,
    pub bucket: i64,
    /// Changes of the conversation document, in acceptance order.
    pub conv_changes: Vec<Vec<u8>>,
    /// Changes of the newest bucket, in acceptance order.
    pub bucket_changes: Vec<Vec<u8>>,
    /// A message of [`ME`] in the bucket (to edit) and one of another member (to react to).
    pub mine: MessageId,
    pub theirs: MessageId,
    /// Server time after every message of the fixture, in the bucket's day.
    pub now: i64,
}

impl Group {
    /// A group of `members` accounts (owner included) with `messages` messages in its newest
    /// bucket, on day `day` (bucket index of the default width).
    pub fn build(members: usize, messages: usize, day: i64) -> Result<Group> {
        let conv = conv_id(&format!("g{members}"));
        let conv_doc = DocId::conv(&tenant(), &conv);
        let bucket_doc = DocId::msgs(&tenant(), &conv, day);
        let start = day * DEFAULT_BUCKET_MS;
        let mut doc = genesis(&conv_doc)?.with_actor(actor(0));
        let create = Intent::CreateConversation {
            encrypted: false,
            conv: conv.clone(),
            kind: ConvKind::Group,
            title: Some(format!("{members} members")),
            members: (1..members).map(|i| (member(i), Role::Member)).collect(),
            settings: None,
            parent: None,
        };
        let mut n = 0u64;
        write(&mut doc, &conv_doc, &create, 0, &mut n, start)?;
        // Every member has read the first message: a read marker per member, as in a real
        // group (the full conversation view reads them all).
        let first = msg_id("x000000");
        for i in 1..members {
            doc.set_actor(actor(i));
            let read = Intent::MarkRead {
                conv: conv.clone(),
                message: first.clone(),
            };
            write(&mut doc, &conv_doc, &read, i, &mut n, start + 1)?;
        }
        let conv_changes = changes_of(&mut doc);

        let mut bucket = genesis(&bucket_doc)?;
        let step = (DEFAULT_BUCKET_MS / 2) / (messages.max(1) as i64);
        for k in 0..messages {
            // Every other message is this account's; the rest come from other members.
            let author = if k % 2 == 0 {
                1
            } else {
                2 + k % (members - 2).max(1)
            };
            bucket.set_actor(actor(author));
            let at = start + (k as i64) * step;
            let message = NewMessage::text(
                msg_id(&format!("x{k:06}")),
                member(author),
                format!("message {k} of the fixture"),
                at,
            );
            let send = Intent::Send {
                conv: conv.clone(),
                message,
            };
            write(&mut bucket, &bucket_doc, &send, author, &mut n, at)?;
            if k % 10 == 1 {
                let react = Intent::React {
                    conv: conv.clone(),
                    message: msg_id(&format!("x{k:06}")),
                    bucket: day.into(),
                    emoji: "👍".into(),
                    on: true,
                };
                bucket.set_actor(actor(0));
                write(&mut bucket, &bucket_doc, &react, 0, &mut n, at)?;
            }
        }
        let bucket_changes = changes_of(&mut bucket);
        Ok(Group {
            conv,
            conv_doc,
            bucket_doc,
            bucket: day,
            conv_changes,
            bucket_changes,
            mine: msg_id("x000000"),
            theirs: msg_id("x000001"),
            now: start + DEFAULT_BUCKET_MS / 2 + 60_000,
        })
    }

    /// The `changes` frames that deliver the group (the conversation first), seq from 1.
    pub fn frames(&self) -> Vec<ServerFrame> {
        let mut out = Vec::new();
        for (doc, changes) in [
            (&self.conv_doc, &self.conv_changes),
            (&self.bucket_doc, &self.bucket_changes),
        ] {
            let mut seq = 0u64;
            for page in changes.chunks(PAGE) {
                out.push(ServerFrame::Changes {
                    doc: doc.to_string(),
                    changes: page
                        .iter()
                        .map(|c| {
                            seq += 1;
                            SeqChange {
                                seq,
                                change: ByteBuf::from(c.clone()),
                            }
                        })
                        .collect(),
                });
            }
        }
        out
    }

    /// Hands the group to `engine` as accepted (it must run as [`ME`]); drops the outputs.
    pub fn load_into(&self, engine: &mut ClientEngine) -> Result<()> {
        engine
            .open(&self.conv_doc)
            .context("opening the conversation")?;
        engine
            .open(&self.bucket_doc)
            .context("opening the bucket")?;
        for frame in self.frames() {
            engine.receive(frame, self.now);
        }
        engine.drain();
        Ok(())
    }

    /// A new text message of [`ME`] at `at` (a unique id per `k`).
    pub fn send(&self, k: usize, at: i64) -> Intent {
        Intent::Send {
            conv: self.conv.clone(),
            message: NewMessage::text(
                msg_id(&format!("s{k:07}")),
                member(1),
                "a new message of about forty characters.",
                at,
            ),
        }
    }
}

fn write(
    doc: &mut Automerge,
    id: &DocId,
    intent: &Intent,
    author: usize,
    n: &mut u64,
    at: i64,
) -> Result<()> {
    *n += 1;
    let tag = IntentTag::new(n.to_string(), intent.kind());
    apply::write_to(doc, id, intent, &member(author), &tag, at, 1)
        .with_context(|| format!("writing {} for {}", intent.kind(), member(author)))?;
    Ok(())
}

/// Every change of `doc`, in order.
fn changes_of(doc: &mut Automerge) -> Vec<Vec<u8>> {
    doc.get_changes(&[])
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}
