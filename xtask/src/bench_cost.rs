//! `cargo xtask bench cost`: instructions per accepted message through the whole server
//! path, per stage (docs/BENCHMARKS.md, "Cost per message"), and the CI guard on them.
//!
//! Builds the release `cost` binary (`bench/src/bin/cost.rs`: the real server in-process,
//! a fixed, seeded workload) and runs each configuration under
//! `valgrind --tool=callgrind --zero-before=cost_meter_start --dump-before=cost_meter_end`:
//! the dump holds only the measured region. `callgrind_annotate --inclusive=yes` gives each
//! function's inclusive count; a stage is the inclusive count of the functions that delimit
//! it in the server's code ([`STAGES`]), less the stages nested in it, divided by the
//! accepted messages. The server's total is the region's count less the client's
//! (`cost_client_round`); "rest" is what no stage names (the runtime, sockets, WebSocket
//! framing, queues, acks, sqlx's threads, the storage prober's pings).
//!
//! - `cargo xtask bench cost [--store sqlite|postgres|both] [--only NAME,...]`: measures
//!   every configuration (1 and 16 per frame, 2 and 1,000 members, plaintext and sealed) on
//!   SQLite (the default), Postgres or both, prints the table and appends a JSON line to
//!   `target/bench-cost.jsonl`.
//! - `--write-baseline`: also writes the measured totals into `bench/cost-baseline.json`
//!   (commit it on its own, saying why).
//! - `--check`: the CI guard (`cargo xtask test`): only [`GUARD`], fails when its
//!   instructions per accepted message are more than [`TOLERANCE`] over the baseline's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace;

/// The configuration the CI guard measures: the cheapest that still runs every stage.
pub const GUARD: &str = "sqlite/16x/2m/plain";
/// How far over the baseline the guard lets the count go.
pub const TOLERANCE: f64 = 0.10;
const BASELINE: &str = "bench/cost-baseline.json";

/// A stage: the functions whose inclusive counts add up to it, and the stages nested in
/// them (subtracted). Names as callgrind prints them (Rust's legacy demangling).
struct Stage {
    key: &'static str,
    label: &'static str,
    functions: &'static [&'static str],
    nested: &'static [&'static str],
}

const STAGES: &[Stage] = &[
    Stage {
        key: "decode",
        label: "frame decode (`Session::receive`)",
        functions: &["confab_core::protocol::session::Session::receive"],
        nested: &[],
    },
    Stage {
        key: "validate",
        label: "binding and validation (`Submission::new`, `Acceptor::step`)",
        functions: &[
            "confab_core::accept::submission::Submission::new",
            "confab_core::accept::Acceptor::step",
        ],
        nested: &["stage"],
    },
    Stage {
        key: "apply",
        label: "Automerge apply (`AcceptedDoc::apply_staged`)",
        functions: &["confab_core::validate::state::AcceptedDoc::apply_staged"],
        nested: &[],
    },
    Stage {
        key: "stage",
        label: "staging and seq (`AcceptedDoc::stage`, `Acceptor::committed`)",
        functions: &[
            "confab_core::validate::state::AcceptedDoc::stage",
            "confab_core::accept::Acceptor::committed",
        ],
        nested: &[],
    },
    Stage {
        key: "commit",
        label: "the commit's statements (`Store::commit`; SQLite's own work included)",
        functions: &[
            "confab_server::store::health::_::<impl confab_server::store::ChangeLog for confab_server::store::health::Guarded>::commit::{{closure}}",
        ],
        nested: &[],
    },
    Stage {
        key: "project",
        label: "projection and search terms (`projection::for_msgs`)",
        functions: &[
            "confab_server::engine::projection::for_msgs",
            "confab_server::engine::projection::for_conv",
        ],
        nested: &[],
    },
    Stage {
        key: "fanout",
        label: "fan-out encode (`Unit::push`)",
        functions: &["confab_server::engine::unit::pipeline::<impl confab_server::engine::unit::Unit>::push"],
        nested: &[],
    },
    Stage {
        key: "search_index",
        label: "SQLite's search index, behind the commit (`Store::index_search_backlog`)",
        functions: &["confab_server::store::health::_::<impl confab_server::store::Projections for confab_server::store::health::Guarded>::index_search_backlog::{{closure}}"],
        nested: &[],
    },
    Stage {
        key: "notify",
        label: "notifications, behind the commit (the notifier's task; its sqlx statements are in rest)",
        functions: &["confab_server::notify::spawn::{{closure}}"],
        nested: &[],
    },
];

/// The client's share of the region, subtracted from the total.
const CLIENT: &str = "cost::cost_client_round";
/// SQLite's own work (every statement), shown apart: it is inside the stages above.
const SQLITE: &[&str] = &["sqlite3_step", "sqlite3_prepare_v3", "sqlite3_exec"];

