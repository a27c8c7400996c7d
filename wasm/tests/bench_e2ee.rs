//! What MLS (`confab_core::e2ee`) costs a device in the browser, in groups of 10, 100 and
//! 1,000 devices: the wasm twin of core/benches/e2ee.rs, built as the package ships (opt-level
//! z). Heavy, so it runs only when built with CONFAB_WASM_BENCH=1 (`cargo xtask wasm test
//! --bench`); it prints its table to the console (run with `-- --nocapture` to see it).
//!
//! - `encrypt`: one application message of 200 bytes (target ≤ 2 ms).
//! - `decrypt`: the same, read by another member (target ≤ 0.5 ms).
//! - `commit`: a member makes a commit removing one device, made then discarded (target
//!   ≤ 50 ms at 1,000).
//! - `process`: a member processes another's commit that removes a device and adds a fresh
//!   one of the same account (target ≤ 20 ms).
//! - `ds_check`: the Delivery Service's check of that commit (the server runs it natively;
//!   here for comparison).
//! - `encrypt_kept`, `decrypt_kept`: `encrypt` and `decrypt` again after those commits, the
//!   devices keeping `PAST_EPOCHS` past epochs (openmls writes them all on every message).
//!
//! Each op is timed alone with `performance.now()` (a page that is not cross-origin isolated
//! may see it coarsened; headless Chromium here ticks by 5 µs); the mean is the batch's
//! total over its count. The setup (key generation of every device, the commit adding them
//! all, the Delivery Service's check of it, one Welcome processed) is timed too.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use confab_core::e2ee::{Device, DeviceIdentity, GroupView};
use confab_core::ids::{AccountId, DeviceId, TenantId};
use support::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GROUP: &[u8] = b"acme/conv/bench";
/// Encryptions and decryptions per group size.
const OPS: usize = 200;

fn identity(i: usize) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new("acme").unwrap(),
        AccountId::new(format!("user{i}")).unwrap(),
        DeviceId::new("d1").unwrap(),
    )
}

struct Setup {
    /// The creator and one member; the others never join (they need not for the ops).
    devices: Vec<Device>,
    ds: GroupView,
    allowed: BTreeSet<DeviceIdentity>,
}

async fn setup(members: usize) -> Setup {
    let t0 = precise_now();
    let mut devices = Vec::with_capacity(members);
    let mut packages = Vec::with_capacity(members - 1);
    for i in 0..members {
        let device = Device::new(identity(i)).unwrap();
        if i > 0 {
            packages.push(device.key_package(false).unwrap());
        }
        // Only the first two are kept: the others' private keys are never needed.
        if i < 2 {
            devices.push(device);
        }
        if i % 50 == 49 {
            // Let the page breathe (the test driver talks to it).
            sleep(0.0).await;
        }
    }
    let t_keys = precise_now();
    let allowed: BTreeSet<DeviceIdentity> = (0..members).map(identity).collect();
    let init = devices[0].create_group(GROUP).unwrap();
    let mut ds =
        GroupView::create(&init.group_info, &init.ratchet_tree, &identity(0), &allowed).unwrap();
    sleep(0.0).await;
    let t_commit = precise_now();
    let bundle = devices[0].commit(GROUP, &packages, &[]).unwrap();
    let made = precise_now() - t_commit;
    sleep(0.0).await;
    let t_check = precise_now();
    let check = ds
        .check_commit(&bundle.commit, &identity(0), &allowed)
        .unwrap();
    ds.apply(check).unwrap();
    let checked = precise_now() - t_check;
    devices[0].confirm_commit(GROUP).unwrap();
    let welcome = bundle.welcome.clone().unwrap();
    sleep(0.0).await;
    let t_join = precise_now();
    devices[1].join(&welcome).unwrap();
    let joined = precise_now() - t_join;
    log(&format!(
        "bench: e2ee setup of {members} devices: {members} devices and {} key packages in \
         {:.0} ms ({:.2} ms each); commit adding {} ({} KiB, Welcome {} KiB) made in {:.0} ms, \
         checked and applied by the DS in {:.0} ms; one join from the Welcome in {:.0} ms; \
         total {:.0} ms",
        members - 1,
        t_keys - t0,
        (t_keys - t0) / members as f64,
        members - 1,
        bundle.commit.len() / 1024,
        welcome.len() / 1024,
        made,
        checked,
        joined,
        precise_now() - t0
    ));
    Setup {
        devices,
        ds,
        allowed,
    }
}

/// One row: median, p99 and max of single operations, and the mean (ms).
fn row(op: &str, members: usize, mut times: Vec<f64>) -> String {
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    format!(
        "bench: {op:<13} {members:>7} {:>8} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        mean
    )
}

/// `encrypt` and `decrypt` of a 200-byte message, `ops` times each: their two rows.
fn messages(devices: &mut [Device], members: usize, ops: usize, suffix: &str) -> [String; 2] {
    let plaintext = vec![b'x'; 200];
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..ops {
        let t = precise_now();
        let ct = devices[0].encrypt(GROUP, b"msg", &plaintext).unwrap();
        enc.push(precise_now() - t);
        let t = precise_now();
        let read = devices[1].decrypt(&ct).unwrap();
        dec.push(precise_now() - t);
        assert_eq!(read.plaintext, plaintext);
    }
    [
        row(&format!("encrypt{suffix}"), members, enc),
        row(&format!("decrypt{suffix}"), members, dec),
    ]
}

#[wasm_bindgen_test]
async fn mls_in_groups_of_10_100_1000() {
    if option_env!("CONFAB_WASM_BENCH").is_none() {
        log("bench skipped (build with CONFAB_WASM_BENCH=1)");
        return;
    }
    let started = precise_now();
    let mut table = vec![format!(
        "bench: {:<13} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "op (ms)", "members", "runs", "median", "p99", "max", "mean"
    )];
    for members in [10, 100, 1000] {
        let Setup {
            mut devices,
            mut ds,
            allowed,
        } = setup(members).await;
        table.extend(messages(&mut devices, members, OPS, ""));
        sleep(0.0).await;

        let victim = identity(members - 1);
        let commit_ops = if members >= 1000 { 20 } else { 50 };
        let mut commit = Vec::new();
        for _ in 0..commit_ops {
            let t = precise_now();
            devices[0]
                .commit(GROUP, &[], std::slice::from_ref(&victim))
                .unwrap();
            commit.push(precise_now() - t);
            devices[0].discard_commit(GROUP).unwrap();
            sleep(0.0).await;
        }
        table.push(row("commit", members, commit));

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
            let t = precise_now();
            let check = ds
                .check_commit(&bundle.commit, &identity(0), &allowed)
                .unwrap();
            ds_check.push(precise_now() - t);
            ds.apply(check).unwrap();
            devices[0].confirm_commit(GROUP).unwrap();
            let t = precise_now();
            let outcome = devices[1].process_commit(&bundle.commit).unwrap();
            process.push(precise_now() - t);
            assert_eq!(outcome.removed, vec![victim.clone()]);
            sleep(0.0).await;
        }
        table.push(row("process", members, process));
        table.push(row("ds_check", members, ds_check));
        // The devices now keep PAST_EPOCHS past epochs, as in a group that has lived a while.
        table.extend(messages(&mut devices, members, OPS / 4, "_kept"));
        sleep(0.0).await;
    }
    for line in table {
        log(&line);
    }
    log(&format!(
        "bench: e2ee in the browser took {:.1} s in all",
        (precise_now() - started) / 1000.0
    ));
}
