//! Nobody's leaving stops anyone's sending: a member who leaves writes no commit, so the
//! devices commit the owed removal themselves (the group's committer at once, else the next
//! sender ahead of its send), and a sealed write refused for its epoch or for a pending
//! removal is sealed again on the current epoch under its id.

use super::*;
use confab_core::client::JOIN_STEP_MS;

fn leave() -> Intent {
    Intent::Leave {
        conv: conv("secret"),
    }
}

/// alice (the creator), bob and carol in "secret", today's part open.
fn three(wire: &mut Wire) -> (Vec<Peer>, DocId) {
    let (mut peers, bucket) = group_with_today_open(wire, &["alice", "bob", "carol"]);
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(id), None, "carol is added");
    wire.pump(&mut peers);
    (peers, bucket)
}

fn no_mls_rejects(wire: &Wire) {
    let mls: Vec<&String> = wire
        .rejects
        .iter()
        .filter(|c| c.starts_with("mls_"))
        .collect();
    assert!(mls.is_empty(), "{mls:?}");
}

#[test]
fn the_groups_committer_commits_a_departure_once_and_sends_go_on() {
    let mut wire = Wire::new();
    let (mut peers, _) = three(&mut wire);
    let before = accepted_epoch(&wire);
    let id = wire.intent(&mut peers, 1, leave());
    assert_eq!(peers[1].engine.status(id), None, "bob's leave is accepted");
    // The group's committer committed bob's removal on seeing the leave, alone.
    assert_eq!(accepted_epoch(&wire), before + 1);
    assert_eq!(
        epochs(&peers),
        vec![Some(before + 1), None, Some(before + 1)]
    );
    send(&mut wire, &mut peers, 0, "m1", "after bob");
    send(&mut wire, &mut peers, 2, "m2", "carol too");
    assert_eq!(shown(&peers[2], "m1"), Ok("after bob".into()));
    assert_eq!(shown(&peers[0], "m2"), Ok("carol too".into()));
    assert_eq!(
        unreadable(&peers[1], "m1"),
        Some(confab_core::client::Unreadable::NotMember),
        "bob reads nothing after, and is told it never opens"
    );
    no_mls_rejects(&wire);
}

#[test]
fn with_the_committer_away_a_plain_members_send_pays_the_removal_first() {
    let mut wire = Wire::new();
    let (mut peers, _) = three(&mut wire);
    // The group's committer (alice's or carol's device, whichever's path is cheaper) goes
    // away; the other stays.
    let committer = peers[0]
        .engine
        .committers(&conv("secret"))
        .into_iter()
        .find(|d| d.account.as_str() != "bob")
        .expect("a committer");
    let (head, sender) = if committer.account.as_str() == "alice" {
        (0, 2)
    } else {
        (2, 0)
    };
    offline(&mut wire, &mut peers, head);
    let before = accepted_epoch(&wire);
    let id = wire.intent(&mut peers, 1, leave());
    assert_eq!(peers[1].engine.status(id), None);
    // Nobody online heads the group: the removal is still owed.
    assert_eq!(accepted_epoch(&wire), before);
    // The other member sends: its engine commits the removal, then seals after it.
    send(&mut wire, &mut peers, sender, "m1", "bob left");
    assert_eq!(accepted_epoch(&wire), before + 1);
    assert_eq!(
        peers[sender].engine.group_epoch(&conv("secret")),
        Some(before + 1)
    );
    assert!(
        shown(&peers[1], "m1").is_err(),
        "sealed after bob's removal"
    );
    no_mls_rejects(&wire);
    // The committer comes back, follows the commit and reads it.
    wire.connect(&mut peers, head);
    assert_eq!(shown(&peers[head], "m1"), Ok("bob left".into()));
}

