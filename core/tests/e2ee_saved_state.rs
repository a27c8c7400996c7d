//! MLS states saved by earlier builds, whose storage held every value as JSON (openmls's
//! memory storage), still load: a device reads a message of a past epoch and a new one, commits,
//! and saves the state in the current form, which loads again.
//!
//! `fixtures/e2ee_json_state/` was written by the build before the compact storage, with
//! `CONFAB_WRITE_E2EE_FIXTURE=1 cargo test -p confab-core --test e2ee_saved_state -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use confab_core::e2ee::{Device, DeviceIdentity, GroupView};
use confab_core::ids::{AccountId, DeviceId, TenantId};

const GROUP: &[u8] = b"acme/conv/saved";

fn id(account: &str) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new("acme").unwrap(),
        AccountId::new(account).unwrap(),
        DeviceId::new("d1").unwrap(),
    )
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/e2ee_json_state")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn commit_and_apply(
    by: &mut Device,
    ds: &mut GroupView,
    packages: &[Vec<u8>],
    remove: &[DeviceIdentity],
    allowed: &BTreeSet<DeviceIdentity>,
) -> confab_core::e2ee::CommitBundle {
    let bundle = by.commit(GROUP, packages, remove).unwrap();
    let check = ds
        .check_commit(&bundle.commit, by.identity(), allowed)
        .unwrap();
    ds.apply(check).unwrap();
    by.confirm_commit(GROUP).unwrap();
    bundle
}

/// Writes the fixture (run by hand on the build whose form it keeps).
#[test]
#[ignore]
fn write_fixture() {
    if std::env::var_os("CONFAB_WRITE_E2EE_FIXTURE").is_none() {
        return;
    }
    let mut alice = Device::new(id("alice")).unwrap();
    let mut bob = Device::new(id("bob")).unwrap();
    let carol = Device::new(id("carol")).unwrap();
    let init = alice.create_group(GROUP).unwrap();
    let everyone: BTreeSet<DeviceIdentity> = [id("alice"), id("bob"), id("carol")].into();
    let mut ds = GroupView::create(
        &init.group_info,
        &init.ratchet_tree,
        &id("alice"),
        &everyone,
    )
    .unwrap();
    let packages = vec![
        bob.key_package(false).unwrap(),
        carol.key_package(false).unwrap(),
    ];
    let bundle = commit_and_apply(&mut alice, &mut ds, &packages, &[], &everyone);
    bob.join(&bundle.welcome.unwrap()).unwrap();
    let read_now = alice.encrypt(GROUP, b"m1", b"read at once").unwrap();
    assert_eq!(bob.decrypt(&read_now).unwrap().plaintext, b"read at once");
    // Written in epoch 1, read by bob only after loading, two epochs later.
    let kept = alice.encrypt(GROUP, b"m2", b"read after loading").unwrap();
    let without_carol: BTreeSet<DeviceIdentity> = [id("alice"), id("bob")].into();
    let removal = commit_and_apply(&mut alice, &mut ds, &[], &[id("carol")], &without_carol);
    bob.process_commit(&removal.commit).unwrap();
    let dir = fixture("");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(fixture("alice.bin"), alice.to_bytes()).unwrap();
    std::fs::write(fixture("bob.bin"), bob.to_bytes()).unwrap();
    std::fs::write(fixture("ds.bin"), ds.to_bytes()).unwrap();
    std::fs::write(fixture("kept.bin"), kept).unwrap();
}

#[test]
fn a_state_saved_as_json_loads_works_and_is_saved_anew() {
    let old_alice = read("alice.bin");
    let mut alice = Device::from_bytes(&old_alice).unwrap();
    let mut bob = Device::from_bytes(&read("bob.bin")).unwrap();
    let mut ds = GroupView::from_bytes(&read("ds.bin")).unwrap();
    assert_eq!(
        (alice.epoch(GROUP), bob.epoch(GROUP), ds.epoch()),
        (Some(2), Some(2), 2)
    );
    assert_eq!(ds.devices(), [id("alice"), id("bob")].into());

    // A message of the past epoch, whose secrets were saved as JSON; once only.
    let kept = read("kept.bin");
    assert_eq!(bob.decrypt(&kept).unwrap().plaintext, b"read after loading");
    assert!(bob.decrypt(&kept).is_err());

    let now = alice.encrypt(GROUP, b"m3", b"after loading").unwrap();
    ds.check_application(&now).unwrap();
    assert_eq!(bob.decrypt(&now).unwrap().plaintext, b"after loading");

    // A commit adding a device, checked by the loaded group view.
    let mut dave = Device::new(id("dave")).unwrap();
    let allowed: BTreeSet<DeviceIdentity> = [id("alice"), id("bob"), id("dave")].into();
    let packages = vec![dave.key_package(false).unwrap()];
    let bundle = commit_and_apply(&mut alice, &mut ds, &packages, &[], &allowed);
    bob.process_commit(&bundle.commit).unwrap();
    dave.join(&bundle.welcome.unwrap()).unwrap();

    // Saved in the current form (the kept epochs' secrets, rewritten, are far smaller than
    // as JSON), and loaded again.
    let new_alice = alice.to_bytes();
    assert!(
        new_alice.len() * 2 < old_alice.len(),
        "{} bytes now, {} as JSON",
        new_alice.len(),
        old_alice.len()
    );
    let mut alice = Device::from_bytes(&new_alice).unwrap();
    let mut bob = Device::from_bytes(&bob.to_bytes()).unwrap();
    let ds = GroupView::from_bytes(&ds.to_bytes()).unwrap();
    assert_eq!(ds.epoch(), 3);
    let last = alice.encrypt(GROUP, b"m4", b"saved anew").unwrap();
    ds.check_application(&last).unwrap();
    assert_eq!(bob.decrypt(&last).unwrap().plaintext, b"saved anew");
    assert_eq!(dave.decrypt(&last).unwrap().plaintext, b"saved anew");
}
