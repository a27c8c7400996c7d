//! MLS groups under the server's membership: devices encrypt and decrypt, and the Delivery
//! Service's group view refuses every commit that would put the group out of step with the
//! conversation's members (a stale epoch, a non-member's device, a removal left out, a
//! member's device removed, another device's commit), and every application message it
//! cannot accept (plaintext, garbage, oversized, out of the epoch window).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use confab_core::e2ee::ds::check_key_package;
use confab_core::e2ee::sealed_epoch;
use confab_core::e2ee::{
    Device, DeviceIdentity, Directory, DirectoryEntry, DsRefusal, E2eeError, GroupView,
    MAX_APPLICATION_BYTES, PAST_EPOCHS,
};
use confab_core::ids::{AccountId, DeviceId, TenantId};

fn id(account: &str, device: &str) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new("acme").unwrap(),
        AccountId::new(account).unwrap(),
        DeviceId::new(device).unwrap(),
    )
}

fn device(account: &str) -> Device {
    Device::new(id(account, "d1")).unwrap()
}

fn allowed(devices: &[&Device]) -> BTreeSet<DeviceIdentity> {
    devices.iter().map(|d| d.identity().clone()).collect()
}

/// A directory holding `devices` with their keys, `removed` among them marked removed.
fn directory(devices: &[&Device], removed: &[DeviceIdentity]) -> Directory {
    Directory::new(devices.iter().map(|d| DirectoryEntry {
        device: d.identity().clone(),
        signature_key: d.signature_key().to_vec(),
        removed: removed.contains(d.identity()),
    }))
}

const GROUP: &[u8] = b"acme/conv/weekend";

/// A group of `members[0]` and the rest, created and followed by the Delivery Service.
fn group_of(members: &mut [Device]) -> GroupView {
    let (creator, rest) = members.split_first_mut().unwrap();
    let init = creator.create_group(GROUP).unwrap();
    let mut all: Vec<&Device> = rest.iter().collect();
    all.push(creator);
    let everyone = allowed(&all);
    let mut ds = GroupView::create(
        &init.group_info,
        &init.ratchet_tree,
        creator.identity(),
        &everyone,
    )
    .unwrap();
    if rest.is_empty() {
        return ds;
    }
    let packages: Vec<Vec<u8>> = rest.iter().map(|d| d.key_package(false).unwrap()).collect();
    let bundle = creator.commit(GROUP, &packages, &[]).unwrap();
    let check = ds
        .check_commit(&bundle.commit, creator.identity(), &everyone)
        .unwrap();
    ds.apply(check).unwrap();
    creator.confirm_commit(GROUP).unwrap();
    let welcome = bundle.welcome.unwrap();
    for d in rest.iter_mut() {
        assert_eq!(d.join(&welcome).unwrap(), GROUP);
    }
    ds
}

fn say(from: &mut Device, text: &str) -> Vec<u8> {
    from.encrypt(GROUP, b"msg-1", text.as_bytes()).unwrap()
}

fn read(to: &mut Device, ciphertext: &[u8]) -> Result<String, E2eeError> {
    to.decrypt(ciphertext)
        .map(|d| String::from_utf8(d.plaintext).unwrap())
}

#[test]
fn members_read_each_other_and_know_who_wrote() {
    let mut m = [device("alice"), device("bob"), device("carol")];
    let ds = group_of(&mut m);
    assert_eq!(ds.epoch(), 1);
    assert_eq!(ds.devices(), allowed(&[&m[0], &m[1], &m[2]]));
    let ct = m[1].encrypt(GROUP, b"msg-7", b"hello").unwrap();
    let frame = ds.check_application(&ct).unwrap();
    assert_eq!((frame.epoch, frame.aad.as_slice()), (1, &b"msg-7"[..]));
    for reader in [0, 2] {
        let got = m[reader].decrypt(&ct).unwrap();
        assert_eq!(got.plaintext, b"hello");
        assert_eq!(got.sender, id("bob", "d1"));
        assert_eq!(got.aad, b"msg-7");
    }
    // The ciphertext does not hold the text.
    assert!(!ct.windows(5).any(|w| w == b"hello"));
}

#[test]
fn a_ciphertext_decrypts_once_per_device() {
    let mut m = [device("alice"), device("bob")];
    group_of(&mut m);
    let ct = say(&mut m[0], "once");
    assert_eq!(read(&mut m[1], &ct).unwrap(), "once");
    assert_eq!(read(&mut m[1], &ct), Err(E2eeError::AlreadyDecrypted));
}

