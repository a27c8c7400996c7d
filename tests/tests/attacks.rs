//! The attack suite over the wire (DESIGN §3–§5).
//!
//! Every adversarial case of the foundation suite (`core/tests/adversarial.rs`) is crafted the
//! same way — a raw Automerge transaction on a copy of a device's replica, or a real change
//! decoded, tampered with and encoded again — and sent by the attacking account as a real
//! client would: the real server binary, a real WebSocket, SQLite and Postgres. Preconditions
//! are built with real submits. Each attack must be answered with its exact `reject` code and
//! nothing stored may move: the change log a fresh reader catches up from seq 0 (a service
//! account; the owner for private documents), the REST projection (the conversation and its
//! message page, read by the owner over HTTP), and `/metrics` counts the rejection exactly once
//! (on Postgres the audit table is compared row by row at the end). Where the foundation case
//! has a twin that breaks no rule, the twin is submitted and must be acked.
//!
//! Then what only the wire has: garbage, oversize and too-many-changes frames, floods, the
//! connection limit, expired, foreign and wrongly signed tokens, another tenant, subscribing to
//! what one may not read, and replaying one document's change into another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{acc, conv_doc, tenant, TENANT};
use confab_core::automerge::legacy::{ObjectId, OpId, OpType};
use confab_core::automerge::transaction::{CommitOptions, Transactable, Transaction};
use confab_core::automerge::{
    ActorId, Automerge, Change, ChangeHash, ExpandedChange, ObjId, ObjType, ReadDoc, ScalarValue,
    ROOT,
};
use confab_core::doc::read::{self, get_map};
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::doc::{self as cdoc, creation_actor, genesis_actor, write};
use confab_core::ids::{ContactId, ConvId, DocId, DocTarget, MessageId, ResourceId, TenantId};
use confab_core::model::contact::{Contact, ContactKind};
use confab_core::model::conversation::*;
use confab_core::model::message::NewMessage;
use confab_core::model::proposal::{
    CreatedByRole, MeetingType, ProposalPayload, ProposalStatus, ProposalType,
};
use confab_core::protocol::{ClientFrame, ErrorCode, ServerFrame, SignalKind, PROTOCOL_VERSION};
use confab_core::validate::RejectCode;
use confab_e2e::client::{Answer, WAIT};
use confab_e2e::{now_ms, token, Backend, Client, Device, TestServer};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use serde_bytes::ByteBuf;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------- time ----------

/// One clock reading for the whole run: every crafted message is created at this time, so a
/// message and the bucket it goes to always agree, even across midnight.
fn now() -> i64 {
    static NOW: OnceLock<i64> = OnceLock::new();
    *NOW.get_or_init(now_ms)
}

// ---------- crafting (ported from core/tests/adversarial.rs) ----------

fn conv_id(s: &str) -> ConvId {
    ConvId::new(s).unwrap()
}

fn msg_id(s: &str) -> MessageId {
    MessageId::new(s).unwrap()
}

/// The bucket of `now()`.
fn bucket_doc(c: &ConvId) -> DocId {
    common::bucket_doc(c, now())
}

/// Runs a raw automerge transaction on `doc` and returns the change it committed.
fn raw_on(doc: &mut Automerge, f: impl FnOnce(&mut Transaction<'_>)) -> Change {
    let mut tx = doc.transaction();
    f(&mut tx);
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now() / 1000));
    let hash = hash.expect("the transaction wrote something");
    doc.get_change_by_hash(&hash).expect("committed")
}

/// A raw transaction on a copy of the device's replica (same actor): the device's own replica
/// only moves when the server accepted something and the device pulls it.
fn raw(dev: &mut Device, id: &DocId, f: impl FnOnce(&mut Transaction<'_>)) -> Change {
    let mut copy = dev.doc(id).unwrap().clone();
    raw_on(&mut copy, f)
}

/// Decodes a change, lets `f` tamper with it, and encodes it again.
fn tamper(change: &Change, f: impl FnOnce(&mut ExpandedChange)) -> Change {
    let mut e = change.decode();
    e.hash = None;
    f(&mut e);
    Change::from(e)
}

/// The map at `path` from the root.
fn obj<R: ReadDoc>(doc: &R, path: &[&str]) -> ObjId {
    let mut at = ROOT;
    for (i, key) in path.iter().enumerate() {
        // Messages live in the shard map their id hashes to.
        if i == 1 && path[0] == MESSAGES {
            let shard = confab_core::doc::schema::message_shard(key);
            at = get_map(doc, &at, &shard).unwrap_or_else(|| panic!("no shard {shard}"));
        }
        at = get_map(doc, &at, key).unwrap_or_else(|| panic!("no map at {key}"));
    }
    at
}

/// The op id of the value currently at `obj[key]`, as a legacy `OpId` for `pred`.
fn op_id_of(doc: &Automerge, obj: &ObjId, key: &str) -> OpId {
    match doc.get(obj, key).unwrap().expect("a value").1 {
        ObjId::Id(counter, actor, _) => OpId(counter, actor),
        ObjId::Root => panic!("not an op"),
    }
}

fn s(v: &str) -> ScalarValue {
    ScalarValue::from(v)
}

/// The fields of a plain text message created at `now()`.
fn text_fields(author: &str, body: &str) -> Vec<(&'static str, ScalarValue)> {
    vec![
        (AUTHOR, s(author)),
        (KIND, s("text")),
        (BODY, s(body)),
        (CREATED_AT, ScalarValue::Int(now())),
    ]
}

/// Writes a new message map `messages/<id>` with `fields`.
fn put_message(tx: &mut Transaction<'_>, id: &str, fields: &[(&'static str, ScalarValue)]) {
    let messages = obj(&*tx, &[MESSAGES]);
    let shard = get_map(
        &*tx,
        &messages,
        &confab_core::doc::schema::message_shard(id),
    )
    .unwrap();
    let m = tx.put_object(&shard, id, ObjType::Map).unwrap();
    for (key, value) in fields {
        tx.put(&m, *key, value.clone()).unwrap();
    }
}

/// A raw change posting a message into the bucket of `now()`.
fn raw_post(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    fields: &[(&'static str, ScalarValue)],
) -> (DocId, Change) {
    let bucket = bucket_doc(conv);
    let change = raw(dev, &bucket, |tx| put_message(tx, id, fields));
    (bucket, change)
}

/// A raw change writing scalar fields of an existing map.
fn raw_put(
    dev: &mut Device,
    id: &DocId,
    path: &[&str],
    fields: &[(&'static str, ScalarValue)],
) -> Change {
    raw(dev, id, |tx| {
        let at = obj(&*tx, path);
        for (key, value) in fields {
            tx.put(&at, *key, value.clone()).unwrap();
        }
    })
}

/// A raw change setting one reaction key (`Some(time)`) or deleting it (`None`).
fn raw_reaction(dev: &mut Device, bucket: &DocId, key: &str, value: Option<i64>) -> Change {
    raw(dev, bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        match value {
            Some(at) => tx.put(&reactions, key, at).unwrap(),
            None => tx.delete(&reactions, key).unwrap(),
        }
    })
}

/// A text message written through `doc::write` (what a well-behaved client sends).
fn text_change(dev: &mut Device, conv: &ConvId, id: &str, body: &str) -> (DocId, Change) {
    let doc = bucket_doc(conv);
    let m = NewMessage::text(msg_id(id), acc(&dev.account), body, now());
    let change = dev
        .write(&doc, |d, t| write::post_message(d, t, &m))
        .unwrap();
    (doc, change)
}

// ---------- a minimal HTTP/1.1 client ----------

/// `GET path` with an optional bearer token: (status, body).
async fn http_get(port: u16, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an HTTP answer in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("HTTP status");
    let text = if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        loop {
            let eol = body.windows(2).position(|w| w == b"\r\n").expect("chunk");
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&body[..eol])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .expect("chunk size");
            if size == 0 {
                break;
            }
            out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
            body = &body[eol + 2 + size + 2..];
        }
        out
    } else {
        body.to_vec()
    };
    (status, String::from_utf8_lossy(&text).into_owned())
}

// ---------- the lab: one server, its clients, and the "nothing stored changed" check ----------

/// What a fresh reader gets when it catches up a document from seq 0.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    /// (seq, change hash), in seq order.
    Log(Vec<(u64, ChangeHash)>),
    /// The subscription was refused with this code (e.g. an uncreated conversation).
    Refused(String),
}

/// Everything observable that a rejection must leave alone.
#[derive(Debug, PartialEq)]
struct View {
    stored: Stored,
    /// (path, status, JSON body) of the REST projection, read by the owner.
    rest: Vec<(String, u16, Value)>,
}

/// (doc, account, code, hash) of one rejection: what the audit log must hold.
type AuditRow = (String, String, String, Option<Vec<u8>>);

struct Lab {
    server: TestServer,
    /// One long-lived connection per tenant/account for submits (never subscribed).
    conns: HashMap<String, Client>,
    audit: Vec<AuditRow>,
}

impl Lab {
    async fn start(backend: Backend) -> Lab {
        Lab::on(TestServer::start(backend).await.unwrap())
    }

    fn on(server: TestServer) -> Lab {
        Lab {
            server,
            conns: HashMap::new(),
            audit: Vec::new(),
        }
    }

    fn url(&self) -> String {
        self.server.ws_url()
    }

    async fn conn(&mut self, tenant: &TenantId, account: &str) -> &mut Client {
        let key = format!("{}/{account}", tenant.as_str());
        if !self.conns.contains_key(&key) {
            let client =
                Client::connect(&self.url(), &token(tenant.as_str(), account, false, 3600))
                    .await
                    .unwrap();
            self.conns.insert(key.clone(), client);
        }
        self.conns.get_mut(&key).unwrap()
    }

    async fn submit(&mut self, account: &str, doc: &DocId, changes: &[Change]) -> Vec<Answer> {
        let tenant = doc.tenant().clone();
        self.conn(&tenant, account)
            .await
            .submit(doc, changes)
            .await
            .unwrap()
    }

    /// Submits a change that must be acked, then brings the device's replica up to date.
    async fn accept(&mut self, dev: &mut Device, doc: &DocId, change: Change) -> u64 {
        let hash = change.hash();
        let account = dev.account.clone();
        let answers = self.submit(&account, doc, &[change]).await;
        let seq = match answers.as_slice() {
            [Answer::Ack { hash: h, seq }] if h[..] == hash.0[..] => *seq,
            other => panic!("{account} on {doc}: expected an ack, got {other:?}"),
        };
        self.pull(dev, doc).await;
        seq
    }

    /// Who reads `doc` for the checks: its account for profile and private documents (nobody
    /// else may), a service account for conversations and buckets.
    fn reader(doc: &DocId) -> String {
        match doc.target() {
            DocTarget::Private(owner) | DocTarget::Profile(owner) => {
                token(doc.tenant().as_str(), owner.as_str(), false, 3600)
            }
            DocTarget::Conv(_) | DocTarget::Msgs(..) => {
                token(doc.tenant().as_str(), "svc", true, 3600)
            }
        }
    }

    async fn reader_conn(&self, doc: &DocId) -> Client {
        Client::connect(&self.url(), &Self::reader(doc))
            .await
            .unwrap()
    }

    /// Brings a device's replica up to date through a fresh reader connection.
    async fn pull(&self, dev: &mut Device, doc: &DocId) {
        let mut client = self.reader_conn(doc).await;
        dev.sync(&mut client, doc).await.unwrap();
        client.close().await;
    }

