//! The server never holds the plaintext of an encrypted conversation (docs/E2EE.md, "Sealed
//! messages"), on SQLite and Postgres: `confab-client` devices send unique markers as body,
//! caption, payload and attachment names into an encrypted group, and a mention of a member
//! with no device online fires the push webhook. None of the markers is then in the
//! database (`pg_dump`, or the SQLite files' bytes with the WAL), the server's output at
//! debug level, the webhook bodies, or the `/v1` views of messages, the list and the
//! notification feed. The file attached in the encrypted group is sealed on the device
//! (`e2ee::file`): its contents' marker is not in the blob store, and bob downloads and opens
//! it. Alice's draft and two scheduled messages of the encrypted group carry markers too:
//! they stay on her device (docs/E2EE.md, "Drafts and scheduled messages"); the one due
//! during the test is posted sealed by her device, and bob reads it. A plaintext group with
//! its own markers (its own file, and a draft) is the control: the same searches find those,
//! so they can fail. Then alice deletes both file messages: the sealed
//! file goes from the blob store as the control's does (its message named its hash in the
//! clear), once no live message names it, and bob's download of either answers 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use confab_client::Client as NativeClient;
use confab_core::client::Intent;
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
    /// In the contents of the file attached in the encrypted group.
    file: String,
    /// Alice's draft of the encrypted group.
    draft: String,
    /// A scheduled message of the encrypted group, due during the test.
    scheduled: String,
    /// A scheduled message of the encrypted group, due long after the test.
    pending: String,
    /// Alice's draft of the plaintext group: it must be found.
    control_draft: String,
    /// Sent in the plaintext group: it must be found.
    control: String,
    /// In the contents of the file attached in the plaintext group: it must be found.
    control_file: String,
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
            file: m("file"),
            draft: m("draft"),
            scheduled: m("scheduled"),
            pending: m("pending"),
            control_draft: m("controldraft"),
            control: m("control"),
            control_file: m("controlfile"),
        }
    }

    fn sealed(&self) -> [&str; 9] {
        [
            &self.body,
            &self.caption,
            &self.payload,
            &self.attachment,
            &self.reply,
            &self.file,
            &self.draft,
            &self.scheduled,
            &self.pending,
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

/// `method path` as `who` with `body` of type `mime`: the status and the answer's bytes
/// (`common::http` reads answers as text).
async fn http_bytes(
    server: &TestServer,
    method: &str,
    path: &str,
    who: &str,
    body: &[u8],
    mime: &str,
) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nAuthorization: Bearer {}\r\nContent-Type: {mime}\r\n\
         Content-Length: {}\r\n\r\n",
        confab_e2e::token(TENANT, who, false, 3600),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let status = String::from_utf8_lossy(&answer[..split])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer[(split + 4).min(answer.len())..].to_vec())
}

