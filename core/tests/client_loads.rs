//! The engine asks for what it needs: start-up restore, held intents, paging, all through
//! `Output::Load` answered from a `MemoryStore`; and hosts that answer badly (out of order,
//! twice, with entries not asked for, with entries missing) get an error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::{ActorId, Change};
use confab_core::client::host::carry_out_stored;
use confab_core::client::store::{self, block_on_ready};
use confab_core::client::{
    ClientConfig, ClientEngine, ClientError, Event, Intent, IntentStatus, Load, LoadId,
    MemoryStore, Outcome, Output,
};
use confab_core::ids::{AccountId, ConvId, DocTarget, MessageId, TenantId};
use confab_core::model::conversation::{ConvKind, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{ClientFrame, ServerFrame};
use serde_bytes::ByteBuf;

const T0: i64 = 1_775_779_200_000;
const DAY: i64 = DEFAULT_BUCKET_MS;

fn config() -> ClientConfig {
    ClientConfig {
        tenant: TenantId::new("acme").unwrap(),
        account: AccountId::new("ann").unwrap(),
        actor: ActorId::from(&[7u8; 16][..]),
    }
}

fn conv() -> ConvId {
    ConvId::new("g1").unwrap()
}

fn send(conv: &ConvId, id: &str, at: i64) -> Intent {
    Intent::Send {
        conv: conv.clone(),
        message: NewMessage::text(MessageId::new(id).unwrap(), config().account, id, at),
    }
}

/// Acks every submit among `outputs` (seqs per document from 1), as a server would.
fn ack_all(engine: &mut ClientEngine, store: &MemoryStore, outputs: Vec<Output>, seqs: &mut u64) {
    for output in outputs {
        if let Output::Send(ClientFrame::Submit { doc, changes }) = output {
            for bytes in changes {
                let hash = Change::try_from(&bytes[..]).unwrap().hash();
                *seqs += 1;
                let ack = ServerFrame::Ack {
                    doc: doc.clone(),
                    hash: ByteBuf::from(hash.0.to_vec()),
                    seq: *seqs,
                };
                engine.receive(ack, T0);
            }
        }
    }
    carry_out_stored(engine, store).unwrap();
}

/// A device's store after `days` days of `per_day` accepted messages each (one bucket a
/// day), the conversation created on day 0.
fn history(days: i64, per_day: usize) -> MemoryStore {
    let store = MemoryStore::new();
    let mut engine = ClientEngine::new(config());
    let welcome = ServerFrame::Welcome {
        v: 1,
        account: "ann".into(),
        tenant: "acme".into(),
        server_time: T0,
        max_frame: 1 << 20,
        max_changes: 100,
    };
    engine.receive(welcome, T0);
    let create = Intent::CreateConversation {
        encrypted: false,
        conv: conv(),
        kind: ConvKind::Group,
        title: Some("g1".into()),
        members: Vec::new(),
        settings: None,
        parent: None,
    };
    let mut seq = 0;
    engine.intent(create, T0).unwrap();
    let out = carry_out_stored(&mut engine, &store).unwrap();
    ack_all(&mut engine, &store, out, &mut seq);
    for day in 0..days {
        for k in 0..per_day {
            let at = T0 + day * DAY + k as i64;
            engine
                .intent(send(&conv(), &format!("m{day}-{k}"), at), at)
                .unwrap();
            let out = carry_out_stored(&mut engine, &store).unwrap();
            ack_all(&mut engine, &store, out, &mut seq);
        }
    }
    assert!(engine.outbox().is_empty(), "every message accepted");
    store
}

/// Splits outputs into loads and the rest.
fn loads(outputs: Vec<Output>) -> (Vec<Load>, Vec<Output>) {
    let mut loads = Vec::new();
    let mut rest = Vec::new();
    for output in outputs {
        match output {
            Output::Load(load) => loads.push(load),
            other => rest.push(other),
        }
    }
    (loads, rest)
}

fn answer(store: &MemoryStore, load: &Load) -> Vec<(String, Vec<u8>)> {
    block_on_ready(store::read(store, &load.reads))
        .unwrap()
        .unwrap()
}

fn outcomes(outputs: &[Output]) -> Vec<Outcome> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::Done { outcome, .. }) => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

fn loaded_days(engine: &ClientEngine) -> Vec<i64> {
    engine
        .cursors()
        .into_iter()
        .filter_map(|(d, _)| match d.target() {
            DocTarget::Msgs(_, b) => Some(b.period - T0.div_euclid(DAY)),
            _ => None,
        })
        .collect()
}

/// A restored engine, everything its start asked for answered.
fn restored(store: &MemoryStore) -> ClientEngine {
    let mut engine = ClientEngine::restoring(config());
    let out = carry_out_stored(&mut engine, store).unwrap();
    assert_eq!(outcomes(&out), vec![Outcome::Restored]);
    engine
}

