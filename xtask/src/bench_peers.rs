//! `cargo xtask bench peers`: Confab beside its peers, in one run, on 127.0.0.1.
//!
//! Installs y-websocket, Hocuspocus and automerge-repo from npm into `tests/peers/node_modules`
//! (`npm ci`: the versions pinned in `tests/peers/package-lock.json`) when they are not there,
//! builds the release server and load generator, then runs the two-client workloads of the
//! load generator, *burst* and *paced*, against Confab (`loadgen --clients 2`, durable commits
//! and every change checked) and against each peer and a raw WebSocket relay
//! (`tests/peers/bench.mjs`, the same message counts, batch, window, rate and duration),
//! round after round so that all of them share the machine's minutes. Prints the medians
//! and the three target ratios (docs/BENCHMARKS.md, "Peers"). Every run is bounded
//! (`--limit-s`, a kill after it).
//!
//! Flags: `--repeat K` rounds (1), `--backend postgres|sqlite` (postgres), `--burst-messages
//! N` (20000), `--seconds S` of paced load (10), `--limit-s L` per burst run (30), `--peers
//! relay,y-websocket,hocuspocus,automerge-repo`. JSON lines go to `target/bench-peers.jsonl`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::bench_server::{build_release, workspace_root, Built};

const PEERS: &[&str] = &["relay", "y-websocket", "hocuspocus", "automerge-repo"];
/// The targets: Confab's burst ≥ 3× y-websocket's and ≥ 60% of the relay's, its paced p50
/// within 1 ms of the relay's.
const BURST_VS_YWS: f64 = 3.0;
const BURST_VS_RELAY: f64 = 0.6;
const PACED_P50_OVER_RELAY_MS: f64 = 1.0;

struct Opts {
    repeat: usize,
    backend: String,
    burst_messages: usize,
    seconds: f64,
    limit_s: u64,
    peers: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        repeat: 1,
        backend: "postgres".into(),
        burst_messages: 20_000,
        seconds: 10.0,
        limit_s: 30,
        peers: PEERS.iter().map(|p| (*p).to_owned()).collect(),
    };
    let mut it = args.iter().filter(|a| a.as_str() != "--");
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--repeat" => o.repeat = value()?.parse()?,
            "--backend" => o.backend = value()?.clone(),
            "--burst-messages" => o.burst_messages = value()?.parse()?,
            "--seconds" => o.seconds = value()?.parse()?,
            "--limit-s" => o.limit_s = value()?.parse()?,
            "--peers" => o.peers = value()?.split(',').map(str::to_owned).collect(),
            other => bail!("unknown flag {other} (see xtask/src/bench_peers.rs)"),
        }
    }
    if let Some(p) = o.peers.iter().find(|p| !PEERS.contains(&p.as_str())) {
        bail!("unknown peer {p}: one of {}", PEERS.join(", "));
    }
    Ok(o)
}

/// One result: system, mode, and the numbers compared.
#[derive(Debug, Clone)]
struct Sample {
    system: String,
    mode: &'static str,
    /// Burst: messages/s (Confab: acked; peers: arrived at the other client).
    rate: Option<f64>,
    /// Paced: send → arrival at the other client.
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// Not all sent messages arrived (burst: by the time limit; paced: after the drain).
    short: Option<String>,
    line: Value,
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root = workspace_root();
    let dir = root.join("tests/peers");
    install(&dir)?;
    let Built {
        target,
        loadgen,
        server,
    } = build_release(&root)?;
    let jsonl = target.join("bench-peers.jsonl");
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&jsonl)
        .with_context(|| format!("opening {}", jsonl.display()))?;
    let mut samples = Vec::new();
    for round in 1..=o.repeat {
        eprintln!("== round {round} of {}", o.repeat);
        for s in confab(&o, &loadgen, &server, &target)? {
            writeln!(out, "{}", s.line)?;
            samples.push(s);
        }
        for peer in &o.peers {
            for mode in ["burst", "paced"] {
                let s = peer_run(&o, &dir, peer, mode)?;
                writeln!(out, "{}", s.line)?;
                samples.push(s);
            }
        }
    }
    report(&o, &samples);
    eprintln!("JSON lines appended to {}", jsonl.display());
    Ok(())
}