#[test]
fn with_the_committer_away_the_next_in_order_commits_a_step_later() {
    let mut wire = Wire::new();
    let (mut peers, _) = three(&mut wire);
    let order: Vec<usize> = peers[0]
        .engine
        .committers(&conv("secret"))
        .iter()
        .filter(|d| d.account.as_str() != "bob")
        .map(|d| if d.account.as_str() == "alice" { 0 } else { 2 })
        .collect();
    let (head, next) = (order[0], order[1]);
    offline(&mut wire, &mut peers, head);
    let before = accepted_epoch(&wire);
    wire.intent(&mut peers, 1, leave());
    assert_eq!(accepted_epoch(&wire), before, "owed");
    let seen = wire.now;
    // Not before its place's wait (one step: it is second)...
    wire.now = seen + JOIN_STEP_MS - 1;
    peers[next].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(&wire), before);
    assert!(peers[next]
        .engine
        .next_wakeup()
        .is_some_and(|at| at <= seen + JOIN_STEP_MS));
    // ...then it commits the removal, with nobody sending.
    wire.now = seen + JOIN_STEP_MS;
    peers[next].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(&wire), before + 1);
    send(&mut wire, &mut peers, next, "m1", "bob left");
    assert!(shown(&peers[1], "m1").is_err(), "bob cannot read it");
    no_mls_rejects(&wire);
}

#[test]
fn a_send_written_before_the_departure_was_seen_is_sealed_again() {
    let mut wire = Wire::new();
    let (mut peers, _) = three(&mut wire);
    // carol writes offline, in the epoch bob is still in; alice is away too.
    offline(&mut wire, &mut peers, 2);
    let m1 = message(&peers[2], &conv("secret"), "m1", "hi all");
    let written = peers[2].engine.intent(m1, wire.now).unwrap();
    wire.pump(&mut peers);
    offline(&mut wire, &mut peers, 0);
    let before = accepted_epoch(&wire);
    wire.intent(&mut peers, 1, leave());
    // carol reconnects: her send, sealed before the leave, meets the owed removal.
    wire.connect(&mut peers, 2);
    wire.pump(&mut peers);
    assert_eq!(
        peers[2].engine.status(written),
        None,
        "accepted under its id"
    );
    assert_eq!(
        accepted_epoch(&wire),
        before + 1,
        "one commit paid the removal"
    );
    assert!(shown(&peers[1], "m1").is_err(), "bob cannot read it");
    wire.connect(&mut peers, 0);
    assert_eq!(shown(&peers[0], "m1"), Ok("hi all".into()));
    // Its first seal was refused for the owed removal, then sealed again.
    assert_eq!(wire.rejects, ["mls_removal_pending"]);
}

#[test]
fn sends_written_offline_across_many_epochs_end_accepted_in_order() {
    let mut wire = Wire::new();
    let (mut peers, _) = three(&mut wire);
    offline(&mut wire, &mut peers, 1);
    let ids: Vec<u64> = (1..=3)
        .map(|k| {
            let m = message(
                &peers[1],
                &conv("secret"),
                &format!("m{k}"),
                &format!("b{k}"),
            );
            peers[1].engine.intent(m, wire.now).unwrap()
        })
        .collect();
    wire.pump(&mut peers);
    // The group moves 24 epochs, well past the server's window for a send.
    for _ in 0..12 {
        for intent in [remove("carol"), add("carol")] {
            let id = wire.intent(&mut peers, 0, intent);
            assert_eq!(peers[0].engine.status(id), None);
        }
    }
    wire.connect(&mut peers, 1);
    wire.pump(&mut peers);
    for id in &ids {
        assert_eq!(
            peers[1].engine.status(*id),
            None,
            "intent {id} ends accepted"
        );
    }
    // Sealed again on the current epoch: the others read them, in the order written.
    for k in 1..=3 {
        assert_eq!(shown(&peers[0], &format!("m{k}")), Ok(format!("b{k}")));
        assert_eq!(shown(&peers[2], &format!("m{k}")), Ok(format!("b{k}")));
    }
    let order: Vec<String> = peers[0]
        .engine
        .timeline(&conv("secret"))
        .into_iter()
        .map(|i| i.message.id.to_string())
        .filter(|id| id.starts_with('m'))
        .collect();
    assert_eq!(order, ["m1", "m2", "m3"]);
}
