//! `search` (`cargo xtask bench search`): the server's search (docs/SEARCH.md) on a large
//! projection (docs/BENCHMARKS.md, "Search").
//!
//! One run per backend on a fresh store, through the store's own commit and search (the
//! statements the server runs; no engine, no HTTP): `--conversations` conversations take
//! `--messages` messages in all, in batches of one bucket change of `--batch` messages, each
//! message `--words` words drawn from a Zipf-like vocabulary of `--vocabulary` words. The
//! searcher is an active member of every `--member-every`-th conversation.
//!
//! Measured: the commit rate of the first `--compare` messages without search terms and of
//! the next `--compare` with them (the cost the index adds to a commit, same sitting), then
//! query p50/p99 over `--queries` searches of one or two words, the last a 3-character
//! prefix, first page of 50, with the permission filter. Last, the commit time of
//! `--edits` edits (new terms) and as many deletes of random messages of the history, one
//! message per commit, and the purge pass's deletion of the deleted messages' queued
//! entries: what replacing or removing an entry costs in an index that size.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::search::{index_text, Query};
use confab_server::engine::search_indexer::BATCH;
use confab_server::maintenance::open_store;
use confab_server::store::search::SearchQuery;
use confab_server::store::{ConvRow, MessageRow, NewChange, Projection, Store};

#[derive(Parser, Debug)]
#[command(name = "search", about = "Server search on a large projection")]
struct Args {
    /// Backends: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    backends: Vec<String>,
    /// Postgres server (a database `confab_bench_search` is made and dropped there).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg: String,
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    #[arg(long, default_value_t = 1_000)]
    conversations: usize,
    #[arg(long, default_value_t = 10)]
    member_every: usize,
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[arg(long, default_value_t = 8)]
    words: usize,
    #[arg(long, default_value_t = 20_000)]
    vocabulary: usize,
    #[arg(long, default_value_t = 50_000)]
    compare: usize,
    #[arg(long, default_value_t = 300)]
    queries: usize,
    #[arg(long, default_value_t = 100)]
    edits: usize,
    /// Keep the store after the run (Postgres: the database; SQLite: the directory), to
    /// look at its plans.
    #[arg(long)]
    keep: bool,
    /// Messages between progress lines during the fill.
    #[arg(long, default_value_t = 500_000)]
    progress: usize,
    /// Query a store a `--keep` run left (SQLite: this directory; Postgres: the database
    /// `confab_bench_search`), filling it first only if it holds no conversation. Its size
    /// arguments must be the ones it was filled with.
    #[arg(long)]
    reuse: Option<PathBuf>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// Zipf-like: small indexes far more often.
    fn word(&mut self, vocabulary: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((vocabulary as f64).powf(u) as usize).saturating_sub(1)
    }
}

