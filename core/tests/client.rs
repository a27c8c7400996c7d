//! The client engine against the hub (the server's acceptance engine) through protocol
//! frames: offline weeks, rejection and rebase, two devices of one account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};

use confab_core::automerge::{ActorId, Change};
use confab_core::client::{
    ClientConfig, ClientEngine, Intent, IntentStatus, MemoryStore, Output, StoreOp,
};
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{ConvKind, MemberStatus, Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_core::protocol::{ClientFrame, SeqChange, ServerFrame};
use serde_bytes::ByteBuf;

const T0: i64 = 1_775_779_200_000;

fn acc(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// A fake network: the hub plus subscriptions, delivering frames between engines.
struct Wire {
    hub: Hub,
    subs: HashMap<DocId, HashSet<usize>>,
    now: i64,
}

struct Peer {
    engine: ClientEngine,
    store: MemoryStore,
    online: bool,
    inbox: Vec<ServerFrame>,
}

impl Peer {
    fn new(account: &str, device: u8) -> Self {
        let mut actor = [0u8; 16];
        actor[..account.len().min(14)]
            .copy_from_slice(&account.as_bytes()[..account.len().min(14)]);
        actor[15] = device;
        Peer {
            engine: ClientEngine::new(ClientConfig {
                tenant: tenant(),
                account: acc(account),
                actor: ActorId::from(&actor[..]),
            }),
            store: MemoryStore::new(),
            online: false,
            inbox: Vec::new(),
        }
    }
}

impl Wire {
    fn new() -> Self {
        Wire {
            hub: Hub::new(),
            subs: HashMap::new(),
            now: T0,
        }
    }

    fn connect(&mut self, peers: &mut [Peer], i: usize) {
        peers[i].online = true;
        let now = self.now;
        peers[i].engine.connected(now, now);
        self.pump(peers);
    }

    fn disconnect(&mut self, peers: &mut [Peer], i: usize) {
        peers[i].online = false;
        peers[i].engine.disconnected();
        for subs in self.subs.values_mut() {
            subs.remove(&i);
        }
        self.pump(peers);
    }

    /// Runs every output until nothing moves.
    fn pump(&mut self, peers: &mut [Peer]) {
        loop {
            let mut moved = false;
            for i in 0..peers.len() {
                let frames = std::mem::take(&mut peers[i].inbox);
                for frame in frames {
                    moved = true;
                    peers[i].engine.receive(frame, self.now);
                }
                for output in peers[i].engine.drain() {
                    moved = true;
                    match output {
                        Output::Persist(ops) => {
                            confab_core::client::store::block_on_ready(
                                confab_core::client::LocalStore::write(&peers[i].store, ops),
                            )
                            .unwrap()
                            .unwrap();
                        }
                        Output::Event(_) => {}
                        Output::Send(frame) if peers[i].online => self.serve(peers, i, frame),
                        Output::Send(_) => {}
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn serve(&mut self, peers: &mut [Peer], i: usize, frame: ClientFrame) {
        match frame {
            ClientFrame::Subscribe { doc, after } => {
                let id = DocId::parse(&doc).unwrap();
                self.subs.entry(id.clone()).or_default().insert(i);
                let changes: Vec<SeqChange> = self
                    .hub
                    .changes_after(&id, after)
                    .into_iter()
                    .map(|(seq, mut c)| SeqChange {
                        seq,
                        change: ByteBuf::from(c.bytes().to_vec()),
                    })
                    .collect();
                let seq = changes.last().map_or(after, |c| c.seq);
                peers[i].inbox.push(ServerFrame::Changes {
                    doc: doc.clone(),
                    changes,
                });
                peers[i].inbox.push(ServerFrame::Synced { doc, seq });
            }
            ClientFrame::Submit { doc, changes } => {
                let id = DocId::parse(&doc).unwrap();
                let author = Author::user(peers[i].engine.config().account.clone());
                for bytes in changes {
                    let change = match Change::try_from(&bytes[..]) {
                        Ok(c) => c,
                        Err(_) => continue,
                    };
                    let hash = ByteBuf::from(change.hash().0.to_vec());
                    match self.hub.submit(&id, &author, change.clone(), self.now) {
                        Ok((ack, effects)) => {
                            peers[i].inbox.push(ServerFrame::Ack {
                                doc: doc.clone(),
                                hash,
                                seq: ack.seq,
                            });
                            if !effects.is_empty() || ack.seq > 0 {
                                let push = ServerFrame::Changes {
                                    doc: doc.clone(),
                                    changes: vec![SeqChange {
                                        seq: ack.seq,
                                        change: ByteBuf::from(bytes.to_vec()),
                                    }],
                                };
                                for sub in self.subs.get(&id).cloned().unwrap_or_default() {
                                    peers[sub].inbox.push(push.clone());
                                }
                            }
                            // Removed members lose read access.
                            for e in &effects {
                                if let confab_core::policy::Effect::UpdateMember { after, .. } = e {
                                    if !after.is_active() {
                                        for (p, peer) in peers.iter_mut().enumerate() {
                                            if peer.engine.config().account == after.account {
                                                for subs in self.subs.values_mut() {
                                                    subs.remove(&p);
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        Err(r) => peers[i].inbox.push(ServerFrame::Reject {
                            doc: doc.clone(),
                            hash: Some(hash),
                            code: r.code.as_str().to_owned(),
                            reason: r.reason,
                        }),
                    }
                }
            }
            _ => {}
        }
    }
}

fn send(peer: &mut Peer, conv: &ConvId, id: &str, body: &str, at: i64) -> u64 {
    let message = NewMessage::text(
        MessageId::new(id).unwrap(),
        peer.engine.config().account.clone(),
        body,
        at,
    );
    peer.engine
        .intent(
            Intent::Send {
                conv: conv.clone(),
                message,
            },
            at,
        )
        .expect("allowed locally")
}

fn group(
    wire: &mut Wire,
    peers: &mut [Peer],
    owner: usize,
    conv: &str,
    members: &[(usize, Role)],
) -> ConvId {
    let c = ConvId::new(conv).unwrap();
    let members = members
        .iter()
        .map(|(p, r)| (peers[*p].engine.config().account.clone(), *r))
        .collect();
    let id = peers[owner]
        .engine
        .intent(
            Intent::CreateConversation {
                conv: c.clone(),
                kind: ConvKind::Group,
                title: Some(conv.into()),
                members,
                settings: None,
                parent: None,
            },
            wire.now,
        )
        .unwrap();
    wire.pump(peers);
    assert_eq!(
        peers[owner].engine.status(id),
        None,
        "accepted and forgotten"
    );
    for p in peers.iter_mut() {
        p.engine.open(&DocId::conv(&tenant(), &c)).unwrap();
    }
    wire.pump(peers);
    c
}

#[test]
fn a_week_offline_with_1000_intents_is_accepted_in_order() {
    let mut wire = Wire::new();
    let mut peers = vec![Peer::new("alice", 1), Peer::new("bob", 1)];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    let c = group(&mut wire, &mut peers, 0, "trip", &[(1, Role::Member)]);
    wire.disconnect(&mut peers, 1);
    // A simulated week: 1000 messages spread over 7 days (7 buckets).
    let step = 7 * DEFAULT_BUCKET_MS / 1000;
    let ids: Vec<u64> = (0..1000)
        .map(|n| {
            send(
                &mut peers[1],
                &c,
                &format!("b{n:04}"),
                &format!("offline {n}"),
                T0 + n * step,
            )
        })
        .collect();
    assert!(ids
        .iter()
        .all(|id| peers[1].engine.status(*id) == Some(IntentStatus::Pending)));
    wire.now = T0 + 7 * DEFAULT_BUCKET_MS;
    wire.connect(&mut peers, 1);
    for id in &ids {
        assert_eq!(peers[1].engine.status(*id), None, "intent {id} accepted");
    }
    let timeline: Vec<String> = peers[1]
        .engine
        .timeline(&c)
        .into_iter()
        .map(|i| i.message.body)
        .collect();
    let expected: Vec<String> = (0..1000).map(|n| format!("offline {n}")).collect();
    assert_eq!(timeline, expected);
    assert!(peers[1]
        .engine
        .timeline(&c)
        .iter()
        .all(|i| !i.pending && i.seq.is_some()));
    assert!(peers[1].engine.outbox().is_empty());
}

#[test]
fn a_removed_offline_member_sees_all_23_intents_rejected_and_later_ones_elsewhere_go_through() {
    let mut wire = Wire::new();
    let mut peers = vec![Peer::new("alice", 1), Peer::new("carol", 1)];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    let c = group(&mut wire, &mut peers, 0, "team", &[(1, Role::Member)]);
    let other = group(&mut wire, &mut peers, 1, "carols", &[(0, Role::Member)]);
    send(&mut peers[0], &c, "a1", "hello", wire.now);
    let bucket = peers[1].engine.bucket_doc(&c, wire.now);
    peers[1].engine.open(&bucket).unwrap();
    wire.pump(&mut peers);

    wire.disconnect(&mut peers, 1);
    let mut queued = Vec::new();
    for n in 0..20 {
        queued.push(send(
            &mut peers[1],
            &c,
            &format!("c{n}"),
            "queued",
            wire.now + n,
        ));
    }
    for emoji in ["👍", "🎉", "👀"] {
        let intent = Intent::React {
            conv: c.clone(),
            message: MessageId::new("a1").unwrap(),
            bucket: bucket_of(&bucket),
            emoji: emoji.into(),
            on: true,
        };
        queued.push(peers[1].engine.intent(intent, wire.now).unwrap());
    }
    let later = send(
        &mut peers[1],
        &other,
        "elsewhere",
        "still fine here",
        wire.now + 100,
    );

    // Meanwhile the admin removes carol.
    peers[0]
        .engine
        .intent(
            Intent::RemoveMember {
                conv: c.clone(),
                account: acc("carol"),
                ban: false,
            },
            wire.now,
        )
        .unwrap();
    wire.pump(&mut peers);
    wire.connect(&mut peers, 1);

    for id in &queued {
        match peers[1].engine.status(*id) {
            Some(IntentStatus::Rejected { code, reason }) => {
                assert!(code == "member_inactive" || code == "not_member", "{code}");
                assert!(!reason.is_empty());
            }
            other => panic!("intent {id}: {other:?}"),
        }
    }
    assert_eq!(
        peers[1].engine.status(later),
        None,
        "the other conversation's message went through"
    );
    assert_eq!(
        peers[1].engine.outbox().len(),
        23,
        "every rejected intent stays visible until dismissed"
    );
    // Nobody else ever sees carol's queued messages.
    let seen: Vec<String> = peers[0]
        .engine
        .timeline(&c)
        .into_iter()
        .map(|i| i.message.id.to_string())
        .collect();
    assert_eq!(seen, vec!["a1".to_owned()]);
}

fn bucket_of(doc: &DocId) -> i64 {
    match doc.target() {
        confab_core::ids::DocTarget::Msgs(_, b) => *b,
        _ => panic!("not a bucket"),
    }
}

#[test]
fn two_devices_of_one_account_converge() {
    let mut wire = Wire::new();
    let mut peers = vec![
        Peer::new("alice", 1),
        Peer::new("alice", 2),
        Peer::new("bob", 1),
    ];
    for i in 0..3 {
        wire.connect(&mut peers, i);
    }
    let c = group(&mut wire, &mut peers, 0, "home", &[(2, Role::Member)]);
    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    for p in peers.iter_mut() {
        p.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    wire.disconnect(&mut peers, 0);
    wire.disconnect(&mut peers, 1);
    send(&mut peers[0], &c, "p1", "from the phone", wire.now);
    send(&mut peers[1], &c, "l1", "from the laptop", wire.now + 1);
    send(&mut peers[2], &c, "b1", "from bob", wire.now + 2);
    wire.pump(&mut peers);
    wire.connect(&mut peers, 1);
    wire.connect(&mut peers, 0);
    wire.pump(&mut peers);
    let view = |p: &Peer| {
        p.engine
            .timeline(&c)
            .into_iter()
            .map(|i| (i.message.id.to_string(), i.seq))
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&peers[0]), view(&peers[1]));
    assert_eq!(view(&peers[0]), view(&peers[2]));
    assert_eq!(view(&peers[0]).len(), 3);
}

#[test]
fn history_outbox_and_cursors_survive_a_restart_from_the_store() {
    let mut wire = Wire::new();
    let mut peers = vec![Peer::new("alice", 1), Peer::new("bob", 1)];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    let c = group(&mut wire, &mut peers, 0, "keep", &[(1, Role::Member)]);
    let bucket = peers[1].engine.bucket_doc(&c, wire.now);
    peers[1].engine.open(&bucket).unwrap();
    send(&mut peers[0], &c, "m1", "before the restart", wire.now);
    wire.pump(&mut peers);
    wire.disconnect(&mut peers, 1);
    let pending = send(&mut peers[1], &c, "m2", "queued offline", wire.now + 1);
    wire.pump(&mut peers);

    // Restart bob's device from its store only.
    let store = std::mem::take(&mut peers[1].store);
    let mut restored = Peer::new("bob", 1);
    let scan = |prefix: &str| {
        confab_core::client::store::block_on_ready(confab_core::client::LocalStore::scan(
            &store, prefix,
        ))
        .unwrap()
        .unwrap()
    };
    restored.engine.restore_outbox(&scan("out/")).unwrap();
    for doc in [DocId::conv(&tenant(), &c), bucket.clone()] {
        let snap = confab_core::client::store::block_on_ready(
            confab_core::client::LocalStore::get(&store, &format!("snap/{doc}")),
        )
        .unwrap()
        .unwrap();
        restored
            .engine
            .restore_doc(&doc, snap.as_deref(), &scan(&format!("chg/{doc}/")))
            .unwrap();
    }
    restored.store = store;
    peers[1] = restored;
    let items: Vec<(String, bool)> = peers[1]
        .engine
        .timeline(&c)
        .into_iter()
        .map(|i| (i.message.body, i.pending))
        .collect();
    assert_eq!(
        items,
        vec![
            ("before the restart".to_owned(), false),
            ("queued offline".to_owned(), true)
        ]
    );
    assert_eq!(peers[1].engine.status(pending), Some(IntentStatus::Pending));
    wire.connect(&mut peers, 1);
    assert_eq!(
        peers[1].engine.status(pending),
        None,
        "accepted after reconnect"
    );
    let _ = (
        BTreeMap::<u8, u8>::new(),
        StoreOp::Delete(String::new()),
        MemberStatus::Active,
    );
}