    /// The catch-up from seq 0 on a fresh connection, or the code that refused it.
    async fn catch_up(&self, doc: &DocId) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let mut client = self.reader_conn(doc).await;
        let text = doc.to_string();
        client
            .send(&ClientFrame::Subscribe {
                doc: text.clone(),
                after: 0,
            })
            .await
            .unwrap();
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let result = loop {
            let frame = client
                .wait_for(WAIT, |f| match f {
                    ServerFrame::Changes { doc, .. }
                    | ServerFrame::Synced { doc, .. }
                    | ServerFrame::Snapshot { doc, .. }
                        if *doc == text =>
                    {
                        Some(f.clone())
                    }
                    ServerFrame::Error { doc: Some(d), .. } if *d == text => Some(f.clone()),
                    _ => None,
                })
                .await
                .unwrap();
            match frame {
                ServerFrame::Changes { changes, .. } => {
                    out.extend(changes.into_iter().map(|c| (c.seq, c.change.into_vec())))
                }
                ServerFrame::Synced { seq, .. } => {
                    let seqs: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
                    let expected: Vec<u64> = (1..=seq).collect();
                    assert_eq!(seqs, expected, "{doc}: seqs run 1..=synced without gaps");
                    break Ok(out);
                }
                ServerFrame::Error { code, fatal, .. } => {
                    assert!(!fatal, "a refused subscription is not fatal");
                    break Err(code);
                }
                other => panic!("{doc}: unexpected {other:?} (nothing compacts in this suite)"),
            }
        };
        client.close().await;
        result
    }

    async fn stored(&self, doc: &DocId) -> Stored {
        match self.catch_up(doc).await {
            Ok(log) => Stored::Log(
                log.iter()
                    .map(|(seq, bytes)| (*seq, Change::try_from(&bytes[..]).unwrap().hash()))
                    .collect(),
            ),
            Err(code) => Stored::Refused(code),
        }
    }

    /// The accepted document as a reader rebuilds it: genesis plus the catch-up.
    async fn read(&self, doc: &DocId) -> Automerge {
        let log = self.catch_up(doc).await.unwrap();
        let mut am = cdoc::genesis(doc).unwrap();
        am.apply_changes(
            log.into_iter()
                .map(|(_, bytes)| Change::try_from(&bytes[..]).unwrap()),
        )
        .unwrap();
        am
    }

    /// What the server serves of `doc` still saves and loads (no poisoned op numbering).
    async fn sound(&self, doc: &DocId) {
        let am = self.read(doc).await;
        let saved = am.save();
        let loaded = Automerge::load(&saved).expect("the stored document loads");
        let (mut a, mut b) = (am.get_heads(), loaded.get_heads());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{doc}: the reloaded document has the same heads");
    }

    /// GET with the token of `account` in `tenant`: (status, JSON or text).
    async fn get(&self, tenant: &str, account: &str, path: &str) -> (u16, Value) {
        let (status, body) = http_get(
            self.server.port,
            path,
            Some(&token(tenant, account, false, 3600)),
        )
        .await;
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    /// The REST conversation view as its owner (alice, in every case here) reads it.
    async fn conversation(&self, doc: &DocId) -> Value {
        let conv = doc.conv_id().unwrap();
        let (status, body) = self
            .get(
                doc.tenant().as_str(),
                "alice",
                &format!("/v1/conversations/{}", conv.as_str()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn rest(&self, doc: &DocId) -> Vec<(String, u16, Value)> {
        let Some(conv) = doc.conv_id() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in [
            format!("/v1/conversations/{}", conv.as_str()),
            format!("/v1/conversations/{}/messages?limit=200", conv.as_str()),
        ] {
            let (status, body) = self.get(doc.tenant().as_str(), "alice", &path).await;
            out.push((path, status, body));
        }
        out
    }

    async fn view(&self, doc: &DocId) -> View {
        View {
            stored: self.stored(doc).await,
            rest: self.rest(doc).await,
        }
    }

    /// `confab_changes_rejected_total{reason="<code>"}` from `/metrics`.
    async fn rejected_count(&self, code: &str) -> u64 {
        let (status, text) = http_get(self.server.port, "/metrics", None).await;
        assert_eq!(status, 200);
        let prefix = format!("confab_changes_rejected_total{{reason=\"{code}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
    }

    /// Submits `change` as `who` and asserts it is rejected with `code` naming the change,
    /// that nothing stored or projected for `doc` moved, and that the rejection was counted.
    async fn reject(&mut self, who: &Device, doc: &DocId, change: Change, code: &str) {
        let hash = change.hash();
        let before = self.view(doc).await;
        let count = self.rejected_count(code).await;
        let answers = self.submit(&who.account, doc, &[change]).await;
        match answers.as_slice() {
            [Answer::Reject {
                hash: h,
                code: got,
                reason,
            }] => {
                assert_eq!(
                    got, code,
                    "{} on {doc}: wrong code; reason: {reason}",
                    who.account
                );
                assert_eq!(
                    h.as_deref(),
                    Some(&hash.0[..]),
                    "the rejection names the change"
                );
                assert!(!reason.is_empty(), "a reason for people");
            }
            other => panic!(
                "{} on {doc}: expected a reject with {code}, got {other:?}",
                who.account
            ),
        }
        let after = self.view(doc).await;
        assert_eq!(
            before, after,
            "{code} on {doc}: what the server stores moved"
        );
        if let Stored::Log(log) = &after.stored {
            assert!(log.iter().all(|(_, h)| *h != hash), "the change is stored");
        }
        assert_eq!(
            self.rejected_count(code).await,
            count + 1,
            "{code}: counted once in /metrics"
        );
        self.audit.push((
            doc.to_string(),
            who.account.clone(),
            code.to_owned(),
            Some(hash.0.to_vec()),
        ));
    }

    /// Resubmits an accepted (stored) change as `who` and asserts it is rejected with `code`
    /// naming the change, that nothing stored or projected for `doc` moved, and that the
    /// rejection was counted and audited like any other.
    async fn reject_resubmission(&mut self, who: &Device, doc: &DocId, change: Change, code: &str) {
        let hash = change.hash();
        let before = self.view(doc).await;
        if let Stored::Log(log) = &before.stored {
            assert!(
                log.iter().any(|(_, h)| *h == hash),
                "resubmit a stored change"
            );
        }
        let count = self.rejected_count(code).await;
        let answers = self.submit(&who.account, doc, &[change]).await;
        assert!(
            matches!(answers.as_slice(), [Answer::Reject { hash: Some(h), code: got, .. }] if got == code && h[..] == hash.0[..]),
            "{} on {doc}: expected a reject with {code}, got {answers:?}",
            who.account
        );
        assert_eq!(
            before,
            self.view(doc).await,
            "{code} on {doc}: what the server stores moved"
        );
        assert_eq!(
            self.rejected_count(code).await,
            count + 1,
            "{code}: counted once"
        );
        self.audit.push((
            doc.to_string(),
            who.account.clone(),
            code.to_owned(),
            Some(hash.0.to_vec()),
        ));
    }

    /// On Postgres: the audit table holds exactly the rejections this run caused.
    async fn check_audit(&self) {
        use sqlx::Connection;
        let Some(url) = &self.server.database_url else {
            return;
        };
        let mut db = sqlx::PgConnection::connect(url).await.unwrap();
        let mut expected = self.audit.clone();
        expected.sort();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut rows: Vec<AuditRow> =
                sqlx::query_as("SELECT doc_id, account, code, hash FROM rejections")
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
            rows.sort();
            // The audit write is asynchronous: wait for it, then compare row by row.
            if rows.len() >= expected.len() || Instant::now() > deadline {
                assert_eq!(rows, expected, "the audit log holds every rejection");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

// ---------- protocol helpers ----------

async fn ping(c: &mut Client, nonce: u64) {
    c.send(&ClientFrame::Ping { nonce }).await.unwrap();
    c.wait_for(WAIT, |f| {
        matches!(f, ServerFrame::Pong { nonce: n, .. } if *n == nonce).then_some(())
    })
    .await
    .unwrap();
}

/// The next error frame: (code, fatal, doc).
async fn next_error(c: &mut Client) -> (String, bool, Option<String>) {
    c.wait_for(WAIT, |f| match f {
        ServerFrame::Error {
            code, fatal, doc, ..
        } => Some((code.clone(), *fatal, doc.clone())),
        _ => None,
    })
    .await
    .unwrap()
}

/// The connection must end now; returns the close frame's (code, reason).
async fn closed_with(c: &mut Client) -> (u16, String) {
    let next = c.recv(Duration::from_secs(10)).await;
    assert!(next.is_err(), "expected the close, got {next:?}");
    c.closed.clone().expect("a close frame")
}

fn hello(v: u32, token: &str) -> ClientFrame {
    ClientFrame::Hello {
        v,
        token: token.to_owned(),
        device: "attacker".into(),
    }
}

// ---------- fixtures ----------

/// Creates a conversation owned by `owner` with `others` at the given roles; every device
/// pulls it.
async fn create(
    lab: &mut Lab,
    id: &str,
    kind: ConvKind,
    owner: &mut Device,
    others: &mut [(&mut Device, Role)],
    tweak: impl FnOnce(&mut write::CreateConv),
) -> ConvId {
    let c = conv_id(id);
    let mut members = vec![Member::new(acc(&owner.account), Role::Owner)];
    for (dev, role) in others.iter() {
        let mut m = Member::new(acc(&dev.account), *role);
        m.invited_by = Some(acc(&owner.account));
        members.push(m);
    }
    let mut spec = write::CreateConv {
        kind,
        created_by: acc(&owner.account),
        created_at: now() - 1000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info {
            title: Some(format!("{id} title")),
            ..Info::default()
        },
        settings: Settings::defaults_for(kind),
        members,
    };
    tweak(&mut spec);
    let cd = conv_doc(&c);
    let change = owner
        .write(&cd, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    lab.accept(owner, &cd, change).await;
    for (dev, _) in others.iter_mut() {
        lab.pull(dev, &cd).await;
    }
    c
}

/// Group `id`: alice owner, bob member, dave admin; alice posted "m1"; everyone has it.
struct Fixture {
    alice: Device,
    bob: Device,
    dave: Device,
    conv: ConvId,
    cd: DocId,
    bucket: DocId,
}

async fn fixture(lab: &mut Lab, id: &str) -> Fixture {
    fixture_with(lab, id, |_| {}).await
}

async fn fixture_with(lab: &mut Lab, id: &str, tweak: impl FnOnce(&mut Settings)) -> Fixture {
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut dave = Device::new("dave", 1);
    let conv = create(
        lab,
        id,
        ConvKind::Group,
        &mut alice,
        &mut [(&mut bob, Role::Member), (&mut dave, Role::Admin)],
        |spec| tweak(&mut spec.settings),
    )
    .await;
    let (bucket, m1) = text_change(&mut alice, &conv, "m1", "hello");
    lab.accept(&mut alice, &bucket, m1).await;
    let cd = conv_doc(&conv);
    for dev in [&mut alice, &mut bob, &mut dave] {
        lab.pull(dev, &cd).await;
        lab.pull(dev, &bucket).await;
    }
    Fixture {
        alice,
        bob,
        dave,
        conv,
        cd,
        bucket,
    }
}

fn member<'a>(conv: &'a Value, account: &str) -> &'a Value {
    conv["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user_id"] == account)
        .unwrap_or_else(|| panic!("{account} is not listed: {conv}"))
}

// ---------- actors, sequence, dependencies, bytes ----------

async fn forged_actor_genesis_actor(lab: &mut Lab) {
    let mut f = fixture(lab, "a01").await;
    // Alice's replica writing as the document's genesis actor.
    let mut forged_doc = f.alice.doc(&f.cd).unwrap().clone();
    forged_doc.set_actor(genesis_actor(&f.cd));
    let forged = raw_on(&mut forged_doc, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put(&info, TITLE, "hijacked").unwrap();
    });
    assert_eq!(forged.actor_id(), &genesis_actor(&f.cd));
    assert_eq!(forged.seq(), 2, "the genesis actor's next change");
    lab.reject(&f.alice, &f.cd, forged, "forged_actor").await;
    // Twin: the same edit with alice's own actor.
    let edit = raw_put(&mut f.alice, &f.cd, &[INFO], &[(TITLE, s("renamed"))]);
    lab.accept(&mut f.alice, &f.cd, edit).await;
    assert_eq!(lab.conversation(&f.cd).await["title"], "renamed");
}

async fn forged_actor_creation_actor(lab: &mut Lab) {
    // In a group: the creation actor writes only deterministic direct/support creations.
    let f = fixture(lab, "a02").await;
    let mut forged_doc = f.alice.docs[&f.cd].clone();
    forged_doc.set_actor(creation_actor(&f.cd));
    let forged = raw_on(&mut forged_doc, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put(&info, TITLE, "hijacked").unwrap();
    });
    lab.reject(&f.alice, &f.cd, forged, "forged_actor").await;

    // In a direct conversation (alice–frank, used by no other case): a creation change with the
    // creation actor that is not the exact deterministic change.
    let mut alice = Device::new("alice", 1);
    let (dd, real) =
        write::direct_creation_change(&tenant(), &acc("alice"), &acc("frank")).unwrap();
    let forge = |members: &[(&str, &str)]| {
        let mut doc = cdoc::genesis(&dd).unwrap();
        doc.set_actor(creation_actor(&dd));
        let mut tx = doc.transaction();
        let meta = obj(&tx, &[META]);
        tx.put(&meta, KIND, "direct").unwrap();
        tx.put(&meta, CREATED_AT, 0_i64).unwrap();
        tx.put(&meta, BUCKET_MS, DEFAULT_BUCKET_MS).unwrap();
        let all = obj(&tx, &[MEMBERS]);
        for (account, role) in members {
            let m = tx.put_object(&all, *account, ObjType::Map).unwrap();
            tx.put(&m, ROLE, *role).unwrap();
            tx.put(&m, STATUS, "active").unwrap();
        }
        tx.commit_with(CommitOptions::default().with_time(0).with_message("create"));
        doc.get_last_local_change().unwrap()
    };
    let owner = forge(&[("alice", "owner"), ("frank", "member")]);
    let third = forge(&[
        ("alice", "member"),
        ("carol", "member"),
        ("frank", "member"),
    ]);
    let honest = forge(&[("alice", "member"), ("frank", "member")]);
    assert_eq!(
        honest.hash(),
        real.hash(),
        "the forge reproduces the real one"
    );
    lab.reject(&alice, &dd, owner.clone(), "forged_actor").await;
    lab.reject(&alice, &dd, third.clone(), "forged_actor").await;
    // Twin: the exact deterministic change is accepted; the forgeries stay refused after it.
    lab.accept(&mut alice, &dd, real).await;
    lab.reject(&alice, &dd, owner, "forged_actor").await;
    lab.reject(&alice, &dd, third, "forged_actor").await;
    let conv = lab.conversation(&dd).await;
    let members = conv["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{conv}");
    assert!(members.iter().all(|m| m["base_role"] == "member"), "{conv}");
}

async fn actor_bound_to_other(lab: &mut Lab) {
    let mut f = fixture(lab, "a03").await;
    // Alice's actor is bound to alice; bob's session submits a change made with it.
    let (bucket, change) = raw_post(&mut f.alice, &f.conv, "m2", &text_fields("alice", "hi"));
    lab.reject(&f.bob, &bucket, change.clone(), "actor_bound_to_other")
        .await;
    // Twin: the very same bytes from alice's session are fine.
    lab.accept(&mut f.alice, &bucket, change).await;
}

async fn seq_gap_and_bad_start_op(lab: &mut Lab) {
    let mut f = fixture(lab, "a04").await;
    let (bucket, first) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "one"));
    assert_eq!(first.seq(), 1);
    lab.accept(&mut f.bob, &bucket, first).await;
    let (_, second) = raw_post(&mut f.bob, &f.conv, "b2", &text_fields("bob", "two"));
    assert_eq!(second.seq(), 2);
    let gap = tamper(&second, |e| e.seq = 3);
    lab.reject(&f.bob, &bucket, gap, "seq_gap").await;
    let reuse = tamper(&second, |e| {
        e.start_op = std::num::NonZeroU64::new(1).unwrap()
    });
    lab.reject(&f.bob, &bucket, reuse, "bad_start_op").await;
    lab.accept(&mut f.bob, &bucket, second).await;
}

/// Dave's first change in the document numbered from op 1 while it overwrites alice's title.
async fn start_op_below_dependencies_max_op_bad_start_op(lab: &mut Lab) {
    let mut f = fixture(lab, "a05").await;
    let cd = f.cd.clone();
    let edit = raw_put(&mut f.alice, &cd, &[INFO], &[(TITLE, s("renamed"))]);
    lab.accept(&mut f.alice, &cd, edit).await;
    lab.pull(&mut f.dave, &cd).await;
    let honest = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    assert_eq!(honest.seq(), 1, "dave's first change here");
    assert!(honest.start_op().get() > 30);
    let low = tamper(&honest, |e| {
        e.start_op = std::num::NonZeroU64::new(1).unwrap()
    });
    lab.reject(&f.dave, &cd, low, "bad_start_op").await;
    lab.sound(&cd).await;
    lab.accept(&mut f.dave, &cd, honest).await;
    lab.sound(&cd).await;
}

/// A put on a fresh key numbered below its dependencies.
async fn fresh_key_numbered_below_dependencies_bad_start_op(lab: &mut Lab) {
    let mut f = fixture(lab, "a06").await;
    let bucket = f.bucket.clone();
    let honest = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(now()),
    );
    assert!(honest.start_op().get() > 4);
    let low = tamper(&honest, |e| {
        e.start_op = std::num::NonZeroU64::new(4).unwrap()
    });
    lab.reject(&f.bob, &bucket, low, "bad_start_op").await;
    lab.sound(&bucket).await;
    lab.accept(&mut f.bob, &bucket, honest).await;
    lab.sound(&bucket).await;
}

