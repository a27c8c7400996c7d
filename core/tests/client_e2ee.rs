//! The client engine driving MLS against the hub (the server's acceptor, the Delivery
//! Service) through protocol frames: the device's state in the store, key packages kept
//! topped up, encrypted groups made with their creation, encrypted support threads opened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};

use confab_core::automerge::{ActorId, Change};
use confab_core::client::store::block_on_ready;
use confab_core::client::{
    ClientConfig, ClientEngine, ClientError, HostKey, Intent, IntentStatus, LocalStore,
    MemoryStore, Output, StoreOp, KEY_PACKAGES_TARGET,
};
use confab_core::ids::{AccountId, ConvId, DeviceId, DocId, MessageId, ResourceId, TenantId};
use confab_core::model::conversation::{ConvKind, Role};
use confab_core::model::message::NewMessage;
use confab_core::model::support::SenderRole;
use confab_core::protocol::{ClaimedPackage, ClientFrame, SeqChange, ServerFrame, SignalKind};
use confab_testkit::ids::acc;
use confab_testkit::net::{self, HubServer, Peer, Server};
use serde_bytes::ByteBuf;

const T0: i64 = 1_775_779_200_000;

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn conv(s: &str) -> ConvId {
    ConvId::new(s).unwrap()
}

fn config(account: &str) -> ClientConfig {
    let mut actor = [0u8; 16];
    actor[..account.len().min(14)].copy_from_slice(&account.as_bytes()[..account.len().min(14)]);
    ClientConfig {
        tenant: tenant(),
        account: acc(account),
        actor: ActorId::from(&actor[..]),
    }
}

/// A device with an MLS identity (`phone`), attached fresh.
fn phone(account: &str) -> Peer {
    device_of(config(account), "phone")
}

/// Device `device` of `config`'s account, attached fresh.
fn device_of(config: ClientConfig, device: &str) -> Peer {
    let device = DeviceId::new(device).unwrap();
    let mut engine = ClientEngine::new(config);
    engine.attach_device(device.clone(), &[]).unwrap();
    let mut peer = Peer::with_engine(engine, MemoryStore::new());
    peer.device = Some(device);
    peer
}

/// What a peer of this suite is beyond the network's: an MLS device.
trait MlsPeer {
    fn mls_device(&self) -> DeviceId;
    fn restarted(&self) -> ClientEngine;
    fn saved_device(&self) -> Vec<(String, Vec<u8>)>;
    fn errors(&self) -> Vec<String>;
}

impl MlsPeer for Peer {
    fn mls_device(&self) -> DeviceId {
        self.device
            .clone()
            .expect("every peer of this suite is an MLS device")
    }

    /// A new engine of this peer's account with its saved device attached (a restart).
    fn restarted(&self) -> ClientEngine {
        let mut engine = ClientEngine::new(self.engine.config().clone());
        engine
            .attach_device(self.mls_device(), &self.saved_device())
            .unwrap();
        engine
    }

    /// The device's entries in the store, as a host reads them for `attach_device`.
    fn saved_device(&self) -> Vec<(String, Vec<u8>)> {
        block_on_ready(self.store.scan(HostKey::Mls.key()))
            .unwrap()
            .unwrap()
    }

    /// The codes of the `Event::Error`s its engine raised, in order.
    fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                confab_core::client::Event::Error { code, .. } => Some(code.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The hub, subscriptions and a directory of key packages, delivering frames between
/// engines as the server does.
struct Wire {
    net: HubServer,
    /// Key packages uploaded, per (account, device), oldest first; and the last-resort one.
    packages: BTreeMap<(String, String), Vec<Vec<u8>>>,
    last_resort: BTreeMap<(String, String), Vec<u8>>,
    /// Reject codes sent, in order.
    rejects: Vec<String>,
    /// Directory requests are refused `unavailable` (the server's database down).
    directory_down: bool,
    /// Packages a lying directory hands out in place of a device's own, per (account,
    /// device).
    forged: BTreeMap<(String, String), Vec<u8>>,
    /// `device_waiting` signals heard, per conversation document: (account, device), kept
    /// for later subscribers as the server keeps them.
    waiting: HashMap<DocId, Vec<(String, String)>>,
    /// Signals are refused `unavailable` (the server's database down), relayed to no one.
    signals_down: bool,
    /// The peer of every `claim_key_packages` served, in order.
    claimers: Vec<usize>,
    /// The peer and account of every `list_devices` served, in order.
    listed: Vec<(usize, String)>,
    /// Every frame a peer sent, as text, with the changes it submits decoded: what a test
    /// searches for words that must not leave a device.
    sent: Vec<String>,
    /// Bytes (keys and values) each peer's engine wrote under `HostKey::Mls`'s key.
    mls_written: HashMap<usize, usize>,
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
            packages: BTreeMap::new(),
            last_resort: BTreeMap::new(),
            rejects: Vec::new(),
            directory_down: false,
            forged: BTreeMap::new(),
            waiting: HashMap::new(),
            signals_down: false,
            claimers: Vec::new(),
            listed: Vec::new(),
            sent: Vec::new(),
            mls_written: HashMap::new(),
        }
    }