#[test]
fn start_up_restore_loads_the_index_then_only_the_newest_bucket() {
    let store = history(3, 2);
    let mut engine = ClientEngine::restoring(config());
    // Nothing is known before the store answers: the first output is the start-up load.
    let (first, rest) = loads(engine.drain());
    assert_eq!(first.len(), 1);
    assert!(rest.is_empty());
    assert!(engine.conversations(T0).is_empty());
    engine
        .loaded(first[0].id, Ok(answer(&store, &first[0])))
        .unwrap();
    let out = carry_out_stored(&mut engine, &store).unwrap();
    assert_eq!(outcomes(&out), vec![Outcome::Restored]);
    assert_eq!(
        engine.conversations(T0).len(),
        1,
        "the conversation is back"
    );
    assert_eq!(
        loaded_days(&engine),
        vec![2],
        "only the newest bucket, for the list"
    );
    let bodies: Vec<String> = engine
        .timeline(&conv())
        .iter()
        .map(|i| i.message.body.clone())
        .collect();
    assert_eq!(bodies, vec!["m2-0", "m2-1"]);
    assert!(engine
        .timeline(&conv())
        .iter()
        .all(|i| !i.pending && i.seq.is_some()));
}

#[test]
fn paging_loads_newest_first_and_only_what_the_screen_needs() {
    let store = history(4, 2);
    let mut engine = restored(&store);
    let now = T0 + 3 * DAY;
    // Three messages wanted: today's two plus one older bucket, not the two before it.
    let request = engine.open_conversation(&conv(), 3, now);
    let (asked, _) = loads(engine.drain());
    assert_eq!(asked.len(), 1, "one bucket at a time");
    engine
        .loaded(asked[0].id, Ok(answer(&store, &asked[0])))
        .unwrap();
    let out = carry_out_stored(&mut engine, &store).unwrap();
    assert!(out.contains(&Output::Event(Event::Done {
        request,
        outcome: Outcome::Opened
    })));
    assert_eq!(loaded_days(&engine), vec![2, 3]);
    assert_eq!(engine.timeline(&conv()).len(), 4);

    for expected in [vec![1, 2, 3], vec![0, 1, 2, 3]] {
        engine.load_older(&conv(), now);
        let out = carry_out_stored(&mut engine, &store).unwrap();
        assert_eq!(outcomes(&out), vec![Outcome::Older { more: true }]);
        assert_eq!(loaded_days(&engine), expected);
    }
    // The conversation began on day 0: nothing older exists.
    engine.load_older(&conv(), now);
    let out = carry_out_stored(&mut engine, &store).unwrap();
    assert_eq!(outcomes(&out), vec![Outcome::Older { more: false }]);
    assert_eq!(engine.timeline(&conv()).len(), 8);
}

#[test]
fn an_intent_on_a_stored_document_waits_for_its_load_then_runs() {
    let store = history(3, 1);
    let mut engine = restored(&store);
    // A message for day 0: its bucket is stored, not in memory.
    let at = T0 + 5;
    let id = engine.intent(send(&conv(), "late", at), at).unwrap();
    assert!(engine.is_held(id));
    assert_eq!(engine.status(id), Some(IntentStatus::Pending));
    let (asked, rest) = loads(engine.drain());
    assert_eq!(asked.len(), 1);
    assert!(
        !rest
            .iter()
            .any(|o| matches!(o, Output::Event(Event::Intent { .. }))),
        "no event before it runs"
    );
    engine
        .loaded(asked[0].id, Ok(answer(&store, &asked[0])))
        .unwrap();
    assert!(!engine.is_held(id));
    let out = carry_out_stored(&mut engine, &store).unwrap();
    assert!(out.contains(&Output::Event(Event::Intent {
        id,
        status: IntentStatus::Pending
    })));
    assert!(engine.outbox().iter().any(|(i, _, _)| *i == id));
    let bodies: Vec<String> = engine
        .timeline(&conv())
        .iter()
        .map(|i| i.message.body.clone())
        .collect();
    // The stored day-0 message came with its bucket; the new one is pending.
    assert_eq!(bodies, vec!["m0-0", "m2-0", "late"]);
}

#[test]
fn loads_answered_out_of_order_keep_the_intents_in_order() {
    let store = history(3, 1);
    let mut engine = restored(&store);
    let first = engine.intent(send(&conv(), "a", T0 + 7), T0 + 7).unwrap();
    let second = engine
        .intent(send(&conv(), "b", T0 + DAY + 7), T0 + DAY + 7)
        .unwrap();
    let (asked, _) = loads(engine.drain());
    assert_eq!(asked.len(), 2, "both buckets asked for at once");
    // The later load first: the second intent still waits behind the first.
    engine
        .loaded(asked[1].id, Ok(answer(&store, &asked[1])))
        .unwrap();
    assert!(engine.is_held(first) && engine.is_held(second));
    let (more, rest) = loads(engine.drain());
    assert!(more.is_empty() && rest.is_empty());
    engine
        .loaded(asked[0].id, Ok(answer(&store, &asked[0])))
        .unwrap();
    let ran: Vec<u64> = engine
        .drain()
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(Event::Intent { id, .. }) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ran, vec![first, second]);
}

