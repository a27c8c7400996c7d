//! Join requests through the real server binary, on SQLite and Postgres (docs/POLICY.md,
//! "Joining"): the asker's change is accepted, the admin subscribed to the conversation is
//! pushed it, the asker's membership feed says `requested` and then `active` once approved,
//! and the asker reads nothing of the conversation before that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_core::automerge::ScalarValue;
use confab_core::doc::read;
use confab_core::doc::schema::keys::{JOIN_APPROVAL_REQUIRED, JOIN_POLICY};
use confab_core::doc::write;
use confab_core::model::conversation::{Member, MemberStatus, Role};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::{now_ms, Backend, Client, Device, TestServer};

const WAIT: Duration = Duration::from_secs(10);

async fn told(client: &mut Client, conv: &str) -> MemberStatus {
    client
        .wait_for(WAIT, |f| match f {
            ServerFrame::Membership {
                conv: c, status, ..
            } if c.as_str() == conv => Some(*status),
            _ => None,
        })
        .await
        .unwrap()
}

async fn requests(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let mut cc = connect(&server, "carol").await;
    cc.send(&ClientFrame::Memberships {}).await.unwrap();

    let (g, create) = create_group(&mut alice, "join1", &["bob"]);
    assert_acked(&ca.submit(&g, &[create]).await.unwrap());
    let open = alice
        .write(&g, |d, t| {
            write::set_settings(
                d,
                t,
                now_ms(),
                &[
                    (JOIN_POLICY, ScalarValue::Str("open".into())),
                    (JOIN_APPROVAL_REQUIRED, ScalarValue::Boolean(true)),
                ],
            )
        })
        .unwrap();
    let open_seq = match ca.submit(&g, &[open]).await.unwrap().as_slice() {
        [confab_e2e::client::Answer::Ack { seq, .. }] => *seq,
        other => panic!("{other:?}"),
    };
    ca.subscribe(&g, open_seq).await.unwrap();

    // Carol asks from a replica of what she was given (the creation and settings).
    let mut carol = Device::new("carol", 1);
    let given = write::with_actor(alice.doc(&g).clone(), carol.actor.clone());
    carol.docs.insert(g.clone(), given);
    let mut entry = Member::new(acc("carol"), Role::Member);
    entry.status = MemberStatus::Requested;
    let ask = carol
        .write(&g, |d, t| write::add_member(d, t, now_ms(), &entry))
        .unwrap();
    assert_acked(&cc.submit(&g, &[ask]).await.unwrap());
    assert_eq!(told(&mut cc, "join1").await, MemberStatus::Requested);
    // The admin is pushed the request with the conversation's changes.
    let pushed = ca.pushes_until(&g, open_seq + 1).await.unwrap();
    alice.apply(&g, &pushed).unwrap();
    let conv = read::read_conversation(alice.doc(&g), g.conv_id().unwrap().clone());
    assert_eq!(
        conv.member(&acc("carol")).map(|m| m.status),
        Some(MemberStatus::Requested)
    );
    // The asker reads nothing yet.
    assert!(
        cc.subscribe(&g, 0).await.is_err(),
        "a requester reads the conversation"
    );

    // Approved: carol's feed says active and she reads it.
    let mut approved = Member::new(acc("carol"), Role::Member);
    approved.invited_by = Some(acc("alice"));
    approved.joined_at = Some(now_ms());
    let approve = alice
        .write(&g, |d, t| write::add_member(d, t, now_ms(), &approved))
        .unwrap();
    assert_acked(&ca.submit(&g, &[approve]).await.unwrap());
    assert_eq!(told(&mut cc, "join1").await, MemberStatus::Active);
    let mut cc2 = connect(&server, "carol").await;
    cc2.subscribe(&g, 0).await.unwrap();
    for c in [ca, cc, cc2] {
        c.close().await;
    }
}

#[tokio::test]
async fn join_requests_reach_admins_and_the_askers_feed_on_sqlite() {
    requests(Backend::Sqlite).await;
}

#[tokio::test]
async fn join_requests_reach_admins_and_the_askers_feed_on_postgres() {
    requests(Backend::Postgres).await;
}
