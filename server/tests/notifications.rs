//! The notification feed (docs/NOTIFICATIONS.md) over REST on the production
//! router, on both backends: who is notified of mentions, replies, direct messages,
//! proposals and join requests (never the author, never a non-member), each member's
//! notification level and mute, the unread count, pages by cursor, marking read, a
//! removed member no longer seeing the conversation's notifications, a deleted message's
//! preview leaving the feed, nothing of a message of a deleted conversation kept whenever the
//! notifier gets to it, tenants kept apart, and the error codes.
//!
//! The feed is computed after the commit by a worker, so the tests wait for what must
//! appear; that something must *not* appear is checked once a later event (queued behind
//! it, the worker takes them in order) has appeared.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use std::time::Duration;

use confab_core::automerge::ScalarValue;
use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::policy::Author;
use confab_server::auth::Claims;
use confab_server::engine::{now_ms, SubmitOutcome};
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{on_fresh_postgres, Server, TENANT};

struct Answer {
    status: u16,
    body: Value,
}

impl Server {
    fn token_of(&self, tenant: &str, account: &str) -> String {
        self.auth
            .mint(&Claims {
                sub: account.into(),
                tenant: tenant.into(),
                exp: now_ms() / 1000 + 3600,
                kind: "user".into(),
            })
            .expect("mint")
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        Answer { status, body }
    }

