//! `loadgen many` (`cargo xtask bench server --scenario many`): what one server carries with
//! many connections and many conversations at once (docs/BENCHMARKS.md, "Many at once").
//!
//! One run, on a fresh store (127.0.0.1 only), stopped by itself (`--run-timeout-s`):
//!
//! - **Connections and accounts.** Connection `i` authenticates as its own account `m{i}`
//!   (dev tokens, as the other modes). The channel has more subscribers (10,000) than the
//!   default run has connections (5,000), so the run opens `max(--connections,
//!   --channel-subscribers)` connections: the first `--connections` carry the small
//!   conversations and the group, and every connection up to `--channel-subscribers` is a
//!   channel subscriber (the extra ones subscribe to the channel only). Both counts are
//!   printed. The soft RLIMIT_NOFILE is raised to the hard limit first (the server, a child,
//!   inherits it); a limit below the sockets the run needs is an error.
//! - **Conversations.** `--small-convs` groups of 2–50 members (uniform, distinct random
//!   connections among the first `--connections`), one group of `--group-members` (spread
//!   evenly over those connections) and one channel (owner: connection 0, every other
//!   subscriber at role subscriber). Each is created through the sync protocol by its
//!   owner's connection, as the other modes do. A channel's creation change is bounded by
//!   `CONV_CHANGE_MAX_OPS`, so its first 3,000 subscribers come in the creation change and the
//!   rest in `add_member` changes, 250 per submit frame.
//! - **Subscriptions.** Every member subscribes to the message bucket parts its
//!   conversations will fill during the run (not to the conversation documents: a 10,000
//!   member document sent to 10,000 subscribers is setup, not the load this measures).
//! - **Load.** `--rate` messages per second in total, paced for `--seconds`, one change per
//!   submit frame: 95% to the small conversations (round-robin over them, the sender
//!   rotating over the members), 4.5% to the group (rotating over its members), 0.5% to the
//!   channel (posted by its owner: channels let admins only post). At 2,000 msg/s: 1,900
//!   small, 90 group, 10 channel. The mix is printed. All messages are written before the
//!   clock starts; each conversation's k-th message goes to bucket part `k / 1000`, as
//!   writers that follow the conversation fill it.
//! - **Measured.** Send instant just before the frame is written; every pushed change is
//!   timestamped when its reader decodes it and joined to its message by (document, seq),
//!   which the sender's ack names. Per kind: delivery p50/p99 (one sample per message and
//!   receiver) and "to all" p50/p99 (until the last receiver has it; the target for the
//!   channel). Acks p50/p99. Server CPU (utime+stime, /proc) and the database's backends'
//!   CPU per 1,000 deliveries, server peak RSS (VmHWM: setup included) and the highest
//!   VmRSS sampled during the load, and the load generator's own CPU: its share of one core
//!   and per 1,000 deliveries, so a reader can tell when the generator saturates. The
//!   server's commits and submit stages (/metrics) and every refusal by code.
//! - **No resubmits.** A message refused (`unavailable` when the server is overloaded) is
//!   not sent again, so the same sender's later messages in that bucket are refused
//!   `missing_dependency`: under overload the acked and delivered counts understate what
//!   resubmitting clients would get; the latencies are the measurement.
//! - **Runtime.** Unlike the other modes this one runs on a multi-thread Tokio runtime
//!   (`--threads`, default 2): one thread decoding 100,000+ pushes per second would be the
//!   bottleneck before the server.
//! - **Server flags.** `--max-connections` and `--max-units` are raised to fit the run
//!   (10,000 accounts + 1,002 conversations are more units than the default 10,000 keeps);
//!   everything else is the default.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use confab_core::doc::write;
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::limits::BUCKET_TARGET_MESSAGES;
use confab_core::model::conversation::{ConvKind, Member, Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{decode_server, encode_client, ClientFrame, ServerFrame};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::server::{now_ms, Backend, TestServer};
use confab_testkit::text::{body, message_id, Rng};
use confab_testkit::Device;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_bytes::ByteBuf;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::{
    backend_name, clock_ticks, connect, cpu_ticks, frame_bytes, mb, memory, metrics, pg_backends,
    recv_frame, send_frame, stop, Dist, Sink, StageMeans, Stream, Ws, TENANT,
};

/// The targets (docs/BENCHMARKS.md, "Many at once").
const TARGET_SMALL_P99_MS: f64 = 20.0;
const TARGET_CHANNEL_ALL_P99_MS: f64 = 100.0;
const TARGET_RSS_MB: f64 = 1024.0;

/// Shares of `--rate` (the rest goes to the small conversations).
const GROUP_SHARE: f64 = 0.045;
const CHANNEL_SHARE: f64 = 0.005;

/// Subscribers in the channel's creation change (4 ops each; `CONV_CHANGE_MAX_OPS` is
/// 16,384), and `add_member` changes per submit frame after it.
const CHANNEL_CREATE_MEMBERS: usize = 3_000;
const CHANNEL_ADD_PER_FRAME: usize = 250;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen many",
    about = "Many connections and conversations on one server (127.0.0.1 only)"
)]
pub struct ManyArgs {
    /// Connections carrying the small conversations and the group [--quick: 500].
    #[arg(long)]
    connections: Option<usize>,
    /// Small conversations (2–50 members, uniform) [--quick: 100].
    #[arg(long)]
    small_convs: Option<usize>,
    /// Members of the one group (at most 1,000) [--quick: 200].
    #[arg(long)]
    group_members: Option<usize>,
    /// Subscribers of the one channel; connections beyond --connections subscribe to it
    /// only [--quick: 1000].
    #[arg(long)]
    channel_subscribers: Option<usize>,
    /// Messages per second, all kinds together [--quick: 400].
    #[arg(long)]
    rate: Option<u32>,
    /// Seconds of paced sending [--quick: 10].
    #[arg(long)]
    seconds: Option<f64>,
    /// postgres or sqlite.
    #[arg(long, default_value = "postgres")]
    backend: String,
    /// A smoke run: 500 connections, 100 small conversations, a 200-member group, a
    /// 1,000-subscriber channel, 400 msg/s for 10 s (flags given explicitly win).
    #[arg(long)]
    quick: bool,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// After the last send: the most seconds to wait for deliveries still due.
    #[arg(long, default_value_t = 10.0)]
    drain_s: f64,
    /// Characters per message body.
    #[arg(long, default_value_t = 40)]
    body_chars: usize,
    /// Upper bound of the whole run (setup, load, drain).
    #[arg(long, default_value_t = 420)]
    run_timeout_s: u64,
    /// The server binary (default: `confab-server` next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Also append the run's JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The sizes of one run, flags and `--quick` resolved.
#[derive(Debug, Clone, Serialize)]
struct Sizes {
    connections: usize,
    /// Sockets opened: max(connections, channel subscribers).
    sockets: usize,
    small_convs: usize,
    group_members: usize,
    channel_subscribers: usize,
    rate: u32,
    seconds: f64,
    small_rate: f64,
    group_rate: f64,
    channel_rate: f64,
}

impl Sizes {
    fn of(a: &ManyArgs) -> Result<Self> {
        let q = a.quick;
        let connections = a.connections.unwrap_or(if q { 500 } else { 5_000 });
        let small_convs = a.small_convs.unwrap_or(if q { 100 } else { 1_000 });
        let group_members = a.group_members.unwrap_or(if q { 200 } else { 1_000 });
        let channel_subscribers = a
            .channel_subscribers
            .unwrap_or(if q { 1_000 } else { 10_000 });
        let rate = a.rate.unwrap_or(if q { 400 } else { 2_000 });
        let seconds = a.seconds.unwrap_or(if q { 10.0 } else { 60.0 });
        if connections < 50 || group_members < 2 || channel_subscribers < 2 || small_convs == 0 {
            bail!("need ≥ 50 connections, ≥ 1 small conversation, ≥ 2 group members and channel subscribers");
        }
        if group_members > connections || group_members > 1_000 {
            bail!("--group-members must be ≤ --connections and ≤ 1,000 (GROUP_MAX_MEMBERS)");
        }
        if !(seconds > 0.0 && rate > 0) {
            bail!("--rate and --seconds must be positive");
        }
        let r = f64::from(rate);
        Ok(Sizes {
            connections,
            sockets: connections.max(channel_subscribers),
            small_convs,
            group_members,
            channel_subscribers,
            rate,
            seconds,
            small_rate: r * (1.0 - GROUP_SHARE - CHANNEL_SHARE),
            group_rate: r * GROUP_SHARE,
            channel_rate: r * CHANNEL_SHARE,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Small,
    Group,
    Channel,
}

const KINDS: [Kind; 3] = [Kind::Small, Kind::Group, Kind::Channel];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Small => "small",
            Kind::Group => "group",
            Kind::Channel => "channel",
        }
    }
}

struct Conv {
    kind: Kind,
    id: ConvId,
    /// Connection indexes; the first is the owner.
    members: Vec<u32>,
    /// Who posts, in turn.
    senders: Vec<u32>,
    /// Bucket parts this run fills (index = part), and their index among all documents.
    parts: Vec<(DocId, u32)>,
}

/// One pre-written message.
struct Msg {
    /// When to send it, from the start of the load.
    at: Duration,
    conn: u32,
    conv: u32,
    frame: Bytes,
}

/// Raises the soft open-files limit to the hard limit: every socket is a descriptor here
/// and another one in the server, which inherits the limit (each process has its own).
#[allow(unsafe_code)]
fn raise_nofile(needed: u64) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit(RLIMIT_NOFILE) failed");
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        bail!("setrlimit(RLIMIT_NOFILE) to {} failed", lim.rlim_max);
    }
    // rlim_t is u64 on Linux (the only target of this generator: it reads /proc).
    let have: u64 = lim.rlim_cur;
    if have < needed {
        bail!(
            "the open-files limit is {have}, this run needs about {needed} in each of the load \
             generator and the server: raise the hard limit (`ulimit -Hn`, /etc/security/limits.conf) or pass \
             smaller --connections / --channel-subscribers"
        );
    }
    Ok(have)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Entry point: runs on its own multi-thread runtime (see the module documentation).
