//! Client fate under faults: the real client engine against a server stand-in (the hub, the
//! server's acceptance engine, behind a lossy, failing wire). Random interleavings of intents,
//! acks, real policy rejections, transient errors (with and without `doc`, `hash`,
//! `retry_after_ms`), dropped frames and reconnects. Once the faults stop and time passes,
//! every intent has ended accepted (stored once, in intent order per document) or rejected
//! for a reason about itself; none is stuck.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use confab_core::automerge::Change;
use confab_core::client::host::carry_out_stored;
use confab_core::client::{ClientConfig, ClientEngine, Intent, IntentStatus, MemoryStore, DUE_NOW};
use confab_core::doc::{write, IntentTag};
use confab_core::hub::Hub;
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::model::conversation::{ConvKind, MemberStatus, Role};
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_core::protocol::{ClientFrame, ErrorCode, SeqChange, ServerFrame};
use confab_testkit::hub::{group, NOW};
use confab_testkit::ids::{acc, conv_doc, conv_id, tenant};
use confab_testkit::net::Peer;
use confab_testkit::Device;
use proptest::prelude::*;
use serde_bytes::ByteBuf;

/// Retryable codes the stand-in answers with (the session-level ones come without `doc`).
const TRANSIENT: &[ErrorCode] = &[
    ErrorCode::Internal,
    ErrorCode::Unavailable,
    ErrorCode::RateLimited,
    ErrorCode::ShuttingDown,
];

/// What happens to one frame the client sent.
#[derive(Debug, Clone)]
enum Fault {
    /// Handled as the server does.
    None,
    /// The first `from` changes are handled, the next one fails transiently, the rest are
    /// handled again (the hub answers its dependents `missing_dependency`, as the server).
    FailOne {
        from: usize,
        code: usize,
        doc: bool,
        hash: bool,
        retry_after: Option<u64>,
    },
    /// Every change fails transiently, or a subscription fails.
    FailAll {
        code: usize,
        doc: bool,
        hash: bool,
        retry_after: Option<u64>,
    },
    /// Lost without an answer.
    Drop,
    /// Ignored with a session-level `rate_limited` (no `doc`).
    RateLimited { retry_after: Option<u64> },
}

#[derive(Debug, Clone)]
enum Step {
    /// A message into the shared group or into one of the client's own conversations.
    Send(usize),
    /// The client creates a group (offline-style: the message may go before it is acked).
    Create,
    /// A read marker (the conversation's document) on the newest message of a conversation.
    Read(usize),
    /// The server takes the next frame from the wire.
    Serve(Fault),
    /// Up to n server frames reach the client.
    Deliver(usize),
    /// Time passes; the host ticks the engine at its wakeups.
    Advance(u16),
    /// The connection drops (frames in flight both ways are lost) and comes back.
    Reconnect,
    /// The device restarts from its store, then connects.
    Restart,
    /// The group's owner removes the client: its later messages there are really refused.
    Kick,
}

fn fault() -> impl Strategy<Value = Fault> {
    let retry_after = proptest::option::of(prop_oneof![Just(0u64), 1..3_000u64]);
    prop_oneof![
        4 => Just(Fault::None),
        2 => (0..3usize, 0..TRANSIENT.len(), any::<bool>(), any::<bool>(), retry_after.clone())
            .prop_map(|(from, code, doc, hash, retry_after)| Fault::FailOne {
                from,
                code,
                doc,
                hash,
                retry_after
            }),
        2 => (0..TRANSIENT.len(), any::<bool>(), any::<bool>(), retry_after.clone())
            .prop_map(|(code, doc, hash, retry_after)| Fault::FailAll {
                code,
                doc,
                hash,
                retry_after
            }),
        1 => Just(Fault::Drop),
        1 => retry_after.prop_map(|retry_after| Fault::RateLimited { retry_after }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..4usize).prop_map(Step::Send),
        1 => Just(Step::Create),
        2 => (0..4usize).prop_map(Step::Read),
        8 => fault().prop_map(Step::Serve),
        4 => (1..6usize).prop_map(Step::Deliver),
        3 => (1..40_000u16).prop_map(Step::Advance),
        1 => Just(Step::Reconnect),
        1 => Just(Step::Restart),
        1 => Just(Step::Kick),
    ]
}

