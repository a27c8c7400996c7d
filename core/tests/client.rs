//! The client engine against the hub (the server's acceptance engine) through protocol
//! frames: offline weeks, rejection and rebase, two devices of one account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};

use serde_json::json;

use confab_core::automerge::{ActorId, Change};
use confab_core::client::host::carry_out_stored;
use confab_core::client::store::{self, block_on_ready};
use confab_core::client::{
    ClientConfig, ClientEngine, Intent, IntentStatus, LocalStore, MemoryStore, Output, DUE_NOW,
};
use confab_core::ids::{Bucket, ConvId, DocId, DocTarget, MessageId, TenantId};
use confab_core::model::conversation::{ConvKind, Permission, Role, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{ClientFrame, ServerFrame, SnapshotOrder};
use confab_testkit::ids::acc;
use confab_testkit::net::{self, HubServer, Peer, Server};
use serde_bytes::ByteBuf;

const T0: i64 = 1_775_779_200_000;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// A fake network: the hub plus subscriptions, delivering frames between engines.
struct Wire {
    net: HubServer,
    /// Peers whose pushes are lost in flight (their acks still arrive).
    mute: HashSet<usize>,
    /// Catch-up as a snapshot (with its order) from this many missed changes on.
    snapshot_from: Option<u64>,
    /// Frames each peer submitted, and subscriptions refused to it.
    submits: HashMap<usize, usize>,
    refused: HashMap<usize, usize>,
    /// `buckets` requests are answered `unavailable`, as while the storage is down.
    listings_fail: bool,
}

fn peer(account: &str, device: u8) -> Peer {
    let mut actor = [0u8; 16];
    actor[..account.len().min(14)].copy_from_slice(&account.as_bytes()[..account.len().min(14)]);
    actor[15] = device;
    Peer::new(ClientConfig {
        tenant: tenant(),
        account: acc(account),
        actor: ActorId::from(&actor[..]),
    })
}

impl Deref for Wire {
    type Target = HubServer;

    fn deref(&self) -> &HubServer {
        &self.net
    }
}

impl DerefMut for Wire {
    fn deref_mut(&mut self) -> &mut HubServer {
        &mut self.net
    }
}

impl Wire {
    fn new() -> Self {
        Wire {
            net: HubServer::new(T0),
            mute: HashSet::new(),
            snapshot_from: None,
            submits: HashMap::new(),
            refused: HashMap::new(),
            listings_fail: false,
        }
    }

    fn connect(&mut self, peers: &mut [Peer], i: usize) {
        net::connect(self, peers, i);
    }

    fn disconnect(&mut self, peers: &mut [Peer], i: usize) {
        peers[i].online = false;
        peers[i].engine.disconnected();
        self.net.unsubscribe(i);
        self.pump(peers);
    }

    /// Runs every output until nothing moves.
    fn pump(&mut self, peers: &mut [Peer]) {
        net::pump(self, peers);
    }
}

impl Server for Wire {
    fn now(&self) -> i64 {
        self.net.now
    }

    fn serve(&mut self, peers: &mut [Peer], i: usize, frame: ClientFrame) {
        match frame {
            ClientFrame::Subscribe { doc, after } => {
                let id = DocId::parse(&doc).unwrap();
                // As the server: no conversation, no subscription.
                if let Some(conv) = id.conv_id() {
                    if self.hub.conversation(conv).is_none_or(|c| c.meta.is_none()) {
                        *self.refused.entry(i).or_default() += 1;
                        peers[i].inbox.push(ServerFrame::Error {
                            code: "forbidden".into(),
                            message: "no such conversation".into(),
                            doc: Some(doc),
                            fatal: false,
                            hash: None,
                            retry_after_ms: None,
                            id: None,
                        });
                        return;
                    }
                }
                let missed = self.hub.changes_after(&id, after);
                let as_snapshot = self.snapshot_from.is_some_and(|n| missed.len() as u64 >= n);
                if !as_snapshot {
                    self.net.subscribe(peers, i, doc, after);
                    return;
                }
                self.net.subs.entry(id.clone()).or_default().insert(i);
                let seq = missed.last().map_or(after, |(seq, _)| *seq);
                let order = SnapshotOrder::build(
                    after + 1,
                    missed
                        .iter()
                        .map(|(_, c)| (c.actor_id().to_bytes(), c.start_op().get())),
                );
                peers[i].inbox.push(ServerFrame::Snapshot {
                    doc: doc.clone(),
                    seq,
                    data: ByteBuf::from(self.hub.doc(&id).unwrap().save()),
                    order: Some(order),
                });
                peers[i].inbox.push(ServerFrame::Synced { doc, seq });
            }
            ClientFrame::Submit { doc, changes } => {
                *self.submits.entry(i).or_default() += 1;
                let id = DocId::parse(&doc).unwrap();
                for bytes in changes {
                    if Change::try_from(&bytes[..]).is_err() {
                        continue;
                    }
                    let Ok((ack, effects)) = self.net.accept(peers, i, &doc, &bytes) else {
                        continue;
                    };
                    // A new bucket part is announced to the conversation's subscribers, as
                    // the server does.
                    if let (1, DocTarget::Msgs(conv, bucket)) = (ack.seq, id.target()) {
                        let conv_doc = DocId::conv(&tenant(), conv);
                        let frame = ServerFrame::Bucket {
                            doc: conv_doc.to_string(),
                            bucket: *bucket,
                        };
                        for sub in self.subs.get(&conv_doc).cloned().unwrap_or_default() {
                            peers[sub].inbox.push(frame.clone());
                        }
                    }
                    if !effects.is_empty() || ack.seq > 0 {
                        let mute = &self.mute;
                        let to = |sub: usize, _: &Peer| !mute.contains(&sub);
                        self.net.push(peers, &doc, ack.seq, &bytes, to);
                    }
                    // Removed members lose read access.
                    for e in &effects {
                        if let confab_core::policy::Effect::UpdateMember { after, .. } = e {
                            if !after.is_active() {
                                self.net.unsubscribe_account(peers, &after.account);
                            }
                        }
                    }
                }
            }
            ClientFrame::Buckets { doc, .. } if self.listings_fail => {
                peers[i].inbox.push(ServerFrame::Error {
                    code: "unavailable".into(),
                    message: "storage unavailable".into(),
                    doc: Some(doc),
                    fatal: false,
                    hash: None,
                    retry_after_ms: Some(1_000),
                    id: None,
                });
            }
            other => self.net.serve(peers, i, other),
        }
    }
}

fn scan(store: &MemoryStore, prefix: &str) -> Vec<(String, Vec<u8>)> {
    block_on_ready(LocalStore::scan(store, prefix))
        .unwrap()
        .unwrap()
}

/// The device restarts: a new engine restored from the store alone (the documents its
/// index lists, the outbox); offline until the wire connects it.
fn restart(peer: &mut Peer) {
    let store = std::mem::take(&mut peer.store);
    let config = peer.engine.config().clone();
    let mut engine = ClientEngine::restoring(config);
    carry_out_stored(&mut engine, &store).unwrap();
    *peer = Peer::with_engine(engine, store);
}

/// Peers of these accounts (device 1 each), all connected.
fn online(wire: &mut Wire, accounts: &[&str]) -> Vec<Peer> {
    let mut peers: Vec<Peer> = accounts.iter().map(|a| peer(a, 1)).collect();
    for i in 0..peers.len() {
        wire.connect(&mut peers, i);
    }
    peers
}

/// A group `conv` with `members` as members.
fn group_intent(conv: &ConvId, members: &[&str]) -> Intent {
    Intent::CreateConversation {
        encrypted: false,
        conv: conv.clone(),
        kind: ConvKind::Group,
        title: Some(conv.to_string()),
        members: members.iter().map(|m| (acc(m), Role::Member)).collect(),
        settings: None,
        parent: None,
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
    let intent = Intent::CreateConversation {
        encrypted: false,
        conv: c.clone(),
        kind: ConvKind::Group,
        title: Some(conv.into()),
        members: members
            .iter()
            .map(|(p, r)| (peers[*p].engine.config().account.clone(), *r))
            .collect(),
        settings: None,
        parent: None,
    };
    let id = peers[owner].engine.intent(intent, wire.now).unwrap();
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
    let mut peers = online(&mut wire, &["alice", "bob"]);
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
    let mut peers = online(&mut wire, &["alice", "carol"]);
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
            Some(IntentStatus::Rejected { code, reason, .. }) => {
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

fn bucket_of(doc: &DocId) -> confab_core::ids::Bucket {
    match doc.target() {
        confab_core::ids::DocTarget::Msgs(_, b) => *b,
        _ => panic!("not a bucket"),
    }
}

#[test]
fn two_devices_of_one_account_converge() {
    let mut wire = Wire::new();
    let mut peers = vec![peer("alice", 1), peer("alice", 2), peer("bob", 1)];
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
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "keep", &[(1, Role::Member)]);
    let bucket = peers[1].engine.bucket_doc(&c, wire.now);
    peers[1].engine.open(&bucket).unwrap();
    send(&mut peers[0], &c, "m1", "before the restart", wire.now);
    wire.pump(&mut peers);
    wire.disconnect(&mut peers, 1);
    let pending = send(&mut peers[1], &c, "m2", "queued offline", wire.now + 1);
    wire.pump(&mut peers);

    // Restart bob's device from its store only.
    restart(&mut peers[1]);
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
}

fn bodies(peer: &Peer, conv: &ConvId) -> Vec<(String, bool, Option<u64>)> {
    peer.engine
        .timeline(conv)
        .into_iter()
        .map(|i| (i.message.body, i.pending, i.seq))
        .collect()
}

#[test]
fn an_acked_change_survives_a_restart_before_its_push_as_accepted_and_is_not_sent_again() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "acked", &[(1, Role::Member)]);
    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    for p in peers.iter_mut() {
        p.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    send(&mut peers[1], &c, "b1", "from bob", wire.now);
    wire.pump(&mut peers);

    // Alice's push is still in flight when her device dies; the ack has arrived.
    wire.mute.insert(0);
    let id = send(&mut peers[0], &c, "a1", "acked, not pushed", wire.now + 1);
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "accepted");
    assert!(scan(&peers[0].store, "out/").is_empty(), "left the outbox");
    let expected = vec![
        ("from bob".to_owned(), false, Some(1)),
        ("acked, not pushed".to_owned(), false, Some(2)),
    ];
    assert_eq!(bodies(&peers[0], &c), expected);

    restart(&mut peers[0]);
    assert_eq!(
        bodies(&peers[0], &c),
        expected,
        "accepted with its seq after the restart, not pending"
    );
    assert!(peers[0].engine.outbox().is_empty());

    // Back online: the push comes with the catch-up; nothing is sent again or doubled.
    wire.mute.remove(&0);
    let submitted = wire.submits.get(&0).copied().unwrap_or(0);
    wire.connect(&mut peers, 0);
    assert_eq!(
        wire.submits.get(&0).copied().unwrap_or(0),
        submitted,
        "no resubmission"
    );
    assert_eq!(bodies(&peers[0], &c), expected);
    let stored: Vec<String> = scan(&peers[0].store, &format!("chg/{bucket}/"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(stored.len(), 2, "each change stored once: {stored:?}");
    assert!(
        stored.iter().all(|k| !k.contains('-')),
        "the ack record is replaced by the change in order: {stored:?}"
    );
    restart(&mut peers[0]);
    assert_eq!(bodies(&peers[0], &c), expected);
    assert_eq!(bodies(&peers[1], &c), expected, "bob sees the same");
}

#[test]
fn a_conversation_created_offline_is_followed_live_once_its_creation_is_acked() {
    let mut wire = Wire::new();
    let mut peers = vec![peer("alice", 1), peer("bob", 1)];
    wire.connect(&mut peers, 1);
    // Alice creates the group and writes in it while offline.
    let c = ConvId::new("made-offline").unwrap();
    let create = peers[0]
        .engine
        .intent(group_intent(&c, &["bob"]), wire.now)
        .unwrap();
    let first = send(&mut peers[0], &c, "a1", "written offline", wire.now);
    wire.connect(&mut peers, 0);
    assert_eq!(peers[0].engine.status(create), None);
    assert_eq!(peers[0].engine.status(first), None);
    assert_eq!(
        wire.refused.get(&0),
        None,
        "nothing was subscribed before the conversation existed"
    );

    // Bob joins in; alice receives his message and his change to the conversation live,
    // without reconnecting.
    let bucket = peers[1].engine.bucket_doc(&c, wire.now);
    peers[1].engine.open(&DocId::conv(&tenant(), &c)).unwrap();
    peers[1].engine.open(&bucket).unwrap();
    wire.pump(&mut peers);
    send(&mut peers[1], &c, "b1", "live to alice", wire.now + 1);
    let read = Intent::MarkRead {
        conv: c.clone(),
        message: MessageId::new("a1").unwrap(),
    };
    peers[1].engine.intent(read, wire.now + 2).unwrap();
    wire.pump(&mut peers);
    let seen: Vec<String> = bodies(&peers[0], &c).into_iter().map(|b| b.0).collect();
    assert_eq!(seen, vec!["written offline", "live to alice"]);
    let reads = peers[0].engine.conversation(&c).unwrap().reads;
    assert_eq!(
        reads.get(&acc("bob")).map(|m| m.to_string()),
        Some("a1".to_owned())
    );
    // His delivery marker reaches alice the same way, and the server took it.
    let delivered = Intent::MarkDelivered {
        conv: c.clone(),
        message: MessageId::new("a1").unwrap(),
    };
    let id = peers[1].engine.intent(delivered, wire.now + 3).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.status(id), None, "accepted and settled");
    let conv = peers[0].engine.conversation(&c).unwrap();
    assert_eq!(
        conv.delivered.get(&acc("bob")).map(|m| m.to_string()),
        Some("a1".to_owned())
    );
    assert_eq!(
        conv.members.len(),
        2,
        "a marker is not a member entry change"
    );

    // Created while online, the same holds.
    let made_online = ConvId::new("made-online").unwrap();
    peers[0]
        .engine
        .intent(group_intent(&made_online, &["bob"]), wire.now)
        .unwrap();
    wire.pump(&mut peers);
    peers[1]
        .engine
        .open(&DocId::conv(&tenant(), &made_online))
        .unwrap();
    wire.pump(&mut peers);
    let leave = Intent::Leave {
        conv: made_online.clone(),
    };
    peers[1].engine.intent(leave, wire.now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(wire.refused.get(&0), None);
    let member = peers[0].engine.conversation(&made_online).unwrap().members[&acc("bob")].clone();
    assert!(!member.is_active(), "alice saw bob leave live: {member:?}");
}

#[test]
fn a_snapshot_catch_up_keeps_the_server_order_and_the_pending_work() {
    let mut wire = Wire::new();
    wire.snapshot_from = Some(50);
    let mut peers = online(&mut wire, &["alice", "carol", "bob"]);
    let c = group(
        &mut wire,
        &mut peers,
        0,
        "busy",
        &[(1, Role::Member), (2, Role::Member)],
    );
    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    for p in peers.iter_mut() {
        p.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    send(&mut peers[0], &c, "first", "seen by bob", wire.now);
    wire.pump(&mut peers);
    wire.disconnect(&mut peers, 2);
    // 200 messages from two authors while bob is away; created_at runs backwards, so only
    // the seqs give the server order.
    for n in 0..200i64 {
        let (p, at) = ((n % 2) as usize, wire.now + 1000 - n);
        send(&mut peers[p], &c, &format!("m{n:03}"), &format!("{n}"), at);
        wire.pump(&mut peers);
    }
    let queued = send(&mut peers[2], &c, "b1", "queued by bob", wire.now + 2000);
    let reference: Vec<(String, Option<u64>)> = peers[0]
        .engine
        .timeline(&c)
        .into_iter()
        .map(|i| (i.message.id.to_string(), i.seq))
        .collect();
    assert_eq!(reference.len(), 201);

    wire.connect(&mut peers, 2);
    assert_eq!(
        peers[2].engine.status(queued),
        None,
        "bob's pending message went through"
    );
    let view = |p: &Peer| -> Vec<(String, Option<u64>)> {
        p.engine
            .timeline(&c)
            .into_iter()
            .map(|i| (i.message.id.to_string(), i.seq))
            .collect()
    };
    let expected: Vec<(String, Option<u64>)> = reference
        .iter()
        .cloned()
        .chain([("b1".to_owned(), Some(202))])
        .collect();
    assert_eq!(
        view(&peers[2]),
        expected,
        "server order from the snapshot's order"
    );
    assert_eq!(view(&peers[0]), expected);
    assert!(peers[2].engine.timeline(&c).iter().all(|i| !i.pending));
    let stored: Vec<String> = scan(&peers[2].store, &format!("chg/{bucket}/"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        stored.len() <= 1,
        "the snapshot replaced the change log: {stored:?}"
    );
    restart(&mut peers[2]);
    assert_eq!(view(&peers[2]), expected, "and it survives a restart");
    assert_eq!(
        peers[2]
            .engine
            .cursors()
            .into_iter()
            .find(|(d, _)| *d == bucket)
            .map(|(_, seq)| seq),
        Some(202)
    );
}

#[test]
fn profiles_the_private_document_and_cursors_are_readable() {
    use confab_core::ids::ContactId;
    use confab_core::model::account::{AccountKind, Profile};
    use confab_core::model::contact::{Contact, ContactKind};
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "prefs", &[(1, Role::Member)]);
    let profile = Profile {
        kind: AccountKind::Personal,
        display_name: "Alice A.".into(),
        avatar: None,
        bio: Some("tea".into()),
        status: None,
    };
    let me = peers[0].engine.config().account.clone();
    let intents = vec![
        Intent::SetProfile {
            profile: profile.clone(),
        },
        Intent::SetConvPref {
            conv: c.clone(),
            key: "muted".into(),
            value: serde_json::json!(true),
        },
        Intent::SetConvPref {
            conv: c.clone(),
            key: "notifications".into(),
            value: serde_json::json!("mentions"),
        },
        Intent::SetDraft {
            conv: c.clone(),
            text: Some("half a thought".into()),
        },
        Intent::SetContact {
            id: ContactId::new("bob").unwrap(),
            contact: Some(Contact {
                kind: ContactKind::Person,
                phone: Some("+5215512345678".into()),
                email: None,
                account: Some(acc("bob")),
                nickname: Some("Bobby".into()),
            }),
        },
        Intent::SetContact {
            id: ContactId::new("shop").unwrap(),
            contact: Some(Contact {
                kind: ContactKind::Service,
                phone: None,
                email: Some("help@shop.example".into()),
                account: None,
                nickname: None,
            }),
        },
        Intent::SetContact {
            id: ContactId::new("shop").unwrap(),
            contact: None,
        },
    ];
    for intent in intents {
        let id = peers[0].engine.intent(intent, wire.now).unwrap();
        wire.pump(&mut peers);
        assert_eq!(peers[0].engine.status(id), None, "accepted by the hub");
    }
    let e = &peers[0].engine;
    assert_eq!(e.profile(&me), Some(profile.clone()));
    let prefs = e.preferences(&c);
    assert!(prefs.muted && !prefs.pinned);
    assert_eq!(prefs.notifications.map(|n| n.as_str()), Some("mentions"));
    assert_eq!(e.draft(&c).as_deref(), Some("half a thought"));
    let contacts = e.contacts();
    assert_eq!(contacts.len(), 1, "the removed contact is gone");
    assert_eq!(
        contacts[&ContactId::new("bob").unwrap()]
            .nickname
            .as_deref(),
        Some("Bobby")
    );
    assert!(e.conversations(wire.now)[0].muted);

    // Bob follows alice's profile; nobody but alice reads her private document.
    assert_eq!(peers[1].engine.profile(&me), None);
    peers[1]
        .engine
        .open(&DocId::profile(&tenant(), &me))
        .unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.profile(&me), Some(profile));
    assert!(peers[1].engine.contacts().is_empty());

    // Cursors: the seq each document's catch-up resumes after.
    let conv_doc = DocId::conv(&tenant(), &c);
    let private = DocId::private(&tenant(), &me);
    let cursors: HashMap<DocId, u64> = peers[0].engine.cursors().into_iter().collect();
    assert_eq!(cursors[&conv_doc], 1);
    assert_eq!(
        cursors[&private], 6,
        "six private changes (one removal wrote nothing new)"
    );
}

/// The engine refuses, before writing anything, what the server would refuse: a reaction
/// past the per-member cap, and a non-https URL.
/// `muted` in the list follows the engine's clock: a mute with a `muted_until` ends by itself
/// at that server time, without any change (the rule the server's notifier follows too,
/// `ConvPrefs::is_muted`); a mute without one lasts.
#[test]
fn a_timed_mute_ends_by_itself_in_the_conversation_list() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "quiet", &[(1, Role::Member)]);
    let now = wire.now;
    let until = now + 60_000;
    let set = |key: &str, value: serde_json::Value| Intent::SetConvPref {
        conv: c.clone(),
        key: key.into(),
        value,
    };
    let listed = |peer: &Peer, device_now: i64| {
        let list = peer.engine.conversations(device_now);
        assert_eq!(list.len(), 1);
        (list[0].muted, list[0].muted_until)
    };
    assert_eq!(listed(&peers[0], now), (false, None), "not muted yet");
    for intent in [set("muted", json!(true)), set("muted_until", json!(until))] {
        let id = peers[0].engine.intent(intent, now).unwrap();
        wire.pump(&mut peers);
        assert_eq!(peers[0].engine.status(id), None, "accepted by the hub");
    }
    assert_eq!(listed(&peers[0], now), (true, Some(until)));
    assert_eq!(listed(&peers[0], until - 1), (true, Some(until)));
    assert_eq!(
        listed(&peers[0], until),
        (false, Some(until)),
        "over at until"
    );
    assert_eq!(listed(&peers[0], until + 86_400_000), (false, Some(until)));
    // The preferences stay as written: only the list's `muted` reads the time.
    let prefs = peers[0].engine.preferences(&c);
    assert!(prefs.muted && prefs.muted_until == Some(until));
    assert!(prefs.is_muted(until - 1) && !prefs.is_muted(until));

    // The time is the server's: a device clock 10 s behind still sees the mute end at
    // `until` by the server's clock.
    peers[0].engine.connected(now + 10_000, now);
    assert!(listed(&peers[0], until - 10_001).0);
    assert!(!listed(&peers[0], until - 10_000).0);

    // A mute in the past is over whatever `muted` says; one without a time lasts.
    let id = peers[0]
        .engine
        .intent(set("muted_until", json!(now - 1)), now)
        .unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None);
    assert!(!listed(&peers[0], now).0, "muted_until passed");
    let bob = peers[1]
        .engine
        .intent(set("muted", json!(true)), now)
        .unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.status(bob), None);
    assert_eq!(listed(&peers[1], now + 365 * 86_400_000), (true, None));
}

