//! `flood`: does rejected work hold up accepted work? (The target: a flood of 10,000
//! rejected changes from another account adds ≤ 10 ms to a member's ack p99 in the same
//! conversation; docs/BENCHMARKS.md, "Flood".)
//!
//! Against the release `confab-server` on 127.0.0.1 (SQLite, or a fresh Postgres database),
//! one fresh server per run: a member posts `--rate` messages per second (one change per
//! submit frame, open loop: sends never wait for acks) for `--seconds` into a group's
//! current bucket, and its submit→ack latency is measured. Scenarios:
//!
//! - `baseline`: the member alone;
//! - `flood`: one second in, a non-member sends `--flood-frames` frames of
//!   `--flood-changes` well-formed message changes (written with its own device on the same
//!   bucket), back to back, and reads its answers;
//! - `garbage`: one second in, a non-member sends `--garbage-frames` submit frames of one
//!   change of random bytes each.
//!
//! It reports the member's ack p50/p99/max over the run and during the flood (from its first
//! frame to its last answer), and what the flooder got back (rejected, rate_limited, acked).
//! `cargo xtask bench flood` builds and runs it; a table goes to stdout and one JSON line per
//! run to `--json`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use confab_core::automerge::Change;
use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::server::{append_line, now_ms, token, Backend, TestServer};
use confab_testkit::Device;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_bytes::ByteBuf;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;
type Stream = SplitStream<Ws>;

const TENANT: &str = "bench";
/// The target: what a flood may add to the member's ack p99.
const TARGET_ADDED_P99_MS: f64 = 10.0;
/// Member messages sent and acked one by one before the measured run.
const WARMUP: usize = 20;

#[derive(Debug, Parser)]
#[command(
    name = "flood",
    about = "A member's ack latency while a non-member floods its conversation (127.0.0.1 only)"
)]
struct Args {
    /// The release server binary.
    #[arg(long)]
    server_bin: PathBuf,
    /// Backends: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Scenarios: baseline, flood, garbage.
    #[arg(long, value_delimiter = ',', default_value = "baseline,flood,garbage")]
    scenarios: Vec<String>,
    /// The member's messages per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// How long the member posts.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// `flood`: frames the non-member sends.
    #[arg(long, default_value_t = 10)]
    flood_frames: usize,
    /// `flood`: changes per frame.
    #[arg(long, default_value_t = 1000)]
    flood_changes: usize,
    /// `garbage`: submit frames of one random-bytes change.
    #[arg(long, default_value_t = 2000)]
    garbage_frames: usize,
    /// Runs of each backend × scenario, interleaved (the table shows each).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Also append each run's JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    backend: &'static str,
    scenario: String,
    sent: usize,
    acked: usize,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    ack_max_ms: f64,
    /// Acks of messages sent while the flood was under way.
    during_flood: usize,
    during_flood_p50_ms: f64,
    during_flood_max_ms: f64,
    flood_changes: usize,
    flood_rejected: usize,
    flood_rate_limited: usize,
    flood_acked: usize,
    flood_other: usize,
    /// From the flood's first frame to its last answer.
    flood_s: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn connect(url: &str, account: &str) -> Result<(Sink, Stream)> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .context("websocket connect")?;
    let (mut sink, mut stream) = ws.split();
    let hello = ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        token: token(TENANT, account, false, 3600),
        device: "flood".into(),
    };
    sink.send(Message::Binary(encode_client(&hello).into()))
        .await?;
    match next_frame(&mut stream).await? {
        ServerFrame::Welcome { .. } => Ok((sink, stream)),
        other => bail!("expected welcome, got {other:?}"),
    }
}

async fn next_frame(stream: &mut Stream) -> Result<ServerFrame> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .map_err(|_| anyhow!("no frame within 60 s"))?;
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                return decode_server(&bytes, usize::MAX).map_err(|e| anyhow!("{e}"))
            }
            Some(Ok(Message::Close(c))) => bail!("closed: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("websocket: {e}"),
            None => bail!("connection ended"),
        }
    }
}

fn submit_frame(doc: &DocId, changes: Vec<Vec<u8>>) -> Message {
    let frame = ClientFrame::Submit {
        doc: doc.to_string(),
        changes: changes.into_iter().map(ByteBuf::from).collect(),
    };
    Message::Binary(encode_client(&frame).into())
}

