//! A history cut and the purge pass that fall due while the store's disk is full
//! (docs/STORAGE.md, "Cutting a part's history", "While the storage is down"): the real
//! server binary with its SQLite file, or a private Postgres cluster's data folder, on a
//! small tmpfs filled to the last byte right after a delete, and freed only after the cut's
//! due time. While full, the part stays at its old generation on the server and on the
//! device, and the server logs that the cut was not claimed or failed, and tries again; once
//! space is back the part is cut, the purge pass drops the old row versions, and nothing
//! acked is lost, neither what was acked before nor what the device wrote while full.
//! Needs root (mount -t tmpfs, su postgres): without it the test fails saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Tmpfs;
use confab_core::ids::ConvId;
use confab_e2e::native_support::*;
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::store_probe::{
    cuts_noted, generation_of, pg_vacuumed, sqlite_files_hold, store_holds,
};
use confab_e2e::TestServer;

const MARKER: &str = "full-disk-cut-marker-5e08";
/// The cut's delay after the delete; the disk is filled well inside it (a Postgres
/// cluster's 160 MB take longer to fill than SQLite's 30).
fn delay_s(postgres: bool) -> u64 {
    if postgres {
        20
    } else {
        4
    }
}
/// What the server logs when a pass cannot claim the due parts, or a claimed cut fails.
const NOT_CLAIMED: &str = "due history cuts not claimed";
const CUT_FAILED: &str = "history cut failed; trying again";

async fn cut_on_a_full_disk(postgres: bool) {
    let name = if postgres { "Postgres" } else { "SQLite" };
    let tmpfs = Tmpfs::mount(
        if postgres { "160m" } else { "30m" },
        "the full-disk history cut test",
    );
    let outside =
        std::env::temp_dir().join(format!("confab-cut-full-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    let cluster = if postgres {
        Some(PgCluster::start_in(tmpfs.path()).unwrap())
    } else {
        None
    };
    let data_dir = match &cluster {
        Some(_) => outside.join("data"),
        None => {
            // The SQLite file is on the tmpfs; the log stays writable outside it.
            let dir = tmpfs.path().join("data");
            std::fs::create_dir_all(&dir).unwrap();
            std::os::unix::fs::symlink(outside.join("server.log"), dir.join("server.log")).unwrap();
            dir
        }
    };
    let delay_s = delay_s(postgres);
    let delay = delay_s.to_string();
    let server = TestServer::start_on_with_log(
        cluster.as_ref().map(|c| c.url()),
        data_dir,
        &["--cut-after-delete-secs", &delay, "--purge-sweep-secs", "1"],
        "warn",
    )
    .await
    .unwrap();
    let dirs = fresh_dirs(&format!("cut-full-{name}"), 1);
    let alice = client(&server, "alice", 1, &dirs[0]);
    alice.set_online(true).await.unwrap();
    let conv = ConvId::new("full-room").unwrap();
    let (part, _) = part_with_a_deleted_message(&alice, &conv, MARKER).await;
    let deleted = Instant::now();
    assert_eq!(cuts_noted(&server).await, 1, "the delete made the part due");

    tmpfs.fill();
    // The device writes until the server meets the full disk (what the store had left
    // takes a few commits): it is not ready from then on.
    let mut expected = BTreeSet::from(["kept body".to_string()]);
    let mut during = Vec::new();
    for i in 0..40 {
        let body = format!("written while full {i} {}", "x".repeat(3000));
        during.push(send(&alice, &conv, &format!("full{i}"), &body).await);
        expected.insert(body);
        if until(Duration::from_millis(500), || async {
            server.readyz(Duration::from_secs(1)).await == Some(503)
        })
        .await
        {
            break;
        }
    }
    assert_eq!(
        server.readyz(Duration::from_secs(1)).await,
        Some(503),
        "{name}: the disk is full"
    );
    assert!(
        deleted.elapsed() < Duration::from_secs(delay_s),
        "{name}: the disk filled before the cut was due: {:?}",
        deleted.elapsed()
    );

    // Past the due time, with a few passes of the runner failing.
    tokio::time::sleep(Duration::from_secs(delay_s + 3).saturating_sub(deleted.elapsed())).await;
    let log = server.log();
    assert!(
        log.matches(NOT_CLAIMED).count() + log.matches(CUT_FAILED).count() >= 2,
        "{name}: the runner said it could not cut, and kept trying: {}",
        server.log_tail(20)
    );
    assert_eq!(
        generation_on(&alice, &part).await,
        Some(0),
        "{name}: no device saw a cut that was never stored"
    );

    tmpfs.free();
    let back = Instant::now();
    assert!(
        until(Duration::from_secs(30), || async {
            generation_of(&server, &part).await >= 1 && cuts_noted(&server).await == 0
        })
        .await,
        "{name}: the part was cut once space was back: {}",
        server.log_tail(20)
    );
    println!("{name}: cut {:?} after space was back", back.elapsed());
    assert_eq!(generation_of(&server, &part).await, 1, "{name}: cut once");
    for id in during {
        accepted(&alice, id).await;
    }
    assert!(
        until(Duration::from_secs(20), || async {
            generation_on(&alice, &part).await == Some(1) && live(&alice, &conv).await == expected
        })
        .await,
        "{name}: the device is at the new generation with every acked message: {:?}",
        live(&alice, &conv).await.len()
    );

    // The purge pass after the cut drops the old row versions by itself.
    let dropped = until(Duration::from_secs(10), || async {
        match &cluster {
            None => !sqlite_files_hold(&server, MARKER),
            Some(_) => pg_vacuumed(&server, "changes").await,
        }
    })
    .await;
    assert!(dropped, "{name}: no purge pass after space was back");
    assert!(
        !store_holds(&server, MARKER).await,
        "{name}: the deleted body is gone"
    );
    alice.set_online(false).await.unwrap();
    drop(alice);
    drop(server);
    drop(cluster);
    drop(tmpfs);
    for dir in dirs.iter().chain([&outside]) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_due_on_a_full_sqlite_disk_runs_once_space_is_back() {
    cut_on_a_full_disk(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_due_on_a_full_postgres_disk_runs_once_space_is_back() {
    cut_on_a_full_disk(true).await;
}
