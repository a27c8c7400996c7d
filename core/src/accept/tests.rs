//! The acceptor's protocol with its host: what it asks, in which order, and what it keeps.

use std::collections::HashMap;

use automerge::{ActorId, Automerge, Change};

use super::*;
use crate::doc::{self, write, IntentTag};
use crate::ids::MessageId;
use crate::model::conversation::{
    ConvKind, Info, Member, MemberStatus, Role, Settings, DEFAULT_BUCKET_MS,
};
use crate::model::message::NewMessage;
use crate::policy::Author;

const NOW: i64 = 1_700_000_000_000;

fn tenant() -> TenantId {
    TenantId::new("acme").expect("tenant")
}

fn conv_id() -> ConvId {
    ConvId::new("room").expect("conv")
}

fn account(name: &str) -> AccountId {
    AccountId::new(name).expect("account")
}

fn conv_doc() -> DocId {
    DocId::conv(&tenant(), &conv_id())
}

fn bucket(n: i64) -> DocId {
    DocId::msgs(&tenant(), &conv_id(), NOW.div_euclid(DEFAULT_BUCKET_MS) + n)
}

fn acceptor(max_buckets: usize) -> Acceptor {
    Acceptor::new(
        UnitId::of(&conv_doc()),
        AcceptorConfig {
            max_buckets,
            ..AcceptorConfig::default()
        },
    )
}

/// Storage as the host sees it: nothing stored (every document is its genesis), bindings
/// and seqs as given.
#[derive(Default)]
struct Host {
    bindings: HashMap<ActorId, AccountId>,
    seqs: HashMap<ChangeHash, u64>,
    asked: Vec<Need>,
    /// Where accounts stand in a thread's parent (active unless listed), at `parent_seq`.
    standings: HashMap<AccountId, crate::policy::Standing>,
    parent_seq: u64,
    /// What the parent holds of the message a thread hangs on (present unless set).
    parent_message: Option<crate::policy::ParentMessage>,
}

impl Host {
    fn drive(
        &mut self,
        acceptor: &mut Acceptor,
        doc: &DocId,
        author: &Author,
        change: Change,
    ) -> Decision {
        let mut sub = Submission::from_change(doc, author, change, NOW);
        self.drive_submission(acceptor, &mut sub)
    }

    fn drive_submission(&mut self, acceptor: &mut Acceptor, sub: &mut Submission<'_>) -> Decision {
        for _ in 0..20 {
            match acceptor.step(sub) {
                Step::Done(decision) => return decision,
                Step::Need(need) => {
                    self.asked.push(need.clone());
                    match need {
                        Need::Doc(id) => acceptor.load(id, StoredDoc::default()).expect("load"),
                        Need::Binding(actor) => {
                            let found = self.bindings.get(&actor).cloned();
                            acceptor.answer_binding(sub, actor, found);
                        }
                        Need::Parent(id) => sub.answer_parent(id, None),
                        Need::SeqOf(hash) => sub.answer_seq(self.seqs.get(&hash).copied()),
                        Need::Standing { account, .. } => {
                            let standing = self
                                .standings
                                .get(&account)
                                .copied()
                                .unwrap_or(crate::policy::Standing::Active);
                            acceptor.answer_standing(account, standing, self.parent_seq);
                        }
                        Need::ParentMessage { .. } => sub.answer_parent_message(
                            self.parent_message
                                .unwrap_or(crate::policy::ParentMessage::Present),
                        ),
                        Need::MessageBucket { .. } => sub.answer_message_bucket(None),
                        // No MLS here: an empty directory.
                        Need::Devices(_) => sub.answer_devices(Default::default()),
                        Need::Encrypted(_) => sub.answer_encrypted(Vec::new()),
                    }
                }
            }
        }
        panic!("the acceptor keeps asking: {:?}", self.asked);
    }
}

fn accepted(decision: Decision) -> AcceptedChange {
    match decision {
        Decision::Accepted(a) => a,
        other => panic!("not accepted: {other:?}"),
    }
}