#[derive(Clone, Debug)]
struct Config {
    store: &'static str,
    per_frame: usize,
    members: usize,
    sealed: bool,
}

impl Config {
    fn name(&self) -> String {
        format!(
            "{}/{}x/{}m/{}",
            self.store,
            self.per_frame,
            self.members,
            if self.sealed { "sealed" } else { "plain" }
        )
    }

    /// Enough messages that the per-message count is stable, few enough for valgrind (a
    /// message in the 1,000-member group costs ~100× one in the pair: its notifications).
    fn messages(&self) -> usize {
        match (self.per_frame, self.members) {
            (1, m) if m > 100 => 32,
            (_, m) if m > 100 => 128,
            (1, _) => 128,
            _ => 256,
        }
    }
}

fn configs(store: &'static str) -> Vec<Config> {
    let mut out = Vec::new();
    for sealed in [false, true] {
        for members in [2, 1_000] {
            for per_frame in [1, 16] {
                out.push(Config {
                    store,
                    per_frame,
                    members,
                    sealed,
                });
            }
        }
    }
    out
}

/// One configuration's result: per stage and in all, instructions per accepted message.
#[derive(Debug, Default)]
struct Measured {
    accepted: u64,
    per_msg: BTreeMap<String, f64>,
    postgres_us_per_msg: Option<f64>,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut stores = vec!["sqlite"];
    let mut write_baseline = false;
    let mut check = false;
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter().map(String::as_str).skip_while(|a| *a == "--");
    while let Some(arg) = it.next() {
        match arg {
            "--store" => {
                stores = match it.next() {
                    Some("sqlite") => vec!["sqlite"],
                    Some("postgres") => vec!["postgres"],
                    Some("both") => vec!["sqlite", "postgres"],
                    other => bail!("--store sqlite|postgres|both, not {other:?}"),
                }
            }
            "--write-baseline" => write_baseline = true,
            "--check" => check = true,
            "--only" => {
                only = Some(
                    it.next()
                        .context("--only NAME,...")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            other => bail!("unknown flag {other:?}: cargo xtask bench cost [--store sqlite|postgres|both] [--only NAME,...] [--write-baseline] [--check]"),
        }
    }
    let root = workspace::workspace_root()?;
    let mut chosen: Vec<Config> = stores.iter().flat_map(|s| configs(s)).collect();
    if check {
        only = Some(vec![GUARD.to_owned()]);
        chosen = configs("sqlite");
    }
    if let Some(only) = &only {
        chosen.retain(|c| only.contains(&c.name()));
        if chosen.is_empty() {
            bail!("no configuration named {only:?}");
        }
    }
    // callgrind counts the instructions (a fresh machine may lack it).
    workspace::ensure_debian(
        &["/usr/bin/valgrind", "/usr/bin/callgrind_annotate"],
        &["valgrind"],
    )?;
    crate::run(
        "cargo",
        &["build", "--release", "-p", "confab-bench", "--bin", "cost"],
    )?;
    let bin = workspace::release_bin(&root, "cost");
    let out_dir = bin
        .parent()
        .context("the binary has no folder")?
        .join("cost-meter");
    std::fs::create_dir_all(&out_dir)?;
    let mut results = Vec::new();
    for config in &chosen {
        let started = std::time::Instant::now();
        let measured = measure(&bin, &out_dir, config)?;
        eprintln!(
            "cost: {} done in {:.0} s: {:.0} instructions per accepted message",
            config.name(),
            started.elapsed().as_secs_f64(),
            measured.per_msg["server"]
        );
        results.push((config.clone(), measured));
    }
    print_table(&results);
    let line = serde_json::json!({
        "at_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "runs": results.iter().map(|(c, m)| serde_json::json!({
            "config": c.name(),
            "accepted": m.accepted,
            "per_msg": m.per_msg,
            "postgres_us_per_msg": m.postgres_us_per_msg,
        })).collect::<Vec<_>>(),
    });
    // `target/bench-cost.jsonl`, one line a run, as the other benchmarks keep theirs.
    let jsonl = out_dir.join("../../bench-cost.jsonl");
    let mut kept = std::fs::read_to_string(&jsonl).unwrap_or_default();
    kept.push_str(&format!("{line}\n"));
    std::fs::write(&jsonl, kept).with_context(|| format!("writing {}", jsonl.display()))?;
    let baseline_path = root.join(BASELINE);
    if write_baseline {
        write_baseline_file(&baseline_path, &results)?;
        eprintln!("cost: wrote {}", baseline_path.display());
    }
    if check {
        let (_, measured) = results.first().context("the guard measured nothing")?;
        return guard(&baseline_path, measured.per_msg["server"]);
    }
    Ok(())
}

