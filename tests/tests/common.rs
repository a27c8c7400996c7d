//! Shared helpers of the end-to-end tests.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::automerge::Change;
use confab_core::ids::{ConvId, DocId};
use confab_core::model::conversation::{Role, DEFAULT_BUCKET_MS};
use confab_core::protocol::{ClientFrame, Membership, ServerFrame};
use confab_e2e::client::{Answer, WAIT};
use confab_e2e::{now_ms, token, Client, Device, TestServer};
use confab_testkit::fixture::{text_message, ConvFixture};
use serde_bytes::ByteBuf;
use serde_json::Value;

pub use confab_e2e::DeviceSync;
pub use confab_testkit::ids::{acc, bucket_doc, conv_doc, tenant, TENANT};

pub async fn connect(server: &TestServer, account: &str) -> Client {
    connect_at(&server.ws_url(), account).await
}

/// A connection of `account` (a user of the test tenant) to the server at `url`.
pub async fn connect_at(url: &str, account: &str) -> Client {
    Client::connect(url, &token(TENANT, account, false, 3600))
        .await
        .unwrap()
}

/// The creation change of a group owned by `owner` with `members` (role member), now.
pub fn create_group(
    owner: &mut Device,
    id: &str,
    members: &[&str],
) -> (DocId, confab_core::automerge::Change) {
    ConvFixture::group(owner.account_id(), now_ms())
        .members(members.iter().map(|m| acc(m)), Role::Member)
        .title(id)
        .write(owner, &ConvId::new(id).unwrap())
        .unwrap()
}

/// A text message change written by `dev` at `at`.
pub fn message(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
    at: i64,
) -> (DocId, confab_core::automerge::Change) {
    text_message(dev, conv, id, body, at).unwrap()
}

pub fn assert_acked(answers: &[Answer]) {
    for a in answers {
        assert!(matches!(a, Answer::Ack { .. }), "expected ack, got {a:?}");
    }
}

/// The whole log of `doc` through a fresh connection: (seq, hash) in order.
pub async fn log_of(server: &TestServer, account: &str, doc: &DocId) -> Vec<(u64, [u8; 32])> {
    let mut c = connect(server, account).await;
    let log = c.log(doc).await.unwrap();
    c.close().await;
    log
}

/// Seqs 1..=n without gaps and no hash twice.
pub fn assert_clean_log(log: &[(u64, [u8; 32])]) {
    for (i, (seq, _)) in log.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "seqs run 1..=n without gaps");
    }
    let unique: std::collections::HashSet<[u8; 32]> = log.iter().map(|l| l.1).collect();
    assert_eq!(unique.len(), log.len(), "a change is stored twice");
}

/// A start time such that `[start, start + span_ms]` lies in one message bucket.
pub fn base_time(span_ms: i64) -> i64 {
    let now = now_ms();
    let bucket = now.div_euclid(DEFAULT_BUCKET_MS);
    if (now + span_ms).div_euclid(DEFAULT_BUCKET_MS) == bucket {
        now
    } else {
        (bucket + 1) * DEFAULT_BUCKET_MS
    }
}

/// One submit frame of `changes`.
pub fn submit_frame(doc: &DocId, changes: &[Change]) -> ClientFrame {
    ClientFrame::Submit {
        doc: doc.to_string(),
        changes: changes
            .iter()
            .map(|c| ByteBuf::from(c.raw_bytes().to_vec()))
            .collect(),
    }
}

/// Where and how a continuously sending client sends.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub conv: ConvId,
    pub bucket: DocId,
    /// `created_at` of the first message (each next one 1 ms later).
    pub base: i64,
    /// Submits in flight at most.
    pub window: usize,
    /// Stop sending after this long (the tests end the connection well before).
    pub limit: Duration,
    /// Acks received by all senders together.
    pub acked: Arc<AtomicUsize>,
}

/// What one continuously sending client saw.
#[derive(Debug, Default)]
pub struct SendLog {
    pub account: String,
    /// Every change written, in order (each depends on the one before).
    pub sent: Vec<Change>,
    pub acks: HashMap<[u8; 32], u64>,
    pub rejects: Vec<(String, String)>,
    pub errors: Vec<(String, String, bool)>,
    /// The close frame, if the server closed the connection.
    pub closed: Option<(u16, String)>,
    pub ended: String,
    /// Whether `limit` passed while sending.
    pub hit_limit: bool,
}