#[test]
fn a_temporary_role_lapses_by_itself_in_the_engines_view_and_checks() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "mods", &[(1, Role::Member)]);
    let now = wire.now;
    let until = now + 60_000;
    let grant = Intent::SetRole {
        conv: c.clone(),
        account: acc("bob"),
        role: Role::Moderator,
        until: Some(until),
    };
    let id = peers[0].engine.intent(grant, now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "accepted by the hub");
    let role_at = |peer: &Peer, device_now: i64| {
        let (conv, next) = peer.engine.conversation_at(&c, device_now).unwrap();
        let bob = conv.members[&acc("bob")].clone();
        (bob.role, bob.role_until, bob.role_after, next)
    };
    let temporary = (
        Role::Moderator,
        Some(until),
        Some(Role::Member),
        Some(until),
    );
    assert_eq!(role_at(&peers[1], now), temporary);
    assert_eq!(role_at(&peers[1], until - 1), temporary);
    assert_eq!(role_at(&peers[1], until), (Role::Member, None, None, None));
    // The entry as written keeps its expiry: only readers at a time see it lapse.
    let written = peers[1].engine.conversation(&c).unwrap().members[&acc("bob")].clone();
    assert_eq!(written.role, Role::Moderator);
    // The engine's own check judges the same way: a pin before the time, not at it.
    let pin = || Intent::Pin {
        conv: c.clone(),
        message: MessageId::new("m-none").unwrap(),
    };
    let refused = peers[1].engine.intent(pin(), until).expect_err("lapsed");
    assert!(
        format!("{refused:?}").contains("no_permission"),
        "{refused:?}"
    );
    assert!(
        peers[1].engine.verdict(&pin(), until - 1).is_ok(),
        "still moderator"
    );
    // A temporary override the same way: pins for another minute after the role.
    let later = until + 60_000;
    let allow_pins = Intent::SetOverride {
        conv: c.clone(),
        account: acc("bob"),
        permission: Permission::PinMessages,
        allowed: Some(true),
        until: Some(later),
    };
    let id = peers[0].engine.intent(allow_pins, now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "accepted by the hub");
    assert!(
        peers[1].engine.verdict(&pin(), until).is_ok(),
        "the override holds"
    );
    let refused = peers[1].engine.verdict(&pin(), later).expect_err("lapsed");
    assert_eq!(refused.code.as_str(), "no_permission");
    let (conv, next) = peers[1].engine.conversation_at(&c, until).unwrap();
    assert_eq!(next, Some(later));
    let bob = &conv.members[&acc("bob")];
    assert_eq!(bob.overrides_until[&Permission::PinMessages], later);
}