fn word(i: usize) -> String {
    // Letters only, distinct per index: base 26.
    let mut n = i + 26 * 26;
    let mut out = String::new();
    while n > 0 {
        out.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    out
}

const TENANT: &str = "acme";
const SEARCHER: &str = "seeker";

fn conv_change(tenant: &TenantId, conv: &ConvId, member: bool) -> Result<NewChange> {
    let doc = DocId::conv(tenant, conv);
    let mut projection = vec![Projection::Conversation(ConvRow {
        tenant: tenant.clone(),
        conv: conv.clone(),
        kind: "group".into(),
        title: None,
        lifecycle: "active".into(),
        parent: None,
        created_at: 0,
        scope: "private".into(),
        description: None,
        active_members: 1,
        join_route: "invite".into(),
    })];
    if member {
        projection.push(Projection::Member {
            tenant: tenant.clone(),
            conv: conv.clone(),
            account: AccountId::new(SEARCHER)?,
            role: "member".into(),
            status: "active".into(),
        });
    }
    Ok(change(doc, 1, projection))
}

fn change(doc: DocId, seq: u64, projection: Vec<Projection>) -> NewChange {
    confab_bench::stored::change(doc, seq, vec![0; 16], projection)
}

struct Writer {
    rng: Rng,
    next_id: usize,
    /// Per conversation: its bucket part and the part's last seq.
    parts: Vec<(u32, u64)>,
    /// The conversation the next batch goes to.
    next_conv: usize,
}

impl Writer {
    /// One bucket change of `n` messages in conversation `c`, indexed or not.
    fn batch(
        &mut self,
        args: &Args,
        tenant: &TenantId,
        c: usize,
        n: usize,
        index: bool,
    ) -> Result<NewChange> {
        let conv = ConvId::new(format!("c{c}"))?;
        let (part, seq) = &mut self.parts[c];
        *seq += 1;
        if *seq > 200 {
            *part += 1;
            *seq = 1;
        }
        let doc = DocId::msgs(
            tenant,
            &conv,
            Bucket {
                period: 0,
                part: *part,
            },
        );
        let mut projection = Vec::with_capacity(n * 2);
        for _ in 0..n {
            self.next_id += 1;
            let id = MessageId::new(format!("m{}", self.next_id))?;
            let body: Vec<String> = (0..args.words)
                .map(|_| word(self.rng.word(args.vocabulary)))
                .collect();
            let body = body.join(" ");
            let created_at = 1_700_000_000_000 + self.next_id as i64;
            projection.push(Projection::Message(MessageRow {
                tenant: tenant.clone(),
                conv: conv.clone(),
                message: id.clone(),
                doc: doc.to_string(),
                seq: *seq,
                author: AccountId::new("writer")?,
                kind: "text".into(),
                created_at,
                preview: body.chars().take(100).collect(),
                deleted: false,
                pos: 0,
                views: 0,
            }));
            if index {
                if let Some(terms) = index_text([body.as_str()]) {
                    projection.push(Projection::SearchTerms {
                        tenant: tenant.clone(),
                        conv: conv.clone(),
                        message: id,
                        terms,
                    });
                }
            }
        }
        Ok(change(doc, *seq, projection))
    }
}

/// Commits `total` messages round-robin over the conversations; messages per second. Prints
/// a progress line every `--progress` messages (a run cut short still tells its rate). The
/// search backlog (SQLite) is moved into the index as the server's indexer moves it, a
/// batch at a time, and counts in the rate.
async fn fill(
    store: &dyn Store,
    args: &Args,
    w: &mut Writer,
    total: usize,
    index: bool,
) -> Result<f64> {
    let tenant = TenantId::new(TENANT)?;
    let started = Instant::now();
    let mut done = 0;
    let mut c = w.next_conv;
    let mut since = (Instant::now(), 0usize);
    let mut building = 0.0;
    while done < total {
        let n = args.batch.min(total - done);
        let b = Instant::now();
        let change = w.batch(args, &tenant, c, n, index)?;
        building += b.elapsed().as_secs_f64();
        store.commit(std::slice::from_ref(&change)).await?;
        if index && done / BATCH != (done + n) / BATCH {
            store.index_search_backlog(BATCH).await?;
        }
        done += n;
        c = (c + 1) % args.conversations;
        if args.progress > 0 && w.next_id / args.progress != (w.next_id - n) / args.progress {
            let rate = (done - since.1) as f64 / since.0.elapsed().as_secs_f64();
            eprintln!(
                "  {} messages, {rate:.0} msg/s, load average {}",
                w.next_id,
                load_average()
            );
            since = (Instant::now(), done);
        }
    }
    while store.index_search_backlog(BATCH).await? == BATCH {}
    w.next_conv = c;
    eprintln!(
        "  {total} messages {}: {:.1} s, of which {building:.1} s making the changes",
        if index { "with terms" } else { "without terms" },
        started.elapsed().as_secs_f64()
    );
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// The machine's 1, 5 and 15 minute load averages (other work shares the cores).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `pg`: the Postgres database, analyzed before the queries as autovacuum keeps a live one
/// (its planner chooses between the walk and the GIN index from the statistics).
async fn run(store: &dyn Store, args: &Args, backend: &str, pg: Option<&str>) -> Result<()> {
    let tenant = TenantId::new(TENANT)?;
    let filled = store
        .conversation(&tenant, &ConvId::new("c0")?)
        .await?
        .is_some();
    let fill = match filled {
        true => {
            eprintln!("  reusing the filled store");
            None
        }
        false => Some(fill_all(store, args).await?),
    };
    if let Some(url) = pg {
        use sqlx::{Connection, Executor};
        let mut db = sqlx::PgConnection::connect(url).await?;
        db.execute("ANALYZE").await?;
    }
    query(store, args, backend, fill).await?;
    edits(store, args, backend).await
}

/// The conversation of message `m{id}`: batches of `--batch` go round-robin over the
/// conversations (`fill`), when every phase is a whole number of batches.
fn conversation_of(args: &Args, id: usize) -> usize {
    (id - 1) / args.batch % args.conversations
}

/// Edits and deletes of random messages, one per commit, timed; the run's second line.
async fn edits(store: &dyn Store, args: &Args, backend: &str) -> Result<()> {
    if args.edits == 0 {
        return Ok(());
    }
    let tenant = TenantId::new(TENANT)?;
    // A part of its own per run, so a reused store takes the changes' seqs from 1.
    let part = 100_000
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 1_000_000) as u32;
    let mut seqs = vec![0u64; args.conversations];
    let mut rng = Rng(11);
    let (mut edit_ms, mut delete_ms) = (Vec::new(), Vec::new());
    for i in 0..2 * args.edits {
        let id = 1 + (rng.next() % args.messages as u64) as usize;
        let c = conversation_of(args, id);
        let conv = ConvId::new(format!("c{c}"))?;
        let message = MessageId::new(format!("m{id}"))?;
        if store.message_deleted(&tenant, &conv, &message).await? != Some(false) {
            continue; // deleted by an earlier pick (or a run before, on a reused store)
        }
        let deleting = i % 2 == 1;
        let body: Vec<String> = (0..args.words)
            .map(|_| word(rng.word(args.vocabulary)))
            .collect();
        let body = body.join(" ");
        let mut projection = vec![Projection::MessageUpdated {
            tenant: tenant.clone(),
            conv: conv.clone(),
            message: message.clone(),
            preview: if deleting {
                String::new()
            } else {
                body.clone()
            },
            deleted: deleting,
        }];
        if !deleting {
            if let Some(terms) = index_text([body.as_str()]) {
                projection.push(Projection::SearchTerms {
                    tenant: tenant.clone(),
                    conv: conv.clone(),
                    message: message.clone(),
                    terms,
                });
            }
        }
        seqs[c] += 1;
        let doc = DocId::msgs(&tenant, &conv, Bucket { period: 0, part });
        let t = Instant::now();
        store.commit(&[change(doc, seqs[c], projection)]).await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if deleting {
            anyhow::ensure!(
                store.message_deleted(&tenant, &conv, &message).await? == Some(true),
                "m{id} was not deleted: conversation_of does not match the fill"
            );
            delete_ms.push(ms);
        } else {
            edit_ms.push(ms);
        }
    }
    edit_ms.sort_by(f64::total_cmp);
    delete_ms.sort_by(f64::total_cmp);
    let line = |times: &[f64]| match times.is_empty() {
        true => "none".to_owned(),
        false => format!(
            "p50 {:.2} ms, p99 {:.2} ms ({})",
            percentile(times, 0.5),
            percentile(times, 0.99),
            times.len()
        ),
    };
    // What the purge pass then does for the deletes (SQLite; Postgres leaves it to VACUUM).
    let t = Instant::now();
    let mut forgotten = 0;
    loop {
        let n = store.forget_search_entries(8).await?;
        forgotten += n;
        if n < 8 {
            break;
        }
    }
    let forget = match forgotten {
        0 => "none queued".to_owned(),
        n => format!(
            "{n}, {:.2} ms each",
            t.elapsed().as_secs_f64() * 1e3 / n as f64
        ),
    };
    println!(
        "{backend}: one-message commits: edit {}; delete {}; deleted entries forgotten: {forget}",
        line(&edit_ms),
        line(&delete_ms)
    );
    Ok(())
}

/// Makes the conversations and commits every message; the commit rates without and with
/// terms, and the rest's fill time.
async fn fill_all(store: &dyn Store, args: &Args) -> Result<(f64, f64, f64)> {
    let tenant = TenantId::new(TENANT)?;
    for c in 0..args.conversations {
        let conv = ConvId::new(format!("c{c}"))?;
        store
            .commit(&[conv_change(&tenant, &conv, c % args.member_every == 0)?])
            .await?;
    }
    let mut w = Writer {
        rng: Rng(35),
        next_id: 0,
        parts: vec![(0, 0); args.conversations],
        next_conv: 0,
    };
    let plain = fill(store, args, &mut w, args.compare, false).await?;
    let indexed = fill(store, args, &mut w, args.compare, true).await?;
    let rest = args.messages.saturating_sub(2 * args.compare);
    let started = Instant::now();
    fill(store, args, &mut w, rest, true).await?;
    let fill_s = started.elapsed().as_secs_f64();
    eprintln!(
        "  filled in {fill_s:.0} s; commit {plain:.0} msg/s without terms, {indexed:.0} with"
    );
    Ok((plain, indexed, fill_s))
}

/// The searches, and the run's line.
async fn query(
    store: &dyn Store,
    args: &Args,
    backend: &str,
    fill: Option<(f64, f64, f64)>,
) -> Result<()> {
    let tenant = TenantId::new(TENANT)?;
    let account = AccountId::new(SEARCHER)?;
    let mut rng = Rng(7);
    let mut times = Vec::with_capacity(args.queries);
    let mut slowest: Vec<(f64, String, usize)> = Vec::new();
    let mut found = 0usize;
    for i in 0..args.queries {
        let first = word(rng.word(args.vocabulary));
        let last = word(rng.word(args.vocabulary));
        let prefix: String = last.chars().take(3).collect();
        let text = if i % 2 == 0 {
            prefix
        } else {
            format!("{first} {prefix}")
        };
        let query = Query::parse(&text)?;
        let q = SearchQuery::new(&tenant, &account, &query, 50);
        let t = Instant::now();
        let n = store.search(&q).await?.len();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        found += n;
        times.push(ms);
        slowest.push((ms, text, n));
    }
    times.sort_by(f64::total_cmp);
    // The slow queries by name, for the diagnosis (docs/BENCHMARKS.md, "Search").
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (ms, text, n) in slowest.iter().take(5) {
        eprintln!("  slow: {ms:.1} ms {text:?} ({n} results)");
    }
    let fill = match fill {
        Some((plain, indexed, fill_s)) => format!(
            "commit {plain:.0} msg/s without terms, {indexed:.0} msg/s with ({:+.1}%); \
             rest filled in {fill_s:.0} s",
            (indexed / plain - 1.0) * 100.0
        ),
        None => "a reused store".into(),
    };
    println!(
        "{backend}: {} messages in {} conversations (searcher in {}), {} queries: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {:.1} results/query; {fill}; \
         load average {}",
        args.messages,
        args.conversations,
        args.conversations.div_ceil(args.member_every),
        args.queries,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(0.0),
        found as f64 / args.queries as f64,
        load_average()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    for backend in &args.backends {
        match backend.as_str() {
            "sqlite" => {
                let dir = args.reuse.clone().unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("confab-bench-search-{}", std::process::id()))
                });
                std::fs::create_dir_all(&dir)?;
                let store = open_store(None, &dir).await?;
                run(store.as_ref(), &args, backend, None).await?;
                drop(store);
                match args.keep || args.reuse.is_some() {
                    true => eprintln!("  kept {}", dir.display()),
                    false => drop(std::fs::remove_dir_all(&dir)),
                }
            }
            "postgres" => {
                use sqlx::{Connection, Executor};
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", args.pg))
                    .await
                    .context("Postgres")?;
                let name = "confab_bench_search";
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                )
                .bind(name)
                .fetch_one(&mut admin)
                .await?;
                if args.reuse.is_none() || !exists {
                    admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await?;
                    admin
                        .execute(format!("CREATE DATABASE {name}").as_str())
                        .await?;
                }
                let url = format!("{}/{name}", args.pg);
                let dir = PathBuf::from(".");
                let store = open_store(Some(&url), &dir).await?;
                let result = run(store.as_ref(), &args, backend, Some(&url)).await;
                drop(store);
                if args.keep || args.reuse.is_some() {
                    eprintln!("  kept {url}");
                    result?;
                    continue;
                }
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                result?;
            }
            other => anyhow::bail!("unknown backend {other}"),
        }
    }
    Ok(())
}