/// Deps that leave alice's edit out, yet a `pred` naming her (higher-numbered) title op.
async fn op_numbered_below_the_value_it_replaces_bad_start_op(lab: &mut Lab) {
    let mut f = fixture(lab, "a07").await;
    let cd = f.cd.clone();
    let (old_heads, old_max) = {
        let d = f.alice.doc(&cd).unwrap();
        let heads = d.get_heads();
        let max = heads
            .iter()
            .map(|h| d.get_change_by_hash(h).unwrap().max_op())
            .max()
            .unwrap();
        (heads, max)
    };
    let edit = raw_put(
        &mut f.alice,
        &cd,
        &[INFO],
        &[
            (DESCRIPTION, s("about")),
            (THEME_COLOR, s("red")),
            (TITLE, s("renamed")),
        ],
    );
    lab.accept(&mut f.alice, &cd, edit).await;
    lab.pull(&mut f.dave, &cd).await;
    let doc = lab.read(&cd).await;
    let title_op = op_id_of(&doc, &obj(&doc, &[INFO]), TITLE);
    assert!(title_op.counter() > old_max + 1);
    let honest = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    let forged = tamper(&honest, |e| {
        e.deps = old_heads.clone();
        e.start_op = std::num::NonZeroU64::new(old_max + 1).unwrap();
    });
    assert_eq!(
        forged.decode().operations[0]
            .pred
            .iter()
            .collect::<Vec<_>>(),
        vec![&title_op]
    );
    lab.reject(&f.dave, &cd, forged, "bad_start_op").await;
    lab.sound(&cd).await;
    lab.accept(&mut f.dave, &cd, honest).await;
    lab.sound(&cd).await;
}

async fn missing_dependency(lab: &mut Lab) {
    let mut f = fixture(lab, "a08").await;
    let mut replica = f.bob.doc(&f.bucket).unwrap().clone();
    let a = raw_on(&mut replica, |tx| {
        put_message(tx, "b1", &text_fields("bob", "one"))
    });
    let b = raw_on(&mut replica, |tx| {
        put_message(tx, "b2", &text_fields("bob", "two"))
    });
    assert_eq!(b.deps(), &[a.hash()]);
    let bucket = f.bucket.clone();
    lab.reject(&f.bob, &bucket, b.clone(), "missing_dependency")
        .await;
    let phantom = tamper(&a, |e| e.deps = vec![ChangeHash([7; 32])]);
    lab.reject(&f.bob, &bucket, phantom, "missing_dependency")
        .await;
    lab.accept(&mut f.bob, &bucket, a).await;
    lab.accept(&mut f.bob, &bucket, b).await;
    match lab.stored(&bucket).await {
        Stored::Log(log) => assert_eq!(log.len(), 3),
        other => panic!("{other:?}"),
    }
}

/// Garbage inside a valid submit frame: each is `malformed_change` (no hash), and the real
/// change after them in the same frame is acked.
async fn garbage_bytes_malformed_change(lab: &mut Lab) {
    let mut f = fixture(lab, "a09").await;
    let (bucket, real) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    let bytes = real.raw_bytes().to_vec();
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not an automerge change".to_vec(),
        vec![0x85, 0x6f, 0x4a, 0x83, 0xff, 0xff, 0xff],
        bytes[..bytes.len() / 2].to_vec(),
        flipped,
    ];
    let before = lab.view(&bucket).await;
    let count = lab.rejected_count("malformed_change").await;
    let mut frame: Vec<ByteBuf> = garbage.iter().cloned().map(ByteBuf::from).collect();
    frame.push(ByteBuf::from(bytes));
    let answers = lab
        .conn(&tenant(), "bob")
        .await
        .submit_raw(&bucket, frame)
        .await
        .unwrap();
    assert_eq!(answers.len(), garbage.len() + 1, "one answer per change");
    for (g, answer) in garbage.iter().zip(&answers) {
        match answer {
            Answer::Reject { hash, code, reason } => {
                assert_eq!(code, "malformed_change", "{g:?}: {reason}");
                assert_eq!(hash, &None, "garbage has no hash");
            }
            other => panic!("{g:?}: expected malformed_change, got {other:?}"),
        }
    }
    let seq = match answers.last() {
        Some(Answer::Ack { hash, seq }) if hash[..] == real.hash().0[..] => *seq,
        other => panic!("the real change after the garbage: {other:?}"),
    };
    assert_eq!(seq, 2);
    let after = lab.view(&bucket).await;
    let Stored::Log(mut log) = before.stored else {
        panic!("bucket readable")
    };
    log.push((2, real.hash()));
    assert_eq!(
        after.stored,
        Stored::Log(log),
        "only the real change was stored"
    );
    assert_eq!(
        lab.rejected_count("malformed_change").await,
        count + garbage.len() as u64
    );
    for _ in &garbage {
        lab.audit.push((
            bucket.to_string(),
            "bob".into(),
            "malformed_change".into(),
            None,
        ));
    }
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(m.len(), 2);
}

async fn duplicate_key_and_empty_change(lab: &mut Lab) {
    let mut f = fixture(lab, "a10").await;
    let (bucket, post) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    let doubled = tamper(&post, |e| {
        let last = e.operations.last().unwrap().clone();
        e.operations.push(last);
    });
    lab.reject(&f.bob, &bucket, doubled, "duplicate_key").await;
    let empty = tamper(&post, |e| e.operations.clear());
    lab.reject(&f.bob, &bucket, empty, "empty_change").await;
    lab.accept(&mut f.bob, &bucket, post).await;
}

// ---------- members and roles ----------

async fn author_mismatch(lab: &mut Lab) {
    let mut f = fixture(lab, "a11").await;
    let (bucket, change) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("alice", "I'm alice"),
    );
    lab.reject(&f.bob, &bucket, change, "author_mismatch").await;
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "I'm bob"));
    lab.accept(&mut f.bob, &bucket, twin).await;
}

async fn self_promotion_role_too_high(lab: &mut Lab) {
    let mut f = fixture(lab, "a12").await;
    let change = raw_put(&mut f.bob, &f.cd, &[MEMBERS, "bob"], &[(ROLE, s("admin"))]);
    lab.reject(&f.bob, &f.cd, change, "role_too_high").await;
    let twin = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("admin"))],
    );
    lab.accept(&mut f.alice, &f.cd, twin).await;
    assert_eq!(
        member(&lab.conversation(&f.cd).await, "bob")["base_role"],
        "admin"
    );
}

async fn demoting_the_owner_owner_protected(lab: &mut Lab) {
    let mut f = fixture(lab, "a13").await;
    let change = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "alice"],
        &[(ROLE, s("member"))],
    );
    lab.reject(&f.dave, &f.cd, change, "owner_protected").await;
    let own = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "alice"],
        &[(ROLE, s("admin"))],
    );
    lab.reject(&f.alice, &f.cd, own, "owner_protected").await;
    let twin = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("moderator"))],
    );
    lab.accept(&mut f.dave, &f.cd, twin).await;
}

