//! The conformance suite of the store's traits, exported beside them so that every backend
//! runs the same cases: the server's tests run it on SQLite and Postgres
//! (`server/tests/store_conformance.rs`), and a new backend runs it by naming a function
//! that makes a fresh store of its own:
//!
//! ```ignore
//! async fn run<F, Fut>(case: F)
//! where
//!     F: FnOnce(Env) -> Fut,
//!     Fut: std::future::Future<Output = ()> + Send + 'static,
//! { /* a fresh migrated store, `case(Env::new(..)).await`, clean up */ }
//!
//! mod mine {
//!     confab_server::store_conformance!(super::run);
//! }
//! ```
//!
//! Each case is an `async fn(Env)`; the macro makes one `#[tokio::test]` per case. Behind
//! the `testing` feature (the server's own tests turn it on).

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::policy::DenyCode;
use confab_core::validate::RejectCode;

use super::{
    ConvRow, Fence, MessageRow, NewChange, Projection, RejectionRecord, Store, StoreError,
};

mod cuts;
mod deletion;
mod deliveries;
mod generations;
mod notify_all;
mod search;
mod stats;
pub use cuts::cut_due_follows_deletes;
pub use deletion::{
    a_deletion_first_in_its_batch_takes_the_rest, a_deletion_takes_the_messages_of_its_batch,
    nothing_notified_of_deleted_messages,
};
pub use deliveries::queued_deliveries_lose_a_deleted_messages_text;
pub use generations::generations_replace_the_log;
pub use notify_all::coalesced_feed_and_merged_deliveries;
pub use search::{
    room, search_backlog_follows_rows, search_index_follows_rows, search_with_many_matches,
};
pub use stats::stats_and_view_counts;

/// Opens another store instance on the same database (another server process).
type Second = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>> + Send + Sync>;

/// What a case gets: its store (migrated, empty), the backend's name, and a way to open a
/// second, independent instance on the same database.
pub struct Env {
    pub store: Arc<dyn Store>,
    name: &'static str,
    second: Second,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("name", &self.name).finish()
    }
}

