//! `cargo xtask bench`: runs the criterion benchmarks, then prints the medians it finds in
//! `target/criterion/**/new/estimates.json` next to the project's targets, and the fixture
//! summaries the benchmark wrote (`target/criterion/confab-fixtures/`).
//!
//! - `cargo xtask bench` or `cargo xtask bench core [-- <criterion args>]`: run, then summarize
//!   the results of this run (e.g. `cargo xtask bench core -- open_conversation`).
//! - `cargo xtask bench client`: the client engine's send, react, edit and policy verdict in
//!   groups of 10, 100 and 1,000 members (`core/benches/client_ops.rs`).
//! - `cargo xtask bench e2ee`: MLS encryption, decryption and commits in groups of 10, 100 and
//!   1,000 devices (`core/benches/e2ee.rs`).
//! - `cargo xtask bench search [-- <args>]`: the server's search over a million messages on
//!   both backends (`bench/src/bin/search.rs`).
//! - `cargo xtask bench cut [-- <args>]`: cutting a 2,000-message part's history while a
//!   writer reacts to it, on both backends (`bench/src/bin/cut.rs`).
//! - `cargo xtask bench erasure [-- <args>]`: erasing an account with 100,000 messages
//!   through the release server, on both backends (`bench/src/bin/erasure.rs`).
//! - `cargo xtask bench summary`: summarize what is already in `target/criterion`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

/// Upper bounds: validation of one message change, opening a conversation
/// (docs/BENCHMARKS.md, "Core").
const TARGETS: &[(&str, f64)] = &[
    ("validate_message_change/", 50e3),
    ("validate_bytes/", 50e3),
    ("open_conversation/newest_bucket/", 50e6),
];

pub fn run(args: &[String]) -> Result<()> {
    let (task, rest) = match args.split_first() {
        None => ("core", &[][..]),
        Some((first, rest)) => (first.as_str(), rest),
    };
    let criterion = criterion_dir();
    match task {
        "core" => {
            let started = SystemTime::now();
            let mut cmd = vec!["bench", "-p", "confab-core", "--bench", "validation"];
            let extra: Vec<&str> = rest
                .iter()
                .map(String::as_str)
                .skip_while(|a| *a == "--")
                .collect();
            if !extra.is_empty() {
                cmd.push("--");
                cmd.extend(extra);
            }
            crate::run("cargo", &cmd)?;
            summarize(&criterion, Some(started))
        }
        // One user action in a group of 10, 100 and 1,000 members (median and p99 per op).
        // The wasm run of the same is `cargo xtask wasm test --bench`.
        "client" => crate::run(
            "cargo",
            &["bench", "-p", "confab-core", "--bench", "client_ops"],
        ),
        // MLS for a device and the Delivery Service in groups of 10, 100 and 1,000 devices.
        "e2ee" => crate::run("cargo", &["bench", "-p", "confab-core", "--bench", "e2ee"]),
        // The server's search on a large projection (`bench/src/bin/search.rs`); cutting a
        // 2,000-message part's history with a writer on it (`bench/src/bin/cut.rs`).
        "search" | "cut" => {
            let mut cmd = vec![
                "run",
                "--release",
                "-p",
                "confab-bench",
                "--bin",
                task,
                "--",
            ];
            cmd.extend(rest.iter().map(String::as_str).skip_while(|a| *a == "--"));
            crate::run("cargo", &cmd)
        }
        // Against the release server, as the end-to-end benchmarks run.
        "erasure" => crate::bench_e2e::run("erasure", rest),
        "summary" => summarize(&criterion, None),
        other => {
            bail!("unknown bench {other:?}: use `cargo xtask bench [core|client|e2ee|search|cut|erasure|summary]`")
        }
    }
}

/// `$CARGO_TARGET_DIR/criterion`, else `<workspace>/target/criterion`.
fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("target")
        });
    target.join("criterion")
}

/// One benchmark's result.
#[derive(Debug)]
struct Estimate {
    id: String,
    median_ns: f64,
    low_ns: f64,
    high_ns: f64,
}

