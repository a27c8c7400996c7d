//! Attacks on search (`GET /v1/search`, docs/SEARCH.md). Search is a read over REST with no
//! frame of its own, so these are wire-only cases of the attack suite, on the real server with
//! SQLite and with Postgres: another tenant, a non-member, a removed member, queries crafted
//! against the FTS syntax and a 10,000-character query. Each gets a typed error or a safe
//! answer that finds nothing it may not read; the twin (a member's search) finds the message.

use confab_core::doc::write;
use confab_core::model::conversation::MemberStatus;
use confab_testkit::attack::fixture::{fixture, text_change};
use confab_testkit::attack::Lab;
use confab_testkit::ids::acc;
use serde_json::Value;

use super::wire::{now, WireLab};

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The ids a search answers (200 expected).
async fn found(lab: &WireLab, tenant: &str, account: &str, query: &str) -> Vec<String> {
    let path = format!("/v1/search?q={}", encode(query));
    let (status, body) = lab.get(tenant, account, &path).await;
    assert_eq!(status, 200, "{tenant}/{account} {query:?}: {body}");
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["message"]["id"].as_str().expect("id").to_owned())
        .collect()
}

pub async fn searching_what_one_may_not(lab: &mut WireLab) {
    let mut f = fixture(lab, "w-search").await;
    let (bucket, m) = text_change(lab, &mut f.alice, &f.conv, "ws1", "Quixotic CAFÉ plans");
    lab.accept(&mut f.alice, &bucket, m).await;
    // Twin: members find it, folded and by prefix.
    assert_eq!(found(lab, "acme", "bob", "quixotic cafe").await, ["ws1"]);
    assert_eq!(found(lab, "acme", "dave", "quix").await, ["ws1"]);
    // Another tenant, with the same account name, and a non-member: nothing.
    assert!(found(lab, "evil", "bob", "quixotic").await.is_empty());
    assert!(found(lab, "acme", "carol", "quixotic").await.is_empty());
    // Hostile queries: a literal search of their words, or a typed refusal.
    for query in [
        "\"quixotic\" OR \"*\"",
        "quix*",
        "NEAR(quixotic cafe)",
        "terms:quixotic",
        "quixotic) OR (1",
        "'quixotic':* | 'a'",
        "quixotic & !zzz",
    ] {
        let ids = found(lab, "acme", "carol", query).await;
        assert!(ids.is_empty(), "{query:?} leaked {ids:?}");
    }
    let long = "q".repeat(10_000);
    for (query, code) in [(long.as_str(), "query_too_long"), ("\"*():", "query_empty")] {
        let path = format!("/v1/search?q={}", encode(query));
        let (status, body) = lab.get("acme", "bob", &path).await;
        assert_eq!((status, &body["code"]), (422, &Value::from(code)), "{body}");
    }
    // A removed member finds nothing of it any more.
    let t = now();
    let removal = f
        .alice
        .write(&f.cd, |doc, tag| {
            write::set_member_status(doc, tag, t, &acc("bob"), MemberStatus::Removed)
        })
        .expect("a removal writes");
    lab.accept(&mut f.alice, &f.cd, removal).await;
    assert!(found(lab, "acme", "bob", "quixotic").await.is_empty());
    assert_eq!(found(lab, "acme", "dave", "quixotic").await, ["ws1"]);
}
