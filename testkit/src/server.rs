//! The real server binary as a child process on 127.0.0.1 with a fresh store (SQLite in a
//! temporary folder, or a fresh Postgres database), and the tokens it accepts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

use crate::pg::{self, Template};

/// The JWT secret every test server uses.
pub const SECRET: &str = "e2e-test-secret";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    tenant: &'a str,
    exp: i64,
    kind: &'a str,
}

/// A token for `account` in `tenant`, valid for `ttl_s` seconds (negative: expired).
pub fn token(tenant: &str, account: &str, service: bool, ttl_s: i64) -> String {
    let claims = Claims {
        sub: account,
        tenant,
        exp: now_ms() / 1000 + ttl_s,
        kind: if service { "service" } else { "user" },
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

#[derive(serde::Serialize)]
struct DeviceClaims<'a> {
    sub: &'a str,
    tenant: &'a str,
    exp: i64,
    device: &'a str,
}

/// A user token for `account` in `tenant` bound to `device` (the `device` claim): good only
/// for a connection whose hello names that device.
pub fn device_token(tenant: &str, account: &str, device: &str, ttl_s: i64) -> String {
    let claims = DeviceClaims {
        sub: account,
        tenant,
        exp: now_ms() / 1000 + ttl_s,
        device,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::str::FromStr for Backend {
    type Err = anyhow::Error;

    /// The names the bench binaries take on their command lines.
    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres),
            other => anyhow::bail!("unknown backend {other:?} (sqlite, postgres)"),
        }
    }
}

/// Appends `line` to the file at `path` (created if missing): the bench binaries' `--json`
/// rows, one per run, collected across runs.
pub fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")?;
    Ok(())
}