async fn removing_the_owner_owner_protected(lab: &mut Lab) {
    let mut f = fixture(lab, "a14").await;
    let removal = |dev: &mut Device, cd: &DocId, who: &'static str| {
        raw_put(
            dev,
            cd,
            &[MEMBERS, who],
            &[
                (STATUS, s("removed")),
                (REMOVED_AT, ScalarValue::Int(now())),
            ],
        )
    };
    let change = removal(&mut f.dave, &f.cd, "alice");
    lab.reject(&f.dave, &f.cd, change, "owner_protected").await;
    let twin = removal(&mut f.dave, &f.cd, "bob");
    lab.accept(&mut f.dave, &f.cd, twin).await;
    assert_eq!(
        member(&lab.conversation(&f.cd).await, "bob")["is_active"],
        false
    );
}

async fn member_writing_settings_no_permission(lab: &mut Lab) {
    let mut f = fixture(lab, "a15").await;
    let change = raw_put(
        &mut f.bob,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(false))],
    );
    lab.reject(&f.bob, &f.cd, change, "no_permission").await;
    let twin = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(false))],
    );
    lab.accept(&mut f.alice, &f.cd, twin).await;
    assert_eq!(
        lab.conversation(&f.cd).await["settings"]["allow_reactions"],
        false
    );
}

async fn direct_conversation_third_account_direct_fixed_members(lab: &mut Lab) {
    let mut alice = Device::new("alice", 1);
    let mut carol = Device::new("carol", 1);
    let (dd, create) =
        write::direct_creation_change(&tenant(), &acc("alice"), &acc("bob")).unwrap();
    lab.accept(&mut alice, &dd, create).await;
    lab.pull(&mut carol, &dd).await;
    let add = |dev: &mut Device, invited_by: Option<&str>| {
        raw(dev, &dd, |tx| {
            let members = obj(&*tx, &[MEMBERS]);
            let m = tx.put_object(&members, "carol", ObjType::Map).unwrap();
            tx.put(&m, ROLE, "member").unwrap();
            tx.put(&m, STATUS, "active").unwrap();
            tx.put(&m, JOINED_AT, now()).unwrap();
            if let Some(by) = invited_by {
                tx.put(&m, INVITED_BY, by).unwrap();
            }
        })
    };
    let change = add(&mut carol, None);
    lab.reject(&carol, &dd, change, "direct_fixed_members")
        .await;
    let change = add(&mut alice, Some("alice"));
    lab.reject(&alice, &dd, change, "direct_fixed_members")
        .await;
    let twin = raw_put(&mut alice, &dd, &[READS], &[("alice", s("x1"))]);
    lab.accept(&mut alice, &dd, twin).await;
    let conv = lab.conversation(&dd).await;
    assert_eq!(conv["members"].as_array().unwrap().len(), 2, "{conv}");
}

async fn removed_member_later_message_member_inactive(lab: &mut Lab) {
    let mut f = fixture(lab, "a17").await;
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    lab.accept(&mut f.bob, &bucket, twin).await;
    let removal = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[
            (STATUS, s("removed")),
            (REMOVED_AT, ScalarValue::Int(now())),
        ],
    );
    lab.accept(&mut f.alice, &f.cd, removal).await;
    lab.pull(&mut f.bob, &f.cd).await;
    let (bucket, later) = raw_post(&mut f.bob, &f.conv, "b2", &text_fields("bob", "still here"));
    lab.reject(&f.bob, &bucket, later, "member_inactive").await;
    let react = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(now()),
    );
    lab.reject(&f.bob, &bucket, react, "member_inactive").await;
    let back = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(STATUS, s("active")), (JOINED_AT, ScalarValue::Int(now()))],
    );
    lab.reject(&f.bob, &f.cd, back, "member_inactive").await;
    // Over the wire the removed member cannot read either.
    let mut c = Client::connect(&lab.url(), &token(TENANT, "bob", false, 3600))
        .await
        .unwrap();
    for doc in [&f.cd, &bucket] {
        let err = c.subscribe(doc, 0).await.expect_err("bob was removed");
        assert!(err.to_string().starts_with("forbidden:"), "{err}");
    }
    c.close().await;
}

// ---------- messages ----------

async fn editing_anothers_message_not_author(lab: &mut Lab) {
    let mut f = fixture(lab, "a18").await;
    let bucket = f.bucket.clone();
    let edit = |dev: &mut Device| {
        raw_put(
            dev,
            &bucket,
            &[MESSAGES, "m1"],
            &[(BODY, s("edited")), (EDITED_AT, ScalarValue::Int(now()))],
        )
    };
    let change = edit(&mut f.bob);
    lab.reject(&f.bob, &bucket, change, "not_author").await;
    let delete = raw_put(
        &mut f.bob,
        &bucket,
        &[MESSAGES, "m1"],
        &[(BODY, s("")), (DELETED_AT, ScalarValue::Int(now()))],
    );
    lab.reject(&f.bob, &bucket, delete, "not_author").await;
    let twin = edit(&mut f.alice);
    lab.accept(&mut f.alice, &bucket, twin).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(m[0].body, "edited");
}

async fn deleting_anothers_reaction_not_own_key(lab: &mut Lab) {
    let mut f = fixture(lab, "a19").await;
    let bucket = f.bucket.clone();
    let alice_key = reaction_key("m1", "alice", "👍");
    let react = raw_reaction(&mut f.alice, &bucket, &alice_key, Some(now()));
    lab.accept(&mut f.alice, &bucket, react).await;
    lab.pull(&mut f.bob, &bucket).await;

    let delete = raw_reaction(&mut f.bob, &bucket, &alice_key, None);
    lab.reject(&f.bob, &bucket, delete, "not_own_key").await;
    let forge = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "alice", "🎉"),
        Some(now()),
    );
    lab.reject(&f.bob, &bucket, forge, "not_own_key").await;
    let marker = raw_put(&mut f.bob, &f.cd, &[READS], &[("alice", s("m1"))]);
    lab.reject(&f.bob, &f.cd, marker, "not_own_key").await;

    let own = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(now()),
    );
    lab.accept(&mut f.bob, &bucket, own).await;
    let own_marker = raw_put(&mut f.bob, &f.cd, &[READS], &[("bob", s("m1"))]);
    lab.accept(&mut f.bob, &f.cd, own_marker).await;
    let undo = raw_reaction(&mut f.alice, &bucket, &alice_key, None);
    lab.accept(&mut f.alice, &bucket, undo).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(
        m[0].reactions["👍"].keys().collect::<Vec<_>>(),
        vec![&acc("bob")]
    );
}

async fn subscriber_posting_in_channel_channel_admins_only(lab: &mut Lab) {
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let c = create(
        lab,
        "a20",
        ConvKind::Channel,
        &mut alice,
        &mut [(&mut bob, Role::Subscriber)],
        |_| {},
    )
    .await;
    let (bucket, change) = raw_post(&mut bob, &c, "b1", &text_fields("bob", "me too"));
    lab.reject(&bob, &bucket, change, "channel_admins_only")
        .await;
    let (bucket, twin) = raw_post(&mut alice, &c, "a1", &text_fields("alice", "news"));
    lab.accept(&mut alice, &bucket, twin).await;
    lab.pull(&mut bob, &bucket).await;
    let react = raw_reaction(
        &mut bob,
        &bucket,
        &reaction_key("a1", "bob", "👍"),
        Some(now()),
    );
    lab.accept(&mut bob, &bucket, react).await;
}

async fn member_posting_under_admins_only_send_policy(lab: &mut Lab) {
    let mut f = fixture_with(lab, "a21", |s| s.send_policy = SendPolicy::AdminsOnly).await;
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    lab.reject(&f.bob, &bucket, change, "admins_only").await;
    let (bucket, twin) = raw_post(&mut f.dave, &f.conv, "d1", &text_fields("dave", "hi"));
    lab.accept(&mut f.dave, &bucket, twin).await;
}

async fn reacting_where_reactions_are_off(lab: &mut Lab) {
    let mut f = fixture_with(lab, "a22", |s| s.allow_reactions = false).await;
    let bucket = f.bucket.clone();
    let change = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(now()),
    );
    lab.reject(&f.bob, &bucket, change.clone(), "reactions_disabled")
        .await;
    // Twin: the very same bytes pass once the owner turns reactions on.
    let on = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(true))],
    );
    lab.accept(&mut f.alice, &f.cd, on).await;
    lab.accept(&mut f.bob, &bucket, change).await;
}

async fn media_where_attachments_are_off(lab: &mut Lab) {
    let mut f = fixture_with(lab, "a23", |s| s.allow_attachments = false).await;
    let attachments =
        r#"[{"id":"a1","kind":"image","mime":"image/png","url":"https://cdn.example.com/a1.png"}]"#;
    let mut fields = text_fields("bob", "look");
    fields[1] = (KIND, s("image"));
    fields.push((ATTACHMENTS, s(attachments)));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    lab.reject(&f.bob, &bucket, change.clone(), "attachments_disabled")
        .await;
    let on = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_ATTACHMENTS, ScalarValue::Boolean(true))],
    );
    lab.accept(&mut f.alice, &f.cd, on).await;
    lab.accept(&mut f.bob, &bucket, change).await;
}

/// The raw creation change of a thread of `parent` at `depth`, whose own settings allow
/// `max_depth` levels below it.
fn raw_thread(
    dev: &mut Device,
    thread: &ConvId,
    parent: &ConvId,
    depth: i64,
    max_depth: i64,
) -> Change {
    let me = dev.account.clone();
    raw(dev, &conv_doc(thread), |tx| {
        let meta = obj(&*tx, &[META]);
        tx.put(&meta, KIND, "thread").unwrap();
        tx.put(&meta, CREATED_BY, me.as_str()).unwrap();
        tx.put(&meta, CREATED_AT, now() - 1000).unwrap();
        tx.put(&meta, BUCKET_MS, DEFAULT_BUCKET_MS).unwrap();
        tx.put(&meta, PARENT, parent.as_str()).unwrap();
        tx.put(&meta, PARENT_MESSAGE, "m1").unwrap();
        tx.put(&meta, DEPTH, depth).unwrap();
        let settings = obj(&*tx, &[SETTINGS]);
        tx.put(&settings, MAX_SUBROOM_DEPTH, max_depth).unwrap();
        let members = obj(&*tx, &[MEMBERS]);
        let m = tx.put_object(&members, me.as_str(), ObjType::Map).unwrap();
        tx.put(&m, ROLE, "owner").unwrap();
        tx.put(&m, STATUS, "active").unwrap();
    })
}

async fn thread_deeper_than_max_thread_too_deep(lab: &mut Lab) {
    let mut f = fixture(lab, "a24").await;
    let t1 = conv_id("a24-t1");
    let change = raw_thread(&mut f.alice, &t1, &f.conv, 1, 1);
    lab.accept(&mut f.alice, &conv_doc(&t1), change).await;
    assert_eq!(
        lab.conversation(&conv_doc(&t1)).await["settings"]["max_subroom_depth"],
        1
    );
    let t2 = conv_id("a24-t2");
    let change = raw_thread(&mut f.alice, &t2, &t1, 2, 1);
    lab.reject(&f.alice, &conv_doc(&t2), change, "thread_too_deep")
        .await;
    let (status, body) = lab.get(TENANT, "alice", "/v1/conversations/a24-t2").await;
    assert_eq!(status, 404, "t2 was never created: {body}");
}

// ---------- proposals ----------

fn proposal_payload(expires_at: Option<i64>) -> String {
    ProposalPayload {
        proposal_type: ProposalType::Visit,
        time_start: now() + 86_400_000,
        time_end: now() + 90_000_000,
        timezone: "America/Mexico_City".into(),
        meeting_type: Some(MeetingType::OnSite),
        location: Some("Av. Reforma 222".into()),
        from_resource_address: None,
        status: ProposalStatus::Pending,
        expires_at,
        created_by_role: CreatedByRole::Owner,
    }
    .to_json()
}

/// A support thread about `resource`: alice owns the resource, carol is the client.
async fn support_thread(
    lab: &mut Lab,
    alice: &mut Device,
    carol: &mut Device,
    resource: &str,
) -> ConvId {
    let link = ResourceLink {
        resource: ResourceId::new(resource).unwrap(),
        client: acc("carol"),
        owner: acc("alice"),
    };
    let (sd, create) = write::support_creation_change(&tenant(), &link).unwrap();
    lab.accept(alice, &sd, create).await;
    lab.pull(carol, &sd).await;
    sd.conv_id().unwrap().clone()
}

