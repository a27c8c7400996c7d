//! The server never holds the plaintext of an encrypted conversation (docs/E2EE.md, "Sealed
//! messages"), on SQLite and Postgres: `confab-client` devices send unique markers as body,
//! caption, payload and attachment names into an encrypted group, and a mention of a member
//! with no device online fires the push webhook. None of the markers is then in the
//! database (`pg_dump`, or the SQLite files' bytes with the WAL), the server's output at
//! debug level, the webhook bodies, or the `/v1` views of messages, the list and the
//! notification feed. A plaintext group with its own marker is the control: the same
//! searches find that one, so they can fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use confab_client::Client as NativeClient;
use confab_core::client::{Intent, KEY_PACKAGES_TARGET};
use confab_core::ids::{ConvId, DocId, MessageId, TenantId};
use confab_core::model::message::{MessageKind, NewMessage};
use confab_e2e::native_support::*;
use confab_e2e::push_receiver::Receiver;
use confab_e2e::{now_ms, Backend, TestServer};

/// The markers of one run (unique, so nothing but this run can hold them).
struct Markers {
    body: String,
    caption: String,
    payload: String,
    attachment: String,
    reply: String,
    /// Sent in the plaintext group: it must be found.
    control: String,
}

impl Markers {
    fn new(backend: Backend) -> Self {
        let run = format!("{:?}{}x{}", backend, std::process::id(), now_ms()).to_lowercase();
        let m = |what: &str| format!("mk{what}{run}");
        Markers {
            body: m("body"),
            caption: m("caption"),
            payload: m("payload"),
            attachment: m("attachment"),
            reply: m("reply"),
            control: m("control"),
        }
    }

    fn sealed(&self) -> [&str; 5] {
        [
            &self.body,
            &self.caption,
            &self.payload,
            &self.attachment,
            &self.reply,
        ]
    }
}

/// Whether `haystack` holds `marker` as text or as the hex a `bytea` column dumps.
fn holds(haystack: &[u8], marker: &str) -> bool {
    let hex = hex::encode(marker);
    [marker.as_bytes(), hex.as_bytes()]
        .iter()
        .any(|needle| haystack.windows(needle.len()).any(|w| w == *needle))
}

fn assert_clean(place: &str, haystack: &[u8], markers: &Markers) {
    for marker in markers.sealed() {
        assert!(!holds(haystack, marker), "{place} holds plaintext {marker}");
    }
}

