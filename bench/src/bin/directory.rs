//! What the Delivery Service's directory check adds to a commit's acceptance (docs/E2EE.md,
//! "Every leaf is a registered device"), in groups of 10, 100 and 1,000 devices, on SQLite
//! and Postgres. Beside the MLS check of a commit (`GroupView::check_commit`) and the store's
//! commit of the change carrying it, the store's `directory_of`:
//!
//! - first check: every account of the group, what a unit asks once after it loads (or
//!   absorbs another node's commit);
//! - steady state, nothing added: the committer's account (its update path's leaf) and the
//!   devices removed after the generation the group was checked at (none here);
//! - steady state, one added: the same and the added device's account;
//!
//! and `StagedCheck::check_directory` on the steady answer. "Acceptance" is the sum of
//! ds_check, the steady query, check_directory and the stored commit (one `conv` change of
//! the commit's bytes, no projection rows): the Automerge validation of the change is not in
//! it, so the share is an upper bound.
//!
//! ```text
//! cargo run --release -p confab-bench --bin directory -- [--backends sqlite,postgres] [--sizes 10,100,1000] [--runs 50]
//! ```
//!
//! A sealed send asks nothing of the directory (its sender is a leaf already), so it costs
//! the same as before.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use confab_core::e2ee::{Device, DeviceIdentity, Directory, DirectoryAsk, GroupView};
use confab_core::ids::{AccountId, ConvId, DeviceId, DocId, TenantId};
use confab_server::maintenance::open_store;
use confab_server::store::devices::{NewKeyPackage, Upload};
use confab_server::store::{NewChange, Store};

#[derive(Parser, Debug)]
struct Args {
    /// Backends: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg: String,
    /// Group sizes (devices, one per account).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    sizes: Vec<usize>,
    /// Timed runs of each step (the median is reported).
    #[arg(long, default_value_t = 50)]
    runs: usize,
}

const GROUP: &[u8] = b"bench/conv/directory";

fn tenant() -> TenantId {
    TenantId::new("bench").expect("a valid tenant literal")
}

