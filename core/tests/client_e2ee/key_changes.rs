//! Key-change notices (docs/E2EE.md, "Key changes in the timeline"): each member's device
//! derives them from the commits it follows, its own included, and places each before the
//! same message; a device that joins later shows none from before, a new group none at all,
//! and a restart keeps them.

use super::*;
use confab_core::client::{KeyChange, KeyNotice, Verification};

fn notices(peer: &Peer) -> Vec<KeyNotice> {
    peer.engine.key_changes(&conv("secret"))
}

fn notice(change: KeyChange, before: Option<&str>) -> KeyNotice {
    KeyNotice {
        change,
        before: before.map(|m| MessageId::new(m).unwrap()),
    }
}

fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

/// alice, bob and carol in "secret" (today's part open everywhere), "m1" sent: the
/// peers and the part.
fn three(wire: &mut Wire) -> (Vec<Peer>, DocId) {
    let (mut peers, bucket) = group_with_today_open(wire, &["alice", "bob", "carol"]);
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(id), None);
    send(wire, &mut peers, 0, "m1", "before the tablet");
    (peers, bucket)
}

#[test]
fn a_new_device_of_bob_is_told_at_the_same_place_on_every_device() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = three(&mut wire);
    // Accounts joining (bob at the creation, carol added) bring no notice.
    for peer in &peers {
        assert_eq!(notices(peer), Vec::new());
    }
    let safety = peers[0].engine.safety_number(&conv("secret"), &acc("bob"));
    assert_eq!(
        safety,
        peers[1]
            .engine
            .safety_number(&conv("secret"), &acc("alice"))
    );

    // bob signs in on a tablet: a member's device commits it in.
    peers.push(device_of(config("bob"), "tablet"));
    let before = accepted_epoch(&wire);
    follow(&mut wire, &mut peers, 3);
    let added = before + 1;
    assert_eq!(accepted_epoch(&wire), added, "one commit added the tablet");
    let change = KeyChange::DeviceAdded {
        account: acc("bob"),
        device: dev("tablet"),
        epoch: added,
    };
    assert_eq!(change.words(), "bob added a device (tablet)");
    // Nothing sealed after it yet: it stands after every message, on every member's device
    // (the committer's too); the tablet joined after it and shows none.
    for peer in &peers[..3] {
        assert_eq!(notices(peer), vec![notice(change.clone(), None)]);
    }
    assert_eq!(notices(&peers[3]), Vec::new());

    // The first message sealed after it is the one it stands before, everywhere.
    send(&mut wire, &mut peers, 2, "m2", "hello tablet");
    for peer in &peers[..3] {
        assert_eq!(notices(peer), vec![notice(change.clone(), Some("m2"))]);
    }
    // The safety number changed with bob's devices, alike on both sides.
    let now = peers[0].engine.safety_number(&conv("secret"), &acc("bob"));
    assert_ne!(now, safety);
    assert_eq!(
        now,
        peers[1]
            .engine
            .safety_number(&conv("secret"), &acc("alice"))
    );

    // A restart keeps them.
    let alice = restored(&peers[0], &bucket);
    assert_eq!(
        alice.engine.key_changes(&conv("secret")),
        vec![notice(change, Some("m2"))]
    );
}

#[test]
fn a_removed_device_is_told_on_every_device_and_the_committers() {
    let mut wire = Wire::new();
    let (mut peers, _) = three(&mut wire);
    peers.push(device_of(config("bob"), "tablet"));
    follow(&mut wire, &mut peers, 3);
    let added = accepted_epoch(&wire);

    // bob's phone removes the tablet from the directory, then commits it out of the group.
    offline(&mut wire, &mut peers, 3);
    peers[1].engine.remove_device("tablet").unwrap();
    wire.pump(&mut peers);
    let removed = added + 1;
    assert_eq!(
        accepted_epoch(&wire),
        removed,
        "one commit removed the tablet"
    );
    send(&mut wire, &mut peers, 0, "m2", "after the tablet");
    let expected = vec![
        notice(
            KeyChange::DeviceAdded {
                account: acc("bob"),
                device: dev("tablet"),
                epoch: added,
            },
            Some("m2"),
        ),
        notice(
            KeyChange::DeviceRemoved {
                account: acc("bob"),
                device: dev("tablet"),
                epoch: removed,
            },
            Some("m2"),
        ),
    ];
    assert_eq!(
        expected[1].change.words(),
        "bob's device tablet was removed"
    );
    for peer in &peers[..3] {
        assert_eq!(notices(peer), expected);
    }
}

#[test]
fn a_new_group_of_a_two_device_account_brings_no_notice() {
    let mut wire = Wire::new();
    let mut peers = vec![
        phone("alice"),
        device_of(config("alice"), "laptop"),
        phone("bob"),
    ];
    for i in 0..peers.len() {
        wire.connect(&mut peers, i);
    }
    // The creation's commit adds alice's laptop and bob's phone to alice's phone's group.
    wire.intent(&mut peers, 0, create(true, &["bob"]));
    for i in 0..peers.len() {
        follow(&mut wire, &mut peers, i);
    }
    assert_eq!(epochs(&peers), vec![Some(1); 3]);
    for peer in &peers {
        assert_eq!(notices(peer), Vec::new());
    }
}

#[test]
fn a_verified_contact_reads_changed_when_its_devices_change_until_marked_again() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = three(&mut wire);
    let bob = acc("bob");
    assert_eq!(peers[0].engine.verification(&bob), Verification::Unverified);
    // Not for this account, nor for an account no group holds.
    assert!(!peers[0].engine.mark_verified(&acc("alice")));
    assert!(!peers[0].engine.mark_verified(&acc("mallory")));
    assert!(peers[0].engine.mark_verified(&bob));
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.verification(&bob), Verification::Verified);
    // carol's verification of bob is her own.
    assert_eq!(peers[2].engine.verification(&bob), Verification::Unverified);

    // bob signs in on a tablet: alice's device follows the commit and flags bob.
    peers.push(device_of(config("bob"), "tablet"));
    follow(&mut wire, &mut peers, 3);
    assert_eq!(peers[0].engine.verification(&bob), Verification::Changed);
    // A restart keeps the mark and the flag.
    let restarted = restored(&peers[0], &bucket);
    assert_eq!(restarted.engine.verification(&bob), Verification::Changed);

    // alice compares again and marks bob: verified with the tablet, and that survives a
    // restart.
    assert!(peers[0].engine.mark_verified(&bob));
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.verification(&bob), Verification::Verified);
    let restarted = restored(&peers[0], &bucket);
    assert_eq!(restarted.engine.verification(&bob), Verification::Verified);

    // The tablet is removed: changed again. Unmarking reads unverified.
    offline(&mut wire, &mut peers, 3);
    peers[1].engine.remove_device("tablet").unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.verification(&bob), Verification::Changed);
    peers[0].engine.unmark_verified(&bob);
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.verification(&bob), Verification::Unverified);
    let restarted = restored(&peers[0], &bucket);
    assert_eq!(
        restarted.engine.verification(&bob),
        Verification::Unverified
    );
}
