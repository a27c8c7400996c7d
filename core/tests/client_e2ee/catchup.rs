//! A device back after many sealed messages opens every one of them, whatever order its
//! catch-up brings them in: each sender's messages are opened in the order they were sent,
//! since a sender's ratchet keeps only a few keys behind the newest it has used.

use super::*;

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
