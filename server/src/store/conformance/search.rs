//! The search index (docs/SEARCH.md; migrations Postgres 0027, SQLite 0020): it follows the
//! projected rows through posts, edits, deletions in the same batch and later, and retention,
//! and a search finds only what its account may read.

use super::*;
use crate::store::search::{SearchCursor, SearchQuery};
use confab_core::search::{index_text, Query};

fn terms(id: &str, text: &str) -> Projection {
    Projection::SearchTerms {
        tenant: tenant("acme"),
        conv: conv("room"),
        message: msg_id(id),
        terms: index_text([text]).expect("terms"),
    }
}

/// A post with its search terms.
fn post(seqs: &mut Seqs, id: &str, at: i64, text: &str) -> NewChange {
    let mut c = message_change(seqs, "acme", "room", id, "alice", at, text);
    c.projection.push(terms(id, text));
    c
}

/// Everything `account` finds for `text`, a page of 2 at a time.
async fn found(s: &dyn Store, account: &str, text: &str) -> Vec<String> {
    let (t, a) = (tenant("acme"), account_id(account));
    let query = Query::parse(text).expect("query");
    let mut out = Vec::new();
    let mut after: Option<SearchCursor> = None;
    loop {
        let q = SearchQuery {
            after,
            ..SearchQuery::new(&t, &a, &query, 2)
        };
        let hits = s.search(&q).await.expect("search");
        out.extend(hits.iter().map(|h| h.row.message.to_string()));
        match hits.last() {
            Some(h) if hits.len() == 2 => after = Some(h.cursor),
            _ => return out,
        }
    }
}

fn account_id(a: &str) -> confab_core::ids::AccountId {
    confab_core::ids::AccountId::new(a).expect("account")
}

pub async fn search_index_follows_rows(env: Env) {
    let s = env.store.as_ref();
    let mut seqs = Seqs::default();
    let cd = conv_doc("acme", "room");
    let seq = seqs.next(&cd);
    s.commit(&[with(
        change(&cd, seq, "alice"),
        vec![
            p_conv(conv_row("acme", "room", "group", None, 100)),
            p_member("acme", "room", "alice", "owner", "active"),
            p_member("acme", "room", "bob", "member", "left"),
        ],
    )])
    .await
    .expect("room");
    s.commit(&[
        post(&mut seqs, "s1", 1001, "Café noir"),
        post(&mut seqs, "s2", 1002, "cafe au lait"),
        post(&mut seqs, "s3", 1003, "tea"),
    ])
    .await
    .expect("posts");
    assert_eq!(found(s, "alice", "CAFE").await, ["s2", "s1"]);
    assert_eq!(found(s, "alice", "noir caf").await, ["s1"]);
    assert!(found(s, "bob", "cafe").await.is_empty(), "bob left");

    // An edit replaces the terms; a deletion removes them (later, and in the same batch as
    // the post).
    let doc = msgs_doc("acme", "room", 0);
    let edit = |seqs: &mut Seqs, id: &str, text: &str, deleted: bool| {
        let seq = seqs.next(&doc);
        let mut rows = vec![p_updated("acme", "room", id, text, deleted)];
        if !deleted {
            rows.push(terms(id, text));
        }
        with(change(&doc, seq, "alice"), rows)
    };
    s.commit(&[edit(&mut seqs, "s2", "green tea", false)])
        .await
        .expect("edit");
    assert_eq!(found(s, "alice", "cafe").await, ["s1"]);
    assert_eq!(found(s, "alice", "tea").await, ["s3", "s2"]);
    let s4 = post(&mut seqs, "s4", 1004, "cafe again");
    let gone = edit(&mut seqs, "s4", "", true);
    s.commit(&[s4, gone]).await.expect("post and delete");
    s.commit(&[edit(&mut seqs, "s1", "", true)])
        .await
        .expect("delete");
    assert!(found(s, "alice", "cafe").await.is_empty());

    // Retention drops the bucket: its messages leave the index with their rows.
    s.drop_buckets(crate::store::retention::DropRequest {
        tenant: &tenant("acme"),
        conv: &conv("room"),
        first_kept: 1,
        retention_days: 1,
        now_ms: 10 * 86_400_000,
    })
    .await
    .expect("drop");
    assert!(found(s, "alice", "tea").await.is_empty());
}
