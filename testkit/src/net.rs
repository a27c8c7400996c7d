//! One in-memory network: the client engines of several devices, each over its own memory
//! store, wired to one fake server around the in-memory acceptor, frames pumped both ways
//! until nothing moves, at the server's clock.
//!
//! [`HubServer`] answers as the server does in the common case (subscriptions from the
//! acceptor's log, submits acked and pushed to every subscriber, rejections, bucket
//! listings). A suite that needs more (faults, a directory, a memberships feed) implements
//! [`Server`] on its own type holding a `HubServer`, answers the frames it changes and hands
//! the others on to [`HubServer::serve`]: the peers and the pump stay these.

use std::collections::{HashMap, HashSet};

use confab_core::automerge::Change;
use confab_core::client::store::{block_on_ready, read};
use confab_core::client::{
    ClientConfig, ClientEngine, Event, LocalStore, MemoryStore, Output, StoreOp,
};
use confab_core::hub::{Ack, Hub};
use confab_core::ids::{AccountId, Bucket, DeviceId, DocId};
use confab_core::policy::{Author, Effect};
use confab_core::protocol::{ClientFrame, SeqChange, ServerFrame};
use confab_core::validate::Rejection;
use serde_bytes::ByteBuf;

/// One device on the network: its engine, its store, and the frames on their way to it.
#[allow(missing_debug_implementations)] // The engine is not `Debug`.
pub struct Peer {
    pub engine: ClientEngine,
    pub store: MemoryStore,
    /// The device the server names its author on (an MLS device); `None`: the account alone.
    pub device: Option<DeviceId>,
    /// Offline, what it sends is lost (the engine resends after its next `connected`).
    pub online: bool,
    /// Frames the server answered or pushed, received at the next pump round.
    pub inbox: Vec<ServerFrame>,
    /// Every event its engine raised, in order, until a test takes them.
    pub events: Vec<Event>,
    /// When set, what this peer sends is kept here instead of reaching the server.
    pub held: Option<Vec<ClientFrame>>,
}

impl Peer {
    /// A fresh engine of `config`, offline, over an empty store.
    pub fn new(config: ClientConfig) -> Self {
        Peer::with_engine(ClientEngine::new(config), MemoryStore::new())
    }

    /// `engine` over `store` (a restart keeps the store), offline.
    pub fn with_engine(engine: ClientEngine, store: MemoryStore) -> Self {
        Peer {
            engine,
            store,
            device: None,
            online: false,
            inbox: Vec::new(),
            events: Vec::new(),
            held: None,
        }
    }

    pub fn account(&self) -> AccountId {
        self.engine.config().account.clone()
    }

    /// Who the server sees submitting from this peer.
    pub fn author(&self) -> Author {
        let author = Author::user(self.account());
        match &self.device {
            Some(device) => author.on(device.clone()),
            None => author,
        }
    }

    /// Carries out one output as a host does (store writes and reads, events kept) except
    /// a frame, which it returns.
    pub fn carry_out(&mut self, output: Output) -> Option<ClientFrame> {
        match output {
            Output::Persist(ops) => block_on_ready(LocalStore::write(&self.store, ops))
                .expect("a memory store is always ready")
                .expect("a memory store writes"),
            Output::Load(load) => {
                let answer = block_on_ready(read(&self.store, &load.reads))
                    .expect("a memory store is always ready");
                self.engine
                    .loaded(load.id, answer)
                    .expect("the engine takes its own load");
            }
            Output::Event(event) => self.events.push(event),
            Output::Send(frame) => return Some(frame),
        }
        None
    }
}

/// What answers the peers' frames.
pub trait Server {
    /// The server's clock, which is the peers' too.
    fn now(&self) -> i64;

    /// Answers one frame peer `from` sent, into the inboxes of `peers`.
    fn serve(&mut self, peers: &mut [Peer], from: usize, frame: ClientFrame);

    /// Sees what peer `peer`'s engine is about to write to its store.
    fn persisting(&mut self, _peer: usize, _ops: &[StoreOp]) {}
}

/// Runs every peer's inbox and outputs until nothing moves.
pub fn pump<S: Server + ?Sized>(server: &mut S, peers: &mut [Peer]) {
    loop {
        let mut moved = false;
        for i in 0..peers.len() {
            let now = server.now();
            for frame in std::mem::take(&mut peers[i].inbox) {
                moved = true;
                peers[i].engine.receive(frame, now);
            }
            for output in peers[i].engine.drain() {
                moved = true;
                if let Output::Persist(ops) = &output {
                    server.persisting(i, ops);
                }
                let Some(frame) = peers[i].carry_out(output) else {
                    continue;
                };
                if let Some(held) = peers[i].held.as_mut() {
                    held.push(frame);
                } else if peers[i].online {
                    server.serve(peers, i, frame);
                }
            }
        }
        if !moved {
            return;
        }
    }
}

