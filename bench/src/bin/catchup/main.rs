//! `catchup`: how long a client that missed many messages takes to catch up, and how many bytes
//! cross the wire (10,000 missed messages: targets ≤ 150 ms and ≤ 1 MB; docs/BENCHMARKS.md,
//! "Client catch-up").
//!
//! Against the release `confab-server` on 127.0.0.1 (SQLite, or a fresh Postgres database):
//! writers create a group and post `--before` messages; the reader — core's `ClientEngine`
//! with `confab-client`'s `SqliteStore` (the store its README gives apps), as
//! `client/src/host.rs` runs it — follows the
//! conversation and today's bucket, then goes offline; the writers post `--messages` more
//! into the same bucket (acked, so durable). Each run then restores the reader from a copy
//! of its store, reconnects it, and measures from the welcome to the moment the engine has
//! applied the `synced` of both documents (every store write done): wall time, bytes of
//! every WebSocket frame in both directions (payload plus frame header), frames. The
//! reader's timeline is checked afterwards: every message, in server order, none pending.
//!
//! `--conversations N` gives the reader N such conversations, each with `--before` seen and
//! `--messages` missed (a phone back after a week: `--conversations 50 --messages 500`,
//! target ≤ 1 s), caught up on one connection.
//!
//! `--modes plain,encrypted` (the default runs both, in that order, per backend): in an
//! encrypted run the conversation is end-to-end encrypted, every message is sealed by its
//! writer's device into the MLS group (`confab_bench::sealed`), the reader's engine has its
//! device in the group (`attach_device`, as `confab_client` gives it) and opens every message
//! as it catches up; the check afterwards also wants every body read. The encrypted time is
//! compared with the plaintext time of the same backend (target ≤ 2×).
//!
//! `cargo xtask bench catchup` builds and runs it; it prints a table and one JSON line per
//! backend and mode (appended to `--json`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use confab_client::SqliteStore;
use confab_core::automerge::ActorId;
use confab_core::client::host::carry_out_stored;
use confab_core::client::{ClientConfig, ClientEngine, LocalStore, Output, StoreOp, DUE_NOW};
use confab_core::ids::{AccountId, Bucket, ConvId, DeviceId, DocId, TenantId};
use confab_core::limits::BUCKET_TARGET_MESSAGES;
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use confab_testkit::server::{append_line, now_ms, token, Backend, TestServer};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

mod report;
mod writers;

use report::{summary, target_bytes, target_ms};
use writers::Writers;

const TENANT: &str = "acme";
const READER: &str = "reader";
/// The reader's device: its `hello`, and its MLS identity in an encrypted conversation.
const READER_DEVICE: &str = "catchup";
#[derive(Parser, Debug)]
#[command(about = "Catch-up of a client that missed many messages: time and bytes on the wire")]
struct Args {
    /// The release server binary.
    #[arg(long)]
    server_bin: PathBuf,
    /// Messages the reader misses while offline.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Messages the reader already has before it goes offline.
    #[arg(long, default_value_t = 100)]
    before: usize,
    /// Conversations the reader follows, each with `--before` seen and `--messages` missed.
    #[arg(long, default_value_t = 1)]
    conversations: usize,
    /// Accounts that write (round robin).
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Characters per message body.
    #[arg(long, default_value_t = 40)]
    body_chars: usize,
    /// Measured catch-ups per backend (each from the same offline state).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// `plain` (in the clear), `encrypted` (sealed into the conversation's MLS group, opened
    /// by the reader's device) or both, in that order per backend.
    #[arg(long, value_delimiter = ',', default_value = "plain,encrypted")]
    modes: Vec<String>,
    /// `sqlite`, `postgres` or both.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Append one JSON line per backend to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn tenant() -> TenantId {
    TenantId::new(TENANT).expect("static tenant id")
}

fn account(name: &str) -> Result<AccountId> {
    Ok(AccountId::new(name)?)
}