fn creation(alice: &AccountId) -> (Automerge, Change) {
    let mut replica = doc::genesis(&conv_doc())
        .expect("genesis")
        .with_actor(ActorId::from(&[1u8; 16][..]));
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: alice.clone(),
        created_at: NOW,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(alice.clone(), Role::Owner)],
        encrypted: false,
    };
    write::create_conversation(&mut replica, &IntentTag::new("c", "create"), &spec)
        .expect("create");
    let change = replica.get_last_local_change().expect("change");
    (replica, change)
}

fn message(replica: &mut Automerge, id: &str, author: &AccountId) -> Change {
    message_at(replica, id, author, NOW)
}

/// A message written at `at` (it belongs to that time's bucket).
fn message_at(replica: &mut Automerge, id: &str, author: &AccountId, at: i64) -> Change {
    let m = NewMessage::text(MessageId::new(id).expect("id"), author.clone(), "hi", at);
    write::post_message(replica, &IntentTag::new(id, "send"), &m).expect("post");
    replica.get_last_local_change().expect("change")
}

fn bucket_replica(doc: &DocId, actor: u8) -> Automerge {
    doc::genesis(doc)
        .expect("genesis")
        .with_actor(ActorId::from(&[actor; 16][..]))
}

/// A conversation of alice's, created and committed.
fn created(host: &mut Host, max_buckets: usize) -> (Acceptor, Author) {
    let alice = account("alice");
    let author = Author::user(alice.clone());
    let mut acc = acceptor(max_buckets);
    let (_, change) = creation(&alice);
    let a = accepted(host.drive(&mut acc, &conv_doc(), &author, change));
    assert!(a.created);
    acc.committed(&conv_doc(), a.seq);
    (acc, author)
}

#[test]
fn an_outsider_is_refused_without_loading_the_bucket() {
    let mut host = Host::default();
    let (mut acc, _) = created(&mut host, 4);
    host.asked.clear();
    let mallory = Author::user(account("mallory"));
    let mut replica = bucket_replica(&bucket(0), 9);
    let change = message(&mut replica, "m1", &mallory.account);
    match host.drive(&mut acc, &bucket(0), &mallory, change) {
        Decision::Rejected(r) => assert_eq!(r.code, RejectCode::Policy(DenyCode::NotMember)),
        other => panic!("{other:?}"),
    }
    assert!(host.asked.is_empty(), "asked {:?}", host.asked);
    assert!(acc.doc(&bucket(0)).is_none(), "the bucket was loaded");
}

#[test]
fn submitted_bytes_are_decoded_only_once_the_author_may_write_there() {
    let mut host = Host::default();
    let (mut acc, alice) = created(&mut host, 4);
    let part = bucket(0);
    // Framed as a change chunk (magic, a checksum, chunk type 1), but no change.
    let mut junk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 19];
    junk.extend_from_slice(b"not a change at all");
    let mallory = Author::user(account("mallory"));
    let mut sub = Submission::new(&part, &mallory, &junk, NOW).expect("framed");
    match host.drive_submission(&mut acc, &mut sub) {
        Decision::Rejected(r) => {
            assert_eq!(r.code, RejectCode::Policy(DenyCode::NotMember));
            assert_eq!(r.hash, crate::validate::chunk_hash(&junk).ok());
        }
        other => panic!("{other:?}"),
    }
    let mut sub = Submission::new(&part, &alice, &junk, NOW).expect("framed");
    match host.drive_submission(&mut acc, &mut sub) {
        Decision::Rejected(r) => assert_eq!(r.code, RejectCode::Malformed),
        other => panic!("{other:?}"),
    }
    // A member's real change, hashed before and after decoding alike.
    let mut replica = bucket_replica(&bucket(0), 9);
    let change = message(&mut replica, "m1", &alice.account);
    let bytes = change.raw_bytes().to_vec();
    assert_eq!(
        crate::validate::chunk_hash(&bytes).ok(),
        Some(change.hash())
    );
    let mut sub = Submission::new(&part, &alice, &bytes, NOW).expect("framed");
    assert_eq!(sub.hash(), change.hash());
    let a = accepted(host.drive_submission(&mut acc, &mut sub));
    assert_eq!(a.hash, change.hash());
}

