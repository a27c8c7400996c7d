//! `cargo xtask bench server [--quick] [loadgen flags]`: the server load benchmark.
//!
//! Builds the release `confab-server` and the load generator (`loadgen`, a binary of the
//! confab-bench crate, `bench/`), then runs the generator: native clients on 127.0.0.1 in one group
//! conversation, 2, 10 and 50 clients, burst and paced (1,000 msg/s in total), on SQLite
//! and on Postgres (127.0.0.1:5432, user postgres, trust auth). It prints a table and one
//! JSON line per run; the JSON lines are also appended to `target/bench-server.jsonl`.
//!
//! - `--quick`: a smoke run (2 and 10 clients, 2,000 burst messages, 3 s paced).
//! - Any other flag goes to the generator as is (`--backends sqlite`, `--clients 2,10`,
//!   `--modes burst`, `--burst-messages N`, `--batch N`, `--window N`, `--rate N`,
//!   `--seconds S`, ...); `target/release/loadgen --help` lists them.
//! - `--modes burst,sealed`: the burst in the clear and in an end-to-end encrypted
//!   conversation (sealed messages), with their ratio (target ≥ 80%).
//!
//! Every run starts its own server on a fresh store and stops it; each run is bounded
//! (`--run-timeout-s`, 180 s by default) and the full matrix aims at ≤ 10 minutes.
//!
//! `--scenario many [flags]` runs `loadgen many` instead (docs/BENCHMARKS.md, "Many at
//! once"): 5,000
//! connections, 1,000 small conversations, a 1,000-member group and a 10,000-subscriber
//! channel at 2,000 msg/s for 60 s on Postgres (`--quick`: a tenth of that for 10 s). Its
//! JSON line goes to `target/bench-many.jsonl`. `--scenario group` (or no `--scenario`) is
//! the matrix above.

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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = [
        "build",
        "--release",
        "-p",
        "confab-server",
        "--bin",
        "confab-server",
        "-p",
        "confab-bench",
        "--bin",
        "loadgen",
    ];
    crate::workspace::run(root, &cargo, &build, &[])?;
    let server = crate::workspace::release_bin(root, "confab-server");
    let release = server.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Built {
        loadgen: release.join("loadgen"),
        target: release.parent().map(Path::to_path_buf).unwrap_or_default(),
        server,
    })
}

/// `run` for the workspace at `root`.
pub fn run_in(root: &Path, args: &[String]) -> Result<()> {
    let (scenario, args) = split_scenario(args)?;
    let Built {
        target,
        loadgen,
        server,
    } = build_release(root)?;
    let mut cmd = Command::new(&loadgen);
    // `many` is a subcommand of the generator; the default matrix takes the flags as they are.
    let (subcommand, jsonl) = match scenario.as_deref() {
        Some("many") => (Some("many"), "bench-many.jsonl"),
        _ => (None, "bench-server.jsonl"),
    };
    cmd.args(subcommand);
    cmd.arg("--server-bin").arg(&server);
    let has_json = args
        .iter()
        .any(|a| a == "--json" || a.starts_with("--json="));
    if !has_json {
        cmd.arg("--json").arg(target.join(jsonl));
    }
    cmd.args(args.iter().filter(|a| a.as_str() != "--"));
    eprintln!(
        "+ {} {}--server-bin {} {}",
        loadgen.display(),
        subcommand.map_or(String::new(), |s| format!("{s} ")),
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

/// Takes `--scenario NAME` (or `--scenario=NAME`) out of the flags: `many`, or `group` for
/// the default matrix.
fn split_scenario(args: &[String]) -> Result<(Option<String>, Vec<String>)> {
    let mut scenario = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--scenario" {
            let Some(name) = it.next() else {
                bail!("--scenario needs a name: many or group");
            };
            scenario = Some(name.clone());
        } else if let Some(name) = a.strip_prefix("--scenario=") {
            scenario = Some(name.to_owned());
        } else {
            rest.push(a.clone());
        }
    }
    match scenario.as_deref() {
        None | Some("group") => Ok((None, rest)),
        Some("many") => Ok((scenario, rest)),
        Some(other) => bail!("unknown scenario {other:?}: many or group"),
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_scenario_flag_is_taken_out() -> Result<()> {
        let (s, rest) = split_scenario(&strings(&["--scenario", "many", "--quick"]))?;
        assert_eq!(s.as_deref(), Some("many"));
        assert_eq!(rest, strings(&["--quick"]));
        let (s, rest) = split_scenario(&strings(&["--scenario=group", "--clients", "2"]))?;
        assert_eq!(s, None);
        assert_eq!(rest, strings(&["--clients", "2"]));
        assert!(split_scenario(&strings(&["--scenario", "nope"])).is_err());
        assert!(split_scenario(&strings(&["--scenario"])).is_err());
        Ok(())
    }
}
