//! Validation of one incoming change (its codes: docs/POLICY.md, "Reject codes"): decode it,
//! check the actor binding and the dependencies, map every op to its path, derive the
//! effects and ask the policy, all against the state before the change. Cost is O(ops in the
//! change): no fork, no diff.

mod codes;
mod interpret;
mod ops;
mod state;

use std::collections::HashMap;

use automerge::{ActorId, Change, ChangeHash};

pub use codes::{RejectCode, Rejection};
pub use state::{refresh_by_paths, refresh_conversation, AcceptedDoc, Footprint};

use crate::doc::schema::{keys, split_reaction_key};
use crate::doc::write;
use crate::ids::{AccountId, ConvId, DocId, DocTarget};
use crate::limits;
use crate::model::conversation::{ConvKind, Conversation};
use crate::model::url::UrlRule;
use crate::policy::{self, Author, Context, Effect};

/// Which account each actor writes for. An actor is bound by its first accepted change.
pub trait ActorBindings {
    fn account_of(&self, actor: &ActorId) -> Option<AccountId>;
}

impl ActorBindings for HashMap<ActorId, AccountId> {
    fn account_of(&self, actor: &ActorId) -> Option<AccountId> {
        self.get(actor).cloned()
    }
}

/// Finds accepted conversations by id (the parent of a thread).
pub trait ConvLookup {
    fn conversation(&self, id: &ConvId) -> Option<&Conversation>;
}

impl ConvLookup for HashMap<ConvId, Conversation> {
    fn conversation(&self, id: &ConvId) -> Option<&Conversation> {
        self.get(id)
    }
}

/// No other conversation is known.
impl ConvLookup for () {
    fn conversation(&self, _: &ConvId) -> Option<&Conversation> {
        None
    }
}

/// Everything validation needs besides the document and the change.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub author: &'a Author,
    pub bindings: &'a dyn ActorBindings,
    /// The conversation of a `conv` or `msgs` document, as accepted so far. For a `conv`
    /// document it must describe that same document (the server caches it).
    pub conv: Option<&'a Conversation>,
    /// Other conversations: the parent of a thread is looked up here.
    pub others: &'a dyn ConvLookup,
    /// Server time, ms since the epoch.
    pub now_ms: i64,
    /// When the author's last message in this conversation was accepted (slow mode).
    pub last_post_ms: Option<i64>,
    /// Which schemes URL fields accept (`https:` only unless the operator allows `http:`).
    pub urls: UrlRule,
    /// Where the author stands in the parent of a thread (`policy::Context::parent_standing`).
    pub parent_standing: Option<crate::policy::Standing>,
    /// The message a thread being created hangs on, as found (`policy::Context::parent_message`).
    pub parent_message: Option<crate::policy::ParentMessage>,
    /// The proposal a `proposal_response` of the change answers, as accepted (the
    /// acceptor finds it; `None`: none, or not looked up): the response moves its status.
    pub answered: Option<&'a crate::model::message::Message>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("author", self.author)
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

/// An accepted change and what it does.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub hash: ChangeHash,
    pub change: Change,
    /// Set when this change binds its actor to the author (its first change).
    pub new_binding: Option<ActorId>,
    pub effects: Vec<Effect>,
    /// What it reads and writes in a message bucket (empty for other documents).
    pub footprint: Footprint,
}

/// The outcome of a change that is not rejected.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// New and allowed: apply it, then store it.
    Accept(Box<Accepted>),
    /// Already part of the document: acknowledge it again, store nothing.
    AlreadyAccepted(ChangeHash),
}

/// Decodes raw bytes, then validates.
pub fn validate_bytes(
    doc: &AcceptedDoc,
    env: &Env<'_>,
    bytes: &[u8],
) -> Result<Verdict, Rejection> {
    let change = parse_change(bytes)?;
    validate(doc, env, change)
}

/// Parses one uncompressed change chunk. Compressed chunks (type 2) and documents are refused
/// before Automerge sees them: a small compressed chunk can inflate to gigabytes.
pub fn parse_change(bytes: &[u8]) -> Result<Change, Rejection> {
    chunk_hash(bytes)?;
    Change::try_from(bytes).map_err(|e| Rejection::new(None, RejectCode::Malformed, e.to_string()))
}

