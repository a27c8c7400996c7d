//! The device's MLS state lies in the store as a record and one entry per openmls storage
//! entry (docs/E2EE.md, "On the device"): a message writes what it changed, not
//! the whole state, so its cost does not grow with the group; entries openmls drops are
//! deleted from the store; a restart from the entries decrypts and commits; and a state saved
//! whole by an earlier build loads and is written again as entries.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::*;
use confab_core::e2ee::Device;

/// The keys of `peer`'s store under `HostKey::Mls`'s key.
fn mls_keys(peer: &Peer) -> BTreeSet<String> {
    peer.saved_device().into_iter().map(|(k, _)| k).collect()
}

/// Peer `i` started again on its own store, offline, with "secret" and `bucket` open; then
/// connected.
fn restart(wire: &mut Wire, peers: &mut [Peer], i: usize, bucket: &DocId) {
    let peer = &mut peers[i];
    let conv_doc = DocId::conv(&tenant(), &conv("secret"));
    peer.engine = restored_engine(peer, &[conv_doc, bucket.clone()]);
    peer.online = false;
    for s in wire.subs.values_mut() {
        s.remove(&i);
    }
    wire.connect(peers, i);
}

/// Bytes of MLS state the sender and one reader write per sealed message, in a group of
/// `devices` devices (one per account), and the whole state the sender keeps.
fn written_per_message(devices: usize) -> (usize, usize, usize) {
    let mut wire = Wire::new();
    let names: Vec<String> = (0..devices).map(|i| format!("u{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut peers: Vec<Peer> = names.iter().map(|n| phone(n)).collect();
    for i in 0..peers.len() {
        wire.connect(&mut peers, i);
    }
    let id = wire.intent(&mut peers, 0, create(true, &names[1..]));
    assert_eq!(peers[0].engine.status(id), None, "the creation is accepted");
    // Only the sender and one reader follow the conversation.
    let bucket = peers[0].engine.bucket_doc(&conv("secret"), wire.now);
    peers[1]
        .engine
        .open(&DocId::conv(&tenant(), &conv("secret")))
        .unwrap();
    for peer in &mut peers[..2] {
        peer.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.group_epoch(&conv("secret")), Some(1));
    send(&mut wire, &mut peers, 0, "warm", "the first of its ratchet");
    assert_eq!(
        shown(&peers[1], "warm"),
        Ok("the first of its ratchet".into())
    );

    let before = (wire.mls_written(0), wire.mls_written(1));
    let messages = 5;
    for k in 0..messages {
        send(
            &mut wire,
            &mut peers,
            0,
            &format!("m{k}"),
            "a sealed message",
        );
    }
    assert_eq!(shown(&peers[1], "m4"), Ok("a sealed message".into()));
    let whole: usize = peers[0]
        .saved_device()
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    (
        (wire.mls_written(0) - before.0) / messages,
        (wire.mls_written(1) - before.1) / messages,
        whole,
    )
}

#[test]
fn a_message_writes_what_it_changed_whatever_the_group_size() {
    let (small_sent, small_read, small_whole) = written_per_message(10);
    let (big_sent, big_read, big_whole) = written_per_message(200);
    let seen = format!(
        "per message at 10 devices: {small_sent} B sent, {small_read} B read (state \
         {small_whole} B); at 200: {big_sent} B sent, {big_read} B read (state {big_whole} B)"
    );
    // The whole state grows with the group; a message writes a small part of it, which
    // barely does (the current epoch's secret tree, its empty nodes packed).
    assert!(big_whole > 2 * small_whole, "{seen}");
    assert!(
        big_sent * 20 < big_whole && big_read * 20 < big_whole,
        "{seen}"
    );
    assert!(
        big_sent * 2 <= small_sent * 3 && big_read * 2 <= small_read * 3,
        "{seen}"
    );
    assert!(big_sent < 1024 && big_read < 1024, "{seen}");
}

#[test]
fn a_device_restarted_from_its_entries_after_many_epochs_reads_and_commits() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob", "carol"]);
    let (mut early, mut steady) = (BTreeSet::new(), BTreeSet::new());
    let mut per_message = Vec::new();
    // More commits than the epochs a device keeps (16), with messages between.
    for round in 0..24 {
        send(&mut wire, &mut peers, 0, &format!("a{round}"), "from alice");
        let before = (wire.mls_written(0), wire.mls_written(1));
        send(&mut wire, &mut peers, 1, &format!("b{round}"), "from bob");
        per_message.push((
            wire.mls_written(0) - before.0,
            wire.mls_written(1) - before.1,
        ));
        let change = if round % 2 == 0 {
            add("carol")
        } else {
            remove("carol")
        };
        let id = wire.intent(&mut peers, 0, change);
        assert_eq!(peers[0].engine.status(id), None, "round {round}'s commit");
        if round == 2 {
            early = mls_keys(&peers[1]);
        }
        if round == 19 {
            steady = mls_keys(&peers[1]);
        }
    }
    assert_eq!(shown(&peers[1], "a23"), Ok("from alice".into()));
    // A message costs what it changed: the same with 16 epochs kept as with 1.
    let (first, last) = (per_message[1], per_message[23]);
    assert!(
        last.0 <= first.0 * 3 / 2 && last.1 <= first.1 * 3 / 2,
        "bytes a message wrote (reader, sender): {per_message:?}"
    );
    // What openmls dropped (the secrets and member lists of epochs no longer kept, spent
    // key pairs) is gone from the store, not only from the device.
    let now = mls_keys(&peers[1]);
    let gone = early.difference(&now).count();
    assert!(
        gone > 0,
        "none of the {} entries of round 2 was deleted",
        early.len()
    );
    // With as many epochs kept as a device keeps, each commit deletes as much as it adds.
    assert_eq!(now.len(), steady.len(), "entries at round 19, and now");

    let epoch = accepted_epoch(&wire);
    restart(&mut wire, &mut peers, 0, &bucket);
    restart(&mut wire, &mut peers, 1, &bucket);
    assert_eq!(epochs(&peers[..2]), vec![Some(epoch); 2]);
    send(&mut wire, &mut peers, 0, "after-a", "alice, restarted");
    send(&mut wire, &mut peers, 1, "after-b", "bob, restarted");
    assert_eq!(shown(&peers[1], "after-a"), Ok("alice, restarted".into()));
    assert_eq!(shown(&peers[0], "after-b"), Ok("bob, restarted".into()));
    // Carol was removed last: bob, restarted, adds her back with his own commit.
    let id = wire.intent(&mut peers, 1, add("carol"));
    assert_eq!(peers[1].engine.status(id), None, "bob's commit is accepted");
    assert_eq!(accepted_epoch(&wire), epoch + 1);
    assert_eq!(epochs(&peers), vec![Some(epoch + 1); 3]);
    send(&mut wire, &mut peers, 2, "c", "carol is back");
    assert_eq!(shown(&peers[0], "c"), Ok("carol is back".into()));
    assert_eq!(shown(&peers[1], "c"), Ok("carol is back".into()));
}

/// The record of the current layout (`core/src/client/mls_saved.rs`).
#[derive(Deserialize)]
struct Record {
    header: ByteBuf,
    committing: BTreeMap<u64, serde::de::IgnoredAny>,
}

/// One stored storage entry.
#[derive(Deserialize)]
struct Entry {
    key: ByteBuf,
    value: ByteBuf,
}

/// The record earlier builds wrote: the whole state (`Device::to_bytes`).
#[derive(Serialize)]
struct Whole {
    device: ByteBuf,
    committing: BTreeMap<u64, ()>,
}

fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    ciborium::from_reader(bytes).unwrap()
}

