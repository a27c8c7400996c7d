//! The embedded store runs with `secure_delete` (docs/STORAGE.md, "What a delete removes"):
//! once a message's projected row is emptied by its delete and the WAL is checkpointed, the
//! row's old preview is in neither the database file nor the WAL. The change log is not part
//! of this: it keeps the history until the part's history is cut, so the changes here carry
//! no marker (the conformance suite's synthetic bytes) and the test reads the projection.
//! The search index is part of it: an edited-away word leaves FTS5's pages in its commit, a
//! deleted message's terms when the purge pass deletes its queued entry (migration 0034).

use confab_server::store::conformance::*;
use confab_server::store::sqlite::SqliteStore;
use confab_server::store::{ChangeLog, Forgetting, Projection, Projections, Store};
use sqlx::{Connection, SqliteConnection};

const MARKER: &str = "redact-marker-5e1f0c7a9d";

fn holds(path: &std::path::Path, marker: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

const DB: &str = "confab.db";
const WAL: &str = "confab.db-wal";

/// A store in `dir` with the group `acme/g1`, alice its owner.
async fn open_with_group(dir: &std::path::Path) -> (SqliteStore, Seqs) {
    let store = SqliteStore::open(&dir.join(DB)).await.expect("open");
    store.migrate().await.expect("migrate");
    let mut seqs = Seqs::default();
    store
        .commit(&[group_created(&mut seqs, "acme", "g1", "alice")])
        .await
        .expect("the conversation");
    (store, seqs)
}

#[tokio::test]
async fn a_deleted_messages_preview_leaves_the_file_and_the_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, mut seqs) = open_with_group(dir.path()).await;
    let (path, wal) = (dir.path().join(DB), dir.path().join(WAL));
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
    checkpoint(&mut conn).await;
    assert!(!holds(&path, MARKER), "the database file keeps the preview");
    assert!(!holds(&wal, MARKER), "the WAL keeps the preview");
}

/// A post whose search terms are its text.
fn indexed_post(seqs: &mut Seqs, id: &str, at: i64, text: &str) -> confab_server::store::NewChange {
    let mut c = message_change(seqs, "acme", "g1", id, "alice", at, text);
    c.projection.push(Projection::SearchTerms {
        tenant: tenant("acme"),
        conv: conv("g1"),
        message: msg_id(id),
        terms: confab_core::search::index_text([text]).expect("terms"),
    });
    c
}

