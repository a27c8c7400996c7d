//! Retention on the client: after its next sync of a conversation, a client drops the
//! buckets the conversation's `retention_days` expired (computed locally from the setting
//! and the bucket period) from memory, the views and its local store, and they stay gone
//! after a restart; a `bucket_expired` answer drops a bucket whatever the device's clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use confab_core::automerge::{ActorId, Change};
use confab_core::client::host::carry_out_stored;
use confab_core::client::store::{self, block_on_ready};
use confab_core::client::{ClientConfig, ClientEngine, Intent, LocalStore, MemoryStore, Output};
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{ConvKind, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_core::protocol::{ClientFrame, SeqChange, ServerFrame};
use serde_bytes::ByteBuf;

const T0: i64 = 1_775_779_200_000;
const DAY: i64 = DEFAULT_BUCKET_MS;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// One device against the hub (the server's acceptance engine), frames in and out.
struct Device {
    engine: ClientEngine,
    store: MemoryStore,
    hub: Hub,
    online: bool,
    now: i64,
    subs: HashSet<DocId>,
}

impl Device {
    fn new() -> Self {
        Device {
            engine: ClientEngine::new(config()),
            store: MemoryStore::new(),
            hub: Hub::new(),
            online: false,
            now: T0,
            subs: HashSet::new(),
        }
    }

    fn connect(&mut self) {
        self.online = true;
        self.engine.connected(self.now, self.now);
        self.pump();
    }

    fn disconnect(&mut self) {
        self.online = false;
        self.engine.disconnected();
        self.subs.clear();
        self.pump();
    }

    fn pump(&mut self) {
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

    fn send(&mut self, conv: &ConvId, id: &str, at: i64) {
        let message = NewMessage::text(
            MessageId::new(id).unwrap(),
            self.engine.config().account.clone(),
            "hello",
            at,
        );
        let intent = Intent::Send {
            conv: conv.clone(),
            message,
        };
        self.engine.intent(intent, at).expect("allowed");
        self.pump();
    }

    fn keys_of(&self, doc: &DocId) -> Vec<String> {
        block_on_ready(LocalStore::scan(&self.store, ""))
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.contains(&doc.to_string()))
            .collect()
    }

    fn bodies(&self, conv: &ConvId) -> Vec<String> {
        self.engine
            .timeline(conv)
            .into_iter()
            .map(|i| i.message.id.to_string())
            .collect()
    }
}

fn config() -> ClientConfig {
    let mut actor = [1u8; 16];
    actor[15] = 9;
    ClientConfig {
        tenant: tenant(),
        account: AccountId::new("alice").unwrap(),
        actor: ActorId::from(&actor[..]),
    }
}

#[test]
fn expired_buckets_are_dropped_locally_on_the_next_sync() {
    let mut dev = Device::new();
    dev.connect();
    let conv = ConvId::new("g").unwrap();
    let create = Intent::CreateConversation {
        encrypted: false,
        conv: conv.clone(),
        kind: ConvKind::Group,
        title: Some("g".into()),
        members: Vec::new(),
        settings: None,
        parent: None,
    };
    dev.engine.intent(create, dev.now).unwrap();
    dev.pump();
    // Messages 10 and 9 days old, and one of today: written before any retention.
    dev.send(&conv, "old", T0 - 10 * DAY);
    dev.send(&conv, "older-mid", T0 - 9 * DAY);
    dev.send(&conv, "today", T0);
    let old = DocId::msgs(&tenant(), &conv, (T0 - 10 * DAY).div_euclid(DAY));
    let mid = DocId::msgs(&tenant(), &conv, (T0 - 9 * DAY).div_euclid(DAY));
    let today = DocId::msgs(&tenant(), &conv, T0.div_euclid(DAY));
    assert_eq!(dev.bodies(&conv), vec!["old", "older-mid", "today"]);
    assert!(!dev.keys_of(&old).is_empty(), "the old bucket is stored");

    // A 5-day retention. Dropping waits for the next sync (reconnecting here).
    let set = Intent::SetSetting {
        conv: conv.clone(),
        key: "retention_days".into(),
        value: serde_json::json!(5),
    };
    dev.engine.intent(set, dev.now).unwrap();
    dev.pump();
    assert_eq!(
        dev.engine
            .conversation(&conv)
            .unwrap()
            .settings
            .retention_days,
        Some(5)
    );
    dev.disconnect();
    dev.connect();
    assert_eq!(dev.bodies(&conv), vec!["today"]);
    for doc in [&old, &mid] {
        assert!(!dev.engine.is_loaded(doc), "{doc} left memory");
        assert_eq!(
            dev.keys_of(doc),
            Vec::<String>::new(),
            "{doc} left the store"
        );
    }
    assert!(dev.engine.is_loaded(&today));
    assert!(!dev.keys_of(&today).is_empty());

    // A restart restores what is left only.
    let store = std::mem::take(&mut dev.store);
    let mut engine = ClientEngine::restoring(config());
    carry_out_stored(&mut engine, &store).unwrap();
    dev.engine = engine;
    dev.store = store;
    dev.online = false;
    dev.pump();
    assert!(!dev.engine.is_loaded(&old));
    dev.engine.open(&today).unwrap();
    dev.pump();
    assert_eq!(dev.bodies(&conv), vec!["today"]);

    // The server's word drops a bucket whatever this device's clock says.
    dev.connect();
    dev.engine.receive(
        ServerFrame::Error {
            code: "bucket_expired".into(),
            message: "past the retention".into(),
            doc: Some(today.to_string()),
            fatal: false,
            hash: None,
            retry_after_ms: None,
            id: None,
        },
        dev.now,
    );
    dev.online = false;
    dev.pump();
    assert!(!dev.engine.is_loaded(&today));
    assert_eq!(dev.keys_of(&today), Vec::<String>::new());
}