    fn connect(&mut self, peers: &mut [Peer], i: usize) {
        net::connect(self, peers, i);
    }

    fn intent(&mut self, peers: &mut [Peer], i: usize, intent: Intent) -> u64 {
        let id = peers[i].engine.intent(intent, self.now).unwrap();
        self.pump(peers);
        id
    }

    /// Runs every output until nothing moves.
    fn pump(&mut self, peers: &mut [Peer]) {
        net::pump(self, peers);
    }

    /// Bytes peer `i`'s engine wrote under `HostKey::Mls`'s key so far.
    fn mls_written(&self, i: usize) -> usize {
        self.mls_written.get(&i).copied().unwrap_or(0)
    }
}

impl Server for Wire {
    fn now(&self) -> i64 {
        self.net.now
    }

    fn persisting(&mut self, peer: usize, ops: &[StoreOp]) {
        *self.mls_written.entry(peer).or_default() += mls_bytes(ops);
    }

    fn serve(&mut self, peers: &mut [Peer], i: usize, frame: ClientFrame) {
        let mut text = format!("{frame:?}");
        if let ClientFrame::Submit { changes, .. } = &frame {
            for bytes in changes {
                if let Ok(change) = Change::try_from(&bytes[..]) {
                    text.push_str(&format!("{:?}", change.decode()));
                }
            }
        }
        self.sent.push(text);
        let me = (
            peers[i].engine.config().account.to_string(),
            peers[i].mls_device().to_string(),
        );
        match frame {
            ClientFrame::Subscribe { doc, after } => {
                let id = DocId::parse(&doc).unwrap();
                if let Some(c) = id.conv_id() {
                    if self.hub.conversation(c).is_none_or(|c| c.meta.is_none()) {
                        return;
                    }
                }
                self.net.subscribe(peers, i, doc.clone(), after);
                for (from, device) in self.waiting.get(&id).cloned().unwrap_or_default() {
                    peers[i].inbox.push(ServerFrame::Signal {
                        doc: doc.clone(),
                        from,
                        kind: SignalKind::DeviceWaiting,
                        data: Some(device),
                    });
                }
            }
            ClientFrame::Signal { doc, .. } if self.signals_down => {
                peers[i].inbox.push(ServerFrame::Error {
                    code: "unavailable".into(),
                    message: "the database is down; ask again".into(),
                    doc: Some(doc),
                    fatal: false,
                    hash: None,
                    retry_after_ms: Some(1_000),
                    id: None,
                });
            }
            ClientFrame::Signal { doc, kind, data } => {
                // Relayed to the other subscribers; a waiting device's name is the server's.
                let id = DocId::parse(&doc).unwrap();
                let data = if kind == SignalKind::DeviceWaiting {
                    self.waiting.entry(id.clone()).or_default().push(me.clone());
                    Some(me.1.clone())
                } else {
                    data
                };
                for sub in self.subs.get(&id).cloned().unwrap_or_default() {
                    if sub != i {
                        peers[sub].inbox.push(ServerFrame::Signal {
                            doc: doc.clone(),
                            from: me.0.clone(),
                            kind,
                            data: data.clone(),
                        });
                    }
                }
            }
            ClientFrame::Submit { doc, changes } => {
                for bytes in changes {
                    match self.net.accept(peers, i, &doc, &bytes) {
                        Ok((ack, _)) => self.net.push(peers, &doc, ack.seq, &bytes, |_, _| true),
                        Err(r) => self.rejects.push(r.code.as_str().to_owned()),
                    }
                }
            }
            ClientFrame::UploadKeyPackages { id, .. }
            | ClientFrame::ClaimKeyPackages { id, .. }
                if self.directory_down =>
            {
                peers[i].inbox.push(ServerFrame::Error {
                    code: "unavailable".into(),
                    message: "the database is down; ask again".into(),
                    doc: None,
                    fatal: false,
                    hash: None,
                    retry_after_ms: Some(1_000),
                    id: Some(id),
                });
            }
            ClientFrame::UploadKeyPackages {
                id,
                packages,
                last_resort,
            } => {
                // The first upload registers the device with its key, as the server's does.
                let identity = confab_core::e2ee::DeviceIdentity::new(
                    tenant(),
                    peers[i].engine.config().account.clone(),
                    peers[i].mls_device(),
                );
                if let Some(first) = packages.first().or(last_resort.as_ref()) {
                    let info = confab_core::e2ee::ds::check_key_package(first, &identity)
                        .expect("the engine uploads packages naming itself");
                    self.hub
                        .register_device(identity, &info.signature_key)
                        .expect("one key per device");
                }
                let held = self.packages.entry(me.clone()).or_default();
                held.extend(packages.into_iter().map(|p| p.into_vec()));
                let held = held.len() as u64;
                if let Some(l) = last_resort {
                    self.last_resort.insert(me, l.into_vec());
                }
                peers[i]
                    .inbox
                    .push(ServerFrame::KeyPackagesStored { id, held });
            }
            ClientFrame::RemoveDevice { id, device } => {
                let identity = confab_core::e2ee::DeviceIdentity::new(
                    tenant(),
                    peers[i].engine.config().account.clone(),
                    DeviceId::new(device).unwrap(),
                );
                self.hub.remove_device(&identity);
                peers[i].inbox.push(ServerFrame::DeviceRemoved { id });
            }
            ClientFrame::ListDevices { id, account } => {
                self.listed.push((i, account.clone()));
                // The hub's directory: every registered device of the account, removed apart.
                let ask = confab_core::e2ee::DirectoryAsk {
                    accounts: vec![acc(&account)],
                    removed_after: None,
                };
                let entries = self.hub.directory_of(&tenant(), &ask).entries;
                let devices = entries
                    .iter()
                    .filter(|e| !e.removed)
                    .map(|e| confab_core::protocol::DeviceEntry {
                        device: e.device.device.to_string(),
                        signature_key: ByteBuf::from(e.signature_key.clone()),
                        registered_at: None,
                        last_seen_at: None,
                        key_packages: None,
                    })
                    .collect();
                let removed = entries
                    .iter()
                    .filter(|e| e.removed)
                    .map(|e| e.device.device.to_string())
                    .collect();
                peers[i].inbox.push(ServerFrame::Devices {
                    id,
                    account,
                    devices,
                    removed,
                });
            }
            ClientFrame::ClaimKeyPackages { id, accounts } => {
                self.claimers.push(i);
                let mut devices = Vec::new();
                for account in accounts {
                    let keys: Vec<_> = self
                        .packages
                        .keys()
                        .chain(self.last_resort.keys())
                        .filter(|(a, _)| *a == account)
                        .cloned()
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    for key in keys {
                        let package = match self.packages.get_mut(&key) {
                            _ if self.forged.contains_key(&key) => self.forged.get(&key).cloned(),
                            Some(held) if !held.is_empty() => Some(held.remove(0)),
                            _ => self.last_resort.get(&key).cloned(),
                        };
                        devices.push(ClaimedPackage {
                            account: key.0.clone(),
                            device: key.1.clone(),
                            package: package.map(ByteBuf::from),
                        });
                    }
                }
                peers[i]
                    .inbox
                    .push(ServerFrame::KeyPackages { id, devices });
            }
            _ => {}
        }
    }
}