impl Env {
    pub fn new<F, Fut>(store: Arc<dyn Store>, name: &'static str, second: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Arc<dyn Store>> + Send + 'static,
    {
        Env {
            store,
            name,
            second: Box::new(move || Box::pin(second())),
        }
    }

    /// The backend's name (in messages).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A second, independent store instance on the same database.
    pub async fn second(&self) -> Arc<dyn Store> {
        (self.second)().await
    }
}

/// One `#[tokio::test]` per case of the suite, each calling `$run(case)`: `$run` makes a
/// fresh store, passes it to the case in an [`Env`] and cleans up.
#[macro_export]
macro_rules! store_conformance {
    ($run:path) => {
        $crate::store_conformance!(@cases $run;
            empty_store_and_unknown_docs,
            seq_continuity_and_conflict_rollback,
            group_commit_many_docs,
            catch_up_order,
            compaction,
            actor_binding,
            projection_queries,
            rejection_audit,
            rejection_audit_in_batches,
            unicode_and_long_previews,
            several_instances,
            text_order_is_bytewise,
            throughput_probe,
            message_only_batches,
            policy_fence_and_log_tail,
            invite_links,
            stats_and_view_counts,
            mls_directory,
            directory_removal_generations,
            co_members_share_an_active_conversation,
            coalesced_feed_and_merged_deliveries,
            search_index_follows_rows,
            search_backlog_follows_rows,
            search_with_many_matches,
            generations_replace_the_log,
            cut_due_follows_deletes,
            a_deletion_takes_the_messages_of_its_batch,
            a_deletion_first_in_its_batch_takes_the_rest,
            nothing_notified_of_deleted_messages,
            queued_deliveries_lose_a_deleted_messages_text,
        );
    };
    (@cases $run:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $run($crate::store::conformance::$case).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

pub fn tenant(s: &str) -> TenantId {
    TenantId::new(s).expect("tenant id")
}
pub fn account(s: &str) -> AccountId {
    AccountId::new(s).expect("account id")
}
pub fn conv(s: &str) -> ConvId {
    ConvId::new(s).expect("conversation id")
}
pub fn msg_id(s: &str) -> MessageId {
    MessageId::new(s).expect("message id")
}
pub fn conv_doc(t: &str, c: &str) -> DocId {
    DocId::conv(&tenant(t), &conv(c))
}
pub fn msgs_doc(t: &str, c: &str, bucket: i64) -> DocId {
    DocId::msgs(&tenant(t), &conv(c), bucket)
}

/// A deterministic 32-byte "hash" of a change.
pub fn hash_of(doc: &DocId, seq: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = BuildHasherDefault::<DefaultHasher>::default().build_hasher();
        h.write_usize(i);
        h.write(doc.to_string().as_bytes());
        h.write_u64(seq);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

pub fn bytes_of(doc: &DocId, seq: u64) -> Vec<u8> {
    format!("change {doc} #{seq}").into_bytes()
}

pub fn change(doc: &DocId, seq: u64, by: &str) -> NewChange {
    NewChange {
        doc: doc.clone(),
        hash: hash_of(doc, seq),
        bytes: bytes_of(doc, seq),
        account: account(by),
        accepted_at: 1_000 + i64::try_from(seq).expect("seq"),
        seq,
        bind_actor: None,
        projection: Vec::new(),
        moves_policy: false,
        fence: None,
        parent_fence: None,
    }
}

pub fn fenced(mut c: NewChange, conv_doc: &DocId, policy_seq: u64) -> NewChange {
    c.fence = Some(Fence {
        conv_doc: conv_doc.clone(),
        policy_seq,
    });
    c
}

pub fn moving(mut c: NewChange) -> NewChange {
    c.moves_policy = true;
    c
}

pub fn with(mut c: NewChange, projection: Vec<Projection>) -> NewChange {
    c.projection = projection;
    c
}

pub fn bind(mut c: NewChange, actor: &[u8]) -> NewChange {
    c.bind_actor = Some(actor.to_vec());
    c
}

pub fn conv_row(t: &str, c: &str, kind: &str, title: Option<&str>, created_at: i64) -> ConvRow {
    ConvRow {
        tenant: tenant(t),
        conv: conv(c),
        kind: kind.to_owned(),
        title: title.map(str::to_owned),
        lifecycle: "active".to_owned(),
        parent: None,
        created_at,
        scope: "private".to_owned(),
        description: None,
        active_members: 0,
        join_route: "invite".to_owned(),
    }
}

pub fn p_conv(row: ConvRow) -> Projection {
    Projection::Conversation(row)
}

pub fn p_member(t: &str, c: &str, a: &str, role: &str, status: &str) -> Projection {
    Projection::Member {
        tenant: tenant(t),
        conv: conv(c),
        account: account(a),
        role: role.to_owned(),
        status: status.to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn message_row(
    t: &str,
    c: &str,
    id: &str,
    doc: &DocId,
    seq: u64,
    author: &str,
    created_at: i64,
    preview: &str,
) -> MessageRow {
    MessageRow {
        tenant: tenant(t),
        conv: conv(c),
        message: msg_id(id),
        doc: doc.to_string(),
        seq,
        author: account(author),
        kind: "text".to_owned(),
        created_at,
        preview: preview.to_owned(),
        deleted: false,
        // Ignored on input: the database takes the position.
        pos: -77,
        views: 0,
    }
}

pub fn p_updated(t: &str, c: &str, id: &str, preview: &str, deleted: bool) -> Projection {
    Projection::MessageUpdated {
        tenant: tenant(t),
        conv: conv(c),
        message: msg_id(id),
        preview: preview.to_owned(),
        deleted,
    }
}

pub fn p_marker(t: &str, c: &str, a: &str, id: &str) -> Projection {
    Projection::ReadMarker {
        tenant: tenant(t),
        conv: conv(c),
        account: account(a),
        message: msg_id(id),
    }
}

/// A per-document seq counter for building batches.
#[derive(Debug, Default)]
pub struct Seqs(std::collections::HashMap<String, u64>);

impl Seqs {
    pub fn next(&mut self, doc: &DocId) -> u64 {
        let s = self.0.entry(doc.to_string()).or_insert(0);
        *s += 1;
        *s
    }
}

/// The change that creates the group `c` (titled `c`) with `owner` its owner.
pub fn group_created(seqs: &mut Seqs, t: &str, c: &str, owner: &str) -> NewChange {
    let doc = conv_doc(t, c);
    let seq = seqs.next(&doc);
    with(
        change(&doc, seq, owner),
        vec![
            p_conv(conv_row(t, c, "group", Some(c), 100)),
            p_member(t, c, owner, "owner", "active"),
        ],
    )
}

/// Appends one message change (with its `Message` projection) to a msgs document.
pub fn message_change(
    seqs: &mut Seqs,
    t: &str,
    c: &str,
    id: &str,
    author: &str,
    created_at: i64,
    preview: &str,
) -> NewChange {
    let doc = msgs_doc(t, c, 0);
    let seq = seqs.next(&doc);
    let row = message_row(t, c, id, &doc, seq, author, created_at, preview);
    with(change(&doc, seq, author), vec![Projection::Message(row)])
}

/// Appends one change of `account`'s read marker (on `message`) to a conv document.
pub fn marker_change(seqs: &mut Seqs, t: &str, c: &str, account: &str, message: &str) -> NewChange {
    let doc = conv_doc(t, c);
    let seq = seqs.next(&doc);
    with(
        change(&doc, seq, account),
        vec![p_marker(t, c, account, message)],
    )
}

pub fn assert_seq_conflict(result: Result<(), StoreError>, doc: &DocId) {
    match result {
        Err(StoreError::SeqConflict(d)) => assert_eq!(d, doc.to_string()),
        other => panic!("expected SeqConflict({doc}), got {other:?}"),
    }
}

pub fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

pub fn seqs_of(changes: &[(u64, Vec<u8>)]) -> Vec<u64> {
    changes.iter().map(|(s, _)| *s).collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

pub async fn empty_store_and_unknown_docs(env: Env) {
    let s = &env.store;
    s.migrate().await.expect("migrating twice is a no-op");
    s.ping().await.expect("ping");
    let t = tenant("acme");
    let doc = conv_doc("acme", "nothing");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.snapshot_seq, 0);
    assert!(loaded.changes.is_empty());
    assert_eq!(loaded.last_seq, 0);
    assert!(s
        .changes_after(&doc, 0, 100)
        .await
        .expect("after")
        .is_empty());
    assert_eq!(s.seq_of(&doc, &[7; 32]).await.expect("seq_of"), None);
    assert_eq!(s.actor_account(&t, b"actor").await.expect("actor"), None);
    assert_eq!(s.stored_bytes(&doc).await.expect("bytes"), 0);
    assert!(s.doc_ids().await.expect("ids").is_empty());
    assert_eq!(
        s.membership(&t, &conv("nothing"), &account("alice"))
            .await
            .expect("membership"),
        None
    );
    assert_eq!(
        s.conversation(&t, &conv("nothing")).await.expect("conv"),
        None
    );
    assert!(s
        .conversations_of(&t, &account("alice"))
        .await
        .expect("list")
        .is_empty());
    assert!(s
        .messages(&t, &conv("nothing"), None, 50)
        .await
        .expect("messages")
        .is_empty());
    assert_eq!(s.rejection_count(&t).await.expect("count"), 0);
    s.commit(&[]).await.expect("an empty batch commits nothing");
    assert!(s.doc_ids().await.expect("ids").is_empty());
}

pub async fn seq_continuity_and_conflict_rollback(env: Env) {
    let s = &env.store;
    let t = tenant("acme");
    let a = conv_doc("acme", "alpha");
    let b = conv_doc("acme", "beta");

    s.commit(&[change(&a, 1, "alice"), change(&a, 2, "alice")])
        .await
        .expect("seqs 1, 2");

    // Gaps, retakes, a new document not starting at 1, seq 0.
    assert_seq_conflict(s.commit(&[change(&a, 4, "alice")]).await, &a);
    assert_seq_conflict(s.commit(&[change(&a, 2, "alice")]).await, &a);
    assert_seq_conflict(s.commit(&[change(&a, 1, "alice")]).await, &a);
    assert_seq_conflict(s.commit(&[change(&b, 2, "alice")]).await, &b);
    assert_seq_conflict(s.commit(&[change(&b, 0, "alice")]).await, &b);
    // Not consecutive inside one batch.
    assert_seq_conflict(
        s.commit(&[change(&a, 3, "alice"), change(&a, 5, "alice")])
            .await,
        &a,
    );
    assert_seq_conflict(
        s.commit(&[change(&a, 3, "alice"), change(&a, 3, "alice")])
            .await,
        &a,
    );

    // The compare-and-set names the document that failed it, whichever of the batch's it
    // is; the valid one beside it is not created (checked below).
    assert_seq_conflict(
        s.commit(&[change(&b, 1, "alice"), change(&a, 2, "alice")])
            .await,
        &a,
    );
    assert_seq_conflict(
        s.commit(&[change(&a, 3, "alice"), change(&b, 2, "alice")])
            .await,
        &b,
    );

    // A batch with a valid new document (projection, binding) and a conflicting one: none
    // of it may be visible.
    let mut seqs = Seqs::default();
    let batch = vec![
        bind(
            with(
                change(&b, 1, "alice"),
                vec![
                    p_conv(conv_row("acme", "beta", "group", Some("Beta"), 10)),
                    p_member("acme", "beta", "alice", "owner", "active"),
                    p_marker("acme", "beta", "alice", "m1"),
                ],
            ),
            b"actor-x",
        ),
        message_change(&mut seqs, "acme", "beta", "m1", "alice", 20, "hello"),
        change(&a, 3, "alice"),
        change(&a, 4, "alice"),
        change(&a, 6, "alice"),
    ];
    assert_seq_conflict(s.commit(&batch).await, &a);

    let la = s.load_doc(&a).await.expect("load a");
    assert_eq!(la.last_seq, 2);
    assert_eq!(seqs_of(&la.changes), vec![1, 2]);
    let lb = s.load_doc(&b).await.expect("load b");
    assert_eq!(lb.last_seq, 0);
    assert!(lb.changes.is_empty());
    assert_eq!(s.doc_ids().await.expect("ids"), vec![a.to_string()]);
    assert_eq!(s.conversation(&t, &conv("beta")).await.expect("conv"), None);
    assert_eq!(
        s.membership(&t, &conv("beta"), &account("alice"))
            .await
            .expect("membership"),
        None
    );
    assert!(s
        .messages(&t, &conv("beta"), None, 10)
        .await
        .expect("messages")
        .is_empty());
    assert!(s
        .conversations_of(&t, &account("alice"))
        .await
        .expect("list")
        .is_empty());
    assert_eq!(s.actor_account(&t, b"actor-x").await.expect("actor"), None);
    assert_eq!(s.seq_of(&a, &hash_of(&a, 3)).await.expect("seq_of"), None);
    let msgs = msgs_doc("acme", "beta", 0);
    assert_eq!(s.load_doc(&msgs).await.expect("load").last_seq, 0);

    // The same batch without the bad change commits, all of it.
    let good: Vec<NewChange> = batch[..4].to_vec();
    s.commit(&good).await.expect("good batch");
    let la = s.load_doc(&a).await.expect("load a");
    assert_eq!(la.last_seq, 4);
    assert_eq!(seqs_of(&la.changes), vec![1, 2, 3, 4]);
    assert_eq!(s.load_doc(&b).await.expect("load b").last_seq, 1);
    assert_eq!(
        s.actor_account(&t, b"actor-x").await.expect("actor"),
        Some(account("alice"))
    );
    let list = s
        .conversations_of(&t, &account("alice"))
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].role, "owner");
    assert_eq!(
        list[0].last_message.as_ref().map(|m| m.preview.as_str()),
        Some("hello")
    );
    assert_eq!(
        s.seq_of(&a, &hash_of(&a, 3)).await.expect("seq_of"),
        Some(3)
    );
}

pub async fn group_commit_many_docs(env: Env) {
    let s = &env.store;
    let docs = [
        conv_doc("acme", "one"),
        msgs_doc("acme", "one", 19_000),
        DocId::profile(&tenant("acme"), &account("alice@example.com")),
    ];
    let mut batch = Vec::new();
    for seq in 1..=100 {
        for d in &docs {
            batch.push(change(d, seq, "alice@example.com"));
        }
    }
    s.commit(&batch)
        .await
        .expect("3 docs x 100 changes in one call");

    for d in &docs {
        let loaded = s.load_doc(d).await.expect("load");
        assert_eq!(loaded.last_seq, 100);
        assert_eq!(loaded.snapshot, None);
        assert_eq!(seqs_of(&loaded.changes), (1..=100).collect::<Vec<_>>());
        for (seq, bytes) in &loaded.changes {
            assert_eq!(bytes, &bytes_of(d, *seq));
        }
        let page = s.changes_after(d, 50, 10).await.expect("page");
        assert_eq!(seqs_of(&page), (51..=60).collect::<Vec<_>>());
        let expected: u64 = (1..=100).map(|q| bytes_of(d, q).len() as u64).sum();
        assert_eq!(s.stored_bytes(d).await.expect("bytes"), expected);
        assert_eq!(
            s.seq_of(d, &hash_of(d, 77)).await.expect("seq_of"),
            Some(77)
        );
    }
    let mut ids: Vec<String> = docs.iter().map(ToString::to_string).collect();
    ids.sort();
    assert_eq!(s.doc_ids().await.expect("ids"), ids);

    // The next group commit continues two of them and starts a fourth.
    let fourth = DocId::private(&tenant("acme"), &account("alice@example.com"));
    let mut batch = Vec::new();
    for seq in 101..=150 {
        batch.push(change(&docs[0], seq, "alice@example.com"));
        batch.push(change(&docs[2], seq, "alice@example.com"));
        batch.push(change(&fourth, seq - 100, "alice@example.com"));
    }
    s.commit(&batch).await.expect("second group commit");
    assert_eq!(s.load_doc(&docs[0]).await.expect("load").last_seq, 150);
    assert_eq!(s.load_doc(&docs[1]).await.expect("load").last_seq, 100);
    assert_eq!(s.load_doc(&docs[2]).await.expect("load").last_seq, 150);
    assert_eq!(s.load_doc(&fourth).await.expect("load").last_seq, 50);
}

pub async fn catch_up_order(env: Env) {
    let s = &env.store;
    let doc = msgs_doc("acme", "room", 3);
    let other = conv_doc("acme", "room");
    let mut seq = 0;
    let mut other_seq = 0;
    for size in [1_u64, 5, 17, 2, 40, 1, 9] {
        let mut batch = Vec::new();
        for _ in 0..size {
            seq += 1;
            batch.push(change(&doc, seq, "bob"));
            if seq % 3 == 0 {
                other_seq += 1;
                batch.push(change(&other, other_seq, "bob"));
            }
        }
        s.commit(&batch).await.expect("batch");
    }
    let all = s.changes_after(&doc, 0, 10_000).await.expect("all");
    assert_eq!(seqs_of(&all), (1..=seq).collect::<Vec<_>>());
    for (q, bytes) in &all {
        assert_eq!(bytes, &bytes_of(&doc, *q));
    }
    // Paging through it gives the same, in order.
    let mut cursor = 0;
    let mut paged = Vec::new();
    loop {
        let page = s.changes_after(&doc, cursor, 7).await.expect("page");
        assert!(page.len() <= 7);
        let Some((last, _)) = page.last() else { break };
        cursor = *last;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(s
        .changes_after(&doc, seq, 10)
        .await
        .expect("none")
        .is_empty());
    assert!(s
        .changes_after(&doc, seq + 10, 10)
        .await
        .expect("none")
        .is_empty());
    assert!(s.changes_after(&doc, 0, 0).await.expect("none").is_empty());
    for q in 1..=seq {
        assert_eq!(
            s.seq_of(&doc, &hash_of(&doc, q)).await.expect("seq_of"),
            Some(q)
        );
    }
    // A hash of another document is not found in this one.
    assert_eq!(
        s.seq_of(&doc, &hash_of(&other, 1)).await.expect("seq_of"),
        None
    );
    let loaded = s.load_doc(&other).await.expect("other");
    assert_eq!(loaded.last_seq, other_seq);
    assert_eq!(
        seqs_of(&loaded.changes),
        (1..=other_seq).collect::<Vec<_>>()
    );
}

pub async fn compaction(env: Env) {
    let s = &env.store;
    let doc = conv_doc("acme", "compacted");
    let batch: Vec<_> = (1..=10).map(|q| change(&doc, q, "alice")).collect();
    s.commit(&batch).await.expect("10 changes");

    s.compact(&doc, b"snap@6", 6).await.expect("compact at 6");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"snap@6"[..]));
    assert_eq!(loaded.snapshot_seq, 6);
    assert_eq!(seqs_of(&loaded.changes), vec![7, 8, 9, 10]);
    assert_eq!(loaded.last_seq, 10);
    // A cursor older than the snapshot gets only the changes after it.
    assert_eq!(
        seqs_of(&s.changes_after(&doc, 0, 100).await.expect("after")),
        vec![7, 8, 9, 10]
    );
    assert_eq!(
        seqs_of(&s.changes_after(&doc, 8, 100).await.expect("after")),
        vec![9, 10]
    );
    // Live changes resolve to their seq; folded ones (no row keeps their hash: the
    // snapshot's document does, where the acceptor finds them) to the snapshot's seq.
    assert_eq!(
        s.seq_of(&doc, &hash_of(&doc, 3)).await.expect("seq"),
        Some(6)
    );
    assert_eq!(
        s.seq_of(&doc, &hash_of(&doc, 6)).await.expect("seq"),
        Some(6)
    );
    assert_eq!(
        s.seq_of(&doc, &hash_of(&doc, 8)).await.expect("seq"),
        Some(8)
    );
    let live: u64 = (7..=10).map(|q| bytes_of(&doc, q).len() as u64).sum();
    assert_eq!(s.stored_bytes(&doc).await.expect("bytes"), live + 6);

    // The log continues after a compaction.
    assert_seq_conflict(s.commit(&[change(&doc, 10, "alice")]).await, &doc);
    s.commit(&[change(&doc, 11, "alice")])
        .await
        .expect("seq 11");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(seqs_of(&loaded.changes), vec![7, 8, 9, 10, 11]);

    // Compacting everything.
    s.compact(&doc, b"snap@11", 11)
        .await
        .expect("compact at 11");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"snap@11"[..]));
    assert_eq!(loaded.snapshot_seq, 11);
    assert!(loaded.changes.is_empty());
    assert_eq!(loaded.last_seq, 11);
    assert!(s
        .changes_after(&doc, 0, 10)
        .await
        .expect("after")
        .is_empty());
    for q in 1..=11 {
        assert_eq!(
            s.seq_of(&doc, &hash_of(&doc, q)).await.expect("seq"),
            Some(11)
        );
    }
    assert_eq!(s.stored_bytes(&doc).await.expect("bytes"), 7);

    // Same seq again replaces the snapshot; beyond the log or behind the snapshot refuses.
    s.compact(&doc, b"again@11", 11).await.expect("recompact");
    assert_eq!(
        s.load_doc(&doc).await.expect("load").snapshot.as_deref(),
        Some(&b"again@11"[..])
    );
    assert_corrupt(s.compact(&doc, b"x", 12).await);
    assert_seq_conflict(s.compact(&doc, b"x", 6).await, &doc);
    let unknown = conv_doc("acme", "unknown");
    s.compact(&unknown, b"", 0).await.expect("nothing to do");
    assert_corrupt(s.compact(&unknown, b"x", 3).await);
    assert_eq!(s.doc_ids().await.expect("ids"), vec![doc.to_string()]);

    // A compacted document keeps accepting changes.
    s.commit(&[change(&doc, 12, "alice"), change(&doc, 13, "alice")])
        .await
        .expect("12, 13");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(loaded.snapshot_seq, 11);
    assert_eq!(seqs_of(&loaded.changes), vec![12, 13]);
    assert_eq!(loaded.last_seq, 13);
}

pub async fn actor_binding(env: Env) {
    let s = &env.store;
    let t = tenant("acme");
    let a = conv_doc("acme", "room");
    let b = msgs_doc("acme", "room", 0);

    s.commit(&[bind(change(&a, 1, "alice"), b"actor-1")])
        .await
        .expect("bind");
    assert_eq!(
        s.actor_account(&t, b"actor-1").await.expect("actor"),
        Some(account("alice"))
    );
    assert_eq!(
        s.actor_account(&tenant("other"), b"actor-1")
            .await
            .expect("actor"),
        None
    );
    // Binding again to the same account is a no-op.
    s.commit(&[bind(change(&a, 2, "alice"), b"actor-1")])
        .await
        .expect("rebind same");

    // To another account: Corrupt, and the whole batch rolls back (it got past the seq
    // check: the changes and the projection were already written inside the transaction).
    let mut seqs = Seqs::default();
    let batch = vec![
        bind(
            with(
                change(&conv_doc("acme", "side"), 1, "carol"),
                vec![
                    p_conv(conv_row("acme", "side", "group", None, 5)),
                    p_member("acme", "side", "carol", "owner", "active"),
                ],
            ),
            b"actor-new",
        ),
        message_change(&mut seqs, "acme", "room", "m1", "bob", 50, "hi"),
        bind(change(&a, 3, "bob"), b"actor-1"),
    ];
    assert_corrupt(s.commit(&batch).await);
    assert_eq!(s.load_doc(&a).await.expect("load").last_seq, 2);
    assert_eq!(s.load_doc(&b).await.expect("load").last_seq, 0);
    assert_eq!(
        s.load_doc(&conv_doc("acme", "side"))
            .await
            .expect("load")
            .last_seq,
        0
    );
    assert_eq!(
        s.actor_account(&t, b"actor-new").await.expect("actor"),
        None
    );
    assert_eq!(
        s.actor_account(&t, b"actor-1").await.expect("actor"),
        Some(account("alice"))
    );
    assert_eq!(s.conversation(&t, &conv("side")).await.expect("conv"), None);
    assert_eq!(s.conversation(&t, &conv("room")).await.expect("conv"), None);
    assert!(s
        .messages(&t, &conv("room"), None, 10)
        .await
        .expect("messages")
        .is_empty());
    assert_eq!(s.seq_of(&a, &hash_of(&a, 3)).await.expect("seq"), None);
    assert_eq!(
        s.doc_ids().await.expect("ids"),
        vec![a.to_string()],
        "no document row from the failed batch"
    );

    // Two accounts for one new actor inside one batch.
    assert_corrupt(
        s.commit(&[
            bind(change(&a, 3, "alice"), b"actor-2"),
            bind(change(&a, 4, "bob"), b"actor-2"),
        ])
        .await,
    );
    assert_eq!(s.actor_account(&t, b"actor-2").await.expect("actor"), None);
    assert_eq!(s.load_doc(&a).await.expect("load").last_seq, 2);

    // The same actor bytes in another tenant are another actor.
    let other = conv_doc("other", "room");
    s.commit(&[bind(change(&other, 1, "bob"), b"actor-1")])
        .await
        .expect("other tenant");
    assert_eq!(
        s.actor_account(&tenant("other"), b"actor-1")
            .await
            .expect("actor"),
        Some(account("bob"))
    );
    assert_eq!(
        s.actor_account(&t, b"actor-1").await.expect("actor"),
        Some(account("alice"))
    );

    // Several actors bound in one batch.
    s.commit(&[
        bind(change(&a, 3, "bob"), b"actor-3"),
        bind(change(&a, 4, "carol"), b"actor-4"),
        bind(change(&a, 5, "bob"), b"actor-3"),
    ])
    .await
    .expect("several bindings");
    assert_eq!(
        s.actor_account(&t, b"actor-3").await.expect("actor"),
        Some(account("bob"))
    );
    assert_eq!(
        s.actor_account(&t, b"actor-4").await.expect("actor"),
        Some(account("carol"))
    );
}

pub async fn projection_queries(env: Env) {
    let s = &env.store;
    let t = tenant("acme");
    let alice = account("alice");
    let mut seqs = Seqs::default();

    // Conversations and members, one conv document change each.
    let mut setup = Vec::new();
    for (c, kind, created, members) in [
        (
            "g1",
            "group",
            100,
            vec![("alice", "member"), ("bob", "admin")],
        ),
        (
            "g2",
            "group",
            200,
            vec![("alice", "owner"), ("carol", "member")],
        ),
        (
            "d1",
            "direct",
            300,
            vec![("alice", "member"), ("bob", "member")],
        ),
        (
            "d2",
            "direct",
            300,
            vec![("alice", "member"), ("carol", "member")],
        ),
        ("g3", "group", 50, vec![("bob", "owner")]),
    ] {
        let doc = conv_doc("acme", c);
        let seq = seqs.next(&doc);
        let mut p = vec![p_conv(conv_row("acme", c, kind, Some(c), created))];
        for (who, role) in members {
            p.push(p_member("acme", c, who, role, "active"));
        }
        setup.push(with(change(&doc, seq, "alice"), p));
    }
    // alice was in g3 but was removed.
    {
        let doc = conv_doc("acme", "g3");
        let seq = seqs.next(&doc);
        setup.push(with(
            change(&doc, seq, "bob"),
            vec![p_member("acme", "g3", "alice", "member", "removed")],
        ));
    }
    s.commit(&setup).await.expect("setup");
    assert_eq!(
        s.membership(&t, &conv("g3"), &alice).await.expect("m"),
        Some(("member".to_owned(), "removed".to_owned()))
    );
    assert_eq!(
        s.membership(&t, &conv("g2"), &alice).await.expect("m"),
        Some(("owner".to_owned(), "active".to_owned()))
    );

    // Messages, over two batches; m4 is edited inside its own batch.
    s.commit(&[
        message_change(&mut seqs, "acme", "g1", "m1", "bob", 1000, "one"),
        message_change(&mut seqs, "acme", "g1", "m2", "alice", 1001, "two"),
        message_change(&mut seqs, "acme", "g2", "n1", "carol", 500, "carol says"),
        message_change(
            &mut seqs,
            "acme",
            "g3",
            "x1",
            "bob",
            5000,
            "after alice left",
        ),
    ])
    .await
    .expect("messages 1");
    let m3 = message_change(&mut seqs, "acme", "g1", "m3", "bob", 1002, "three");
    let mut m4 = message_change(&mut seqs, "acme", "g1", "m4", "bob", 1003, "four?");
    m4.projection
        .push(p_updated("acme", "g1", "m4", "four (edited)", false));
    let marker = marker_change(&mut seqs, "acme", "g1", "alice", "m1");
    s.commit(&[m3, m4, marker]).await.expect("messages 2");
    // The marker's time is the store's clock when it moved (the database's: a little slack).
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let times = s.read_times(&t, &conv("g1")).await.expect("read times");
    let first_read = *times.get(&alice).expect("alice's marker has a time");
    assert!(
        (first_read - now()).abs() < 5_000,
        "{first_read} is about now"
    );
    assert_eq!(times.len(), 1, "bob has no marker: {times:?}");

    let page = s.messages(&t, &conv("g1"), None, 100).await.expect("page");
    let ids: Vec<&str> = page.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(ids, vec!["m4", "m3", "m2", "m1"], "newest first");
    let pos: Vec<i64> = page.iter().map(|m| m.pos).collect();
    assert_eq!(pos, vec![4, 3, 2, 1], "positions in acceptance order");
    assert_eq!(page[0].preview, "four (edited)");
    assert_eq!(page[0].author, account("bob"));
    assert_eq!(page[0].doc, msgs_doc("acme", "g1", 0).to_string());
    assert_eq!(page[0].kind, "text");
    assert_eq!(page[0].created_at, 1003);
    assert!(!page[0].deleted);
    // The seq recorded is the change's seq in its msgs document.
    assert_eq!(page[3].seq, 1);
    assert_eq!(page[0].seq, 4);

    // Paging.
    let first = s.messages(&t, &conv("g1"), None, 2).await.expect("page");
    assert_eq!(first.iter().map(|m| m.pos).collect::<Vec<_>>(), vec![4, 3]);
    let next = s
        .messages(&t, &conv("g1"), Some(first[1].pos), 2)
        .await
        .expect("page");
    assert_eq!(next.iter().map(|m| m.pos).collect::<Vec<_>>(), vec![2, 1]);
    assert!(s
        .messages(&t, &conv("g1"), Some(1), 2)
        .await
        .expect("page")
        .is_empty());

    // alice's list: g1 (activity 1003), g2 (500), then d1 and d2 (created 300, tie broken
    // by id); not g3 (removed).
    let list = s.conversations_of(&t, &alice).await.expect("list");
    let order: Vec<&str> = list.iter().map(|i| i.conv.conv.as_str()).collect();
    assert_eq!(order, vec!["g1", "g2", "d1", "d2"]);
    let g1 = &list[0];
    assert_eq!(g1.role, "member");
    assert_eq!(g1.conv.kind, "group");
    assert_eq!(g1.conv.title.as_deref(), Some("g1"));
    assert_eq!(g1.conv.created_at, 100);
    // After m1 (alice's marker): m2 is hers, m3 and m4 are bob's.
    assert_eq!(g1.unread, 2);
    let last = g1.last_message.as_ref().expect("last message");
    assert_eq!(last.message.as_str(), "m4");
    assert_eq!(last.pos, 4);
    assert_eq!(last.preview, "four (edited)");
    assert_eq!(list[1].unread, 1, "no marker: every message of others");
    assert_eq!(list[1].role, "owner");
    assert_eq!(list[2].unread, 0);
    assert_eq!(list[2].last_message, None);

    // bob's list has g3 and g1; his own messages are never unread, he has no marker.
    let bob_list = s.conversations_of(&t, &account("bob")).await.expect("bob");
    let order: Vec<&str> = bob_list.iter().map(|i| i.conv.conv.as_str()).collect();
    assert_eq!(order, vec!["g3", "g1", "d1"]);
    assert_eq!(bob_list[1].unread, 1, "alice's m2");
    assert_eq!(bob_list[1].role, "admin");

    // Deleting m4, editing m2, moving the marker, promoting alice; re-upserting g1 keeps
    // its positions and activity.
    s.commit(&[{
        let doc = msgs_doc("acme", "g1", 0);
        let seq = seqs.next(&doc);
        with(
            change(&doc, seq, "bob"),
            vec![
                p_updated("acme", "g1", "m4", "", true),
                p_updated("acme", "g1", "m2", "two (edited)", false),
            ],
        )
    }])
    .await
    .expect("edit");
    let list = s.conversations_of(&t, &alice).await.expect("list");
    assert_eq!(list[0].unread, 1, "m3 only: m4 is deleted");
    let last = list[0].last_message.as_ref().expect("last");
    assert_eq!(last.message.as_str(), "m4");
    assert!(last.deleted);
    let page = s.messages(&t, &conv("g1"), None, 10).await.expect("page");
    assert_eq!(page[2].preview, "two (edited)");

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    s.commit(&[{
        let doc = conv_doc("acme", "g1");
        let seq = seqs.next(&doc);
        with(
            change(&doc, seq, "alice"),
            vec![
                p_marker("acme", "g1", "alice", "m3"),
                p_member("acme", "g1", "alice", "admin", "active"),
                p_conv(conv_row("acme", "g1", "group", Some("Renamed"), 100)),
            ],
        )
    }])
    .await
    .expect("marker");
    let moved = s.read_times(&t, &conv("g1")).await.expect("read times")[&alice];
    assert!(
        moved > first_read,
        "the moved marker's time {moved} is after {first_read}"
    );
    // Writing the marker again on the same message keeps its time.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    s.commit(&[marker_change(&mut seqs, "acme", "g1", "alice", "m3")])
        .await
        .expect("same marker");
    let kept = s.read_times(&t, &conv("g1")).await.expect("read times")[&alice];
    assert_eq!(kept, moved, "a marker that did not move keeps its time");
    let list = s.conversations_of(&t, &alice).await.expect("list");
    assert_eq!(list[0].conv.conv.as_str(), "g1", "activity kept");
    assert_eq!(list[0].conv.title.as_deref(), Some("Renamed"));
    assert_eq!(list[0].role, "admin");
    assert_eq!(list[0].unread, 0);
    s.commit(&[message_change(
        &mut seqs,
        "acme",
        "g1",
        "m5",
        "carol",
        900,
        "late clock",
    )])
    .await
    .expect("m5");
    let page = s.messages(&t, &conv("g1"), None, 1).await.expect("page");
    assert_eq!(page[0].message.as_str(), "m5");
    assert_eq!(page[0].pos, 5, "positions continue after a re-upsert");
    let list = s.conversations_of(&t, &alice).await.expect("list");
    assert_eq!(list[0].conv.conv.as_str(), "g1");
    assert_eq!(list[0].unread, 1);
    assert_eq!(
        list[0].last_message.as_ref().map(|m| m.message.as_str()),
        Some("m5"),
        "the last message is the last accepted, not the latest clock"
    );

    // A message for a conversation with no summary yet creates a minimal one.
    s.commit(&[message_change(
        &mut seqs, "acme", "ghost", "g-1", "dave", 7000, "boo",
    )])
    .await
    .expect("ghost");
    let ghost = s
        .conversation(&t, &conv("ghost"))
        .await
        .expect("conv")
        .expect("a minimal row");
    assert_eq!(ghost.kind, "unknown");
    assert_eq!(ghost.lifecycle, "active");
    let mut full = conv_row("acme", "ghost", "thread", Some("Ghost"), 6000);
    full.parent = Some(conv("g1"));
    full.lifecycle = "archived".to_owned();
    let doc = conv_doc("acme", "ghost");
    let seq = seqs.next(&doc);
    s.commit(&[
        with(
            change(&doc, seq, "dave"),
            vec![
                p_conv(full.clone()),
                p_member("acme", "ghost", "dave", "owner", "active"),
            ],
        ),
        message_change(&mut seqs, "acme", "ghost", "g-2", "dave", 7001, "again"),
    ])
    .await
    .expect("ghost summary");
    assert_eq!(
        s.conversation(&t, &conv("ghost")).await.expect("conv"),
        Some(full)
    );
    let page = s
        .messages(&t, &conv("ghost"), None, 10)
        .await
        .expect("page");
    assert_eq!(page.iter().map(|m| m.pos).collect::<Vec<_>>(), vec![2, 1]);
    let dave = s
        .conversations_of(&t, &account("dave"))
        .await
        .expect("dave");
    assert_eq!(dave.len(), 1);
    assert_eq!(dave[0].conv.parent, Some(conv("g1")));
    assert_eq!(dave[0].unread, 0);

    // Nothing crosses tenants.
    assert!(s
        .conversations_of(&tenant("other"), &alice)
        .await
        .expect("other")
        .is_empty());
    assert!(s
        .messages(&tenant("other"), &conv("g1"), None, 10)
        .await
        .expect("other")
        .is_empty());
}

pub async fn rejection_audit(env: Env) {
    let s = &env.store;
    let t1 = tenant("t1");
    let t2 = tenant("t2");
    for (i, hash) in [Some([1u8; 32]), None, Some([2u8; 32])]
        .into_iter()
        .enumerate()
    {
        s.record_rejection(&RejectionRecord {
            tenant: t1.clone(),
            doc: conv_doc("t1", "room").to_string(),
            account: account("mallory"),
            hash,
            code: RejectCode::Policy(DenyCode::NotMember),
            reason: format!("not a member ({i}) — «refusé»"),
            at: 10 + i64::try_from(i).expect("i"),
        })
        .await
        .expect("record");
    }
    s.record_rejection(&RejectionRecord {
        tenant: t2.clone(),
        doc: "not even a doc id".to_owned(),
        account: account("eve"),
        hash: None,
        code: RejectCode::Malformed,
        reason: String::new(),
        at: 0,
    })
    .await
    .expect("record");
    assert_eq!(s.rejection_count(&t1).await.expect("count"), 3);
    assert_eq!(s.rejection_count(&t2).await.expect("count"), 1);
    assert_eq!(s.rejection_count(&tenant("t3")).await.expect("count"), 0);
}

/// The audit writer stores rejections in batches (more rows than one statement takes on
/// SQLite, hashes present and absent, two tenants in one batch).
pub async fn rejection_audit_in_batches(env: Env) {
    let s = &env.store;
    let records: Vec<RejectionRecord> = (0..300_u16)
        .map(|i| RejectionRecord {
            tenant: tenant(if i % 3 == 0 { "t2" } else { "t1" }),
            doc: conv_doc("t1", "room").to_string(),
            account: account("mallory"),
            hash: (i % 2 == 0).then_some([(i % 256) as u8; 32]),
            code: RejectCode::Policy(DenyCode::NotMember),
            reason: format!("flood {i} — «refusé»"),
            at: i64::from(i),
        })
        .collect();
    s.record_rejections(&records).await.expect("batch");
    s.record_rejections(&[]).await.expect("nothing");
    assert_eq!(s.rejection_count(&tenant("t1")).await.expect("count"), 200);
    assert_eq!(s.rejection_count(&tenant("t2")).await.expect("count"), 100);
}

pub async fn unicode_and_long_previews(env: Env) {
    let s = &env.store;
    let t = tenant("acme");
    let who = "jane.doe+chat@example.com";
    let pattern = "é漢😀 ";
    let preview: String = pattern.chars().cycle().take(4000).collect();
    assert_eq!(preview.chars().count(), 4000);
    let edited: String = "Ωß𝄞—".chars().cycle().take(4000).collect();
    let title = "Équipe 🚀 — 日本語 «chat»";
    let mut seqs = Seqs::default();
    let doc = conv_doc("acme", "intl");
    let seq = seqs.next(&doc);
    // Change bytes of every value, and a large one.
    let mut big = change(&doc, seq, who);
    big.bytes = (0..=255u8).cycle().take(300_000).collect();
    let big_bytes = big.bytes.clone();
    s.commit(&[
        with(
            big,
            vec![
                p_conv(conv_row("acme", "intl", "group", Some(title), 1)),
                p_member("acme", "intl", who, "owner", "active"),
                p_member("acme", "intl", "bob", "member", "active"),
            ],
        ),
        message_change(&mut seqs, "acme", "intl", "u1", "bob", 2, &preview),
        message_change(&mut seqs, "acme", "intl", "u2", "bob", 3, "short ✓"),
    ])
    .await
    .expect("commit");
    let loaded = s.load_doc(&doc).await.expect("load");
    assert_eq!(loaded.changes[0].1, big_bytes);
    assert_eq!(
        s.stored_bytes(&doc).await.expect("bytes"),
        big_bytes.len() as u64
    );
    assert_eq!(
        s.conversation(&t, &conv("intl"))
            .await
            .expect("conv")
            .expect("row")
            .title
            .as_deref(),
        Some(title)
    );
    let page = s.messages(&t, &conv("intl"), None, 10).await.expect("page");
    assert_eq!(page[1].preview, preview);
    assert_eq!(page[0].preview, "short ✓");

    s.commit(&[{
        let d = msgs_doc("acme", "intl", 0);
        let q = seqs.next(&d);
        with(
            change(&d, q, "bob"),
            vec![
                p_updated("acme", "intl", "u2", &edited, false),
                p_updated("acme", "intl", "u1", "", true),
            ],
        )
    }])
    .await
    .expect("edit");
    let list = s.conversations_of(&t, &account(who)).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].conv.title.as_deref(), Some(title));
    assert_eq!(list[0].unread, 1);
    let last = list[0].last_message.as_ref().expect("last");
    assert_eq!(last.preview, edited);
    assert_eq!(last.preview.chars().count(), 4000);
    assert_eq!(
        s.membership(&t, &conv("intl"), &account(who))
            .await
            .expect("m"),
        Some(("owner".to_owned(), "active".to_owned()))
    );
}

