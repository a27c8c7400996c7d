//! The attack suite over the wire (docs/POLICY.md).
//!
//! The attack cases are one table (`confab_testkit::attack`), shared with the in-memory suite
//! (`core/tests/adversarial.rs`): each is crafted the same way — a raw Automerge transaction on
//! a copy of a device's replica, or a real change decoded, tampered with and encoded again —
//! and sent here by the attacking account as a real client would: the real server binary, a
//! real WebSocket, SQLite and Postgres. The wire driver (`attacks/wire.rs`) makes every
//! `reject` check its exact code and that nothing stored moved: the change log a fresh reader
//! catches up from seq 0 (a service account; the owner for private documents), the REST
//! projection (the conversation and its message page, read by the owner over HTTP), and
//! `/metrics` counts the rejection exactly once (on Postgres the audit table is compared row
//! by row at the end). Where a case has a twin that breaks no rule, the twin must be acked.
//!
//! Then what only the wire has: another tenant (a redaction across tenants too), subscribing and signalling where one may not
//! read, garbage, oversize and too-many-changes frames, floods, the connection limit, expired,
//! foreign and wrongly signed tokens; and the MLS directory's attacks (`attacks/directory.rs`:
//! key packages for someone else, a changed signature key, a claimed package offered again,
//! garbage and oversized packages, a claim across tenants, a stranger's flood of claims, a
//! former member's claims); and search's (`attacks/search.rs`:
//! another tenant, a non-member and a removed member find nothing, FTS-syntax and oversized
//! queries).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "attacks/directory.rs"]
mod directory;
#[path = "attacks/protocol.rs"]
mod protocol;
#[path = "attacks/search.rs"]
mod search;
#[path = "attacks/wire.rs"]
mod wire;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use confab_core::doc::schema::keys::*;
use confab_core::doc::write;
use confab_core::ids::{DocId, TenantId};
use confab_core::model::conversation::ConvKind;
use confab_core::protocol::{ClientFrame, ErrorCode, ServerFrame, SignalKind};
use confab_core::validate::RejectCode;
use confab_e2e::client::{Answer, WAIT};
use confab_e2e::{token, Backend, Client, Device};
use confab_testkit::attack::fixture::{create, fixture, text_change};
use confab_testkit::attack::{cases, CaseFuture, Driver, Lab, CODES};
use confab_testkit::craft::{raw_post, raw_put, raw_tombstone, s, text_fields};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::http::request;
use confab_testkit::ids::{acc, conv_doc, conv_id, tenant, TENANT};
use futures_util::FutureExt;
use protocol::{next_error, ping};
use serde_json::Value;
use wire::{now, Stored, WireLab};

// ---------- attacks only the wire has ----------