/// `npm ci` into `tests/peers` unless its packages are installed. Some registries (this
/// project's mirror among them) lack the platform builds that `cbor-extract` lists as
/// optional; npm then leaves them out of the lock file and `npm ci` refuses the lock as out
/// of sync, so the same locked versions are installed with `npm install --no-save`.
fn install(dir: &Path) -> Result<()> {
    if dir.join("node_modules/.package-lock.json").exists() {
        return Ok(());
    }
    let npm = |args: &[&str]| -> Result<bool> {
        eprintln!("+ npm {} (in {})", args.join(" "), dir.display());
        Ok(Command::new("npm")
            .args(args)
            .current_dir(dir)
            .status()
            .context("could not start npm (install Node.js and npm: apt-get install nodejs npm)")?
            .success())
    };
    if npm(&["ci", "--no-audit", "--no-fund"])? {
        return Ok(());
    }
    if !npm(&["install", "--no-save", "--no-audit", "--no-fund"])? {
        bail!("npm ci and npm install in {} failed", dir.display());
    }
    Ok(())
}

/// Waits for `child` at most `limit`, then kills it; returns its stdout.
fn bounded(mut child: Child, limit: Duration, what: &str) -> Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{what} took longer than {} s and was stopped",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("{what} failed ({})", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn confab(o: &Opts, loadgen: &Path, server: &Path, target: &Path) -> Result<Vec<Sample>> {
    let json = target.join("bench-peers-confab.jsonl");
    let _ = std::fs::remove_file(&json);
    let args = [
        "--server-bin".to_owned(),
        server.display().to_string(),
        "--backends".into(),
        o.backend.clone(),
        "--clients".into(),
        "2".into(),
        "--modes".into(),
        "burst,paced".into(),
        "--burst-messages".into(),
        o.burst_messages.to_string(),
        "--seconds".into(),
        o.seconds.to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    eprintln!("+ {} {}", loadgen.display(), args.join(" "));
    let child = Command::new(loadgen)
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("could not start {}", loadgen.display()))?;
    bounded(child, Duration::from_secs(400), "loadgen")?;
    let text = std::fs::read_to_string(&json)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)?;
        let burst = v["mode"] == "burst";
        let sent = v["messages_sent"].as_u64().unwrap_or(0);
        let acked = v["messages_acked"].as_u64().unwrap_or(0);
        let missing = v["deliveries_missing"].as_u64().unwrap_or(0);
        let short = if acked < sent || missing > 0 {
            Some(format!(
                "{acked} of {sent} acked, {missing} deliveries missing"
            ))
        } else {
            None
        };
        out.push(Sample {
            system: format!("confab ({})", o.backend),
            mode: if burst { "burst" } else { "paced" },
            rate: burst.then(|| v["accepted_per_s"].as_f64()).flatten(),
            p50_ms: (!burst).then(|| v["delivery"]["p50_ms"].as_f64()).flatten(),
            p99_ms: (!burst).then(|| v["delivery"]["p99_ms"].as_f64()).flatten(),
            short,
            line: v,
        });
    }
    Ok(out)
}

fn peer_run(o: &Opts, dir: &Path, peer: &str, mode: &'static str) -> Result<Sample> {
    let script: PathBuf = dir.join("bench.mjs");
    let args = [
        script.display().to_string(),
        "--peer".into(),
        peer.into(),
        "--mode".into(),
        mode.into(),
        "--messages".into(),
        o.burst_messages.to_string(),
        "--seconds".into(),
        o.seconds.to_string(),
        "--limit-s".into(),
        o.limit_s.to_string(),
    ];
    eprintln!("+ node {}", args.join(" "));
    let child = Command::new("node")
        .args(&args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start node")?;
    // Paced: its seconds, the 5 s drain, start-up; burst: its limit. A peer that cannot
    // keep up is stopped here rather than waited for.
    let limit = o.limit_s + o.seconds.ceil() as u64 + 30;
    let stdout = match bounded(child, Duration::from_secs(limit), &format!("{peer} {mode}")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(Sample {
                system: peer.into(),
                mode,
                rate: None,
                p50_ms: None,
                p99_ms: None,
                short: Some(e.to_string()),
                line: serde_json::json!({"peer": peer, "mode": mode, "error": e.to_string()}),
            });
        }
    };
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("{peer} {mode} printed no result"))?;
    let v: Value = serde_json::from_str(line)?;
    let sent = v["messages_sent"].as_u64().unwrap_or(0);
    let delivered = v["delivered"].as_u64().unwrap_or(0);
    let expected = if mode == "burst" {
        o.burst_messages as u64
    } else {
        sent
    };
    Ok(Sample {
        system: peer.into(),
        mode,
        rate: (mode == "burst").then(|| v["per_s"].as_f64()).flatten(),
        p50_ms: v["p50_ms"].as_f64(),
        p99_ms: v["p99_ms"].as_f64(),
        short: (delivered < expected).then(|| format!("{delivered} of {expected} arrived")),
        line: v,
    })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn values(samples: &[Sample], system: &str, mode: &str, f: fn(&Sample) -> Option<f64>) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.system == system && s.mode == mode)
        .filter_map(f)
        .collect()
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:.digits$}"))
}

