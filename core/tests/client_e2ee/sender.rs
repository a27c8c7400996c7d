//! A sealed message opens only under its MLS sender's account: a server (or a relay) that
//! relabels a message's clear `author`, or writes another member's ciphertext into it as an
//! edit, gets it shown `undecryptable` with the reason `sender_mismatch` on the receiving
//! device, never its plaintext under another name, and the sender's later messages still
//! open.

use confab_core::automerge::transaction::Transactable;
use confab_core::automerge::{ChangeHash, ReadDoc, ROOT};
use confab_core::doc::schema::{keys, message_shard};
use confab_core::doc::{write, IntentTag};

use super::search::found;
use super::*;

/// A lying server between the hub and peer `to` for part `bucket`: it pushes the hub's
/// changes when told to and changes of its own making between them, numbering what it
/// pushes on from the last seq it gave.
struct Relay {
    to: usize,
    bucket: DocId,
    /// The last seq pushed to the peer.
    seq: u64,
    /// The hub's seq up to which its changes were passed on.
    passed: u64,
}

impl Relay {
    /// Takes peer `to` off the hub's pushes of `bucket` (it holds all of it so far).
    fn between(wire: &mut Wire, to: usize, bucket: &DocId) -> Self {
        wire.subs.get_mut(bucket).unwrap().remove(&to);
        let seq = hub_seq(wire, bucket);
        Relay {
            to,
            bucket: bucket.clone(),
            seq,
            passed: seq,
        }
    }

    /// Pushes `changes` to the peer, as the server pushes (`ServerFrame::Changes`).
    fn push(&mut self, wire: &mut Wire, peers: &mut [Peer], changes: Vec<Change>) {
        let changes = changes
            .into_iter()
            .map(|mut c| {
                self.seq += 1;
                SeqChange {
                    seq: self.seq,
                    change: ByteBuf::from(c.bytes().to_vec()),
                }
            })
            .collect();
        peers[self.to].inbox.push(ServerFrame::Changes {
            doc: self.bucket.to_string(),
            changes,
        });
        wire.pump(peers);
    }

    /// Passes on what the hub accepted since the last pass, as it is.
    fn pass(&mut self, wire: &mut Wire, peers: &mut [Peer]) {
        let accepted = wire.hub.changes_after(&self.bucket, self.passed);
        self.passed = accepted.last().map_or(self.passed, |(seq, _)| *seq);
        let changes = accepted.into_iter().map(|(_, c)| c).collect();
        self.push(wire, peers, changes);
    }
}

fn hub_seq(wire: &Wire, bucket: &DocId) -> u64 {
    wire.hub
        .changes_after(bucket, 0)
        .last()
        .map_or(0, |(seq, _)| *seq)
}

fn hub_heads(wire: &Wire, bucket: &DocId) -> Vec<ChangeHash> {
    wire.hub.doc(bucket).unwrap().doc().get_heads()
}

/// Message `id` written again, as the hub held `bucket` at `heads`, by a replica bound to
/// `account`: its sealed bytes and creation time as the hub holds them, `account` its author.
fn rewritten(wire: &Wire, bucket: &DocId, heads: &[ChangeHash], id: &str, account: &str) -> Change {
    let held = stored_message(wire, bucket, id);
    let mut message = NewMessage::text(
        MessageId::new(id).unwrap(),
        acc(account),
        "",
        held.created_at,
    );
    message.sealed = held.sealed;
    let mut replica = wire
        .hub
        .doc(bucket)
        .unwrap()
        .doc()
        .fork_at(heads)
        .unwrap()
        .with_actor(config(account).actor);
    let tag = IntentTag::new("relabelled", "send");
    let hash = write::post_message(&mut replica, &tag, &message)
        .unwrap()
        .unwrap();
    replica.get_change_by_hash(&hash).unwrap().clone()
}

/// A change of a replica bound to `account`, over what the hub holds of `bucket`, naming
/// `account` the author of message `id`.
fn relabelled(wire: &Wire, bucket: &DocId, id: &str, account: &str) -> Change {
    let mut replica = wire
        .hub
        .doc(bucket)
        .unwrap()
        .doc()
        .fork()
        .with_actor(config(account).actor);
    let mut tx = replica.transaction();
    let (_, messages) = tx.get(ROOT, keys::MESSAGES).unwrap().unwrap();
    let (_, shard) = tx.get(&messages, message_shard(id)).unwrap().unwrap();
    let (_, message) = tx.get(&shard, id).unwrap().unwrap();
    tx.put(&message, keys::AUTHOR, account).unwrap();
    let hash = tx.commit().0.unwrap();
    replica.get_change_by_hash(&hash).unwrap().clone()
}

/// A change of a replica bound to `account`, over what the hub holds of `bucket`, giving
/// message `id` the sealed content `sealed` as an edit.
fn edited(wire: &Wire, bucket: &DocId, id: &str, sealed: &[u8], account: &str) -> Change {
    let mut replica = wire
        .hub
        .doc(bucket)
        .unwrap()
        .doc()
        .fork()
        .with_actor(config(account).actor);
    let tag = IntentTag::new("forged", "edit");
    let id = MessageId::new(id).unwrap();
    let hash = write::edit_sealed(&mut replica, &tag, wire.now, &id, sealed)
        .unwrap()
        .unwrap();
    replica.get_change_by_hash(&hash).unwrap().clone()
}

/// The author `peer`'s timeline shows for message `id` of "secret".
fn author_shown(peer: &Peer, id: &str) -> AccountId {
    peer.engine
        .timeline(&conv("secret"))
        .into_iter()
        .find(|i| i.message.id.as_str() == id)
        .expect("the message is in the timeline")
        .message
        .author
}