/// Bytes a WebSocket frame of `payload` bytes takes (header: 2, +2 or +8 for the length,
/// +4 mask from a client).
fn ws_bytes(payload: usize, from_client: bool) -> u64 {
    let len = match payload {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    (payload + len + if from_client { 4 } else { 0 }) as u64
}

/// Carries out the engine's outputs: store writes and loads now, frames returned to send.
fn drain(engine: &mut ClientEngine, store: &SqliteStore) -> Result<Vec<ClientFrame>> {
    let outputs = carry_out_stored(engine, store).map_err(|e| anyhow!("{e}"))?;
    Ok(outputs
        .into_iter()
        .filter_map(|output| match output {
            Output::Send(frame) => Some(frame),
            _ => None,
        })
        .collect())
}

/// The reader's store in `dir` (made if missing).
fn open_store(dir: &Path) -> Result<SqliteStore> {
    std::fs::create_dir_all(dir)?;
    SqliteStore::open(dir.join("store.db")).map_err(|e| anyhow!("{e}"))
}

/// The reader: restored from its store, so every run starts from the same offline state.
async fn restore_reader(dir: &Path) -> Result<(ClientEngine, SqliteStore)> {
    let store = open_store(dir)?;
    let mut engine = ClientEngine::restoring(reader_config()?);
    drain(&mut engine, &store)?;
    attach_device(&mut engine, &store).await?;
    Ok((engine, store))
}

fn reader_config() -> Result<ClientConfig> {
    Ok(ClientConfig {
        tenant: tenant(),
        account: account(READER)?,
        actor: ActorId::from(&[0x7e; 16][..]),
    })
}

/// Gives the engine the reader's MLS device when its store holds one (an encrypted run),
/// as `confab_client::Client::start_device` does.
async fn attach_device(engine: &mut ClientEngine, store: &SqliteStore) -> Result<()> {
    let key = confab_core::client::HostKey::Mls.key();
    let saved = store.scan(key).await.map_err(|e| anyhow!("{e}"))?;
    if !saved.is_empty() {
        engine
            .attach_device(DeviceId::new(READER_DEVICE)?, &saved)
            .map_err(|e| anyhow!("the reader's MLS device: {e}"))?;
        drain(engine, store)?;
    }
    Ok(())
}

/// What one catch-up cost.
#[derive(Debug, Clone, Copy)]
struct Measure {
    ms: f64,
    bytes_in: u64,
    bytes_out: u64,
    frames_in: usize,
    snapshots: usize,
    /// From the welcome until the last snapshot or changes frame arrived (the server's part
    /// and the wire's; the rest is the client's).
    server_ms: f64,
    /// The engine handling the frames (decode excluded), and carrying out its store writes.
    apply_ms: f64,
    store_ms: f64,
    /// After `ms`: the tick that brings the device's search index up to the caught-up
    /// messages, with its store writes (a host runs it once the frames are handled).
    index_ms: f64,
}

/// Connects the reader, lets the engine subscribe from its cursors and runs until every
/// document in `docs` is synced. Returns the cost from the welcome on.
async fn catch_up(
    url: &str,
    engine: &mut ClientEngine,
    store: &SqliteStore,
    docs: &[DocId],
) -> Result<Measure> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .context("websocket connect")?;
    let hello = ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        token: token(TENANT, READER, false, 3600),
        device: READER_DEVICE.into(),
    };
    ws.send(Message::Binary(encode_client(&hello).into()))
        .await?;
    let mut measure = Measure {
        ms: 0.0,
        bytes_in: 0,
        bytes_out: 0,
        frames_in: 0,
        snapshots: 0,
        server_ms: 0.0,
        apply_ms: 0.0,
        store_ms: 0.0,
        index_ms: 0.0,
    };
    let mut waiting: Vec<String> = docs.iter().map(ToString::to_string).collect();
    let mut started: Option<Instant> = None;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .map_err(|_| anyhow!("no frame within 60 s (still waiting for {waiting:?})"))?;
        let bytes = match message {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(frame))) => bail!("connection closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("websocket: {e}"),
            None => bail!("connection ended"),
        };
        let frame = decode_server(&bytes, usize::MAX).map_err(|e| anyhow!("{e}"))?;
        if started.is_some() {
            measure.bytes_in += ws_bytes(bytes.len(), false);
            measure.frames_in += 1;
        }
        let synced = match &frame {
            ServerFrame::Welcome { .. } => {
                started = Some(Instant::now());
                None
            }
            ServerFrame::Synced { doc, .. } => Some(doc.clone()),
            ServerFrame::Snapshot { .. } | ServerFrame::Changes { .. } => {
                if let Some(started) = started {
                    measure.server_ms = started.elapsed().as_secs_f64() * 1000.0;
                }
                if matches!(frame, ServerFrame::Snapshot { .. }) {
                    measure.snapshots += 1;
                }
                None
            }
            ServerFrame::Error { code, message, .. } => bail!("server error {code}: {message}"),
            _ => None,
        };
        let applying = Instant::now();
        engine.receive(frame, now_ms());
        let storing = Instant::now();
        let frames = drain(engine, store)?;
        if started.is_some() {
            measure.apply_ms += (storing - applying).as_secs_f64() * 1000.0;
            measure.store_ms += storing.elapsed().as_secs_f64() * 1000.0;
        }
        for out in frames {
            let bytes = encode_client(&out);
            measure.bytes_out += ws_bytes(bytes.len(), true);
            ws.send(Message::Binary(bytes.into())).await?;
        }
        if let Some(doc) = synced {
            waiting.retain(|d| *d != doc);
            if waiting.is_empty() {
                break;
            }
        }
    }
    let started = started.ok_or_else(|| anyhow!("never welcomed"))?;
    measure.ms = started.elapsed().as_secs_f64() * 1000.0;
    let indexing = Instant::now();
    while engine.next_wakeup() == Some(DUE_NOW) {
        engine.tick(now_ms());
        drain(engine, store)?;
    }
    measure.index_ms = indexing.elapsed().as_secs_f64() * 1000.0;
    engine.disconnected();
    drain(engine, store)?;
    let _ = ws.close(None).await;
    Ok(measure)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// One conversation of the reader's: its documents.
