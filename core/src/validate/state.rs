//! The accepted state of one document, as the validator needs it.

use std::collections::{HashMap, HashSet};

use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};

use crate::doc::{self, read, DocError};
use crate::ids::{DocId, DocTarget};
use crate::model::conversation::Conversation;
use crate::policy::Effect;

/// A document holding only accepted changes, with each actor's progress (last seq and last
/// op counter), which Automerge keeps to itself.
///
/// Accepted changes of a message bucket may be *staged* instead of applied: Automerge's
/// apply has a high fixed cost per call, so a server applies a whole batch in one call.
/// Validation sees staged changes through an overlay (hashes, op counters, actor progress)
/// and through their [`Footprint`]; `validate_staged` applies them first when a change
/// touches what they wrote.
#[derive(Debug, Clone)]
pub struct AcceptedDoc {
    id: DocId,
    doc: Automerge,
    progress: HashMap<ActorId, (u64, u64)>,
    staged: Staged,
    /// Messages of the applied document, counted once after a load or a change applied
    /// from elsewhere, and moved by the posts of staged changes: the count is O(messages)
    /// (Automerge counts a map's keys by scanning them) and is asked on every post (bucket
    /// parts' limits), which made acceptance O(n²) over a part's life.
    applied_messages: MessageCount,
    /// The document's fixed actors, each a SHA-256 of its id, asked of every change.
    fixed: FixedActors,
}

/// The actors no account may write with, derived from the document's id (`doc`).
#[derive(Debug, Clone)]
struct FixedActors {
    genesis: ActorId,
    cut: ActorId,
    creation: ActorId,
}

impl FixedActors {
    fn of(id: &DocId) -> Self {
        FixedActors {
            genesis: doc::genesis_actor(id),
            cut: doc::cut::cut_actor(id),
            creation: doc::creation_actor(id),
        }
    }
}

/// A count kept beside the document, unknown once the document changed.
#[derive(Debug)]
struct MessageCount(std::sync::atomic::AtomicUsize);

impl MessageCount {
    const UNKNOWN: usize = usize::MAX;

    fn get(&self, count: impl FnOnce() -> usize) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        match self.0.load(Relaxed) {
            Self::UNKNOWN => {
                let counted = count();
                self.0.store(counted, Relaxed);
                counted
            }
            known => known,
        }
    }

    /// The count, if it is known.
    fn known(&self) -> Option<usize> {
        let known = self.0.load(std::sync::atomic::Ordering::Relaxed);
        (known != Self::UNKNOWN).then_some(known)
    }

    /// Knows the count again (`None`: forgets it).
    fn set(&self, count: Option<usize>) {
        self.0.store(
            count.unwrap_or(Self::UNKNOWN),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn forget(&self) {
        self.0
            .store(Self::UNKNOWN, std::sync::atomic::Ordering::Relaxed);
    }

    fn unknown() -> Self {
        MessageCount(std::sync::atomic::AtomicUsize::new(Self::UNKNOWN))
    }
}

impl Clone for MessageCount {
    fn clone(&self) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        MessageCount(std::sync::atomic::AtomicUsize::new(self.0.load(Relaxed)))
    }
}

/// Accepted changes not yet applied to the Automerge document.
#[derive(Debug, Clone, Default)]
struct Staged {
    changes: Vec<Change>,
    /// What each staged change wrote, in the same order (to rebuild `wrote` when the tail
    /// is taken back).
    footprints: Vec<Footprint>,
    /// max op of each staged change, for dependency and Lamport checks.
    max_ops: HashMap<ChangeHash, u64>,
    /// What the staged changes wrote.
    wrote: Footprint,
    /// Each actor's progress (last seq, last op) over the staged changes only.
    progress: HashMap<ActorId, (u64, u64)>,
}

/// The parts of a message bucket a change reads or writes: message ids and reaction keys.
/// In a bucket every other object is a genesis map that never changes, so a change that
/// neither reads nor writes anything the staged changes wrote validates the same with or
/// without them applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Messages whose fields the change reads (a reaction checks its message exists).
    pub(super) read_messages: HashSet<String>,
    /// Messages the change creates or whose fields it writes.
    pub(super) wrote_messages: HashSet<String>,
    /// Reaction keys it writes.
    pub(super) reactions: HashSet<String>,
    /// `<message>|<account>` pairs whose reactions it writes (the per-member cap counts
    /// them all).
    pub(super) reactors: HashSet<String>,
    /// Messages the change posts (a bucket part's size counts them).
    pub(super) created: usize,
}

