//! The stores of the crate: the conformance suite every `LocalStore` passes (the same one
//! `MemoryStore`, IndexedDB and the JavaScript adapters run), durability across reopening,
//! refusals at open as typed errors, and a client restarting from each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_client::core::client::store::{block_on_ready, conformance};
use confab_client::core::ids::{AccountId, ConvId, TenantId};
use confab_client::core::model::conversation::{ConvKind, Role};
use confab_client::{
    device_config, Client, Error, FileStore, Intent, IntentStatus, LocalStore, SqliteStore, StoreOp,
};

/// A fresh folder for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("confab-client-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn get(store: &impl LocalStore, key: &str) -> Option<Vec<u8>> {
    block_on_ready(store.get(key)).unwrap().unwrap()
}

fn put(store: &impl LocalStore, key: &str, value: &[u8]) {
    block_on_ready(store.write(vec![StoreOp::Put(key.into(), value.to_vec())]))
        .unwrap()
        .unwrap();
}

#[test]
fn the_sqlite_store_passes_the_store_conformance_suite() {
    let dir = TempDir::new("sqlite-conformance");
    let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
    assert_eq!(block_on_ready(conformance(&store)), Some(Ok(())));
}

#[test]
fn the_sqlite_store_keeps_its_data_when_reopened() {
    let dir = TempDir::new("sqlite-reopen");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).unwrap();
    put(&store, "keep/a", &[1, 2, 3]);
    put(&store, "keep/b", &[]);
    put(&store, "gone", &[4]);
    block_on_ready(store.write(vec![StoreOp::Delete("gone".into())]))
        .unwrap()
        .unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(get(&reopened, "keep/a"), Some(vec![1, 2, 3]));
    assert_eq!(get(&reopened, "gone"), None);
    assert_eq!(
        block_on_ready(reopened.scan("keep/")).unwrap().unwrap(),
        vec![
            ("keep/a".to_owned(), vec![1, 2, 3]),
            ("keep/b".to_owned(), vec![])
        ]
    );
    assert_eq!(reopened.path(), path);
}

#[test]
fn a_store_that_cannot_be_opened_is_a_typed_error() {
    let dir = TempDir::new("sqlite-refused");
    // A folder that does not exist.
    let missing = dir.path().join("no-such-folder").join("store.db");
    match SqliteStore::open(&missing) {
        Err(Error::OpenStore { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{source}");
        }
        other => panic!("expected OpenStore, got {other:?}"),
    }
    // A "folder" that is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    assert!(matches!(
        SqliteStore::open(file.join("store.db")),
        Err(Error::OpenStore { .. })
    ));
    assert!(matches!(
        FileStore::open(&file.join("store")),
        Err(Error::OpenStore { .. })
    ));
    // A file that is not a SQLite database.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
    assert!(matches!(
        SqliteStore::open(&garbage),
        Err(Error::OpenStore { .. })
    ));
}

#[cfg(unix)]
#[test]
fn a_read_only_folder_is_a_typed_error_at_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("sqlite-read-only");
    let folder = dir.path().join("read-only");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root writes into read-only folders: then /proc, which refuses new files to everyone.
    let writable = std::fs::write(folder.join("probe"), b"").is_ok();
    let folder = if writable {
        PathBuf::from("/proc")
    } else {
        folder
    };
    if folder.is_dir() {
        let result = SqliteStore::open(folder.join("confab-store.db"));
        assert!(matches!(result, Err(Error::OpenStore { .. })), "{result:?}");
    }
    let _ = std::fs::set_permissions(
        dir.path().join("read-only"),
        std::fs::Permissions::from_mode(0o755),
    );
}

