//! The server's acceptance in memory: one [`Acceptor`] per unit, driven the way the server
//! drives it, with an in-memory change log per document instead of storage. Every accepted
//! change counts as committed at once. Tests and benchmarks use it directly.

use std::collections::HashMap;

use automerge::{ActorId, Change, ChangeHash};

use crate::accept::{
    Acceptor, AcceptorConfig, Decision, Need, Step, StoredDoc, Submission, UnitId,
};
use crate::e2ee::{DeviceIdentity, DirectoryAnswer, DirectoryAsk, DirectoryEntry};
use crate::ids::{AccountId, ConvId, DocId, TenantId};
use crate::model::conversation::Conversation;
use crate::policy::{Author, Effect, ParentMessage, Standing};
use crate::validate::{RejectCode, Rejection};

/// A change the hub accepted (or had accepted before): its hash and per-document seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub hash: ChangeHash,
    pub seq: u64,
}

/// The accepted changes of one document, in seq order (seq `i + 1` at index `i`).
#[derive(Debug, Default)]
struct Log {
    hashes: Vec<ChangeHash>,
    seqs: HashMap<ChangeHash, u64>,
}

/// Accepted state of a tenant's documents, all in memory.
#[derive(Debug, Default)]
pub struct Hub {
    units: HashMap<UnitId, Acceptor>,
    /// Which unit holds each conversation (conversations are looked up by id alone).
    conv_units: HashMap<ConvId, UnitId>,
    logs: HashMap<DocId, Log>,
    bindings: HashMap<ActorId, AccountId>,
    /// The MLS directory: registered devices and the signature keys bound to them.
    devices: HashMap<DeviceIdentity, DirectoryEntry>,
    /// Each tenant's removal generation, and the generation each removed device took.
    removals: HashMap<TenantId, u64>,
    removed_gen: HashMap<DeviceIdentity, u64>,
}

/// Why the hub's directory did not register a device (the server's upload refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterRefused {
    /// The device is bound to another signature key.
    SignatureKeyMismatch,
    /// The device was removed.
    Removed,
}

