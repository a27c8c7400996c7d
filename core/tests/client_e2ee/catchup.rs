//! A device back after many sealed messages opens every one of them, whatever order its
//! catch-up brings them in: each sender's messages are opened in the order they were sent,
//! since a sender's ratchet keeps only a few keys behind the newest it has used.

use super::*;
use confab_core::client::Unreadable;
use confab_core::ids::Bucket;

#[test]
fn a_device_back_after_many_sealed_messages_opens_them_all() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob"]);
    peers[1].online = false;
    peers[1].engine.disconnected();
    for s in wire.subs.values_mut() {
        s.remove(&1);
    }
    // Many more than the keys kept behind the newest (openmls keeps 5).
    let sent = 40;
    for k in 0..sent {
        send(
            &mut wire,
            &mut peers,
            0,
            &format!("m{k:02}"),
            &format!("body {k}"),
        );
    }
    // The catch-up brings the part as a snapshot (the server's kept save of a closed part):
    // its messages come without an order.
    let stored = wire.hub.doc(&bucket).unwrap();
    let (seq, _) = wire.hub.changes_after(&bucket, 0).pop().unwrap();
    let data = serde_bytes::ByteBuf::from(stored.doc().save());
    let doc = bucket.to_string();
    peers[1].online = true;
    peers[1].engine.connected(wire.now, wire.now);
    let _ = peers[1].engine.drain();
    let snapshot = ServerFrame::Snapshot {
        doc: doc.clone(),
        seq,
        data,
        order: None,
    };
    peers[1].engine.receive(snapshot, wire.now);
    peers[1]
        .engine
        .receive(ServerFrame::Synced { doc, seq }, wire.now);
    for k in 0..sent {
        assert_eq!(
            shown(&peers[1], &format!("m{k:02}")),
            Ok(format!("body {k}")),
            "m{k:02}"
        );
    }
}

/// More messages of one sender than its ratchet lets a device jump over (openmls: 1,000),
/// spread over parts.
const MANY: usize = 2_500;

/// Alice writes `n` sealed messages while bob is away, in batches (her engine moves to the
/// next part as one fills); the parts written, oldest first.
fn written_while_away(wire: &mut Wire, peers: &mut [Peer], n: usize) -> Vec<DocId> {
    peers[1].online = false;
    peers[1].engine.disconnected();
    for s in wire.subs.values_mut() {
        s.remove(&1);
    }
    let first = peers[0].engine.bucket_for(&conv("secret"), wire.now);
    for batch in (0..n).collect::<Vec<_>>().chunks(250) {
        for &k in batch {
            let m = message(
                &peers[0],
                &conv("secret"),
                &format!("m{k:04}"),
                &format!("body {k}"),
            );
            peers[0].engine.intent(m, wire.now).unwrap();
        }
        wire.pump(peers);
    }
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);
    let parts: Vec<DocId> = (0..)
        .map(|part| DocId::msgs(&tenant(), &conv("secret"), Bucket::new(first.period, part)))
        .take_while(|doc| wire.hub.doc(doc).is_some())
        .collect();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    parts
}

/// Bob back online, holding `parts`: subscribed to each (its frames are handed over below,
/// in the order a test chooses), his conversation document caught up.
fn back_online(wire: &mut Wire, peers: &mut [Peer], parts: &[DocId]) {
    for part in parts {
        peers[1].engine.open(part).unwrap();
    }
    // The engine is online; its subscriptions are not served (`Peer::online` stays off):
    // `deliver` hands it each part's answer.
    peers[1].engine.connected(wire.now, wire.now);
    wire.pump(peers);
    let conv_doc = DocId::conv(&tenant(), &conv("secret"));
    let seq = wire.hub.changes_after(&conv_doc, 0).len() as u64;
    deliver(wire, peers, synced(&conv_doc, seq));
}

fn deliver(wire: &mut Wire, peers: &mut [Peer], frame: ServerFrame) {
    peers[1].inbox.push(frame);
    wire.pump(peers);
}

/// A `changes` frame of `part`'s changes with seqs in `seqs`.
fn changes(wire: &Wire, part: &DocId, seqs: std::ops::RangeInclusive<u64>) -> ServerFrame {
    let changes = wire
        .hub
        .changes_after(part, seqs.start() - 1)
        .into_iter()
        .take_while(|(seq, _)| seqs.contains(seq))
        .map(|(seq, mut c)| SeqChange {
            seq,
            change: ByteBuf::from(c.bytes().to_vec()),
        })
        .collect();
    ServerFrame::Changes {
        doc: part.to_string(),
        changes,
    }
}

/// `part` as a snapshot (the server's kept save of a closed part), with its order.
fn snapshot(wire: &Wire, part: &DocId) -> ServerFrame {
    let log = wire.hub.changes_after(part, 0);
    let from = log.first().map_or(1, |(seq, _)| *seq);
    let starts: Vec<(Vec<u8>, u64)> = log
        .iter()
        .map(|(_, c)| (c.actor_id().to_bytes().to_vec(), c.start_op().get()))
        .collect();
    let order =
        confab_core::protocol::SnapshotOrder::build(from, starts.iter().map(|(a, s)| (&a[..], *s)));
    ServerFrame::Snapshot {
        doc: part.to_string(),
        seq: last_seq(wire, part),
        data: ByteBuf::from(wire.hub.doc(part).unwrap().doc().save()),
        order: Some(order),
    }
}

