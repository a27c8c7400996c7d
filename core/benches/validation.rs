//! Criterion benchmarks of the server's change validation and of opening a conversation on a
//! client (message buckets, validation). Targets: validating one message change
//! ≤ 50 µs; opening a conversation (newest bucket, typed, ready to read) ≤ 50 ms native.
//!
//! Every benchmark runs for bucket sizes of 1,000 / 5,000 / 10,000 messages (the parameter):
//!
//! - `validate_message_change/<size>`: `validate` of a new ~40-character text message from a
//!   member's device against a 1,000-member group and its newest bucket (decode of the ops,
//!   binding/seq/deps checks, op paths, effects, policy; no apply). The `Change` is cloned
//!   outside the timing.
//! - `validate_bytes/<size>`: the same from the wire bytes (`validate_bytes`, which adds
//!   `Change::from_bytes`), as the server receives it.
//! - `validate_and_apply/<size>`: validate, then `AcceptedDoc::apply`. Measured on one
//!   long-lived `AcceptedDoc` with a fresh change per iteration: 256 changes are
//!   pre-generated in a chain by one client, each iteration validates and applies the next
//!   one; when the chain is used up the document is reset to the fixture (untimed). So each
//!   timed iteration is exactly one real acceptance, on a bucket of size..size+256
//!   messages, with no clone in the timing.
//! - `accept_message_change/<size>`: the same change through core's acceptor, as the
//!   server's unit runs it: the binding asked once, validation against the staged bucket,
//!   staging, the seq; the one Automerge apply per batch is timed at the end of the chain.
//! - `clone_accepted_doc/<size>`: what a clone of the bucket would cost (why the chain is
//!   used instead of `iter_batched` with a clone per iteration).
//! - `open_conversation/newest_bucket/<size>`: `Automerge::load` of the newest bucket's saved
//!   bytes + `read::read_messages` (typed, with reactions) of a 100,000-message conversation;
//!   `newest_two_buckets` does it for the two newest; `load_only` is the `Automerge::load`
//!   part alone.
//!
//! Fixtures are built once per bucket size (their build times and saved sizes are printed
//! and written to `<target>/criterion/confab-fixtures/`, which `cargo xtask bench` shows).
//! Without `--bench` (e.g. `cargo test --benches`) everything runs once on small fixtures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod fixtures;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use confab_core::accept::{
    Acceptor, AcceptorConfig, Decision, Need, Step, StoredDoc, Submission, UnitId,
};
use confab_core::automerge::Automerge;
use confab_core::doc::read;
use confab_core::ids::DocId;
use confab_core::validate::{self, Verdict};
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode};

use fixtures::{Fixture, Group, Scale};

/// Fixtures built on first use and kept for the whole process.
struct Cache {
    scale: Scale,
    group: Option<Group>,
    fixtures: BTreeMap<usize, Fixture>,
}

impl Cache {
    fn new(scale: Scale) -> Self {
        Cache {
            scale,
            group: None,
            fixtures: BTreeMap::new(),
        }
    }

    fn get(&mut self, size: usize) -> (&Group, &Fixture) {
        if self.group.is_none() {
            let group = Group::build();
            eprintln!(
                "fixture: group of {} members built in {:.2?} (conversation doc {} bytes)",
                group.conv.members.len(),
                group.build,
                group.conv_bytes.len()
            );
            self.group = Some(group);
        }
        let group = self.group.as_ref().expect("group built");
        if !self.fixtures.contains_key(&size) {
            let fixture = Fixture::build(group, self.scale, size);
            fixture.check(group);
            eprint!("{}", fixture.summary());
            self.fixtures.insert(size, fixture);
        }
        (group, &self.fixtures[&size])
    }

    /// Writes the fixture summaries next to criterion's results, one file per fixture built
    /// in this run (a filtered run leaves the others as they were).
    fn write_summary(&self) {
        if !self.scale.full {
            return;
        }
        let dir = fixtures::criterion_dir().join("confab-fixtures");
        let mut files = Vec::new();
        if let Some(group) = &self.group {
            files.push((
                "group.txt".to_owned(),
                format!(
                    "group of {} members built in {:.2?}; conversation doc {} bytes\n",
                    group.conv.members.len(),
                    group.build,
                    group.conv_bytes.len()
                ),
            ));
        }
        for (size, fixture) in &self.fixtures {
            files.push((format!("bucket-{size:06}.txt"), fixture.summary()));
        }
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            files
                .iter()
                .try_for_each(|(name, text)| std::fs::write(dir.join(name), text))
        });
        if let Err(e) = written {
            eprintln!(
                "could not write the fixture summary to {}: {e}",
                dir.display()
            );
        }
    }
}

