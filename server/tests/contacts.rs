//! Contacts that find people (`POST /v1/contacts/match`, `PUT /v1/accounts/{account}/
//! identifiers`; docs/CONTACTS.md) over REST on the production router, on both backends:
//! the identity service registers hashed phone numbers and emails, a client's hashed
//! address book finds the accounts of its own tenant only (never itself), a re-registered
//! hash moves, and bad input gets its code and changes nothing.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use confab_server::auth::Claims;
use confab_server::engine::now_ms;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod support;

use support::{on_fresh_postgres, Server, TENANT};

/// The documented normalization (docs/CONTACTS.md): E.164 phone numbers ("+" and digits,
/// separators dropped), emails trimmed and lower-cased; then hex SHA-256.
fn hash(identifier: &str) -> String {
    let id = identifier.trim();
    let normalized = if id.contains('@') {
        id.to_lowercase()
    } else {
        id.chars()
            .filter(|c| *c == '+' || c.is_ascii_digit())
            .collect()
    };
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

impl Server {
    fn bearer(&self, tenant: &str, account: &str, kind: &str) -> String {
        self.auth
            .mint(&Claims {
                sub: account.into(),
                tenant: tenant.into(),
                exp: now_ms() / 1000 + 3600,
                kind: kind.into(),
            })
            .expect("mint")
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }

    async fn register(&self, token: &str, account: &str, ids: &[&str]) -> (u16, Value) {
        let hashes: Vec<String> = ids.iter().map(|i| hash(i)).collect();
        let path = format!("/v1/accounts/{account}/identifiers");
        self.send(
            reqwest::Method::PUT,
            &path,
            token,
            json!({"hashes": hashes}),
        )
        .await
    }

    async fn matched(&self, token: &str, ids: &[&str]) -> Vec<(String, String)> {
        let hashes: Vec<String> = ids.iter().map(|i| hash(i)).collect();
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/v1/contacts/match",
                token,
                json!({"hashes": hashes}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .map(|m| {
                let h = m["hash"].as_str().expect("hash");
                let which = ids.iter().find(|i| hash(i) == h).expect("a hash sent");
                (
                    (*which).to_owned(),
                    m["account"].as_str().expect("account").to_owned(),
                )
            })
            .collect()
    }
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    sorted(
        p.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
    )
}

async fn contacts(s: Server) {
    let idp = s.bearer(TENANT, "identity", "service");
    let alice = s.bearer(TENANT, "alice", "user");
    let other_idp = s.bearer("globex", "identity", "service");
    let other_user = s.bearer("globex", "gina", "user");

    let (status, body) = s
        .register(&idp, "bob", &["+1 555 123 4567", "Bob@Example.com"])
        .await;
    assert_eq!((status, body["hashes"].as_u64()), (200, Some(2)), "{body}");
    s.register(&idp, "carol", &["+15557654321"]).await;
    s.register(&idp, "alice", &["+15550000000"]).await;
    // The same number in another tenant belongs to someone else there.
    s.register(&other_idp, "gus", &["+15551234567"]).await;

    // The address book, normalized and hashed on the device: separators and case do not
    // matter; unknown numbers, the caller's own and other tenants' accounts are not found.
    let book = [
        "+1 (555) 123-4567",
        " bob@EXAMPLE.com ",
        "+15557654321",
        "+19999999999",
        "+15550000000",
    ];
    assert_eq!(
        sorted(s.matched(&alice, &book).await),
        pairs(&[
            ("+1 (555) 123-4567", "bob"),
            (" bob@EXAMPLE.com ", "bob"),
            ("+15557654321", "carol"),
        ])
    );
    assert_eq!(
        s.matched(&other_user, &["+15551234567", "+15557654321"])
            .await,
        pairs(&[("+15551234567", "gus")])
    );

    // Registering again replaces the account's set; a number given to another account moves.
    s.register(&idp, "dave", &["+15557654321"]).await;
    s.register(&idp, "bob", &["bob@example.com"]).await;
    assert_eq!(
        sorted(
            s.matched(&alice, &["+15551234567", "bob@example.com", "+15557654321"])
                .await
        ),
        pairs(&[("bob@example.com", "bob"), ("+15557654321", "dave")])
    );

    // Bad input: a code, nothing changed.
    let (status, body) = s.register(&alice, "alice", &["+15551112222"]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("service_only")),
        "{body}"
    );
    let too_many: Vec<String> = (0..1001).map(|i| hash(&format!("+1555{i:07}"))).collect();
    for (body, code) in [
        (json!({"hashes": too_many}), "out_of_range"),
        (json!({"hashes": ["ABC"]}), "invalid_value"),
        (
            json!({"hashes": [hash("+1").to_uppercase()]}),
            "invalid_value",
        ),
        (json!({"hashes": [], "extra": 1}), "unknown_key"),
        (json!({"hashes": "x"}), "wrong_type"),
    ] {
        let (status, answer) = s
            .send(
                reqwest::Method::POST,
                "/v1/contacts/match",
                &alice,
                body.clone(),
            )
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (422, Some(code)),
            "{body}: {answer}"
        );
    }
    let many: Vec<String> = (0..21).map(|i| format!("+1555{i:07}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, body) = s.register(&idp, "carol", &many).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("out_of_range")),
        "{body}"
    );
    let (status, body) = s.register(&idp, "not an id", &["+15551112222"]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        s.matched(&alice, &["bob@example.com"]).await,
        pairs(&[("bob@example.com", "bob")]),
        "refused requests changed nothing"
    );
    let (status, body) = s.matched_empty(&alice).await;
    assert_eq!((status, body), (200, json!({"matches": []})));
}

impl Server {
    async fn matched_empty(&self, token: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            "/v1/contacts/match",
            token,
            json!({"hashes": []}),
        )
        .await
    }
}

#[tokio::test]
async fn contacts_on_sqlite() {
    contacts(Server::start_on(None).await).await;
}

#[tokio::test]
async fn contacts_on_postgres() {
    on_fresh_postgres("confab_contacts", move |url: String| async move {
        contacts(Server::start_on(Some(&url)).await).await
    })
    .await;
}
