//! A private PostgreSQL cluster for fault tests: made with `initdb` in a temp folder owned
//! by the `postgres` user, on its own port, so a test can stop it, kill it and start it
//! again while the machine's cluster (5432) stays up. Stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running (or stopped) private cluster.
#[derive(Debug)]
pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// Extra `name=value` server settings given to every start (e.g.
    /// `track_commit_timestamp=on`, which needs a restart and so a cluster of its own).
    settings: Vec<String>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn postgres_bin() -> Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context(
            "no /usr/lib/postgresql: install the PostgreSQL server (apt-get install postgresql) \
             for the fault tests",
        )?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!("no initdb under /usr/lib/postgresql/*/bin: install the PostgreSQL server"),
    }
}

/// Runs `command` as the `postgres` user (initdb and pg_ctl refuse root).
fn as_postgres(command: &str) -> Result<std::process::Output> {
    let output = Command::new("su")
        .args(["postgres", "-s", "/bin/sh", "-c", command])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{command}` as postgres (needs root and su)"))?;
    Ok(output)
}

fn checked(command: &str) -> Result<()> {
    let out = as_postgres(command)?;
    if !out.status.success() {
        bail!(
            "`{command}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl PgCluster {
    /// Makes a cluster in a fresh temp folder and starts it.
    pub fn start() -> Result<Self> {
        Self::start_in(&std::env::temp_dir())
    }

    /// Makes a cluster in a fresh folder under `parent` (e.g. a small tmpfs) and starts it.
    pub fn start_in(parent: &Path) -> Result<Self> {
        Self::start_in_with(parent, &[])
    }

    /// Makes a cluster in a fresh temp folder and starts it with extra `name=value`
    /// settings (`postgres -c`), kept for every later start. They go through a shell
    /// command line: no spaces or quotes.
    pub fn start_with(settings: &[&str]) -> Result<Self> {
        Self::start_in_with(&std::env::temp_dir(), settings)
    }

    fn start_in_with(parent: &Path, settings: &[&str]) -> Result<Self> {
        let bin = postgres_bin()?;
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = parent.join(format!(
            "confab-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()?;
        if !status.success() {
            bail!(
                "chown postgres {} failed (the fault tests run as root)",
                dir.display()
            );
        }
        let cluster = PgCluster {
            dir,
            port: free_port()?,
            bin,
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        checked(&format!(
            "{} -D {} -U postgres -A trust --no-sync -E UTF8 >/dev/null",
            cluster.bin.join("initdb").display(),
            cluster.data().display()
        ))?;
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A server data folder for a test on this cluster, named after both (several tests
    /// of one binary run at once, each on its own cluster).
    pub fn server_dir(&self, test: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "confab-{test}-{}-{}",
            std::process::id(),
            self.port
        ))
    }

    /// A URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &str) -> String {
        format!(
            "{} -D {} {args}",
            self.bin.join("pg_ctl").display(),
            self.data().display()
        )
    }

    /// Starts the cluster (again) and waits until it takes connections. After a `kill -9`
    /// the old backends may hold shared memory for a moment: retried for 20 s.
    pub fn start_again(&self) -> Result<()> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        for setting in &self.settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let log = self.dir.join("log");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = as_postgres(&self.pg_ctl(&format!(
                "-o \"{options}\" -l {} -w -t 15 start",
                log.display()
            )))?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                bail!(
                    "pg_ctl start failed: {}{}\n{tail}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the postmaster is running (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        as_postgres(&self.pg_ctl("status"))
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// `pg_ctl stop -m fast`: backends are terminated, the cluster shuts down cleanly.
    pub fn stop_fast(&self) -> Result<()> {
        checked(&self.pg_ctl("-m fast -w stop"))
    }

    /// `pg_ctl stop -m immediate`: every backend quits at once (SIGQUIT), mid-statement,
    /// committing nothing more; the next start recovers from the WAL.
    pub fn stop_immediate(&self) -> Result<()> {
        checked(&self.pg_ctl("-m immediate -w stop"))
    }

    /// `kill -9` of the postmaster (no shutdown at all); waits until its port is closed.
    pub fn kill_postmaster(&self) -> Result<()> {
        let pid_file = self.data().join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .context("no pid in postmaster.pid")?;
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -9 {pid} failed");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: the test is over, nothing in it needs to survive.
        let _ = as_postgres(&self.pg_ctl("-m immediate -w stop"));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
