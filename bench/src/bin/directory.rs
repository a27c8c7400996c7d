//! What the Delivery Service's directory check adds to a commit's acceptance (docs/E2EE.md,
//! "Every leaf is a registered device"), in groups of 10, 100 and 1,000 devices, on SQLite
//! and Postgres: beside the MLS check of a commit (`GroupView::check_commit`, the work the
//! acceptor did before), the store's `directory_of` for the accounts a commit brings leaves
//! of (one: a commit adding a device, or a member's update path; all of them: the commit of a
//! creation that adds every device) and `StagedCheck::check_directory` on its answer.
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
use confab_core::e2ee::{Device, DeviceIdentity, Directory, GroupView};
use confab_core::ids::{AccountId, DeviceId, TenantId};
use confab_server::maintenance::open_store;
use confab_server::store::devices::{NewKeyPackage, Upload};
use confab_server::store::Store;

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

/// A group of `n` devices made by device 0 adding the others in one commit, the Delivery
/// Service's view of it, and an empty commit of device 0 (its update path, the leaf the
/// directory checks, seals to every other device, as a removal's does).
fn group(n: usize) -> Result<(Vec<Device>, GroupView, Vec<u8>)> {
    let mut devices: Vec<Device> = (0..n)
        .map(|i| Device::new(identity(n, i)))
        .collect::<Result<_, _>>()?;
    let allowed: BTreeSet<DeviceIdentity> = (0..n).map(|i| identity(n, i)).collect();
    let init = devices[0].create_group(GROUP)?;
    let mut view = GroupView::create(
        &init.group_info,
        &init.ratchet_tree,
        &identity(n, 0),
        &allowed,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let packages = devices[1..]
        .iter()
        .map(|d| d.key_package(false))
        .collect::<Result<Vec<_>, _>>()?;
    let bundle = devices[0].commit(GROUP, &packages, &[])?;
    let staged = view
        .check_commit(&bundle.commit, &identity(n, 0), &allowed)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    view.apply(staged).map_err(|e| anyhow::anyhow!("{e}"))?;
    devices[0].confirm_commit(GROUP)?;
    let removal = devices[0].commit(GROUP, &[], &[])?.commit;
    devices[0].discard_commit(GROUP)?;
    Ok((devices, view, removal))
}

async fn register(store: &dyn Store, devices: &[Device]) -> Result<()> {
    for (i, d) in devices.iter().enumerate() {
        let package = NewKeyPackage {
            reference: format!("ref-{i}").into_bytes(),
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

async fn run(store: &dyn Store, args: &Args, backend: &str) -> Result<()> {
    println!(
        "{backend}: devices | ds_check ms | directory_of 1 account ms | directory_of all ms | check_directory ms | added to ds_check (1 account)"
    );
    for &n in &args.sizes {
        let (devices, view, removal) = group(n)?;
        register(store, &devices).await?;
        let allowed: BTreeSet<DeviceIdentity> = (0..n).map(|i| identity(n, i)).collect();
        let one = [identity(n, 0).account];
        let all: Vec<AccountId> = (0..n).map(|i| identity(n, i).account).collect();
        let (mut check, mut query_one, mut query_all, mut verdict) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let t = Instant::now();
            let staged = view
                .check_commit(&removal, &identity(n, 0), &allowed)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            check.push(t.elapsed());
            let t = Instant::now();
            let entries = store.directory_of(&tenant(), &one).await?;
            query_one.push(t.elapsed());
            let t = Instant::now();
            let directory = Directory::new(entries);
            staged
                .check_directory(&directory)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            verdict.push(t.elapsed());
            let t = Instant::now();
            let every = store.directory_of(&tenant(), &all).await?;
            query_all.push(t.elapsed());
            anyhow::ensure!(every.len() == n, "{} entries for {n} devices", every.len());
        }
        let (c, q1, qa, v) = (
            median(check),
            median(query_one),
            median(query_all),
            median(verdict),
        );
        println!(
            "{backend}: {n:>7} | {c:>11.3} | {q1:>25.3} | {qa:>19.3} | {v:>18.4} | {:>+.1}%",
            (q1 + v) / c * 100.0
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
