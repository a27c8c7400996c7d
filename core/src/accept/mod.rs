//! The acceptor of one serialization unit, sans-io: a conversation (its `conv` document and
//! message buckets) or an account (profile and private documents).
//!
//! The host hands it a [`Submission`] and calls [`Acceptor::step`] until it returns a
//! [`Decision`]; in between, the acceptor says what it [`Need`]s as data (a document to
//! load, an actor binding, a thread's parent, a stored seq) and the host answers. The
//! acceptor owns everything acceptance decides: the loaded documents with their staged
//! changes, per-document seqs, the cached typed conversation, actor bindings, slow mode,
//! the cheap refusal of outsiders, who may read what, and which buckets may leave memory.
//! The host owns storage, commits, clocks and answers: it tells the acceptor what became
//! durable ([`Acceptor::committed`]) and resets it when a commit failed.

mod access;
mod answer;
mod docs;
mod follow;
mod mls;
mod parent;
mod submission;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use automerge::{ActorId, Automerge, ChangeHash};

pub use access::{may_read, member_may_read, ReadDenied};
pub use docs::{DocView, StoredDoc, Tail};
pub use follow::{host_actor, FollowUp};
pub use submission::{AcceptedChange, Decision, Need, Step, Submission};

use self::docs::Loaded;
use crate::doc::DocError;
use crate::ids::{AccountId, ConvId, DocId, DocTarget, TenantId};
use crate::model::conversation::Conversation;
use crate::model::url::UrlRule;
use crate::policy::{DenyCode, Effect, Standing};
use crate::validate::{
    self, refresh_conversation, AcceptedDoc, Env, RejectCode, Rejection, Verdict,
};

/// A serialization unit: every change to its documents is decided in one order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnitId {
    Conv(TenantId, ConvId),
    Account(TenantId, AccountId),
}

impl UnitId {
    /// The unit `doc` belongs to.
    pub fn of(doc: &DocId) -> Self {
        match doc.target() {
            DocTarget::Conv(c) | DocTarget::Msgs(c, _) => {
                UnitId::Conv(doc.tenant().clone(), c.clone())
            }
            DocTarget::Profile(a) | DocTarget::Private(a) => {
                UnitId::Account(doc.tenant().clone(), a.clone())
            }
        }
    }

    pub fn tenant(&self) -> &TenantId {
        match self {
            UnitId::Conv(t, _) | UnitId::Account(t, _) => t,
        }
    }

    /// Whether `doc` belongs to this unit (no allocation: called for every change).
    pub fn holds(&self, doc: &DocId) -> bool {
        match (self, doc.target()) {
            (UnitId::Conv(t, c), DocTarget::Conv(d) | DocTarget::Msgs(d, _)) => {
                t == doc.tenant() && c == d
            }
            (UnitId::Account(t, a), DocTarget::Profile(b) | DocTarget::Private(b)) => {
                t == doc.tenant() && a == b
            }
            _ => false,
        }
    }
}

/// Why the acceptor could not do what the host asked (never a verdict on a change).
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("{0} does not belong to this unit")]
    OtherUnit(DocId),
    #[error("loading {doc}: {source}")]
    Load {
        doc: DocId,
        /// Boxed: a large error would make every `Result` of the acceptor large.
        #[source]
        source: Box<DocError>,
    },
    #[error("stored change of {doc}: {reason}")]
    StoredChange { doc: DocId, reason: String },
    #[error("{0} is not loaded")]
    NotLoaded(DocId),
    /// An Automerge call failed on accepted state: memory no longer matches what was
    /// accepted. The acceptor refuses everything until [`Acceptor::reset`].
    #[error("{0}")]
    Broken(String),
    #[error("the submission was already decided")]
    Finished,
}

/// An account whose membership stopped being active through changes another node
/// committed ([`Acceptor::absorb`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivated {
    pub account: AccountId,
    pub status: crate::model::conversation::MemberStatus,
}

/// How an acceptor behaves.
#[derive(Debug, Clone, Copy)]
pub struct AcceptorConfig {
    /// Which schemes URL fields accept.
    pub urls: UrlRule,
    /// Message buckets kept loaded (least recently used leave, never with uncommitted
    /// changes).
    pub max_buckets: usize,
}

impl Default for AcceptorConfig {
    fn default() -> Self {
        AcceptorConfig {
            urls: UrlRule::HttpsOnly,
            max_buckets: 4,
        }
    }
}

/// A change validated and checked against the membership, waiting for the directory's word
/// on the leaves it brings into the MLS group ([`Need::Devices`]).
#[derive(Debug)]
pub(crate) struct Pending {
    accepted: validate::Accepted,
    group_step: Option<mls::GroupStep>,
}

impl Pending {
    /// What the host must answer before this change is decided, if not answered yet.
    /// `checked`: the acceptor's `directory_checked`.
    fn to_ask(&self, sub: &Submission<'_>, checked: Option<u64>) -> Option<Need> {
        if sub.directory.is_none() {
            if let Some(ask) = self
                .group_step
                .as_ref()
                .and_then(|s| s.directory_ask(checked))
            {
                return Some(Need::Devices(ask));
            }
        }
        match self.private_text() {
            Some(convs) if sub.encrypted.is_none() => Some(Need::Encrypted(convs.to_vec())),
            _ => None,
        }
    }

