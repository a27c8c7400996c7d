//! A sealed message deleted for everyone leaves the devices' stores: what a reader opened of
//! it and what its author sealed go with its ciphertext.

use super::*;

#[test]
fn what_a_device_read_of_a_deleted_sealed_message_leaves_its_store() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob"]);
    send(&mut wire, &mut peers, 0, "m1", "doomed words walrus");
    send(&mut wire, &mut peers, 0, "m2", "kept words");
    assert_eq!(shown(&peers[1], "m1"), Ok("doomed words walrus".into()));
    assert!(contains(&stored_bytes(&peers[1]), b"walrus"));

    let delete = Intent::Delete {
        conv: conv("secret"),
        message: MessageId::new("m1").unwrap(),
        bucket: peers[0].engine.bucket_for(&conv("secret"), wire.now),
    };
    let id = wire.intent(&mut peers, 0, delete);
    assert_eq!(peers[0].engine.status(id), None, "the delete is accepted");
    for peer in &peers {
        let item = peer
            .engine
            .timeline(&conv("secret"))
            .into_iter()
            .find(|i| i.message.id.as_str() == "m1")
            .unwrap();
        assert!(item.message.deleted_at.is_some() && item.message.body.is_empty());
    }
    // Neither store holds what was read or sealed of it any more (the part's history is the
    // server's cut's to remove); what bob read of the other message stays.
    for peer in &peers {
        let holding: Vec<String> = block_on_ready(peer.store.scan(""))
            .unwrap()
            .unwrap()
            .into_iter()
            .filter(|(k, v)| contains(k.as_bytes(), b"walrus") || contains(v, b"walrus"))
            .map(|(k, _)| k)
            .collect();
        assert!(holding.is_empty(), "still held under {holding:?}");
    }
    let held = stored_bytes(&peers[1]);
    assert!(contains(&held, b"kept words"));
    let again = restored(&peers[1], &bucket);
    assert_eq!(shown(&again, "m2"), Ok("kept words".into()));
}
