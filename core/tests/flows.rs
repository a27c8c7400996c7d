//! Whole flows through the writer, the validator and the hub.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::doc::read;
use confab_core::doc::write;
use confab_core::model::conversation::*;
use confab_testkit::fixture::ConvFixture;
use confab_testkit::{hub::*, ids::*, Device};

#[test]
fn group_lifecycle_of_messages_reactions_edits_and_members() {
    let mut hub = confab_core::hub::Hub::new();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let c = group(&mut hub, "g1", &mut alice, &mut [(&mut bob, Role::Member)]);
    let conv = hub.conversation(&c).expect("cached");
    assert_eq!(conv.kind(), Some(ConvKind::Group));
    assert_eq!(conv.members.len(), 2);

    let (ack, _) = post(&mut hub, &mut bob, &c, "m1", "hello").expect("bob posts");
    assert_eq!(ack.seq, 1);
    let doc = bucket_doc(&c, NOW);
    alice.pull(&hub, &doc);
    let change = alice
        .write(&doc, |d, t| {
            write::react(d, t, NOW, &msg_id("m1"), &acc("alice"), "👍", true)
        })
        .unwrap();
    submit(&mut hub, &alice, &doc, change).expect("alice reacts");
    let change = bob
        .write(&doc, |d, t| {
            write::edit_body(d, t, NOW, &msg_id("m1"), "hello!")
        })
        .unwrap();
    submit(&mut hub, &bob, &doc, change).expect("bob edits his own message");

    let messages = read::read_messages(hub.doc(&doc).expect("doc").doc());
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "hello!");
    assert!(messages[0].edited_at.is_some());
    assert_eq!(
        messages[0].reactions["👍"].keys().next(),
        Some(&acc("alice"))
    );

    // Alice removes Bob; his next message is refused with the reason.
    let change = alice
        .write(&conv_doc(&c), |d, t| {
            write::set_member_status(d, t, NOW, &acc("bob"), MemberStatus::Removed)
        })
        .unwrap();
    submit(&mut hub, &alice, &conv_doc(&c), change).expect("owner removes bob");
    bob.pull(&hub, &conv_doc(&c));
    let rejected = post(&mut hub, &mut bob, &c, "m2", "still here?").expect_err("removed");
    assert_eq!(rejected.code.as_str(), "member_inactive");
}

#[test]
fn resubmitting_an_accepted_change_acks_with_its_seq() {
    let mut hub = confab_core::hub::Hub::new();
    let mut alice = Device::new("alice", 1);
    let c = group(&mut hub, "g1", &mut alice, &mut []);
    let (doc, change) = text_change(&mut alice, &c, "m1", "once", NOW);
    let (first, _) = submit(&mut hub, &alice, &doc, change.clone()).expect("accepted");
    let (again, effects) = submit(&mut hub, &alice, &doc, change).expect("acked again");
    assert_eq!(first, again);
    assert!(effects.is_empty());
    assert_eq!(hub.changes_after(&doc, 0).len(), 1);
}

#[test]
fn concurrent_offline_direct_creation_merges_into_one_conversation() {
    let t = tenant();
    let (a, b) = (acc("alice"), acc("bob"));
    // Two devices, offline, each open the direct conversation and write a first message.
    let (doc_a, create_a) = write::direct_creation_change(&t, &a, &b).expect("alice's side");
    let (doc_b, create_b) = write::direct_creation_change(&t, &b, &a).expect("bob's side");
    assert_eq!(doc_a, doc_b, "one id for the pair, from either side");
    assert_eq!(
        create_a.hash(),
        create_b.hash(),
        "identical creation change"
    );

    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    write::apply_creation(alice.doc(&doc_a), create_a.clone()).unwrap();
    write::apply_creation(bob.doc(&doc_b), create_b.clone()).unwrap();
    let change_a = alice
        .write(&doc_a, |d, tag| {
            write::mark_read(d, tag, NOW, &acc("alice"), &msg_id("x"))
        })
        .unwrap();

    // Merging the two replicas: one conversation, both members visible.
    let mut merged = alice.doc(&doc_a).clone();
    merged.merge(bob.doc(&doc_b)).unwrap();
    let conv = read::read_conversation(&merged, doc_a.conv_id().unwrap().clone());
    assert_eq!(conv.kind(), Some(ConvKind::Direct));
    assert_eq!(
        conv.members.keys().cloned().collect::<Vec<_>>(),
        vec![a.clone(), b.clone()]
    );
    assert!(conv.members.values().all(|m| m.is_active()));

    // The server accepts the creation from whoever comes first and acks the other as a resubmission.
    let mut hub = confab_core::hub::Hub::new();
    let (first, _) = submit(&mut hub, &bob, &doc_b, create_b).expect("bob's creation");
    let (second, _) =
        submit(&mut hub, &alice, &doc_a, create_a).expect("alice's creation: same change");
    assert_eq!(first, second);
    submit(&mut hub, &alice, &doc_a, change_a).expect("alice's own change on top");
    let served = hub.conversation(doc_a.conv_id().unwrap()).unwrap();
    assert_eq!(served.members.len(), 2);
}