    /// The conversations whose text the change stores in the clear in a private document.
    fn private_text(&self) -> Option<&[ConvId]> {
        self.accepted.effects.iter().find_map(|e| match e {
            Effect::PrivateText { convs } => Some(convs.as_slice()),
            _ => None,
        })
    }

    /// The refusal the answers call for: a leaf the directory does not bind, plaintext kept
    /// for an encrypted conversation.
    fn refusal(&self, sub: &Submission<'_>) -> Option<Rejection> {
        let hash = Some(self.accepted.hash);
        if let (Some(step), Some(directory)) = (&self.group_step, sub.directory.as_ref()) {
            if let Err(r) = step.check_directory(directory) {
                return Some(Rejection::new(hash, RejectCode::from(&r), r.to_string()));
            }
        }
        let encrypted = sub.encrypted.as_deref().unwrap_or_default();
        let conv = self
            .private_text()?
            .iter()
            .find(|c| encrypted.contains(c))?;
        Some(Rejection::new(
            hash,
            RejectCode::Policy(DenyCode::PlaintextInEncrypted),
            format!("{conv} is end-to-end encrypted: its drafts and scheduled messages are not kept on the server in the clear"),
        ))
    }
}

/// What deciding a change came to before the directory is asked.
enum Decided {
    /// Allowed so far, with what it does to the group.
    Change(Box<Pending>),
    /// A final answer, or something to ask first.
    Answer(Step),
}

/// The accepted state of one unit and the rules that move it. See the module docs.
#[derive(Debug)]
pub struct Acceptor {
    unit: UnitId,
    /// The unit's `conv` document (conversation units).
    conv_doc: Option<DocId>,
    config: AcceptorConfig,
    docs: HashMap<DocId, Loaded>,
    /// The typed conversation, refreshed by the effects of every accepted conv change.
    conv: Option<Conversation>,
    /// The conversation's policy version: the seq of the last change to its `conv`
    /// document that moved members, roles, settings or lifecycle. Bucket changes are
    /// committed fenced on it.
    policy_seq: u64,
    bindings: HashMap<ActorId, AccountId>,
    /// A thread's cache of where its authors and readers stand in its parent (and above),
    /// all read at the parent's policy version `parent_seq`. Dropped whenever the parent
    /// moves ([`Acceptor::parent_moved`]), on a rewind and on a reset.
    standings: HashMap<AccountId, Standing>,
    parent_seq: Option<u64>,
    /// When each account's last message was accepted (slow mode). Kept across a reset:
    /// storage does not hold it, and keeping it only errs on the strict side.
    last_post: HashMap<AccountId, i64>,
    tick: u64,
    broken: Option<String>,
    /// The Delivery Service's view of an encrypted conversation's MLS group, once made;
    /// rebuilt from the conversation document after a load ([`mls::rebuild`]).
    group: Option<crate::e2ee::GroupView>,
    /// Whether `group` follows the loaded conversation document.
    group_loaded: bool,
    /// What sealed messages are checked against, derived from `group` and the membership;
    /// dropped whenever either moves.
    group_facts: Option<mls::GroupFacts>,
    /// The directory's removal generation every device of `group` was checked against: no
    /// device in it was removed up to there, so a commit asks only for the removals after
    /// it ([`mls::GroupStep::directory_ask`]). Set by each group step this acceptor checked
    /// and accepted; dropped with the view, and whenever the view moves by changes checked
    /// elsewhere (`absorb`: another node checked them at its own generation).
    directory_checked: Option<u64>,
}

impl Acceptor {
    pub fn new(unit: UnitId, config: AcceptorConfig) -> Self {
        let conv_doc = match &unit {
            UnitId::Conv(tenant, conv) => Some(DocId::conv(tenant, conv)),
            UnitId::Account(..) => None,
        };
        Acceptor {
            unit,
            conv_doc,
            config,
            docs: HashMap::new(),
            conv: None,
            policy_seq: 0,
            bindings: HashMap::new(),
            standings: HashMap::new(),
            parent_seq: None,
            last_post: HashMap::new(),
            tick: 0,
            broken: None,
            group: None,
            group_loaded: false,
            group_facts: None,
            directory_checked: None,
        }
    }

    pub fn unit(&self) -> &UnitId {
        &self.unit
    }

    /// Takes the submission one step further: what is needed next, or the decision.
    pub fn step(&mut self, sub: &mut Submission<'_>) -> Step {
        match self.next(sub) {
            Ok(step) => step,
            Err(e) => Step::Done(Decision::Failed(e)),
        }
    }

