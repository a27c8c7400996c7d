//! Search (`GET /v1/search`, docs/SEARCH.md) over REST on the production router and engine,
//! on both backends: a seeded run of joins, leaves, removals, bans, posts, edits, deletions
//! and threads in 3 tenants (about 20 conversations, 5 accounts each) checked against a
//! model of who may read what (every result readable, every readable match found, pages
//! by cursor); the refusals and safe answers of hostile queries; a service token's scope;
//! and on Postgres a second node on the same database answering the same. Then the backfill
//! (docs/SEARCH.md, "Backfill"): every entry removed, as a server from before the index
//! left its rows, the walk indexes them again (on Postgres two nodes walking at once, one of
//! them started on the bare rows) and the same model holds.
//!
//! Postgres: a fresh database on 127.0.0.1:5432 (user `postgres`, trust auth), dropped
//! afterwards; the test FAILS if Postgres is unreachable, it never skips.

use std::collections::{BTreeMap, BTreeSet};

use confab_core::doc::write;
use confab_core::ids::{AccountId, DocId};
use confab_core::model::conversation::MemberStatus;
use confab_core::policy::Author;
use confab_core::search::{terms, Query};
use confab_server::engine::{now_ms, SubmitOutcome};
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{on_fresh_postgres, Reply, Server};

const TENANTS: [&str; 3] = ["t1", "t2", "t3"];
const ACCOUNTS: [&str; 5] = ["ann", "bob", "cyd", "dee", "eve"];
const WORDS: [&str; 8] = [
    "Café",
    "cafeteria",
    "naïve",
    "Zebra",
    "résumé",
    "alpha",
    "ALPHABET",
    "beta",
];
const QUERIES: [&str; 9] = [
    "cafe",
    "caf",
    "NAIVE",
    "zeb",
    "resume alpha",
    "alpha",
    "beta cafe",
    "a",
    "zebra naive",
];

fn token(s: &Server, tenant: &str, account: &str, kind: &str) -> String {
    s.tenant_token(tenant, account, kind)
}

