//! `cost` (`cargo xtask bench cost`): one configuration of the cost meter, meant to run
//! under `valgrind --tool=callgrind` (docs/BENCHMARKS.md, "Cost per message").
//!
//! The real server runs in this process: the store (SQLite in a temporary folder, or a fresh
//! Postgres database), the engine with its units, committer, notifier and search indexer,
//! and `confab_server::serve` on 127.0.0.1, on a current-thread runtime (the committer, the
//! reader and sqlx's SQLite connections keep their own threads). A client thread connects a
//! sender and a receiver over real WebSockets and drives a fixed workload: a group of
//! `--members` (the sender owns it, the receiver is subscribed to its messages; the others
//! are members without a connection), in the clear or encrypted (`--sealed`: sealed message
//! changes, `confab_bench::sealed`), then `--messages` posts of seeded bodies at fixed times
//! and ids, `--per-frame` to a submit frame.
//!
//! Closed loop, so every run batches the same: a frame goes out once the previous one's
//! acks and its push to the receiver are in, and the notifier has stored its rows. Warm-up
//! (creation, the MLS group, `--warmup-frames` frames) is outside the measured region, which
//! starts in [`cost_meter_start`] and ends in [`cost_meter_end`] (callgrind's
//! `--zero-before` and `--dump-before`). The client's own work in the region is inside
//! [`cost_client_round`], which the meter subtracts. On SQLite, the search backlog the
//! region's commits left is moved into FTS5 inside the region (`Engine::index_search_backlog`,
//! what the indexer does every 250 ms), so its cost counts too.
//!
//! Prints one JSON line: the configuration, accepted messages, and on Postgres the database
//! backends' CPU time over the region (`/proc/<pid>/schedstat` of each backend of the run's
//! database; Postgres runs outside valgrind, so this is time, not instructions).

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use confab_bench::sealed::SealedGroup;
use confab_core::automerge::Change;
use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{BudgetRate, Limits, ServerFrame};
use confab_server::auth::Authenticator;
use confab_server::blobs::{BlobLimits, Blobs};
use confab_server::budget::{BudgetConfig, Budgets};
use confab_server::engine::{Engine, EngineConfig};
use confab_server::metrics::Metrics;
use confab_server::store::health::StorageTimeouts;
use confab_server::AppState;
use confab_testkit::fixture::ConvFixture;
use confab_testkit::pg::{self, Template};
use confab_testkit::server::{token, SECRET};
use confab_testkit::text::{body, Rng};
use confab_testkit::wire::Client;
use confab_testkit::{Answer, Device};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

const TENANT: &str = "acme";
/// Every time the workload writes: 2026-01-01T00:00:00Z, and a second per message after it.
const T0: i64 = 1_767_225_600_000;
/// The device every connection names (test devices' authors are on it).
const DEVICE: &str = confab_testkit::device::DEVICE;
/// The longest wait for the notifier's rows of a measured frame.
const NOTIFIED_WAIT: Duration = Duration::from_secs(300);

#[derive(Parser, Debug, Clone)]
#[command(
    name = "cost",
    about = "One configuration of the cost meter (run under callgrind)"
)]
struct Args {
    /// sqlite or postgres (a fresh database on 127.0.0.1:5432, user postgres).
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// Messages per submit frame.
    #[arg(long, default_value_t = 16)]
    per_frame: usize,
    /// Members of the group (the sender, the subscribed receiver, and members offline).
    #[arg(long, default_value_t = 2)]
    members: usize,
    /// An encrypted conversation: sealed message changes.
    #[arg(long)]
    sealed: bool,
    /// Messages in the measured region (rounded up to whole frames).
    #[arg(long, default_value_t = 256)]
    messages: usize,
    /// Frames before the measured region.
    #[arg(long, default_value_t = 4)]
    warmup_frames: usize,
    /// The seed of the message bodies.
    #[arg(long, default_value_t = 59)]
    seed: u64,
}

/// Where the measured region starts: callgrind zeroes its counts on entering it.
#[inline(never)]
fn cost_meter_start() {
    // Bodies that differ: identical functions may be folded into one symbol.
    black_box("cost_meter_start");
}

/// Where the measured region ends: callgrind dumps its counts on entering it.
#[inline(never)]
fn cost_meter_end() {
    black_box("cost_meter_end");
}

