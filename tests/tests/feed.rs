//! The account's membership feed through the real server, on SQLite and on Postgres
//! (docs/PROTOCOL.md, "Memberships"): a client that follows its memberships is told when it
//! is added to a conversation (at creation and later), removed, and re-added, and nobody
//! else is told; after days offline (a new connection) its list holds what changed
//! meanwhile; asking twice on one connection is refused `already_following`; a list that
//! cannot be read (Postgres stopped) is refused retryably and asked again. The cluster case
//! (a change committed on another node) is in `cluster.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_core::doc::write;
use confab_core::ids::DocId;
use confab_core::model::conversation::{Member, MemberStatus, Role};
use confab_core::protocol::{ClientFrame, Membership, ServerFrame};
use confab_e2e::{now_ms, Backend, Client, Device, TestServer};

const WAIT: Duration = Duration::from_secs(10);

/// Follows the memberships on `client` and returns the whole list (every page).
async fn follow(client: &mut Client) -> Vec<Membership> {
    follow_memberships(client).await.unwrap()
}

/// The next membership push for `conv`.
async fn told(client: &mut Client, conv: &str) -> Membership {
    membership_push(client, conv, WAIT).await.unwrap()
}

/// No membership push at all arrives within `wait`.
async fn told_nothing(client: &mut Client, wait: Duration) {
    let any = client
        .wait_for(wait, |f| match f {
            ServerFrame::Membership { conv, .. } => Some(conv.clone()),
            _ => None,
        })
        .await;
    assert!(any.is_err(), "told of {any:?}");
}

fn entry(conv: &str, role: Role, status: MemberStatus) -> (String, Role, MemberStatus) {
    (conv.to_owned(), role, status)
}

fn states(list: &[Membership]) -> Vec<(String, Role, MemberStatus)> {
    list.iter()
        .map(|m| (m.conv.as_str().to_owned(), m.role, m.status))
        .collect()
}

fn set_status(
    alice: &mut Device,
    conv_doc: &DocId,
    who: &str,
    status: MemberStatus,
) -> confab_core::automerge::Change {
    alice
        .write(conv_doc, |d, t| {
            write::set_member_status(d, t, now_ms(), &acc(who), status)
        })
        .unwrap()
}

fn add(alice: &mut Device, conv_doc: &DocId, who: &str) -> confab_core::automerge::Change {
    let member = Member {
        invited_by: Some(acc("alice")),
        joined_at: Some(now_ms()),
        ..Member::new(acc(who), Role::Member)
    };
    alice
        .write(conv_doc, |d, t| write::add_member(d, t, now_ms(), &member))
        .unwrap()
}

