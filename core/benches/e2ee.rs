//! What MLS costs a device and the Delivery Service in groups of 10, 100 and 1,000 devices
//! (targets in docs/BENCHMARKS.md, "End-to-end encryption"). Native; each op is timed alone:
//!
//! - `encrypt`: one application message of 200 bytes.
//! - `decrypt`: the same, read by another member.
//! - `commit`: a member makes a commit removing one device (made, then discarded).
//! - `process`: a member processes another's commit that removes and re-adds a device.
//! - `ds_check`: the Delivery Service checks that commit (`GroupView::check_commit`).
//! - `encrypt_kept`, `decrypt_kept`: `encrypt` and `decrypt` again after those commits, the
//!   devices keeping `PAST_EPOCHS` past epochs (openmls writes them all on every message).
//!
//! Also prints the bytes of the commit adding everyone and of its Welcome. Run: `cargo xtask
//! bench e2ee` (or `cargo bench -p confab-core --bench e2ee`); without `--bench` it builds a
//! group of 10 only and runs a few ops (a smoke run); `--members 1000` runs one size.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use confab_core::e2ee::{Device, DeviceIdentity, GroupView};
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

fn setup(members: usize) -> Setup {
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
    // Only the two devices the ops use need to join.
    devices[1].join(&welcome).unwrap();
    devices.truncate(2);
    Setup {
        devices,
        ds,
        allowed,
    }
}

fn report(op: &str, members: usize, mut times: Vec<Timed>) {
    // CPU time per op is the mean over the batch: the scheduler's count lags by up to a tick
    // at either end of one op, which averages out; on a loaded machine it is the figure that
    // compares (wall time there is mostly waiting for a core).
    let cpu: Option<Duration> = times.iter().map(|t| t.cpu).sum();
    let cpu_mean = cpu.map_or(f64::NAN, |c| c.as_secs_f64() * 1e3 / times.len() as f64);
    times.sort_by_key(|t| t.wall);
    let at = |q: f64| {
        times[((times.len() - 1) as f64 * q) as usize]
            .wall
            .as_secs_f64()
            * 1e3
    };
    println!(
        "{op:<13} {members:>7} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
        at(0.5),
        at(0.99),
        at(1.0),
        cpu_mean
    );
}

/// One op's wall time and the CPU time its thread used.
struct Timed {
    wall: Duration,
    cpu: Option<Duration>,
}

struct Timer {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Timer {
    fn start() -> Self {
        Self {
            cpu: thread_cpu(),
            wall: Instant::now(),
        }
    }

    fn stop(self) -> Timed {
        let wall = self.wall.elapsed();
        let cpu = thread_cpu()
            .zip(self.cpu)
            .map(|(end, start)| end.saturating_sub(start));
        Timed { wall, cpu }
    }
}

/// The CPU time this thread has run (Linux: the first field of its schedstat, in ns).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// `encrypt` and `decrypt` of a 200-byte message, `ops` times each.
fn messages(devices: &mut [Device], members: usize, ops: usize, suffix: &str) {
    let plaintext = vec![b'x'; 200];
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..ops {
        let t = Timer::start();
        let ct = devices[0].encrypt(GROUP, b"msg", &plaintext).unwrap();
        enc.push(t.stop());
        let t = Timer::start();
        devices[1].decrypt(&ct).unwrap();
        dec.push(t.stop());
    }
    report(&format!("encrypt{suffix}"), members, enc);
    report(&format!("decrypt{suffix}"), members, dec);
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
    for &members in sizes.iter().filter(|&&m| only.is_none_or(|o| o == m)) {
        println!("{members} devices:");
        let Setup {
            mut devices,
            mut ds,
            allowed,
        } = setup(members);
        println!(
            "{:<13} {:>7} {:>10} {:>10} {:>10} {:>10}",
            "op (ms)", "members", "median", "p99", "max", "cpu mean"
        );
        messages(&mut devices, members, ops, "");

        let victim = identity(members - 1);
        let commit_ops = if members >= 1000 { ops / 10 } else { ops / 2 }.max(3);
        let mut commit = Vec::new();
        for _ in 0..commit_ops {
            let t = Timer::start();
            devices[0]
                .commit(GROUP, &[], std::slice::from_ref(&victim))
                .unwrap();
            commit.push(t.stop());
            devices[0].discard_commit(GROUP).unwrap();
        }
        report("commit", members, commit);

        // Device 0 swaps the last device for a fresh one of the same account; device 1 and
        // the Delivery Service process each swap.
        let (mut process, mut ds_check) = (Vec::new(), Vec::new());
        for _ in 0..commit_ops {
            let fresh = Device::new(victim.clone()).unwrap();
            let bundle = devices[0]
                .commit(
                    GROUP,
                    &[fresh.key_package(false).unwrap()],
                    std::slice::from_ref(&victim),
                )
                .unwrap();
            let t = Timer::start();
            let check = ds
                .check_commit(&bundle.commit, &identity(0), &allowed)
                .unwrap();
            ds_check.push(t.stop());
            ds.apply(check).unwrap();
            devices[0].confirm_commit(GROUP).unwrap();
            let t = Timer::start();
            devices[1].process_commit(&bundle.commit).unwrap();
            process.push(t.stop());
        }
        report("process", members, process);
        report("ds_check", members, ds_check);
        // Every commit above left an epoch behind: each device now keeps PAST_EPOCHS of them
        // (each with its member list), as a device of a group that has lived a while does.
        messages(&mut devices, members, (ops / 4).max(1), "_kept");
    }
}