#[test]
fn the_engine_refuses_a_reaction_past_the_cap_and_non_https_urls() {
    use confab_core::limits::REACTIONS_PER_MEMBER_MAX;
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice"]);
    let c = group(&mut wire, &mut peers, 0, "caps", &[]);
    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    peers[0].engine.open(&bucket).unwrap();
    wire.pump(&mut peers);
    send(&mut peers[0], &c, "m1", "react to me", wire.now);
    wire.pump(&mut peers);
    let react = |emoji: String| Intent::React {
        conv: c.clone(),
        message: MessageId::new("m1").unwrap(),
        bucket: bucket_of(&bucket),
        emoji,
        on: true,
    };
    for i in 0..REACTIONS_PER_MEMBER_MAX {
        peers[0]
            .engine
            .intent(react(format!("e{i}")), wire.now)
            .expect("under the cap");
    }
    wire.pump(&mut peers);
    let err = peers[0]
        .engine
        .intent(react("extra".into()), wire.now)
        .expect_err("past the cap");
    assert_eq!(err.code(), "too_many_reactions");
    // One it has already is fine.
    peers[0]
        .engine
        .intent(react("e0".into()), wire.now)
        .expect("no growth");
    for bad in [
        "javascript:alert(1)",
        "data:image/png;base64,AA",
        "http://e.io/a.png",
    ] {
        let err = peers[0]
            .engine
            .intent(
                Intent::SetInfo {
                    conv: c.clone(),
                    field: "avatar".into(),
                    value: Some(bad.into()),
                },
                wire.now,
            )
            .expect_err(bad);
        assert_eq!(err.code(), "not_applicable", "{bad}: {err}");
    }
    peers[0]
        .engine
        .intent(
            Intent::SetInfo {
                conv: c.clone(),
                field: "avatar".into(),
                value: Some("https://e.io/a.png".into()),
            },
            wire.now,
        )
        .expect("https");
    wire.pump(&mut peers);
    assert!(
        peers[0]
            .engine
            .outbox()
            .iter()
            .all(|(_, _, s)| *s != IntentStatus::Pending),
        "{:?}",
        peers[0].engine.outbox()
    );
}

