//! The two guards of encrypted conversations on the device (docs/E2EE.md): no forward out
//! of an encrypted conversation into the clear, and a refused sealed edit shows the
//! accepted text again.

use confab_core::client::IntentStatus;

use super::*;

/// A group `id` of alice with bob, encrypted or not, created by peer 0 and followed by
/// peer 1, with its first bucket open on both.
fn another_group(wire: &mut Wire, peers: &mut [Peer], id: &str, encrypted: bool) -> DocId {
    let created = wire.intent(
        peers,
        0,
        Intent::CreateConversation {
            conv: conv(id),
            kind: ConvKind::Group,
            title: Some(id.into()),
            members: vec![(acc("bob"), Role::Member)],
            settings: None,
            parent: None,
            encrypted,
        },
    );
    assert_eq!(peers[0].engine.status(created), None, "{id} is created");
    peers[1]
        .engine
        .open(&DocId::conv(&tenant(), &conv(id)))
        .unwrap();
    open_bucket(wire, peers, id)
}

fn open_bucket(wire: &mut Wire, peers: &mut [Peer], id: &str) -> DocId {
    let bucket = peers[0].engine.bucket_doc(&conv(id), wire.now);
    for peer in peers.iter_mut() {
        peer.engine.open(&bucket).unwrap();
    }
    wire.pump(peers);
    bucket
}

/// Peer 0's forward of message `message` of `from` into `to`, as the host writes it: the
/// content its lookup (`ClientEngine::message`) gives, with where it came from.
fn forward(peers: &[Peer], from: &str, message: &str, to: &str, id: &str, now: i64) -> Intent {
    let message_id = MessageId::new(message).unwrap();
    let engine = &peers[0].engine;
    let (_, original) = engine
        .message(&conv(from), &message_id)
        .expect("the original is loaded");
    assert_eq!(engine.cannot_open(&conv(from), &message_id), None);
    confab_testkit::forward::forward(
        (&conv(from), message),
        &conv(to),
        (id, "alice"),
        original.body,
        now,
    )
}

/// What `peer` shows of message `id` of `conv_id`.
fn shown_in(peer: &Peer, conv_id: &str, id: &str) -> Option<Result<String, String>> {
    let item = peer
        .engine
        .timeline(&conv(conv_id))
        .into_iter()
        .find(|i| i.message.id.as_str() == id)?;
    Some(match item.undecryptable {
        Some(reason) => Err(reason),
        None => Ok(item.message.body),
    })
}

#[test]
fn a_forward_out_of_an_encrypted_conversation_is_refused_before_it_is_written() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob"]);
    open_bucket(&mut wire, &mut peers, "secret");
    let open_bucket = another_group(&mut wire, &mut peers, "open", false);
    another_group(&mut wire, &mut peers, "vault", true);
    send(&mut wire, &mut peers, 0, "m1", "the launch code");

    // Into the clear: refused with its code and a sentence, nothing written or queued.
    let before = stored_bytes(&peers[0]);
    let into_clear = forward(&peers, "secret", "m1", "open", "f1", wire.now);
    let refused = peers[0].engine.intent(into_clear, wire.now);
    match &refused {
        Err(ClientError::Denied { code, reason, .. }) => {
            assert_eq!(code, "forward_out_of_encrypted");
            assert!(reason.contains("not encrypted"), "{reason}");
        }
        other => panic!("the forward went through: {other:?}"),
    }
    wire.pump(&mut peers);
    assert_eq!(shown_in(&peers[0], "open", "f1"), None);
    assert_eq!(stored_bytes(&peers[0]), before, "nothing was stored");
    let on_server = wire.hub.doc(&open_bucket);
    assert!(on_server.is_none_or(|d| !contains(&d.doc().save(), b"launch code")));
    // Hosts ask the same before copying a forward's attachments.
    let asked = peers[0]
        .engine
        .check_forward(&conv("secret"), &conv("open"))
        .unwrap_err();
    assert_eq!(asked.code(), "forward_out_of_encrypted");

    // Into another encrypted conversation: sealed for its group, read by bob there.
    let sealed = forward(&peers, "secret", "m1", "vault", "f2", wire.now);
    let id = wire.intent(&mut peers, 0, sealed);
    assert_eq!(peers[0].engine.status(id), None, "the forward is accepted");
    assert_eq!(
        shown_in(&peers[1], "vault", "f2"),
        Some(Ok("the launch code".into()))
    );

    // Out of the clear into an encrypted conversation: sealed as any send.
    let plain = NewMessage::text(MessageId::new("p1").unwrap(), acc("alice"), "hi", wire.now);
    let sent = wire.intent(
        &mut peers,
        0,
        Intent::Send {
            conv: conv("open"),
            message: plain,
        },
    );
    assert_eq!(peers[0].engine.status(sent), None);
    let into_sealed = forward(&peers, "open", "p1", "secret", "f3", wire.now);
    let id = wire.intent(&mut peers, 0, into_sealed);
    assert_eq!(peers[0].engine.status(id), None, "the forward is accepted");
    assert_eq!(shown_in(&peers[1], "secret", "f3"), Some(Ok("hi".into())));
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);
}