#[test]
fn direct_creation_is_only_for_its_pair() {
    let t = tenant();
    let (doc, create) = write::direct_creation_change(&t, &acc("alice"), &acc("bob")).unwrap();
    let mut hub = confab_core::hub::Hub::new();
    let carol = Device::new("carol", 1);
    let err = submit(&mut hub, &carol, &doc, create).expect_err("carol is not in the pair");
    assert_eq!(err.code.as_str(), "not_member");
}

/// A client's encrypted support thread about a resource is another conversation than its
/// plaintext one, created by its own deterministic change (from either party, the same
/// bytes) and by its parties only; the plaintext creation is not its creation.
#[test]
fn an_encrypted_support_thread_is_its_own_deterministic_creation() {
    let t = tenant();
    let link = ResourceLink {
        resource: confab_core::ids::ResourceId::new("flat-7").unwrap(),
        client: acc("carol"),
        owner: acc("alice"),
    };
    let (plain_doc, plain) = write::support_creation_change(&t, &link).unwrap();
    let (doc, create) = write::encrypted_support_creation_change(&t, &link).unwrap();
    assert_ne!(doc, plain_doc);
    assert_eq!(
        create.hash(),
        write::encrypted_support_creation_change(&t, &link)
            .unwrap()
            .1
            .hash(),
        "the same bytes on every device"
    );
    let mut hub = confab_core::hub::Hub::new();
    let mallory = Device::new("mallory", 1);
    let err = submit(&mut hub, &mallory, &doc, create.clone()).expect_err("not a party");
    assert_eq!(err.code.as_str(), "not_member");
    let carol = Device::new("carol", 1);
    submit(&mut hub, &carol, &doc, plain).expect_err("the plaintext creation is not its own");
    let (first, _) = submit(&mut hub, &carol, &doc, create.clone()).expect("the client");
    let alice = Device::new("alice", 1);
    let (again, _) = submit(&mut hub, &alice, &doc, create).expect("the owner: the same");
    assert_eq!(first, again);
    let conv = hub.conversation(doc.conv_id().unwrap()).unwrap();
    assert_eq!(conv.kind(), Some(ConvKind::Support));
    assert!(conv.encrypted());
    assert_eq!(conv.members[&acc("alice")].role, Role::Owner);
    assert!(conv.members[&acc("carol")].is_active());
}

#[test]
fn ids_of_direct_and_support_conversations_cannot_be_taken_by_a_group() {
    let mut hub = confab_core::hub::Hub::new();
    let mut alice = Device::new("alice", 1);
    for id in ["d-0123456789abcdef0123456789abcdef", "s-x"] {
        let c = conv_id(id);
        let spec = ConvFixture::group(acc("alice"), NOW).build();
        let change = alice
            .write(&conv_doc(&c), |d, t| {
                write::create_conversation(d, t, &spec)
            })
            .unwrap();
        let err = submit(&mut hub, &alice, &conv_doc(&c), change).expect_err("reserved id");
        assert_eq!(err.code.as_str(), "invalid_creation");
    }
    group(&mut hub, "plain-id", &mut alice, &mut []);
}