    fn next(&mut self, sub: &mut Submission<'_>) -> Result<Step, AcceptError> {
        if let Some(message) = &self.broken {
            return Err(AcceptError::Broken(message.clone()));
        }
        if sub.pending.is_some() {
            // Decided but for the directory, which was answered: nothing moved since.
            return self.validate(sub, None);
        }
        let doc = sub.doc;
        if !self.unit.holds(doc) {
            return Err(AcceptError::OtherUnit(doc.clone()));
        }
        // The conversation comes before the bucket: a non-member is refused without
        // loading one, which keeps a flood of them cheap.
        if let Some(need) = self.conv_to_load() {
            return Ok(Step::Need(need));
        }
        if let Some(reason) = self.outsider(doc, sub.author) {
            return Ok(Step::Done(Decision::Rejected(Rejection::new(
                Some(sub.hash),
                RejectCode::Policy(DenyCode::NotMember),
                reason,
            ))));
        }
        if let Some(need) = self.standing_to_ask(&sub.author.account, sub.author.service) {
            return Ok(Step::Need(need));
        }
        if let Err(malformed) = sub.decode() {
            return Ok(Step::Done(Decision::Rejected(malformed)));
        }
        if let Some(need) = self.touch(doc) {
            return Ok(Step::Need(need));
        }
        if let Some(need) = self.previous_part_to_load(doc) {
            return Ok(Step::Need(need));
        }
        if let Some(hash) = sub.already {
            let loaded = self.loaded(doc)?;
            return Ok(match sub.seq {
                None => Step::Need(Need::SeqOf(hash)),
                // A change folded into a snapshot keeps no seq of its own: the snapshot's.
                Some(seq) => Step::Done(Decision::AlreadyAccepted {
                    hash,
                    seq: seq.unwrap_or(loaded.snapshot_seq),
                    durable: true,
                }),
            });
        }
        let Some(change) = sub.change.as_ref() else {
            return Err(AcceptError::Finished);
        };
        let actor = change.actor_id();
        if !self.bindings.contains_key(actor) && !sub.unbound.contains(actor) {
            return Ok(Step::Need(Need::Binding(actor.clone())));
        }
        if sub.parent.is_none() {
            if let Some(parent) = self.parent_to_ask(doc, change) {
                return Ok(Step::Need(Need::Parent(parent)));
            }
        }
        if sub.parent_message.is_none() {
            if let Some(need) = self.parent_message_to_ask(doc, change) {
                return Ok(Step::Need(need));
            }
        }
        let answered = match self.answered(sub, change)? {
            Ok(answered) => answered,
            Err(need) => return Ok(Step::Need(need)),
        };
        self.validate(sub, answered)
    }

    fn validate(
        &mut self,
        sub: &mut Submission<'_>,
        answered: Option<crate::model::message::Message>,
    ) -> Result<Step, AcceptError> {
        let author = sub.author;
        let parent_fence = match (self.thread_parent(), self.parent_seq, author.service) {
            (Some(parent), Some(seq), false) => Some((parent.clone(), seq)),
            _ => None,
        };
        self.ensure_group()?;
        let pending = match sub.pending.take() {
            Some(pending) => pending,
            None => match self.decide_change(sub, answered)? {
                Decided::Change(pending) => pending,
                Decided::Answer(step) => return Ok(step),
            },
        };
        // What only other parts of the server know, asked once the rest of the change is
        // decided: the directory's devices, whether conversations are encrypted.
        if let Some(need) = pending.to_ask(sub, self.directory_checked) {
            sub.pending = Some(pending);
            return Ok(Step::Need(need));
        }
        if let Some(rejection) = pending.refusal(sub) {
            return Ok(Step::Done(Decision::Rejected(rejection)));
        }
        let Pending {
            accepted,
            group_step,
        } = *pending;
        let validate::Accepted {
            hash,
            change,
            new_binding,
            effects,
            footprint,
        } = accepted;
        let loaded = self
            .docs
            .get_mut(sub.doc)
            .ok_or_else(|| AcceptError::NotLoaded(sub.doc.clone()))?;
        // Edits and deletions leave the bucket applied: the host reads what they changed
        // (previews). Everything else in a bucket waits for one apply per batch.
        let reads_bucket = effects.iter().any(|e| {
            matches!(
                e,
                Effect::EditBody(_) | Effect::EditSealed { .. } | Effect::DeleteMessage(_)
            )
        });
        let staged = loaded.accepted.stage(change, footprint).and_then(|()| {
            if reads_bucket {
                loaded.accepted.apply_staged()
            } else {
                Ok(())
            }
        });
        if let Err(e) = staged {
            return Err(self.break_down(format!("applying an accepted change: {e}")));
        }
        let seq = loaded.accept(hash);
        if matches!(sub.doc.target(), DocTarget::Conv(_)) {
            // Membership or the group may have moved: what sealed messages are checked against.
            self.group_facts = None;
        }
        if let Some(step) = group_step {
            if let Err(e) = step.apply(&mut self.group) {
                return Err(self.break_down(format!("moving the MLS group on: {e}")));
            }
            // The group as the step leaves it was checked at the generation answered (no
            // question asked: it holds no device, and what was checked stands).
            if let Some(generation) = sub.directory_generation {
                self.directory_checked = Some(generation);
            }
        }
        if let Some(actor) = &new_binding {
            self.bindings.insert(actor.clone(), author.account.clone());
        }
        let mut created = false;
        if let (DocTarget::Conv(_), Some(conv)) = (sub.doc.target(), self.conv.as_mut()) {
            let was_created = conv.meta.is_some();
            refresh_conversation(conv, loaded.accepted.doc(), &effects);
            created = !was_created && conv.meta.is_some();
        }
        let moves_policy = matches!(sub.doc.target(), DocTarget::Conv(_))
            && (created || effects.iter().any(Effect::moves_policy));
        if moves_policy {
            self.policy_seq = seq;
        }
        let fence = matches!(sub.doc.target(), DocTarget::Msgs(..)).then_some(self.policy_seq);
        if effects.iter().any(|e| matches!(e, Effect::PostMessage(_))) {
            self.last_post.insert(author.account.clone(), sub.now_ms);
        }
        Ok(Step::Done(Decision::Accepted(AcceptedChange {
            hash,
            seq,
            effects,
            new_binding,
            created,
            moves_policy,
            fence,
            parent_fence,
        })))
    }

