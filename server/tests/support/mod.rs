//! The app in-process on the embedded SQLite store (or a given Postgres database), served on
//! a local port, for the suites that call REST over real HTTP (`rest.rs`, `openapi.rs`,
//! `discovery.rs`).

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use confab_core::protocol::Limits;
use confab_server::auth::{Authenticator, Claims};
use confab_server::blobs::Blobs;
use confab_server::budget::Budgets;
use confab_server::engine::{Engine, EngineConfig};
use confab_server::metrics::Metrics;
use confab_server::{app, maintenance, AppState};
use confab_testkit::pg::{self, Template};
use tokio::sync::watch;

pub const TENANT: &str = "acme";

/// Runs `test` on a database of its own (created, then dropped however the test ends),
/// given its URL; a panic inside is the test's failure.
#[allow(dead_code)]
pub async fn on_fresh_postgres<F, Fut>(label: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    pg::on_fresh_database(label, Template::Default, test).await;
}

/// A REST answer.
#[allow(dead_code)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

pub struct Server {
    pub base: String,
    pub auth: Arc<Authenticator>,
    pub http: reqwest::Client,
    /// The engine and attachment store the app runs on (attachments.rs sweeps them).
    #[allow(dead_code)]
    pub engine: Engine,
    #[allow(dead_code)]
    pub blobs: Arc<Blobs>,
    /// Where the attachment store keeps its files.
    #[allow(dead_code)]
    pub blob_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
}

impl Server {
    #[allow(dead_code)]
    pub async fn start() -> Server {
        Server::start_with_blobs(None, |_| {}).await
    }

    /// On the Postgres database at `database_url` (the embedded SQLite store without one).
    #[allow(dead_code)]
    pub async fn start_on(database_url: Option<&str>) -> Server {
        Server::start_full(database_url, None, |_| {}).await
    }

    /// With the attachment store in `blob_dir` (default: in the temp dir) and its limits
    /// set by `configure`.
    #[allow(dead_code)]
    pub async fn start_with_blobs(
        blob_dir: Option<std::path::PathBuf>,
        configure: impl FnOnce(&mut Blobs),
    ) -> Server {
        Server::start_full(None, blob_dir, configure).await
    }

    /// On the Postgres database at `database_url` (SQLite without one), posting push
    /// webhooks as `webhook` says.
    #[allow(dead_code)]
    pub async fn start_with_webhook(
        database_url: Option<&str>,
        webhook: confab_server::notify::webhook::WebhookConfig,
    ) -> Server {
        Server::start_full_with(database_url, None, |_| {}, Some(webhook)).await
    }

    async fn start_full(
        database_url: Option<&str>,
        blob_dir: Option<std::path::PathBuf>,
        configure: impl FnOnce(&mut Blobs),
    ) -> Server {
        Server::start_full_with(database_url, blob_dir, configure, None).await
    }