/// Runs one configuration under callgrind and reads its dump.
fn measure(bin: &Path, out_dir: &Path, config: &Config) -> Result<Measured> {
    let stem = config.name().replace('/', "-");
    for entry in std::fs::read_dir(out_dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stem}.")))
        {
            std::fs::remove_file(path)?;
        }
    }
    let out_file = out_dir.join(format!("{stem}.%p"));
    let mut args = vec![
        "--tool=callgrind".to_owned(),
        "--zero-before=*cost_meter_start".to_owned(),
        "--dump-before=*cost_meter_end".to_owned(),
        format!("--callgrind-out-file={}", out_file.display()),
        bin.display().to_string(),
        "--store".to_owned(),
        config.store.to_owned(),
        "--per-frame".to_owned(),
        config.per_frame.to_string(),
        "--members".to_owned(),
        config.members.to_string(),
        "--messages".to_owned(),
        config.messages().to_string(),
    ];
    if config.sealed {
        args.push("--sealed".to_owned());
    }
    eprintln!("+ valgrind {}", args.join(" "));
    let out = Command::new("valgrind")
        .args(&args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("could not start valgrind (is it installed?)")?;
    if !out.status.success() {
        bail!("{}: the cost binary failed ({})", config.name(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("{}: no summary line in {stdout:?}", config.name()))?;
    let accepted = summary["accepted"].as_u64().unwrap_or(0);
    if accepted == 0 {
        bail!("{}: nothing accepted", config.name());
    }
    // The dump the region ends with is part 1 (`<file>.<pid>.1`).
    let dump = std::fs::read_dir(out_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with(&format!("{stem}.")) && n.ends_with(".1"))
        })
        .with_context(|| format!("{}: no callgrind dump of the region", config.name()))?;
    let annotated = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(&dump)
        .output()
        .context("could not run callgrind_annotate")?;
    if !annotated.status.success() {
        bail!("callgrind_annotate failed on {}", dump.display());
    }
    let (total, inclusive) = parse_annotate(&String::from_utf8_lossy(&annotated.stdout))?;
    let mut measured = Measured {
        accepted,
        ..Measured::default()
    };
    let per = |n: u64| n as f64 / accepted as f64;
    let server = total.saturating_sub(sum(&inclusive, &[CLIENT]));
    let mut raw: BTreeMap<&str, u64> = BTreeMap::new();
    for stage in STAGES {
        // A stage whose functions a rename or inlining took out of the profile would read
        // 0 and pass for cheap: it is an error (SQLite's search index runs on SQLite only).
        let found = stage.functions.iter().any(|f| inclusive.contains_key(*f));
        if !found && stage.key != "search_index" {
            bail!(
                "stage {}: none of {:?} is in the profile (renamed or inlined?)",
                stage.key,
                stage.functions
            );
        }
        raw.insert(stage.key, sum(&inclusive, stage.functions));
    }
    let mut staged = 0;
    for stage in STAGES {
        let nested: u64 = stage.nested.iter().map(|k| raw[k]).sum();
        let own = raw[stage.key].saturating_sub(nested);
        staged += own;
        measured.per_msg.insert(stage.key.to_owned(), per(own));
    }
    measured
        .per_msg
        .insert("rest".to_owned(), per(server.saturating_sub(staged)));
    measured.per_msg.insert("server".to_owned(), per(server));
    measured
        .per_msg
        .insert("sqlite".to_owned(), per(sum(&inclusive, SQLITE)));
    measured.postgres_us_per_msg = summary["postgres_backend_ns"]
        .as_u64()
        .map(|ns| ns as f64 / 1e3 / accepted as f64);
    Ok(measured)
}

fn sum(inclusive: &BTreeMap<String, u64>, functions: &[&str]) -> u64 {
    functions
        .iter()
        .filter_map(|f| inclusive.get(*f))
        .sum::<u64>()
}

/// The program's total and each function's inclusive count (functions that appear under
/// several files or objects are added up) from `callgrind_annotate --inclusive=yes`.
fn parse_annotate(text: &str) -> Result<(u64, BTreeMap<String, u64>)> {
    let mut total = None;
    let mut inclusive: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let rest = rest.trim_start();
        // `(12.34%)` after the count, in some versions.
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, after)| after).trim_start(),
            None => rest,
        };
        if rest.starts_with("PROGRAM TOTALS") {
            total = Some(count);
            continue;
        }
        // `file:function [object]`; without debug information the file is `???`.
        let rest = rest.split(" [").next().unwrap_or(rest);
        let function = match rest.split_once(':') {
            Some((file, f)) if !file.contains("::") && !f.starts_with(':') => f,
            _ => rest,
        };
        *inclusive.entry(function.trim().to_owned()).or_default() += count;
    }
    let total = total.context("no PROGRAM TOTALS in callgrind_annotate's output")?;
    Ok((total, inclusive))
}