/// The pipelined writer: sends one message per submit, keeping up to `window` submits in
/// flight, until the connection ends (or `limit` passes, then it drains and stops).
pub async fn send_continuously(plan: Plan, mut device: Device) -> (Device, SendLog) {
    let Plan {
        url,
        conv,
        bucket,
        base,
        window,
        limit,
        acked,
    } = plan;
    let account = device.account.clone();
    let mut log = SendLog {
        account: account.clone(),
        ..SendLog::default()
    };
    let mut client = connect_at(&url, &account).await;
    let deadline = tokio::time::Instant::now() + limit;
    let mut outstanding = 0usize;
    let mut sending = true;
    'run: loop {
        while sending && outstanding < window {
            if tokio::time::Instant::now() >= deadline {
                sending = false;
                log.hit_limit = true;
                break;
            }
            let i = log.sent.len() as i64;
            let (_, change) = message(
                &mut device,
                &conv,
                &format!("{account}-{i}"),
                &format!("{account} says {i}"),
                base + i,
            );
            log.sent.push(change.clone());
            if let Err(e) = client.send(&submit_frame(&bucket, &[change])).await {
                log.ended = format!("send: {e}");
                break 'run;
            }
            outstanding += 1;
        }
        if !sending && outstanding == 0 {
            log.ended = "limit".into();
            break;
        }
        // A connection error (the server was killed or closed it) ends the run: whatever is
        // not acked by then counts as unacked.
        match client.recv(WAIT).await {
            Ok(ServerFrame::Ack { hash, seq, .. }) => {
                log.acks.insert(hash.as_slice().try_into().unwrap(), seq);
                acked.fetch_add(1, Ordering::SeqCst);
                outstanding -= 1;
            }
            Ok(ServerFrame::Reject { code, reason, .. }) => {
                log.rejects.push((code, reason));
                outstanding -= 1;
            }
            Ok(ServerFrame::Error {
                code,
                message,
                fatal,
                ..
            }) => {
                // Not stored (internal) or the server is going away: stop writing.
                outstanding = outstanding.saturating_sub(usize::from(code == "internal"));
                log.errors.push((code, message, fatal));
                sending = false;
            }
            Ok(_) => {}
            Err(e) => {
                log.ended = e.to_string();
                break;
            }
        }
    }
    log.closed = client.closed.clone();
    (device, log)
}

/// What a raw HTTP request got back: the status, `Retry-After` in seconds, the body.
#[allow(dead_code)] // Not every suite reads every field.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub retry_after_s: Option<u64>,
    pub body: String,
}

/// `method path` with `account`'s token (and `json` as the body) over plain HTTP/1.0.
#[allow(dead_code)]
pub async fn http(
    server: &TestServer,
    method: &str,
    path: &str,
    account: &str,
    json: Option<&str>,
) -> HttpAnswer {
    let bearer = token(TENANT, account, false, 3600);
    let body = json.map(|json| ("application/json", json.as_bytes()));
    let answer = confab_testkit::http::request(server.port, method, path, &bearer, body, WAIT)
        .await
        .expect("an HTTP answer in time");
    HttpAnswer {
        status: answer.status,
        retry_after_s: answer.header("retry-after").and_then(|v| v.parse().ok()),
        body: answer.body,
    }
}

/// Polls `/readyz` until it answers `status`; returns how long that took. Every answer must
/// come within `answer_within` (readiness never waits on the database).
#[allow(dead_code)]
pub async fn readyz_until(
    server: &TestServer,
    answer_within: Duration,
    status: u16,
    limit: Duration,
) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let asked = std::time::Instant::now();
        let got = server.readyz(answer_within).await;
        assert!(
            got.is_some(),
            "/readyz gave no answer within {answer_within:?} (it must not wait on the database)"
        );
        if got == Some(status) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "/readyz still {got:?} after {:?}, expected {status}",
            start.elapsed()
        );
        let spent = asked.elapsed();
        tokio::time::sleep(Duration::from_millis(50).saturating_sub(spent)).await;
    }
}

/// A tmpfs mounted for a disk-full test, unmounted when dropped.
#[allow(dead_code)]
#[derive(Debug)]
pub struct Tmpfs(std::path::PathBuf);

