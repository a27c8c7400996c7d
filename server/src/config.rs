//! Configuration from flags or environment (every flag has a `CONFAB_*` variable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "confab-server", version, about = "Confab sync server")]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
// Parsed once at start: the size of the `serve` variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve WebSocket sync, REST and operations endpoints (the default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Fold each document's change log into a snapshot.
    Compact,
    /// Rewrite the tables a purge touches so no old row version is left in their files
    /// (Postgres `VACUUM FULL`: each table locked while it is rewritten, a maintenance
    /// window; SQLite: a WAL checkpoint). docs/STORAGE.md, "What a delete removes".
    Purge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Storage and logging, shared by every command.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Postgres URL; without it the embedded SQLite store in --data-dir is used.
    #[arg(long, env = "CONFAB_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Folder of the embedded SQLite store.
    #[arg(
        long,
        env = "CONFAB_DATA_DIR",
        default_value = "confab-data",
        global = true
    )]
    pub data_dir: PathBuf,
    #[arg(
        long,
        env = "CONFAB_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Tokio worker threads (default: one per core). The group committer has a thread of
    /// its own beside them.
    #[arg(long, env = "CONFAB_WORKER_THREADS", global = true,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// This node's name in logs (every line names its thread, and the runtime's threads
    /// are named after the node), in `confab_node_info` and in the name of its listening
    /// Postgres connection (`confab-listen:<node>`). Default: `<hostname>-<pid>`.
    #[arg(long, env = "CONFAB_NODE_ID", global = true)]
    pub node_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[arg(long, env = "CONFAB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// HS256 secret for JWTs.
    #[arg(long, env = "CONFAB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// RS256 or EdDSA public key (PEM file) for JWTs.
    #[arg(long, env = "CONFAB_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Demo mode: mints tokens for demo users at /demo/token. Never in production.
    #[arg(long, env = "CONFAB_DEMO")]
    pub demo: bool,
    #[arg(long, env = "CONFAB_DEMO_TENANT", default_value = "demo")]
    pub demo_tenant: String,
    #[arg(
        long,
        env = "CONFAB_DEMO_USERS",
        default_value = "alice,bob,carol,dave",
        value_delimiter = ','
    )]
    pub demo_users: Vec<String>,
    /// Static files served at / (the web demo).
    #[arg(long, env = "CONFAB_WEB_ROOT")]
    pub web_root: Option<PathBuf>,
    /// Browser origins other than the server's own whose pages may call the REST API
    /// (CORS): `https://app.example.com,https://admin.example.com`, or `*` for any. Default:
    /// none, only the server's own origin (docs/OPERATIONS.md, "Browsers on other origins").
    #[arg(long, env = "CONFAB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    #[arg(long, env = "CONFAB_MAX_FRAME_BYTES", default_value_t = 1 << 20)]
    pub max_frame_bytes: usize,
    #[arg(long, env = "CONFAB_MAX_CHANGES_PER_SUBMIT", default_value_t = 1000)]
    pub max_changes_per_submit: usize,
    /// Frames per second one connection may sustain.
    #[arg(long, env = "CONFAB_RATE_PER_SEC", default_value_t = 1000)]
    pub rate_per_sec: u32,
    #[arg(long, env = "CONFAB_RATE_BURST", default_value_t = 2000)]
    pub rate_burst: u32,
    /// Work units per second one connection regains: a submitted change costs 1, a
    /// rejected one --rate-reject-cost in all. Past its budget a connection's submits are
    /// refused with `rate_limited` and `retry_after_ms` until it is paid back.
    #[arg(long, env = "CONFAB_RATE_CHANGES_PER_SEC", default_value_t = 2000)]
    pub rate_changes_per_sec: u32,
    /// Work units one connection may spend at once (and the deepest debt it can run up).
    #[arg(long, env = "CONFAB_RATE_CHANGES_BURST", default_value_t = 20_000)]
    pub rate_changes_burst: u32,
    /// Work units per second all connections of one account regain together.
    #[arg(
        long,
        env = "CONFAB_RATE_ACCOUNT_CHANGES_PER_SEC",
        default_value_t = 5000
    )]
    pub rate_account_changes_per_sec: u32,
    /// Work units all connections of one account may spend at once.
    #[arg(
        long,
        env = "CONFAB_RATE_ACCOUNT_CHANGES_BURST",
        default_value_t = 50_000
    )]
    pub rate_account_changes_burst: u32,
    /// Work units a rejected change costs in all (an accepted one costs 1).
    #[arg(long, env = "CONFAB_RATE_REJECT_COST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_reject_cost: u32,
    /// Bytes of pushes a connection may leave unread before it is told `lagging` and
    /// closed (its client reconnects and catches up). Unread: not yet confirmed read by the
    /// client (WebSocket ping/pong), wherever they wait, the kernels' socket buffers
    /// included. Bounds a slow reader's memory.
    #[arg(long, env = "CONFAB_PUSH_BACKLOG_BYTES", default_value_t = 8 << 20)]
    pub push_backlog_bytes: usize,
    /// Serialization units (conversations, accounts) kept in memory.
    #[arg(long, env = "CONFAB_MAX_UNITS", default_value_t = 10_000)]
    pub max_units: usize,
    /// Message buckets one conversation keeps in memory (the least recently used leave
    /// first). Each holds its messages as an Automerge document, about 0.5 KiB per message.
    #[arg(long, env = "CONFAB_MAX_BUCKETS", default_value_t = 4)]
    pub max_buckets: usize,
    /// Seconds between retention sweeps, which delete the message buckets a conversation's
    /// `retention_days` expired (docs/FEATURES.md, "Retention"); 0: never.
    #[arg(long, env = "CONFAB_RETENTION_SWEEP_SECS", default_value_t = 3600)]
    pub retention_sweep_secs: u64,
    /// Seconds between purge passes, which resume account erasures, sweep the blobs of
    /// messages deleted for everyone, delete their search entries from SQLite's index and
    /// have the database drop the old row versions (docs/STORAGE.md, "What a delete
    /// removes"); 0: never.
    #[arg(long, env = "CONFAB_PURGE_SWEEP_SECS", default_value_t = 60)]
    pub purge_sweep_secs: u64,
    /// Seconds a message deleted for everyone keeps the blobs it named before the purge
    /// deletes those no other message of the conversation names.
    #[arg(long, env = "CONFAB_BLOB_RELEASE_DELAY_SECS", default_value_t = 600)]
    pub blob_release_delay_secs: u64,
    /// Seconds after a delete for everyone until its message part's history is cut, which
    /// removes the deleted content from the store (docs/STORAGE.md, "Cutting a part's
    /// history"); 0: at the next pass.
    #[arg(long, env = "CONFAB_CUT_AFTER_DELETE_SECS", default_value_t = 60)]
    pub cut_after_delete_secs: u64,
    /// Seconds after an edit until its message part's history is cut, which removes the
    /// versions the edit replaced.
    #[arg(long, env = "CONFAB_CUT_AFTER_EDIT_SECS", default_value_t = 3600)]
    pub cut_after_edit_secs: u64,
    /// Milliseconds between passes of the scheduler, which posts due scheduled messages
    /// (docs/FEATURES.md, "Scheduled messages"): a message appears at most this late; 0: never.
    #[arg(long, env = "CONFAB_SCHEDULE_POLL_MS", default_value_t = 1000)]
    pub schedule_poll_ms: u64,
    /// Bytes of its newest committed changes each document in memory keeps for catch-up
    /// (a subscription that missed no more is answered from memory, also while the
    /// database is down). Per conversation at most (`--max-buckets` + 1) times this.
    #[arg(long, env = "CONFAB_RECENT_LOG_BYTES", default_value_t = 256 << 10)]
    pub recent_log_bytes: usize,
    /// Also accept `http:` URLs in URL fields (avatars, backgrounds, attachments); by
    /// default only `https:`. For closed networks without TLS; other schemes never.
    #[arg(long, env = "CONFAB_ALLOW_HTTP_URLS")]
    pub allow_http_urls: bool,
    #[command(flatten)]
    pub attachments: crate::blobs::config::AttachmentArgs,
    #[command(flatten)]
    pub webhook: crate::notify::webhook::WebhookArgs,
    /// Committed messages waiting for the notifier (docs/NOTIFICATIONS.md, "When and at
    /// what cost"); beyond, ordinary group messages are folded into per-conversation
    /// counts and the rest dropped (counted), never holding up a commit.
    #[arg(long, env = "CONFAB_NOTIFY_QUEUE", default_value_t = crate::notify::QUEUE,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub notify_queue: u64,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs::parse_from(["serve"])
    }
}

impl Parser for ServeArgs {}
impl clap::CommandFactory for ServeArgs {
    fn command() -> clap::Command {
        <Self as Args>::augment_args(clap::Command::new("serve"))
    }
    fn command_for_update() -> clap::Command {
        <Self as Args>::augment_args_for_update(clap::Command::new("serve"))
    }
}

/// Masks the password of a database URL for logs.
pub fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_masked() {
        assert_eq!(mask_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(mask_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn worker_threads_is_optional_and_at_least_one() {
        let cli = Cli::try_parse_from(["confab-server", "serve"]).expect("no flag");
        assert_eq!(cli.common.worker_threads, None);
        let cli = Cli::try_parse_from(["confab-server", "--worker-threads", "1", "serve"])
            .expect("one worker");
        assert_eq!(cli.common.worker_threads, Some(1));
        assert!(Cli::try_parse_from(["confab-server", "--worker-threads", "0"]).is_err());
    }

    #[test]
    fn serve_defaults_to_loopback_8080_and_no_demo() {
        let args = ServeArgs::default();
        assert_eq!(args.listen.to_string(), "127.0.0.1:8080");
        assert!(!args.demo);
    }
}
