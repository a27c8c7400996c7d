//! `cargo xtask <task>`: the project's scripted jobs. Each installs what it needs.
//!
//! - `test`: everything CI checks (commit subjects, format, lints on host and wasm32, tests,
//!   the wasm package in headless Chromium and in Node, the web demo's browser tests, wasm32
//!   build).
//! - `ci`: `test` as CI runs it (same thing; kept for symmetry with `.ci/run`).
//! - `bench [core]`: criterion benchmarks; numbers land in `target/criterion`.
//! - `bench client`: the client engine's send, react, edit and policy verdict in groups of
//!   10, 100 and 1,000 members (median, p99).
//! - `bench server [--quick]`: the load generator against the release server, SQLite and Postgres;
//!   `bench server --scenario many`: 5,000 connections and 1,000+ conversations at once.
//! - `bench catchup`: a client that missed 10,000 messages catches up (time, bytes on the wire).
//! - `bench cut`: cutting a 2,000-message part's history while a writer reacts to it (time,
//!   the writer's stall, bytes per message before and after).
//! - `bench flood`: a member's ack latency while a non-member floods its conversation.
//! - `bench notify`: the level `all`'s fan-out: a 1,000-member group at 50 msg/s and a
//!   10,000-subscriber channel at 1 msg/s; webhook delivery p99 and server CPU per 1,000
//!   notifications.
//! - `bench cost [--store sqlite|postgres|both] [--write-baseline] [--check]`: instructions
//!   per accepted message through the server, per stage, under callgrind; `--check` is
//!   `test`'s guard against the baseline in `bench/cost-baseline.json`.
//! - `bench cluster`: 1 and 3 server nodes on one Postgres (cross-node delivery, a hot
//!   conversation, many conversations) and the Postgres probes of the scaling model.
//! - `bench peers`: Confab beside y-websocket, Hocuspocus, automerge-repo and a raw relay.
//! - `bench browser`: send → shown latency between two Chromium pages of the web demo.
//! - `wasm [test [--bench] [--no-browser] [--no-node]]`: the npm package in wasm/pkg, and its tests.
//! - `demo [--listen ADDR]`: the web demo on a local server; `demo e2e`: its browser tests.
//! - `hooks`: installs the commit-msg hook that refuses a subject over 72 characters.

mod bench;
mod bench_browser;
mod bench_cluster;
mod bench_cost;
mod bench_e2e;
mod bench_peers;
mod bench_server;
mod commits;
mod demo;
mod wasm;
mod workspace;

use std::process::Command;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") | Some("ci") => test(),
        Some("bench") if args.get(1).map(String::as_str) == Some("server") => {
            bench_server::run(&args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("catchup") => {
            bench_e2e::run("catchup", &args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("flood") => {
            bench_e2e::run("flood", &args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("notify") => {
            bench_e2e::run("notify", &args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("browser") => {
            bench_browser::run(&args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("peers") => {
            bench_peers::run(&args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("cost") => {
            bench_cost::run(&args[2..])
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("cluster") => {
            bench_cluster::run(&args[2..])
        }
        Some("bench") => bench::run(&args[1..]),
        Some("wasm") => wasm::build(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("hooks") => commits::install_hook(),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|ci|bench [core|client|server [--quick]|catchup|flood|notify|cluster|browser|peers|cut|erasure|cost]|wasm [test]|demo [e2e]|hooks>"
            );
            bail!("unknown task {:?}", args.first())
        }
    }
}

/// Runs a command, echoing it, and fails with its name if it fails.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("could not start {program}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The wasm32 target, installed through rustup when missing.
pub fn ensure_wasm_target() -> Result<()> {
    let installed = output("rustup", &["target", "list", "--installed"])?;
    if !installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    Ok(())
}

fn test() -> Result<()> {
    // First, and cheap: the subjects of the commits since the convention started.
    commits::check()?;
    ensure_wasm_target()?;
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run(
        "cargo",
        &[
            "clippy",
            "-p",
            "confab-core",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The fuzz crate is a workspace of its own (cargo-fuzz runs it on nightly) that nothing
    // else builds: lint it on stable so its targets keep up with the core's types.
    workspace::run(
        &workspace::workspace_root()?.join("fuzz"),
        "cargo",
        &["clippy", "--all-targets", "--", "-D", "warnings"],
        &[],
    )?;
    run("cargo", &["test", "--workspace"])?;
    // The cost guard: the server's instructions per accepted message (release, callgrind)
    // at most 10% over bench/cost-baseline.json (docs/BENCHMARKS.md, "Cost per message").
    bench_cost::run(&["--check".to_owned()])?;
    // The wasm package: wasm32 clippy, its browser suite in headless Chromium and its Node
    // suite (installs Chromium, chromedriver, wasm-bindgen-cli and npm packages if missing).
    wasm::ci()?;
    // The web demo end to end in Chromium (installs Chromium and its npm packages if missing).
    demo::e2e(&workspace::workspace_root()?)?;
    run(
        "cargo",
        &[
            "build",
            "-p",
            "confab-core",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
        ],
    )?;
    eprintln!("xtask test: all checks passed");
    Ok(())
}
