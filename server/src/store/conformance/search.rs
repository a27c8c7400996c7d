//! The search index (docs/SEARCH.md; migrations Postgres 0027, SQLite 0020): it follows the
//! projected rows through posts, edits, deletions in the same batch and later, and retention,
//! and a search finds only what its account may read; a query matching thousands of
//! messages (SQLite walks then, Postgres may) pages like one matching few, and so does one
//! whose matches the searcher may read are all older than what a walk reads.

use super::*;
use crate::store::search::{SearchCursor, SearchQuery};
use confab_core::search::{index_text, Query};

pub(super) fn terms(id: &str, text: &str) -> Projection {
    Projection::SearchTerms {
        tenant: tenant("acme"),
        conv: conv("room"),
        message: msg_id(id),
        terms: index_text([text]).expect("terms"),
    }
}

/// A post with its search terms.
pub(super) fn post(seqs: &mut Seqs, id: &str, at: i64, text: &str) -> NewChange {
    let mut c = message_change(seqs, "acme", "room", id, "alice", at, text);
    c.projection.push(terms(id, text));
    c
}

/// Everything `account` finds for `text`, a page of 2 at a time.
pub(super) async fn found(s: &dyn Store, account: &str, text: &str) -> Vec<String> {
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

/// Commits the group `acme/room` with `alice` its owner and `more` rows.
pub async fn room(s: &dyn Store, seqs: &mut Seqs, more: Vec<Projection>) {
    let cd = conv_doc("acme", "room");
    let seq = seqs.next(&cd);
    let mut rows = vec![
        p_conv(conv_row("acme", "room", "group", None, 100)),
        p_member("acme", "room", "alice", "owner", "active"),
    ];
    rows.extend(more);
    s.commit(&[with(change(&cd, seq, "alice"), rows)])
        .await
        .expect("room");
}

/// Whether the search backlog (SQLite, migration 0044) is moved into the inverted index after
/// every commit of a case, or never: entries are then found, edited and deleted in FTS5 or
/// in the backlog alone.
#[derive(Clone, Copy)]
enum Backlog {
    Indexed,
    Kept,
}

/// Commits `changes`, then moves the backlog if `backlog` says so.
async fn commit(s: &dyn Store, changes: &[NewChange], backlog: Backlog, what: &str) {
    s.commit(changes).await.expect(what);
    if let Backlog::Indexed = backlog {
        s.index_search_backlog(usize::MAX).await.expect("index");
    }
}

pub async fn search_index_follows_rows(env: Env) {
    follows_rows(env, Backlog::Indexed).await;
}

pub async fn search_backlog_follows_rows(env: Env) {
    follows_rows(env, Backlog::Kept).await;
}

async fn follows_rows(env: Env, backlog: Backlog) {
    let s = env.store.as_ref();
    let mut seqs = Seqs::default();
    let bob = p_member("acme", "room", "bob", "member", "left");
    room(s, &mut seqs, vec![bob]).await;
    let posts = [
        post(&mut seqs, "s1", 1001, "Café noir"),
        post(&mut seqs, "s2", 1002, "cafe au lait"),
        post(&mut seqs, "s3", 1003, "tea"),
    ];
    commit(s, &posts, backlog, "posts").await;
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
    let edited = edit(&mut seqs, "s2", "green tea", false);
    commit(s, &[edited], backlog, "edit").await;
    assert_eq!(found(s, "alice", "cafe").await, ["s1"]);
    assert_eq!(found(s, "alice", "tea").await, ["s3", "s2"]);
    // Edited again: the entry is in the backlog (SQLite, kept) or in the index.
    let again = edit(&mut seqs, "s2", "green tea again", false);
    commit(s, &[again], backlog, "edit again").await;
    assert_eq!(found(s, "alice", "tea").await, ["s3", "s2"]);
    assert_eq!(found(s, "alice", "again").await, ["s2"]);
    let s4 = post(&mut seqs, "s4", 1004, "cafe again");
    let gone = edit(&mut seqs, "s4", "", true);
    commit(s, &[s4, gone], backlog, "post and delete").await;
    let deleted = edit(&mut seqs, "s1", "", true);
    commit(s, &[deleted], backlog, "delete").await;
    assert!(found(s, "alice", "cafe").await.is_empty());
    assert_eq!(found(s, "alice", "again").await, ["s2"]);

    // A batch of new messages only (Postgres' common batch, which writes its entries from
    // the rows it inserts): each entry on its own message, none for a message without
    // terms, and an id stored before keeps its row while the batch's terms replace its
    // entry, as in any batch.
    let batch = [
        post(&mut seqs, "s6", 1006, "latte"),
        message_change(&mut seqs, "acme", "room", "s5", "alice", 1005, "..."),
        post(&mut seqs, "s3", 1007, "iced latte"),
        post(&mut seqs, "s7", 1008, "latte art"),
    ];
    commit(s, &batch, backlog, "message-only batch").await;
    assert_eq!(found(s, "alice", "latte").await, ["s7", "s6", "s3"]);
    assert_eq!(found(s, "alice", "art").await, ["s7"]);
    assert_eq!(found(s, "alice", "iced").await, ["s3"]);
    assert_eq!(
        found(s, "alice", "tea").await,
        ["s2"],
        "s3's entry replaced"
    );

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
    assert!(found(s, "alice", "latte").await.is_empty());
    // What is left of the backlog belongs to no live row: indexing it adds nothing.
    s.index_search_backlog(usize::MAX).await.expect("index");
    assert!(found(s, "alice", "latte").await.is_empty());
    assert!(found(s, "alice", "again").await.is_empty());
}

/// Terms of a message of `c`.
fn terms_in(c: &str, id: &str, text: &str) -> Projection {
    Projection::SearchTerms {
        tenant: tenant("acme"),
        conv: conv(c),
        message: msg_id(id),
        terms: index_text([text]).expect("terms"),
    }
}

pub async fn search_with_many_matches(env: Env) {
    let s = env.store.as_ref();
    let mut seqs = Seqs::default();
    for (c, member) in [
        ("hall", "alice"),
        ("side", "bob"),
        ("attic", "carol"),
        ("den", "dave"),
    ] {
        let cd = conv_doc("acme", c);
        let seq = seqs.next(&cd);
        s.commit(&[with(
            change(&cd, seq, member),
            vec![
                p_conv(conv_row("acme", c, "group", None, 100)),
                p_member("acme", c, member, "owner", "active"),
            ],
        )])
        .await
        .expect("conversation");
    }
    // More matches than SQLite sorts (after the edits below take a fiftieth away), and more
    // entries than its first walk reads; times out of commit order.
    const N: i64 = crate::store::search::lite::SORT_MATCHES_MAX * 11 / 10;
    const _: () = assert!(N > crate::store::search::lite::WALK_FIRST + 1_000);
    // Carol's conversation: the oldest messages of all, every one a match of "news".
    const ATTIC: i64 = 60;
    let attic: Vec<NewChange> = (0..ATTIC)
        .map(|i| {
            let (id, text) = (format!("a{i}"), format!("news attic alpha a{i}"));
            let mut c = message_change(&mut seqs, "acme", "attic", &id, "alice", 100 + i, &text);
            c.projection.push(terms_in("attic", &id, &text));
            c
        })
        .collect();
    s.commit(&attic).await.expect("attic");
    let at = |i: i64| 10_000 + (i * 7919) % N;
    // Dave's conversation: a match every N / DEN of the tenant's entries, so SQLite's first
    // walk finds part of a page and a second walk the rest.
    const DEN: i64 = 60;
    let den: Vec<NewChange> = (0..DEN)
        .map(|i| {
            let (id, text) = (format!("d{i}"), format!("news den d{i}"));
            let at = 10_000 + i * (N / DEN);
            let mut c = message_change(&mut seqs, "acme", "den", &id, "dave", at, &text);
            c.projection.push(terms_in("den", &id, &text));
            c
        })
        .collect();
    s.commit(&den).await.expect("den");
    let conv_of = |i: i64| if i % 5 == 0 { "side" } else { "hall" };
    // "milestone": one in a thousand, so SQLite's first walk fills part of a page and a
    // second walk the rest.
    let text = |i: i64| {
        let word = ["alpha", "beta", "gamma"][(i % 3) as usize];
        let milestone = if i % 1_000 == 7 { " milestone" } else { "" };
        format!("news {word} n{i}{milestone}")
    };
    let mut batch = Vec::new();
    for i in 0..N {
        let (c, id) = (conv_of(i), format!("m{i}"));
        let mut change = message_change(&mut seqs, "acme", c, &id, "alice", at(i), &text(i));
        change.projection.push(terms_in(c, &id, &text(i)));
        batch.push(change);
        if batch.len() == 500 || i == N - 1 {
            s.commit(&batch).await.expect("posts");
            batch.clear();
        }
    }
    // In the inverted index (SQLite reads its matches to choose a walk); the edits below
    // stay in the backlog, so a search reads both.
    s.index_search_backlog(usize::MAX).await.expect("index");
    // Some deleted, some edited away from the common word.
    let mut gone = Vec::new();
    for i in (0..N).filter(|i| conv_of(*i) == "hall" && i % 50 < 2) {
        let (c, id) = (conv_of(i), format!("m{i}"));
        let doc = msgs_doc("acme", c, 0);
        let seq = seqs.next(&doc);
        let mut rows = vec![p_updated("acme", c, &id, "other", i % 50 == 0)];
        if i % 50 == 1 {
            rows.push(terms_in(c, &id, "other words"));
        }
        gone.push(with(change(&doc, seq, "alice"), rows));
    }
    s.commit(&gone).await.expect("deletes and edits");
    let live = |i: &i64| conv_of(*i) == "hall" && i % 50 >= 2;
    type Matches = fn(i64) -> bool;
    let every: Matches = |_| true;
    let gamma: Matches = |i| i % 3 == 2;
    let alpha: Matches = |i| i % 3 == 0;
    let n4321: Matches = |i| i.to_string().starts_with("4321");
    let milestone: Matches = |i| i % 1_000 == 7;
    let none: Matches = |_| false;
    for (query, matches) in [
        ("NEWS", every),
        ("news new", every),
        ("news gam", gamma),
        ("alpha ne", alpha),
        ("n4321", n4321),
        ("milestone", milestone),
        // One letter last is a whole word, never a prefix ("news" is no match of "n").
        ("alpha n", none),
    ] {
        let mut want: Vec<(i64, String)> = (0..N)
            .filter(|i| live(i) && matches(*i))
            .map(|i| (at(i), format!("m{i}")))
            .collect();
        want.sort_by(|a, b| b.cmp(a));
        let want: Vec<String> = want.into_iter().take(150).map(|(_, id)| id).collect();
        let (t, a) = (tenant("acme"), account_id("alice"));
        let q = Query::parse(query).expect("query");
        let mut got = Vec::new();
        let mut after: Option<SearchCursor> = None;
        for _ in 0..3 {
            let page = SearchQuery {
                after,
                ..SearchQuery::new(&t, &a, &q, 50)
            };
            let hits = s.search(&page).await.expect("search");
            got.extend(hits.iter().map(|h| h.row.message.to_string()));
            match hits.last() {
                Some(h) if hits.len() == 50 => after = Some(h.cursor),
                _ => break,
            }
        }
        assert_eq!(got, want, "{query}");
    }
    // Carol's matches are the oldest of all: no walk finds one, and the page comes from
    // FTS5's matches, sorted: every one for "news" (more than SQLite keeps), those it reads
    // on to after its first few thousand for "alpha". Dave's are spread over the tenant's
    // entries.
    let t = tenant("acme");
    for (account, query, prefix, n) in [
        ("carol", "news", "a", ATTIC),
        ("carol", "alpha", "a", ATTIC),
        ("dave", "news", "d", DEN),
    ] {
        let (account, q) = (account_id(account), Query::parse(query).expect("query"));
        let first = s
            .search(&SearchQuery::new(&t, &account, &q, 50))
            .await
            .expect("search");
        let second = s
            .search(&SearchQuery {
                after: first.last().map(|h| h.cursor),
                ..SearchQuery::new(&t, &account, &q, 50)
            })
            .await
            .expect("search");
        let got: Vec<String> = first
            .iter()
            .chain(&second)
            .map(|h| h.row.message.to_string())
            .collect();
        let want: Vec<String> = (0..n).rev().map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(got, want, "{account} {query}");
        assert_eq!(
            first.len(),
            50,
            "{account} {query}: a page is full while matches are left"
        );
    }
}
