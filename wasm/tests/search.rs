//! `search()` in headless Chromium against the real server (docs/SEARCH.md, "On the
//! device"): the device's index finds prefixes and folds accents, follows edits and deletes,
//! survives a reload (a new client on the same IndexedDB), answers offline and when the
//! server fails (partial, with the reason), and finds an encrypted group's messages on the
//! device while the server is asked nothing for that conversation (the page's resource
//! timings list every request it made).
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{
    CreateConversationInput, IntentResult, MemberInput, PartialCause, SearchOptions, SearchPage,
    SearchSource,
};
use confab_wasm::ConfabClient;
use support::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 30_000.0;
/// Nothing listens there.
const NOWHERE_HTTP: &str = "http://127.0.0.1:9";

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = getEntriesByType)]
    fn resource_entries(kind: &str) -> js_sys::Array;
    #[wasm_bindgen(js_namespace = performance, js_name = setResourceTimingBufferSize)]
    fn set_resource_buffer(size: u32);
    #[wasm_bindgen(js_namespace = performance, js_name = clearResourceTimings)]
    fn clear_resources();
}

/// Requests this page made to the server's search endpoint so far.
fn search_requests() -> usize {
    resource_entries("resource")
        .iter()
        .filter_map(|e| js_sys::Reflect::get(&e, &"name".into()).ok()?.as_string())
        .filter(|url| url.contains("/v1/search"))
        .count()
}

async fn search(client: &ConfabClient, query: &str, options: SearchOptions) -> SearchPage {
    ok(client.search(query.into(), Some(tsify::Ts::from_rust(&options).unwrap()))).await
}

/// Scoped to `conv`: the account's other conversations on a server that ran these tests
/// before hold the same words.
fn scoped(conv: &str) -> SearchOptions {
    SearchOptions {
        conv: Some(conv.to_owned()),
        ..Default::default()
    }
}

fn local_only(conv: &str) -> SearchOptions {
    SearchOptions {
        local_only: Some(true),
        ..scoped(conv)
    }
}

fn ids(page: &SearchPage) -> Vec<String> {
    page.results.iter().map(|r| r.message.id.clone()).collect()
}

async fn accepted(client: &ConfabClient, result: &IntentResult, what: &str) {
    wait_for(what, WAIT, || {
        state_of(client, result.id).as_deref() == Some("accepted")
    })
    .await;
}

async fn sent(client: &ConfabClient, conv: &str, body: &str) -> String {
    let result = send(client, conv, body).await;
    accepted(client, &result, &format!("{body:?} accepted")).await;
    result.message.unwrap()
}

