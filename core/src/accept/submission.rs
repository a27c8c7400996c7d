//! One change on its way through the acceptor: what the host was asked for it and answered,
//! and the acceptor's final word.

use std::collections::HashMap;

use automerge::{ActorId, Change, ChangeHash};

use crate::ids::{AccountId, Bucket, ConvId, DocId, MessageId};
use crate::model::conversation::Conversation;
use crate::policy::{Author, Effect, ParentMessage};
use crate::validate::{chunk_hash, parse_change, Rejection};

use super::AcceptError;

/// What the acceptor needs from the host before it can go on with a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Load this document from storage and hand it over with [`super::Acceptor::load`].
    Doc(DocId),
    /// Which account is this actor bound to in storage? Answer with
    /// [`super::Acceptor::answer_binding`].
    Binding(ActorId),
    /// The accepted conversation this one names as its parent (a thread); answer with
    /// [`Submission::answer_parent`].
    Parent(ConvId),
    /// The stored seq of this change, which the document already holds and which is
    /// committed; answer with [`Submission::answer_seq`] (`None`: folded into a snapshot).
    SeqOf(ChangeHash),
    /// Where `account` stands in `parent`, the parent of this unit's thread (active there
    /// and in every conversation above it, or not), with the parent's policy version;
    /// answer with [`super::Acceptor::answer_standing`]. Kept until the parent moves.
    Standing { parent: ConvId, account: AccountId },
    /// Whether `message` exists in `parent` (and is not deleted): a thread being created
    /// hangs on it. Answer with [`Submission::answer_parent_message`].
    ParentMessage { parent: ConvId, message: MessageId },
    /// Which bucket part of this conversation holds `message` (a proposal a response in
    /// the change answers), when no bucket in memory does. Answer with
    /// [`Submission::answer_message_bucket`].
    MessageBucket { message: MessageId },
    /// The directory's entries (registered devices, removed or not, with their signature
    /// keys) of these accounts of the unit's tenant (a change brings leaves of theirs into
    /// the conversation's MLS group, removes their devices or leaves them in), and the
    /// tenant's devices removed after a generation. Answer with
    /// [`Submission::answer_devices`]. Asked once per such change, after the rest of it was
    /// decided.
    Devices(crate::e2ee::DirectoryAsk),
    /// Which of these conversations of the unit's tenant are end-to-end encrypted: the change
    /// stores their drafts or scheduled messages in the clear in the author's private
    /// document. Answer with [`Submission::answer_encrypted`].
    Encrypted(Vec<ConvId>),
}

/// The acceptor's answer to [`super::Acceptor::step`].
#[derive(Debug)]
pub enum Step {
    Need(Need),
    Done(Decision),
}

/// The verdict on one submitted change.
#[derive(Debug)]
pub enum Decision {
    /// New and allowed: the acceptor holds it (staged or applied) under `seq`; the host
    /// stores it and acks once that is durable.
    Accepted(AcceptedChange),
    /// Already part of the document, and the author may know it. `durable` is false while
    /// the change is accepted but not yet committed: its ack must wait for that commit.
    AlreadyAccepted {
        hash: ChangeHash,
        seq: u64,
        durable: bool,
    },
    /// Refused for a reason about the change; nothing changed.
    Rejected(Rejection),
    /// Not decided: the acceptor's memory can no longer be trusted (an Automerge call failed
    /// on accepted state). The host resets it once the batches built on it are settled.
    Failed(AcceptError),
}

/// What the host stores and projects for an accepted change.
#[derive(Debug, Clone)]
pub struct AcceptedChange {
    pub hash: ChangeHash,
    /// The next seq of its document.
    pub seq: u64,
    pub effects: Vec<Effect>,
    /// Set when this change binds its actor to the author (store the binding with it).
    pub new_binding: Option<ActorId>,
    /// The change created the unit's conversation (its meta appeared).
    pub created: bool,
    /// A `conv` document's change that moved the conversation's policy (members, roles,
    /// settings, lifecycle): the stored policy version becomes its seq.
    pub moves_policy: bool,
    /// For a message bucket's change: the conversation's policy version it was validated
    /// against. The commit must find it unchanged (another node may have moved it).
    pub fence: Option<u64>,
    /// For a thread's change: its parent and the parent's policy version the author's
    /// standing there was read at. The commit must find that unchanged too.
    pub parent_fence: Option<(ConvId, u64)>,
}