/// Bounded buckets: devices that wrote offline into the same part, more than it holds in
/// all, end with every message accepted; the overflow moved to the next part, and a reader
/// following the conversation sees the new part without asking.
#[test]
fn offline_writes_beyond_a_full_part_move_to_the_next_and_all_are_accepted() {
    use confab_core::limits::BUCKET_MAX_MESSAGES;
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob", "carol", "dave"]);
    let members = [(1, Role::Member), (2, Role::Member), (3, Role::Member)];
    let c = group(&mut wire, &mut peers, 0, "busy", &members);
    let period = T0.div_euclid(DEFAULT_BUCKET_MS);
    let part = |n| DocId::msgs(&tenant(), &c, Bucket::new(period, n));
    let opened = peers[3].engine.open_conversation(&c, 50, wire.now);
    wire.pump(&mut peers);
    let _ = opened;
    assert!(peers[3].engine.is_loaded(&part(0)));
    for p in 0..3 {
        wire.disconnect(&mut peers, p);
    }
    // Each device keeps below the target of one part: all three write part 0.
    let per = 700;
    let mut ids = Vec::new();
    for (p, peer) in peers.iter_mut().enumerate().take(3) {
        for n in 0..per {
            let id = send(peer, &c, &format!("m{p}x{n:03}"), "x", T0 + n as i64);
            ids.push((p, id));
        }
        assert_eq!(peer.engine.bucket_for(&c, T0), Bucket::new(period, 0));
    }
    for p in 0..3 {
        wire.connect(&mut peers, p);
    }
    for (p, id) in &ids {
        assert_eq!(
            peers[*p].engine.status(*id),
            None,
            "intent {id} of peer {p} accepted"
        );
    }
    assert_eq!(
        wire.hub.buckets(&tenant(), &c),
        vec![Bucket::new(period, 1), Bucket::new(period, 0)]
    );
    let held = |n| wire.hub.doc(&part(n)).unwrap().message_count();
    assert_eq!(held(0), BUCKET_MAX_MESSAGES);
    assert_eq!(held(1), 3 * per - BUCKET_MAX_MESSAGES);
    // The reader was told of part 1 and follows it.
    assert!(peers[3].engine.is_loaded(&part(1)));
    let timeline = peers[3].engine.timeline(&c);
    let unique: HashSet<String> = timeline.iter().map(|i| i.message.id.to_string()).collect();
    assert_eq!(timeline.len(), 3 * per);
    assert_eq!(unique.len(), 3 * per);
    // A writer that knows part 0 is full writes the next message to part 1.
    assert_eq!(peers[0].engine.bucket_for(&c, T0), Bucket::new(period, 1));
}