#[wasm_bindgen_test]
async fn the_device_index_follows_edits_deletes_reloads_and_answers_offline() {
    let s = server();
    let db = unique("search");
    let alice = alice_in(&s, &db);
    done(alice.ready()).await.unwrap();
    done(alice.connect()).await.unwrap();
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    accepted(&alice, &group, "the group accepted").await;
    let cafe = sent(&alice, &conv, "Meet me at the Café tomorrow").await;
    let pizza = sent(&alice, &conv, "pizza party tonight").await;
    let fox = sent(&alice, &conv, "the quick brown fox").await;

    // Accents fold, the last word matches as a prefix, every word must match.
    for query in ["cafe", "CAFÉ", "caf", "cafe tomo", "meet caf"] {
        let page = search(&alice, query, local_only(&conv)).await;
        assert_eq!(ids(&page), [cafe.as_str()], "{query}");
    }
    assert!(search(&alice, "cafe pizza", local_only(&conv))
        .await
        .results
        .is_empty());
    let page = search(&alice, "cafe", local_only(&conv)).await;
    let hit = &page.results[0];
    assert_eq!(hit.conv, conv);
    assert_eq!(hit.source, SearchSource::Device);
    assert_eq!(hit.message.body, "Meet me at the Café tomorrow");
    assert!(hit.bucket.is_some());
    let marked: Vec<&str> = hit.snippets[0]
        .parts
        .iter()
        .filter(|p| p.hit)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, ["Café"]);
    assert_eq!(page.partial_reason.unwrap().reason, PartialCause::LocalOnly);

    // Online, the server's results merge in once: the same message is one result, "both".
    let merged = search(&alice, "cafe", scoped(&conv)).await;
    assert_eq!(ids(&merged), [cafe.as_str()]);
    assert_eq!(merged.results[0].source, SearchSource::Both);
    assert!(!merged.partial && merged.partial_reason.is_none());

    // An edit: the new word is found, the old one not; a delete: gone.
    let edited: IntentResult =
        ok(alice.edit(conv.clone(), pizza.clone(), "sushi night".into())).await;
    let deleted: IntentResult = ok(alice.delete(conv.clone(), fox.clone())).await;
    accepted(&alice, &edited, "the edit accepted").await;
    accepted(&alice, &deleted, "the delete accepted").await;
    assert_eq!(
        ids(&search(&alice, "sushi", local_only(&conv)).await),
        [pizza.as_str()]
    );
    assert!(search(&alice, "pizza", local_only(&conv))
        .await
        .results
        .is_empty());
    assert!(search(&alice, "fox", local_only(&conv))
        .await
        .results
        .is_empty());
    // The server agrees: nothing it adds brings them back.
    assert!(search(&alice, "pizza", scoped(&conv))
        .await
        .results
        .is_empty());
    assert!(search(&alice, "fox", scoped(&conv))
        .await
        .results
        .is_empty());

    // The connection dropped: the device's results, partial, "offline".
    done(alice.disconnect()).await.unwrap();
    let offline = search(&alice, "cafe", scoped(&conv)).await;
    assert_eq!(ids(&offline), [cafe.as_str()]);
    assert!(offline.partial);
    assert_eq!(
        offline.partial_reason.unwrap().reason,
        PartialCause::Offline
    );
    done(alice.dispose()).await.unwrap();
    drop(alice);

    // A reload: a new client on the same IndexedDB finds the old messages before it opens
    // any conversation or connects.
    let again = alice_in(&s, &db);
    done(again.ready()).await.unwrap();
    let page = search(&again, "tomorrow", scoped(&conv)).await;
    assert_eq!(ids(&page), [cafe.as_str()]);
    assert_eq!(page.results[0].message.author, "alice");
    assert!(page.partial);
    assert_eq!(
        ids(&search(&again, "sushi", local_only(&conv)).await),
        [pizza.as_str()]
    );
    assert!(search(&again, "fox", local_only(&conv))
        .await
        .results
        .is_empty());
    done(again.dispose()).await.unwrap();

    // Online, but the server's search fails: partial, with its code.
    let mut options = indexeddb_options(s.alice, "alice", &db);
    options.http_url = Some(NOWHERE_HTTP.into());
    let broken = client_with(&options);
    done(broken.ready()).await.unwrap();
    done(broken.connect()).await.unwrap();
    let page = search(&broken, "cafe", scoped(&conv)).await;
    assert_eq!(ids(&page), [cafe.as_str()]);
    let reason = page.partial_reason.unwrap();
    assert!(page.partial);
    assert_eq!(reason.reason, PartialCause::Server);
    assert_eq!(reason.code.as_deref(), Some("network"));
    done(broken.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn bad_queries_are_refused_with_codes() {
    let s = server();
    let alice = alice_in(&s, &unique("search-bad"));
    done(alice.ready()).await.unwrap();
    let refused = |query: &str, options: SearchOptions| {
        alice.search(query.into(), Some(tsify::Ts::from_rust(&options).unwrap()))
    };
    assert_eq!(
        code_of(refused("  !! ", SearchOptions::default())).await,
        "query_empty"
    );
    assert_eq!(
        code_of(refused(&"a".repeat(1001), SearchOptions::default())).await,
        "query_too_long"
    );
    let cursor = SearchOptions {
        cursor: Some("junk".into()),
        ..Default::default()
    };
    assert_eq!(code_of(refused("cafe", cursor)).await, "invalid_value");
    let limit = SearchOptions {
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(code_of(refused("cafe", limit)).await, "out_of_range");
    let since = SearchOptions {
        since: Some(1.5),
        ..Default::default()
    };
    assert_eq!(code_of(refused("cafe", since)).await, "invalid_format");
    done(alice.dispose()).await.unwrap();
}

/// `account`'s device named for this run, on its own IndexedDB database, online with its
/// key packages up.
async fn device(token: &str, account: &str, run: &str) -> ConfabClient {
    let mut options = indexeddb_options(token, account, &format!("search-{account}-{run}"));
    options.device_id = Some(format!("{account}-{run}"));
    let client = client_with(&options);
    done(client.ready()).await.unwrap();
    done(client.connect()).await.unwrap();
    wait_for("key packages uploaded", WAIT, || {
        client.key_packages_held() == Some(20.0)
    })
    .await;
    client
}

#[wasm_bindgen_test]
async fn an_encrypted_group_is_searched_on_the_device_and_never_on_the_server() {
    clear_resources();
    set_resource_buffer(10_000);
    let s = server();
    let run = unique("r");
    let alice = device(s.alice, "alice", &run).await;
    let bob = device(s.bob, "bob", &run).await;
    let input = CreateConversationInput {
        title: Some("vault".into()),
        members: Some(vec![MemberInput::Account("bob".into())]),
        encrypted: Some(true),
        ..Default::default()
    };
    let created: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = created.conv.clone().unwrap();
    accepted(&alice, &created, "the encrypted group accepted").await;
    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    let secret = sent(&alice, &conv, "Rendezvous at the Café Noir").await;
    wait_for("bob reads it", WAIT, || {
        timeline(&bob, &conv)
            .iter()
            .any(|i| i.message.id == secret && i.message.body.contains("Rendezvous"))
    })
    .await;

    // Scoped to the encrypted conversation: found on the device, the server not asked,
    // and the page is whole (the server holds no text of it to add).
    let before = search_requests();
    let scoped = SearchOptions {
        conv: Some(conv.clone()),
        ..Default::default()
    };
    let page = search(&bob, "rendez", scoped.clone()).await;
    assert_eq!(ids(&page), [secret.as_str()]);
    assert_eq!(page.results[0].source, SearchSource::Device);
    assert_eq!(page.results[0].message.body, "Rendezvous at the Café Noir");
    assert!(!page.partial);
    let page = search(&bob, "cafe noir", scoped).await;
    assert_eq!(ids(&page), [secret.as_str()]);

    // An unscoped search does ask (so the count above could have moved), and the server
    // adds nothing of the encrypted conversation.
    let page = search(&bob, "rendezvous", SearchOptions::default()).await;
    wait_for("the unscoped search's request listed", WAIT, || {
        search_requests() > before
    })
    .await;
    // Listed in the order they ended: a request of the scoped searches would be listed too.
    assert_eq!(
        search_requests(),
        before + 1,
        "a scoped search asked the server"
    );
    assert_eq!(ids(&page), [secret.as_str()]);
    assert_eq!(page.results[0].source, SearchSource::Device);

    for c in [alice, bob] {
        done(c.dispose()).await.unwrap();
    }
}
