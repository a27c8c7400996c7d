//! Discovery (`GET /v1/conversations/discover`, docs/POLICY.md "Joining") over REST on the
//! production router, on both backends: who finds what by scope and account kind (private
//! never, organization by the tenant's users, public by them and its service accounts,
//! nothing across tenants, deleted never), member counts that follow joins and leaves in
//! the same commit, a scope moved to private leaving the listing, title search, and pages
//! by cursor; and rows stored before the discovery migrations (Postgres 0014, SQLite 0009)
//! get their member counts from `memberships`, stay unlisted, and are projected from their
//! documents at start (`maintenance::project_discovery`) unless a commit did it first.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_server::auth::Claims;
use confab_server::engine::now_ms;
use confab_server::maintenance;
use confab_server::store::discovery::DiscoverQuery;
use confab_server::store::postgres::PgStore;
use confab_server::store::sqlite::SqliteStore;
use confab_server::store::Store;
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{on_fresh_postgres, Server, TENANT};

struct Answer {
    status: u16,
    body: Value,
}

impl Server {
    fn token(&self, tenant: &str, account: &str, kind: &str) -> String {
        self.auth
            .mint(&Claims {
                sub: account.into(),
                tenant: tenant.into(),
                exp: now_ms() / 1000 + 3600,
                kind: kind.into(),
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

    /// One page of the listing, 200 expected.
    async fn discover(&self, token: &str, query: &str) -> Value {
        let path = format!("/v1/conversations/discover{query}");
        let a = self.call(Method::GET, &path, token, None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.body
    }

    /// The ids of the first page (all there are, in these tests).
    async fn found(&self, token: &str, query: &str) -> Vec<String> {
        ids(&self.discover(token, query).await)
    }

    async fn entry(&self, token: &str, id: &str) -> Value {
        let page = self.discover(token, "").await;
        page["conversations"]
            .as_array()
            .expect("conversations")
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {page}"))
            .clone()
    }

    async fn create(&self, token: &str, body: Value) {
        let a = self
            .call(Method::POST, "/v1/conversations", token, Some(body))
            .await;
        assert_eq!(a.status, 201, "create: {}", a.body);
    }

    async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) {
        let a = self.call(method, path, token, body).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

/// An open group or channel (anyone of the tenant may join it) of `scope` (default private).
fn group(id: &str, kind: &str, title: &str, scope: Option<&str>) -> Value {
    let mut body = json!({"kind": kind, "id": id, "title": title,
        "description": format!("about {title}"), "settings": {"join_policy": "open"}});
    if let Some(scope) = scope {
        body["settings"]["scope"] = json!(scope);
    }
    body
}

async fn discovery(s: Server) {
    let alice = s.token(TENANT, "alice", "user");
    let bob = s.token(TENANT, "bob", "user");
    let service = s.token(TENANT, "robot", "service");
    let stranger = s.token("globex", "eve", "user");

    s.create(
        &alice,
        group("org-room", "group", "Org Room", Some("organization")),
    )
    .await;
    s.create(
        &alice,
        group("news", "channel", "Public News", Some("public")),
    )
    .await;
    s.create(&alice, group("secret", "group", "Secret News", None))
        .await;
    s.create(
        &alice,
        group("doomed", "group", "Doomed News", Some("public")),
    )
    .await;
    s.ok(Method::DELETE, "/v1/conversations/doomed", &alice, None)
        .await;
    // The same ids in another tenant, public: never seen from acme.
    let globex_owner = s.token("globex", "gina", "user");
    s.create(
        &globex_owner,
        group("elsewhere", "group", "Elsewhere", Some("public")),
    )
    .await;

    // Who sees what: users the organization and public ones, service accounts the public
    // ones, other tenants theirs only; private and deleted never.
    assert_eq!(s.found(&bob, "").await, ["news", "org-room"]);
    assert_eq!(s.found(&alice, "").await, ["news", "org-room"]);
    assert_eq!(s.found(&service, "").await, ["news"]);
    assert_eq!(s.found(&stranger, "").await, ["elsewhere"]);

    let news = s.entry(&bob, "news").await;
    assert_eq!(news["type"], "channel");
    assert_eq!(news["title"], "Public News");
    assert_eq!(news["description"], "about Public News");
    assert_eq!(news["scope"], "public");
    assert_eq!(news["member_count"], 1);
    assert_eq!(news["join"], "open");
    assert_eq!(news["is_member"], false);
    assert_eq!(news["membership_status"], Value::Null);
    assert_eq!(s.entry(&alice, "news").await["is_member"], true);

    // Counts follow joins and leaves, committed with them.
    s.ok(
        Method::POST,
        "/v1/conversations/news/members",
        &bob,
        Some(json!({"account": "bob"})),
    )
    .await;
    let news = s.entry(&bob, "news").await;
    assert_eq!(
        (news["member_count"].clone(), news["is_member"].clone()),
        (json!(2), json!(true))
    );
    assert_eq!(s.entry(&alice, "news").await["member_count"], 2);
    s.ok(
        Method::POST,
        "/v1/conversations/news/members",
        &alice,
        Some(json!({"account": "carol"})),
    )
    .await;
    assert_eq!(s.entry(&bob, "news").await["member_count"], 3);
    s.ok(
        Method::DELETE,
        "/v1/conversations/news/members/bob",
        &bob,
        None,
    )
    .await;
    s.ok(
        Method::DELETE,
        "/v1/conversations/news/members/carol",
        &alice,
        None,
    )
    .await;
    let news = s.entry(&bob, "news").await;
    assert_eq!(news["member_count"], 1);
    assert_eq!(news["is_member"], false);
    assert_eq!(news["membership_status"], "left");

    // A pending join request shows as the caller's status, and is not counted.
    s.ok(
        Method::PATCH,
        "/v1/conversations/org-room/settings",
        &alice,
        Some(json!({"join_approval_required": true})),
    )
    .await;
    let asked = s
        .call(
            Method::POST,
            "/v1/conversations/org-room/join-requests",
            &bob,
            Some(json!({})),
        )
        .await;
    assert_eq!(asked.status, 202, "ask: {}", asked.body);
    let room = s.entry(&bob, "org-room").await;
    assert_eq!(room["join"], "request");
    assert_eq!(room["membership_status"], "requested");
    assert_eq!(room["member_count"], 1);
    s.ok(
        Method::PATCH,
        "/v1/conversations/org-room/settings",
        &alice,
        Some(json!({"join_policy": "invite_only"})),
    )
    .await;
    assert_eq!(s.entry(&bob, "org-room").await["join"], "invite");

    // Title search: case-insensitive, a substring; never reaches private or deleted ones.
    assert_eq!(s.found(&bob, "?q=news").await, ["news"]);
    assert_eq!(s.found(&bob, "?q=PUBLIC%20n").await, ["news"]);
    assert_eq!(s.found(&bob, "?q=room").await, ["org-room"]);
    assert!(s.found(&bob, "?q=zzz").await.is_empty());
    assert!(s.found(&service, "?q=room").await.is_empty());

    // Pages by cursor: every discoverable conversation once, in id order.
    let mut expected = BTreeSet::from(["news".to_owned(), "org-room".to_owned()]);
    for i in 0..5 {
        let id = format!("pub-{i}");
        s.create(
            &alice,
            group(&id, "group", &format!("Room {i}"), Some("public")),
        )
        .await;
        expected.insert(id);
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = s.discover(&bob, &query).await;
        let page_ids = ids(&page);
        // Never an empty page: a cursor is only given when more follow.
        assert!((1..=2).contains(&page_ids.len()), "{page}");
        seen.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected.iter().cloned().collect::<Vec<_>>());
    let searched = s.discover(&bob, "?q=room&limit=3").await;
    assert_eq!(ids(&searched), ["org-room", "pub-0", "pub-1"]);
    let cursor = searched["next_cursor"]
        .as_str()
        .expect("a page with more after it has a cursor");
    let last = s
        .discover(&bob, &format!("?q=room&limit=3&cursor={cursor}"))
        .await;
    assert_eq!(ids(&last), ["pub-2", "pub-3", "pub-4"]);
    assert_eq!(
        last["next_cursor"],
        Value::Null,
        "a full last page says it is the last"
    );

    // A scope moved to private leaves the listing in the commit that moves it.
    s.ok(
        Method::PATCH,
        "/v1/conversations/news/settings",
        &alice,
        Some(json!({"scope": "private"})),
    )
    .await;
    assert!(!s.found(&bob, "").await.contains(&"news".to_owned()));
    assert!(s.found(&service, "?q=news").await.is_empty());
    // And organization hides it from service accounts only.
    s.ok(
        Method::PATCH,
        "/v1/conversations/pub-0/settings",
        &alice,
        Some(json!({"scope": "organization"})),
    )
    .await;
    assert!(s.found(&bob, "").await.contains(&"pub-0".to_owned()));
    assert!(!s.found(&service, "").await.contains(&"pub-0".to_owned()));

    // Bad input: clear codes.
    for (query, code) in [
        ("?limit=0", "out_of_range"),
        ("?limit=101", "out_of_range"),
        ("?limit=two", "invalid_value"),
        ("?cursor=a%2Fb", "invalid_value"),
    ] {
        let a = s
            .call(
                Method::GET,
                &format!("/v1/conversations/discover{query}"),
                &bob,
                None,
            )
            .await;
        assert_eq!(
            (a.status, a.body["code"].clone()),
            (422, json!(code)),
            "{query}: {}",
            a.body
        );
    }
    // `discover` is a route, not an id one can create.
    let a = s
        .call(
            Method::POST,
            "/v1/conversations",
            &alice,
            Some(group("discover", "group", "x", None)),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
}

/// Raw SQL on the server's database, beside it (to make rows look older).
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Rows as a server before discovery left them are projected at start from their
/// documents; one a commit projected since keeps that commit's values.
async fn older_rows_are_projected(s: Server, db: Db) {
    let alice = s.token(TENANT, "alice", "user");
    let bob = s.token(TENANT, "bob", "user");
    let service = s.token(TENANT, "robot", "service");
    s.create(
        &alice,
        group("legacy-pub", "group", "Legacy Pub", Some("public")),
    )
    .await;
    s.create(
        &alice,
        group("legacy-org", "group", "Legacy Org", Some("organization")),
    )
    .await;
    s.ok(
        Method::POST,
        "/v1/conversations/legacy-pub/members",
        &bob,
        Some(json!({"account": "bob"})),
    )
    .await;
    // What migrations 0014 / 0009 leave in rows written before them.
    db.exec(
        "UPDATE conversations SET scope = 'private', description = NULL, join_route = 'invite', \
         discovery_projected = FALSE WHERE conv IN ('legacy-pub', 'legacy-org')",
    )
    .await;
    assert!(s.found(&bob, "").await.is_empty());
    // A commit after the migration projects its row itself.
    s.ok(
        Method::PATCH,
        "/v1/conversations/legacy-org/settings",
        &alice,
        Some(json!({"scope": "public"})),
    )
    .await;
    assert_eq!(s.found(&service, "").await, ["legacy-org"]);

    let store = s.engine.store();
    assert_eq!(
        maintenance::project_discovery(store.as_ref())
            .await
            .expect("project"),
        1
    );
    assert_eq!(s.found(&service, "").await, ["legacy-org", "legacy-pub"]);
    let entry = s.entry(&alice, "legacy-pub").await;
    assert_eq!(entry["scope"], "public");
    assert_eq!(entry["description"], "about Legacy Pub");
    assert_eq!(entry["member_count"], 2);
    assert_eq!(entry["join"], "open");
    // Once done, nothing is left to do.
    assert_eq!(
        maintenance::project_discovery(store.as_ref())
            .await
            .expect("again"),
        0
    );
}

#[tokio::test]
async fn sqlite_discovery() {
    discovery(Server::start_on(None).await).await;
}

#[tokio::test]
async fn sqlite_older_rows_are_projected() {
    let s = Server::start_on(None).await;
    let path = s.blob_dir.parent().expect("data dir").join("confab.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("sqlite");
    older_rows_are_projected(s, Db::Sqlite(pool)).await;
}

#[tokio::test]
async fn postgres_older_rows_are_projected() {
    on_fresh_postgres("confab_discovery_older", move |url: String| async move {
        let s = Server::start_on(Some(&url)).await;
        let pool = sqlx::PgPool::connect(&url).await.expect("pg");
        older_rows_are_projected(s, Db::Postgres(pool)).await;
    })
    .await;
}

#[tokio::test]
async fn postgres_discovery() {
    on_fresh_postgres("confab_discovery", move |url: String| async move {
        discovery(Server::start_on(Some(&url)).await).await
    })
    .await;
}

/// The migrations of `folder` up to `last` (a server before discovery), copied to `to`.
async fn migrator_before(folder: &str, last: i64, to: &Path) -> sqlx::migrate::Migrator {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    std::fs::create_dir_all(to).expect("folder");
    for entry in std::fs::read_dir(&from).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        if name[..4].parse::<i64>().expect("version") <= last {
            std::fs::copy(&path, to.join(name)).expect("copy");
        }
    }
    sqlx::migrate::Migrator::new(to).await.expect("migrator")
}

/// Rows a server before discovery stored: a public-looking group (its scope is only in the
/// document) with two active members, one who left and one who asks.
const LEGACY_ROWS: &[&str] = &[
    "INSERT INTO conversations (tenant, conv, kind, title, lifecycle, created_at) \
     VALUES ('acme', 'old', 'group', 'Old', 'active', 1)",
    "INSERT INTO memberships (tenant, conv, account, role, status) VALUES \
     ('acme', 'old', 'alice', 'owner', 'active'), ('acme', 'old', 'bob', 'member', 'active'), \
     ('acme', 'old', 'carol', 'member', 'left'), ('acme', 'old', 'dave', 'member', 'requested')",
];

async fn legacy_rows_migrate(store: Arc<dyn Store>) {
    store.migrate().await.expect("migrate forward");
    let (t, old) = (
        TenantId::new(TENANT).expect("tenant"),
        ConvId::new("old").expect("conv"),
    );
    let row = store
        .conversation(&t, &old)
        .await
        .expect("read")
        .expect("the row stays");
    assert_eq!(row.active_members, 2);
    assert_eq!(
        (row.scope.as_str(), row.join_route.as_str()),
        ("private", "invite")
    );
    assert_eq!(row.description, None);
    let listed = store
        .discover(&DiscoverQuery {
            tenant: &t,
            account: &AccountId::new("erin").expect("account"),
            service: false,
            after: None,
            search: None,
            limit: 10,
        })
        .await
        .expect("discover");
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn sqlite_rows_before_discovery_get_their_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("confab.db");
    let migrator = migrator_before("sqlite", 8, &dir.path().join("old")).await;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("sqlite");
    migrator.run(&pool).await.expect("old migrations");
    for sql in LEGACY_ROWS {
        sqlx::query(sql).execute(&pool).await.expect("legacy rows");
    }
    pool.close().await;
    legacy_rows_migrate(Arc::new(SqliteStore::open(&path).await.expect("open"))).await;
}

#[tokio::test]
async fn postgres_rows_before_discovery_get_their_counts() {
    on_fresh_postgres("confab_discovery_legacy", move |url: String| async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let migrator = migrator_before("postgres", 13, &dir.path().join("old")).await;
        let pool = sqlx::PgPool::connect(&url).await.expect("pg");
        migrator.run(&pool).await.expect("old migrations");
        for sql in LEGACY_ROWS {
            sqlx::query(sql).execute(&pool).await.expect("legacy rows");
        }
        pool.close().await;
        legacy_rows_migrate(Arc::new(PgStore::connect(&url).await.expect("connect"))).await;
    })
    .await;
}