#[test]
fn the_device_config_keeps_its_actor_and_its_account() {
    let dir = TempDir::new("sqlite-identity");
    let path = dir.path().join("store.db");
    let tenant = TenantId::new("acme").unwrap();
    let alice = AccountId::new("alice").unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let first = block_on_ready(device_config(&store, tenant.clone(), alice.clone()))
        .unwrap()
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let again = block_on_ready(device_config(&store, tenant.clone(), alice.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(first, again, "one actor for the store's life");
    let other = TempDir::new("sqlite-identity-other");
    let fresh = SqliteStore::open(other.path().join("store.db")).unwrap();
    let elsewhere = block_on_ready(device_config(&fresh, tenant.clone(), alice))
        .unwrap()
        .unwrap();
    assert_ne!(first.actor, elsewhere.actor, "a new device, a new actor");
    let bob = AccountId::new("bob").unwrap();
    match block_on_ready(device_config(&store, tenant, bob)).unwrap() {
        Err(Error::StoreMismatch { owner, wanted }) => {
            assert_eq!(
                (owner.as_str(), wanted.as_str()),
                ("acme/alice", "acme/bob")
            );
        }
        other => panic!("expected StoreMismatch, got {other:?}"),
    }
}

/// A client writes offline, stops, and a new client on the same store finds its outbox
/// and its timeline: the store is the client's memory across restarts.
async fn restarts_from<S: LocalStore + Send + 'static>(open: impl Fn() -> S) {
    let tenant = TenantId::new("acme").unwrap();
    let alice = AccountId::new("alice").unwrap();
    let config = device_config(&open(), tenant, alice).await.unwrap();
    // Nothing listens on port 9: the client stays offline.
    let url = "ws://127.0.0.1:9/ws";
    let client = Client::start(config.clone(), url, "token", open()).unwrap();
    let conv = ConvId::new("restart").unwrap();
    let created = client
        .intent(Intent::CreateConversation {
            encrypted: false,
            conv: conv.clone(),
            kind: ConvKind::Group,
            title: None,
            members: vec![(AccountId::new("bob").unwrap(), Role::Member)],
            settings: None,
            parent: None,
        })
        .await
        .unwrap();
    let sent = client.send_text(&conv, "written offline").await.unwrap();
    let timeline = |c: &Client| {
        let c = c.clone();
        let conv = conv.clone();
        async move {
            c.query(move |e| {
                e.timeline(&conv)
                    .into_iter()
                    .map(|i| i.message.body)
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(timeline(&client).await, vec!["written offline"]);
    assert!(matches!(
        client.settle(sent, Duration::from_millis(50)).await,
        Err(Error::Unsettled {
            status: Some(IntentStatus::Pending),
            ..
        })
    ));
    drop(client);
    // The client's task ends with its last handle; its store closes with it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = Client::start(config, url, "token", open()).unwrap();
    for id in [created, sent] {
        let status = again.query(move |e| e.status(id)).await.unwrap();
        assert_eq!(status, Some(IntentStatus::Pending), "intent {id}");
    }
    assert_eq!(timeline(&again).await, vec!["written offline"]);
}

#[test]
fn a_client_started_outside_a_tokio_runtime_is_a_typed_error() {
    let config = block_on_ready(device_config(
        &confab_client::MemoryStore::new(),
        TenantId::new("acme").unwrap(),
        AccountId::new("alice").unwrap(),
    ))
    .unwrap()
    .unwrap();
    let started = Client::start(
        config,
        "ws://127.0.0.1:9/ws",
        "token",
        confab_client::MemoryStore::new(),
    );
    assert!(matches!(started, Err(Error::NoRuntime)), "{started:?}");
}

#[tokio::test]
async fn a_client_restarts_from_its_sqlite_store() {
    let dir = TempDir::new("sqlite-restart");
    let path = dir.path().join("store.db");
    restarts_from(|| SqliteStore::open(&path).unwrap()).await;
}

#[tokio::test]
async fn a_client_restarts_from_its_file_store() {
    let dir = TempDir::new("file-restart");
    let path = dir.path().to_path_buf();
    restarts_from(|| FileStore::open(&path).unwrap()).await;
}

#[test]
fn the_file_store_passes_the_store_conformance_suite_and_survives_a_torn_write() {
    use confab_core::client::store::{block_on_ready, conformance};
    use confab_core::client::{LocalStore, StoreOp};
    let dir = std::env::temp_dir().join(format!("confab-filestore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileStore::open(&dir).unwrap();
    assert_eq!(block_on_ready(conformance(&store)), Some(Ok(())));
    block_on_ready(store.write(vec![StoreOp::Put("keep".into(), vec![1, 2, 3])]))
        .unwrap()
        .unwrap();
    drop(store);
    // A crash in the middle of appending a batch leaves a torn tail: it is dropped whole.
    let log = dir.join("store.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend([0, 0, 0, 40, 1, 2, 3, 4, 9, 9]);
    std::fs::write(&log, &bytes).unwrap();
    let reopened = FileStore::open(&dir).unwrap();
    assert_eq!(
        block_on_ready(reopened.get("keep")).unwrap().unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(
        block_on_ready(reopened.get("doc0")).unwrap().unwrap(),
        Some(vec![9])
    );
    block_on_ready(reopened.write(vec![StoreOp::Put("after".into(), vec![7])]))
        .unwrap()
        .unwrap();
    drop(reopened);
    let again = FileStore::open(&dir).unwrap();
    assert_eq!(
        block_on_ready(again.get("after")).unwrap().unwrap(),
        Some(vec![7])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