#[test]
fn a_removed_device_with_its_saved_state_reads_nothing_sent_after() {
    let mut m = [device("alice"), device("bob"), device("carol")];
    let mut ds = group_of(&mut m);
    let saved_carol = m[2].to_bytes();
    let members_after = allowed(&[&m[0], &m[1]]);
    let removal = m[0].commit(GROUP, &[], &[id("carol", "d1")]).unwrap();
    let check = ds
        .check_commit(&removal.commit, m[0].identity(), &members_after)
        .unwrap();
    assert_eq!(check.removed, vec![id("carol", "d1")]);
    ds.apply(check).unwrap();
    m[0].confirm_commit(GROUP).unwrap();
    let outcome = m[1].process_commit(&removal.commit).unwrap();
    assert_eq!(outcome.removed, vec![id("carol", "d1")]);
    let secret = say(&mut m[0], "after the removal");
    assert_eq!(read(&mut m[1], &secret).unwrap(), "after the removal");

    // Carol processes her own removal: the group is gone from her device.
    let outcome = m[2].process_commit(&removal.commit).unwrap();
    assert!(outcome.self_removed);
    assert_eq!(read(&mut m[2], &secret), Err(E2eeError::UnknownGroup));
    // Carol's device restored from before the removal, never told of it: still nothing.
    let mut stale_carol = Device::from_bytes(&saved_carol).unwrap();
    assert_eq!(stale_carol.epoch(GROUP), Some(1));
    assert!(read(&mut stale_carol, &secret).is_err());
}

#[test]
fn the_delivery_service_keeps_the_group_to_the_membership() {
    let mut m = [device("alice"), device("bob"), device("carol")];
    let mut ds = group_of(&mut m);
    let before = ds.to_bytes();
    let dave = device("dave");
    let erin = device("erin");

    // Adding a device of someone who is not a member.
    let add_dave = m[0]
        .commit(GROUP, &[dave.key_package(false).unwrap()], &[])
        .unwrap();
    let all = allowed(&[&m[0], &m[1], &m[2]]);
    assert_eq!(
        ds.check_commit(&add_dave.commit, m[0].identity(), &all)
            .unwrap_err()
            .code(),
        "mls_adds_non_member"
    );
    // Submitted by another device than the one that made it.
    let with_dave = allowed(&[&m[0], &m[1], &m[2], &dave]);
    assert_eq!(
        ds.check_commit(&add_dave.commit, m[1].identity(), &with_dave)
            .unwrap_err()
            .code(),
        "mls_wrong_sender"
    );
    m[0].discard_commit(GROUP).unwrap();

    // Carol left the conversation, and the commit that goes with it does not remove her.
    let add_erin = m[0]
        .commit(GROUP, &[erin.key_package(false).unwrap()], &[])
        .unwrap();
    let without_carol_with_erin = allowed(&[&m[0], &m[1], &erin]);
    assert_eq!(
        ds.check_commit(&add_erin.commit, m[0].identity(), &without_carol_with_erin)
            .unwrap_err()
            .code(),
        "mls_missing_removal"
    );
    m[0].discard_commit(GROUP).unwrap();

    // Removing a device of a member who stays, which the directory keeps.
    let drop_bob = m[0].commit(GROUP, &[], &[id("bob", "d1")]).unwrap();
    let check = ds
        .check_commit(&drop_bob.commit, m[0].identity(), &all)
        .unwrap();
    assert_eq!(check.removes_listed, vec![id("bob", "d1")]);
    assert_eq!(
        check
            .check_directory(&directory(&[&m[0], &m[1], &m[2]], &[]))
            .unwrap_err()
            .code(),
        "mls_removes_member"
    );
    m[0].discard_commit(GROUP).unwrap();

    // None of the refusals moved the group.
    assert_eq!(ds.to_bytes(), before);
    assert_eq!(ds.epoch(), 1);

    // The right commit for "carol leaves": accepted.
    let leave = m[0].commit(GROUP, &[], &[id("carol", "d1")]).unwrap();
    let check = ds
        .check_commit(&leave.commit, m[0].identity(), &allowed(&[&m[0], &m[1]]))
        .unwrap();
    assert_eq!(ds.apply(check).unwrap(), 2);
    // Offered again, it is a commit for a past epoch.
    assert_eq!(
        ds.check_commit(&leave.commit, m[0].identity(), &allowed(&[&m[0], &m[1]]))
            .unwrap_err(),
        DsRefusal::StaleEpoch { got: 1, current: 2 }
    );
}

