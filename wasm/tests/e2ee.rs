//! MLS in the browser, through `confab_core::e2ee` directly (the package does not expose it
//! yet): three devices make a group the Delivery Service's view accepts, read each other
//! both ways, survive a save and restore, and a removed device reads nothing sent after its
//! removal. The key material comes from `crypto.getRandomValues` (openmls's `js` feature).
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use confab_core::e2ee::{Device, DeviceIdentity, E2eeError, GroupView};
use confab_core::ids::{AccountId, DeviceId, TenantId};
use support::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GROUP: &[u8] = b"acme/conv/browser";

fn id(account: &str) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new("acme").unwrap(),
        AccountId::new(account).unwrap(),
        DeviceId::new("web-1").unwrap(),
    )
}

fn set(ids: &[&DeviceIdentity]) -> BTreeSet<DeviceIdentity> {
    ids.iter().map(|&d| d.clone()).collect()
}

/// `reader` decrypts `ciphertext` and finds `text` from `sender`, bound to `aad`.
fn reads(reader: &mut Device, ciphertext: &[u8], text: &str, sender: &DeviceIdentity, aad: &[u8]) {
    let got = reader.decrypt(ciphertext).unwrap();
    assert_eq!(
        got.plaintext,
        text.as_bytes(),
        "{} reading",
        reader.identity()
    );
    assert_eq!(&got.sender, sender);
    assert_eq!(got.aad, aad);
    assert_eq!(got.group_id, GROUP);
}