/// `peer`'s stored state rewritten as an earlier build saved it: one record, the whole
/// state in it, made by the serializer those builds used (`Device::to_bytes`).
fn save_whole(peer: &Peer) {
    let saved = peer.saved_device();
    let mut record = None;
    let mut entries = Vec::new();
    for (key, value) in &saved {
        if key == HostKey::Mls.key() {
            record = Some(from_cbor::<Record>(value));
        } else {
            let entry: Entry = from_cbor(value);
            entries.push((entry.key.into_vec(), entry.value.into_vec()));
        }
    }
    let record = record.unwrap();
    assert!(record.committing.is_empty());
    let device = Device::from_parts(&record.header, entries).unwrap();
    let mut whole = Vec::new();
    let value = Whole {
        device: ByteBuf::from(device.to_bytes()),
        committing: BTreeMap::new(),
    };
    ciborium::into_writer(&value, &mut whole).unwrap();
    let ops = vec![
        StoreOp::DeletePrefix(HostKey::Mls.key().to_owned()),
        StoreOp::Put(HostKey::Mls.key().to_owned(), whole),
    ];
    block_on_ready(peer.store.write(ops)).unwrap().unwrap();
}

#[test]
fn a_state_saved_whole_loads_and_is_written_again_as_entries() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob", "carol", "dave"]);
    send(&mut wire, &mut peers, 0, "m1", "before the upgrade");
    wire.intent(&mut peers, 0, add("carol"));
    save_whole(&peers[1]);
    assert_eq!(
        mls_keys(&peers[1]).len(),
        1,
        "only the whole record is left"
    );

    restart(&mut wire, &mut peers, 1, &bucket);
    // Loaded, and written again in the current layout: the record is a header, and the
    // state is in entries beside it.
    let saved = peers[1].saved_device();
    assert!(saved.len() > 10, "{} entries", saved.len());
    let record = &saved
        .iter()
        .find(|(k, _)| k == HostKey::Mls.key())
        .unwrap()
        .1;
    let _: Record = from_cbor(record);
    assert_eq!(shown(&peers[1], "m1"), Ok("before the upgrade".into()));
    send(&mut wire, &mut peers, 0, "m2", "after the upgrade");
    assert_eq!(shown(&peers[1], "m2"), Ok("after the upgrade".into()));

    // Restarted again from the entries alone: it reads and commits.
    restart(&mut wire, &mut peers, 1, &bucket);
    send(&mut wire, &mut peers, 0, "m3", "read from the entries");
    assert_eq!(shown(&peers[1], "m3"), Ok("read from the entries".into()));
    let id = wire.intent(&mut peers, 1, add("dave"));
    assert_eq!(peers[1].engine.status(id), None, "bob's commit is accepted");
    assert_eq!(epochs(&peers), vec![Some(3); 4]);
    send(&mut wire, &mut peers, 1, "m4", "bob, upgraded");
    assert_eq!(shown(&peers[0], "m4"), Ok("bob, upgraded".into()));
}