const MISMATCH: &str = "sender_mismatch";

/// The relay hands bob alice's sealed message rewritten as carol's (the same sealed bytes,
/// carol the author): bob does not open it, keeps nothing of its plaintext, and alice's next
/// message opens.
#[test]
fn a_sealed_message_relabelled_to_another_author_is_not_opened() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob"]);
    // An honest message opens: the harness can tell opened from not.
    send(&mut wire, &mut peers, 0, "m0", "honest hello");
    assert_eq!(shown(&peers[1], "m0"), Ok("honest hello".into()));

    let mut relay = Relay::between(&mut wire, 1, &bucket);
    let heads = hub_heads(&wire, &bucket);
    send(&mut wire, &mut peers, 0, "m1", "the okapi plan");
    let forged = rewritten(&wire, &bucket, &heads, "m1", "carol");
    relay.push(&mut wire, &mut peers, vec![forged]);
    assert_eq!(author_shown(&peers[1], "m1"), acc("carol"));
    assert_eq!(shown(&peers[1], "m1"), Err(MISMATCH.into()));
    assert!(!contains(&stored_bytes(&peers[1]), b"okapi"));

    // Alice goes on; the relay passes her changes on again (her next ones need the one it
    // held back). What bob decrypted spent the key of m1 only: m2 opens; m1 never does.
    send(&mut wire, &mut peers, 0, "m2", "after the storm");
    relay.pass(&mut wire, &mut peers);
    assert_eq!(shown(&peers[1], "m2"), Ok("after the storm".into()));
    assert_eq!(shown(&peers[1], "m1"), Err(MISMATCH.into()));
    assert_eq!(shown(&peers[0], "m1"), Ok("the okapi plan".into()));
    assert!(!contains(&stored_bytes(&peers[1]), b"okapi"));
    assert!(found(&mut wire, &mut peers, 1, "okapi").is_empty());

    // The reason is what bob keeps: a restarted bob shows it from his store.
    let again = restored(&peers[1], &bucket);
    assert_eq!(shown(&again, "m1"), Err(MISMATCH.into()));
    assert_eq!(shown(&again, "m2"), Ok("after the storm".into()));
}

/// A message bob opened is relabelled afterwards: what he read is not shown (nor found)
/// under the new author.
#[test]
fn a_message_relabelled_after_it_was_opened_is_not_shown_as_the_new_authors() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob"]);
    send(&mut wire, &mut peers, 0, "m1", "meet at the quokka");
    assert_eq!(shown(&peers[1], "m1"), Ok("meet at the quokka".into()));
    assert_eq!(found(&mut wire, &mut peers, 1, "quokka"), ["m1"]);

    let mut relay = Relay::between(&mut wire, 1, &bucket);
    let forged = relabelled(&wire, &bucket, "m1", "carol");
    relay.push(&mut wire, &mut peers, vec![forged]);
    assert_eq!(author_shown(&peers[1], "m1"), acc("carol"));
    assert_eq!(shown(&peers[1], "m1"), Err(MISMATCH.into()));
    assert!(found(&mut wire, &mut peers, 1, "quokka").is_empty());

    // Alice's next message opens as hers.
    send(&mut wire, &mut peers, 0, "m2", "still me");
    relay.pass(&mut wire, &mut peers);
    assert_eq!(shown(&peers[1], "m2"), Ok("still me".into()));
}

/// Carol, a member, seals new content for alice's message (her device is led to think it is
/// hers); the server writes it into alice's message as an edit: bob does not open it, and
/// alice's next message opens.
#[test]
fn an_edit_sealed_by_another_member_is_not_opened() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob", "carol"]);
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(id), None, "carol is added");
    let sent_at = wire.now;
    send(&mut wire, &mut peers, 0, "m1", "first words");
    for peer in &peers[1..] {
        assert_eq!(shown(peer, "m1"), Ok("first words".into()));
    }

    // Carol's device is told m1 is hers, and seals an edit of it (the hub refuses it).
    let mut to_bob = Relay::between(&mut wire, 1, &bucket);
    let mut to_carol = Relay::between(&mut wire, 2, &bucket);
    let forged = relabelled(&wire, &bucket, "m1", "carol");
    to_carol.push(&mut wire, &mut peers, vec![forged]);
    let intent = edit(&peers[2], "m1", "marmot words", sent_at);
    peers[2].engine.intent(intent, wire.now).unwrap();
    let m1 = MessageId::new("m1").unwrap();
    let sealed = peers[2]
        .engine
        .message(&conv("secret"), &m1)
        .and_then(|(_, m)| m.sealed)
        .unwrap();
    wire.pump(&mut peers);
    assert_eq!(
        shown(&peers[0], "m1"),
        Ok("first words".into()),
        "not accepted"
    );

    // The server writes carol's ciphertext into alice's message for bob.
    let forged = edited(&wire, &bucket, "m1", &sealed, "carol");
    to_bob.push(&mut wire, &mut peers, vec![forged]);
    assert_eq!(author_shown(&peers[1], "m1"), acc("alice"));
    assert_eq!(shown(&peers[1], "m1"), Err(MISMATCH.into()));
    assert!(!contains(&stored_bytes(&peers[1]), b"marmot"));

    // Alice's next message opens on bob's device.
    send(&mut wire, &mut peers, 0, "m2", "and more");
    to_bob.pass(&mut wire, &mut peers);
    assert_eq!(shown(&peers[1], "m2"), Ok("and more".into()));
}