struct Followed {
    conv: ConvId,
    /// The conversation document and the parts the reader had before going offline.
    before: Vec<DocId>,
    /// The conversation document and every part.
    all: Vec<DocId>,
    parts: Vec<DocId>,
}

async fn run_backend(args: &Args, backend: Backend, encrypted: bool) -> Result<serde_json::Value> {
    let server = TestServer::start_bin(&args.server_bin, backend, &[]).await?;
    let url = server.ws_url();
    let now = now_ms();
    let day = now.div_euclid(DEFAULT_BUCKET_MS);
    // Every message in today's period, in the past (at most 1 ms apart), in parts of
    // BUCKET_TARGET_MESSAGES.
    let total = args.before + args.messages;
    let n_convs = args.conversations.max(1);
    let mut convs = Vec::new();
    for i in 0..n_convs {
        let conv = if n_convs == 1 {
            ConvId::new("catchup")?
        } else {
            ConvId::new(format!("catchup-{i}"))?
        };
        let conv_doc = DocId::conv(&tenant(), &conv);
        let parts: Vec<DocId> = (0..total.div_ceil(BUCKET_TARGET_MESSAGES).max(1))
            .map(|k| DocId::msgs(&tenant(), &conv, Bucket::new(day, k as u32)))
            .collect();
        let before_parts = args.before.div_ceil(BUCKET_TARGET_MESSAGES).max(1);
        let mut before = vec![conv_doc.clone()];
        before.extend(parts[..before_parts].iter().cloned());
        let mut all = vec![conv_doc];
        all.extend(parts.iter().cloned());
        convs.push(Followed {
            conv,
            before,
            all,
            parts,
        });
    }
    let first_at = (now - total as i64 - 1_000).max(day * DEFAULT_BUCKET_MS);

    let mut writers = Writers::start(&server, args.writers).await?;
    for (i, c) in convs.iter().enumerate() {
        writers.create_group(i, &c.conv, encrypted).await?;
        writers
            .post(i, &c.parts, first_at, args.before, args.body_chars)
            .await?;
    }

    // The reader follows each conversation and today's bucket, then goes offline.
    let base = std::env::temp_dir().join(format!("confab-catchup-{}", std::process::id()));
    let offline = base.join("offline");
    let _ = std::fs::remove_dir_all(&base);
    {
        let store = open_store(&offline)?;
        let mut engine = ClientEngine::new(reader_config()?);
        // In an encrypted run its device is in the group from the first commit.
        if let Some((key, saved)) = writers.reader_saved(0)? {
            store
                .write(vec![StoreOp::Put(key.to_owned(), saved)])
                .await
                .map_err(|e| anyhow!("{e}"))?;
            attach_device(&mut engine, &store).await?;
        }
        let followed: Vec<DocId> = convs.iter().flat_map(|c| c.before.clone()).collect();
        // Opening indexes them in the store (written by the first drain).
        for doc in &followed {
            engine.open(doc).map_err(|e| anyhow!("{e}"))?;
        }
        catch_up(&url, &mut engine, &store, &followed).await?;
        for c in &convs {
            let had = engine.timeline(&c.conv).len();
            if had != args.before {
                bail!(
                    "the reader has {had} messages of {} before going offline, expected {}",
                    c.conv,
                    args.before
                );
            }
        }
    }

    let write_started = Instant::now();
    for (i, c) in convs.iter().enumerate() {
        writers
            .post(
                i,
                &c.parts,
                first_at + args.before as i64,
                args.messages,
                args.body_chars,
            )
            .await?;
    }
    let write_s = write_started.elapsed().as_secs_f64();
    let references: Vec<Vec<(String, String)>> =
        (0..convs.len()).map(|i| writers.server_order(i)).collect();
    if let Some(short) = references.iter().find(|r| r.len() != total) {
        bail!(
            "the server holds {} messages of a conversation, expected {total}",
            short.len()
        );
    }
    let all: Vec<DocId> = convs.iter().flat_map(|c| c.all.clone()).collect();

    let mut results = Vec::new();
    for run in 0..args.runs.max(1) {
        let dir = base.join(format!("run{run}"));
        copy_dir(&offline, &dir)?;
        let (mut engine, store) = restore_reader(&dir).await?;
        // The parts written while it was away: the newest is followed and the others paged
        // by a real client; here all of them are caught up, to compare with the past runs.
        for doc in &all {
            engine.open(doc).map_err(|e| anyhow!("{e}"))?;
        }
        let m = catch_up(&url, &mut engine, &store, &all).await?;
        // Correct and complete: every message, server order, its body read (opened, when
        // sealed), nothing pending.
        for (c, reference) in convs.iter().zip(&references) {
            let timeline = engine.timeline(&c.conv);
            let ids: Vec<(String, String)> = timeline
                .iter()
                .map(|i| (i.message.id.to_string(), i.message.body.clone()))
                .collect();
            if ids != *reference {
                let first_diff = ids.iter().zip(reference).position(|(a, b)| a != b);
                let at = first_diff.unwrap_or(ids.len().min(reference.len()));
                bail!(
                    "run {run}: the reader's timeline of {} ({} messages) differs from the server order ({}), first at {at}: {:?} ({:?}), expected {:?}",
                    c.conv,
                    ids.len(),
                    reference.len(),
                    ids.get(at),
                    timeline.get(at).and_then(|i| i.undecryptable.clone()),
                    reference.get(at)
                );
            }
            if timeline.iter().any(|i| i.pending || i.seq.is_none()) {
                bail!("run {run}: a caught-up message is pending or has no seq");
            }
            if let Some(item) = timeline.iter().find(|i| i.undecryptable.is_some()) {
                bail!(
                    "run {run}: message {} was not opened: {:?}",
                    item.message.id,
                    item.undecryptable
                );
            }
        }
        drop(store);
        // The caught-up state survives a restart (older parts load when opened, as a
        // client scrolling back opens them).
        let (mut engine, store) = restore_reader(&dir).await?;
        for doc in &all {
            engine.open(doc).map_err(|e| anyhow!("{e}"))?;
        }
        drain(&mut engine, &store)?;
        for c in &convs {
            let kept = engine.timeline(&c.conv).len();
            if kept != total {
                bail!(
                    "run {run}: after a restart the reader has {kept} messages of {}",
                    c.conv
                );
            }
        }
        eprintln!(
            "  {} run {run}: {:.1} ms (last catch-up frame in at {:.1} ms; engine {:.1} ms, store {:.1} ms), index after it {:.1} ms, {} bytes in, {} bytes out, {} frames in{}",
            backend_name(backend),
            m.ms,
            m.server_ms,
            m.apply_ms,
            m.store_ms,
            m.index_ms,
            m.bytes_in,
            m.bytes_out,
            m.frames_in,
            if m.snapshots > 0 { " (snapshot)" } else { "" }
        );
        results.push(m);
    }
    let _ = std::fs::remove_dir_all(&base);

    let mut ms: Vec<f64> = results.iter().map(|m| m.ms).collect();
    let mut server_ms: Vec<f64> = results.iter().map(|m| m.server_ms).collect();
    let median_server_ms = median(&mut server_ms);
    let mut apply_ms: Vec<f64> = results.iter().map(|m| m.apply_ms).collect();
    let mut store_ms: Vec<f64> = results.iter().map(|m| m.store_ms).collect();
    let (median_apply_ms, median_store_ms) = (median(&mut apply_ms), median(&mut store_ms));
    let mut index_ms: Vec<f64> = results.iter().map(|m| m.index_ms).collect();
    let median_index_ms = median(&mut index_ms);
    let mut bytes: Vec<f64> = results.iter().map(|m| m.bytes_in as f64).collect();
    let median_ms = median(&mut ms);
    let median_in = median(&mut bytes) as u64;
    let out = results.last().map_or(0, |m| m.bytes_out);
    let frames = results.last().map_or(0, |m| m.frames_in);
    let snapshots = results.last().map_or(0, |m| m.snapshots);
    Ok(serde_json::json!({
        "bench": "catchup",
        "backend": backend_name(backend),
        "mode": if encrypted { "encrypted" } else { "plain" },
        "conversations": n_convs,
        "missed": args.messages,
        "before": args.before,
        "writers": args.writers,
        "body_chars": args.body_chars,
        "runs": results.len(),
        "ms": results.iter().map(|m| (m.ms * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "median_ms": (median_ms * 10.0).round() / 10.0,
        "min_ms": (ms.first().copied().unwrap_or(f64::NAN) * 10.0).round() / 10.0,
        "median_last_frame_ms": (median_server_ms * 10.0).round() / 10.0,
        "median_engine_ms": (median_apply_ms * 10.0).round() / 10.0,
        "median_store_ms": (median_store_ms * 10.0).round() / 10.0,
        "median_index_ms": (median_index_ms * 10.0).round() / 10.0,
        "bytes_in": median_in,
        "bytes_out": out,
        "frames_in": frames,
        "snapshot_frames": snapshots,
        "write_s": (write_s * 100.0).round() / 100.0,
        "target_ms": target_ms(n_convs),
        "meets_time": median_ms <= target_ms(n_convs),
        "meets_bytes": median_in + out <= target_bytes(n_convs * args.messages),
    }))
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.server_bin.exists() {
        bail!("no server binary at {}", args.server_bin.display());
    }
    eprintln!(
        "catch-up of {} conversation(s) with {} missed messages each ({} already seen, {} writers, {}-char bodies), {} runs per backend",
        args.conversations.max(1), args.messages, args.before, args.writers, args.body_chars, args.runs
    );
    let mut modes = Vec::new();
    for mode in &args.modes {
        match mode.as_str() {
            "plain" => modes.push(false),
            "encrypted" => modes.push(true),
            other => bail!("unknown mode {other:?} (plain, encrypted)"),
        }
    }
    if modes.contains(&true) && args.conversations > 1 {
        bail!("the encrypted catch-up follows one conversation (one MLS group)");
    }
    let mut rows = Vec::new();
    for name in &args.backends {
        let backend: Backend = name.parse()?;
        for &encrypted in &modes {
            let row = run_backend(&args, backend, encrypted)
                .await
                .with_context(|| format!("catch-up on {name}"))?;
            println!("{row}");
            if let Some(path) = &args.json {
                append_line(path, &row.to_string())?;
            }
            rows.push(row);
        }
    }
    summary(&args, &rows);
    Ok(())
}