#[test]
fn a_damaged_or_partial_state_is_refused() {
    let mut wire = Wire::new();
    let (peers, _) = group_with_today_open(&mut wire, &["alice", "bob"]);
    let saved = peers[1].saved_device();
    let attach = |entries: &[(String, Vec<u8>)]| {
        let mut engine = ClientEngine::new(peers[1].engine.config().clone());
        engine.attach_device(peers[1].mls_device(), entries)
    };
    assert!(attach(&saved).is_ok());
    // Any byte of any entry changed: its digest no longer holds, or it no longer decodes.
    for (i, (key, value)) in saved.iter().enumerate() {
        if key == HostKey::Mls.key() {
            continue;
        }
        let mut damaged = saved.clone();
        let at = (i * 7919) % value.len();
        damaged[i].1[at] ^= 0x10;
        let refused = attach(&damaged);
        assert!(
            matches!(refused, Err(ClientError::Corrupt(_))),
            "{key} byte {at}: {refused:?}"
        );
    }
    // Entries without their record, or the record without its entries, are refused too.
    let (record, entries): (Vec<_>, Vec<_>) = saved
        .iter()
        .cloned()
        .partition(|(k, _)| k == HostKey::Mls.key());
    assert!(matches!(attach(&entries), Err(ClientError::Corrupt(_))));
    assert!(matches!(attach(&record), Err(ClientError::Corrupt(_))));
}