/// The hash of a change chunk without decoding it: Automerge hashes a chunk's type, length
/// and contents (everything after the magic bytes and the checksum), so this is the hash
/// `Change::hash` gives for the same bytes. Refuses what is not an uncompressed change
/// chunk at all.
pub fn chunk_hash(bytes: &[u8]) -> Result<ChangeHash, Rejection> {
    use sha2::{Digest, Sha256};
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    if bytes.len() < 9 || bytes[..4] != MAGIC || bytes[8] != 1 {
        return Err(Rejection::new(
            None,
            RejectCode::Malformed,
            "not an uncompressed Automerge change chunk (send Change::raw_bytes)".into(),
        ));
    }
    Ok(ChangeHash(Sha256::digest(&bytes[8..]).into()))
}

/// Validates one change against the accepted state of its document. Whole change or nothing.
pub fn validate(doc: &AcceptedDoc, env: &Env<'_>, change: Change) -> Result<Verdict, Rejection> {
    let hash = change.hash();
    let reject = |code: RejectCode, reason: String| Rejection::new(Some(hash), code, reason);
    // Automerge parses a change without checking its checksum, but refuses to load one that
    // is wrong: such bytes must never be stored.
    let raw = change.raw_bytes();
    if raw.len() < 8 || raw[4..8] != hash.0[..4] {
        return Err(reject(RejectCode::Malformed, "bad checksum".into()));
    }
    // Metadata lookups: `get_change_by_hash` would rebuild whole changes.
    if doc.accepted_max_op(&hash).is_some() {
        // An ack says "this change is part of the document": only for those who may know.
        may_know(doc, env, &change).map_err(|(code, reason)| reject(code, reason))?;
        return Ok(Verdict::AlreadyAccepted(hash));
    }
    // Before any decoding: the op count is in the change's header.
    let max_ops = max_ops(doc.id());
    if change.len() > max_ops {
        return Err(reject(
            RejectCode::TooManyOps,
            format!("{} ops in one change; at most {max_ops} here", change.len()),
        ));
    }
    for dep in change.deps() {
        if doc.accepted_max_op(dep).is_none() {
            return Err(reject(
                RejectCode::MissingDependency,
                format!("dependency {dep} is not accepted"),
            ));
        }
    }
    let actor = change.actor_id().clone();
    if actor == *doc.genesis_actor() {
        return Err(reject(
            RejectCode::ForgedActor,
            "the genesis actor writes only the genesis".into(),
        ));
    }
    if actor == *doc.cut_actor() {
        return Err(reject(
            RejectCode::ForgedActor,
            "the cut actor writes only a generation's state".into(),
        ));
    }
    if actor == *doc.creation_actor() {
        return validate_creation(doc, env, change);
    }
    let new_binding = match env.bindings.account_of(&actor) {
        Some(account) if account == env.author.account => None,
        Some(account) => {
            return Err(reject(
                RejectCode::ActorBoundToOther,
                format!("actor {actor} writes for {account}"),
            ))
        }
        None => Some(actor.clone()),
    };
    let (last_seq, last_max_op) = doc.actor_progress(&actor);
    if change.seq() != last_seq + 1 {
        return Err(reject(
            RejectCode::SeqGap,
            format!("seq {} after {last_seq}", change.seq()),
        ));
    }
    // Op counters are a Lamport clock: a change starts above everything it builds on, or
    // the document can no longer be saved and loaded.
    let deps_max_op = change
        .deps()
        .iter()
        .filter_map(|dep| doc.accepted_max_op(dep))
        .max()
        .unwrap_or(0);
    let floor = last_max_op.max(deps_max_op);
    if change.start_op().get() <= floor {
        return Err(reject(
            RejectCode::BadStartOp,
            format!(
                "start op {} is not above op {floor} it builds on",
                change.start_op()
            ),
        ));
    }
    // Decoding panics inside Automerge on some malformed inputs (found by fuzzing), and
    // surplus column data survives parsing but breaks loading later: accept only changes that
    // decode and re-encode to the very same hash.
    let expanded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode()))
        .map_err(|_| reject(RejectCode::Malformed, "the ops do not decode".into()))?;
    let canonical = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Change::from(expanded.clone()).hash()
    }))
    .map_err(|_| reject(RejectCode::Malformed, "the ops do not re-encode".into()))?;
    if canonical != hash {
        return Err(reject(
            RejectCode::Malformed,
            "the change is not canonically encoded".into(),
        ));
    }
    if change.is_empty() {
        return Err(reject(
            RejectCode::EmptyChange,
            "a change without ops".into(),
        ));
    }
    let path_ops =
        ops::resolve(doc, &change, &expanded).map_err(|(code, reason)| reject(code, reason))?;
    let effects =
        interpret::effects(doc, env, &path_ops).map_err(|(code, reason)| reject(code, reason))?;
    let ctx = context(doc, env, &effects);
    for effect in &effects {
        policy::check(&ctx, env.author, effect)
            .map_err(|d| reject(RejectCode::Policy(d.code), d.reason))?;
    }
    let mut footprint = footprint(doc, &path_ops);
    footprint.created = effects
        .iter()
        .filter(|e| matches!(e, Effect::PostMessage(_)))
        .count();
    Ok(Verdict::Accept(Box::new(Accepted {
        hash,
        change,
        new_binding,
        effects,
        footprint,
    })))
}