async fn post_proposal(
    lab: &mut Lab,
    alice: &mut Device,
    conv: &ConvId,
    id: &str,
    expires: Option<i64>,
) {
    let mut fields = text_fields("alice", "Visit on Friday?");
    fields[1] = (KIND, s("proposal"));
    fields.push((PAYLOAD, s(&proposal_payload(expires))));
    fields.push((STATUS, s("pending")));
    let (bucket, change) = raw_post(alice, conv, id, &fields);
    lab.accept(alice, &bucket, change).await;
}

async fn proposal_accepted_by_own_author_not_counterparty(lab: &mut Lab) {
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(lab, &mut alice, &mut carol, "room-25").await;
    post_proposal(lab, &mut alice, &c, "p1", None).await;
    let bucket = bucket_doc(&c);
    let change = raw_put(
        &mut alice,
        &bucket,
        &[MESSAGES, "p1"],
        &[(STATUS, s("accepted"))],
    );
    lab.reject(&alice, &bucket, change, "not_counterparty")
        .await;
    lab.pull(&mut carol, &bucket).await;
    let twin = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p1"],
        &[(STATUS, s("accepted"))],
    );
    lab.accept(&mut carol, &bucket, twin).await;
    let p = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(p[0].status, Some(ProposalStatus::Accepted));
}

async fn proposal_answered_after_expiry(lab: &mut Lab) {
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(lab, &mut alice, &mut carol, "room-26").await;
    post_proposal(lab, &mut alice, &c, "p1", Some(now() - 60_000)).await;
    post_proposal(lab, &mut alice, &c, "p2", Some(now() + 3_600_000)).await;
    let bucket = bucket_doc(&c);
    lab.pull(&mut carol, &bucket).await;
    let change = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p1"],
        &[(STATUS, s("accepted"))],
    );
    lab.reject(&carol, &bucket, change, "proposal_expired")
        .await;
    let twin = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p2"],
        &[(STATUS, s("rejected"))],
    );
    lab.accept(&mut carol, &bucket, twin).await;
}

// ---------- what the validator checks op by op ----------

async fn new_object_smuggling_a_forbidden_write(lab: &mut Lab) {
    let mut f = fixture(lab, "a27").await;
    let mut carol = Device::new("carol", 1);
    lab.pull(&mut carol, &f.cd).await;

    let mut fields = text_fields("bob", "ghost");
    fields.push((DELETED_AT, ScalarValue::Int(now())));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    lab.reject(&f.bob, &bucket, change, "invalid_value").await;
    let mut fields = text_fields("bob", "ghost");
    fields.push((STATUS, s("accepted")));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    lab.reject(&f.bob, &bucket, change, "invalid_value").await;

    let me_owner = |dev: &mut Device, cd: &DocId, who: &str| {
        raw(dev, cd, |tx| {
            let members = obj(&*tx, &[MEMBERS]);
            let m = tx.put_object(&members, who, ObjType::Map).unwrap();
            tx.put(&m, ROLE, "owner").unwrap();
            tx.put(&m, STATUS, "active").unwrap();
        })
    };
    let cd = f.cd.clone();
    let change = me_owner(&mut f.bob, &cd, "bob");
    lab.reject(&f.bob, &cd, change, "immutable_field").await;
    let change = me_owner(&mut carol, &cd, "carol");
    lab.reject(&carol, &cd, change, "role_too_high").await;

    let pin = |dev: &mut Device, extra: bool| {
        raw(dev, &cd, |tx| {
            let pins = obj(&*tx, &[PINS]);
            let p = tx.put_object(&pins, "m1", ObjType::Map).unwrap();
            tx.put(&p, BY, "alice").unwrap();
            tx.put(&p, AT, now()).unwrap();
            if extra {
                tx.put(&p, "note", "smuggled").unwrap();
            }
        })
    };
    let change = pin(&mut f.alice, true);
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    let twin = pin(&mut f.alice, false);
    lab.accept(&mut f.alice, &cd, twin).await;
    let conv = read::read_conversation(&lab.read(&cd).await, f.conv.clone());
    assert!(conv.pins.contains_key(&msg_id("m1")));
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "alive"));
    lab.accept(&mut f.bob, &bucket, twin).await;
}

async fn delete_whose_pred_targets_another_users_value(lab: &mut Lab) {
    let mut f = fixture(lab, "a28").await;
    let bucket = f.bucket.clone();
    let (alice_key, bob_key) = (
        reaction_key("m1", "alice", "👍"),
        reaction_key("m1", "bob", "👍"),
    );
    let a = raw_reaction(&mut f.alice, &bucket, &alice_key, Some(now()));
    lab.accept(&mut f.alice, &bucket, a).await;
    lab.pull(&mut f.bob, &bucket).await;
    let b = raw_reaction(&mut f.bob, &bucket, &bob_key, Some(now()));
    lab.accept(&mut f.bob, &bucket, b).await;

    let doc = lab.read(&bucket).await;
    let reactions = obj(&doc, &[REACTIONS]);
    let alice_op = op_id_of(&doc, &reactions, &alice_key);
    let bob_op = op_id_of(&doc, &reactions, &bob_key);

    let own_delete = raw_reaction(&mut f.bob, &bucket, &bob_key, None);
    assert_eq!(
        own_delete.decode().operations[0]
            .pred
            .iter()
            .collect::<Vec<_>>(),
        vec![&bob_op]
    );
    let sneaky = tamper(&own_delete, |e| {
        e.operations[0].pred = vec![alice_op.clone()].into()
    });
    lab.reject(&f.bob, &bucket, sneaky, "conflicting_write")
        .await;
    let both = tamper(&own_delete, |e| {
        e.operations[0].pred = vec![alice_op.clone(), bob_op.clone()].into()
    });
    lab.reject(&f.bob, &bucket, both, "conflicting_write").await;
    let theirs = raw_reaction(&mut f.bob, &bucket, &alice_key, None);
    lab.reject(&f.bob, &bucket, theirs.clone(), "not_own_key")
        .await;
    let blind = tamper(&theirs, |e| e.operations[0].pred = Vec::new().into());
    lab.reject(&f.bob, &bucket, blind, "conflicting_write")
        .await;

    lab.accept(&mut f.bob, &bucket, own_delete).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(
        m[0].reactions["👍"].keys().collect::<Vec<_>>(),
        vec![&acc("alice")]
    );
}

async fn put_conflicting_with_existing_value_conflicting_write(lab: &mut Lab) {
    let mut f = fixture(lab, "a29").await;
    let cd = f.cd.clone();
    let edit = raw_put(&mut f.alice, &cd, &[INFO], &[(TITLE, s("renamed"))]);
    assert_eq!(edit.decode().operations[0].pred.len(), 1);
    let blind = tamper(&edit, |e| e.operations[0].pred = Vec::new().into());
    lab.reject(&f.alice, &cd, blind, "conflicting_write").await;
    let phantom_pred = edit.decode().operations[0].pred.clone();
    let desc = raw_put(&mut f.alice, &cd, &[INFO], &[(DESCRIPTION, s("about"))]);
    let phantom = tamper(&desc, |e| e.operations[0].pred = phantom_pred);
    lab.reject(&f.alice, &cd, phantom, "conflicting_write")
        .await;
    let race = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    lab.accept(&mut f.alice, &cd, edit).await;
    lab.reject(&f.dave, &cd, race, "conflicting_write").await;
    lab.pull(&mut f.dave, &cd).await;
    let rebased = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    lab.accept(&mut f.dave, &cd, rebased).await;
    assert_eq!(lab.conversation(&cd).await["title"], "dave's");
}

async fn unknown_keys(lab: &mut Lab) {
    let mut f = fixture(lab, "a30").await;
    let cd = f.cd.clone();
    let change = raw_put(&mut f.alice, &cd, &[], &[("hack", s("x"))]);
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[("superpower", ScalarValue::Boolean(true))],
    );
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[("allow_everything", ScalarValue::Boolean(true))],
    );
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    let mut fields = text_fields("bob", "hi");
    fields.push(("color", s("red")));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    lab.reject(&f.bob, &bucket, change, "unknown_key").await;
    let change = raw_put(&mut f.bob, &bucket, &[], &[("hack", s("x"))]);
    lab.reject(&f.bob, &bucket, change, "unknown_key").await;

    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[("can_pin_messages", ScalarValue::Boolean(true))],
    );
    lab.accept(&mut f.alice, &cd, twin).await;
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    lab.accept(&mut f.bob, &bucket, twin).await;
}

async fn wrong_types(lab: &mut Lab) {
    let mut f = fixture(lab, "a31").await;
    let cd = f.cd.clone();
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[(ROLE, ScalarValue::Int(5))],
    );
    lab.reject(&f.alice, &cd, change, "wrong_type").await;
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, s("false"))],
    );
    lab.reject(&f.alice, &cd, change, "wrong_type").await;
    let change = raw(&mut f.alice, &cd, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put_object(&info, TITLE, ObjType::Map).unwrap();
    });
    lab.reject(&f.alice, &cd, change, "wrong_type").await;
    let mut fields = text_fields("bob", "hi");
    fields[3] = (CREATED_AT, s("now"));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    lab.reject(&f.bob, &bucket, change, "wrong_type").await;
    let change = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        tx.put(&reactions, reaction_key("m1", "bob", "👍"), "yes")
            .unwrap();
    });
    lab.reject(&f.bob, &bucket, change, "wrong_type").await;

    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("moderator"))],
    );
    lab.accept(&mut f.alice, &cd, twin).await;
    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(false))],
    );
    lab.accept(&mut f.alice, &cd, twin).await;
}

async fn oversize_body_too_long(lab: &mut Lab) {
    let mut f = fixture(lab, "a32").await;
    let (bucket, change) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("bob", &"x".repeat(4001)),
    );
    lab.reject(&f.bob, &bucket, change, "too_long").await;
    let (bucket, mine) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "short"));
    lab.accept(&mut f.bob, &bucket, mine).await;
    let edit = raw_put(
        &mut f.bob,
        &bucket,
        &[MESSAGES, "b1"],
        &[
            (BODY, s(&"é".repeat(4001))),
            (EDITED_AT, ScalarValue::Int(now())),
        ],
    );
    lab.reject(&f.bob, &bucket, edit, "too_long").await;
    let (bucket, twin) = raw_post(
        &mut f.bob,
        &f.conv,
        "b2",
        &text_fields("bob", &"é".repeat(4000)),
    );
    lab.accept(&mut f.bob, &bucket, twin).await;
}

async fn oversize_payload_too_long(lab: &mut Lab) {
    let mut f = fixture(lab, "a33").await;
    let payload = |bytes: usize| format!("\"{}\"", "x".repeat(bytes - 2));
    let mut fields = text_fields("bob", "data");
    fields.push((PAYLOAD, s(&payload(8001))));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    lab.reject(&f.bob, &bucket, change, "too_long").await;
    let mut fields = text_fields("bob", "data");
    fields.push((PAYLOAD, s(&payload(8000))));
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    lab.accept(&mut f.bob, &bucket, twin).await;
}

async fn list_text_and_counter_ops_unsupported_op(lab: &mut Lab) {
    let mut f = fixture(lab, "a34").await;
    let bucket = f.bucket.clone();
    for kind in [ObjType::List, ObjType::Text] {
        let change = raw(&mut f.bob, &bucket, |tx| {
            put_message(tx, "b1", &text_fields("bob", "hi"));
            let m = obj(&*tx, &[MESSAGES, "b1"]);
            tx.put_object(&m, MENTIONS, kind).unwrap();
        });
        lab.reject(&f.bob, &bucket, change, "unsupported_op").await;
    }
    let change = raw(&mut f.bob, &bucket, |tx| {
        let list = tx.put_object(ROOT, "list", ObjType::List).unwrap();
        tx.insert(&list, 0, "x").unwrap();
    });
    lab.reject(&f.bob, &bucket, change, "unsupported_op").await;
    let react = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(now()),
    );
    let inc = tamper(&react, |e| e.operations[0].action = OpType::Increment(1));
    lab.reject(&f.bob, &bucket, inc, "unsupported_op").await;
    lab.accept(&mut f.bob, &bucket, react).await;
}