impl Footprint {
    /// Whether a change with this footprint depends on what `written` wrote.
    fn depends_on(&self, written: &Footprint) -> bool {
        !self.wrote_messages.is_disjoint(&written.wrote_messages)
            || !self.read_messages.is_disjoint(&written.wrote_messages)
            || !self.reactions.is_disjoint(&written.reactions)
            || !self.reactors.is_disjoint(&written.reactors)
    }

    /// Messages the change posts.
    pub fn created(&self) -> usize {
        self.created
    }

    /// Keeps what `other` wrote (reads do not matter to later changes).
    fn absorb_writes(&mut self, other: Footprint) {
        self.created += other.created;
        self.wrote_messages.extend(other.wrote_messages);
        self.reactions.extend(other.reactions);
        self.reactors.extend(other.reactors);
    }
}

impl AcceptedDoc {
    /// A document with its genesis only.
    pub fn new(id: DocId) -> Result<Self, DocError> {
        let doc = doc::genesis(&id)?;
        let mut out = AcceptedDoc {
            fixed: FixedActors::of(&id),
            id,
            doc,
            progress: HashMap::new(),
            staged: Staged::default(),
            applied_messages: MessageCount::unknown(),
        };
        out.index_all();
        Ok(out)
    }

    /// Loads saved bytes; they must contain this document's genesis. O(history) once.
    pub fn load(id: DocId, bytes: &[u8]) -> Result<Self, DocError> {
        let doc = Automerge::load(bytes)?;
        if doc.get_change_by_hash(&doc::genesis_hash(&id)?).is_none() {
            return Err(DocError::Missing("genesis of this document id"));
        }
        let mut out = AcceptedDoc {
            fixed: FixedActors::of(&id),
            id,
            doc,
            progress: HashMap::new(),
            staged: Staged::default(),
            applied_messages: MessageCount::unknown(),
        };
        out.index_all();
        Ok(out)
    }

    fn index_all(&mut self) {
        for meta in self.doc.get_changes_meta(&[]) {
            let entry = self
                .progress
                .entry(meta.actor.into_owned())
                .or_insert((0, 0));
            entry.0 = entry.0.max(meta.seq);
            entry.1 = entry.1.max(meta.max_op);
        }
    }

    pub fn id(&self) -> &DocId {
        &self.id
    }

    /// `doc::genesis_actor` of this document.
    pub fn genesis_actor(&self) -> &ActorId {
        &self.fixed.genesis
    }

    /// `doc::cut::cut_actor` of this document.
    pub fn cut_actor(&self) -> &ActorId {
        &self.fixed.cut
    }

    /// `doc::creation_actor` of this document.
    pub fn creation_actor(&self) -> &ActorId {
        &self.fixed.creation
    }

    /// The applied state: without staged changes (see [`AcceptedDoc::apply_staged`]).
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The max op of an accepted change (applied or staged); `None` if it is not accepted.
    pub fn accepted_max_op(&self, hash: &ChangeHash) -> Option<u64> {
        self.doc
            .get_change_meta_by_hash(hash)
            .map(|m| m.max_op)
            .or_else(|| self.staged.max_ops.get(hash).copied())
    }

    /// Whether accepted changes wait to be applied.
    pub fn has_staged(&self) -> bool {
        !self.staged.changes.is_empty()
    }

    /// How many accepted changes wait to be applied.
    pub fn staged_len(&self) -> usize {
        self.staged.changes.len()
    }

    pub(super) fn depends_on_staged(&self, footprint: &Footprint) -> bool {
        footprint.depends_on(&self.staged.wrote)
    }

    /// (last seq, last op counter) of `actor` in this document; (0, 0) if it never wrote.
    pub fn actor_progress(&self, actor: &ActorId) -> (u64, u64) {
        let applied = self.progress.get(actor).copied().unwrap_or((0, 0));
        match self.staged.progress.get(actor) {
            Some(&(seq, op)) => (applied.0.max(seq), applied.1.max(op)),
            None => applied,
        }
    }

    fn note_progress(&mut self, change: &Change) {
        note(&mut self.progress, change);
    }