    /// Validates a change and checks what it does to the MLS group against the membership.
    /// The directory's part is left to the caller.
    fn decide_change(
        &mut self,
        sub: &mut Submission<'_>,
        answered: Option<crate::model::message::Message>,
    ) -> Result<Decided, AcceptError> {
        let reject = |r: Rejection| Ok(Decided::Answer(Step::Done(Decision::Rejected(r))));
        let Some(change) = sub.change.take() else {
            return Err(AcceptError::Finished);
        };
        let others = sub.take_parents();
        let author = sub.author;
        let parent_standing = self.standings.get(&author.account).copied();
        let previous_part_messages = previous_part(sub.doc)
            .and_then(|prev| self.docs.get(&prev))
            .map(|l| l.accepted.message_count());
        let loaded = self
            .docs
            .get_mut(sub.doc)
            .ok_or_else(|| AcceptError::NotLoaded(sub.doc.clone()))?;
        let env = Env {
            author,
            bindings: &self.bindings,
            conv: self.conv.as_ref(),
            others: &others,
            now_ms: sub.now_ms,
            last_post_ms: self.last_post.get(&author.account).copied(),
            urls: self.config.urls,
            parent_standing,
            parent_message: sub.parent_message,
            answered: answered.as_ref(),
        };
        let accepted = match validate::validate_staged(&mut loaded.accepted, &env, change) {
            Err(rejection) => return reject(rejection),
            Ok(Verdict::AlreadyAccepted(hash)) => {
                // Accepted but not yet durable: its ack waits for the commit under way.
                if let Some(seq) = loaded.uncommitted_seq(&hash) {
                    return Ok(Decided::Answer(Step::Done(Decision::AlreadyAccepted {
                        hash,
                        seq,
                        durable: false,
                    })));
                }
                sub.already = Some(hash);
                return Ok(Decided::Answer(Step::Need(Need::SeqOf(hash))));
            }
            Ok(Verdict::Accept(accepted)) => *accepted,
        };
        if let Some(rejection) = no_room(
            sub.doc,
            &loaded.accepted,
            &accepted.footprint,
            previous_part_messages,
            accepted.hash,
        ) {
            return reject(rejection);
        }
        let mut group_step = None;
        let group_check = match (sub.doc.target(), self.conv.as_ref()) {
            (DocTarget::Conv(_), Some(conv)) => mls::check(
                self.group.as_ref(),
                sub.doc,
                conv,
                author,
                &accepted.effects,
            )
            .map(|step| group_step = step),
            (DocTarget::Msgs(..), Some(conv)) if conv.encrypted() => {
                let facts = self
                    .group_facts
                    .get_or_insert_with(|| mls::GroupFacts::of(self.group.as_ref(), conv));
                mls::check_sealed(
                    self.group.as_ref(),
                    facts,
                    sub.doc.tenant(),
                    author,
                    &accepted.effects,
                )
            }
            _ => Ok(()),
        };
        if let Err((code, reason)) = group_check {
            return reject(Rejection::new(Some(accepted.hash), code, reason));
        }
        Ok(Decided::Change(Box::new(Pending {
            accepted,
            group_step,
        })))
    }

    /// The previous part of a bucket part that holds no message yet: a post may open the part
    /// only if that one holds enough ([`no_room`]), so it is loaded first.
    fn previous_part_to_load(&mut self, doc: &DocId) -> Option<Need> {
        let previous = previous_part(doc)?;
        let empty = self
            .docs
            .get(doc)
            .is_some_and(|l| l.accepted.message_count() == 0);
        if !empty {
            return None;
        }
        self.touch(&previous)
    }

    /// The answer to [`Need::Binding`]: a binding is a lasting fact and is kept; "none" is
    /// kept for this submission only (its own change may bind the actor).
    pub fn answer_binding(
        &mut self,
        sub: &mut Submission<'_>,
        actor: ActorId,
        account: Option<AccountId>,
    ) {
        match account {
            Some(account) => {
                self.bindings.insert(actor, account);
            }
            None => sub.unbound.push(actor),
        }
    }

