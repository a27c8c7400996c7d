//! `loadgen cluster`: several `confab-server` nodes on one Postgres database,
//! behind `cargo xtask bench cluster`.
//!
//! Per run it creates a fresh database on 127.0.0.1:5432, starts `--nodes` server processes
//! on it one after the other (each with `--node-id nK` when the binary has the flag), spreads
//! native clients over the nodes' URLs, and drops the database afterwards. Runs alternate
//! node counts within each scenario (1 node, then 3, then the next scenario), so the
//! 1-node baseline sees the same minutes of this VM as the cluster.
//!
//! Scenarios (the layout of node k of N is `k % N`, so with one node everything is local):
//! - `delivery`: `--delivery-convs` conversations of three members: the writer on node
//!   `k`, two readers on the other nodes (on the same node when N = 1). `--rate` msg/s in
//!   total, paced, one change per frame, for `--seconds`. Reported: send → push at a reader,
//!   split into same-node and cross-node samples (the target is cross-node p50 ≤ 5 ms,
//!   p99 ≤ 25 ms at 1,000 msg/s).
//! - `local` (more than one node only): `delivery` with each conversation's members all on
//!   its writer's node. No push crosses nodes, but every node still gets every commit's
//!   notification: the cost of a cluster for documents a node does not hold.
//! - `hot`: one conversation, `--hot-members` members spread round-robin over the nodes, all
//!   writing as fast as acks come back (`--batch` changes per frame, ≤ `--window` unacked).
//!   Reported: accepted msg/s, commit conflicts per 1,000 messages (the sum over nodes of
//!   `confab_cluster_commit_conflicts_total`).
//! - `many`: `--many-convs` two-member conversations, the writer on node `k`, the reader on
//!   node `k + 1`; every writer as fast as acks come back. Reported: accepted msg/s, server
//!   CPU per 1,000 messages (sum over nodes, /proc/<pid>/stat), Postgres CPU per 1,000.
//!
//! Burst scenarios send at most `--burst-messages` in all and stop sending after
//! `--burst-seconds`; a scenario's changes are written once, before its first run, and
//! sent again in each (every run has a fresh database). After the sending ends every run waits at most `--drain-s` for the answers
//! and pushes still due, then counts what is missing: a push that never crossed nodes is
//! a counted timeout, not a hang. A retryable `error` (or a `missing_dependency` behind
//! one) is resubmitted as the protocol says, in order, until the sending ends.
//!
//! Postgres side, per run: `track_functions = 'pl'` on the fresh database, so the mean
//! time of each plpgsql commit function (`pg_stat_user_functions`, read after the nodes
//! have stopped and their backends flushed their counters) and rollbacks (a lost
//! compare-and-set raises) are measured in place. `--probes` adds two measurements for the
//! scaling model (docs/BENCHMARKS.md, "The ceiling at 10 and 100 nodes"): durable commits/s
//! with and without a NOTIFY as writers are added (Postgres takes a global lock for the
//! commit of a transaction that notified), and the database's CPU per notification per
//! listening connection.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{decode_server, encode_client, ClientFrame, ServerFrame};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::server::{now_ms, SECRET, UNLIMITED_RATES};
use confab_testkit::text::{body, message_id, Rng};
use confab_testkit::Device;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_bytes::ByteBuf;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use super::{
    admin, clock_ticks, connect, cpu_ticks, http_get, machine, pg_backends, pg_durability,
    recv_frame, send_frame, subscribe, Dist, Ws, TENANT,
};

/// The targets for cross-node delivery at 1,000 msg/s paced (docs/BENCHMARKS.md, "Cluster").
const TARGET_CROSS_P50_MS: f64 = 5.0;
const TARGET_CROSS_P99_MS: f64 = 25.0;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen cluster",
    about = "Several confab-server nodes on one Postgres database (127.0.0.1 only)"
)]
pub struct ClusterArgs {
    /// Node counts; each scenario runs once per count, in this order.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    nodes: Vec<usize>,
    /// Scenarios: delivery, local, hot, many (none: the probes alone).
    #[arg(long, value_delimiter = ',', default_value = "delivery,local,hot,many")]
    scenarios: Vec<String>,
    /// delivery: messages per second, all writers together.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// delivery: seconds of the paced schedule.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// hot, many: the most seconds of sending (it also ends when --burst-messages are sent).
    #[arg(long, default_value_t = 5.0)]
    burst_seconds: f64,
    /// delivery: conversations (one writer and two readers each).
    #[arg(long, default_value_t = 6)]
    delivery_convs: usize,
    /// hot: members of the one conversation, all writing.
    #[arg(long, default_value_t = 6)]
    hot_members: usize,
    /// many: two-member conversations (one writer each).
    #[arg(long, default_value_t = 24)]
    many_convs: usize,
    /// hot, many: most messages per run, all writers together (prepared before the clock).
    #[arg(long, default_value_t = 50_000)]
    burst_messages: usize,
    /// hot, many: changes per submit frame.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// hot, many: most unacked changes per writer.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// After the sending ends: how long to wait for the answers and pushes still due.
    #[arg(long, default_value_t = 5.0)]
    drain_s: f64,
    /// Characters per message body.
    #[arg(long, default_value_t = 40)]
    body_chars: usize,
    /// Runs of every scenario × node count (alternating 1, 3, 1, 3 nodes: this VM moves
    /// by ±30% within minutes); the table shows each.
    #[arg(long, default_value_t = 2)]
    repeat: usize,
    /// Also measure Postgres alone for the scaling model (NOTIFY commits, listener cost).
    #[arg(long)]
    probes: bool,
    /// Upper bound of one run (start, setup, load, drain, stop).
    #[arg(long, default_value_t = 90)]
    run_timeout_s: u64,
    /// Upper bound of everything: runs not started by then are skipped (and reported).
    #[arg(long, default_value_t = 330)]
    total_timeout_s: u64,
    /// The server binary (default: `confab-server` next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Extra `serve` flags for every node (e.g. `--worker-threads=1`).
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Also append each run's JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep each run's node logs (the folder is printed); set their level with
    /// CONFAB_BENCH_LOG (RUST_LOG syntax, default warn).
    #[arg(long)]
    keep_logs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Delivery,
    /// `delivery` with every member on its writer's node: what the other nodes pay for
    /// notifications of documents they do not hold (skipped on one node: it is `delivery`).
    Local,
    Hot,
    Many,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Delivery => "delivery",
            Scenario::Local => "local",
            Scenario::Hot => "hot",
            Scenario::Many => "many",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The nodes

const ADMIN_DB: &str = "postgres://postgres@127.0.0.1:5432";

/// One `confab-server` process of the cluster.
struct Node {
    id: String,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// N nodes on one fresh database; the processes are killed and the database dropped when
/// it is dropped (a failed or timed-out run leaves nothing behind).
struct Cluster {
    db: String,
    url: String,
    dir: PathBuf,
    nodes: Vec<Node>,
    /// Keep the nodes' logs (`--keep-logs`).
    keep_logs: bool,
}

static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Whether the server binary knows `--node-id` (a build that can run as a cluster node).
fn has_node_id_flag(bin: &Path) -> bool {
    std::process::Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--node-id"))
        .unwrap_or(false)
}

impl Cluster {
    async fn start(bin: &Path, nodes: usize, node_id_flag: bool, extra: &[String]) -> Result<Self> {
        use sqlx::Executor;
        let n = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
        let db = format!("confab_cluster_{}_{n}", std::process::id());
        let dir = std::env::temp_dir().join(&db);
        std::fs::create_dir_all(&dir)?;
        let mut conn = admin().await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
            .await?;
        conn.execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
        // Per-function call counts and times for this database's sessions (superuser).
        conn.execute(format!("ALTER DATABASE {db} SET track_functions = 'pl'").as_str())
            .await?;
        let mut cluster = Cluster {
            url: format!("{ADMIN_DB}/{db}"),
            db,
            dir,
            nodes: Vec::new(),
            keep_logs: false,
        };
        // One after the other: the first applies the migrations, the next find them done.
        for k in 0..nodes {
            let node = cluster.spawn(bin, k, node_id_flag, extra).await?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    async fn spawn(
        &self,
        bin: &Path,
        k: usize,
        node_id_flag: bool,
        extra: &[String],
    ) -> Result<Node> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let id = format!("n{}", k + 1);
        let log = self.dir.join(format!("{id}.log"));
        let file = std::fs::File::create(&log).context("the node's log")?;
        let mut cmd = Command::new(bin);
        cmd.arg("--data-dir")
            .arg(self.dir.join(&id))
            .arg("--database-url")
            .arg(&self.url)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(UNLIMITED_RATES)
            .args(extra)
            .env("CONFAB_JWT_SECRET", SECRET)
            // Without the flag (a server from before the cluster work) the environment
            // variable is ignored, so the harness still runs and says what it saw.
            .env("CONFAB_NODE_ID", &id)
            .env(
                "RUST_LOG",
                std::env::var("CONFAB_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("CONFAB_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true);
        if node_id_flag {
            cmd.arg("--node-id").arg(&id);
        }
        let mut node = Node {
            id,
            port,
            child: Some(cmd.spawn().context("starting confab-server")?),
            log,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "node {} exited during start: {status}\n{}",
                    node.id,
                    node.log_tail(20)
                );
            }
            if let Ok((200, _)) = http_get(port, "/readyz").await {
                return Ok(node);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = node.child.as_mut().map(|c| c.start_kill());
        bail!(
            "node {} not ready within 30 s\n{}",
            node.id,
            node.log_tail(20)
        )
    }

    /// SIGTERM every node, then wait (killed after 15 s): their database sessions end and
    /// flush their statistics.
    async fn stop(&mut self) {
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                if tokio::time::timeout(Duration::from_secs(15), child.wait())
                    .await
                    .is_err()
                {
                    eprintln!("  note: node {} ignored SIGTERM for 15 s; killed", node.id);
                    let _ = child.kill().await;
                }
            }
        }
    }

