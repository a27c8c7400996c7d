//! `catchup`: how long a client that missed many messages takes to catch up, and how many bytes
//! cross the wire (10,000 missed messages: targets ≤ 150 ms and ≤ 1 MB; docs/BENCHMARKS.md,
//! "Client catch-up").
//!
//! Against the release `confab-server` on 127.0.0.1 (SQLite, or a fresh Postgres database):
//! writers create a group and post `--before` messages; the reader — core's `ClientEngine`
//! with `confab-client`'s `FileStore`, as `client/src/host.rs` runs it — follows the
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
//! `cargo xtask bench catchup` builds and runs it; it prints a table and one JSON line per
//! backend (appended to `--json`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use confab_client::FileStore;
use confab_core::automerge::ActorId;
use confab_core::client::host::carry_out_stored;
use confab_core::client::{ClientConfig, ClientEngine, Output};
use confab_core::doc::write;
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::limits::BUCKET_TARGET_MESSAGES;
use confab_core::model::conversation::{ConvKind, Info, Member, Role, Settings, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use confab_testkit::server::{append_line, now_ms, token, Backend, TestServer};
use confab_testkit::text::{body, message_id, Rng};
use confab_testkit::wire::Client;
use confab_testkit::Answer;
use confab_testkit::Device;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const TENANT: &str = "acme";
const READER: &str = "reader";
/// The time target for 10,000 missed messages in one conversation.
const TARGET_MS: f64 = 150.0;
/// The target for a phone back after a week: 50 conversations, 500 missed each.
const WEEK_TARGET_MS: f64 = 1_000.0;
/// 1 MB per 10,000 missed messages.
const TARGET_BYTES_PER_MESSAGE: u64 = 100;

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

/// The writers: one connection and one device each.
struct Writers {
    clients: Vec<Client>,
    devices: Vec<Device>,
    rng: Rng,
    /// Per conversation (by index), what was posted.
    progress: Vec<Progress>,
}

/// What the writers posted into one conversation.
#[derive(Default, Clone)]
struct Progress {
    written: usize,
    /// ((part, seq), message id) of every acked message: the server's order.
    acked: Vec<((usize, u64), String)>,
}

impl Writers {
    async fn start(server: &TestServer, count: usize) -> Result<Self> {
        let mut clients = Vec::new();
        let mut devices = Vec::new();
        for i in 0..count.max(1) {
            let name = format!("w{i}");
            clients
                .push(Client::connect(&server.ws_url(), &token(TENANT, &name, false, 3600)).await?);
            devices.push(Device::new(&name, 1));
        }
        Ok(Writers {
            clients,
            devices,
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            progress: Vec::new(),
        })
    }

    async fn create_group(&mut self, conv: &ConvId) -> Result<()> {
        let owner = account(&self.devices[0].account)?;
        let mut members = vec![Member::new(owner.clone(), Role::Owner)];
        let invited = self.devices.iter().skip(1).map(|d| d.account.as_str());
        for name in invited.chain([READER]) {
            let mut member = Member::new(account(name)?, Role::Member);
            member.invited_by = Some(owner.clone());
            members.push(member);
        }
        let spec = write::CreateConv {
            kind: ConvKind::Group,
            created_by: owner,
            created_at: now_ms(),
            bucket_ms: DEFAULT_BUCKET_MS,
            thread: None,
            info: Info {
                title: Some("catch-up".into()),
                ..Info::default()
            },
            settings: Settings::defaults_for(ConvKind::Group),
            members,
            encrypted: false,
        };
        let doc = DocId::conv(&tenant(), conv);
        let change = self.devices[0].write(&doc, |d, t| write::create_conversation(d, t, &spec))?;
        expect_acks(self.clients[0].submit(&doc, &[change]).await?)
    }

    /// Posts `count` messages into the bucket `parts` (round robin over writers; the n-th
    /// message of the run goes to part n / BUCKET_TARGET_MESSAGES, as writers following the
    /// conversation fill it; up to 500 per submit), each acked before this returns. A part is
    /// written to the end before the next one.
    async fn post(
        &mut self,
        conv: usize,
        parts: &[DocId],
        first_at: i64,
        count: usize,
        chars: usize,
    ) -> Result<()> {
        let writers = self.devices.len();
        if self.progress.len() <= conv {
            self.progress.resize(conv + 1, Progress::default());
        }
        let first = self.progress[conv].written;
        let mut i = 0;
        while i < count {
            let part = (first + i) / BUCKET_TARGET_MESSAGES;
            let doc = parts
                .get(part)
                .ok_or_else(|| anyhow!("message {} falls past the last part", first + i))?;
            let end = count.min((part + 1) * BUCKET_TARGET_MESSAGES - first);
            let mut per_writer: Vec<Vec<(confab_core::automerge::Change, String)>> =
                vec![Vec::new(); writers];
            for k in i..end {
                let w = (first + k) % writers;
                let at = first_at + k as i64;
                let id = MessageId::new(message_id(&mut self.rng, at))?;
                let author = account(&self.devices[w].account)?;
                let text = id.to_string();
                let message = NewMessage::text(id, author, body(&mut self.rng, chars), at);
                let change =
                    self.devices[w].write(doc, |d, t| write::post_message(d, t, &message))?;
                per_writer[w].push((change, text));
            }
            for (w, changes) in per_writer.iter().enumerate() {
                for chunk in changes.chunks(500) {
                    let batch: Vec<_> = chunk.iter().map(|(c, _)| c.clone()).collect();
                    let answers = self.clients[w].submit(doc, &batch).await?;
                    expect_acks(answers.clone())?;
                    for (answer, (_, id)) in answers.iter().zip(chunk) {
                        if let Answer::Ack { seq, .. } = answer {
                            self.progress[conv].acked.push(((part, *seq), id.clone()));
                        }
                    }
                }
            }
            i = end;
        }
        self.progress[conv].written += count;
        Ok(())
    }
}

fn expect_acks(answers: Vec<Answer>) -> Result<()> {
    match answers.iter().find(|a| !matches!(a, Answer::Ack { .. })) {
        Some(other) => bail!("a writer's change was not accepted: {other:?}"),
        None => Ok(()),
    }
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
fn drain(engine: &mut ClientEngine, store: &FileStore) -> Result<Vec<ClientFrame>> {
    let outputs = carry_out_stored(engine, store).map_err(|e| anyhow!("{e}"))?;
    Ok(outputs
        .into_iter()
        .filter_map(|output| match output {
            Output::Send(frame) => Some(frame),
            _ => None,
        })
        .collect())
}

/// The reader: restored from its store, so every run starts from the same offline state.
fn restore_reader(dir: &Path) -> Result<(ClientEngine, FileStore)> {
    let store = FileStore::open(dir).map_err(|e| anyhow!("{e}"))?;
    let mut engine = ClientEngine::restoring(ClientConfig {
        tenant: tenant(),
        account: account(READER)?,
        actor: ActorId::from(&[0x7e; 16][..]),
    });
    drain(&mut engine, &store)?;
    Ok((engine, store))
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
}

/// Connects the reader, lets the engine subscribe from its cursors and runs until every
/// document in `docs` is synced. Returns the cost from the welcome on.
async fn catch_up(
    url: &str,
    engine: &mut ClientEngine,
    store: &FileStore,
    docs: &[DocId],
) -> Result<Measure> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .context("websocket connect")?;
    let hello = ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        token: token(TENANT, READER, false, 3600),
        device: "catchup".into(),
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
    engine.disconnected();
    drain(engine, store)?;
    let _ = ws.close(None).await;
    Ok(measure)
}

/// The server order of conversation `conv`'s messages: ids by the seqs their acks carried.
fn server_order(writers: &Writers, conv: usize) -> Vec<String> {
    let mut acked = writers
        .progress
        .get(conv)
        .map(|p| p.acked.clone())
        .unwrap_or_default();
    acked.sort();
    acked.into_iter().map(|(_, id)| id).collect()
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

async fn run_backend(args: &Args, backend: Backend) -> Result<serde_json::Value> {
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
        writers.create_group(&c.conv).await?;
        writers
            .post(i, &c.parts, first_at, args.before, args.body_chars)
            .await?;
    }

    // The reader follows each conversation and today's bucket, then goes offline.
    let base = std::env::temp_dir().join(format!("confab-catchup-{}", std::process::id()));
    let offline = base.join("offline");
    let _ = std::fs::remove_dir_all(&base);
    {
        let store = FileStore::open(&offline).map_err(|e| anyhow!("{e}"))?;
        let mut engine = ClientEngine::new(ClientConfig {
            tenant: tenant(),
            account: account(READER)?,
            actor: ActorId::from(&[0x7e; 16][..]),
        });
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
    let references: Vec<Vec<String>> = (0..convs.len())
        .map(|i| server_order(&writers, i))
        .collect();
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
        let (mut engine, store) = restore_reader(&dir)?;
        // The parts written while it was away: the newest is followed and the others paged
        // by a real client; here all of them are caught up, to compare with the past runs.
        for doc in &all {
            engine.open(doc).map_err(|e| anyhow!("{e}"))?;
        }
        let m = catch_up(&url, &mut engine, &store, &all).await?;
        // Correct and complete: every message, server order, nothing pending.
        for (c, reference) in convs.iter().zip(&references) {
            let timeline = engine.timeline(&c.conv);
            let ids: Vec<String> = timeline.iter().map(|i| i.message.id.to_string()).collect();
            if ids != *reference {
                let first_diff = ids.iter().zip(reference).position(|(a, b)| a != b);
                bail!(
                    "run {run}: the reader's timeline of {} ({} messages) differs from the server order ({}), first at {first_diff:?}",
                    c.conv,
                    ids.len(),
                    reference.len()
                );
            }
            if timeline.iter().any(|i| i.pending || i.seq.is_none()) {
                bail!("run {run}: a caught-up message is pending or has no seq");
            }
        }
        drop(store);
        // The caught-up state survives a restart (older parts load when opened, as a
        // client scrolling back opens them).
        let (mut engine, store) = restore_reader(&dir)?;
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
            "  {} run {run}: {:.1} ms (last catch-up frame in at {:.1} ms; engine {:.1} ms, store {:.1} ms), {} bytes in, {} bytes out, {} frames in{}",
            backend_name(backend),
            m.ms,
            m.server_ms,
            m.apply_ms,
            m.store_ms,
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
    let mut bytes: Vec<f64> = results.iter().map(|m| m.bytes_in as f64).collect();
    let median_ms = median(&mut ms);
    let median_in = median(&mut bytes) as u64;
    let out = results.last().map_or(0, |m| m.bytes_out);
    let frames = results.last().map_or(0, |m| m.frames_in);
    let snapshots = results.last().map_or(0, |m| m.snapshots);
    Ok(serde_json::json!({
        "bench": "catchup",
        "backend": backend_name(backend),
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

/// The time target: one conversation, or many after a week away.
fn target_ms(conversations: usize) -> f64 {
    if conversations > 1 {
        WEEK_TARGET_MS
    } else {
        TARGET_MS
    }
}

fn target_bytes(missed: usize) -> u64 {
    TARGET_BYTES_PER_MESSAGE * missed as u64
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
    let mut rows = Vec::new();
    for name in &args.backends {
        let backend: Backend = name.parse()?;
        let row = run_backend(&args, backend)
            .await
            .with_context(|| format!("catch-up on {name}"))?;
        println!("{row}");
        if let Some(path) = &args.json {
            append_line(path, &row.to_string())?;
        }
        rows.push(row);
    }
    println!();
    println!(
        "{:<9} {:>8} {:>10} {:>8} {:>12} {:>10} {:>7}",
        "backend", "missed", "median ms", "min ms", "bytes in", "bytes out", "frames"
    );
    let mut all_met = true;
    for row in &rows {
        let get = |k: &str| match row.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        println!(
            "{:<9} {:>8} {:>10} {:>8} {:>12} {:>10} {:>7}",
            get("backend"),
            get("missed"),
            get("median_ms"),
            get("min_ms"),
            get("bytes_in"),
            get("bytes_out"),
            get("frames_in"),
        );
        all_met &= get("meets_time") == "true" && get("meets_bytes") == "true";
    }
    let n_convs = args.conversations.max(1);
    println!(
        "targets ({}): ≤ {} ms and ≤ {} bytes: {}",
        if n_convs > 1 {
            "a phone back after a week"
        } else {
            "one conversation"
        },
        target_ms(n_convs),
        target_bytes(n_convs * args.messages),
        if all_met { "met" } else { "MISSED" }
    );
    Ok(())
}
