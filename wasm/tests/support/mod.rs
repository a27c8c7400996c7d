//! Helpers shared by the browser tests: drive `ConfabClient` through its JavaScript API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::{ActorId, Automerge};
use confab_core::client::{
    apply, ClientConfig, ClientEngine, HostKey, Intent, LocalStore, Output, StoreOp,
};
use confab_core::doc::{genesis, IntentTag};
use confab_core::ids::DocId;
use confab_core::ids::{AccountId, ConvId, MessageId};
use confab_core::model::conversation::{ConvKind, Role};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{SeqChange, ServerFrame};
use confab_testkit::group::Group;
use confab_wasm::store::IdbStore;
use confab_wasm::types::{ClientOptions, IntentResult, TimelineItem};
use confab_wasm::ConfabClient;
use js_sys::{Function, Promise};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use tsify::Ts;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: f64) -> JsValue;
    /// Prints on the runner's output (benchmarks run with `--nocapture`).
    #[wasm_bindgen(js_namespace = console, js_name = log)]
    pub fn log(s: &str);
    /// Milliseconds, to 0.1 ms or better (`Date.now()` has whole milliseconds).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub fn precise_now() -> f64;
}

pub async fn sleep(ms: f64) {
    let promise = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    JsFuture::from(promise).await.unwrap();
}

pub fn now() -> f64 {
    js_sys::Date::now()
}

/// Waits until `cond` holds (polling every 20 ms), or panics with `what` after `ms`.
pub async fn wait_for(what: &str, ms: f64, mut cond: impl FnMut() -> bool) {
    let start = now();
    while !cond() {
        if now() - start > ms {
            panic!("timed out after {ms} ms waiting for {what}");
        }
        sleep(20.0).await;
    }
}

/// Awaits a promise the client returned.
pub async fn done(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

/// Awaits a promise and reads its value.
pub async fn ok<T: DeserializeOwned>(promise: Promise) -> T {
    let value = done(promise).await.unwrap_or_else(|e| panic!("{e:?}"));
    serde_wasm_bindgen::from_value(value).unwrap()
}

/// The `code` of a rejected promise.
pub async fn code_of(promise: Promise) -> String {
    let error = done(promise).await.expect_err("should be refused");
    js_sys::Reflect::get(&error, &"code".into())
        .unwrap()
        .as_string()
        .unwrap()
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        now() as u64,
        (js_sys::Math::random() * 1e9) as u64
    )
}

/// A token provider that hands out `token`.
pub fn token_provider(token: &str) -> Function {
    let token = token.to_owned();
    Closure::<dyn FnMut() -> JsValue>::new(move || JsValue::from_str(&token))
        .into_js_value()
        .unchecked_into()
}

/// The options the tests' clients run with; `storage` is "memory", "indexeddb" or an
/// adapter object.
pub fn options(
    url: &str,
    token: &str,
    tenant: &str,
    account: &str,
    storage: JsValue,
    db_name: Option<String>,
) -> ClientOptions {
    ClientOptions {
        url: url.to_owned(),
        token_provider: token_provider(token),
        storage,
        tenant: tenant.to_owned(),
        account: account.to_owned(),
        device_id: Some("test".into()),
        db_name,
        reconnect: Some(confab_wasm::types::ReconnectOptions {
            min_delay_ms: 100,
            max_delay_ms: 1000,
        }),
        ping_interval_ms: None,
        ping_timeout_ms: None,
        http_url: None,
        trace: None,
        auto_delivered: None,
    }
}

