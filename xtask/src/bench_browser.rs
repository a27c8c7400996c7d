//! `cargo xtask bench browser [--messages N] [--rate R]`: send → shown latency between two
//! Chromium pages of the web demo (the real page, wasm client, IndexedDB) on the release
//! server, beside the server's own delivery time from the load generator.
//!
//! The browser part is `web-demo/e2e/bench/latency.mjs` (playwright-core with Debian's
//! Chromium): N messages each way (default 200) at R per second each way (default 10),
//! "shown" stamped by a MutationObserver in the receiving page. Then `loadgen` runs the same
//! rate paced between two native clients on SQLite, so the table shows what the server and
//! the network take and what the browser side adds. Last, `bench/big-group.mjs`: the page's
//! idle redraw and the client's queries in a 1,000-member group (they should cost what they
//! cost in a group of 2). Results are appended to `target/bench-browser.jsonl`.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{bench_server, demo, workspace};

pub fn run(args: &[String]) -> Result<()> {
    let mut messages = "200".to_owned();
    let mut rate = "10".to_owned();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--messages" => messages = value.clone(),
            "--rate" => rate = value.clone(),
            _ => bail!("usage: cargo xtask bench browser [--messages N] [--rate PER_SECOND]"),
        }
    }
    let root = workspace::workspace_root()?;
    demo::ensure_chromium()?;
    let built = bench_server::build_release(&root)?;
    let web = demo::prepare_page(&root)?;
    let e2e = root.join("web-demo/e2e");
    workspace::run(
        &e2e,
        "npm",
        &["install", "--no-audit", "--no-fund", "--loglevel=error"],
        &[],
    )?;
    let json = built.target.join("bench-browser.jsonl");
    // Both against the release server and the built page, appending to the same file.
    let bench = |script: &str, what: &str, env: &[(&str, &str)]| -> Result<()> {
        eprintln!("+ node bench/{script} ({what})");
        let status = Command::new("node")
            .arg(format!("bench/{script}"))
            .current_dir(&e2e)
            .env("CONFAB_SERVER_BIN", &built.server)
            .env("CONFAB_WEB_ROOT", &web)
            .env("BENCH_JSON", &json)
            .envs(env.iter().copied())
            .status()
            .context("could not start node (install Node.js 20 or later)")?;
        if !status.success() {
            bail!("the browser benchmark bench/{script} failed ({status})");
        }
        Ok(())
    };
    bench(
        "latency.mjs",
        &format!("release server, {messages} messages each way at {rate}/s"),
        &[("BENCH_MESSAGES", &messages), ("BENCH_RATE", &rate)],
    )?;
    // The page in a 1,000-member group: an idle redraw and the client's queries.
    bench("big-group.mjs", "the page in a 1,000-member group", &[])?;

    // The server alone at the same total rate: two native clients, paced.
    let total = rate.parse::<f64>().unwrap_or(10.0) * 2.0;
    let total = format!("{}", total.round() as u64);
    eprintln!("\nthe server alone (loadgen, 2 native clients, paced {total} msg/s, SQLite):");
    let status = Command::new(&built.loadgen)
        .arg("--server-bin")
        .arg(&built.server)
        .args([
            "--backends",
            "sqlite",
            "--clients",
            "2",
            "--modes",
            "paced",
            "--rate",
            &total,
            "--seconds",
            "10",
        ])
        .current_dir(&root)
        .status()
        .with_context(|| format!("could not start {}", built.loadgen.display()))?;
    if !status.success() {
        bail!("the load generator failed ({status})");
    }
    eprintln!("results appended to {}", json.display());
    Ok(())
}
