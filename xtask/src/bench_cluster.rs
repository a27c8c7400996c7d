//! `cargo xtask bench cluster [loadgen cluster flags]`: 1 and 3 server nodes on one Postgres.
//!
//! Builds the release `confab-server` and the load generator, then runs `loadgen cluster`
//! (bench/src/bin/loadgen/cluster.rs): for each scenario a fresh database on 127.0.0.1:5432
//! (user postgres, trust auth), one node and then three, each with `--node-id`, and
//!
//! - `delivery`: send → push across nodes at 1,000 msg/s paced (p50/p99; same-node on one
//!   node, the baseline run in the same sitting);
//! - `local`: `delivery` on three nodes with every member on its writer's node (what
//!   notifications of documents a node does not hold cost);
//! - `hot`: one conversation with members on every node, as fast as it takes them
//!   (accepted msg/s, commit conflicts per 1,000 messages from each node's /metrics);
//! - `many`: conversations spread over the nodes (accepted msg/s, server CPU per 1,000);
//!
//! then the Postgres probes for the scaling model (`--probes`: NOTIFY commits, listener
//! cost). It prints a table; the JSON lines are appended to `target/bench-cluster.jsonl`.
//! Any flag goes to the generator (`--nodes 1,3,5`, `--scenarios delivery`, `--repeat 2`,
//! `--seconds 5`; `target/release/loadgen cluster --help`). The generator bounds every run
//! and the whole (≈ 2.5 minutes after the build); this task kills it past `LIMIT` anyway.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_server::{build_release, workspace_root, Built};

/// Past this the generator is killed: the bench must end by itself even if a node hangs.
const LIMIT: Duration = Duration::from_secs(420);

pub fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let Built {
        target,
        loadgen,
        server,
    } = build_release(&root)?;
    let mut cmd = Command::new(&loadgen);
    cmd.arg("cluster").arg("--server-bin").arg(&server);
    let given: Vec<&String> = args.iter().filter(|a| a.as_str() != "--").collect();
    let has = |flag: &str| {
        given
            .iter()
            .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
    };
    if !has("--json") {
        cmd.arg("--json").arg(target.join("bench-cluster.jsonl"));
    }
    if !has("--probes") && !has("--no-probes") {
        cmd.arg("--probes");
    }
    cmd.args(given.iter().filter(|a| a.as_str() != "--no-probes"));
    eprintln!("+ {cmd:?}");
    let mut child = cmd
        .current_dir(&root)
        .spawn()
        .with_context(|| format!("could not start {}", loadgen.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > LIMIT {
            // The nodes are the generator's children; killing it would orphan them, so
            // they go first (only its own children, found by parent pid).
            for pid in children_of(child.id()) {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the cluster benchmark ran past {} s and was stopped (its databases \
                 confab_cluster_* may be left behind)",
                LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        bail!("the cluster benchmark failed ({status})");
    }
    Ok(())
}

/// Pids whose parent is `parent` (from /proc/<pid>/stat).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The command name may hold spaces; the parent pid is the second field
                    // after its closing parenthesis.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}