/// Two store instances on one database: what several server processes (Postgres) or a
/// server and a CLI (SQLite) do.
pub async fn several_instances(env: Env) {
    let one = env.store.clone();
    let two = env.second().await;
    let t = tenant("acme");
    let doc = msgs_doc("acme", "shared", 0);

    one.commit(&[change(&doc, 1, "alice")])
        .await
        .expect("one: 1");
    let seen = two.load_doc(&doc).await.expect("two sees it");
    assert_eq!(seen.last_seq, 1);
    assert_eq!(seqs_of(&seen.changes), vec![1]);
    two.commit(&[change(&doc, 2, "bob")]).await.expect("two: 2");
    // `one` still believes the last seq is 1.
    assert_seq_conflict(one.commit(&[change(&doc, 2, "alice")]).await, &doc);
    assert_eq!(
        seqs_of(&one.changes_after(&doc, 1, 10).await.expect("catch up")),
        vec![2]
    );

    // Races for the same seq, on an existing document and on new ones: exactly one wins,
    // the other gets SeqConflict, the loser's projection is not applied.
    let mut next = 3;
    for round in 0..10 {
        let new_doc = conv_doc("acme", &format!("race{round}"));
        let mk = |who: &str, seq: u64, id: String| {
            let row = message_row(
                "acme",
                "shared",
                &id,
                &doc,
                seq,
                who,
                10 + i64::from(round),
                "race",
            );
            vec![
                with(change(&doc, seq, who), vec![Projection::Message(row)]),
                bind(
                    change(&new_doc, 1, who),
                    format!("actor-{who}-{round}").as_bytes(),
                ),
            ]
        };
        let a = mk("alice", next, format!("a{round}"));
        let b = mk("bob", next, format!("b{round}"));
        let (ra, rb) = tokio::join!(one.commit(&a), two.commit(&b));
        let winner = match (&ra, &rb) {
            (Ok(()), Err(StoreError::SeqConflict(_))) => "alice",
            (Err(StoreError::SeqConflict(_)), Ok(())) => "bob",
            other => panic!("round {round}: expected one winner, got {other:?}"),
        };
        let loser = if winner == "alice" { "bob" } else { "alice" };
        assert_eq!(
            one.actor_account(&t, format!("actor-{winner}-{round}").as_bytes())
                .await
                .expect("actor"),
            Some(account(winner))
        );
        assert_eq!(
            two.actor_account(&t, format!("actor-{loser}-{round}").as_bytes())
                .await
                .expect("actor"),
            None
        );
        next += 1;
    }
    let all = two.changes_after(&doc, 0, 100).await.expect("all");
    assert_eq!(seqs_of(&all), (1..next).collect::<Vec<_>>());
    let page = one
        .messages(&t, &conv("shared"), None, 100)
        .await
        .expect("messages");
    assert_eq!(page.len(), 10, "one message per round");
    assert_eq!(
        page.iter().map(|m| m.pos).collect::<Vec<_>>(),
        (1..=10).rev().collect::<Vec<i64>>()
    );

    // Different documents of one conversation from both instances at once: all commit and
    // the conversation's positions stay unique and gap-free.
    let mut tasks = Vec::new();
    for (k, store) in [one.clone(), two.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let bucket = 100 + i64::try_from(k).expect("k");
            let doc = msgs_doc("acme", "busy", bucket);
            for seq in 1..=20u64 {
                let row = message_row(
                    "acme",
                    "busy",
                    &format!("k{k}s{seq}"),
                    &doc,
                    seq,
                    "alice",
                    i64::try_from(seq).expect("seq"),
                    "x",
                );
                store
                    .commit(&[with(
                        change(&doc, seq, "alice"),
                        vec![Projection::Message(row)],
                    )])
                    .await
                    .expect("commit");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let mut pos: Vec<i64> = one
        .messages(&t, &conv("busy"), None, 100)
        .await
        .expect("messages")
        .iter()
        .map(|m| m.pos)
        .collect();
    pos.sort_unstable();
    assert_eq!(pos, (1..=40).collect::<Vec<i64>>());

    // Crossing batches on two conversations (one instance updates X's summary and posts in
    // Y, the other the reverse): both commit, neither deadlocks.
    for round in 1..=10u64 {
        let at = i64::try_from(round).expect("round");
        let crossing = |summary: &str, post: &str, who: &str| {
            let cdoc = conv_doc("acme", summary);
            let mdoc = msgs_doc("acme", post, 0);
            let title = format!("{summary} r{round}");
            vec![
                with(
                    change(&cdoc, round, who),
                    vec![p_conv(conv_row("acme", summary, "group", Some(&title), 1))],
                ),
                with(
                    change(&mdoc, round, who),
                    vec![Projection::Message(message_row(
                        "acme",
                        post,
                        &format!("{who}{round}"),
                        &mdoc,
                        round,
                        who,
                        at,
                        "crossing",
                    ))],
                ),
            ]
        };
        let a = crossing("x", "y", "alice");
        let b = crossing("y", "x", "bob");
        let (ra, rb) = tokio::join!(one.commit(&a), two.commit(&b));
        ra.expect("one: crossing batch");
        rb.expect("two: crossing batch");
    }
    for c in ["x", "y"] {
        let page = two.messages(&t, &conv(c), None, 100).await.expect("page");
        assert_eq!(
            page.iter().map(|m| m.pos).collect::<Vec<_>>(),
            (1..=10).rev().collect::<Vec<i64>>()
        );
        let row = one
            .conversation(&t, &conv(c))
            .await
            .expect("conv")
            .expect("row");
        assert_eq!(row.title, Some(format!("{c} r10")));
    }
}

/// Both backends order text bytewise (Postgres whatever its default collation).
pub async fn text_order_is_bytewise(env: Env) {
    let s = &env.store;
    let ids = ["d_3", "d1", "D0", "d-2", "Z9", "a"];
    let batch: Vec<NewChange> = ids
        .iter()
        .map(|c| {
            with(
                change(&conv_doc("acme", c), 1, "alice"),
                vec![
                    p_conv(conv_row("acme", c, "direct", None, 42)),
                    p_member("acme", c, "alice", "member", "active"),
                ],
            )
        })
        .collect();
    s.commit(&batch).await.expect("commit");
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort_unstable();
    let list = s
        .conversations_of(&tenant("acme"), &account("alice"))
        .await
        .expect("list");
    let order: Vec<&str> = list.iter().map(|i| i.conv.conv.as_str()).collect();
    assert_eq!(order, expected, "ties on activity broken by id, bytewise");
    let mut docs: Vec<String> = ids
        .iter()
        .map(|c| conv_doc("acme", c).to_string())
        .collect();
    docs.sort_unstable();
    assert_eq!(s.doc_ids().await.expect("ids"), docs);
}

/// Not a timed assertion: prints the group-commit rate of message changes.
/// Batches of one existing document with at most new messages of one conversation: the
/// common case, which Postgres stores through its own function (migration 0004). Positions,
/// first-wins duplicates, changes without messages, a conversation row that does not exist
/// yet, and a stale compare-and-set must behave as for any other batch.
pub async fn message_only_batches(env: Env) {
    let s = &env.store;
    let t = tenant("acme");
    let mut seqs = Seqs::default();
    let room = conv_doc("acme", "room");
    let seq = seqs.next(&room);
    s.commit(&[with(
        change(&room, seq, "alice"),
        vec![
            p_conv(conv_row("acme", "room", "group", Some("Room"), 10)),
            p_member("acme", "room", "alice", "owner", "active"),
            p_member("acme", "room", "bob", "member", "active"),
        ],
    )])
    .await
    .expect("create the room");

    // The bucket's first batch creates its document (the general path); the later ones
    // are message-only batches.
    s.commit(&[message_change(
        &mut seqs, "acme", "room", "m1", "alice", 100, "one",
    )])
    .await
    .expect("m1");
    s.commit(&[
        message_change(&mut seqs, "acme", "room", "m2", "bob", 101, "two"),
        message_change(&mut seqs, "acme", "room", "m3", "alice", 99, "three"),
    ])
    .await
    .expect("m2, m3");
    // A change with nothing to project (a reaction, say).
    let bucket = msgs_doc("acme", "room", 0);
    let seq = seqs.next(&bucket);
    s.commit(&[change(&bucket, seq, "bob")])
        .await
        .expect("reaction");
    // A message id committed before: the first one stays.
    s.commit(&[
        message_change(&mut seqs, "acme", "room", "m2", "bob", 102, "two again"),
        message_change(&mut seqs, "acme", "room", "m4", "bob", 103, "four"),
    ])
    .await
    .expect("m2 again, m4");

    let page = s
        .messages(&t, &conv("room"), None, 10)
        .await
        .expect("messages");
    let ids: Vec<&str> = page.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(
        ids,
        vec!["m4", "m3", "m2", "m1"],
        "newest first, batch order"
    );
    assert!(
        page.windows(2).all(|w| w[0].pos > w[1].pos),
        "positions grow in acceptance order: {page:?}"
    );
    let m2 = page.iter().find(|m| m.message.as_str() == "m2");
    assert_eq!(m2.map(|m| m.preview.as_str()), Some("two"));
    assert_eq!(m2.map(|m| m.seq), Some(2));
    let loaded = s.load_doc(&bucket).await.expect("load bucket");
    assert_eq!(loaded.last_seq, 6);
    assert_eq!(seqs_of(&loaded.changes), vec![1, 2, 3, 4, 5, 6]);
    let list = s
        .conversations_of(&t, &account("alice"))
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].last_message.as_ref().map(|m| m.message.as_str()),
        Some("m4")
    );

    // A stale batch: refused as a seq conflict naming the bucket, and nothing of it stays.
    let stale = with(
        change(&bucket, 6, "bob"),
        vec![Projection::Message(message_row(
            "acme", "room", "m5", &bucket, 6, "bob", 104, "five",
        ))],
    );
    assert_seq_conflict(s.commit(&[stale]).await, &bucket);
    assert_eq!(s.load_doc(&bucket).await.expect("load").last_seq, 6);
    assert_eq!(
        s.messages(&t, &conv("room"), None, 10)
            .await
            .expect("messages")
            .len(),
        4
    );

    // A bucket whose conversation has no row yet (its first change had no message): the
    // first message creates the row and takes position 1 of it.
    let lone = msgs_doc("acme", "lone", 0);
    s.commit(&[change(&lone, 1, "carol")])
        .await
        .expect("lone 1");
    let mut lone_seqs = Seqs::default();
    lone_seqs.next(&lone);
    s.commit(&[message_change(
        &mut lone_seqs,
        "acme",
        "lone",
        "l1",
        "carol",
        7,
        "hello",
    )])
    .await
    .expect("lone message");
    let lone_page = s
        .messages(&t, &conv("lone"), None, 10)
        .await
        .expect("lone messages");
    assert_eq!(lone_page.len(), 1);
    assert_eq!(lone_page[0].message.as_str(), "l1");
    assert_eq!(lone_page[0].seq, 2);
}