fn message_change(dev: &mut Device, bucket: &DocId, id: &str, at: i64) -> Result<Change> {
    let m = NewMessage::text(
        MessageId::new(id).map_err(|e| anyhow!("{e}"))?,
        AccountId::new(&dev.account).map_err(|e| anyhow!("{e}"))?,
        "hello there",
        at,
    );
    dev.write(bucket, |d, t| write::post_message(d, t, &m))
}

/// What the flooder sends.
enum Flood {
    None,
    Changes(Vec<Vec<Vec<u8>>>),
    Garbage(usize),
}

#[derive(Default)]
struct FloodResult {
    changes: usize,
    rejected: usize,
    rate_limited: usize,
    acked: usize,
    other: usize,
    started: Option<Instant>,
    ended: Option<Instant>,
}

/// Sends the flood back to back, then reads until every change has its answer.
async fn flood(url: String, bucket: DocId, what: Flood) -> Result<FloodResult> {
    let (mut sink, mut stream) = connect(&url, "eve").await?;
    let frames: Vec<(Message, usize)> = match what {
        Flood::None => return Ok(FloodResult::default()),
        Flood::Changes(frames) => frames
            .into_iter()
            .map(|f| {
                let n = f.len();
                (submit_frame(&bucket, f), n)
            })
            .collect(),
        Flood::Garbage(n) => {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            (0..n)
                .map(|_| {
                    let bytes: Vec<u8> = (0..64)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect();
                    (submit_frame(&bucket, vec![bytes]), 1)
                })
                .collect()
        }
    };
    let total: usize = frames.iter().map(|f| f.1).sum();
    // Every frame holds the same number of changes.
    let per_frame = frames.first().map_or(1, |f| f.1.max(1));
    let mut result = FloodResult {
        changes: total,
        started: Some(Instant::now()),
        ..FloodResult::default()
    };
    // Answers are read while sending: a flooder that does not read would only be slowed
    // down by its own backlog.
    let sender = tokio::spawn(async move {
        for (frame, _) in frames {
            sink.send(frame).await?;
        }
        Ok::<Sink, anyhow::Error>(sink)
    });
    let mut answered = 0;
    while answered < total {
        match next_frame(&mut stream).await? {
            ServerFrame::Reject { .. } => {
                result.rejected += 1;
                answered += 1;
            }
            ServerFrame::Ack { .. } => {
                result.acked += 1;
                answered += 1;
            }
            // A frame refused before decoding answers for all its changes; one with a hash
            // answers one change.
            ServerFrame::Error { code, hash, .. } if code == "rate_limited" => {
                let n = if hash.is_some() {
                    1
                } else {
                    total.min(answered + per_frame) - answered
                };
                result.rate_limited += n;
                answered += n;
            }
            ServerFrame::Error { .. } => {
                result.other += 1;
                answered += 1;
            }
            _ => {}
        }
    }
    result.ended = Some(Instant::now());
    let _ = sender.await;
    Ok(result)
}

