//! `confab-server`: serve (default), migrate, compact.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use confab_core::model::url::UrlRule;
use confab_core::protocol::{BudgetRate, Limits};
use confab_server::auth::Authenticator;
use confab_server::budget::{BudgetConfig, Budgets};
use confab_server::config::{mask_url, Cli, Command, LogFormat, ServeArgs};
use confab_server::engine::{Engine, EngineConfig};
use confab_server::maintenance::{compact_all, open_store};
use confab_server::metrics::Metrics;
use confab_server::{AppState, DemoConfig};
use tokio::sync::watch;

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The runtime's threads are named after the node: each line names its node.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_thread_names(true)
        // Colour codes only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let node = cli
        .common
        .node_id
        .clone()
        .unwrap_or_else(confab_server::engine::default_node_id);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name(node.clone());
    if let Some(threads) = cli.common.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    runtime
        .build()
        .context("starting the Tokio runtime")?
        .block_on(run(cli, node))
}

async fn run(cli: Cli, node: String) -> Result<()> {
    init_logs(cli.common.log_format);
    let store_name = match &cli.common.database_url {
        Some(url) => format!("postgres {}", mask_url(url)),
        None => format!("sqlite {}", cli.common.data_dir.join("confab.db").display()),
    };
    let store = open_store(cli.common.database_url.as_deref(), &cli.common.data_dir)
        .await
        .with_context(|| format!("opening storage ({store_name})"))?;
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Migrate => {
            tracing::info!(store = %store_name, "migrations applied");
            Ok(())
        }
        Command::Compact => {
            let report = compact_all(store.as_ref()).await?;
            tracing::info!(?report, "compaction done");
            println!(
                "compacted {} documents, {} changes: {} -> {} bytes",
                report.docs, report.changes_folded, report.bytes_before, report.bytes_after
            );
            Ok(())
        }
        Command::Purge => {
            let done = store.vacuum_forgotten(true).await?;
            tracing::info!(done, "purge done");
            println!(
                "{}",
                if done {
                    "purged"
                } else {
                    "another node is purging: not run"
                }
            );
            Ok(())
        }
        Command::Serve(args) => {
            let workers = cli.common.worker_threads.map(usize::from);
            let blobs = args
                .attachments
                .open(&cli.common.data_dir)
                .context("opening the attachment store")?;
            serve(store, store_name, workers, node, args, Arc::new(blobs)).await
        }
    }
}

fn random_secret() -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a demo secret")?;
    Ok(bytes)
}