pub async fn throughput_probe(env: Env) {
    const BATCHES: usize = 20;
    const PER_BATCH: usize = 500;
    const CONVS: usize = 50;
    let s = &env.store;
    let t = tenant("bench");
    let mut seqs = Seqs::default();
    let setup: Vec<NewChange> = (0..CONVS)
        .map(|c| {
            let name = format!("c{c:03}");
            let doc = conv_doc("bench", &name);
            let seq = seqs.next(&doc);
            with(
                change(&doc, seq, "u0"),
                vec![
                    p_conv(conv_row("bench", &name, "group", None, 0)),
                    p_member("bench", &name, "u0", "owner", "active"),
                    p_member("bench", &name, "u1", "member", "active"),
                ],
            )
        })
        .collect();
    s.commit(&setup).await.expect("setup");

    let filler = "lorem ipsum dolor sit amet ".repeat(8);
    let mut batches = Vec::with_capacity(BATCHES);
    for b in 0..BATCHES {
        let mut batch = Vec::with_capacity(PER_BATCH);
        for i in 0..PER_BATCH {
            let name = format!("c{:03}", i % CONVS);
            let doc = msgs_doc("bench", &name, 0);
            let seq = seqs.next(&doc);
            let author = if (i / CONVS).is_multiple_of(2) {
                "u0"
            } else {
                "u1"
            };
            let id = format!("m{b}x{i}");
            let mut c = change(&doc, seq, author);
            c.bytes = format!("{id} {filler}")
                .into_bytes()
                .into_iter()
                .take(200)
                .collect();
            let at = i64::try_from(b * PER_BATCH + i).expect("at");
            c.projection = vec![Projection::Message(message_row(
                "bench",
                &name,
                &id,
                &doc,
                seq,
                author,
                at,
                &filler[..60],
            ))];
            batch.push(c);
        }
        batches.push(batch);
    }

    let start = Instant::now();
    for batch in &batches {
        s.commit(batch).await.expect("batch");
    }
    let elapsed = start.elapsed();
    let total = BATCHES * PER_BATCH;
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "[{}] throughput probe: {total} message changes in {BATCHES} group commits of \
         {PER_BATCH}: {:.3} s = {rate:.0} changes/s",
        env.name(),
        elapsed.as_secs_f64()
    );

    for c in 0..CONVS {
        let page = s
            .messages(&t, &conv(&format!("c{c:03}")), None, 1000)
            .await
            .expect("page");
        assert_eq!(page.len(), total / CONVS);
        assert_eq!(page[0].pos, i64::try_from(total / CONVS).expect("n"));
    }
    let list = s.conversations_of(&t, &account("u0")).await.expect("list");
    assert_eq!(list.len(), CONVS);
    assert_eq!(list[0].unread, i64::try_from(total / CONVS / 2).expect("n"));
}