async fn run_one(args: &Args, backend: Backend, scenario: &str) -> Result<Run> {
    let debug = std::env::var_os("FLOOD_DEBUG").is_some();
    let server = match debug {
        true => TestServer::start_logged(&args.server_bin, backend, &[]).await?,
        false => TestServer::start_bin(&args.server_bin, backend, &[]).await?,
    };
    let url = server.ws_url();
    let tenant = TenantId::new(TENANT).map_err(|e| anyhow!("{e}"))?;
    let conv = ConvId::new("flooded").map_err(|e| anyhow!("{e}"))?;
    let conv_doc = DocId::conv(&tenant, &conv);
    let start = now_ms();
    let bucket = DocId::msgs(&tenant, &conv, start.div_euclid(DEFAULT_BUCKET_MS));

    // The conversation: alice (owner) and bob; eve is not a member.
    let mut alice = Device::new("alice", 1);
    let alice_id = AccountId::new("alice").map_err(|e| anyhow!("{e}"))?;
    let bob_id = AccountId::new("bob").map_err(|e| anyhow!("{e}"))?;
    let spec = ConvFixture::group(alice_id, start)
        .member(bob_id, Role::Member)
        .title("flooded")
        .build();
    let create = alice.write(&conv_doc, |d, t| write::create_conversation(d, t, &spec))?;
    let (mut sink, mut stream) = connect(&url, "alice").await?;
    sink.send(submit_frame(&conv_doc, vec![create.raw_bytes().to_vec()]))
        .await?;
    match next_frame(&mut stream).await? {
        ServerFrame::Ack { .. } => {}
        other => bail!("creating the conversation: {other:?}"),
    }

    // Written before the clock starts: the member's messages and the flood.
    let count = (f64::from(args.rate) * args.seconds).round() as usize;
    let mut messages = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let c = message_change(&mut alice, &bucket, &format!("a{i:06}"), start + i as i64)?;
        messages.push((c.hash().0, c.raw_bytes().to_vec()));
    }
    // Warm-up, not measured: the bucket's first load and the first commits take long.
    for (_, bytes) in messages.drain(..WARMUP) {
        sink.send(submit_frame(&bucket, vec![bytes])).await?;
        match next_frame(&mut stream).await? {
            ServerFrame::Ack { .. } => {}
            other => bail!("a warm-up message: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let what = match scenario {
        "baseline" => Flood::None,
        "flood" => {
            let mut eve = Device::new("eve", 1);
            let mut frames = Vec::with_capacity(args.flood_frames);
            for f in 0..args.flood_frames {
                let mut frame = Vec::with_capacity(args.flood_changes);
                for i in 0..args.flood_changes {
                    let id = format!("e{f:03}{i:05}");
                    frame.push(
                        message_change(&mut eve, &bucket, &id, start)?
                            .raw_bytes()
                            .to_vec(),
                    );
                }
                frames.push(frame);
            }
            Flood::Changes(frames)
        }
        "garbage" => Flood::Garbage(args.garbage_frames),
        other => bail!("unknown scenario {other}"),
    };

    // The member's reader: ack times by hash.
    let acks: Arc<Mutex<HashMap<[u8; 32], Instant>>> = Arc::default();
    let reader_acks = acks.clone();
    let expected = count;
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < expected {
            match next_frame(&mut stream).await? {
                ServerFrame::Ack { hash, .. } => {
                    let at = Instant::now();
                    let mut key = [0u8; 32];
                    if hash.len() == 32 {
                        key.copy_from_slice(&hash);
                    }
                    reader_acks
                        .lock()
                        .map_err(|_| anyhow!("poisoned"))?
                        .insert(key, at);
                    seen += 1;
                }
                other @ (ServerFrame::Reject { .. } | ServerFrame::Error { .. }) => {
                    bail!("the member's message was refused: {other:?}")
                }
                _ => {}
            }
        }
        Ok::<(), anyhow::Error>(())
    });

    // The flood starts one second in.
    let flood_task = {
        let (url, bucket) = (url.clone(), bucket.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            flood(url, bucket, what).await
        })
    };

    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let t0 = Instant::now();
    let t0_ms = now_ms();
    let mut sent_at = Vec::with_capacity(count);
    for (i, (hash, bytes)) in messages.into_iter().enumerate() {
        let due = t0 + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let frame = submit_frame(&bucket, vec![bytes]);
        sent_at.push((hash, Instant::now()));
        sink.send(frame).await?;
    }
    tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .map_err(|_| anyhow!("the member's acks did not all come within 120 s"))???;
    let flood = tokio::time::timeout(Duration::from_secs(120), flood_task)
        .await
        .map_err(|_| anyhow!("the flood was not answered within 120 s"))???;
    let server_log = if debug {
        server.log_tail(5_000)
    } else {
        String::new()
    };
    drop(server);

    let acks = acks.lock().map_err(|_| anyhow!("poisoned"))?;
    let mut all = Vec::new();
    let mut during = Vec::new();
    for (hash, sent) in &sent_at {
        let Some(at) = acks.get(hash) else {
            bail!("a member message was never acked");
        };
        let ms = at.saturating_duration_since(*sent).as_secs_f64() * 1000.0;
        all.push(ms);
        if let (Some(s), Some(e)) = (flood.started, flood.ended) {
            if *sent >= s && *sent <= e {
                during.push(ms);
            }
        }
    }
    if debug {
        debug_report(t0, t0_ms, &sent_at, &acks, &flood, &server_log);
    }
    all.sort_by(f64::total_cmp);
    during.sort_by(f64::total_cmp);
    Ok(Run {
        backend: match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        scenario: scenario.to_owned(),
        sent: sent_at.len(),
        acked: all.len(),
        ack_p50_ms: percentile(&all, 50.0),
        ack_p99_ms: percentile(&all, 99.0),
        ack_max_ms: all.last().copied().unwrap_or(f64::NAN),
        during_flood: during.len(),
        during_flood_p50_ms: percentile(&during, 50.0),
        during_flood_max_ms: during.last().copied().unwrap_or(f64::NAN),
        flood_changes: flood.changes,
        flood_rejected: flood.rejected,
        flood_rate_limited: flood.rate_limited,
        flood_acked: flood.acked,
        flood_other: flood.other,
        flood_s: match (flood.started, flood.ended) {
            (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
            _ => 0.0,
        },
    })
}