fn validate_benches(c: &mut Criterion, cache: &mut Cache) {
    let sizes = cache.scale.sizes;

    let mut group = c.benchmark_group("validate_message_change");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in sizes {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let (g, fx) = cache.get(size);
            let env = g.env();
            let change = &fx.chain[0];
            b.iter_batched(
                || change.clone(),
                |change| {
                    let verdict = validate::validate(&fx.accepted, &env, change);
                    debug_assert!(matches!(verdict, Ok(Verdict::Accept(_))));
                    verdict
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group("validate_bytes");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in sizes {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let (g, fx) = cache.get(size);
            let env = g.env();
            let bytes = fx.chain[0].raw_bytes().to_vec();
            b.iter(|| {
                let verdict = validate::validate_bytes(&fx.accepted, &env, black_box(&bytes));
                debug_assert!(matches!(verdict, Ok(Verdict::Accept(_))));
                verdict
            });
        });
    }
    group.finish();

    // One long-lived document, a fresh change per iteration (see the crate docs above).
    let mut group = c.benchmark_group("validate_and_apply");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in sizes {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let (g, fx) = cache.get(size);
            let env = g.env();
            let mut live = fx.accepted.clone();
            let mut next = 0;
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if next == fx.chain.len() {
                        live = fx.accepted.clone(); // untimed reset
                        next = 0;
                    }
                    let change = fx.chain[next].clone();
                    next += 1;
                    let started = Instant::now();
                    match validate::validate(&live, &env, change) {
                        Ok(Verdict::Accept(accepted)) => {
                            live.apply(accepted.change).expect("apply");
                        }
                        other => panic!("chain change not accepted: {other:?}"),
                    }
                    timed += started.elapsed();
                }
                timed
            });
        });
    }
    group.finish();

    // The production path: the server's unit drives core's acceptor (needs answered, the
    // change validated against the staged bucket and staged; one apply per batch, timed
    // and spread over the chain, as the unit applies per batch).
    let mut group = c.benchmark_group("accept_message_change");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in sizes {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let (g, fx) = cache.get(size);
            let (bucket, _) = fx.buckets.last().expect("a bucket");
            let mut acceptor = fresh_acceptor(g, fx);
            let mut next = 0;
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if next == fx.chain.len() {
                        acceptor = fresh_acceptor(g, fx); // untimed reset
                        next = 0;
                    }
                    let change = fx.chain[next].clone();
                    next += 1;
                    let started = Instant::now();
                    let mut sub = Submission::from_change(bucket, &g.author, change, fixtures::NOW);
                    loop {
                        match acceptor.step(&mut sub) {
                            Step::Need(Need::Binding(actor)) => {
                                let account = g.bindings.get(&actor).cloned();
                                acceptor.answer_binding(&mut sub, actor, account);
                            }
                            Step::Done(Decision::Accepted(accepted)) => {
                                black_box(accepted);
                                break;
                            }
                            other => panic!("chain change not accepted: {other:?}"),
                        }
                    }
                    if next == fx.chain.len() {
                        acceptor.apply_staged(0).expect("apply");
                    }
                    timed += started.elapsed();
                }
                timed
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("clone_accepted_doc");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for size in sizes {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let (_, fx) = cache.get(size);
            b.iter_with_large_drop(|| fx.accepted.clone());
        });
    }
    group.finish();
}

fn open_benches(c: &mut Criterion, cache: &mut Cache) {
    let sizes = cache.scale.sizes;
    let mut group = c.benchmark_group("open_conversation");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for size in sizes {
        // A client keeps the opened documents and messages: their drop is not timed.
        group.bench_with_input(
            BenchmarkId::new("newest_bucket", size),
            &size,
            |b, &size| {
                let (_, fx) = cache.get(size);
                let bytes = fx.newest_bytes();
                let messages = read::read_messages(&Automerge::load(bytes).expect("load"));
                assert_eq!(messages.len(), size);
                assert_eq!(
                    messages.iter().filter(|m| !m.reactions.is_empty()).count(),
                    size.div_ceil(fixtures::REACT_EVERY)
                );
                b.iter_with_large_drop(|| {
                    let doc = Automerge::load(black_box(bytes)).expect("load");
                    let messages = read::read_messages(&doc);
                    (doc, messages)
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("newest_two_buckets", size),
            &size,
            |b, &size| {
                let (_, fx) = cache.get(size);
                let newest: Vec<&[u8]> = fx
                    .buckets
                    .iter()
                    .rev()
                    .take(2)
                    .map(|(_, bytes)| bytes.as_slice())
                    .collect();
                b.iter_with_large_drop(|| {
                    newest
                        .iter()
                        .map(|bytes| {
                            let doc = Automerge::load(black_box(bytes)).expect("load");
                            let messages = read::read_messages(&doc);
                            (doc, messages)
                        })
                        .collect::<Vec<_>>()
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("load_only", size), &size, |b, &size| {
            let (_, fx) = cache.get(size);
            let bytes = fx.newest_bytes();
            b.iter_with_large_drop(|| Automerge::load(black_box(bytes)).expect("load"));
        });
    }
    group.finish();
}

/// An acceptor of the fixture's conversation with the conversation document and the newest
/// bucket loaded from their saved bytes (what a unit holds once warm).
fn fresh_acceptor(g: &Group, fx: &Fixture) -> Acceptor {
    let (bucket, bytes) = fx.buckets.last().expect("a bucket");
    let tenant = bucket.tenant();
    let unit = UnitId::Conv(tenant.clone(), g.conv_id.clone());
    let mut acceptor = Acceptor::new(unit, AcceptorConfig::default());
    let saved = |bytes, seq| StoredDoc {
        snapshot: Some(bytes),
        changes: Vec::new(),
        last_seq: seq,
        snapshot_seq: seq,
        policy_seq: 0,
    };
    acceptor
        .load(DocId::conv(tenant, &g.conv_id), saved(&g.conv_bytes[..], 1))
        .expect("conversation loads");
    acceptor
        .load(bucket.clone(), saved(&bytes[..], fx.size as u64))
        .expect("bucket loads");
    acceptor
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut cache = Cache::new(Scale::from_args());
    validate_benches(&mut criterion, &mut cache);
    open_benches(&mut criterion, &mut cache);
    cache.write_summary();
    criterion.final_summary();
}
