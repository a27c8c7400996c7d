//! What a timeline costs the client engine, counted: asking again after no change
//! reads nothing, a change re-reads only the messages it touched (never the whole bucket),
//! and the cached items follow every change as a full read shows them (a send pending, its
//! ack accepted with its seq, pushes, reactions, edits, deletions, a rejection).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::{ActorId, Change};
use confab_core::client::Intent;
use confab_core::client::{ClientConfig, ClientEngine, Output};
use confab_core::protocol::SeqChange;
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_testkit::group::{self, Group};
use confab_testkit::ids::tenant;
use serde_bytes::ByteBuf;

const DAY: i64 = 20_553;

fn client() -> (Group, ClientEngine) {
    let group = Group::build(5, 40, DAY).unwrap();
    let mut engine = member_engine();
    group.load_into(&mut engine).unwrap();
    engine.connected(group.now, group.now);
    engine.drain();
    (group, engine)
}

#[test]
fn asking_again_reads_nothing_and_a_send_reads_only_its_message() {
    let (group, mut engine) = client();
    let first = engine.timeline(&group.conv);
    assert!(first.len() >= 40, "{} items", first.len());
    let reads = engine.timeline_reads();
    for _ in 0..5 {
        assert_eq!(engine.timeline(&group.conv), first);
        engine.conversations(group.now);
    }
    assert_eq!(engine.timeline_reads(), reads, "no change, no read");

    engine
        .intent(group.send(1, group.now - 1000), group.now)
        .unwrap();
    let after = engine.timeline(&group.conv);
    assert_eq!(after.len(), first.len() + 1);
    let last = after.last().unwrap();
    assert!(last.pending, "my new message is pending");
    assert_eq!(&after[..first.len()], &first[..], "the others unchanged");
    engine.timeline(&group.conv);
    engine.conversations(group.now);
    assert_eq!(engine.timeline_reads(), reads, "no bucket read again");
    assert_eq!(engine.timeline_messages_read(), 1, "one message read, once");
}

#[test]
fn an_ack_turns_the_cached_pending_item_accepted() {
    let (group, mut engine) = client();
    engine
        .intent(group.send(1, group.now - 1000), group.now)
        .unwrap();
    let submit = engine
        .drain()
        .into_iter()
        .find_map(|o| match o {
            Output::Send(ClientFrame::Submit { doc, changes }) => Some((doc, changes)),
            _ => None,
        })
        .expect("the send is submitted");
    let pending = engine.timeline(&group.conv);
    let mine = pending.last().unwrap().clone();
    assert!(mine.pending && mine.seq.is_none());

    let change = Change::try_from(&submit.1[0][..]).unwrap();
    let seq = group.bucket_changes.len() as u64 + 1;
    engine.receive(
        ServerFrame::Ack {
            doc: submit.0,
            hash: ByteBuf::from(change.hash().0.to_vec()),
            seq,
        },
        group.now,
    );
    let acked = engine.timeline(&group.conv);
    let item = acked
        .iter()
        .find(|i| i.message.id == mine.message.id)
        .expect("still shown");
    assert!(!item.pending, "accepted after its ack");
    assert_eq!(item.seq, Some(seq));
}

/// Member 1's engine, with nothing loaded.
fn member_engine() -> ClientEngine {
    ClientEngine::new(ClientConfig {
        tenant: tenant(),
        account: group::member(1),
        actor: ActorId::from(&[0xaa; 16][..]),
    })
}

/// Member 1's engine following the group's conversation (its document received) and
/// bucket (nothing of it received yet).
fn following(group: &Group) -> ClientEngine {
    let mut engine = member_engine();
    engine.open(&group.conv_doc).unwrap();
    engine.open(&group.bucket_doc).unwrap();
    engine.receive(group.frames()[0].clone(), group.now);
    engine
}

/// The submitted change of the intent just made (its doc and bytes).
fn submitted(engine: &mut ClientEngine) -> (String, Vec<u8>) {
    engine
        .drain()
        .into_iter()
        .find_map(|o| match o {
            Output::Send(ClientFrame::Submit { doc, changes }) => Some((doc, changes[0].to_vec())),
            _ => None,
        })
        .expect("the intent is submitted")
}

/// The cached timeline equals a full read of the buckets, and no bucket was read whole.
fn assert_patched(engine: &ClientEngine, group: &Group, reads: u64, step: &str) {
    assert_eq!(
        engine.timeline(&group.conv),
        engine.timeline_read_whole(&group.conv),
        "after {step}: the patched items are what a full read shows"
    );
    assert_eq!(
        engine.timeline_reads(),
        reads,
        "after {step}: no bucket read whole"
    );
}