/// A message batch names the conversation policy version it was validated against; a
/// commit that finds it moved (another node changed members, roles, settings or lifecycle)
/// is refused whole, on both the message-only and the general path; the log's tail comes
/// with the document's seqs.
pub async fn policy_fence_and_log_tail(env: Env) {
    let s = &env.store;
    let mut seqs = Seqs::default();
    let room = conv_doc("acme", "fence");
    let bucket = msgs_doc("acme", "fence", 0);
    let seq = seqs.next(&room);
    s.commit(&[moving(with(
        change(&room, seq, "alice"),
        vec![
            p_conv(conv_row("acme", "fence", "group", Some("Fence"), 10)),
            p_member("acme", "fence", "alice", "owner", "active"),
        ],
    ))])
    .await
    .expect("create");
    assert_eq!(s.load_doc(&room).await.expect("load").policy_seq, 1);

    // General path (creates the bucket), then the message-only path, both fenced at 1.
    let m1 = message_change(&mut seqs, "acme", "fence", "f1", "alice", 100, "one");
    s.commit(&[fenced(m1, &room, 1)])
        .await
        .expect("m1 at policy 1");
    let m2 = message_change(&mut seqs, "acme", "fence", "f2", "alice", 101, "two");
    s.commit(&[fenced(m2, &room, 1)])
        .await
        .expect("m2 at policy 1");

    // A conv change that does not move the policy (a read marker) leaves the version.
    let seq = seqs.next(&room);
    s.commit(&[change(&room, seq, "alice")])
        .await
        .expect("marker");
    assert_eq!(s.load_doc(&room).await.expect("load").policy_seq, 1);
    // One that does moves it to its seq.
    let seq = seqs.next(&room);
    s.commit(&[moving(with(
        change(&room, seq, "alice"),
        vec![p_member("acme", "fence", "bob", "member", "removed")],
    ))])
    .await
    .expect("remove bob");
    assert_eq!(s.load_doc(&room).await.expect("load").policy_seq, 3);

    // Stale fences are refused whole, on both paths, and write nothing.
    let before = s.load_doc(&bucket).await.expect("load").last_seq;
    let stale = fenced(
        message_change(&mut seqs, "acme", "fence", "f3", "alice", 102, "three"),
        &room,
        1,
    );
    let refused = s.commit(std::slice::from_ref(&stale)).await;
    assert!(
        matches!(refused, Err(StoreError::PolicyMoved(ref d)) if *d == room.to_string()),
        "{refused:?}"
    );
    let other = conv_doc("acme", "other");
    let general = vec![change(&other, 1, "alice"), fenced(stale.clone(), &room, 1)];
    let refused = s.commit(&general).await;
    assert!(
        matches!(refused, Err(StoreError::PolicyMoved(_))),
        "{refused:?}"
    );
    assert_eq!(s.load_doc(&bucket).await.expect("load").last_seq, before);
    assert!(s.load_doc(&other).await.expect("load").changes.is_empty());
    // Validated again at the new version, it commits.
    s.commit(&[fenced(stale, &room, 3)])
        .await
        .expect("f3 at policy 3");
    // A batch that moves the policy and writes messages validated after the move.
    let seq = seqs.next(&room);
    let m4 = message_change(&mut seqs, "acme", "fence", "f4", "alice", 103, "four");
    s.commit(&[moving(change(&room, seq, "alice")), fenced(m4, &room, seq)])
        .await
        .expect("move and message in one batch");

    // The log's tail.
    let tail = s.log_tail(&room, 2, 100).await.expect("tail");
    assert_eq!(seqs_of(&tail.changes), vec![3, 4]);
    assert_eq!(
        (tail.last_seq, tail.policy_seq, tail.snapshot_seq),
        (4, 4, 0)
    );
    let tail = s.log_tail(&room, 0, 3).await.expect("tail");
    assert_eq!(
        seqs_of(&tail.changes),
        vec![1, 2, 3],
        "the oldest, up to the limit"
    );
    assert_eq!(tail.last_seq, 4);
    let tail = s.log_tail(&bucket, 4, 100).await.expect("tail");
    assert!(tail.changes.is_empty());
    assert_eq!(tail.last_seq, 4);
    let tail = s
        .log_tail(&msgs_doc("acme", "never", 0), 0, 100)
        .await
        .expect("tail");
    assert!(tail.changes.is_empty() && tail.last_seq == 0);

    // A message validated before a move in the same batch (a reopen that follows the
    // message it answers): the batch's own move is not another node's.
    let policy = s.load_doc(&room).await.expect("load").policy_seq;
    let m5 = message_change(&mut seqs, "acme", "fence", "f5", "alice", 104, "five");
    let seq = seqs.next(&room);
    s.commit(&[
        fenced(m5, &room, policy),
        moving(change(&room, seq, "alice")),
    ])
    .await
    .expect("a message, then the move it calls for");
    assert_eq!(s.load_doc(&room).await.expect("load").policy_seq, seq);

    // A message's bucket part, found by its id (the proposal a response answers).
    let (acme, fence) = (tenant("acme"), ConvId::new("fence").expect("conv"));
    let found = |id: &str| {
        let message = MessageId::new(id).expect("id");
        let (acme, fence) = (acme.clone(), fence.clone());
        async move {
            s.message_bucket(&acme, &fence, &message)
                .await
                .expect("read")
        }
    };
    assert_eq!(found("f1").await, Some(Bucket::first(0)));
    assert_eq!(found("nope").await, None);
}