fn summarize(criterion: &Path, since: Option<SystemTime>) -> Result<()> {
    let mut found = Vec::new();
    collect(criterion, criterion, since, &mut found)?;
    found.sort_by_key(|e| natural_key(&e.id));
    if found.is_empty() {
        println!("no criterion results in {}", criterion.display());
        return Ok(());
    }
    let width = found.iter().map(|e| e.id.len()).max().unwrap_or(0).max(9);
    println!();
    println!(
        "{:<width$}  {:>10}  {:>23}  target",
        "benchmark", "median", "95% interval"
    );
    for e in &found {
        let target = TARGETS
            .iter()
            .find(|(prefix, _)| e.id.starts_with(prefix))
            .map(|(_, limit)| {
                let verdict = if e.median_ns <= *limit {
                    "ok"
                } else {
                    "MISSED"
                };
                format!("≤ {} {verdict}", human(*limit))
            })
            .unwrap_or_default();
        println!(
            "{:<width$}  {:>10}  {:>23}  {target}",
            e.id,
            human(e.median_ns),
            format!("[{} .. {}]", human(e.low_ns), human(e.high_ns)),
        );
    }
    print_fixtures(&criterion.join("confab-fixtures"))
}

/// Walks `dir` for `<id>/new/estimates.json` (written at or after `since`).
fn collect(
    root: &Path,
    dir: &Path,
    since: Option<SystemTime>,
    out: &mut Vec<Estimate>,
) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let estimates = path.join("estimates.json");
        if path.file_name().is_some_and(|n| n == "new") && estimates.is_file() {
            let fresh = match since {
                None => true,
                Some(since) => std::fs::metadata(&estimates)
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified >= since),
            };
            if fresh {
                let id = dir
                    .strip_prefix(root)
                    .unwrap_or(dir)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(read_estimate(id, &estimates)?);
            }
        } else {
            collect(root, &path, since, out)?;
        }
    }
    Ok(())
}

fn read_estimate(id: String, path: &Path) -> Result<Estimate> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let median = &json["median"];
    let number = |v: &serde_json::Value| {
        v.as_f64()
            .with_context(|| format!("no median in {}", path.display()))
    };
    Ok(Estimate {
        id,
        median_ns: number(&median["point_estimate"])?,
        low_ns: number(&median["confidence_interval"]["lower_bound"])?,
        high_ns: number(&median["confidence_interval"]["upper_bound"])?,
    })
}

/// Sorts `a/1000` before `a/5000` before `a/10000`.
fn natural_key(id: &str) -> Vec<(String, u64)> {
    id.split('/')
        .map(|part| match part.parse::<u64>() {
            Ok(n) => (String::new(), n),
            Err(_) => (part.to_owned(), 0),
        })
        .collect()
}

fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn print_fixtures(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    println!();
    println!("fixtures ({}):", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for line in text.lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_sort_numerically_and_durations_read_well() {
        let mut ids = vec!["a/10000", "a/1000", "b/x/5000", "a/5000"];
        ids.sort_by_key(|id| natural_key(id));
        assert_eq!(ids, ["a/1000", "a/5000", "a/10000", "b/x/5000"]);
        assert_eq!(human(28_413.0), "28.41 µs");
        assert_eq!(human(52_902_000.0), "52.90 ms");
        assert_eq!(human(1_565_700_000.0), "1.57 s");
        assert_eq!(human(75.0), "75 ns");
    }

    #[test]
    fn reads_criterion_estimates() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let new = dir.join("g/1000/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"point_estimate":2.0},"median":{"confidence_interval":
            {"confidence_level":0.95,"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2.5}}"#,
        )
        .unwrap();
        let mut found = Vec::new();
        collect(&dir, &dir, None, &mut found).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "g/1000");
        assert_eq!(
            (found[0].median_ns, found[0].low_ns, found[0].high_ns),
            (2.5, 1.0, 3.0)
        );
    }
}