/// The client's share of the region (writing frames, reading answers and pushes), which
/// the meter subtracts: everything the client thread does inside it.
#[inline(never)]
fn cost_client_round(round: &mut dyn FnMut()) {
    round();
}

/// What the client thread asks of the server's runtime.
enum Request {
    /// Moves SQLite's search backlog into FTS5 (the indexer's pass): how many it moved.
    IndexSearch(oneshot::Sender<u64>),
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.per_frame == 0 || args.members < 2 {
        bail!("--per-frame must be ≥ 1 and --members ≥ 2");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (pg_url, store) = runtime.block_on(open_store(&args.store))?;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<(SocketAddr, Arc<Metrics>)>();
    let (req_tx, req_rx) = mpsc::channel::<Request>(16);
    let client_args = args.clone();
    let pg = pg_url.clone();
    let client = std::thread::Builder::new()
        .name("cost-client".into())
        .spawn(move || -> Result<serde_json::Value> {
            let (addr, metrics) = addr_rx.recv().context("the server did not start")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            drive(&rt, &client_args, addr, &metrics, req_tx, pg.as_deref())
        })?;
    let summary = runtime.block_on(async move {
        let engine = serve(store, addr_tx).await?;
        let answered = answer_requests(engine.clone(), req_rx);
        let summary = tokio::task::spawn_blocking(move || client.join())
            .await
            .context("joining the client")?
            .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
        answered.abort();
        engine.begin_shutdown();
        engine.drain(Duration::from_secs(10)).await;
        anyhow::Ok(summary)
    })?;
    if let Some(url) = pg_url {
        runtime.block_on(pg::drop_database(&url))?;
    } else {
        // The SQLite store's folder of this run.
        let _ = std::fs::remove_dir_all(sqlite_dir());
    }
    println!("{summary}");
    Ok(())
}

fn sqlite_dir() -> PathBuf {
    std::env::temp_dir().join(format!("confab-cost-{}", std::process::id()))
}

async fn open_store(store: &str) -> Result<(Option<String>, Arc<dyn confab_server::store::Store>)> {
    match store {
        "sqlite" => {
            let dir = sqlite_dir();
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let store = confab_server::maintenance::open_store(None, &dir).await?;
            Ok((None, store))
        }
        "postgres" => {
            let url = pg::fresh_database("confab_e2e", Template::Default).await?;
            let store = confab_server::maintenance::open_store(Some(&url), &PathBuf::new()).await?;
            Ok((Some(url), store))
        }
        other => bail!("unknown store {other:?}: sqlite or postgres"),
    }
}

/// The server as `confab-server serve` wires it (`server/src/main.rs`), with budgets that
/// never refuse (the workload is closed-loop) and a fixed node name; no webhook, no
/// scheduler, no retention or purge sweeps (none has work here).
async fn serve(
    store: Arc<dyn confab_server::store::Store>,
    addr_tx: std::sync::mpsc::Sender<(SocketAddr, Arc<Metrics>)>,
) -> Result<Engine> {
    let engine = Engine::new(
        store,
        Arc::new(Metrics::new()),
        EngineConfig {
            node: "cost".into(),
            // Under callgrind every thread runs one at a time, tens of times slower: the
            // production bounds (a 500 ms probe) would call a healthy store down, and a
            // probe every 250 ms of wall time would count more on a slower machine.
            storage_timeouts: StorageTimeouts {
                probe: Duration::from_secs(600),
                probe_up_every: Duration::from_secs(3600),
                commit: Duration::from_secs(600),
            },
            ..EngineConfig::default()
        },
    );
    confab_server::notify::start_with(&engine, None, 100_000)?;
    let unlimited = BudgetRate {
        per_sec: 1e9,
        burst: 1e9,
    };
    let limits = Limits {
        rate_per_sec: 1_000_000,
        rate_burst: 1_000_000,
        ..Limits::default()
    };
    let (_shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let state = AppState {
        engine: engine.clone(),
        auth: Arc::new(Authenticator::hs256(SECRET.as_bytes())),
        limits,
        budgets: Arc::new(Budgets::new(BudgetConfig {
            connection: unlimited,
            account: unlimited,
            reject_cost: 1.0,
        })),
        claims: Default::default(),
        max_connections: 1_000,
        push_backlog_bytes: 64 << 20,
        connections: Arc::new(AtomicUsize::new(0)),
        shutdown: shutdown_rx,
        demo: None,
        web_root: None,
        blobs: Arc::new(Blobs::from_url("memory:///", BlobLimits::default())?),
        cors: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    addr_tx.send((listener.local_addr()?, engine.metrics().clone()))?;
    tokio::spawn(async move {
        // Kept alive until the process ends: the run ends with the client.
        let _keep = _shutdown_tx;
        let _ = confab_server::serve(listener, state, std::future::pending()).await;
    });
    Ok(engine)
}

fn answer_requests(engine: Engine, mut rx: mpsc::Receiver<Request>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            match request {
                Request::IndexSearch(reply) => {
                    let moved = engine.index_search_backlog().await.unwrap_or(0);
                    let _ = reply.send(moved as u64);
                }
            }
        }
    })
}