/// The bytes of `ops` that write the device's MLS state: keys and values under its key.
fn mls_bytes(ops: &[StoreOp]) -> usize {
    ops.iter()
        .map(|op| match op {
            StoreOp::Put(k, v) if k.starts_with(HostKey::Mls.key()) => k.len() + v.len(),
            StoreOp::Delete(k) if k.starts_with(HostKey::Mls.key()) => k.len(),
            _ => 0,
        })
        .sum()
}

fn create(encrypted: bool, members: &[&str]) -> Intent {
    Intent::CreateConversation {
        conv: conv("secret"),
        kind: ConvKind::Group,
        title: Some("Secret".into()),
        members: members.iter().map(|m| (acc(m), Role::Member)).collect(),
        settings: None,
        parent: None,
        encrypted,
    }
}

#[test]
fn a_device_is_saved_and_keeps_its_key_packages_topped_up() {
    let mut wire = Wire::new();
    let mut peers = vec![phone("alice")];
    wire.pump(&mut peers);
    let saved = peers[0].saved_device();
    assert!(!saved.is_empty(), "a new device is saved at once");
    wire.connect(&mut peers, 0);
    let key = ("alice".to_owned(), "phone".to_owned());
    assert_eq!(wire.packages[&key].len() as u64, KEY_PACKAGES_TARGET);
    assert_eq!(
        peers[0].engine.key_packages_held(),
        Some(KEY_PACKAGES_TARGET)
    );
    assert!(wire.last_resort.contains_key(&key));
    // Their private keys were saved before they left.
    assert_ne!(peers[0].saved_device(), saved);

    // Claimed down to 5: the next connection tops up to the target again, no more.
    wire.packages.get_mut(&key).unwrap().truncate(5);
    peers[0].engine.disconnected();
    wire.connect(&mut peers, 0);
    assert_eq!(wire.packages[&key].len() as u64, KEY_PACKAGES_TARGET);
    peers[0].engine.disconnected();
    wire.connect(&mut peers, 0);
    assert_eq!(wire.packages[&key].len() as u64, KEY_PACKAGES_TARGET);

    // A restarted engine attaches the saved device: the same signature key.
    let key_before = peers[0].engine.device_identity().cloned();
    let again = peers[0].restarted();
    assert_eq!(again.device_identity().cloned(), key_before);
    // A saved device of another name is refused, not silently replaced.
    let mut other = ClientEngine::new(config("alice"));
    let refused = other.attach_device(DeviceId::new("laptop").unwrap(), &peers[0].saved_device());
    assert!(
        matches!(refused, Err(ClientError::Corrupt(_))),
        "{refused:?}"
    );
}