#[test]
fn bad_answers_are_refused_with_a_clear_error() {
    let store = history(3, 2);
    let mut engine = restored(&store);
    assert_eq!(
        engine.loaded(LoadId(999), Ok(Vec::new())),
        Err(ClientError::UnknownLoad(999))
    );

    // An entry no read asked for: refused, and the intent that waited says why.
    let id = engine.intent(send(&conv(), "x", T0 + 9), T0 + 9).unwrap();
    let (asked, _) = loads(engine.drain());
    let mut entries = answer(&store, &asked[0]);
    entries.push(("somewhere/else".into(), vec![1]));
    let refused = engine.loaded(asked[0].id, Ok(entries));
    assert!(
        matches!(refused, Err(ClientError::StrayEntry { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        engine.status(id),
        Some(IntentStatus::Rejected { code, .. }) if code == "bad_load_answer"
    ));
    // Answered once is answered: a second answer is unknown.
    assert_eq!(
        engine.loaded(asked[0].id, Ok(Vec::new())),
        Err(ClientError::UnknownLoad(asked[0].id.0))
    );

    // Entries missing: a later change without the one it builds on is unreadable, not
    // silently half a document.
    let id = engine.intent(send(&conv(), "y", T0 + 10), T0 + 10).unwrap();
    let (asked, _) = loads(engine.drain());
    let mut entries = answer(&store, &asked[0]);
    let first_change = entries
        .iter()
        .position(|(key, _)| key.starts_with("chg/"))
        .expect("the document has stored changes");
    assert!(entries.len() > first_change + 1);
    entries.remove(first_change);
    engine.loaded(asked[0].id, Ok(entries)).unwrap();
    assert!(matches!(
        engine.status(id),
        Some(IntentStatus::Rejected { code, .. }) if code == "corrupt"
    ));

    // The store failing: the intent is rejected with the store's words.
    let id = engine.intent(send(&conv(), "z", T0 + 11), T0 + 11).unwrap();
    let (asked, _) = loads(engine.drain());
    engine
        .loaded(asked[0].id, Err(store::StoreError("disk gone".into())))
        .unwrap();
    assert!(matches!(
        engine.status(id),
        Some(IntentStatus::Rejected { code, detail, .. }) if code == "storage" && detail.contains("disk gone")
    ));
}

#[test]
fn a_failed_start_up_load_fails_the_restore_and_is_asked_again() {
    let store = history(1, 1);
    let mut engine = ClientEngine::restoring(config());
    let (first, _) = loads(engine.drain());
    engine
        .loaded(first[0].id, Err(store::StoreError("locked".into())))
        .unwrap();
    let out = engine.drain();
    assert!(matches!(
        &outcomes(&out)[..],
        [Outcome::Failed { code, .. }] if code == "storage"
    ));
    // The next need asks for the index again, and then works.
    engine.open_conversation(&conv(), 10, T0);
    let out = carry_out_stored(&mut engine, &store).unwrap();
    assert_eq!(outcomes(&out), vec![Outcome::Opened]);
    assert_eq!(engine.timeline(&conv()).len(), 1);
}

#[test]
fn a_new_document_is_stored_with_its_genesis_as_first_snapshot() {
    let store = history(2, 3);
    // Every stored document has a snapshot from its first write on: the restore loads it
    // instead of making the genesis again.
    let all = block_on_ready(store::LocalStore::scan(&store, ""))
        .unwrap()
        .unwrap();
    let docs: Vec<&str> = all
        .iter()
        .filter_map(|(key, _)| key.strip_prefix("docs/"))
        .collect();
    assert!(
        docs.len() >= 3,
        "the conversation and two buckets: {docs:?}"
    );
    for doc in &docs {
        assert!(
            all.iter().any(|(key, _)| *key == format!("snap/{doc}")),
            "{doc} has no snapshot"
        );
    }
    let with_snapshots = restored(&store).timeline(&conv());

    // A store written before this (no genesis snapshot) restores the same.
    let without = MemoryStore::new();
    let ops: Vec<_> = all
        .iter()
        .filter(|(key, _)| !key.starts_with("snap/"))
        .map(|(key, value)| confab_core::client::StoreOp::Put(key.clone(), value.clone()))
        .collect();
    block_on_ready(store::LocalStore::write(&without, ops))
        .unwrap()
        .unwrap();
    let rebuilt = restored(&without).timeline(&conv());
    assert_eq!(with_snapshots.len(), 3);
    assert_eq!(with_snapshots, rebuilt);
}
