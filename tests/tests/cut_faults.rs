//! A history cut that falls due while the storage is down (docs/STORAGE.md, "Cutting a
//! part's history", "Storage health"): the real server binary on a private Postgres cluster
//! (the machine's stays up), stopped right after a delete and started again only after the
//! cut's due time. The part stays due while Postgres is away (the runner logs that it could
//! not claim the due cuts and tries again at its next pass), is cut once Postgres is back,
//! and nothing acked is lost: neither what was acked before the outage nor what a device
//! wrote during it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::ids::{ConvId, DocId, TenantId};
use confab_e2e::native_support::*;
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::store_probe::{cuts_noted, generation_of, store_holds};
use confab_e2e::TestServer;

const MARKER: &str = "outage-cut-marker-7c41";
/// The cut's delay after the delete; Postgres is stopped well inside it.
const DELAY_S: u64 = 3;
/// What the runner logs when it cannot reach the store to claim the due parts.
const NOT_CLAIMED: &str = "due history cuts not claimed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_due_while_postgres_is_down_runs_once_it_is_back() {
    let cluster = Arc::new(PgCluster::start().unwrap());
    let data_dir = cluster.server_dir("cut-faults");
    let delay = DELAY_S.to_string();
    let server = TestServer::start_on_with_log(
        Some(cluster.url()),
        data_dir,
        &["--cut-after-delete-secs", &delay],
        "warn",
    )
    .await
    .unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let dirs = fresh_dirs("cut-outage", 2);
    let alice = client(&server, "alice", 1, &dirs[0]);
    alice.set_online(true).await.unwrap();
    let conv = ConvId::new("outage-room").unwrap();
    let (part, _) = part_with_a_deleted_message(&alice, &conv, MARKER).await;
    let deleted = Instant::now();
    assert_eq!(cuts_noted(&server).await, 1, "the delete made the part due");

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_fast())
        .await
        .unwrap()
        .unwrap();
    assert!(
        deleted.elapsed() < Duration::from_secs(DELAY_S),
        "Postgres stopped before the cut was due: {:?}",
        deleted.elapsed()
    );
    // A device writes while the storage is down: stored once it is back.
    let during = send(&alice, &conv, "during", "written while down").await;
    // Past the due time, with a few passes of the runner (one a second) failing.
    tokio::time::sleep(Duration::from_secs(DELAY_S + 3).saturating_sub(deleted.elapsed())).await;
    assert!(
        server.log().contains(NOT_CLAIMED),
        "the runner said it could not claim: {}",
        server.log_tail(20)
    );
    assert!(
        server.log().matches(NOT_CLAIMED).count() >= 2,
        "the runner kept trying: {}",
        server.log_tail(20)
    );
    assert_eq!(
        generation_on(&alice, &part).await,
        Some(0),
        "no device saw a cut that was never stored"
    );

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_again())
        .await
        .unwrap()
        .unwrap();
    let back = Instant::now();
    assert!(
        until(Duration::from_secs(30), || async {
            generation_of(&server, &part).await >= 1 && cuts_noted(&server).await == 0
        })
        .await,
        "the part was cut once Postgres was back: {}",
        server.log_tail(20)
    );
    println!("cut {:?} after Postgres was back", back.elapsed());
    assert_eq!(generation_of(&server, &part).await, 1, "cut once");
    assert!(
        !store_holds(&server, MARKER).await,
        "the deleted body is gone from pg_dump"
    );
    accepted(&alice, during).await;

    // Every acked message is there, on the writer and on a device that starts now.
    let expected = BTreeSet::from(["kept body".to_string(), "written while down".to_string()]);
    assert!(
        until(Duration::from_secs(20), || async {
            generation_on(&alice, &part).await == Some(1) && live(&alice, &conv).await == expected
        })
        .await,
        "alice is at the new generation with every acked message: {:?}",
        live(&alice, &conv).await
    );
    let bob = client(&server, "bob", 1, &dirs[1]);
    bob.set_online(true).await.unwrap();
    bob.open(DocId::conv(&tenant, &conv)).await.unwrap();
    bob.open(part.clone()).await.unwrap();
    assert!(
        until(Duration::from_secs(20), || async {
            live(&bob, &conv).await == expected
        })
        .await,
        "a new device holds every acked message: {:?}",
        live(&bob, &conv).await
    );
    assert_eq!(generation_on(&bob, &part).await, Some(1));
    let all = bodies(&bob, &conv).await;
    assert!(!all.iter().any(|b| b.contains(MARKER)), "{all:?}");
    assert!(
        !store_holds(&server, MARKER).await,
        "nothing wrote the body back"
    );
    for c in [&alice, &bob] {
        c.set_online(false).await.unwrap();
    }
    drop((alice, bob));
    drop(server);
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
