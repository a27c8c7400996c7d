//! The native stores forget (docs/STORAGE.md, "What a delete removes"): a value deleted or
//! replaced is in none of the files of the store's folder within `FORGET_WITHIN` of the
//! write, with nobody asking (the store's own thread); a store closed before that (a crash)
//! forgets at its next open; a file store's batch that only adds keys appends, and a rewrite
//! cut short by a crash leaves the old log whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use confab_client::core::client::store::block_on_ready;
use confab_client::{FileStore, LocalStore, SqliteStore, StoreOp, FORGET_WITHIN};

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

/// Whether `marker` leaves the files of `dir` within the store's bound (and a margin for a
/// loaded machine), polled.
fn forgotten(dir: &Path, marker: &str) -> bool {
    let until = Instant::now() + FORGET_WITHIN + Duration::from_secs(3);
    while Instant::now() < until {
        if !files_hold(dir, marker) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The folder's files as they are now, in a new folder: what a crash at this moment leaves.
fn crash_image(dir: &Path, tag: &str) -> PathBuf {
    let image = fresh(tag);
    std::fs::create_dir_all(&image).unwrap();
    for f in std::fs::read_dir(dir).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), image.join(f.file_name())).unwrap();
    }
    image
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

    // A single delete, an overwrite, a prefix delete: each value leaves the disk by itself.
    write(&store, vec![StoreOp::Delete("out/1".into())]);
    assert!(forgotten(&dir, "outbox-x7"));
    write(&store, vec![put("keep", "kept-newer-x7")]);
    assert!(forgotten(&dir, "kept-x7"));
    write(
        &store,
        vec![
            StoreOp::DeletePrefix("chg/p/".into()),
            put("snap/p", "generation-2-x7"),
        ],
    );
    assert!(forgotten(&dir, "body-1-x7") && forgotten(&dir, "body-2-x7"));
    // A value put and deleted in one batch goes too.
    write(
        &store,
        vec![put("tmp", "transient-x7"), StoreOp::Delete("tmp".into())],
    );
    assert!(forgotten(&dir, "transient-x7"));
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
fn a_file_store_closed_before_it_forgot_forgets_at_open() {
    closed_before_it_forgot_forgets_at_open("file-crash", |dir| FileStore::open(dir).unwrap());
}

#[test]
fn a_sqlite_store_closed_before_it_forgot_forgets_at_open() {
    closed_before_it_forgot_forgets_at_open("sqlite-crash", |dir| {
        std::fs::create_dir_all(dir).unwrap();
        SqliteStore::open(dir.join("store.db")).unwrap()
    });
}

/// A store (`open` in a folder) deletes a part's history and is copied as a crash would
/// leave it, before its thread wiped: the copy still holds the body, and opening it forgets
/// it; the live keys are intact.
fn closed_before_it_forgot_forgets_at_open<S: LocalStore>(tag: &str, open: impl Fn(&Path) -> S) {
    let dir = fresh(tag);
    let store = open(&dir);
    let sq = |ops| block_on_ready(store.write(ops)).unwrap().unwrap();
    sq(vec![
        put("chg/p/1", "crash-body-x7"),
        put("keep", "kept-x7"),
    ]);
    sq(vec![
        StoreOp::DeletePrefix("chg/p/".into()),
        put("snap/p", "generation-x7"),
    ]);
    // Well inside the quiet spell the thread waits for: the body is still on disk.
    let image = crash_image(&dir, &format!("{tag}-image"));
    drop(store);
    assert!(
        files_hold(&image, "crash-body-x7"),
        "the image predates the wipe"
    );
    let reopened = open(&image);
    assert!(
        forgotten(&image, "crash-body-x7"),
        "the reopened store kept the dead value"
    );
    let all = block_on_ready(reopened.scan("")).unwrap().unwrap();
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["keep", "snap/p"]);
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&image);
}

#[test]
fn the_sqlite_store_forgets_deleted_and_replaced_values() {
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
    assert!(
        forgotten(&dir, "outbox-x7"),
        "a deleted value stays on disk"
    );
    sq(vec![put("keep", "kept-newest-x7")]);
    assert!(
        forgotten(&dir, "kept-old-x7"),
        "a replaced value stays on disk"
    );
    // A new generation: the part's changes go, its snapshot is replaced.
    sq(vec![
        StoreOp::DeletePrefix("chg/p/".into()),
        put("snap/p", "generation-2-x7"),
    ]);
    assert!(
        forgotten(&dir, "history-1-x7"),
        "a part's history stays on disk"
    );
    assert!(files_hold(&dir, "kept-newest-x7") && files_hold(&dir, "generation-2-x7"));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