/// A token of tenant "evil" reaches nothing of "acme"; evil's document with the same key is
/// another document; an acme change replayed into an evil document is refused.
async fn another_tenant(lab: &mut WireLab) {
    let mut alice = Device::new("alice", 1);
    let room = create(lab, "w-room", ConvKind::Group, &mut alice, &mut [], |_| {}).await;
    let acme_cd = conv_doc(&room);
    let acme_creation = alice.doc(&acme_cd).get_last_local_change().unwrap();
    let (bucket, m1) = text_change(lab, &mut alice, &room, "m1", "acme only");
    lab.accept(&mut alice, &bucket, m1).await;
    let (conv_before, bucket_before) = (lab.view(&acme_cd).await, lab.view(&bucket).await);

    let mut mallory = Client::connect(&lab.url(), &token("evil", "mallory", false, 3600))
        .await
        .unwrap();
    assert_eq!(mallory.tenant, "evil");
    // Reading an acme document.
    for doc in [&acme_cd, &bucket] {
        mallory
            .send(&ClientFrame::Subscribe {
                doc: doc.to_string(),
                after: 0,
            })
            .await
            .unwrap();
        assert_eq!(
            next_error(&mut mallory).await,
            ("wrong_tenant".into(), false, Some(doc.to_string()))
        );
    }
    // Writing one: a well-formed message, and a replay of alice's accepted creation.
    let mut mdev = Device::new("mallory", 1);
    let (_, pwn) = raw_post(
        &mut mdev,
        &room,
        "x1",
        &text_fields("mallory", "pwned", now()),
        now(),
    );
    for (doc, change) in [(&bucket, pwn), (&acme_cd, acme_creation.clone())] {
        let answers = mallory.submit(doc, &[change]).await.unwrap();
        assert!(
            matches!(answers.as_slice(), [Answer::Error { code, .. }] if code == "wrong_tenant"),
            "{answers:?}"
        );
    }
    // Signalling into it.
    mallory
        .send(&ClientFrame::Signal {
            doc: acme_cd.to_string(),
            kind: SignalKind::Typing,
            data: None,
        })
        .await
        .unwrap();
    assert_eq!(next_error(&mut mallory).await.0, "wrong_tenant");
    // A service token of tenant evil is no key to acme either.
    let mut evil_svc = Client::connect(&lab.url(), &token("evil", "svc", true, 3600))
        .await
        .unwrap();
    let err = evil_svc
        .subscribe(&acme_cd, 0)
        .await
        .expect_err("other tenant");
    assert!(err.to_string().starts_with("wrong_tenant:"), "{err}");
    evil_svc.close().await;
    // None of it was fatal.
    ping(&mut mallory, 1).await;
    // REST: the evil tenant does not see acme's conversation under its id.
    let (status, _) = lab.get("evil", "mallory", "/v1/conversations/w-room").await;
    assert_eq!(status, 404);

    // Evil's own "w-room" (an alice of tenant evil, even with the same actor bytes) is another
    // document: creating it leaves acme's alone.
    let evil = TenantId::new("evil").unwrap();
    let evil_cd = DocId::conv(&evil, &room);
    let mut evil_alice = Device::new("alice", 1);
    let spec = ConvFixture::group(acc("alice"), now() - 1000)
        .title("evil room")
        .build();
    let change = evil_alice
        .write(&evil_cd, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    lab.accept(&mut evil_alice, &evil_cd, change).await;
    assert_eq!(
        lab.rest_conversation(&evil_cd).await.1["title"],
        "evil room"
    );
    assert_eq!(
        lab.rest_conversation(&acme_cd).await.1["title"],
        "w-room title"
    );
    assert_eq!(lab.view(&acme_cd).await, conv_before, "acme's room moved");
    assert_eq!(
        lab.view(&bucket).await,
        bucket_before,
        "acme's bucket moved"
    );
    match (lab.stored(&evil_cd).await, &conv_before.stored) {
        (Stored::Log(evil_log), Stored::Log(acme_log)) => {
            assert_eq!(evil_log.len(), 1);
            assert!(acme_log.iter().all(|(_, h)| *h != evil_log[0].1));
        }
        other => panic!("{other:?}"),
    }
    // Acme's accepted creation replayed into evil documents by evil's own alice: its dependency
    // (acme's genesis, derived from the acme id) is in neither.
    lab.reject(
        &evil_alice,
        &DocId::conv(&evil, &conv_id("w-room2")),
        acme_creation.clone(),
        "missing_dependency",
    )
    .await;
    lab.reject(&evil_alice, &evil_cd, acme_creation, "missing_dependency")
        .await;
    mallory.close().await;
}

/// A redaction aimed at another tenant: tombstones of acme's message sent with evil's tokens
/// (mallory's, and an evil "alice" with alice's very change), and evil's service deleting
/// acme's conversation or erasing an account only acme knows. Each is refused; acme's message
/// is still there, whole.
async fn a_redaction_across_tenants(lab: &mut WireLab) {
    let f = fixture(lab, "w-redact").await;
    let (conv_before, bucket_before) = (lab.view(&f.cd).await, lab.view(&f.bucket).await);
    let t = now();
    let by_admin = raw_tombstone(&mut f.dave.clone(), &f.bucket, "m1", (t, "dave"), &[], &[]);
    let by_author = raw_tombstone(
        &mut f.alice.clone(),
        &f.bucket,
        "m1",
        (t, "alice"),
        &[],
        &[],
    );
    for (account, change) in [("mallory", by_admin), ("alice", by_author)] {
        let mut evil = Client::connect(&lab.url(), &token("evil", account, false, 3600))
            .await
            .unwrap();
        let answers = evil.submit(&f.bucket, &[change]).await.unwrap();
        assert!(
            matches!(answers.as_slice(), [Answer::Error { code, .. }] if code == "wrong_tenant"),
            "{account}: {answers:?}"
        );
        evil.close().await;
    }
    let service = token("evil", "svc", true, 3600);
    for (method, path) in [
        ("DELETE", "/v1/conversations/w-redact".to_string()),
        ("POST", "/v1/accounts/dave/erasure".to_string()),
    ] {
        let answer = request(lab.server.port, method, &path, &service, None, WAIT)
            .await
            .unwrap();
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
    }
    assert_eq!(lab.view(&f.cd).await, conv_before, "acme's room moved");
    assert_eq!(
        lab.view(&f.bucket).await,
        bucket_before,
        "acme's part moved"
    );
    let (_, page) = lab
        .get(TENANT, "alice", "/v1/conversations/w-redact/messages")
        .await;
    assert_eq!(page["messages"][0]["body"], "hello", "{page}");
}

/// Subscribing to a conversation one is not in, to another account's private document, to a
/// conversation that does not exist; a refused subscription gets no pushes.
async fn reading_what_one_may_not(lab: &mut WireLab) {
    let mut f = fixture(lab, "w-read").await;
    let mut carol = Client::connect(&lab.url(), &token(TENANT, "carol", false, 3600))
        .await
        .unwrap();
    let nothing = conv_doc(&conv_id("w-nothing"));
    let alice_private = DocId::private(&tenant(), &acc("alice"));
    for doc in [&f.cd, &f.bucket, &nothing, &alice_private] {
        carol
            .send(&ClientFrame::Subscribe {
                doc: doc.to_string(),
                after: 0,
            })
            .await
            .unwrap();
        assert_eq!(
            next_error(&mut carol).await,
            ("forbidden".into(), false, Some(doc.to_string())),
            "{doc}"
        );
    }
    carol
        .send(&ClientFrame::Subscribe {
            doc: "acme/conv/a.b".into(),
            after: 0,
        })
        .await
        .unwrap();
    assert_eq!(next_error(&mut carol).await.0, "invalid_doc");
    // Another member and even a service account may not read alice's private document.
    for (who, service) in [("bob", false), ("svc", true)] {
        let mut c = Client::connect(&lab.url(), &token(TENANT, who, service, 3600))
            .await
            .unwrap();
        let err = c.subscribe(&alice_private, 0).await.expect_err(who);
        assert!(err.to_string().starts_with("forbidden:"), "{who}: {err}");
        c.close().await;
    }
    // Nothing alice writes afterwards reaches carol.
    let (bucket, m2) = text_change(lab, &mut f.alice, &f.conv, "m2", "members only");
    lab.accept(&mut f.alice, &bucket, m2).await;
    let edit = raw_put(&mut f.alice, &f.cd, &[INFO], &[(TITLE, s("secret plans"))]);
    lab.accept(&mut f.alice, &f.cd, edit).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ping(&mut carol, 2).await;
    let leaked: Vec<&ServerFrame> = carol
        .pending()
        .iter()
        .filter(|fr| {
            matches!(
                fr,
                ServerFrame::Changes { .. }
                    | ServerFrame::Snapshot { .. }
                    | ServerFrame::Synced { .. }
            )
        })
        .collect();
    assert!(leaked.is_empty(), "pushed to a refused reader: {leaked:?}");
    carol.close().await;
}

/// A signal where the sender may not read is refused with an error frame naming the
/// document; a relayed signal's `from` is the sender's authenticated account, whatever the
/// frame said.
async fn signals_only_from_readers(lab: &mut WireLab) {
    let f = fixture(lab, "w-sig").await;
    let url = lab.url();
    let mut alice = Client::connect(&url, &token(TENANT, "alice", false, 3600))
        .await
        .unwrap();
    alice.subscribe(&f.cd, 0).await.unwrap();
    let signal = |doc: &DocId| ClientFrame::Signal {
        doc: doc.to_string(),
        kind: SignalKind::Typing,
        data: None,
    };
    // Carol is no member: refused, and nothing reaches alice.
    let mut carol = Client::connect(&url, &token(TENANT, "carol", false, 3600))
        .await
        .unwrap();
    let nothing = conv_doc(&conv_id("w-sig-nothing"));
    for doc in [&f.cd, &nothing] {
        carol.send(&signal(doc)).await.unwrap();
        assert_eq!(
            next_error(&mut carol).await,
            ("forbidden".into(), false, Some(doc.to_string())),
            "{doc}"
        );
    }
    // Signals go to conversation documents only.
    let private = DocId::private(&tenant(), &acc("carol"));
    for doc in [&f.bucket, &private] {
        carol.send(&signal(doc)).await.unwrap();
        assert_eq!(
            next_error(&mut carol).await,
            ("invalid_doc".into(), false, Some(doc.to_string())),
            "{doc}"
        );
    }
    ping(&mut carol, 1).await;
    // Bob signals with a forged `from` (and a `from` inside data): alice sees bob.
    let mut bob = Client::connect(&url, &token(TENANT, "bob", false, 3600))
        .await
        .unwrap();
    let mut forged = serde_json::to_value(ClientFrame::Signal {
        doc: f.cd.to_string(),
        kind: SignalKind::Typing,
        data: Some(r#"{"from":"alice"}"#.into()),
    })
    .unwrap();
    forged["from"] = Value::String("dave".into());
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&forged, &mut bytes).unwrap();
    bob.send_bytes(bytes).await.unwrap();
    let from = alice
        .wait_for(WAIT, |fr| match fr {
            ServerFrame::Signal { doc, from, .. } if *doc == f.cd.to_string() => Some(from.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(from, "bob");
    ping(&mut bob, 2).await;
    assert!(
        !bob.pending()
            .iter()
            .any(|fr| matches!(fr, ServerFrame::Error { .. })),
        "a member's signal is not refused: {:?}",
        bob.pending()
    );
    // Nothing from carol reached alice.
    ping(&mut alice, 3).await;
    let from_carol = alice
        .pending()
        .iter()
        .any(|fr| matches!(fr, ServerFrame::Signal { from, .. } if from == "carol"));
    assert!(!from_carol, "a refused signal was relayed");
    for c in [alice, bob, carol] {
        c.close().await;
    }
}

// ---------- the suite per backend ----------

type WireCase = for<'a> fn(&'a mut WireLab) -> CaseFuture<'a>;

/// The table's cases for the wire, then the attacks only the wire has.
fn all_cases() -> Vec<(&'static str, WireCase)> {
    let mut all: Vec<(&'static str, WireCase)> = cases::<WireLab>()
        .into_iter()
        .filter(|c| c.drivers.contains(&Driver::Wire))
        .map(|c| (c.name, c.run))
        .collect();
    let wire_only: [(&'static str, WireCase); 12] = [
        ("another_tenant", |lab| Box::pin(another_tenant(lab))),
        ("a_redaction_across_tenants", |lab| {
            Box::pin(a_redaction_across_tenants(lab))
        }),
        ("reading_what_one_may_not", |lab| {
            Box::pin(reading_what_one_may_not(lab))
        }),
        ("signals_only_from_readers", |lab| {
            Box::pin(signals_only_from_readers(lab))
        }),
        // The directory is the server's (the hub has none): wire-only cases.
        ("key_packages_for_someone_else", |lab| {
            Box::pin(directory::key_packages_for_someone_else(lab))
        }),
        ("a_changed_signature_key", |lab| {
            Box::pin(directory::a_changed_signature_key(lab))
        }),
        ("a_claimed_key_package_offered_again", |lab| {
            Box::pin(directory::a_claimed_key_package_offered_again(lab))
        }),
        ("garbage_and_oversized_key_packages", |lab| {
            Box::pin(directory::garbage_and_oversized_key_packages(lab))
        }),
        ("a_claim_across_tenants", |lab| {
            Box::pin(directory::a_claim_across_tenants(lab))
        }),
        ("a_strangers_flood_of_claims", |lab| {
            Box::pin(directory::a_strangers_flood_of_claims(lab))
        }),
        ("a_former_member_is_a_stranger_again", |lab| {
            Box::pin(directory::a_former_member_is_a_stranger_again(lab))
        }),
        // Search is a REST read (no frame): wire-only cases.
        ("searching_what_one_may_not", |lab| {
            Box::pin(search::searching_what_one_may_not(lab))
        }),
    ];
    all.extend(wire_only);
    all
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}

/// Every case on one server, in turn; a failing case does not hide the ones after it.
async fn attack_suite(backend: Backend) {
    let started = Instant::now();
    let mut lab = WireLab::start(backend).await;
    let mut failures = Vec::new();
    let cases = all_cases();
    assert!(cases.len() >= 45, "the table lost cases: {}", cases.len());
    for (name, case) in &cases {
        let t = Instant::now();
        if let Err(e) = AssertUnwindSafe(case(&mut lab)).catch_unwind().await {
            failures.push(format!("{name}: {}", panic_text(&*e)));
        }
        eprintln!("{backend:?} {name}: {:?}", t.elapsed());
    }
    if failures.is_empty() {
        lab.check_audit().await;
    }
    eprintln!(
        "{backend:?}: {} cases, {} rejections checked, {:?}",
        cases.len(),
        lab.audit.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn attacks_on_sqlite() {
    attack_suite(Backend::Sqlite).await;
}

#[tokio::test]
async fn attacks_on_postgres() {
    attack_suite(Backend::Postgres).await;
}

/// Every code the attack table and this file expect exists in the validator's or the policy's
/// table, or among the protocol's error codes, so a renamed code fails here rather than in a
/// string comparison.
#[test]
fn expected_codes_are_known_codes() {
    let rejects: Vec<&str> = RejectCode::VALIDATION
        .iter()
        .map(|c| c.as_str())
        .chain(
            confab_core::policy::DenyCode::ALL
                .iter()
                .map(|c| c.as_str()),
        )
        .chain(confab_core::e2ee::DsRefusal::CODES.iter().copied())
        .collect();
    for code in CODES {
        assert!(rejects.contains(code), "{code} is not a reject code");
    }
    let protocol: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    for code in [
        "bad_frame",
        "frame_too_large",
        "unsupported_version",
        "unauthenticated",
        "auth_failed",
        "token_expired",
        "wrong_tenant",
        "already_authenticated",
        "invalid_doc",
        "forbidden",
        "too_many_changes",
        "rate_limited",
        "too_many_connections",
        "signal_too_large",
    ] {
        assert!(protocol.contains(&code), "{code} is not a protocol code");
    }
}