#[test]
fn an_encrypted_group_is_created_with_its_mls_group() {
    let mut wire = Wire::new();
    let mut peers = vec![phone("alice")];
    wire.connect(&mut peers, 0);
    let id = wire.intent(&mut peers, 0, create(true, &["bob"]));
    // Accepted and forgotten.
    assert_eq!(peers[0].engine.status(id), None);
    let accepted = wire.hub.conversation(&conv("secret")).unwrap();
    assert!(accepted.encrypted());
    assert_eq!(accepted.mls.map(|m| m.epoch), Some(0));
    assert_eq!(peers[0].engine.group_epoch(&conv("secret")), Some(0));
    // The creation and, right after it, the group: two changes of the one intent.
    let doc = DocId::conv(&tenant(), &conv("secret"));
    assert_eq!(wire.hub.changes_after(&doc, 0).len(), 2);
    // The group is in the saved device.
    let restarted = peers[0].restarted();
    assert_eq!(restarted.group_epoch(&conv("secret")), Some(0));
}

#[test]
fn an_encrypted_creation_needs_a_device() {
    let mut engine = ClientEngine::new(config("alice"));
    let refused = engine.intent(create(true, &[]), T0);
    assert_eq!(
        refused.as_ref().map_err(ClientError::code),
        Err("e2ee"),
        "{refused:?}"
    );
    // A plaintext one does not.
    assert!(engine.intent(create(false, &[]), T0).is_ok());
}

fn add(account: &str) -> Intent {
    Intent::AddMember {
        conv: conv("secret"),
        account: acc(account),
        role: Role::Member,
    }
}

fn remove(account: &str) -> Intent {
    Intent::RemoveMember {
        conv: conv("secret"),
        account: acc(account),
        ban: false,
    }
}

/// `names`, each online with key packages in the directory; the first creates the
/// encrypted group with the second, and every other follows the conversation.
fn group_of(wire: &mut Wire, names: &[&str]) -> Vec<Peer> {
    group_made_with(wire, names, &names[1..2])
}

/// Peers of `names`, all connected, with the first's encrypted "secret" made with `members`
/// in one commit and open on every device.
fn group_made_with(wire: &mut Wire, names: &[&str], members: &[&str]) -> Vec<Peer> {
    let mut peers: Vec<Peer> = names.iter().map(|n| phone(n)).collect();
    for i in 0..peers.len() {
        wire.connect(&mut peers, i);
    }
    let id = wire.intent(&mut peers, 0, create(true, members));
    assert_eq!(peers[0].engine.status(id), None, "the creation is accepted");
    let doc = DocId::conv(&tenant(), &conv("secret"));
    for peer in peers.iter_mut().skip(1) {
        peer.engine.open(&doc).unwrap();
    }
    wire.pump(&mut peers);
    peers
}

