//! One client engine against the hub (the server's acceptance engine), over a memory store:
//! frames in and out, loads answered at once. Shared by the client tests that need a server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use confab_core::automerge::{ActorId, Change};
use confab_core::client::store::{self, block_on_ready};
use confab_core::client::{
    ClientConfig, ClientEngine, Event, Intent, LocalStore, MemoryStore, Outcome, Output,
    SearchPage, DUE_NOW,
};
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::policy::Author;
use confab_core::protocol::{ClientFrame, SeqChange, ServerFrame};
use serde_bytes::ByteBuf;

pub const T0: i64 = 1_775_779_200_000;
pub const DAY: i64 = DEFAULT_BUCKET_MS;

pub fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// One device against the hub (the server's acceptance engine), frames in and out.
pub struct Device {
    pub engine: ClientEngine,
    pub store: MemoryStore,
    pub hub: Hub,
    pub online: bool,
    pub now: i64,
    pub subs: HashSet<DocId>,
    /// The search pages answered (`Outcome::Searched`), in order.
    pub pages: Vec<SearchPage>,
}

impl Device {
    pub fn new() -> Self {
        Device {
            engine: ClientEngine::new(config()),
            store: MemoryStore::new(),
            hub: Hub::new(),
            online: false,
            now: T0,
            subs: HashSet::new(),
            pages: Vec::new(),
        }
    }

    pub fn connect(&mut self) {
        self.online = true;
        self.engine.connected(self.now, self.now);
        self.pump();
    }

    pub fn disconnect(&mut self) {
        self.online = false;
        self.engine.disconnected();
        self.subs.clear();
        self.pump();
    }

    /// Sets `conv`'s retention to `days` days and pumps; dropping waits for the next sync.
    pub fn set_retention_days(&mut self, conv: &ConvId, days: u32) {
        let set = Intent::SetSetting {
            conv: conv.clone(),
            key: "retention_days".into(),
            value: serde_json::json!(days),
        };
        self.engine.intent(set, self.now).unwrap();
        self.pump();
    }

    /// Carries out everything, as a host does: the outputs, and a `tick` whenever the engine
    /// asks for one at once (index upkeep).
    pub fn pump(&mut self) {
        self.pump_outputs();
        while self.engine.next_wakeup() == Some(DUE_NOW) {
            self.engine.tick(self.now);
            self.pump_outputs();
        }
    }

    /// Carries out the engine's outputs and the frames they bring, without ticking.
    pub fn pump_outputs(&mut self) {
        let mut inbox: Vec<ServerFrame> = Vec::new();
        loop {
            let mut moved = false;
            for frame in std::mem::take(&mut inbox) {
                moved = true;
                self.engine.receive(frame, self.now);
            }
            for output in self.engine.drain() {
                moved = true;
                match output {
                    Output::Persist(ops) => {
                        block_on_ready(LocalStore::write(&self.store, ops))
                            .unwrap()
                            .unwrap();
                    }
                    Output::Load(load) => {
                        let answer = block_on_ready(store::read(&self.store, &load.reads));
                        self.engine.loaded(load.id, answer.unwrap()).unwrap();
                    }
                    Output::Send(frame) if self.online => inbox.extend(self.serve(frame)),
                    Output::Event(Event::Done {
                        outcome: Outcome::Searched(page),
                        ..
                    }) => self.pages.push(*page),
                    Output::Send(_) | Output::Event(_) => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn serve(&mut self, frame: ClientFrame) -> Vec<ServerFrame> {
        match frame {
            ClientFrame::Subscribe { doc, after } => {
                let id = DocId::parse(&doc).unwrap();
                self.subs.insert(id.clone());
                let missed = self.hub.changes_after(&id, after);
                let seq = missed.last().map_or(after, |(seq, _)| *seq);
                let changes = missed
                    .into_iter()
                    .map(|(seq, mut c)| SeqChange {
                        seq,
                        change: ByteBuf::from(c.bytes().to_vec()),
                    })
                    .collect();
                vec![
                    ServerFrame::Changes {
                        doc: doc.clone(),
                        changes,
                    },
                    ServerFrame::Synced { doc, seq },
                ]
            }
            ClientFrame::Submit { doc, changes } => {
                let id = DocId::parse(&doc).unwrap();
                let author = Author::user(self.engine.config().account.clone());
                let mut out = Vec::new();
                for bytes in changes {
                    let change = Change::try_from(&bytes[..]).unwrap();
                    let hash = ByteBuf::from(change.hash().0.to_vec());
                    match self.hub.submit(&id, &author, change, self.now) {
                        Ok((ack, _)) => {
                            out.push(ServerFrame::Ack {
                                doc: doc.clone(),
                                hash,
                                seq: ack.seq,
                            });
                            if self.subs.contains(&id) {
                                out.push(ServerFrame::Changes {
                                    doc: doc.clone(),
                                    changes: vec![SeqChange {
                                        seq: ack.seq,
                                        change: bytes.clone(),
                                    }],
                                });
                            }
                        }
                        Err(r) => panic!("{doc} refused: {r:?}"),
                    }
                }
                out
            }
            ClientFrame::Buckets { doc, before, limit } => {
                let id = DocId::parse(&doc).unwrap();
                let conv = id.conv_id().unwrap().clone();
                let older: Vec<_> = self
                    .hub
                    .buckets(&tenant(), &conv)
                    .into_iter()
                    .filter(|b| before.is_none_or(|x| *b < x))
                    .collect();
                vec![ServerFrame::Buckets {
                    doc,
                    more: older.len() > limit as usize,
                    buckets: older.into_iter().take(limit as usize).collect(),
                }]
            }
            _ => Vec::new(),
        }
    }
}

pub fn config() -> ClientConfig {
    let mut actor = [1u8; 16];
    actor[15] = 9;
    ClientConfig {
        tenant: tenant(),
        account: AccountId::new("alice").unwrap(),
        actor: ActorId::from(&actor[..]),
    }
}
