//! Shared helpers of the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::*;
use confab_core::model::message::NewMessage;
use confab_e2e::client::Answer;
use confab_e2e::{now_ms, token, Client, Device, TestServer};

pub const TENANT: &str = "acme";

pub fn tenant() -> TenantId {
    TenantId::new(TENANT).unwrap()
}

pub fn acc(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

pub fn conv_doc(conv: &ConvId) -> DocId {
    DocId::conv(&tenant(), conv)
}

pub fn bucket_doc(conv: &ConvId, at: i64) -> DocId {
    DocId::msgs(&tenant(), conv, at.div_euclid(DEFAULT_BUCKET_MS))
}

pub async fn connect(server: &TestServer, account: &str) -> Client {
    Client::connect(&server.ws_url(), &token(TENANT, account, false, 3600))
        .await
        .unwrap()
}

/// The creation change of a group owned by `owner` with `members` (role member).
pub fn create_group(
    owner: &mut Device,
    id: &str,
    members: &[&str],
) -> (DocId, confab_core::automerge::Change) {
    let conv = ConvId::new(id).unwrap();
    let mut all = vec![Member::new(acc(&owner.account), Role::Owner)];
    for m in members {
        let mut member = Member::new(acc(m), Role::Member);
        member.invited_by = Some(acc(&owner.account));
        all.push(member);
    }
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: acc(&owner.account),
        created_at: now_ms(),
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info {
            title: Some(id.to_owned()),
            ..Info::default()
        },
        settings: Settings::defaults_for(ConvKind::Group),
        members: all,
    };
    let doc = conv_doc(&conv);
    let change = owner
        .write(&doc, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    (doc, change)
}

/// A text message change written by `dev` at `at`.
pub fn message(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
    at: i64,
) -> (DocId, confab_core::automerge::Change) {
    let doc = bucket_doc(conv, at);
    let m = NewMessage::text(MessageId::new(id).unwrap(), acc(&dev.account), body, at);
    let change = dev
        .write(&doc, |d, t| write::post_message(d, t, &m))
        .unwrap();
    (doc, change)
}

pub fn assert_acked(answers: &[Answer]) {
    for a in answers {
        assert!(matches!(a, Answer::Ack { .. }), "expected ack, got {a:?}");
    }
}

/// The whole log of `doc` through a fresh connection: (seq, hash) in order.
pub async fn log_of(server: &TestServer, account: &str, doc: &DocId) -> Vec<(u64, [u8; 32])> {
    let mut c = connect(server, account).await;
    let log = c.log(doc).await.unwrap();
    c.close().await;
    log
}

/// Seqs 1..=n without gaps and no hash twice.
pub fn assert_clean_log(log: &[(u64, [u8; 32])]) {
    for (i, (seq, _)) in log.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "seqs run 1..=n without gaps");
    }
    let unique: std::collections::HashSet<[u8; 32]> = log.iter().map(|l| l.1).collect();
    assert_eq!(unique.len(), log.len(), "a change is stored twice");
}

/// A start time such that `[start, start + span_ms]` lies in one message bucket.
pub fn base_time(span_ms: i64) -> i64 {
    let now = now_ms();
    let bucket = now.div_euclid(DEFAULT_BUCKET_MS);
    if (now + span_ms).div_euclid(DEFAULT_BUCKET_MS) == bucket {
        now
    } else {
        (bucket + 1) * DEFAULT_BUCKET_MS
    }
}