    async fn start_full_with(
        database_url: Option<&str>,
        blob_dir: Option<std::path::PathBuf>,
        configure: impl FnOnce(&mut Blobs),
        webhook: Option<confab_server::notify::webhook::WebhookConfig>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = maintenance::open_store(database_url, dir.path())
            .await
            .expect("store");
        let engine = Engine::new(store, Arc::new(Metrics::new()), EngineConfig::default());
        confab_server::notify::start(&engine, webhook).expect("notifier");
        let blob_dir = blob_dir.unwrap_or_else(|| dir.path().join("blobs"));
        let mut blobs = Blobs::local(&blob_dir, Default::default()).expect("blob store");
        configure(&mut blobs);
        let blobs = Arc::new(blobs);
        let auth = Arc::new(Authenticator::hs256(b"test-secret"));
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            engine: engine.clone(),
            auth: auth.clone(),
            limits: Limits::default(),
            budgets: Arc::new(Budgets::new(Default::default())),
            claims: Default::default(),
            max_connections: 100,
            push_backlog_bytes: 8 << 20,
            connections: Arc::new(AtomicUsize::new(0)),
            shutdown,
            demo: None,
            web_root: None,
            blobs: blobs.clone(),
            cors: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            axum::serve(listener, app(state)).await.expect("serve");
        });
        Server {
            base: format!("http://{addr}"),
            auth,
            http: reqwest::Client::new(),
            engine,
            blobs,
            blob_dir,
            _dir: dir,
            _shutdown: shutdown_tx,
        }
    }

    /// The SQLite database file the server runs on (when it is not on Postgres).
    #[allow(dead_code)]
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self._dir.path().join("confab.db")
    }

    /// A token of `kind` (`user` or `service`) for `account` of `tenant`, for an hour.
    #[allow(dead_code)]
    pub fn tenant_token(&self, tenant: &str, account: &str, kind: &str) -> String {
        self.auth
            .mint(&Claims {
                sub: account.into(),
                tenant: tenant.into(),
                exp: confab_server::engine::now_ms() / 1000 + 3600,
                kind: kind.into(),
            })
            .expect("mint")
    }

    /// One REST call: its status and its body (JSON, or the text as a JSON string).
    #[allow(dead_code)]
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
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
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Reply { status, body }
    }

    /// A token of `kind` (`user` or `service`) for `account`, expiring at `exp` (seconds).
    #[allow(dead_code)]
    pub fn mint(&self, account: &str, kind: &str, exp: i64) -> String {
        self.auth
            .mint(&Claims {
                sub: account.into(),
                tenant: TENANT.into(),
                exp,
                kind: kind.into(),
            })
            .expect("mint")
    }
}

/// The entry of `account` in a conversation body's `members`.
#[allow(dead_code)]
pub fn member<'a>(conv: &'a serde_json::Value, account: &str) -> &'a serde_json::Value {
    conv["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user_id"] == account)
        .unwrap_or_else(|| panic!("{account} is not in {conv}"))
}

/// A group conversation `g` of `ann` with one message, `first` ("alpha beta"), posted over
/// REST: its bucket, and `ann` as an author for [`engine_posts`].
#[allow(dead_code)]
pub async fn group_with_first_message(
    s: &Server,
) -> (confab_core::ids::DocId, confab_core::policy::Author) {
    use reqwest::Method;
    use serde_json::json;
    let owner = s.tenant_token(TENANT, "ann", "user");
    let made = s
        .request(
            Method::POST,
            "/v1/conversations",
            &owner,
            Some(json!({"kind": "group", "id": "g", "members": []})),
        )
        .await;
    assert_eq!(made.status, 201, "create: {}", made.body);
    let first = s
        .request(
            Method::POST,
            "/v1/conversations/g/messages",
            &owner,
            Some(json!({"id": "first", "body": "alpha beta"})),
        )
        .await;
    assert_eq!(first.status, 201, "post: {}", first.body);
    let bucket = first.body["doc"].as_str().expect("doc");
    let author = confab_core::policy::Author {
        account: confab_core::ids::AccountId::new("ann").expect("account"),
        service: false,
        device: None,
    };
    (
        confab_core::ids::DocId::parse(bucket).expect("doc id"),
        author,
    )
}

/// Posts `(id, body)` text messages to `bucket` all at once through the engine, which commits
/// them in batches of many, their times one millisecond apart; each must be acked.
#[allow(dead_code)]
pub async fn engine_posts(
    s: &Server,
    bucket: &confab_core::ids::DocId,
    author: &confab_core::policy::Author,
    posts: impl IntoIterator<Item = (String, String)>,
) {
    use confab_core::doc::write;
    use confab_core::ids::MessageId;
    use confab_core::model::message::NewMessage;
    use confab_server::engine::{now_ms, SubmitOutcome};
    let at = now_ms();
    let writes = posts.into_iter().enumerate().map(|(i, (id, body))| {
        let message = NewMessage::text(
            MessageId::new(id).expect("id"),
            author.account.clone(),
            body,
            at + i as i64,
        );
        s.engine.write(
            bucket.clone(),
            author.clone(),
            Box::new(move |d, tag| write::post_message(d, tag, &message)),
        )
    });
    for outcome in futures_util::future::join_all(writes).await {
        assert!(matches!(outcome, SubmitOutcome::Ack { .. }), "{outcome:?}");
    }
}