#[allow(dead_code)]
impl Tmpfs {
    /// Mounts `size` (e.g. "30m"), readable by other users (the private Postgres runs as
    /// `postgres`). A fault test that cannot make its fault fails, naming `test`: a skipped
    /// one would pass silently.
    pub fn mount(size: &str, test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("confab-tmpfs-{}-{size}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make the mount point");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("run mount");
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "{test} needs root to mount a tmpfs (mount -t tmpfs failed: {}); run it as root",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Tmpfs(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Fills it to the last byte: one big file, then small ones for the last blocks.
    pub fn fill(&self) {
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=1M"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(std::process::Stdio::null())
            .status();
        for n in 0..64 {
            let _ = std::fs::write(self.0.join(format!("crumb{n}")), [0u8; 4096]);
        }
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).expect("remove the filler");
        for n in 0..64 {
            let _ = std::fs::remove_file(self.0.join(format!("crumb{n}")));
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Sends one change in its own submit and waits (up to 20 s) for the answer naming it:
/// (code, `ack` for an ack; retry_after_ms; time taken).
#[allow(dead_code)]
pub async fn submit_one(
    client: &mut Client,
    doc: &DocId,
    change: &Change,
) -> (String, Option<u64>, Duration) {
    let started = std::time::Instant::now();
    client
        .send(&ClientFrame::Submit {
            doc: doc.to_string(),
            changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
        })
        .await
        .expect("send the submit");
    let want = change.hash().0.to_vec();
    loop {
        let frame = client
            .recv(Duration::from_secs(20))
            .await
            .expect("an answer to the submit");
        let (hash, code, retry) = match frame {
            ServerFrame::Ack { hash, .. } => (hash.to_vec(), "ack".to_owned(), None),
            ServerFrame::Reject {
                hash: Some(hash),
                code,
                ..
            } => (hash.to_vec(), code, None),
            ServerFrame::Error {
                hash: Some(hash),
                code,
                retry_after_ms,
                ..
            } => (hash.to_vec(), code, retry_after_ms),
            other => panic!("unexpected frame {other:?}"),
        };
        if hash == want {
            return (code, retry, started.elapsed());
        }
    }
}

/// `account`'s notification feed (`GET /v1/notifications`).
pub async fn feed(server: &TestServer, account: &str) -> Value {
    let a = http(server, "GET", "/v1/notifications", account, None).await;
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_str(&a.body).unwrap()
}

/// The coalesced entries of `conv` in `account`'s feed: (newest message, count, read).
pub async fn entries(server: &TestServer, account: &str, conv: &str) -> Vec<(String, i64, bool)> {
    let page = feed(server, account).await;
    page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "message" && n["conversation"] == conv)
        .map(|n| {
            assert_eq!(n["preview"], "", "no text in a coalesced entry");
            (
                n["message"].as_str().unwrap().to_owned(),
                n["count"].as_i64().unwrap(),
                n["read"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Waits until `account`'s entry of `conv` counts `count`.
pub async fn until_count(server: &TestServer, account: &str, conv: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = entries(server, account, conv).await;
        if got.iter().any(|(_, n, _)| *n == count) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{account} never counted {count} in {conv}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Follows the account's memberships on `client` and returns the whole list (every page).
pub async fn follow_memberships(client: &mut Client) -> anyhow::Result<Vec<Membership>> {
    client.send(&ClientFrame::Memberships {}).await?;
    let mut all = Vec::new();
    loop {
        let (page, more) = client
            .wait_for(WAIT, |f| match f {
                ServerFrame::Memberships { memberships, more } => {
                    Some((memberships.clone(), *more))
                }
                _ => None,
            })
            .await?;
        all.extend(page);
        if !more {
            return Ok(all);
        }
    }
}

/// The next membership push about `conv` within `within`.
pub async fn membership_push(
    client: &mut Client,
    conv: &str,
    within: Duration,
) -> anyhow::Result<Membership> {
    client
        .wait_for(within, |f| match f {
            ServerFrame::Membership {
                conv: c,
                role,
                status,
                seq,
            } if c.as_str() == conv => Some(Membership {
                conv: c.clone(),
                role: *role,
                status: *status,
                seq: *seq,
            }),
            _ => None,
        })
        .await
}
