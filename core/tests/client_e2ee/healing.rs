//! Trees that stay cheap (docs/E2EE.md, "Trees that stay cheap"): every commit carries its
//! committer's update path; a device with blanks on its path commits that path after its
//! next send, once; and the group's committer is the device whose path costs the fewest
//! encryptions.

use super::*;

const NAMES: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil",
];

/// All of `NAMES` in "secret", made by alice adding everyone in one commit, today's part
/// open on every device.
fn bulk(wire: &mut Wire) -> Vec<Peer> {
    let mut peers = group_made_with(wire, &NAMES, &NAMES[1..]);
    let bucket = peers[0].engine.bucket_doc(&conv("secret"), wire.now);
    for peer in peers.iter_mut() {
        peer.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    peers
}

/// Peer `i`'s own path cost, as its tree holds it.
fn own_cost(peers: &[Peer], i: usize) -> confab_core::e2ee::tree::PathCost {
    let me = peers[i].engine.device_identity().unwrap().clone();
    peers[i]
        .engine
        .path_costs(&conv("secret"))
        .unwrap()
        .into_iter()
        .find(|(d, _)| *d == me)
        .unwrap()
        .1
}

#[test]
fn a_device_heals_its_path_after_its_first_send_and_only_then() {
    let mut wire = Wire::new();
    let mut peers = bulk(&mut wire);
    let start = accepted_epoch(&wire);
    // The creation's commit carried alice's path: hers is filled, the others' are not.
    assert_eq!(own_cost(&peers, 0).blanks, 0);
    let blank: Vec<usize> = (1..peers.len())
        .filter(|&i| own_cost(&peers, i).blanks > 0)
        .collect();
    assert!(blank.len() >= 8, "most paths are blank: {blank:?}");
    // Before anyone heals, a commit by any device but alice seals to nearly everyone.
    let n = peers.len() as u32;
    assert!(own_cost(&peers, 15).encryptions >= n / 2);

    // bob's path is alice's but for his leaf: filled already, his send commits nothing.
    assert_eq!(own_cost(&peers, 1).blanks, 0);
    send(&mut wire, &mut peers, 1, "m0", "from bob");
    assert_eq!(accepted_epoch(&wire), start);
    // sybil's is blank: the message, then her update path, one commit.
    let sybil = 15;
    assert!(blank.contains(&sybil));
    send(&mut wire, &mut peers, sybil, "m1", "from sybil");
    assert_eq!(accepted_epoch(&wire), start + 1);
    assert_eq!(own_cost(&peers, sybil).blanks, 0);
    // Sent before the commit: everyone reads it, and follows the commit.
    for (i, peer) in peers.iter().enumerate().take(sybil) {
        assert_eq!(shown(peer, "m1"), Ok("from sybil".into()), "peer {i}");
        assert_eq!(peer.engine.group_epoch(&conv("secret")), Some(start + 1));
    }
    // sybil again: nothing left to heal, no commit.
    send(&mut wire, &mut peers, sybil, "m2", "sybil again");
    assert_eq!(accepted_epoch(&wire), start + 1);

    // Everyone sends once: at most one commit each, and then every path is filled.
    for i in 0..peers.len() {
        send(&mut wire, &mut peers, i, &format!("r{i}"), "hello");
    }
    let healed = accepted_epoch(&wire);
    assert!(
        healed - start <= blank.len() as u64,
        "one commit per blank path at most"
    );
    let log2n = n.ilog2();
    for i in 0..peers.len() {
        let cost = own_cost(&peers, i);
        assert_eq!(cost.blanks, 0, "peer {i}");
        assert!(
            cost.encryptions <= log2n,
            "peer {i}'s commit seals to {} nodes, not O(log n)",
            cost.encryptions
        );
    }
    // Every message reads everywhere.
    for (i, peer) in peers.iter().enumerate() {
        for k in 0..peers.len() {
            if k != i {
                assert_eq!(shown(peer, &format!("r{k}")), Ok("hello".into()));
            }
        }
    }
    assert!(
        !wire.rejects.iter().any(|c| c.starts_with("mls_")),
        "{:?}",
        wire.rejects
    );
}

#[test]
fn the_committer_is_the_device_whose_path_costs_least_on_every_device() {
    let mut wire = Wire::new();
    let mut peers = bulk(&mut wire);
    // Before any heal only alice's path is filled: the cheapest committer is in the half
    // of the tree she is not in, where her path's top node stands for her whole half.
    let first = peers[0].engine.committers(&conv("secret"));
    assert_eq!(first.len(), peers.len());
    assert_eq!(first[0].account.as_str(), "ivan");
    // Every device orders the committers alike, from the same tree.
    for peer in &peers {
        assert_eq!(peer.engine.committers(&conv("secret")), first);
    }
    // Costs never decrease down the order.
    let costs = peers[3].engine.path_costs(&conv("secret")).unwrap();
    let cost_of = |d: &confab_core::e2ee::DeviceIdentity| {
        costs.iter().find(|(c, _)| c == d).unwrap().1.encryptions
    };
    assert!(first.windows(2).all(|w| cost_of(&w[0]) <= cost_of(&w[1])));
    // After a few heals, alice's is no longer the only cheap path, and the order follows.
    for i in [5, 9, 13] {
        send(&mut wire, &mut peers, i, &format!("h{i}"), "heal");
    }
    let after = peers[0].engine.committers(&conv("secret"));
    for peer in &peers {
        assert_eq!(peer.engine.committers(&conv("secret")), after);
    }
    let costs = peers[0].engine.path_costs(&conv("secret")).unwrap();
    let best = costs.iter().map(|(_, c)| c.encryptions).min().unwrap();
    let head = costs.iter().find(|(d, _)| *d == after[0]).unwrap().1;
    assert_eq!(head.encryptions, best);
}

#[test]
fn devices_that_heal_at_once_settle_on_one_commit_per_epoch() {
    let mut wire = Wire::new();
    let mut peers = bulk(&mut wire);
    let start = accepted_epoch(&wire);
    // Four devices with blank paths send together, before any answer: each then heals,
    // four commits on one epoch; one wins, the others are made again on the next epoch
    // or find nothing left to fill.
    let senders = [3usize, 6, 10, 14];
    let mut ids = Vec::new();
    for &i in &senders {
        assert!(own_cost(&peers, i).blanks > 0, "peer {i} has blanks");
        let m = message(&peers[i], &conv("secret"), &format!("t{i}"), "together");
        ids.push((i, peers[i].engine.intent(m, wire.now).unwrap()));
    }
    wire.pump(&mut peers);
    for (i, id) in ids {
        assert_eq!(peers[i].engine.status(id), None, "peer {i}'s send");
        assert_eq!(own_cost(&peers, i).blanks, 0, "peer {i} healed");
    }
    let moved = accepted_epoch(&wire) - start;
    assert!((1..=4).contains(&moved), "{moved} commits");
    for (i, peer) in peers.iter().enumerate() {
        for &k in &senders {
            if k != i {
                assert_eq!(shown(peer, &format!("t{k}")), Ok("together".into()));
            }
        }
    }
    let mls: Vec<&String> = wire
        .rejects
        .iter()
        .filter(|c| c.starts_with("mls_") && *c != "mls_stale_epoch")
        .collect();
    assert!(mls.is_empty(), "{mls:?}");
}

#[test]
fn a_removal_blanks_paths_that_heal_on_their_next_send() {
    let mut wire = Wire::new();
    let mut peers = bulk(&mut wire);
    for i in 0..peers.len() {
        send(&mut wire, &mut peers, i, &format!("r{i}"), "hello");
    }
    assert!((0..peers.len()).all(|i| own_cost(&peers, i).blanks == 0));
    // alice removes judy: her commit fills alice's path and blanks judy's.
    let id = wire.intent(&mut peers, 0, remove("judy"));
    assert_eq!(peers[0].engine.status(id), None);
    let blanked: Vec<usize> = (0..peers.len())
        .filter(|&i| NAMES[i] != "judy" && own_cost(&peers, i).blanks > 0)
        .collect();
    assert!(!blanked.is_empty(), "a removal leaves blanks");
    assert!(!blanked.contains(&0), "the committer's path is filled");
    let before = accepted_epoch(&wire);
    for &i in &blanked {
        send(&mut wire, &mut peers, i, &format!("b{i}"), "after");
    }
    assert!(accepted_epoch(&wire) - before <= blanked.len() as u64);
    assert!(blanked.iter().all(|&i| own_cost(&peers, i).blanks == 0));
    // judy reads none of it.
    let judy = NAMES.iter().position(|n| *n == "judy").unwrap();
    for &i in &blanked {
        assert!(shown(&peers[judy], &format!("b{i}")).is_err());
    }
}
