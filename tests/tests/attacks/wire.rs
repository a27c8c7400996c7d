//! The wire driver of the attack table: one real server, its clients, and the "nothing
//! stored changed" check (the log a fresh reader catches up from seq 0, the REST projection
//! read by the owner, `/metrics`, and on Postgres the audit table).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use confab_core::automerge::{ActorId, Automerge, Change, ChangeHash};
use confab_core::doc::{self as cdoc, read};
use confab_core::ids::{AccountId, DocId, DocTarget, TenantId};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_e2e::client::{Answer, WAIT};
use confab_e2e::{now_ms, token, Backend, Client, Device, DeviceSync, TestServer};
use confab_testkit::attack::{
    known, ConvView, Driver, Lab, MemberView, PerDriver, RestAnswer, RestCall, RestTarget,
};
use serde_bytes::ByteBuf;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One clock reading for the whole run: every crafted message is created at this time, so a
/// message and the bucket it goes to always agree, even across midnight.
pub fn now() -> i64 {
    static NOW: OnceLock<i64> = OnceLock::new();
    *NOW.get_or_init(now_ms)
}

/// `GET path` with an optional bearer token: (status, body).
pub async fn http_get(port: u16, path: &str, bearer: Option<&str>) -> (u16, String) {
    http_call(port, "GET", path, bearer, None).await
}

/// `method path` with an optional bearer token and JSON body: (status, body).
pub async fn http_call(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    json: Option<&str>,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = json.map_or_else(
        || "Content-Length: 0\r\n\r\n".to_owned(),
        |j| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{j}",
                j.len()
            )
        },
    );
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n{body}"
    );
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

/// What a fresh reader gets when it catches up a document from seq 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// (seq, change hash), in seq order.
    Log(Vec<(u64, ChangeHash)>),
    /// The subscription was refused with this code (e.g. an uncreated conversation).
    Refused(String),
}

/// Everything observable that a rejection must leave alone.
#[derive(Debug, PartialEq)]
pub struct View {
    pub stored: Stored,
    /// (path, status, JSON body) of the REST projection, read by the owner.
    pub rest: Vec<(String, u16, Value)>,
}

/// (doc, account, code, hash) of one rejection: what the audit log must hold.
pub type AuditRow = (String, String, String, Option<Vec<u8>>);

/// The hash of an audit row for a change a REST route built on the server: the lab never
/// sees it, so the row matches any hash no other row names.
const BUILT_BY_REST: &[u8] = b"rest";

pub struct WireLab {
    pub server: TestServer,
    /// One long-lived connection per tenant/account for submits (never subscribed).
    pub conns: HashMap<String, Client>,
    pub audit: Vec<AuditRow>,
    /// MLS devices registered in the server's directory (`Lab::kept_devices`).
    pub devices: confab_testkit::attack::KeptDevices,
}

impl WireLab {
    pub async fn start(backend: Backend) -> WireLab {
        WireLab::on(TestServer::start(backend).await.unwrap())
    }

    pub fn on(server: TestServer) -> WireLab {
        WireLab {
            server,
            conns: HashMap::new(),
            audit: Vec::new(),
            devices: Default::default(),
        }
    }

    pub fn url(&self) -> String {
        self.server.ws_url()
    }

    pub async fn conn(&mut self, tenant: &TenantId, account: &str, service: bool) -> &mut Client {
        let key = format!("{}/{account}/{service}", tenant.as_str());
        if !self.conns.contains_key(&key) {
            let client =
                Client::connect(&self.url(), &token(tenant.as_str(), account, service, 3600))
                    .await
                    .unwrap();
            self.conns.insert(key.clone(), client);
        }
        self.conns.get_mut(&key).unwrap()
    }

