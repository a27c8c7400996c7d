//! A send into an encrypted conversation names, in the clear, the hashes of the blobs of that
//! conversation its sealed attachments name (`blobs`): the server releases them when the
//! message is deleted. An edit keeps them; a delete removes them with the rest.

use confab_core::model::attachment::BlobHash;
use confab_core::model::message::MessageKind;

use super::*;

fn blob_url(c: &str, hash: &BlobHash) -> String {
    format!("https://chat.example/v1/conversations/{c}/attachments/{hash}")
}

#[test]
fn a_sealed_send_names_its_conversations_blobs_by_hash() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob"]);
    let (a, b, elsewhere) = (
        BlobHash::of(b"sealed photo"),
        BlobHash::of(b"sealed notes"),
        BlobHash::of(b"another conversation's"),
    );
    // Sealed files (their key in the reference), one named twice, a file kept elsewhere and
    // another conversation's blob.
    let attachments = serde_json::json!([
        {"id": "1", "kind": "image", "name": "photo.jpg", "url": blob_url("secret", &a),
         "encryption": {"key": "11", "nonce": "22", "sha256": a.hex()}},
        {"id": "2", "kind": "file", "name": "notes.txt", "url": blob_url("secret", &b),
         "encryption": {"key": "33", "nonce": "44", "sha256": b.hex()}},
        {"id": "3", "kind": "file", "url": blob_url("secret", &a)},
        {"id": "4", "kind": "file", "url": "https://cdn.example/walrus.png"},
        {"id": "5", "kind": "file", "url": blob_url("other", &elsewhere)},
    ])
    .to_string();
    let mut message = NewMessage::text(MessageId::new("m1").unwrap(), acc("alice"), "files", T0);
    message.kind = MessageKind::File;
    message.attachments = Some(attachments.clone());
    let sent = wire.intent(
        &mut peers,
        0,
        Intent::Send {
            conv: conv("secret"),
            message,
        },
    );
    assert_eq!(peers[0].engine.status(sent), None, "the send is accepted");

    // The server holds the hashes beside the seal, nothing else of the attachments.
    let m1 = stored_message(&wire, &bucket, "m1");
    assert_eq!(
        m1.blobs.as_deref(),
        Some(format!(r#"["{a}","{b}"]"#).as_str())
    );
    assert!(m1.attachments.is_none() && m1.sealed.is_some());
    let clear = m1.blobs.unwrap();
    for secret in ["photo.jpg", "walrus", "\"11\"", "other"] {
        assert!(!clear.contains(secret), "{secret} in the clear: {clear}");
    }
    // Bob opens the attachment list itself.
    let item = peers[1]
        .engine
        .timeline(&conv("secret"))
        .into_iter()
        .find(|i| i.message.id.as_str() == "m1")
        .unwrap();
    assert_eq!(
        item.message.attachments.as_deref(),
        Some(attachments.as_str())
    );

    // A text with no blob of this conversation names none.
    send(&mut wire, &mut peers, 0, "m2", "no files");
    assert_eq!(stored_message(&wire, &bucket, "m2").blobs, None);

    // An edit keeps them; a delete removes them with the rest.
    wire.now += 1_000;
    let intent = edit(&peers[0], "m1", "files, edited", T0);
    let edited = wire.intent(&mut peers, 0, intent);
    assert_eq!(peers[0].engine.status(edited), None, "the edit is accepted");
    let m1 = stored_message(&wire, &bucket, "m1");
    assert_eq!(m1.edited_at, Some(wire.now));
    assert_eq!(m1.blob_hashes(&conv("secret")), vec![a, b]);
    let delete = Intent::Delete {
        conv: conv("secret"),
        message: MessageId::new("m1").unwrap(),
        bucket: peers[0].engine.bucket_for(&conv("secret"), T0),
    };
    let deleted = wire.intent(&mut peers, 0, delete);
    assert_eq!(
        peers[0].engine.status(deleted),
        None,
        "the delete is accepted"
    );
    let m1 = stored_message(&wire, &bucket, "m1");
    assert!(m1.deleted_at.is_some() && m1.blobs.is_none());
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);
}

#[test]
fn a_plaintext_send_never_names_blobs_by_hash() {
    let mut wire = Wire::new();
    let mut peers = vec![phone("alice")];
    wire.connect(&mut peers, 0);
    wire.intent(&mut peers, 0, create(false, &[]));
    let hash = BlobHash::of(b"a plain file");
    let mut message = NewMessage::text(MessageId::new("p1").unwrap(), acc("alice"), "", T0);
    message.kind = MessageKind::File;
    message.attachments = Some(format!(
        r#"[{{"id":"1","kind":"file","url":"{}"}}]"#,
        blob_url("secret", &hash)
    ));
    let sent = wire.intent(
        &mut peers,
        0,
        Intent::Send {
            conv: conv("secret"),
            message: message.clone(),
        },
    );
    assert_eq!(peers[0].engine.status(sent), None, "the send is accepted");
    let bucket = peers[0].engine.bucket_doc(&conv("secret"), T0);
    let p1 = stored_message(&wire, &bucket, "p1");
    assert_eq!(p1.blobs, None);
    assert_eq!(p1.blob_hashes(&conv("secret")), vec![hash]);
    // A host that writes them anyway is told before anything is written.
    message.id = MessageId::new("p2").unwrap();
    message.blobs = Some(format!(r#"["{hash}"]"#));
    let refused = peers[0].engine.intent(
        Intent::Send {
            conv: conv("secret"),
            message,
        },
        wire.now,
    );
    assert!(
        matches!(&refused, Err(ClientError::Denied { code, .. }) if code == "not_encrypted"),
        "{refused:?}"
    );
}
