//! The end-to-end benchmarks: binaries of confab-bench (`bench/`) run against the release
//! server.
//!
//! - `cargo xtask bench catchup [catchup flags]`: a client that missed 10,000 messages
//!   reconnects; time and bytes on the wire (targets ≤ 150 ms and ≤ 1 MB), in the clear and
//!   in an end-to-end encrypted conversation in the same sitting (target ≤ 2× the plaintext
//!   time). Flags go to the binary (`--messages N`, `--before N`, `--writers N`, `--runs N`,
//!   `--modes plain`, `--backends sqlite`; `target/release/catchup --help`).
//! - `cargo xtask bench flood [flood flags]`: does rejected work hold up accepted work? (a
//!   flood of 10,000 rejected changes from another account should add ≤ 10 ms to a member's
//!   ack p99 in the same conversation). Runs the baseline, the flood of well-formed changes
//!   and the garbage flood. Flags go to the binary (`--backends sqlite`, `--scenarios
//!   baseline,flood`, `--rate N`, `--seconds S`, `--flood-frames N`, `--flood-changes N`,
//!   `--garbage-frames N`, `--repeat K`; `target/release/flood --help`).
//!
//! - `cargo xtask bench notify [notify flags]`: the notification level `all`: a 1,000-member
//!   group at 50 msg/s and a 10,000-subscriber channel at 1 msg/s for 20 s, nobody
//!   connected; webhook delivery p50/p99 (commit to receipt at a local receiver) and server
//!   CPU per 1,000 notifications (`--seconds S`, `--group-members N`, `--group-rate R`,
//!   `--channel-subscribers N`, `--channel-rate R`, `--backends postgres`;
//!   `target/release/notify --help`).
//!
//! All run on SQLite and Postgres (127.0.0.1:5432) and append their JSON lines to
//! `target/bench-<name>.jsonl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Builds the release server and the bench binaries, then runs `target/release/<bin>` with
/// `args` against that server.
pub fn run(bin: &str, args: &[String]) -> Result<()> {
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
            "-p",
            "confab-bench",
            "--bins",
        ],
    )?;
    let release = target.join("release");
    let mut cmd = Command::new(release.join(bin));
    cmd.arg("--server-bin").arg(release.join("confab-server"));
    if !args.iter().any(|a| a.starts_with("--json")) {
        cmd.arg("--json")
            .arg(target.join(format!("bench-{bin}.jsonl")));
    }
    cmd.args(args.iter().filter(|a| a.as_str() != "--"));
    eprintln!("+ {cmd:?}");
    let status = cmd
        .current_dir(&root)
        .status()
        .with_context(|| format!("could not start the {bin} benchmark"))?;
    if !status.success() {
        bail!("the {bin} benchmark failed ({status})");
    }
    Ok(())
}
