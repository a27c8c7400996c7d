//! The native stores forget (docs/STORAGE.md, "What a delete removes"): in the file store a
//! value deleted or replaced is in none of the files of its folder once the write returns, a
//! batch that only adds keys appends, and a rewrite cut short by a crash leaves the old log
//! whole; in the SQLite store nothing deleted or replaced is in the database or its WAL once
//! a prefix delete (a part's history) returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use confab_client::core::client::store::block_on_ready;
use confab_client::{FileStore, LocalStore, StoreOp};

fn fresh(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("confab-forget-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn write(store: &FileStore, ops: Vec<StoreOp>) {
    block_on_ready(store.write(ops)).unwrap().unwrap();
}

/// Whether any file in `dir` holds `marker`.
fn files_hold(dir: &Path, marker: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|f| {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
    })
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("store.log")).unwrap().len()
}

fn put(k: &str, v: &str) -> StoreOp {
    StoreOp::Put(k.into(), v.as_bytes().to_vec())
}

#[test]
fn deleted_and_replaced_values_leave_the_files() {
    let dir = fresh("values");
    let store = FileStore::open(&dir).unwrap();
    write(
        &store,
        vec![put("chg/p/1", "body-1-x7"), put("keep", "kept-x7")],
    );
    write(&store, vec![put("chg/p/2", "body-2-x7")]);
    write(&store, vec![put("out/1", "outbox-x7")]);
    assert!(files_hold(&dir, "body-1-x7") && files_hold(&dir, "outbox-x7"));

    // A single delete, an overwrite, a prefix delete: each value is gone from disk at once.
    write(&store, vec![StoreOp::Delete("out/1".into())]);
    assert!(!files_hold(&dir, "outbox-x7"));
    write(&store, vec![put("keep", "kept-newer-x7")]);
    assert!(!files_hold(&dir, "kept-x7"));
    write(
        &store,
        vec![
            StoreOp::DeletePrefix("chg/p/".into()),
            put("snap/p", "generation-2-x7"),
        ],
    );
    assert!(!files_hold(&dir, "body-1-x7") && !files_hold(&dir, "body-2-x7"));
    // A value put and deleted in one batch is never written.
    write(
        &store,
        vec![put("tmp", "transient-x7"), StoreOp::Delete("tmp".into())],
    );
    assert!(!files_hold(&dir, "transient-x7"));
    assert!(files_hold(&dir, "kept-newer-x7") && files_hold(&dir, "generation-2-x7"));
    drop(store);

    let reopened = FileStore::open(&dir).unwrap();
    let all = block_on_ready(reopened.scan("")).unwrap().unwrap();
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["keep", "snap/p"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_batch_that_only_adds_appends() {
    let dir = fresh("append");
    let store = FileStore::open(&dir).unwrap();
    write(&store, vec![put("a", "one")]);
    let first = log_len(&dir);
    write(&store, vec![put("b", "two")]);
    let second = log_len(&dir);
    write(&store, vec![put("a", "one")]);
    // Each append adds a frame; the same bytes again drop nothing, so they append too.
    assert!(second > first && log_len(&dir) > second);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rewrite_cut_short_leaves_the_old_log() {
    let dir = fresh("crash");
    let store = FileStore::open(&dir).unwrap();
    write(&store, vec![put("a", "one"), put("b", "two")]);
    drop(store);
    // The crash came after the new file was partly written, before its rename.
    std::fs::write(dir.join("store.tmp"), b"\0\0\0\x09half").unwrap();
    let reopened = FileStore::open(&dir).unwrap();
    assert!(!dir.join("store.tmp").exists(), "the leftover is removed");
    let all = block_on_ready(reopened.scan("")).unwrap().unwrap();
    assert_eq!(all.len(), 2);
    write(&reopened, vec![StoreOp::Delete("a".into())]);
    drop(reopened);
    let again = FileStore::open(&dir).unwrap();
    let all = block_on_ready(again.scan("")).unwrap().unwrap();
    assert_eq!(all, vec![("b".to_owned(), b"two".to_vec())]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sqlite_store_forgets_a_history_at_its_prefix_delete() {
    use confab_client::SqliteStore;
    let dir = fresh("sqlite");
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("store.db")).unwrap();
    let sq = |ops| block_on_ready(store.write(ops)).unwrap().unwrap();
    sq(vec![
        put("chg/p/1", "history-1-x7"),
        put("keep", "kept-old-x7"),
    ]);
    sq(vec![put("out/1", "outbox-x7")]);
    assert!(files_hold(&dir, "history-1-x7"), "the check can see it");
    sq(vec![StoreOp::Delete("out/1".into())]);
    sq(vec![put("keep", "kept-newest-x7")]);
    // A new generation: the part's changes go, its snapshot is replaced.
    sq(vec![
        StoreOp::DeletePrefix("chg/p/".into()),
        put("snap/p", "generation-2-x7"),
    ]);
    for gone in ["history-1-x7", "outbox-x7", "kept-old-x7"] {
        assert!(!files_hold(&dir, gone), "{gone} is still on disk");
    }
    assert!(files_hold(&dir, "kept-newest-x7") && files_hold(&dir, "generation-2-x7"));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
