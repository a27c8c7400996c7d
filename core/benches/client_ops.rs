//! What one user action costs the client engine in a group of 10, 100 and 1,000 members
//! (the same in each; the targets, for the wasm package, are in docs/BENCHMARKS.md). Native;
//! the wasm run is `open_a_group_and_act` in `wasm/tests/bench.rs`.
//!
//! The engine holds the group and its newest bucket of 200 messages, accepted
//! (`confab_testkit::group`), offline. Each op is timed alone, with what it queues drained:
//!
//! - `send`: `intent(Send)` of a text message.
//! - `react`: `intent(React)` on another member's message, on and off in turn.
//! - `edit`: `intent(Edit)` of one of this account's messages.
//! - `can_send`: the policy's verdict on sending (`ClientEngine::verdict`, what the wasm
//!   package's `can()` runs).
//!
//! Prints the median and p99 per op. Run: `cargo xtask bench client` (or `cargo bench -p
//! confab-core --bench client_ops`); without `--bench` it runs a few ops only (a smoke run).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Instant;

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, ClientEngine, Intent};
use confab_testkit::group::{self, Group};
use confab_testkit::ids::tenant;

/// The newest bucket's day (2026-04-10).
const DAY: i64 = 20_553;
const MESSAGES: usize = 200;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let ops = if full { 500 } else { 5 };
    println!(
        "{:<10} {:>7} {:>10} {:>10} {:>10}",
        "op", "members", "median", "p99", "max"
    );
    for members in [10, 100, 1000] {
        let started = Instant::now();
        let group = Group::build(members, MESSAGES, DAY).expect("group fixture");
        let mut engine = ClientEngine::new(ClientConfig {
            tenant: tenant(),
            account: group::member(1),
            actor: ActorId::from(&[0xaa; 16][..]),
        });
        group.load_into(&mut engine).expect("loading the group");
        eprintln!(
            "group of {members}: built and loaded in {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        let now = group.now;
        let mut k = 0usize;
        let mut run =
            |name: &str, engine: &mut ClientEngine, make: &mut dyn FnMut(usize) -> Intent| {
                let mut times = Vec::with_capacity(ops);
                for _ in 0..ops {
                    k += 1;
                    let intent = make(k);
                    let t = Instant::now();
                    engine.intent(intent, now).expect("the intent runs");
                    std::hint::black_box(engine.drain());
                    times.push(t.elapsed().as_secs_f64());
                }
                report(name, members, times);
            };
        run("send", &mut engine, &mut |k| group.send(k, now - 1000));
        run("react", &mut engine, &mut |k| Intent::React {
            conv: group.conv.clone(),
            message: group.theirs.clone(),
            bucket: group.bucket.into(),
            emoji: "🎉".into(),
            on: k % 2 == 0,
        });
        run("edit", &mut engine, &mut |k| Intent::Edit {
            conv: group.conv.clone(),
            message: group.mine.clone(),
            bucket: group.bucket.into(),
            body: format!("edited {k}"),
        });
        let mut times = Vec::with_capacity(ops);
        for k in 0..ops {
            let intent = group.send(1_000_000 + k, now);
            let t = Instant::now();
            std::hint::black_box(engine.verdict(&intent, now)).expect("sending is allowed");
            times.push(t.elapsed().as_secs_f64());
        }
        report("can_send", members, times);
    }
}

fn report(name: &str, members: usize, mut times: Vec<f64>) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<10} {members:>7} {:>10} {:>10} {:>10}",
        human(at(0.5)),
        human(at(0.99)),
        human(at(1.0))
    );
}

fn human(secs: f64) -> String {
    if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} µs", secs * 1e6)
    }
}
