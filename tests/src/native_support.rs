//! Helpers for tests that drive `confab-client` clients: one client per account and device
//! with its own file store, intents written the way an app writes them, timeline reads. They panic on
//! failure: they only run inside tests, where a panic is the test's failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, Intent, KEY_PACKAGES_TARGET};
use confab_core::ids::{AccountId, ConvId, DocId, DocTarget, MessageId, TenantId};
use confab_core::model::conversation::{ConvKind, Role};
use confab_core::model::message::NewMessage;

use confab_client::{Client as NativeClient, FileStore};

use crate::{now_ms, token, TestServer};

/// A native client of `account` (device number `device`) on `server`, storing in `dir`.
pub fn client(server: &TestServer, account: &str, device: u8, dir: &Path) -> NativeClient {
    let mut actor = [device; 16];
    actor[..account.len().min(8)].copy_from_slice(&account.as_bytes()[..account.len().min(8)]);
    let config = ClientConfig {
        tenant: TenantId::new("acme").unwrap(),
        account: AccountId::new(account).unwrap(),
        actor: ActorId::from(&actor[..]),
    };
    NativeClient::start(
        config,
        server.ws_url(),
        token("acme", account, false, 3600),
        FileStore::open(dir).unwrap(),
    )
    .unwrap()
}

/// A native client of `account` as its device `device`, with end-to-end encryption
/// (`Client::start_device`), storing in `dir`. Its actor is made of both names: two devices
/// of one account that write (a sync, a delivery marker) must not share one.
pub fn device_client(server: &TestServer, account: &str, device: &str, dir: &Path) -> NativeClient {
    let mut actor = [7u8; 16];
    for (slot, b) in actor
        .iter_mut()
        .zip(account.bytes().take(8).chain(device.bytes()))
    {
        *slot = b;
    }
    let config = ClientConfig {
        tenant: TenantId::new("acme").unwrap(),
        account: AccountId::new(account).unwrap(),
        actor: ActorId::from(&actor[..]),
    };
    NativeClient::start_device(
        config,
        confab_core::ids::DeviceId::new(device).unwrap(),
        server.ws_url(),
        token("acme", account, false, 3600),
        FileStore::open(dir).unwrap(),
    )
    .unwrap()
}

/// Polls `f` on `c`'s engine until it holds (20 s).
pub async fn eventually(
    c: &NativeClient,
    what: &str,
    f: impl Fn(&confab_core::client::ClientEngine) -> bool + Clone + Send + 'static,
) {
    for _ in 0..1000 {
        let f = f.clone();
        if c.query(move |e| f(e)).await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never: {what}");
}

/// Empty store folders for `n` clients of one test.
pub fn fresh_dirs(tag: &str, n: usize) -> Vec<PathBuf> {
    let dirs: Vec<_> = (0..n)
        .map(|i| std::env::temp_dir().join(format!("confab-{tag}-{}-{i}", std::process::id())))
        .collect();
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    dirs
}

/// A group `conv` whose creator adds `members` as members.
pub fn group_of(conv: &ConvId, members: &[&str]) -> Intent {
    Intent::CreateConversation {
        encrypted: false,
        conv: conv.clone(),
        kind: ConvKind::Group,
        title: None,
        members: members
            .iter()
            .map(|m| (AccountId::new(*m).unwrap(), Role::Member))
            .collect(),
        settings: None,
        parent: None,
    }
}

/// Today's bucket of `conv` as `c` computes it.
pub async fn today(c: &NativeClient, conv: &ConvId) -> DocId {
    let conv = conv.clone();
    c.query(move |e| e.bucket_doc(&conv, now_ms()))
        .await
        .unwrap()
}

/// Waits until intent `id` of `c` is accepted.
pub async fn accepted(c: &NativeClient, id: u64) {
    assert_eq!(c.settle(id, Duration::from_secs(20)).await.unwrap(), None);
}

/// `c` creates group `conv` with bob, writes `gone` (body `marker`) and `kept` into today's
/// part and deletes `gone` for everyone, each accepted: a part a cut is due for. Answers
/// the part and the delete intent (to send again after a fault).
pub async fn part_with_a_deleted_message(
    c: &NativeClient,
    conv: &ConvId,
    marker: &str,
) -> (DocId, Intent) {
    accepted(c, c.intent(group_of(conv, &["bob"])).await.unwrap()).await;
    let part = today(c, conv).await;
    let DocTarget::Msgs(_, bucket) = part.target() else {
        unreachable!("a message part")
    };
    let bucket = *bucket;
    c.open(part.clone()).await.unwrap();
    accepted(c, send(c, conv, "gone", marker).await).await;
    accepted(c, send(c, conv, "kept", "kept body").await).await;
    let delete = Intent::Delete {
        conv: conv.clone(),
        message: MessageId::new("gone").unwrap(),
        bucket,
    };
    accepted(c, c.intent(delete.clone()).await.unwrap()).await;
    (part, delete)
}

pub async fn send(c: &NativeClient, conv: &ConvId, id: &str, body: &str) -> u64 {
    let me = c.query(|e| e.config().account.clone()).await.unwrap();
    let message = NewMessage::text(MessageId::new(id).unwrap(), me, body, now_ms());
    c.intent(Intent::Send {
        conv: conv.clone(),
        message,
    })
    .await
    .unwrap()
}

/// Bodies of the live (not deleted) messages `c`'s timeline holds.
pub async fn live(c: &NativeClient, conv: &ConvId) -> std::collections::BTreeSet<String> {
    let conv = conv.clone();
    c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .filter(|i| i.message.deleted_at.is_none())
            .map(|i| i.message.body)
            .collect()
    })
    .await
    .unwrap()
}