/// One change submitted to an [`super::Acceptor`], with the answers the host gave for it.
/// Negative and per-change answers live here, so they never outlive the submission and
/// never make the acceptor ask again for it.
#[derive(Debug)]
pub struct Submission<'a> {
    pub(super) doc: &'a DocId,
    pub(super) author: &'a Author,
    pub(super) now_ms: i64,
    pub(super) hash: ChangeHash,
    /// The submitted bytes until the acceptor decodes them (`decode`): an outsider's change
    /// is refused from its hash alone, so a flood of them costs no decoding.
    pub(super) raw: Option<&'a [u8]>,
    /// Taken by validation.
    pub(super) change: Option<Change>,
    /// Actors storage knows no binding for (a first change binds them).
    pub(super) unbound: Vec<ActorId>,
    /// The parent lookup, once answered (found or not).
    pub(super) parent: Option<(ConvId, Option<Conversation>)>,
    /// The lookup of the message a thread being created hangs on, once answered.
    pub(super) parent_message: Option<ParentMessage>,
    /// The lookup of the bucket holding the proposal a response answers, once answered.
    pub(super) answered_bucket: Option<Option<Bucket>>,
    /// Validation said "already accepted"; waiting for the stored seq.
    pub(super) already: Option<ChangeHash>,
    pub(super) seq: Option<Option<u64>>,
    /// A change decided but for the directory's word, kept while [`Need::Devices`] is asked.
    pub(super) pending: Option<Box<super::Pending>>,
    /// The answer to [`Need::Devices`], and the removal generation it was read at.
    pub(super) directory: Option<crate::e2ee::Directory>,
    pub(super) directory_generation: Option<u64>,
    /// The answer to [`Need::Encrypted`]: those of the conversations asked that are.
    pub(super) encrypted: Option<Vec<ConvId>>,
}

impl<'a> Submission<'a> {
    /// Submitted bytes (one uncompressed change chunk), decoded by the acceptor once it
    /// needs the change; bytes that are not a change chunk at all are refused here.
    pub fn new(
        doc: &'a DocId,
        author: &'a Author,
        bytes: &'a [u8],
        now_ms: i64,
    ) -> Result<Self, Rejection> {
        let hash = chunk_hash(bytes)?;
        Ok(Submission {
            raw: Some(bytes),
            change: None,
            ..Self::bare(doc, author, hash, now_ms)
        })
    }

    pub fn from_change(doc: &'a DocId, author: &'a Author, change: Change, now_ms: i64) -> Self {
        let hash = change.hash();
        Submission {
            change: Some(change),
            ..Self::bare(doc, author, hash, now_ms)
        }
    }

    fn bare(doc: &'a DocId, author: &'a Author, hash: ChangeHash, now_ms: i64) -> Self {
        Submission {
            doc,
            author,
            now_ms,
            hash,
            raw: None,
            change: None,
            unbound: Vec::new(),
            parent: None,
            parent_message: None,
            answered_bucket: None,
            already: None,
            seq: None,
            pending: None,
            directory: None,
            directory_generation: None,
            encrypted: None,
        }
    }

    pub fn hash(&self) -> ChangeHash {
        self.hash
    }

    /// Decodes the submitted bytes, once: a change that does not decode is refused
    /// `malformed`.
    pub(super) fn decode(&mut self) -> Result<(), Rejection> {
        if let Some(bytes) = self.raw.take() {
            let change = parse_change(bytes)?;
            self.hash = change.hash();
            self.change = Some(change);
        }
        Ok(())
    }

    pub fn doc(&self) -> &DocId {
        self.doc
    }

    /// The answer to [`Need::Parent`]: the parent as accepted, or `None` when it is not known.
    pub fn answer_parent(&mut self, id: ConvId, conv: Option<Conversation>) {
        self.parent = Some((id, conv));
    }

    /// The answer to [`Need::ParentMessage`].
    pub fn answer_parent_message(&mut self, found: ParentMessage) {
        self.parent_message = Some(found);
    }

    /// The answer to [`Need::MessageBucket`] (`None`: no such message).
    pub fn answer_message_bucket(&mut self, bucket: Option<Bucket>) {
        self.answered_bucket = Some(bucket);
    }

    /// The answer to [`Need::Devices`]: every entry the directory holds for the accounts
    /// asked and for the devices removed after the generation asked, and the generation
    /// read before them.
    pub fn answer_devices(&mut self, answer: crate::e2ee::DirectoryAnswer) {
        self.directory = Some(crate::e2ee::Directory::new(answer.entries));
        self.directory_generation = Some(answer.generation);
    }

    /// The answer to [`Need::Encrypted`]: the conversations asked that are end-to-end
    /// encrypted (a conversation the host does not know is not).
    pub fn answer_encrypted(&mut self, encrypted: Vec<ConvId>) {
        self.encrypted = Some(encrypted);
    }

    /// The answer to [`Need::SeqOf`].
    pub fn answer_seq(&mut self, seq: Option<u64>) {
        self.seq = Some(seq);
    }

    /// The answered parent, for validation (which runs once per submission).
    pub(super) fn take_parents(&mut self) -> HashMap<ConvId, Conversation> {
        match self.parent.take() {
            Some((id, Some(conv))) => HashMap::from([(id, conv)]),
            _ => HashMap::new(),
        }
    }
}
