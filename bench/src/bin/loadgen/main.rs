//! `loadgen`: the server load generator behind `cargo xtask bench server`.
//!
//! For each backend (SQLite, Postgres) × client count × mode it starts the release
//! `confab-server` on a fresh store (127.0.0.1 only), creates one group conversation with
//! every client as a member (one change by the owner), connects one native WebSocket client
//! per member, subscribes each to the conversation and its current message bucket, and then:
//!
//! - `burst`: every client submits its share of `--burst-messages` real message changes
//!   (`doc::write::post_message` with its own device actor) as fast as the server takes
//!   them, pipelined: `--batch` changes per submit frame, at most `--window` unacked changes
//!   per client;
//! - `sealed`: `burst` in an end-to-end encrypted conversation, every message sealed into
//!   its MLS group before the clock starts (sealed.rs), compared with `burst`;
//! - `paced`: `--rate` messages per second in total, spread evenly over the clients (one
//!   change per submit frame), for `--seconds`.
//!
//! It reports accepted messages/s (acks / time from the first send to the last ack),
//! submit→ack latency, submit→delivery latency (to each other client, and until every other
//! client has it), server CPU per 1,000 messages (utime+stime of the server process; on
//! Postgres also the database's backends), RSS, stored bytes per message of the bucket
//! document after `confab-server compact`, and the whole database's bytes per message after
//! that compaction and a vacuum, table by table (`storage.rs`). A table goes to stdout at
//! the end, one JSON line per run as it finishes (also appended to `--json FILE`). Progress
//! goes to stderr.
//! `--repeat K` runs every configuration K times and judges the targets on the median run.
//! Every run also reports the machine it had (`machine.rs`): CPU busy and steal shares
//! during the run, and, just before it, the CPU's speed (SHA-256 of 1 MiB), a thread
//! wake-up round trip, the disk's flush time and Postgres's round trip and one-row durable
//! commit. On a shared VM these move latency more than most code changes.
//!
//! Latencies: the send instant is taken just before the frame is written to the socket;
//! every pushed `changes` frame is timestamped when the reader task decodes it. Acks carry
//! the change hash and its seq; pushes carry the seq, so deliveries are joined on the seq.
//!
//! All clients share one thread (a current-thread Tokio runtime). The load generator runs
//! on the same two cores as the server and the database, so what it costs is taken from
//! them: on one thread, the 49 pushes of a message to 49 clients are read in one pass of
//! the event loop instead of waking worker threads of a pool (at 50 clients paced: load
//! generator CPU 332 ms instead of ~440 ms per 1,000 messages, measured when it was made).
//!
//! Messages are written on each client's own replica of the bucket, which never applies the
//! others' changes: a message creation is a new key with no predecessor, so each change
//! depends only on the client's own previous change (and the deterministic genesis).
//!
//! `loadgen cluster [flags]` (`cargo xtask bench cluster`) runs several server nodes on one
//! Postgres database and spreads the clients over their URLs: cross-node delivery, one hot
//! conversation, many conversations (cluster.rs).
//!
//! `loadgen many [flags]` (`cargo xtask bench server --scenario many`): thousands of
//! connections, a thousand conversations, a big group and a big channel at once (many.rs).

mod cluster;
mod machine;
mod many;
mod sealed;
mod storage;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use confab_bench::sealed::SealedGroup;
use confab_core::automerge::Automerge;
use confab_core::doc::{read, write};
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::limits::{BUCKET_OPENS_NEXT_AT, BUCKET_TARGET_MESSAGES};
use confab_core::model::conversation::{Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::server::{now_ms, token, Backend, TestServer};
use confab_testkit::text::{body, message_id, Rng};
use confab_testkit::Device;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_bytes::ByteBuf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;
type Stream = SplitStream<Ws>;

const TENANT: &str = "bench";
/// The device every client's `hello` names (its MLS identity in a sealed run).
const HELLO_DEVICE: &str = "loadgen";

/// The targets (2-core machine, Postgres, durable commits; docs/BENCHMARKS.md, "Server").
const TARGET_BURST_PER_S: f64 = 10_000.0;
const TARGET_PACED_P50_MS: f64 = 2.0;
const TARGET_PACED_P99_MS: f64 = 10.0;
const TARGET_STORED_BYTES: f64 = 60.0;
/// The whole database per message after compaction and vacuum, either backend
/// (docs/BENCHMARKS.md, "Bytes on disk").
const TARGET_DB_BYTES: f64 = 300.0;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Confab server load generator (127.0.0.1 only)"
)]
struct Args {
    /// Backends to run: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Client counts (every client is a member of the one group conversation) [default:
    /// 2,10,50; --quick: 2,10].
    #[arg(long, value_delimiter = ',')]
    clients: Vec<usize>,
    /// Modes: burst, sealed (burst in an encrypted conversation), paced.
    #[arg(long, value_delimiter = ',', default_value = "burst,paced")]
    modes: Vec<String>,
    /// Messages per burst run, split evenly over the clients [default: 20000; --quick: 2000].
    #[arg(long)]
    burst_messages: Option<usize>,
    /// Changes per submit frame in burst mode (paced mode sends one per frame).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Most unacked changes per client in burst mode.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Paced mode: messages per second, all clients together.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Paced mode: duration in seconds [default: 10; --quick: 3].
    #[arg(long)]
    seconds: Option<f64>,
    /// Characters per message body.
    #[arg(long, default_value_t = 40)]
    body_chars: usize,
    /// A small smoke run: 2 and 10 clients, 2,000 burst messages, 3 s paced (flags given
    /// explicitly win).
    #[arg(long)]
    quick: bool,
    /// The server binary (default: `confab-server` next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Also append each run's JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Runs of each backend × client count × mode; the verdicts take the median run (this
    /// VM's numbers move by ±30% from one run to the next).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Upper bound for one run (setup, load, drain, compaction).
    #[arg(long, default_value_t = 180)]
    run_timeout_s: u64,
    /// Soak: print the server's RSS (VmRSS) every this many seconds during the load, and
    /// keep the samples in the JSON line (0: off). E.g. `--modes paced --clients 2 --rate
    /// 300 --seconds 150 --rss-every-s 15 --idle-after-s 90 --run-timeout-s 600`.
    #[arg(long, default_value_t = 0.0)]
    rss_every_s: f64,
    /// Soak: after the load, disconnect every client and keep the server running this many
    /// seconds, sampling its RSS (does idle memory go back once units leave memory?).
    #[arg(long, default_value_t = 0.0)]
    idle_after_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Burst,
    Sealed,
    Paced,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Burst => "burst",
            Mode::Sealed => "sealed",
            Mode::Paced => "paced",
        }
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

// ---------------------------------------------------------------------------------------------
// The server process: `TestServer` (confab-testkit), its stderr in a log file.

/// SIGTERM and wait for the graceful exit (killed after 30 s).
async fn stop(server: &mut TestServer) -> Result<()> {
    if server.pid().is_none() {
        return Ok(());
    }
    match server.terminate().await {
        Ok(status) if !status.success() => eprintln!("  note: server exited with {status}"),
        Ok(_) => {}
        Err(e) => {
            server.kill().await?;
            bail!("server did not stop within 30 s after SIGTERM: {e}");
        }
    }
    Ok(())
}

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

