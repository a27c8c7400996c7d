//! `Client::search` against the real server: the device's results first, the server's it
//! does not hold merged in once (a new device), offline (or kept local) the device's alone and partial.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use confab_client::{Client as NativeClient, SearchOptions, SearchPage, SearchSource};
use confab_core::ids::{ConvId, DocId, TenantId};
use confab_e2e::native_support::*;
use confab_e2e::store_probe::scalar;
use confab_e2e::{Backend, TestServer};

/// Every page of `query`, in order.
async fn all_pages(c: &NativeClient, query: &str, options: &SearchOptions) -> Vec<SearchPage> {
    let mut options = options.clone();
    let mut pages = Vec::new();
    loop {
        let page = c.search(query, &options).await.unwrap();
        options.cursor = page.next_cursor.clone();
        pages.push(page);
        if options.cursor.is_none() {
            return pages;
        }
    }
}

fn found(pages: &[SearchPage]) -> Vec<(String, SearchSource)> {
    pages
        .iter()
        .flat_map(|p| &p.hits)
        .map(|h| (h.message.to_string(), h.source))
        .collect()
}

#[tokio::test]
async fn device_results_come_first_and_the_servers_merge_in_once() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dirs = fresh_dirs("search", 3);
    let alice = client(&server, "alice", 1, &dirs[0]);
    let bob = client(&server, "bob", 1, &dirs[1]);
    alice.set_online(true).await.unwrap();
    bob.set_online(true).await.unwrap();

    let near = ConvId::new("near-room").unwrap();
    let far = ConvId::new("far-room").unwrap();
    for conv in [&near, &far] {
        let id = alice.intent(group_of(conv, &["bob"])).await.unwrap();
        accepted(&alice, id).await;
    }
    let bucket = today(&alice, &near).await;
    alice.open(bucket.clone()).await.unwrap();
    bob.open(DocId::conv(&TenantId::new("acme").unwrap(), &near))
        .await
        .unwrap();
    bob.open(bucket).await.unwrap();
    alice.open(today(&alice, &far).await).await.unwrap();
    for (n, body) in ["Kiwi pie", "two kiwis", "no fruit"].iter().enumerate() {
        let id = send(&alice, &near, &format!("near{n}"), body).await;
        accepted(&alice, id).await;
    }
    for (n, body) in ["a far kiwi", "kiwi again"].iter().enumerate() {
        let id = send(&alice, &far, &format!("far{n}"), body).await;
        accepted(&alice, id).await;
    }
    wait_for(&bob, &near, 3).await;

    let everything = SearchOptions {
        limit: Some(1),
        ..SearchOptions::default()
    };
    // Bob's device holds both rooms (the feed follows them): the server's answers are all
    // duplicates of the device's and dropped (a device result the server's answer for the
    // same page also held says `Both`).
    let pages = all_pages(&bob, "kiwi", &everything).await;
    let hits = found(&pages);
    assert_eq!(
        hits.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["far1", "far0", "near0", "near1"],
        "whole words first, newest first"
    );
    assert!(
        hits.iter().all(|(_, s)| *s != SearchSource::Server),
        "{hits:?}"
    );
    assert!(pages.iter().all(|p| !p.partial));

    // The server's indexer moves its entries into FTS5 behind the commits (docs/SEARCH.md,
    // "Cost"): the server's answers below come from there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while scalar(&server, "SELECT COUNT(*) FROM search_backlog", None).await > 0 {
        assert!(std::time::Instant::now() < deadline, "the backlog stays");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let kiwi = "SELECT COUNT(*) FROM message_search WHERE message_search MATCH 'kiwi'";
    assert_eq!(scalar(&server, kiwi, None).await, 3, "in FTS5");

    // A new device of bob's, just online, holds little or nothing yet: whatever it holds
    // comes first, the server's results fill in the rest, and nothing comes twice.
    let fresh = client(&server, "bob", 2, &dirs[2]);
    fresh.set_online(true).await.unwrap();
    eventually(&fresh, "online", |e| e.is_online()).await;
    // One page: the device's matches and the server's are taken at one moment (across
    // pages, a message arriving meanwhile can be missed: docs/SEARCH.md).
    let pages = all_pages(&fresh, "kiwi", &SearchOptions::default()).await;
    assert_eq!(pages.len(), 1);
    let hits = found(&pages);
    let ids: BTreeSet<&str> = hits.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["far0", "far1", "near0", "near1"]),
        "{hits:?}"
    );
    assert_eq!(hits.len(), 4, "no message twice: {hits:?}");
    assert!(pages.iter().all(|p| !p.partial));
    for page in &pages {
        let sources: Vec<SearchSource> = page.hits.iter().map(|h| h.source).collect();
        let mut sorted = sources.clone();
        sorted.sort_by_key(|s| *s == SearchSource::Server);
        assert_eq!(sources, sorted, "a page shows the device's results first");
    }
    let pages = all_pages(&bob, "kiwi", &everything).await;
    let snippet = &pages[0].hits[0].snippets[0];
    assert!(snippet
        .parts
        .iter()
        .any(|p| p.hit && p.text.to_lowercase() == "kiwi"));

    // Kept on the device: the server is not asked, and the page says so.
    let local_only = SearchOptions {
        local_only: true,
        ..SearchOptions::default()
    };
    let page = bob.search("kiwi", &local_only).await.unwrap();
    assert!(page.partial);
    assert_eq!(found(&[page]).len(), 4);

    // Offline: the device's results, partial.
    bob.set_online(false).await.unwrap();
    eventually(&bob, "offline", |e| !e.is_online()).await;
    let page = bob.search("kiw", &SearchOptions::default()).await.unwrap();
    assert!(page.partial);
    assert_eq!(
        found(&[page]),
        ["far1", "far0", "near1", "near0"].map(|id| (id.to_owned(), SearchSource::Device)),
        "a prefix finds both; newest first"
    );

    // A query with no words is refused before anything is read.
    let err = bob.search("\" * :", &SearchOptions::default()).await;
    assert!(
        matches!(err, Err(confab_client::Error::Search(_))),
        "{err:?}"
    );
}