/// Paging that needs the server's listing of parts still ends while listings fail (the
/// storage is down): it goes on with the periods before, and asks again once a listing came.
#[test]
fn load_older_ends_while_the_listing_of_parts_fails() {
    use confab_core::client::{Event, Outcome};
    let mut wire = Wire::new();
    wire.now = T0 - 2 * DEFAULT_BUCKET_MS;
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "old", &[(1, Role::Member)]);
    wire.now = T0;
    // Bob is away while the parts are opened: he is not told of them.
    wire.disconnect(&mut peers, 1);
    send(&mut peers[0], &c, "y1", "yesterday", T0 - DEFAULT_BUCKET_MS);
    send(&mut peers[0], &c, "t1", "today", T0);
    wire.pump(&mut peers);
    wire.listings_fail = true;
    wire.connect(&mut peers, 1);
    peers[1].engine.open_conversation(&c, 1, wire.now);
    wire.pump(&mut peers);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let request = peers[1].engine.load_older(&c, wire.now);
        // Drive the wire by hand to see the engine's events.
        for _ in 0..50 {
            let frames = std::mem::take(&mut peers[1].inbox);
            for frame in frames {
                peers[1].engine.receive(frame, wire.now);
            }
            for output in peers[1].engine.drain() {
                match output {
                    Output::Event(Event::Done {
                        request: r,
                        outcome,
                    }) if r == request => outcomes.push(outcome),
                    Output::Send(frame) => wire.serve(&mut peers, 1, frame),
                    Output::Load(load) => {
                        let answer = block_on_ready(store::read(&peers[1].store, &load.reads));
                        peers[1].engine.loaded(load.id, answer.unwrap()).unwrap();
                    }
                    Output::Persist(ops) => {
                        block_on_ready(LocalStore::write(&peers[1].store, ops))
                            .unwrap()
                            .unwrap();
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!(outcomes.len(), 3, "every load_older ended: {outcomes:?}");
    assert!(matches!(outcomes[0], Outcome::Older { .. }));
    let bodies: Vec<String> = peers[1]
        .engine
        .timeline(&c)
        .into_iter()
        .map(|i| i.message.body)
        .collect();
    assert!(
        bodies.contains(&"yesterday".to_owned()),
        "{bodies:?} {outcomes:?}"
    );
}

/// Scheduled messages on the client: scheduled, edited and cancelled while offline, they
/// wait in the outbox (a restart keeps them), are accepted once connected, and are visible
/// to the author's other device but to no other member. Bad input is refused before
/// anything is written.
#[test]
fn scheduling_offline_queues_in_the_outbox_and_syncs_to_the_authors_devices_only() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "later", &[(1, Role::Member)]);
    let me = peers[0].engine.config().account.clone();
    let id = |s: &str| MessageId::new(s).unwrap();
    wire.disconnect(&mut peers, 0);

    let now = wire.now;
    let mut ids = Vec::new();
    for intent in [
        Intent::Schedule {
            id: id("m-s1"),
            conv: c.clone(),
            body: "draft".into(),
            at: now + 3_600_000,
        },
        Intent::Schedule {
            id: id("m-s2"),
            conv: c.clone(),
            body: "never".into(),
            at: now + 3_600_000,
        },
        Intent::EditScheduled {
            id: id("m-s1"),
            body: Some("final".into()),
            at: Some(now + 1_800_000),
        },
        Intent::CancelScheduled { id: id("m-s2") },
    ] {
        ids.push(peers[0].engine.intent(intent, now).expect("runs offline"));
        wire.pump(&mut peers);
    }
    assert_eq!(peers[0].engine.outbox().len(), 4, "queued while offline");
    let local = peers[0].engine.private_data().scheduled;
    assert_eq!(
        local.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["m-s1"]
    );
    assert_eq!(local[&id("m-s1")].body, "final");
    assert_eq!(local[&id("m-s1")].at, now + 1_800_000);

    // Bad input: a time in the past, an id never scheduled. Nothing more is queued.
    let past = peers[0].engine.intent(
        Intent::Schedule {
            id: id("m-s3"),
            conv: c.clone(),
            body: "late".into(),
            at: now - 3_600_000,
        },
        now,
    );
    let missing = peers[0]
        .engine
        .intent(Intent::CancelScheduled { id: id("m-zz") }, now);
    for outcome in [past, missing] {
        assert!(
            outcome.is_err()
                || matches!(
                    peers[0].engine.status(*outcome.as_ref().unwrap()),
                    Some(IntentStatus::Rejected { .. })
                ),
            "{outcome:?}"
        );
    }
    assert_eq!(
        peers[0].engine.outbox().len(),
        4,
        "bad input queued nothing"
    );

    // A restart keeps the outbox; connecting sends it and the hub accepts all four.
    restart(&mut peers[0]);
    wire.pump(&mut peers);
    wire.connect(&mut peers, 0);
    for i in &ids {
        assert_eq!(peers[0].engine.status(*i), None, "intent {i} accepted");
    }
    assert!(peers[0].engine.outbox().is_empty());
    let private = DocId::private(&tenant(), &me);
    let stored = wire.hub.changes_after(&private, 0).len();
    assert!(stored >= 4, "the hub holds the private changes ({stored})");

    // Alice's second device sees it; bob sees nothing of it, in no document.
    peers.push(peer("alice", 2));
    let n = peers.len() - 1;
    wire.connect(&mut peers, n);
    peers[n].engine.open(&private).unwrap();
    wire.pump(&mut peers);
    let synced = peers[n].engine.private_data().scheduled;
    assert_eq!(
        synced.get(&id("m-s1")).map(|s| s.body.as_str()),
        Some("final")
    );
    assert!(peers[1].engine.private_data().scheduled.is_empty());
    assert!(
        bodies(&peers[1], &c).is_empty(),
        "nothing posted before its time"
    );
}

fn lifecycle_of(peer: &Peer, conv: &ConvId) -> confab_core::model::conversation::Lifecycle {
    peer.engine
        .conversation(conv)
        .expect("loaded")
        .lifecycle
        .state
}

/// A new message reopens an archived conversation, written by the sender's device
/// with the message. Two members who both write while offline both reopen it: the later
/// reopen finds it active and is accepted too, so nothing ends rejected.
#[test]
fn a_message_in_an_archived_conversation_reopens_it() {
    use confab_core::model::conversation::Lifecycle;
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob", "carol"]);
    let c = group(
        &mut wire,
        &mut peers,
        0,
        "visit",
        &[(1, Role::Member), (2, Role::Member)],
    );
    let archive = Intent::SetLifecycle {
        conv: c.clone(),
        state: Lifecycle::Archived,
    };
    let id = peers[0].engine.intent(archive, wire.now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "archived");
    assert_eq!(lifecycle_of(&peers[1], &c), Lifecycle::Archived);

    let sent = send(&mut peers[1], &c, "m-bob", "still there?", wire.now);
    wire.pump(&mut peers);
    assert_eq!(
        peers[1].engine.status(sent),
        None,
        "the message is accepted"
    );
    for peer in &peers {
        assert_eq!(
            lifecycle_of(peer, &c),
            Lifecycle::Active,
            "reopened for everyone"
        );
    }
    assert!(
        peers[1].engine.outbox().is_empty(),
        "the reopen was accepted too"
    );

    // Archived again; both members write offline, then come back one after the other.
    let id = peers[0]
        .engine
        .intent(
            Intent::SetLifecycle {
                conv: c.clone(),
                state: Lifecycle::Archived,
            },
            wire.now,
        )
        .unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "archived again");
    wire.disconnect(&mut peers, 1);
    wire.disconnect(&mut peers, 2);
    send(&mut peers[1], &c, "m-bob-2", "me again", wire.now);
    send(&mut peers[2], &c, "m-carol", "me too", wire.now);
    wire.connect(&mut peers, 1);
    wire.connect(&mut peers, 2);
    wire.pump(&mut peers);
    for peer in &peers[1..] {
        assert!(
            peer.engine.outbox().is_empty(),
            "nothing rejected or stuck: {:?}",
            peer.engine.outbox()
        );
        assert_eq!(lifecycle_of(peer, &c), Lifecycle::Active);
    }
    let bodies: Vec<String> = peers[1]
        .engine
        .timeline(&c)
        .into_iter()
        .map(|i| i.message.body)
        .collect();
    assert_eq!(bodies, ["still there?", "me again", "me too"]);
}