#[test]
fn key_packages_name_the_device_that_uploads_them() {
    let bob = device("bob");
    let package = bob.key_package(false).unwrap();
    let info = check_key_package(&package, bob.identity()).unwrap();
    assert!(!info.last_resort);
    assert!(!info.reference.is_empty());
    assert!(
        check_key_package(&bob.key_package(true).unwrap(), bob.identity())
            .unwrap()
            .last_resort
    );
    for other in [id("carol", "d1"), id("bob", "d2")] {
        assert_eq!(
            check_key_package(&package, &other).unwrap_err().code(),
            "mls_wrong_identity"
        );
    }
    // A flipped byte breaks its signature or its framing.
    let mut forged = package.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        check_key_package(&forged, bob.identity())
            .unwrap_err()
            .code(),
        "mls_invalid" | "mls_malformed"
    ));
}

#[test]
fn application_messages_must_be_encrypted_well_formed_and_recent() {
    let mut m = [device("alice"), device("bob")];
    let mut ds = group_of(&mut m);
    let garbage = vec![7u8; 300];
    assert_eq!(
        ds.check_application(&garbage).unwrap_err().code(),
        "mls_malformed"
    );
    let huge = vec![0u8; MAX_APPLICATION_BYTES + 1];
    assert_eq!(
        ds.check_application(&huge).unwrap_err().code(),
        "mls_too_large"
    );
    assert_eq!(
        ds.check_application(&[]).unwrap_err().code(),
        "mls_malformed"
    );
    // A handshake message in a message's place is plaintext.
    let update = m[0].commit(GROUP, &[], &[]).unwrap();
    assert_eq!(
        ds.check_application(&update.commit).unwrap_err().code(),
        "mls_not_encrypted"
    );
    m[0].discard_commit(GROUP).unwrap();
    // Too large to encrypt at all.
    assert_eq!(
        m[0].encrypt(GROUP, b"", &vec![b'x'; MAX_APPLICATION_BYTES]),
        Err(E2eeError::TooLarge(MAX_APPLICATION_BYTES))
    );

    // A message written at epoch 1 by a device that then saw PAST_EPOCHS + 1 commits.
    // and one written at epoch 2, exactly PAST_EPOCHS before the end.
    let old = say(&mut m[1], "from long ago");
    let mut edge = None;
    for _ in 0..=PAST_EPOCHS {
        let c = m[0].commit(GROUP, &[], &[]).unwrap();
        let check = ds
            .check_commit(&c.commit, m[0].identity(), &allowed(&[&m[0], &m[1]]))
            .unwrap();
        ds.apply(check).unwrap();
        m[0].confirm_commit(GROUP).unwrap();
        m[1].process_commit(&c.commit).unwrap();
        edge.get_or_insert_with(|| say(&mut m[1], "just in time"));
    }
    assert_eq!(ds.epoch(), PAST_EPOCHS + 2);
    assert_eq!(
        ds.check_application(&old).unwrap_err().code(),
        "mls_stale_epoch"
    );
    assert_eq!(read(&mut m[0], &old), Err(E2eeError::EpochTooOld));
    let edge = edge.unwrap();
    assert_eq!(ds.check_application(&edge).unwrap().epoch, 2);
    assert_eq!(read(&mut m[0], &edge).unwrap(), "just in time");
}

#[test]
fn an_offline_device_catches_up_through_commits_and_reads_older_epochs() {
    let mut m = [device("alice"), device("bob"), device("carol")];
    let mut ds = group_of(&mut m);
    let mut backlog = Vec::new();
    let mut members = vec![
        m[0].identity().clone(),
        m[1].identity().clone(),
        m[2].identity().clone(),
    ];
    // Carol is offline while the group moves through three membership changes, with a
    // message in each epoch.
    for name in ["dave", "erin", "frank"] {
        backlog.push((None, Some(say(&mut m[0], &format!("before {name}")))));
        let newcomer = device(name);
        members.push(newcomer.identity().clone());
        let c = m[0]
            .commit(GROUP, &[newcomer.key_package(false).unwrap()], &[])
            .unwrap();
        let check = ds
            .check_commit(
                &c.commit,
                m[0].identity(),
                &members.iter().cloned().collect::<BTreeSet<_>>(),
            )
            .unwrap();
        ds.apply(check).unwrap();
        m[0].confirm_commit(GROUP).unwrap();
        backlog.push((Some(c.commit), None));
    }
    let last = say(&mut m[0], "all here");
    backlog.push((None, Some(last)));
    // Back online, Carol reads the log in the server's order.
    let mut read_texts = Vec::new();
    for (commit, message) in backlog {
        if let Some(c) = commit {
            m[2].process_commit(&c).unwrap();
        }
        if let Some(ct) = message {
            read_texts.push(read(&mut m[2], &ct).unwrap());
        }
    }
    assert_eq!(
        read_texts,
        ["before dave", "before erin", "before frank", "all here"]
    );
    assert_eq!(m[2].epoch(GROUP), Some(4));
    assert_eq!(m[2].members(GROUP).unwrap().len(), 6);
}