pub fn main(args: ManyArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: ManyArgs) -> Result<()> {
    let sizes = Sizes::of(&args)?;
    let backend = match args.backend.as_str() {
        "postgres" | "pg" => Backend::Postgres,
        "sqlite" => Backend::Sqlite,
        other => bail!("unknown backend {other:?} (postgres, sqlite)"),
    };
    // Both processes need a descriptor per socket, and some for files and the database.
    let nofile = raise_nofile(sizes.sockets as u64 + 500)?;
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
    let load_before = load_average();
    eprintln!(
        "loadgen many: server {} | {} cores | load average {load_before} | open files {nofile}",
        bin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    eprintln!(
        "  {} connections for small conversations and the group; {} sockets in all (channel \
         subscribers beyond the connections subscribe to the channel only)",
        sizes.connections, sizes.sockets
    );
    eprintln!(
        "  {} small conversations (2–50 members), a {}-member group, a {}-subscriber channel; \
         {} msg/s for {} s: {:.0} small + {:.0} group + {:.0} channel msg/s",
        sizes.small_convs,
        sizes.group_members,
        sizes.channel_subscribers,
        sizes.rate,
        sizes.seconds,
        sizes.small_rate,
        sizes.group_rate,
        sizes.channel_rate
    );
    let max_conn = (sizes.sockets + 1_000).to_string();
    let max_units = (2 * (sizes.sockets + sizes.small_convs) + 1_000).to_string();
    let extra = ["--max-connections", &max_conn, "--max-units", &max_units];
    let mut server = TestServer::start_logged(&bin, backend, &extra).await?;
    let outcome = tokio::time::timeout(
        Duration::from_secs(args.run_timeout_s),
        drive(&mut server, &sizes, &args),
    )
    .await
    .unwrap_or_else(|_| Err(anyhow!("the run exceeded {} s", args.run_timeout_s)));
    if outcome.is_err() {
        eprintln!("  server log tail:\n{}", server.log_tail(20));
    }
    let _ = stop(&mut server).await;
    let mut result = outcome?;
    result.backend = backend_name(backend);
    result.load_average_before = load_before;
    table(&result);
    let line = serde_json::to_string(&result)?;
    println!("{line}");
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

/// Distinct random connections, `count` of them, below `below`.
fn pick(rng: &mut Rng, count: usize, below: usize) -> Vec<u32> {
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count.min(below) {
        let c = (rng.next() % below as u64) as u32;
        if seen.insert(c) {
            out.push(c);
        }
    }
    out
}

fn layout(s: &Sizes, tenant: &TenantId, period: i64) -> Result<Vec<Conv>> {
    let mut rng = Rng(0x5EED_0017);
    let mut convs = Vec::with_capacity(s.small_convs + 2);
    for c in 0..s.small_convs {
        let size = 2 + (rng.next() % 49) as usize;
        let members = pick(&mut rng, size, s.connections);
        convs.push(Conv {
            kind: Kind::Small,
            id: ConvId::new(format!("small-{c}"))?,
            senders: members.clone(),
            members,
            parts: Vec::new(),
        });
    }
    let group: Vec<u32> = (0..s.group_members)
        .map(|i| (i * s.connections / s.group_members) as u32)
        .collect();
    convs.push(Conv {
        kind: Kind::Group,
        id: ConvId::new("group")?,
        senders: group.clone(),
        members: group,
        parts: Vec::new(),
    });
    convs.push(Conv {
        kind: Kind::Channel,
        id: ConvId::new("channel")?,
        members: (0..s.channel_subscribers as u32).collect(),
        senders: vec![0],
        parts: Vec::new(),
    });
    // Messages per conversation decide the parts.
    let mut counts = vec![0usize; convs.len()];
    let (small_n, group_n, channel_n) = message_counts(s);
    for j in 0..small_n {
        counts[j % s.small_convs] += 1;
    }
    counts[s.small_convs] = group_n;
    counts[s.small_convs + 1] = channel_n;
    let mut docs = 0u32;
    for (i, conv) in convs.iter_mut().enumerate() {
        let parts = counts[i].max(1).div_ceil(BUCKET_TARGET_MESSAGES);
        for k in 0..parts {
            conv.parts.push((
                DocId::msgs(tenant, &conv.id, Bucket::new(period, k as u32)),
                docs,
            ));
            docs += 1;
        }
    }
    Ok(convs)
}

fn message_counts(s: &Sizes) -> (usize, usize, usize) {
    let n = |rate: f64| (rate * s.seconds).round() as usize;
    (n(s.small_rate), n(s.group_rate), n(s.channel_rate))
}

/// Change hash → message index.
type ByHash = HashMap<[u8; 32], u32>;

/// Every message of the run, written on its sender's replica, in sending order.
fn prepare(
    s: &Sizes,
    convs: &[Conv],
    accounts: &[String],
    created_at: i64,
    body_chars: usize,
) -> Result<(Vec<Msg>, ByHash)> {
    let (small_n, group_n, channel_n) = message_counts(s);
    // (offset, conv, k-th message of the conv)
    let mut plan: Vec<(Duration, u32, usize)> = Vec::with_capacity(small_n + group_n + channel_n);
    for j in 0..small_n {
        plan.push((
            Duration::from_secs_f64(j as f64 / s.small_rate),
            (j % s.small_convs) as u32,
            j / s.small_convs,
        ));
    }
    for (count, rate, conv) in [
        (group_n, s.group_rate, s.small_convs),
        (channel_n, s.channel_rate, s.small_convs + 1),
    ] {
        for j in 0..count {
            // Half a period late: not on the same instants as the small conversations'.
            plan.push((
                Duration::from_secs_f64((j as f64 + 0.5) / rate),
                conv as u32,
                j,
            ));
        }
    }
    plan.sort_by_key(|p| p.0);
    let mut rng = Rng(0x0BAD_5EED);
    let mut devices: HashMap<u32, Device> = HashMap::new();
    let mut msgs = Vec::with_capacity(plan.len());
    let mut by_hash = HashMap::with_capacity(plan.len());
    for (at, conv, k) in plan {
        let c = &convs[conv as usize];
        let sender = c.senders[k % c.senders.len()];
        let account = &accounts[sender as usize];
        let device = devices
            .entry(sender)
            .or_insert_with(|| Device::new(account, 1));
        let stamp = created_at + k as i64;
        let id = MessageId::new(message_id(&mut rng, stamp))?;
        let message = NewMessage::text(
            id,
            AccountId::new(account.clone())?,
            body(&mut rng, body_chars),
            stamp,
        );
        let (doc, _) = c
            .parts
            .get(k / BUCKET_TARGET_MESSAGES)
            .ok_or_else(|| anyhow!("message {k} of {} falls past its last part", c.id))?;
        let change = device.write(doc, |d, t| write::post_message(d, t, &message))?;
        by_hash.insert(change.hash().0, msgs.len() as u32);
        let frame = ClientFrame::Submit {
            doc: doc.to_string(),
            changes: vec![ByteBuf::from(change.raw_bytes().to_vec())],
        };
        msgs.push(Msg {
            at,
            conn: sender,
            conv,
            frame: Bytes::from(encode_client(&frame)),
        });
    }
    Ok((msgs, by_hash))
}

/// Sends `frames` on `ws` and waits for as many acks.
async fn submit_all(ws: &mut Ws, doc: &DocId, changes: Vec<ByteBuf>, what: &str) -> Result<()> {
    let n = changes.len();
    send_frame(
        ws,
        &ClientFrame::Submit {
            doc: doc.to_string(),
            changes,
        },
    )
    .await?;
    let mut acks = 0;
    while acks < n {
        match recv_frame(ws).await? {
            ServerFrame::Ack { .. } => acks += 1,
            ServerFrame::Reject { code, reason, .. } => bail!("{what}: {code}: {reason}"),
            ServerFrame::Error { code, message, .. } => bail!("{what}: {code}: {message}"),
            _ => {}
        }
    }
    Ok(())
}

async fn create(
    sockets: &mut [Ws],
    conv: &Conv,
    accounts: &[String],
    tenant: &TenantId,
    at: i64,
) -> Result<()> {
    let owner_conn = conv.members[0] as usize;
    let owner = AccountId::new(accounts[owner_conn].clone())?;
    let mut device = Device::new(&accounts[owner_conn], 2);
    let doc = DocId::conv(tenant, &conv.id);
    let ids = |members: &[u32]| {
        members
            .iter()
            .map(|m| AccountId::new(accounts[*m as usize].clone()))
            .collect::<Result<Vec<_>, _>>()
    };
    let (kind, role, first) = match conv.kind {
        Kind::Channel => (
            ConvKind::Channel,
            Role::Subscriber,
            conv.members.len().min(CHANNEL_CREATE_MEMBERS),
        ),
        _ => (ConvKind::Group, Role::Member, conv.members.len()),
    };
    let spec = ConvFixture::new(kind, owner.clone(), at)
        .members(ids(&conv.members[1..first])?, role)
        .title(conv.id.to_string())
        .build();
    let creation = device.write(&doc, |d, t| write::create_conversation(d, t, &spec))?;
    let ws = &mut sockets[owner_conn];
    let what = format!("creating {}", conv.id);
    submit_all(
        ws,
        &doc,
        vec![ByteBuf::from(creation.raw_bytes().to_vec())],
        &what,
    )
    .await?;
    // The channel's other subscribers, in add_member changes.
    for chunk in conv.members[first..].chunks(CHANNEL_ADD_PER_FRAME) {
        let mut changes = Vec::with_capacity(chunk.len());
        for account in ids(chunk)? {
            let mut member = Member::new(account, role);
            member.invited_by = Some(owner.clone());
            let change = device.write(&doc, |d, t| write::add_member(d, t, at, &member))?;
            changes.push(ByteBuf::from(change.raw_bytes().to_vec()));
        }
        submit_all(ws, &doc, changes, &what).await?;
    }
    Ok(())
}

/// Subscribes to every document in `docs` (pipelined) and waits for each `synced`.
async fn subscribe_all(mut ws: Ws, docs: Vec<String>) -> Result<Ws> {
    for doc in &docs {
        send_frame(
            &mut ws,
            &ClientFrame::Subscribe {
                doc: doc.clone(),
                after: 0,
            },
        )
        .await?;
    }
    let mut left: HashSet<String> = docs.into_iter().collect();
    while !left.is_empty() {
        match recv_frame(&mut ws).await? {
            ServerFrame::Synced { doc, .. } => {
                left.remove(&doc);
            }
            ServerFrame::Error { code, message, .. } => bail!("subscribe: {code}: {message}"),
            _ => {}
        }
    }
    Ok(ws)
}

/// What one connection's reader saw.
#[derive(Default)]
struct ReaderOut {
    /// (message, document index, seq, µs since the start)
    acks: Vec<(u32, u32, u64, u32)>,
    /// ((document index << 40) | seq, µs since the start)
    deliveries: Vec<(u64, u32)>,
    rejects: Vec<String>,
    errors: Vec<String>,
}

struct Shared {
    doc_index: HashMap<String, u32>,
    by_hash: HashMap<[u8; 32], u32>,
    base: Instant,
    delivered: AtomicU64,
    acked: AtomicU64,
}

fn micros(base: Instant, at: Instant) -> u32 {
    u32::try_from(at.saturating_duration_since(base).as_micros()).unwrap_or(u32::MAX)
}

async fn reader(
    mut stream: Stream,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ReaderOut {
    let mut out = ReaderOut::default();
    loop {
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
        match decode_server(&bytes, usize::MAX) {
            Ok(ServerFrame::Changes { doc, changes }) => {
                if let Some(d) = shared.doc_index.get(&doc) {
                    let at = micros(shared.base, now);
                    out.deliveries
                        .extend(changes.iter().map(|c| ((u64::from(*d) << 40) | c.seq, at)));
                    shared
                        .delivered
                        .fetch_add(changes.len() as u64, Ordering::Relaxed);
                }
            }
            Ok(ServerFrame::Ack { doc, hash, seq }) => {
                let key: Option<[u8; 32]> = hash.as_slice().try_into().ok();
                let msg = key.and_then(|k| shared.by_hash.get(&k));
                if let (Some(m), Some(d)) = (msg, shared.doc_index.get(&doc)) {
                    out.acks.push((*m, *d, seq, micros(shared.base, now)));
                    shared.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(ServerFrame::Reject { code, reason, .. }) => {
                out.rejects.push(format!("{code}: {reason}"))
            }
            Ok(ServerFrame::Error { code, message, .. }) => {
                out.errors.push(format!("{code}: {message}"))
            }
            Ok(_) => {}
            Err(e) => out.errors.push(format!("undecodable frame: {e}")),
        }
    }
    out
}

/// Sends this connection's messages on schedule; (message, µs since the start of sending).
async fn writer(
    mut sink: Sink,
    mine: Vec<(Duration, u32, Bytes)>,
    start: tokio::time::Instant,
    base: Instant,
) -> (Sink, Vec<(u32, u32)>, Option<String>) {
    let mut sent = Vec::with_capacity(mine.len());
    for (at, m, frame) in mine {
        tokio::time::sleep_until(start + at).await;
        let now = Instant::now();
        if let Err(e) = sink.send(Message::Binary(frame)).await {
            return (sink, sent, Some(format!("send: {e}")));
        }
        sent.push((m, micros(base, now)));
    }
    (sink, sent, None)
}

#[derive(Debug, Default, Serialize)]
struct KindResult {
    kind: &'static str,
    conversations: usize,
    mean_members: f64,
    sent: usize,
    acked: usize,
    deliveries: usize,
    deliveries_missing: usize,
    /// Send → arrival at each other member.
    delivery: Dist,
    /// Send → arrival at the last other member (messages every member got).
    delivery_all: Dist,
}

#[derive(Debug, Default, Serialize)]
struct ManyResult {
    mode: &'static str,
    backend: &'static str,
    sizes: Option<Sizes>,
    loadgen_threads: usize,
    load_average_before: String,
    load_average_after: String,
    setup_s: f64,
    /// Send span of the load, and how late the last send was against its schedule.
    send_s: f64,
    offered_per_s: f64,
    wall_s: f64,
    kinds: Vec<KindResult>,
    ack: Dist,
    /// Pushes to members other than the sender (the sender's own push is not counted).
    deliveries: u64,
    rejected: usize,
    /// `error` frames with code `unavailable` (not resubmitted).
    unavailable: usize,
    /// Refusals and errors by code.
    refusals: std::collections::BTreeMap<String, usize>,
    errors: Vec<String>,
    server_cpu_ms_per_1k_deliveries: f64,
    /// Server CPU as a share of one core over the load.
    server_cpu_pct: f64,
    pg_cpu_ms_per_1k_deliveries: Option<f64>,
    pg_cpu_pct: Option<f64>,
    loadgen_cpu_ms_per_1k_deliveries: f64,
    loadgen_cpu_pct: f64,
    server_peak_rss_mb: f64,
    server_max_rss_during_load_mb: f64,
    server_rss_end_mb: f64,
    loadgen_peak_rss_mb: f64,
    /// The server's commits over the load (its /metrics): how many, changes per commit,
    /// and mean milliseconds per commit; and where a submit's time went.
    commits: f64,
    avg_commit_batch: f64,
    avg_commit_ms: f64,
    stages: StageMeans,
}

async fn drive(server: &mut TestServer, s: &Sizes, args: &ManyArgs) -> Result<ManyResult> {
    let pid = server.pid().context("the server has no pid")?;
    let ticks = clock_ticks();
    let setup_started = Instant::now();
    let tenant = TenantId::new(TENANT)?;
    let start_ms = now_ms();
    // Every message in the bucket period of the start, even across midnight.
    let bucket_end = (start_ms.div_euclid(DEFAULT_BUCKET_MS) + 1) * DEFAULT_BUCKET_MS;
    let created_at = start_ms.min(bucket_end - 120_000);
    let period = created_at.div_euclid(DEFAULT_BUCKET_MS);
    let accounts: Vec<String> = (0..s.sockets).map(|i| format!("m{i:05}")).collect();
    let convs = layout(s, &tenant, period)?;
    let (msgs, by_hash) = prepare(s, &convs, &accounts, created_at, args.body_chars)?;
    eprintln!(
        "  {} messages written ({:.1} s)",
        msgs.len(),
        setup_started.elapsed().as_secs_f64()
    );

    // Connect: 64 handshakes in flight.
    let url = server.ws_url();
    let mut sockets: Vec<Ws> = futures_util::stream::iter(accounts.iter())
        .map(|a| connect(&url, a))
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    eprintln!(
        "  {} connected ({:.1} s)",
        sockets.len(),
        setup_started.elapsed().as_secs_f64()
    );
    for conv in &convs {
        create(&mut sockets, conv, &accounts, &tenant, start_ms).await?;
    }
    eprintln!(
        "  {} conversations created ({:.1} s)",
        convs.len(),
        setup_started.elapsed().as_secs_f64()
    );
    let mut subs: Vec<Vec<String>> = vec![Vec::new(); s.sockets];
    for conv in &convs {
        for m in &conv.members {
            for (doc, _) in &conv.parts {
                subs[*m as usize].push(doc.to_string());
            }
        }
    }
    let sockets: Vec<Ws> = futures_util::stream::iter(sockets.into_iter().zip(subs))
        .map(|(ws, docs)| subscribe_all(ws, docs))
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    eprintln!("  everyone subscribed ({setup_s:.1} s)");

    let mut doc_index = HashMap::new();
    for conv in &convs {
        for (doc, i) in &conv.parts {
            doc_index.insert(doc.to_string(), *i);
        }
    }
    let base = Instant::now();
    let shared = Arc::new(Shared {
        doc_index,
        by_hash,
        base,
        delivered: AtomicU64::new(0),
        acked: AtomicU64::new(0),
    });
    let mut per_conn: Vec<Vec<(Duration, u32, Bytes)>> = vec![Vec::new(); s.sockets];
    for (i, m) in msgs.iter().enumerate() {
        per_conn[m.conn as usize].push((m.at, i as u32, m.frame.clone()));
    }
    let expected: u64 = msgs
        .iter()
        .map(|m| convs[m.conv as usize].members.len() as u64 - 1)
        .sum();

    let pg_db = server
        .database_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .map(str::to_owned);
    let pg_before: HashMap<u32, u64> = match &pg_db {
        Some(db) => pg_backends(db)
            .await?
            .into_iter()
            .filter_map(|p| cpu_ticks(p).map(|t| (p, t)))
            .collect(),
        None => HashMap::new(),
    };
    let metrics_before = metrics(server.port).await;
    let cpu_before = cpu_ticks(pid).unwrap_or(0);
    let self_before = cpu_ticks(std::process::id()).unwrap_or(0);

    // Start: the first send a little after every task is spawned.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let mut readers = Vec::with_capacity(s.sockets);
    let mut writers = Vec::new();
    for (ws, mine) in sockets.into_iter().zip(per_conn) {
        let (sink, stream) = ws.split();
        readers.push(tokio::spawn(reader(
            stream,
            shared.clone(),
            stop_rx.clone(),
        )));
        if mine.is_empty() {
            // A reader only: its sink comes back with the others, to be closed at the end.
            writers.push(tokio::spawn(async move { (sink, Vec::new(), None) }));
        } else {
            writers.push(tokio::spawn(writer(sink, mine, start, base)));
        }
    }
    let load_started = Instant::now();
    let send_end = start + Duration::from_secs_f64(s.seconds);
    let drain_deadline = send_end + Duration::from_secs_f64(args.drain_s);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut rss_tick = tokio::time::interval(Duration::from_millis(500));
    let mut max_rss = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(drain_deadline) => {
                eprintln!("  drain ended with deliveries missing");
                break;
            }
            _ = rss_tick.tick() => {
                max_rss = max_rss.max(memory(pid).0);
                if tokio::time::Instant::now() > send_end
                    && shared.delivered.load(Ordering::Relaxed) >= expected
                    && shared.acked.load(Ordering::Relaxed) >= msgs.len() as u64
                {
                    break;
                }
            }
            _ = tick.tick() => {
                eprintln!(
                    "  {:>5.1} s: {} acked of {}, {} of {} deliveries, server RSS {:.0} MiB, load {}",
                    load_started.elapsed().as_secs_f64(),
                    shared.acked.load(Ordering::Relaxed),
                    msgs.len(),
                    shared.delivered.load(Ordering::Relaxed),
                    expected,
                    mb(memory(pid).0),
                    load_average()
                );
            }
        }
    }
    let load_s = load_started.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(pid).unwrap_or(cpu_before);
    let self_after = cpu_ticks(std::process::id()).unwrap_or(self_before);
    let (rss_end, peak) = memory(pid);
    let (_, self_peak) = memory(std::process::id());
    let pg_ticks: Option<u64> = match &pg_db {
        Some(db) => {
            let mut sum = 0;
            for p in pg_backends(db).await? {
                if let Some(now) = cpu_ticks(p) {
                    sum += now.saturating_sub(pg_before.get(&p).copied().unwrap_or(0));
                }
            }
            Some(sum)
        }
        None => None,
    };
    let load_after = load_average();
    let commit = metrics(server.port).await.minus(metrics_before);
    let _ = stop_tx.send(true);

    // Sends, then answers and pushes.
    let mut sent_us: Vec<Option<u32>> = vec![None; msgs.len()];
    let mut errors = Vec::new();
    let mut sinks = Vec::with_capacity(s.sockets);
    for w in writers {
        let (sink, sent, err) = w.await?;
        for (m, at) in sent {
            sent_us[m as usize] = Some(at);
        }
        errors.extend(err);
        sinks.push(sink);
    }
    let mut outs = Vec::with_capacity(s.sockets);
    for r in readers {
        outs.push(r.await?);
    }
    // Close politely, a few at a time (the server notes each leaving).
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::stream::iter(sinks).for_each_concurrent(256, |mut sink| async move {
            let _ = sink.close().await;
        }),
    )
    .await;

    let mut origin: HashMap<u64, u32> = HashMap::with_capacity(msgs.len());
    let mut ack_lat = Vec::with_capacity(msgs.len());
    let mut rejects = Vec::new();
    let mut acked_of = [0usize; 3];
    let kind_of = |m: u32| convs[msgs[m as usize].conv as usize].kind as usize;
    for (c, out) in outs.iter().enumerate() {
        for (m, d, seq, at) in &out.acks {
            if let Some(sent) = sent_us[*m as usize] {
                ack_lat.push(u64::from(at.saturating_sub(sent)));
            }
            origin.insert((u64::from(*d) << 40) | seq, *m);
            acked_of[kind_of(*m)] += 1;
        }
        rejects.extend(out.rejects.iter().cloned());
        errors.extend(out.errors.iter().map(|e| format!("connection {c}: {e}")));
    }
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); 3];
    // Per message: (latest arrival after the send, receivers).
    let mut last: Vec<(u32, u32)> = vec![(0, 0); msgs.len()];
    let mut deliveries = 0u64;
    for (r, out) in outs.iter().enumerate() {
        for (key, at) in &out.deliveries {
            let Some(m) = origin.get(key) else {
                continue;
            };
            let msg = &msgs[*m as usize];
            let Some(sent) = sent_us[*m as usize] else {
                continue;
            };
            if msg.conn as usize == r {
                continue;
            }
            let us = at.saturating_sub(sent);
            deliveries += 1;
            lat[kind_of(*m)].push(u64::from(us));
            let e = &mut last[*m as usize];
            e.0 = e.0.max(us);
            e.1 += 1;
        }
    }
    let mut kinds = Vec::new();
    for kind in KINDS {
        let k = kind as usize;
        let of_kind: Vec<&Conv> = convs.iter().filter(|c| c.kind == kind).collect();
        let mut all = Vec::new();
        let mut expected_k = 0usize;
        let mut sent_k = 0usize;
        for (i, m) in msgs.iter().enumerate() {
            let conv = &convs[m.conv as usize];
            if conv.kind != kind {
                continue;
            }
            if sent_us[i].is_some() {
                sent_k += 1;
                expected_k += conv.members.len() - 1;
            }
            if last[i].1 as usize >= conv.members.len() - 1 {
                all.push(u64::from(last[i].0));
            }
        }
        let got = lat[k].len();
        kinds.push(KindResult {
            kind: kind.name(),
            conversations: of_kind.len(),
            mean_members: of_kind.iter().map(|c| c.members.len()).sum::<usize>() as f64
                / of_kind.len().max(1) as f64,
            sent: sent_k,
            acked: acked_of[k],
            deliveries: got,
            deliveries_missing: expected_k.saturating_sub(got),
            delivery: Dist::of(std::mem::take(&mut lat[k])),
            delivery_all: Dist::of(all),
        });
    }
    // Refused for the moment (`unavailable`: e.g. the database pool was exhausted); the
    // generator does not resubmit, so each is a message that stays unacked.
    let unavailable = errors.iter().filter(|e| e.contains("unavailable")).count();
    let rejected = outs.iter().map(|o| o.rejects.len()).sum();
    // Every refusal by its code (`reject …` and `error …` frames), the samples after.
    let mut refusals: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &rejects {
        let code = r.split(':').next().unwrap_or_default();
        *refusals.entry(format!("reject {code}")).or_default() += 1;
    }
    for e in &errors {
        // "connection N: code: message"
        let code = e.split(": ").nth(1).unwrap_or(e.as_str());
        *refusals.entry(format!("error {code}")).or_default() += 1;
    }
    rejects.sort();
    rejects.dedup();
    errors.sort();
    errors.dedup();
    if !rejects.is_empty() {
        errors.insert(
            0,
            format!("rejected: {}", rejects[..rejects.len().min(3)].join("; ")),
        );
    }
    let first = sent_us.iter().flatten().min().copied().unwrap_or(0);
    let last_sent = sent_us.iter().flatten().max().copied().unwrap_or(0);
    let send_s = f64::from(last_sent.saturating_sub(first)) / 1e6;
    let sent_n = sent_us.iter().flatten().count();
    let per_1k = |t: u64| {
        if deliveries == 0 {
            0.0
        } else {
            t as f64 / ticks * 1000.0 / deliveries as f64 * 1000.0
        }
    };
    let pct = |t: u64| t as f64 / ticks / load_s * 100.0;
    Ok(ManyResult {
        mode: "many",
        sizes: Some(s.clone()),
        loadgen_threads: args.threads.max(1),
        load_average_after: load_after,
        setup_s,
        send_s,
        offered_per_s: if send_s > 0.0 {
            sent_n as f64 / send_s
        } else {
            0.0
        },
        wall_s: load_s,
        kinds,
        ack: Dist::of(ack_lat),
        deliveries,
        rejected,
        unavailable,
        errors: errors.into_iter().take(5).collect(),
        refusals,
        server_cpu_ms_per_1k_deliveries: per_1k(cpu_after.saturating_sub(cpu_before)),
        server_cpu_pct: pct(cpu_after.saturating_sub(cpu_before)),
        pg_cpu_ms_per_1k_deliveries: pg_ticks.map(per_1k),
        pg_cpu_pct: pg_ticks.map(pct),
        loadgen_cpu_ms_per_1k_deliveries: per_1k(self_after.saturating_sub(self_before)),
        loadgen_cpu_pct: pct(self_after.saturating_sub(self_before)),
        server_peak_rss_mb: mb(peak),
        server_max_rss_during_load_mb: mb(max_rss.max(rss_end)),
        server_rss_end_mb: mb(rss_end),
        loadgen_peak_rss_mb: mb(self_peak),
        commits: commit.batch_count,
        avg_commit_batch: if commit.batch_count > 0.0 {
            commit.batch_sum / commit.batch_count
        } else {
            0.0
        },
        avg_commit_ms: if commit.batch_count > 0.0 {
            commit.seconds_sum / commit.batch_count * 1000.0
        } else {
            0.0
        },
        stages: StageMeans::of(&commit),
        ..ManyResult::default()
    })
}