#[test]
fn a_support_thread_is_named_when_opened_stamps_messages_and_closes_its_lead() {
    use confab_core::ids::{support_conv_id, LeadId, ResourceId};
    use confab_core::model::conversation::Lifecycle;
    use confab_core::model::support::{LeadOutcome, SenderRole, Stamp};
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "carol"]);
    let resource = ResourceId::new("flat-3").unwrap();
    let c = support_conv_id(&tenant(), &acc("carol"), &resource);
    // Carol (the client) opens the thread with the title and names the platform gives.
    let open = Intent::OpenSupport {
        resource,
        client: acc("carol"),
        owner: acc("alice"),
        encrypted: false,
    };
    peers[1].engine.intent(open, wire.now).unwrap();
    let name = Intent::NameSupport {
        conv: c.clone(),
        title: Some("Flat 3".into()),
        client_name: Some("Carol".into()),
        owner_name: Some("Alice".into()),
    };
    let named = peers[1].engine.intent(name, wire.now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.status(named), None, "named and accepted");
    let info = peers[1].engine.conversation(&c).unwrap().info;
    assert_eq!(
        (
            info.title.as_deref(),
            info.client_name.as_deref(),
            info.owner_name.as_deref()
        ),
        (Some("Flat 3"), Some("Carol"), Some("Alice"))
    );
    // Her message carries the stamps the thread gives her, and the server took them.
    let sent = send(&mut peers[1], &c, "q1", "is it free?", wire.now);
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.status(sent), None, "accepted");
    let stamp = |peer: &Peer, id: &str| {
        peer.engine
            .timeline(&c)
            .into_iter()
            .find(|i| i.message.id.as_str() == id)
            .map(|i| i.message.stamp)
    };
    assert_eq!(
        stamp(&peers[1], "q1"),
        Some(Stamp {
            sender_role: Some(SenderRole::Client),
            sender_name: Some("Carol".into()),
            related_lead: None,
        })
    );
    // The list names the last message's sender as the thread does.
    let last = |peer: &Peer, now: i64| {
        let list = peer.engine.conversations(now);
        let s = list.into_iter().find(|s| s.conv == c).unwrap();
        (s.last_sender, s.last_sender_name)
    };
    assert_eq!(
        last(&peers[1], wire.now),
        (Some(acc("carol")), Some("Carol".into()))
    );
    // Alice (the owner) names the lead, answers and closes it won.
    peers[0].engine.open(&DocId::conv(&tenant(), &c)).unwrap();
    wire.pump(&mut peers);
    let lead = Intent::SetLead {
        conv: c.clone(),
        lead: LeadId::new("lead-3").unwrap(),
    };
    peers[0].engine.intent(lead, wire.now).unwrap();
    wire.pump(&mut peers);
    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    peers[0].engine.open(&bucket).unwrap();
    wire.pump(&mut peers);
    let answer = send(&mut peers[0], &c, "a1", "yes", wire.now + 1);
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(answer), None, "accepted");
    assert_eq!(
        stamp(&peers[0], "a1"),
        Some(Stamp {
            sender_role: Some(SenderRole::Owner),
            sender_name: Some("Alice".into()),
            related_lead: Some(LeadId::new("lead-3").unwrap()),
        })
    );
    assert_eq!(
        last(&peers[0], wire.now),
        (Some(acc("alice")), Some("Alice".into()))
    );
    // The client may not close the lead: refused before anything is written.
    let by_client = Intent::CloseLead {
        conv: c.clone(),
        outcome: LeadOutcome::ClosedLost,
        reason: None,
    };
    assert!(peers[1].engine.intent(by_client, wire.now).is_err());
    let close = Intent::CloseLead {
        conv: c.clone(),
        outcome: LeadOutcome::ClosedWon,
        reason: Some("signed".into()),
    };
    let closed = peers[0].engine.intent(close, wire.now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(closed), None, "accepted");
    let lifecycle = peers[1].engine.conversation(&c).unwrap().lifecycle;
    assert_eq!(lifecycle.state, Lifecycle::Closed);
    assert_eq!(lifecycle.outcome, Some(LeadOutcome::ClosedWon));
    assert_eq!(lifecycle.reason.as_deref(), Some("signed"));
}

/// Delivery markers without the app asking (docs/SCHEMA.md, "Delivery markers"): a device that
/// receives messages of others marks the newest delivered by itself, once per burst and
/// at most once per interval per conversation, never for its account's own messages, and
/// not when the host turned it off.
#[test]
fn arrived_messages_of_others_are_marked_delivered_by_the_engine_coalesced() {
    use confab_core::client::{DELIVERED_DELAY_MS, DELIVERED_INTERVAL_MS};
    let mut wire = Wire::new();
    let mut peers = vec![
        peer("alice", 1),
        peer("bob", 1),
        peer("bob", 2),
        peer("carol", 1),
    ];
    peers[3].engine.set_auto_delivered(false);
    for i in 0..peers.len() {
        wire.connect(&mut peers, i);
    }
    let c = group(
        &mut wire,
        &mut peers,
        0,
        "acks",
        &[(1, Role::Member), (3, Role::Member)],
    );
    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    for p in peers.iter_mut() {
        p.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    let submits = |wire: &Wire, i: usize| wire.submits.get(&i).copied().unwrap_or(0);
    let delivered = |p: &Peer, who: &str| {
        p.engine
            .conversation(&c)
            .and_then(|conv| conv.delivered.get(&acc(who)).map(|m| m.to_string()))
    };
    let tick_all = |wire: &mut Wire, peers: &mut Vec<Peer>| {
        for i in 0..peers.len() {
            peers[i].engine.tick(wire.now);
            wire.pump(peers);
        }
    };

    // A burst of 20 from alice: bob's devices hold them; one marker, after the delay.
    for n in 1..=20 {
        send(&mut peers[0], &c, &format!("m{n}"), "hi", wire.now);
    }
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.timeline(&c).len(), 20);
    let before = [submits(&wire, 1), submits(&wire, 2), submits(&wire, 3)];
    // The search index's upkeep is due at once; after it, the marker's delay.
    assert_eq!(peers[1].engine.next_wakeup(), Some(DUE_NOW));
    tick_all(&mut wire, &mut peers);
    assert_eq!(
        peers[1].engine.next_wakeup(),
        Some(wire.now + DELIVERED_DELAY_MS)
    );
    tick_all(&mut wire, &mut peers);
    assert_eq!(delivered(&peers[0], "bob"), None, "not before the delay");
    wire.now += DELIVERED_DELAY_MS;
    tick_all(&mut wire, &mut peers);
    assert_eq!(delivered(&peers[0], "bob").as_deref(), Some("m20"));
    // One write for the burst; bob's other device found the marker there already; carol
    // turned it off (and may still mark by hand).
    assert_eq!(submits(&wire, 1), before[0] + 1);
    assert_eq!(submits(&wire, 2), before[1]);
    assert_eq!(submits(&wire, 3), before[2]);
    assert_eq!(delivered(&peers[0], "carol"), None);
    let marked_at = wire.now;

    // Bob's own message reaches his other device: nothing to mark there.
    send(&mut peers[1], &c, "b1", "from bob", wire.now);
    wire.pump(&mut peers);
    let before = [submits(&wire, 1), submits(&wire, 2)];
    wire.now += DELIVERED_DELAY_MS;
    tick_all(&mut wire, &mut peers);
    assert_eq!([submits(&wire, 1), submits(&wire, 2)], before);
    assert_eq!(delivered(&peers[0], "bob").as_deref(), Some("m20"));
    // Alice did get one of bob's: hers moves to it.
    assert_eq!(delivered(&peers[1], "alice").as_deref(), Some("b1"));

    // More from alice within the interval: held until it ends, then one write (bob's
    // other device, which wrote none yet, is away).
    wire.disconnect(&mut peers, 2);
    for n in 21..=25 {
        send(&mut peers[0], &c, &format!("m{n}"), "hi", wire.now);
    }
    wire.pump(&mut peers);
    let before = submits(&wire, 1);
    wire.now += DELIVERED_DELAY_MS;
    tick_all(&mut wire, &mut peers);
    assert_eq!(submits(&wire, 1), before, "within the interval");
    wire.now = marked_at + DELIVERED_INTERVAL_MS;
    tick_all(&mut wire, &mut peers);
    assert_eq!(submits(&wire, 1), before + 1);
    assert_eq!(delivered(&peers[0], "bob").as_deref(), Some("m25"));
}

