//! What MLS costs a device and the Delivery Service in groups of 10, 100 and 1,000 devices
//! (targets in docs/BENCHMARKS.md, "End-to-end encryption"). Native; each op is timed alone:
//!
//! - `encrypt`: one application message of 200 bytes.
//! - `decrypt`: the same, read by another member.
//! - `commit`: a member makes a commit removing one device (made, then discarded).
//! - `process`: a member processes another's commit that removes and re-adds a device.
//! - `ds_check`: the Delivery Service checks that commit (`GroupView::check_commit`).
//! - `commit_healed`, `process_healed`: `commit` and `process` again in a tree whose parent
//!   nodes are all set (half the devices committed their update path first).
//! - `encrypt_kept`, `decrypt_kept`: `encrypt` and `decrypt` again after those commits, the
//!   devices keeping `PAST_EPOCHS` past epochs (openmls writes them all on every message).
//! - `save`, `save_kept`: taking what a message changed in the device's storage
//!   (`Device::take_changes`, what the engine writes), after each `encrypt` and `decrypt`;
//!   with the bytes those changes hold (keys and values) per message, sender and reader.
//!
//! Also prints the bytes of a sealed message for bodies of a few lengths, padded to their
//! size bucket and not (docs/BENCHMARKS.md, "Padding"), the bytes of the commit adding
//! everyone and of its Welcome, and of a member's
//! whole state (`Device::to_bytes`, what earlier builds wrote after every message) with its
//! kept epochs. Run: `cargo xtask
//! bench e2ee` (or `cargo bench -p confab-core --bench e2ee`); without `--bench` it builds a
//! group of 10 only and runs a few ops (a smoke run); `--members 1000` runs one size.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use confab_core::e2ee::{CommitBundle, Device, DeviceIdentity, GroupView};
use confab_core::ids::{AccountId, DeviceId, TenantId};

const GROUP: &[u8] = b"acme/conv/bench";

fn identity(i: usize) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new("acme").unwrap(),
        AccountId::new(format!("user{i}")).unwrap(),
        DeviceId::new("d1").unwrap(),
    )
}

struct Setup {
    devices: Vec<Device>,
    ds: GroupView,
    allowed: BTreeSet<DeviceIdentity>,
}

/// A group of `members` devices made by device 0 adding the others in one commit; the first
/// `joined` devices join it from the Welcome (the others are dropped).
fn setup(members: usize, joined: usize) -> Setup {
    let mut devices: Vec<Device> = (0..members)
        .map(|i| Device::new(identity(i)).unwrap())
        .collect();
    let allowed: BTreeSet<DeviceIdentity> = (0..members).map(identity).collect();
    let init = devices[0].create_group(GROUP).unwrap();
    let mut ds =
        GroupView::create(&init.group_info, &init.ratchet_tree, &identity(0), &allowed).unwrap();
    let packages: Vec<Vec<u8>> = devices[1..]
        .iter()
        .map(|d| d.key_package(false).unwrap())
        .collect();
    let started = Instant::now();
    let bundle = devices[0].commit(GROUP, &packages, &[]).unwrap();
    let made = started.elapsed();
    let welcome = bundle.welcome.clone().unwrap();
    println!(
        "  adding {} devices at once: commit {} KiB, Welcome {} KiB, made in {:.1} ms",
        members - 1,
        bundle.commit.len() / 1024,
        welcome.len() / 1024,
        made.as_secs_f64() * 1e3
    );
    let check = ds
        .check_commit(&bundle.commit, &identity(0), &allowed)
        .unwrap();
    ds.apply(check).unwrap();
    devices[0].confirm_commit(GROUP).unwrap();
    for device in &mut devices[1..joined] {
        device.join(&welcome).unwrap();
    }
    devices.truncate(joined);
    Setup {
        devices,
        ds,
        allowed,
    }
}