pub async fn bodies(c: &NativeClient, conv: &ConvId) -> Vec<String> {
    let conv = conv.clone();
    c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .map(|i| i.message.body)
            .collect()
    })
    .await
    .unwrap()
}

pub async fn wait_for(c: &NativeClient, conv: &ConvId, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let b = bodies(c, conv).await;
        if b.len() >= n {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timeline never reached {n}: {:?}", bodies(c, conv).await);
}

/// Polls `check` every 50 ms until it holds or `within` passes: whether it held.
pub async fn until<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The generation of `doc` on `c`'s device (`None`: not held).
pub async fn generation_on(c: &NativeClient, doc: &DocId) -> Option<u64> {
    let doc = doc.clone();
    c.query(move |e| e.generation(&doc)).await.unwrap()
}

/// Follows `conv` on `c`: its document and today's bucket.
pub async fn follow_conv(c: &NativeClient, conv: &ConvId) {
    c.open(DocId::conv(&TenantId::new("acme").unwrap(), conv))
        .await
        .unwrap();
    let bucket = today(c, conv).await;
    c.open(bucket).await.unwrap();
}

/// Waits until `c`'s group of `conv` is at epoch `want`.
pub async fn at_epoch(c: &NativeClient, conv: &ConvId, want: u64) {
    let target = conv.clone();
    for _ in 0..1000 {
        let conv = target.clone();
        if c.query(move |e| e.group_epoch(&conv)).await.unwrap() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conv = target.clone();
    let now = c.query(move |e| e.group_epoch(&conv)).await.unwrap();
    panic!("never: {target} at epoch {want} (at {now:?})");
}

/// What `c` shows of message `id` of `conv`: `Ok(body)` opened, `Err(reason)` not.
pub async fn shown_in(
    c: &NativeClient,
    conv: &ConvId,
    id: &'static str,
) -> Option<Result<String, String>> {
    let conv = conv.clone();
    c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .find(|i| i.message.id.as_str() == id)
            .map(|i| match i.undecryptable {
                Some(why) => Err(why),
                None => Ok(i.message.body),
            })
    })
    .await
    .unwrap()
}

/// Waits until `c` shows message `id` of `conv` opened, with `body`.
pub async fn reads(c: &NativeClient, conv: &ConvId, id: &str, body: &str) {
    let (conv, id, body) = (conv.clone(), id.to_owned(), body.to_owned());
    eventually(c, &format!("{conv}: {id} reads {body}"), move |e| {
        e.timeline(&conv).iter().any(|i| {
            i.message.id.as_str() == id && i.undecryptable.is_none() && i.message.body == body
        })
    })
    .await;
}

/// Each of `clients` online, with its key packages topped up in the directory.
pub async fn online_with_packages(clients: &[&NativeClient]) {
    for c in clients {
        c.set_online(true).await.unwrap();
        eventually(c, "key packages topped up", |e| {
            e.key_packages_held() == Some(KEY_PACKAGES_TARGET)
        })
        .await;
    }
}

/// Two devices with their key packages in the directory go offline; each opens `conv`
/// (an encrypted direct conversation or support thread) with its intent and sends a message
/// (id, body), and both come back at once. Whichever group the server takes first is the
/// group, the other device drops its own and joins it from the Welcome: every intent ends
/// accepted, both devices follow `conv` at epoch 1 (the winner's creation commit added the
/// other device, nothing more) and read both messages.
pub async fn offline_creations_converge(
    conv: &ConvId,
    devices: [(&NativeClient, Intent, &str, &str); 2],
) {
    let (a, b) = (devices[0].0, devices[1].0);
    online_with_packages(&[a, b]).await;
    a.set_online(false).await.unwrap();
    b.set_online(false).await.unwrap();
    let mut ids = Vec::new();
    for (c, open, id, body) in &devices {
        let opened = c.intent(open.clone()).await.unwrap();
        ids.push((*c, [opened, send(c, conv, id, body).await]));
    }
    let (up_a, up_b) = tokio::join!(a.set_online(true), b.set_online(true));
    up_a.unwrap();
    up_b.unwrap();
    for (c, ids) in ids {
        for id in ids {
            accepted(c, id).await;
        }
    }
    for c in [a, b] {
        follow_conv(c, conv).await;
    }
    for c in [a, b] {
        at_epoch(c, conv, 1).await;
        for (_, _, id, body) in &devices {
            reads(c, conv, id, body).await;
        }
    }
}