    pub async fn submit_changes(
        &mut self,
        who: &Device,
        doc: &DocId,
        changes: &[Change],
    ) -> Vec<Answer> {
        let tenant = doc.tenant().clone();
        self.conn(&tenant, &who.account, who.author.service)
            .await
            .submit(doc, changes)
            .await
            .unwrap()
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

    /// The catch-up from seq 0 on a fresh connection, or the code that refused it.
    pub async fn catch_up(&self, doc: &DocId) -> Result<Vec<(u64, Vec<u8>)>, String> {
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

    pub async fn stored(&self, doc: &DocId) -> Stored {
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
    async fn rebuild(&self, doc: &DocId) -> Automerge {
        let log = self.catch_up(doc).await.unwrap();
        let mut am = cdoc::genesis(doc).unwrap();
        am.apply_changes(
            log.into_iter()
                .map(|(_, bytes)| Change::try_from(&bytes[..]).unwrap()),
        )
        .unwrap();
        am
    }

    /// GET with the token of `account` in `tenant`: (status, JSON or text).
    pub async fn get(&self, tenant: &str, account: &str, path: &str) -> (u16, Value) {
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
    pub async fn rest_conversation(&self, doc: &DocId) -> (u16, Value) {
        let conv = doc.conv_id().unwrap();
        let path = format!("/v1/conversations/{}", conv.as_str());
        self.get(doc.tenant().as_str(), "alice", &path).await
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

    pub async fn view(&self, doc: &DocId) -> View {
        View {
            stored: self.stored(doc).await,
            rest: self.rest(doc).await,
        }
    }

    /// `confab_changes_rejected_total{reason="<code>"}` from `/metrics`.
    pub async fn rejected_count(&self, code: &str) -> u64 {
        let (status, text) = http_get(self.server.port, "/metrics", None).await;
        assert_eq!(status, 200);
        let prefix = format!("confab_changes_rejected_total{{reason=\"{code}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
    }

    fn audit_row(&mut self, dev: &Device, doc: &DocId, code: &str, hash: Option<ChangeHash>) {
        known(code);
        self.audit.push((
            doc.to_string(),
            dev.account.clone(),
            code.to_owned(),
            hash.map(|h| h.0.to_vec()),
        ));
    }

    /// Records a rejection of `code` of a REST write, if the engine made one (its counter in
    /// `/metrics` is past the rows of `audit`), then checks the counter.
    async fn engine_refused(
        &mut self,
        doc: &str,
        account: &str,
        code: &str,
        hash: Option<Vec<u8>>,
    ) {
        let audited = self.audit.iter().filter(|r| r.2 == code).count() as u64;
        if self.rejected_count(code).await > audited {
            self.audit
                .push((doc.to_owned(), account.to_owned(), code.to_owned(), hash));
        }
        self.counted(code).await;
    }

    /// Every rejection this lab causes is in `audit`, each counted once in `/metrics`: so a
    /// code's counter equals its audit rows.
    async fn counted(&self, code: &str) {
        let audited = self.audit.iter().filter(|r| r.2 == code).count() as u64;
        assert_eq!(
            self.rejected_count(code).await,
            audited,
            "{code}: every rejection counted once in /metrics"
        );
    }

    /// On Postgres: the audit table holds exactly the rejections this run caused.
    pub async fn check_audit(&self) {
        use sqlx::Connection;
        let Some(url) = &self.server.database_url else {
            return;
        };
        let mut db = sqlx::PgConnection::connect(url).await.unwrap();
        let mut expected = self.audit.clone();
        expected.sort();
        let named: std::collections::HashSet<Vec<u8>> = expected
            .iter()
            .filter_map(|r| r.3.clone())
            .filter(|h| h != BUILT_BY_REST)
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut rows: Vec<AuditRow> =
                sqlx::query_as("SELECT doc_id, account, code, hash FROM rejections")
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
            // A change built by REST: its row matches an expected REST row by document,
            // account and code.
            for row in &mut rows {
                let rest = expected.iter().any(|r| {
                    r.3.as_deref() == Some(BUILT_BY_REST)
                        && (&r.0, &r.1, &r.2) == (&row.0, &row.1, &row.2)
                });
                if rest && row.3.as_ref().is_some_and(|h| !named.contains(h)) {
                    row.3 = Some(BUILT_BY_REST.to_vec());
                }
            }
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

impl Lab for WireLab {
    type State = View;

    fn driver(&self) -> Driver {
        Driver::Wire
    }

    fn now(&self) -> i64 {
        now()
    }

    fn clock(&self) -> i64 {
        now_ms()
    }

    async fn wait_past(&mut self, doc: &DocId, time: i64) {
        while now_ms() < time {
            let left = u64::try_from(time - now_ms()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(left + 1)).await;
        }
        // The server's scheduler pass writes the lapse at its next tick.
        let DocTarget::Conv(conv) = doc.target() else {
            return;
        };
        let lapsed_by = |c: &confab_core::model::conversation::Conversation| {
            c.members
                .values()
                .any(|m| m.is_active() && m.next_lapse(i64::MIN).is_some_and(|t| t <= time))
        };
        let started = Instant::now();
        while lapsed_by(&read::read_conversation(
            &self.rebuild(doc).await,
            conv.clone(),
        )) {
            assert!(
                started.elapsed() < WAIT,
                "{doc}: the server wrote down no lapse in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn state(&mut self, doc: &DocId, _actor: &ActorId) -> View {
        self.view(doc).await
    }

    async fn submit(&mut self, dev: &Device, doc: &DocId, change: Change) -> Answer {
        let answers = self.submit_changes(dev, doc, &[change]).await;
        match <[Answer; 1]>::try_from(answers) {
            Ok([answer]) => answer,
            Err(answers) => panic!("one answer per change: {answers:?}"),
        }
    }

    /// In one submit frame.
    async fn submit_raw(&mut self, dev: &Device, doc: &DocId, raw: &[Vec<u8>]) -> Vec<Answer> {
        let frame: Vec<ByteBuf> = raw.iter().cloned().map(ByteBuf::from).collect();
        let tenant = doc.tenant().clone();
        let answers = self
            .conn(&tenant, &dev.account, dev.author.service)
            .await
            .submit_raw(doc, frame)
            .await
            .unwrap();
        // One frame: record every rejection before comparing the counters.
        let mut codes = Vec::new();
        for a in &answers {
            if let Answer::Reject { hash, code, .. } = a {
                let hash = hash
                    .as_ref()
                    .map(|h| ChangeHash(h[..].try_into().expect("32 bytes")));
                self.audit_row(dev, doc, code, hash);
                codes.push(code.clone());
            }
        }
        codes.dedup();
        for code in codes {
            self.counted(&code).await;
        }
        answers
    }

    async fn holds(&mut self, doc: &DocId, hash: &ChangeHash) -> bool {
        match self.stored(doc).await {
            Stored::Log(log) => log.iter().any(|(_, h)| h == hash),
            Stored::Refused(_) => false,
        }
    }

    /// Audited, and counted once in `/metrics`: every rejection this lab causes is in
    /// `audit`, so a code's counter equals its audit rows.
    async fn rejected(&mut self, dev: &Device, doc: &DocId, code: &str, hash: Option<ChangeHash>) {
        self.audit_row(dev, doc, code, hash);
        self.counted(code).await;
    }

    async fn pull(&mut self, dev: &mut Device, doc: &DocId) {
        let mut client = self.reader_conn(doc).await;
        dev.sync(&mut client, doc).await.unwrap();
        client.close().await;
    }

    async fn read(&mut self, doc: &DocId) -> Automerge {
        self.rebuild(doc).await
    }

    async fn log_len(&mut self, doc: &DocId) -> usize {
        match self.stored(doc).await {
            Stored::Log(log) => log.len(),
            Stored::Refused(code) => panic!("{doc}: the reader was refused: {code}"),
        }
    }

    async fn sound(&mut self, doc: &DocId) {
        let am = self.rebuild(doc).await;
        let saved = am.save();
        let loaded = Automerge::load(&saved).expect("the stored document loads");
        let (mut a, mut b) = (am.get_heads(), loaded.get_heads());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{doc}: the reloaded document has the same heads");
    }

    async fn conversation(&mut self, doc: &DocId) -> Option<ConvView> {
        let (status, body) = self.rest_conversation(doc).await;
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "{body}");
        let members = body["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| MemberView {
                account: m["user_id"].as_str().expect("user_id").to_owned(),
                role: m["base_role"].as_str().expect("base_role").to_owned(),
                active: m["is_active"].as_bool().expect("is_active"),
            })
            .collect();
        // REST shows no pins: they come from the document a reader catches up.
        let conv = doc.conv_id().expect("a conversation document").clone();
        let pins = read::read_conversation(&self.rebuild(doc).await, conv)
            .pins
            .keys()
            .map(|m| m.as_str().to_owned())
            .collect();
        Some(ConvView {
            title: body["title"].as_str().expect("title").to_owned(),
            members,
            allow_reactions: body["settings"]["allow_reactions"]
                .as_bool()
                .expect("allow_reactions"),
            max_subroom_depth: body["settings"]["max_subroom_depth"]
                .as_u64()
                .expect("max_subroom_depth"),
            pins,
        })
    }

    async fn unreadable(&mut self, dev: &Device, doc: &DocId, code: PerDriver<&str>) {
        let expected = code.get(Driver::Wire);
        let mut c = Client::connect(
            &self.url(),
            &token(
                doc.tenant().as_str(),
                &dev.account,
                dev.author.service,
                3600,
            ),
        )
        .await
        .unwrap();
        let err = c.subscribe(doc, 0).await.expect_err("may not read");
        assert!(
            err.to_string().starts_with(&format!("{expected}:")),
            "{doc}: {err}"
        );
        c.close().await;
    }

    async fn reads_refused(&mut self, dev: &Device, doc: &DocId, code: &str) {
        known(code);
        let conv = doc.conv_id().expect("a conversation document").as_str();
        let blob = "0".repeat(64);
        for path in [
            format!("/v1/conversations/{conv}"),
            format!("/v1/conversations/{conv}/messages"),
            format!("/v1/conversations/{conv}/stats"),
            format!("/v1/conversations/{conv}/attachments/{blob}"),
        ] {
            let (status, body) = self.get(doc.tenant().as_str(), &dev.account, &path).await;
            assert_eq!((status, &body["code"]), (403, &Value::from(code)), "{path}");
        }
    }

    fn binding(&self, _actor: &ActorId) -> Option<Option<AccountId>> {
        None
    }

    async fn register(&mut self, device: &confab_core::e2ee::Device) {
        let identity = device.identity();
        let token = confab_e2e::device_token(
            identity.tenant.as_str(),
            identity.account.as_str(),
            identity.device.as_str(),
            3600,
        );
        let mut conn = Client::connect_device(&self.url(), &token, identity.device.as_str())
            .await
            .unwrap();
        let package = device.key_package(false).expect("a key package");
        let answer = conn
            .request(&ClientFrame::UploadKeyPackages {
                id: 1,
                packages: vec![ByteBuf::from(package)],
                last_resort: None,
            })
            .await
            .unwrap();
        assert!(
            matches!(answer, ServerFrame::KeyPackagesStored { .. }),
            "{identity} registers: {answer:?}"
        );
        conn.close().await;
    }

    async fn unregister(&mut self, device: &confab_core::e2ee::DeviceIdentity) {
        let token = token(device.tenant.as_str(), device.account.as_str(), false, 3600);
        let mut conn = Client::connect(&self.url(), &token).await.unwrap();
        let answer = conn
            .request(&ClientFrame::RemoveDevice {
                id: 1,
                device: device.device.to_string(),
            })
            .await
            .unwrap();
        assert!(
            matches!(answer, ServerFrame::DeviceRemoved { .. }),
            "{device} is removed: {answer:?}"
        );
        conn.close().await;
    }

    /// Over HTTP. What the engine refused is counted in `/metrics` and audited: a change the
    /// acceptor refused (with the hash of a change only the server saw), and a write that
    /// changed nothing (`not_applicable`, with no hash: a reaction or pin put again, or taken
    /// back when it is not there). A refusal of the read gate or the lookup is neither.
    async fn rest(
        &mut self,
        tenant: &TenantId,
        account: &str,
        at: &RestTarget,
        call: &RestCall,
    ) -> RestAnswer {
        let (method, path, json) = at.http(call);
        let bearer = token(tenant.as_str(), account, false, 3600);
        let (status, text) = http_call(
            self.server.port,
            method,
            &path,
            Some(&bearer),
            json.as_deref(),
        )
        .await;
        let answer = match status {
            200..=299 => RestAnswer::Done,
            404 => RestAnswer::NotFound,
            _ => {
                let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
                    panic!("{method} {path}: {status}, not JSON ({e}): {text}")
                });
                let code = body["code"].as_str().expect("a code").to_owned();
                known(&code);
                RestAnswer::Refused(code)
            }
        };
        let doc = at.doc_of(call).to_string();
        self.engine_refused(&doc, account, "not_applicable", None)
            .await;
        if let RestAnswer::Refused(code) = &answer {
            self.engine_refused(&doc, account, code, Some(BUILT_BY_REST.to_vec()))
                .await;
        }
        answer
    }

    fn kept_devices(&mut self) -> &mut confab_testkit::attack::KeptDevices {
        &mut self.devices
    }
}