    /// The hashes of the last `n` staged changes, oldest first; `None` if fewer are staged.
    pub fn staged_tail(&self, n: usize) -> Option<impl Iterator<Item = ChangeHash> + '_> {
        let len = self.staged.changes.len();
        (n <= len).then(|| self.staged.changes[len - n..].iter().map(Change::hash))
    }

    /// Takes back the last `n` staged changes (they were accepted here but another node
    /// committed first); what the rest wrote and each actor's progress are rebuilt from
    /// the rest, O(staged).
    pub fn unstage_tail(&mut self, n: usize) {
        let keep = self.staged.changes.len().saturating_sub(n);
        for change in self.staged.changes.drain(keep..) {
            self.staged.max_ops.remove(&change.hash());
        }
        self.staged.footprints.truncate(keep);
        self.staged.wrote = Footprint::default();
        for footprint in &self.staged.footprints {
            self.staged.wrote.absorb_writes(footprint.clone());
        }
        self.staged.progress.clear();
        for change in &self.staged.changes {
            note(&mut self.staged.progress, change);
        }
    }

    /// How many messages the document holds, staged ones included (a bucket part's size).
    pub fn message_count(&self) -> usize {
        let applied = self
            .applied_messages
            .get(|| doc::read::message_count(&self.doc));
        applied + self.staged.wrote.created
    }

    /// Applies a change that `validate` accepted (after any staged ones).
    pub fn apply(&mut self, change: Change) -> Result<(), DocError> {
        self.apply_staged()?;
        self.note_progress(&change);
        self.applied_messages.forget();
        self.doc.apply_changes([change])?;
        Ok(())
    }

    /// Applies many accepted changes in one Automerge call (loading stored history).
    pub fn apply_all(&mut self, changes: Vec<Change>) -> Result<(), DocError> {
        self.apply_staged()?;
        for change in &changes {
            self.note_progress(change);
        }
        self.applied_messages.forget();
        self.doc.apply_changes(changes)?;
        Ok(())
    }

    /// Keeps a change that `validate_staged` accepted for the next [`apply_staged`]; only
    /// message buckets stage, other documents apply at once.
    ///
    /// [`apply_staged`]: AcceptedDoc::apply_staged
    pub fn stage(&mut self, change: Change, footprint: Footprint) -> Result<(), DocError> {
        if !matches!(self.id.target(), DocTarget::Msgs(..)) {
            return self.apply(change);
        }
        note(&mut self.staged.progress, &change);
        self.staged.max_ops.insert(change.hash(), change.max_op());
        self.staged.wrote.absorb_writes(footprint.clone());
        self.staged.footprints.push(footprint);
        self.staged.changes.push(change);
        Ok(())
    }

    /// Applies every staged change in one Automerge call. On an error the staged changes
    /// are gone and the document holds only what was applied before: reload it.
    pub fn apply_staged(&mut self) -> Result<(), DocError> {
        if self.staged.changes.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut self.staged);
        let known_before = self.applied_messages.known();
        for (actor, (seq, op)) in staged.progress {
            let entry = self.progress.entry(actor).or_insert((0, 0));
            entry.0 = entry.0.max(seq);
            entry.1 = entry.1.max(op);
        }
        // A staged post was validated to make a key no message held (no replacing, no
        // conflict, a second post of one id validated again once the first is applied), so
        // the count moves by what was staged and is never recounted per frame.
        self.applied_messages.forget();
        self.doc.apply_changes(staged.changes)?;
        self.applied_messages
            .set(known_before.map(|n| n + staged.wrote.created));
        Ok(())
    }

    /// Saves the applied document (compacted columnar form); staged changes are not in it,
    /// so a caller that stages calls `apply_staged` first.
    pub fn save(&self) -> Vec<u8> {
        debug_assert!(!self.has_staged(), "saving a document with staged changes");
        self.doc.save()
    }
}