/// Automatic delivery markers stay where they are cheap: a marker is a change every
/// subscriber of the conversation receives, so a channel, or a group of more than
/// `AUTO_DELIVERED_MAX_MEMBERS`, gets none from the engine (n members would cost n writes
/// and n² pushes per message); a small group still does.
#[test]
fn channels_and_large_groups_get_no_automatic_delivery_markers() {
    use confab_core::client::{AUTO_DELIVERED_MAX_MEMBERS, DELIVERED_DELAY_MS};
    let mut wire = Wire::new();
    let mut peers = vec![peer("alice", 1), peer("bob", 1)];
    for i in 0..peers.len() {
        wire.connect(&mut peers, i);
    }
    let create = |peers: &mut Vec<Peer>, wire: &mut Wire, id: &str, kind, extra: usize| {
        let c = ConvId::new(id).unwrap();
        let mut members = vec![(acc("bob"), Role::Member)];
        members.extend((0..extra).map(|i| (acc(&format!("reader{i}")), Role::Member)));
        let intent = Intent::CreateConversation {
            encrypted: false,
            conv: c.clone(),
            kind,
            title: Some(id.into()),
            members,
            settings: None,
            parent: None,
        };
        peers[0].engine.intent(intent, wire.now).unwrap();
        wire.pump(peers);
        for p in peers.iter_mut() {
            p.engine.open(&DocId::conv(&tenant(), &c)).unwrap();
        }
        wire.pump(peers);
        let bucket = peers[0].engine.bucket_doc(&c, wire.now);
        for p in peers.iter_mut() {
            p.engine.open(&bucket).unwrap();
        }
        wire.pump(peers);
        c
    };
    // Members counted with the owner: the small group is at the cap, the large one past it.
    let small = create(
        &mut peers,
        &mut wire,
        "small",
        ConvKind::Group,
        AUTO_DELIVERED_MAX_MEMBERS - 2,
    );
    let large = create(
        &mut peers,
        &mut wire,
        "large",
        ConvKind::Group,
        AUTO_DELIVERED_MAX_MEMBERS - 1,
    );
    let news = create(&mut peers, &mut wire, "news", ConvKind::Channel, 0);
    for c in [&small, &large, &news] {
        send(&mut peers[0], c, &format!("{c}-1"), "hi", wire.now);
    }
    wire.pump(&mut peers);
    for c in [&small, &large, &news] {
        assert_eq!(peers[1].engine.timeline(c).len(), 1, "{c}");
    }
    wire.now += DELIVERED_DELAY_MS;
    for i in 0..peers.len() {
        peers[i].engine.tick(wire.now);
        wire.pump(&mut peers);
    }
    let delivered = |c: &ConvId| {
        peers[0]
            .engine
            .conversation(c)
            .and_then(|conv| conv.delivered.get(&acc("bob")).map(|m| m.to_string()))
    };
    assert_eq!(delivered(&small).as_deref(), Some("small-1"));
    assert_eq!(delivered(&large), None, "a group past the cap");
    assert_eq!(delivered(&news), None, "a channel");
}

#[test]
fn a_thread_of_a_thread_is_created_one_level_deeper_than_its_parent() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let g = group(&mut wire, &mut peers, 0, "deep", &[(1, Role::Member)]);
    let thread = |parent: &ConvId, message: &str, conv: &str| Intent::CreateConversation {
        encrypted: false,
        conv: ConvId::new(conv).unwrap(),
        kind: ConvKind::Thread,
        title: Some(conv.into()),
        members: vec![],
        settings: None,
        parent: Some((parent.clone(), MessageId::new(message).unwrap())),
    };
    let mut parent = g;
    for (depth, name) in [(1, "deep-1"), (2, "deep-2"), (3, "deep-3")] {
        let message = format!("m-{name}");
        send(
            &mut peers[0],
            &parent,
            &message,
            "a thread hangs here",
            wire.now,
        );
        wire.pump(&mut peers);
        let id = peers[0]
            .engine
            .intent(thread(&parent, &message, name), wire.now)
            .expect("allowed locally");
        wire.pump(&mut peers);
        assert_eq!(
            peers[0].engine.status(id),
            None,
            "the thread at depth {depth} is accepted"
        );
        let conv = ConvId::new(name).unwrap();
        peers[0]
            .engine
            .open(&DocId::conv(&tenant(), &conv))
            .unwrap();
        wire.pump(&mut peers);
        let link = peers[0]
            .engine
            .conversation(&conv)
            .and_then(|c| c.meta)
            .and_then(|m| m.thread);
        assert_eq!(link.map(|l| l.depth), Some(depth));
        parent = conv;
    }
}

fn role_of(peer: &Peer, conv: &ConvId, account: &str) -> (Role, bool) {
    let c = peer.engine.conversation(conv).expect("loaded");
    let m = c.member(&acc(account)).expect("a member entry");
    (m.role, m.is_active())
}

fn denied(result: Result<u64, confab_core::client::ClientError>) -> (String, String) {
    match result {
        Err(confab_core::client::ClientError::Denied { code, reason, .. }) => (code, reason),
        other => panic!("expected a local refusal, got {other:?}"),
    }
}