async fn call(s: &Server, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    s.request(method, path, token, body).await
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every result of a search over all its pages (`limit` per page), as (conversation, id).
async fn search_all(s: &Server, token: &str, query: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/search?limit=3&q={query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        let a = call(s, Method::GET, &path, token, None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let mut last_time = None;
        for r in a.body["results"].as_array().expect("results") {
            assert_eq!(r["source"], "server");
            let at = r["message"]["created_at"]
                .as_str()
                .expect("time")
                .to_owned();
            if let Some(prev) = &last_time {
                assert!(at <= *prev, "newest first: {at} after {prev}");
            }
            last_time = Some(at);
            let key = (
                r["conversation"].as_str().expect("conv").to_owned(),
                r["message"]["id"].as_str().expect("id").to_owned(),
            );
            assert!(out.insert(key.clone()), "{key:?} on two pages");
        }
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("more than 100 pages")
}

/// A tiny deterministic generator (the run is the same every time).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[derive(Debug, Clone)]
struct Msg {
    author: String,
    doc: String,
    body: String,
    deleted: bool,
}

#[derive(Debug, Default)]
struct Conv {
    owner: String,
    parent: Option<String>,
    members: BTreeMap<String, MemberStatus>,
    messages: BTreeMap<String, Msg>,
}

impl Conv {
    fn active(&self, account: &str) -> bool {
        self.members.get(account) == Some(&MemberStatus::Active)
    }
}

/// Who may read what, and which messages match.
#[derive(Default)]
struct Model {
    convs: BTreeMap<(String, String), Conv>,
}

impl Model {
    fn may_read(&self, tenant: &str, conv: &str, account: &str) -> bool {
        let mut at = conv.to_owned();
        loop {
            let Some(c) = self.convs.get(&(tenant.to_owned(), at.clone())) else {
                return false;
            };
            if !c.active(account) {
                return false;
            }
            match &c.parent {
                Some(p) => at = p.clone(),
                None => return true,
            }
        }
    }

    fn expected(&self, tenant: &str, account: &str, query: &str) -> BTreeSet<(String, String)> {
        let q = Query::parse(query).expect("query");
        let (last, rest) = q.terms.split_last().expect("terms");
        let mut out = BTreeSet::new();
        for ((t, conv), c) in &self.convs {
            if t != tenant || !self.may_read(tenant, conv, account) {
                continue;
            }
            for (id, m) in &c.messages {
                let words = terms(&m.body);
                let found = !m.deleted
                    && rest.iter().all(|r| words.contains(r))
                    && words.iter().any(|w| match q.last_is_prefix() {
                        true => w.starts_with(last.as_str()),
                        false => w == last,
                    });
                if found {
                    out.insert((conv.clone(), id.clone()));
                }
            }
        }
        out
    }

    /// A search that finds something: tenant, account, query.
    fn first_match(&self) -> Option<(&'static str, &'static str, &'static str)> {
        TENANTS.into_iter().find_map(|t| {
            ACCOUNTS.into_iter().find_map(|a| {
                QUERIES
                    .into_iter()
                    .find(|q| !self.expected(t, a, q).is_empty())
                    .map(|q| (t, a, q))
            })
        })
    }
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.next(from.len())]
}

fn body_of(rng: &mut Rng) -> String {
    let n = 1 + rng.next(3);
    (0..n)
        .map(|_| pick(rng, &WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn engine_write(
    s: &Server,
    doc: &str,
    account: &str,
    intent: confab_server::engine::IntentFn,
) -> bool {
    let author = Author {
        account: AccountId::new(account).expect("account"),
        service: false,
        device: None,
    };
    let doc = DocId::parse(doc).expect("doc");
    match s.engine.write(doc, author, intent).await {
        SubmitOutcome::Ack { .. } => true,
        other => {
            eprintln!("refused: {other:?}");
            false
        }
    }
}

/// The seeded run: conversations, then membership moves and messages, through REST and the
/// engine (bans, edits and deletions have no REST route), the model following each answer.
async fn run(s: &Server, seed: u64) -> Model {
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let mut n = 0;
    for tenant in TENANTS {
        for i in 0..7 {
            let owner = pick(&mut rng, &ACCOUNTS);
            let others: Vec<&str> = ACCOUNTS
                .iter()
                .copied()
                .filter(|a| *a != owner && rng.next(2) == 0)
                .collect();
            let id = format!("g{i}");
            let members: Vec<Value> = others.iter().map(|a| json!({"account": a})).collect();
            let a = call(
                s,
                Method::POST,
                "/v1/conversations",
                &token(s, tenant, owner, "user"),
                Some(json!({"kind": "group", "id": id, "members": members})),
            )
            .await;
            assert_eq!(a.status, 201, "create: {}", a.body);
            let mut conv = Conv {
                owner: owner.into(),
                ..Conv::default()
            };
            conv.members.insert(owner.into(), MemberStatus::Active);
            for o in others {
                conv.members.insert(o.into(), MemberStatus::Active);
            }
            model.convs.insert((tenant.into(), id), conv);
        }
    }
    for _ in 0..260 {
        let keys: Vec<(String, String)> = model.convs.keys().cloned().collect();
        let key = keys[rng.next(keys.len())].clone();
        let (tenant, conv_id) = (key.0.as_str(), key.1.as_str());
        let conv = &model.convs[&key];
        let active: Vec<String> = conv
            .members
            .iter()
            .filter(|(a, st)| **st == MemberStatus::Active && model.may_read(tenant, conv_id, a))
            .map(|(a, _)| a.clone())
            .collect();
        let owner = conv.owner.clone();
        let op = rng.next(10);
        match op {
            // Post (most of the time).
            0..=4 if !active.is_empty() => {
                let author = active[rng.next(active.len())].clone();
                n += 1;
                let id = format!("m{n}");
                let body = body_of(&mut rng);
                let a = call(
                    s,
                    Method::POST,
                    &format!("/v1/conversations/{conv_id}/messages"),
                    &token(s, tenant, &author, "user"),
                    Some(json!({"id": id, "body": body})),
                )
                .await;
                assert_eq!(a.status, 201, "post: {}", a.body);
                let doc = a.body["doc"].as_str().expect("doc").to_owned();
                let m = Msg {
                    author,
                    doc,
                    body,
                    deleted: false,
                };
                model
                    .convs
                    .get_mut(&key)
                    .expect("conv")
                    .messages
                    .insert(id, m);
            }
            // Add or re-add someone.
            5 => {
                let who = pick(&mut rng, &ACCOUNTS);
                if conv.active(who) || !conv.active(&owner) {
                    continue;
                }
                let a = call(
                    s,
                    Method::POST,
                    &format!("/v1/conversations/{conv_id}/members"),
                    &token(s, tenant, &owner, "user"),
                    Some(json!({"account": who})),
                )
                .await;
                if a.status == 200 || a.status == 201 {
                    let c = model.convs.get_mut(&key).expect("conv");
                    c.members.insert(who.into(), MemberStatus::Active);
                }
            }
            // Leave, removal or ban of a member who is not the owner.
            6 => {
                let Some(who) = active.iter().find(|a| **a != owner).cloned() else {
                    continue;
                };
                let status = match rng.next(3) {
                    // Leaving is one's own DELETE, removal the owner's.
                    n @ (0 | 1) => {
                        let (by, status) = if n == 0 {
                            (who.as_str(), MemberStatus::Left)
                        } else {
                            (owner.as_str(), MemberStatus::Removed)
                        };
                        let a = call(
                            s,
                            Method::DELETE,
                            &format!("/v1/conversations/{conv_id}/members/{who}"),
                            &token(s, tenant, by, "user"),
                            None,
                        )
                        .await;
                        (a.status == 200).then_some(status)
                    }
                    _ => {
                        let target = AccountId::new(who.as_str()).expect("account");
                        let doc = format!("{tenant}/conv/{conv_id}");
                        let at = now_ms();
                        let done = engine_write(
                            s,
                            &doc,
                            &owner,
                            Box::new(move |d, tag| {
                                write::set_member_status(d, tag, at, &target, MemberStatus::Banned)
                            }),
                        )
                        .await;
                        done.then_some(MemberStatus::Banned)
                    }
                };
                if let Some(status) = status {
                    let c = model.convs.get_mut(&key).expect("conv");
                    c.members.insert(who, status);
                }
            }
            // Delete or edit one's own message.
            7 | 8 => {
                let own: Vec<(String, Msg)> = conv
                    .messages
                    .iter()
                    .filter(|(_, m)| !m.deleted && active.contains(&m.author))
                    .map(|(id, m)| (id.clone(), m.clone()))
                    .collect();
                if own.is_empty() {
                    continue;
                }
                let (id, m) = own[rng.next(own.len())].clone();
                let message = confab_core::ids::MessageId::new(id.as_str()).expect("id");
                let at = now_ms();
                if op == 7 {
                    let by = confab_core::ids::AccountId::new(m.author.as_str()).expect("account");
                    let done = engine_write(
                        s,
                        &m.doc,
                        &m.author,
                        Box::new(move |d, tag| write::delete_message(d, tag, at, &message, &by)),
                    )
                    .await;
                    assert!(done, "delete {id}");
                    let c = model.convs.get_mut(&key).expect("conv");
                    c.messages.get_mut(&id).expect("message").deleted = true;
                } else {
                    let body = body_of(&mut rng);
                    if body == m.body {
                        // Nothing would change but the edit time: not an edit.
                        continue;
                    }
                    let text = body.clone();
                    let done = engine_write(
                        s,
                        &m.doc,
                        &m.author,
                        Box::new(move |d, tag| write::edit_body(d, tag, at, &message, &text)),
                    )
                    .await;
                    assert!(done, "edit {id}");
                    let c = model.convs.get_mut(&key).expect("conv");
                    c.messages.get_mut(&id).expect("message").body = body;
                }
            }
            // A thread on one of the group's messages, with another active member.
            9 if conv.parent.is_none() && active.len() >= 2 => {
                let Some((parent_message, _)) = conv.messages.iter().find(|(_, m)| !m.deleted)
                else {
                    continue;
                };
                n += 1;
                let id = format!("th{n}");
                let (creator, other) = (active[0].clone(), active[1].clone());
                let a = call(
                    s,
                    Method::POST,
                    "/v1/conversations",
                    &token(s, tenant, &creator, "user"),
                    Some(json!({"kind": "thread", "id": id, "parent": conv_id,
                        "parent_message": parent_message, "members": [{"account": other}]})),
                )
                .await;
                assert_eq!(a.status, 201, "thread: {}", a.body);
                let mut thread = Conv {
                    owner: creator.clone(),
                    parent: Some(conv_id.to_owned()),
                    ..Conv::default()
                };
                thread.members.insert(creator, MemberStatus::Active);
                thread.members.insert(other, MemberStatus::Active);
                model.convs.insert((tenant.into(), id), thread);
            }
            _ => {}
        }
    }
    model
}

/// Every account of every tenant finds exactly what the model says, on every node.
async fn check(nodes: &[&Server], model: &Model) {
    let mut found_any = 0;
    for tenant in TENANTS {
        for account in ACCOUNTS {
            for query in QUERIES {
                let want = model.expected(tenant, account, query);
                found_any += want.len();
                for s in nodes {
                    let got =
                        search_all(s, &token(s, tenant, account, "user"), &encode(query)).await;
                    assert_eq!(got, want, "{tenant}/{account} searching {query:?}");
                    // A service token of the tenant, on the account's behalf: the same.
                    let as_service = search_all(
                        s,
                        &token(s, tenant, "svc", "service"),
                        &format!("{}&account={account}", encode(query)),
                    )
                    .await;
                    assert_eq!(as_service, want, "svc for {tenant}/{account}: {query:?}");
                }
            }
        }
    }
    assert!(
        found_any > 100,
        "the run finds too little to test: {found_any}"
    );
}

/// Hostile and malformed queries: typed refusals, or a literal search that leaks nothing.
/// `GET /v1/search?q=<query>`.
async fn ask(s: &Server, token: &str, query: &str) -> Reply {
    let path = format!("/v1/search?q={}", encode(query));
    call(s, Method::GET, &path, token, None).await
}

async fn attacks(s: &Server) {
    let ann = token(s, "t1", "ann", "user");
    let long = "a".repeat(10_000);
    for (query, code) in [
        (long.as_str(), "query_too_long"),
        ("\" * : ( ) ''", "query_empty"),
        ("a b c d e f g h i j k l m n o p q", "query_too_many_terms"),
    ] {
        let a = ask(s, &ann, query).await;
        assert_eq!(a.status, 422, "{}", a.body);
        assert_eq!(a.body["code"], code);
        assert_eq!(a.body["field"], "q");
    }
    for query in [
        "\"cafe\"",
        "caf*",
        "cafe NEAR zebra",
        "terms:cafe",
        "cafe OR zebra",
        "(cafe) AND (alpha)",
        "cafe & !zebra | beta",
        "'cafe':* | 'x'",
        "cafe\" OR \"\"",
        "NEAR(cafe alpha, 2)",
        "- cafe ^zebra",
    ] {
        let a = ask(s, &ann, query).await;
        assert_eq!(a.status, 200, "{query:?}: {}", a.body);
        for t in a.body["terms"].as_array().expect("terms") {
            let t = t.as_str().expect("term");
            assert!(
                t.chars().all(char::is_alphanumeric),
                "{query:?}: term {t:?}"
            );
        }
    }
    let cases = [
        ("/v1/search", &ann, 422, "invalid_value"),
        ("/v1/search?q=cafe&cursor=nope", &ann, 422, "invalid_value"),
        ("/v1/search?q=cafe&limit=0", &ann, 422, "out_of_range"),
        (
            "/v1/search?q=cafe&kind=nonsense",
            &ann,
            422,
            "invalid_value",
        ),
        (
            "/v1/search?q=cafe&since=yesterday",
            &ann,
            422,
            "invalid_format",
        ),
        ("/v1/search?q=cafe&account=bob", &ann, 403, "not_own_key"),
    ];
    for (path, tok, status, code) in cases {
        let a = call(s, Method::GET, path, tok, None).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (status, Some(code)),
            "{path}: {}",
            a.body
        );
    }
    let svc = token(s, "t1", "svc", "service");
    let a = call(s, Method::GET, "/v1/search?q=cafe", &svc, None).await;
    assert_eq!((a.status, a.body["code"].as_str()), (422, Some("missing")));
    let a = call(s, Method::GET, "/v1/search?q=cafe", "not-a-token", None).await;
    assert_eq!(a.status, 401);
}

/// Filters: conversation, author, kind, attachments and dates narrow what the model finds.
async fn filters(s: &Server, model: &Model) {
    let (key, conv) = model
        .convs
        .iter()
        .find(|((t, _), c)| t == "t1" && c.active(&c.owner) && c.messages.len() > 2)
        .expect("a conversation with messages");
    let owner = &conv.owner;
    let tok = token(s, "t1", owner, "user");
    let all = model.expected("t1", owner, "a");
    let in_conv: BTreeSet<_> = all.iter().filter(|(c, _)| *c == key.1).cloned().collect();
    let got = search_all(s, &tok, &format!("a&conversation={}", key.1)).await;
    assert_eq!(got, in_conv);
    let by_owner: BTreeSet<_> = all
        .iter()
        .filter(|(c, id)| model.convs[&("t1".to_owned(), c.clone())].messages[id].author == *owner)
        .cloned()
        .collect();
    assert_eq!(
        search_all(s, &tok, &format!("a&author={owner}")).await,
        by_owner
    );
    assert_eq!(search_all(s, &tok, "a&kind=text").await, all);
    assert!(search_all(s, &tok, "a&kind=image").await.is_empty());
    assert!(search_all(s, &tok, "a&has_attachment=true")
        .await
        .is_empty());
    assert!(search_all(s, &tok, "a&until=2001-01-01T00:00:00.000Z")
        .await
        .is_empty());
    assert_eq!(
        search_all(s, &tok, "a&since=2001-01-01T00:00:00.000Z").await,
        all
    );
}

async fn suite(nodes: &[&Server], seed: u64) -> Model {
    let model = run(nodes[0], seed).await;
    check(nodes, &model).await;
    filters(nodes[0], &model).await;
    attacks(nodes[0]).await;
    model
}

/// What a server from before the index left: every message row without terms, and the
/// backfill's marker at its start. Nothing is found then.
async fn forget_index(s: &Server, postgres: Option<&str>, model: &Model) {
    use sqlx::Executor;
    let sql = match postgres {
        Some(_) => "DELETE FROM message_search",
        None => {
            "INSERT INTO message_search (message_search) VALUES ('delete-all'); \
             DELETE FROM message_search_time; DELETE FROM search_forget; \
             DELETE FROM search_backlog"
        }
    };
    let reset = "UPDATE search_backfill SET cid = -1, pos = -1, done = FALSE";
    match postgres {
        Some(url) => {
            let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .expect("postgres");
            db.execute(sql).await.expect("forget");
            db.execute(reset).await.expect("reset");
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(s.sqlite_path())
                .busy_timeout(std::time::Duration::from_secs(10));
            let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
                .await
                .expect("sqlite");
            db.execute(sql).await.expect("forget");
            db.execute(reset).await.expect("reset");
        }
    }
    let (tenant, account, query) = model.first_match().expect("the run finds something");
    let got = search_all(s, &token(s, tenant, account, "user"), &encode(query)).await;
    assert!(got.is_empty(), "found without an index: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_follows_permissions_on_sqlite() {
    let s = Server::start().await;
    // Every entry in the search backlog (this server runs no indexer), then in FTS5.
    let model = suite(&[&s], 35).await;
    let moved = s.engine.index_search_backlog().await.expect("index");
    assert!(moved > 50, "{moved}");
    check(&[&s], &model).await;
    // Messages projected before the index: the backfill indexes them, deleted ones not,
    // edited ones by their text now.
    forget_index(&s, None, &model).await;
    let report = s.engine.backfill_search().await.expect("backfill");
    assert!(report.indexed > 50, "{report:?}");
    check(&[&s], &model).await;
    // Done: a second walk visits nothing.
    let again = s.engine.backfill_search().await.expect("backfill");
    assert_eq!(again.visited, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_follows_permissions_on_two_postgres_nodes() {
    on_fresh_postgres("search_rest", |url| async move {
        let a = Server::start_on(Some(&url)).await;
        let b = Server::start_on(Some(&url)).await;
        let model = suite(&[&a, &b], 36).await;
        // A node started on a database of messages without terms, next to a running one
        // (its units hold the buckets already): both walk at once, the result is one index.
        forget_index(&a, Some(&url), &model).await;
        let c = Server::start_on(Some(&url)).await;
        let (on_a, on_c) = tokio::join!(a.engine.backfill_search(), c.engine.backfill_search());
        let indexed = on_a.expect("backfill on a").indexed + on_c.expect("backfill on c").indexed;
        assert!(indexed > 50, "{indexed}");
        check(&[&b, &c], &model).await;
    })
    .await;
}
