//! Devices that were never added join by saying they wait (docs/E2EE.md, "Joining"): a
//! member added before their first sign-in, and a new device of an account whose only other
//! device is away, are committed in by another member's device, and read what follows.

use super::*;
use confab_core::client::{Unreadable, JOIN_STEP_MS, WAIT_AGAIN_MS};

/// alice's encrypted group "secret" with bob and dan, who has never signed in: alice's and
/// bob's devices follow it, dan's (peer 2) has never connected.
fn without_dan(wire: &mut Wire) -> Vec<Peer> {
    let mut peers = vec![phone("alice"), phone("bob"), phone("dan")];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    wire.intent(&mut peers, 0, create(true, &["bob", "dan"]));
    follow(wire, &mut peers, 0);
    follow(wire, &mut peers, 1);
    peers
}

#[test]
fn a_member_added_before_their_first_sign_in_reads_once_signed_in() {
    let mut wire = Wire::new();
    // dan has never connected: no device of his is in the directory.
    let mut peers = vec![phone("alice"), phone("bob"), phone("dan")];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    let id = wire.intent(&mut peers, 0, create(true, &["bob", "dan"]));
    assert_eq!(peers[0].engine.status(id), None);
    follow(&mut wire, &mut peers, 0);
    follow(&mut wire, &mut peers, 1);
    send(&mut wire, &mut peers, 0, "m1", "before dan");
    let before = accepted_epoch(&wire);

    // dan signs in and opens the conversation: his device says it waits, alice's adds it.
    follow(&mut wire, &mut peers, 2);
    assert_eq!(accepted_epoch(&wire), before + 1, "one commit added dan");
    assert_eq!(epochs(&peers), vec![Some(before + 1); 3]);
    send(&mut wire, &mut peers, 0, "m2", "hello dan");
    assert_eq!(shown(&peers[2], "m2"), Ok("hello dan".into()));
    assert_eq!(unreadable(&peers[2], "m1"), Some(Unreadable::BeforeJoin));
    assert!(Unreadable::BeforeJoin.is_permanent());
}

#[test]
fn a_new_device_of_a_one_device_account_is_added_by_another_member() {
    let mut wire = Wire::new();
    let (mut peers, _) = group_with_today_open(&mut wire, &["alice", "bob"]);
    // bob's phone is gone; his new tablet starts with nothing, the phone never online again.
    offline(&mut wire, &mut peers, 1);
    peers.push(device_of(config("bob"), "tablet"));
    let before = accepted_epoch(&wire);
    follow(&mut wire, &mut peers, 2);
    assert_eq!(accepted_epoch(&wire), before + 1);
    assert_eq!(
        peers[2].engine.group_epoch(&conv("secret")),
        Some(before + 1)
    );
    send(&mut wire, &mut peers, 0, "m1", "welcome back bob");
    assert_eq!(shown(&peers[2], "m1"), Ok("welcome back bob".into()));
}

#[test]
fn a_waiting_device_is_added_by_a_member_who_comes_later() {
    let mut wire = Wire::new();
    let mut peers = without_dan(&mut wire);
    send(&mut wire, &mut peers, 0, "m0", "before dan");
    offline(&mut wire, &mut peers, 0);
    offline(&mut wire, &mut peers, 1);
    let before = accepted_epoch(&wire);
    // dan waits while nobody else is online; he goes away again.
    follow(&mut wire, &mut peers, 2);
    assert_eq!(accepted_epoch(&wire), before);
    // Not "not opened yet" but what it waits for, until it is known never to open.
    assert_eq!(unreadable(&peers[2], "m0"), Some(Unreadable::WaitingToJoin));
    assert!(!Unreadable::WaitingToJoin.is_permanent());
    offline(&mut wire, &mut peers, 2);
    // bob (not the group's head) comes back: the kept signal reaches him and, after his
    // place's wait, his device adds dan's.
    follow(&mut wire, &mut peers, 1);
    assert_eq!(
        accepted_epoch(&wire),
        before,
        "bob waits for the head first"
    );
    // bob's place is 1: the host is woken for it, and one step's wait is enough.
    let due = peers[1]
        .engine
        .next_wakeup()
        .expect("a wakeup for the join");
    assert!(due <= wire.now + JOIN_STEP_MS, "{due}");
    peers[1].engine.tick(wire.now + JOIN_STEP_MS);
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(&wire), before + 1);
    follow(&mut wire, &mut peers, 2);
    assert_eq!(
        peers[2].engine.group_epoch(&conv("secret")),
        Some(before + 1)
    );
    assert_eq!(unreadable(&peers[2], "m0"), Some(Unreadable::BeforeJoin));
}