#[test]
fn the_conversation_is_asked_before_the_bucket_and_a_binding_once() {
    let mut host = Host::default();
    let alice = Author::user(account("alice"));
    let mut acc = acceptor(4);
    let mut replica = bucket_replica(&bucket(0), 2);
    // Nothing loaded yet: the conversation, then the bucket, then the actor's binding.
    let (_, create) = creation(&alice.account);
    accepted(host.drive(&mut acc, &conv_doc(), &alice, create));
    host.asked.clear();
    let first = message(&mut replica, "m1", &alice.account);
    let a = accepted(host.drive(&mut acc, &bucket(0), &alice, first));
    assert_eq!(
        host.asked,
        vec![
            Need::Doc(bucket(0)),
            Need::Binding(ActorId::from(&[2u8; 16][..]))
        ]
    );
    assert_eq!(a.new_binding, Some(ActorId::from(&[2u8; 16][..])));
    // The binding its first change made is kept: never asked again.
    host.asked.clear();
    let second = message(&mut replica, "m2", &alice.account);
    let b = accepted(host.drive(&mut acc, &bucket(0), &alice, second));
    assert!(host.asked.is_empty(), "asked {:?}", host.asked);
    assert_eq!((a.seq, b.seq), (1, 2));
}

#[test]
fn a_fresh_acceptor_asks_for_the_conversation_first() {
    let mut host = Host::default();
    let alice = Author::user(account("alice"));
    let mut acc = acceptor(4);
    let mut replica = bucket_replica(&bucket(0), 2);
    let change = message(&mut replica, "m1", &alice.account);
    // No conversation exists: validation refuses, after conversation, bucket and binding.
    let decision = host.drive(&mut acc, &bucket(0), &alice, change);
    assert!(matches!(decision, Decision::Rejected(_)), "{decision:?}");
    assert_eq!(host.asked[0], Need::Doc(conv_doc()));
    assert_eq!(host.asked[1], Need::Doc(bucket(0)));
    assert_eq!(host.asked.len(), 3, "{:?}", host.asked);
}

#[test]
fn a_resubmission_waits_for_the_commit_then_asks_storage_for_its_seq() {
    let mut host = Host::default();
    let (mut acc, alice) = created(&mut host, 4);
    let mut replica = bucket_replica(&bucket(0), 2);
    let change = message(&mut replica, "m1", &alice.account);
    let a = accepted(host.drive(&mut acc, &bucket(0), &alice, change.clone()));
    // Accepted, not committed: not durable yet, so not to be acked before the commit.
    match host.drive(&mut acc, &bucket(0), &alice, change.clone()) {
        Decision::AlreadyAccepted { seq, durable, .. } => {
            assert_eq!((seq, durable), (a.seq, false));
        }
        other => panic!("{other:?}"),
    }
    acc.committed(&bucket(0), a.seq);
    host.seqs.insert(a.hash, a.seq);
    host.asked.clear();
    match host.drive(&mut acc, &bucket(0), &alice, change) {
        Decision::AlreadyAccepted { seq, durable, .. } => assert_eq!((seq, durable), (1, true)),
        other => panic!("{other:?}"),
    }
    assert_eq!(host.asked, vec![Need::SeqOf(a.hash)]);
}

#[test]
fn eviction_never_drops_uncommitted_changes() {
    let mut host = Host::default();
    let (mut acc, alice) = created(&mut host, 1);
    let mut first = bucket_replica(&bucket(0), 2);
    let change = message(&mut first, "m1", &alice.account);
    let a = accepted(host.drive(&mut acc, &bucket(0), &alice, change));
    // A second bucket (an hour-old message's) over the limit of one: the first holds an
    // uncommitted change.
    let mut second = bucket_replica(&bucket(-1), 3);
    let change = message_at(&mut second, "m2", &alice.account, NOW - DEFAULT_BUCKET_MS);
    let b = accepted(host.drive(&mut acc, &bucket(-1), &alice, change));
    assert!(acc.doc(&bucket(0)).is_some() && acc.doc(&bucket(-1)).is_some());
    assert!(acc.has_uncommitted(&bucket(0)));
    // Committed, the least recently used leaves when the next one loads.
    acc.committed(&bucket(0), a.seq);
    acc.committed(&bucket(-1), b.seq);
    acc.load(bucket(-2), StoredDoc::default()).expect("load");
    assert!(acc.doc(&bucket(0)).is_none());
    assert!(acc.doc(&bucket(-2)).is_some());
    assert_eq!(acc.loaded_len(), 2, "the conversation and one bucket");
}

