//! Test support: devices that write through the real `doc::write` functions and a `Hub`
//! that validates like the server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use confab_core::automerge::{ActorId, Automerge, Change, ChangeHash};
use confab_core::doc::{self, write, DocError, IntentTag};
use confab_core::hub::{Ack, Hub};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::*;
use confab_core::model::message::NewMessage;
use confab_core::policy::{Author, Effect};
use confab_core::validate::Rejection;

/// 2026-04-10T00:00:00Z, server time in tests.
pub const NOW: i64 = 1_775_779_200_000;

pub fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

pub fn acc(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

pub fn conv_id(s: &str) -> ConvId {
    ConvId::new(s).unwrap()
}

pub fn msg_id(s: &str) -> MessageId {
    MessageId::new(s).unwrap()
}

pub fn conv_doc(c: &ConvId) -> DocId {
    DocId::conv(&tenant(), c)
}

/// The bucket document for a message created at `at` (default bucket width).
pub fn bucket_doc(c: &ConvId, at: i64) -> DocId {
    DocId::msgs(&tenant(), c, at.div_euclid(DEFAULT_BUCKET_MS))
}

/// One device of one account: its own actor, its own replicas.
pub struct Device {
    pub author: Author,
    pub actor: ActorId,
    pub docs: HashMap<DocId, Automerge>,
    intents: u64,
}

impl Device {
    pub fn new(account: &str, device: u8) -> Self {
        let mut bytes = [0u8; 16];
        for (i, b) in account.bytes().take(15).enumerate() {
            bytes[i] = b;
        }
        bytes[15] = device;
        Device {
            author: Author::user(acc(account)),
            actor: ActorId::from(&bytes[..]),
            docs: HashMap::new(),
            intents: 0,
        }
    }

    pub fn service(account: &str) -> Self {
        let mut d = Device::new(account, 0);
        d.author = Author::service(acc(account));
        d
    }

    pub fn account(&self) -> AccountId {
        self.author.account.clone()
    }

    /// The local replica, created from the genesis on first use.
    pub fn doc(&mut self, id: &DocId) -> &mut Automerge {
        let actor = self.actor.clone();
        self.docs
            .entry(id.clone())
            .or_insert_with(|| doc::genesis(id).unwrap().with_actor(actor))
    }

    /// Runs one intent on the local replica and returns the change it produced.
    pub fn write(
        &mut self,
        id: &DocId,
        f: impl FnOnce(&mut Automerge, &IntentTag) -> Result<Option<ChangeHash>, DocError>,
    ) -> Change {
        self.intents += 1;
        let tag = IntentTag::new(format!("i{}", self.intents), "test");
        let doc = self.doc(id);
        f(doc, &tag).expect("intent applies locally");
        doc.get_last_local_change().expect("a change")
    }

    /// Runs one intent; `None` when it fails locally or changes nothing.
    pub fn try_write(
        &mut self,
        id: &DocId,
        f: impl FnOnce(&mut Automerge, &IntentTag) -> Result<Option<ChangeHash>, DocError>,
    ) -> Option<Change> {
        self.intents += 1;
        let tag = IntentTag::new(format!("i{}", self.intents), "test");
        let doc = self.doc(id);
        let before = doc.get_heads();
        f(doc, &tag).ok()??;
        (doc.get_heads() != before)
            .then(|| doc.get_last_local_change())
            .flatten()
    }

    /// Pulls every accepted change of `id` from the hub.
    pub fn pull(&mut self, hub: &Hub, id: &DocId) {
        let changes: Vec<Change> = hub
            .changes_after(id, 0)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        self.doc(id).apply_changes(changes).unwrap();
    }
}

pub fn submit(
    hub: &mut Hub,
    dev: &Device,
    id: &DocId,
    change: Change,
) -> Result<(Ack, Vec<Effect>), Rejection> {
    hub.submit(id, &dev.author, change, NOW)
}

/// Creates a group owned by `owner` with `others` at the given roles; every device pulls it.
pub fn group(
    hub: &mut Hub,
    id: &str,
    owner: &mut Device,
    others: &mut [(&mut Device, Role)],
) -> ConvId {
    create(hub, id, ConvKind::Group, owner, others, |_| {})
}

pub fn create(
    hub: &mut Hub,
    id: &str,
    kind: ConvKind,
    owner: &mut Device,
    others: &mut [(&mut Device, Role)],
    tweak: impl FnOnce(&mut write::CreateConv),
) -> ConvId {
    let c = conv_id(id);
    let mut members = vec![Member::new(owner.account(), Role::Owner)];
    for (dev, role) in others.iter() {
        let mut m = Member::new(dev.account(), *role);
        m.invited_by = Some(owner.account());
        members.push(m);
    }
    let mut spec = write::CreateConv {
        kind,
        created_by: owner.account(),
        created_at: NOW - 1000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info {
            title: Some(format!("{id} title")),
            ..Info::default()
        },
        settings: Settings::defaults_for(kind),
        members,
    };
    tweak(&mut spec);
    let change = owner.write(&conv_doc(&c), |d, t| {
        write::create_conversation(d, t, &spec)
    });
    submit(hub, owner, &conv_doc(&c), change).expect("creation accepted");
    for (dev, _) in others.iter_mut() {
        dev.pull(hub, &conv_doc(&c));
    }
    c
}

/// A text message change from `dev` in `conv`, created at `at`.
pub fn text_change(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
    at: i64,
) -> (DocId, Change) {
    let doc = bucket_doc(conv, at);
    let m = NewMessage::text(msg_id(id), dev.account(), body, at);
    let change = dev.write(&doc, |d, t| write::post_message(d, t, &m));
    (doc, change)
}

/// Posts a text message and returns the hub's verdict.
pub fn post(
    hub: &mut Hub,
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
) -> Result<(Ack, Vec<Effect>), Rejection> {
    let (doc, change) = text_change(dev, conv, id, body, NOW);
    submit(hub, dev, &doc, change)
}
