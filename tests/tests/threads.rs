//! Threads follow their parent, through the real server binary on SQLite and on Postgres:
//! a member removed from the parent stops getting the thread's pushes at once (its
//! subscriptions are revoked with `not_parent_member`), is not notified of it, may not
//! subscribe again, and its writes to the thread are refused; a thread on a message the parent does not hold is
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

/// The creation of thread `id` of `parent` on its message `on`, by `owner` with `invited`.
fn thread_creation(
    owner: &mut Device,
    id: &ConvId,
    parent: &ConvId,
    on: &str,
    invited: &[&str],
) -> (DocId, confab_core::automerge::Change) {
    let doc = conv_doc(id);
    let mut members = vec![Member::new(owner.account_id(), Role::Owner)];
    for account in invited {
        let mut member = Member::new(acc(account), Role::Member);
        member.invited_by = Some(owner.account_id());
        members.push(member);
    }
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
        members,
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
    let (group_doc, create) = create_group(&mut alice, "tg", &["bob", "carol"]);
    assert_acked(&ca.submit(&group_doc, &[create]).await.unwrap());
    let (group_bucket, m1) = message(&mut alice, &group, "m1", "lunch?", now_ms());
    assert_acked(&ca.submit(&group_bucket, &[m1]).await.unwrap());

    // No thread on a message the group does not hold.
    let stray = ConvId::new("tg-x").unwrap();
    let (stray_doc, change) = thread_creation(&mut alice, &stray, &group, "nope", &["bob"]);
    refused_with(
        &ca.submit(&stray_doc, &[change]).await.unwrap(),
        "parent_message_missing",
    );

    // The thread on m1, with bob; bob follows it.
    let thread = ConvId::new("tg-t").unwrap();
    let (thread_doc, change) =
        thread_creation(&mut alice, &thread, &group, "m1", &["bob", "carol"]);
    assert_acked(&ca.submit(&thread_doc, &[change]).await.unwrap());
    let (bucket, a1) = message(&mut alice, &thread, "a1", "where?", now_ms());
    assert_acked(&ca.submit(&bucket, &[a1]).await.unwrap());
    assert_eq!(bob.sync(&mut cb, &thread_doc).await.unwrap(), 1);
    assert_eq!(bob.sync(&mut cb, &bucket).await.unwrap(), 1);

    // While bob is in the group, the thread's messages are pushed to him.
    let (_, a2) = message(&mut alice, &thread, "a2", "the usual", now_ms());
    assert_acked(&ca.submit(&bucket, &[a2]).await.unwrap());
    assert_eq!(cb.pushes_until(&bucket, 2).await.unwrap().len(), 1);

    // Both members are told of the thread's two messages (level `all`).
    until_count(&server, "bob", "tg-t", 2).await;
    until_count(&server, "carol", "tg-t", 2).await;

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
    // Nor told of it: carol's feed counts a3; bob's lists the thread no more, as he may no
    // longer read it (the entry is derived when read, for members of the parent only).
    until_count(&server, "carol", "tg-t", 3).await;
    let told: Vec<i64> = entries(&server, "bob", "tg-t")
        .await
        .iter()
        .map(|(_, count, _)| *count)
        .collect();
    assert_eq!(
        told,
        Vec::<i64>::new(),
        "bob was notified of the thread after his removal"
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

/// The REST reads of a thread: what each answers `who` (the status and the code of a
/// refusal; the list: whether the thread is in it).
async fn rest_reads(server: &TestServer, who: &str, thread: &str) -> Vec<(String, u16, String)> {
    let blob = "0".repeat(64);
    let paths = [
        format!("/v1/conversations/{thread}"),
        format!("/v1/conversations/{thread}/messages"),
        format!("/v1/conversations/{thread}/stats"),
        format!("/v1/conversations/{thread}/attachments/{blob}"),
        format!("/v1/conversations/{thread}/attachments/{blob}/thumbnail"),
        format!("/v1/conversations/{thread}/uploads/u-none"),
        format!("/v1/conversations/{thread}/join-requests"),
        format!("/v1/conversations/{thread}/invites"),
    ];
    let mut answers = Vec::new();
    for path in paths {
        let answer = http(server, "GET", &path, who, None).await;
        let code = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|b| b["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        answers.push((path, answer.status, code));
    }
    answers
}

/// Whether `who`'s conversation list holds `conv`.
async fn listed(server: &TestServer, who: &str, conv: &str) -> bool {
    let answer = http(server, "GET", "/v1/conversations", who, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == conv)
}

/// Every REST read of a thread follows its parent: bob (removed from the group) and carol
/// (banned from it) keep their entries in the threads, and every read there is refused
/// `not_parent_member`; the threads leave their lists.
async fn rest_reads_of_a_thread_follow_the_parent(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let mut alice = Device::new("alice", 1);
    let mut ca = connect(&server, "alice").await;
    let group = ConvId::new("rg").unwrap();
    let (group_doc, create) = create_group(&mut alice, "rg", &["bob", "carol"]);
    assert_acked(&ca.submit(&group_doc, &[create]).await.unwrap());
    let (group_bucket, m1) = message(&mut alice, &group, "m1", "lunch?", now_ms());
    assert_acked(&ca.submit(&group_bucket, &[m1]).await.unwrap());
    let mut threads = Vec::new();
    for who in ["bob", "carol"] {
        let thread = ConvId::new(format!("rg-{who}")).unwrap();
        let (doc, change) = thread_creation(&mut alice, &thread, &group, "m1", &[who]);
        assert_acked(&ca.submit(&doc, &[change]).await.unwrap());
        let (bucket, a1) = message(&mut alice, &thread, "a1", "where?", now_ms());
        assert_acked(&ca.submit(&bucket, &[a1]).await.unwrap());
        threads.push((who, thread));
    }

    // While in the group, nothing refuses them for the parent's sake.
    for (who, thread) in &threads {
        for (path, status, code) in rest_reads(&server, who, thread.as_str()).await {
            assert_ne!(code, "not_parent_member", "{who} {path}: {status}");
        }
        let view = http(
            &server,
            "GET",
            &format!("/v1/conversations/{thread}"),
            who,
            None,
        )
        .await;
        assert_eq!(view.status, 200, "{}", view.body);
        assert!(listed(&server, who, thread.as_str()).await, "{who}");
    }

    for ((who, thread), status) in threads
        .iter()
        .zip([MemberStatus::Removed, MemberStatus::Banned])
    {
        let change = alice
            .write(&group_doc, |d, t| {
                write::set_member_status(d, t, now_ms(), &acc(who), status)
            })
            .unwrap();
        assert_acked(&ca.submit(&group_doc, &[change]).await.unwrap());
        for (path, status, code) in rest_reads(&server, who, thread.as_str()).await {
            assert_eq!(
                (status, code.as_str()),
                (403, "not_parent_member"),
                "{who} {path}"
            );
        }
        assert!(!listed(&server, who, thread.as_str()).await, "{who}");
        // Alice, in the group, still reads the thread.
        let view = http(
            &server,
            "GET",
            &format!("/v1/conversations/{thread}/messages"),
            "alice",
            None,
        )
        .await;
        assert_eq!(view.status, 200, "{}", view.body);
        assert!(listed(&server, "alice", thread.as_str()).await);
    }
}

#[tokio::test]
async fn rest_reads_of_a_thread_follow_the_parent_on_sqlite() {
    rest_reads_of_a_thread_follow_the_parent(Backend::Sqlite).await;
}

#[tokio::test]
async fn rest_reads_of_a_thread_follow_the_parent_on_postgres() {
    rest_reads_of_a_thread_follow_the_parent(Backend::Postgres).await;
}