/// Device `i` of the group of `n` (each size its own accounts: the directory binds a
/// device's key once).
fn identity(n: usize, i: usize) -> DeviceIdentity {
    DeviceIdentity::new(
        tenant(),
        AccountId::new(format!("g{n}-user{i}")).expect("a valid account"),
        DeviceId::new("d1").expect("a valid device"),
    )
}

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times
        .get(times.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// What one group size is measured on.
struct Group {
    /// Devices 0..n in the group, and device n, which a commit adds.
    devices: Vec<Device>,
    view: GroupView,
    /// An empty commit of device 0 (its update path, the leaf the directory checks, seals to
    /// every other device, as a removal's does).
    empty: Vec<u8>,
    /// Device 0's commit adding device n.
    add: Vec<u8>,
}

/// A group of `n` devices made by device 0 adding the others in one commit, the Delivery
/// Service's view of it, and two commits of device 0 on it (made, then discarded).
fn group(n: usize) -> Result<Group> {
    let mut devices: Vec<Device> = (0..=n)
        .map(|i| Device::new(identity(n, i)))
        .collect::<Result<_, _>>()?;
    let allowed: BTreeSet<DeviceIdentity> = (0..=n).map(|i| identity(n, i)).collect();
    let init = devices[0].create_group(GROUP)?;
    let mut view = GroupView::create(
        &init.group_info,
        &init.ratchet_tree,
        &identity(n, 0),
        &allowed,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let packages = devices[1..n]
        .iter()
        .map(|d| d.key_package(false))
        .collect::<Result<Vec<_>, _>>()?;
    let bundle = devices[0].commit(GROUP, &packages, &[])?;
    let staged = view
        .check_commit(&bundle.commit, &identity(n, 0), &allowed)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    view.apply(staged).map_err(|e| anyhow::anyhow!("{e}"))?;
    devices[0].confirm_commit(GROUP)?;
    let empty = devices[0].commit(GROUP, &[], &[])?.commit;
    devices[0].discard_commit(GROUP)?;
    let package = devices[n].key_package(false)?;
    let add = devices[0].commit(GROUP, &[package], &[])?.commit;
    devices[0].discard_commit(GROUP)?;
    Ok(Group {
        devices,
        view,
        empty,
        add,
    })
}

async fn register(store: &dyn Store, devices: &[Device]) -> Result<()> {
    for (i, d) in devices.iter().enumerate() {
        let package = NewKeyPackage {
            reference: format!("ref-{}-{i}", devices.len()).into_bytes(),
            bytes: vec![0; 300],
        };
        let upload = Upload {
            device: d.identity(),
            signature_key: d.signature_key(),
            packages: std::slice::from_ref(&package),
            last_resort: None,
            cap: 100,
            at: 1,
        };
        store
            .upload_key_packages(&upload)
            .await?
            .map_err(|e| anyhow::anyhow!("registering {}: {e:?}", d.identity()))?;
    }
    Ok(())
}

/// The `conv` change carrying a commit, as the committer stores it (no projection rows).
fn stored_change(n: usize, seq: u64, commit: &[u8]) -> Result<NewChange> {
    let doc = DocId::conv(&tenant(), &ConvId::new(format!("dir{n}"))?);
    Ok(confab_bench::stored::change(
        doc,
        seq,
        commit.to_vec(),
        Vec::new(),
    ))
}

fn fail(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

async fn run(store: &dyn Store, args: &Args, backend: &str) -> Result<()> {
    println!(
        "{backend}: devices | ds_check | first check (all accounts) | steady, none added | steady, one added | check_directory | stored commit | steady beside ds_check | steady beside acceptance"
    );
    for &n in &args.sizes {
        let g = group(n)?;
        register(store, &g.devices).await?;
        // A removal elsewhere in the tenant: the group is checked at a generation above 0.
        let gone = Device::new(DeviceIdentity::new(
            tenant(),
            AccountId::new(format!("g{n}-gone"))?,
            DeviceId::new("d1")?,
        ))?;
        register(store, std::slice::from_ref(&gone)).await?;
        store.remove_device(gone.identity(), 1).await?;
        let allowed: BTreeSet<DeviceIdentity> = (0..=n).map(|i| identity(n, i)).collect();
        let committer = identity(n, 0);
        let all = DirectoryAsk {
            accounts: (0..n).map(|i| identity(n, i).account).collect(),
            removed_after: None,
        };
        let generation = store.directory_of(&tenant(), &all).await?.generation;
        let none_added = DirectoryAsk {
            accounts: vec![committer.account.clone()],
            removed_after: Some(generation),
        };
        let one_added = DirectoryAsk {
            accounts: vec![committer.account.clone(), identity(n, n).account],
            removed_after: Some(generation),
        };
        let mut times: [Vec<Duration>; 6] = Default::default();
        for run in 0..args.runs {
            let t = Instant::now();
            let staged = g
                .view
                .check_commit(&g.empty, &committer, &allowed)
                .map_err(fail)?;
            times[0].push(t.elapsed());
            let t = Instant::now();
            let steady = store.directory_of(&tenant(), &none_added).await?;
            times[2].push(t.elapsed());
            let t = Instant::now();
            let directory = Directory::new(steady.entries);
            staged.check_directory(&directory).map_err(fail)?;
            times[4].push(t.elapsed());
            let t = Instant::now();
            let first = store.directory_of(&tenant(), &all).await?;
            times[1].push(t.elapsed());
            anyhow::ensure!(
                first.entries.len() == n,
                "{} entries for {n}",
                first.entries.len()
            );
            let added = g
                .view
                .check_commit(&g.add, &committer, &allowed)
                .map_err(fail)?;
            let t = Instant::now();
            let answer = store.directory_of(&tenant(), &one_added).await?;
            times[3].push(t.elapsed());
            added
                .check_directory(&Directory::new(answer.entries))
                .map_err(fail)?;
            let change = stored_change(n, run as u64 + 1, &g.empty)?;
            let t = Instant::now();
            store.commit(std::slice::from_ref(&change)).await?;
            times[5].push(t.elapsed());
        }
        let [check, first, steady, added, verdict, stored] = times.map(median);
        let acceptance = check + steady + verdict + stored;
        println!(
            "{backend}: {n:>7} | {check:>8.3} | {first:>26.3} | {steady:>18.3} | {added:>17.3} | {verdict:>15.4} | {stored:>13.3} | {:>+21.1}% | {:>+23.1}%",
            (steady + verdict) / check * 100.0,
            (steady + verdict) / acceptance * 100.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    for backend in &args.backends {
        match backend.as_str() {
            "sqlite" => {
                let dir = std::env::temp_dir()
                    .join(format!("confab-bench-directory-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let store = open_store(None, &dir).await?;
                let result = run(store.as_ref(), &args, backend).await;
                drop(store);
                drop(std::fs::remove_dir_all(&dir));
                result?;
            }
            "postgres" => {
                use sqlx::{Connection, Executor};
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", args.pg))
                    .await
                    .context("Postgres")?;
                let name = "confab_bench_directory";
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await?;
                let url = format!("{}/{name}", args.pg);
                let store = open_store(Some(&url), &PathBuf::from(".")).await?;
                let result = run(store.as_ref(), &args, backend).await;
                drop(store);
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                result?;
            }
            other => anyhow::bail!("unknown backend {other}"),
        }
    }
    Ok(())
}