/// Nothing leaves the hub's memory: it has no storage to reload from.
const CONFIG: AcceptorConfig = AcceptorConfig {
    urls: crate::model::url::UrlRule::HttpsOnly,
    max_buckets: usize::MAX,
};

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// The accepted document, if it was ever loaded (something was submitted to it or to
    /// its conversation's buckets).
    pub fn doc(&self, id: &DocId) -> Option<&crate::validate::AcceptedDoc> {
        self.units.get(&UnitId::of(id)).and_then(|a| a.doc(id))
    }

    /// The cached typed conversation.
    pub fn conversation(&self, id: &ConvId) -> Option<&Conversation> {
        self.conv_units
            .get(id)
            .and_then(|unit| self.units.get(unit))
            .and_then(Acceptor::conversation)
    }

    /// May `account` read `doc`: the rule the server's reads (subscriptions, REST) apply,
    /// with the account's standing in a thread's parent.
    pub fn may_read(
        &self,
        doc: &DocId,
        account: &AccountId,
        service: bool,
    ) -> Result<(), crate::accept::ReadDenied> {
        let conv = doc.conv_id().and_then(|c| self.conversation(c));
        let parent = conv
            .and_then(|c| c.meta.as_ref())
            .and_then(|m| m.thread.as_ref())
            .map(|link| self.standing(&link.parent, account).0);
        crate::accept::may_read(conv, doc, account, service, parent)
    }

    pub fn binding(&self, actor: &ActorId) -> Option<&AccountId> {
        self.bindings.get(actor)
    }

    /// Registers `device` in the directory with `signature_key`, as its first key-package
    /// upload does on the server (trust on first use; the same key again is a no-op).
    pub fn register_device(
        &mut self,
        device: DeviceIdentity,
        signature_key: &[u8],
    ) -> Result<(), RegisterRefused> {
        let entry = self
            .devices
            .entry(device.clone())
            .or_insert_with(|| DirectoryEntry {
                device,
                signature_key: signature_key.to_vec(),
                removed: false,
            });
        if entry.removed {
            Err(RegisterRefused::Removed)
        } else if entry.signature_key != signature_key {
            Err(RegisterRefused::SignatureKeyMismatch)
        } else {
            Ok(())
        }
    }

    /// Marks `device` removed in the directory, at its tenant's next removal generation the
    /// first time; `false` if it was never registered.
    pub fn remove_device(&mut self, device: &DeviceIdentity) -> bool {
        let Some(entry) = self.devices.get_mut(device) else {
            return false;
        };
        if !entry.removed {
            entry.removed = true;
            let generation = self.removals.entry(device.tenant.clone()).or_default();
            *generation += 1;
            self.removed_gen.insert(device.clone(), *generation);
        }
        true
    }

    /// The directory's answer to `ask` in `tenant`, as the store gives it: the entries of
    /// the accounts asked and of the devices removed after `ask.removed_after`.
    pub fn directory_of(&self, tenant: &TenantId, ask: &DirectoryAsk) -> DirectoryAnswer {
        let removed_since = |d: &DeviceIdentity| {
            ask.removed_after
                .zip(self.removed_gen.get(d))
                .is_some_and(|(after, at)| *at > after)
        };
        let mut entries: Vec<DirectoryEntry> = self
            .devices
            .values()
            .filter(|e| {
                &e.device.tenant == tenant
                    && (ask.accounts.contains(&e.device.account) || removed_since(&e.device))
            })
            .cloned()
            .collect();
        entries.sort_by(|a, b| a.device.cmp(&b.device));
        DirectoryAnswer {
            entries,
            generation: self.removals.get(tenant).copied().unwrap_or_default(),
        }
    }

    /// Validates and, when allowed, applies one change. Resubmission acks with the old seq.
    pub fn submit(
        &mut self,
        id: &DocId,
        author: &Author,
        change: Change,
        now_ms: i64,
    ) -> Result<(Ack, Vec<Effect>), Rejection> {
        let hash = change.hash();
        let failed = |reason: String| Rejection::new(Some(hash), RejectCode::Malformed, reason);
        let unit = UnitId::of(id);
        if let UnitId::Conv(_, conv) = &unit {
            self.conv_units
                .entry(conv.clone())
                .or_insert_with(|| unit.clone());
        }
        // Out of the map while it works: parents are answered from the other units.
        let mut acceptor = self
            .units
            .remove(&unit)
            .unwrap_or_else(|| Acceptor::new(unit.clone(), CONFIG));
        let mut sub = Submission::from_change(id, author, change, now_ms);
        let decision = loop {
            match acceptor.step(&mut sub) {
                Step::Done(decision) => break decision,
                Step::Need(Need::Doc(doc)) => {
                    // Loaded once and never evicted: only ever the genesis.
                    if let Err(e) = acceptor.load(doc, StoredDoc::default()) {
                        break Decision::Failed(e);
                    }
                }
                Step::Need(Need::Binding(actor)) => {
                    let account = self.bindings.get(&actor).cloned();
                    acceptor.answer_binding(&mut sub, actor, account);
                }
                Step::Need(Need::Parent(parent)) => {
                    let found = self.conversation(&parent).cloned();
                    sub.answer_parent(parent, found);
                }
                Step::Need(Need::SeqOf(hash)) => {
                    let seq = self.logs.get(id).and_then(|l| l.seqs.get(&hash)).copied();
                    sub.answer_seq(seq);
                }
                Step::Need(Need::Standing { parent, account }) => {
                    let (standing, seq) = self.standing(&parent, &account);
                    acceptor.answer_standing(account, standing, seq);
                }
                Step::Need(Need::ParentMessage { parent, message }) => {
                    sub.answer_parent_message(self.find_message(id.tenant(), &parent, &message));
                }
                Step::Need(Need::MessageBucket { message }) => {
                    sub.answer_message_bucket(self.bucket_of(id, &message));
                }
                Step::Need(Need::Devices(ask)) => {
                    sub.answer_devices(self.directory_of(id.tenant(), &ask));
                }
                Step::Need(Need::Encrypted(convs)) => {
                    let encrypted = convs
                        .into_iter()
                        .filter(|c| self.conversation(c).is_some_and(Conversation::encrypted))
                        .collect();
                    sub.answer_encrypted(encrypted);
                }
            }
        };
        let mut follow_up = Vec::new();
        let outcome = match decision {
            Decision::Accepted(accepted) => {
                acceptor.committed(id, accepted.seq);
                if accepted.moves_policy {
                    // Threads below may have lost members: their caches are asked again.
                    for other in self.units.values_mut() {
                        other.parent_moved();
                    }
                }
                if let Some(actor) = accepted.new_binding {
                    self.bindings.insert(actor, author.account.clone());
                }
                let log = self.logs.entry(id.clone()).or_default();
                log.hashes.push(accepted.hash);
                log.seqs.insert(accepted.hash, accepted.seq);
                // What the change calls for is submitted right after it (`accept::follow`).
                follow_up = acceptor
                    .follow_up(id, author, &accepted.effects, now_ms)
                    .unwrap_or_default();
                // One change at a time: readers of `doc` see it at once.
                match acceptor.apply_staged(0) {
                    Ok(()) => Ok((
                        Ack {
                            hash: accepted.hash,
                            seq: accepted.seq,
                        },
                        accepted.effects,
                    )),
                    Err(e) => Err(failed(e.to_string())),
                }
            }
            Decision::AlreadyAccepted { hash, seq, .. } => Ok((Ack { hash, seq }, Vec::new())),
            Decision::Rejected(rejection) => Err(rejection),
            Decision::Failed(e) => Err(failed(e.to_string())),
        };
        self.units.insert(unit, acceptor);
        for next in follow_up {
            // Decided like any change; a refusal leaves the accepted change as it is.
            if let Ok(change) = Change::try_from(&next.bytes[..]) {
                let _ = self.submit(&next.doc, author, change, now_ms);
            }
        }
        outcome
    }

    /// Where `account` stands in `conv` as a thread of it sees it (active there and in
    /// every conversation above it), with `conv`'s policy version.
    fn standing(&self, conv: &ConvId, account: &AccountId) -> (Standing, u64) {
        let seq = self
            .conv_units
            .get(conv)
            .and_then(|unit| self.units.get(unit))
            .map_or(0, Acceptor::policy_seq);
        let mut at = conv.clone();
        for _ in 0..=crate::limits::SUBROOM_DEPTH_MAX {
            let Some(c) = self.conversation(&at).filter(|c| c.meta.is_some()) else {
                return (Standing::Out(None), seq);
            };
            let here = Standing::of(c.member(account));
            match c.meta.as_ref().and_then(|m| m.thread.as_ref()) {
                Some(link) if here.is_active() => at = link.parent.clone(),
                _ => return (here, seq),
            }
        }
        (Standing::Out(None), seq)
    }

    /// Whether `message` is in one of `conv`'s buckets, and not deleted.
    fn find_message(
        &self,
        tenant: &crate::ids::TenantId,
        conv: &ConvId,
        message: &crate::ids::MessageId,
    ) -> ParentMessage {
        let found = self
            .logs
            .keys()
            .filter(|id| id.tenant() == tenant)
            .filter(|id| matches!(id.target(), crate::ids::DocTarget::Msgs(c, _) if c == conv))
            .filter_map(|id| self.doc(id))
            .find_map(|doc| crate::doc::read::read_message_fields(doc.doc(), message));
        match found {
            Some(m) if m.deleted_at.is_some() => ParentMessage::Deleted,
            Some(_) => ParentMessage::Present,
            None => ParentMessage::Missing,
        }
    }

    /// The bucket part of `doc`'s conversation that holds `message`.
    fn bucket_of(
        &self,
        doc: &DocId,
        message: &crate::ids::MessageId,
    ) -> Option<crate::ids::Bucket> {
        let crate::ids::DocTarget::Msgs(conv, _) = doc.target() else {
            return None;
        };
        self.buckets(doc.tenant(), conv).into_iter().find(|b| {
            self.doc(&DocId::msgs(doc.tenant(), conv, *b))
                .is_some_and(|d| crate::doc::read::read_message_fields(d.doc(), message).is_some())
        })
    }

    /// The bucket parts of a conversation that hold accepted changes, newest first (what
    /// the server's `buckets` frame lists).
    pub fn buckets(&self, tenant: &crate::ids::TenantId, conv: &ConvId) -> Vec<crate::ids::Bucket> {
        let mut parts: Vec<crate::ids::Bucket> = self
            .logs
            .iter()
            .filter(|(id, log)| id.tenant() == tenant && !log.hashes.is_empty())
            .filter_map(|(id, _)| match id.target() {
                crate::ids::DocTarget::Msgs(c, b) if c == conv => Some(*b),
                _ => None,
            })
            .collect();
        parts.sort_unstable_by(|a, b| b.cmp(a));
        parts
    }

    /// Accepted changes of a document after `seq`, in order (catch-up).
    pub fn changes_after(&self, id: &DocId, seq: u64) -> Vec<(u64, Change)> {
        let (Some(log), Some(doc)) = (self.logs.get(id), self.doc(id)) else {
            return Vec::new();
        };
        let from = usize::try_from(seq).unwrap_or(usize::MAX);
        log.hashes
            .iter()
            .zip(1u64..)
            .skip(from)
            .filter_map(|(h, s)| {
                automerge::ReadDoc::get_change_by_hash(doc.doc(), h).map(|c| (s, c))
            })
            .collect()
    }
}