fn table(r: &ManyResult) {
    println!();
    if let Some(s) = &r.sizes {
        println!(
            "many ({}): {} connections + {} channel-only = {} sockets; {} msg/s for {} s ({:.0} small, {:.0} group, {:.0} channel); offered {:.0} msg/s",
            r.backend,
            s.connections,
            s.sockets - s.connections,
            s.sockets,
            s.rate,
            s.seconds,
            s.small_rate,
            s.group_rate,
            s.channel_rate,
            r.offered_per_s
        );
    }
    println!(
        "{:<8} {:>6} {:>7} {:>7} {:>7} {:>10} {:>8} | {:>16} | {:>16}",
        "kind",
        "convs",
        "members",
        "sent",
        "acked",
        "delivered",
        "missing",
        "deliv p50/p99 ms",
        "to all p50/p99"
    );
    for k in &r.kinds {
        println!(
            "{:<8} {:>6} {:>7.1} {:>7} {:>7} {:>10} {:>8} | {:>7.2}/{:>8.2} | {:>7.2}/{:>8.2}",
            k.kind,
            k.conversations,
            k.mean_members,
            k.sent,
            k.acked,
            k.deliveries,
            k.deliveries_missing,
            k.delivery.p50_ms,
            k.delivery.p99_ms,
            k.delivery_all.p50_ms,
            k.delivery_all.p99_ms
        );
    }
    println!(
        "acks p50/p99 {:.2}/{:.2} ms; {} deliveries in {:.1} s; {} rejected, {} refused `unavailable`",
        r.ack.p50_ms, r.ack.p99_ms, r.deliveries, r.wall_s, r.rejected, r.unavailable
    );
    let pg = r.pg_cpu_ms_per_1k_deliveries.map_or_else(
        || "-".to_owned(),
        |v| {
            format!(
                "{v:.0} ms/1k ({:.0}% of a core)",
                r.pg_cpu_pct.unwrap_or(0.0)
            )
        },
    );
    println!(
        "CPU per 1,000 deliveries: server {:.0} ms ({:.0}% of a core), Postgres {pg}, load generator {:.0} ms ({:.0}% of a core, {} threads)",
        r.server_cpu_ms_per_1k_deliveries,
        r.server_cpu_pct,
        r.loadgen_cpu_ms_per_1k_deliveries,
        r.loadgen_cpu_pct,
        r.loadgen_threads
    );
    println!(
        "server RSS: peak {:.0} MiB (VmHWM, setup included), highest during the load {:.0} MiB, at the end {:.0} MiB; load generator peak {:.0} MiB",
        r.server_peak_rss_mb, r.server_max_rss_during_load_mb, r.server_rss_end_mb, r.loadgen_peak_rss_mb
    );
    println!(
        "server commits: {:.0} ({:.2} changes each, {:.2} ms mean); submit stages, mean ms: {}",
        r.commits,
        r.avg_commit_batch,
        r.avg_commit_ms,
        r.stages.line()
    );
    println!(
        "load average before {} after {}; setup {:.1} s",
        r.load_average_before, r.load_average_after, r.setup_s
    );
    if !r.refusals.is_empty() {
        let by_code: Vec<String> = r.refusals.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!("refusals by code: {}", by_code.join(", "));
    }
    for e in &r.errors {
        println!("  ! {e}");
    }
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    let get = |name: &str| r.kinds.iter().find(|k| k.kind == name);
    if let Some(k) = get("small") {
        println!(
            "target small p99 ≤ {TARGET_SMALL_P99_MS} ms: {:.2} ms {}",
            k.delivery.p99_ms,
            verdict(k.delivery.p99_ms <= TARGET_SMALL_P99_MS && k.deliveries_missing == 0)
        );
    }
    if let Some(k) = get("channel") {
        println!(
            "target channel to all subscribers p99 ≤ {TARGET_CHANNEL_ALL_P99_MS} ms: {:.2} ms {}",
            k.delivery_all.p99_ms,
            verdict(
                k.delivery_all.p99_ms <= TARGET_CHANNEL_ALL_P99_MS && k.deliveries_missing == 0
            )
        );
    }
    println!(
        "target RSS ≤ {TARGET_RSS_MB} MiB: peak {:.0} MiB {}",
        r.server_peak_rss_mb,
        verdict(r.server_peak_rss_mb <= TARGET_RSS_MB)
    );
    if r.loadgen_cpu_pct > 0.8 * 100.0 * r.loadgen_threads as f64 {
        println!("  note: the load generator used most of its threads: it may be the bottleneck");
    }
}