#[test]
fn a_commit_that_lost_the_race_is_rebuilt_on_the_new_epoch() {
    let mut m = [device("alice"), device("bob")];
    let mut ds = group_of(&mut m);
    let (carol, dave) = (device("carol"), device("dave"));
    let everyone = allowed(&[&m[0], &m[1], &carol, &dave]);
    // Both admins add someone while offline, from epoch 1.
    let by_alice = m[0]
        .commit(GROUP, &[carol.key_package(false).unwrap()], &[])
        .unwrap();
    let by_bob = m[1]
        .commit(GROUP, &[dave.key_package(false).unwrap()], &[])
        .unwrap();
    let first = ds
        .check_commit(&by_alice.commit, m[0].identity(), &everyone)
        .unwrap();
    ds.apply(first).unwrap();
    m[0].confirm_commit(GROUP).unwrap();
    // Exactly one commit per epoch.
    assert_eq!(
        ds.check_commit(&by_bob.commit, m[1].identity(), &everyone)
            .unwrap_err()
            .code(),
        "mls_stale_epoch"
    );
    // Bob hears of Alice's commit: his own is dropped, and he commits again on epoch 2.
    m[1].process_commit(&by_alice.commit).unwrap();
    let again = m[1]
        .commit(GROUP, &[dave.key_package(false).unwrap()], &[])
        .unwrap();
    assert_eq!(again.epoch, 2);
    let check = ds
        .check_commit(&again.commit, m[1].identity(), &everyone)
        .unwrap();
    ds.apply(check).unwrap();
    m[1].confirm_commit(GROUP).unwrap();
    m[0].process_commit(&again.commit).unwrap();
    assert_eq!(ds.devices(), everyone);
    assert_eq!(m[0].epoch(GROUP), m[1].epoch(GROUP));
    let ct = say(&mut m[1], "both in");
    assert_eq!(read(&mut m[0], &ct).unwrap(), "both in");
}

#[test]
fn devices_and_group_views_survive_a_restart() {
    let mut m = [device("alice"), device("bob")];
    let ds = group_of(&mut m);
    let mut ds = GroupView::from_bytes(&ds.to_bytes()).unwrap();
    let mut alice = Device::from_bytes(&m[0].to_bytes()).unwrap();
    let mut bob = Device::from_bytes(&m[1].to_bytes()).unwrap();
    assert_eq!(alice.identity(), &id("alice", "d1"));
    let ct = say(&mut alice, "still here");
    assert_eq!(read(&mut bob, &ct).unwrap(), "still here");
    let c = bob.commit(GROUP, &[], &[]).unwrap();
    let check = ds
        .check_commit(&c.commit, bob.identity(), &allowed(&[&alice, &bob]))
        .unwrap();
    assert_eq!(ds.apply(check).unwrap(), 2);
    assert_eq!(
        Device::from_bytes(b"not a device").unwrap_err(),
        E2eeError::BadState
    );
    assert!(GroupView::from_bytes(b"not a group").is_none());
}

#[test]
fn every_refusal_has_its_own_code() {
    let mut codes = DsRefusal::CODES.to_vec();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), DsRefusal::CODES.len());
}