fn last_seq(wire: &Wire, part: &DocId) -> u64 {
    wire.hub
        .changes_after(part, 0)
        .last()
        .map_or(0, |(s, _)| *s)
}

fn synced(doc: &DocId, seq: u64) -> ServerFrame {
    ServerFrame::Synced {
        doc: doc.to_string(),
        seq,
    }
}

/// Every one of alice's `n` messages in `peer`'s timeline with its body read; else which
/// were not, and why (the first few).
fn all_read(peer: &Peer, n: usize) -> Result<(), String> {
    let timeline = peer.engine.timeline(&conv("secret"));
    let unread: Vec<String> = (0..n)
        .filter_map(|k| {
            let id = format!("m{k:04}");
            let item = timeline.iter().find(|i| i.message.id.as_str() == id);
            match item {
                None => Some(format!("{id}: not in the timeline")),
                Some(i) if i.message.body != format!("body {k}") => {
                    Some(format!("{id}: {:?}", i.undecryptable))
                }
                Some(_) => None,
            }
        })
        .collect();
    if unread.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {n} unread, first: {:?}",
            unread.len(),
            &unread[..unread.len().min(5)]
        ))
    }
}

/// The parts arrive newest first and interleaved (a part's changes in two frames around
/// another's snapshot): each part waits for the ones before it, and every message is read.
#[test]
fn a_sender_s_thousands_of_sealed_messages_are_read_whatever_order_their_parts_come_in() {
    let mut wire = Wire::new();
    let (mut peers, _) = group_with_today_open(&mut wire, &["alice", "bob"]);
    let parts = written_while_away(&mut wire, &mut peers, MANY);
    back_online(&mut wire, &mut peers, &parts);
    let (oldest, middle, newest) = (&parts[0], &parts[1], &parts[parts.len() - 1]);
    let half = last_seq(&wire, middle) / 2;
    let mut frames = vec![
        changes(&wire, newest, 1..=last_seq(&wire, newest)),
        synced(newest, last_seq(&wire, newest)),
        changes(&wire, middle, 1..=half),
        snapshot(&wire, oldest),
        changes(&wire, middle, half + 1..=last_seq(&wire, middle)),
        synced(middle, last_seq(&wire, middle)),
    ];
    for part in &parts[2..parts.len() - 1] {
        frames.push(snapshot(&wire, part));
        frames.push(synced(part, last_seq(&wire, part)));
    }
    for frame in frames {
        deliver(&mut wire, &mut peers, frame);
    }
    // Nothing after the oldest part is opened while it is still catching up.
    let waiting = shown(&peers[1], &format!("m{:04}", MANY - 1));
    assert_eq!(waiting, Err(Unreadable::WaitingForEarlier.words().into()));
    let frame = synced(oldest, last_seq(&wire, oldest));
    deliver(&mut wire, &mut peers, frame);
    assert_eq!(all_read(&peers[1], MANY), Ok(()));
}

/// Bob restarts after the newer parts came and before the oldest did: what he holds unread
/// is opened from his store once the oldest part is caught up.
#[test]
fn sealed_messages_held_unread_across_a_restart_are_read_in_order_after_it() {
    let mut wire = Wire::new();
    let (mut peers, _) = group_with_today_open(&mut wire, &["alice", "bob"]);
    let parts = written_while_away(&mut wire, &mut peers, MANY);
    back_online(&mut wire, &mut peers, &parts);
    for part in parts[1..].iter().rev() {
        let frame = snapshot(&wire, part);
        deliver(&mut wire, &mut peers, frame);
        let frame = synced(part, last_seq(&wire, part));
        deliver(&mut wire, &mut peers, frame);
    }
    let oldest = &parts[0];
    let frame = changes(&wire, oldest, 1..=10);
    deliver(&mut wire, &mut peers, frame);

    // Restarted offline from its store, with the conversation and every part open.
    let mut engine = ClientEngine::restoring(peers[1].engine.config().clone());
    engine
        .attach_device(peers[1].mls_device(), &peers[1].saved_device())
        .unwrap();
    let store = &peers[1].store;
    let _ = confab_core::client::host::carry_out_stored(&mut engine, store).unwrap();
    engine
        .open(&DocId::conv(&tenant(), &conv("secret")))
        .unwrap();
    for part in &parts {
        engine.open(part).unwrap();
    }
    let _ = confab_core::client::host::carry_out_stored(&mut engine, store).unwrap();
    peers[1].engine = engine;
    // Offline, it cannot tell whether the parts it holds are complete: nothing is opened.
    let waiting = shown(&peers[1], &format!("m{:04}", MANY - 1));
    assert_eq!(
        waiting,
        Err(Unreadable::WaitingForConnection.words().into())
    );

    back_online(&mut wire, &mut peers, &[]);
    for part in parts[1..].iter() {
        let frame = synced(part, last_seq(&wire, part));
        deliver(&mut wire, &mut peers, frame);
    }
    let rest = changes(&wire, oldest, 11..=last_seq(&wire, oldest));
    deliver(&mut wire, &mut peers, rest);
    let frame = synced(oldest, last_seq(&wire, oldest));
    deliver(&mut wire, &mut peers, frame);
    assert_eq!(all_read(&peers[1], MANY), Ok(()));
}