#[test]
fn reset_forgets_everything_loaded() {
    let mut host = Host::default();
    let (mut acc, alice) = created(&mut host, 4);
    let mut replica = bucket_replica(&bucket(0), 2);
    let change = message(&mut replica, "m1", &alice.account);
    accepted(host.drive(&mut acc, &bucket(0), &alice, change));
    acc.reset();
    assert_eq!(acc.loaded_len(), 0);
    assert!(acc.conversation().is_none());
    assert!(acc.binding(&ActorId::from(&[2u8; 16][..])).is_none());
    assert_eq!(
        acc.need_to_read(&bucket(0)).expect("ours"),
        Some(Need::Doc(conv_doc()))
    );
}

#[test]
fn reading_follows_membership() {
    let mut host = Host::default();
    let (acc, alice) = created(&mut host, 4);
    assert_eq!(acc.may_read(&bucket(0), &alice.account, false), Ok(()));
    assert_eq!(
        acc.may_read(&bucket(0), &account("eve"), false),
        Err(ReadDenied::NotMember(account("eve")))
    );
    assert_eq!(acc.may_read(&bucket(0), &account("bot"), true), Ok(()));
    let other = DocId::parse("acme/conv/elsewhere").expect("id");
    let mut acc = acc;
    assert!(matches!(
        acc.need_to_read(&other),
        Err(AcceptError::OtherUnit(_))
    ));
}

/// A conversation of alice's with bob as a member, as two nodes hold it after loading it:
/// both acceptors took the same two committed changes.
fn shared_group(host: &mut Host) -> (Acceptor, Acceptor, Automerge, Vec<Change>) {
    let alice = Author::user(account("alice"));
    let (mut replica, create) = creation(&alice.account);
    let mut bob = Member::new(account("bob"), Role::Member);
    bob.invited_by = Some(alice.account.clone());
    write::add_member(
        &mut replica,
        &IntentTag::new("add", "add_member"),
        NOW,
        &bob,
    )
    .expect("add bob");
    let add = replica.get_last_local_change().expect("change");
    let mut nodes = [acceptor(4), acceptor(4)];
    for node in &mut nodes {
        for change in [create.clone(), add.clone()] {
            let a = accepted(host.drive(node, &conv_doc(), &alice, change));
            node.committed(&conv_doc(), a.seq);
        }
    }
    let [a, b] = nodes;
    (a, b, replica, vec![create, add])
}

#[test]
fn rewind_takes_back_uncommitted_bucket_changes_without_a_reload() {
    let mut host = Host::default();
    let (mut acc, alice) = created(&mut host, 4);
    let mut replica = bucket_replica(&bucket(0), 2);
    let m1 = message(&mut replica, "m1", &alice.account);
    let a = accepted(host.drive(&mut acc, &bucket(0), &alice, m1));
    acc.committed(&bucket(0), a.seq);
    let m2 = message(&mut replica, "m2", &alice.account);
    let m3 = message(&mut replica, "m3", &alice.account);
    accepted(host.drive(&mut acc, &bucket(0), &alice, m2.clone()));
    accepted(host.drive(&mut acc, &bucket(0), &alice, m3.clone()));
    assert_eq!(acc.known_seq(&bucket(0)), Some(3));

    // Another node took seq 2 first: the two uncommitted changes are taken back.
    acc.rewind();
    assert_eq!(
        acc.known_seq(&bucket(0)),
        Some(1),
        "still loaded, at its commit"
    );
    assert!(!acc.has_uncommitted(&bucket(0)));
    // They are not known as accepted any more: validated again, in order, they are
    // accepted with the next seqs (their actor's progress was taken back too).
    host.asked.clear();
    let again = accepted(host.drive(&mut acc, &bucket(0), &alice, m2));
    assert_eq!(again.seq, 2);
    assert_eq!(
        accepted(host.drive(&mut acc, &bucket(0), &alice, m3)).seq,
        3
    );
    assert!(
        !host.asked.iter().any(|n| matches!(n, Need::Doc(_))),
        "nothing was loaded again: {:?}",
        host.asked
    );
}

