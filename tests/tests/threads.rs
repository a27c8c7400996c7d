//! Threads follow their parent, through the real server binary on SQLite and on Postgres:
//! a member removed from the parent stops getting the thread's pushes at once (its
//! subscriptions are revoked with `not_parent_member`), may not subscribe again, and its
//! writes to the thread are refused; a thread on a message the parent does not hold is
//! refused `parent_message_missing`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use confab_core::doc::{write, IntentTag};
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::model::conversation::{
    ConvKind, Info, Member, MemberStatus, Role, Settings, ThreadLink, DEFAULT_BUCKET_MS,
};
use confab_core::protocol::ServerFrame;
use confab_e2e::client::Answer;
use confab_e2e::{now_ms, Backend, Device, TestServer};

/// The creation of thread `id` of `parent` on its message `on`, by `owner` with `bob`.
fn thread_creation(
    owner: &mut Device,
    id: &ConvId,
    parent: &ConvId,
    on: &str,
    bob: &str,
) -> (DocId, confab_core::automerge::Change) {
    let doc = conv_doc(id);
    let mut invited = Member::new(acc(bob), Role::Member);
    invited.invited_by = Some(owner.account_id());
    let spec = write::CreateConv {
        kind: ConvKind::Thread,
        created_by: owner.account_id(),
        created_at: now_ms(),
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: Some(ThreadLink {
            parent: parent.clone(),
            message: MessageId::new(on).unwrap(),
            depth: 1,
        }),
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Thread),
        members: vec![Member::new(owner.account_id(), Role::Owner), invited],
        encrypted: false,
    };
    let change = owner
        .write(&doc, |d, t: &IntentTag| {
            write::create_conversation(d, t, &spec)
        })
        .unwrap();
    (doc, change)
}

fn refused_with(answers: &[Answer], code: &str) {
    match answers {
        [Answer::Reject { code: got, .. }] => assert_eq!(got, code),
        other => panic!("expected a reject with {code}, got {other:?}"),
    }
}

async fn removal_from_the_parent_ends_the_thread(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut ca = connect(&server, "alice").await;
    let mut cb = connect(&server, "bob").await;
    let group = ConvId::new("tg").unwrap();
    let (group_doc, create) = create_group(&mut alice, "tg", &["bob"]);
    assert_acked(&ca.submit(&group_doc, &[create]).await.unwrap());
    let (group_bucket, m1) = message(&mut alice, &group, "m1", "lunch?", now_ms());
    assert_acked(&ca.submit(&group_bucket, &[m1]).await.unwrap());

    // No thread on a message the group does not hold.
    let stray = ConvId::new("tg-x").unwrap();
    let (stray_doc, change) = thread_creation(&mut alice, &stray, &group, "nope", "bob");
    refused_with(
        &ca.submit(&stray_doc, &[change]).await.unwrap(),
        "parent_message_missing",
    );

    // The thread on m1, with bob; bob follows it.
    let thread = ConvId::new("tg-t").unwrap();
    let (thread_doc, change) = thread_creation(&mut alice, &thread, &group, "m1", "bob");
    assert_acked(&ca.submit(&thread_doc, &[change]).await.unwrap());
    let (bucket, a1) = message(&mut alice, &thread, "a1", "where?", now_ms());
    assert_acked(&ca.submit(&bucket, &[a1]).await.unwrap());
    assert_eq!(bob.sync(&mut cb, &thread_doc).await.unwrap(), 1);
    assert_eq!(bob.sync(&mut cb, &bucket).await.unwrap(), 1);

    // While bob is in the group, the thread's messages are pushed to him.
    let (_, a2) = message(&mut alice, &thread, "a2", "the usual", now_ms());
    assert_acked(&ca.submit(&bucket, &[a2]).await.unwrap());
    assert_eq!(cb.pushes_until(&bucket, 2).await.unwrap().len(), 1);

    // Alice removes bob from the group (not from the thread).
    let removal = alice
        .write(&group_doc, |d, t| {
            write::set_member_status(d, t, now_ms(), &acc("bob"), MemberStatus::Removed)
        })
        .unwrap();
    assert_acked(&ca.submit(&group_doc, &[removal]).await.unwrap());
    let wanted = bucket.to_string();
    let code = cb
        .wait_for(Duration::from_secs(10), |f| match f {
            ServerFrame::Revoked { doc, code, .. } if *doc == wanted => Some(code.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(code, "not_parent_member");

    // Alice goes on in the thread; bob is pushed none of it.
    let (_, a3) = message(&mut alice, &thread, "a3", "at noon", now_ms());
    assert_acked(&ca.submit(&bucket, &[a3]).await.unwrap());
    let pushed = cb
        .wait_for(Duration::from_millis(1500), |f| match f {
            ServerFrame::Changes { doc, .. } if *doc == wanted => Some(()),
            _ => None,
        })
        .await;
    assert!(
        pushed.is_err(),
        "bob was pushed the thread after his removal"
    );

    // Nor may he subscribe again or write there.
    let mut again = connect(&server, "bob").await;
    let refused = again.subscribe(&bucket, 0).await.unwrap_err().to_string();
    assert!(refused.starts_with("forbidden"), "{refused}");
    let (_, b1) = message(&mut bob, &thread, "b1", "wait for me", now_ms());
    refused_with(
        &cb.submit(&bucket, &[b1]).await.unwrap(),
        "not_parent_member",
    );
}

#[tokio::test]
async fn removal_from_the_parent_ends_the_thread_on_sqlite() {
    removal_from_the_parent_ends_the_thread(Backend::Sqlite).await;
}

#[tokio::test]
async fn removal_from_the_parent_ends_the_thread_on_postgres() {
    removal_from_the_parent_ends_the_thread(Backend::Postgres).await;
}