fn report(op: &str, members: usize, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "{op:<13} {members:>7} {:>10.3} {:>10.3} {:>10.3}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// What `device` changed since it was last asked, taken as the engine takes it: the time
/// that took, and the bytes of the keys and values to write.
fn save(device: &Device) -> (Duration, usize) {
    let t = Instant::now();
    let changes = device.take_changes();
    let took = t.elapsed();
    let bytes = changes
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    (took, bytes)
}

fn median(mut values: Vec<usize>) -> usize {
    values.sort_unstable();
    values[values.len() / 2]
}

/// `encrypt` and `decrypt` of a 200-byte message, `ops` times each, each followed by a save.
fn messages(devices: &mut [Device], members: usize, ops: usize, suffix: &str) {
    let plaintext = vec![b'x'; 200];
    let (mut enc, mut dec, mut saves) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sent, mut read) = (Vec::new(), Vec::new());
    for device in devices.iter() {
        save(device);
    }
    for _ in 0..ops {
        let t = Instant::now();
        let ct = devices[0].encrypt(GROUP, b"msg", &plaintext).unwrap();
        enc.push(t.elapsed());
        let (took, bytes) = save(&devices[0]);
        saves.push(took);
        sent.push(bytes);
        let t = Instant::now();
        devices[1].decrypt(&ct).unwrap();
        dec.push(t.elapsed());
        let (took, bytes) = save(&devices[1]);
        saves.push(took);
        read.push(bytes);
    }
    report(&format!("encrypt{suffix}"), members, enc);
    report(&format!("decrypt{suffix}"), members, dec);
    report(&format!("save{suffix}"), members, saves);
    println!(
        "  written per message{suffix}: sender {} B, reader {} B (median)",
        median(sent),
        median(read)
    );
}

/// The bytes of a sealed message (the MLS application message a change carries) for bodies
/// of a few lengths, padded to the content's size bucket as the engine seals it and unpadded.
fn sealed_sizes() {
    use confab_core::model::message::SealedContent;
    let mut device = Device::new(identity(0)).unwrap();
    device.create_group(b"acme/conv/sizes").unwrap();
    println!("sealed message bytes (body chars: unpadded -> padded):");
    for chars in [2, 12, 100, 240, 1000] {
        let content = SealedContent {
            body: "a".repeat(chars),
            ..SealedContent::default()
        };
        let mut unpadded = Vec::new();
        ciborium::into_writer(&content, &mut unpadded).unwrap();
        let aad = b"m-0123456789abcdef";
        let seal =
            |d: &mut Device, plain: &[u8]| d.encrypt(b"acme/conv/sizes", aad, plain).unwrap().len();
        let (before, after) = (
            seal(&mut device, &unpadded),
            seal(&mut device, &content.to_bytes()),
        );
        println!(
            "  {chars:>5}: {before:>5} -> {after:>5} (+{})",
            after - before
        );
    }
}

/// `committer`'s commit removing `victim`, made `ops` times and discarded, each timed.
fn commit_times(committer: &mut Device, victim: &DeviceIdentity, ops: usize) -> Vec<Duration> {
    (0..ops)
        .map(|_| {
            let t = Instant::now();
            committer
                .commit(GROUP, &[], std::slice::from_ref(victim))
                .unwrap();
            let made = t.elapsed();
            committer.discard_commit(GROUP).unwrap();
            made
        })
        .collect()
}

/// A new device `name` of `victim`'s account, and `committer`'s pending commit that swaps
/// it in for `victim` (a device never comes back under another key).
fn swap(
    committer: &mut Device,
    victim: &DeviceIdentity,
    name: String,
) -> (DeviceIdentity, CommitBundle) {
    let next = DeviceIdentity::new(
        victim.tenant.clone(),
        victim.account.clone(),
        DeviceId::new(name).unwrap(),
    );
    let fresh = Device::new(next.clone()).unwrap();
    let bundle = committer
        .commit(
            GROUP,
            &[fresh.key_package(false).unwrap()],
            std::slice::from_ref(victim),
        )
        .unwrap();
    (next, bundle)
}