#[test]
fn pushes_reactions_edits_and_deletions_are_patched_in_as_a_full_read_shows_them() {
    let group = Group::build(5, 60, DAY).unwrap();
    // The conversation and the first 20 changes of the bucket; the rest arrive one by one.
    let mut engine = following(&group);
    let bucket_doc = group.bucket_doc.to_string();
    let push = |engine: &mut ClientEngine, from: usize, to: usize| {
        let changes = (from..to)
            .map(|i| SeqChange {
                seq: i as u64 + 1,
                change: ByteBuf::from(group.bucket_changes[i].clone()),
            })
            .collect();
        engine.receive(
            ServerFrame::Changes {
                doc: bucket_doc.clone(),
                changes,
            },
            group.now,
        );
    };
    push(&mut engine, 0, 20);
    engine.connected(group.now, group.now);
    engine.drain();
    let first = engine.timeline(&group.conv);
    assert!(first.len() >= 15, "{} items", first.len());
    let reads = engine.timeline_reads();

    // Others' messages and reactions pushed one change at a time.
    for i in 20..group.bucket_changes.len() {
        push(&mut engine, i, i + 1);
        assert_patched(&engine, &group, reads, &format!("push {i}"));
    }
    let pushed = group.bucket_changes.len() as u64;

    // My own intents: each patched in while pending, then as accepted with its seq.
    let bucket = confab_core::ids::Bucket::from(group.bucket);
    let intents = [
        group.send(1, group.now - 1000),
        Intent::React {
            conv: group.conv.clone(),
            message: group.theirs.clone(),
            bucket,
            emoji: "🎉".into(),
            on: true,
        },
        Intent::Edit {
            conv: group.conv.clone(),
            message: group.mine.clone(),
            bucket,
            body: "edited".into(),
        },
        Intent::Delete {
            conv: group.conv.clone(),
            message: group.mine.clone(),
            bucket,
        },
    ];
    for (seq, intent) in (pushed + 1..).zip(intents) {
        let what = format!("{intent:?}");
        engine.intent(intent, group.now).unwrap();
        let (doc, change) = submitted(&mut engine);
        assert_patched(&engine, &group, reads, &format!("{what} (pending)"));
        let hash = Change::try_from(&change[..]).unwrap().hash();
        engine.receive(
            ServerFrame::Ack {
                doc,
                hash: ByteBuf::from(hash.0.to_vec()),
                seq,
            },
            group.now,
        );
        assert_patched(&engine, &group, reads, &format!("{what} (acked)"));
    }
    let shown = engine.timeline(&group.conv);
    let edited = shown.iter().find(|i| i.message.id == group.mine).unwrap();
    assert!(
        edited.message.deleted_at.is_some(),
        "deleted after the edit"
    );
    let theirs = shown.iter().find(|i| i.message.id == group.theirs).unwrap();
    assert!(
        theirs.message.reactions.contains_key("🎉"),
        "my reaction shows"
    );
    assert!(
        engine.timeline_messages_read() >= 40,
        "every push read its message"
    );
}

#[test]
fn a_rejected_send_leaves_the_cached_items_by_a_full_read() {
    let (group, mut engine) = client();
    let before = engine.timeline(&group.conv);
    let reads = engine.timeline_reads();
    engine
        .intent(group.send(1, group.now - 1000), group.now)
        .unwrap();
    let (doc, change) = submitted(&mut engine);
    assert_eq!(engine.timeline(&group.conv).len(), before.len() + 1);
    let hash = Change::try_from(&change[..]).unwrap().hash();
    engine.receive(
        ServerFrame::Reject {
            doc,
            hash: Some(ByteBuf::from(hash.0.to_vec())),
            code: "forbidden".into(),
            reason: "not allowed".into(),
        },
        group.now,
    );
    // The document lost a change the cache was read at: it cannot patch, it reads again.
    assert_eq!(
        engine.timeline(&group.conv),
        before,
        "the refused message is gone"
    );
    assert_eq!(engine.timeline_reads(), reads + 1);
    assert_eq!(
        engine.timeline(&group.conv),
        engine.timeline_read_whole(&group.conv)
    );
}

