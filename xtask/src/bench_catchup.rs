//! `cargo xtask bench catchup [catchup flags]`: the catch-up benchmark of issue 4 — a client
//! that missed 10,000 messages reconnects; time and bytes on the wire (targets ≤ 150 ms and
//! ≤ 1 MB). Builds the release `confab-server` and the `catchup` binary of confab-e2e, runs it
//! on SQLite and Postgres (127.0.0.1:5432) and appends its JSON lines to
//! `target/bench-catchup.jsonl`. Flags go to the binary (`--messages N`, `--before N`,
//! `--writers N`, `--runs N`, `--backends sqlite`; `target/release/catchup --help`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn run(args: &[String]) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // Both packages' binaries, release: the server and the benchmark (and the load generator).
    crate::run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "confab-server",
            "-p",
            "confab-e2e",
            "--bins",
        ],
    )?;
    let release = target.join("release");
    let mut cmd = Command::new(release.join("catchup"));
    cmd.arg("--server-bin").arg(release.join("confab-server"));
    if !args.iter().any(|a| a.starts_with("--json")) {
        cmd.arg("--json").arg(target.join("bench-catchup.jsonl"));
    }
    cmd.args(args.iter().filter(|a| a.as_str() != "--"));
    eprintln!("+ {cmd:?}");
    let status = cmd
        .current_dir(&root)
        .status()
        .context("could not start the catchup benchmark")?;
    if !status.success() {
        bail!("the catch-up benchmark failed ({status})");
    }
    Ok(())
}
