//! End-to-end encrypted support threads between `confab-client` devices against the real
//! server binary, on both stores (docs/E2EE.md, "Direct conversations and support
//! threads"): the client's device opens the encrypted thread apart from the plaintext one,
//! its creation carrying the group and the owner's device; the owner names it over REST;
//! both read each other's sealed messages, stamped in the clear with their role and name,
//! while the store holds none of their text; the owner closes the lead over REST and the
//! client's sealed new request reopens it with a new lead; opening it again makes no second
//! group. Two devices that open it offline converge on one group, both reading.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{acc, http, tenant, HttpAnswer};
use confab_client::Client as NativeClient;
use confab_core::client::{apply::support_id, Intent, IntentStatus};
use confab_core::ids::{ConvId, ResourceId};
use confab_core::model::conversation::Lifecycle;
use confab_core::model::support::SenderRole;
use confab_e2e::native_support::*;
use confab_e2e::store_probe::store_holds;
use confab_e2e::{Backend, TestServer};
use serde_json::{json, Value};

fn open_support(client: &str, resource: &str, owner: &str, encrypted: bool) -> Intent {
    Intent::OpenSupport {
        resource: ResourceId::new(resource).unwrap(),
        client: acc(client),
        owner: acc(owner),
        encrypted,
    }
}

fn thread(client: &str, resource: &str, encrypted: bool) -> ConvId {
    support_id(
        &tenant(),
        &acc(client),
        &ResourceId::new(resource).unwrap(),
        encrypted,
    )
}

fn parse(a: &HttpAnswer, status: u16) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    serde_json::from_str(&a.body).expect("JSON")
}

/// Waits until `c` holds `conv` in the lifecycle state `want`.
async fn lifecycle_on(c: &NativeClient, conv: &ConvId, want: Lifecycle) {
    let conv = conv.clone();
    eventually(c, &format!("{conv} {}", want.as_str()), move |e| {
        e.conversation(&conv)
            .is_some_and(|c| c.lifecycle.state == want)
    })
    .await;
}

/// Waits until `c` shows message `id` of `conv` stamped as `role` named `name`.
async fn stamped(c: &NativeClient, conv: &ConvId, id: &str, role: SenderRole, name: Option<&str>) {
    let (conv, id, name) = (conv.clone(), id.to_owned(), name.map(str::to_owned));
    eventually(c, &format!("{id} stamped {name:?}"), move |e| {
        e.timeline(&conv).iter().any(|i| {
            let s = &i.message.stamp;
            i.message.id.as_str() == id && s.sender_role == Some(role) && s.sender_name == name
        })
    })
    .await;
}