async fn write_into_a_message_that_does_not_exist(lab: &mut Lab) {
    let mut f = fixture(lab, "a35").await;
    let bucket = f.bucket.clone();
    let change = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("nope", "bob", "👍"),
        Some(now()),
    );
    lab.reject(&f.bob, &bucket, change, "message_missing").await;
    let (_, mine) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "typo"));
    lab.accept(&mut f.bob, &bucket, mine).await;
    let edit = raw_put(
        &mut f.bob,
        &bucket,
        &[MESSAGES, "b1"],
        &[(BODY, s("fixed")), (EDITED_AT, ScalarValue::Int(now()))],
    );
    let stranger = ActorId::from(&[9_u8; 16][..]);
    let nowhere = tamper(&edit, |e| {
        for op in &mut e.operations {
            op.obj = ObjectId::Id(OpId(2, stranger.clone()));
            op.pred = Vec::new().into();
        }
    });
    lab.reject(&f.bob, &bucket, nowhere, "unknown_object").await;
    lab.accept(&mut f.bob, &bucket, edit).await;
}

async fn write_into_a_hidden_object(lab: &mut Lab) {
    let pd = DocId::private(&tenant(), &acc("alice"));
    let (mut phone, mut laptop) = (Device::new("alice", 1), Device::new("alice", 2));
    let contact = |nickname: &str| Contact {
        kind: ContactKind::Person,
        phone: None,
        email: None,
        account: Some(acc("bob")),
        nickname: Some(nickname.into()),
    };
    for id in ["c1", "c2"] {
        let change = phone
            .write(&pd, |d, t| {
                write::set_contact(d, t, now(), &ContactId::new(id).unwrap(), &contact("Bob"))
            })
            .unwrap();
        lab.accept(&mut phone, &pd, change).await;
    }
    lab.pull(&mut laptop, &pd).await;
    let rename = raw_put(
        &mut laptop,
        &pd,
        &[CONTACTS, "c1"],
        &[(NICKNAME, s("Bobby"))],
    );
    lab.accept(&mut laptop, &pd, rename).await;
    lab.pull(&mut phone, &pd).await;

    let delete = raw(&mut phone, &pd, |tx| {
        let contacts = obj(&*tx, &[CONTACTS]);
        tx.delete(&contacts, "c1").unwrap();
    });
    lab.accept(&mut phone, &pd, delete).await;
    let replace = phone
        .write(&pd, |d, t| {
            write::set_contact(
                d,
                t,
                now(),
                &ContactId::new("c2").unwrap(),
                &contact("Robert"),
            )
        })
        .unwrap();
    lab.accept(&mut phone, &pd, replace).await;

    let late = raw_put(&mut laptop, &pd, &[CONTACTS, "c1"], &[(NICKNAME, s("Rob"))]);
    lab.reject(&laptop, &pd, late, "hidden_object").await;
    let late = raw_put(&mut laptop, &pd, &[CONTACTS, "c2"], &[(NICKNAME, s("Rob"))]);
    lab.reject(&laptop, &pd, late, "hidden_object").await;
    lab.pull(&mut laptop, &pd).await;
    let twin = raw_put(&mut laptop, &pd, &[CONTACTS, "c2"], &[(NICKNAME, s("Rob"))]);
    lab.accept(&mut laptop, &pd, twin).await;
    let private = read::read_private(&lab.read(&pd).await);
    assert_eq!(private.contacts.len(), 1);
}

// ---------- attacks only the wire has ----------

/// A token of tenant "evil" reaches nothing of "acme"; evil's document with the same key is
/// another document; an acme change replayed into an evil document is refused.
async fn another_tenant(lab: &mut Lab) {
    let mut alice = Device::new("alice", 1);
    let room = create(lab, "w-room", ConvKind::Group, &mut alice, &mut [], |_| {}).await;
    let acme_cd = conv_doc(&room);
    let acme_creation = alice
        .doc(&acme_cd)
        .unwrap()
        .get_last_local_change()
        .unwrap();
    let (bucket, m1) = text_change(&mut alice, &room, "m1", "acme only");
    lab.accept(&mut alice, &bucket, m1).await;
    let (conv_before, bucket_before) = (lab.view(&acme_cd).await, lab.view(&bucket).await);

    let mut mallory = Client::connect(&lab.url(), &token("evil", "mallory", false, 3600))
        .await
        .unwrap();
    assert_eq!(mallory.tenant, "evil");
    // Reading an acme document.
    for doc in [&acme_cd, &bucket] {
        mallory
            .send(&ClientFrame::Subscribe {
                doc: doc.to_string(),
                after: 0,
            })
            .await
            .unwrap();
        assert_eq!(
            next_error(&mut mallory).await,
            ("wrong_tenant".into(), false, Some(doc.to_string()))
        );
    }
    // Writing one: a well-formed message, and a replay of alice's accepted creation.
    let mut mdev = Device::new("mallory", 1);
    let (_, pwn) = raw_post(&mut mdev, &room, "x1", &text_fields("mallory", "pwned"));
    for (doc, change) in [(&bucket, pwn), (&acme_cd, acme_creation.clone())] {
        let answers = mallory.submit(doc, &[change]).await.unwrap();
        assert!(
            matches!(answers.as_slice(), [Answer::Error { code, .. }] if code == "wrong_tenant"),
            "{answers:?}"
        );
    }
    // Signalling into it.
    mallory
        .send(&ClientFrame::Signal {
            doc: acme_cd.to_string(),
            kind: SignalKind::Typing,
            data: None,
        })
        .await
        .unwrap();
    assert_eq!(next_error(&mut mallory).await.0, "wrong_tenant");
    // A service token of tenant evil is no key to acme either.
    let mut evil_svc = Client::connect(&lab.url(), &token("evil", "svc", true, 3600))
        .await
        .unwrap();
    let err = evil_svc
        .subscribe(&acme_cd, 0)
        .await
        .expect_err("other tenant");
    assert!(err.to_string().starts_with("wrong_tenant:"), "{err}");
    evil_svc.close().await;
    // None of it was fatal.
    ping(&mut mallory, 1).await;
    // REST: the evil tenant does not see acme's conversation under its id.
    let (status, _) = lab.get("evil", "mallory", "/v1/conversations/w-room").await;
    assert_eq!(status, 404);

    // Evil's own "w-room" (an alice of tenant evil, even with the same actor bytes) is another
    // document: creating it leaves acme's alone.
    let evil = TenantId::new("evil").unwrap();
    let evil_cd = DocId::conv(&evil, &room);
    let mut evil_alice = Device::new("alice", 1);
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: acc("alice"),
        created_at: now() - 1000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info {
            title: Some("evil room".into()),
            ..Info::default()
        },
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(acc("alice"), Role::Owner)],
    };
    let change = evil_alice
        .write(&evil_cd, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    lab.accept(&mut evil_alice, &evil_cd, change).await;
    assert_eq!(lab.conversation(&evil_cd).await["title"], "evil room");
    assert_eq!(lab.conversation(&acme_cd).await["title"], "w-room title");
    assert_eq!(lab.view(&acme_cd).await, conv_before, "acme's room moved");
    assert_eq!(
        lab.view(&bucket).await,
        bucket_before,
        "acme's bucket moved"
    );
    match (lab.stored(&evil_cd).await, &conv_before.stored) {
        (Stored::Log(evil_log), Stored::Log(acme_log)) => {
            assert_eq!(evil_log.len(), 1);
            assert!(acme_log.iter().all(|(_, h)| *h != evil_log[0].1));
        }
        other => panic!("{other:?}"),
    }
    // Acme's accepted creation replayed into evil documents by evil's own alice: its dependency
    // (acme's genesis, derived from the acme id) is in neither.
    lab.reject(
        &evil_alice,
        &DocId::conv(&evil, &conv_id("w-room2")),
        acme_creation.clone(),
        "missing_dependency",
    )
    .await;
    lab.reject(&evil_alice, &evil_cd, acme_creation, "missing_dependency")
        .await;
    mallory.close().await;
}

/// Subscribing to a conversation one is not in, to another account's private document, to a
/// conversation that does not exist; a refused subscription gets no pushes.
async fn reading_what_one_may_not(lab: &mut Lab) {
    let mut f = fixture(lab, "w-read").await;
    let mut carol = Client::connect(&lab.url(), &token(TENANT, "carol", false, 3600))
        .await
        .unwrap();
    let nothing = conv_doc(&conv_id("w-nothing"));
    let alice_private = DocId::private(&tenant(), &acc("alice"));
    for doc in [&f.cd, &f.bucket, &nothing, &alice_private] {
        carol
            .send(&ClientFrame::Subscribe {
                doc: doc.to_string(),
                after: 0,
            })
            .await
            .unwrap();
        assert_eq!(
            next_error(&mut carol).await,
            ("forbidden".into(), false, Some(doc.to_string())),
            "{doc}"
        );
    }
    carol
        .send(&ClientFrame::Subscribe {
            doc: "acme/conv/a.b".into(),
            after: 0,
        })
        .await
        .unwrap();
    assert_eq!(next_error(&mut carol).await.0, "invalid_doc");
    // Another member and even a service account may not read alice's private document.
    for (who, service) in [("bob", false), ("svc", true)] {
        let mut c = Client::connect(&lab.url(), &token(TENANT, who, service, 3600))
            .await
            .unwrap();
        let err = c.subscribe(&alice_private, 0).await.expect_err(who);
        assert!(err.to_string().starts_with("forbidden:"), "{who}: {err}");
        c.close().await;
    }
    // Nothing alice writes afterwards reaches carol.
    let (bucket, m2) = text_change(&mut f.alice, &f.conv, "m2", "members only");
    lab.accept(&mut f.alice, &bucket, m2).await;
    let edit = raw_put(&mut f.alice, &f.cd, &[INFO], &[(TITLE, s("secret plans"))]);
    lab.accept(&mut f.alice, &f.cd, edit).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ping(&mut carol, 2).await;
    let leaked: Vec<&ServerFrame> = carol
        .pending()
        .iter()
        .filter(|fr| {
            matches!(
                fr,
                ServerFrame::Changes { .. }
                    | ServerFrame::Snapshot { .. }
                    | ServerFrame::Synced { .. }
            )
        })
        .collect();
    assert!(leaked.is_empty(), "pushed to a refused reader: {leaked:?}");
    carol.close().await;
}

/// An accepted change of one document submitted to another: plain, with its dependencies
/// rewritten to the target's heads, and as an honest write of a message from another bucket.
async fn replaying_one_documents_change_into_another(lab: &mut Lab) {
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let a = create(
        lab,
        "w-rpa",
        ConvKind::Group,
        &mut alice,
        &mut [(&mut bob, Role::Member)],
        |_| {},
    )
    .await;
    let b = create(
        lab,
        "w-rpb",
        ConvKind::Group,
        &mut alice,
        &mut [(&mut bob, Role::Member)],
        |_| {},
    )
    .await;
    let bucket_a = bucket_doc(&a);
    let (_, m1) = raw_post(&mut alice, &a, "m1", &text_fields("alice", "for a only"));
    let seq = lab.accept(&mut alice, &bucket_a, m1.clone()).await;
    assert_eq!(seq, 1);

    // Resubmitting it to its own document is an ack with the same seq, and stores nothing.
    let before = lab.view(&bucket_a).await;
    let again = lab
        .submit("alice", &bucket_a, std::slice::from_ref(&m1))
        .await;
    assert!(
        matches!(again.as_slice(), [Answer::Ack { seq: 1, hash }] if hash[..] == m1.hash().0[..]),
        "{again:?}"
    );
    assert_eq!(lab.view(&bucket_a).await, before);

    // The next bucket of the same conversation, another conversation's bucket, and the
    // conversation document: the change depends on bucket A's genesis (derived from A's id),
    // which none of them holds.
    let next_day = DocId::msgs(&tenant(), &a, now().div_euclid(DEFAULT_BUCKET_MS) + 1);
    let other_conv = bucket_doc(&b);
    for target in [&next_day, &other_conv, &conv_doc(&a)] {
        lab.reject(&alice, target, m1.clone(), "missing_dependency")
            .await;
    }
    // The same change re-pointed at the target's own heads: its ops write into bucket A's
    // `messages` map, an object the target does not have.
    for target in [&next_day, &other_conv] {
        let heads = cdoc::genesis(target).unwrap().get_heads();
        let repointed = tamper(&m1, |e| e.deps = heads.clone());
        lab.reject(&alice, target, repointed, "unknown_object")
            .await;
    }
    // An honest write of a message created today into tomorrow's bucket.
    let misplaced = raw(&mut alice, &next_day, |tx| {
        put_message(tx, "m1", &text_fields("alice", "for a only"))
    });
    lab.reject(&alice, &next_day, misplaced, "bucket_mismatch")
        .await;
    // Bob replaying alice's change into B: the dependency check comes first.
    lab.reject(&bob, &other_conv, m1, "missing_dependency")
        .await;
}