/// `group_of` "secret" with today's part open on every device.
fn group_with_today_open(wire: &mut Wire, names: &[&str]) -> (Vec<Peer>, DocId) {
    let mut peers = group_of(wire, names);
    let bucket = peers[0].engine.bucket_doc(&conv("secret"), wire.now);
    for peer in peers.iter_mut() {
        peer.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    (peers, bucket)
}

fn epochs(peers: &[Peer]) -> Vec<Option<u64>> {
    peers
        .iter()
        .map(|p| p.engine.group_epoch(&conv("secret")))
        .collect()
}

fn accepted_epoch(wire: &Wire) -> u64 {
    wire.hub
        .conversation(&conv("secret"))
        .unwrap()
        .mls
        .unwrap()
        .epoch
}

#[test]
fn members_are_added_and_removed_with_their_commits() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob", "carol"]);
    // The creation added bob's device: bob joined from its Welcome.
    assert_eq!(accepted_epoch(&wire), 1);
    assert_eq!(epochs(&peers), vec![Some(1), Some(1), None]);

    // Adding carol claims her device's package and commits it with the membership.
    let id = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(id), None, "the add is accepted");
    assert_eq!(accepted_epoch(&wire), 2);
    assert_eq!(epochs(&peers), vec![Some(2), Some(2), Some(2)]);
    // Her package was used: the directory handed it out once.
    let key = ("carol".to_owned(), "phone".to_owned());
    assert_eq!(wire.packages[&key].len() as u64, KEY_PACKAGES_TARGET - 1);

    // Removing her commits her device out; her engine sees the group gone.
    let id = wire.intent(&mut peers, 0, remove("carol"));
    assert_eq!(peers[0].engine.status(id), None, "the removal is accepted");
    assert_eq!(accepted_epoch(&wire), 3);
    assert_eq!(epochs(&peers), vec![Some(3), Some(3), None]);

    // The devices' states are saved: a restarted alice is at the same epoch.
    let restarted = peers[0].restarted();
    assert_eq!(restarted.group_epoch(&conv("secret")), Some(3));
}

#[test]
fn an_offline_device_catches_up_across_many_epochs() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob", "carol", "dave"]);
    peers[1].online = false;
    peers[1].engine.disconnected();
    for s in wire.subs.values_mut() {
        s.remove(&1);
    }
    for intent in [
        add("carol"),
        add("dave"),
        remove("carol"),
        remove("dave"),
        add("carol"),
    ] {
        let id = wire.intent(&mut peers, 0, intent);
        assert_eq!(peers[0].engine.status(id), None);
    }
    assert_eq!(accepted_epoch(&wire), 6);
    assert_eq!(peers[1].engine.group_epoch(&conv("secret")), Some(1));
    wire.connect(&mut peers, 1);
    assert_eq!(peers[1].engine.group_epoch(&conv("secret")), Some(6));
    // Carol, removed and added again, joined from her newest Welcome.
    assert_eq!(peers[2].engine.group_epoch(&conv("secret")), Some(6));
}

#[test]
fn two_adds_racing_for_one_epoch_both_end_accepted() {
    let mut wire = Wire::new();
    let mut peers = group_of(&mut wire, &["alice", "bob", "carol", "dave"]);
    // Both write before either hears of the other.
    let by_alice = peers[0].engine.intent(add("carol"), wire.now).unwrap();
    let by_bob = peers[1].engine.intent(add("dave"), wire.now).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[0].engine.status(by_alice), None);
    assert_eq!(
        peers[1].engine.status(by_bob),
        None,
        "bob's add is rebuilt and accepted"
    );
    // It did lose the race once: refused for its epoch, then made again on the next.
    assert_eq!(wire.rejects.len(), 1, "{:?}", wire.rejects);
    assert!(
        ["mls_stale_epoch", "conflicting_write"].contains(&wire.rejects[0].as_str()),
        "{:?}",
        wire.rejects
    );
    assert_eq!(accepted_epoch(&wire), 3);
    assert_eq!(epochs(&peers), vec![Some(3); 4]);
}

fn send(wire: &mut Wire, peers: &mut [Peer], i: usize, id: &str, text: &str) {
    let done = wire.intent(peers, i, message(&peers[i], &conv("secret"), id, text));
    assert_eq!(peers[i].engine.status(done), None, "{id} is accepted");
}

fn message(peer: &Peer, c: &ConvId, id: &str, text: &str) -> Intent {
    let account = peer.engine.config().account.clone();
    let message = NewMessage::text(MessageId::new(id).unwrap(), account, text, T0);
    Intent::Send {
        conv: c.clone(),
        message,
    }
}

/// A new engine of `peer`'s account restored from its store (a restart), with its saved
/// device attached and `docs` open; offline.
fn restored_engine(peer: &Peer, docs: &[DocId]) -> ClientEngine {
    let mut engine = ClientEngine::restoring(peer.engine.config().clone());
    engine
        .attach_device(peer.mls_device(), &peer.saved_device())
        .unwrap();
    let _ = confab_core::client::host::carry_out_stored(&mut engine, &peer.store).unwrap();
    for doc in docs {
        engine.open(doc).unwrap();
    }
    let _ = confab_core::client::host::carry_out_stored(&mut engine, &peer.store).unwrap();
    engine
}