#[test]
fn rewind_drops_a_document_that_applied_uncommitted_changes() {
    let mut host = Host::default();
    let (mut a, _b, mut replica, _) = shared_group(&mut host);
    let alice = Author::user(account("alice"));
    write::set_member_status(
        &mut replica,
        &IntentTag::new("rm", "remove"),
        NOW,
        &account("bob"),
        MemberStatus::Removed,
    )
    .expect("remove");
    let remove = replica.get_last_local_change().expect("change");
    accepted(host.drive(&mut a, &conv_doc(), &alice, remove));
    // The conversation document applies at once: it cannot take a change back.
    a.rewind();
    assert!(a.conversation().is_none());
    assert_eq!(
        a.need_to_read(&bucket(0)).expect("ours"),
        Some(Need::Doc(conv_doc()))
    );
}

#[test]
fn another_nodes_removal_is_absorbed_moves_the_policy_and_refuses_the_removed() {
    let mut host = Host::default();
    let (mut a, mut b, mut replica, _) = shared_group(&mut host);
    let alice = Author::user(account("alice"));
    let bob = Author::user(account("bob"));
    // Bob posts on node B while his removal is accepted on node A.
    write::set_member_status(
        &mut replica,
        &IntentTag::new("rm", "remove"),
        NOW,
        &bob.account,
        MemberStatus::Removed,
    )
    .expect("remove");
    let remove = replica.get_last_local_change().expect("change");
    let removal = accepted(host.drive(&mut a, &conv_doc(), &alice, remove.clone()));
    assert!(removal.moves_policy);
    assert_eq!(removal.seq, 3);
    let mut bobs = bucket_replica(&bucket(0), 7);
    let post = message(&mut bobs, "b1", &bob.account);
    let on_b = accepted(host.drive(&mut b, &bucket(0), &bob, post.clone()));
    assert_eq!(
        on_b.fence,
        Some(2),
        "validated against the policy before the removal"
    );

    // Node A committed first; node B's commit is refused (the fence moved): it takes back
    // its change, absorbs A's removal from the log and validates the post again.
    b.rewind();
    let raw = remove.raw_bytes().to_vec();
    let tail = Tail {
        changes: vec![(3, &raw[..])],
        last_seq: 3,
        policy_seq: 3,
        snapshot_seq: 0,
    };
    let gone = b.absorb(&conv_doc(), &tail).expect("absorb");
    assert_eq!(
        gone,
        vec![Deactivated {
            account: bob.account.clone(),
            status: MemberStatus::Removed
        }]
    );
    assert_eq!(b.known_seq(&conv_doc()), Some(3));
    match host.drive(&mut b, &bucket(0), &bob, post) {
        Decision::Rejected(r) => assert!(
            matches!(
                r.code,
                RejectCode::Policy(DenyCode::MemberInactive | DenyCode::NotMember)
            ),
            "{r:?}"
        ),
        other => panic!("bob's post after his removal: {other:?}"),
    }
    // Alice's next post is fenced on the moved policy.
    let mut alices = bucket_replica(&bucket(0), 8);
    let post = message(&mut alices, "a1", &alice.account);
    assert_eq!(
        accepted(host.drive(&mut b, &bucket(0), &alice, post)).fence,
        Some(3)
    );
    // A tail that does not continue what is held (a gap) makes the document leave memory.
    let gap = Tail {
        changes: vec![(9, &raw[..])],
        last_seq: 9,
        policy_seq: 3,
        snapshot_seq: 0,
    };
    assert!(b.absorb(&conv_doc(), &gap).expect("absorb").is_empty());
    assert!(b.conversation().is_none());
}