// ---------- the suite per backend ----------

type Case = for<'a> fn(&'a mut Lab) -> LocalBoxFuture<'a, ()>;

macro_rules! cases {
    ($($f:ident),* $(,)?) => {
        vec![$({
            let case: Case = |lab| Box::pin($f(lab));
            (stringify!($f), case)
        }),*]
    };
}

// ---------- limits and checks (issue 13) ----------

/// `javascript:`, `data:` and plain `http:` URLs are refused in every URL field.
async fn url_fields_only_https(lab: &mut Lab) {
    let mut f = fixture(lab, "w-url").await;
    let cd = f.cd.clone();
    for (field, bad) in [
        (AVATAR, "javascript:alert(document.cookie)"),
        (THEME_BACKGROUND, "data:text/html,<script>alert(1)</script>"),
        (AVATAR, "http://plain.example.com/a.png"),
    ] {
        let change = raw_put(&mut f.alice, &cd, &[INFO], &[(field, s(bad))]);
        lab.reject(&f.alice, &cd, change, "invalid_value").await;
    }
    let pd = DocId::profile(&tenant(), &acc("bob"));
    let bad = raw(&mut f.bob, &pd, |tx| {
        tx.put(ROOT, AVATAR, "javascript:alert(1)").unwrap();
    });
    lab.reject(&f.bob, &pd, bad, "invalid_value").await;
    let mut fields = text_fields("bob", "look");
    fields.push((
        ATTACHMENTS,
        s(r#"[{"id":"a1","kind":"image","url":"javascript:alert(1)"}]"#),
    ));
    let (bucket, bad) = raw_post(&mut f.bob, &f.conv, "u1", &fields);
    lab.reject(&f.bob, &bucket, bad, "invalid_value").await;
    // Twin: https.
    let ok = raw_put(
        &mut f.alice,
        &cd,
        &[INFO],
        &[(AVATAR, s("https://cdn.example.com/g.png"))],
    );
    lab.accept(&mut f.alice, &cd, ok).await;
}

/// 3,000 reaction keys in one change (`too_many_ops`); a 21st reaction of one member on one
/// message (`too_many_reactions`).
async fn too_many_ops_and_reactions(lab: &mut Lab) {
    use confab_core::limits::REACTIONS_PER_MEMBER_MAX;
    let mut f = fixture(lab, "w-caps").await;
    let bucket = f.bucket.clone();
    let flood = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        for i in 0..3000 {
            tx.put(
                &reactions,
                reaction_key("m1", "bob", &format!("e{i}")),
                now(),
            )
            .unwrap();
        }
    });
    lab.reject(&f.bob, &bucket, flood, "too_many_ops").await;
    for i in 0..REACTIONS_PER_MEMBER_MAX {
        let change = raw_reaction(
            &mut f.bob,
            &bucket,
            &reaction_key("m1", "bob", &format!("e{i}")),
            Some(now()),
        );
        lab.accept(&mut f.bob, &bucket, change).await;
    }
    let one_more = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "extra"),
        Some(now()),
    );
    lab.reject(&f.bob, &bucket, one_more, "too_many_reactions")
        .await;
}

/// A second creation of an existing group, from a device that never saw the first.
async fn second_creation_already_created(lab: &mut Lab) {
    let f = fixture(lab, "w-twice").await;
    let mut other = Device::new("alice", 9);
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: acc("alice"),
        created_at: now(),
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(acc("alice"), Role::Owner)],
    };
    let again = other
        .write(&f.cd, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    lab.reject(&other, &f.cd, again, "already_created").await;
}

/// An accepted change resubmitted by someone who may not read its document is refused
/// (`not_member`, `not_owner`), not acknowledged; its writer and readers still get the ack.
async fn resubmitting_anothers_change(lab: &mut Lab) {
    let mut f = fixture(lab, "w-resub").await;
    let (bucket, secret) = text_change(&mut f.bob, &f.conv, "b1", "members only");
    let seq = lab.accept(&mut f.bob, &bucket, secret.clone()).await;
    let carol = Device::new("carol", 1);
    lab.reject_resubmission(&carol, &bucket, secret.clone(), "not_member")
        .await;
    let creation = lab.catch_up(&f.cd).await.unwrap()[0].1.clone();
    let creation = Change::try_from(&creation[..]).unwrap();
    lab.reject_resubmission(&carol, &f.cd, creation, "not_member")
        .await;
    for who in ["alice", "bob"] {
        let answers = lab
            .submit(who, &bucket, std::slice::from_ref(&secret))
            .await;
        assert!(
            matches!(answers.as_slice(), [Answer::Ack { hash, seq: s }] if hash[..] == secret.hash().0[..] && *s == seq),
            "{who}: {answers:?}"
        );
    }
    // Alice's private document.
    let pd = DocId::private(&tenant(), &acc("alice"));
    // Earlier cases wrote there with this actor.
    lab.pull(&mut f.alice, &pd).await;
    let draft = f
        .alice
        .write(&pd, |d, t| {
            write::set_draft(d, t, now(), &f.conv, Some("psst"))
        })
        .unwrap();
    lab.accept(&mut f.alice, &pd, draft.clone()).await;
    lab.reject_resubmission(&f.bob, &pd, draft, "not_owner")
        .await;
}