/// `FLOOD_DEBUG`: where the slow acks fall (ms from the member's first message, and the
/// wall clock to compare with the server's log), the flood's window, and the server's log
/// lines other than requests.
fn debug_report(
    t0: Instant,
    t0_ms: i64,
    sent_at: &[([u8; 32], Instant)],
    acks: &HashMap<[u8; 32], Instant>,
    flood: &FloodResult,
    server_log: &str,
) {
    let clock = |at: Instant| {
        let ms = t0_ms + at.saturating_duration_since(t0).as_millis() as i64;
        let day = ms.rem_euclid(86_400_000);
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            day / 3_600_000,
            day / 60_000 % 60,
            day / 1000 % 60,
            day % 1000
        )
    };
    let offset = |at: Instant| at.saturating_duration_since(t0).as_secs_f64() * 1000.0;
    if let (Some(s), Some(e)) = (flood.started, flood.ended) {
        eprintln!(
            "flood: {:.0}-{:.0} ms ({} - {})",
            offset(s),
            offset(e),
            clock(s),
            clock(e)
        );
    }
    let mut lat: Vec<(f64, usize, Instant)> = sent_at
        .iter()
        .enumerate()
        .filter_map(|(i, (h, sent))| {
            let at = acks.get(h)?;
            Some((
                at.saturating_duration_since(*sent).as_secs_f64() * 1000.0,
                i,
                *sent,
            ))
        })
        .collect();
    lat.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (ms, i, sent) in lat.iter().take(5) {
        eprintln!(
            "slow ack: message {i} sent at {:.0} ms ({}): {ms:.1} ms",
            offset(*sent),
            clock(*sent)
        );
    }
    let noted = ["WARN", "ERROR", "slow commit", "audit", "rejected"];
    for line in server_log
        .lines()
        .filter(|l| noted.iter().any(|n| l.contains(n)))
    {
        eprintln!("  server: {line}");
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for name in &args.backends {
        let backend: Backend = name.parse()?;
        for _ in 0..args.repeat {
            for scenario in &args.scenarios {
                eprintln!("flood: {name} {scenario} ...");
                let run = run_one(&args, backend, scenario).await?;
                let line = serde_json::to_string(&run)?;
                println!("{line}");
                if let Some(path) = &args.json {
                    append_line(path, &line)?;
                }
                runs.push(run);
            }
        }
    }
    println!();
    println!(
        "{:<9} {:<9} {:>6} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>6} {:>7}",
        "backend",
        "scenario",
        "acked",
        "p50 ms",
        "p99 ms",
        "max ms",
        "during",
        "dur p50",
        "dur max",
        "rejected",
        "limited",
        "acked",
        "flood s"
    );
    for r in &runs {
        println!(
            "{:<9} {:<9} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>9.1} {:>9.1} {:>8} {:>8} {:>6} {:>7.2}",
            r.backend,
            r.scenario,
            r.acked,
            r.ack_p50_ms,
            r.ack_p99_ms,
            r.ack_max_ms,
            r.during_flood,
            r.during_flood_p50_ms,
            r.during_flood_max_ms,
            r.flood_rejected,
            r.flood_rate_limited,
            r.flood_acked,
            r.flood_s
        );
    }
    // The verdict: each flooded run's p99 against the median baseline p99 of its backend.
    for backend in ["sqlite", "postgres"] {
        let mut base: Vec<f64> = runs
            .iter()
            .filter(|r| r.backend == backend && r.scenario == "baseline")
            .map(|r| r.ack_p99_ms)
            .collect();
        if base.is_empty() {
            continue;
        }
        base.sort_by(f64::total_cmp);
        let base = base[base.len() / 2];
        for r in runs
            .iter()
            .filter(|r| r.backend == backend && r.scenario != "baseline")
        {
            let added = r.ack_p99_ms - base;
            let verdict = if added <= TARGET_ADDED_P99_MS {
                "met"
            } else {
                "MISSED"
            };
            println!(
                "{backend} {}: p99 {:.1} ms vs baseline {base:.1} ms: +{added:.1} ms (target ≤ {TARGET_ADDED_P99_MS} ms): {verdict}",
                r.scenario, r.ack_p99_ms
            );
            if r.flood_acked > 0 {
                println!("  {} flood changes were ACKED", r.flood_acked);
            }
        }
    }
    Ok(())
}