async fn feed(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let mut cc = connect(&server, "carol").await;
    assert!(follow(&mut cb).await.is_empty(), "bob is in nothing yet");
    assert!(follow(&mut cc).await.is_empty());

    // Asking twice on one connection is misuse: refused, not fatal, pushes go on.
    cb.send(&ClientFrame::Memberships {}).await.unwrap();
    let (code, fatal) = cb
        .wait_for(WAIT, |f| match f {
            ServerFrame::Error { code, fatal, .. } => Some((code.clone(), *fatal)),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!((code.as_str(), fatal), ("already_following", false));

    // Added at creation: bob is told, with the conversation's seq; carol is not.
    let (g1, create) = create_group(&mut alice, "feed1", &["bob"]);
    assert_acked(&ca.submit(&g1, &[create]).await.unwrap());
    let added = told(&mut cb, "feed1").await;
    assert_eq!(
        (added.role, added.status, added.seq),
        (Role::Member, MemberStatus::Active, 1)
    );
    told_nothing(&mut cc, Duration::from_millis(800)).await;

    // Removed: told, with a later seq. A change that is not about bob tells him nothing.
    let removal = set_status(&mut alice, &g1, "bob", MemberStatus::Removed);
    assert_acked(&ca.submit(&g1, &[removal]).await.unwrap());
    let removed = told(&mut cb, "feed1").await;
    assert_eq!(removed.status, MemberStatus::Removed);
    assert!(removed.seq > added.seq, "{removed:?} after {added:?}");
    let (g2, create) = create_group(&mut alice, "feed2", &["carol"]);
    assert_acked(&ca.submit(&g2, &[create]).await.unwrap());
    assert_eq!(told(&mut cc, "feed2").await.status, MemberStatus::Active);
    told_nothing(&mut cb, Duration::from_millis(800)).await;

    // Added later to a conversation that exists: told.
    let later = add(&mut alice, &g2, "bob");
    assert_acked(&ca.submit(&g2, &[later]).await.unwrap());
    assert_eq!(told(&mut cb, "feed2").await.status, MemberStatus::Active);

    // Offline for days: bob's connection is gone while he is re-added to feed1, added to a
    // new group, and added to and removed from another. His next connection's list holds
    // each as it is now, with the seqs that order them after what he heard.
    cb.close().await;
    let back = add(&mut alice, &g1, "bob");
    assert_acked(&ca.submit(&g1, &[back]).await.unwrap());
    let (g3, create) = create_group(&mut alice, "feed3", &["bob", "carol"]);
    assert_acked(&ca.submit(&g3, &[create]).await.unwrap());
    let (g4, create) = create_group(&mut alice, "feed4", &["bob"]);
    assert_acked(&ca.submit(&g4, &[create]).await.unwrap());
    let ban = set_status(&mut alice, &g4, "bob", MemberStatus::Banned);
    assert_acked(&ca.submit(&g4, &[ban]).await.unwrap());
    let mut cb = connect(&server, "bob").await;
    let list = follow(&mut cb).await;
    assert_eq!(
        states(&list),
        vec![
            entry("feed1", Role::Member, MemberStatus::Active),
            entry("feed2", Role::Member, MemberStatus::Active),
            entry("feed3", Role::Member, MemberStatus::Active),
            entry("feed4", Role::Member, MemberStatus::Banned),
        ]
    );
    let feed1 = list.iter().find(|m| m.conv.as_str() == "feed1").unwrap();
    assert!(feed1.seq > removed.seq, "the re-add supersedes the removal");
    // Only bob's own memberships: alice's and carol's rows are not in his list.
    assert!(!list.iter().any(|m| m.role == Role::Owner));

    // Live again after the list.
    let leave = set_status(&mut alice, &g3, "bob", MemberStatus::Removed);
    assert_acked(&ca.submit(&g3, &[leave]).await.unwrap());
    assert_eq!(told(&mut cb, "feed3").await.status, MemberStatus::Removed);

    // Not following, not told: a connection that never asked gets no membership frames.
    let mut quiet = connect(&server, "bob").await;
    let (g5, create) = create_group(&mut alice, "feed5", &["bob"]);
    assert_acked(&ca.submit(&g5, &[create]).await.unwrap());
    assert_eq!(told(&mut cb, "feed5").await.status, MemberStatus::Active);
    told_nothing(&mut quiet, Duration::from_millis(800)).await;

    for c in [ca, cb, cc, quiet] {
        c.close().await;
    }
}

#[tokio::test]
async fn the_membership_feed_tells_only_the_account_and_survives_an_offline_gap_on_sqlite() {
    feed(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_membership_feed_tells_only_the_account_and_survives_an_offline_gap_on_postgres() {
    feed(Backend::Postgres).await;
}

/// The list cannot be read while Postgres is down (a private cluster stopped for real): the
/// answer is a retryable `unavailable` with `retry_after_ms` and no document, the connection
/// is not left half-registered, and the same connection's next `memberships` (after the
/// database is back) gets the list instead of `already_following`.
#[tokio::test]
async fn a_list_refused_while_the_database_is_down_is_asked_again_on_postgres() {
    use confab_e2e::pg_cluster::PgCluster;
    use std::sync::Arc;
    let cluster = Arc::new(PgCluster::start().unwrap());
    let data_dir = cluster.server_dir("feed");
    let server = TestServer::start_on(Some(cluster.url()), data_dir, &[])
        .await
        .unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let (g, create) = create_group(&mut alice, "outage1", &["bob"]);
    assert_acked(&ca.submit(&g, &[create]).await.unwrap());
    ca.close().await;
    let mut cb = connect(&server, "bob").await;

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_fast())
        .await
        .unwrap()
        .unwrap();
    readyz_until(&server, Duration::from_secs(1), 503, Duration::from_secs(5)).await;
    cb.send(&ClientFrame::Memberships {}).await.unwrap();
    let refused = cb
        .wait_for(WAIT, |f| match f {
            ServerFrame::Error { .. } | ServerFrame::Memberships { .. } => Some(f.clone()),
            _ => None,
        })
        .await
        .unwrap();
    match refused {
        ServerFrame::Error {
            code,
            doc: None,
            hash: None,
            fatal: false,
            retry_after_ms: Some(wait),
            ..
        } => assert!(code == "unavailable" && wait > 0, "{code} {wait}"),
        other => panic!("expected a retryable refusal of the list, got {other:?}"),
    }

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_again())
        .await
        .unwrap()
        .unwrap();
    readyz_until(
        &server,
        Duration::from_secs(1),
        200,
        Duration::from_secs(20),
    )
    .await;
    let list = follow(&mut cb).await;
    assert_eq!(
        states(&list),
        vec![entry("outage1", Role::Member, MemberStatus::Active)]
    );
    // And the pushes flow on that connection.
    let mut ca = connect(&server, "alice").await;
    let removal = set_status(&mut alice, &g, "bob", MemberStatus::Removed);
    assert_acked(&ca.submit(&g, &[removal]).await.unwrap());
    // Pushed, or listed again if the node's listener came back after the notification (a
    // resync lists every following connection again).
    let status = cb
        .wait_for(WAIT, |f| match f {
            ServerFrame::Membership { conv, status, .. } if conv.as_str() == "outage1" => {
                Some(*status)
            }
            ServerFrame::Memberships { memberships, .. } => memberships
                .iter()
                .find(|m| m.conv.as_str() == "outage1" && m.status != MemberStatus::Active)
                .map(|m| m.status),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(status, MemberStatus::Removed);
    ca.close().await;
    cb.close().await;
}
