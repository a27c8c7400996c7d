//! What a user action costs the client engine, counted rather than timed (the times are in
//! `cargo xtask bench client`): sending, reacting, editing and asking the policy
//! never read the member list, and a message's change does not grow with the group. Also
//! that the cached view the policy reads follows every change of the document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::{ActorId, Automerge, Change};
use confab_core::client::{apply, ClientConfig, ClientEngine, Intent, Output, ReadStats};
use confab_core::doc::IntentTag;
use confab_core::policy::DenyCode;
use confab_core::protocol::{ClientFrame, SeqChange, ServerFrame};
use confab_testkit::group::{self, Group};
use confab_testkit::ids::tenant;
use serde_bytes::ByteBuf;

const DAY: i64 = 20_553;

fn client(members: usize) -> (Group, ClientEngine) {
    let group = Group::build(members, 20, DAY).unwrap();
    let mut engine = ClientEngine::new(ClientConfig {
        tenant: tenant(),
        account: group::member(1),
        actor: ActorId::from(&[0xaa; 16][..]),
    });
    group.load_into(&mut engine).unwrap();
    (group, engine)
}

fn since(now: ReadStats, before: ReadStats) -> ReadStats {
    ReadStats {
        views: now.views - before.views,
        members: now.members - before.members,
        full: now.full - before.full,
    }
}

fn react(group: &Group, on: bool) -> Intent {
    Intent::React {
        conv: group.conv.clone(),
        message: group.theirs.clone(),
        bucket: group.bucket.into(),
        emoji: "🎉".into(),
        on,
    }
}

fn edit(group: &Group, k: usize) -> Intent {
    Intent::Edit {
        conv: group.conv.clone(),
        message: group.mine.clone(),
        bucket: group.bucket.into(),
        body: format!("edited {k}"),
    }
}

#[test]
fn sending_reacting_editing_and_asking_do_not_read_the_member_list() {
    let (group, mut engine) = client(1000);
    let now = group.now;
    let before = engine.read_stats();
    for k in 0..20 {
        engine.verdict(&group.send(k, now), now).unwrap();
        engine.intent(group.send(k, now - 1000), now).unwrap();
        engine.intent(react(&group, k % 2 == 0), now).unwrap();
        engine.intent(edit(&group, k), now).unwrap();
        engine.drain();
    }
    let read = since(engine.read_stats(), before);
    // One view of the conversation and one member entry (this account's) for 80 actions:
    // none of them wrote the conversation document, so its heads never moved.
    assert_eq!(
        read,
        ReadStats {
            views: 1,
            members: 1,
            full: 0
        }
    );
    // Asking for the whole conversation does read it (and is counted).
    assert_eq!(
        engine.conversation(&group.conv).unwrap().members.len(),
        1000
    );
    assert_eq!(since(engine.read_stats(), before).full, 1);
}

#[test]
fn the_whole_conversation_and_the_list_are_read_once_per_change_of_the_document() {
    let (group, mut engine) = client(50);
    let before = engine.read_stats();
    // A page asks several times per redraw: one read.
    for _ in 0..5 {
        assert_eq!(engine.conversation(&group.conv).unwrap().members.len(), 50);
        engine.conversations(group.now);
    }
    assert_eq!(since(engine.read_stats(), before).full, 1);
    // A change of the conversation document (my read marker) is read again, once.
    let newest = engine
        .timeline(&group.conv)
        .last()
        .unwrap()
        .message
        .id
        .clone();
    engine
        .intent(
            Intent::MarkRead {
                conv: group.conv.clone(),
                message: newest.clone(),
            },
            group.now,
        )
        .unwrap();
    for _ in 0..5 {
        let conv = engine.conversation(&group.conv).unwrap();
        assert_eq!(conv.reads.get(&group::member(1)), Some(&newest));
        assert_eq!(
            engine.conversations(group.now)[0].unread,
            0,
            "read up to the newest"
        );
    }
    assert_eq!(since(engine.read_stats(), before).full, 2);
}

/// The change a send produces, as submitted.
fn submitted_send(members: usize) -> (Group, Change) {
    let (group, mut engine) = client(members);
    engine.connected(group.now, group.now);
    engine.drain();
    engine
        .intent(group.send(1, group.now - 1000), group.now)
        .unwrap();
    let submits: Vec<_> = engine
        .drain()
        .into_iter()
        .filter_map(|o| match o {
            Output::Send(ClientFrame::Submit { doc, changes }) => Some((doc, changes)),
            _ => None,
        })
        .collect();
    assert_eq!(submits.len(), 1, "one submit for one send");
    let (doc, changes) = submits.into_iter().next().unwrap();
    assert_eq!(
        doc,
        group.bucket_doc.to_string(),
        "a message writes its bucket only"
    );
    assert_eq!(changes.len(), 1);
    (group, Change::try_from(&changes[0][..]).unwrap())
}