#[wasm_bindgen_test]
fn mls_groups_work_in_the_browser() {
    let started = precise_now();
    let (alice_id, bob_id, carol_id) = (id("alice"), id("bob"), id("carol"));
    let mut alice = Device::new(alice_id.clone()).unwrap();
    let mut bob = Device::new(bob_id.clone()).unwrap();
    let mut carol = Device::new(carol_id.clone()).unwrap();
    // Two devices' keys differ: the browser's randomness reaches the key generation.
    assert_ne!(alice.signature_key(), bob.signature_key());

    // Alice creates the group; the Delivery Service follows it and accepts the add.
    let everyone = set(&[&alice_id, &bob_id, &carol_id]);
    let init = alice.create_group(GROUP).unwrap();
    let mut ds =
        GroupView::create(&init.group_info, &init.ratchet_tree, &alice_id, &everyone).unwrap();
    assert_eq!(ds.epoch(), 0);
    assert_eq!(ds.devices(), set(&[&alice_id]));
    let packages = vec![
        bob.key_package(false).unwrap(),
        carol.key_package(true).unwrap(),
    ];
    let add = alice.commit(GROUP, &packages, &[]).unwrap();
    assert_eq!(add.epoch, 0);
    let check = ds.check_commit(&add.commit, &alice_id, &everyone).unwrap();
    assert_eq!(check.added, vec![bob_id.clone(), carol_id.clone()]);
    assert!(check.removed.is_empty());
    assert_eq!(ds.apply(check).unwrap(), 1);
    assert_eq!(alice.confirm_commit(GROUP).unwrap(), 1);
    assert_eq!(ds.devices(), everyone);

    // Bob and Carol join from the Welcome.
    let welcome = add.welcome.expect("a commit that adds has a Welcome");
    for device in [&mut bob, &mut carol] {
        assert_eq!(device.join(&welcome).unwrap(), GROUP);
        assert_eq!(device.epoch(GROUP), Some(1));
        let members: BTreeSet<_> = device.members(GROUP).unwrap().into_iter().collect();
        assert_eq!(members, everyone);
    }

    // Both ways, the server seeing only the framing.
    let ct = alice.encrypt(GROUP, b"msg-1", b"hello from alice").unwrap();
    let frame = ds.check_application(&ct).unwrap();
    assert_eq!((frame.epoch, frame.aad.as_slice()), (1, &b"msg-1"[..]));
    assert!(!ct.windows(5).any(|w| w == b"hello"));
    reads(&mut bob, &ct, "hello from alice", &alice_id, b"msg-1");
    reads(&mut carol, &ct, "hello from alice", &alice_id, b"msg-1");
    assert_eq!(bob.decrypt(&ct), Err(E2eeError::AlreadyDecrypted));
    let ct = bob
        .encrypt(GROUP, b"msg-2", b"hello back from bob")
        .unwrap();
    ds.check_application(&ct).unwrap();
    reads(&mut alice, &ct, "hello back from bob", &bob_id, b"msg-2");
    reads(&mut carol, &ct, "hello back from bob", &bob_id, b"msg-2");

    // A device saved and restored (as a host keeps it between page loads) goes on reading
    // and writing.
    let saved = bob.to_bytes();
    let mut bob = Device::from_bytes(&saved).unwrap();
    assert_eq!(bob.identity(), &bob_id);
    assert_eq!(bob.epoch(GROUP), Some(1));
    assert_eq!(bob.groups().collect::<Vec<_>>(), vec![GROUP]);
    let ct = alice
        .encrypt(GROUP, b"msg-3", b"after bob's reload")
        .unwrap();
    reads(&mut bob, &ct, "after bob's reload", &alice_id, b"msg-3");
    reads(&mut carol, &ct, "after bob's reload", &alice_id, b"msg-3");
    let ct = bob.encrypt(GROUP, b"msg-4", b"bob, restored").unwrap();
    reads(&mut alice, &ct, "bob, restored", &bob_id, b"msg-4");
    assert!(Device::from_bytes(&saved[..saved.len() / 2]).is_err());
    // And so does the Delivery Service's view.
    let mut ds = GroupView::from_bytes(&ds.to_bytes()).unwrap();
    assert_eq!((ds.epoch(), ds.devices()), (1, everyone.clone()));

    // Alice removes Carol; the Delivery Service accepts it under the new membership.
    let saved_carol = carol.to_bytes();
    let after = set(&[&alice_id, &bob_id]);
    let removal = alice
        .commit(GROUP, &[], std::slice::from_ref(&carol_id))
        .unwrap();
    assert!(removal.welcome.is_none());
    let check = ds.check_commit(&removal.commit, &alice_id, &after).unwrap();
    assert_eq!(check.removed, vec![carol_id.clone()]);
    assert_eq!(ds.apply(check).unwrap(), 2);
    assert_eq!(alice.confirm_commit(GROUP).unwrap(), 2);
    let outcome = bob.process_commit(&removal.commit).unwrap();
    assert_eq!(
        (outcome.epoch, outcome.removed),
        (2, vec![carol_id.clone()])
    );
    assert!(!outcome.self_removed);
    let outcome = carol.process_commit(&removal.commit).unwrap();
    assert!(outcome.self_removed);
    assert_eq!(carol.epoch(GROUP), None);

    // What is sent after reaches Bob, not Carol, nor Carol restored from before the removal.
    let secret = alice.encrypt(GROUP, b"msg-5", b"without carol").unwrap();
    assert_eq!(ds.check_application(&secret).unwrap().epoch, 2);
    reads(&mut bob, &secret, "without carol", &alice_id, b"msg-5");
    assert_eq!(carol.decrypt(&secret), Err(E2eeError::UnknownGroup));
    let mut stale_carol = Device::from_bytes(&saved_carol).unwrap();
    assert_eq!(stale_carol.epoch(GROUP), Some(1));
    assert!(stale_carol.decrypt(&secret).is_err());
    let ct = bob.encrypt(GROUP, b"msg-6", b"bob, without carol").unwrap();
    reads(&mut alice, &ct, "bob, without carol", &bob_id, b"msg-6");
    assert!(carol.encrypt(GROUP, b"msg-7", b"carol?").is_err());

    log(&format!(
        "e2ee: three devices, add, both ways, restore, removal in {:.0} ms",
        precise_now() - started
    ));
}
