//! REST on a posted message, for services and bots (edit, delete for everyone, react,
//! un-react, pin, unpin), over real HTTP on SQLite and on a fresh Postgres database: the
//! same acceptor as the wire, so the same refusals; what was refused is not written.

use confab_core::ids::{ConvId, TenantId};
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{on_fresh_postgres, Reply, Server, TENANT};

#[track_caller]
fn expect(reply: &Reply, status: u16) -> &Value {
    assert_eq!(reply.status, status, "unexpected answer: {}", reply.body);
    &reply.body
}

#[track_caller]
fn refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (status, Some(code)),
        "{}",
        reply.body
    );
}

struct Tokens {
    alice: String,
    bob: String,
    dave: String,
    erin: String,
    svc: String,
    evil: String,
}

impl Server {
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        self.request(method, path, token, body).await
    }

    /// Message `id` as its owner reads it in the first page.
    async fn message(&self, token: &str, id: &str) -> Value {
        let page = self
            .call(Method::GET, "/v1/conversations/g/messages", token, None)
            .await;
        expect(&page, 200)["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {}", page.body))
    }

    /// The pinned message ids of "g", as the engine holds them.
    async fn pins(&self) -> Vec<String> {
        let tenant = TenantId::new(TENANT).expect("tenant");
        let conv = ConvId::new("g").expect("conv");
        let conv = self
            .engine
            .conversation(&tenant, &conv)
            .await
            .expect("the conversation");
        conv.pins.keys().map(|m| m.to_string()).collect()
    }
}

/// Group "g": alice owner, bob member, dave admin; alice posted m1 and m2.
async fn group(s: &Server) -> Tokens {
    let t = Tokens {
        alice: s.tenant_token(TENANT, "alice", "user"),
        bob: s.tenant_token(TENANT, "bob", "user"),
        dave: s.tenant_token(TENANT, "dave", "user"),
        erin: s.tenant_token(TENANT, "erin", "user"),
        svc: s.tenant_token(TENANT, "moderator-bot", "service"),
        evil: s.tenant_token("evil", "alice", "user"),
    };
    let made = s
        .call(
            Method::POST,
            "/v1/conversations",
            &t.alice,
            Some(json!({"kind": "group", "id": "g", "members": [
                {"account": "bob"}, {"account": "dave", "role": "admin"}]})),
        )
        .await;
    expect(&made, 201);
    for id in ["m1", "m2"] {
        let posted = s
            .call(
                Method::POST,
                "/v1/conversations/g/messages",
                &t.alice,
                Some(json!({"id": id, "body": format!("hello {id}")})),
            )
            .await;
        expect(&posted, 201);
    }
    t
}

async fn edits(s: &Server, t: &Tokens) {
    let m1 = "/v1/conversations/g/messages/m1";
    // The author edits.
    let edited = s
        .call(Method::PATCH, m1, &t.alice, Some(json!({"body": "edited"})))
        .await;
    let edited = expect(&edited, 200);
    assert_eq!(edited["id"], "m1");
    assert!(edited["seq"].as_u64().is_some_and(|n| n >= 2), "{edited}");
    assert!(edited["edited_at"].is_string(), "{edited}");
    let shown = s.message(&t.alice, "m1").await;
    assert_eq!(
        (&shown["body"], &shown["edited_at"]),
        (&json!("edited"), &edited["edited_at"])
    );
    // Nobody else: a member, an admin, a service (no member), another tenant.
    for (token, status, code) in [
        (&t.bob, 403, "not_author"),
        (&t.dave, 403, "not_author"),
        (&t.svc, 403, "not_member"),
        (&t.erin, 403, "not_member"),
        (&t.evil, 404, "not_found"),
    ] {
        let reply = s
            .call(Method::PATCH, m1, token, Some(json!({"body": "mine now"})))
            .await;
        refused(&reply, status, code);
    }
    assert_eq!(s.message(&t.alice, "m1").await["body"], "edited");
    // The body's checks, and what does not exist.
    let long = "x".repeat(confab_core::limits::BODY_MAX_CHARS + 1);
    let reply = s
        .call(Method::PATCH, m1, &t.alice, Some(json!({"body": long})))
        .await;
    refused(&reply, 422, "too_long");
    let reply = s
        .call(
            Method::PATCH,
            m1,
            &t.alice,
            Some(json!({"body": "x", "kind": "text"})),
        )
        .await;
    refused(&reply, 422, "unknown_key");
    let reply = s
        .call(
            Method::PATCH,
            "/v1/conversations/g/messages/nope",
            &t.alice,
            Some(json!({"body": "x"})),
        )
        .await;
    refused(&reply, 404, "not_found");
}

