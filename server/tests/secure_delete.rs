//! The embedded store runs with `secure_delete` (docs/STORAGE.md, "What a delete removes"):
//! once a message's projected row is emptied by its delete and the WAL is checkpointed, the
//! row's old preview is in neither the database file nor the WAL. The change log is not part
//! of this: it keeps the history until the part's history is cut, so the changes here carry
//! no marker (the conformance suite's synthetic bytes) and the test reads the projection.

use confab_server::store::conformance::*;
use confab_server::store::sqlite::SqliteStore;
use confab_server::store::{ChangeLog, Store};
use sqlx::{Connection, SqliteConnection};

const MARKER: &str = "redact-marker-5e1f0c7a9d";

fn holds(path: &std::path::Path, marker: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

#[tokio::test]
async fn a_deleted_messages_preview_leaves_the_file_and_the_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("confab.db");
    let wal = dir.path().join("confab.db-wal");
    let store = SqliteStore::open(&path).await.expect("open");
    store.migrate().await.expect("migrate");
    let mut seqs = Seqs::default();
    let cd = conv_doc("acme", "g1");
    let seq = seqs.next(&cd);
    store
        .commit(&[with(
            change(&cd, seq, "alice"),
            vec![
                p_conv(conv_row("acme", "g1", "group", Some("g1"), 100)),
                p_member("acme", "g1", "alice", "owner", "active"),
            ],
        )])
        .await
        .expect("the conversation");
    let preview = format!("{MARKER} and more words after it");
    let posted = message_change(&mut seqs, "acme", "g1", "m1", "alice", 1000, &preview);
    let bucket = posted.doc.clone();
    store.commit(&[posted]).await.expect("the message");
    assert!(
        holds(&path, MARKER) || holds(&wal, MARKER),
        "the posted preview is stored: the search below can find it"
    );

    let seq = seqs.next(&bucket);
    store
        .commit(&[with(
            change(&bucket, seq, "alice"),
            vec![p_updated("acme", "g1", "m1", "", true)],
        )])
        .await
        .expect("the delete");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("a connection of its own");
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut conn)
        .await
        .expect("checkpoint");
    assert_eq!(busy, 0, "the checkpoint ran to its end");
    assert!(!holds(&path, MARKER), "the database file keeps the preview");
    assert!(!holds(&wal, MARKER), "the WAL keeps the preview");
}
