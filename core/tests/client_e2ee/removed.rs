//! A device removed from the directory leaves every group it is in at that group's next
//! commit, whoever makes it: other accounts' devices learn the removal from the directory
//! when they connect, the group's committer commits it, a send commits it first, and a commit
//! that did not know of it is refused, the directory asked again, and the commit made again
//! with the removal.

use confab_core::e2ee::DeviceIdentity;

use super::*;

fn tablet() -> DeviceIdentity {
    DeviceIdentity::new(tenant(), acc("bob"), DeviceId::new("tablet").unwrap())
}

/// alice (the group's committer: her path costs least), bob's phone, carol and bob's tablet (added once it follows) in
/// "secret", today's part open on every device.
fn with_tablet(wire: &mut Wire) -> Vec<Peer> {
    let (mut peers, _) = group_with_today_open(wire, &["alice", "bob", "carol"]);
    wire.intent(&mut peers, 0, add("carol"));
    peers.push(device_of(config("bob"), "tablet"));
    follow(wire, &mut peers, 3);
    let devices = peers[0].engine.group_devices(&conv("secret")).unwrap();
    assert!(devices.contains(&tablet()), "{devices:?}");
    peers
}

#[test]
fn the_committer_commits_another_accounts_removed_device_when_it_connects() {
    let mut wire = Wire::new();
    let mut peers = with_tablet(&mut wire);
    // bob's phone is away; his tablet is removed from the directory.
    offline(&mut wire, &mut peers, 1);
    assert!(wire.hub.remove_device(&tablet()));
    let before = accepted_epoch(&wire);
    // alice's device connects again: it lists bob's devices and commits the removal.
    offline(&mut wire, &mut peers, 0);
    wire.connect(&mut peers, 0);
    assert_eq!(accepted_epoch(&wire), before + 1, "one commit");
    let devices = peers[0].engine.group_devices(&conv("secret")).unwrap();
    assert!(!devices.contains(&tablet()), "{devices:?}");
    send(&mut wire, &mut peers, 0, "m1", "without the tablet");
    assert!(shown(&peers[3], "m1").is_err(), "the tablet cannot read m1");
    assert_eq!(shown(&peers[2], "m1"), Ok("without the tablet".into()));
    wire.connect(&mut peers, 1);
    assert_eq!(shown(&peers[1], "m1"), Ok("without the tablet".into()));
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);
}

#[test]
fn with_the_committer_away_a_plain_members_send_commits_the_removal_first() {
    let mut wire = Wire::new();
    let mut peers = with_tablet(&mut wire);
    offline(&mut wire, &mut peers, 0);
    offline(&mut wire, &mut peers, 1);
    assert!(wire.hub.remove_device(&tablet()));
    let before = accepted_epoch(&wire);
    // carol connects again: she learns of the removal but is not the group's committer.
    offline(&mut wire, &mut peers, 2);
    wire.connect(&mut peers, 2);
    assert_eq!(
        accepted_epoch(&wire),
        before,
        "carol leaves it to the committer"
    );
    // Her send commits it first, then seals in the epoch after it.
    send(&mut wire, &mut peers, 2, "m1", "carol after the tablet");
    assert_eq!(accepted_epoch(&wire), before + 1);
    assert!(shown(&peers[3], "m1").is_err(), "the tablet cannot read m1");
    wire.connect(&mut peers, 0);
    assert_eq!(shown(&peers[0], "m1"), Ok("carol after the tablet".into()));
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);
}

#[test]
fn a_commit_that_did_not_know_of_the_removal_is_made_again_once_the_directory_answers() {
    let mut wire = Wire::new();
    let mut peers = with_tablet(&mut wire);
    offline(&mut wire, &mut peers, 1);
    // Removed while alice is online: nothing tells her yet.
    assert!(wire.hub.remove_device(&tablet()));
    let before = accepted_epoch(&wire);
    let id = wire.intent(&mut peers, 0, remove("carol"));
    assert_eq!(wire.rejects, ["mls_keeps_removed_device"]);
    // Her device asked the directory again and made the commit again with the tablet's
    // removal: the intent ends accepted, carol and the tablet out.
    assert_eq!(peers[0].engine.status(id), None, "carol is removed");
    let epoch = accepted_epoch(&wire);
    assert!(epoch > before, "{epoch}");
    let in_group = peers[0].engine.group_devices(&conv("secret")).unwrap();
    assert!(!in_group.contains(&tablet()), "{in_group:?}");
    assert!(in_group.iter().all(|d| d.account.as_str() != "carol"));
    assert_eq!(wire.rejects.len(), 1, "{:?}", wire.rejects);
}

#[test]
fn a_device_with_many_contacts_lists_a_bounded_few_per_connection_round_the_list() {
    use confab_core::client::PEERS_LISTED_MAX;
    let mut wire = Wire::new();
    let names: Vec<String> = (0..PEERS_LISTED_MAX + 8)
        .map(|i| format!("m{i:02}"))
        .collect();
    let mut peers = vec![phone("alice")];
    peers.extend(names.iter().map(|n| phone(n)));
    for i in 0..peers.len() {
        wire.connect(&mut peers, i);
    }
    let members: Vec<&str> = names.iter().map(String::as_str).collect();
    let id = wire.intent(&mut peers, 0, create(true, &members));
    assert_eq!(peers[0].engine.status(id), None, "the creation is accepted");
    let others = |wire: &Wire, from: usize| -> BTreeSet<String> {
        wire.listed[from..]
            .iter()
            .filter(|(i, a)| *i == 0 && a != "alice")
            .map(|(_, a)| a.clone())
            .collect()
    };
    // Each connection asks at most PEERS_LISTED_MAX accounts; two cover every one.
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        offline(&mut wire, &mut peers, 0);
        let from = wire.listed.len();
        wire.connect(&mut peers, 0);
        let asked = others(&wire, from);
        assert!(
            !asked.is_empty() && asked.len() <= PEERS_LISTED_MAX,
            "{}",
            asked.len()
        );
        seen.extend(asked);
    }
    assert_eq!(seen.len(), names.len(), "round the list: {seen:?}");
}