/// One frame's worth of message changes, ready to send.
struct Frame {
    changes: Vec<ByteBuf>,
    last_seq: u64,
}

fn drive(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    addr: SocketAddr,
    metrics: &Metrics,
    requests: mpsc::Sender<Request>,
    pg_url: Option<&str>,
) -> Result<serde_json::Value> {
    let url = format!("ws://{addr}/ws");
    let tenant = TenantId::new(TENANT)?;
    let conv = ConvId::new("cost")?;
    let conv_doc = DocId::conv(&tenant, &conv);
    let accounts: Vec<String> = (0..args.members).map(|i| format!("m{i:04}")).collect();
    let (mut sender, mut receiver, mut writer, mut group) = rt.block_on(async {
        let mut sender =
            Client::connect_device(&url, &token(TENANT, &accounts[0], false, 86_400), DEVICE)
                .await?;
        let mut receiver =
            Client::connect_device(&url, &token(TENANT, &accounts[1], false, 86_400), DEVICE)
                .await?;
        let mut writer = Device::new(&accounts[0], 1);
        let others = accounts[1..]
            .iter()
            .map(|a| AccountId::new(a.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = ConvFixture::group(AccountId::new(accounts[0].clone())?, T0)
            .members(others, Role::Member)
            .title("cost")
            .tweak(|spec| spec.encrypted = args.sealed)
            .build();
        let create = writer.write(&conv_doc, |d, t| write::create_conversation(d, t, &spec))?;
        acked(sender.submit(&conv_doc, &[create]).await?)?;
        let group = if args.sealed {
            let members = [
                (accounts[0].as_str(), DEVICE),
                (accounts[1].as_str(), DEVICE),
            ];
            let (mut group, changes) =
                SealedGroup::make(&tenant, &conv_doc, &members, &mut writer, T0)?;
            for (i, client) in [&mut sender, &mut receiver].into_iter().enumerate() {
                match client.request(&group.registration(i)?).await? {
                    ServerFrame::KeyPackagesStored { .. } => {}
                    other => bail!("registering a device: {other:?}"),
                }
            }
            acked(sender.submit(&conv_doc, &changes).await?)?;
            group.confirm()?;
            Some(group)
        } else {
            None
        };
        anyhow::Ok((sender, receiver, writer, group))
    })?;

    // Every frame written before anything is measured: the client's Automerge and MLS work
    // stays out of the region.
    let bucket = DocId::msgs(&tenant, &conv, T0.div_euclid(DEFAULT_BUCKET_MS));
    let measured_frames = args.messages.div_ceil(args.per_frame);
    let mut rng = Rng(args.seed.max(1));
    let mut frames = Vec::new();
    let mut seq = 0u64;
    for f in 0..args.warmup_frames + measured_frames {
        let mut changes = Vec::with_capacity(args.per_frame);
        for k in 0..args.per_frame {
            let n = f * args.per_frame + k;
            let at = T0 + 1_000 * (n as i64 + 1);
            let id = MessageId::new(format!("m{n:06}"))?;
            let chars = 40 + (rng.next() % 41) as usize;
            let text = body(&mut rng, chars);
            let author = AccountId::new(accounts[0].clone())?;
            let message = match &mut group {
                Some(group) => group.message(0, id, author, text, at)?,
                None => NewMessage::text(id, author, text, at),
            };
            let change: Change =
                writer.write(&bucket, |d, t| write::post_message(d, t, &message))?;
            changes.push(ByteBuf::from(change.raw_bytes().to_vec()));
        }
        seq += args.per_frame as u64;
        frames.push(Frame {
            changes,
            last_seq: seq,
        });
    }
    let measured = frames.split_off(args.warmup_frames);

    let ask = |make: &dyn Fn(oneshot::Sender<u64>) -> Request| -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        requests
            .blocking_send(make(tx))
            .ok()
            .context("the server stopped")?;
        rx.blocking_recv().context("no answer from the server")
    };
    let notified_so_far = || metrics.notify.created.get();

    // The receiver follows the messages from the start.
    rt.block_on(receiver.subscribe(&bucket, 0))?;
    // Warm-up frames: units, documents, bindings, statements and caches in place. The
    // notifier's rows per frame are learnt here (once its count stays put for a second):
    // each measured frame waits for as many, so no frame's rows spill into the next.
    let mut before = notified_so_far();
    let mut per_frame_notified = 0;
    for frame in frames {
        rt.block_on(round(&mut sender, &mut receiver, &bucket, frame))?;
        let mut now = notified_so_far();
        let mut still = 0;
        while still < 20 {
            std::thread::sleep(Duration::from_millis(50));
            let next = notified_so_far();
            still = if next == now { still + 1 } else { 0 };
            now = next;
        }
        per_frame_notified = now - before;
        before = now;
    }
    if args.store == "sqlite" {
        ask(&|tx| Request::IndexSearch(tx))?;
    }
    let pg_before = match pg_url {
        Some(url) => Some(rt.block_on(pg_backend_ns(url))?),
        None => None,
    };

    cost_meter_start();
    let mut accepted = 0usize;
    let mut notified = before;
    for frame in measured {
        let mut frame = Some(frame);
        let mut result = Ok(0);
        notified += per_frame_notified;
        // The wait for the notifier polls here, on the client's thread, so its cost is
        // the client's (subtracted) whatever the wait's length.
        cost_client_round(&mut || {
            if let Some(frame) = frame.take() {
                result = rt.block_on(round(&mut sender, &mut receiver, &bucket, frame));
                let deadline = std::time::Instant::now() + NOTIFIED_WAIT;
                while notified_so_far() < notified && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        accepted += result?;
        let got = notified_so_far();
        if got != notified {
            bail!("the notifier stored {got} notifications in all, not {notified}");
        }
    }
    let indexed = match args.store.as_str() {
        "sqlite" => ask(&|tx| Request::IndexSearch(tx))?,
        _ => 0,
    };
    cost_meter_end();

    let pg_ns = match (pg_url, pg_before) {
        (Some(url), Some(before)) => Some(rt.block_on(pg_backend_ns(url))? - before),
        _ => None,
    };
    rt.block_on(async {
        sender.close().await;
        receiver.close().await;
    });
    Ok(serde_json::json!({
        "store": args.store,
        "per_frame": args.per_frame,
        "members": args.members,
        "sealed": args.sealed,
        "accepted": accepted,
        "indexed": indexed,
        "notified_per_frame": per_frame_notified,
        "postgres_backend_ns": pg_ns,
    }))
}

/// Sends one frame; answers once every change is acked and pushed to the receiver.
async fn round(
    sender: &mut Client,
    receiver: &mut Client,
    bucket: &DocId,
    frame: Frame,
) -> Result<usize> {
    let accepted = acked(sender.submit_raw(bucket, frame.changes).await?)?;
    receiver.pushes_until(bucket, frame.last_seq).await?;
    Ok(accepted)
}

/// How many were acked; an error on any other answer (the workload is all valid).
fn acked(answers: Vec<Answer>) -> Result<usize> {
    for a in &answers {
        if !matches!(a, Answer::Ack { .. }) {
            bail!("not accepted: {a:?}");
        }
    }
    Ok(answers.len())
}

/// The CPU time of the run database's backends so far, in ns (`/proc/<pid>/schedstat`).
async fn pg_backend_ns(url: &str) -> Result<u64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let pids: Vec<(i32,)> = sqlx::query_as(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    let mut total = 0;
    for (pid,) in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}