/// The server pushes an accepted change to its writer too. An ack whose seq is the next one
/// after the cursor is that seq arriving in order: the change is stored under it then, and
/// the push that follows is already held, so it writes nothing and tells no one (a store
/// transaction and a redraw saved per message sent). After an ack with a gap before its seq
/// the push still stores the change under its seq, and tells no one. Before the ack (the
/// server writes pushes into sockets as it commits, and the ack follows) the push is the
/// acceptance, outbox and all, and the ack finds nothing left to store.
#[test]
fn the_push_of_my_own_acked_change_is_stored_once_and_tells_no_one() {
    use confab_core::client::{Event, IntentStatus, StoreOp};
    let doc_events = |outputs: &[Output]| {
        outputs
            .iter()
            .filter(|o| matches!(o, Output::Event(Event::Doc { .. })))
            .count()
    };
    let puts = |outputs: &[Output]| -> Vec<String> {
        outputs
            .iter()
            .flat_map(|o| match o {
                Output::Persist(ops) => ops
                    .iter()
                    .filter_map(|op| match op {
                        StoreOp::Put(key, _) if key.starts_with("chg/") => Some(key.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    };
    for (ack_first, gap) in [(true, false), (true, true), (false, false)] {
        let group = Group::build(5, 40, DAY).unwrap();
        let mut engine = following(&group);
        let bucket_doc = group.bucket_doc.to_string();
        let pushed = |from: usize, to: usize| ServerFrame::Changes {
            doc: bucket_doc.clone(),
            changes: (from..to)
                .map(|i| SeqChange {
                    seq: i as u64 + 1,
                    change: ByteBuf::from(group.bucket_changes[i].clone()),
                })
                .collect(),
        };
        // With a gap, the group's last change (seq n) has not reached this device when its
        // own change is acked with seq n + 1.
        let n = group.bucket_changes.len();
        engine.receive(pushed(0, if gap { n - 1 } else { n }), group.now);
        engine.connected(group.now, group.now);
        engine.drain();

        engine
            .intent(group.send(1, group.now - 1000), group.now)
            .unwrap();
        let (doc, change) = submitted(&mut engine);
        let hash = Change::try_from(&change[..]).unwrap().hash();
        let seq = n as u64 + 1;
        let ack = ServerFrame::Ack {
            doc: doc.clone(),
            hash: ByteBuf::from(hash.0.to_vec()),
            seq,
        };
        let push = ServerFrame::Changes {
            doc: doc.clone(),
            changes: vec![SeqChange {
                seq,
                change: ByteBuf::from(change),
            }],
        };
        let in_order = format!("chg/{doc}/{seq:020}");
        let case = format!("ack first: {ack_first}, gap: {gap}");
        if ack_first {
            engine.receive(ack, group.now);
            let acked = puts(&engine.drain());
            if gap {
                assert!(
                    acked.iter().any(|k| k.starts_with(&format!("{in_order}-"))),
                    "{case}: an ack record until seq {seq} arrives in order: {acked:?}"
                );
                engine.receive(pushed(n - 1, n), group.now);
                engine.drain();
            } else {
                assert_eq!(
                    acked,
                    std::slice::from_ref(&in_order),
                    "{case}: stored under its seq"
                );
            }
            engine.receive(push, group.now);
            let after = engine.drain();
            assert_eq!(doc_events(&after), 0, "{case}: the push tells no one");
            if gap {
                assert_eq!(puts(&after), [in_order], "{case}: stored under its seq");
            } else {
                assert!(puts(&after).is_empty(), "{case}: held already: {after:?}");
            }
        } else {
            engine.receive(push, group.now);
            let after = engine.drain();
            assert_eq!(doc_events(&after), 1, "{case}: the push is the acceptance");
            assert!(
                after.iter().any(|o| matches!(
                    o,
                    Output::Event(Event::Intent {
                        status: IntentStatus::Accepted,
                        ..
                    })
                )),
                "{case}: the intent is accepted by the push: {after:?}"
            );
            assert_eq!(puts(&after), [in_order], "{case}: stored under its seq");
            assert!(engine.outbox().is_empty(), "{case}: it left the outbox");
            engine.receive(ack, group.now);
            let after = engine.drain();
            assert!(
                !after.iter().any(|o| matches!(o, Output::Persist(_))),
                "{case}: the ack finds nothing left to store: {after:?}"
            );
        }
        let item = engine.timeline(&group.conv).last().unwrap().clone();
        assert!(!item.pending, "{case}: accepted");
        assert_eq!(item.seq, Some(seq));
    }
}
