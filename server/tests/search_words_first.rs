//! Postgres reads a query of whole words with a common prefix last by its words when they
//! are rare where the account reads, and checks each entry read against the whole query
//! (`store::search::words_first`, migration 0043): the choice follows the planner's
//! estimates of both parts, and the answers are those of the whole query whichever read it
//! takes, with or without a filter on the message row.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use confab_core::search::Query;
use confab_server::store::conformance::*;
use confab_server::store::postgres::PgStore;
use confab_server::store::search::{windows, words_first, SearchQuery};
use confab_server::store::{ChangeLog, Projection, Projections, Store};
use sqlx::{Connection, Executor, PgConnection};

mod support;

use support::on_fresh_postgres;

const HISTORY: usize = 4_000;
/// Every `NEEDLE_EVERY`th message holds the rare word; every other one of those has no word
/// of the common prefix, so the whole query must drop it.
const NEEDLE_EVERY: usize = 250;

/// Message `i`'s text: a word of the common prefix `zet` (unless a needle without it), two
/// of 200 fillers (enough distinct lexemes for the planner's statistics to know a prefix),
/// and the rare word where it goes.
fn text(i: usize) -> String {
    let needle = i % NEEDLE_EVERY == 7;
    let without_prefix = needle && (i / NEEDLE_EVERY) % 2 == 1;
    let mut words = vec![format!("w{}", i % 200), format!("w{}", (i * 7 + 3) % 200)];
    if !without_prefix {
        words.push(format!("zeta{}", i % 50));
    }
    if needle {
        words.push("needle".to_owned());
    }
    words.join(" ")
}

fn post(seqs: &mut Seqs, i: usize) -> confab_server::store::NewChange {
    let id = format!("m{i}");
    let text = text(i);
    let mut c = message_change(seqs, "acme", "g1", &id, "alice", 1_000 + i as i64, &text);
    c.projection.push(Projection::SearchTerms {
        tenant: tenant("acme"),
        conv: conv("g1"),
        message: msg_id(&id),
        terms: confab_core::search::index_text([text.as_str()]).expect("terms"),
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rare_word_before_a_common_prefix_is_read_first() {
    on_fresh_postgres("search_words_first", |url| async move {
        let store = PgStore::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut seqs = Seqs::default();
        store
            .commit(&[group_created(&mut seqs, "acme", "g1", "alice")])
            .await
            .expect("the conversation");
        let posts: Vec<_> = (0..HISTORY).map(|i| post(&mut seqs, i)).collect();
        for batch in posts.chunks(200) {
            store.commit(batch).await.expect("posts");
        }
        let mut db = PgConnection::connect(&url).await.expect("postgres");
        db.execute("ANALYZE message_search").await.expect("analyze");
        let cids: Vec<i64> = sqlx::query_scalar("SELECT id FROM conversations")
            .fetch_all(&mut db)
            .await
            .expect("keys");

        // What each query reads, from the planner's estimates.
        let read = |q: &str| {
            let (query, cids) = (Query::parse(q).expect("query"), cids.clone());
            let url = url.clone();
            async move {
                let mut db = PgConnection::connect(&url).await.expect("postgres");
                let e = windows::estimate(&mut db, &query, &cids)
                    .await
                    .expect("estimates");
                words_first::read(&query, e.parts)
            }
        };
        for q in ["needle zet", "needle ze", "w17 needle zeta"] {
            let r = read(q).await;
            let whole = Query::parse(q).expect("query").to_tsquery();
            assert_eq!(r.check.as_deref(), Some(whole.as_str()), "{q}: words first");
            assert!(
                !r.index.contains(":*"),
                "{q}: the prefix is not read: {r:?}"
            );
        }
        // A prefix no commoner than the word, or no prefix: the whole query is read.
        for q in ["w17 needl", "needle zeta49", "zet"] {
            let r = read(q).await;
            assert_eq!(r.check, None, "{q}: {r:?}");
            assert_eq!(r.index, Query::parse(q).expect("query").to_tsquery());
        }

        // The answers are the whole query's: the needles with a word of the prefix, newest
        // first; the filter on the row (author) takes the other statement.
        let expected: Vec<String> = (0..HISTORY)
            .rev()
            .filter(|&i| {
                let t = text(i);
                t.contains("needle") && t.contains("zeta")
            })
            .map(|i| format!("m{i}"))
            .collect();
        assert_eq!(expected.len(), HISTORY / NEEDLE_EVERY / 2);
        let (t, alice) = (tenant("acme"), account("alice"));
        for q in ["needle zet", "needle ze"] {
            let query = Query::parse(q).expect("query");
            for by_author in [false, true] {
                let mut sq = SearchQuery::new(&t, &alice, &query, 50);
                if by_author {
                    sq.author = Some(&alice);
                }
                let hits = store.search(&sq).await.expect("search");
                let got: Vec<String> = hits.iter().map(|h| h.row.message.to_string()).collect();
                assert_eq!(got, expected, "{q}, filtered by author: {by_author}");
            }
        }
    })
    .await;
}
