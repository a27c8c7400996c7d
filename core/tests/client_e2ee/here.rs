//! Drafts and scheduled messages of an encrypted conversation stay on the device that wrote
//! them (docs/E2EE.md, "Drafts and scheduled messages"): no frame carries them, the server's
//! documents never hold them, a restart keeps them; a scheduled one is posted sealed by that
//! device at its time, once, and a member removed before then cannot open it.

use super::*;

const HOUR: i64 = 3_600_000;

/// The words no frame and no document of the server may hold.
const DRAFT: &str = "MARKER-draft-words";
const LATER: &str = "MARKER-scheduled-words";

/// Every frame peers sent so far, as text, with the changes submitted decoded.
fn sent_text(wire: &Wire) -> String {
    wire.sent.join("\n")
}

/// Every document the server holds, saved, as bytes; and the changes it accepted, decoded.
fn server_text(wire: &Wire, docs: &[DocId]) -> String {
    let mut text = String::new();
    for doc in docs {
        for (_, change) in wire.hub.changes_after(doc, 0) {
            text.push_str(&format!("{:?}", change.decode()));
        }
    }
    text
}

/// Peer `i`'s engine after the work due at once (its search index catching up): its next
/// wakeup.
fn wakeup_after_upkeep(wire: &mut Wire, peers: &mut [Peer], i: usize) -> Option<i64> {
    for _ in 0..100 {
        if peers[i].engine.next_wakeup() != Some(confab_core::client::DUE_NOW) {
            break;
        }
        peers[i].engine.tick(wire.now);
        wire.pump(peers);
    }
    peers[i].engine.next_wakeup()
}

/// Peer `i` started again on its own store (its store kept, its engine new), offline.
fn restart(wire: &mut Wire, peers: &mut [Peer], i: usize) {
    offline(wire, peers, i);
    let private = DocId::private(&tenant(), &acc("alice"));
    peers[i].engine = restored_engine(&peers[i], &[private]);
    peers[i].inbox.clear();
}

fn schedule(id: &str, body: &str, at: i64) -> Intent {
    Intent::Schedule {
        id: MessageId::new(id).unwrap(),
        conv: conv("secret"),
        body: body.into(),
        at,
    }
}

/// Alice's draft and scheduled messages of "secret", as her engine lists them.
fn kept(peer: &Peer) -> (Option<String>, Vec<(String, String, i64)>) {
    let data = peer.engine.private_data();
    let scheduled = data
        .scheduled
        .values()
        .filter(|s| s.conv == conv("secret"))
        .map(|s| (s.id.to_string(), s.body.clone(), s.at))
        .collect();
    (peer.engine.draft(&conv("secret")), scheduled)
}

/// Whether `peer` cannot read message `id` of "secret": not in its timeline, or shown
/// without its words.
fn cannot_read(peer: &Peer, id: &str) -> bool {
    peer.engine
        .timeline(&conv("secret"))
        .into_iter()
        .find(|i| i.message.id.as_str() == id)
        .is_none_or(|i| i.undecryptable.is_some() && !i.message.body.contains(LATER))
}

