//! Push webhooks (docs/OPERATIONS.md, "Push webhooks") against a real HTTP
//! receiver on 127.0.0.1: a notification for an account with no connected client is
//! posted with a signature the receiver checks (and a wrong secret fails the check); while
//! the receiver is gone, or too slow to answer within the timeout, the delivery is retried
//! with backoff and arrives once it is back;
//! a receiver that keeps failing makes a dead letter counted in `/metrics`; a tenant that
//! omits bodies gets no message text; and deliveries queued before the server is killed
//! (SIGKILL, the real binary) are delivered by the next start on the same data.
//!
//! In-process suites run on SQLite and on a fresh Postgres database (127.0.0.1:5432, user
//! `postgres`, trust auth; the test FAILS if Postgres is unreachable, it never skips).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use confab_server::auth::{Authenticator, Claims};
use confab_server::engine::now_ms;
use confab_server::notify::webhook::WebhookConfig;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

mod support;

use support::{on_fresh_postgres, Server, TENANT};

const SECRET: &str = "whsec-test";

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    delivery: String,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1: records what it is sent and answers `status`.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    /// Milliseconds to wait before answering (a slow receiver); what it then takes is not
    /// recorded when the server gave up waiting first.
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

async fn take(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        return StatusCode::OK;
    }
    let status = r.status.load(Ordering::SeqCst);
    if status == 200 {
        r.got.lock().expect("lock").push(Received {
            signature: header("x-confab-signature"),
            delivery: header("x-confab-delivery"),
            body: body.to_vec(),
        });
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Receiver {
    /// Listens on `addr` (a free port when its port is 0) until the task is aborted.
    async fn listen(
        addr: SocketAddr,
        got: Arc<Mutex<Vec<Received>>>,
        status: Arc<AtomicU16>,
    ) -> (Receiver, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("address");
        let r = Receiver {
            addr,
            got,
            status,
            delay_ms: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(r.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (r, task)
    }

    async fn start() -> (Receiver, tokio::task::JoinHandle<()>) {
        Receiver::listen(
            "127.0.0.1:0".parse().expect("addr"),
            Arc::default(),
            Arc::new(AtomicU16::new(200)),
        )
        .await
    }

    fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/hook", self.addr)).expect("url")
    }

    /// Waits for a delivery whose payload satisfies `want`.
    async fn wait_for(&self, what: &str, want: impl Fn(&Value) -> bool) -> (Received, Value) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.got.lock().expect("lock").iter().find_map(|r| {
                let v: Value = serde_json::from_slice(&r.body).ok()?;
                want(&v).then(|| (r.clone(), v))
            });
            if let Some(found) = found {
                return found;
            }
            assert!(Instant::now() < deadline, "no delivery of {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The receiver's check (docs/OPERATIONS.md): `t=<ts>,v1=<hex>`, HMAC-SHA256 over
/// "<ts>.<body>" with the shared secret, compared in constant time by `verify_slice`, and
/// the timestamp recent.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut ts = None;
    let mut sig = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => ts = v.parse::<i64>().ok(),
            Some(("v1", v)) => sig = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(ts), Some(sig)) = (ts, sig) else {
        return false;
    };
    if (now_ms() / 1000 - ts).abs() > 300 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn config(url: url::Url) -> WebhookConfig {
    let mut c = WebhookConfig::new(url, SECRET);
    c.max_attempts = 4;
    c.backoff_base = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(200);
    c.timeout = Duration::from_secs(2);
    c.poll = Duration::from_millis(50);
    c.omit_bodies = ["globex".parse().expect("tenant")].into();
    c
}

fn token(auth: &Authenticator, tenant: &str, account: &str) -> String {
    auth.mint(&Claims {
        sub: account.into(),
        tenant: tenant.into(),
        exp: now_ms() / 1000 + 3600,
        kind: "user".into(),
    })
    .expect("mint")
}

async fn post(http: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    assert!(
        status == 200 || status == 201,
        "{path}: {status} {}",
        r.text().await.unwrap_or_default()
    );
}

/// A group `conv` of the token's account with `members`.
async fn create_group(http: &reqwest::Client, base: &str, t: &str, conv: &str, members: &[&str]) {
    let members: Vec<Value> = members.iter().map(|m| json!({"account": m})).collect();
    post(
        http,
        base,
        t,
        "/v1/conversations",
        json!({"kind": "group", "id": conv, "title": conv, "members": members}),
    )
    .await;
}

/// The value of an unlabelled metric in a `/metrics` text.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

async fn until_metric(http: &reqwest::Client, base: &str, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = metric(http, base, name).await;
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {v}, below {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn webhooks(database_url: Option<String>) {
    let (receiver, task) = Receiver::start().await;
    let s = Server::start_with_webhook(database_url.as_deref(), config(receiver.url())).await;
    let http = &s.http;
    let alice = token(&s.auth, TENANT, "alice");
    create_group(http, &s.base, &alice, "team", &["bob", "carol", "dave"]).await;
    let messages = "/v1/conversations/team/messages";

    // Delivered, signed: the right secret verifies it, a wrong one does not.
    post(
        http,
        &s.base,
        &alice,
        messages,
        json!({"id": "m1", "body": "hi @bob", "mentions": ["bob"]}),
    )
    .await;
    let (got, payload) = receiver
        .wait_for("bob's mention", |v| v["account"] == "bob")
        .await;
    assert!(verify(SECRET, &got.signature, &got.body), "{got:?}");
    assert!(!verify("not-the-secret", &got.signature, &got.body));
    let mut tampered = got.body.clone();
    tampered.push(b' ');
    assert!(!verify(SECRET, &got.signature, &tampered));
    assert!(!got.delivery.is_empty());
    assert_eq!(payload["type"], "notification");
    assert_eq!(payload["tenant"], TENANT);
    let n = &payload["notification"];
    assert_eq!(
        (
            n["kind"].as_str(),
            n["conversation"].as_str(),
            n["message"].as_str(),
            n["from"].as_str()
        ),
        (Some("mention"), Some("team"), Some("m1"), Some("alice"))
    );
    assert_eq!(n["preview"], "hi @bob");
    assert_eq!(n["body_omitted"], false);
    // The same id as the feed's notification.
    let bob = token(&s.auth, TENANT, "bob");
    let feed: Value = http
        .get(format!("{}/v1/notifications", s.base))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("feed")
        .json()
        .await
        .expect("json");
    assert_eq!(feed["notifications"][0]["id"], n["id"]);

    // The receiver goes away: attempts fail, and once it is back on its port the delivery
    // arrives.
    task.abort();
    let _ = task.await;
    let failed_before = metric(http, &s.base, "confab_webhook_failed_attempts_total").await;
    post(
        http,
        &s.base,
        &alice,
        messages,
        json!({"id": "m2", "body": "carol?", "mentions": ["carol"]}),
    )
    .await;
    until_metric(
        http,
        &s.base,
        "confab_webhook_failed_attempts_total",
        failed_before + 2.0,
    )
    .await;
    assert!(
        receiver
            .got
            .lock()
            .expect("lock")
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("\"m2\"")),
        "delivered while down"
    );
    let (back, task) =
        Receiver::listen(receiver.addr, receiver.got.clone(), receiver.status.clone()).await;
    let (got, _) = back
        .wait_for("carol's mention after the outage", |v| {
            v["account"] == "carol"
        })
        .await;
    assert!(verify(SECRET, &got.signature, &got.body));

    // A slow receiver: an attempt that gets no answer within the timeout (2 s) failed, and
    // is tried again; once the receiver is quick again the delivery arrives.
    back.delay_ms.store(3_000, Ordering::SeqCst);
    let failed_before = metric(http, &s.base, "confab_webhook_failed_attempts_total").await;
    post(
        http,
        &s.base,
        &alice,
        messages,
        json!({"id": "slow", "body": "slow?", "mentions": ["bob"]}),
    )
    .await;
    until_metric(
        http,
        &s.base,
        "confab_webhook_failed_attempts_total",
        failed_before + 1.0,
    )
    .await;
    back.delay_ms.store(0, Ordering::SeqCst);
    back.wait_for("the delivery a slow receiver timed out on", |v| {
        v["notification"]["message"] == "slow"
    })
    .await;
    // And `slow`'s delivery to the others at the level `all`: one still being retried when
    // the receiver starts failing below would die beside m3's.
    back.wait_for("slow's delivery at the level `all`", |v| {
        v["type"] == "messages" && v["message"] == "slow"
    })
    .await;

    // A receiver that keeps failing: after max_attempts (4) the delivery is a dead letter.
    assert_eq!(
        metric(http, &s.base, "confab_webhook_dead_letters").await,
        0.0
    );
    back.status.store(500, Ordering::SeqCst);
    post(
        http,
        &s.base,
        &alice,
        messages,
        json!({"id": "m3", "body": "dave?", "mentions": ["dave"]}),
    )
    .await;
    // Both of m3's deliveries (dave's mention and the level `all` one) die before the
    // receiver is well again: one still being retried would rightly arrive.
    until_metric(http, &s.base, "confab_webhook_dead_letters", 2.0).await;
    back.status.store(200, Ordering::SeqCst);
    // Dead means no more attempts: a later delivery arrives, dave's never does.
    post(
        http,
        &s.base,
        &alice,
        messages,
        json!({"id": "m4", "body": "bob again", "mentions": ["bob"]}),
    )
    .await;
    back.wait_for("m4", |v| v["notification"]["message"] == "m4")
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let dead = metric(http, &s.base, "confab_webhook_dead_letters").await;
    assert!(
        !back.got.lock().expect("lock").iter().any(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            v["account"] == "dave" || (v["type"] == "messages" && v["message"] == "m3")
        }),
        "a dead letter was delivered"
    );
    // dave's mention, and the delivery of m3 to the others at the level `all`.
    assert_eq!(dead, 2.0);

    // A tenant that omits bodies: the delivery has no text.
    let gina = token(&s.auth, "globex", "gina");
    create_group(http, &s.base, &gina, "ops", &["hal"]).await;
    post(
        http,
        &s.base,
        &gina,
        "/v1/conversations/ops/messages",
        json!({"id": "g1", "body": "the secret plan", "mentions": ["hal"]}),
    )
    .await;
    let (got, payload) = back
        .wait_for("globex's mention", |v| v["tenant"] == "globex")
        .await;
    assert!(
        payload["notification"].get("preview").is_none(),
        "{payload}"
    );
    assert_eq!(payload["notification"]["body_omitted"], true);
    assert!(!String::from_utf8_lossy(&got.body).contains("secret plan"));
    task.abort();
}

#[tokio::test]
async fn webhooks_on_sqlite() {
    webhooks(None).await;
}

#[tokio::test]
async fn webhooks_on_postgres() {
    on_fresh_postgres("confab_webhooks", move |url: String| async move {
        webhooks(Some(url)).await
    })
    .await;
}

/// A WebSocket client of `token`'s account, welcomed and following its memberships.
async fn connect_client(
    addr: SocketAddr,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use confab_core::protocol::{
        decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
    };
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket");
    let send = async |frame: ClientFrame, ws: &mut tokio_tungstenite::WebSocketStream<_>| {
        ws.send(Message::Binary(encode_client(&frame).into()))
            .await
            .expect("send");
    };
    send(
        ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: token.to_owned(),
            device: "test".into(),
        },
        &mut ws,
    )
    .await;
    send(ClientFrame::Memberships {}, &mut ws).await;
    // Until the membership list answers: the connection then follows them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, ws.next())
            .await
            .expect("no memberships answer");
        if let Some(Ok(Message::Binary(bytes))) = message {
            if let Ok(ServerFrame::Memberships { .. }) = decode_server(&bytes, 1 << 20) {
                return ws;
            }
        }
    }
}

/// The server binary, killed with deliveries still queued, delivers them when started
/// again on the same data: the outbox is in the database, not in memory.
#[tokio::test]
async fn a_killed_server_delivers_after_its_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The receiver's port, reserved and left closed until after the kill.
    let hook_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address")
    };
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address")
    };
    let base = format!("http://{listen}");
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_confab-server"))
            .args(["--data-dir"])
            .arg(dir.path())
            .args([
                "serve",
                "--listen",
                &listen.to_string(),
                "--jwt-secret",
                "jwt-test",
            ])
            .args(["--webhook-url", &format!("http://{hook_addr}/hook")])
            .args(["--webhook-secret", SECRET, "--webhook-backoff-ms", "100"])
            .args([
                "--webhook-backoff-max-ms",
                "300",
                "--webhook-max-attempts",
                "1000",
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start confab-server")
    };
    let http = reqwest::Client::new();
    let healthy = |http: reqwest::Client, base: String| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(Instant::now() < deadline, "confab-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut server = start();
    healthy(http.clone(), base.clone()).await;
    let auth = Authenticator::hs256(b"jwt-test");
    let alice = token(&auth, TENANT, "alice");
    create_group(&http, &base, &alice, "team", &["bob"]).await;
    post(
        &http,
        &base,
        &alice,
        "/v1/conversations/team/messages",
        json!({"id": "k1", "body": "before the crash", "mentions": ["bob"]}),
    )
    .await;
    until_metric(&http, &base, "confab_webhook_failed_attempts_total", 1.0).await;
    server.kill().expect("kill");
    server.wait().expect("wait");

    let (receiver, task) =
        Receiver::listen(hook_addr, Arc::default(), Arc::new(AtomicU16::new(200))).await;
    let mut server = start();
    healthy(http.clone(), base.clone()).await;
    let (got, payload) = receiver
        .wait_for("the delivery queued before the kill", |v| {
            v["notification"]["message"] == "k1"
        })
        .await;
    assert!(verify(SECRET, &got.signature, &got.body));
    assert_eq!(payload["account"], "bob");

    // Bob connects a client (a WebSocket following his memberships): his notifications
    // are no longer pushed; carol, with none, still gets hers.
    let ws = connect_client(listen, &token(&auth, TENANT, "bob")).await;
    post(
        &http,
        &base,
        &alice,
        "/v1/conversations/team/members",
        json!({"account": "carol"}),
    )
    .await;
    post(
        &http,
        &base,
        &alice,
        "/v1/conversations/team/messages",
        json!({"id": "k2", "body": "both of you", "mentions": ["bob", "carol"]}),
    )
    .await;
    let (got, _) = receiver
        .wait_for("carol's k2", |v| v["notification"]["message"] == "k2")
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&got.body).expect("json")["account"],
        "carol"
    );
    // Bob's was computed in the same batch, before carol's: had it been queued, the
    // sender would have sent it with hers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let k2: Vec<Value> = receiver
        .got
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|v| v["notification"]["message"] == "k2")
        .collect();
    assert_eq!(k2.len(), 1, "bob's client is connected: {k2:?}");
    drop(ws);
    server.kill().expect("kill");
    server.wait().expect("wait");
    task.abort();
}