/// `peer` started again offline from its store, with `bucket` open.
fn restored(peer: &Peer, bucket: &DocId) -> Peer {
    let engine = restored_engine(peer, std::slice::from_ref(bucket));
    let mut restored = Peer::with_engine(engine, MemoryStore::new());
    restored.device = Some(peer.mls_device());
    restored
}

/// What `peer` shows of message `id` of "secret": its body, or why it cannot be read.
fn shown(peer: &Peer, id: &str) -> Result<String, String> {
    shown_in(peer, &conv("secret"), id)
}

/// What `peer` shows of message `id` of `c`. The host's lookup of one message (`message`,
/// `cannot_open`: what a forward copies) agrees with the timeline.
fn shown_in(peer: &Peer, c: &ConvId, id: &str) -> Result<String, String> {
    let item = peer
        .engine
        .timeline(c)
        .into_iter()
        .find(|i| i.message.id.as_str() == id)
        .expect("the message is in the timeline");
    let message_id = MessageId::new(id).unwrap();
    let (_, looked_up) = peer
        .engine
        .message(c, &message_id)
        .expect("the message is loaded");
    let why = peer.engine.cannot_open(c, &message_id);
    assert_eq!(why, item.undecryptable, "lookup and timeline of {id}");
    assert_eq!(
        looked_up.body, item.message.body,
        "lookup and timeline of {id}"
    );
    assert_eq!(
        item.undecryptable.as_deref(),
        item.unreadable.map(|u| u.words()),
        "the words of {id} are its case's"
    );
    match item.undecryptable {
        Some(reason) => Err(reason),
        None => Ok(item.message.body),
    }
}

/// Peer `i` offline: disconnected, and off every subscription.
fn offline(wire: &mut Wire, peers: &mut [Peer], i: usize) {
    peers[i].online = false;
    peers[i].engine.disconnected();
    for s in wire.subs.values_mut() {
        s.remove(&i);
    }
}

/// Peer `i` online, following "secret" and today's part.
fn follow(wire: &mut Wire, peers: &mut [Peer], i: usize) {
    wire.connect(peers, i);
    let doc = DocId::conv(&tenant(), &conv("secret"));
    peers[i].engine.open(&doc).unwrap();
    wire.pump(peers);
    let bucket = peers[i].engine.bucket_doc(&conv("secret"), wire.now);
    peers[i].engine.open(&bucket).unwrap();
    wire.pump(peers);
}

/// Why `peer` cannot read message `id` of "secret", as a case.
fn unreadable(peer: &Peer, id: &str) -> Option<confab_core::client::Unreadable> {
    peer.engine
        .timeline(&conv("secret"))
        .into_iter()
        .find(|i| i.message.id.as_str() == id)
        .expect("the message is in the timeline")
        .unreadable
}

#[test]
fn messages_are_sealed_and_opened_once_on_each_device() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob", "carol"]);
    send(&mut wire, &mut peers, 0, "m1", "hello bob");
    send(&mut wire, &mut peers, 1, "m2", "hello alice");
    // Both read both (the sender its own as it wrote it).
    for peer in &peers[..2] {
        assert_eq!(shown(peer, "m1"), Ok("hello bob".into()));
        assert_eq!(shown(peer, "m2"), Ok("hello alice".into()));
    }
    // The server holds no plaintext: an empty body and the sealed content.
    let m1 = stored_message(&wire, &bucket, "m1");
    assert_eq!(m1.body, "");
    assert!(m1.sealed.is_some());
    // Carol was not in the group then: she cannot read them.
    assert!(shown(&peers[2], "m1").is_err());

    // Carol joins, reads what follows; then she is removed and reads nothing after.
    wire.intent(&mut peers, 0, add("carol"));
    send(&mut wire, &mut peers, 1, "m3", "welcome carol");
    assert_eq!(shown(&peers[2], "m3"), Ok("welcome carol".into()));
    wire.intent(&mut peers, 0, remove("carol"));
    send(&mut wire, &mut peers, 0, "m4", "carol is gone");
    assert_eq!(shown(&peers[1], "m4"), Ok("carol is gone".into()));
    let locked_out = shown(&peers[2], "m4");
    assert!(locked_out.is_err(), "{locked_out:?}");

    // What bob read is in his store: a restarted bob shows it without decrypting again.
    let again = restored(&peers[1], &bucket);
    assert_eq!(shown(&again, "m1"), Ok("hello bob".into()));
    assert_eq!(shown(&again, "m4"), Ok("carol is gone".into()));
}