async fn encrypted_support(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let marker = format!("sealed-support-{backend:?}-{}", std::process::id());
    let control = format!("plain-support-{backend:?}-{}", std::process::id());
    let dirs = fresh_dirs(&format!("e2ee-support-{backend:?}"), 2);
    let carol = device_client(&server, "carol", "phone", &dirs[0]);
    let alice = device_client(&server, "alice", "laptop", &dirs[1]);
    online_with_packages(&[&carol, &alice]).await;

    // The plaintext and the encrypted thread of one client and resource are two.
    let plain = thread("carol", "flat-7", false);
    let sealed = thread("carol", "flat-7", true);
    assert_ne!(plain, sealed);
    assert!(sealed.as_str().starts_with("s-"));
    let id = carol
        .intent(open_support("carol", "flat-7", "alice", false))
        .await
        .unwrap();
    accepted(&carol, id).await;
    let id = carol
        .intent(open_support("carol", "flat-7", "alice", true))
        .await
        .unwrap();
    accepted(&carol, id).await;
    follow_conv(&carol, &sealed).await;
    // The creation carried the group and the commit adding the owner's device.
    at_epoch(&carol, &sealed, 1).await;
    follow_conv(&alice, &sealed).await;
    at_epoch(&alice, &sealed, 1).await;

    // The owner finds it over REST and names it (a change of no device: no commit).
    let open = json!({"client": "carol", "resource": "flat-7", "owner": "alice",
        "encrypted": true, "resource_title": "Flat 7", "client_name": "Carol C.",
        "owner_name": "Alice A."});
    let path = "/v1/conversations/support";
    let view = parse(
        &http(&server, "POST", path, "alice", Some(&open.to_string())).await,
        200,
    );
    assert_eq!(view["id"], sealed.as_str());
    assert_eq!(view["title"], "Flat 7");
    assert_eq!(view["resource"]["client_name"], "Carol C.");
    assert_eq!(view["encryption"]["enabled"], true, "{view}");
    assert_eq!(view["encryption"]["key_version"], 1, "{view}");
    let c = sealed.clone();
    eventually(&carol, "the names", move |e| {
        e.conversation(&c)
            .is_some_and(|c| c.info.owner_name.is_some())
    })
    .await;

    let m1 = send(&carol, &sealed, "m1", &format!("{marker} is it free?")).await;
    accepted(&carol, m1).await;
    let m2 = send(&alice, &sealed, "m2", &format!("{marker} yes")).await;
    accepted(&alice, m2).await;
    for c in [&carol, &alice] {
        reads(c, &sealed, "m1", &format!("{marker} is it free?")).await;
        reads(c, &sealed, "m2", &format!("{marker} yes")).await;
        stamped(c, &sealed, "m1", SenderRole::Client, Some("Carol C.")).await;
        stamped(c, &sealed, "m2", SenderRole::Owner, Some("Alice A.")).await;
    }

    // REST shows the stamps, not the text, and cannot post into it.
    let messages = format!("/v1/conversations/{sealed}/messages");
    let page = parse(&http(&server, "GET", &messages, "alice", None).await, 200);
    let m1_view = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "m1")
        .cloned()
        .expect("m1 listed");
    assert_eq!(m1_view["is_encrypted"], true, "{m1_view}");
    assert_eq!(m1_view["body"], "", "{m1_view}");
    assert_eq!(m1_view["sender_role"], "client", "{m1_view}");
    let post = json!({"body": "in the clear"}).to_string();
    let refused = http(&server, "POST", &messages, "alice", Some(&post)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("plaintext_in_encrypted"),
        "{}",
        refused.body
    );

    // The owner closes the lead over REST; the client's sealed new request reopens the
    // thread with a new lead (the server's reopen, a change of no device).
    let lead = format!("/v1/conversations/{sealed}/lead");
    let close = json!({"lead": "lead-1", "outcome": "closed_won"}).to_string();
    let closed = parse(
        &http(&server, "POST", &lead, "alice", Some(&close)).await,
        200,
    );
    assert_eq!(closed["lifecycle"], "closed");
    lifecycle_on(&carol, &sealed, Lifecycle::Closed).await;
    let m3 = send(&carol, &sealed, "m3", &format!("{marker} another visit?")).await;
    accepted(&carol, m3).await;
    lifecycle_on(&alice, &sealed, Lifecycle::Active).await;
    let view = parse(
        &http(
            &server,
            "GET",
            &format!("/v1/conversations/{sealed}"),
            "alice",
            None,
        )
        .await,
        200,
    );
    assert_eq!(view["lifecycle"], "active", "{view}");
    let new_lead = view["resource"]["lead"]
        .as_str()
        .expect("a lead")
        .to_owned();
    assert_ne!(new_lead, "lead-1");
    reads(&alice, &sealed, "m3", &format!("{marker} another visit?")).await;
    let c = sealed.clone();
    let l = new_lead.clone();
    eventually(&alice, "m3 about the new lead", move |e| {
        e.timeline(&c).iter().any(|i| {
            i.message.id.as_str() == "m3"
                && i.message.stamp.related_lead.as_ref().map(|l| l.as_str()) == Some(l.as_str())
        })
    })
    .await;

    // Opening it again finds it: nothing to write, no second group.
    let id = alice
        .intent(open_support("carol", "flat-7", "alice", true))
        .await
        .unwrap();
    let status = alice.query(move |e| e.status(id)).await.unwrap();
    assert!(
        matches!(status, None | Some(IntentStatus::Accepted)),
        "{status:?}"
    );
    let s = sealed.clone();
    assert_eq!(
        alice.query(move |e| e.group_epoch(&s)).await.unwrap(),
        Some(1)
    );

    // The store holds none of the sealed text; the plaintext thread's is there to find.
    let plain_messages = format!("/v1/conversations/{plain}/messages");
    let post = json!({"body": control}).to_string();
    parse(
        &http(&server, "POST", &plain_messages, "carol", Some(&post)).await,
        201,
    );
    assert!(store_holds(&server, &control).await, "the probe finds text");
    assert!(!store_holds(&server, &marker).await, "sealed text stored");
}

#[tokio::test]
async fn encrypted_support_sqlite() {
    encrypted_support(Backend::Sqlite).await;
}

#[tokio::test]
async fn encrypted_support_postgres() {
    encrypted_support(Backend::Postgres).await;
}

/// The client and the owner open their encrypted support thread while both are offline,
/// each with a message, and come back at once: one group, both intents accepted, both
/// messages readable on both devices (`native_support::offline_creations_converge`) and
/// stamped with their sender's role.
async fn offline_race(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let dirs = fresh_dirs(&format!("e2ee-support-race-{backend:?}"), 2);
    let carol = device_client(&server, "carol", "phone", &dirs[0]);
    let alice = device_client(&server, "alice", "laptop", &dirs[1]);
    let conv = thread("carol", "flat-8", true);
    let open = || open_support("carol", "flat-8", "alice", true);
    offline_creations_converge(
        &conv,
        [
            (&carol, open(), "c1", "carol, offline"),
            (&alice, open(), "a1", "alice, offline"),
        ],
    )
    .await;
    for c in [&carol, &alice] {
        stamped(c, &conv, "c1", SenderRole::Client, None).await;
        stamped(c, &conv, "a1", SenderRole::Owner, None).await;
    }
}

#[tokio::test]
async fn offline_creations_converge_sqlite() {
    offline_race(Backend::Sqlite).await;
}

#[tokio::test]
async fn offline_creations_converge_postgres() {
    offline_race(Backend::Postgres).await;
}