async fn reactions(s: &Server, t: &Tokens) {
    let thumbs = "/v1/conversations/g/messages/m1/reactions/%F0%9F%91%8D";
    // Twice: the second changes nothing.
    for _ in 0..2 {
        let reply = s.call(Method::PUT, thumbs, &t.bob, None).await;
        expect(&reply, 204);
    }
    let shown = s.message(&t.alice, "m1").await;
    let reactions = shown["reactions"]["👍"].as_object().expect("👍").clone();
    assert_eq!(reactions.keys().collect::<Vec<_>>(), vec!["bob"], "{shown}");
    // Nobody outside reacts or takes one back.
    for token in [&t.erin, &t.svc] {
        for method in [Method::PUT, Method::DELETE] {
            let reply = s.call(method, thumbs, token, None).await;
            refused(&reply, 403, "not_member");
        }
    }
    let reply = s.call(Method::PUT, thumbs, &t.evil, None).await;
    refused(&reply, 404, "not_found");
    let reply = s
        .call(
            Method::PUT,
            "/v1/conversations/g/messages/m1/reactions/a%7Cb",
            &t.bob,
            None,
        )
        .await;
    refused(&reply, 422, "invalid_format");
    assert_eq!(
        s.message(&t.alice, "m1").await["reactions"]["👍"],
        json!(reactions)
    );
    // Taken back, twice: the second finds nothing to take.
    for _ in 0..2 {
        let reply = s.call(Method::DELETE, thumbs, &t.bob, None).await;
        expect(&reply, 204);
    }
    assert_eq!(s.message(&t.alice, "m1").await["reactions"], json!({}));
    // Reactions off: refused as on the wire.
    let off = s
        .call(
            Method::PATCH,
            "/v1/conversations/g/settings",
            &t.alice,
            Some(json!({"allow_reactions": false})),
        )
        .await;
    expect(&off, 200);
    let reply = s.call(Method::PUT, thumbs, &t.bob, None).await;
    refused(&reply, 403, "reactions_disabled");
}

async fn pins(s: &Server, t: &Tokens) {
    let pin = "/v1/conversations/g/pins/m1";
    // Unpinning what is not pinned changes nothing, and is still refused to those who may
    // not unpin.
    for (token, code) in [(&t.bob, "no_permission"), (&t.erin, "not_member")] {
        for method in [Method::PUT, Method::DELETE] {
            let reply = s.call(method, pin, token, None).await;
            refused(&reply, 403, code);
        }
    }
    assert!(s.pins().await.is_empty());
    for _ in 0..2 {
        let reply = s.call(Method::PUT, pin, &t.dave, None).await;
        expect(&reply, 204);
    }
    assert_eq!(s.pins().await, vec!["m1"]);
    let reply = s.call(Method::DELETE, pin, &t.bob, None).await;
    refused(&reply, 403, "no_permission");
    let reply = s
        .call(Method::PUT, "/v1/conversations/g/pins/nope", &t.alice, None)
        .await;
    refused(&reply, 404, "not_found");
    for _ in 0..2 {
        let reply = s.call(Method::DELETE, pin, &t.alice, None).await;
        expect(&reply, 204);
    }
    assert!(s.pins().await.is_empty());
}

async fn deletions(s: &Server, t: &Tokens) {
    let m1 = "/v1/conversations/g/messages/m1";
    for (token, status, code) in [
        (&t.bob, 403, "not_author"),
        (&t.erin, 403, "not_member"),
        (&t.evil, 404, "not_found"),
    ] {
        let reply = s.call(Method::DELETE, m1, token, None).await;
        refused(&reply, status, code);
    }
    assert_eq!(s.message(&t.alice, "m1").await["deleted"], false);
    // The author deletes m1; a moderation service deletes m2 (it redacts for the tenant).
    let deleted = s.call(Method::DELETE, m1, &t.alice, None).await;
    let deleted = expect(&deleted, 200);
    assert_eq!(deleted["id"], "m1");
    assert!(deleted["deleted_at"].is_string(), "{deleted}");
    let by_bot = s
        .call(
            Method::DELETE,
            "/v1/conversations/g/messages/m2",
            &t.svc,
            None,
        )
        .await;
    expect(&by_bot, 200);
    for (id, by) in [("m1", "alice"), ("m2", "moderator-bot")] {
        let shown = s.message(&t.alice, id).await;
        assert_eq!(
            (&shown["deleted"], &shown["deleted_by"], &shown["body"]),
            (&json!(true), &json!(by), &json!("")),
            "{shown}"
        );
    }
    // What is deleted stays deleted.
    let reply = s.call(Method::DELETE, m1, &t.alice, None).await;
    refused(&reply, 403, "message_deleted");
    let reply = s
        .call(Method::PATCH, m1, &t.alice, Some(json!({"body": "back"})))
        .await;
    refused(&reply, 403, "message_deleted");
}

async fn scenario(s: Server) {
    let t = group(&s).await;
    edits(&s, &t).await;
    pins(&s, &t).await;
    reactions(&s, &t).await;
    deletions(&s, &t).await;
}

#[tokio::test]
async fn message_routes_on_sqlite() {
    scenario(Server::start().await).await;
}

#[tokio::test]
async fn message_routes_on_postgres() {
    on_fresh_postgres("rest_edits", |url| async move {
        scenario(Server::start_on(Some(&url)).await).await;
    })
    .await;
}