/// A running `confab-server` with its own data folder or database.
#[derive(Debug)]
pub struct TestServer {
    pub port: u16,
    pub backend: Backend,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// The binary to run (`None`: the debug build of this workspace).
    bin: Option<PathBuf>,
    /// Whether `database_url` names a database made for this server (dropped with it).
    own_database: bool,
    /// Where the server's stderr goes (`None`: inherited).
    log: Option<PathBuf>,
    /// `RUST_LOG` for the server (`None`: `CONFAB_E2E_LOG`, else `warn`).
    log_level: Option<&'static str>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every server flag that bounds a client's rate, raised: benchmarks that measure the engine
/// and the database, or fill a store, not the per-connection budgets (docs/PROTOCOL.md,
/// "Budgets").
pub const UNLIMITED_RATES: &[&str] = &[
    "--rate-per-sec",
    "1000000",
    "--rate-burst",
    "1000000",
    "--rate-changes-per-sec",
    "1000000",
    "--rate-changes-burst",
    "10000000",
    "--rate-account-changes-per-sec",
    "1000000",
    "--rate-account-changes-burst",
    "10000000",
];

/// Builds the server binary once per test process and returns its path.
pub fn server_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = std::process::Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "confab-server",
                    "--bin",
                    "confab-server",
                ])
                .current_dir(workspace_root())
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("cargo build of confab-server failed".into());
            }
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| workspace_root().join("target"));
            Ok(target.join("debug").join("confab-server"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Numbers the data folders of this process's servers.
static DIR_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl TestServer {
    /// Starts a server on a fresh store.
    pub async fn start(backend: Backend) -> Result<Self> {
        Self::start_with(backend, &[]).await
    }

    /// Starts a server with extra `serve` flags (limits, ...).
    pub async fn start_with(backend: Backend, extra: &[&str]) -> Result<Self> {
        Self::start_inner(None, backend, extra, false).await
    }

    /// Starts the server binary at `bin` (e.g. a release build, for benchmarks).
    pub async fn start_bin(bin: &Path, backend: Backend, extra: &[&str]) -> Result<Self> {
        Self::start_inner(Some(bin.to_path_buf()), backend, extra, false).await
    }

    /// `start_bin` with the server's stderr in `server.log` in its data folder (benchmarks:
    /// their own output stays readable); see [`TestServer::log_tail`].
    pub async fn start_logged(bin: &Path, backend: Backend, extra: &[&str]) -> Result<Self> {
        Self::start_inner(Some(bin.to_path_buf()), backend, extra, true).await
    }

    /// The workspace's server with its whole output (stdout and stderr) at `level` in
    /// `server.log` in its data folder ([`TestServer::log`]): tests of what it logs.
    pub async fn start_with_log(
        backend: Backend,
        extra: &[&str],
        level: &'static str,
    ) -> Result<Self> {
        let mut server = Self::prepare(None, backend, extra, true).await?;
        server.log_level = Some(level);
        server.spawn().await?;
        Ok(server)
    }

    async fn start_inner(
        bin: Option<PathBuf>,
        backend: Backend,
        extra: &[&str],
        logged: bool,
    ) -> Result<Self> {
        let mut server = Self::prepare(bin, backend, extra, logged).await?;
        server.spawn().await?;
        Ok(server)
    }

    /// A server on a fresh store, not started yet.
    async fn prepare(
        bin: Option<PathBuf>,
        backend: Backend,
        extra: &[&str],
        logged: bool,
    ) -> Result<Self> {
        let data_dir = std::env::temp_dir().join(format!(
            "confab-e2e-{}-{}",
            std::process::id(),
            DIR_COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&data_dir)?;
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(pg::fresh_database("confab_e2e", Template::Default).await?),
        };
        let log = logged.then(|| data_dir.join("server.log"));
        let mut server = Self::stopped(backend, data_dir, database_url, extra)?;
        server.bin = bin;
        server.own_database = true;
        server.log = log;
        Ok(server)
    }

    /// Starts a server on a store the caller owns (fault tests): Postgres at `database_url`
    /// (kept when the server is dropped), else SQLite in `data_dir` (removed when dropped).
    pub async fn start_on(
        database_url: Option<String>,
        data_dir: PathBuf,
        extra: &[&str],
    ) -> Result<Self> {
        let mut server = Self::stopped_on(database_url, data_dir, extra)?;
        server.spawn().await?;
        Ok(server)
    }

    /// `start_on` with the server's whole output at `level` in `server.log` in `data_dir`
    /// ([`TestServer::log`]): fault tests of what it logs.
    pub async fn start_on_with_log(
        database_url: Option<String>,
        data_dir: PathBuf,
        extra: &[&str],
        level: &'static str,
    ) -> Result<Self> {
        let mut server = Self::stopped_on(database_url, data_dir, extra)?;
        server.log = Some(server.data_dir.join("server.log"));
        server.log_level = Some(level);
        server.spawn().await?;
        Ok(server)
    }

    /// A server on a store the caller owns, not started.
    fn stopped_on(database_url: Option<String>, data_dir: PathBuf, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(&data_dir)?;
        let backend = match database_url {
            Some(_) => Backend::Postgres,
            None => Backend::Sqlite,
        };
        Self::stopped(backend, data_dir, database_url, extra)
    }

    /// A server on a free port, not started: the workspace's debug build, the store kept.
    fn stopped(
        backend: Backend,
        data_dir: PathBuf,
        database_url: Option<String>,
        extra: &[&str],
    ) -> Result<Self> {
        Ok(TestServer {
            port: free_port()?,
            backend,
            data_dir,
            database_url,
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            bin: None,
            own_database: false,
            log: None,
            log_level: None,
        })
    }

    /// The status of `GET /readyz` (`None`: no answer within `wait`).
    pub async fn readyz(&self, wait: Duration) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ask = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .ok()?;
            stream
                .write_all(b"GET /readyz HTTP/1.0\r\n\r\n")
                .await
                .ok()?;
            let mut buf = Vec::new();
            stream.read_to_end(&mut buf).await.ok()?;
            let head = String::from_utf8_lossy(&buf[..buf.len().min(16)]).into_owned();
            head.split(' ').nth(1)?.parse::<u16>().ok()
        };
        tokio::time::timeout(wait, ask).await.ok().flatten()
    }

    /// The binary this server runs.
    pub fn binary(&self) -> Result<PathBuf> {
        match &self.bin {
            Some(bin) => Ok(bin.clone()),
            None => server_binary(),
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// The server's whole log (empty unless started with `start_logged` or `start_with_log`).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `confab-server compact` on this server's store (stop it first): its summary line.
    pub async fn compact(&self) -> Result<String> {
        let mut cmd = Command::new(self.binary()?);
        cmd.arg("--data-dir").arg(&self.data_dir);
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        let out = cmd
            .arg("compact")
            .kill_on_drop(true)
            .env("RUST_LOG", "warn")
            .env_remove("CONFAB_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .await
            .context("running confab-server compact")?;
        if !out.status.success() {
            bail!(
                "confab-server compact failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    async fn spawn_once(&mut self) -> Result<()> {
        let mut cmd = Command::new(self.binary()?);
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.extra_args)
            .env("CONFAB_JWT_SECRET", SECRET)
            .env(
                "RUST_LOG",
                self.log_level.map(str::to_owned).unwrap_or_else(|| {
                    std::env::var("CONFAB_E2E_LOG").unwrap_or_else(|_| "warn".into())
                }),
            )
            .env_remove("CONFAB_DATABASE_URL")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        if let Some(log) = &self.log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .context("the server log")?;
            // A test of what the server logs reads all of it; others only its errors.
            let stdout = match self.log_level {
                Some(_) => Stdio::from(file.try_clone().context("the server log")?),
                None => Stdio::null(),
            };
            cmd.stdout(stdout).stderr(file);
        }
        self.child = Some(cmd.spawn().context("starting confab-server")?);
        self.wait_ready().await
    }

    /// Starts the server, on another free port when the chosen one was taken meanwhile (by
    /// a parallel test's server or an outgoing connection's ephemeral port): the port is
    /// only known free when `free_port` asks, not when the server binds it.
    async fn spawn(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.spawn_once().await {
                Err(e) if attempt < 4 && self.exited_early() => {
                    attempt += 1;
                    eprintln!(
                        "confab-server did not start on port {} ({e:#}); another port",
                        self.port
                    );
                    self.port = free_port()?;
                }
                result => return result,
            }
        }
    }

    /// The child has already exited (it could not start).
    fn exited_early(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    async fn wait_ready(&mut self) -> Result<()> {
        for _ in 0..300 {
            if self.exited_early() {
                let status = self.child.as_mut().map(|c| c.try_wait());
                bail!(
                    "confab-server exited during start: {status:?}\n{}",
                    self.log_tail(20)
                );
            }
            if let Ok(Ok(mut stream)) = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(("127.0.0.1", self.port)),
            )
            .await
            {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = stream.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await;
                let mut buf = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf))
                    .await;
                if buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200") {
                    // Ours answered, not another process on a port ours failed to bind.
                    if self.exited_early() {
                        bail!(
                            "confab-server exited during start; something else answers on port {}",
                            self.port
                        );
                    }
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("confab-server did not become ready on port {}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// kill -9: no shutdown, no flush.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a graceful exit.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("not running");
        };
        if let Some(pid) = child.id() {
            std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()?;
        }
        Ok(tokio::time::timeout(Duration::from_secs(30), child.wait()).await??)
    }

    /// Starts the same server again on the same store.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        self.spawn().await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(name) = self
            .database_url
            .as_deref()
            .filter(|_| self.own_database)
            .and_then(|u| u.rsplit('/').next())
        {
            // Best effort: the database is unique to this test; psql ships with PostgreSQL.
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
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
