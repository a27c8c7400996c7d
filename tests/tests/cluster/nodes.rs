//! Several `confab-server` processes on one Postgres database, the database itself, and the
//! node-side observations the tests make (metrics, `/readyz`, the LISTEN backends).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use confab_e2e::pg_cluster::PgCluster;
use confab_e2e::TestServer;
use confab_testkit::pg::{self, Template};
use sqlx::{Connection, PgConnection, Row};

use crate::common::{http, HttpAnswer};

/// Where the nodes' database lives.
enum Backing {
    /// A fresh database on the machine's cluster (127.0.0.1:5432), dropped at the end.
    Machine { name: String },
    /// A private cluster of this test (server settings of its own), stopped when dropped.
    Private { _cluster: PgCluster },
}

/// N nodes on one database. Fields drop in order: the nodes stop before their database goes.
pub struct Nodes {
    pub nodes: Vec<TestServer>,
    /// `--node-id` of each node, unique on the machine: several test processes may share
    /// the machine's Postgres, and a test finds a node's LISTEN backend by this name.
    pub ids: Vec<String>,
    pub url: String,
    backing: Backing,
}

static STARTED: AtomicU32 = AtomicU32::new(0);

async fn private_cluster(settings: &'static [&'static str]) -> Result<PgCluster> {
    tokio::task::spawn_blocking(move || PgCluster::start_with(settings))
        .await?
        .context(
            "a private Postgres cluster (initdb on its own port) is needed: run as root \
             with the PostgreSQL server installed (apt-get install postgresql)",
        )
}

impl Nodes {
    /// `n` nodes on a fresh database of the machine's Postgres.
    pub async fn on_fresh_database(n: usize) -> Result<Self> {
        Self::on_fresh_database_with(n, &[]).await
    }

    /// `n` nodes on a fresh database of the machine's Postgres, each started with `args`
    /// as well.
    pub async fn on_fresh_database_with(n: usize, args: &[&str]) -> Result<Self> {
        let url = pg::fresh_database("confab_e2e", Template::Default).await?;
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        Self::start(n, url, false, args, None, Backing::Machine { name }).await
    }

    /// `on_fresh_database_with`, each node's whole output at `level` in its log
    /// ([`TestServer::log`]).
    #[allow(dead_code)] // not every test that includes this file uses it
    pub async fn on_fresh_database_logged(
        n: usize,
        args: &[&str],
        level: &'static str,
    ) -> Result<Self> {
        let url = pg::fresh_database("confab_e2e", Template::Default).await?;
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        Self::start(n, url, false, args, Some(level), Backing::Machine { name }).await
    }