/// A signal where the sender may not read is refused with an error frame naming the
/// document; a relayed signal's `from` is the sender's authenticated account, whatever the
/// frame said.
async fn signals_only_from_readers(lab: &mut Lab) {
    let f = fixture(lab, "w-sig").await;
    let url = lab.url();
    let mut alice = Client::connect(&url, &token(TENANT, "alice", false, 3600))
        .await
        .unwrap();
    alice.subscribe(&f.cd, 0).await.unwrap();
    let signal = |doc: &DocId| ClientFrame::Signal {
        doc: doc.to_string(),
        kind: SignalKind::Typing,
        data: None,
    };
    // Carol is no member: refused, and nothing reaches alice.
    let mut carol = Client::connect(&url, &token(TENANT, "carol", false, 3600))
        .await
        .unwrap();
    let nothing = conv_doc(&conv_id("w-sig-nothing"));
    for doc in [&f.cd, &nothing] {
        carol.send(&signal(doc)).await.unwrap();
        assert_eq!(
            next_error(&mut carol).await,
            ("forbidden".into(), false, Some(doc.to_string())),
            "{doc}"
        );
    }
    // Signals go to conversation documents only.
    let private = DocId::private(&tenant(), &acc("carol"));
    for doc in [&f.bucket, &private] {
        carol.send(&signal(doc)).await.unwrap();
        assert_eq!(
            next_error(&mut carol).await,
            ("invalid_doc".into(), false, Some(doc.to_string())),
            "{doc}"
        );
    }
    ping(&mut carol, 1).await;
    // Bob signals with a forged `from` (and a `from` inside data): alice sees bob.
    let mut bob = Client::connect(&url, &token(TENANT, "bob", false, 3600))
        .await
        .unwrap();
    let mut forged = serde_json::to_value(ClientFrame::Signal {
        doc: f.cd.to_string(),
        kind: SignalKind::Typing,
        data: Some(r#"{"from":"alice"}"#.into()),
    })
    .unwrap();
    forged["from"] = Value::String("dave".into());
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&forged, &mut bytes).unwrap();
    bob.send_bytes(bytes).await.unwrap();
    let from = alice
        .wait_for(WAIT, |fr| match fr {
            ServerFrame::Signal { doc, from, .. } if *doc == f.cd.to_string() => Some(from.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(from, "bob");
    ping(&mut bob, 2).await;
    assert!(
        !bob.pending()
            .iter()
            .any(|fr| matches!(fr, ServerFrame::Error { .. })),
        "a member's signal is not refused: {:?}",
        bob.pending()
    );
    // Nothing from carol reached alice.
    ping(&mut alice, 3).await;
    let from_carol = alice
        .pending()
        .iter()
        .any(|fr| matches!(fr, ServerFrame::Signal { from, .. } if from == "carol"));
    assert!(!from_carol, "a refused signal was relayed");
    for c in [alice, bob, carol] {
        c.close().await;
    }
}

fn all_cases() -> Vec<(&'static str, Case)> {
    cases![
        forged_actor_genesis_actor,
        forged_actor_creation_actor,
        actor_bound_to_other,
        seq_gap_and_bad_start_op,
        start_op_below_dependencies_max_op_bad_start_op,
        fresh_key_numbered_below_dependencies_bad_start_op,
        op_numbered_below_the_value_it_replaces_bad_start_op,
        missing_dependency,
        garbage_bytes_malformed_change,
        duplicate_key_and_empty_change,
        author_mismatch,
        self_promotion_role_too_high,
        demoting_the_owner_owner_protected,
        removing_the_owner_owner_protected,
        member_writing_settings_no_permission,
        direct_conversation_third_account_direct_fixed_members,
        removed_member_later_message_member_inactive,
        editing_anothers_message_not_author,
        deleting_anothers_reaction_not_own_key,
        subscriber_posting_in_channel_channel_admins_only,
        member_posting_under_admins_only_send_policy,
        reacting_where_reactions_are_off,
        media_where_attachments_are_off,
        thread_deeper_than_max_thread_too_deep,
        proposal_accepted_by_own_author_not_counterparty,
        proposal_answered_after_expiry,
        new_object_smuggling_a_forbidden_write,
        delete_whose_pred_targets_another_users_value,
        put_conflicting_with_existing_value_conflicting_write,
        unknown_keys,
        wrong_types,
        oversize_body_too_long,
        oversize_payload_too_long,
        list_text_and_counter_ops_unsupported_op,
        write_into_a_message_that_does_not_exist,
        write_into_a_hidden_object,
        another_tenant,
        reading_what_one_may_not,
        replaying_one_documents_change_into_another,
        url_fields_only_https,
        too_many_ops_and_reactions,
        second_creation_already_created,
        resubmitting_anothers_change,
        signals_only_from_readers,
    ]
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}

/// Every case on one server, in turn; a failing case does not hide the ones after it.
async fn attack_suite(backend: Backend) {
    let started = Instant::now();
    let mut lab = Lab::start(backend).await;
    let mut failures = Vec::new();
    let cases = all_cases();
    for (name, case) in &cases {
        let t = Instant::now();
        if let Err(e) = AssertUnwindSafe(case(&mut lab)).catch_unwind().await {
            failures.push(format!("{name}: {}", panic_text(&*e)));
        }
        eprintln!("{backend:?} {name}: {:?}", t.elapsed());
    }
    if failures.is_empty() {
        lab.check_audit().await;
    }
    eprintln!(
        "{backend:?}: {} cases, {} rejections checked, {:?}",
        cases.len(),
        lab.audit.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn attacks_on_sqlite() {
    attack_suite(Backend::Sqlite).await;
}

#[tokio::test]
async fn attacks_on_postgres() {
    attack_suite(Backend::Postgres).await;
}

// ---------- protocol-level attacks ----------

async fn protocol_attacks(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[
            "--max-frame-bytes",
            "65536",
            "--max-changes-per-submit",
            "4",
            "--rate-per-sec",
            "50",
            "--rate-burst",
            "20",
        ],
    )
    .await
    .unwrap();
    let mut lab = Lab::on(server);
    let url = lab.url();
    let alice_token = token(TENANT, "alice", false, 3600);

    // The welcome advertises the limits.
    let mut c = Client::raw(&url).await.unwrap();
    c.send(&hello(PROTOCOL_VERSION, &alice_token))
        .await
        .unwrap();
    match c.recv(WAIT).await.unwrap() {
        ServerFrame::Welcome {
            max_frame,
            max_changes,
            account,
            ..
        } => assert_eq!(
            (max_frame, max_changes, account.as_str()),
            (65536, 4, "alice")
        ),
        other => panic!("expected welcome, got {other:?}"),
    }
    // Garbage after hello: `bad_frame` each, not fatal; then a ping still gets its pong.
    let mut nested = vec![0x81_u8; 10_000];
    nested.push(0x00);
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xff, 0x00, 0x13],
        b"hello world".to_vec(),
        Vec::new(),
        // {"t": "launch"}: a CBOR map that is no frame.
        vec![0xa1, 0x61, b't', 0x66, b'l', b'a', b'u', b'n', b'c', b'h'],
        // {"t": "submit", "doc": 5}: a frame with a field of the wrong type.
        vec![
            0xa2, 0x61, b't', 0x66, b's', b'u', b'b', b'm', b'i', b't', 0x63, b'd', b'o', b'c',
            0x05,
        ],
        // Ten thousand nested arrays: past the decoder's recursion limit.
        nested,
    ];
    for g in &garbage {
        c.send_bytes(g.clone()).await.unwrap();
        assert_eq!(
            next_error(&mut c).await,
            ("bad_frame".into(), false, None),
            "{:?}",
            &g[..g.len().min(16)]
        );
    }
    // hello again: refused, not fatal.
    c.send(&hello(PROTOCOL_VERSION, &alice_token))
        .await
        .unwrap();
    assert_eq!(
        next_error(&mut c).await,
        ("already_authenticated".into(), false, None)
    );
    // A signal over the limit (256 bytes by default).
    c.send(&ClientFrame::Signal {
        doc: "acme/conv/p-any".into(),
        kind: SignalKind::Presence,
        data: Some("x".repeat(300)),
    })
    .await
    .unwrap();
    assert_eq!(next_error(&mut c).await.0, "signal_too_large");
    ping(&mut c, 1).await;
    c.close().await;

    // Before hello: garbage, or any frame but hello, is fatal (close 1008).
    let before_hello: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xff, 0x00, 0x13], "bad_frame"),
        (
            confab_core::protocol::encode_client(&ClientFrame::Ping { nonce: 3 }),
            "unauthenticated",
        ),
        (
            confab_core::protocol::encode_client(&ClientFrame::Subscribe {
                doc: "acme/conv/p-any".into(),
                after: 0,
            }),
            "unauthenticated",
        ),
    ];
    for (bytes, code) in before_hello {
        let mut c = Client::raw(&url).await.unwrap();
        c.send_bytes(bytes).await.unwrap();
        assert_eq!(next_error(&mut c).await, (code.into(), true, None));
        assert_eq!(closed_with(&mut c).await, (1008, code.into()));
    }

    // Hello that cannot be accepted: fatal, with the close code the protocol names.
    let other_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "alice", "tenant": TENANT, "exp": now_ms() / 1000 + 3600, "kind": "user"}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-server-secret"),
    )
    .unwrap();
    let expired = token(TENANT, "alice", false, -3600);
    let hellos: Vec<(ClientFrame, &str, u16)> = vec![
        (hello(99, &alice_token), "unsupported_version", 1008),
        (hello(PROTOCOL_VERSION, &expired), "token_expired", 4001),
        (hello(PROTOCOL_VERSION, &other_secret), "auth_failed", 4001),
        (hello(PROTOCOL_VERSION, "not.a.token"), "auth_failed", 4001),
    ];
    for (frame, code, close_code) in hellos {
        let mut c = Client::raw(&url).await.unwrap();
        c.send(&frame).await.unwrap();
        assert_eq!(next_error(&mut c).await, (code.into(), true, None));
        assert_eq!(closed_with(&mut c).await, (close_code, code.into()));
    }
    // The same tokens over REST: 401 with the same codes.
    for (bearer, code) in [(&expired, "token_expired"), (&other_secret, "auth_failed")] {
        let (status, body) =
            http_get(lab.server.port, "/v1/conversations", Some(bearer.as_str())).await;
        assert_eq!(status, 401, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], code);
    }

    // An oversize frame: `frame_too_large`, not fatal, and nothing of it is stored.
    let mut alice = Device::new("alice", 1);
    let big = conv_doc(&conv_id("p-big"));
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: acc("alice"),
        created_at: now() - 1000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(acc("alice"), Role::Owner)],
    };
    let create_big = alice
        .write(&big, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    let mut c = Client::connect(&url, &alice_token).await.unwrap();
    c.send(&ClientFrame::Submit {
        doc: big.to_string(),
        changes: vec![
            ByteBuf::from(create_big.raw_bytes().to_vec()),
            ByteBuf::from(vec![0_u8; 70_000]),
        ],
    })
    .await
    .unwrap();
    assert_eq!(
        next_error(&mut c).await,
        ("frame_too_large".into(), false, None)
    );
    ping(&mut c, 2).await;
    assert_eq!(lab.stored(&big).await, Stored::Refused("forbidden".into()));
    let answers = c.submit(&big, &[create_big]).await.unwrap();
    assert!(
        matches!(answers.as_slice(), [Answer::Ack { seq: 1, .. }]),
        "{answers:?}"
    );

    // More changes in one submit than allowed: `too_many_changes` for the frame, nothing
    // stored; four (the limit) are fine.
    let lim = conv_doc(&conv_id("p-lim"));
    let create_lim = alice
        .write(&lim, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    let answers = c.submit(&lim, &vec![create_lim.clone(); 5]).await.unwrap();
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Answer::Error { code, .. } if code == "too_many_changes")),
        "{answers:?}"
    );
    assert_eq!(lab.stored(&lim).await, Stored::Refused("forbidden".into()));
    let answers = c.submit(&lim, &[create_lim]).await.unwrap();
    assert!(matches!(answers.as_slice(), [Answer::Ack { .. }]));
    let lim_conv = conv_id("p-lim");
    let messages: Vec<Change> = (1..=4)
        .map(|i| text_change(&mut alice, &lim_conv, &format!("m{i}"), "within").1)
        .collect();
    let answers = c.submit(&bucket_doc(&lim_conv), &messages).await.unwrap();
    assert_eq!(
        answers
            .iter()
            .filter(|a| matches!(a, Answer::Ack { .. }))
            .count(),
        4,
        "{answers:?}"
    );

    // A frame past the WebSocket's hard limit (4 × max_frame, at least 1 MiB) ends that
    // connection, and only that one.
    let mut other = Client::connect(&url, &alice_token).await.unwrap();
    let _ = c.send_bytes(vec![0_u8; 2 << 20]).await;
    let next = c.recv(Duration::from_secs(10)).await;
    assert!(next.is_err(), "expected the connection to end: {next:?}");
    eprintln!(
        "{backend:?}: an absurd frame ended the connection with {:?}",
        c.closed
    );
    if let Some((code, _)) = &c.closed {
        assert_eq!(*code, 1009, "message too big");
    }
    ping(&mut other, 3).await;

    // A flood: some frames are `rate_limited` (not fatal), one answer per frame, other
    // connections are not slowed, and after a pause the same connection works normally.
    let mut flood = Client::connect(&url, &alice_token).await.unwrap();
    let frames = 100;
    for nonce in 0..frames {
        flood
            .send(&ClientFrame::Ping {
                nonce: 1000 + nonce,
            })
            .await
            .unwrap();
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..frames {
        match flood.recv(WAIT).await.unwrap() {
            ServerFrame::Pong { .. } => pongs += 1,
            ServerFrame::Error { code, fatal, .. } if code == "rate_limited" => {
                assert!(!fatal);
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("{backend:?}: flood of {frames}: {pongs} pongs, {limited} rate_limited");
    assert!(limited > 0, "a flood is limited");
    assert!(pongs >= 19, "the burst passes: {pongs}");
    ping(&mut other, 4).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    ping(&mut flood, 5).await;
    let (bucket, m) = text_change(&mut alice, &lim_conv, "after-flood", "still works");
    let answers = flood.submit(&bucket, &[m]).await.unwrap();
    assert!(
        matches!(answers.as_slice(), [Answer::Ack { seq: 5, .. }]),
        "{answers:?}"
    );
    for client in [flood, other] {
        client.close().await;
    }
    lab.conns.clear();
}

#[tokio::test]
async fn protocol_attacks_on_sqlite() {
    protocol_attacks(Backend::Sqlite).await;
}

#[tokio::test]
async fn protocol_attacks_on_postgres() {
    protocol_attacks(Backend::Postgres).await;
}

/// Connections beyond `--max-connections` get `too_many_connections` and close code 4029;
/// the ones inside the limit keep working, and a freed place can be taken again.
async fn connection_limit(backend: Backend) {
    let server = TestServer::start_with(backend, &["--max-connections", "3"])
        .await
        .unwrap();
    let url = server.ws_url();
    let mut open = Vec::new();
    for account in ["alice", "bob", "carol"] {
        open.push(
            Client::connect(&url, &token(TENANT, account, false, 3600))
                .await
                .unwrap(),
        );
    }
    for _ in 0..2 {
        let mut extra = Client::raw(&url).await.unwrap();
        assert_eq!(
            next_error(&mut extra).await,
            ("too_many_connections".into(), true, None)
        );
        assert_eq!(
            closed_with(&mut extra).await,
            (4029, "too_many_connections".into())
        );
    }
    let refused = Client::connect(&url, &token(TENANT, "dave", false, 3600)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("too_many_connections")),
        "{refused:?}"
    );
    for (i, c) in open.iter_mut().enumerate() {
        ping(c, i as u64).await;
    }
    // HTTP is not a WebSocket connection: operations stay reachable.
    assert_eq!(http_get(server.port, "/healthz", None).await.0, 200);
    // One leaves; its place can be taken.
    open.pop().unwrap().close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match Client::connect(&url, &token(TENANT, "dave", false, 3600)).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                assert!(e.to_string().contains("too_many_connections"), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the freed place was not given back: {e}"),
        }
    };
    assert_eq!(again.account, "dave");
}

#[tokio::test]
async fn connection_limit_on_sqlite() {
    connection_limit(Backend::Sqlite).await;
}

#[tokio::test]
async fn connection_limit_on_postgres() {
    connection_limit(Backend::Postgres).await;
}

/// Every code this file expects exists in the validator's or the policy's table, or among the
/// protocol's error codes, so a renamed code fails here rather than in a string comparison.
#[test]
fn expected_codes_are_known_codes() {
    let rejects: Vec<&str> = RejectCode::VALIDATION
        .iter()
        .map(|c| c.as_str())
        .chain(
            confab_core::policy::DenyCode::ALL
                .iter()
                .map(|c| c.as_str()),
        )
        .collect();
    for code in [
        "forged_actor",
        "actor_bound_to_other",
        "seq_gap",
        "bad_start_op",
        "missing_dependency",
        "malformed_change",
        "duplicate_key",
        "empty_change",
        "author_mismatch",
        "role_too_high",
        "owner_protected",
        "no_permission",
        "direct_fixed_members",
        "member_inactive",
        "not_author",
        "not_own_key",
        "channel_admins_only",
        "admins_only",
        "reactions_disabled",
        "attachments_disabled",
        "thread_too_deep",
        "not_counterparty",
        "proposal_expired",
        "invalid_value",
        "immutable_field",
        "unknown_key",
        "conflicting_write",
        "wrong_type",
        "too_long",
        "unsupported_op",
        "message_missing",
        "unknown_object",
        "hidden_object",
        "bucket_mismatch",
    ] {
        assert!(rejects.contains(&code), "{code} is not a reject code");
    }
    let protocol: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    for code in [
        "bad_frame",
        "frame_too_large",
        "unsupported_version",
        "unauthenticated",
        "auth_failed",
        "token_expired",
        "wrong_tenant",
        "already_authenticated",
        "invalid_doc",
        "forbidden",
        "too_many_changes",
        "rate_limited",
        "too_many_connections",
        "signal_too_large",
    ] {
        assert!(protocol.contains(&code), "{code} is not a protocol code");
    }
}