fn report(o: &Opts, samples: &[Sample]) {
    let confab = format!("confab ({})", o.backend);
    let mut systems = vec![confab.clone()];
    systems.extend(o.peers.iter().cloned());
    println!();
    println!(
        "two clients, {} burst messages (16 per frame, ≤ 256 in flight each), paced 1,000 msg/s for {} s; medians of {} round(s)",
        o.burst_messages, o.seconds, o.repeat
    );
    println!("| system | burst msg/s (runs) | paced p50 / p99 ms (runs of p50) | short |");
    println!("|---|---|---|---|");
    for sys in &systems {
        let rates = values(samples, sys, "burst", |s| s.rate);
        let p50s = values(samples, sys, "paced", |s| s.p50_ms);
        let p99 = median(values(samples, sys, "paced", |s| s.p99_ms));
        let runs = |v: &[f64], d: usize| {
            v.iter()
                .map(|x| format!("{x:.d$}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let short: Vec<String> = samples
            .iter()
            .filter(|s| &s.system == sys)
            .filter_map(|s| s.short.as_ref().map(|w| format!("{}: {w}", s.mode)))
            .collect();
        println!(
            "| {sys} | {} ({}) | {} / {} ({}) | {} |",
            fmt(median(rates.clone()), 0),
            runs(&rates, 0),
            fmt(median(p50s.clone()), 2),
            fmt(p99, 2),
            runs(&p50s, 2),
            if short.is_empty() {
                "—".into()
            } else {
                short.join("; ")
            }
        );
    }
    let burst = |sys: &str| median(values(samples, sys, "burst", |s| s.rate));
    let p50 = |sys: &str| median(values(samples, sys, "paced", |s| s.p50_ms));
    println!();
    verdict(
        "Confab burst / y-websocket burst",
        burst(&confab).zip(burst("y-websocket")).map(|(c, y)| c / y),
        |r| format!("{r:.2}×"),
        |r| r >= BURST_VS_YWS,
        &format!("≥ {BURST_VS_YWS}×"),
    );
    verdict(
        "Confab burst / relay burst",
        burst(&confab).zip(burst("relay")).map(|(c, r)| c / r),
        |r| format!("{:.0}%", r * 100.0),
        |r| r >= BURST_VS_RELAY,
        &format!("≥ {:.0}%", BURST_VS_RELAY * 100.0),
    );
    verdict(
        "Confab paced p50 − relay paced p50",
        p50(&confab).zip(p50("relay")).map(|(c, r)| c - r),
        |d| format!("{d:+.2} ms"),
        |d| d <= PACED_P50_OVER_RELAY_MS,
        &format!("≤ {PACED_P50_OVER_RELAY_MS} ms"),
    );
}

fn verdict(
    what: &str,
    value: Option<f64>,
    show: impl Fn(f64) -> String,
    ok: impl Fn(f64) -> bool,
    target: &str,
) {
    match value {
        Some(v) => println!(
            "{what}: {} (target {target}): {}",
            show(v),
            if ok(v) { "met" } else { "NOT met" }
        ),
        None => println!("{what}: not measured (a run failed)"),
    }
}
