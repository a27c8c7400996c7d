//! `cargo xtask bench server [--quick] [loadgen flags]`: the server load benchmark.
//!
//! Builds the release `confab-server` and the load generator (`loadgen`, a binary of the
//! confab-e2e crate), then runs the generator: native clients on 127.0.0.1 in one group
//! conversation, 2, 10 and 50 clients, burst and paced (1,000 msg/s in total), on SQLite
//! and on Postgres (127.0.0.1:5432, user postgres, trust auth). It prints a table and one
//! JSON line per run; the JSON lines are also appended to `target/bench-server.jsonl`.
//!
//! - `--quick`: a smoke run (2 and 10 clients, 2,000 burst messages, 3 s paced).
//! - Any other flag goes to the generator as is (`--backends sqlite`, `--clients 2,10`,
//!   `--modes burst`, `--burst-messages N`, `--batch N`, `--window N`, `--rate N`,
//!   `--seconds S`, ...); `target/release/loadgen --help` lists them.
//!
//! Every run starts its own server on a fresh store and stops it; each run is bounded
//! (`--run-timeout-s`, 180 s by default) and the full matrix aims at ≤ 10 minutes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn run(args: &[String]) -> Result<()> {
    run_in(&workspace_root(), args)
}

/// The release server and load generator of the workspace at `root`, built.
pub(crate) struct Built {
    pub target: PathBuf,
    pub loadgen: PathBuf,
    pub server: PathBuf,
}

/// Builds the release `confab-server` and `loadgen` (every server benchmark runs them).
pub(crate) fn build_release(root: &Path) -> Result<Built> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = [
        "build",
        "--release",
        "-p",
        "confab-server",
        "--bin",
        "confab-server",
        "-p",
        "confab-e2e",
        "--bin",
        "loadgen",
    ];
    eprintln!("+ {cargo} {}", build.join(" "));
    let status = Command::new(&cargo)
        .args(build)
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start {cargo}"))?;
    if !status.success() {
        bail!("building the release server and load generator failed ({status})");
    }
    let release = target.join("release");
    Ok(Built {
        loadgen: release.join("loadgen"),
        server: release.join("confab-server"),
        target,
    })
}

/// `run` for the workspace at `root`.
pub fn run_in(root: &Path, args: &[String]) -> Result<()> {
    let Built {
        target,
        loadgen,
        server,
    } = build_release(root)?;
    let mut cmd = Command::new(&loadgen);
    cmd.arg("--server-bin").arg(&server);
    let has_json = args
        .iter()
        .any(|a| a == "--json" || a.starts_with("--json="));
    if !has_json {
        cmd.arg("--json").arg(target.join("bench-server.jsonl"));
    }
    cmd.args(args.iter().filter(|a| a.as_str() != "--"));
    eprintln!(
        "+ {} --server-bin {} {}",
        loadgen.display(),
        server.display(),
        args.join(" ")
    );
    let status = cmd
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start {}", loadgen.display()))?;
    if !status.success() {
        bail!("the server benchmark failed ({status})");
    }
    Ok(())
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf()
}
