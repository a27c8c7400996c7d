//! `cut` (`cargo xtask bench cut`): cutting a message part's history (docs/STORAGE.md,
//! "Cutting a part's history"; docs/BENCHMARKS.md, "History cut").
//!
//! One run per backend on a fresh store, through the engine (the real acceptor, units, group
//! commit and store; no socket): a part of `--messages` messages, `--edited` percent of them
//! edited once, is cut while a writer reacts to its messages one change at a time, as a client
//! waiting for each ack does. A change the cut made stale is written again by the writer on
//! the new generation (loaded from the store), as the client engine does; its ack time counts
//! from its first submit. Measured: the cut's time (rebuild and install, what the unit's
//! writers wait for), the writer's acks during the cut (max and p99 of the ones answered
//! while it ran, and p99 over the run), and the stored bytes per message before and after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use confab_core::automerge::Automerge;
use confab_core::doc::write;
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_server::engine::{Engine, EngineConfig, SubmitOutcome};
use confab_server::maintenance::open_store;
use confab_server::metrics::Metrics;
use confab_testkit::fixture::ConvFixture;
use confab_testkit::pg::{self, Template};
use confab_testkit::Device;

#[derive(Parser, Debug)]
#[command(name = "cut", about = "Cutting a message part's history")]
struct Args {
    /// Backends: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    #[arg(long, default_value_t = 2_000)]
    messages: usize,
    /// Percent of the messages edited once.
    #[arg(long, default_value_t = 10)]
    edited: usize,
    /// Cuts measured per backend (each after more edits).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn now_ms() -> i64 {
    confab_server::engine::now_ms()
}