fn edit(peer: &Peer, id: &str, body: &str, at: i64) -> Intent {
    Intent::Edit {
        conv: conv("secret"),
        message: MessageId::new(id).unwrap(),
        bucket: peer.engine.bucket_for(&conv("secret"), at),
        body: body.into(),
    }
}

/// Every value `peer`'s store holds, as bytes, concatenated.
/// Message `id` as the server holds it in `bucket`.
fn stored_message(wire: &Wire, bucket: &DocId, id: &str) -> confab_core::model::message::Message {
    let stored = wire.hub.doc(bucket).unwrap();
    confab_core::doc::read::read_message_fields(stored.doc(), &MessageId::new(id).unwrap()).unwrap()
}

fn stored_bytes(peer: &Peer) -> Vec<u8> {
    block_on_ready(peer.store.scan(""))
        .unwrap()
        .unwrap()
        .into_iter()
        .flat_map(|(k, v)| k.into_bytes().into_iter().chain(v))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_sealed_message_is_edited_by_its_author_and_read_edited_everywhere() {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob"]);
    let sent_at = wire.now;
    send(&mut wire, &mut peers, 0, "m1", "first draft zebra");
    assert_eq!(shown(&peers[1], "m1"), Ok("first draft zebra".into()));

    // Two edits in a row: each is sealed over the content the message holds then.
    for (k, body) in ["second draft", "final words"].into_iter().enumerate() {
        wire.now += 1_000;
        let intent = edit(&peers[0], "m1", body, sent_at);
        let id = wire.intent(&mut peers, 0, intent);
        assert_eq!(peers[0].engine.status(id), None, "edit {k} is accepted");
        for peer in &peers {
            assert_eq!(shown(peer, "m1"), Ok(body.into()));
        }
    }
    assert!(wire.rejects.is_empty(), "{:?}", wire.rejects);
    let item = peers[1]
        .engine
        .timeline(&conv("secret"))
        .into_iter()
        .find(|i| i.message.id.as_str() == "m1")
        .unwrap();
    assert_eq!(item.message.edited_at, Some(wire.now));
    // The server holds nothing in the clear; bob's device keeps only what it reads now.
    let stored = wire.hub.doc(&bucket).unwrap();
    let m1 =
        confab_core::doc::read::read_message_fields(stored.doc(), &MessageId::new("m1").unwrap())
            .unwrap();
    assert_eq!(m1.body, "");
    let held = stored_bytes(&peers[1]);
    assert!(contains(&held, b"final words"));
    assert!(!contains(&held, b"zebra") && !contains(&held, b"second draft"));

    // Only the author edits; an edit in the clear is never written.
    let intent = edit(&peers[1], "m1", "bob's words", sent_at);
    let theirs = peers[1].engine.intent(intent, wire.now);
    assert!(
        matches!(&theirs, Err(ClientError::Denied { code, .. }) if code == "not_author"),
        "{theirs:?}"
    );

    // A restarted bob shows the edited content from his store.
    let again = restored(&peers[1], &bucket);
    assert_eq!(shown(&again, "m1"), Ok("final words".into()));
}

#[path = "client_e2ee/blobs.rs"]
mod blobs;
#[path = "client_e2ee/catchup.rs"]
mod catchup;
#[path = "client_e2ee/claims.rs"]
mod claims;
#[path = "client_e2ee/deleted.rs"]
mod deleted;
#[path = "client_e2ee/device_state.rs"]
mod device_state;
#[path = "client_e2ee/directory_down.rs"]
mod directory_down;
#[path = "client_e2ee/epochs.rs"]
mod epochs;
#[path = "client_e2ee/guards.rs"]
mod guards;
#[path = "client_e2ee/healing.rs"]
mod healing;
#[path = "client_e2ee/here.rs"]
mod here;
#[path = "client_e2ee/joining.rs"]
mod joining;
#[path = "client_e2ee/key_changes.rs"]
mod key_changes;
#[path = "client_e2ee/leaving.rs"]
mod leaving;
#[path = "client_e2ee/lives.rs"]
mod lives;
#[path = "client_e2ee/refused_before.rs"]
mod refused_before;
#[path = "client_e2ee/removed.rs"]
mod removed;
#[path = "client_e2ee/search.rs"]
mod search;
#[path = "client_e2ee/sender.rs"]
mod sender;

fn open_support(encrypted: bool) -> Intent {
    Intent::OpenSupport {
        resource: ResourceId::new("flat-7").unwrap(),
        client: acc("carol"),
        owner: acc("alice"),
        encrypted,
    }
}

fn support(encrypted: bool) -> ConvId {
    let flat = ResourceId::new("flat-7").unwrap();
    confab_core::client::apply::support_id(&tenant(), &acc("carol"), &flat, encrypted)
}

/// The client's device opens the encrypted support thread: its creation, its group and the
/// commit adding the owner's device; the owner's device joins from the Welcome, opening it
/// again writes nothing, and a sealed message is read with its stamp in the clear.
#[test]
fn an_encrypted_support_thread_is_opened_with_its_parties_devices() {
    let mut wire = Wire::new();
    let mut peers = vec![phone("carol"), phone("alice")];
    wire.connect(&mut peers, 0);
    wire.connect(&mut peers, 1);
    let c = support(true);
    let doc = DocId::conv(&tenant(), &c);
    let id = wire.intent(&mut peers, 0, open_support(true));
    assert_eq!(peers[0].engine.status(id), None, "accepted");
    let served = wire.hub.conversation(&c).unwrap();
    assert!(served.encrypted());
    assert_eq!(served.kind(), Some(ConvKind::Support));
    assert_eq!(served.mls.map(|m| m.epoch), Some(1), "alice's device added");
    assert!(wire.hub.conversation(&support(false)).is_none());
    peers[1].engine.open(&doc).unwrap();
    wire.pump(&mut peers);
    assert_eq!(peers[1].engine.group_epoch(&c), Some(1));

    let written = wire.hub.changes_after(&doc, 0).len();
    let id = wire.intent(&mut peers, 1, open_support(true));
    let status = peers[1].engine.status(id);
    assert!(
        matches!(status, None | Some(IntentStatus::Accepted)),
        "{status:?}"
    );
    assert_eq!(
        wire.hub.changes_after(&doc, 0).len(),
        written,
        "nothing new"
    );
    assert_eq!(peers[1].engine.group_epoch(&c), Some(1), "no second group");

    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    for peer in peers.iter_mut() {
        peer.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    let m = message(&peers[0], &c, "m1", "is it free?");
    let sent = wire.intent(&mut peers, 0, m);
    assert_eq!(peers[0].engine.status(sent), None);
    assert_eq!(shown_in(&peers[1], &c, "m1"), Ok("is it free?".into()));
    let m1 = stored_message(&wire, &bucket, "m1");
    assert_eq!(m1.body, "");
    assert!(m1.sealed.is_some());
    assert_eq!(m1.stamp.sender_role, Some(SenderRole::Client));
}

/// The client and the owner open the encrypted support thread offline, each with a message:
/// the first group the server takes is the group, the other's is `already_created`, that
/// intent ends accepted, its device drops its group and joins the winner's, and both read
/// both messages.
#[test]
fn two_devices_opening_an_encrypted_support_thread_offline_end_in_one_group() {
    let mut wire = Wire::new();
    let mut peers = vec![phone("carol"), phone("alice")];
    for i in 0..2 {
        wire.connect(&mut peers, i);
        peers[i].online = false;
        peers[i].engine.disconnected();
    }
    let c = support(true);
    let mut ids = Vec::new();
    for (i, text) in [(0, "carol, offline"), (1, "alice, offline")] {
        let open = peers[i]
            .engine
            .intent(open_support(true), wire.now)
            .unwrap();
        let m = message(&peers[i], &c, &format!("m{i}"), text);
        ids.push((i, open, peers[i].engine.intent(m, wire.now).unwrap()));
    }
    wire.pump(&mut peers);
    for i in 0..2 {
        wire.connect(&mut peers, i);
    }
    for (i, open, sent) in ids {
        assert_eq!(
            peers[i].engine.status(open),
            None,
            "peer {i}'s open ends accepted"
        );
        assert_eq!(
            peers[i].engine.status(sent),
            None,
            "peer {i}'s message is accepted"
        );
    }
    // The loser's group, then its commit (built on that group) with it.
    assert_eq!(wire.rejects[0], "already_created", "{:?}", wire.rejects);
    assert!(
        wire.rejects[1..].iter().all(|r| r == "missing_dependency"),
        "{:?}",
        wire.rejects
    );
    let bucket = peers[0].engine.bucket_doc(&c, wire.now);
    for peer in peers.iter_mut() {
        peer.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    for peer in &peers {
        assert_eq!(peer.engine.group_epoch(&c), Some(1));
        assert_eq!(shown_in(peer, &c, "m0"), Ok("carol, offline".into()));
        assert_eq!(shown_in(peer, &c, "m1"), Ok("alice, offline".into()));
    }
}