#[test]
fn a_partial_tail_is_taken_but_the_policy_version_waits_for_the_rest() {
    let mut host = Host::default();
    let (mut a, mut b, mut replica, _) = shared_group(&mut host);
    let alice = Author::user(account("alice"));
    write::set_member_status(
        &mut replica,
        &IntentTag::new("rm", "remove"),
        NOW,
        &account("bob"),
        MemberStatus::Removed,
    )
    .expect("remove");
    let remove = replica.get_last_local_change().expect("change");
    accepted(host.drive(&mut a, &conv_doc(), &alice, remove.clone()));
    let raw = remove.raw_bytes().to_vec();
    // The log holds up to seq 4 (policy moved at 4); this read brought seq 3 only.
    let tail = Tail {
        changes: vec![(3, &raw[..])],
        last_seq: 4,
        policy_seq: 4,
        snapshot_seq: 0,
    };
    b.absorb(&conv_doc(), &tail).expect("absorb");
    assert_eq!(b.known_seq(&conv_doc()), Some(3));
    let mut alices = bucket_replica(&bucket(0), 8);
    let post = message(&mut alices, "a1", &alice.account);
    // Stamped with the version it has seen all of (2), so the commit refuses it while
    // the log's version is 4: it is validated again once the rest is read.
    assert_eq!(
        accepted(host.drive(&mut b, &bucket(0), &alice, post)).fence,
        Some(2)
    );
}

fn refused_with(decision: Decision, code: DenyCode) {
    match decision {
        Decision::Rejected(r) => assert_eq!(r.code, RejectCode::Policy(code), "{}", r.reason),
        other => panic!("not refused {code:?}: {other:?}"),
    }
}

#[test]
fn a_bucket_part_holds_its_most_and_the_next_opens_once_the_previous_holds_enough() {
    use crate::ids::Bucket;
    use crate::limits::{BUCKET_MAX_MESSAGES, BUCKET_OPENS_NEXT_AT};
    let mut host = Host::default();
    let (mut acc, alice) = created(&mut host, 4);
    let period = NOW.div_euclid(DEFAULT_BUCKET_MS);
    let part = |n| DocId::msgs(&tenant(), &conv_id(), Bucket::new(period, n));
    let mut first = bucket_replica(&part(0), 2);

    // Part 1 does not open while part 0 holds fewer than BUCKET_OPENS_NEXT_AT messages.
    for i in 0..BUCKET_OPENS_NEXT_AT - 1 {
        let change = message(&mut first, &format!("a{i}"), &alice.account);
        accepted(host.drive(&mut acc, &part(0), &alice, change));
    }
    let mut early = bucket_replica(&part(1), 3);
    let change = message(&mut early, "early", &alice.account);
    refused_with(
        host.drive(&mut acc, &part(1), &alice, change),
        DenyCode::BucketNotOpen,
    );
    assert!(
        host.asked.contains(&Need::Doc(part(0))) || acc.known_seq(&part(0)).is_some(),
        "the previous part is read to decide"
    );

    // Part 0 takes messages up to BUCKET_MAX_MESSAGES (committed and applied along the way,
    // as a host does: the count kept beside the applied document must follow), then
    // refuses the next one: it goes to the next part.
    let mut last = 0;
    for i in BUCKET_OPENS_NEXT_AT - 1..BUCKET_MAX_MESSAGES {
        let change = message(&mut first, &format!("a{i}"), &alice.account);
        last = accepted(host.drive(&mut acc, &part(0), &alice, change)).seq;
        if i % 256 == 0 {
            acc.committed(&part(0), last);
            acc.apply_staged(0).expect("apply");
        }
    }
    acc.committed(&part(0), last);
    let change = message(&mut first, "over", &alice.account);
    refused_with(
        host.drive(&mut acc, &part(0), &alice, change),
        DenyCode::BucketFull,
    );

    // Part 1 opens now, and then takes messages without asking again.
    let mut next = bucket_replica(&part(1), 4);
    for i in 0..3 {
        let change = message(&mut next, &format!("b{i}"), &alice.account);
        accepted(host.drive(&mut acc, &part(1), &alice, change));
    }
}