/// The server stand-in and the wire between them.
struct World {
    hub: Hub,
    owner: Device,
    group: ConvId,
    /// The client: the real engine and store, driven as a host drives it (testkit's peer,
    /// but on this world's wire: its frames are served and delivered one step at a time).
    client: Peer,
    /// The client's clock.
    now: i64,
    /// Frames in flight, client → server and server → client, in order.
    up: VecDeque<ClientFrame>,
    down: VecDeque<ServerFrame>,
    subs: HashSet<DocId>,
    kicked: bool,
    /// The `max_changes` the server announces.
    max_changes: u32,
    /// Intents the client made: id → the conversation it writes to.
    intents: BTreeMap<u64, ConvId>,
    created: Vec<ConvId>,
    /// Intents that changed nothing (a read marker already there): accepted at once.
    noops: HashSet<u64>,
    /// The newest message the client wrote per conversation.
    newest: BTreeMap<ConvId, MessageId>,
    /// Every document the client wrote to.
    docs: BTreeSet<DocId>,
    next_msg: usize,
}

impl World {
    fn new() -> Self {
        let mut hub = Hub::new();
        let mut owner = Device::new("olga", 1);
        let mut member = Device::new("ann", 9);
        let group = group(
            &mut hub,
            "g1",
            &mut owner,
            &mut [(&mut member, Role::Member)],
        );
        let engine = ClientEngine::new(ClientConfig {
            tenant: tenant(),
            account: acc("ann"),
            actor: confab_core::automerge::ActorId::from(&[0xa1; 16][..]),
        });
        let mut world = World {
            hub,
            owner,
            group: group.clone(),
            client: Peer::with_engine(engine, MemoryStore::new()),
            now: NOW,
            up: VecDeque::new(),
            down: VecDeque::new(),
            subs: HashSet::new(),
            kicked: false,
            // Small, so a resend round splits a long outbox into several submits.
            max_changes: 3,
            intents: BTreeMap::new(),
            created: Vec::new(),
            docs: BTreeSet::new(),
            newest: BTreeMap::new(),
            noops: HashSet::new(),
            next_msg: 0,
        };
        world.client.engine.open(&conv_doc(&group)).unwrap();
        world.connect();
        world.settle_wire();
        world
    }