#[test]
fn a_draft_and_a_schedule_of_an_encrypted_conversation_stay_on_the_device() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob"]);
    let private = DocId::private(&tenant(), &acc("alice"));
    peers[0].engine.open(&private).unwrap();
    wire.pump(&mut peers);
    let at = wire.now + HOUR;

    // The same intents as in the clear, accepted at once, read back the same way.
    for intent in [
        Intent::SetDraft {
            conv: conv("secret"),
            text: Some(DRAFT.into()),
        },
        schedule("s1", "first words", at),
        Intent::EditScheduled {
            id: MessageId::new("s1").unwrap(),
            body: Some(LATER.into()),
            at: Some(at + HOUR),
        },
        schedule("s2", "never sent", at),
        Intent::CancelScheduled {
            id: MessageId::new("s2").unwrap(),
        },
    ] {
        let id = wire.intent(&mut peers, 0, intent);
        assert_eq!(peers[0].engine.status(id), None, "accepted and forgotten");
    }
    let expected = (
        Some(DRAFT.to_owned()),
        vec![("s1".to_owned(), LATER.to_owned(), at + HOUR)],
    );
    assert_eq!(kept(&peers[0]), expected);
    // Refusals are the scheduler's own: a time in the past.
    let past = peers[0]
        .engine
        .intent(schedule("s3", "late", wire.now - HOUR), wire.now);
    assert_eq!(
        past.as_ref().map_err(ClientError::code),
        Err("schedule_in_past")
    );

    // Nothing of them left the device: no frame, no document of the server.
    assert!(!sent_text(&wire).contains("MARKER"), "a frame carried them");
    let held = server_text(&wire, std::slice::from_ref(&private));
    assert!(!held.contains("MARKER"));
    assert!(!wire
        .hub
        .doc(&private)
        .is_some_and(|d| contains(&d.doc().save(), b"MARKER")));
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);

    // A restart keeps them; the account's other device never sees them.
    restart(&mut wire, &mut peers, 0);
    assert_eq!(kept(&peers[0]), expected);
    peers.push(device_of(config("alice"), "laptop"));
    wire.connect(&mut peers, 2);
    peers[2].engine.open(&private).unwrap();
    wire.pump(&mut peers);
    assert!(peers[2].engine.is_loaded(&private));
    assert_eq!(kept(&peers[2]), (None, Vec::new()));

    // A draft cleared is gone from the store too.
    wire.connect(&mut peers, 0);
    wire.intent(
        &mut peers,
        0,
        Intent::SetDraft {
            conv: conv("secret"),
            text: None,
        },
    );
    assert_eq!(peers[0].engine.draft(&conv("secret")), None);
    assert!(!contains(&stored_bytes(&peers[0]), DRAFT.as_bytes()));
}

#[test]
fn a_draft_of_a_conversation_in_the_clear_is_in_the_private_document() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob"]);
    let created = wire.intent(
        &mut peers,
        0,
        Intent::CreateConversation {
            conv: conv("open"),
            kind: ConvKind::Group,
            title: Some("open".into()),
            members: vec![(acc("bob"), Role::Member)],
            settings: None,
            parent: None,
            encrypted: false,
        },
    );
    assert_eq!(peers[0].engine.status(created), None);
    let draft = Intent::SetDraft {
        conv: conv("open"),
        text: Some("see you".into()),
    };
    let id = wire.intent(&mut peers, 0, draft);
    assert_eq!(peers[0].engine.status(id), None);
    let private = DocId::private(&tenant(), &acc("alice"));
    let on_server = wire.hub.doc(&private).unwrap();
    let drafts = confab_core::doc::read::read_private(on_server.doc()).drafts;
    assert_eq!(
        drafts.get(&conv("open")).map(String::as_str),
        Some("see you")
    );
}

/// Alice schedules in "secret" with bob and carol, then removes carol; the post is due at
/// `at`. Returns the peers and carol's device as saved before her removal.
fn scheduled_then_carol_removed(wire: &mut Wire, at: i64) -> (Vec<Peer>, Vec<(String, Vec<u8>)>) {
    let (mut peers, _) = group_with_today_open(wire, &["alice", "bob", "carol"]);
    wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(epochs(&peers), vec![Some(2); 3]);
    let id = wire.intent(&mut peers, 0, schedule("s1", LATER, at));
    assert_eq!(peers[0].engine.status(id), None);
    let carol_before = peers[2].saved_device();
    wire.intent(&mut peers, 0, remove("carol"));
    assert_eq!(epochs(&peers), vec![Some(3), Some(3), None]);
    (peers, carol_before)
}

/// The post's bucket open on bob's device; what bob shows of it.
fn bob_reads(wire: &mut Wire, peers: &mut [Peer], at: i64) -> Result<String, String> {
    let bucket = peers[1].engine.bucket_doc(&conv("secret"), at);
    peers[1].engine.open(&bucket).unwrap();
    wire.pump(peers);
    shown(&peers[1], "s1")
}