/// The paths an accepted change writes (keys from the document's root), resolved on the
/// state it was accepted on; `None` when they cannot be resolved. For a change another
/// node accepted: the cached conversation is refreshed by what it touched, O(change).
pub fn written_paths(doc: &AcceptedDoc, change: &Change) -> Option<Vec<Vec<String>>> {
    let expanded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode())).ok()?;
    let ops = ops::resolve(doc, change, &expanded).ok()?;
    Some(ops.into_iter().map(|op| op.path).collect())
}

/// Validates against the accepted state including staged changes (see
/// [`AcceptedDoc::stage`]). A change that touches what a staged change wrote, or that is
/// refused for a reason the staged changes could change, is validated again after they are
/// applied, so the verdict is always the one `validate` gives on the fully applied document.
pub fn validate_staged(
    doc: &mut AcceptedDoc,
    env: &Env<'_>,
    change: Change,
) -> Result<Verdict, Rejection> {
    if !doc.has_staged() {
        return validate(doc, env, change);
    }
    let first = validate(doc, env, change.clone());
    let stale = match &first {
        Ok(Verdict::Accept(a)) => doc.depends_on_staged(&a.footprint),
        Ok(Verdict::AlreadyAccepted(_)) => false,
        Err(r) => state_dependent(r.code),
    };
    if !stale {
        return first;
    }
    doc.apply_staged().map_err(|e| {
        Rejection::new(
            Some(change.hash()),
            RejectCode::Malformed,
            format!("applying accepted changes: {e}"),
        )
    })?;
    validate(doc, env, change)
}

/// The most ops one change to `doc` may hold.
pub fn max_ops(doc: &DocId) -> usize {
    match doc.target() {
        DocTarget::Conv(_) => limits::CONV_CHANGE_MAX_OPS,
        _ => limits::CHANGE_MAX_OPS,
    }
}

/// May the author be told that an accepted change is part of `doc`? Its own writer (by actor
/// binding) always; otherwise whoever may read the document: anyone for a profile, the
/// owner for a private document, an active member or a service account for a conversation
/// and its buckets.
fn may_know(doc: &AcceptedDoc, env: &Env<'_>, change: &Change) -> Result<(), ops::Failure> {
    if env.bindings.account_of(change.actor_id()).as_ref() == Some(&env.author.account) {
        return Ok(());
    }
    let denied = |code, reason: String| Err((RejectCode::Policy(code), reason));
    match doc.id().target() {
        DocTarget::Profile(_) => Ok(()),
        DocTarget::Private(owner) if *owner == env.author.account => Ok(()),
        DocTarget::Private(_) => denied(
            policy::DenyCode::NotOwner,
            "a private document is its account's".into(),
        ),
        DocTarget::Conv(_) | DocTarget::Msgs(..) => {
            let conv = env.conv.filter(|c| c.meta.is_some());
            match conv {
                Some(_) if env.author.service => Ok(()),
                Some(c)
                    if c.active_member(&env.author.account).is_some()
                        && env.parent_standing.is_some_and(|s| !s.is_active()) =>
                {
                    denied(
                        policy::DenyCode::NotParentMember,
                        format!("{} is no longer in the thread's parent", env.author.account),
                    )
                }
                Some(c) if c.active_member(&env.author.account).is_some() => Ok(()),
                Some(c) if c.member(&env.author.account).is_some() => denied(
                    policy::DenyCode::MemberInactive,
                    format!("{} is no longer a member", env.author.account),
                ),
                _ => denied(
                    policy::DenyCode::NotMember,
                    format!("{} is not a member", env.author.account),
                ),
            }
        }
    }
}

/// Rejections that read the document's content. The others come from the change alone or
/// from the overlay of staged hashes and actor progress, which is exact.
fn state_dependent(code: RejectCode) -> bool {
    matches!(
        code,
        RejectCode::UnknownObject
            | RejectCode::HiddenObject
            | RejectCode::ConflictingWrite
            | RejectCode::Policy(_)
    )
}