/// An account takes its own devices out of a group while it stays a member (one it removed
/// from the directory); another member's devices it cannot.
#[test]
fn an_account_removes_its_own_device_but_not_another_members() {
    let mut m = [
        device("alice"),
        Device::new(id("alice", "d2")).unwrap(),
        device("bob"),
    ];
    let mut ds = group_of(&mut m);
    let everyone = allowed(&[&m[0], &m[1], &m[2]]);

    let drop_bob = m[0].commit(GROUP, &[], &[id("bob", "d1")]).unwrap();
    let check = ds
        .check_commit(&drop_bob.commit, m[0].identity(), &everyone)
        .unwrap();
    let kept = directory(&[&m[0], &m[1], &m[2]], &[]);
    assert_eq!(
        check.check_directory(&kept).unwrap_err().code(),
        "mls_removes_member"
    );
    // Once bob removed that device from the directory, anyone may take it out.
    let gone = directory(&[&m[0], &m[1], &m[2]], &[id("bob", "d1")]);
    assert_eq!(check.check_directory(&gone), Ok(()));
    m[0].discard_commit(GROUP).unwrap();

    let drop_own = m[0].commit(GROUP, &[], &[id("alice", "d2")]).unwrap();
    let check = ds
        .check_commit(&drop_own.commit, m[0].identity(), &everyone)
        .unwrap();
    assert_eq!(check.removed, vec![id("alice", "d2")]);
    ds.apply(check).unwrap();
    m[0].confirm_commit(GROUP).unwrap();
    assert_eq!(ds.devices(), allowed(&[&m[0], &m[2]]));

    // The removed device, with its state, reads nothing sent after.
    m[1].process_commit(&drop_own.commit).ok();
    let after = say(&mut m[2], "after d2 left");
    assert!(read(&mut m[1], &after).is_err());
    assert_eq!(read(&mut m[0], &after).unwrap(), "after d2 left");
}

/// A device follows no commit that brings in a device it knows under another key: a server
/// that skipped its own Delivery Service check (a lying server) gets a substituted key
/// refused by every member that knew the device. The honest key is followed.
#[test]
fn a_commit_bringing_a_known_device_in_under_another_key_is_not_followed() {
    // alice and bob share a group with henry; alice starts a second group with bob.
    let mut m = [device("alice"), device("bob"), device("henry")];
    group_of(&mut m);
    let second = b"acme/conv/second".as_slice();
    m[0].create_group(second).unwrap();
    let with_bob = m[0]
        .commit(second, &[m[1].key_package(false).unwrap()], &[])
        .unwrap();
    m[0].confirm_commit(second).unwrap();
    m[1].join(&with_bob.welcome.unwrap()).unwrap();
    assert_eq!(
        m[1].known_keys().get(&id("henry", "d1")),
        Some(&m[2].signature_key().to_vec())
    );

    // alice adds "henry/d1" with a package whose key is not henry's.
    let forged = Device::new(id("henry", "d1")).unwrap();
    let bad = m[0]
        .commit(second, &[forged.key_package(false).unwrap()], &[])
        .unwrap();
    let refused = m[1].process_commit(&bad.commit).unwrap_err();
    assert!(
        matches!(&refused, E2eeError::KeyChanged(why) if why.contains("henry")),
        "{refused:?}"
    );
    assert_eq!(
        m[1].epoch(second),
        Some(1),
        "the forged commit moved nothing"
    );
    m[0].discard_commit(second).unwrap();

    // With henry's own package, bob follows.
    let good = m[0]
        .commit(second, &[m[2].key_package(false).unwrap()], &[])
        .unwrap();
    assert_eq!(m[1].process_commit(&good.commit).unwrap().epoch, 2);
}

/// `m[0]` commits (an empty commit: a new epoch) and `m[1]` follows; the server's view too.
fn next_epoch(m: &mut [Device], ds: &mut GroupView) {
    let c = m[0].commit(GROUP, &[], &[]).unwrap();
    let everyone: Vec<&Device> = m.iter().collect();
    let check = ds
        .check_commit(&c.commit, m[0].identity(), &allowed(&everyone))
        .unwrap();
    ds.apply(check).unwrap();
    m[0].confirm_commit(GROUP).unwrap();
    for d in m.iter_mut().skip(1) {
        d.process_commit(&c.commit).unwrap();
    }
}