/// Invite links (`store::invites`): stored by token hash within a tenant, listed newest
/// first, used at most `max_uses` times (also under concurrent uses), not once expired or
/// revoked, a use given back, revocation kept at its first time.
pub async fn invite_links(env: Env) {
    use confab_core::model::joining::Invite;
    let s = &env.store;
    let (t1, t2) = (tenant("t1"), tenant("t2"));
    let room = ConvId::new("room").expect("conv");
    let invite = |id: &str, at: i64, max_uses: Option<u32>| Invite {
        id: id.to_owned(),
        created_by: account("alice"),
        created_at: at,
        expires_at: 1_000,
        max_uses,
        uses: 0,
        revoked_at: None,
    };
    let (a, b) = (invite("i-a", 1, Some(3)), invite("i-b", 2, None));
    for (i, hash) in [(&a, [1u8; 32]), (&b, [2u8; 32])] {
        s.create_invite(&t1, &room, &hash, i).await.expect("create");
    }
    assert_eq!(
        s.invite_by_token(&t1, &[1u8; 32]).await.expect("read"),
        Some((room.clone(), a.clone()))
    );
    // Another tenant's token, an unknown token: nothing.
    assert_eq!(
        s.invite_by_token(&t2, &[1u8; 32]).await.expect("read"),
        None
    );
    assert_eq!(
        s.invite_by_token(&t1, &[9u8; 32]).await.expect("read"),
        None
    );
    let ids = |list: Vec<Invite>| list.into_iter().map(|i| (i.id, i.uses)).collect::<Vec<_>>();
    assert_eq!(
        ids(s.invites(&t1, &room, 10).await.expect("list")),
        [("i-b".to_owned(), 0), ("i-a".to_owned(), 0)]
    );
    assert!(ids(s.invites(&t2, &room, 10).await.expect("list")).is_empty());
    // Five concurrent uses of a three-use link: exactly three count.
    let uses = futures_util::future::join_all((0..5).map(|_| s.use_invite(&t1, "i-a", 10))).await;
    let counted = uses
        .into_iter()
        .filter(|u| *u.as_ref().expect("use"))
        .count();
    assert_eq!(counted, 3, "{}", env.name());
    s.unuse_invite(&t1, "i-a").await.expect("unuse");
    assert_eq!(s.live_invites(&t1, &room, 10).await.expect("count"), 2);
    // Expired: no use, not live.
    assert!(!s.use_invite(&t1, "i-b", 1_000).await.expect("use"));
    assert_eq!(s.live_invites(&t1, &room, 1_000).await.expect("count"), 0);
    // Revoked once: the first time stays; a use is refused; another conversation's id is
    // not found.
    for at in [20, 30] {
        assert!(s
            .revoke_invite(&t1, &room, "i-b", at)
            .await
            .expect("revoke"));
    }
    let other = ConvId::new("other").expect("conv");
    assert!(!s
        .revoke_invite(&t1, &other, "i-b", 40)
        .await
        .expect("revoke"));
    assert!(!s.use_invite(&t1, "i-b", 10).await.expect("use"));
    match s.invite_by_token(&t1, &[2u8; 32]).await.expect("read") {
        Some((_, i)) => assert_eq!(i.revoked_at, Some(20)),
        other => panic!("{other:?}"),
    }
    match s.invite_by_token(&t1, &[1u8; 32]).await.expect("read") {
        Some((_, i)) => assert_eq!(i.uses, 2),
        other => panic!("{other:?}"),
    }
}