async fn serve(
    store: Arc<dyn confab_server::store::Store>,
    store_name: String,
    worker_threads: Option<usize>,
    node: String,
    args: ServeArgs,
    blobs: Arc<confab_server::blobs::Blobs>,
) -> Result<()> {
    let auth = match (&args.jwt_secret, &args.jwt_public_key_file) {
        (Some(secret), _) => Authenticator::hs256(secret.as_bytes()),
        (None, Some(path)) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Authenticator::public_key_pem(&pem)?
        }
        (None, None) if args.demo => Authenticator::hs256(&random_secret()?),
        (None, None) => bail!("set CONFAB_JWT_SECRET (HS256) or CONFAB_JWT_PUBLIC_KEY_FILE (RS256/EdDSA), or run with --demo"),
    };
    let limits = Limits {
        max_frame_bytes: args.max_frame_bytes,
        max_changes_per_submit: args.max_changes_per_submit,
        rate_per_sec: args.rate_per_sec,
        rate_burst: args.rate_burst,
        ..Limits::default()
    };
    let budgets = BudgetConfig {
        connection: BudgetRate {
            per_sec: f64::from(args.rate_changes_per_sec),
            burst: f64::from(args.rate_changes_burst),
        },
        account: BudgetRate {
            per_sec: f64::from(args.rate_account_changes_per_sec),
            burst: f64::from(args.rate_account_changes_burst),
        },
        reject_cost: f64::from(args.rate_reject_cost),
    };
    tracing::info!(
        listen = %args.listen,
        node = %node,
        store = %store_name,
        jwt = if args.jwt_secret.is_some() { "hs256 secret (***)" } else if args.jwt_public_key_file.is_some() { "public key" } else { "demo secret (random)" },
        demo = args.demo,
        web_root = ?args.web_root,
        max_connections = args.max_connections,
        max_frame_bytes = args.max_frame_bytes,
        max_changes_per_submit = args.max_changes_per_submit,
        rate_per_sec = args.rate_per_sec,
        rate_burst = args.rate_burst,
        rate_changes_per_sec = args.rate_changes_per_sec,
        rate_changes_burst = args.rate_changes_burst,
        rate_account_changes_per_sec = args.rate_account_changes_per_sec,
        rate_account_changes_burst = args.rate_account_changes_burst,
        rate_reject_cost = args.rate_reject_cost,
        max_units = args.max_units,
        max_buckets = args.max_buckets,
        recent_log_bytes = args.recent_log_bytes,
        allow_http_urls = args.allow_http_urls,
        push_backlog_bytes = args.push_backlog_bytes,
        worker_threads = worker_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }),
        "confab-server starting"
    );
    if args.demo {
        tracing::warn!("DEMO MODE: /demo/token hands out tokens for {:?} to anyone. Never run this in production.", args.demo_users);
    }
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::new(
        store,
        metrics,
        EngineConfig {
            max_units: args.max_units,
            max_buckets: args.max_buckets,
            recent_log_bytes: args.recent_log_bytes,
            urls: UrlRule::from_allow_http(args.allow_http_urls),
            node,
            cut_after_delete: std::time::Duration::from_secs(args.cut_after_delete_secs),
            cut_after_edit: std::time::Duration::from_secs(args.cut_after_edit_secs),
            ..EngineConfig::default()
        },
    );
    // Due cuts are looked for once a second: a cut is at most that late.
    engine.spawn_cuts(std::time::Duration::from_secs(1));
    if args.retention_sweep_secs > 0 {
        // The engine's sweep, then the blobs it left without a message.
        blobs.clone().spawn_retention(
            engine.clone(),
            std::time::Duration::from_secs(args.retention_sweep_secs),
        );
    }
    if args.purge_sweep_secs > 0 {
        confab_server::forget::spawn(
            engine.clone(),
            blobs.clone(),
            confab_server::forget::PurgeConfig {
                every: Duration::from_secs(args.purge_sweep_secs),
                blob_delay: Duration::from_secs(args.blob_release_delay_secs),
            },
        );
    }
    let webhook = args.webhook.config();
    if let Some(w) = &webhook {
        tracing::info!(webhook = ?w, "push webhook on");
    }
    let queue = usize::try_from(args.notify_queue).unwrap_or(usize::MAX);
    confab_server::notify::start_with(&engine, webhook, queue).context("starting the notifier")?;
    if args.schedule_poll_ms > 0 {
        engine.spawn_scheduler(std::time::Duration::from_millis(args.schedule_poll_ms));
    }
    // Messages projected before the search index existed get their entries (docs/SEARCH.md).
    engine.spawn_search_backfill();
    // SQLite's inverted index follows the commits (docs/SEARCH.md, "Cost").
    engine.spawn_search_indexer();
    let cors = confab_server::cors::CorsOrigins::parse(&args.cors_origins)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let connections = Arc::new(AtomicUsize::new(0));
    let state = AppState {
        engine: engine.clone(),
        auth: Arc::new(auth),
        limits,
        budgets: Arc::new(Budgets::new(budgets)),
        claims: Default::default(),
        max_connections: args.max_connections,
        push_backlog_bytes: args.push_backlog_bytes,
        connections: connections.clone(),
        shutdown: shutdown_rx,
        demo: args.demo.then(|| DemoConfig {
            tenant: args.demo_tenant.clone(),
            users: args.demo_users.clone(),
        }),
        web_root: args.web_root.clone(),
        blobs,
        cors,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let stopping = engine.clone();
    confab_server::serve(listener, state, async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight commits");
        stopping.begin_shutdown();
        let _ = shutdown_tx.send(true);
    })
    .await?;
    // Upgraded WebSockets are not tracked by axum's graceful shutdown: wait for them to
    // finish their in-flight submits and say goodbye.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while connections.load(std::sync::atomic::Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.drain(Duration::from_secs(10)).await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