#[test]
fn a_scheduled_message_is_posted_sealed_at_its_time_once_across_a_restart() {
    let mut wire = Wire::new();
    let at = wire.now + HOUR;
    let (mut peers, carol_before) = scheduled_then_carol_removed(&mut wire, at);
    // The engine asks to be woken at the due time (device clock = server clock here).
    assert_eq!(wakeup_after_upkeep(&mut wire, &mut peers, 0), Some(at));

    // Not before its time.
    wire.now = at - 1;
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(kept(&peers[0]).1.len(), 1);

    // At its time the send is written and stored, and the device stops before it goes out.
    wire.now = at;
    peers[0].engine.tick(wire.now);
    for output in peers[0].engine.drain() {
        if let Output::Persist(ops) = output {
            block_on_ready(LocalStore::write(&peers[0].store, ops))
                .unwrap()
                .unwrap();
        }
    }
    restart(&mut wire, &mut peers, 0);
    assert_eq!(
        kept(&peers[0]).1,
        Vec::new(),
        "it left the list with its send"
    );
    assert_eq!(
        peers[0].engine.outbox().len(),
        1,
        "its send waits in the outbox"
    );
    wire.connect(&mut peers, 0);
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.outbox(), Vec::new(), "accepted");

    // Bob reads it; the server holds it sealed, with no words.
    assert_eq!(bob_reads(&mut wire, &mut peers, at), Ok(LATER.into()));
    let bucket = peers[0].engine.bucket_doc(&conv("secret"), at);
    let stored = stored_message(&wire, &bucket, "s1");
    assert_eq!(stored.body, "");
    assert!(stored.sealed.is_some());
    assert_eq!(stored.scheduled_at, Some(at));
    let server = server_text(
        &wire,
        &[bucket.clone(), DocId::private(&tenant(), &acc("alice"))],
    );
    assert!(!server.contains("MARKER"));
    assert!(!sent_text(&wire).contains("MARKER"));

    // Once: another restart and tick later, nothing more is sent for it.
    let submits = wire.sent.len();
    restart(&mut wire, &mut peers, 0);
    wire.connect(&mut peers, 0);
    wire.now += HOUR;
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert!(wire.sent[submits..]
        .iter()
        .all(|f| !f.contains("Submit") || !f.contains("s1")));
    let posts = wire
        .hub
        .changes_after(&bucket, 0)
        .into_iter()
        .filter(|(_, c)| format!("{:?}", c.clone().decode()).contains("\"s1\""))
        .count();
    assert_eq!(posts, 1, "posted once");
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);

    // Carol, removed before its time, cannot open it: neither her device as it is, nor one
    // started from its state saved before the removal.
    let now = wire.now;
    peers[2].engine.open(&bucket).unwrap();
    wire.pump(&mut peers);
    assert!(cannot_read(&peers[2], "s1"));
    let mut stale = device_of(peers[2].engine.config().clone(), "phone");
    stale.engine = ClientEngine::new(peers[2].engine.config().clone());
    stale
        .engine
        .attach_device(stale.mls_device(), &carol_before)
        .unwrap();
    peers.push(stale);
    wire.connect(&mut peers, 3);
    peers[3].engine.open(&bucket).unwrap();
    wire.pump(&mut peers);
    assert!(cannot_read(&peers[3], "s1"));
    assert!(!contains(&stored_bytes(&peers[3]), LATER.as_bytes()));
    assert_eq!(wire.now, now);
}

#[test]
fn a_device_offline_at_the_due_time_posts_it_when_next_online() {
    let mut wire = Wire::new();
    let at = wire.now + HOUR;
    let (mut peers, _) = scheduled_then_carol_removed(&mut wire, at);
    offline(&mut wire, &mut peers, 0);
    assert_eq!(
        wakeup_after_upkeep(&mut wire, &mut peers, 0),
        None,
        "offline it cannot post"
    );

    wire.now = at + 5 * HOUR;
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(kept(&peers[0]).1.len(), 1, "still waiting");
    assert!(!sent_text(&wire).contains("MARKER"));

    // Online again: due at once, posted then (created now, due `at`).
    wire.connect(&mut peers, 0);
    let due = wakeup_after_upkeep(&mut wire, &mut peers, 0).unwrap();
    assert!(due <= wire.now, "{due}");
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(kept(&peers[0]).1, Vec::new());
    let now = wire.now;
    assert_eq!(bob_reads(&mut wire, &mut peers, now), Ok(LATER.into()));
    assert!(cannot_read(&peers[2], "s1"));
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);
}

#[test]
fn scheduled_messages_kept_on_a_device_are_bounded() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob"]);
    let at = wire.now + HOUR;
    let max = confab_core::model::schedule::SCHEDULE_MAX_PENDING;
    for n in 0..max {
        let id = wire.intent(&mut peers, 0, schedule(&format!("s{n}"), "words", at));
        assert_eq!(peers[0].engine.status(id), None);
    }
    let more = peers[0]
        .engine
        .intent(schedule("one-more", "words", at), wire.now);
    assert_eq!(
        more.as_ref().map_err(ClientError::code),
        Err("schedule_too_many")
    );
    assert_eq!(kept(&peers[0]).1.len(), max);
}