    /// The parent conversation to look up for a change to the `conv` document: the one
    /// the cached conversation names, or the one the change names while creating a thread.
    fn parent_to_ask(&self, doc: &DocId, change: &automerge::Change) -> Option<ConvId> {
        let DocTarget::Conv(own) = doc.target() else {
            return None;
        };
        let from_state = self
            .conv
            .as_ref()
            .and_then(|c| c.meta.as_ref())
            .and_then(|m| m.thread.as_ref())
            .map(|t| t.parent.clone());
        from_state
            .or_else(|| parent::named_parent(change))
            .filter(|p| p != own)
    }

    /// The message a thread's creation names, while the conversation is not created: it
    /// must exist in the parent (looked up by the host, not by loading the parent's buckets).
    fn parent_message_to_ask(&self, doc: &DocId, change: &automerge::Change) -> Option<Need> {
        if !matches!(doc.target(), DocTarget::Conv(_)) || self.conv.as_ref()?.meta.is_some() {
            return None;
        }
        let parent = parent::named_parent(change)?;
        let message = parent::named_message(change)?;
        Some(Need::ParentMessage { parent, message })
    }

    /// The parent of this unit's conversation, when it is a thread.
    pub fn thread_parent(&self) -> Option<&ConvId> {
        self.conv
            .as_ref()?
            .meta
            .as_ref()?
            .thread
            .as_ref()
            .map(|t| &t.parent)
    }

    /// What must be asked before `account` (a service account when `service`) may read or
    /// write this unit's thread: where it stands in the parent, unless that is cached.
    /// Service accounts are members nowhere and need no standing.
    pub fn standing_to_ask(&self, account: &AccountId, service: bool) -> Option<Need> {
        if service || self.standings.contains_key(account) {
            return None;
        }
        self.thread_parent().map(|parent| Need::Standing {
            parent: parent.clone(),
            account: account.clone(),
        })
    }

    /// The answer to [`Need::Standing`]: where `account` stands in the parent, read at the
    /// parent's policy version `parent_seq`. An answer at another version than the cached
    /// ones replaces them all: the cache holds one version of the parent.
    pub fn answer_standing(&mut self, account: AccountId, standing: Standing, parent_seq: u64) {
        if self.parent_seq != Some(parent_seq) {
            self.standings.clear();
            self.parent_seq = Some(parent_seq);
        }
        self.standings.insert(account, standing);
    }

    /// The parent (or a conversation above it) moved its policy: every cached standing is
    /// asked again. Returns the accounts that were cached active (their subscriptions are
    /// to be checked again).
    pub fn parent_moved(&mut self) -> Vec<AccountId> {
        self.parent_seq = None;
        self.standings
            .drain()
            .filter(|(_, s)| s.is_active())
            .map(|(a, _)| a)
            .collect()
    }

    /// Where `account` stands in this unit's conversation as a thread of it sees it: an
    /// active member here and, for a thread, in its parent. `Err`: what to ask first.
    pub fn standing_of(&self, account: &AccountId) -> Result<Standing, Need> {
        if let Some(need) = self.conv_to_load() {
            return Err(need);
        }
        let Some(conv) = self.conv.as_ref().filter(|c| c.meta.is_some()) else {
            return Ok(Standing::Out(None));
        };
        let here = Standing::of(conv.member(account));
        if !here.is_active() {
            return Ok(here);
        }
        match self.standing_to_ask(account, false) {
            Some(need) => Err(need),
            None => Ok(self.standings.get(account).copied().unwrap_or(here)),
        }
    }

    /// The conversation's policy version (see [`AcceptedChange::fence`]).
    pub fn policy_seq(&self) -> u64 {
        self.policy_seq
    }

    /// Why `author` may write nothing in message bucket `doc`, when that is known without
    /// validating: the conversation exists and the account was never a member of it (and is
    /// not a service account). Every bucket effect needs membership then; self-joins and
    /// creations go to the conversation document, not to buckets.
    fn outsider(&self, doc: &DocId, author: &crate::policy::Author) -> Option<String> {
        if author.service || !matches!(doc.target(), DocTarget::Msgs(..)) {
            return None;
        }
        let conv = self.conv.as_ref().filter(|c| c.meta.is_some())?;
        conv.member(&author.account)
            .is_none()
            .then(|| format!("{} is not a member of {}", author.account, conv.id))
    }

    /// What must be loaded before `doc` can be read or written: the unit's conversation
    /// first, then the document. `None` once both are in memory.
    pub fn need_to_read(&mut self, doc: &DocId) -> Result<Option<Need>, AcceptError> {
        if !self.unit.holds(doc) {
            return Err(AcceptError::OtherUnit(doc.clone()));
        }
        Ok(self.conv_to_load().or_else(|| self.touch(doc)))
    }

    /// The conversation document, when a conversation unit has not loaded it.
    fn conv_to_load(&self) -> Option<Need> {
        let conv_doc = self.conv_doc.as_ref()?;
        (self.conv.is_none() || !self.docs.contains_key(conv_doc))
            .then(|| Need::Doc(conv_doc.clone()))
    }

    /// Marks `doc` as just used (eviction goes by it), or asks for it to be loaded.
    fn touch(&mut self, doc: &DocId) -> Option<Need> {
        self.tick += 1;
        match self.docs.get_mut(doc) {
            Some(loaded) => {
                loaded.last_used = self.tick;
                None
            }
            None => Some(Need::Doc(doc.clone())),
        }
    }