#[test]
fn a_refused_sealed_edit_shows_the_accepted_text_again() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob"]);
    let bucket = open_bucket(&mut wire, &mut peers, "secret");
    let sent_at = wire.now;
    send(&mut wire, &mut peers, 1, "m1", "accepted words");

    // Bob edits offline while alice locks the conversation: the server refuses his edit.
    peers[1].online = false;
    peers[1].engine.disconnected();
    for s in wire.subs.values_mut() {
        s.remove(&1);
    }
    wire.now += 1_000;
    let intent = edit(&peers[1], "m1", "refused words", sent_at);
    let id = peers[1].engine.intent(intent, wire.now).unwrap();
    assert_eq!(
        shown_in(&peers[1], "secret", "m1"),
        Some(Ok("refused words".into()))
    );
    let lock = Intent::SetSetting {
        conv: conv("secret"),
        key: "locked".into(),
        value: serde_json::Value::Bool(true),
    };
    let locked = wire.intent(&mut peers, 0, lock);
    assert_eq!(peers[0].engine.status(locked), None, "the lock is accepted");
    wire.connect(&mut peers, 1);

    assert!(
        matches!(
            peers[1].engine.status(id),
            Some(IntentStatus::Rejected { code, .. }) if code == "conversation_locked"
        ),
        "{:?}",
        peers[1].engine.status(id)
    );
    assert_eq!(
        shown_in(&peers[1], "secret", "m1"),
        Some(Ok("accepted words".into()))
    );
    assert_eq!(
        shown_in(&peers[0], "secret", "m1"),
        Some(Ok("accepted words".into()))
    );
    // From the store too: a restarted bob shows the accepted text.
    let again = restored(&peers[1], &bucket);
    assert_eq!(
        shown_in(&again, "secret", "m1"),
        Some(Ok("accepted words".into()))
    );
}

#[test]
fn an_accepted_sealed_edit_keeps_no_earlier_text_on_the_authors_device() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob"]);
    open_bucket(&mut wire, &mut peers, "secret");
    let sent_at = wire.now;
    send(&mut wire, &mut peers, 0, "m1", "first draft zebra");
    wire.now += 1_000;
    let intent = edit(&peers[0], "m1", "final words", sent_at);
    let id = wire.intent(&mut peers, 0, intent);
    assert_eq!(peers[0].engine.status(id), None, "the edit is accepted");
    assert_eq!(
        shown_in(&peers[0], "secret", "m1"),
        Some(Ok("final words".into()))
    );
    let held = stored_bytes(&peers[0]);
    assert!(contains(&held, b"final words"));
    // The outbox may still hold the message as sent; the opened record does not.
    let opened: Vec<u8> = block_on_ready(peers[0].store.scan("open/"))
        .unwrap()
        .unwrap()
        .into_iter()
        .flat_map(|(_, v)| v)
        .collect();
    assert!(contains(&opened, b"final words"));
    assert!(!contains(&opened, b"zebra"), "the replaced text is gone");
}