/// The store's bytes: `pg_dump` of the database, or every file of the SQLite data folder
/// (the database, its WAL and shared memory).
fn store_bytes(server: &TestServer) -> Vec<u8> {
    match &server.database_url {
        Some(url) => {
            let out = std::process::Command::new("pg_dump")
                .arg(url)
                .output()
                .expect("pg_dump (it ships with PostgreSQL)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
        None => {
            let mut all = Vec::new();
            read_tree(&server.data_dir, &mut all);
            all
        }
    }
}

fn read_tree(dir: &Path, into: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_tree(&path, into);
        } else if path.file_name().is_some_and(|n| n != "server.log") {
            into.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
}

fn group(id: &str, encrypted: bool) -> Intent {
    let mut create = group_of(&ConvId::new(id).unwrap(), &["bob", "carol"]);
    if let Intent::CreateConversation { encrypted: e, .. } = &mut create {
        *e = encrypted;
    }
    create
}

/// A file message of `c` with markers in every content field (`m`'s, or `control` in each
/// for the plaintext group), mentioning carol.
async fn send_rich(c: &NativeClient, conv: &ConvId, id: &str, m: &Markers, control: bool) -> u64 {
    let pick = |sealed: &str| {
        if control {
            m.control.clone()
        } else {
            sealed.to_owned()
        }
    };
    let body = pick(&m.body);
    let mut message = NewMessage::text(
        MessageId::new(id).unwrap(),
        confab_testkit::ids::acc("alice"),
        format!("@carol {body}"),
        now_ms(),
    );
    message.kind = MessageKind::File;
    message.caption = Some(format!("caption {}", pick(&m.caption)));
    message.payload = Some(format!(r#"{{"note":"{}"}}"#, pick(&m.payload)));
    message.attachments = Some(format!(
        r#"[{{"id":"a","kind":"file","name":"{0}.pdf","url":"https://files.example/{0}.pdf"}}]"#,
        pick(&m.attachment)
    ));
    message.mentions = Some(r#"["carol"]"#.into());
    c.intent(Intent::Send {
        conv: conv.clone(),
        message,
    })
    .await
    .unwrap()
}

async fn follow(c: &NativeClient, conv: &ConvId) {
    c.open(DocId::conv(&TenantId::new(TENANT).unwrap(), conv))
        .await
        .unwrap();
    let bucket = today(c, conv).await;
    c.open(bucket).await.unwrap();
}

async fn get(server: &TestServer, path: &str, who: &str) -> String {
    let answer = http(server, "GET", path, who, None).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.body
}

async fn no_plaintext_leaves_the_devices(backend: Backend) {
    let m = Markers::new(backend);
    let receiver = Receiver::start().await.unwrap();
    let hook = [
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-secret",
        "markers",
        "--webhook-backoff-ms",
        "100",
    ];
    let server = TestServer::start_with_log(backend, &hook, "debug")
        .await
        .unwrap();
    // Carol never connects: a member with no device, so the webhook is told of her mentions.
    let dirs = fresh_dirs(&format!("e2ee-plaintext-{backend:?}"), 2);
    let alice = device_client(&server, "alice", "laptop", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    for c in [&alice, &bob] {
        c.set_online(true).await.unwrap();
        eventually(c, "key packages topped up", |e| {
            e.key_packages_held() == Some(KEY_PACKAGES_TARGET)
        })
        .await;
    }

    let vault = ConvId::new("vault").unwrap();
    let open = ConvId::new("open").unwrap();
    for (conv, encrypted) in [(&vault, true), (&open, false)] {
        let created = alice.intent(group(conv.as_str(), encrypted)).await.unwrap();
        accepted(&alice, created).await;
        follow(&alice, conv).await;
        follow(&bob, conv).await;
    }
    eventually(&bob, "bob in the group", |e| {
        e.group_epoch(&ConvId::new("vault").unwrap()) == Some(1)
    })
    .await;

    let sent = send_rich(&alice, &vault, "m1", &m, false).await;
    accepted(&alice, sent).await;
    let reply = send(&bob, &vault, "m2", &m.reply).await;
    accepted(&bob, reply).await;
    let control = send_rich(&alice, &open, "c1", &m, true).await;
    accepted(&alice, control).await;
    // The markers did travel: bob reads them.
    let want = format!("@carol {}", m.body);
    eventually(&bob, "bob reads m1", move |e| {
        e.timeline(&ConvId::new("vault").unwrap()).iter().any(|i| {
            i.message.id.as_str() == "m1" && i.undecryptable.is_none() && i.message.body == want
        })
    })
    .await;
    // Both mentions of carol reach the webhook.
    let mut hooks = Vec::new();
    for _ in 0..500 {
        hooks = receiver.bodies();
        let text = serde_json::to_string(&hooks).unwrap();
        if text.contains("\"vault\"") && text.contains("\"open\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hooks = serde_json::to_vec(&hooks).unwrap();
    assert!(
        holds(&hooks, "\"vault\"") && holds(&hooks, &m.control),
        "the webhook was not called for both groups: {}",
        String::from_utf8_lossy(&hooks)
    );
    assert_clean("a webhook body", &hooks, &m);

    // REST: messages, the list's previews, carol's notification feed.
    let mut views = Vec::new();
    for (path, who) in [
        ("/v1/conversations/vault/messages", "alice"),
        ("/v1/conversations/vault", "bob"),
        ("/v1/conversations", "alice"),
        ("/v1/conversations", "carol"),
        ("/v1/notifications", "carol"),
    ] {
        let body = get(&server, path, who).await;
        assert_clean(&format!("GET {path} as {who}"), body.as_bytes(), &m);
        views.push(body);
    }
    let open_page = get(&server, "/v1/conversations/open/messages", "alice").await;
    assert!(open_page.contains(&m.control), "{open_page}");
    assert!(
        views[0].contains("\"is_encrypted\":true"),
        "encrypted messages say so: {}",
        views[0]
    );

    let store = store_bytes(&server);
    assert!(
        holds(&store, &m.control),
        "the control is stored in the clear"
    );
    assert_clean("the store", &store, &m);
    let log = server.log();
    assert!(
        log.contains("DEBUG"),
        "the server logged at debug level: {}",
        &log[..log.len().min(2000)]
    );
    assert_clean("the server's output", log.as_bytes(), &m);
}

#[tokio::test]
async fn no_plaintext_of_an_encrypted_group_reaches_the_server_on_sqlite() {
    no_plaintext_leaves_the_devices(Backend::Sqlite).await;
}

#[tokio::test]
async fn no_plaintext_of_an_encrypted_group_reaches_the_server_on_postgres() {
    no_plaintext_leaves_the_devices(Backend::Postgres).await;
}