#[test]
fn a_member_who_left_a_direct_conversation_may_come_back_but_nobody_else_joins() {
    let t = tenant();
    let (doc, create) = write::direct_creation_change(&t, &acc("alice"), &acc("bob")).unwrap();
    let mut hub = confab_core::hub::Hub::new();
    let mut alice = Device::new("alice", 1);
    write::apply_creation(alice.doc(&doc), create.clone()).unwrap();
    submit(&mut hub, &alice, &doc, create).expect("created");
    let leave = alice
        .write(&doc, |d, tag| {
            write::set_member_status(d, tag, NOW, &acc("alice"), MemberStatus::Left)
        })
        .unwrap();
    submit(&mut hub, &alice, &doc, leave).expect("alice leaves");
    let back = Member::new(acc("alice"), Role::Member);
    let rejoin = alice
        .write(&doc, |d, tag| write::add_member(d, tag, NOW, &back))
        .unwrap();
    submit(&mut hub, &alice, &doc, rejoin).expect("alice comes back");
    let mut carol = Device::new("carol", 1);
    carol.pull(&hub, &doc);
    let intruder = Member::new(acc("carol"), Role::Member);
    let join = carol
        .write(&doc, |d, tag| write::add_member(d, tag, NOW, &intruder))
        .unwrap();
    let err = submit(&mut hub, &carol, &doc, join).expect_err("carol is not in the pair");
    assert_eq!(err.code.as_str(), "direct_fixed_members");
}

/// The same member archives and reopens: Automerge leaves out a put that does not change the
/// value (`by` stays the same account), and the validator takes it from the state before.
#[test]
fn the_same_member_archives_and_reopens() {
    let mut hub = confab_core::hub::Hub::new();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let c = group(
        &mut hub,
        "g-life",
        &mut alice,
        &mut [(&mut bob, Role::Member)],
    );
    let cd = conv_doc(&c);
    for (state, at) in [
        (Lifecycle::Archived, NOW),
        (Lifecycle::Active, NOW),
        (Lifecycle::Closed, NOW + 1),
    ] {
        let change = alice
            .write(&cd, |d, t| {
                write::set_lifecycle(d, t, at, state, &acc("alice"))
            })
            .unwrap();
        submit(&mut hub, &alice, &cd, change).unwrap_or_else(|e| panic!("{state:?}: {e:?}"));
        assert_eq!(hub.conversation(&c).expect("cached").lifecycle.state, state);
    }
}

/// Account erasure tombstones a run of one part's messages in one change
/// (`write::delete_messages`): the acceptor checks each message of it as if deleted alone,
/// and a run past the ops a message part's change may hold is refused whole.
#[test]
fn a_run_of_tombstones_is_one_change_within_the_ops_limit() {
    let mut hub = confab_core::hub::Hub::new();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let c = group(&mut hub, "g1", &mut alice, &mut [(&mut bob, Role::Member)]);
    let ids: Vec<_> = (0..64).map(|i| msg_id(&format!("b{i}"))).collect();
    for id in &ids {
        post(&mut hub, &mut bob, &c, id.as_str(), "bob wrote this").expect("bob posts");
    }
    let doc = bucket_doc(&c, NOW);
    let mut service = Device::service("privacy-desk");
    service.pull(&hub, &doc);

    let too_many = service
        .write(&doc, |d, t| {
            write::delete_messages(d, t, NOW, &ids, &acc("privacy-desk"))
        })
        .unwrap();
    let refused = submit(&mut hub, &service, &doc, too_many).expect_err("over the limit");
    assert_eq!(refused.code.as_str(), "too_many_ops", "{refused:?}");

    let mut service = Device::service("privacy-desk");
    service.pull(&hub, &doc);
    let run = &ids[..16];
    let change = service
        .write(&doc, |d, t| {
            write::delete_messages(d, t, NOW, run, &acc("privacy-desk"))
        })
        .unwrap();
    let (_, effects) = submit(&mut hub, &service, &doc, change).expect("a run of 16 accepted");
    assert_eq!(effects.len(), 16, "{effects:?}");
    let messages = read::read_messages(hub.doc(&doc).expect("doc").doc());
    for m in &messages {
        let in_run = run.contains(&m.id);
        assert_eq!(m.deleted_at.is_some(), in_run, "{}", m.id);
        assert_eq!(m.body.is_empty(), in_run, "{}", m.id);
    }
}