    /// The answer to [`Need::Doc`]: the stored document. Loading the conversation document
    /// also reads the typed conversation.
    pub fn load(&mut self, id: DocId, stored: StoredDoc<'_>) -> Result<(), AcceptError> {
        if !self.unit.holds(&id) {
            return Err(AcceptError::OtherUnit(id));
        }
        self.tick += 1;
        if let Some(loaded) = self.docs.get_mut(&id) {
            loaded.last_used = self.tick;
            return Ok(());
        }
        let policy_seq = stored.policy_seq;
        let loaded = Loaded::from_storage(id.clone(), stored, self.tick)?;
        if let (Some(conv_doc), UnitId::Conv(_, conv)) = (&self.conv_doc, &self.unit) {
            if *conv_doc == id {
                self.conv = Some(crate::doc::read::read_conversation(
                    loaded.accepted.doc(),
                    conv.clone(),
                ));
                self.policy_seq = policy_seq;
                self.forget_group();
            }
        }
        self.evict_buckets(&id);
        self.docs.insert(id, loaded);
        Ok(())
    }

    /// The host committed `doc`'s changes up to `seq`: they are durable now.
    pub fn committed(&mut self, doc: &DocId, seq: u64) {
        if let Some(loaded) = self.docs.get_mut(doc) {
            loaded.committed(seq);
        }
    }

    /// Makes room for bucket `coming` within `max_buckets` message buckets (least recently
    /// used leave). A bucket holding changes not yet committed stays: reloaded, it would
    /// miss them.
    fn evict_buckets(&mut self, coming: &DocId) {
        if !matches!(coming.target(), DocTarget::Msgs(..)) {
            return;
        }
        let max = self.config.max_buckets.max(1) - 1;
        loop {
            let buckets = self
                .docs
                .keys()
                .filter(|id| matches!(id.target(), DocTarget::Msgs(..)))
                .count();
            if buckets <= max {
                return;
            }
            let oldest = self
                .docs
                .iter()
                .filter(|(id, l)| matches!(id.target(), DocTarget::Msgs(..)) && l.all_committed())
                .min_by_key(|(_, l)| l.last_used)
                .map(|(id, _)| id.clone());
            let Some(oldest) = oldest else {
                return;
            };
            self.docs.remove(&oldest);
        }
    }

    /// Forgets every accepted change not yet committed, as cheaply as it can: another
    /// node committed first, so they must be validated again on what it committed. A
    /// bucket whose uncommitted changes are all still staged takes them back; a document
    /// that applied some of them (the conversation document always applies at once) leaves
    /// memory and is loaded again when needed. Cached bindings are dropped (some may come
    /// from the forgotten changes).
    pub fn rewind(&mut self) {
        let mut gone = Vec::new();
        for (id, loaded) in self.docs.iter_mut() {
            if !loaded.rewind() {
                gone.push(id.clone());
            }
        }
        for id in gone {
            self.forget(&id);
        }
        self.bindings.clear();
        self.parent_moved();
    }

    /// Takes what other nodes committed to `doc` (the log after [`Acceptor::known_seq`]).
    /// A document not in memory is left alone (it is loaded fresh when needed). Returns
    /// the accounts whose membership stopped being active (their subscriptions end) when
    /// the conversation document moved. A tail that does not continue what is held (a gap,
    /// a compaction, uncommitted changes of this node) makes the document leave memory.
    pub fn absorb(
        &mut self,
        doc: &DocId,
        tail: &Tail<'_>,
    ) -> Result<Vec<Deactivated>, AcceptError> {
        if !self.unit.holds(doc) {
            return Err(AcceptError::OtherUnit(doc.clone()));
        }
        let Some(loaded) = self.docs.get_mut(doc) else {
            return Ok(Vec::new());
        };
        let before = loaded.last_seq();
        let is_conv = self.conv_doc.as_ref() == Some(doc);
        let mut paths = Vec::new();
        match loaded.absorb(tail, is_conv.then_some(&mut paths)) {
            Ok(true) => {}
            Ok(false) => {
                self.forget(doc);
                return Ok(Vec::new());
            }
            Err(e) => {
                self.forget(doc);
                return Err(e);
            }
        }
        let Some(loaded) = self.docs.get(doc) else {
            return Ok(Vec::new());
        };
        if loaded.last_seq() == before || !is_conv {
            return Ok(Vec::new());
        }
        // The conversation moved elsewhere: re-read what those changes wrote (O(change),
        // not O(members)) and compare the members they touched.
        let UnitId::Conv(_, conv_id) = &self.unit else {
            return Ok(Vec::new());
        };
        if paths
            .iter()
            .any(|p| p.first().map(String::as_str) == Some(crate::doc::schema::keys::MLS))
        {
            self.group = None;
            self.group_loaded = false;
            self.directory_checked = None;
        }
        // Membership moved elsewhere: what sealed messages are checked against, too.
        self.group_facts = None;
        let deactivated = match self.conv.as_mut() {
            Some(conv) => {
                let touched =
                    crate::validate::refresh_by_paths(conv, loaded.accepted.doc(), &paths);
                touched
                    .into_iter()
                    .filter(|(_, before)| before.as_ref().is_some_and(|m| m.is_active()))
                    .filter_map(|(account, _)| {
                        let now = conv.member(&account);
                        (!now.is_some_and(|m| m.is_active())).then(|| Deactivated {
                            status: now
                                .map_or(crate::model::conversation::MemberStatus::Removed, |m| {
                                    m.status
                                }),
                            account,
                        })
                    })
                    .collect()
            }
            None => {
                let fresh =
                    crate::doc::read::read_conversation(loaded.accepted.doc(), conv_id.clone());
                self.conv = Some(fresh);
                Vec::new()
            }
        };
        // The stored policy version is the one of the whole log: taken only once all of it
        // is held. Until then the fence stays behind, and a bucket change validated on the
        // partial state is refused at commit instead of slipping through.
        if loaded.last_seq() == tail.last_seq {
            self.policy_seq = tail.policy_seq;
        }
        Ok(deactivated)
    }