    /// `n` nodes on a private cluster started with extra server `settings`.
    pub async fn on_private_cluster(n: usize, settings: &'static [&'static str]) -> Result<Self> {
        let cluster = private_cluster(settings).await?;
        let url = cluster.url();
        Self::start(
            n,
            url,
            false,
            &[],
            None,
            Backing::Private { _cluster: cluster },
        )
        .await
    }

    /// `n` nodes on a private cluster, each logging in as a role of its own named by its
    /// node id, so that a test can keep one node out of the database (`keep_out`).
    pub async fn on_private_cluster_with_roles(n: usize) -> Result<Self> {
        let cluster = private_cluster(&[]).await?;
        let url = cluster.url();
        Self::start(
            n,
            url,
            true,
            &[],
            None,
            Backing::Private { _cluster: cluster },
        )
        .await
    }

    async fn start(
        n: usize,
        url: String,
        own_roles: bool,
        args: &[&str],
        log: Option<&'static str>,
        backing: Backing,
    ) -> Result<Self> {
        let run = STARTED.fetch_add(1, Ordering::SeqCst);
        let ids: Vec<String> = (0..n)
            .map(|i| format!("t{}-{run}-n{i}", std::process::id()))
            .collect();
        let mut admin = PgConnection::connect(&url).await?;
        let mut nodes = Vec::with_capacity(n);
        for id in &ids {
            let node_url = if own_roles {
                sqlx::query(&format!("CREATE ROLE \"{id}\" LOGIN SUPERUSER"))
                    .execute(&mut admin)
                    .await?;
                url.replacen("postgres@", &format!("{id}@"), 1)
            } else {
                url.clone()
            };
            let dir = std::env::temp_dir().join(format!("confab-cluster-{id}"));
            let node_args: Vec<&str> = ["--node-id", id.as_str()]
                .into_iter()
                .chain(args.iter().copied())
                .collect();
            let started = match log {
                Some(level) => {
                    TestServer::start_on_with_log(Some(node_url), dir, &node_args, level).await
                }
                None => TestServer::start_on(Some(node_url), dir, &node_args).await,
            };
            let node = started.with_context(|| {
                format!(
                    "starting node {id} with --node-id (does this confab-server know \
                         --node-id, that is, can it run in a cluster?)"
                )
            })?;
            nodes.push(node);
        }
        Ok(Nodes {
            nodes,
            ids,
            url,
            backing,
        })
    }

    /// Keeps node `i` from opening connections to the database (`true`), or lets it again:
    /// its role's LOGIN (nodes started `on_private_cluster_with_roles`). Its open
    /// connections stay.
    pub async fn keep_out(&self, db: &mut PgConnection, i: usize, out: bool) -> Result<()> {
        let login = if out { "NOLOGIN" } else { "LOGIN" };
        sqlx::query(&format!("ALTER ROLE \"{}\" {login}", self.ids[i]))
            .execute(&mut *db)
            .await?;
        Ok(())
    }

    /// A connection to the nodes' database (the test's own, independent of the servers).
    pub async fn db(&self) -> Result<PgConnection> {
        PgConnection::connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }

    /// The stored log of `doc` as the database has it: seq → hash, checked to run 1..=n with
    /// no change twice.
    pub async fn stored_log(&self, doc: &str) -> Result<BTreeMap<u64, [u8; 32]>> {
        let mut db = self.db().await?;
        let rows = sqlx::query("SELECT seq, hash FROM changes WHERE doc_id = $1 ORDER BY seq")
            .bind(doc)
            .fetch_all(&mut db)
            .await?;
        let mut log = BTreeMap::new();
        let mut hashes = HashSet::new();
        for (i, row) in rows.iter().enumerate() {
            let seq: i64 = row.try_get("seq")?;
            let hash: Vec<u8> = row.try_get("hash")?;
            let hash: [u8; 32] = hash.as_slice().try_into().context("a 32-byte hash")?;
            ensure!(seq == i as i64 + 1, "{doc}: seq {seq} at position {i}");
            ensure!(hashes.insert(hash), "{doc}: a change is stored twice");
            log.insert(seq as u64, hash);
        }
        Ok(log)
    }

    pub fn ws_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.ws_url()).collect()
    }

    /// Node `i`'s LISTEN backend (`application_name` = `confab-listen:<node-id>`), if it
    /// has one: its process id and start (µs since the epoch, Postgres's clock: this
    /// machine's).
    pub async fn listener(&self, db: &mut PgConnection, i: usize) -> Result<Option<(i32, i64)>> {
        let rows = sqlx::query(
            "SELECT pid, (extract(epoch FROM backend_start) * 1000000)::int8 AS started \
             FROM pg_stat_activity WHERE application_name = $1 \
             AND datname = current_database()",
        )
        .bind(format!("confab-listen:{}", self.ids[i]))
        .fetch_all(&mut *db)
        .await?;
        match rows.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((one.try_get("pid")?, one.try_get("started")?))),
            more => bail!(
                "node {} has {} LISTEN backends, expected one",
                self.ids[i],
                more.len()
            ),
        }
    }

    /// The process id of node `i`'s LISTEN backend, if it has one.
    pub async fn listener_pid(&self, db: &mut PgConnection, i: usize) -> Result<Option<i32>> {
        Ok(self.listener(db, i).await?.map(|(pid, _)| pid))
    }

    /// Waits (up to `bound`) for node `i`'s LISTEN backend other than `old`; its start (µs
    /// since the epoch).
    pub async fn relistened(
        &self,
        db: &mut PgConnection,
        i: usize,
        old: i32,
        bound: Duration,
    ) -> Result<i64> {
        let start = std::time::Instant::now();
        loop {
            if let Some((pid, started)) = self.listener(db, i).await? {
                if pid != old {
                    return Ok(started);
                }
            }
            ensure!(
                start.elapsed() < bound,
                "node {} did not LISTEN again within {bound:?}",
                self.ids[i]
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Terminates node `i`'s LISTEN backend; fails when it has none.
    pub async fn cut_listener(&self, db: &mut PgConnection, i: usize) -> Result<i32> {
        let Some(pid) = self.listener_pid(db, i).await? else {
            bail!(
                "node {} has no backend named confab-listen:{} in pg_stat_activity: it does \
                 not LISTEN (a build without cluster delivery?)",
                self.ids[i],
                self.ids[i]
            );
        };
        let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut *db)
            .await?;
        if !done {
            bail!("pg_terminate_backend({pid}) of node {} failed", self.ids[i]);
        }
        Ok(pid)
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // Stop every node before the database goes (a node would log errors meanwhile).
        self.nodes.clear();
        if let Backing::Machine { name } = &self.backing {
            // Best effort, as TestServer does for its own databases; psql ships with Postgres.
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
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// The `/metrics` text of `node`.
pub async fn metrics(node: &TestServer) -> String {
    let HttpAnswer { status, body, .. } = http(node, "GET", "/metrics", "alice", None).await;
    assert_eq!(status, 200, "/metrics answered {status}: {body}");
    body
}

/// The value of the series `name` in a `/metrics` text (summed over its label sets);
/// `None` when the server does not export it.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = match rest.chars().next() {
            Some(' ') => rest.trim(),
            Some('{') => rest.rsplit_once('}').map_or("", |(_, v)| v.trim()),
            _ => continue,
        };
        if let Ok(v) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// `metric`, failing with what is missing when the server does not export it.
pub async fn cluster_metric(node: &TestServer, name: &str) -> f64 {
    let text = metrics(node).await;
    metric(&text, name).unwrap_or_else(|| {
        panic!("{name} is not on /metrics (a build without the cluster metrics?)")
    })
}

/// `GET /readyz` at `addr`: the status, `None` without an answer within 1 s.
pub async fn readyz_at(addr: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..buf.len().min(16)]).into_owned();
        head.split(' ').nth(1)?.parse::<u16>().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}

/// Polls `/readyz` of the nodes on `ports` every 100 ms until `stop` is set; each node's
/// answers other than 200 (`None`: no answer within 1 s).
pub fn watch_ready(
    ports: Vec<u16>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u16, Option<u16>)>> {
    tokio::spawn(async move {
        let mut bad = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            for port in &ports {
                match readyz_at(&format!("127.0.0.1:{port}")).await {
                    Some(200) => {}
                    other => bad.push((*port, other)),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bad
    })
}