fn print_table(results: &[(Config, Measured)]) {
    let mut header = "| stage (instructions per accepted message) |".to_owned();
    let mut rule = "|---|".to_owned();
    for (c, _) in results {
        header.push_str(&format!(" {} |", c.name()));
        rule.push_str("---:|");
    }
    println!("\n{header}\n{rule}");
    let mut rows: Vec<(String, String)> = STAGES
        .iter()
        .map(|s| (s.key.to_owned(), s.label.to_owned()))
        .collect();
    rows.push((
        "rest".into(),
        "rest of the server (runtime, sockets, WebSocket framing, queues, acks)".into(),
    ));
    rows.push(("server".into(), "**the server in all**".into()));
    rows.push((
        "sqlite".into(),
        "of which inside SQLite (`sqlite3_step`, prepare, exec)".into(),
    ));
    for (key, label) in rows {
        let mut line = format!("| {label} |");
        for (_, m) in results {
            let v = m.per_msg.get(&key).copied().unwrap_or(0.0);
            line.push_str(&format!(" {} |", thousands(v.round() as u64)));
        }
        println!("{line}");
    }
    if results.iter().any(|(_, m)| m.postgres_us_per_msg.is_some()) {
        let mut line =
            "| Postgres backends' CPU, µs per message (time, not instructions) |".to_owned();
        for (_, m) in results {
            match m.postgres_us_per_msg {
                Some(us) => line.push_str(&format!(" {us:.1} |")),
                None => line.push_str(" — |"),
            }
        }
        println!("{line}");
    }
    let mut line = "| accepted messages measured |".to_owned();
    for (_, m) in results {
        line.push_str(&format!(" {} |", m.accepted));
    }
    println!("{line}");
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Merges the measured configurations into the baseline file (others stay as they were).
fn write_baseline_file(path: &Path, results: &[(Config, Measured)]) -> Result<()> {
    let mut baseline: serde_json::Value = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?,
        Err(_) => serde_json::json!({}),
    };
    baseline["about"] = serde_json::json!(
        "Instructions per accepted message of the server (release build, callgrind), per \
         configuration of `cargo xtask bench cost`. The CI guard fails when the guard's \
         configuration grows more than 10% over its `server` here. Written by `cargo xtask \
         bench cost --write-baseline`, committed on its own with the reason."
    );
    baseline["guard"] = serde_json::json!(GUARD);
    for (c, m) in results {
        let rounded: BTreeMap<&String, u64> = m
            .per_msg
            .iter()
            .map(|(k, v)| (k, v.round() as u64))
            .collect();
        baseline["configurations"][c.name()] = serde_json::to_value(rounded)?;
    }
    let text = serde_json::to_string_pretty(&baseline)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Fails when `measured` is more than [`TOLERANCE`] over the baseline of [`GUARD`].
fn guard(path: &Path, measured: f64) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (write it: cargo xtask bench cost --write-baseline)",
            path.display()
        )
    })?;
    let baseline: serde_json::Value = serde_json::from_str(&text)?;
    let base = baseline["configurations"][GUARD]["server"]
        .as_f64()
        .with_context(|| format!("{} holds no {GUARD}", path.display()))?;
    let limit = base * (1.0 + TOLERANCE);
    let change = (measured / base - 1.0) * 100.0;
    eprintln!(
        "cost guard ({GUARD}): {measured:.0} instructions per accepted message, baseline {base:.0} ({change:+.1}%), limit {limit:.0}"
    );
    if measured > limit {
        bail!(
            "the server's instructions per accepted message grew {change:+.1}% over the baseline \
             ({measured:.0} > {base:.0} + {:.0}%): find the cause (`cargo xtask bench cost` gives \
             the stages), or, if the cost is meant, run `cargo xtask bench cost --write-baseline` \
             and commit bench/cost-baseline.json on its own with the reason",
            TOLERANCE * 100.0
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inclusive_counts() {
        let text = "\
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
1,000,000 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                 file:function
--------------------------------------------------------------------------------
  400,000 (40.00%)  ???:confab_core::accept::Acceptor::step [/x/cost]
  100,000 (10.00%)  ???:confab_core::accept::Acceptor::step [/lib/other]
   50,000 ( 5.00%)  ???:cost::cost_client_round [/x/cost]
";
        let (total, inc) = parse_annotate(text).unwrap();
        assert_eq!(total, 1_000_000);
        assert_eq!(inc["confab_core::accept::Acceptor::step"], 500_000);
        assert_eq!(inc["cost::cost_client_round"], 50_000);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }

    #[test]
    fn the_guard_is_a_configuration() {
        assert!(configs("sqlite").iter().any(|c| c.name() == GUARD));
        assert_eq!(configs("sqlite").len(), 8);
    }
}