    /// The seq of the newest change of `doc` this acceptor holds, if `doc` is in memory.
    pub fn known_seq(&self, doc: &DocId) -> Option<u64> {
        self.docs.get(doc).map(Loaded::last_seq)
    }

    /// The documents in memory.
    pub fn loaded_docs(&self) -> impl Iterator<Item = &DocId> {
        self.docs.keys()
    }

    /// Lets a message bucket leave memory when nothing of it waits for a commit (a node that
    /// only serves another node's writes to it need not apply them). `false`: kept.
    pub fn release(&mut self, doc: &DocId) -> bool {
        let releasable = matches!(doc.target(), DocTarget::Msgs(..))
            && self.docs.get(doc).is_some_and(Loaded::all_committed);
        if releasable {
            self.forget(doc);
        }
        releasable
    }

    /// Drops one document from memory (the conversation document takes the cached
    /// conversation with it).
    fn forget(&mut self, doc: &DocId) {
        self.docs.remove(doc);
        if self.conv_doc.as_ref() == Some(doc) {
            self.conv = None;
            self.forget_group();
        }
    }

    /// The group view follows the conversation document: whenever that leaves memory or
    /// moves in a way not decided here, the view is rebuilt from it when next needed.
    fn forget_group(&mut self) {
        self.group = None;
        self.group_loaded = false;
        self.group_facts = None;
        self.directory_checked = None;
    }

    /// Rebuilds the group view of an encrypted conversation from its document, once after
    /// each load ([`mls::rebuild`]).
    fn ensure_group(&mut self) -> Result<(), AcceptError> {
        let (Some(conv), Some(conv_doc)) = (self.conv.as_ref(), self.conv_doc.as_ref()) else {
            return Ok(());
        };
        if !conv.encrypted() || self.group_loaded {
            return Ok(());
        }
        let Some(loaded) = self.docs.get(conv_doc) else {
            return Ok(());
        };
        match mls::rebuild(loaded.accepted.doc(), conv) {
            Ok(group) => {
                self.group = group;
                self.group_loaded = true;
                self.group_facts = None;
                // Rebuilt from accepted commits, checked by whoever accepted them.
                self.directory_checked = None;
                Ok(())
            }
            Err(mls::Unreadable(why)) => Err(AcceptError::StoredChange {
                doc: conv_doc.clone(),
                reason: format!("the MLS group: {why}"),
            }),
        }
    }

    /// Drops everything loaded: after a failed commit memory may hold what storage lost.
    pub fn reset(&mut self) {
        self.docs.clear();
        self.conv = None;
        self.forget_group();
        self.bindings.clear();
        self.parent_moved();
        self.broken = None;
    }

    /// Applies the staged changes of every document holding more than `over` (one Automerge
    /// call each).
    pub fn apply_staged(&mut self, over: usize) -> Result<(), AcceptError> {
        let mut failure = None;
        for (id, loaded) in self.docs.iter_mut() {
            if loaded.accepted.staged_len() <= over {
                continue;
            }
            if let Err(e) = loaded.accepted.apply_staged() {
                failure = Some(format!("applying accepted changes of {id}: {e}"));
                break;
            }
        }
        match failure {
            Some(message) => Err(self.break_down(message)),
            None => Ok(()),
        }
    }

    /// Applies the staged changes of `doc` alone (the server saves a bucket part that
    /// closed, which may keep a few staged for long: spare time applies only bigger piles).
    pub fn apply_staged_of(&mut self, doc: &DocId) -> Result<(), AcceptError> {
        let loaded = self.loaded_mut(doc)?;
        if let Err(e) = loaded.accepted.apply_staged() {
            return Err(self.break_down(format!("applying accepted changes of {doc}: {e}")));
        }
        Ok(())
    }

    /// The most staged changes one document holds.
    pub fn most_staged(&self) -> usize {
        self.docs
            .values()
            .map(|l| l.accepted.staged_len())
            .max()
            .unwrap_or(0)
    }