/// A commit, and processing one, in a tree every parent node of which is set: half the
/// devices (one under each pair of leaves) commit their update path in turn, each after
/// following the ones before (docs/E2EE.md, "Trees that stay cheap"), then device 0 commits
/// removals and device 2 processes them. Prints the seals a commit takes before and after.
fn healed(members: usize, ops: usize) {
    let Setup { mut devices, .. } = setup(members, members);
    let seals = |d: &Device| {
        d.path_costs(GROUP)
            .unwrap()
            .iter()
            .map(|(_, c)| c.encryptions)
            .max()
            .unwrap()
    };
    let before = seals(&devices[0]);
    let mut log: Vec<Vec<u8>> = Vec::new();
    // How many of `log`'s commits each device has followed.
    let mut followed = vec![0usize; members];
    let catch_up = |device: &mut Device, followed: &mut usize, log: &[Vec<u8>]| {
        for commit in &log[*followed..] {
            device.process_commit(commit).unwrap();
        }
        *followed = log.len();
    };
    let started = Instant::now();
    for k in (1..members).step_by(2) {
        catch_up(&mut devices[k], &mut followed[k], &log);
        let bundle = devices[k].commit_with_path(GROUP, &[], &[]).unwrap();
        devices[k].confirm_commit(GROUP).unwrap();
        log.push(bundle.commit);
        followed[k] = log.len();
    }
    let healing = started.elapsed();
    for k in [0, 2] {
        catch_up(&mut devices[k], &mut followed[k], &log);
    }
    println!(
        "  healed by {} commits in {:.1} s: the costliest update path seals to {} nodes, was {before}",
        log.len(),
        healing.as_secs_f64(),
        seals(&devices[0])
    );
    let victim = identity(members - 1);
    report(
        "commit_healed",
        members,
        commit_times(&mut devices[0], &victim, ops),
    );
    // Device 0 swaps the last device for a new one of its account; device 2 processes it.
    let mut process = Vec::new();
    let mut victim = victim;
    for round in 0..ops {
        let (next, bundle) = swap(&mut devices[0], &victim, format!("h{round}"));
        devices[0].confirm_commit(GROUP).unwrap();
        victim = next;
        let t = Instant::now();
        devices[2].process_commit(&bundle.commit).unwrap();
        process.push(t.elapsed());
    }
    report("process_healed", members, process);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    // `--members N` runs one group size (e.g. under a profiler).
    let only: Option<usize> = args
        .iter()
        .position(|a| a == "--members")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let (sizes, ops): (&[usize], usize) = if full {
        (&[10, 100, 1000], 200)
    } else {
        (&[10], 3)
    };
    sealed_sizes();
    for &members in sizes.iter().filter(|&&m| only.is_none_or(|o| o == m)) {
        println!("{members} devices:");
        let Setup {
            mut devices,
            mut ds,
            allowed,
        } = setup(members, 2);
        println!(
            "{:<13} {:>7} {:>10} {:>10} {:>10}",
            "op (ms)", "members", "median", "p99", "max"
        );
        messages(&mut devices, members, ops, "");

        let victim = identity(members - 1);
        let commit_ops = if members >= 1000 { ops / 10 } else { ops / 2 }.max(3);
        let commit = commit_times(&mut devices[0], &victim, commit_ops);
        report("commit", members, commit);

        // Device 0 swaps the last device for a new device of the same account (a device never
        // comes back under another key); device 1 and the Delivery Service process each swap.
        let (mut process, mut ds_check) = (Vec::new(), Vec::new());
        let same_accounts = |d: &DeviceIdentity| allowed.iter().any(|a| a.account == d.account);
        let mut victim = victim;
        for round in 0..commit_ops {
            let (next, bundle) = swap(&mut devices[0], &victim, format!("d{}", round + 2));
            victim = next;
            let t = Instant::now();
            let check = ds
                .check_commit(&bundle.commit, &identity(0), &same_accounts)
                .unwrap();
            ds_check.push(t.elapsed());
            ds.apply(check).unwrap();
            devices[0].confirm_commit(GROUP).unwrap();
            let t = Instant::now();
            devices[1].process_commit(&bundle.commit).unwrap();
            process.push(t.elapsed());
        }
        report("process", members, process);
        report("ds_check", members, ds_check);
        // Every commit above left an epoch behind: each device now keeps PAST_EPOCHS of them
        // (each with its member list), as a device of a group that has lived a while does.
        messages(&mut devices, members, (ops / 4).max(1), "_kept");
        let t = Instant::now();
        let saved = devices[1].to_bytes();
        let saving = t.elapsed();
        let t = Instant::now();
        Device::from_bytes(&saved).unwrap();
        println!(
            "  a member's whole state: {} KiB, saved in {:.1} ms, loaded in {:.1} ms",
            saved.len() / 1024,
            saving.as_secs_f64() * 1e3,
            t.elapsed().as_secs_f64() * 1e3
        );
        drop(devices);
        healed(members, commit_ops);
    }
}
