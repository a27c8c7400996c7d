//! `confab_submit_stage_seconds`: a real submit fills every stage once, and the stages of
//! one submit add up to no more than its end-to-end time.

use std::sync::Arc;
use std::time::Instant;

use confab_core::automerge::ActorId;
use confab_core::doc::{self, write, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use confab_core::policy::Author;
use confab_server::engine::{now_ms, Engine, EngineConfig, SubmitOutcome};
use confab_server::maintenance;
use confab_server::metrics::Metrics;
use confab_testkit::fixture::ConvFixture;

/// (count, sum in seconds) of one stage, read from the text exposition.
fn stage(text: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        let key = format!("confab_submit_stage_seconds_{suffix}{{stage=\"{name}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {key}in:\n{text}"))
    };
    (value("count"), value("sum"))
}

#[tokio::test]
async fn a_submit_is_timed_through_every_stage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = maintenance::open_store(None, dir.path())
        .await
        .expect("store");
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::new(store, metrics.clone(), EngineConfig::default());
    let before = metrics.render();
    for name in ["queue", "validate", "commit_wait", "commit", "answer"] {
        assert_eq!(stage(&before, name).0, 0.0, "{name} before any submit");
    }

    let tenant = TenantId::new("acme").expect("tenant");
    let alice = AccountId::new("alice").expect("account");
    let conv_doc = DocId::conv(&tenant, &ConvId::new("timed").expect("conv"));
    let mut replica = doc::genesis(&conv_doc)
        .expect("genesis")
        .with_actor(ActorId::from(&[5u8; 16][..]));
    let spec = ConvFixture::group(alice.clone(), now_ms()).build();
    write::create_conversation(&mut replica, &IntentTag::new("c", "create"), &spec)
        .expect("create");
    let change = replica.get_last_local_change().expect("change");

    let started = Instant::now();
    let outcome = engine
        .submit(
            conv_doc,
            Author::user(alice),
            vec![change.raw_bytes().to_vec()],
        )
        .await;
    let end_to_end = started.elapsed().as_secs_f64();
    assert!(
        matches!(outcome.as_slice(), [SubmitOutcome::Ack { seq: 1, .. }]),
        "{outcome:?}"
    );

    let after = metrics.render();
    let mut total = 0.0;
    for name in ["queue", "validate", "commit_wait", "commit", "answer"] {
        let (count, sum) = stage(&after, name);
        assert_eq!(count, 1.0, "{name}: one submit, one batch, one commit");
        assert!(sum >= 0.0, "{name}: {sum}");
        total += sum;
    }
    assert!(
        total <= end_to_end,
        "the stages ({total} s) fit inside the submit ({end_to_end} s)"
    );
    assert!(
        stage(&after, "commit").1 > 0.0,
        "a durable commit takes time"
    );
}