/// The words of the history's messages start with `a`..`p`; each rare word starts with a
/// letter of its own, so FTS5 (which stores a term after the bytes it shares with the term
/// before it on its page) stores it whole, and reading the file for it can find it.
#[tokio::test]
async fn a_deleted_or_edited_messages_terms_leave_the_search_index() {
    const KEPT: &str = "xylophagous";
    const DELETED: &str = "yggdrasilic";
    const EDITED: &str = "zymurgical";
    // Deleted before the search indexer moved it into FTS5 (docs/SEARCH.md, "Cost").
    const NEVER_INDEXED: &str = "wunderkammer";
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, mut seqs) = open_with_group(dir.path()).await;
    let (path, wal) = (dir.path().join(DB), dir.path().join(WAL));

    // A history of many commits, each moved into FTS5 by an indexer pass of its own, so the
    // index has many segments and pages; the three messages are in its middle.
    let mut rng = 7u64;
    let mut word = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = 3 + (rng >> 60) as usize % 5;
        (0..n)
            .map(|i| char::from(b'a' + ((rng >> (8 * i + 8)) % 16) as u8))
            .collect::<String>()
    };
    let mut at = 1000;
    for batch in 0..60 {
        let mut posts = Vec::new();
        for i in 0..40 {
            let mut text: Vec<String> = (0..8).map(|_| word()).collect();
            let id = format!("m{batch}-{i}");
            if batch == 30 && i < 3 {
                text.insert(4, [KEPT, DELETED, EDITED][i].to_owned());
            }
            at += 1;
            posts.push(indexed_post(&mut seqs, &id, at, &text.join(" ")));
        }
        store.commit(&posts).await.expect("posts");
        store.index_search_backlog(usize::MAX).await.expect("index");
    }
    let found = |word: &'static str| {
        let store = &store;
        async move {
            let query = confab_core::search::Query::parse(word).expect("query");
            let (t, a) = (tenant("acme"), account("alice"));
            let q = confab_server::store::search::SearchQuery::new(&t, &a, &query, 10);
            let hits = store.search(&q).await.expect("search");
            hits.iter()
                .map(|h| h.row.message.to_string())
                .collect::<Vec<_>>()
        }
    };
    for (i, w) in [KEPT, DELETED, EDITED].into_iter().enumerate() {
        assert_eq!(found(w).await, [format!("m30-{i}")], "{w} is indexed");
    }
    let late = indexed_post(&mut seqs, "late", at + 1, &format!("late {NEVER_INDEXED}"));
    store
        .commit(&[late])
        .await
        .expect("a post left in the backlog");
    assert_eq!(
        found(NEVER_INDEXED).await,
        ["late"],
        "found from the backlog"
    );

    let bucket = msgs_doc("acme", "g1", 0);
    let seq = seqs.next(&bucket);
    let delete = with(
        change(&bucket, seq, "alice"),
        vec![p_updated("acme", "g1", "m30-1", "", true)],
    );
    let seq = seqs.next(&bucket);
    let edit = with(
        change(&bucket, seq, "alice"),
        vec![
            p_updated("acme", "g1", "m30-2", "nothing left", false),
            Projection::SearchTerms {
                tenant: tenant("acme"),
                conv: conv("g1"),
                message: msg_id("m30-2"),
                terms: "nothing left".to_owned(),
            },
        ],
    );
    let seq = seqs.next(&bucket);
    let delete_late = with(
        change(&bucket, seq, "alice"),
        vec![p_updated("acme", "g1", "late", "", true)],
    );
    store.commit(&[delete]).await.expect("the delete");
    store.commit(&[edit]).await.expect("the edit");
    store
        .commit(&[delete_late])
        .await
        .expect("the delete from the backlog");
    assert!(found(NEVER_INDEXED).await.is_empty());
    assert_eq!(
        store.index_search_backlog(usize::MAX).await.expect("index"),
        1,
        "the edit"
    );
    assert!(
        found(DELETED).await.is_empty(),
        "the deleted message is not found"
    );
    assert!(
        found(EDITED).await.is_empty(),
        "the edited-away word is not found"
    );
    assert_eq!(found("nothing").await, ["m30-2"], "the edit is found");

    // The edit replaced its entry in its commit (its new terms went through the backlog);
    // the delete queued its entry for the purge pass, which deletes it here; the message
    // deleted from the backlog left nothing to queue.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("a connection of its own");
    checkpoint(&mut conn).await;
    assert!(
        !holds(&path, EDITED),
        "the database file keeps the edited-away word"
    );
    assert_eq!(store.forget_search_entries(100).await.expect("forget"), 1);
    assert_eq!(store.forget_search_entries(100).await.expect("forget"), 0);
    sqlx::query("INSERT INTO message_search (message_search) VALUES ('integrity-check')")
        .execute(&mut conn)
        .await
        .expect("the index is whole after its deletes");
    checkpoint(&mut conn).await;
    assert!(
        holds(&path, KEPT),
        "a kept message's word is read from the file"
    );
    for w in [DELETED, EDITED, NEVER_INDEXED] {
        assert!(!holds(&path, w), "the database file keeps {w}");
        assert!(!holds(&wal, w), "the WAL keeps {w}");
    }
    assert_eq!(found(KEPT).await, ["m30-0"], "the kept message is found");
}

async fn checkpoint(conn: &mut SqliteConnection) {
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(conn)
        .await
        .expect("checkpoint");
    assert_eq!(busy, 0, "the checkpoint ran to its end");
}