/// The message ids and reaction keys a bucket change touches.
fn footprint(doc: &AcceptedDoc, ops: &[ops::PathOp]) -> Footprint {
    let mut out = Footprint::default();
    if !matches!(doc.id().target(), DocTarget::Msgs(..)) {
        return out;
    }
    for op in ops {
        match op.path.as_slice() {
            [messages, _shard, id, ..] if messages == keys::MESSAGES => {
                out.wrote_messages.insert(id.clone());
            }
            [reactions, key] if reactions == keys::REACTIONS => {
                if let Some((message, account, _)) = split_reaction_key(key) {
                    out.read_messages.insert(message.to_owned());
                    out.reactors.insert(format!("{message}|{account}"));
                }
                out.reactions.insert(key.clone());
            }
            _ => {}
        }
    }
    out
}

/// The policy context of a document; a thread's parent comes from its meta or, while it is
/// being created, from the creation effect.
fn context<'a>(doc: &AcceptedDoc, env: &Env<'a>, effects: &[Effect]) -> Context<'a> {
    let thread_of = |c: &Conversation| {
        c.meta
            .as_ref()
            .and_then(|m| m.thread.as_ref())
            .map(|t| t.parent.clone())
    };
    let parent_id = env.conv.and_then(thread_of).or_else(|| {
        effects.iter().find_map(|e| match e {
            Effect::CreateConversation(c) => thread_of(c),
            _ => None,
        })
    });
    Context {
        conv: env.conv,
        parent: parent_id.and_then(|id| env.others.conversation(&id)),
        now_ms: env.now_ms,
        last_post_ms: env.last_post_ms,
        parent_standing: env.parent_standing,
        parent_message: env.parent_message,
        bucket: match doc.id().target() {
            DocTarget::Msgs(_, bucket) => Some(*bucket),
            _ => None,
        },
    }
}

/// The deterministic creation change of a direct conversation or a support thread: only the
/// exact expected bytes, submitted by one of its members.
fn validate_creation(
    doc: &AcceptedDoc,
    env: &Env<'_>,
    change: Change,
) -> Result<Verdict, Rejection> {
    let hash = change.hash();
    let reject = |code: RejectCode, reason: &str| Rejection::new(Some(hash), code, reason.into());
    let DocTarget::Conv(conv_id) = doc.id().target() else {
        return Err(reject(
            RejectCode::ForgedActor,
            "creation changes belong to conversations",
        ));
    };
    // Rebuild what the change claims to be from its own content, then compare bytes.
    // From the genesis alone: cheap, and the expected change depends on nothing else.
    let mut probe =
        crate::doc::genesis(doc.id()).map_err(|e| reject(RejectCode::Malformed, &e.to_string()))?;
    probe
        .apply_changes([change.clone()])
        .map_err(|e| reject(RejectCode::Malformed, &e.to_string()))?;
    let claimed = crate::doc::read::read_conversation(&probe, conv_id.clone());
    let tenant = doc.id().tenant();
    let encrypted = claimed.meta.as_ref().is_some_and(|m| m.encrypted);
    let expected = match claimed.meta.as_ref().map(|m| (m.kind, m.resource.clone())) {
        Some((ConvKind::Direct, _)) => {
            let members: Vec<&AccountId> = claimed.members.keys().collect();
            match members.as_slice() {
                [a, b] if encrypted => write::encrypted_direct_creation_change(tenant, a, b).ok(),
                [a, b] => write::direct_creation_change(tenant, a, b).ok(),
                _ => None,
            }
        }
        Some((ConvKind::Support, Some(link))) if encrypted => {
            write::encrypted_support_creation_change(tenant, &link).ok()
        }
        Some((ConvKind::Support, Some(link))) => write::support_creation_change(tenant, &link).ok(),
        _ => None,
    };
    match expected {
        Some((id, expected)) if id == *doc.id() && expected.hash() == hash => {}
        _ => {
            return Err(reject(
                RejectCode::ForgedActor,
                "not the deterministic creation change of this conversation",
            ))
        }
    }
    let is_party = claimed.members.contains_key(&env.author.account);
    if !(is_party || env.author.service) {
        return Err(reject(
            RejectCode::Policy(policy::DenyCode::NotMember),
            "only its members (or a service account) create a direct conversation or support thread",
        ));
    }
    Ok(Verdict::Accept(Box::new(Accepted {
        hash,
        change,
        new_binding: None,
        effects: Vec::new(),
        footprint: Footprint::default(),
    })))
}
