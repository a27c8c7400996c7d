//! The directory refuses for now (`unavailable`: the server's database down): what waits for
//! it keeps waiting and is asked again at the engine's resend round, after the server's
//! `retry_after_ms`, on the same connection; nothing ends rejected for the outage.

use super::*;

#[test]
fn an_add_whose_claim_is_refused_for_now_ends_accepted() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob", "carol"]);
    wire.directory_down = true;
    let id = wire.intent(&mut peers, 0, add("carol"));
    let waiting = peers[0].engine.status(id);
    assert!(
        matches!(&waiting, Some(s) if !matches!(s, IntentStatus::Rejected { .. })),
        "the add waits: {waiting:?}"
    );
    assert_eq!(accepted_epoch(&wire), 1);

    // Still down at the first round: asked again, refused again, still waiting.
    let round = peers[0].engine.next_wakeup().expect("a round is set");
    assert!(round > wire.now, "after retry_after_ms");
    wire.now = round;
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert!(!matches!(
        peers[0].engine.status(id),
        None | Some(IntentStatus::Rejected { .. })
    ));

    wire.directory_down = false;
    wire.now = peers[0].engine.next_wakeup().expect("another round");
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "carol is added");
    assert_eq!(accepted_epoch(&wire), 2);
}

#[test]
fn key_packages_counted_while_down_are_topped_up_at_the_round() {
    let mut wire = Wire::new();
    wire.directory_down = true;
    let mut peers = vec![phone("alice")];
    wire.connect(&mut peers, 0);
    assert!(wire.packages.is_empty());
    wire.directory_down = false;
    wire.now = peers[0].engine.next_wakeup().expect("a round is set");
    peers[0].engine.tick(wire.now);
    wire.pump(&mut peers);
    let held = wire.packages.values().map(Vec::len).sum::<usize>() as u64;
    assert_eq!(held, KEY_PACKAGES_TARGET);
}
