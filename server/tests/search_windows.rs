//! Postgres reads a search's page in windows of time through the readable conversations'
//! entries, then the GIN index for what the windows leave (`store::search::windows`,
//! migration 0045): whatever reads a page, the answers are the model's, newest first,
//! page after page, with the filters on the row and on time. The history is larger than
//! the first window, a tenth of it readable, and its rate in time changes halfway (so the
//! windows' guess from the rate so far is wrong once), and it holds terms common, middling
//! and rare where the account reads.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use confab_core::search::{index_text, Query};
use confab_server::store::conformance::*;
use confab_server::store::postgres::PgStore;
use confab_server::store::search::windows::FIRST_ENTRIES;
use confab_server::store::search::{SearchCursor, SearchQuery};
use confab_server::store::{ChangeLog, NewChange, Projection, Projections, Store};
use sqlx::{Connection, Executor};

mod support;

use support::on_fresh_postgres;

const HISTORY: i64 = 40_000;
const _: () = assert!(HISTORY > 3 * FIRST_ENTRIES);

/// Message `i`'s time: the older half 20 ms apart, the newer 1 ms apart.
fn at(i: i64) -> i64 {
    let half = HISTORY / 2;
    match i < half {
        true => 1_000 + i * 20,
        false => 1_000 + half * 20 + (i - half),
    }
}

/// Alice reads "mine", a tenth of the messages; "far" is Bob's.
fn conv_of(i: i64) -> &'static str {
    match i % 10 == 3 {
        true => "mine",
        false => "far",
    }
}

fn author_of(i: i64) -> &'static str {
    match (conv_of(i), i % 20 == 3) {
        ("far", _) => "bob",
        (_, true) => "alice",
        (_, false) => "carol",
    }
}

/// Every message "common"; "middle" in one of 30 of Alice's conversation; "rare" in three
/// of its oldest and one of Bob's; "once" in its newest and its oldest.
fn text(i: i64) -> String {
    let mut words = vec!["common".to_owned(), format!("n{i}")];
    if conv_of(i) == "mine" && (i / 10) % 30 == 0 {
        words.push("middle".into());
    }
    if [13, 23, 503, 1_000].contains(&i) {
        words.push("rare".into());
    }
    // Once in the first window and once in the oldest readable message: its rate there
    // sends the rest to the GIN index.
    if [13, HISTORY - 7].contains(&i) {
        words.push("once".into());
    }
    words.join(" ")
}

fn post(seqs: &mut Seqs, i: i64) -> NewChange {
    let (c, id, text) = (conv_of(i), format!("m{i}"), text(i));
    let mut change = message_change(seqs, "acme", c, &id, author_of(i), at(i), &text);
    change.projection.push(Projection::SearchTerms {
        tenant: tenant("acme"),
        conv: conv(c),
        message: msg_id(&id),
        terms: index_text([text.as_str()]).expect("terms"),
    });
    change
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_the_models_whatever_reads_it() {
    on_fresh_postgres("search_windows", |url| async move {
        let store = PgStore::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut seqs = Seqs::default();
        store
            .commit(&[
                group_created(&mut seqs, "acme", "mine", "alice"),
                group_created(&mut seqs, "acme", "far", "bob"),
            ])
            .await
            .expect("the conversations");
        let posts: Vec<_> = (0..HISTORY).map(|i| post(&mut seqs, i)).collect();
        for batch in posts.chunks(500) {
            store.commit(batch).await.expect("posts");
        }

        // Without statistics (as a burst leaves the table), then analyzed: the estimates
        // differ, so do the reads; the answers do not.
        for analyzed in [false, true] {
            if analyzed {
                let mut db = sqlx::PgConnection::connect(&url).await.expect("postgres");
                db.execute("ANALYZE message_search").await.expect("analyze");
            }
            check_every_case(&store, analyzed).await;
        }
    })
    .await;
}

async fn check_every_case(store: &PgStore, analyzed: bool) {
    let (t, alice) = (tenant("acme"), account("alice"));
    let by_alice = account("alice");
    let (since, until) = (at(HISTORY / 4), at(HISTORY * 3 / 4));
    type Filter = fn(i64) -> bool;
    let cases: [(&str, bool, bool, Filter); 10] = [
        ("common", false, false, |_| true),
        ("middle", false, false, |i| text(i).contains("middle")),
        ("middle com", false, false, |i| text(i).contains("middle")),
        ("rare", false, false, |i| text(i).contains("rare")),
        ("once", false, false, |i| text(i).contains("once")),
        ("middle", true, false, |i| text(i).contains("middle")),
        ("rare common", true, false, |i| text(i).contains("rare")),
        ("middle", false, true, |i| text(i).contains("middle")),
        ("common", true, true, |_| true),
        // A rare prefix: n1000 and n10000..n10009 (one of them Alice's).
        ("n1000", false, false, |i| i.to_string().starts_with("1000")),
    ];
    for (q, by_author, in_range, matches) in cases {
        let want: Vec<String> = (0..HISTORY)
            .rev()
            .filter(|&i| conv_of(i) == "mine" && matches(i))
            .filter(|&i| !by_author || author_of(i) == "alice")
            .filter(|&i| !in_range || (since..until).contains(&at(i)))
            .take(200)
            .map(|i| format!("m{i}"))
            .collect();
        let query = Query::parse(q).expect("query");
        let mut got = Vec::new();
        let mut after: Option<SearchCursor> = None;
        for _ in 0..4 {
            let mut page = SearchQuery::new(&t, &alice, &query, 50);
            page.after = after;
            if by_author {
                page.author = Some(&by_alice);
            }
            if in_range {
                (page.since, page.until) = (Some(since), Some(until));
            }
            let hits = store.search(&page).await.expect("search");
            got.extend(hits.iter().map(|h| h.row.message.to_string()));
            match hits.last() {
                Some(h) if hits.len() == 50 => after = Some(h.cursor),
                _ => break,
            }
        }
        let case =
            format!("{q:?}, by author {by_author}, in range {in_range}, analyzed {analyzed}");
        assert_eq!(got, want, "{case}");
    }
}