    /// A copy of `doc` with every accepted change applied, writing as `actor` (the server
    /// builds a REST intent's change on it, then submits that change as any other).
    pub fn fork(&mut self, doc: &DocId, actor: ActorId) -> Result<Automerge, AcceptError> {
        let loaded = self.loaded_mut(doc)?;
        if let Err(e) = loaded.accepted.apply_staged() {
            return Err(self.break_down(format!("applying accepted changes: {e}")));
        }
        let loaded = self.loaded(doc)?;
        Ok(loaded.accepted.doc().fork().with_actor(actor))
    }

    fn break_down(&mut self, message: String) -> AcceptError {
        self.broken = Some(message.clone());
        AcceptError::Broken(message)
    }

    /// Why memory no longer matches what was accepted, if it does not.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    fn loaded(&self, doc: &DocId) -> Result<&Loaded, AcceptError> {
        self.docs
            .get(doc)
            .ok_or_else(|| AcceptError::NotLoaded(doc.clone()))
    }

    fn loaded_mut(&mut self, doc: &DocId) -> Result<&mut Loaded, AcceptError> {
        self.docs
            .get_mut(doc)
            .ok_or_else(|| AcceptError::NotLoaded(doc.clone()))
    }

    /// A loaded document (applied state; staged changes are not in `doc()`).
    pub fn doc(&self, id: &DocId) -> Option<&AcceptedDoc> {
        self.docs.get(id).map(|l| &l.accepted)
    }

    /// A loaded document with its seqs, as catch-up needs it.
    pub fn view(&self, id: &DocId) -> Option<DocView<'_>> {
        self.docs.get(id).map(Loaded::view)
    }

    /// The cached typed conversation (conversation units, once loaded).
    pub fn conversation(&self) -> Option<&Conversation> {
        self.conv.as_ref()
    }

    pub fn binding(&self, actor: &ActorId) -> Option<&AccountId> {
        self.bindings.get(actor)
    }

    /// Documents in memory.
    pub fn loaded_len(&self) -> usize {
        self.docs.len()
    }

    /// Whether `doc` holds accepted changes not yet committed.
    pub fn has_uncommitted(&self, doc: &DocId) -> bool {
        self.docs.get(doc).is_some_and(|l| !l.all_committed())
    }

    /// May `account` (a service account when `service`) read `doc`?
    pub fn may_read(
        &self,
        doc: &DocId,
        account: &AccountId,
        service: bool,
    ) -> Result<(), ReadDenied> {
        // A thread's reader whose standing was not asked is refused: the host asks first
        // (`standing_to_ask`).
        let parent = self.thread_parent().map(|_| {
            self.standings
                .get(account)
                .copied()
                .unwrap_or(Standing::Out(None))
        });
        access::may_read(self.conv.as_ref(), doc, account, service, parent)
    }

    /// The hash of an accepted change that is not yet committed, and its seq.
    pub fn uncommitted_seq(&self, doc: &DocId, hash: &ChangeHash) -> Option<u64> {
        self.docs.get(doc).and_then(|l| l.uncommitted_seq(hash))
    }
}

/// The part before `doc`'s in its period, for a message bucket past its period's first part.
fn previous_part(doc: &DocId) -> Option<DocId> {
    match doc.target() {
        DocTarget::Msgs(conv, bucket) => bucket
            .previous_part()
            .map(|prev| DocId::msgs(doc.tenant(), conv, prev)),
        _ => None,
    }
}

/// Why a change that posts messages does not fit in its bucket part: the part holds its
/// most ([`BUCKET_MAX_MESSAGES`]), or it is a new part and the one before holds too few to
/// open it ([`BUCKET_OPENS_NEXT_AT`]). Checked after validation: the writer moves the
/// message to another part, so the refusal must be about nothing else.
///
/// [`BUCKET_MAX_MESSAGES`]: crate::limits::BUCKET_MAX_MESSAGES
/// [`BUCKET_OPENS_NEXT_AT`]: crate::limits::BUCKET_OPENS_NEXT_AT
fn no_room(
    doc: &DocId,
    accepted: &AcceptedDoc,
    footprint: &validate::Footprint,
    previous_part_messages: Option<usize>,
    hash: ChangeHash,
) -> Option<Rejection> {
    use crate::limits::{BUCKET_MAX_MESSAGES, BUCKET_OPENS_NEXT_AT};
    let DocTarget::Msgs(_, bucket) = doc.target() else {
        return None;
    };
    let posts = footprint.created();
    if posts == 0 {
        return None;
    }
    let held = accepted.message_count();
    let refuse =
        |code, reason: String| Some(Rejection::new(Some(hash), RejectCode::Policy(code), reason));
    if held + posts > BUCKET_MAX_MESSAGES {
        return refuse(
            DenyCode::BucketFull,
            format!(
                "bucket {bucket} holds {held} messages (at most {BUCKET_MAX_MESSAGES}): post in {}",
                bucket.next()
            ),
        );
    }
    if held == 0 && bucket.part > 0 {
        let before = previous_part_messages.unwrap_or(0);
        if before < BUCKET_OPENS_NEXT_AT {
            let previous = bucket.previous_part().unwrap_or(*bucket);
            return refuse(
                DenyCode::BucketNotOpen,
                format!("bucket {previous} holds {before} messages, fewer than the {BUCKET_OPENS_NEXT_AT} that open {bucket}: post there"),
            );
        }
    }
    None
}