/// A client with `options`.
pub fn client_with(options: &ClientOptions) -> ConfabClient {
    ConfabClient::new(Ts::from_rust(options).unwrap()).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A client; `storage` is "memory", "indexeddb" or an adapter object.
pub fn client(
    url: &str,
    token: &str,
    tenant: &str,
    account: &str,
    storage: JsValue,
    db_name: Option<String>,
) -> ConfabClient {
    client_with(&options(url, token, tenant, account, storage, db_name))
}

/// The options of `account` (with `token`) of the test server on the IndexedDB database `db`.
pub fn indexeddb_options(token: &str, account: &str, db: &str) -> ClientOptions {
    let s = server();
    options(
        s.ws,
        token,
        s.tenant,
        account,
        "indexeddb".into(),
        Some(db.to_owned()),
    )
}

/// `account` (with `token`) of the test server, on the IndexedDB database `db`.
pub fn on_indexeddb(token: &str, account: &str, db: &str) -> ConfabClient {
    client_with(&indexeddb_options(token, account, db))
}

/// Alice on the IndexedDB database `db`.
pub fn alice_in(s: &Server, db: &str) -> ConfabClient {
    on_indexeddb(s.alice, "alice", db)
}

pub fn timeline(client: &ConfabClient, conv: &str) -> Vec<TimelineItem> {
    client
        .timeline(conv, None)
        .unwrap()
        .into_iter()
        .map(|t| t.to_rust().unwrap())
        .collect()
}

pub fn bodies(client: &ConfabClient, conv: &str) -> Vec<String> {
    timeline(client, conv)
        .into_iter()
        .map(|t| t.message.body)
        .collect()
}

pub async fn send(client: &ConfabClient, conv: &str, body: &str) -> IntentResult {
    ok(client.send(conv.to_owned(), JsValue::from_str(body))).await
}

/// The status state of intent `id` ("pending", "sent", "accepted", "rejected").
pub fn state_of(client: &ConfabClient, id: u64) -> Option<String> {
    let status = client.status(id as f64).unwrap();
    if status.is_undefined() {
        return None;
    }
    js_sys::Reflect::get(&status, &"state".into())
        .unwrap()
        .as_string()
}

/// A group as the server would have delivered it, stored the way the client stores it (the
/// client then runs as `confab_testkit::group::ME`, offline).
pub async fn store_group(store: &IdbStore, group: &Group) {
    let mut engine = ClientEngine::new(ClientConfig {
        tenant: confab_testkit::ids::tenant(),
        account: confab_testkit::group::member(1),
        actor: ActorId::from(&[9u8; 16][..]),
    });
    engine.open(&group.conv_doc).unwrap();
    engine.open(&group.bucket_doc).unwrap();
    for frame in group.frames() {
        engine.receive(frame, 0);
        // As the package's runtime does at once after the frame: index upkeep.
        engine.tick(0);
        let mut ops = Vec::new();
        for output in engine.drain() {
            if let Output::Persist(more) = output {
                ops.extend(more);
            }
        }
        store.write(ops).await.unwrap();
    }
    let account = format!(
        "{}/{}",
        confab_testkit::ids::TENANT,
        confab_testkit::group::ME
    );
    store
        .write(vec![
            StoreOp::Put(HostKey::Account.key().into(), account.into_bytes()),
            StoreOp::Put(HostKey::Actor.key().into(), vec![9u8; 16]),
        ])
        .await
        .unwrap();
}

/// The server `cargo xtask wasm test` starts for these tests, as its environment names it.
pub struct Server {
    pub ws: &'static str,
    pub tenant: &'static str,
    pub alice: &'static str,
    pub bob: &'static str,
    pub carol: &'static str,
}

/// The test server; the test fails, saying how to run it, when there is none.
pub fn server() -> Server {
    let found = || {
        Some(Server {
            ws: option_env!("CONFAB_TEST_WS")?,
            tenant: option_env!("CONFAB_TEST_TENANT").unwrap_or("demo"),
            alice: option_env!("CONFAB_TEST_TOKEN_ALICE")?,
            bob: option_env!("CONFAB_TEST_TOKEN_BOB")?,
            carol: option_env!("CONFAB_TEST_TOKEN_CAROL")?,
        })
    };
    found().expect(
        "no CONFAB_TEST_WS/CONFAB_TEST_TOKEN_*: these tests need a server; run them with \
         `cargo xtask wasm test`, which starts one",
    )
}

/// A Blob of `bytes` of type `mime`.
pub fn blob(bytes: &[u8], mime: &str) -> web_sys::Blob {
    let make = Function::new_with_args("bytes, type", "return new Blob([bytes], { type })");
    make.call2(
        &JsValue::NULL,
        &js_sys::Uint8Array::from(bytes).into(),
        &mime.into(),
    )
    .unwrap()
    .unchecked_into()
}

/// The bytes of a Blob.
pub async fn blob_bytes(blob: &web_sys::Blob) -> Vec<u8> {
    let buffer = JsFuture::from(blob.array_buffer()).await.unwrap();
    js_sys::Uint8Array::new(&buffer).to_vec()
}

/// Changes per `changes` frame, as the server pages a catch-up.
pub const PAGE: usize = 100;

/// Every change of `doc` after its genesis, in order.
pub fn changes_of(doc: &mut Automerge) -> Vec<Vec<u8>> {
    doc.get_changes(&[])
        .into_iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

/// Hands `changes` to the engine as accepted (seq 1..) in pages and stores what it asks.
pub async fn accept(
    engine: &mut ClientEngine,
    store: &IdbStore,
    doc: &DocId,
    changes: Vec<Vec<u8>>,
) {
    engine.open(doc).unwrap();
    let mut seq = 0u64;
    for page in changes.chunks(PAGE) {
        let frame = ServerFrame::Changes {
            doc: doc.to_string(),
            changes: page
                .iter()
                .map(|c| {
                    seq += 1;
                    SeqChange {
                        seq,
                        change: ByteBuf::from(c.clone()),
                    }
                })
                .collect(),
        };
        engine.receive(frame, 0);
        engine.tick(0);
        let mut ops = Vec::new();
        for output in engine.drain() {
            if let Output::Persist(more) = output {
                ops.extend(more);
            }
        }
        store.write(ops).await.unwrap();
    }
    // The first batch held the entry of the client's index of stored documents (`open`).
}

/// The engine's account's group `conv` (with bob) created at `at`, accepted and stored: the
/// start of a benchmark's history.
pub async fn accept_group(
    engine: &mut ClientEngine,
    store: &IdbStore,
    conv: &ConvId,
    title: &str,
    at: i64,
) {
    let config = engine.config().clone();
    let conv_doc = DocId::conv(&config.tenant, conv);
    let mut doc = genesis(&conv_doc).unwrap().with_actor(config.actor.clone());
    let create = Intent::CreateConversation {
        encrypted: false,
        conv: conv.clone(),
        kind: ConvKind::Group,
        title: Some(title.into()),
        members: vec![(AccountId::new("bob").unwrap(), Role::Member)],
        settings: None,
        parent: None,
    };
    let tag = IntentTag::new("1", create.kind());
    apply::write_to(&mut doc, &conv_doc, &create, &config.account, &tag, at, 1).unwrap();
    accept(engine, store, &conv_doc, changes_of(&mut doc)).await;
}

/// Writes text message `m<n>` (zero-padded to six digits) of `config`'s account into the
/// bucket document `doc` (`id`) of `conv`.
pub fn write_text(
    config: &ClientConfig,
    doc: &mut Automerge,
    id: &DocId,
    conv: &ConvId,
    n: usize,
    at: i64,
    body: String,
) {
    let message = NewMessage::text(
        MessageId::new(format!("m{n:06}")).unwrap(),
        config.account.clone(),
        body,
        at,
    );
    let send = Intent::Send {
        conv: conv.clone(),
        message,
    };
    let tag = IntentTag::new(n.to_string(), send.kind());
    apply::write_to(doc, id, &send, &config.account, &tag, at, 1).unwrap();
}

/// The client's identity in the store (alice, actor 7s), as the client itself writes it.
pub async fn store_identity(store: &IdbStore) {
    store
        .write(vec![
            StoreOp::Put(HostKey::Account.key().into(), b"demo/alice".to_vec()),
            StoreOp::Put(HostKey::Actor.key().into(), vec![7u8; 16]),
        ])
        .await
        .unwrap();
}

/// Alice offline (nothing listens at the socket's URL) on the IndexedDB database `db`.
pub fn offline_alice(db: &str) -> ConfabClient {
    client(
        "ws://127.0.0.1:9/ws",
        "t",
        "demo",
        "alice",
        "indexeddb".into(),
        Some(db.to_owned()),
    )
}

/// Median and p99 of `times` (ms).
pub fn summary(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}