async fn admin() -> Result<sqlx::PgConnection> {
    <sqlx::PgConnection as sqlx::Connection>::connect(ADMIN_URL)
        .await
        .context(
            "PostgreSQL is not reachable on 127.0.0.1:5432 (user postgres, trust auth). Start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or run \
             with --backends sqlite",
        )
}

/// `fsync` and `synchronous_commit` of the Postgres server (durable commits need both on).
async fn pg_durability() -> Result<String> {
    use sqlx::Row;
    let mut conn = admin().await?;
    let mut out = Vec::new();
    for setting in ["fsync", "synchronous_commit", "wal_sync_method"] {
        let row = sqlx::query(&format!("SHOW {setting}"))
            .fetch_one(&mut conn)
            .await?;
        out.push(format!("{setting}={}", row.try_get::<String, _>(0)?));
    }
    Ok(out.join(" "))
}

/// Backend processes connected to `db`.
async fn pg_backends(db: &str) -> Result<Vec<u32>> {
    use sqlx::Row;
    let mut conn = admin().await?;
    let rows = sqlx::query("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(db)
        .fetch_all(&mut conn)
        .await?;
    rows.iter()
        .map(|r| Ok(u32::try_from(r.try_get::<i32, _>(0)?)?))
        .collect()
}

/// Bytes of every user table (heap, indexes, TOAST) in `url`'s database.
async fn pg_table_bytes(url: &str) -> Result<u64> {
    use sqlx::Row;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
    let row = sqlx::query(
        "SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0)::int8 FROM pg_stat_user_tables",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok(u64::try_from(row.try_get::<i64, _>(0)?)?)
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: status and body.
async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::time::timeout(
        Duration::from_millis(500),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await??;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// /proc

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (VmRSS, VmHWM) in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------------------------------------
// /metrics

/// The server's submit stages (`confab_submit_stage_seconds`), in the order they happen.
const STAGES: [&str; 5] = ["queue", "validate", "commit_wait", "commit", "answer"];

/// The sums and counts of the commit and stage histograms and the accepted counter.
#[derive(Debug, Default, Clone, Copy)]
struct CommitMetrics {
    batch_sum: f64,
    batch_count: f64,
    seconds_sum: f64,
    accepted: f64,
    frames_in: f64,
    frames_out: f64,
    /// (sum of seconds, count) per stage of `STAGES`.
    stages: [(f64, f64); 5],
}

/// Mean milliseconds a submit spent in each server stage during the run.
#[derive(Debug, Default, Clone, Serialize)]
struct StageMeans {
    queue_ms: f64,
    validate_ms: f64,
    commit_wait_ms: f64,
    commit_ms: f64,
    answer_ms: f64,
}

impl StageMeans {
    fn of(m: &CommitMetrics) -> Self {
        let mean = |i: usize| {
            let (sum, count) = m.stages[i];
            if count > 0.0 {
                sum / count * 1000.0
            } else {
                0.0
            }
        };
        StageMeans {
            queue_ms: mean(0),
            validate_ms: mean(1),
            commit_wait_ms: mean(2),
            commit_ms: mean(3),
            answer_ms: mean(4),
        }
    }

    fn line(&self) -> String {
        format!(
            "queue {:.2}, validate {:.2}, commit wait {:.2}, commit {:.2}, answer {:.2}",
            self.queue_ms, self.validate_ms, self.commit_wait_ms, self.commit_ms, self.answer_ms
        )
    }
}

impl CommitMetrics {
    fn parse(text: &str) -> Self {
        let mut m = CommitMetrics::default();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            match name {
                "confab_commit_batch_size_sum" => m.batch_sum = v,
                "confab_commit_batch_size_count" => m.batch_count = v,
                "confab_commit_seconds_sum" => m.seconds_sum = v,
                "confab_changes_accepted_total" | "confab_changes_accepted" => m.accepted = v,
                n if n.starts_with("confab_submit_stage_seconds_") => {
                    let stage = STAGES
                        .iter()
                        .position(|s| n.contains(&format!("stage=\"{s}\"")));
                    match (stage, n.starts_with("confab_submit_stage_seconds_sum")) {
                        (Some(i), true) => m.stages[i].0 = v,
                        (Some(i), false) if n.starts_with("confab_submit_stage_seconds_count") => {
                            m.stages[i].1 = v
                        }
                        _ => {}
                    }
                }
                n if n.starts_with("confab_frames_total{direction=\"in\"}")
                    || n.starts_with("confab_frames{direction=\"in\"}") =>
                {
                    m.frames_in = v
                }
                n if n.starts_with("confab_frames_total{direction=\"out\"}")
                    || n.starts_with("confab_frames{direction=\"out\"}") =>
                {
                    m.frames_out = v
                }
                _ => {}
            }
        }
        m
    }

    fn minus(self, before: Self) -> Self {
        CommitMetrics {
            batch_sum: self.batch_sum - before.batch_sum,
            batch_count: self.batch_count - before.batch_count,
            seconds_sum: self.seconds_sum - before.seconds_sum,
            accepted: self.accepted - before.accepted,
            frames_in: self.frames_in - before.frames_in,
            frames_out: self.frames_out - before.frames_out,
            stages: std::array::from_fn(|i| {
                (
                    self.stages[i].0 - before.stages[i].0,
                    self.stages[i].1 - before.stages[i].1,
                )
            }),
        }
    }
}

async fn metrics(port: u16) -> CommitMetrics {
    match http_get(port, "/metrics").await {
        Ok((200, body)) => CommitMetrics::parse(&body),
        _ => CommitMetrics::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// The lean client

async fn send_frame(ws: &mut Ws, frame: &ClientFrame) -> Result<()> {
    ws.send(Message::Binary(encode_client(frame).into()))
        .await
        .context("websocket send")
}

async fn recv_frame(ws: &mut Ws) -> Result<ServerFrame> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| anyhow!("no frame from the server within 30 s"))?;
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                return decode_server(&bytes, usize::MAX).map_err(|e| anyhow!("{e}"))
            }
            Some(Ok(Message::Close(frame))) => bail!("connection closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("websocket: {e}"),
            None => bail!("connection ended"),
        }
    }
}

async fn connect(url: &str, account: &str) -> Result<Ws> {
    // A small read buffer: tungstenite zero-fills all of it before every read.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .context("websocket connect")?;
    send_frame(
        &mut ws,
        &ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: token(TENANT, account, false, 3600),
            device: HELLO_DEVICE.into(),
        },
    )
    .await?;
    match recv_frame(&mut ws).await? {
        ServerFrame::Welcome { .. } => Ok(ws),
        other => bail!("{account}: expected welcome, got {other:?}"),
    }
}

/// Submits `change` to `doc` and waits for its ack (`what` names it in errors).
async fn submit_acked(
    ws: &mut Ws,
    doc: &DocId,
    change: &confab_core::automerge::Change,
    what: &str,
) -> Result<()> {
    send_frame(
        ws,
        &ClientFrame::Submit {
            doc: doc.to_string(),
            changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
        },
    )
    .await?;
    loop {
        match recv_frame(ws).await? {
            ServerFrame::Ack { .. } => return Ok(()),
            ServerFrame::Reject { code, reason, .. } => bail!("{what}: {code}: {reason}"),
            ServerFrame::Error { code, message, .. } => bail!("{what}: {code}: {message}"),
            _ => {}
        }
    }
}

