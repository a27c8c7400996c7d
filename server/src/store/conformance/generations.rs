//! Installing a document's next generation (docs/STORAGE.md, "Cutting a part's history";
//! migrations Postgres 0029, SQLite 0022): the log and snapshot are replaced in one
//! transaction at the next seq, fenced on the last seq and the generation, so a commit or
//! another cut that came first wins and one that comes after conflicts.

use super::*;
use crate::store::NewGeneration;

fn next(generation: u64, base_seq: u64, snapshot: &[u8]) -> NewGeneration {
    NewGeneration {
        generation,
        base_seq,
        snapshot: snapshot.to_vec(),
    }
}

pub async fn generations_replace_the_log(env: Env) {
    let s = &env.store;
    let doc = msgs_doc("acme", "room", 0);
    let batch: Vec<_> = (1..=5).map(|q| change(&doc, q, "alice")).collect();
    s.commit(&batch).await.expect("5 changes");
    s.compact(&doc, b"snap@3", 3).await.expect("compact at 3");
    assert_eq!(s.load_doc(&doc).await.expect("load").generation, 0);

    // Built from an older state, or claiming a generation the store does not hold: refused,
    // nothing changed.
    assert_seq_conflict(s.install_generation(&doc, &next(1, 4, b"g1")).await, &doc);
    assert_seq_conflict(s.install_generation(&doc, &next(2, 5, b"g2")).await, &doc);
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!((loaded.last_seq, loaded.generation), (5, 0));
    assert_eq!(seqs_of(&loaded.changes), vec![4, 5]);

    s.install_generation(&doc, &next(1, 5, b"g1"))
        .await
        .expect("generation 1");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"g1"[..]));
    assert_eq!(
        (loaded.snapshot_seq, loaded.last_seq, loaded.generation),
        (6, 6, 1)
    );
    assert!(
        loaded.changes.is_empty(),
        "no change of generation 0 is kept"
    );
    assert!(s
        .changes_after(&doc, 0, 100)
        .await
        .expect("after")
        .is_empty());
    assert_eq!(s.stored_bytes(&doc).await.expect("bytes"), 2);
    // A catch-up from an old cursor finds the snapshot past it.
    let tail = s.log_tail(&doc, 5, 100).await.expect("tail");
    assert_eq!((tail.snapshot_seq, tail.last_seq), (6, 6));

    // The same cut again (a racing node's) loses; a commit built on generation 0 too.
    assert_seq_conflict(s.install_generation(&doc, &next(1, 5, b"g1")).await, &doc);
    assert_seq_conflict(s.commit(&[change(&doc, 6, "alice")]).await, &doc);
    // The log goes on from the cut; the next cut follows it.
    s.commit(&[change(&doc, 7, "alice")]).await.expect("seq 7");
    assert_seq_conflict(s.install_generation(&doc, &next(2, 6, b"g2")).await, &doc);
    s.install_generation(&doc, &next(2, 7, b"g2"))
        .await
        .expect("generation 2");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(
        (
            loaded.snapshot.as_deref(),
            loaded.last_seq,
            loaded.generation
        ),
        (Some(&b"g2"[..]), 8, 2)
    );
    assert!(loaded.changes.is_empty());

    // A document never written has nothing to cut.
    let unknown = msgs_doc("acme", "room", 9);
    assert_seq_conflict(
        s.install_generation(&unknown, &next(1, 0, b"x")).await,
        &unknown,
    );
}