    /// Carries out the engine's outputs (frames go on the wire).
    /// Carries out the engine's outputs, and a `tick` whenever it asks for one at once
    /// (index upkeep), as a host does.
    fn pump(&mut self) {
        loop {
            let mut outputs = self.client.engine.drain();
            if outputs.is_empty() && self.client.engine.next_wakeup() == Some(DUE_NOW) {
                self.client.engine.tick(self.now);
                outputs = self.client.engine.drain();
            }
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                if let Some(frame) = self.client.carry_out(output) {
                    self.up.push_back(frame);
                }
            }
            // Nothing here reads the events; a long run keeps none.
            self.client.events.clear();
        }
    }

    fn connect(&mut self) {
        let welcome = ServerFrame::Welcome {
            v: 1,
            account: "ann".into(),
            tenant: "acme".into(),
            server_time: self.now,
            max_frame: 1 << 20,
            max_changes: self.max_changes,
        };
        self.client.engine.receive(welcome, self.now);
        self.pump();
    }

    fn reconnect(&mut self) {
        self.client.engine.disconnected();
        self.pump();
        self.up.clear();
        self.down.clear();
        self.subs.clear();
        self.connect();
    }

    /// The device restarts from its store alone (the connection and all in flight is lost),
    /// then connects.
    fn restart(&mut self) {
        let store = std::mem::take(&mut self.client.store);
        let mut engine = ClientEngine::restoring(self.client.engine.config().clone());
        carry_out_stored(&mut engine, &store).unwrap();
        self.client = Peer::with_engine(engine, store);
        self.up.clear();
        self.down.clear();
        self.subs.clear();
    }

    fn deliver(&mut self, n: usize) {
        for _ in 0..n {
            let Some(frame) = self.down.pop_front() else {
                return;
            };
            self.client.engine.receive(frame, self.now);
            self.pump();
        }
    }

    /// Time passes until `to`; the host calls `tick` at every wakeup on the way.
    fn advance(&mut self, to: i64) {
        for _ in 0..1000 {
            match self.client.engine.next_wakeup() {
                Some(at) if at <= to => {
                    self.now = self.now.max(at);
                    self.client.engine.tick(self.now);
                    self.pump();
                    let next = self.client.engine.next_wakeup();
                    assert!(
                        next.is_none_or(|n| n > self.now),
                        "tick at {} left a wakeup at {next:?}",
                        self.now
                    );
                }
                _ => break,
            }
        }
        self.now = self.now.max(to);
    }

    fn transient(
        &mut self,
        code: usize,
        doc: Option<&str>,
        hash: Option<ByteBuf>,
        retry_after_ms: Option<u64>,
    ) {
        let code = TRANSIENT[code % TRANSIENT.len()];
        self.down.push_back(ServerFrame::Error {
            code: code.as_str().into(),
            message: "not stored; resubmit".into(),
            doc: doc.map(str::to_owned),
            fatal: false,
            hash,
            retry_after_ms,
            id: None,
        });
    }

    /// The server takes the next frame from the wire.
    fn serve(&mut self, fault: Fault) {
        let Some(frame) = self.up.pop_front() else {
            return;
        };
        match (frame, fault) {
            (_, Fault::Drop) => {}
            (_, Fault::RateLimited { retry_after }) => {
                let code = TRANSIENT
                    .iter()
                    .position(|c| *c == ErrorCode::RateLimited)
                    .unwrap();
                self.transient(code, None, None, retry_after);
            }
            (ClientFrame::Subscribe { doc, after }, fault) => match fault {
                Fault::FailOne {
                    code,
                    doc: with_doc,
                    retry_after,
                    ..
                }
                | Fault::FailAll {
                    code,
                    doc: with_doc,
                    retry_after,
                    ..
                } => self.transient(code, with_doc.then_some(&doc), None, retry_after),
                _ => self.subscribe(doc, after),
            },
            (ClientFrame::Submit { doc, changes }, fault) => {
                let fail = |i: usize| match &fault {
                    Fault::FailOne {
                        from,
                        code,
                        doc,
                        hash,
                        retry_after,
                    } if i == *from => Some((*code, *doc, *hash, *retry_after)),
                    Fault::FailAll {
                        code,
                        doc,
                        hash,
                        retry_after,
                    } => Some((*code, *doc, *hash, *retry_after)),
                    _ => None,
                };
                for (i, bytes) in changes.into_iter().enumerate() {
                    let change = Change::try_from(&bytes[..]).unwrap();
                    match fail(i) {
                        Some((code, with_doc, with_hash, retry_after)) => {
                            let hash = ByteBuf::from(change.hash().0.to_vec());
                            self.transient(
                                code,
                                with_doc.then_some(&doc),
                                with_hash.then_some(hash),
                                retry_after,
                            );
                        }
                        None => self.submit(&doc, change),
                    }
                }
            }
            _ => {}
        }
    }

    fn subscribe(&mut self, doc: String, after: u64) {
        let id = DocId::parse(&doc).unwrap();
        let conv = id.conv_id().unwrap().clone();
        let exists = self
            .hub
            .conversation(&conv)
            .is_some_and(|c| c.meta.is_some());
        if !exists || (self.kicked && conv == self.group) {
            self.down.push_back(ServerFrame::Error {
                code: "forbidden".into(),
                message: "may not read".into(),
                doc: Some(doc),
                fatal: false,
                hash: None,
                retry_after_ms: None,
                id: None,
            });
            return;
        }
        self.subs.insert(id.clone());
        let missed = self.hub.changes_after(&id, after);
        let seq = missed.last().map_or(after, |(s, _)| *s);
        let changes = missed
            .into_iter()
            .map(|(seq, mut c)| SeqChange {
                seq,
                change: ByteBuf::from(c.bytes().to_vec()),
            })
            .collect();
        self.down.push_back(ServerFrame::Changes {
            doc: doc.clone(),
            changes,
        });
        self.down.push_back(ServerFrame::Synced { doc, seq });
    }

    fn submit(&mut self, doc: &str, mut change: Change) {
        let id = DocId::parse(doc).unwrap();
        let hash = ByteBuf::from(change.hash().0.to_vec());
        let bytes = change.bytes().to_vec();
        match self
            .hub
            .submit(&id, &Author::user(acc("ann")), change, self.now)
        {
            Ok((ack, _)) => {
                self.down.push_back(ServerFrame::Ack {
                    doc: doc.to_owned(),
                    hash,
                    seq: ack.seq,
                });
                self.push(&id, ack.seq, bytes);
            }
            Err(r) => self.down.push_back(ServerFrame::Reject {
                doc: doc.to_owned(),
                hash: Some(hash),
                code: r.code.as_str().to_owned(),
                reason: r.reason,
            }),
        }
    }

    fn push(&mut self, id: &DocId, seq: u64, change: Vec<u8>) {
        if self.subs.contains(id) {
            self.down.push_back(ServerFrame::Changes {
                doc: id.to_string(),
                changes: vec![SeqChange {
                    seq,
                    change: ByteBuf::from(change),
                }],
            });
        }
    }

    /// The owner removes the client from the group; read access goes with it.
    fn kick(&mut self) {
        if self.kicked {
            return;
        }
        self.kicked = true;
        let doc = conv_doc(&self.group);
        self.owner.pull(&self.hub, &doc);
        let now = self.now;
        let mut change = self
            .owner
            .write(&doc, |d, t| {
                write::set_member_status(d, t, now, &acc("ann"), MemberStatus::Removed)
            })
            .unwrap();
        let bytes = change.bytes().to_vec();
        let (ack, _) = self
            .hub
            .submit(&doc, &self.owner.author, change, now)
            .expect("the owner may remove a member");
        self.push(&doc, ack.seq, bytes);
        let revoked: Vec<DocId> = self
            .subs
            .iter()
            .filter(|d| d.conv_id() == Some(&self.group))
            .cloned()
            .collect();
        for d in revoked {
            self.subs.remove(&d);
            self.down.push_back(ServerFrame::Revoked {
                doc: d.to_string(),
                code: "removed".into(),
                reason: "removed from the conversation".into(),
            });
        }
    }

    fn message(&mut self, conv: &ConvId) -> Intent {
        self.next_msg += 1;
        Intent::Send {
            conv: conv.clone(),
            message: NewMessage::text(
                MessageId::new(format!("m{:04}", self.next_msg)).unwrap(),
                acc("ann"),
                format!("message {}", self.next_msg),
                self.now,
            ),
        }
    }

    fn intent(&mut self, conv: &ConvId, intent: Intent) {
        self.docs.insert(conv_doc(conv));
        if let Intent::Send { message, .. } = &intent {
            self.docs
                .insert(self.client.engine.bucket_doc(conv, message.created_at));
            self.newest.insert(conv.clone(), message.id.clone());
        }
        // Refused up front (after the removal arrived): not an outbox entry.
        if let Ok(id) = self.client.engine.intent(intent, self.now) {
            self.intents.insert(id, conv.clone());
            if self.client.engine.status(id) == Some(IntentStatus::Accepted) {
                self.noops.insert(id);
            }
        }
        self.pump();
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Send(k) => {
                let conv = match k % (self.created.len() + 1) {
                    0 => self.group.clone(),
                    n => self.created[n - 1].clone(),
                };
                let message = self.message(&conv);
                self.intent(&conv, message);
            }
            Step::Read(k) => {
                let conv = match k % (self.created.len() + 1) {
                    0 => self.group.clone(),
                    n => self.created[n - 1].clone(),
                };
                if let Some(message) = self.newest.get(&conv).cloned() {
                    let read = Intent::MarkRead {
                        conv: conv.clone(),
                        message,
                    };
                    self.intent(&conv, read);
                }
            }
            Step::Create => {
                let conv = conv_id(&format!("c{}", self.created.len() + 1));
                self.created.push(conv.clone());
                let create = Intent::CreateConversation {
                    encrypted: false,
                    conv: conv.clone(),
                    kind: ConvKind::Group,
                    title: Some(conv.to_string()),
                    members: vec![(acc("olga"), Role::Member)],
                    settings: None,
                    parent: None,
                };
                self.intent(&conv, create);
                let message = self.message(&conv);
                self.intent(&conv, message);
            }
            Step::Serve(fault) => self.serve(fault),
            Step::Deliver(n) => self.deliver(n),
            Step::Advance(ms) => self.advance(self.now + i64::from(ms)),
            Step::Reconnect => self.reconnect(),
            // Only while the newest intent is in the outbox: the engine numbers intents on
            // from the restored outbox, and this world tells intents apart by number.
            Step::Restart => match self.intents.keys().max() {
                Some(newest)
                    if self
                        .client
                        .engine
                        .status(*newest)
                        .is_some_and(|s| s != IntentStatus::Accepted) =>
                {
                    self.restart();
                    self.connect();
                }
                _ => self.reconnect(),
            },
            Step::Kick => self.kick(),
        }
    }

    /// The wire works again: every frame is served and delivered, until nothing moves.
    fn settle_wire(&mut self) {
        for _ in 0..10_000 {
            if let Some(frame) = self.down.pop_front() {
                self.client.engine.receive(frame, self.now);
                self.pump();
            } else if !self.up.is_empty() {
                self.serve(Fault::None);
            } else {
                return;
            }
        }
        panic!("the wire never went quiet");
    }

    /// Faults stop: the wire works and time passes until the engine waits for nothing.
    fn heal(&mut self) {
        for _ in 0..200 {
            self.settle_wire();
            match self.client.engine.next_wakeup() {
                Some(at) => self.advance(at),
                None => return,
            }
        }
        panic!(
            "the engine never stopped waking up: {:?}",
            self.client.engine.outbox()
        );
    }

    /// The verdicts: every intent accepted once and in order, or rejected for its own sake.
    fn check(&self) {
        let mut accepted = HashSet::new();
        for (id, conv) in &self.intents {
            match self.client.engine.status(*id) {
                _ if self.noops.contains(id) => {}
                None => {
                    accepted.insert(*id);
                }
                Some(IntentStatus::Rejected { code, reason, .. }) => {
                    assert!(
                        ErrorCode::parse(&code).is_none_or(|c| !c.is_retryable()),
                        "intent {id} rejected with the transient {code}: {reason}"
                    );
                    assert_ne!(
                        code, "missing_dependency",
                        "intent {id} rejected for its own predecessor: {reason}"
                    );
                    // The only real reason in this world: the client was removed from it.
                    assert!(
                        self.kicked && *conv == self.group,
                        "intent {id} in {conv} rejected with {code}: {reason}"
                    );
                }
                Some(other) => panic!("intent {id} stuck {other:?} after the faults stopped"),
            }
        }
        assert!(self.client.engine.next_wakeup().is_none());
        // Per document: the client's accepted changes, in seq order, carry increasing intent
        // ids (so in intent order, each once), and every accepted message is there.
        let mut stored = HashSet::new();
        for doc in &self.docs {
            let mut last = 0u64;
            for (seq, change) in self.hub.changes_after(doc, 0) {
                if change.actor_id() != &self.client.engine.config().actor {
                    continue;
                }
                let Some(tag) = IntentTag::of(&change) else {
                    continue;
                };
                let Ok(intent) = tag.id.parse::<u64>() else {
                    continue;
                };
                assert!(
                    intent > last,
                    "{doc}: intent {intent} stored at seq {seq} after intent {last}"
                );
                last = intent;
                stored.insert(intent);
            }
        }
        for id in &accepted {
            assert!(stored.contains(id), "intent {id} acked but not stored");
        }
        for id in &stored {
            assert!(
                accepted.contains(id),
                "intent {id} stored but the client reports {:?}",
                self.client.engine.status(*id)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_intent_ends_accepted_in_order_or_rejected_for_itself(
        steps in proptest::collection::vec(step(), 1..70)
    ) {
        let mut world = World::new();
        for step in steps {
            world.step(step);
        }
        world.heal();
        world.check();
    }
}

/// A Postgres outage in small: every submit fails `unavailable` with a `retry_after_ms` while
/// the client keeps writing; afterwards everything is accepted, in order, none rejected.
#[test]
fn an_outage_delays_but_never_rejects() {
    let mut world = World::new();
    let group = world.group.clone();
    for _ in 0..20 {
        let message = world.message(&group);
        world.intent(&group, message);
        while !world.up.is_empty() {
            world.serve(Fault::FailAll {
                code: 1,
                doc: true,
                hash: true,
                retry_after: Some(1_000),
            });
        }
        world.deliver(usize::MAX);
        world.advance(world.now + 500);
    }
    for id in world.intents.keys() {
        let status = world.client.engine.status(*id);
        assert!(
            matches!(
                status,
                Some(IntentStatus::Retrying | IntentStatus::Pending | IntentStatus::Sent)
            ),
            "intent {id} is {status:?} during the outage"
        );
    }
    world.heal();
    world.check();
    assert!(world
        .intents
        .keys()
        .all(|id| world.client.engine.status(*id).is_none()));
}

/// A `missing_dependency` caused by the client's own unstored change waits for it; one with
/// no own predecessor is final.
#[test]
fn missing_dependency_after_an_own_failure_is_retried() {
    let mut world = World::new();
    let group = world.group.clone();
    let first = world.message(&group);
    world.intent(&group, first);
    let second = world.message(&group);
    world.intent(&group, second);
    // The first change fails; the second comes back missing_dependency from the hub.
    world.serve(Fault::FailAll {
        code: 0,
        doc: true,
        hash: true,
        retry_after: None,
    });
    while !world.up.is_empty() {
        world.serve(Fault::None);
    }
    world.deliver(usize::MAX);
    let ids: Vec<u64> = world.intents.keys().copied().collect();
    assert_eq!(
        world.client.engine.status(ids[1]),
        Some(IntentStatus::Retrying)
    );
    let wakeup = world.client.engine.next_wakeup().expect("a resend is due");
    assert!(wakeup > world.now && wakeup <= world.now + 250);
    world.heal();
    world.check();
    assert!(ids
        .iter()
        .all(|id| world.client.engine.status(*id).is_none()));
}

/// A sent change that gets no answer at all is sent again after the answer timeout.
#[test]
fn an_unanswered_submit_is_resent() {
    let mut world = World::new();
    let group = world.group.clone();
    let message = world.message(&group);
    world.intent(&group, message);
    world.serve(Fault::Drop);
    world.settle_wire();
    let id = *world.intents.keys().next().unwrap();
    assert_eq!(world.client.engine.status(id), Some(IntentStatus::Sent));
    assert_eq!(
        world.client.engine.next_wakeup(),
        Some(world.now + confab_core::client::engine::ANSWER_TIMEOUT_MS)
    );
    world.advance(world.now + 29_000);
    assert!(world.up.is_empty(), "resent too early");
    world.advance(world.now + 1_000);
    assert_eq!(world.up.len(), 1, "resent once the answer is overdue");
    world.settle_wire();
    assert_eq!(world.client.engine.status(id), None);
}

/// Without `retry_after_ms` the wait doubles per round without an ack (less at most a quarter
/// of jitter) up to 30 s; with it, the server's wait is kept exactly; an ack starts over.
#[test]
fn backoff_doubles_to_its_cap_and_retry_after_is_kept() {
    let mut world = World::new();
    let group = world.group.clone();
    let message = world.message(&group);
    world.intent(&group, message);
    let fail = |retry_after| Fault::FailAll {
        code: 0,
        doc: true,
        hash: true,
        retry_after,
    };
    let mut waits = Vec::new();
    for _ in 0..10 {
        while !world.up.is_empty() {
            world.serve(fail(None));
        }
        world.deliver(usize::MAX);
        let at = world.client.engine.next_wakeup().expect("a resend is due");
        waits.push(at - world.now);
        world.advance(at);
    }
    for (i, wait) in waits.iter().enumerate() {
        let full = (250i64 << i).min(30_000);
        assert!(
            *wait <= full && *wait >= full - full / 4,
            "round {i}: waited {wait} ms, expected about {full}"
        );
    }
    // The server's retry_after_ms wins over the backoff.
    while !world.up.is_empty() {
        world.serve(fail(Some(1_234)));
    }
    world.deliver(usize::MAX);
    assert_eq!(world.client.engine.next_wakeup(), Some(world.now + 1_234));
    world.advance(world.now + 1_234);
    // An ack resets the backoff: the next failure waits about 250 ms again.
    world.settle_wire();
    let message = world.message(&group);
    world.intent(&group, message);
    while !world.up.is_empty() {
        world.serve(fail(None));
    }
    world.deliver(usize::MAX);
    let wait = world.client.engine.next_wakeup().unwrap() - world.now;
    assert!((187..=250).contains(&wait), "waited {wait} ms after an ack");
    world.heal();
    world.check();
}

/// A subscription that failed transiently (an `error` with `doc` and no `hash` while it
/// catches up) is sent again with the next round.
#[test]
fn a_failed_subscription_is_sent_again() {
    let mut world = World::new();
    let group = world.group.clone();
    world.reconnect();
    assert!(matches!(
        world.up.front(),
        Some(ClientFrame::Subscribe { .. })
    ));
    world.serve(Fault::FailAll {
        code: 1,
        doc: true,
        hash: false,
        retry_after: Some(500),
    });
    world.deliver(usize::MAX);
    assert!(!world.subs.contains(&conv_doc(&group)));
    world.advance(world.now + 499);
    assert!(
        !world
            .up
            .iter()
            .any(|f| matches!(f, ClientFrame::Subscribe { .. })),
        "subscribed again too early"
    );
    world.advance(world.now + 1);
    world.settle_wire();
    assert!(world.subs.contains(&conv_doc(&group)));
    assert!(world.client.engine.next_wakeup().is_none());
}

/// Retry state is not stored, but the outbox is, and correctly: an intent that waits behind
/// its own failed predecessor is stored as waiting, not rejected, and a restart resends both.
#[test]
fn a_restart_keeps_waiting_intents_waiting() {
    let mut world = World::new();
    let group = world.group.clone();
    for _ in 0..3 {
        let message = world.message(&group);
        world.intent(&group, message);
    }
    world.serve(Fault::FailAll {
        code: 1,
        doc: true,
        hash: true,
        retry_after: Some(5_000),
    });
    while !world.up.is_empty() {
        world.serve(Fault::None);
    }
    world.deliver(usize::MAX);
    let ids: Vec<u64> = world.intents.keys().copied().collect();
    for id in &ids {
        assert_eq!(
            world.client.engine.status(*id),
            Some(IntentStatus::Retrying)
        );
    }
    world.restart();
    for id in &ids {
        assert_eq!(world.client.engine.status(*id), Some(IntentStatus::Pending));
    }
    assert!(world.client.engine.next_wakeup().is_none(), "offline");
    world.connect();
    world.heal();
    world.check();
    assert!(ids
        .iter()
        .all(|id| world.client.engine.status(*id).is_none()));
}

/// A storage outage in simulated time: 50 messages a second, every submit answered
/// `unavailable` (retry_after_ms 1000) for 10 s. No message is rejected or left behind, the
/// client does not flood the failing server (held intents wait behind the first failure and
/// each round batches them), and the backlog drains with the first round after the outage.
#[test]
fn a_ten_second_outage_at_fifty_messages_a_second() {
    let mut world = World::new();
    world.max_changes = 1_000;
    world.reconnect();
    world.settle_wire();
    let group = world.group.clone();
    let start = world.now;
    let (mut frames, mut changes) = (0usize, 0usize);
    while world.now < start + 10_000 {
        let message = world.message(&group);
        world.intent(&group, message);
        while let Some(frame) = world.up.front() {
            if let ClientFrame::Submit { changes: c, .. } = frame {
                frames += 1;
                changes += c.len();
            }
            world.serve(Fault::FailAll {
                code: 1,
                doc: true,
                hash: true,
                retry_after: Some(1_000),
            });
        }
        world.deliver(usize::MAX);
        world.advance(world.now + 20);
    }
    let sent = world.intents.len();
    assert!(world
        .intents
        .keys()
        .all(|id| world.client.engine.status(*id).is_some_and(
            |s| s != IntentStatus::Accepted && !matches!(s, IntentStatus::Rejected { .. })
        )));
    let back = world.now;
    world.heal();
    let drained = world.now - back;
    world.check();
    assert!(world
        .intents
        .keys()
        .all(|id| world.client.engine.status(*id).is_none()));
    eprintln!(
        "outage: {sent} messages, {frames} submits with {changes} changes sent during it, \
         drained {drained} ms after it ended"
    );
    // One round a second, each a few batched submits: far fewer frames than messages.
    assert!(frames < sent, "{frames} submits for {sent} messages");
    assert!(drained <= 1_000, "drained {drained} ms after the outage");
}

/// A probe that gets a real rejection still lets the intents waiting behind it go out (here a
/// read marker in the conversation's document, behind a message in its bucket).
#[test]
fn a_rejected_probe_releases_the_intents_behind_it() {
    let mut world = World::new();
    let group = world.group.clone();
    let message = world.message(&group);
    let Intent::Send { message: m, .. } = &message else {
        unreachable!()
    };
    let read = Intent::MarkRead {
        conv: group.clone(),
        message: m.id.clone(),
    };
    world.intent(&group, message);
    world.intent(&group, read);
    assert_eq!(world.intents.len(), 2);
    let fail = Fault::FailAll {
        code: 0,
        doc: true,
        hash: true,
        retry_after: None,
    };
    // Two failed rounds: the next one is a probe (the message alone).
    for _ in 0..2 {
        while !world.up.is_empty() {
            world.serve(fail.clone());
        }
        world.deliver(usize::MAX);
        let at = world.client.engine.next_wakeup().unwrap();
        world.advance(at);
    }
    let probe: Vec<&ClientFrame> = world
        .up
        .iter()
        .filter(|f| matches!(f, ClientFrame::Submit { .. }))
        .collect();
    assert_eq!(probe.len(), 1, "a probe round sends one intent: {probe:?}");
    // The probe is refused for its own sake.
    world.kick();
    world.settle_wire();
    world.heal();
    world.check();
    assert!(world.intents.keys().all(|id| matches!(
        world.client.engine.status(*id),
        Some(IntentStatus::Rejected { .. })
    )));
}

/// A device back after a long time offline sends its outbox in order in a few packed submits
/// (within the server's `max_changes`), not one frame per intent, and every intent is
/// accepted.
#[test]
fn a_reconnect_sends_a_long_outbox_in_few_frames() {
    let mut world = World::new();
    let group = world.group.clone();
    world.client.engine.disconnected();
    world.pump();
    world.up.clear();
    for _ in 0..250 {
        let message = world.message(&group);
        world.intent(&group, message);
    }
    assert!(world.up.is_empty(), "nothing goes out while offline");
    world.connect();
    let submits: Vec<usize> = world
        .up
        .iter()
        .filter_map(|f| match f {
            ClientFrame::Submit { changes, .. } => Some(changes.len()),
            _ => None,
        })
        .collect();
    let limit = usize::try_from(world.max_changes).unwrap();
    assert_eq!(
        submits.iter().sum::<usize>(),
        250,
        "every change goes out once"
    );
    assert!(
        submits.len() <= 250usize.div_ceil(limit) + 1,
        "{} submits for 250 changes (max_changes {limit})",
        submits.len()
    );
    assert!(submits.iter().all(|n| *n <= limit));
    world.heal();
    world.check();
    assert!(world
        .intents
        .keys()
        .all(|id| world.client.engine.status(*id).is_none()));
}