/// The MLS directory: trust-on-first-use signature keys, all-or-nothing uploads, one package
/// per device per claim, each ordinary one handed out once (also to concurrent claimers on
/// two store instances), the last resort when nothing else is left, removal, tenants apart.
/// Who shares a conversation with whom as active members (`Devices::co_members`, the rule
/// of a claim's ordinary packages): other statuses, other conversations, other tenants and
/// the account itself are not co-members, and the answer follows the projection.
pub async fn co_members_share_an_active_conversation(env: Env) {
    let s = &env.store;
    let mut seqs = Seqs::default();
    let mut setup = Vec::new();
    for (t, c, members) in [
        (
            "t1",
            "g1",
            vec![("alice", "active"), ("bob", "active"), ("carol", "active")],
        ),
        ("t1", "g2", vec![("alice", "active"), ("dave", "left")]),
        ("t1", "g3", vec![("alice", "removed"), ("erin", "active")]),
        ("t1", "g4", vec![("frank", "active"), ("gina", "active")]),
        (
            "t1",
            "g5",
            vec![
                ("alice", "active"),
                ("hank", "banned"),
                ("ivan", "requested"),
            ],
        ),
        // Two conversations shared: one answer.
        ("t1", "g6", vec![("alice", "active"), ("carol", "active")]),
        ("t2", "g1", vec![("alice", "active"), ("zed", "active")]),
    ] {
        let doc = conv_doc(t, c);
        let seq = seqs.next(&doc);
        let mut p = vec![p_conv(conv_row(t, c, "group", Some(c), 100))];
        for (who, status) in members {
            p.push(p_member(t, c, who, "member", status));
        }
        setup.push(with(change(&doc, seq, "alice"), p));
    }
    s.commit(&setup).await.expect("setup");
    let co = |t: &'static str, who: &'static str, others: &'static [&'static str]| {
        let s = s.clone();
        async move {
            let others: Vec<AccountId> = others.iter().map(|a| account(a)).collect();
            s.co_members(&tenant(t), &account(who), &others)
                .await
                .expect("co-members")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        }
    };
    let everyone: &'static [&'static str] = &[
        "zed", "ivan", "hank", "gina", "frank", "erin", "dave", "carol", "bob", "alice", "nobody",
        "carol",
    ];
    assert_eq!(co("t1", "alice", everyone).await, ["bob", "carol"]);
    assert_eq!(co("t1", "bob", everyone).await, ["alice", "carol"]);
    assert!(co("t1", "dave", everyone).await.is_empty(), "dave left");
    assert!(
        co("t1", "erin", &["alice"]).await.is_empty(),
        "alice was removed"
    );
    assert_eq!(co("t1", "frank", everyone).await, ["gina"]);
    assert!(
        co("t1", "hank", everyone).await.is_empty(),
        "hank is banned"
    );
    assert!(
        co("t1", "ivan", everyone).await.is_empty(),
        "ivan only asked"
    );
    assert!(co("t1", "alice", &[]).await.is_empty());
    assert!(
        co("t1", "alice", &["alice"]).await.is_empty(),
        "not oneself"
    );
    assert_eq!(co("t2", "alice", everyone).await, ["zed"]);
    assert!(co("t3", "alice", everyone).await.is_empty());

    // The projection moves: bob removed from g1, dave back in g2, carol leaves g1 but stays
    // in g6.
    let mut changes = Vec::new();
    for (c, who, status) in [
        ("g1", "bob", "removed"),
        ("g2", "dave", "active"),
        ("g1", "carol", "left"),
    ] {
        let doc = conv_doc("t1", c);
        let seq = seqs.next(&doc);
        changes.push(with(
            change(&doc, seq, "alice"),
            vec![p_member("t1", c, who, "member", status)],
        ));
    }
    s.commit(&changes).await.expect("changes");
    assert_eq!(co("t1", "alice", everyone).await, ["carol", "dave"]);
    assert!(
        co("t1", "bob", everyone).await.is_empty(),
        "bob was removed"
    );
    assert_eq!(co("t1", "dave", everyone).await, ["alice"]);
}

/// Each removal from the directory takes its tenant's next generation, once per device, in
/// the order removals commit even when they run at once; the directory answers the devices
/// removed after a generation beside the accounts asked, and the generation it read.
pub async fn directory_removal_generations(env: Env) {
    use super::devices::{NewKeyPackage, Upload};
    use confab_core::e2ee::{DeviceIdentity, DirectoryAsk};
    use confab_core::ids::DeviceId;
    let s = &env.store;
    let (t1, t2) = (tenant("g1"), tenant("g2"));
    let dev = |t: &TenantId, a: &str, d: &str| {
        DeviceIdentity::new(t.clone(), account(a), DeviceId::new(d).unwrap())
    };
    let register = |device: DeviceIdentity| async move {
        let package = NewKeyPackage {
            reference: format!("ref-{device}").into_bytes(),
            bytes: b"bytes".to_vec(),
        };
        let up = Upload {
            device: &device,
            signature_key: b"key",
            packages: std::slice::from_ref(&package),
            last_resort: None,
            cap: 5,
            at: 1,
        };
        s.upload_key_packages(&up)
            .await
            .expect("upload")
            .expect("stored");
    };
    // The devices an answer names (a device may come twice), and its generation.
    let answer = |t: &TenantId, accounts: &[&str], removed_after: Option<u64>| {
        let ask = DirectoryAsk {
            accounts: accounts.iter().map(|a| account(a)).collect(),
            removed_after,
        };
        let t = t.clone();
        async move {
            let answer = s.directory_of(&t, &ask).await.expect("directory");
            let mut named: Vec<(String, bool)> = answer
                .entries
                .iter()
                .map(|e| (e.device.to_string(), e.removed))
                .collect();
            named.sort();
            named.dedup();
            (named, answer.generation)
        }
    };
    let remove = |device: DeviceIdentity, at: i64| async move {
        s.remove_device(&device, at).await.expect("remove")
    };
    let names = |list: &[(&str, bool)]| {
        list.iter()
            .map(|(d, r)| ((*d).to_owned(), *r))
            .collect::<Vec<_>>()
    };
    for (a, d) in [("ann", "phone"), ("ann", "laptop"), ("ben", "phone")] {
        register(dev(&t1, a, d)).await;
    }
    register(dev(&t2, "ann", "phone")).await;

    // Nothing removed yet: generation 0, and nothing removed after it.
    assert_eq!(answer(&t1, &[], Some(0)).await, (vec![], 0));
    assert_eq!(
        answer(&t1, &["ann"], Some(0)).await,
        (
            names(&[("g1/ann/laptop", false), ("g1/ann/phone", false)]),
            0
        )
    );

    // A removal takes generation 1, once; an unknown device takes none.
    assert!(remove(dev(&t1, "ann", "phone"), 10).await);
    assert!(remove(dev(&t1, "ann", "phone"), 11).await);
    assert!(!remove(dev(&t1, "ann", "ghost"), 11).await);
    assert_eq!(
        answer(&t1, &[], Some(0)).await,
        (names(&[("g1/ann/phone", true)]), 1)
    );
    assert_eq!(answer(&t1, &[], Some(1)).await, (vec![], 1));
    // Without `removed_after`, only the accounts asked.
    assert_eq!(
        answer(&t1, &["ben"], None).await,
        (names(&[("g1/ben/phone", false)]), 1)
    );
    // Both parts at once.
    assert_eq!(
        answer(&t1, &["ben", "ann"], Some(0)).await,
        (
            names(&[
                ("g1/ann/laptop", false),
                ("g1/ann/phone", true),
                ("g1/ben/phone", false)
            ]),
            1
        )
    );
    assert!(remove(dev(&t1, "ben", "phone"), 12).await);
    assert_eq!(
        answer(&t1, &["ann"], Some(1)).await,
        (
            names(&[
                ("g1/ann/laptop", false),
                ("g1/ann/phone", true),
                ("g1/ben/phone", true)
            ]),
            2
        )
    );
    assert_eq!(
        answer(&t1, &[], Some(1)).await,
        (names(&[("g1/ben/phone", true)]), 2)
    );
    // Per tenant: the other one's count is its own.
    assert_eq!(answer(&t2, &[], Some(0)).await, (vec![], 0));
    assert!(remove(dev(&t2, "ann", "phone"), 13).await);
    assert_eq!(
        answer(&t2, &[], Some(0)).await,
        (names(&[("g2/ann/phone", true)]), 1)
    );
    assert_eq!(answer(&t1, &[], Some(2)).await, (vec![], 2));

    // Removals at once (on Postgres, from as many connections) take generations 3..=10, one
    // each: the devices removed after g are the 10 - g of them.
    let many: Vec<DeviceIdentity> = (0..8).map(|i| dev(&t1, "cat", &format!("d{i}"))).collect();
    for d in &many {
        register(d.clone()).await;
    }
    let removals = many.iter().map(|d| s.remove_device(d, 20));
    for removed in futures_util::future::join_all(removals).await {
        assert!(removed.expect("remove"));
    }
    for g in 2..=10u64 {
        let (named, generation) = answer(&t1, &[], Some(g)).await;
        assert_eq!(generation, 10);
        assert_eq!(named.len() as u64, 10 - g, "removed after {g}: {named:?}");
    }
}