    async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let a = self.call(method, path, token, body).await;
        assert!(
            a.status == 200 || a.status == 201 || a.status == 202,
            "{path}: {} {}",
            a.status,
            a.body
        );
        a.body
    }

    async fn post_message(&self, token: &str, conv: &str, body: Value) -> Value {
        let path = format!("/v1/conversations/{conv}/messages");
        self.ok(Method::POST, &path, token, Some(body)).await
    }

    async fn feed(&self, token: &str, query: &str) -> Value {
        let path = format!("/v1/notifications{query}");
        self.ok(Method::GET, &path, token, None).await
    }

    /// Waits until the newest notification of the feed is about `message` (the worker runs
    /// after the commit), and answers the first page.
    async fn feed_until(&self, token: &str, message: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let page = self.feed(token, "").await;
            if page["notifications"][0]["message"] == message {
                return page;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no notification of {message}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes one of `account`'s per-conversation settings into its private document, as
    /// its devices do.
    async fn set_pref(&self, account: &str, conv: &str, key: &'static str, value: ScalarValue) {
        let tenant = TenantId::new(TENANT).expect("tenant");
        let who = AccountId::new(account).expect("account");
        let conv = ConvId::new(conv).expect("conv");
        let outcome = self
            .engine
            .write(
                DocId::private(&tenant, &who),
                Author {
                    account: who.clone(),
                    service: false,
                    device: None,
                },
                Box::new(move |doc, tag| {
                    write::set_conv_pref(doc, tag, now_ms(), &conv, key, value)
                }),
            )
            .await;
        assert!(matches!(outcome, SubmitOutcome::Ack { .. }), "{outcome:?}");
    }
}

/// The page's addressed notifications (the coalesced `message` entries of the level
/// `all` left out: `message_entry` reads those).
fn kinds(page: &Value) -> Vec<(String, String)> {
    page["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["kind"] != "message")
        .map(|n| {
            (
                n["kind"].as_str().expect("kind").to_owned(),
                n["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The coalesced entry of `conv` on the page: (newest message, count, read).
fn message_entry(page: &Value, conv: &str) -> Option<(String, i64, bool)> {
    let entries: Vec<_> = page["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["kind"] == "message" && n["conversation"] == conv)
        .collect();
    assert!(
        entries.len() <= 1,
        "one coalesced entry per conversation: {page}"
    );
    entries.first().map(|n| {
        assert_eq!(n["preview"], "", "a coalesced entry carries no text");
        (
            n["message"].as_str().expect("message").to_owned(),
            n["count"].as_i64().expect("count"),
            n["read"].as_bool().expect("read"),
        )
    })
}

fn pair(kind: &str, message: &str) -> (String, String) {
    (kind.to_owned(), message.to_owned())
}

async fn notifications(s: Server) {
    let alice = s.token_of(TENANT, "alice");
    let bob = s.token_of(TENANT, "bob");
    let carol = s.token_of(TENANT, "carol");
    let dave = s.token_of(TENANT, "dave");
    let erin = s.token_of(TENANT, "erin");
    let bob_elsewhere = s.token_of("globex", "bob");

    s.ok(
        Method::POST,
        "/v1/conversations",
        &alice,
        Some(json!({"kind": "group", "id": "team", "title": "Team",
            "settings": {"join_policy": "open", "join_approval_required": true},
            "members": [{"account": "bob"}, {"account": "carol"}, {"account": "dave"}]})),
    )
    .await;

    // A mention: the mentioned member only; not the author, not a non-member.
    s.post_message(
        &alice,
        "team",
        json!({"id": "m1", "body": "hello @bob", "mentions": ["bob", "alice", "eve"]}),
    )
    .await;
    let page = s.feed_until(&bob, "m1").await;
    let first = &page["notifications"][0];
    assert_eq!(first["kind"], "mention");
    assert_eq!(first["conversation"], "team");
    assert_eq!(first["from"], "alice");
    assert_eq!(first["preview"], "hello @bob");
    assert_eq!(first["read"], false);
    assert_eq!(page["unread"], 1);

    // A reply: the replied message's author; the mention-only members hear nothing.
    s.post_message(
        &bob,
        "team",
        json!({"id": "m2", "body": "hi!", "reply_to": "m1"}),
    )
    .await;
    let page = s.feed_until(&alice, "m2").await;
    assert_eq!(
        kinds(&page),
        [pair("reply", "m2")],
        "alice was not notified of her own m1"
    );

    // Levels and mutes: carol wants nothing from team, dave muted it (mentions still
    // reach him), bob only mentions.
    s.set_pref(
        "carol",
        "team",
        "notifications",
        ScalarValue::Str("none".into()),
    )
    .await;
    s.set_pref(
        "dave",
        "team",
        "muted_until",
        ScalarValue::Int(now_ms() + 3_600_000),
    )
    .await;
    s.post_message(
        &alice,
        "team",
        json!({"id": "m3", "body": "all of you", "mentions": ["carol", "dave"]}),
    )
    .await;
    let page = s.feed_until(&dave, "m3").await;
    assert_eq!(kinds(&page), [pair("mention", "m3")]);
    // Before the mute, m1 and m2 reached dave at the level `all`: one entry, count 2.
    assert_eq!(message_entry(&page, "team"), Some(("m2".into(), 2, false)));

    // A direct conversation: every message notifies the other member, unless muted.
    let direct = s
        .ok(
            Method::POST,
            "/v1/conversations/direct",
            &alice,
            Some(json!({"peer": "carol"})),
        )
        .await;
    let dm = direct["id"].as_str().expect("direct id").to_owned();
    s.post_message(&alice, &dm, json!({"id": "d1", "body": "psst"}))
        .await;
    let page = s.feed_until(&carol, "d1").await;
    // m3 never reached carol (level none), though it was computed before d1; m1 and m2
    // did, before she chose none.
    assert_eq!(kinds(&page), [pair("direct", "d1")]);
    assert_eq!(message_entry(&page, "team"), Some(("m2".into(), 2, false)));
    s.set_pref("carol", &dm, "muted", ScalarValue::Boolean(true))
        .await;
    s.post_message(&alice, &dm, json!({"id": "d2", "body": "still there?"}))
        .await;
    s.post_message(
        &alice,
        &dm,
        json!({"id": "d3", "body": "@carol!", "mentions": ["carol"]}),
    )
    .await;
    let page = s.feed_until(&carol, "d3").await;
    assert_eq!(
        kinds(&page),
        [pair("mention", "d3"), pair("direct", "d1")],
        "the muted direct d2 did not notify"
    );

    // A join request: the owner hears of it.
    let asked = s
        .call(
            Method::POST,
            "/v1/conversations/team/join-requests",
            &erin,
            Some(json!({})),
        )
        .await;
    assert_eq!(asked.status, 202, "ask: {}", asked.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let request = loop {
        let page = s.feed(&alice, "").await;
        if page["notifications"][0]["kind"] == "join_request" {
            break page["notifications"][0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no join request: {page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(request["from"], "erin");
    assert_eq!(request["conversation"], "team");
    assert_eq!(request["message"], Value::Null);

    // Pages by cursor, newest first; the unread count; marking read.
    for i in 0..4 {
        s.post_message(
            &alice,
            "team",
            json!({"id": format!("p{i}"), "body": format!("ping {i}"), "mentions": ["bob"]}),
        )
        .await;
    }
    let page = s.feed_until(&bob, "p3").await;
    // The four pings, m1, and the coalesced entry of m3 (it mentioned others).
    assert_eq!(page["unread"], 6);
    assert_eq!(message_entry(&page, "team"), Some(("m3".into(), 1, false)));
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = s.feed(&bob, &query).await;
        let got = kinds(&page);
        assert!((1..=2).contains(&got.len()), "{page}");
        seen.extend(got.into_iter().map(|(_, m)| m));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["p3", "p2", "p1", "p0", "m1"]);
    let page = s.feed(&bob, "").await;
    let p1 = page["notifications"][2]["id"].as_i64().expect("id");
    let marked = s
        .ok(
            Method::POST,
            "/v1/notifications/read",
            &bob,
            Some(json!({"up_to": p1})),
        )
        .await;
    assert_eq!(marked, json!({"marked": 4, "unread": 2}));
    let unread = s.feed(&bob, "?unread=true").await;
    assert_eq!(
        kinds(&unread),
        [pair("mention", "p3"), pair("mention", "p2")]
    );
    assert_eq!(s.feed(&bob, "").await["notifications"][4]["read"], true);
    let all = s
        .ok(
            Method::POST,
            "/v1/notifications/read",
            &bob,
            Some(json!({})),
        )
        .await;
    assert_eq!(all, json!({"marked": 2, "unread": 0}));

    // Another tenant's bob sees nothing of acme's.
    let other = s.feed(&bob_elsewhere, "").await;
    assert_eq!(other["notifications"], json!([]));
    assert_eq!(other["unread"], 0);

    // A deleted message's text leaves the feed.
    let posted = s
        .post_message(
            &alice,
            "team",
            json!({"id": "gone", "body": "secret plan", "mentions": ["bob"]}),
        )
        .await;
    s.feed_until(&bob, "gone").await;
    let bucket = DocId::parse(posted["doc"].as_str().expect("doc")).expect("doc id");
    let alice_id = AccountId::new("alice").expect("account");
    let by = alice_id.clone();
    let gone = MessageId::new("gone").expect("message id");
    let outcome = s
        .engine
        .write(
            bucket,
            Author {
                account: alice_id,
                service: false,
                device: None,
            },
            Box::new(move |doc, tag| write::delete_message(doc, tag, now_ms(), &gone, &by)),
        )
        .await;
    assert!(matches!(outcome, SubmitOutcome::Ack { .. }), "{outcome:?}");
    // Deletion is queued before this mention; once it shows, the deletion was carried out.
    s.post_message(
        &alice,
        "team",
        json!({"id": "after", "body": "x", "mentions": ["bob"]}),
    )
    .await;
    let page = s.feed_until(&bob, "after").await;
    assert_eq!(page["notifications"][1]["message"], "gone");
    assert_eq!(page["notifications"][1]["preview"], "");

    // A removed member no longer sees the conversation's notifications, nor counts them.
    s.ok(
        Method::DELETE,
        "/v1/conversations/team/members/bob",
        &alice,
        None,
    )
    .await;
    let page = s.feed(&bob, "").await;
    assert_eq!(page["notifications"], json!([]), "{page}");
    assert_eq!(page["unread"], 0);
    // And is not notified of what follows.
    s.post_message(
        &alice,
        "team",
        json!({"id": "late", "body": "bob?", "mentions": ["bob", "dave"]}),
    )
    .await;
    s.feed_until(&dave, "late").await;
    assert_eq!(s.feed(&bob, "").await["notifications"], json!([]));

    // Bad input: a clear code, nothing changed.
    for (query, code) in [
        ("?cursor=abc", "invalid_value"),
        ("?cursor=0", "invalid_value"),
        ("?limit=0", "out_of_range"),
        ("?limit=101", "out_of_range"),
        ("?unread=perhaps", "invalid_value"),
    ] {
        let a = s
            .call(
                Method::GET,
                &format!("/v1/notifications{query}"),
                &dave,
                None,
            )
            .await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (422, Some(code)),
            "{query}"
        );
    }
    for (body, code) in [
        (json!({"up_to": 0}), "out_of_range"),
        (json!({"up_to": "x"}), "wrong_type"),
        (json!({"all": true}), "unknown_key"),
    ] {
        let a = s
            .call(
                Method::POST,
                "/v1/notifications/read",
                &dave,
                Some(body.clone()),
            )
            .await;
        assert_eq!(a.status, 422, "{body}: {}", a.body);
        assert_eq!(a.body["code"], code, "{body}: {}", a.body);
    }
    // m3 and late, and the entry of m1 and m2 (muted since).
    assert_eq!(s.feed(&dave, "").await["unread"], 3);
    let anonymous = s
        .http
        .get(format!("{}/v1/notifications", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
}

/// A proposal in a support thread notifies its other members as `proposal`.
async fn proposals(s: Server) {
    let carl = s.token_of(TENANT, "carl");
    let olivia = s.token_of(TENANT, "olivia");
    let thread = s
        .ok(
            Method::POST,
            "/v1/conversations/support",
            &carl,
            Some(json!({"client": "carl", "resource": "room-12", "owner": "olivia"})),
        )
        .await;
    let id = thread["id"].as_str().expect("id").to_owned();
    let payload = json!({
        "proposalType": "visit",
        "timeStart": "2099-04-15T16:00:00.000Z",
        "timeEnd": "2099-04-15T16:30:00.000Z",
        "timezone": "America/Mexico_City",
        "meetingType": "on_site",
        "location": "Address or call link",
        "fromResourceAddress": true,
        "status": "pending",
        "expiresAt": "2099-04-14T00:00:00.000Z",
        "createdByRole": "owner"
    });
    s.post_message(&carl, &id, json!({"id": "ask", "body": "Can I visit?"}))
        .await;
    s.post_message(
        &olivia,
        &id,
        json!({"id": "p1", "kind": "proposal", "body": "April 15?", "payload": payload}),
    )
    .await;
    let page = s.feed_until(&carl, "p1").await;
    assert_eq!(
        kinds(&page),
        [pair("proposal", "p1")],
        "a plain support message notifies nobody"
    );
    assert_eq!(page["notifications"][0]["from"], "olivia");
}

#[tokio::test]
async fn feed_on_sqlite() {
    notifications(Server::start_on(None).await).await;
}

#[tokio::test]
async fn proposals_on_sqlite() {
    proposals(Server::start_on(None).await).await;
}

#[tokio::test]
async fn feed_on_postgres() {
    on_fresh_postgres("confab_notifications", move |url: String| async move {
        notifications(Server::start_on(Some(&url)).await).await
    })
    .await;
}

#[tokio::test]
async fn proposals_on_postgres() {
    on_fresh_postgres(
        "confab_notifications_proposals",
        move |url: String| async move { proposals(Server::start_on(Some(&url)).await).await },
    )
    .await;
}

/// How the notifier's write for a message is ordered against its conversation's deletion.
enum Order {
    /// Not forced: the message and the deletion are committed one after the other, the
    /// notifier runs whenever it does.
    Any,
    /// Postgres: the notifier is held on an earlier event (an uncommitted row with the key
    /// of its write, on this connection) until the deletion has committed, so it computes
    /// the message's notification after the deletion.
    DeletionFirst(sqlx::PgConnection),
}

/// Counts the stored notifications whose preview holds `text`, straight from the table.
async fn stored_with(s: &Server, url: Option<&str>, text: &str) -> i64 {
    use sqlx::Connection;
    let sql = "SELECT COUNT(*) FROM notifications WHERE preview LIKE '%' || $1 || '%'";
    match url {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query_scalar(sql)
                .bind(text)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(s.sqlite_path());
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("open");
            sqlx::query_scalar(sql)
                .bind(text)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
    }
}

/// A message mentioning bob and its conversation's deletion: whenever the notifier gets
/// to the message, bob's feed (REST) and the notifications table keep nothing of its text;
/// when it gets to it after the deletion, nothing of it at all.
async fn deleted_conversation(s: Server, url: Option<&str>, order: Order) {
    const MARKER: &str = "marker-7f3a";
    let alice = s.token_of(TENANT, "alice");
    let bob = s.token_of(TENANT, "bob");
    for conv in ["lobby", "room"] {
        s.ok(
            Method::POST,
            "/v1/conversations",
            &alice,
            Some(json!({"kind": "group", "id": conv, "members": [{"account": "bob"}]})),
        )
        .await;
    }
    let mut held = None;
    if let Order::DeletionFirst(mut conn) = order {
        use sqlx::Executor;
        conn.execute("BEGIN").await.expect("begin");
        sqlx::query(
            "INSERT INTO notifications (tenant, account, kind, conv, source, message, actor, \
             preview, created_at) VALUES ($1, 'bob', 'mention', 'lobby', 'hold', 'hold', \
             'alice', '', 0)",
        )
        .bind(TENANT)
        .execute(&mut conn)
        .await
        .expect("hold the key");
        s.post_message(
            &alice,
            "lobby",
            json!({"id": "hold", "body": "wait", "mentions": ["bob"]}),
        )
        .await;
        // The notifier's write of `hold` waits for this transaction.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'transactionid' \
                 AND NOT granted AND database IS NULL AND pid IN (SELECT pid \
                 FROM pg_stat_activity WHERE datname = current_database())",
            )
            .fetch_one(&mut conn)
            .await
            .expect("locks");
            if waiting > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the notifier never waited"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        held = Some(conn);
    }
    s.post_message(
        &alice,
        "room",
        json!({"id": "secret", "body": format!("the {MARKER} plan"), "mentions": ["bob"]}),
    )
    .await;
    s.ok(Method::DELETE, "/v1/conversations/room", &alice, None)
        .await;
    let forced = held.is_some();
    if let Some(mut conn) = held {
        use sqlx::Executor;
        conn.execute("ROLLBACK")
            .await
            .expect("release the notifier");
    }
    // Events are taken in order: once `after` shows, `secret` was computed.
    s.post_message(
        &alice,
        "lobby",
        json!({"id": "after", "body": "x", "mentions": ["bob"]}),
    )
    .await;
    let page = s.feed_until(&bob, "after").await;
    let notes = page["notifications"].as_array().expect("notifications");
    assert!(
        notes
            .iter()
            .all(|n| !n["preview"].as_str().unwrap_or_default().contains(MARKER)),
        "{page}"
    );
    if forced {
        assert!(
            notes.iter().all(|n| n["message"] != "secret"),
            "notified after the deletion: {page}"
        );
        assert_eq!(
            kinds(&page),
            [pair("mention", "after"), pair("mention", "hold")]
        );
    }
    assert_eq!(stored_with(&s, url, MARKER).await, 0);
}

#[tokio::test]
async fn deleted_conversation_on_sqlite() {
    deleted_conversation(Server::start_on(None).await, None, Order::Any).await;
}

#[tokio::test]
async fn deleted_conversation_on_postgres() {
    on_fresh_postgres(
        "confab_notifications_deleted",
        move |url: String| async move {
            deleted_conversation(Server::start_on(Some(&url)).await, Some(&url), Order::Any).await
        },
    )
    .await;
}

#[tokio::test]
async fn deleted_before_the_notifier_on_postgres() {
    on_fresh_postgres(
        "confab_notifications_deleted_first",
        move |url: String| async move {
            use sqlx::Connection;
            let server = Server::start_on(Some(&url)).await;
            let conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            deleted_conversation(server, Some(&url), Order::DeletionFirst(conn)).await
        },
    )
    .await;
}

/// A group of 1,000 at the level `all`: 20 posts that address nobody make one entry per
/// other member with count 20 (coalesced), none for the author; a post that mentions one
/// member gives it a mention and adds nothing to its count (docs/NOTIFICATIONS.md).
#[tokio::test]
async fn a_big_group_coalesces_its_posts_per_member() {
    let s = Server::start_on(None).await;
    let owner = s.token_of(TENANT, "owner");
    let members: Vec<Value> = (0..999)
        .map(|i| json!({"account": format!("member{i}")}))
        .collect();
    s.ok(
        Method::POST,
        "/v1/conversations",
        &owner,
        Some(json!({"kind": "group", "id": "crowd", "title": "Crowd", "members": members})),
    )
    .await;
    for i in 0..20 {
        s.post_message(
            &owner,
            "crowd",
            json!({"id": format!("plain{i}"), "body": "hello all"}),
        )
        .await;
    }
    s.post_message(
        &owner,
        "crowd",
        json!({"id": "one", "body": "@member998", "mentions": ["member998"]}),
    )
    .await;
    // Each member's page, once its entry counts `at_least` messages and it holds
    // `mentions` mention entries: the notifier projects the posts one by one, so a count
    // of 20 can be seen before the mention that follows it.
    let entry = async |m: &str, at_least: i64, mentions: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let page = s.feed(&s.token_of(TENANT, m), "").await;
            if message_entry(&page, "crowd").is_some_and(|(_, n, _)| n >= at_least)
                && kinds(&page).len() >= mentions
            {
                break page;
            }
            assert!(std::time::Instant::now() < deadline, "{m}: {page}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let page = entry("member998", 20, 1).await;
    assert_eq!(kinds(&page), [pair("mention", "one")]);
    assert_eq!(
        message_entry(&page, "crowd"),
        Some(("plain19".into(), 20, false)),
        "the mention is not counted again"
    );
    // The others count the mention too, in the one entry.
    for m in ["member0", "member500", "member997"] {
        let page = entry(m, 21, 0).await;
        assert_eq!(
            message_entry(&page, "crowd"),
            Some(("one".into(), 21, false)),
            "{m}: {page}"
        );
        assert_eq!(page["unread"], 1, "{m}");
    }
    assert_eq!(s.feed(&owner, "").await["notifications"], json!([]));
}

/// Every row of the notifier's tables (streams, marks, feed rows), as text: what two
/// snapshots differ by is what was written between them, however often.
async fn notifier_rows(s: &Server, url: Option<&str>) -> std::collections::BTreeSet<String> {
    use sqlx::Connection;
    let sql = "SELECT 'stream ' || tenant || ' ' || conv || ' ' || CAST(id AS TEXT) || ' ' \
               || CAST(n AS TEXT) AS r FROM notify_streams \
               UNION ALL SELECT 'mark ' || tenant || ' ' || account || ' ' || conv || ' ' \
               || CAST(n_mark AS TEXT) || ' ' || CAST(skip AS TEXT) || ' ' \
               || CAST(skip_n AS TEXT) || ' ' || COALESCE(CAST(alt_id AS TEXT), '') \
               FROM notify_marks \
               UNION ALL SELECT 'row ' || CAST(id AS TEXT) || ' ' || CAST(count AS TEXT) \
               FROM notifications";
    let rows: Vec<String> = match url {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query_scalar(sql)
                .fetch_all(&mut conn)
                .await
                .expect("rows")
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(s.sqlite_path());
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("open");
            sqlx::query_scalar(sql)
                .fetch_all(&mut conn)
                .await
                .expect("rows")
        }
    };
    rows.into_iter().collect()
}

/// A group of `members` (an owner and the rest) at the level `all`, one post seen by its
/// last member, then five more: the notifier rows those five wrote (added or changed),
/// once the last member's entry counts all six.
async fn rows_for_five_posts(s: &Server, url: Option<&str>, conv: &str, members: usize) -> usize {
    let owner = s.token_of(TENANT, "owner");
    let list: Vec<Value> = (1..members)
        .map(|i| json!({"account": format!("{conv}m{i}")}))
        .collect();
    s.ok(
        Method::POST,
        "/v1/conversations",
        &owner,
        Some(json!({"kind": "group", "id": conv, "title": conv, "members": list})),
    )
    .await;
    let last = s.token_of(TENANT, &format!("{conv}m{}", members - 1));
    let counted = async |n: i64, message: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let page = s.feed(&last, "").await;
            if message_entry(&page, conv) == Some((message.to_owned(), n, false)) {
                assert_eq!(page["unread"], 1, "{page}");
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{conv}: {page}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    s.post_message(
        &owner,
        conv,
        json!({"id": format!("{conv}-0"), "body": "hi"}),
    )
    .await;
    counted(1, &format!("{conv}-0")).await;
    let before = notifier_rows(s, url).await;
    for i in 1..=5 {
        s.post_message(
            &owner,
            conv,
            json!({"id": format!("{conv}-{i}"), "body": "hi"}),
        )
        .await;
    }
    counted(6, &format!("{conv}-5")).await;
    let after = notifier_rows(s, url).await;
    // Every other member is told too, from the same rows.
    let first = s.token_of(TENANT, &format!("{conv}m1"));
    let page = s.feed(&first, "").await;
    assert_eq!(
        message_entry(&page, conv),
        Some((format!("{conv}-5"), 6, false))
    );
    after.difference(&before).count()
}

/// The level `all` costs O(1) rows per message, not O(members) (docs/NOTIFICATIONS.md,
/// "When and at what cost"): five posts write the same rows in a group of 2 as in one of
/// 300, the conversation's stream and the author's mark, and no row per member.
async fn constant_rows_per_post(s: Server, url: Option<&str>) {
    let small = rows_for_five_posts(&s, url, "pair", 2).await;
    let large = rows_for_five_posts(&s, url, "crowd", 300).await;
    assert_eq!((small, large), (2, 2), "rows written by five posts");
}

#[tokio::test]
async fn constant_rows_per_post_on_sqlite() {
    constant_rows_per_post(Server::start_on(None).await, None).await;
}

#[tokio::test]
async fn constant_rows_per_post_on_postgres() {
    on_fresh_postgres("confab_notify_o1", move |url: String| async move {
        constant_rows_per_post(Server::start_on(Some(&url)).await, Some(&url)).await
    })
    .await;
}
