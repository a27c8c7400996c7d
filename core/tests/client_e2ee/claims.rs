//! A lying directory (docs/E2EE.md, "Every leaf is a registered device"): the engine adds a
//! claimed key package only if it names the device its claim entry names and carries the
//! key this device knows for that device; what it refuses is said as an error event, and the
//! add goes on without that device.

use confab_core::e2ee::{Device as Mls, DeviceIdentity};

use super::*;

fn identity(account: &str) -> DeviceIdentity {
    DeviceIdentity::new(tenant(), acc(account), DeviceId::new("phone").unwrap())
}

fn devices(peer: &Peer, id: &str) -> Vec<DeviceIdentity> {
    peer.engine.group_devices(&conv(id)).unwrap()
}

#[test]
fn a_package_under_another_devices_name_is_not_added() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob", "carol", "mallory"]);
    // Asked for carol's device, the directory hands out one of mallory's packages.
    let key = ("mallory".to_owned(), "phone".to_owned());
    let mallorys = wire.packages.get_mut(&key).unwrap().remove(0);
    wire.forged
        .insert(("carol".to_owned(), "phone".to_owned()), mallorys);
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(
        peers[0].engine.status(id),
        None,
        "carol's membership is added"
    );
    // Refused again when carol's device, left out, says it waits and alice claims anew.
    assert!(!peers[0].errors().is_empty());
    assert!(
        peers[0].errors().iter().all(|e| e == "mls_wrong_identity"),
        "{:?}",
        peers[0].errors()
    );
    let held = devices(&peers[0], "secret");
    assert!(!held.contains(&identity("mallory")), "{held:?}");
    assert!(!held.contains(&identity("carol")), "{held:?}");
    assert_eq!(peers[3].engine.group_epoch(&conv("secret")), None);

    // With the directory honest again, adding carol anew claims again and adds her device.
    wire.forged.clear();
    let id = wire.intent(&mut peers, 0, remove("carol"));
    assert_eq!(peers[0].engine.status(id), None);
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(id), None);
    assert!(devices(&peers[0], "secret").contains(&identity("carol")));
    assert!(peers[2].engine.group_epoch(&conv("secret")).is_some());
}

#[test]
fn a_package_of_a_known_device_under_another_key_is_not_added() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob", "carol"]);
    // alice knows carol's device from the group they share.
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(id), None);
    assert!(devices(&peers[0], "secret").contains(&identity("carol")));

    // A second group; the directory hands out a package naming carol's device, made with
    // a key of the directory's own.
    let forger = Mls::new(identity("carol")).unwrap();
    wire.forged.insert(
        ("carol".to_owned(), "phone".to_owned()),
        forger.key_package(false).unwrap(),
    );
    let made = wire.intent(
        &mut peers,
        0,
        Intent::CreateConversation {
            conv: conv("second"),
            kind: ConvKind::Group,
            title: Some("Second".into()),
            members: vec![(acc("carol"), Role::Member)],
            settings: None,
            parent: None,
            encrypted: true,
        },
    );
    assert_eq!(peers[0].engine.status(made), None, "the group is made");
    assert_eq!(
        peers[0].errors(),
        vec!["mls_wrong_signature_key".to_owned()]
    );
    assert!(!devices(&peers[0], "second").contains(&identity("carol")));
    // Nothing was offered to the Delivery Service for it: no MLS refusal.
    assert!(
        wire.rejects.iter().all(|c| !c.starts_with("mls_")),
        "{:?}",
        wire.rejects
    );
}

#[test]
fn a_safety_number_is_the_same_on_both_sides_and_moves_with_the_devices() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob", "carol"]);
    let secret = conv("secret");
    let (alice, bob) = (acc("alice"), acc("bob"));
    let seen_by_alice = peers[0].engine.safety_number(&secret, &bob).unwrap();
    let seen_by_bob = peers[1].engine.safety_number(&secret, &alice).unwrap();
    assert_eq!(seen_by_alice, seen_by_bob);
    assert_eq!(seen_by_alice.len(), 60);
    // Carol is in no group yet; nobody has a number with oneself.
    assert_eq!(peers[0].engine.safety_number(&secret, &acc("carol")), None);
    assert_eq!(peers[0].engine.safety_number(&secret, &alice), None);
    // A second device of bob's joins the group: both sides' numbers move, alike.
    let mut tablet = device_of(config("bob"), "tablet");
    wire.connect(std::slice::from_mut(&mut tablet), 0);
    peers.push(tablet);
    let last = peers.len() - 1;
    wire.connect(&mut peers, last);
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(id), None);
    peers[1].engine.refresh_devices();
    wire.pump(&mut peers);
    let tablet = DeviceIdentity::new(tenant(), bob.clone(), DeviceId::new("tablet").unwrap());
    assert!(
        devices(&peers[0], "secret").contains(&tablet),
        "bob's phone added it"
    );
    let now_alice = peers[0].engine.safety_number(&secret, &bob).unwrap();
    assert_ne!(
        now_alice, seen_by_alice,
        "a new device of bob's moves the number"
    );
    assert_eq!(
        now_alice,
        peers[1].engine.safety_number(&secret, &alice).unwrap()
    );
}