/// Subscribes and waits for `synced` (catch-up content is not needed).
async fn subscribe(ws: &mut Ws, doc: &DocId) -> Result<()> {
    let doc = doc.to_string();
    send_frame(
        ws,
        &ClientFrame::Subscribe {
            doc: doc.clone(),
            after: 0,
        },
    )
    .await?;
    loop {
        match recv_frame(ws).await? {
            ServerFrame::Synced { doc: d, .. } if d == doc => return Ok(()),
            ServerFrame::Error { code, message, .. } => bail!("subscribe {doc}: {code}: {message}"),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

/// One client's pre-written message changes (sealed by its member of `SealedGroup` in a
/// sealed run).
struct Prepared {
    /// Submit frames, ready to send, and how many changes each carries.
    /// (frame, changes in it, its bucket part)
    frames: Vec<(Bytes, usize, usize)>,
    /// Hash of change i → i.
    index: HashMap<[u8; 32], usize>,
    count: usize,
}

/// Which bucket part message `j` of client `client` (of `clients`) goes to: messages are
/// numbered across clients in sending order (`j * clients + client`), and each part takes
/// `BUCKET_TARGET_MESSAGES` of them, as clients that follow the conversation fill it (a
/// part opens once the one before holds half of that, which two clients sending in turn
/// always reach; paced clients by time).
fn part_of(j: usize, client: usize, clients: usize) -> usize {
    (j * clients + client) / BUCKET_TARGET_MESSAGES
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    device: &mut Device,
    mut sealing: Option<(&mut SealedGroup, usize)>,
    parts: &[DocId],
    (client, clients): (usize, usize),
    count: usize,
    batch: usize,
    body_chars: usize,
    created_at: i64,
    seed: u64,
) -> Result<Prepared> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let author = AccountId::new(device.account.clone())?;
    let mut index = HashMap::with_capacity(count);
    let mut raw: Vec<(usize, ByteBuf)> = Vec::with_capacity(count);
    for i in 0..count {
        // One millisecond apart, as a client typing fast would stamp them.
        let at = created_at + i as i64;
        let id = MessageId::new(message_id(&mut rng, at))?;
        let content = body(&mut rng, body_chars);
        let message = match sealing.as_mut() {
            Some((group, member)) => group.message(*member, id, author.clone(), content, at)?,
            None => NewMessage::text(id, author.clone(), content, at),
        };
        let part = part_of(i, client, clients);
        let doc = parts
            .get(part)
            .ok_or_else(|| anyhow!("message {i} falls past the last part"))?;
        let change = device.write(doc, |d, t| write::post_message(d, t, &message))?;
        index.insert(change.hash().0, i);
        raw.push((part, ByteBuf::from(change.raw_bytes().to_vec())));
    }
    // A frame carries changes of one part, at most `batch`.
    let mut frames = Vec::new();
    for run in raw.chunk_by(|a, b| a.0 == b.0) {
        let doc = parts[run[0].0].to_string();
        for chunk in run.chunks(batch.max(1)) {
            let frame = ClientFrame::Submit {
                doc: doc.clone(),
                changes: chunk.iter().map(|(_, c)| c.clone()).collect(),
            };
            frames.push((Bytes::from(encode_client(&frame)), chunk.len(), run[0].0));
        }
    }
    Ok(Prepared {
        frames,
        index,
        count,
    })
}

// ---------------------------------------------------------------------------------------------
// One run

struct ReaderOut {
    /// (change index, seq, arrival)
    acks: Vec<(usize, u64, Instant)>,
    /// (seq, arrival) of every pushed change of the bucket.
    deliveries: Vec<(u64, Instant)>,
    rejects: Vec<String>,
    errors: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
async fn reader(
    mut stream: Stream,
    parts: Arc<HashMap<String, u64>>,
    opened: Arc<PartsOpened>,
    index: Arc<HashMap<[u8; 32], usize>>,
    expect_answers: usize,
    expect_deliveries: usize,
    answered: Arc<AtomicUsize>,
    notify: Arc<Notify>,
    done: mpsc::UnboundedSender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Stream, ReaderOut) {
    let mut out = ReaderOut {
        acks: Vec::with_capacity(expect_answers),
        deliveries: Vec::with_capacity(expect_deliveries),
        rejects: Vec::new(),
        errors: Vec::new(),
    };
    let mut signalled = false;
    let mut answers = 0usize;
    loop {
        if !signalled
            && ((answers >= expect_answers && out.deliveries.len() >= expect_deliveries)
                || !out.errors.is_empty())
        {
            signalled = true;
            let _ = done.send(());
        }
        let message = tokio::select! {
            m = stream.next() => m,
            _ = stop.changed() => break,
        };
        let now = Instant::now();
        let bytes = match frame_bytes(message) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(ended) => {
                out.errors.push(ended);
                break;
            }
        };
        let frame = match decode_server(&bytes, usize::MAX) {
            Ok(f) => f,
            Err(e) => {
                out.errors.push(format!("undecodable frame: {e}"));
                continue;
            }
        };
        match frame {
            ServerFrame::Ack { doc, hash, seq } => {
                let key: Option<[u8; 32]> = hash.as_slice().try_into().ok();
                if let (Some(i), Some(part)) = (key.and_then(|k| index.get(&k)), parts.get(&doc)) {
                    out.acks.push((*i, delivery_key(*part, seq), now));
                    opened.acked(*part as usize);
                }
                answers += 1;
                answered.fetch_add(1, Ordering::Release);
                notify.notify_one();
            }
            ServerFrame::Reject { code, reason, .. } => {
                out.rejects.push(format!("{code}: {reason}"));
                answers += 1;
                answered.fetch_add(1, Ordering::Release);
                notify.notify_one();
            }
            ServerFrame::Changes { doc, changes } => {
                if let Some(part) = parts.get(&doc) {
                    let part = *part;
                    out.deliveries
                        .extend(changes.iter().map(|c| (delivery_key(part, c.seq), now)));
                }
            }
            ServerFrame::Error { code, message, .. } => {
                out.errors.push(format!("{code}: {message}"));
                notify.notify_one();
            }
            _ => {}
        }
    }
    if !signalled {
        let _ = done.send(());
    }
    (stream, out)
}

/// Acked messages per bucket part, shared by all clients of a run: a writer sends its first
/// message of part `p` once part `p - 1` holds `BUCKET_OPENS_NEXT_AT` (the server refuses it
/// `bucket_not_open` before; a real client would move it, a benchmark waits instead).
struct PartsOpened {
    acked: Vec<AtomicUsize>,
}

impl PartsOpened {
    fn new(parts: usize) -> Self {
        PartsOpened {
            acked: (0..parts).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn acked(&self, part: usize) {
        if let Some(n) = self.acked.get(part) {
            n.fetch_add(1, Ordering::Release);
        }
    }

    /// Waits (at most 30 s) until a message may open `part`: polls every 0.2 ms, which
    /// happens only at a part's first frames.
    async fn open(&self, part: usize) -> Result<()> {
        let Some(previous) = part.checked_sub(1).and_then(|p| self.acked.get(p)) else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while previous.load(Ordering::Acquire) < BUCKET_OPENS_NEXT_AT {
            if tokio::time::Instant::now() >= deadline {
                bail!("part {part} did not open within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        Ok(())
    }
}

/// One key per stored change of the run: its part and its seq in that part.
fn delivery_key(part: u64, seq: u64) -> u64 {
    (part << 40) | seq
}

/// Send instants of every change, by index.
async fn burst_writer(
    mut sink: Sink,
    prepared: Arc<Prepared>,
    window: usize,
    (answered, notify, opened): (Arc<AtomicUsize>, Arc<Notify>, Arc<PartsOpened>),
    mut go: tokio::sync::watch::Receiver<bool>,
) -> Result<(Sink, Vec<Instant>)> {
    let mut sent_at = Vec::with_capacity(prepared.count);
    let _ = go.wait_for(|g| *g).await;
    for (bytes, n, part) in &prepared.frames {
        opened.open(*part).await?;
        loop {
            let unacked = sent_at.len() - answered.load(Ordering::Acquire).min(sent_at.len());
            if unacked + n <= window.max(*n) {
                break;
            }
            tokio::time::timeout(Duration::from_secs(30), notify.notified())
                .await
                .map_err(|_| anyhow!("no ack within 30 s ({unacked} unacked)"))?;
        }
        let now = Instant::now();
        sink.send(Message::Binary(bytes.clone()))
            .await
            .context("websocket send")?;
        sent_at.extend(std::iter::repeat_n(now, *n));
    }
    Ok((sink, sent_at))
}

async fn paced_writer(
    mut sink: Sink,
    prepared: Arc<Prepared>,
    start_offset: Duration,
    interval: Duration,
    opened: Arc<PartsOpened>,
    mut go: tokio::sync::watch::Receiver<bool>,
) -> Result<(Sink, Vec<Instant>)> {
    let mut sent_at = Vec::with_capacity(prepared.count);
    let _ = go.wait_for(|g| *g).await;
    let start = tokio::time::Instant::now() + start_offset;
    for (k, (bytes, n, part)) in prepared.frames.iter().enumerate() {
        tokio::time::sleep_until(start + interval.mul_f64(k as f64)).await;
        opened.open(*part).await?;
        let now = Instant::now();
        sink.send(Message::Binary(bytes.clone()))
            .await
            .context("websocket send")?;
        sent_at.extend(std::iter::repeat_n(now, *n));
    }
    Ok((sink, sent_at))
}

/// Upper bounds (ms) of the latency histogram buckets in the JSON output; the last bucket
/// counts everything above.
const HISTOGRAM_MS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

#[derive(Debug, Default, Clone, Serialize)]
struct Dist {
    n: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Samples ≤ 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000 ms, and above.
    histogram: Vec<usize>,
}

impl Dist {
    fn of(mut micros: Vec<u64>) -> Self {
        if micros.is_empty() {
            return Dist::default();
        }
        micros.sort_unstable();
        let at = |p: f64| {
            let i = ((micros.len() - 1) as f64 * p).round() as usize;
            micros[i.min(micros.len() - 1)] as f64 / 1000.0
        };
        let mut histogram = vec![0; HISTOGRAM_MS.len() + 1];
        for m in &micros {
            let ms = *m as f64 / 1000.0;
            let i = HISTOGRAM_MS
                .iter()
                .position(|b| ms <= *b)
                .unwrap_or(HISTOGRAM_MS.len());
            histogram[i] += 1;
        }
        Dist {
            n: micros.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
            histogram,
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct RunResult {
    backend: &'static str,
    clients: usize,
    mode: &'static str,
    /// Changes per submit frame and most unacked changes per client.
    batch: usize,
    window: usize,
    messages_sent: usize,
    messages_acked: usize,
    rejected: usize,
    errors: Vec<String>,
    /// Acked messages / (last ack − first send).
    accepted_per_s: f64,
    /// Acks per second over the first half of the acks, and over the second half.
    first_half_per_s: f64,
    second_half_per_s: f64,
    /// Messages sent / send span (paced: the achieved rate).
    offered_per_s: f64,
    /// Writing the messages' changes before the clock starts (sealing them too in a sealed
    /// run): the client's cost, per message, µs.
    prepare_us_per_msg: f64,
    wall_s: f64,
    ack: Dist,
    /// Submit → arrival at each other client (one sample per message and receiver).
    delivery: Dist,
    /// Submit → arrival at the last other client (one sample per message).
    delivery_all: Dist,
    deliveries_missing: usize,
    server_cpu_ms_per_1k: f64,
    /// CPU of the database's Postgres backends (approximate: pids seen before and after).
    pg_cpu_ms_per_1k: Option<f64>,
    loadgen_cpu_ms_per_1k: f64,
    server_rss_mb: f64,
    server_peak_rss_mb: f64,
    commits: f64,
    avg_commit_batch: f64,
    avg_commit_ms: f64,
    frames_in: f64,
    frames_out: f64,
    bucket_bytes_before_compaction: u64,
    bucket_bytes_after_compaction: u64,
    stored_bytes_per_msg_before: f64,
    /// The bucket document's snapshot after `confab-server compact`, per message.
    stored_bytes_per_msg: f64,
    /// Whole database per message (SQLite file + WAL, or every Postgres table with its
    /// indexes) after compaction, before any vacuum: space freed by compaction not returned.
    db_bytes_per_msg_raw: f64,
    /// The same after a vacuum (`storage.rs`): what the live rows and indexes cost.
    db_bytes_per_msg: f64,
    /// The empty schema's bytes (`storage::empty_schema_bytes`), in `db_bytes_per_msg` too.
    db_schema_bytes: u64,
    /// `db_bytes_per_msg` less the empty schema: what the messages themselves cost (the
    /// conversations', members' and devices' rows count as theirs).
    db_bytes_per_msg_data: f64,
    /// That database table by table.
    db: storage::DbBytes,
    compact_summary: String,
    /// Wall time of `confab-server compact`.
    compact_s: f64,
    messages_after_compaction: usize,
    /// CPU steal and busy share during the run, disk and database speed just before it.
    machine: machine::Machine,
    /// Where the server's submit time went (its /metrics, over the run).
    stages: StageMeans,
    /// Soak (`--rss-every-s`, `--idle-after-s`): the server's RSS over the run and after it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rss_samples: Vec<RssSample>,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct Params {
    clients: usize,
    mode: Mode,
    burst_messages: usize,
    batch: usize,
    window: usize,
    rate: u32,
    seconds: f64,
    body_chars: usize,
    rss_every_s: f64,
    idle_after_s: f64,
}

/// The server's RSS at one moment of a soak.
#[derive(Debug, Clone, Serialize)]
struct RssSample {
    /// Seconds since the load started.
    at_s: f64,
    rss_mb: f64,
    /// Messages acked so far (all clients).
    acked: usize,
}

async fn run_one(bin: &Path, backend: Backend, p: &Params, ticks: f64) -> Result<RunResult> {
    let mut server = TestServer::start_logged(bin, backend, &[]).await?;
    let result = drive(&mut server, p, ticks).await;
    if result.is_err() {
        eprintln!("  server log tail:\n{}", server.log_tail(20));
    }
    // Dropping the server removes its store (folder, or database).
    let _ = stop(&mut server).await;
    result
}

async fn drive(server: &mut TestServer, p: &Params, ticks: f64) -> Result<RunResult> {
    let pid = server.pid().context("the server has no pid")?;
    let n = p.clients.max(2);
    let tenant = TenantId::new(TENANT)?;
    let conv = ConvId::new("bench-room")?;
    let conv_doc = DocId::conv(&tenant, &conv);
    let start_ms = now_ms();
    // Every message falls in the bucket of the start, even across midnight.
    let bucket_index = start_ms.div_euclid(DEFAULT_BUCKET_MS);
    let bucket_end = (bucket_index + 1) * DEFAULT_BUCKET_MS;
    let created_at = start_ms.min(bucket_end - 120_000);
    let period = created_at.div_euclid(DEFAULT_BUCKET_MS);
    let accounts: Vec<String> = (0..n).map(|i| format!("user{i:02}")).collect();

    // Connect, create the group in one change, subscribe everyone.
    let url = server.ws_url();
    let mut sockets = Vec::with_capacity(n);
    for a in &accounts {
        sockets.push(connect(&url, a).await?);
    }
    let mut devices: Vec<Device> = accounts.iter().map(|a| Device::new(a, 1)).collect();
    let owner = AccountId::new(accounts[0].clone())?;
    let others = accounts[1..]
        .iter()
        .map(|a| AccountId::new(a.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = ConvFixture::group(owner.clone(), start_ms)
        .members(others, Role::Member)
        .title("bench room")
        .tweak(|spec| spec.encrypted = p.mode == Mode::Sealed)
        .build();
    let create = devices[0].write(&conv_doc, |d, t| write::create_conversation(d, t, &spec))?;
    submit_acked(&mut sockets[0], &conv_doc, &create, "group creation").await?;
    let mut group = match p.mode {
        Mode::Sealed => Some(
            sealed::make_group(
                &mut sockets,
                &tenant,
                &conv_doc,
                &accounts,
                &mut devices[0],
                start_ms,
            )
            .await?,
        ),
        _ => None,
    };
    // Write every change before the clock starts.
    let (per_client, batch, interval) = match p.mode {
        Mode::Burst | Mode::Sealed => (p.burst_messages.div_ceil(n).max(1), p.batch.max(1), None),
        Mode::Paced => {
            let total = (f64::from(p.rate) * p.seconds).round() as usize;
            let per = total.div_ceil(n).max(1);
            // Each client sends every n/rate seconds; client i starts i/rate later.
            (
                per,
                1,
                Some(Duration::from_secs_f64(n as f64 / f64::from(p.rate.max(1)))),
            )
        }
    };
    // Every part the run fills, subscribed by everyone before the clock starts.
    let part_count = part_of(per_client.saturating_sub(1), n - 1, n) + 1;
    let parts: Vec<DocId> = (0..part_count)
        .map(|k| DocId::msgs(&tenant, &conv, Bucket::new(period, k as u32)))
        .collect();
    for ws in sockets.iter_mut() {
        subscribe(ws, &conv_doc).await?;
        for part in &parts {
            subscribe(ws, part).await?;
        }
    }
    let part_of_doc: Arc<HashMap<String, u64>> = Arc::new(
        parts
            .iter()
            .enumerate()
            .map(|(k, d)| (d.to_string(), k as u64))
            .collect(),
    );
    let opened = Arc::new(PartsOpened::new(part_count));
    let mut prepared = Vec::with_capacity(n);
    let preparing = Instant::now();
    for (i, device) in devices.iter_mut().enumerate() {
        prepared.push(Arc::new(prepare(
            device,
            group.as_mut().map(|g| (g, i)),
            &parts,
            (i, n),
            per_client,
            batch,
            p.body_chars,
            created_at,
            i as u64 + 1,
        )?));
    }
    let prepare_us_per_msg =
        preparing.elapsed().as_secs_f64() * 1e6 / (per_client * n).max(1) as f64;
    let total = per_client * n;

    // Start readers and writers; they wait for `go`.
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut readers = Vec::with_capacity(n);
    let mut writers = Vec::with_capacity(n);
    let mut progress = Vec::with_capacity(n);
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        let answered = Arc::new(AtomicUsize::new(0));
        progress.push(answered.clone());
        let notify = Arc::new(Notify::new());
        let index = Arc::new(prepared[i].index.clone());
        readers.push(tokio::spawn(reader(
            stream,
            part_of_doc.clone(),
            opened.clone(),
            index,
            per_client,
            total,
            answered.clone(),
            notify.clone(),
            done_tx.clone(),
            stop_rx.clone(),
        )));
        let prep = prepared[i].clone();
        let go = go_rx.clone();
        writers.push(match interval {
            None => tokio::spawn(burst_writer(
                sink,
                prep,
                p.window,
                (answered, notify, opened.clone()),
                go,
            )),
            Some(every) => tokio::spawn(paced_writer(
                sink,
                prep,
                Duration::from_secs_f64(i as f64 / f64::from(p.rate.max(1))),
                every,
                opened.clone(),
                go,
            )),
        });
    }
    drop(done_tx);

    // The machine's speed right now, next to the run (before the clock starts).
    let mut machine_state = machine::Machine {
        disk_flush_ms: machine::disk_flush_ms(&server.data_dir)?,
        cpu_ms: machine::cpu_ms(),
        wake_us: machine::wake_us(),
        ..machine::Machine::default()
    };
    if let Some(url) = &server.database_url {
        let (trip, commit) = machine::pg_probe(url).await.context("probing Postgres")?;
        machine_state.pg_round_trip_ms = Some(trip);
        machine_state.pg_commit_ms = Some(commit);
    }

    let metrics_before = metrics(server.port).await;
    let pg_db = server
        .database_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .map(str::to_owned);
    let pg_before: HashMap<u32, u64> = match &pg_db {
        Some(db) => pg_backends(db)
            .await?
            .into_iter()
            .filter_map(|pid| cpu_ticks(pid).map(|t| (pid, t)))
            .collect(),
        None => HashMap::new(),
    };
    let cpu_before = cpu_ticks(pid).unwrap_or(0);
    let self_before = cpu_ticks(std::process::id()).unwrap_or(0);
    let machine_before = machine::CpuTimes::now();
    let started = Instant::now();
    let _ = go_tx.send(true);

    // Wait until every reader has all its answers and every delivery (or gave up).
    let expected_s = match p.mode {
        Mode::Burst | Mode::Sealed => 60.0,
        Mode::Paced => p.seconds + 20.0,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(expected_s);
    let mut finished = 0;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(5),
        Duration::from_secs(5),
    );
    let rss_every = Duration::from_secs_f64(if p.rss_every_s > 0.0 {
        p.rss_every_s
    } else {
        // Off: a period the run never reaches.
        1e9
    });
    let mut rss_tick = tokio::time::interval(rss_every);
    let mut rss_samples = Vec::new();
    while finished < n {
        tokio::select! {
            done = tokio::time::timeout_at(deadline, done_rx.recv()) => match done {
                Ok(Some(())) => finished += 1,
                Ok(None) => break,
                Err(_) => {
                    eprintln!("  timed out waiting for acks and deliveries ({finished}/{n} clients complete)");
                    break;
                }
            },
            _ = rss_tick.tick(), if p.rss_every_s > 0.0 => {
                let acked: usize = progress.iter().map(|a| a.load(Ordering::Relaxed)).sum();
                let sample = RssSample {
                    at_s: started.elapsed().as_secs_f64(),
                    rss_mb: mb(memory(pid).0),
                    acked,
                };
                eprintln!("  rss {:>6.1} s: {:>7.1} MiB ({acked} acked)", sample.at_s, sample.rss_mb);
                rss_samples.push(sample);
            }
            _ = tick.tick() => {
                let answered: usize = progress.iter().map(|a| a.load(Ordering::Relaxed)).sum();
                eprintln!(
                    "  {:>5.1} s: {answered}/{total} answered, {finished}/{n} clients complete",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let ended = Instant::now();
    (machine_state.busy_pct, machine_state.steal_pct) =
        machine_before.shares_until(&machine::CpuTimes::now());
    let cpu_after = cpu_ticks(pid).unwrap_or(cpu_before);
    let self_after = cpu_ticks(std::process::id()).unwrap_or(self_before);
    let (rss, peak) = memory(pid);
    let pg_ticks: Option<u64> = match &pg_db {
        Some(db) => {
            let mut sum = 0;
            for pid in pg_backends(db).await? {
                if let Some(now) = cpu_ticks(pid) {
                    sum += now.saturating_sub(pg_before.get(&pid).copied().unwrap_or(0));
                }
            }
            Some(sum)
        }
        None => None,
    };
    let metrics_delta = metrics(server.port).await.minus(metrics_before);
    let _ = stop_tx.send(true);

    let mut sent_at: Vec<Vec<Instant>> = Vec::with_capacity(n);
    let mut writer_errors = Vec::new();
    let mut sinks = Vec::with_capacity(n);
    for w in writers {
        match w.await? {
            Ok((sink, sends)) => {
                sinks.push(Some(sink));
                sent_at.push(sends);
            }
            Err(e) => {
                writer_errors.push(e.to_string());
                sinks.push(None);
                sent_at.push(Vec::new());
            }
        }
    }
    let mut outs = Vec::with_capacity(n);
    for (i, r) in readers.into_iter().enumerate() {
        let (stream, out) = r.await?;
        if let Some(sink) = sinks[i].take() {
            if let Ok(mut ws) = sink.reunite(stream) {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            }
        }
        outs.push(out);
    }
    // Soak: the clients are gone; do units leave memory and memory go back?
    if p.idle_after_s > 0.0 {
        let every = if p.rss_every_s > 0.0 {
            p.rss_every_s
        } else {
            10.0
        };
        let idle_start = Instant::now();
        let acked_all: usize = progress.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        loop {
            let sample = RssSample {
                at_s: started.elapsed().as_secs_f64(),
                rss_mb: mb(memory(pid).0),
                acked: acked_all,
            };
            eprintln!(
                "  rss {:>6.1} s: {:>7.1} MiB (idle {:.0} s, no clients)",
                sample.at_s,
                sample.rss_mb,
                idle_start.elapsed().as_secs_f64()
            );
            rss_samples.push(sample);
            if idle_start.elapsed().as_secs_f64() >= p.idle_after_s {
                break;
            }
            tokio::time::sleep(Duration::from_secs_f64(every)).await;
        }
    }

    // Join sends, acks and deliveries.
    let mut origin: HashMap<u64, (usize, Instant)> = HashMap::with_capacity(total);
    let mut ack_lat = Vec::with_capacity(total);
    let mut first_send: Option<Instant> = None;
    let mut last_send: Option<Instant> = None;
    let mut last_ack: Option<Instant> = None;
    let mut acked = 0;
    let mut rejects = Vec::new();
    let mut errors = writer_errors;
    for (c, out) in outs.iter().enumerate() {
        for s in &sent_at[c] {
            first_send = Some(first_send.map_or(*s, |f| f.min(*s)));
            last_send = Some(last_send.map_or(*s, |f| f.max(*s)));
        }
        for (i, seq, at) in &out.acks {
            let Some(sent) = sent_at[c].get(*i) else {
                continue;
            };
            acked += 1;
            ack_lat.push(at.saturating_duration_since(*sent).as_micros() as u64);
            origin.insert(*seq, (c, *sent));
            last_ack = Some(last_ack.map_or(*at, |l| l.max(*at)));
        }
        rejects.extend(out.rejects.iter().cloned());
        errors.extend(out.errors.iter().map(|e| format!("client {c}: {e}")));
    }
    let mut delivery = Vec::with_capacity(total * (n - 1));
    let mut last_arrival: HashMap<u64, (u64, usize)> = HashMap::with_capacity(total);
    for (r, out) in outs.iter().enumerate() {
        for (seq, at) in &out.deliveries {
            let Some((c, sent)) = origin.get(seq) else {
                continue;
            };
            if *c == r {
                continue;
            }
            let micros = at.saturating_duration_since(*sent).as_micros() as u64;
            delivery.push(micros);
            let e = last_arrival.entry(*seq).or_insert((0, 0));
            e.0 = e.0.max(micros);
            e.1 += 1;
        }
    }
    let delivered_to_all: Vec<u64> = last_arrival
        .values()
        .filter(|(_, count)| *count >= n - 1)
        .map(|(m, _)| *m)
        .collect();
    let deliveries_missing = (acked * (n - 1)).saturating_sub(delivery.len());
    rejects.sort();
    rejects.dedup();
    errors.sort();
    errors.dedup();

    let span = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let accept_span = span(first_send, last_ack);
    // Throughput of the first and the second half of the acks: does acceptance slow down
    // as the bucket document grows?
    let mut ack_times: Vec<Instant> = outs
        .iter()
        .flat_map(|o| o.acks.iter().map(|(_, _, at)| *at))
        .collect();
    ack_times.sort_unstable();
    let (first_half_per_s, second_half_per_s) = match (first_send, ack_times.len()) {
        (Some(first), len) if len >= 2 => {
            let mid = ack_times[len / 2 - 1];
            let last = ack_times[len - 1];
            let a = mid.saturating_duration_since(first).as_secs_f64();
            let b = last.saturating_duration_since(mid).as_secs_f64();
            (
                if a > 0.0 { (len / 2) as f64 / a } else { 0.0 },
                if b > 0.0 {
                    (len - len / 2) as f64 / b
                } else {
                    0.0
                },
            )
        }
        _ => (0.0, 0.0),
    };
    let send_span = span(first_send, last_send);
    let per_1k = |t: u64| {
        if acked == 0 {
            0.0
        } else {
            t as f64 / ticks * 1000.0 / acked as f64 * 1000.0
        }
    };
    let mut result = RunResult {
        backend: backend_name(server.backend),
        clients: n,
        mode: p.mode.name(),
        batch,
        window: if p.mode == Mode::Paced { 0 } else { p.window },
        messages_sent: sent_at.iter().map(Vec::len).sum(),
        messages_acked: acked,
        rejected: rejects.len(),
        errors: errors.into_iter().take(5).collect(),
        accepted_per_s: if accept_span > 0.0 {
            acked as f64 / accept_span
        } else {
            0.0
        },
        first_half_per_s,
        second_half_per_s,
        offered_per_s: if send_span > 0.0 {
            total as f64 / send_span
        } else {
            0.0
        },
        prepare_us_per_msg,
        wall_s: ended.duration_since(started).as_secs_f64(),
        ack: Dist::of(ack_lat),
        delivery: Dist::of(delivery),
        delivery_all: Dist::of(delivered_to_all),
        deliveries_missing,
        server_cpu_ms_per_1k: per_1k(cpu_after.saturating_sub(cpu_before)),
        pg_cpu_ms_per_1k: pg_ticks.map(per_1k),
        loadgen_cpu_ms_per_1k: per_1k(self_after.saturating_sub(self_before)),
        server_rss_mb: mb(rss),
        server_peak_rss_mb: mb(peak),
        commits: metrics_delta.batch_count,
        avg_commit_batch: if metrics_delta.batch_count > 0.0 {
            metrics_delta.batch_sum / metrics_delta.batch_count
        } else {
            0.0
        },
        avg_commit_ms: if metrics_delta.batch_count > 0.0 {
            metrics_delta.seconds_sum / metrics_delta.batch_count * 1000.0
        } else {
            0.0
        },
        frames_in: metrics_delta.frames_in,
        frames_out: metrics_delta.frames_out,
        machine: machine_state,
        stages: StageMeans::of(&metrics_delta),
        rss_samples,
        ..RunResult::default()
    };
    if !rejects.is_empty() {
        result.errors.push(format!(
            "rejected: {}",
            rejects[..rejects.len().min(3)].join("; ")
        ));
    }

    // Storage: stop, measure, compact, measure.
    stop(server).await?;
    result.bucket_bytes_before_compaction = parts_bytes(server, &parts).await?.0;
    let compacting = Instant::now();
    result.compact_summary = server.compact().await?;
    result.compact_s = compacting.elapsed().as_secs_f64();
    let (after, messages) = parts_bytes(server, &parts).await?;
    result.bucket_bytes_after_compaction = after;
    result.messages_after_compaction = messages;
    let db_bytes = match &server.database_url {
        None => ["confab.db", "confab.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(server.data_dir.join(f)).ok())
            .map(|m| m.len())
            .sum(),
        Some(url) => pg_table_bytes(url).await?,
    };
    result.db = storage::measure(server.database_url.as_deref(), &server.data_dir).await?;
    result.db_schema_bytes =
        storage::empty_schema_bytes(&server.binary()?, server.database_url.is_some()).await?;
    if acked > 0 {
        result.stored_bytes_per_msg_before =
            result.bucket_bytes_before_compaction as f64 / acked as f64;
        result.stored_bytes_per_msg = after as f64 / acked as f64;
        result.db_bytes_per_msg_raw = db_bytes as f64 / acked as f64;
        result.db_bytes_per_msg = result.db.total as f64 / acked as f64;
        result.db_bytes_per_msg_data =
            result.db.total.saturating_sub(result.db_schema_bytes) as f64 / acked as f64;
    }
    if messages != acked {
        result.errors.push(format!(
            "the compacted bucket holds {messages} messages, {acked} were acked"
        ));
    }
    Ok(result)
}

/// The bucket parts' stored bytes and, when compacted, the messages their snapshots hold.
async fn parts_bytes(server: &TestServer, parts: &[DocId]) -> Result<(u64, usize)> {
    let store =
        confab_server::maintenance::open_store(server.database_url.as_deref(), &server.data_dir)
            .await
            .context("opening the store")?;
    let (mut bytes, mut messages) = (0, 0);
    for part in parts {
        bytes += store.stored_bytes(part).await?;
        let stored = store.load_doc(part).await?;
        messages += match &stored.snapshot {
            Some(snapshot) if stored.changes.is_empty() => {
                let doc =
                    Automerge::load(snapshot).map_err(|e| anyhow!("loading snapshot: {e}"))?;
                read::read_messages(&doc).len()
            }
            _ => 0,
        };
    }
    Ok((bytes, messages))
}

// ---------------------------------------------------------------------------------------------
// Output

fn table(results: &[RunResult]) {
    println!();
    println!(
        "{:<8} {:>3} {:<6} {:>6} {:>9} | {:>14} | {:>14} | {:>14} | {:>7} {:>7} {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6} {:>7}",
        "backend", "N", "mode", "acked", "msg/s",
        "ack p50/p99", "deliv p50/p99", "all p50/p99",
        "srvCPU", "pgCPU", "RSS", "peak",
        "batch", "commit",
        "B/msg", "pre", "db B/m"
    );
    println!(
        "{:<8} {:>3} {:<6} {:>6} {:>9} | {:>14} | {:>14} | {:>14} | {:>7} {:>7} {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6} {:>7}",
        "", "", "", "", "accepted",
        "ms", "ms", "ms",
        "ms/1k", "ms/1k", "MB", "MB",
        "avg", "avg ms",
        "compct", "compct", ""
    );
    for r in results {
        let pg = r
            .pg_cpu_ms_per_1k
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        println!(
            "{:<8} {:>3} {:<6} {:>6} {:>9.0} | {:>6.2}/{:>7.2} | {:>6.2}/{:>7.2} | {:>6.2}/{:>7.2} | {:>7.0} {:>7} {:>6.1} {:>6.1} | {:>6.1} {:>6.2} | {:>6.1} {:>6.1} {:>7.0}",
            r.backend,
            r.clients,
            r.mode,
            r.messages_acked,
            r.accepted_per_s,
            r.ack.p50_ms,
            r.ack.p99_ms,
            r.delivery.p50_ms,
            r.delivery.p99_ms,
            r.delivery_all.p50_ms,
            r.delivery_all.p99_ms,
            r.server_cpu_ms_per_1k,
            pg,
            r.server_rss_mb,
            r.server_peak_rss_mb,
            r.avg_commit_batch,
            r.avg_commit_ms,
            r.stored_bytes_per_msg,
            r.stored_bytes_per_msg_before,
            r.db_bytes_per_msg,
        );
        println!("         machine: {}", machine_line(&r.machine));
        println!(
            "         database after compaction and vacuum: {} ({:.0} B/msg before the vacuum; \
             the empty schema {:.0} KB)",
            r.db.line(r.messages_acked),
            r.db_bytes_per_msg_raw,
            r.db_schema_bytes as f64 / 1e3
        );
        println!("         server stages, mean ms: {}", r.stages.line());
        for e in &r.errors {
            println!("         ! {e}");
        }
    }
    println!();
    println!("targets (Postgres, durable commits): burst ≥ {TARGET_BURST_PER_S:.0} msg/s; paced delivery p50 ≤ {TARGET_PACED_P50_MS} ms, p99 ≤ {TARGET_PACED_P99_MS} ms; ≤ {TARGET_STORED_BYTES} stored bytes/msg after compaction; either backend: ≤ {TARGET_DB_BYTES} database bytes/msg after compaction and vacuum, over the empty schema's fixed size");
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    let mut groups: Vec<(usize, &str)> = Vec::new();
    for r in results.iter().filter(|r| r.backend == "postgres") {
        if !groups.contains(&(r.clients, r.mode)) {
            groups.push((r.clients, r.mode));
        }
    }
    for (clients, mode) in groups {
        if mode == "sealed" {
            continue;
        }
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.backend == "postgres" && r.clients == clients && r.mode == mode)
            .collect();
        let of = |value: fn(&RunResult) -> f64| median(runs.iter().map(|r| value(r)).collect());
        let bytes = of(|r| r.stored_bytes_per_msg);
        let over = if runs.len() > 1 {
            format!(" (median of {} runs)", runs.len())
        } else {
            String::new()
        };
        if mode == "burst" {
            let rate = of(|r| r.accepted_per_s);
            println!(
                "  postgres N={clients:<2} burst: {rate:>7.0} msg/s {}; {bytes:.1} B/msg {}{over}",
                verdict(rate >= TARGET_BURST_PER_S),
                verdict(bytes <= TARGET_STORED_BYTES)
            );
        } else {
            let p50 = of(|r| r.delivery_all.p50_ms);
            let p99 = of(|r| r.delivery_all.p99_ms);
            println!(
                "  postgres N={clients:<2} paced: delivery-to-all p50 {p50:.2} ms / p99 {p99:.2} ms {}; {bytes:.1} B/msg {}{over}",
                verdict(p50 <= TARGET_PACED_P50_MS && p99 <= TARGET_PACED_P99_MS),
                verdict(bytes <= TARGET_STORED_BYTES)
            );
            if runs.len() > 1 {
                let each: Vec<String> = runs
                    .iter()
                    .map(|r| format!("{:.2}", r.delivery_all.p50_ms))
                    .collect();
                println!("    p50 of each run: {} ms", each.join(", "));
            }
            let m = |value: fn(&machine::Machine) -> f64| {
                median(runs.iter().map(|r| value(&r.machine)).collect())
            };
            println!(
                "    machine during these runs (median): {}",
                machine_line(&machine::Machine {
                    steal_pct: m(|x| x.steal_pct),
                    busy_pct: m(|x| x.busy_pct),
                    disk_flush_ms: m(|x| x.disk_flush_ms),
                    pg_round_trip_ms: Some(m(|x| x.pg_round_trip_ms.unwrap_or(f64::NAN))),
                    pg_commit_ms: Some(m(|x| x.pg_commit_ms.unwrap_or(f64::NAN))),
                    cpu_ms: m(|x| x.cpu_ms),
                    wake_us: m(|x| x.wake_us),
                })
            );
        }
    }
    for r in results {
        println!(
            "  {} N={:<2} {}: database after compaction and vacuum {:.0} B/msg in all, \
             {:.0} B/msg over the empty schema's {:.0} KB {}",
            r.backend,
            r.clients,
            r.mode,
            r.db_bytes_per_msg,
            r.db_bytes_per_msg_data,
            r.db_schema_bytes as f64 / 1e3,
            verdict(r.db_bytes_per_msg_data <= TARGET_DB_BYTES)
        );
    }
    sealed::ratios(results);
}

fn machine_line(m: &machine::Machine) -> String {
    let mut line = format!(
        "CPU busy {:.0}%, steal {:.1}%; SHA-256 of 1 MiB {:.2} ms, thread wake-up round trip {:.0} µs; disk flush {:.2} ms",
        m.busy_pct, m.steal_pct, m.cpu_ms, m.wake_us, m.disk_flush_ms
    );
    if let (Some(trip), Some(commit)) = (m.pg_round_trip_ms, m.pg_commit_ms) {
        line.push_str(&format!(
            "; Postgres round trip {trip:.2} ms, one-row durable commit {commit:.2} ms"
        ));
    }
    line
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

// One thread for every client: see the module documentation.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    // `loadgen cluster ...`: several nodes on one Postgres database (cluster.rs).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("cluster") {
        let rest = std::iter::once("loadgen cluster".to_owned()).chain(argv.into_iter().skip(2));
        return cluster::main(cluster::ClusterArgs::parse_from(rest)).await;
    }
    // `loadgen many ...`: on its own multi-thread runtime, in its own thread (many.rs).
    if argv.get(1).map(String::as_str) == Some("many") {
        let rest = std::iter::once("loadgen many".to_owned()).chain(argv.into_iter().skip(2));
        let args = many::ManyArgs::parse_from(rest);
        return std::thread::spawn(move || many::main(args))
            .join()
            .map_err(|_| anyhow!("loadgen many panicked"))?;
    }
    let mut args = Args::parse();
    if args.clients.is_empty() {
        args.clients = if args.quick {
            vec![2, 10]
        } else {
            vec![2, 10, 50]
        };
    }
    let burst_messages = args
        .burst_messages
        .unwrap_or(if args.quick { 2_000 } else { 20_000 });
    let seconds = args.seconds.unwrap_or(if args.quick { 3.0 } else { 10.0 });
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("confab-server"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p confab-server` or pass --server-bin",
            bin.display()
        );
    }
    let mut backends = Vec::new();
    for b in &args.backends {
        backends.push(match b.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" | "pg" => Backend::Postgres,
            other => bail!("unknown backend {other:?} (sqlite, postgres)"),
        });
    }
    let mut modes = Vec::new();
    for m in &args.modes {
        modes.push(match m.as_str() {
            "burst" => Mode::Burst,
            "sealed" => Mode::Sealed,
            "paced" => Mode::Paced,
            other => bail!("unknown mode {other:?} (burst, sealed, paced)"),
        });
    }
    let ticks = clock_ticks();
    eprintln!(
        "loadgen: server {} | {} cores | load average {}",
        bin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("  sqlite: WAL, synchronous=FULL (durable commits)");
    if backends.contains(&Backend::Postgres) {
        eprintln!("  postgres: {}", pg_durability().await?);
    }
    eprintln!(
        "  burst: {} messages per run, {} changes per submit frame, ≤ {} unacked changes per client; paced: {} msg/s for {} s, 1 change per frame; bodies {} chars, ULID-like ids",
        burst_messages, args.batch, args.window, args.rate, seconds, args.body_chars
    );
    let mut json_file = match &args.json {
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            )
        }
        None => None,
    };
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for &backend in &backends {
        for &clients in &args.clients {
            for (&mode, round) in modes
                .iter()
                .flat_map(|m| (1..=args.repeat.max(1)).map(move |round| (m, round)))
            {
                let params = Params {
                    clients,
                    mode,
                    burst_messages,
                    batch: args.batch,
                    window: args.window,
                    rate: args.rate,
                    seconds,
                    body_chars: args.body_chars,
                    rss_every_s: args.rss_every_s,
                    idle_after_s: args.idle_after_s,
                };
                let mut label = format!("{} N={clients} {}", backend_name(backend), mode.name());
                if args.repeat > 1 {
                    label.push_str(&format!(" (run {round} of {})", args.repeat));
                }
                eprintln!("run {label} ...");
                let started = Instant::now();
                let outcome = tokio::time::timeout(
                    Duration::from_secs(args.run_timeout_s),
                    run_one(&bin, backend, &params, ticks),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow!("run exceeded {} s", args.run_timeout_s)));
                match outcome {
                    Ok(r) => {
                        let line = serde_json::to_string(&r)?;
                        println!("{line}");
                        if let Some(f) = json_file.as_mut() {
                            writeln!(f, "{line}")?;
                        }
                        eprintln!(
                            "  {:.0} msg/s accepted, delivery p50 {:.2} ms p99 {:.2} ms, {:.1} B/msg ({:.1} s)",
                            r.accepted_per_s,
                            r.delivery.p50_ms,
                            r.delivery.p99_ms,
                            r.stored_bytes_per_msg,
                            started.elapsed().as_secs_f64()
                        );
                        results.push(r);
                    }
                    Err(e) => {
                        eprintln!("  FAILED: {e:#}");
                        failures.push(format!("{label}: {e:#}"));
                    }
                }
            }
        }
    }
    table(&results);
    if !failures.is_empty() {
        bail!("{} run(s) failed:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

/// A binary frame's bytes from one read of a client's socket; `Ok(None)` for anything to
/// skip (pings, text); `Err` says how the connection ended.
fn frame_bytes<E: std::fmt::Display>(
    message: Option<std::result::Result<Message, E>>,
) -> std::result::Result<Option<Bytes>, String> {
    match message {
        Some(Ok(Message::Binary(bytes))) => Ok(Some(bytes)),
        Some(Ok(Message::Close(frame))) => Err(format!("closed by the server: {frame:?}")),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("websocket: {e}")),
        None => Err("connection ended".into()),
    }
}