/// Support names are what a stamped message is checked against (`sender_mismatch`), so a
/// change of them moves the policy version like a membership change: a node that
/// validated a stamp against the names before it is fenced on the older version, its
/// commit is refused once the rename is stored, and the stamp is checked again against the
/// names after it.
#[test]
fn a_rename_of_the_support_names_moves_the_policy_and_fences_stamps_of_the_old_names() {
    use crate::ids::ResourceId;
    use crate::model::conversation::ResourceLink;
    use crate::model::support::{SenderRole, Stamp};
    let mut host = Host::default();
    let (alice, carol) = (
        Author::user(account("alice")),
        Author::user(account("carol")),
    );
    let link = ResourceLink {
        resource: ResourceId::new("flat-7").expect("resource"),
        client: carol.account.clone(),
        owner: alice.account.clone(),
    };
    let (conv_doc, create) = write::support_creation_change(&tenant(), &link).expect("create");
    let conv = conv_doc.conv_id().cloned().expect("a conversation");
    let bucket = DocId::msgs(&tenant(), &conv, NOW.div_euclid(DEFAULT_BUCKET_MS));
    let mut replica = doc::genesis(&conv_doc)
        .expect("genesis")
        .with_actor(ActorId::from(&[3u8; 16][..]));
    replica.apply_changes([create.clone()]).expect("apply");
    write::name_unset(
        &mut replica,
        &IntentTag::new("n", "name_support"),
        NOW,
        &[
            (crate::doc::schema::keys::CLIENT_NAME, "Carol"),
            (crate::doc::schema::keys::OWNER_NAME, "Alice"),
        ],
    )
    .expect("names");
    let names = replica.get_last_local_change().expect("change");
    let new_node = || {
        Acceptor::new(
            UnitId::of(&conv_doc),
            AcceptorConfig {
                max_buckets: 4,
                ..AcceptorConfig::default()
            },
        )
    };
    let mut nodes = [new_node(), new_node()];
    for node in &mut nodes {
        let a = accepted(host.drive(node, &conv_doc, &carol, create.clone()));
        node.committed(&conv_doc, a.seq);
        let a = accepted(host.drive(node, &conv_doc, &carol, names.clone()));
        assert!(a.moves_policy, "naming the thread moves the policy");
        node.committed(&conv_doc, a.seq);
    }
    let [mut a, mut b] = nodes;

    // The owner's side renames the client on node A while carol posts on node B stamped
    // with the name she had.
    let mut replica = replica.with_actor(ActorId::from(&[4u8; 16][..]));
    write::set_info(
        &mut replica,
        &IntentTag::new("r", "set_info"),
        NOW,
        crate::doc::schema::keys::CLIENT_NAME,
        Some("Caroline"),
    )
    .expect("rename");
    let rename = replica.get_last_local_change().expect("change");
    let renamed = accepted(host.drive(&mut a, &conv_doc, &alice, rename.clone()));
    assert!(renamed.moves_policy, "a rename moves the policy version");
    assert_eq!(renamed.seq, 3);
    let mut carols = bucket_replica(&bucket, 9);
    let mut m = NewMessage::text(
        MessageId::new("c1").expect("id"),
        carol.account.clone(),
        "hi",
        NOW,
    );
    m.stamp = Stamp {
        sender_role: Some(SenderRole::Client),
        sender_name: Some("Carol".into()),
        related_lead: None,
    };
    write::post_message(&mut carols, &IntentTag::new("c1", "send"), &m).expect("post");
    let post = carols.get_last_local_change().expect("change");
    let on_b = accepted(host.drive(&mut b, &bucket, &carol, post.clone()));
    assert_eq!(
        on_b.fence,
        Some(2),
        "validated against the names before the rename: the commit compares 2 with 3"
    );

    // B's commit is refused; it absorbs the rename and checks the stamp again.
    b.rewind();
    let raw = rename.raw_bytes().to_vec();
    let tail = Tail {
        changes: vec![(3, &raw[..])],
        last_seq: 3,
        policy_seq: 3,
        snapshot_seq: 0,
    };
    b.absorb(&conv_doc, &tail).expect("absorb");
    refused_with(
        host.drive(&mut b, &bucket, &carol, post),
        DenyCode::SenderMismatch,
    );
}
