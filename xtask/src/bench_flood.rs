//! `cargo xtask bench flood [flood flags]`: does rejected work hold up accepted work? (issue
//! 13: a flood of 10,000 rejected changes from another account adds ≤ 10 ms to a member's ack
//! p99 in the same conversation). Builds the release `confab-server` and the `flood` binary
//! of confab-e2e, runs the baseline, the flood of well-formed changes and the garbage flood
//! on SQLite and Postgres (127.0.0.1:5432), and appends its JSON lines to
//! `target/bench-flood.jsonl`. Flags go to the binary (`--backends sqlite`, `--scenarios
//! baseline,flood`, `--rate N`, `--seconds S`, `--flood-frames N`, `--flood-changes N`,
//! `--garbage-frames N`, `--repeat K`; `target/release/flood --help`).

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
    crate::run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "confab-server",
            "--bin",
            "confab-server",
            "-p",
            "confab-e2e",
            "--bin",
            "flood",
        ],
    )?;
    let release = target.join("release");
    let mut cmd = Command::new(release.join("flood"));
    cmd.arg("--server-bin").arg(release.join("confab-server"));
    if !args.iter().any(|a| a.starts_with("--json")) {
        cmd.arg("--json").arg(target.join("bench-flood.jsonl"));
    }
    cmd.args(args.iter().filter(|a| a.as_str() != "--"));
    eprintln!("+ {cmd:?}");
    let status = cmd
        .current_dir(&root)
        .status()
        .context("could not start the flood benchmark")?;
    if !status.success() {
        bail!("the flood benchmark failed ({status})");
    }
    Ok(())
}