#[test]
fn a_device_keeps_more_past_epochs_while_catching_up_then_drops_them() {
    let mut m = [device("alice"), device("bob")];
    let mut ds = group_of(&mut m);
    assert_eq!(m[1].past_epochs_kept(GROUP), Some(PAST_EPOCHS as usize));
    let first = say(&mut m[0], "at epoch 1");
    assert_eq!(sealed_epoch(&first).unwrap(), (GROUP.to_vec(), 1));
    // bob keeps every epoch of a catch-up of 40 commits.
    m[1].keep_past_epochs(GROUP, 40).unwrap();
    let mut written = vec![first];
    for _ in 0..40 {
        next_epoch(&mut m, &mut ds);
        written.push(say(&mut m[0], "later"));
    }
    // Saved and loaded back: the wider window is part of the group's state.
    let header = m[1].header();
    let mut bob = Device::from_parts(&header, m[1].entries()).unwrap();
    assert_eq!(bob.past_epochs_kept(GROUP), Some(40));
    let (oldest, rest) = written.split_first().unwrap();
    assert_eq!(read(&mut bob, oldest).unwrap(), "at epoch 1");
    // Back to the usual window: what is older than it is dropped at once.
    bob.keep_past_epochs(GROUP, PAST_EPOCHS as usize).unwrap();
    let (older, newer) = rest.split_at(rest.len() - PAST_EPOCHS as usize - 1);
    assert_eq!(
        read(&mut bob, &older[older.len() - 1]),
        Err(E2eeError::EpochTooOld)
    );
    for c in newer {
        assert_eq!(read(&mut bob, c).unwrap(), "later");
    }
}

/// What one kept past epoch adds to a reader's saved state, and what opening a message
/// costs with 0, 16 and the most epochs a catch-up keeps, in groups of 2, 100 and 1,000
/// devices (docs/BENCHMARKS.md, "Epochs a catching-up device keeps"):
/// `cargo test --release -p confab-core --test e2ee -- --ignored --nocapture what_a_kept_epoch_costs`
#[test]
#[ignore = "a measurement; prints what a kept epoch costs"]
fn what_a_kept_epoch_costs() {
    use confab_core::e2ee::catch_up_epochs;
    use std::time::Instant;
    const GROUP_N: &[u8] = b"acme/conv/kept";
    for members in [2usize, 100, 1000] {
        let mut devices: Vec<Device> = (0..members).map(|i| device(&format!("user{i}"))).collect();
        devices[0].create_group(GROUP_N).unwrap();
        let packages: Vec<Vec<u8>> = devices[1..]
            .iter()
            .map(|d| d.key_package(false).unwrap())
            .collect();
        let bundle = devices[0].commit(GROUP_N, &packages, &[]).unwrap();
        devices[0].confirm_commit(GROUP_N).unwrap();
        devices[1].join(&bundle.welcome.unwrap()).unwrap();
        devices.truncate(2);
        let most = catch_up_epochs(members);
        devices[1].keep_past_epochs(GROUP_N, most).unwrap();
        let size =
            |d: &Device| -> usize { d.entries().iter().map(|(k, v)| k.len() + v.len()).sum() };
        let mut report = Vec::new();
        for kept in 0..=most {
            if kept > 0 {
                let c = devices[0].commit(GROUP_N, &[], &[]).unwrap();
                devices[0].confirm_commit(GROUP_N).unwrap();
                devices[1].process_commit(&c.commit).unwrap();
            }
            if ![0, 16, 32, most].contains(&kept) {
                continue;
            }
            let state = size(&devices[1]);
            // Opening a message with `kept` epochs kept (the median of 21), and what it
            // writes.
            let mut times = Vec::new();
            let mut written = 0;
            for _ in 0..21 {
                let ct = devices[0].encrypt(GROUP_N, b"m", &[b'x'; 200]).unwrap();
                let _ = devices[1].take_changes();
                let started = Instant::now();
                devices[1].decrypt(&ct).unwrap();
                times.push(started.elapsed());
                written = devices[1]
                    .take_changes()
                    .iter()
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                    .sum::<usize>();
            }
            times.sort();
            report.push((kept, state, times[10], written));
        }
        let per_epoch = (report[2].1 - report[1].1) / 16;
        println!("{members} devices: {per_epoch} B a kept epoch");
        for (kept, state, time, written) in report {
            println!(
                "  {kept} kept: state {state} B, a message opened in {:.3} ms, writing {written} B",
                time.as_secs_f64() * 1e3
            );
        }
    }
}

#[test]
fn a_catching_up_device_keeps_fewer_epochs_in_larger_groups() {
    use confab_core::e2ee::{catch_up_epochs, CATCH_UP_EPOCHS};
    assert_eq!(catch_up_epochs(2), CATCH_UP_EPOCHS);
    assert_eq!(catch_up_epochs(100), CATCH_UP_EPOCHS);
    assert_eq!(catch_up_epochs(1_000), 93);
    assert_eq!(catch_up_epochs(100_000), PAST_EPOCHS as usize);
    assert_eq!(catch_up_epochs(usize::MAX), PAST_EPOCHS as usize);
}