/// Ownership moves in one intent the policy checks here and on the acceptor: only the
/// owner hands it on, only to an active member; the only owner neither leaves nor is
/// removed before that; a transfer this device allowed on stale state is rejected by the
/// acceptor with its code and rolled back.
#[test]
fn ownership_moves_in_one_intent_and_the_only_owner_stays_until_then() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob", "carol", "dave"]);
    let c = group(
        &mut wire,
        &mut peers,
        0,
        "club",
        &[(1, Role::Member), (2, Role::Member), (3, Role::Admin)],
    );
    let transfer = |to: &str| Intent::TransferOwnership {
        conv: c.clone(),
        account: acc(to),
    };
    let leave = Intent::Leave { conv: c.clone() };
    let now = wire.now;

    let (code, reason) = denied(peers[0].engine.intent(leave.clone(), now));
    assert_eq!(code, "owner_must_transfer");
    assert!(
        reason.contains("make another member the owner before you leave"),
        "{reason}"
    );
    let ban_owner = Intent::RemoveMember {
        conv: c.clone(),
        account: acc("alice"),
        ban: true,
    };
    assert_eq!(
        denied(peers[3].engine.intent(ban_owner, now)).0,
        "owner_must_transfer"
    );
    assert_eq!(
        denied(peers[1].engine.intent(transfer("bob"), now)).0,
        "owner_only"
    );
    assert_eq!(
        denied(peers[0].engine.intent(transfer("erin"), now)).0,
        "target_not_member"
    );

    // Stale state: dave bans carol while alice is offline; alice's transfer to carol passes
    // her own check, and the acceptor refuses it.
    wire.disconnect(&mut peers, 0);
    let ban = Intent::RemoveMember {
        conv: c.clone(),
        account: acc("carol"),
        ban: true,
    };
    let id = peers[3].engine.intent(ban, now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[3].engine.status(id), None, "carol banned");
    let stale = peers[0]
        .engine
        .intent(transfer("carol"), now)
        .expect("allowed here");
    wire.connect(&mut peers, 0);
    match peers[0].engine.status(stale) {
        Some(IntentStatus::Rejected { code, .. }) => assert_eq!(code, "target_inactive"),
        other => panic!("expected the acceptor's refusal, got {other:?}"),
    }
    assert_eq!(
        role_of(&peers[0], &c, "alice"),
        (Role::Owner, true),
        "rolled back"
    );
    assert_eq!(role_of(&peers[0], &c, "carol"), (Role::Member, false));
    assert_eq!(
        denied(peers[0].engine.intent(transfer("carol"), now)).0,
        "target_inactive",
        "now known here too"
    );

    // The transfer: one intent, one change; everyone sees bob owner and alice admin.
    let id = peers[0].engine.intent(transfer("bob"), now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "accepted");
    for peer in [&peers[0], &peers[1], &peers[3]] {
        assert_eq!(role_of(peer, &c, "bob"), (Role::Owner, true));
        assert_eq!(role_of(peer, &c, "alice"), (Role::Admin, true));
    }
    // Now alice may leave, and bob is the one who stays.
    let id = peers[0].engine.intent(leave.clone(), now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "alice left");
    assert_eq!(
        denied(peers[1].engine.intent(leave, now)).0,
        "owner_must_transfer"
    );
}

/// A hidden direct conversation leaves this account's list (and only its list) until a
/// message created after the hide arrives; a message created before it does not bring it
/// back; showing it again is one intent. Groups are not hidden.
#[test]
fn a_hidden_direct_conversation_comes_back_with_a_newer_message() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let now = wire.now;
    peers[0]
        .engine
        .intent(
            Intent::OpenDirect {
                peer: acc("bob"),
                encrypted: false,
            },
            now,
        )
        .unwrap();
    wire.pump(&mut peers);
    let dm = confab_core::ids::direct_conv_id(&tenant(), &acc("alice"), &acc("bob"));
    peers[1].engine.open(&DocId::conv(&tenant(), &dm)).unwrap();
    wire.pump(&mut peers);
    send(&mut peers[0], &dm, "m1", "hi bob", now);
    wire.pump(&mut peers);
    let listed = |peer: &Peer| peer.engine.conversations(now).iter().any(|s| s.conv == dm);
    assert!(listed(&peers[0]) && listed(&peers[1]));

    let hide = |on: bool| Intent::Hide {
        conv: dm.clone(),
        on,
    };
    // Bob writes a message while offline before the hide; it arrives after it.
    wire.disconnect(&mut peers, 1);
    send(&mut peers[1], &dm, "m2", "written before", now + 1_000);
    let hidden_at = now + 2_000;
    let id = peers[0].engine.intent(hide(true), hidden_at).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None, "accepted");
    assert_eq!(peers[0].engine.preferences(&dm).hidden_at, Some(hidden_at));
    assert!(!listed(&peers[0]), "off alice's list");
    wire.connect(&mut peers, 1);
    assert!(listed(&peers[1]), "bob's list is his own");
    let bodies: Vec<String> = peers[0]
        .engine
        .timeline(&dm)
        .into_iter()
        .map(|i| i.message.body)
        .collect();
    assert_eq!(bodies, ["hi bob", "written before"], "alice has it");
    assert!(!listed(&peers[0]), "created before the hide: still hidden");

    send(&mut peers[1], &dm, "m3", "still there?", hidden_at + 1);
    wire.pump(&mut peers);
    assert!(listed(&peers[0]), "a newer message brings it back");

    // Hidden again, then shown again by hand.
    let id = peers[0].engine.intent(hide(true), hidden_at + 10).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None);
    assert!(!listed(&peers[0]));
    let id = peers[0].engine.intent(hide(false), hidden_at + 20).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(id), None);
    assert!(listed(&peers[0]));
    assert_eq!(peers[0].engine.preferences(&dm).hidden_at, None);

    // A group is left, not hidden.
    let g = group(&mut wire, &mut peers, 0, "pals", &[(1, Role::Member)]);
    let (code, _) = denied(
        peers[0]
            .engine
            .intent(Intent::Hide { conv: g, on: true }, now),
    );
    assert_eq!(code, "direct_only");
}

#[test]
fn a_synced_delete_leaves_only_the_tombstone_in_every_local_view() {
    let mut wire = Wire::new();
    let mut peers = online(&mut wire, &["alice", "bob"]);
    let c = group(&mut wire, &mut peers, 0, "redact", &[(1, Role::Member)]);
    let bucket = peers[1].engine.bucket_doc(&c, wire.now);
    peers[1].engine.open(&bucket).unwrap();
    let id = MessageId::new("m1").unwrap();
    let mut message = NewMessage::text(id.clone(), acc("alice"), "secret body", wire.now);
    message.mentions = Some(r#"["bob"]"#.into());
    peers[0]
        .engine
        .intent(
            Intent::Send {
                conv: c.clone(),
                message,
            },
            wire.now,
        )
        .expect("allowed locally");
    wire.pump(&mut peers);
    let seen = |p: &Peer| {
        p.engine
            .timeline(&c)
            .into_iter()
            .find(|i| i.message.id == id)
            .expect("m1 is listed")
            .message
    };
    assert_eq!(seen(&peers[1]).mentions.as_deref(), Some(r#"["bob"]"#));
    wire.disconnect(&mut peers, 1);
    peers[0]
        .engine
        .intent(
            Intent::Delete {
                conv: c.clone(),
                message: id.clone(),
                bucket: bucket_of(&bucket),
            },
            wire.now + 1,
        )
        .expect("the author deletes");
    wire.pump(&mut peers);
    // Bob was offline: his next sync brings the tombstone.
    wire.connect(&mut peers, 1);
    wire.pump(&mut peers);
    for p in &peers {
        let m = seen(p);
        assert_eq!(
            (m.body.as_str(), m.mentions, m.caption, m.payload),
            ("", None, None, None)
        );
        assert_eq!(
            (m.deleted_at, m.deleted_by),
            (Some(wire.now + 1), Some(acc("alice")))
        );
    }
}