    /// Whether every node still runs (a crash under load is reported, not hidden).
    fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                out.push(format!(
                    "node {} exited during the run: {status}; log tail:\n{}",
                    node.id,
                    node.log_tail(10)
                ));
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        if self.keep_logs {
            eprintln!("  node logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        // Best effort, synchronous (Drop): psql ships with PostgreSQL.
        let _ = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-q",
                "-c",
            ])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// /metrics, summed over labels

type Metrics = HashMap<String, f64>;

/// A change's hash → its index in its writer's send order.
type ChangeIndex = HashMap<[u8; 32], usize>;

/// Every sample of the exposition, by metric name with its labels dropped (summed): a
/// counter labelled by reason counts as one total.
fn parse_metrics(text: &str) -> Metrics {
    let mut out = Metrics::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (Some(series), Some(value)) = (line.split_whitespace().next(), line.rsplit(' ').next())
        else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        *out.entry(name.to_owned()).or_default() += v;
    }
    out
}

async fn node_metrics(port: u16) -> Metrics {
    match http_get(port, "/metrics").await {
        Ok((200, body)) => parse_metrics(&body),
        _ => Metrics::new(),
    }
}

fn delta(after: &Metrics, before: &Metrics, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Layout

/// One conversation of a run: its documents, members (client indices) and writers.
struct ConvPlan {
    conv_doc: DocId,
    bucket: DocId,
    members: Vec<usize>,
    writers: Vec<usize>,
}

/// One client: an account (its own device), the node it talks to, its conversation.
struct ClientPlan {
    account: String,
    node: usize,
    conv: usize,
}

fn layout(
    s: Scenario,
    a: &ClusterArgs,
    nodes: usize,
    created_at: i64,
) -> Result<(Vec<ConvPlan>, Vec<ClientPlan>)> {
    let tenant = TenantId::new(TENANT)?;
    let mut convs = Vec::new();
    let mut clients = Vec::new();
    let mut add = |members: &[usize], writers: usize| -> Result<()> {
        let c = convs.len();
        let conv = ConvId::new(format!("room{c:03}"))?;
        let first = clients.len();
        for (m, &node) in members.iter().enumerate() {
            clients.push(ClientPlan {
                // Distinct in their first 15 bytes: the device actor is made of them.
                account: format!("c{c:03}m{m:02}"),
                node: node % nodes,
                conv: c,
            });
        }
        convs.push(ConvPlan {
            conv_doc: DocId::conv(&tenant, &conv),
            bucket: DocId::msgs(&tenant, &conv, created_at.div_euclid(DEFAULT_BUCKET_MS)),
            members: (first..clients.len()).collect(),
            writers: (first..first + writers).collect(),
        });
        Ok(())
    };
    match s {
        Scenario::Delivery => {
            for k in 0..a.delivery_convs.max(1) {
                add(&[k, k + 1, k + 2], 1)?;
            }
        }
        Scenario::Local => {
            for k in 0..a.delivery_convs.max(1) {
                add(&[k, k, k], 1)?;
            }
        }
        Scenario::Hot => {
            let members: Vec<usize> = (0..a.hot_members.max(2)).collect();
            add(&members, members.len())?;
        }
        Scenario::Many => {
            for k in 0..a.many_convs.max(1) {
                add(&[k, k + 1], 1)?;
            }
        }
    }
    Ok((convs, clients))
}

// ---------------------------------------------------------------------------------------------
// A client

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Unsent,
    InFlight,
    /// Answered retryable: sent again when its turn comes.
    Queued,
    /// Queued when the sending ended: never sent again, no longer waited for.
    Abandoned,
    Acked,
    Rejected,
}

/// Counters every client updates, read by the coordinator to know when the run is over.
#[derive(Default)]
struct Shared {
    /// Changes sent and not answered, plus changes waiting to be sent again.
    outstanding: AtomicI64,
    /// Pushes expected: every acked change times its conversation's subscribers.
    expected: AtomicUsize,
    /// Pushes received (the writer's own included: subscribers get their own changes).
    delivered: AtomicUsize,
    acked: AtomicUsize,
}

struct ClientSpec {
    ws: Ws,
    /// Raw message changes in send order (empty for a reader).
    changes: Arc<Vec<ByteBuf>>,
    index: Arc<ChangeIndex>,
    bucket: String,
    subscribers: usize,
    paced: Option<(Duration, Duration)>,
    batch: usize,
    window: usize,
}

#[derive(Default)]
struct ClientOut {
    /// (change index, seq, arrival)
    acks: Vec<(usize, u64, Instant)>,
    /// First send of each change.
    first_sent: Vec<Option<Instant>>,
    /// (seq, arrival) of pushes of the bucket.
    deliveries: Vec<(u64, Instant)>,
    rejects: HashMap<String, usize>,
    errors: HashMap<String, usize>,
    resent: usize,
    unsent_at_end: usize,
    fatal: Vec<String>,
}

/// One client on one task: it reads and writes the same socket, so a retry can go out
/// right after its answer is read, in order.
async fn client(
    spec: ClientSpec,
    shared: Arc<Shared>,
    mut go: tokio::sync::watch::Receiver<bool>,
    send_until: Arc<std::sync::OnceLock<tokio::time::Instant>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ClientOut {
    let ClientSpec {
        mut ws,
        changes,
        index,
        bucket,
        subscribers,
        paced,
        batch,
        window,
    } = spec;
    let count = changes.len();
    let mut out = ClientOut {
        first_sent: vec![None; count],
        ..ClientOut::default()
    };
    let mut status = vec![Status::Unsent; count];
    let mut cursor = 0usize;
    let mut queued: BTreeSet<usize> = BTreeSet::new();
    let mut retry_at = tokio::time::Instant::now();
    let mut in_flight = 0usize;
    let _ = go.wait_for(|g| *g).await;
    let start = tokio::time::Instant::now();
    let deadline = send_until.get().copied().unwrap_or(start);
    let far = start + Duration::from_secs(3600);
    loop {
        // Send what is due: retries first (in order), then fresh changes.
        let now = tokio::time::Instant::now();
        let mut frames: Vec<Vec<usize>> = Vec::new();
        if now >= deadline && !queued.is_empty() {
            // Sending is over: what waits for a retry will not go out; stop counting it as
            // outstanding (it stays `Queued`, reported as never accepted).
            shared
                .outstanding
                .fetch_sub(queued.len() as i64, Ordering::Relaxed);
            for i in std::mem::take(&mut queued) {
                status[i] = Status::Abandoned;
            }
        }
        if now < deadline {
            if !queued.is_empty() && now >= retry_at {
                while !queued.is_empty() && in_flight < window.max(1) {
                    let take: Vec<usize> = queued.iter().take(batch.max(1)).copied().collect();
                    for i in &take {
                        queued.remove(i);
                    }
                    in_flight += take.len();
                    out.resent += take.len();
                    frames.push(take);
                }
            }
            match paced {
                Some((offset, every)) => {
                    while cursor < count && now >= start + offset + every.mul_f64(cursor as f64) {
                        frames.push(vec![cursor]);
                        cursor += 1;
                        in_flight += 1;
                        shared.outstanding.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    while cursor < count && in_flight < window.max(1) {
                        let n = batch.max(1).min(count - cursor);
                        frames.push((cursor..cursor + n).collect());
                        cursor += n;
                        in_flight += n;
                        shared.outstanding.fetch_add(n as i64, Ordering::Relaxed);
                    }
                }
            }
        }
        for frame in frames {
            let sent = Instant::now();
            for &i in &frame {
                status[i] = Status::InFlight;
                out.first_sent[i].get_or_insert(sent);
            }
            let submit = ClientFrame::Submit {
                doc: bucket.clone(),
                changes: frame.iter().map(|&i| changes[i].clone()).collect(),
            };
            if let Err(e) = ws
                .send(Message::Binary(encode_client(&submit).into()))
                .await
            {
                out.fatal.push(format!("websocket send: {e}"));
                return finish(out, &status, &shared);
            }
        }
        // Wake up for the next paced send, the next retry, or the end of sending.
        let mut wake = far;
        if now < deadline {
            if let Some((offset, every)) = paced {
                if cursor < count {
                    wake = wake.min(start + offset + every.mul_f64(cursor as f64));
                }
            }
            if !queued.is_empty() {
                wake = wake.min(retry_at.max(now));
            }
            wake = wake.min(deadline);
        }
        let message = tokio::select! {
            m = ws.next() => m,
            _ = tokio::time::sleep_until(wake) => continue,
            _ = stop.changed() => break,
        };
        let now = Instant::now();
        let bytes = match super::frame_bytes(message) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(ended) => {
                out.fatal.push(ended);
                break;
            }
        };
        let frame = match decode_server(&bytes, usize::MAX) {
            Ok(f) => f,
            Err(e) => {
                *out.errors
                    .entry(format!("undecodable frame: {e}"))
                    .or_default() += 1;
                continue;
            }
        };
        let lookup = |hash: &[u8]| -> Option<usize> {
            let key: [u8; 32] = hash.try_into().ok()?;
            index.get(&key).copied()
        };
        match frame {
            ServerFrame::Ack { hash, seq, .. } => {
                if let Some(i) = lookup(&hash) {
                    if status[i] != Status::Acked {
                        if status[i] == Status::InFlight {
                            in_flight -= 1;
                        }
                        if status[i] == Status::Queued {
                            queued.remove(&i);
                        }
                        if matches!(status[i], Status::InFlight | Status::Queued) {
                            shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                        }
                        status[i] = Status::Acked;
                        out.acks.push((i, seq, now));
                        shared.acked.fetch_add(1, Ordering::Relaxed);
                        shared.expected.fetch_add(subscribers, Ordering::Relaxed);
                    }
                }
            }
            ServerFrame::Reject {
                hash, code, reason, ..
            } => {
                let i = hash.as_deref().and_then(|h| lookup(h));
                *out.rejects.entry(code.clone()).or_default() += 1;
                if let Some(i) = i.filter(|&i| status[i] == Status::InFlight) {
                    in_flight -= 1;
                    if code == "missing_dependency" {
                        // Behind a change answered retryable: it goes again, after it.
                        status[i] = Status::Queued;
                        queued.insert(i);
                    } else {
                        status[i] = Status::Rejected;
                        shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                        if out.rejects.len() == 1 && out.rejects[&code] == 1 {
                            eprintln!("  reject {code}: {reason}");
                        }
                    }
                }
            }
            ServerFrame::Error {
                code,
                hash,
                retry_after_ms,
                fatal,
                message,
                ..
            } => {
                *out.errors.entry(code.clone()).or_default() += 1;
                if fatal {
                    out.fatal.push(format!("{code}: {message}"));
                    break;
                }
                let answered: Vec<usize> = match hash.as_deref().and_then(|h| lookup(h)) {
                    Some(i) => vec![i],
                    // No hash: every unanswered change of the document (PROTOCOL.md).
                    None => (0..count)
                        .filter(|&i| status[i] == Status::InFlight)
                        .collect(),
                };
                for i in answered {
                    if status[i] == Status::InFlight {
                        in_flight -= 1;
                        status[i] = Status::Queued;
                        queued.insert(i);
                    }
                }
                let wait = Duration::from_millis(retry_after_ms.unwrap_or(50).min(2_000));
                retry_at = tokio::time::Instant::now() + wait;
            }
            ServerFrame::Changes { doc, changes } if doc == bucket => {
                shared.delivered.fetch_add(changes.len(), Ordering::Relaxed);
                out.deliveries.extend(changes.iter().map(|c| (c.seq, now)));
            }
            _ => {}
        }
    }
    finish(out, &status, &shared)
}

fn finish(mut out: ClientOut, status: &[Status], shared: &Shared) -> ClientOut {
    out.unsent_at_end = status
        .iter()
        .filter(|s| matches!(s, Status::Queued | Status::Abandoned))
        .count();
    // Nothing of this client is outstanding any more: the coordinator stops waiting for it.
    let open = status
        .iter()
        .filter(|s| matches!(s, Status::Queued | Status::InFlight))
        .count();
    shared.outstanding.fetch_sub(open as i64, Ordering::Relaxed);
    out
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Debug, Default, Clone, Serialize)]
pub struct NodeResult {
    id: String,
    cpu_ms: f64,
    accepted: f64,
    commits: f64,
    notifications: f64,
    catchup_reads: f64,
    commit_conflicts: f64,
    resyncs: f64,
    /// Mean of `confab_cluster_lag_seconds` over the run (commit elsewhere → pushed here).
    lag_mean_ms: Option<f64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PgFunction {
    name: String,
    calls: i64,
    mean_ms: f64,
    self_mean_ms: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RunResult {
    scenario: &'static str,
    nodes: usize,
    /// Whether the server binary took `--node-id` (the cluster build).
    node_id_flag: bool,
    clients: usize,
    conversations: usize,
    writers: usize,
    messages_sent: usize,
    messages_acked: usize,
    rejects: HashMap<String, usize>,
    errors: HashMap<String, usize>,
    resent: usize,
    unsent_at_end: usize,
    fatal: Vec<String>,
    /// Acked / (first send → last ack).
    accepted_per_s: f64,
    offered_per_s: f64,
    wall_s: f64,
    ack: Dist,
    /// Send → push at another subscriber on the sender's node.
    delivery_same_node: Dist,
    /// Send → push at a subscriber on another node.
    delivery_cross_node: Dist,
    /// Pushes due (acked message × subscriber other than its writer) that never came
    /// within the drain time.
    missing_same_node: usize,
    missing_cross_node: usize,
    expected_same_node: usize,
    expected_cross_node: usize,
    server_cpu_ms_per_1k: f64,
    pg_cpu_ms_per_1k: f64,
    loadgen_cpu_ms_per_1k: f64,
    commit_conflicts: f64,
    commit_conflicts_per_1k: f64,
    notifications: f64,
    catchup_reads: f64,
    commits: f64,
    avg_commit_batch: f64,
    pg_functions: Vec<PgFunction>,
    pg_xact_commit: i64,
    pg_xact_rollback: i64,
    per_node: Vec<NodeResult>,
    machine: machine::Machine,
}

// ---------------------------------------------------------------------------------------------
// One run

async fn run_one(
    bin: &Path,
    s: Scenario,
    nodes: usize,
    a: &ClusterArgs,
    work: &Workload,
    node_id_flag: bool,
    ticks: f64,
) -> Result<RunResult> {
    let mut cluster = Cluster::start(bin, nodes, node_id_flag, &a.server_arg).await?;
    cluster.keep_logs = a.keep_logs;
    let outcome = drive(&mut cluster, s, a, work, node_id_flag, ticks).await;
    if outcome.is_err() {
        for node in &cluster.nodes {
            eprintln!("  node {} log tail:\n{}", node.id, node.log_tail(10));
        }
    }
    cluster.stop().await;
    let mut result = outcome?;
    // The nodes' sessions have ended and flushed their counters: read them now.
    match pg_function_stats(&cluster.url, &cluster.db).await {
        Ok((functions, commits, rollbacks)) => {
            result.pg_functions = functions;
            result.pg_xact_commit = commits;
            result.pg_xact_rollback = rollbacks;
        }
        Err(e) => eprintln!("  note: no Postgres function statistics: {e:#}"),
    }
    Ok(result)
}

async fn pg_function_stats(url: &str, db: &str) -> Result<(Vec<PgFunction>, i64, i64)> {
    use sqlx::Row;
    // Ended sessions report on exit; give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
    let rows = sqlx::query(
        "SELECT funcname::text, calls, total_time, self_time FROM pg_stat_user_functions \
         ORDER BY calls DESC",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let calls: i64 = r.try_get(1)?;
        let total: f64 = r.try_get(2)?;
        let own: f64 = r.try_get(3)?;
        out.push(PgFunction {
            name: r.try_get(0)?,
            calls,
            mean_ms: if calls > 0 { total / calls as f64 } else { 0.0 },
            self_mean_ms: if calls > 0 { own / calls as f64 } else { 0.0 },
        });
    }
    let row =
        sqlx::query("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(&mut conn)
            .await?;
    Ok((out, row.try_get(0)?, row.try_get(1)?))
}

/// What a scenario sends, written once and sent again in every run of it (each run has a
/// fresh database, so the same changes are new there): writing 50,000 message changes
/// takes the load generator ~8 s, more than a run.
struct Workload {
    created_at: i64,
    /// Per conversation: the change that creates it (written by its first writer).
    creations: Vec<ByteBuf>,
    /// Per client: its message changes in send order and hash → index (empty: a reader).
    changes: Vec<(Arc<Vec<ByteBuf>>, Arc<ChangeIndex>)>,
    per_writer: usize,
}

impl Workload {
    fn new(s: Scenario, a: &ClusterArgs) -> Result<Self> {
        let started = Instant::now();
        let start_ms = now_ms();
        // Every message falls in the bucket of the start, even across midnight, and
        // within the few minutes the bench runs.
        let bucket_end = (start_ms.div_euclid(DEFAULT_BUCKET_MS) + 1) * DEFAULT_BUCKET_MS;
        let created_at = start_ms.min(bucket_end - 600_000);
        // Placement does not change what is written: lay out on one node.
        let (convs, plans) = layout(s, a, 1, created_at)?;
        let mut devices: Vec<Device> = plans.iter().map(|p| Device::new(&p.account, 1)).collect();
        let mut creations = Vec::with_capacity(convs.len());
        for conv in &convs {
            let owner_i = conv.writers[0];
            let owner = AccountId::new(plans[owner_i].account.clone())?;
            let others = conv
                .members
                .iter()
                .filter(|&&m| m != owner_i)
                .map(|&m| AccountId::new(plans[m].account.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            let spec = ConvFixture::group(owner, start_ms)
                .members(others, Role::Member)
                .title("bench room")
                .build();
            let create = devices[owner_i].write(&conv.conv_doc, |d, t| {
                write::create_conversation(d, t, &spec)
            })?;
            creations.push(ByteBuf::from(create.raw_bytes().to_vec()));
        }
        let writers: Vec<usize> = convs.iter().flat_map(|c| c.writers.clone()).collect();
        let per_writer = match s {
            Scenario::Delivery | Scenario::Local => {
                ((f64::from(a.rate) * a.seconds).round() as usize).div_ceil(writers.len())
            }
            Scenario::Hot | Scenario::Many => a.burst_messages.div_ceil(writers.len()),
        }
        .max(1);
        let mut changes = Vec::with_capacity(plans.len());
        for (i, device) in devices.iter_mut().enumerate() {
            let (raw, index) = if writers.contains(&i) {
                let bucket = &convs[plans[i].conv].bucket;
                prepare(device, bucket, per_writer, a.body_chars, created_at, i)?
            } else {
                (Vec::new(), HashMap::new())
            };
            changes.push((Arc::new(raw), Arc::new(index)));
        }
        eprintln!(
            "{}: {} changes written in {:.1} s",
            s.name(),
            per_writer * writers.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(Workload {
            created_at,
            creations,
            changes,
            per_writer,
        })
    }
}

async fn drive(
    cluster: &mut Cluster,
    s: Scenario,
    a: &ClusterArgs,
    work: &Workload,
    node_id_flag: bool,
    ticks: f64,
) -> Result<RunResult> {
    let nodes = cluster.nodes.len();
    let setup = Instant::now();
    let (convs, plans) = layout(s, a, nodes, work.created_at)?;

    // Connect every client to its node.
    let mut sockets = Vec::with_capacity(plans.len());
    for p in &plans {
        let url = cluster.nodes[p.node].ws_url();
        sockets.push(
            connect(&url, &p.account)
                .await
                .with_context(|| format!("{} connecting to node {}", p.account, p.node + 1))?,
        );
    }

    // Each conversation is created by its first writer, through that writer's node.
    for (c, conv) in convs.iter().enumerate() {
        let ws = &mut sockets[conv.writers[0]];
        send_frame(
            ws,
            &ClientFrame::Submit {
                doc: conv.conv_doc.to_string(),
                changes: vec![work.creations[c].clone()],
            },
        )
        .await?;
        loop {
            match recv_frame(ws).await? {
                ServerFrame::Ack { .. } => break,
                ServerFrame::Reject { code, reason, .. } => bail!("creation: {code}: {reason}"),
                ServerFrame::Error { code, message, .. } => bail!("creation: {code}: {message}"),
                _ => {}
            }
        }
    }
    // Everyone subscribes to the conversation and its bucket, on its own node.
    for (i, ws) in sockets.iter_mut().enumerate() {
        let conv = &convs[plans[i].conv];
        subscribe(ws, &conv.conv_doc).await?;
        subscribe(ws, &conv.bucket).await?;
    }

    let writers: Vec<usize> = convs.iter().flat_map(|c| c.writers.clone()).collect();
    let mut specs = Vec::with_capacity(plans.len());
    for (i, ws) in sockets.into_iter().enumerate() {
        let conv = &convs[plans[i].conv];
        let slot = writers.iter().position(|&w| w == i);
        let (changes, index) = work.changes[i].clone();
        let paced = match (s, slot) {
            (Scenario::Delivery | Scenario::Local, Some(k)) => {
                let every =
                    Duration::from_secs_f64(writers.len() as f64 / f64::from(a.rate.max(1)));
                // Writers take turns: writer k starts k/rate later.
                Some((
                    Duration::from_secs_f64(k as f64 / f64::from(a.rate.max(1))),
                    every,
                ))
            }
            _ => None,
        };
        specs.push(ClientSpec {
            ws,
            changes,
            index,
            bucket: conv.bucket.to_string(),
            subscribers: conv.members.len(),
            paced,
            batch: a.batch,
            window: a.window,
        });
    }
    eprintln!(
        "  {} clients on {nodes} node(s) set up in {:.1} s; {} messages per writer",
        plans.len(),
        setup.elapsed().as_secs_f64(),
        work.per_writer
    );
    // The machine right now, next to the run.
    let mut machine_state = machine::Machine {
        disk_flush_ms: machine::disk_flush_ms(&cluster.dir)?,
        cpu_ms: machine::cpu_ms(),
        wake_us: machine::wake_us(),
        ..machine::Machine::default()
    };
    let (trip, commit) = machine::pg_probe(&cluster.url)
        .await
        .context("probing Postgres")?;
    machine_state.pg_round_trip_ms = Some(trip);
    machine_state.pg_commit_ms = Some(commit);

    let shared = Arc::new(Shared::default());
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let send_until = Arc::new(std::sync::OnceLock::new());
    let mut tasks = Vec::with_capacity(specs.len());
    for spec in specs {
        tasks.push(tokio::spawn(client(
            spec,
            shared.clone(),
            go_rx.clone(),
            send_until.clone(),
            stop_rx.clone(),
        )));
    }

    let metrics_before =
        futures_util::future::join_all(cluster.nodes.iter().map(|n| node_metrics(n.port))).await;
    let pids: Vec<Option<u32>> = cluster.nodes.iter().map(Node::pid).collect();
    let cpu_before: Vec<u64> = pids
        .iter()
        .map(|p| p.and_then(cpu_ticks).unwrap_or(0))
        .collect();
    let pg_before: HashMap<u32, u64> = pg_backends(&cluster.db)
        .await?
        .into_iter()
        .filter_map(|pid| cpu_ticks(pid).map(|t| (pid, t)))
        .collect();
    let self_before = cpu_ticks(std::process::id()).unwrap_or(0);
    let machine_before = machine::CpuTimes::now();
    let started = Instant::now();
    let send_seconds = match s {
        // The schedule's last send is due at `seconds`; a little slack for timer lateness.
        Scenario::Delivery | Scenario::Local => a.seconds + 0.5,
        Scenario::Hot | Scenario::Many => a.burst_seconds,
    };
    let sending_ends = tokio::time::Instant::now() + Duration::from_secs_f64(send_seconds);
    let _ = send_until.set(sending_ends);
    let _ = go_tx.send(true);

    // Wait for the sending to end, then for every answer and push due, within the drain.
    let drain_ends = sending_ends + Duration::from_secs_f64(a.drain_s);
    let mut next_progress = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = tokio::time::Instant::now();
        let outstanding = shared.outstanding.load(Ordering::Relaxed);
        let expected = shared.expected.load(Ordering::Relaxed);
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if now >= sending_ends && outstanding <= 0 && delivered >= expected {
            break;
        }
        if now >= drain_ends {
            eprintln!(
                "  drain time over: {outstanding} changes unanswered, {} of {expected} pushes missing",
                expected.saturating_sub(delivered)
            );
            break;
        }
        if now >= next_progress {
            next_progress = now + Duration::from_secs(2);
            eprintln!(
                "  {:>5.1} s: {} acked, {outstanding} outstanding, {delivered}/{expected} pushes",
                started.elapsed().as_secs_f64(),
                shared.acked.load(Ordering::Relaxed)
            );
        }
        let gone = cluster.exited();
        if !gone.is_empty() {
            bail!("{}", gone.join("\n"));
        }
    }
    let ended = Instant::now();
    (machine_state.busy_pct, machine_state.steal_pct) =
        machine_before.shares_until(&machine::CpuTimes::now());
    let cpu_after: Vec<u64> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(p, b)| p.and_then(cpu_ticks).unwrap_or(*b))
        .collect();
    let self_after = cpu_ticks(std::process::id()).unwrap_or(self_before);
    let mut pg_ticks = 0u64;
    for pid in pg_backends(&cluster.db).await? {
        if let Some(now) = cpu_ticks(pid) {
            pg_ticks += now.saturating_sub(pg_before.get(&pid).copied().unwrap_or(0));
        }
    }
    let metrics_after =
        futures_util::future::join_all(cluster.nodes.iter().map(|n| node_metrics(n.port))).await;
    let _ = stop_tx.send(true);
    let mut outs = Vec::with_capacity(tasks.len());
    for t in tasks {
        outs.push(t.await?);
    }

    // Join sends, acks and pushes on (conversation, seq).
    let mut origin: HashMap<(usize, u64), (usize, Instant)> = HashMap::new();
    let mut ack_lat = Vec::new();
    let (mut first_send, mut last_send, mut last_ack): (
        Option<Instant>,
        Option<Instant>,
        Option<Instant>,
    ) = (None, None, None);
    let mut result = RunResult {
        scenario: s.name(),
        nodes,
        node_id_flag,
        clients: plans.len(),
        conversations: convs.len(),
        writers: writers.len(),
        ..RunResult::default()
    };
    for (c, out) in outs.iter().enumerate() {
        for sent in out.first_sent.iter().flatten() {
            result.messages_sent += 1;
            first_send = Some(first_send.map_or(*sent, |f| f.min(*sent)));
            last_send = Some(last_send.map_or(*sent, |f| f.max(*sent)));
        }
        for &(i, seq, at) in &out.acks {
            let Some(Some(sent)) = out.first_sent.get(i) else {
                continue;
            };
            result.messages_acked += 1;
            ack_lat.push(at.saturating_duration_since(*sent).as_micros() as u64);
            origin.insert((plans[c].conv, seq), (c, *sent));
            last_ack = Some(last_ack.map_or(at, |l| l.max(at)));
        }
        for (k, v) in &out.rejects {
            *result.rejects.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &out.errors {
            *result.errors.entry(k.clone()).or_default() += v;
        }
        result.resent += out.resent;
        result.unsent_at_end += out.unsent_at_end;
        result
            .fatal
            .extend(out.fatal.iter().map(|e| format!("client {c}: {e}")));
    }
    let mut same = Vec::new();
    let mut cross = Vec::new();
    let mut seen: Vec<HashSet<u64>> = Vec::with_capacity(outs.len());
    for (r, out) in outs.iter().enumerate() {
        let mut got = HashSet::with_capacity(out.deliveries.len());
        for &(seq, at) in &out.deliveries {
            got.insert(seq);
            let Some(&(c, sent)) = origin.get(&(plans[r].conv, seq)) else {
                continue;
            };
            if c == r {
                continue;
            }
            let micros = at.saturating_duration_since(sent).as_micros() as u64;
            if plans[c].node == plans[r].node {
                same.push(micros);
            } else {
                cross.push(micros);
            }
        }
        seen.push(got);
    }
    for (&(conv, seq), &(c, _)) in &origin {
        for &m in convs[conv].members.iter().filter(|&&m| m != c) {
            let local = plans[m].node == plans[c].node;
            let missing = !seen[m].contains(&seq);
            match (local, missing) {
                (true, m) => {
                    result.expected_same_node += 1;
                    result.missing_same_node += usize::from(m);
                }
                (false, m) => {
                    result.expected_cross_node += 1;
                    result.missing_cross_node += usize::from(m);
                }
            }
        }
    }
    let span = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let acked = result.messages_acked;
    let accept_span = span(first_send, last_ack);
    let send_span = span(first_send, last_send);
    result.accepted_per_s = if accept_span > 0.0 {
        acked as f64 / accept_span
    } else {
        0.0
    };
    result.offered_per_s = if send_span > 0.0 {
        result.messages_sent as f64 / send_span
    } else {
        0.0
    };
    result.wall_s = ended.duration_since(started).as_secs_f64();
    result.ack = Dist::of(ack_lat);
    result.delivery_same_node = Dist::of(same);
    result.delivery_cross_node = Dist::of(cross);
    let per_1k = |t: u64| {
        if acked == 0 {
            0.0
        } else {
            t as f64 / ticks * 1000.0 / acked as f64 * 1000.0
        }
    };
    let server_ticks: u64 = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum();
    result.server_cpu_ms_per_1k = per_1k(server_ticks);
    result.pg_cpu_ms_per_1k = per_1k(pg_ticks);
    result.loadgen_cpu_ms_per_1k = per_1k(self_after.saturating_sub(self_before));
    for (k, node) in cluster.nodes.iter().enumerate() {
        let (after, before) = (&metrics_after[k], &metrics_before[k]);
        let d = |name: &str| delta(after, before, name);
        let lag_count = d("confab_cluster_lag_seconds_count");
        let n = NodeResult {
            id: node.id.clone(),
            cpu_ms: cpu_after[k].saturating_sub(cpu_before[k]) as f64 / ticks * 1000.0,
            accepted: d("confab_changes_accepted_total"),
            commits: d("confab_commit_batch_size_count"),
            notifications: d("confab_cluster_notifications_total"),
            catchup_reads: d("confab_cluster_catchup_reads_total"),
            commit_conflicts: d("confab_cluster_commit_conflicts_total"),
            resyncs: d("confab_cluster_resyncs_total"),
            lag_mean_ms: (lag_count > 0.0)
                .then(|| d("confab_cluster_lag_seconds_sum") / lag_count * 1000.0),
        };
        result.commit_conflicts += n.commit_conflicts;
        result.notifications += n.notifications;
        result.catchup_reads += n.catchup_reads;
        result.commits += n.commits;
        result.avg_commit_batch += d("confab_commit_batch_size_sum");
        result.per_node.push(n);
    }
    result.avg_commit_batch = if result.commits > 0.0 {
        result.avg_commit_batch / result.commits
    } else {
        0.0
    };
    result.commit_conflicts_per_1k = if acked > 0 {
        result.commit_conflicts / acked as f64 * 1000.0
    } else {
        0.0
    };
    result.machine = machine_state;
    Ok(result)
}

/// `count` message changes of `device` on `bucket`, in send order, and hash → index.
fn prepare(
    device: &mut Device,
    bucket: &DocId,
    count: usize,
    body_chars: usize,
    created_at: i64,
    seed: usize,
) -> Result<(Vec<ByteBuf>, ChangeIndex)> {
    let mut rng = Rng((seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let author = AccountId::new(device.account.clone())?;
    let mut index = HashMap::with_capacity(count);
    let mut raw = Vec::with_capacity(count);
    for i in 0..count {
        let at = created_at + i as i64;
        let id = MessageId::new(message_id(&mut rng, at))?;
        let message = NewMessage::text(id, author.clone(), body(&mut rng, body_chars), at);
        let change = device.write(bucket, |d, t| write::post_message(d, t, &message))?;
        index.insert(change.hash().0, i);
        raw.push(ByteBuf::from(change.raw_bytes().to_vec()));
    }
    Ok((raw, index))
}

// ---------------------------------------------------------------------------------------------
// Probes: Postgres alone, for the scaling model

#[derive(Debug, Default, Clone, Serialize)]
pub struct ProbeResult {
    probe: String,
    writers: usize,
    /// Listening connections per database.
    listeners: usize,
    databases: usize,
    commits_per_s: f64,
    /// Mean time of one commit seen by a writer.
    mean_commit_ms: f64,
    /// CPU of the database's backends per commit (writers and listeners).
    pg_cpu_us_per_commit: f64,
    /// CPU of the listening backends alone, per notification per listener.
    listener_cpu_us_per_notification: f64,
    notifications_received: usize,
}

/// Durable one-row commits from `writers` connections for `seconds`, each with a NOTIFY of
/// a confab-sized payload when `notify`, with `listeners` connections listening in each of
/// `dbs` databases (the writers take turns over the databases): does a second database
/// escape the NOTIFY lock?
async fn probe(
    writers: usize,
    listeners: usize,
    notify: bool,
    dbs: usize,
    seconds: f64,
    ticks: f64,
) -> Result<ProbeResult> {
    use sqlx::Executor;
    let n = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
    let names: Vec<String> = (0..dbs.max(1))
        .map(|k| format!("confab_probe_{}_{n}_{k}", std::process::id()))
        .collect();
    let mut conn = admin().await?;
    for db in &names {
        conn.execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
            .await?;
        conn.execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
    }
    let result = probe_in(&names, writers, listeners, notify, seconds, ticks).await;
    for db in &names {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
            .await;
    }
    let mut result = result?;
    result.databases = names.len();
    Ok(result)
}

async fn probe_in(
    names: &[String],
    writers: usize,
    listeners: usize,
    notify: bool,
    seconds: f64,
    ticks: f64,
) -> Result<ProbeResult> {
    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    use sqlx::{ConnectOptions, Connection, Executor, Row};
    let received = Arc::new(AtomicUsize::new(0));
    let mut listening = Vec::new();
    let mut drains = Vec::new();
    let mut options = Vec::new();
    let mut listen_pids = Vec::new();
    let mut all_pids = Vec::new();
    for db in names {
        let url = format!("{ADMIN_DB}/{db}");
        let mut setup = <sqlx::PgConnection as Connection>::connect(&url).await?;
        setup
            .execute(
                "CREATE TABLE probe (id bigserial PRIMARY KEY, doc text NOT NULL, at int8 NOT NULL)",
            )
            .await?;
        let o: PgConnectOptions = url.parse()?;
        for _ in 0..listeners {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(o.clone().application_name("probe-listen"))
                .await?;
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen("confab_probe").await?;
            listening.push(pool);
            let received = received.clone();
            drains.push(tokio::spawn(async move {
                while l.recv().await.is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for r in sqlx::query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'probe-listen'",
        )
        .bind(db)
        .fetch_all(&mut setup)
        .await?
        {
            if let Ok(pid) = u32::try_from(r.try_get::<i32, _>(0)?) {
                listen_pids.push(pid);
            }
        }
        options.push(o);
    }
    let mut conns = Vec::new();
    for w in 0..writers {
        conns.push(options[w % options.len()].clone().connect().await?);
    }
    for db in names {
        all_pids.extend(pg_backends(db).await?);
    }
    let cpu = |pids: &[u32]| -> u64 { pids.iter().filter_map(|&p| cpu_ticks(p)).sum() };
    let all_before = cpu(&all_pids);
    let listen_before = cpu(&listen_pids);
    let ends = Instant::now() + Duration::from_secs_f64(seconds);
    let sql = if notify {
        // One statement, one transaction: the insert and a payload like confab's
        // (`<doc_id> <first_seq> <last_seq> <commit_ms>`).
        "WITH i AS (INSERT INTO probe (doc, at) VALUES ($1, $2) RETURNING id) \
         SELECT pg_notify('confab_probe', $1 || ' ' || id || ' ' || id || ' ' || $2) FROM i"
    } else {
        "INSERT INTO probe (doc, at) VALUES ($1, $2)"
    };
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut c)| {
            tokio::spawn(async move {
                let doc = format!("bench/msgs/room{w:03}.20000");
                let mut done = 0usize;
                while Instant::now() < ends {
                    sqlx::query(sql)
                        .bind(&doc)
                        .bind(now_ms())
                        .execute(&mut c)
                        .await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut commits = 0;
    for t in tasks {
        commits += t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Each database's listeners get that database's notifications only.
    let due = if notify { commits * listeners } else { 0 };
    let wait = Instant::now();
    while received.load(Ordering::Relaxed) < due && wait.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_after = cpu(&all_pids);
    let listen_after = cpu(&listen_pids);
    for d in drains {
        d.abort();
    }
    drop(listening);
    let per = |t: u64, n: usize| {
        if n == 0 {
            0.0
        } else {
            t as f64 / ticks * 1e6 / n as f64
        }
    };
    Ok(ProbeResult {
        probe: if notify { "notify" } else { "plain" }.into(),
        writers,
        listeners,
        databases: names.len(),
        commits_per_s: commits as f64 / elapsed,
        mean_commit_ms: elapsed * 1000.0 * writers as f64 / commits.max(1) as f64,
        pg_cpu_us_per_commit: per(all_after.saturating_sub(all_before), commits),
        listener_cpu_us_per_notification: per(listen_after.saturating_sub(listen_before), due),
        notifications_received: received.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------------------------
// Output

fn ms(d: &Dist) -> String {
    if d.n == 0 {
        "—".into()
    } else {
        format!("{:.2} / {:.2}", d.p50_ms, d.p99_ms)
    }
}

fn table(results: &[RunResult], probes: &[ProbeResult]) {
    println!();
    println!(
        "{:<8} {:>5} | {:>7} {:>9} | {:>15} | {:>15} {:>13} | {:>15} {:>11} | {:>9} {:>8} | {:>7} {:>7} | {:>6} {:>8}",
        "scenario", "nodes", "acked", "msg/s", "ack p50/p99", "cross p50/p99", "cross missed",
        "same p50/p99", "same missed", "conflicts", "/1k", "srvCPU", "pgCPU", "batch", "reads"
    );
    println!(
        "{:<8} {:>5} | {:>7} {:>9} | {:>15} | {:>15} {:>13} | {:>15} {:>11} | {:>9} {:>8} | {:>7} {:>7} | {:>6} {:>8}",
        "", "", "", "accepted", "ms", "ms", "of due", "ms", "of due", "total", "msgs",
        "ms/1k", "ms/1k", "avg", "catch-up"
    );
    for r in results {
        println!(
            "{:<8} {:>5} | {:>7} {:>9.0} | {:>15} | {:>15} {:>13} | {:>15} {:>11} | {:>9.0} {:>8.1} | {:>7.0} {:>7.0} | {:>6.1} {:>8.0}",
            r.scenario,
            r.nodes,
            r.messages_acked,
            r.accepted_per_s,
            ms(&r.ack),
            ms(&r.delivery_cross_node),
            format!("{}/{}", r.missing_cross_node, r.expected_cross_node),
            ms(&r.delivery_same_node),
            format!("{}/{}", r.missing_same_node, r.expected_same_node),
            r.commit_conflicts,
            r.commit_conflicts_per_1k,
            r.server_cpu_ms_per_1k,
            r.pg_cpu_ms_per_1k,
            r.avg_commit_batch,
            r.catchup_reads,
        );
        let funcs: Vec<String> = r
            .pg_functions
            .iter()
            .filter(|f| f.calls > 0)
            .map(|f| format!("{} {} calls, {:.3} ms each", f.name, f.calls, f.mean_ms))
            .collect();
        println!(
            "         postgres: {}; {} commits, {} rollbacks; notifications received {:.0}",
            if funcs.is_empty() {
                "no function calls counted".to_owned()
            } else {
                funcs.join(", ")
            },
            r.pg_xact_commit,
            r.pg_xact_rollback,
            r.notifications
        );
        println!("         machine: {}", super::machine_line(&r.machine));
        let mut answers: Vec<String> = Vec::new();
        answers.extend(r.rejects.iter().map(|(k, v)| format!("reject {k} ×{v}")));
        answers.extend(r.errors.iter().map(|(k, v)| format!("error {k} ×{v}")));
        if r.resent > 0 || r.unsent_at_end > 0 {
            answers.push(format!(
                "{} resent, {} never accepted by the end",
                r.resent, r.unsent_at_end
            ));
        }
        if !answers.is_empty() {
            answers.sort();
            println!("         ! {}", answers.join(", "));
        }
        for e in r.fatal.iter().take(3) {
            println!("         ! {e}");
        }
        if r.nodes > 1 {
            let each: Vec<String> = r
                .per_node
                .iter()
                .map(|n| {
                    format!(
                        "{} cpu {:.0} ms, {:.0} accepted, {:.0} notified, {:.0} reads, {:.0} conflicts{}",
                        n.id,
                        n.cpu_ms,
                        n.accepted,
                        n.notifications,
                        n.catchup_reads,
                        n.commit_conflicts,
                        n.lag_mean_ms
                            .map_or_else(String::new, |l| format!(", lag mean {l:.2} ms"))
                    )
                })
                .collect();
            println!("         nodes: {}", each.join("; "));
        }
        if !r.node_id_flag && r.nodes > 1 {
            println!("         ! this confab-server has no --node-id: not a cluster build");
        }
    }
    println!();
    println!(
        "target: cross-node delivery p50 ≤ {TARGET_CROSS_P50_MS} ms, p99 ≤ {TARGET_CROSS_P99_MS} ms at 1,000 msg/s paced"
    );
    for r in results.iter().filter(|r| r.scenario == "delivery") {
        let (d, missed, due) = if r.nodes > 1 {
            (
                &r.delivery_cross_node,
                r.missing_cross_node,
                r.expected_cross_node,
            )
        } else {
            (
                &r.delivery_same_node,
                r.missing_same_node,
                r.expected_same_node,
            )
        };
        let kind = if r.nodes > 1 {
            "cross-node"
        } else {
            "same-node (baseline)"
        };
        let verdict = if d.n == 0 {
            format!("MISSED: none of {due} pushes arrived within --drain-s")
        } else if missed > 0 {
            format!("MISSED ({missed} of {due} pushes never arrived)")
        } else if d.p50_ms <= TARGET_CROSS_P50_MS && d.p99_ms <= TARGET_CROSS_P99_MS {
            "ok".to_owned()
        } else {
            "MISSED".to_owned()
        };
        println!(
            "  {} node(s), {kind}: p50 {:.2} ms, p99 {:.2} ms at {:.0} msg/s offered: {verdict}",
            r.nodes, d.p50_ms, d.p99_ms, r.offered_per_s
        );
    }
    for r in results.iter().filter(|r| r.scenario == "local") {
        println!(
            "  {} nodes, local (no push crosses nodes): same-node p50 {:.2} ms, p99 {:.2} ms; server CPU {:.0}, Postgres {:.0} ms per 1k (compare: delivery on 1 node)",
            r.nodes,
            r.delivery_same_node.p50_ms,
            r.delivery_same_node.p99_ms,
            r.server_cpu_ms_per_1k,
            r.pg_cpu_ms_per_1k
        );
    }
    if !probes.is_empty() {
        println!();
        println!("Postgres alone (durable one-row commits; NOTIFY payload like confab's):");
        println!(
            "{:<7} {:>7} {:>9} {:>3} | {:>9} {:>9} | {:>12} {:>18}",
            "probe",
            "writers",
            "listeners",
            "dbs",
            "commits/s",
            "commit ms",
            "pg CPU µs/c",
            "listener µs/notif"
        );
        for p in probes {
            println!(
                "{:<7} {:>7} {:>9} {:>3} | {:>9.0} {:>9.3} | {:>12.0} {:>18.1}",
                p.probe,
                p.writers,
                p.listeners,
                p.databases,
                p.commits_per_s,
                p.mean_commit_ms,
                p.pg_cpu_us_per_commit,
                p.listener_cpu_us_per_notification
            );
        }
    }
}

pub async fn main(args: ClusterArgs) -> Result<()> {
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
    let mut scenarios = Vec::new();
    for s in &args.scenarios {
        scenarios.push(match s.as_str() {
            "delivery" => Scenario::Delivery,
            "local" => Scenario::Local,
            "none" => continue,
            "hot" => Scenario::Hot,
            "many" => Scenario::Many,
            other => bail!("unknown scenario {other:?} (delivery, local, hot, many)"),
        });
    }
    if args.nodes.contains(&0) {
        bail!("--nodes: a cluster has at least one node");
    }
    let node_id_flag = has_node_id_flag(&bin);
    let ticks = clock_ticks();
    eprintln!(
        "loadgen cluster: server {} ({}) | {} cores | load average {}",
        bin.display(),
        if node_id_flag {
            "has --node-id"
        } else {
            "NO --node-id: a server from before the cluster work; pushes will not cross nodes"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("  postgres: {}", pg_durability().await?);
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
    let all_ends = Instant::now() + Duration::from_secs(args.total_timeout_s);
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut plan = Vec::new();
    for &s in &scenarios {
        for round in 1..=args.repeat.max(1) {
            for &nodes in &args.nodes {
                if s == Scenario::Local && nodes == 1 {
                    continue;
                }
                plan.push((s, nodes, round));
            }
        }
    }
    let mut work: Option<(Scenario, Workload)> = None;
    for (s, nodes, round) in plan {
        let label = format!("{} nodes={nodes} (run {round})", s.name());
        if Instant::now() >= all_ends {
            failures.push(format!("{label}: skipped, past --total-timeout-s"));
            continue;
        }
        if work.as_ref().map(|(w, _)| *w) != Some(s) {
            drop(work.take());
            work = Some((s, Workload::new(s, &args)?));
        }
        let Some((_, workload)) = work.as_ref() else {
            continue;
        };
        eprintln!("run {label} ...");
        let started = Instant::now();
        let bound = Duration::from_secs(args.run_timeout_s)
            .min(all_ends.saturating_duration_since(Instant::now()) + Duration::from_secs(30));
        let outcome = tokio::time::timeout(
            bound,
            run_one(&bin, s, nodes, &args, workload, node_id_flag, ticks),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow!("run exceeded {} s", bound.as_secs())));
        match outcome {
            Ok(r) => {
                let line = serde_json::to_string(&r)?;
                println!("{line}");
                if let Some(f) = json_file.as_mut() {
                    writeln!(f, "{line}")?;
                }
                eprintln!(
                    "  {:.0} msg/s accepted; cross-node {} (missed {}/{}), same-node {} ms; {:.0} conflicts ({:.1} s)",
                    r.accepted_per_s,
                    ms(&r.delivery_cross_node),
                    r.missing_cross_node,
                    r.expected_cross_node,
                    ms(&r.delivery_same_node),
                    r.commit_conflicts,
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
    let mut probes = Vec::new();
    if args.probes {
        // (writers, listeners per database, notify, databases)
        for (writers, listeners, notify, dbs) in [
            (1, 0, false, 1),
            (8, 0, false, 1),
            (1, 1, true, 1),
            (8, 1, true, 1),
            (8, 1, true, 2),
            (8, 4, true, 1),
            (8, 16, true, 1),
            (8, 32, true, 1),
        ] {
            if Instant::now() >= all_ends {
                failures.push("probes: skipped, past --total-timeout-s".into());
                break;
            }
            match tokio::time::timeout(
                Duration::from_secs(30),
                probe(writers, listeners, notify, dbs, 2.0, ticks),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow!("probe exceeded 30 s")))
            {
                Ok(p) => {
                    let line = serde_json::to_string(&p)?;
                    println!("{line}");
                    if let Some(f) = json_file.as_mut() {
                        writeln!(f, "{line}")?;
                    }
                    probes.push(p);
                }
                Err(e) => failures.push(format!(
                    "probe {writers} writers, {listeners} listeners, {dbs} database(s): {e:#}"
                )),
            }
        }
    }
    table(&results, &probes);
    if !failures.is_empty() {
        bail!("{} run(s) failed:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_labels() {
        let text = "# HELP x\nconfab_cluster_commit_conflicts_total{reason=\"seq\"} 3\n\
                    confab_cluster_commit_conflicts_total{reason=\"policy\"} 2\n\
                    confab_node_info{node=\"n1\"} 1\nconfab_cluster_lag_seconds_sum 0.5\n";
        let m = parse_metrics(text);
        assert_eq!(m["confab_cluster_commit_conflicts_total"], 5.0);
        assert_eq!(m["confab_cluster_lag_seconds_sum"], 0.5);
        assert_eq!(m["confab_node_info"], 1.0);
    }

    #[test]
    fn layouts_put_delivery_readers_on_other_nodes() -> Result<()> {
        let a = ClusterArgs::parse_from(["cluster"]);
        let (convs, clients) = layout(Scenario::Delivery, &a, 3, 0)?;
        for c in &convs {
            let writer = clients[c.writers[0]].node;
            let readers: Vec<usize> = c.members[1..].iter().map(|&m| clients[m].node).collect();
            assert!(readers.iter().all(|&n| n != writer));
            assert_ne!(readers[0], readers[1]);
        }
        let (convs, clients) = layout(Scenario::Hot, &a, 3, 0)?;
        assert_eq!(convs.len(), 1);
        let on: HashSet<usize> = clients.iter().map(|c| c.node).collect();
        assert_eq!(on.len(), 3);
        let (_, clients) = layout(Scenario::Many, &a, 1, 0)?;
        assert!(clients.iter().all(|c| c.node == 0));
        Ok(())
    }
}