fn acked(outcomes: &[SubmitOutcome]) -> Result<()> {
    match outcomes
        .iter()
        .find(|o| !matches!(o, SubmitOutcome::Ack { .. }))
    {
        None => Ok(()),
        Some(other) => bail!("not acked: {other:?}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// The document the store holds: its snapshot and the changes after it.
async fn stored_doc(store: &dyn confab_server::store::Store, doc: &DocId) -> Result<Automerge> {
    let stored = store.load_doc(doc).await?;
    let mut out = match &stored.snapshot {
        Some(s) => Automerge::load(s)?,
        None => confab_core::doc::genesis(doc)?,
    };
    let changes = stored
        .changes
        .iter()
        .map(|(_, b)| confab_core::automerge::Change::try_from(&b[..]))
        .collect::<Result<Vec<_>, _>>()?;
    out.apply_changes(changes)?;
    Ok(out)
}

/// The writer: one reaction at a time, each written again on the new generation if the cut
/// made it stale. Returns (when it was answered, how long its ack took).
async fn writer(
    engine: Engine,
    mut dev: Device,
    bucket: DocId,
    messages: usize,
    stop: Arc<tokio::sync::Notify>,
) -> Result<Vec<(Instant, Duration)>> {
    let author = Author::user(dev.account_id());
    let store = engine.store().clone();
    let mut out = Vec::new();
    let stopped = stop.notified();
    tokio::pin!(stopped);
    for i in 0.. {
        if futures_util::FutureExt::now_or_never(&mut stopped).is_some() {
            break;
        }
        let message = MessageId::new(format!("m{}", i % messages))?;
        let emoji = format!(":e{}:", i / messages);
        let started = Instant::now();
        loop {
            let account = dev.account_id();
            let change = dev.write(&bucket, |d, t| {
                write::react(d, t, now_ms(), &message, &account, &emoji, true)
            })?;
            let answer = engine
                .submit(
                    bucket.clone(),
                    author.clone(),
                    vec![change.raw_bytes().to_vec()],
                )
                .await;
            match answer.as_slice() {
                [SubmitOutcome::Ack { .. }] => break,
                [SubmitOutcome::Reject { code, .. }] if code.as_str() == "missing_dependency" => {
                    // Built on the generation the cut replaced: load the new one.
                    let doc = stored_doc(store.as_ref(), &bucket).await?;
                    dev.docs
                        .insert(bucket.clone(), doc.with_actor(dev.actor.clone()));
                }
                other => bail!("the writer's reaction: {other:?}"),
            }
        }
        out.push((Instant::now(), started.elapsed()));
    }
    Ok(out)
}

async fn run(backend: &str, args: &Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("confab-bench-cut-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let url = match backend {
        "postgres" => Some(pg::fresh_database("confab_e2e", Template::Default).await?),
        "sqlite" => None,
        other => bail!("unknown backend {other}"),
    };
    let store = open_store(url.as_deref(), &dir).await?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(Metrics::new()),
        EngineConfig {
            // Cuts run when asked, not on the schedule.
            cut_after_delete: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
    );
    let mut alice = Device::new("alice", 1);
    let author = Author::user(alice.account_id());
    let conv = ConvId::new("cut-bench")?;
    let at = now_ms();
    let (conv_doc, create) = ConvFixture::group(alice.account_id(), at)
        .member(
            "bob".parse()?,
            confab_core::model::conversation::Role::Member,
        )
        .write(&mut alice, &conv)?;
    acked(
        &engine
            .submit(conv_doc, author.clone(), vec![create.raw_bytes().to_vec()])
            .await,
    )?;
    let bucket = confab_testkit::ids::bucket_doc(&conv, at);
    let body = "a message of about the length people write in a chat, sixty chars";
    let mut batch = Vec::new();
    for i in 0..args.messages {
        let m = NewMessage::text(
            MessageId::new(format!("m{i}"))?,
            alice.account_id(),
            body,
            at,
        );
        batch.push(
            alice
                .write(&bucket, |d, t| write::post_message(d, t, &m))?
                .raw_bytes()
                .to_vec(),
        );
        if batch.len() == 100 {
            acked(
                &engine
                    .submit(bucket.clone(), author.clone(), std::mem::take(&mut batch))
                    .await,
            )?;
        }
    }
    acked(&engine.submit(bucket.clone(), author.clone(), batch).await)?;
    let edited = args.messages * args.edited / 100;
    let messages = args.messages;
    println!(
        "{backend}: {messages} messages, {edited} edited once per round, {} rounds",
        args.rounds
    );
    let mut cuts = Vec::new();
    let mut during = Vec::new();
    let mut all = Vec::new();
    let mut before_bytes = 0;
    let mut after_bytes = 0;
    for round in 0..args.rounds {
        // Alice works on the generation the store holds.
        if round > 0 {
            let doc = stored_doc(store.as_ref(), &bucket).await?;
            alice
                .docs
                .insert(bucket.clone(), doc.with_actor(alice.actor.clone()));
        }
        let mut batch = Vec::new();
        for i in 0..edited {
            let id = MessageId::new(format!("m{}", (i * 10 + round) % messages))?;
            let text = format!("{body} (edit {round})");
            batch.push(
                alice
                    .write(&bucket, |d, t| write::edit_body(d, t, now_ms(), &id, &text))?
                    .raw_bytes()
                    .to_vec(),
            );
        }
        for chunk in batch.chunks(100) {
            acked(
                &engine
                    .submit(bucket.clone(), author.clone(), chunk.to_vec())
                    .await,
            )?;
        }
        before_bytes = store.stored_bytes(&bucket).await?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let mut bob = Device::new("bob", 1);
        let doc = stored_doc(store.as_ref(), &bucket).await?;
        bob.docs
            .insert(bucket.clone(), doc.with_actor(bob.actor.clone()));
        let writing = tokio::spawn(writer(
            engine.clone(),
            bob,
            bucket.clone(),
            messages,
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let report = engine
            .cut_part(&bucket, false)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .context("the part was written")?;
        let ended = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.notify_one();
        let acks = writing.await??;
        after_bytes = store.stored_bytes(&bucket).await?;
        cuts.push(report.stalled);
        for (answered, took) in acks {
            // The acks the cut held up: answered while it ran or right after it.
            let after_end = answered.checked_duration_since(ended);
            if answered >= started && after_end.is_none_or(|d| d < Duration::from_millis(50)) {
                during.push(took);
            }
            all.push(took);
        }
    }
    cuts.sort();
    during.sort();
    all.sort();
    println!(
        "{backend}: cut median {} ms, max {} ms; writer acks held by a cut: {} (max {} ms, p99 {} ms); writer p99 over the runs {} ms ({} acks)",
        ms(percentile(&cuts, 0.5)),
        ms(percentile(&cuts, 1.0)),
        during.len(),
        ms(percentile(&during, 1.0)),
        ms(percentile(&during, 0.99)),
        ms(percentile(&all, 0.99)),
        all.len(),
    );
    println!(
        "{backend}: stored bytes per message before the last cut {:.0}, after {:.0}",
        before_bytes as f64 / messages as f64,
        after_bytes as f64 / messages as f64
    );
    drop(engine);
    drop(store);
    if let Some(url) = url {
        pg::drop_database(&url).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    for backend in &args.backends {
        run(backend, &args).await?;
    }
    Ok(())
}