#[test]
fn a_waiting_signal_refused_for_now_is_said_again_at_the_resend_round() {
    let mut wire = Wire::new();
    let mut peers = vec![phone("alice"), phone("bob"), phone("dan")];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    wire.intent(&mut peers, 0, create(true, &["bob", "dan"]));
    follow(&mut wire, &mut peers, 0);
    let before = accepted_epoch(&wire);
    // The server cannot take dan's signal (its database is down): nobody hears it.
    wire.signals_down = true;
    follow(&mut wire, &mut peers, 2);
    assert_eq!(accepted_epoch(&wire), before);
    assert!(wire.waiting.is_empty());
    // Back up: dan's engine says it again at its next resend round, and alice adds it.
    wire.signals_down = false;
    wire.now += 60_000;
    peers[2].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(&wire), before + 1);
    assert_eq!(
        peers[2].engine.group_epoch(&conv("secret")),
        Some(before + 1)
    );
}

/// Every `claim_key_packages` alice's device (peer 0) sent so far.
fn claims_of_alice(wire: &Wire) -> usize {
    wire.claimers.iter().filter(|&&i| i == 0).count()
}

#[test]
fn a_flood_of_waiting_signals_costs_one_claim_per_step() {
    let mut wire = Wire::new();
    let (mut peers, _) = group_with_today_open(&mut wire, &["alice", "bob"]);
    let cd = DocId::conv(&tenant(), &conv("secret"));
    let before = accepted_epoch(&wire);
    let claims_before = claims_of_alice(&wire);
    // bob's connections say, ten times a second for 30 s, that devices of his wait: names
    // the directory never heard of, so no package ever comes for them.
    let start = wire.now;
    for i in 0..300 {
        wire.now = start + i * 100;
        peers[0].inbox.push(ServerFrame::Signal {
            doc: cd.to_string(),
            from: "bob".into(),
            kind: SignalKind::DeviceWaiting,
            data: Some(format!("ghost{i}")),
        });
        peers[0].engine.tick(wire.now);
        wire.pump(&mut peers);
    }
    let claims = claims_of_alice(&wire) - claims_before;
    let steps = (30_000 / JOIN_STEP_MS) as usize;
    assert!(
        (1..=steps + 1).contains(&claims),
        "{claims} claims for 300 signals in 30 s (one per {JOIN_STEP_MS} ms: {steps})"
    );
    assert_eq!(accepted_epoch(&wire), before, "nothing to add, no commit");

    // The flood does not shut out a device that really waits: bob's tablet is added.
    peers.push(device_of(config("bob"), "tablet"));
    follow(&mut wire, &mut peers, 2);
    wire.now += JOIN_STEP_MS;
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(&wire), before + 1, "the tablet is added");
    assert_eq!(
        peers[2].engine.group_epoch(&conv("secret")),
        Some(before + 1)
    );
}

#[test]
fn a_device_still_waiting_says_so_again_for_members_who_missed_it() {
    let mut wire = Wire::new();
    let mut peers = without_dan(&mut wire);
    offline(&mut wire, &mut peers, 0);
    offline(&mut wire, &mut peers, 1);
    let before = accepted_epoch(&wire);
    // dan waits while nobody else is online, and stays online.
    follow(&mut wire, &mut peers, 2);
    // The server no longer holds his signal (its unit unloaded; in a cluster, alice's node
    // never had it): alice subscribes and hears nothing.
    wire.waiting.clear();
    follow(&mut wire, &mut peers, 0);
    assert_eq!(accepted_epoch(&wire), before);
    // dan's engine says it again when its wait runs out, and alice adds him.
    let again = peers[2]
        .engine
        .next_wakeup()
        .expect("a wakeup to say it again");
    assert!(again <= wire.now + WAIT_AGAIN_MS, "{again}");
    wire.now += WAIT_AGAIN_MS;
    peers[2].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(&wire), before + 1);
    assert_eq!(
        peers[2].engine.group_epoch(&conv("secret")),
        Some(before + 1)
    );
    // In the group now: nothing more to say.
    wire.now += WAIT_AGAIN_MS;
    peers[2].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(&wire), before + 1);
    assert!(peers[2]
        .engine
        .next_wakeup()
        .is_none_or(|at| at > wire.now + WAIT_AGAIN_MS));
}