pub async fn mls_directory(env: Env) {
    use super::devices::{NewKeyPackage, Unlimited, Upload, UploadRefused};
    use confab_core::e2ee::DeviceIdentity;
    use confab_core::ids::DeviceId;
    let s = &env.store;
    let (t1, t2) = (tenant("t1"), tenant("t2"));
    let dev = |t: &TenantId, a: &str, d: &str| {
        DeviceIdentity::new(t.clone(), account(a), DeviceId::new(d).unwrap())
    };
    let kp = |name: &str| NewKeyPackage {
        reference: format!("ref-{name}").into_bytes(),
        bytes: format!("bytes-{name}").into_bytes(),
    };
    let alice = dev(&t1, "alice", "phone");
    let upload = |device: DeviceIdentity,
                  key: &'static [u8],
                  packages: Vec<NewKeyPackage>,
                  last: Option<NewKeyPackage>,
                  at: i64| {
        let s = s.clone();
        async move {
            let up = Upload {
                device: &device,
                signature_key: key,
                packages: &packages,
                last_resort: last.as_ref(),
                cap: 5,
                at,
            };
            s.upload_key_packages(&up).await.expect("upload")
        }
    };
    let claim = |t: TenantId, accounts: Vec<&str>, at: i64| {
        let s = s.clone();
        let accounts: Vec<AccountId> = accounts.into_iter().map(account).collect();
        async move {
            s.claim_key_packages(&t, &accounts, &Unlimited, at)
                .await
                .expect("claim")
                .into_iter()
                .map(|c| {
                    (
                        format!("{}/{}", c.account, c.device),
                        c.package.map(|p| String::from_utf8(p).unwrap()),
                        c.last_resort,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let some = |who: &str, p: &str, last: bool| (who.to_owned(), Some(format!("bytes-{p}")), last);

    // The first upload registers the device and binds its key; another key is refused and
    // stores nothing.
    assert_eq!(
        upload(
            alice.clone(),
            b"key-a",
            vec![kp("a1"), kp("a2"), kp("a3")],
            None,
            1
        )
        .await,
        Ok(3)
    );
    assert_eq!(
        upload(alice.clone(), b"key-x", vec![kp("a4")], None, 2).await,
        Err(UploadRefused::SignatureKeyMismatch)
    );
    assert_eq!(s.key_packages_held(&alice, 1).await.expect("held"), 3);
    // Uploading one held again changes nothing; beyond the cap of 5 nothing is stored.
    assert_eq!(
        upload(alice.clone(), b"key-a", vec![kp("a1")], None, 3).await,
        Ok(3)
    );
    assert_eq!(
        upload(
            alice.clone(),
            b"key-a",
            vec![kp("a4"), kp("a5"), kp("a6")],
            None,
            3
        )
        .await,
        Err(UploadRefused::Full)
    );
    assert_eq!(s.key_packages_held(&alice, 1).await.expect("held"), 3);
    // Bob registers a laptop with a last-resort package only.
    let bob = dev(&t1, "bob", "laptop");
    assert_eq!(
        upload(bob.clone(), b"key-b", vec![], Some(kp("b-last")), 4).await,
        Ok(0)
    );

    // One package per device, the oldest first; carol has no device and is not listed.
    assert_eq!(
        claim(t1.clone(), vec!["alice", "bob", "carol"], 10).await,
        vec![
            some("alice/phone", "a1", false),
            some("bob/laptop", "b-last", true)
        ]
    );
    assert_eq!(s.key_packages_held(&alice, 1).await.expect("held"), 2);
    // A claimed package uploaded again is refused, with the new one beside it: nothing.
    assert_eq!(
        upload(alice.clone(), b"key-a", vec![kp("a7"), kp("a1")], None, 11).await,
        Err(UploadRefused::Reused)
    );
    assert_eq!(s.key_packages_held(&alice, 1).await.expect("held"), 2);
    // Another tenant's claim of the same names finds nothing.
    assert!(claim(t2.clone(), vec!["alice", "bob"], 12).await.is_empty());
    // Until empty; then none (alice has no last resort), and bob's last resort again.
    assert_eq!(
        claim(t1.clone(), vec!["alice"], 13).await,
        vec![some("alice/phone", "a2", false)]
    );
    assert_eq!(
        claim(t1.clone(), vec!["alice"], 14).await,
        vec![some("alice/phone", "a3", false)]
    );
    assert_eq!(
        claim(t1.clone(), vec!["alice", "bob"], 15).await,
        vec![
            ("alice/phone".to_owned(), None, false),
            some("bob/laptop", "b-last", true)
        ]
    );
    // A new last resort replaces the old one.
    assert_eq!(
        upload(alice.clone(), b"key-a", vec![], Some(kp("a-last1")), 16).await,
        Ok(0)
    );
    assert_eq!(
        upload(alice.clone(), b"key-a", vec![], Some(kp("a-last2")), 17).await,
        Ok(0)
    );
    for at in [18, 19] {
        assert_eq!(
            claim(t1.clone(), vec!["alice"], at).await,
            vec![some("alice/phone", "a-last2", true)]
        );
    }

    // The devices of a list of accounts, in one query, in (account, device) order.
    let tablet = dev(&t1, "alice", "tablet");
    assert_eq!(
        upload(tablet.clone(), b"key-t", vec![kp("t1")], None, 20).await,
        Ok(1)
    );
    let listed = |rows: Vec<super::devices::DeviceRow>| {
        rows.into_iter()
            .map(|r| (format!("{}/{}", r.account, r.device), r.signature_key))
            .collect::<Vec<_>>()
    };
    let names = [account("bob"), account("alice"), account("carol")];
    assert_eq!(
        listed(s.devices_of(&t1, &names).await.expect("devices")),
        vec![
            ("alice/phone".to_owned(), b"key-a".to_vec()),
            ("alice/tablet".to_owned(), b"key-t".to_vec()),
            ("bob/laptop".to_owned(), b"key-b".to_vec()),
        ]
    );
    assert!(s.devices_of(&t2, &names).await.expect("devices").is_empty());
    // Each with when it registered, when it last asked for its count, and what it holds.
    assert_eq!(s.key_packages_held(&tablet, 25).await.expect("held"), 1);
    let seen = |rows: Vec<super::devices::DeviceRow>| {
        rows.into_iter()
            .map(|r| {
                (
                    r.device.to_string(),
                    r.registered_at,
                    r.last_seen_at,
                    r.key_packages,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(
            s.devices_of(&t1, &[account("alice")])
                .await
                .expect("devices")
        ),
        vec![
            ("phone".to_owned(), 1, Some(17), 0),
            ("tablet".to_owned(), 20, Some(25), 1),
        ]
    );

    // Removal: its packages go, it is no longer listed nor claimed, it uploads nothing more.
    assert!(s.remove_device(&alice, 30).await.expect("remove"));
    assert!(s.remove_device(&alice, 31).await.expect("again"));
    assert!(!s
        .remove_device(&dev(&t1, "alice", "ghost"), 31)
        .await
        .expect("unknown"));
    assert_eq!(s.key_packages_held(&alice, 1).await.expect("held"), 0);
    assert_eq!(
        upload(alice.clone(), b"key-a", vec![kp("a8")], None, 32).await,
        Err(UploadRefused::Removed)
    );
    assert_eq!(
        claim(t1.clone(), vec!["alice"], 33).await,
        vec![some("alice/tablet", "t1", false)]
    );
    assert_eq!(
        listed(
            s.devices_of(&t1, &[account("alice")])
                .await
                .expect("devices")
        ),
        vec![("alice/tablet".to_owned(), b"key-t".to_vec())]
    );
    // The removed ones are named apart (the account's other devices take them out of its
    // groups), for that account and tenant only.
    let removed = |tenant: TenantId, who: &'static str| {
        let s = &s;
        async move {
            s.removed_devices_of(&tenant, &account(who))
                .await
                .expect("removed")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(removed(t1.clone(), "alice").await, ["phone"]);
    assert!(removed(t1.clone(), "bob").await.is_empty());
    assert!(removed(t2.clone(), "alice").await.is_empty());
    // What the Delivery Service checks leaves against: every device of the accounts asked,
    // removed or not, with its bound key; nothing of other accounts or tenants. The one
    // removal (twice) took t1's first generation.
    let ask = |accounts: &[&str]| confab_core::e2ee::DirectoryAsk {
        accounts: accounts.iter().map(|a| account(a)).collect(),
        removed_after: None,
    };
    let mut directory = s
        .directory_of(&t1, &ask(&["alice", "carol"]))
        .await
        .expect("directory");
    assert_eq!(directory.generation, 1);
    directory.entries.sort_by(|a, b| a.device.cmp(&b.device));
    assert_eq!(
        directory
            .entries
            .into_iter()
            .map(|e| (e.device.to_string(), e.signature_key, e.removed))
            .collect::<Vec<_>>(),
        vec![
            ("t1/alice/phone".to_owned(), b"key-a".to_vec(), true),
            ("t1/alice/tablet".to_owned(), b"key-t".to_vec(), false),
        ]
    );
    assert_eq!(
        s.directory_of(&t2, &ask(&["alice"]))
            .await
            .expect("directory"),
        confab_core::e2ee::DirectoryAnswer::default()
    );

    // Where the caller allows no ordinary package, each device answers its last resort
    // (or none) and holds what it held; where it allows them, it is asked once per device
    // and given back what a device without one could not hand out.
    struct Only {
        account: Option<AccountId>,
        asked: std::sync::Mutex<Vec<String>>,
    }
    impl super::devices::Ordinary for Only {
        fn take(&self, account: &AccountId) -> bool {
            self.asked.lock().unwrap().push(format!("take {account}"));
            self.account.as_ref() == Some(account)
        }
        fn give_back(&self, account: &AccountId) {
            self.asked.lock().unwrap().push(format!("back {account}"));
        }
    }
    let only = |who: Option<&str>| Only {
        account: who.map(account),
        asked: std::sync::Mutex::new(Vec::new()),
    };
    let (eve1, eve2) = (dev(&t1, "eve", "e1"), dev(&t1, "eve", "e2"));
    assert_eq!(
        upload(
            eve1.clone(),
            b"key-e1",
            vec![kp("e1-1"), kp("e1-2")],
            Some(kp("e1-last")),
            34
        )
        .await,
        Ok(2)
    );
    assert_eq!(
        upload(eve2.clone(), b"key-e2", vec![kp("e2-1")], None, 34).await,
        Ok(1)
    );
    type Answer = Vec<(String, Option<String>, bool)>;
    async fn limited(s: &Arc<dyn Store>, t: &TenantId, ordinary: &Only, at: i64) -> Answer {
        s.claim_key_packages(t, &[account("eve"), account("bob")], ordinary, at)
            .await
            .expect("claim")
            .into_iter()
            .map(|c| {
                (
                    format!("{}/{}", c.account, c.device),
                    c.package.map(|p| String::from_utf8(p).unwrap()),
                    c.last_resort,
                )
            })
            .collect()
    }
    let stranger = only(None);
    assert_eq!(
        limited(s, &t1, &stranger, 35).await,
        vec![
            some("bob/laptop", "b-last", true),
            some("eve/e1", "e1-last", true),
            ("eve/e2".to_owned(), None, false),
        ]
    );
    assert_eq!(
        *stranger.asked.lock().unwrap(),
        ["take bob", "take eve", "take eve"]
    );
    assert_eq!(s.key_packages_held(&eve1, 35).await.expect("held"), 2);
    assert_eq!(s.key_packages_held(&eve2, 35).await.expect("held"), 1);
    let known = only(Some("eve"));
    assert_eq!(
        limited(s, &t1, &known, 36).await,
        vec![
            some("bob/laptop", "b-last", true),
            some("eve/e1", "e1-1", false),
            some("eve/e2", "e2-1", false),
        ]
    );
    assert_eq!(
        limited(s, &t1, &known, 37).await,
        vec![
            some("bob/laptop", "b-last", true),
            some("eve/e1", "e1-2", false),
            ("eve/e2".to_owned(), None, false),
        ]
    );
    assert_eq!(
        *known.asked.lock().unwrap(),
        ["take bob", "take eve", "take eve", "take bob", "take eve", "take eve", "back eve"]
    );
    assert_eq!(s.key_packages_held(&eve1, 37).await.expect("held"), 0);

    // Concurrent claimers on two instances: 5 packages, 12 claims; each package once.
    let other = env.second().await;
    let dora = dev(&t1, "dora", "phone");
    let five: Vec<NewKeyPackage> = (0..5).map(|i| kp(&format!("d{i}"))).collect();
    assert_eq!(upload(dora.clone(), b"key-d", five, None, 40).await, Ok(5));
    let claims = (0..12).map(|i| {
        let store = if i % 2 == 0 { s.clone() } else { other.clone() };
        async move {
            store
                .claim_key_packages(&tenant("t1"), &[account("dora")], &Unlimited, 50)
                .await
                .expect("claim")
        }
    });
    let got: Vec<String> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .filter_map(|c| c.package.map(|p| String::from_utf8(p).unwrap()))
        .collect();
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        got.len(),
        "{}: a package handed out twice: {got:?}",
        env.name()
    );
    assert_eq!(got.len(), 5, "{}: {got:?}", env.name());
    assert_eq!(s.key_packages_held(&dora, 1).await.expect("held"), 0);
}