/// The attachment reference of `contents` uploaded to `conv` by alice: sealed first
/// (AES-256-GCM, a key and nonce of its own) in an encrypted conversation, as a device does.
async fn attach(
    server: &TestServer,
    conv: &ConvId,
    contents: &str,
    name: &str,
    sealed: bool,
) -> String {
    use confab_core::e2ee::file::{file_hash, seal_file};
    let key: [u8; 32] = std::array::from_fn(|i| (now_ms() as u8).wrapping_add(i as u8 * 7));
    let nonce: [u8; 12] = std::array::from_fn(|i| (std::process::id() as u8).wrapping_add(i as u8));
    let (bytes, seal) = if sealed {
        let file = seal_file(contents.as_bytes(), &key, &nonce).unwrap();
        let seal = serde_json::json!({
            "key": hex::encode(key), "nonce": hex::encode(nonce), "sha256": file.hash,
        });
        (file.ciphertext, Some(seal))
    } else {
        (contents.as_bytes().to_vec(), None)
    };
    let path = format!("/v1/conversations/{conv}/attachments/{}", file_hash(&bytes));
    let (status, body) = http_bytes(server, "PUT", &path, "alice", &bytes, "text/plain").await;
    assert!(
        status == 200 || status == 201,
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    let stored: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut reference = serde_json::json!({
        "id": "a", "kind": "file", "name": format!("{name}.txt"), "mime": "text/plain",
        "size": contents.len(), "url": stored["url"],
    });
    if let Some(seal) = seal {
        reference["encryption"] = seal;
    }
    serde_json::json!([reference]).to_string()
}

/// A file message of `c` with markers in every content field (`m`'s, or `control` in each
/// for the plaintext group) and `attachments`, mentioning carol.
async fn send_rich(
    c: &NativeClient,
    conv: &ConvId,
    id: &str,
    m: &Markers,
    control: bool,
    attachments: String,
) -> u64 {
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
    message.attachments = Some(attachments);
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
        // Released blobs deleted a second after their message, by a pass every second.
        "--purge-sweep-secs",
        "1",
        "--blob-release-delay-secs",
        "1",
    ];
    let server = TestServer::start_with_log(backend, &hook, "debug")
        .await
        .unwrap();
    // Carol never connects: a member with no device, so the webhook is told of her mentions.
    let dirs = fresh_dirs(&format!("e2ee-plaintext-{backend:?}"), 2);
    let alice = device_client(&server, "alice", "laptop", &dirs[0]);
    let bob = device_client(&server, "bob", "phone", &dirs[1]);
    online_with_packages(&[&alice, &bob]).await;

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

    let file = format!("the file says {}", m.file);
    let sealed_file = attach(&server, &vault, &file, &m.attachment, true).await;
    let sent = send_rich(&alice, &vault, "m1", &m, false, sealed_file.clone()).await;
    accepted(&alice, sent).await;
    let reply = send(&bob, &vault, "m2", &m.reply).await;
    accepted(&bob, reply).await;
    let control_file = format!("the file says {}", m.control_file);
    let clear_file = attach(&server, &open, &control_file, &m.control, false).await;
    let control = send_rich(&alice, &open, "c1", &m, true, clear_file.clone()).await;
    accepted(&alice, control).await;
    // Drafts and scheduled messages: the encrypted group's on alice's device alone, the
    // plaintext group's draft in her private document.
    let drafts = [(&vault, &m.draft), (&open, &m.control_draft)];
    for (conv, text) in drafts {
        let draft = Intent::SetDraft {
            conv: conv.clone(),
            text: Some(text.clone()),
        };
        accepted(&alice, alice.intent(draft).await.unwrap()).await;
    }
    let soon = now_ms() + 1_500;
    let scheduled = [
        ("s1", &m.scheduled, soon),
        ("s2", &m.pending, now_ms() + 86_400_000),
    ];
    for (id, body, at) in scheduled {
        let schedule = Intent::Schedule {
            id: MessageId::new(id).unwrap(),
            conv: vault.clone(),
            body: body.clone(),
            at,
        };
        accepted(&alice, alice.intent(schedule).await.unwrap()).await;
    }
    let want = m.scheduled.clone();
    eventually(&bob, "bob reads the scheduled s1", move |e| {
        e.timeline(&ConvId::new("vault").unwrap()).iter().any(|i| {
            i.message.id.as_str() == "s1" && i.undecryptable.is_none() && i.message.body == want
        })
    })
    .await;
    let kept = alice.query(|e| e.private_data()).await.unwrap();
    assert_eq!(kept.drafts.get(&vault), Some(&m.draft));
    assert_eq!(
        kept.scheduled
            .keys()
            .map(|k| k.as_str())
            .collect::<Vec<_>>(),
        ["s2"],
        "s1 was posted, s2 waits on alice's device"
    );

    // The markers did travel: bob reads them.
    let want = format!("@carol {}", m.body);
    eventually(&bob, "bob reads m1", move |e| {
        e.timeline(&ConvId::new("vault").unwrap()).iter().any(|i| {
            i.message.id.as_str() == "m1" && i.undecryptable.is_none() && i.message.body == want
        })
    })
    .await;
    // Bob downloads the file and opens it with what the sealed attachment list holds.
    let attachments = bob
        .query(|e| {
            e.timeline(&ConvId::new("vault").unwrap())
                .into_iter()
                .find(|i| i.message.id.as_str() == "m1")
                .and_then(|i| i.message.attachments)
        })
        .await
        .unwrap()
        .expect("bob reads m1's attachments");
    let reference: serde_json::Value = serde_json::from_str(&attachments).unwrap();
    let reference = &reference[0];
    let url = reference["url"].as_str().unwrap();
    let path = &url[url.find("/v1/").unwrap()..];
    let (status, stored) = http_bytes(&server, "GET", path, "bob", b"", "text/plain").await;
    assert_eq!(status, 200);
    assert!(!holds(&stored, &m.file), "the server serves the plaintext");
    let seal = &reference["encryption"];
    let field = |k: &str| hex::decode(seal[k].as_str().unwrap()).unwrap();
    let opened = confab_core::e2ee::file::open_file(
        &stored,
        &field("key"),
        &field("nonce"),
        seal["sha256"].as_str(),
    )
    .unwrap();
    assert_eq!(opened, file.as_bytes());
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
        holds(&store, &m.control) && holds(&store, &m.control_draft),
        "the controls are stored in the clear"
    );
    assert_clean("the store", &store, &m);
    let mut blobs = Vec::new();
    read_tree(&server.data_dir.join("blobs"), &mut blobs);
    assert!(
        holds(&blobs, &m.control_file),
        "the control file is stored in the clear"
    );
    assert_clean("the blob store", &blobs, &m);
    let log = server.log();
    assert!(
        log.contains("DEBUG"),
        "the server logged at debug level: {}",
        &log[..log.len().min(2000)]
    );
    assert_clean("the server's output", log.as_bytes(), &m);

    // Deleting the messages releases their files: the sealed one by the hash its message
    // names in the clear, the control by its URL (docs/ATTACHMENTS.md, "Deleted messages").
    // m3 names the sealed file too: it keeps it until it is deleted as well.
    let again = send_rich(&alice, &vault, "m3", &m, false, sealed_file).await;
    accepted(&alice, again).await;
    let control: serde_json::Value = serde_json::from_str(&clear_file).unwrap();
    let control_url = control[0]["url"].as_str().unwrap();
    let control_path = &control_url[control_url.find("/v1/").unwrap()..];
    delete(&alice, &vault, "m1").await;
    delete(&alice, &open, "c1").await;
    gone(&server, &open, control_path).await;
    // The passes that deleted the control saw the sealed file's candidate: m3 kept it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, _) = http_bytes(&server, "GET", path, "bob", b"", "text/plain").await;
    assert_eq!(status, 200, "the sealed file went while m3 still names it");
    delete(&alice, &vault, "m3").await;
    gone(&server, &vault, path).await;
}

