//! Retention on the client: after its next sync of a conversation, a client drops the
//! buckets the conversation's `retention_days` expired (computed locally from the setting
//! and the bucket period) from memory, the views and its local store, and they stay gone
//! after a restart; a `bucket_expired` answer drops a bucket whatever the device's clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hub_device;

use confab_core::client::host::carry_out_stored;
use confab_core::client::store::block_on_ready;
use confab_core::client::{ClientEngine, Intent, LocalStore};
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::model::conversation::ConvKind;
use confab_core::model::message::NewMessage;
use confab_core::protocol::ServerFrame;
use hub_device::{config, tenant, Device, DAY, T0};

impl Device {
    fn send(&mut self, conv: &ConvId, id: &str, at: i64) {
        let message = NewMessage::text(
            MessageId::new(id).unwrap(),
            self.peer.engine.config().account.clone(),
            "hello",
            at,
        );
        let intent = Intent::Send {
            conv: conv.clone(),
            message,
        };
        self.peer.engine.intent(intent, at).expect("allowed");
        self.pump();
    }

    fn keys_of(&self, doc: &DocId) -> Vec<String> {
        block_on_ready(LocalStore::scan(&self.peer.store, ""))
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.contains(&doc.to_string()))
            .collect()
    }

    fn bodies(&self, conv: &ConvId) -> Vec<String> {
        self.peer
            .engine
            .timeline(conv)
            .into_iter()
            .map(|i| i.message.id.to_string())
            .collect()
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
    dev.peer.engine.intent(create, dev.net.now).unwrap();
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
    dev.set_retention_days(&conv, 5);
    assert_eq!(
        dev.peer
            .engine
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
        assert!(!dev.peer.engine.is_loaded(doc), "{doc} left memory");
        assert_eq!(
            dev.keys_of(doc),
            Vec::<String>::new(),
            "{doc} left the store"
        );
    }
    assert!(dev.peer.engine.is_loaded(&today));
    assert!(!dev.keys_of(&today).is_empty());

    // A restart restores what is left only.
    let store = std::mem::take(&mut dev.peer.store);
    let mut engine = ClientEngine::restoring(config());
    carry_out_stored(&mut engine, &store).unwrap();
    dev.peer.engine = engine;
    dev.peer.store = store;
    dev.peer.online = false;
    dev.pump();
    assert!(!dev.peer.engine.is_loaded(&old));
    dev.peer.engine.open(&today).unwrap();
    dev.pump();
    assert_eq!(dev.bodies(&conv), vec!["today"]);

    // The server's word drops a bucket whatever this device's clock says.
    dev.connect();
    dev.peer.engine.receive(
        ServerFrame::Error {
            code: "bucket_expired".into(),
            message: "past the retention".into(),
            doc: Some(today.to_string()),
            fatal: false,
            hash: None,
            retry_after_ms: None,
            id: None,
        },
        dev.net.now,
    );
    dev.peer.online = false;
    dev.pump();
    assert!(!dev.peer.engine.is_loaded(&today));
    assert_eq!(dev.keys_of(&today), Vec::<String>::new());
}
