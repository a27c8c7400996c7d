//! How busy and how fast the machine was during a run, measured next to it: latency on a
//! shared VM moves with the host (CPU steal, disk flushes), so every run reports what the
//! machine gave it, and two runs can be compared on the same footing.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

/// Samples per probe: enough for a stable median, short next to a run (~0.3 s).
const SAMPLES: usize = 100;

/// The machine's side of one run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Machine {
    /// CPU time the hypervisor gave to other guests, % of all cores' time during the run.
    pub steal_pct: f64,
    /// Busy CPU (everything but idle, iowait and steal), % of all cores' time during the run.
    pub busy_pct: f64,
    /// Median write of 4 KiB + fdatasync in the run's data folder, just before the run.
    pub disk_flush_ms: f64,
    /// Median `SELECT 1` round trip to Postgres, just before the run (Postgres runs only).
    pub pg_round_trip_ms: Option<f64>,
    /// Median one-row INSERT committed durably on its own, just before the run.
    pub pg_commit_ms: Option<f64>,
    /// Median time to SHA-256 1 MiB on one core, just before the run: the VM's CPU speed.
    pub cpu_ms: f64,
    /// Median round trip of a wake-up between two threads (one wakes the other, which
    /// wakes it back), just before the run. Every hop of a submit is such a wake-up.
    pub wake_us: f64,
}

/// The aggregate `cpu` line of /proc/stat: (busy, steal, total) in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    busy: u64,
    steal: u64,
    total: u64,
}

impl CpuTimes {
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
            return Self::default();
        };
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let field = |i: usize| v.get(i).copied().unwrap_or(0);
        let steal = field(7);
        let idle = field(3) + field(4);
        let total: u64 = v.iter().sum();
        Self {
            busy: total.saturating_sub(idle + steal),
            steal,
            total,
        }
    }

    /// (busy %, steal %) between `self` and `later`.
    pub fn shares_until(&self, later: &Self) -> (f64, f64) {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return (0.0, 0.0);
        }
        let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 * 100.0 / total as f64;
        (pct(later.busy, self.busy), pct(later.steal, self.steal))
    }
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort_unstable();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Median time to write 4 KiB at the end of a file in `dir` and flush it to disk.
pub fn disk_flush_ms(dir: &Path) -> Result<f64> {
    let path = dir.join("flush-probe");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let block = [0x5a_u8; 4096];
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(median_ms(samples))
}

/// Median time to hash 1 MiB with SHA-256 (a fixed piece of CPU work).
pub fn cpu_ms() -> f64 {
    use sha2::{Digest, Sha256};
    let block = vec![0x5a_u8; 1 << 20];
    let samples = (0..20)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(Sha256::digest(std::hint::black_box(&block)));
            started.elapsed()
        })
        .collect();
    median_ms(samples)
}

/// Median round trip of a wake-up between two threads, in microseconds.
pub fn wake_us() -> f64 {
    let (to_echo, echo_in) = std::sync::mpsc::channel::<()>();
    let (to_main, main_in) = std::sync::mpsc::channel::<()>();
    let echo = std::thread::spawn(move || {
        while echo_in.recv().is_ok() {
            if to_main.send(()).is_err() {
                break;
            }
        }
    });
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        // A pause first, so the other thread is asleep when it is woken (as in a run).
        std::thread::sleep(Duration::from_micros(200));
        let started = Instant::now();
        if to_echo.send(()).is_err() || main_in.recv().is_err() {
            break;
        }
        samples.push(started.elapsed());
    }
    drop(to_echo);
    let _ = echo.join();
    median_ms(samples) * 1000.0
}

/// Median `SELECT 1` round trip and median durable one-row commit on `url`'s database. The
/// probe table is dropped again, so the run's storage figures do not count it.
pub async fn pg_probe(url: &str) -> Result<(f64, f64)> {
    use sqlx::{Connection, Executor};
    let mut conn = <sqlx::PgConnection as Connection>::connect(url).await?;
    conn.execute("CREATE TABLE loadgen_probe (n int8 NOT NULL)")
        .await?;
    let mut trips = Vec::with_capacity(SAMPLES);
    let mut commits = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES as i64 {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        trips.push(started.elapsed());
        let started = Instant::now();
        sqlx::query("INSERT INTO loadgen_probe VALUES ($1)")
            .bind(n)
            .execute(&mut conn)
            .await?;
        commits.push(started.elapsed());
    }
    conn.execute("DROP TABLE loadgen_probe").await?;
    Ok((median_ms(trips), median_ms(commits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_busy_and_steal_over_the_interval() {
        let before = CpuTimes {
            busy: 100,
            steal: 10,
            total: 1000,
        };
        let after = CpuTimes {
            busy: 160,
            steal: 30,
            total: 1200,
        };
        let (busy, steal) = before.shares_until(&after);
        assert!((busy - 30.0).abs() < 1e-9, "busy {busy}");
        assert!((steal - 10.0).abs() < 1e-9, "steal {steal}");
        assert_eq!(after.shares_until(&after), (0.0, 0.0));
    }

    #[test]
    fn this_machine_reports_its_cpu_times() {
        let now = CpuTimes::now();
        assert!(now.total > 0, "no aggregate cpu line in /proc/stat");
        assert!(now.busy + now.steal <= now.total);
    }

    #[test]
    fn cpu_and_wake_up_probes_measure_something() {
        let cpu = cpu_ms();
        assert!(cpu > 0.0 && cpu < 1000.0, "hashing 1 MiB took {cpu} ms");
        let wake = wake_us();
        assert!(wake > 0.0 && wake < 100_000.0, "a wake-up took {wake} µs");
    }

    #[test]
    fn disk_flush_probe_cleans_up() {
        let dir = std::env::temp_dir().join(format!("loadgen-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ms = disk_flush_ms(&dir).unwrap();
        assert!(ms > 0.0);
        assert!(!dir.join("flush-probe").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
