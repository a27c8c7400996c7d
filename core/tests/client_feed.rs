//! The client engine's membership feed (docs/PROTOCOL.md, "Memberships") against a fake
//! server over `core::hub` that answers `memberships` and pushes `membership` as the real
//! one does: an engine follows a conversation it is added to without being asked, stops one
//! it is removed from (`revoked`), follows it again when re-added while it was offline, and
//! ignores a stale entry (an older seq than it heard).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Deref, DerefMut};

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, Event, Intent, MembershipChange, Output};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{ConvKind, MemberStatus, Role};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{ClientFrame, Membership, ServerFrame};
use confab_testkit::ids::acc;
use confab_testkit::net::{self, HubServer, Peer, Server};

const T0: i64 = 1_775_779_200_000;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn peer(account: &str) -> Peer {
    let mut actor = [7u8; 16];
    actor[..account.len()].copy_from_slice(account.as_bytes());
    Peer::new(ClientConfig {
        tenant: tenant(),
        account: acc(account),
        actor: ActorId::from(&actor[..]),
    })
}

/// The membership changes told to a peer since last asked.
trait Told {
    fn memberships(&mut self) -> Vec<MembershipChange>;
}

impl Told for Peer {
    fn memberships(&mut self) -> Vec<MembershipChange> {
        self.events
            .drain(..)
            .filter_map(|e| match e {
                Event::Membership(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

/// The server: the hub, subscriptions, and the memberships projection it tells from.
struct Wire {
    net: HubServer,
    following: HashSet<usize>,
    memberships: BTreeMap<(AccountId, ConvId), Membership>,
    /// `memberships` requests each peer sent.
    asked: HashMap<usize, usize>,
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

impl Server for Wire {
    fn now(&self) -> i64 {
        self.net.now
    }

    fn serve(&mut self, peers: &mut [Peer], i: usize, frame: ClientFrame) {
        match frame {
            ClientFrame::Memberships {} => {
                *self.asked.entry(i).or_default() += 1;
                self.following.insert(i);
                let me = peers[i].account();
                let list = self
                    .memberships
                    .iter()
                    .filter(|((a, _), _)| *a == me)
                    .map(|(_, m)| m.clone())
                    .collect();
                peers[i].inbox.push(ServerFrame::Memberships {
                    memberships: list,
                    more: false,
                });
            }
            ClientFrame::Subscribe { doc, after } => {
                let id = DocId::parse(&doc).unwrap();
                let conv = id.conv_id().cloned();
                let me = peers[i].account();
                let readable = conv.as_ref().is_none_or(|c| {
                    self.hub
                        .conversation(c)
                        .and_then(|c| c.members.get(&me))
                        .is_some_and(|m| m.status == MemberStatus::Active)
                });
                if !readable {
                    peers[i].inbox.push(forbidden(&doc));
                    return;
                }
                self.net.subscribe(peers, i, doc, after);
            }
            ClientFrame::Submit { doc, changes } => {
                let id = DocId::parse(&doc).unwrap();
                for bytes in changes {
                    if let Ok((ack, _)) = self.net.accept(peers, i, &doc, &bytes) {
                        self.net.push(peers, &doc, ack.seq, &bytes, |_, _| true);
                        if let confab_core::ids::DocTarget::Conv(conv) = id.target() {
                            self.tell(peers, &conv.clone(), ack.seq);
                        }
                    }
                }
            }
            ClientFrame::Buckets { doc, .. } => {
                let id = DocId::parse(&doc).unwrap();
                let conv = id.conv_id().unwrap().clone();
                let mut buckets = self.hub.buckets(&tenant(), &conv);
                buckets.sort_unstable_by(|a, b| b.cmp(a));
                peers[i].inbox.push(ServerFrame::Buckets {
                    doc,
                    buckets,
                    more: false,
                });
            }
            _ => {}
        }
    }
}

impl Wire {
    fn new() -> Self {
        Wire {
            net: HubServer::new(T0),
            following: HashSet::new(),
            memberships: BTreeMap::new(),
            asked: HashMap::new(),
        }
    }

    fn connect(&mut self, peers: &mut [Peer], i: usize) {
        net::connect(self, peers, i);
    }

    fn disconnect(&mut self, peers: &mut [Peer], i: usize) {
        peers[i].online = false;
        peers[i].engine.disconnected();
        self.following.remove(&i);
        self.net.unsubscribe(i);
    }

    fn pump(&mut self, peers: &mut [Peer]) {
        net::pump(self, peers);
    }

    /// What the server's trigger does: every changed membership of `conv` is told to the
    /// account's following connections, as of `seq`.
    fn tell(&mut self, peers: &mut [Peer], conv: &ConvId, seq: u64) {
        let Some(c) = self.net.hub.conversation(conv) else {
            return;
        };
        for (account, member) in &c.members {
            let m = Membership {
                conv: conv.clone(),
                role: member.role,
                status: member.status,
                seq,
            };
            let key = (account.clone(), conv.clone());
            let same = self
                .memberships
                .get(&key)
                .is_some_and(|k| k.role == m.role && k.status == m.status);
            if same {
                continue;
            }
            self.memberships.insert(key, m.clone());
            for &p in &self.following {
                if peers[p].account() == *account {
                    peers[p].inbox.push(ServerFrame::Membership {
                        conv: m.conv.clone(),
                        role: m.role,
                        status: m.status,
                        seq,
                    });
                }
            }
            if member.status != MemberStatus::Active {
                for (p, peer) in peers.iter().enumerate() {
                    if peer.account() == *account {
                        for subs in self.net.subs.values_mut() {
                            subs.remove(&p);
                        }
                    }
                }
            }
        }
    }
}

/// What the server answers a subscription it may not serve.
fn forbidden(doc: &str) -> ServerFrame {
    ServerFrame::Error {
        code: "forbidden".into(),
        message: "not a member".into(),
        doc: Some(doc.to_owned()),
        fatal: false,
        hash: None,
        retry_after_ms: None,
        id: None,
    }
}

fn subscribed_docs(frames: &[ClientFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            ClientFrame::Subscribe { doc, .. } => Some(doc.clone()),
            _ => None,
        })
        .collect()
}

/// Alice (peer 0) creates the group "Weekend plans" with bob.
fn create_with_bob(wire: &mut Wire, peers: &mut [Peer], conv: &ConvId) {
    run(
        wire,
        peers,
        0,
        Intent::CreateConversation {
            encrypted: false,
            conv: conv.clone(),
            kind: ConvKind::Group,
            title: Some("Weekend plans".into()),
            members: vec![(acc("bob"), Role::Member)],
            settings: None,
            parent: None,
        },
    );
}

fn run(wire: &mut Wire, peers: &mut [Peer], who: usize, intent: Intent) {
    let id = peers[who].engine.intent(intent, wire.now).unwrap();
    wire.pump(peers);
    assert_eq!(peers[who].engine.status(id), None, "accepted and forgotten");
}

fn send(wire: &mut Wire, peers: &mut [Peer], who: usize, conv: &ConvId, body: &str) {
    wire.now += 1_000;
    let message = NewMessage::text(
        MessageId::new(body.replace(' ', "-")).unwrap(),
        peers[who].account(),
        body,
        wire.now,
    );
    run(
        wire,
        peers,
        who,
        Intent::Send {
            conv: conv.clone(),
            message,
        },
    );
}

fn bodies(peer: &Peer, conv: &ConvId) -> Vec<String> {
    peer.engine
        .timeline(conv)
        .into_iter()
        .map(|item| item.message.body)
        .collect()
}

#[test]
fn added_removed_and_readded_while_offline_without_asking() {
    let mut wire = Wire::new();
    let mut peers = vec![peer("alice"), peer("bob")];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    assert_eq!(wire.asked[&1], 1, "asked once on connecting");
    assert!(!peers[1].engine.is_listing_memberships(), "the list came");

    // Alice creates a group with bob and writes: bob follows it by himself.
    let g = ConvId::new("weekend").unwrap();
    create_with_bob(&mut wire, &mut peers, &g);
    send(&mut wire, &mut peers, 0, &g, "hello bob");
    let told = peers[1].memberships();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (told[0].status, told[0].following),
        (MemberStatus::Active, true)
    );
    assert!(peers[1].engine.conversation(&g).is_some(), "bob follows it");
    assert_eq!(
        bodies(&peers[1], &g),
        vec!["hello bob"],
        "and gets its messages live"
    );

    // Removed: bob's engine stops the conversation and says so, in words.
    run(
        &mut wire,
        &mut peers,
        0,
        Intent::RemoveMember {
            conv: g.clone(),
            account: acc("bob"),
            ban: false,
        },
    );
    let revoked: Vec<&Event> = peers[1]
        .events
        .iter()
        .filter(|e| matches!(e, Event::Revoked { .. }))
        .collect();
    assert_eq!(revoked.len(), 1, "{:?}", peers[1].events);
    let told = peers[1].memberships();
    assert_eq!(
        (told[0].status, told[0].following),
        (MemberStatus::Removed, false)
    );
    assert_eq!(told[0].sentence, "You were removed from Weekend plans");
    send(&mut wire, &mut peers, 0, &g, "without bob");
    assert_eq!(
        bodies(&peers[1], &g),
        vec!["hello bob"],
        "nothing after the removal"
    );

    // Offline: bob is added back and to a new group, and alice writes in both.
    wire.disconnect(&mut peers, 1);
    run(
        &mut wire,
        &mut peers,
        0,
        Intent::AddMember {
            conv: g.clone(),
            account: acc("bob"),
            role: Role::Admin,
        },
    );
    send(&mut wire, &mut peers, 0, &g, "welcome back");
    let h = ConvId::new("hiking").unwrap();
    run(
        &mut wire,
        &mut peers,
        0,
        Intent::CreateConversation {
            encrypted: false,
            conv: h.clone(),
            kind: ConvKind::Group,
            title: Some("Hiking".into()),
            members: vec![(acc("bob"), Role::Member)],
            settings: None,
            parent: None,
        },
    );
    send(&mut wire, &mut peers, 0, &h, "trail at 9");
    assert!(peers[1].engine.conversation(&h).is_none());

    // Back online: the list brings both; the engine follows them and catches up.
    peers[1].events.clear();
    wire.connect(&mut peers, 1);
    assert_eq!(wire.asked[&1], 2, "asked again on the new connection");
    let mut told = peers[1].memberships();
    told.sort_by(|a, b| a.conv.cmp(&b.conv));
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(told[0].conv, h);
    assert_eq!(told[1].conv, g);
    assert_eq!((told[1].role, told[1].following), (Role::Admin, true));
    assert_eq!(bodies(&peers[1], &h), vec!["trail at 9"]);
    assert_eq!(
        bodies(&peers[1], &g),
        vec!["hello bob", "without bob", "welcome back"]
    );
    assert_eq!(
        peers[1].engine.membership(&g),
        Some((Role::Admin, MemberStatus::Active))
    );

    // A stale entry (an older seq than heard, as a list that crossed a push) changes
    // nothing; a repeated one neither.
    let stale = Membership {
        conv: g.clone(),
        role: Role::Member,
        status: MemberStatus::Removed,
        seq: 1,
    };
    peers[1].inbox.push(ServerFrame::Membership {
        conv: stale.conv,
        role: stale.role,
        status: stale.status,
        seq: stale.seq,
    });
    wire.pump(&mut peers);
    assert!(peers[1].memberships().is_empty());
    assert_eq!(
        peers[1].engine.membership(&g),
        Some((Role::Admin, MemberStatus::Active))
    );
    send(&mut wire, &mut peers, 0, &g, "still here");
    assert_eq!(
        bodies(&peers[1], &g).last().map(String::as_str),
        Some("still here")
    );

    // A list that fails transiently is asked for again with the next round (the wakeup
    // checked is the round's alone: no delivery marker is due besides it).
    peers[1].engine.set_auto_delivered(false);
    peers[1].inbox.push(ServerFrame::Error {
        code: "unavailable".into(),
        message: "memberships not listed".into(),
        doc: None,
        fatal: false,
        hash: None,
        retry_after_ms: Some(500),
        id: None,
    });
    // (as if the connection's list were still under way)
    wire.disconnect(&mut peers, 1);
    peers[1].online = true;
    peers[1].engine.connected(wire.now, wire.now);
    let sent: Vec<Output> = peers[1].engine.drain();
    assert!(sent
        .iter()
        .any(|o| matches!(o, Output::Send(ClientFrame::Memberships {}))));
    assert!(peers[1].engine.is_listing_memberships());
    let error = peers[1].inbox.pop().unwrap();
    peers[1].engine.receive(error, wire.now);
    let wake = peers[1].engine.next_wakeup().expect("a round is due");
    assert!(wake >= wire.now + 500);
    peers[1].engine.tick(wake);
    let again: Vec<Output> = peers[1].engine.drain();
    assert!(
        again
            .iter()
            .any(|o| matches!(o, Output::Send(ClientFrame::Memberships {}))),
        "{again:?}"
    );
}

/// An app opens a conversation the moment it learns its id, before the server has its
/// creation: the subscription is refused (`forbidden`), and that answer can reach the
/// client before or after the push that adds the account (the server answers and pushes
/// on separate paths). Either way the engine ends following it.
#[test]
fn a_subscription_refused_around_the_push_that_adds_is_asked_again() {
    for refusal_first in [true, false] {
        let mut wire = Wire::new();
        let mut peers = vec![peer("alice"), peer("bob")];
        wire.connect(&mut peers, 0);
        wire.connect(&mut peers, 1);
        let g = ConvId::new("weekend").unwrap();
        // Bob opens it; the server reads his subscription before alice's creation.
        peers[1].held = Some(Vec::new());
        peers[1].engine.open_conversation(&g, 50, wire.now);
        wire.pump(&mut peers);
        let held = peers[1].held.take().unwrap();
        let refusals: Vec<ServerFrame> = subscribed_docs(&held)
            .iter()
            .map(|d| forbidden(d))
            .collect();
        assert!(!refusals.is_empty(), "{held:?}");
        if refusal_first {
            peers[1].inbox.extend(refusals.clone());
            wire.pump(&mut peers);
        }
        create_with_bob(&mut wire, &mut peers, &g);
        if !refusal_first {
            peers[1].inbox.extend(refusals);
            wire.pump(&mut peers);
        }
        send(&mut wire, &mut peers, 0, &g, "hello bob");
        assert_eq!(
            bodies(&peers[1], &g),
            vec!["hello bob"],
            "refusal first: {refusal_first}"
        );
    }
}

/// A refusal is asked again once per feed entry that says active, so a server that keeps
/// refusing costs one more round trip, not a loop; one without such an entry is final.
#[test]
fn a_refused_subscription_is_retried_once_per_feed_entry() {
    let mut wire = Wire::new();
    let mut peers = vec![peer("bob")];
    wire.connect(&mut peers, 0);
    peers[0].held = Some(Vec::new());
    let g = ConvId::new("elsewhere").unwrap();
    peers[0].engine.open_conversation(&g, 50, wire.now);
    let conv_doc = DocId::conv(&tenant(), &g).to_string();
    let first = answer(&mut wire, &mut peers, None);
    assert!(first.contains(&conv_doc), "{first:?}");

    let refused = Some(forbidden(&conv_doc));
    assert_eq!(
        answer(&mut wire, &mut peers, refused.clone()),
        Vec::<String>::new(),
        "not a member: final"
    );
    let active = |seq, role| {
        Some(ServerFrame::Membership {
            conv: g.clone(),
            role,
            status: MemberStatus::Active,
            seq,
        })
    };
    assert_eq!(
        answer(&mut wire, &mut peers, active(3, Role::Member)),
        vec![conv_doc.clone()],
        "a newer entry asks again"
    );
    assert_eq!(
        answer(&mut wire, &mut peers, refused.clone()),
        Vec::<String>::new(),
        "refused again as of the same entry: final"
    );
    assert_eq!(
        answer(&mut wire, &mut peers, active(4, Role::Admin)),
        vec![conv_doc.clone()],
        "the next change asks once more"
    );
    assert_eq!(answer(&mut wire, &mut peers, refused), Vec::<String>::new());
}

/// Gives peer 0 (whose sends are held) `frame`, and returns the documents it subscribes to
/// in answer.
fn answer(wire: &mut Wire, peers: &mut [Peer], frame: Option<ServerFrame>) -> Vec<String> {
    peers[0].inbox.extend(frame);
    wire.pump(peers);
    subscribed_docs(&peers[0].held.replace(Vec::new()).unwrap_or_default())
}

/// Messages can arrive before their conversation document: bob opens a group the moment he
/// learns its id, his conversation subscription is refused (read before the creation) and
/// asked again, and alice's message reaches him through the part's subscription meanwhile.
/// His delivery marker, due while the conversation document is not here, is written once
/// it syncs instead of being dropped.
#[test]
fn a_delivery_marker_due_before_the_conversation_document_waits_for_it() {
    use confab_core::client::DELIVERED_DELAY_MS;
    let mut wire = Wire::new();
    let mut peers = vec![peer("alice"), peer("bob")];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    let g = ConvId::new("weekend").unwrap();
    let conv_doc = DocId::conv(&tenant(), &g).to_string();
    peers[1].held = Some(Vec::new());
    peers[1].engine.open_conversation(&g, 50, wire.now);
    wire.pump(&mut peers);
    create_with_bob(&mut wire, &mut peers, &g);
    // The server read bob's conversation subscription before the creation, his part's after.
    for frame in peers[1].held.replace(Vec::new()).unwrap() {
        match frame {
            ClientFrame::Subscribe { doc, .. } if doc == conv_doc => {
                peers[1].inbox.push(forbidden(&doc));
            }
            frame => wire.serve(&mut peers, 1, frame),
        }
    }
    wire.pump(&mut peers);
    let asked_again = peers[1].held.replace(Vec::new()).unwrap();
    assert_eq!(subscribed_docs(&asked_again), vec![conv_doc.clone()]);
    peers[1].held = None;

    send(&mut wire, &mut peers, 0, &g, "hello bob");
    assert_eq!(bodies(&peers[1], &g), vec!["hello bob"]);
    assert!(peers[1].engine.conversation(&g).is_none(), "not synced yet");
    wire.now += DELIVERED_DELAY_MS;
    peers[1].engine.tick(wire.now);
    wire.pump(&mut peers);

    for frame in asked_again {
        wire.serve(&mut peers, 1, frame);
    }
    wire.pump(&mut peers);
    wire.now += DELIVERED_DELAY_MS;
    peers[1].engine.tick(wire.now);
    wire.pump(&mut peers);
    let marker = peers[0]
        .engine
        .conversation(&g)
        .and_then(|c| c.delivered.get(&acc("bob")).map(|m| m.to_string()));
    assert_eq!(marker.as_deref(), Some("hello-bob"));
}