/// Brings a cached conversation up to date after changes another node accepted, re-reading
/// only the parts their written paths (`written_paths`) touched: a member, a read marker,
/// info, settings, pins or lifecycle. Anything else (a creation) re-reads it all. Returns
/// the members whose entries were re-read, each with its entry before.
pub fn refresh_by_paths(
    conv: &mut Conversation,
    doc: &Automerge,
    paths: &[Vec<String>],
) -> Vec<(
    crate::ids::AccountId,
    Option<crate::model::conversation::Member>,
)> {
    use doc::schema::keys;
    let members = read::get_map(doc, &automerge::ROOT, keys::MEMBERS);
    let reads = read::get_map(doc, &automerge::ROOT, keys::READS);
    let mut touched = Vec::new();
    let mut everything = conv.meta.is_none();
    let (mut info, mut settings, mut pins, mut lifecycle) = (false, false, false, false);
    for path in paths {
        match path.first().map(String::as_str) {
            Some(keys::MEMBERS) => {
                let Some(account) = path.get(1).and_then(|a| crate::ids::AccountId::new(a).ok())
                else {
                    everything = true;
                    continue;
                };
                // A delivery marker is not part of the member entry the policy reads.
                if path.get(2).map(String::as_str) == Some(keys::DELIVERED) {
                    let marker = members
                        .as_ref()
                        .and_then(|obj| read::read_delivered_of(doc, obj, &account));
                    if let Some(marker) = marker {
                        conv.delivered.insert(account, marker);
                    }
                    continue;
                }
                if !touched.contains(&account) {
                    touched.push(account);
                }
            }
            Some(keys::READS) => {
                let Some(account) = path.get(1).and_then(|a| crate::ids::AccountId::new(a).ok())
                else {
                    continue;
                };
                let marker = reads
                    .as_ref()
                    .and_then(|obj| read::get_str(doc, obj, account.as_str()))
                    .and_then(|m| crate::ids::MessageId::new(m).ok());
                if let Some(marker) = marker {
                    conv.reads.insert(account, marker);
                }
            }
            Some(keys::INFO) => info = true,
            Some(keys::SETTINGS) => settings = true,
            Some(keys::PINS) => pins = true,
            Some(keys::LIFECYCLE) => lifecycle = true,
            Some(keys::MLS) => conv.mls = read::read_mls(doc),
            _ => everything = true,
        }
    }
    if everything {
        let fresh = read::read_conversation(doc, conv.id.clone());
        let mut old = std::mem::replace(conv, fresh).members;
        let mut out: Vec<_> = conv
            .members
            .keys()
            .map(|a| (a.clone(), old.remove(a)))
            .collect();
        out.extend(old.into_iter().map(|(a, m)| (a, Some(m))));
        return out;
    }
    let mut out = Vec::with_capacity(touched.len());
    for account in touched {
        let before = match members
            .as_ref()
            .and_then(|obj| read::read_member(doc, obj, &account))
        {
            Some(member) => conv.members.insert(account.clone(), member),
            None => conv.members.remove(&account),
        };
        out.push((account, before));
    }
    if info {
        conv.info = read::read_info(doc);
    }
    if settings {
        conv.settings = read::read_settings(
            doc,
            conv.kind()
                .unwrap_or(crate::model::conversation::ConvKind::Group),
        );
    }
    if pins {
        conv.pins = read::read_pins(doc);
    }
    if lifecycle {
        conv.lifecycle = read::read_lifecycle(doc);
    }
    out
}

fn note(progress: &mut HashMap<ActorId, (u64, u64)>, change: &Change) {
    let entry = progress.entry(change.actor_id().clone()).or_insert((0, 0));
    entry.0 = entry.0.max(change.seq());
    entry.1 = entry.1.max(change.max_op());
}

/// Brings a cached conversation up to date after an accepted change to its document,
/// re-reading only what the effects touched (O(change), not O(members)).
pub fn refresh_conversation(conv: &mut Conversation, doc: &Automerge, effects: &[Effect]) {
    let members = read::get_map(doc, &automerge::ROOT, doc::schema::keys::MEMBERS);
    let reads = read::get_map(doc, &automerge::ROOT, doc::schema::keys::READS);
    for effect in effects {
        match effect {
            Effect::AddMember { after: m, .. } | Effect::UpdateMember { after: m, .. } => {
                if let Some(member) = members
                    .as_ref()
                    .and_then(|obj| read::read_member(doc, obj, &m.account))
                {
                    conv.members.insert(m.account.clone(), member);
                }
            }
            Effect::TransferOwnership(t) => {
                for account in [&t.from.after.account, &t.to.after.account] {
                    if let Some(member) = members
                        .as_ref()
                        .and_then(|obj| read::read_member(doc, obj, account))
                    {
                        conv.members.insert(account.clone(), member);
                    }
                }
            }
            Effect::SetInfo { .. } => conv.info = read::read_info(doc),
            Effect::SetSetting { .. } => {
                conv.settings = read::read_settings(
                    doc,
                    conv.kind()
                        .unwrap_or(crate::model::conversation::ConvKind::Group),
                )
            }
            Effect::Pin { .. } | Effect::Unpin { .. } => conv.pins = read::read_pins(doc),
            Effect::MarkRead { account } => {
                let marker = reads
                    .as_ref()
                    .and_then(|obj| read::get_str(doc, obj, account.as_str()))
                    .and_then(|m| crate::ids::MessageId::new(m).ok());
                if let Some(marker) = marker {
                    conv.reads.insert(account.clone(), marker);
                }
            }
            Effect::MarkDelivered { account } => {
                if let Some(marker) = members
                    .as_ref()
                    .and_then(|obj| read::read_delivered_of(doc, obj, account))
                {
                    conv.delivered.insert(account.clone(), marker);
                }
            }
            Effect::MlsInit { .. } | Effect::MlsCommit { .. } => conv.mls = read::read_mls(doc),
            Effect::SetLifecycle { .. } | Effect::SetLead { .. } | Effect::NewRequest { .. } => {
                conv.lifecycle = read::read_lifecycle(doc)
            }
            _ => {}
        }
    }
    // Creation (including the deterministic kind, which carries no effects) reads it all.
    if conv.meta.is_none()
        || effects
            .iter()
            .any(|e| matches!(e, Effect::CreateConversation(_)))
    {
        *conv = read::read_conversation(doc, conv.id.clone());
    }
}