/// `c` deletes its message `id` of `conv` for everyone, accepted.
async fn delete(c: &NativeClient, conv: &ConvId, id: &str) {
    let (conv, id) = (conv.clone(), MessageId::new(id).unwrap());
    let bucket = c
        .query({
            let (conv, id) = (conv.clone(), id.clone());
            move |e| {
                e.timeline(&conv)
                    .into_iter()
                    .find(|i| i.message.id == id)
                    .map(|i| i.bucket)
            }
        })
        .await
        .unwrap()
        .expect("the message is held");
    let delete = Intent::Delete {
        conv,
        message: id,
        bucket,
    };
    accepted(c, c.intent(delete).await.unwrap()).await;
}

/// Waits until the blob at `path` (of `conv`) is gone: not served to bob (404) and not on
/// disk.
async fn gone(server: &TestServer, conv: &ConvId, path: &str) {
    let hash = path.rsplit('/').next().unwrap();
    let on_disk = server
        .data_dir
        .join(format!("blobs/t/{TENANT}/c/{conv}/blobs/{hash}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = http_bytes(server, "GET", path, "bob", b"", "text/plain").await;
        if status == 404 && !on_disk.exists() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} is still stored after its message's delete: GET {status}, on disk {}",
            on_disk.exists()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn no_plaintext_of_an_encrypted_group_reaches_the_server_on_sqlite() {
    no_plaintext_leaves_the_devices(Backend::Sqlite).await;
}

#[tokio::test]
async fn no_plaintext_of_an_encrypted_group_reaches_the_server_on_postgres() {
    no_plaintext_leaves_the_devices(Backend::Postgres).await;
}