/// Peer `i` comes online (connected at the server's clock) and everything is pumped.
pub fn connect<S: Server + ?Sized>(server: &mut S, peers: &mut [Peer], i: usize) {
    peers[i].online = true;
    let now = server.now();
    peers[i].engine.connected(now, now);
    pump(server, peers);
}

/// The common server: the acceptor, who follows which document, the clock.
#[allow(missing_debug_implementations)] // The hub is not `Debug`.
pub struct HubServer {
    pub hub: Hub,
    pub subs: HashMap<DocId, HashSet<usize>>,
    pub now: i64,
}

impl HubServer {
    /// An empty acceptor at `now`.
    pub fn new(now: i64) -> Self {
        HubServer {
            hub: Hub::new(),
            subs: HashMap::new(),
            now,
        }
    }

    /// Peer `i` follows nothing any more (it went offline, or lost read access).
    pub fn unsubscribe(&mut self, i: usize) {
        for subs in self.subs.values_mut() {
            subs.remove(&i);
        }
    }

    /// Every peer of `account` follows nothing any more.
    pub fn unsubscribe_account(&mut self, peers: &[Peer], account: &AccountId) {
        for (p, peer) in peers.iter().enumerate() {
            if peer.engine.config().account == *account {
                self.unsubscribe(p);
            }
        }
    }

    /// The changes of `id` after `after`, with their seqs, as catch-up sends them.
    pub fn missed(&self, id: &DocId, after: u64) -> Vec<SeqChange> {
        self.hub
            .changes_after(id, after)
            .into_iter()
            .map(|(seq, mut c)| SeqChange {
                seq,
                change: ByteBuf::from(c.bytes().to_vec()),
            })
            .collect()
    }

    /// Peer `i` follows `doc` and is sent what it missed after `after`: `changes`, then
    /// `synced`.
    pub fn subscribe(&mut self, peers: &mut [Peer], i: usize, doc: String, after: u64) {
        let id = DocId::parse(&doc).expect("the engine names valid documents");
        self.subs.entry(id.clone()).or_default().insert(i);
        let changes = self.missed(&id, after);
        let seq = changes.last().map_or(after, |c| c.seq);
        peers[i].inbox.push(ServerFrame::Changes {
            doc: doc.clone(),
            changes,
        });
        peers[i].inbox.push(ServerFrame::Synced { doc, seq });
    }

    /// Submits one change of `doc` as peer `i`'s author at the clock and answers it with an
    /// `ack` or a `reject`; what was accepted is the caller's to push.
    pub fn accept(
        &mut self,
        peers: &mut [Peer],
        i: usize,
        doc: &str,
        bytes: &[u8],
    ) -> Result<(Ack, Vec<Effect>), Rejection> {
        let id = DocId::parse(doc).expect("the engine names valid documents");
        let change = Change::try_from(bytes).expect("the engine submits valid changes");
        let hash = ByteBuf::from(change.hash().0.to_vec());
        let verdict = self.hub.submit(&id, &peers[i].author(), change, self.now);
        let answer = match &verdict {
            Ok((ack, _)) => ServerFrame::Ack {
                doc: doc.to_owned(),
                hash,
                seq: ack.seq,
            },
            Err(r) => ServerFrame::Reject {
                doc: doc.to_owned(),
                hash: Some(hash),
                code: r.code.as_str().to_owned(),
                reason: r.reason.clone(),
            },
        };
        peers[i].inbox.push(answer);
        verdict
    }

    /// Pushes accepted change `bytes` at `seq` to every subscriber of `doc` that `to` keeps
    /// (by index and peer).
    pub fn push(
        &self,
        peers: &mut [Peer],
        doc: &str,
        seq: u64,
        bytes: &[u8],
        to: impl Fn(usize, &Peer) -> bool,
    ) {
        let id = DocId::parse(doc).expect("the engine names valid documents");
        let push = ServerFrame::Changes {
            doc: doc.to_owned(),
            changes: vec![SeqChange {
                seq,
                change: ByteBuf::from(bytes.to_vec()),
            }],
        };
        let mut subs: Vec<usize> = self.subs.get(&id).into_iter().flatten().copied().collect();
        subs.sort_unstable();
        for sub in subs {
            if to(sub, &peers[sub]) {
                peers[sub].inbox.push(push.clone());
            }
        }
    }