#[test]
fn a_message_change_does_not_grow_with_the_group() {
    let (_, small) = submitted_send(10);
    let (_, large) = submitted_send(1000);
    let ops = |c: &Change| c.decode().operations.len();
    assert_eq!(ops(&small), ops(&large));
    assert!(ops(&large) < 20, "{} ops for one text message", ops(&large));
}

/// A change of the conversation by the group's owner, as the server pushes it.
fn owner_change(group: &Group, intent: &Intent) -> ServerFrame {
    let mut doc = Automerge::new();
    for bytes in &group.conv_changes {
        doc.apply_changes([Change::try_from(&bytes[..]).unwrap()])
            .unwrap();
    }
    doc.set_actor(group::actor(0));
    let tag = IntentTag::new("owner-1", intent.kind());
    assert!(apply::write_to(
        &mut doc,
        &group.conv_doc,
        intent,
        &group::member(0),
        &tag,
        group.now,
        1
    )
    .unwrap());
    let change = doc.get_last_local_change().unwrap();
    ServerFrame::Changes {
        doc: group.conv_doc.to_string(),
        changes: vec![SeqChange {
            seq: group.conv_changes.len() as u64 + 1,
            change: ByteBuf::from(change.raw_bytes().to_vec()),
        }],
    }
}

#[test]
fn the_policy_sees_a_pushed_removal_at_once() {
    let (group, mut engine) = client(10);
    let now = group.now;
    engine.verdict(&group.send(1, now), now).unwrap();
    let removal = Intent::RemoveMember {
        conv: group.conv.clone(),
        account: group::member(1),
        ban: false,
    };
    engine.receive(owner_change(&group, &removal), now);
    let denied = engine.verdict(&group.send(2, now), now).unwrap_err();
    assert_eq!(denied.code, DenyCode::MemberInactive);
    assert_eq!(engine.read_stats().full, 0);
    // (Explaining a refusal to people reads names and titles: not counted against the check.)
    assert!(engine.intent(group.send(3, now), now).is_err());
}

#[test]
fn the_policy_sees_a_pushed_setting_at_once() {
    let (group, mut engine) = client(10);
    let now = group.now;
    engine.verdict(&react(&group, true), now).unwrap();
    let off = Intent::SetSetting {
        conv: group.conv.clone(),
        key: "allow_reactions".into(),
        value: serde_json::Value::Bool(false),
    };
    engine.receive(owner_change(&group, &off), now);
    let denied = engine.verdict(&react(&group, true), now).unwrap_err();
    assert_eq!(denied.code, DenyCode::ReactionsDisabled);
}

#[test]
fn the_policy_sees_this_devices_pending_leave() {
    let (group, mut engine) = client(10);
    let now = group.now;
    engine.verdict(&group.send(1, now), now).unwrap();
    engine
        .intent(
            Intent::Leave {
                conv: group.conv.clone(),
            },
            now,
        )
        .unwrap();
    let denied = engine.verdict(&group.send(2, now), now).unwrap_err();
    assert_eq!(denied.code, DenyCode::MemberInactive);
}

/// The cache lives in cells; the engine must still move to another thread (the native
/// client runs it on its own).
#[test]
fn the_engine_stays_send() {
    fn send<T: Send>() {}
    send::<ClientEngine>();
}

#[test]
fn the_policy_sees_a_rejected_leave_undone() {
    let (group, mut engine) = client(10);
    let now = group.now;
    engine.connected(now, now);
    engine.drain();
    let leave = Intent::Leave {
        conv: group.conv.clone(),
    };
    engine.intent(leave, now).unwrap();
    let change = engine
        .drain()
        .into_iter()
        .find_map(|o| match o {
            Output::Send(ClientFrame::Submit { changes, .. }) => changes.into_iter().next(),
            _ => None,
        })
        .unwrap();
    let hash = Change::try_from(&change[..]).unwrap().hash();
    assert!(engine.verdict(&group.send(1, now), now).is_err());
    // The server refuses the leave: the engine rebuilds the document without it.
    engine.receive(
        ServerFrame::Reject {
            doc: group.conv_doc.to_string(),
            hash: Some(ByteBuf::from(hash.0.to_vec())),
            code: "no_permission".into(),
            reason: "test".into(),
        },
        now,
    );
    engine.verdict(&group.send(2, now), now).unwrap();
}