    /// A page of `doc`'s conversation's buckets before `before`, at most `limit`.
    pub fn buckets(&self, doc: String, before: Option<Bucket>, limit: u32) -> ServerFrame {
        let id = DocId::parse(&doc).expect("the engine names valid documents");
        let conv = id.conv_id().expect("buckets are asked of a conversation");
        let older: Vec<Bucket> = self
            .hub
            .buckets(id.tenant(), conv)
            .into_iter()
            .filter(|b| before.is_none_or(|x| *b < x))
            .collect();
        let limit = limit as usize;
        ServerFrame::Buckets {
            doc,
            more: older.len() > limit,
            buckets: older.into_iter().take(limit).collect(),
        }
    }
}

impl Server for HubServer {
    fn now(&self) -> i64 {
        self.now
    }

    /// Subscriptions, submits (every accepted change pushed to every subscriber) and
    /// bucket listings; any other frame is left unanswered.
    fn serve(&mut self, peers: &mut [Peer], from: usize, frame: ClientFrame) {
        match frame {
            ClientFrame::Subscribe { doc, after } => self.subscribe(peers, from, doc, after),
            ClientFrame::Submit { doc, changes } => {
                for bytes in changes {
                    if let Ok((ack, _)) = self.accept(peers, from, &doc, &bytes) {
                        self.push(peers, &doc, ack.seq, &bytes, |_, _| true);
                    }
                }
            }
            ClientFrame::Buckets { doc, before, limit } => {
                let page = self.buckets(doc, before, limit);
                peers[from].inbox.push(page);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use confab_core::automerge::ActorId;
    use confab_core::client::Intent;
    use confab_core::ids::{ConvId, MessageId};
    use confab_core::model::conversation::{ConvKind, Role};
    use confab_core::model::message::NewMessage;

    use super::*;
    use crate::hub::NOW;
    use crate::ids::{acc, tenant};

    fn peer(account: &str, device: u8) -> Peer {
        Peer::new(ClientConfig {
            tenant: tenant(),
            account: acc(account),
            actor: ActorId::from(&[device; 16][..]),
        })
    }

    #[test]
    fn a_message_reaches_the_other_member_and_a_held_peer_sends_nothing() {
        let mut server = HubServer::new(NOW);
        let mut peers = vec![peer("alice", 1), peer("bob", 2)];
        connect(&mut server, &mut peers, 0);
        connect(&mut server, &mut peers, 1);
        let conv = ConvId::new("weekend").unwrap();
        let create = Intent::CreateConversation {
            encrypted: false,
            conv: conv.clone(),
            kind: ConvKind::Group,
            title: Some("Weekend plans".into()),
            members: vec![(acc("bob"), Role::Member)],
            settings: None,
            parent: None,
        };
        peers[0].engine.intent(create, NOW).unwrap();
        pump(&mut server, &mut peers);
        peers[1]
            .engine
            .open(&DocId::conv(&tenant(), &conv))
            .unwrap();
        let bucket = peers[1].engine.bucket_doc(&conv, NOW);
        peers[1].engine.open(&bucket).unwrap();
        pump(&mut server, &mut peers);

        let hello = NewMessage::text(MessageId::new("m-1").unwrap(), acc("alice"), "hi", NOW);
        let send = |message| Intent::Send {
            conv: conv.clone(),
            message,
        };
        let id = peers[0].engine.intent(send(hello), NOW).unwrap();
        pump(&mut server, &mut peers);
        assert_eq!(peers[0].engine.status(id), None, "accepted and forgotten");
        let bodies = |peer: &Peer| -> Vec<String> {
            peer.engine
                .timeline(&conv)
                .into_iter()
                .map(|item| item.message.body)
                .collect()
        };
        assert_eq!(bodies(&peers[1]), vec!["hi"], "pushed to bob");

        peers[0].held = Some(Vec::new());
        let again = NewMessage::text(MessageId::new("m-2").unwrap(), acc("alice"), "yo", NOW);
        peers[0].engine.intent(send(again), NOW).unwrap();
        pump(&mut server, &mut peers);
        assert!(
            peers[0].held.as_ref().is_some_and(|held| !held.is_empty()),
            "the submit is held"
        );
        assert_eq!(bodies(&peers[1]), vec!["hi"], "nothing reached the server");
    }
}
