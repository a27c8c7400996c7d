//! Adversarial changes (DESIGN §3, §4). Every case is a change crafted with the automerge crate
//! directly — a raw transaction on a replica, or an `ExpandedChange` built from a real change and
//! tampered with — and submitted to a `Hub` as a client would. Each must be rejected with its
//! exact code and leave the accepted document, its change log, the cached conversation and the
//! actor bindings exactly as they were (`assert_rejected`). Where it is cheap, a twin of the same
//! shape that breaks no rule is accepted, so the suite fails if the hub rejected everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use confab_core::automerge::legacy::{ObjectId, OpId, OpType};
use confab_core::automerge::transaction::{CommitOptions, Transactable, Transaction};
use confab_core::automerge::{
    ActorId, Automerge, Change, ChangeHash, ExpandedChange, ObjId, ObjType, ReadDoc, ScalarValue,
    ROOT,
};
use confab_core::doc::read::{self, get_map};
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::doc::{self as cdoc, creation_actor, genesis_actor, write};
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, ContactId, ConvId, DocId, ResourceId};
use confab_core::model::contact::{Contact, ContactKind};
use confab_core::model::conversation::*;
use confab_core::model::proposal::{
    CreatedByRole, MeetingType, ProposalPayload, ProposalStatus, ProposalType,
};
use confab_core::policy::Author;
use confab_core::validate::{self, AcceptedDoc, Env, RejectCode, Rejection, Verdict};
use support::*;

// ---------- the rejection check ----------

/// Everything a rejected change must leave untouched.
struct Snapshot {
    heads: Vec<ChangeHash>,
    saved: Vec<u8>,
    accepted: usize,
    conv: Option<Conversation>,
    binding: Option<AccountId>,
}

fn snapshot(hub: &Hub, id: &DocId, actor: &ActorId) -> Snapshot {
    // A document the hub never saw is its genesis (that is what the hub starts it from).
    let genesis = |id: &DocId| AcceptedDoc::new(id.clone()).unwrap();
    let (heads, saved) = match hub.doc(id) {
        Some(d) => (d.doc().get_heads(), d.save()),
        None => {
            let g = genesis(id);
            (g.doc().get_heads(), g.save())
        }
    };
    let conv = id.conv_id().map(|c| match hub.conversation(c) {
        Some(conv) => conv.clone(),
        None => {
            let conv_doc = DocId::conv(id.tenant(), c);
            let doc = match hub.doc(&conv_doc) {
                Some(d) => d.doc().clone(),
                None => genesis(&conv_doc).doc().clone(),
            };
            read::read_conversation(&doc, c.clone())
        }
    });
    Snapshot {
        heads,
        saved,
        accepted: hub.changes_after(id, 0).len(),
        conv,
        binding: hub.binding(actor).cloned(),
    }
}

/// Submits `change` as `dev` and asserts it is rejected with `expected_code` and that nothing
/// the hub holds for the document moved: heads, saved bytes, accepted change count, the cached
/// conversation and the binding of the change's actor.
fn assert_rejected(
    hub: &mut Hub,
    dev: &Device,
    doc_id: &DocId,
    change: Change,
    expected_code: &str,
) -> Rejection {
    let hash = change.hash();
    let actor = change.actor_id().clone();
    let before = snapshot(hub, doc_id, &actor);
    let rejection = submit(hub, dev, doc_id, change)
        .expect_err(&format!("expected a rejection with {expected_code}"));
    assert_eq!(
        rejection.code.as_str(),
        expected_code,
        "wrong code; reason: {}",
        rejection.reason
    );
    assert_eq!(rejection.hash, Some(hash), "the rejection names the change");
    assert!(!rejection.reason.is_empty(), "a reason for people");
    let after = snapshot(hub, doc_id, &actor);
    assert_eq!(before.heads, after.heads, "heads moved");
    assert!(before.saved == after.saved, "saved bytes changed");
    assert_eq!(before.accepted, after.accepted, "change log grew");
    assert_eq!(before.conv, after.conv, "cached conversation changed");
    assert_eq!(before.binding, after.binding, "actor binding changed");
    assert!(
        hub.doc(doc_id)
            .is_none_or(|d| d.doc().get_change_by_hash(&hash).is_none()),
        "the rejected change is not in the document"
    );
    rejection
}

/// Submits a change that must be accepted, then brings the device's replica up to date.
fn accept(hub: &mut Hub, dev: &mut Device, id: &DocId, change: Change) -> u64 {
    let (ack, _) = submit(hub, dev, id, change).expect("the twin is accepted");
    dev.pull(hub, id);
    ack.seq
}

// ---------- crafting ----------

/// Runs a raw automerge transaction on `doc` and returns the change it committed.
fn raw_on(doc: &mut Automerge, f: impl FnOnce(&mut Transaction<'_>)) -> Change {
    let mut tx = doc.transaction();
    f(&mut tx);
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(NOW / 1000));
    let hash = hash.expect("the transaction wrote something");
    doc.get_change_by_hash(&hash).expect("committed")
}

/// A raw transaction on a copy of the device's replica (same actor): the device's own replica
/// only moves when the hub accepted something and the device pulls it.
fn raw(dev: &mut Device, id: &DocId, f: impl FnOnce(&mut Transaction<'_>)) -> Change {
    let mut copy = dev.doc(id).clone();
    raw_on(&mut copy, f)
}

/// Decodes a change, lets `f` tamper with it, and encodes it again.
fn tamper(change: &Change, f: impl FnOnce(&mut ExpandedChange)) -> Change {
    let mut e = change.decode();
    e.hash = None;
    f(&mut e);
    Change::from(e)
}

/// The map at `path` from the root.
fn obj<R: ReadDoc>(doc: &R, path: &[&str]) -> ObjId {
    let mut at = ROOT;
    for (i, key) in path.iter().enumerate() {
        // Messages live in the shard map their id hashes to.
        if i == 1 && path[0] == MESSAGES {
            let shard = confab_core::doc::schema::message_shard(key);
            at = get_map(doc, &at, &shard).unwrap_or_else(|| panic!("no shard {shard}"));
        }
        at = get_map(doc, &at, key).unwrap_or_else(|| panic!("no map at {key}"));
    }
    at
}

/// The op id of the value currently at `obj[key]`, as a legacy `OpId` for `pred`.
fn op_id_of(doc: &Automerge, obj: &ObjId, key: &str) -> OpId {
    match doc.get(obj, key).unwrap().expect("a value").1 {
        ObjId::Id(counter, actor, _) => OpId(counter, actor),
        ObjId::Root => panic!("not an op"),
    }
}

fn s(v: &str) -> ScalarValue {
    ScalarValue::from(v)
}

/// The fields of a plain text message.
fn text_fields(author: &str, body: &str) -> Vec<(&'static str, ScalarValue)> {
    vec![
        (AUTHOR, s(author)),
        (KIND, s("text")),
        (BODY, s(body)),
        (CREATED_AT, ScalarValue::Int(NOW)),
    ]
}

/// Writes a new message map `messages/<id>` with `fields`.
fn put_message(tx: &mut Transaction<'_>, id: &str, fields: &[(&'static str, ScalarValue)]) {
    let messages = obj(&*tx, &[MESSAGES]);
    let shard = get_map(
        &*tx,
        &messages,
        &confab_core::doc::schema::message_shard(id),
    )
    .unwrap();
    let m = tx.put_object(&shard, id, ObjType::Map).unwrap();
    for (key, value) in fields {
        tx.put(&m, *key, value.clone()).unwrap();
    }
}

/// A raw change posting a message into the bucket of NOW.
fn raw_post(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    fields: &[(&'static str, ScalarValue)],
) -> (DocId, Change) {
    let bucket = bucket_doc(conv, NOW);
    let change = raw(dev, &bucket, |tx| put_message(tx, id, fields));
    (bucket, change)
}

/// A raw change writing scalar fields of an existing map.
fn raw_put(
    dev: &mut Device,
    id: &DocId,
    path: &[&str],
    fields: &[(&'static str, ScalarValue)],
) -> Change {
    raw(dev, id, |tx| {
        let at = obj(&*tx, path);
        for (key, value) in fields {
            tx.put(&at, *key, value.clone()).unwrap();
        }
    })
}

/// A raw change setting one reaction key (`Some(time)`) or deleting it (`None`).
fn raw_reaction(dev: &mut Device, bucket: &DocId, key: &str, value: Option<i64>) -> Change {
    raw(dev, bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        match value {
            Some(at) => tx.put(&reactions, key, at).unwrap(),
            None => tx.delete(&reactions, key).unwrap(),
        }
    })
}

// ---------- fixtures ----------

/// Group "g": alice owner, bob member, dave admin; alice posted "m1"; everyone has it.
struct Fixture {
    hub: Hub,
    alice: Device,
    bob: Device,
    dave: Device,
    conv: ConvId,
    cd: DocId,
    bucket: DocId,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(tweak: impl FnOnce(&mut Settings)) -> Fixture {
    let mut hub = Hub::new();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut dave = Device::new("dave", 1);
    let conv = create(
        &mut hub,
        "g",
        ConvKind::Group,
        &mut alice,
        &mut [(&mut bob, Role::Member), (&mut dave, Role::Admin)],
        |spec| tweak(&mut spec.settings),
    );
    post(&mut hub, &mut alice, &conv, "m1", "hello").expect("alice posts m1");
    let cd = conv_doc(&conv);
    let bucket = bucket_doc(&conv, NOW);
    for dev in [&mut alice, &mut bob, &mut dave] {
        dev.pull(&hub, &cd);
        dev.pull(&hub, &bucket);
    }
    Fixture {
        hub,
        alice,
        bob,
        dave,
        conv,
        cd,
        bucket,
    }
}

// ---------- actors, sequence, dependencies, bytes ----------

#[test]
fn forged_actor_genesis_actor() {
    let mut f = fixture();
    // Alice's replica writing as the document's genesis actor: a well-formed change whose
    // seq and start op follow the genesis, but nobody may write with that actor.
    let mut forged_doc = f.alice.doc(&f.cd).clone();
    forged_doc.set_actor(genesis_actor(&f.cd));
    let forged = raw_on(&mut forged_doc, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put(&info, TITLE, "hijacked").unwrap();
    });
    assert_eq!(forged.actor_id(), &genesis_actor(&f.cd));
    assert_eq!(forged.seq(), 2, "the genesis actor's next change");
    assert_rejected(&mut f.hub, &f.alice, &f.cd, forged, "forged_actor");

    // Twin: the same edit with alice's own actor.
    let edit = raw_put(&mut f.alice, &f.cd, &[INFO], &[(TITLE, s("renamed"))]);
    accept(&mut f.hub, &mut f.alice, &f.cd, edit);
    assert_eq!(
        f.hub.conversation(&f.conv).unwrap().info.title.as_deref(),
        Some("renamed")
    );
}

#[test]
fn forged_actor_creation_actor() {
    // In a group: the creation actor writes only deterministic direct/support creations.
    let mut f = fixture();
    let mut forged_doc = f.alice.doc(&f.cd).clone();
    forged_doc.set_actor(creation_actor(&f.cd));
    let forged = raw_on(&mut forged_doc, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put(&info, TITLE, "hijacked").unwrap();
    });
    assert_rejected(&mut f.hub, &f.alice, &f.cd, forged, "forged_actor");

    // In a direct conversation: a creation change with the creation actor that is not the exact
    // deterministic change (alice made herself owner; or a third member slipped in).
    let mut hub = Hub::new();
    let alice = Device::new("alice", 1);
    let (dd, real) = write::direct_creation_change(&tenant(), &acc("alice"), &acc("bob")).unwrap();
    let forge = |members: &[(&str, &str)]| {
        let mut doc = cdoc::genesis(&dd).unwrap();
        doc.set_actor(creation_actor(&dd));
        let mut tx = doc.transaction();
        let meta = obj(&tx, &[META]);
        tx.put(&meta, KIND, "direct").unwrap();
        tx.put(&meta, CREATED_AT, 0_i64).unwrap();
        tx.put(&meta, BUCKET_MS, DEFAULT_BUCKET_MS).unwrap();
        let all = obj(&tx, &[MEMBERS]);
        for (account, role) in members {
            let m = tx.put_object(&all, *account, ObjType::Map).unwrap();
            tx.put(&m, ROLE, *role).unwrap();
            tx.put(&m, STATUS, "active").unwrap();
        }
        tx.commit_with(CommitOptions::default().with_time(0).with_message("create"));
        doc.get_last_local_change().unwrap()
    };
    let owner = forge(&[("alice", "owner"), ("bob", "member")]);
    let third = forge(&[("alice", "member"), ("bob", "member"), ("carol", "member")]);
    let honest = forge(&[("alice", "member"), ("bob", "member")]);
    assert_eq!(
        honest.hash(),
        real.hash(),
        "the forge reproduces the real one"
    );
    assert_rejected(&mut hub, &alice, &dd, owner.clone(), "forged_actor");
    assert_rejected(&mut hub, &alice, &dd, third.clone(), "forged_actor");

    // Twin: the exact deterministic change is accepted; the forgeries stay refused after it.
    submit(&mut hub, &alice, &dd, real).expect("the real creation");
    assert_rejected(&mut hub, &alice, &dd, owner, "forged_actor");
    assert_rejected(&mut hub, &alice, &dd, third, "forged_actor");
    let conv = hub.conversation(dd.conv_id().unwrap()).unwrap();
    assert!(conv.members.values().all(|m| m.role == Role::Member));
    assert_eq!(conv.members.len(), 2);
}

#[test]
fn actor_bound_to_other() {
    let mut f = fixture();
    // Alice's actor is bound to alice by her first accepted change (the group's creation).
    assert_eq!(f.hub.binding(&f.alice.actor), Some(&acc("alice")));
    let (bucket, change) = raw_post(&mut f.alice, &f.conv, "m2", &text_fields("alice", "hi"));
    // Bob's session submits a change made with alice's actor.
    assert_rejected(
        &mut f.hub,
        &f.bob,
        &bucket,
        change.clone(),
        "actor_bound_to_other",
    );
    // Twin: the very same bytes from alice's session are fine.
    accept(&mut f.hub, &mut f.alice, &bucket, change);
}

#[test]
fn seq_gap_and_bad_start_op() {
    let mut f = fixture();
    let (bucket, first) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "one"));
    assert_eq!(first.seq(), 1);
    accept(&mut f.hub, &mut f.bob, &bucket, first);
    let (_, second) = raw_post(&mut f.bob, &f.conv, "b2", &text_fields("bob", "two"));
    assert_eq!(second.seq(), 2);

    // seq 3 after 1.
    let gap = tamper(&second, |e| e.seq = 3);
    assert_rejected(&mut f.hub, &f.bob, &bucket, gap, "seq_gap");
    // The right seq, but op ids that reuse the first change's.
    let reuse = tamper(&second, |e| {
        e.start_op = std::num::NonZeroU64::new(1).unwrap()
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, reuse, "bad_start_op");

    // Twin: the untampered change.
    accept(&mut f.hub, &mut f.bob, &bucket, second);
}

/// The hub's copy of `id` still saves, loads from its saved bytes, and serves its log.
fn assert_doc_sound(hub: &Hub, id: &DocId) {
    let saved = hub.doc(id).unwrap().save();
    AcceptedDoc::load(id.clone(), &saved).expect("the saved document loads");
    assert!(!hub.changes_after(id, 0).is_empty());
}

/// Automerge op ids are Lamport clocks: a change's ops must be numbered above every op its
/// dependencies hold. `validate` compares the start op with the actor's own earlier ops
/// only, so dave's first change in the document may start at op 1 while it overwrites
/// alice's title (op ~35). Accepting it poisons the document: `save()` yields bytes that
/// `Automerge::load` refuses (InvalidMaxOp) and `changes_after` panics inside automerge.
#[test]
fn start_op_below_dependencies_max_op_bad_start_op() {
    let mut f = fixture();
    let cd = f.cd.clone();
    let edit = raw_put(&mut f.alice, &cd, &[INFO], &[(TITLE, s("renamed"))]);
    accept(&mut f.hub, &mut f.alice, &cd, edit);
    f.dave.pull(&f.hub, &cd);
    let honest = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    assert_eq!(
        honest.seq(),
        1,
        "dave's first change here: no own ops to overlap"
    );
    assert!(honest.start_op().get() > 30);
    let low = tamper(&honest, |e| {
        e.start_op = std::num::NonZeroU64::new(1).unwrap()
    });
    assert_rejected(&mut f.hub, &f.dave, &cd, low, "bad_start_op");
    assert_doc_sound(&f.hub, &cd);
    // Twin: the honest numbering.
    accept(&mut f.hub, &mut f.dave, &cd, honest);
    assert_doc_sound(&f.hub, &cd);
}

/// Even a put on a fresh key (no pred, into a genesis map with a low counter) poisons the
/// document when it is numbered below its dependencies: bob's first reaction numbered from
/// op 4 after alice's message (ops up to ~9) is accepted, and the saved bytes no longer load.
#[test]
fn fresh_key_numbered_below_dependencies_bad_start_op() {
    let mut f = fixture();
    let bucket = f.bucket.clone();
    let honest = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(NOW),
    );
    assert!(honest.start_op().get() > 4);
    let low = tamper(&honest, |e| {
        e.start_op = std::num::NonZeroU64::new(4).unwrap()
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, low, "bad_start_op");
    assert_doc_sound(&f.hub, &bucket);
    accept(&mut f.hub, &mut f.bob, &bucket, honest);
    assert_doc_sound(&f.hub, &bucket);
}

/// The same poison without a low start op relative to the deps: the change leaves alice's
/// edit out of its deps and starts right above what they hold, yet its `pred` names alice's
/// title op, whose counter is higher than the op replacing it. `check_pred` only compares
/// with the current value, so the hub accepts it and `save()` then panics inside automerge.
#[test]
fn op_numbered_below_the_value_it_replaces_bad_start_op() {
    let mut f = fixture();
    let cd = f.cd.clone();
    let old_heads = f.hub.doc(&cd).unwrap().doc().get_heads();
    let old_max = old_heads
        .iter()
        .map(|h| {
            f.hub
                .doc(&cd)
                .unwrap()
                .doc()
                .get_change_by_hash(h)
                .unwrap()
                .max_op()
        })
        .max()
        .unwrap();
    let edit = raw_put(
        &mut f.alice,
        &cd,
        &[INFO],
        &[
            (DESCRIPTION, s("about")),
            (THEME_COLOR, s("red")),
            (TITLE, s("renamed")),
        ],
    );
    accept(&mut f.hub, &mut f.alice, &cd, edit);
    f.dave.pull(&f.hub, &cd);
    let doc = f.hub.doc(&cd).unwrap().doc().clone();
    let title_op = op_id_of(&doc, &obj(&doc, &[INFO]), TITLE);
    assert!(title_op.counter() > old_max + 1);
    let honest = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    let forged = tamper(&honest, |e| {
        e.deps = old_heads.clone();
        e.start_op = std::num::NonZeroU64::new(old_max + 1).unwrap();
    });
    assert_eq!(
        forged.decode().operations[0]
            .pred
            .iter()
            .collect::<Vec<_>>(),
        vec![&title_op]
    );
    assert_rejected(&mut f.hub, &f.dave, &cd, forged, "bad_start_op");
    assert_doc_sound(&f.hub, &cd);
    accept(&mut f.hub, &mut f.dave, &cd, honest);
    assert_doc_sound(&f.hub, &cd);
}

#[test]
fn missing_dependency() {
    let mut f = fixture();
    // Two changes in a row on bob's replica; the hub sees only the second.
    let mut replica = f.bob.doc(&f.bucket).clone();
    let a = raw_on(&mut replica, |tx| {
        put_message(tx, "b1", &text_fields("bob", "one"))
    });
    let b = raw_on(&mut replica, |tx| {
        put_message(tx, "b2", &text_fields("bob", "two"))
    });
    assert_eq!(b.deps(), &[a.hash()]);
    let bucket = f.bucket.clone();
    assert_rejected(&mut f.hub, &f.bob, &bucket, b.clone(), "missing_dependency");
    // A dependency that exists nowhere.
    let phantom = tamper(&a, |e| e.deps = vec![ChangeHash([7; 32])]);
    assert_rejected(&mut f.hub, &f.bob, &bucket, phantom, "missing_dependency");

    // Twin: in order, both are accepted.
    accept(&mut f.hub, &mut f.bob, &bucket, a);
    accept(&mut f.hub, &mut f.bob, &bucket, b);
    assert_eq!(f.hub.changes_after(&bucket, 0).len(), 3);
}

#[test]
fn garbage_bytes_malformed_change() {
    let mut f = fixture();
    let accepted = f.hub.doc(&f.bucket).unwrap().clone();
    let bindings: HashMap<ActorId, AccountId> = HashMap::new();
    let author = Author::user(acc("bob"));
    let env = Env {
        author: &author,
        bindings: &bindings,
        conv: f.hub.conversation(&f.conv),
        others: &(),
        now_ms: NOW,
        last_post_ms: None,
        urls: Default::default(),
    };
    let (_, real) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    let bytes = real.raw_bytes().to_vec();
    let heads = accepted.doc().get_heads();

    let garbage: &[&[u8]] = &[
        b"",
        b"not an automerge change",
        &[0x85, 0x6f, 0x4a, 0x83, 0xff, 0xff, 0xff],
        &bytes[..bytes.len() / 2],
    ];
    for g in garbage {
        let r = validate::validate_bytes(&accepted, &env, g).expect_err("garbage");
        assert_eq!(r.code.as_str(), "malformed_change", "{g:?}: {}", r.reason);
        assert_eq!(r.hash, None, "garbage has no hash");
    }
    // One flipped byte in the body breaks the checksum.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let r = validate::validate_bytes(&accepted, &env, &flipped).expect_err("flipped byte");
    assert_eq!(r.code.as_str(), "malformed_change", "{}", r.reason);
    assert_eq!(accepted.doc().get_heads(), heads);

    // Twin: the real bytes validate.
    match validate::validate_bytes(&accepted, &env, &bytes) {
        Ok(Verdict::Accept(a)) => assert_eq!(a.hash, real.hash()),
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[test]
fn duplicate_key_and_empty_change() {
    let mut f = fixture();
    let (bucket, post) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    // Two puts on one key in one change: the second must not hide the first.
    let doubled = tamper(&post, |e| {
        let last = e.operations.last().unwrap().clone();
        e.operations.push(last);
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, doubled, "duplicate_key");
    let empty = tamper(&post, |e| e.operations.clear());
    assert_rejected(&mut f.hub, &f.bob, &bucket, empty, "empty_change");
    accept(&mut f.hub, &mut f.bob, &bucket, post);
}

// ---------- members and roles ----------

#[test]
fn author_mismatch() {
    let mut f = fixture();
    let (bucket, change) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("alice", "I'm alice"),
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "author_mismatch");
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "I'm bob"));
    accept(&mut f.hub, &mut f.bob, &bucket, twin);
}

#[test]
fn self_promotion_role_too_high() {
    let mut f = fixture();
    let change = raw_put(&mut f.bob, &f.cd, &[MEMBERS, "bob"], &[(ROLE, s("admin"))]);
    assert_rejected(&mut f.hub, &f.bob, &f.cd, change, "role_too_high");
    // Twin: the owner promotes bob.
    let twin = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("admin"))],
    );
    accept(&mut f.hub, &mut f.alice, &f.cd, twin);
    assert_eq!(
        f.hub.conversation(&f.conv).unwrap().members[&acc("bob")].role,
        Role::Admin
    );
}

#[test]
fn demoting_the_owner_owner_protected() {
    let mut f = fixture();
    let change = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "alice"],
        &[(ROLE, s("member"))],
    );
    assert_rejected(&mut f.hub, &f.dave, &f.cd, change, "owner_protected");
    // The owner stepping down by itself is refused too (nobody would be in charge).
    let own = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "alice"],
        &[(ROLE, s("admin"))],
    );
    assert_rejected(&mut f.hub, &f.alice, &f.cd, own, "owner_protected");
    // Twin: the admin gives a member a role below its own.
    let twin = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("moderator"))],
    );
    accept(&mut f.hub, &mut f.dave, &f.cd, twin);
}

#[test]
fn removing_the_owner_owner_protected() {
    let mut f = fixture();
    let removal = |dev: &mut Device, cd: &DocId, who: &'static str| {
        raw_put(
            dev,
            cd,
            &[MEMBERS, who],
            &[(STATUS, s("removed")), (REMOVED_AT, ScalarValue::Int(NOW))],
        )
    };
    let change = removal(&mut f.dave, &f.cd, "alice");
    assert_rejected(&mut f.hub, &f.dave, &f.cd, change, "owner_protected");
    let twin = removal(&mut f.dave, &f.cd, "bob");
    accept(&mut f.hub, &mut f.dave, &f.cd, twin);
    assert!(!f.hub.conversation(&f.conv).unwrap().members[&acc("bob")].is_active());
}

#[test]
fn member_writing_settings_no_permission() {
    let mut f = fixture();
    let change = raw_put(
        &mut f.bob,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(false))],
    );
    assert_rejected(&mut f.hub, &f.bob, &f.cd, change, "no_permission");
    let twin = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(false))],
    );
    accept(&mut f.hub, &mut f.alice, &f.cd, twin);
    assert!(
        !f.hub
            .conversation(&f.conv)
            .unwrap()
            .settings
            .allow_reactions
    );
}

#[test]
fn direct_conversation_third_account_direct_fixed_members() {
    let mut hub = Hub::new();
    let mut alice = Device::new("alice", 1);
    let mut carol = Device::new("carol", 1);
    let (dd, create) =
        write::direct_creation_change(&tenant(), &acc("alice"), &acc("bob")).unwrap();
    submit(&mut hub, &alice, &dd, create).expect("created");
    alice.pull(&hub, &dd);
    carol.pull(&hub, &dd);
    let add = |dev: &mut Device, invited_by: Option<&str>| {
        raw(dev, &dd, |tx| {
            let members = obj(&*tx, &[MEMBERS]);
            let m = tx.put_object(&members, "carol", ObjType::Map).unwrap();
            tx.put(&m, ROLE, "member").unwrap();
            tx.put(&m, STATUS, "active").unwrap();
            tx.put(&m, JOINED_AT, NOW).unwrap();
            if let Some(by) = invited_by {
                tx.put(&m, INVITED_BY, by).unwrap();
            }
        })
    };
    // Carol adds herself.
    let change = add(&mut carol, None);
    assert_rejected(&mut hub, &carol, &dd, change, "direct_fixed_members");
    // Alice adds carol.
    let change = add(&mut alice, Some("alice"));
    assert_rejected(&mut hub, &alice, &dd, change, "direct_fixed_members");
    // Twin: alice may write her own read marker there.
    let twin = raw_put(&mut alice, &dd, &[READS], &[("alice", s("x1"))]);
    accept(&mut hub, &mut alice, &dd, twin);
    assert_eq!(
        hub.conversation(dd.conv_id().unwrap())
            .unwrap()
            .members
            .len(),
        2
    );
}

#[test]
fn removed_member_later_message_member_inactive() {
    let mut f = fixture();
    // Twin first: while active, bob posts.
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    accept(&mut f.hub, &mut f.bob, &bucket, twin);
    let removal = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(STATUS, s("removed")), (REMOVED_AT, ScalarValue::Int(NOW))],
    );
    accept(&mut f.hub, &mut f.alice, &f.cd, removal);
    f.bob.pull(&f.hub, &f.cd);
    let (bucket, later) = raw_post(&mut f.bob, &f.conv, "b2", &text_fields("bob", "still here"));
    assert_rejected(&mut f.hub, &f.bob, &bucket, later, "member_inactive");
    // Reacting is a later change too.
    let react = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(NOW),
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, react, "member_inactive");
    // And so is making himself active again.
    let back = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(STATUS, s("active")), (JOINED_AT, ScalarValue::Int(NOW))],
    );
    assert_rejected(&mut f.hub, &f.bob, &f.cd, back, "member_inactive");
}

// ---------- messages ----------

#[test]
fn editing_anothers_message_not_author() {
    let mut f = fixture();
    let edit = |dev: &mut Device, bucket: &DocId| {
        raw_put(
            dev,
            bucket,
            &[MESSAGES, "m1"],
            &[(BODY, s("edited")), (EDITED_AT, ScalarValue::Int(NOW))],
        )
    };
    let change = edit(&mut f.bob, &f.bucket);
    assert_rejected(&mut f.hub, &f.bob, &f.bucket.clone(), change, "not_author");
    // Deleting it without delete rights is the same refusal.
    let delete = raw_put(
        &mut f.bob,
        &f.bucket,
        &[MESSAGES, "m1"],
        &[(BODY, s("")), (DELETED_AT, ScalarValue::Int(NOW))],
    );
    assert_rejected(&mut f.hub, &f.bob, &f.bucket.clone(), delete, "not_author");
    // Twin: the author edits.
    let twin = edit(&mut f.alice, &f.bucket);
    accept(&mut f.hub, &mut f.alice, &f.bucket.clone(), twin);
    let m = read::read_messages(f.hub.doc(&f.bucket).unwrap().doc());
    assert_eq!(m[0].body, "edited");
}

#[test]
fn deleting_anothers_reaction_not_own_key() {
    let mut f = fixture();
    let bucket = f.bucket.clone();
    let alice_key = reaction_key("m1", "alice", "👍");
    let react = raw_reaction(&mut f.alice, &bucket, &alice_key, Some(NOW));
    accept(&mut f.hub, &mut f.alice, &bucket, react);
    f.bob.pull(&f.hub, &bucket);

    let delete = raw_reaction(&mut f.bob, &bucket, &alice_key, None);
    assert_rejected(&mut f.hub, &f.bob, &bucket, delete, "not_own_key");
    // Nor may bob add a reaction under alice's name.
    let forge = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "alice", "🎉"),
        Some(NOW),
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, forge, "not_own_key");
    // Nor move alice's read marker.
    let marker = raw_put(&mut f.bob, &f.cd, &[READS], &[("alice", s("m1"))]);
    assert_rejected(&mut f.hub, &f.bob, &f.cd.clone(), marker, "not_own_key");

    // Twins: bob's own reaction and read marker; alice removes her own reaction.
    let own = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(NOW),
    );
    accept(&mut f.hub, &mut f.bob, &bucket, own);
    let own_marker = raw_put(&mut f.bob, &f.cd, &[READS], &[("bob", s("m1"))]);
    accept(&mut f.hub, &mut f.bob, &f.cd.clone(), own_marker);
    let undo = raw_reaction(&mut f.alice, &bucket, &alice_key, None);
    accept(&mut f.hub, &mut f.alice, &bucket, undo);
    let m = read::read_messages(f.hub.doc(&bucket).unwrap().doc());
    assert_eq!(
        m[0].reactions["👍"].keys().collect::<Vec<_>>(),
        vec![&acc("bob")]
    );
}

#[test]
fn subscriber_posting_in_channel_channel_admins_only() {
    let mut hub = Hub::new();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let c = create(
        &mut hub,
        "ch",
        ConvKind::Channel,
        &mut alice,
        &mut [(&mut bob, Role::Subscriber)],
        |_| {},
    );
    let (bucket, change) = raw_post(&mut bob, &c, "b1", &text_fields("bob", "me too"));
    assert_rejected(&mut hub, &bob, &bucket, change, "channel_admins_only");
    let (bucket, twin) = raw_post(&mut alice, &c, "a1", &text_fields("alice", "news"));
    accept(&mut hub, &mut alice, &bucket, twin);
    // Subscribers may react where reactions are allowed.
    bob.pull(&hub, &bucket);
    let react = raw_reaction(
        &mut bob,
        &bucket,
        &reaction_key("a1", "bob", "👍"),
        Some(NOW),
    );
    accept(&mut hub, &mut bob, &bucket, react);
}

#[test]
fn member_posting_under_admins_only_send_policy() {
    let mut f = fixture_with(|s| s.send_policy = SendPolicy::AdminsOnly);
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "admins_only");
    let (bucket, twin) = raw_post(&mut f.dave, &f.conv, "d1", &text_fields("dave", "hi"));
    accept(&mut f.hub, &mut f.dave, &bucket, twin);
}

#[test]
fn reacting_where_reactions_are_off() {
    let mut f = fixture_with(|s| s.allow_reactions = false);
    let bucket = f.bucket.clone();
    let change = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(NOW),
    );
    assert_rejected(
        &mut f.hub,
        &f.bob,
        &bucket,
        change.clone(),
        "reactions_disabled",
    );
    // Twin: the very same bytes pass once the owner turns reactions on.
    let on = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(true))],
    );
    accept(&mut f.hub, &mut f.alice, &f.cd.clone(), on);
    accept(&mut f.hub, &mut f.bob, &bucket, change);
}

#[test]
fn media_where_attachments_are_off() {
    let mut f = fixture_with(|s| s.allow_attachments = false);
    let attachments =
        r#"[{"id":"a1","kind":"image","mime":"image/png","url":"https://cdn.example.com/a1.png"}]"#;
    let mut fields = text_fields("bob", "look");
    fields[1] = (KIND, s("image"));
    fields.push((ATTACHMENTS, s(attachments)));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    assert_rejected(
        &mut f.hub,
        &f.bob,
        &bucket,
        change.clone(),
        "attachments_disabled",
    );
    // Twin: the same bytes pass once attachments are allowed.
    let on = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_ATTACHMENTS, ScalarValue::Boolean(true))],
    );
    accept(&mut f.hub, &mut f.alice, &f.cd.clone(), on);
    accept(&mut f.hub, &mut f.bob, &bucket, change);
}

/// The raw creation change of a thread of `parent` at `depth`, whose own settings allow
/// `max_depth` levels below it.
fn raw_thread(
    dev: &mut Device,
    thread: &ConvId,
    parent: &ConvId,
    depth: i64,
    max_depth: i64,
) -> Change {
    let me = dev.account();
    raw(dev, &conv_doc(thread), |tx| {
        let meta = obj(&*tx, &[META]);
        tx.put(&meta, KIND, "thread").unwrap();
        tx.put(&meta, CREATED_BY, me.as_str()).unwrap();
        tx.put(&meta, CREATED_AT, NOW - 1000).unwrap();
        tx.put(&meta, BUCKET_MS, DEFAULT_BUCKET_MS).unwrap();
        tx.put(&meta, PARENT, parent.as_str()).unwrap();
        tx.put(&meta, PARENT_MESSAGE, "m1").unwrap();
        tx.put(&meta, DEPTH, depth).unwrap();
        let settings = obj(&*tx, &[SETTINGS]);
        tx.put(&settings, MAX_SUBROOM_DEPTH, max_depth).unwrap();
        let members = obj(&*tx, &[MEMBERS]);
        let m = tx.put_object(&members, me.as_str(), ObjType::Map).unwrap();
        tx.put(&m, ROLE, "owner").unwrap();
        tx.put(&m, STATUS, "active").unwrap();
    })
}

#[test]
fn thread_deeper_than_max_thread_too_deep() {
    let mut f = fixture();
    // Twin: a thread of the group at depth 1 whose settings allow one level (itself).
    let t1 = conv_id("t1");
    let change = raw_thread(&mut f.alice, &t1, &f.conv, 1, 1);
    accept(&mut f.hub, &mut f.alice, &conv_doc(&t1), change);
    assert_eq!(
        f.hub.conversation(&t1).unwrap().settings.max_subroom_depth,
        1
    );
    // A thread of that thread at depth 2.
    let t2 = conv_id("t2");
    let change = raw_thread(&mut f.alice, &t2, &t1, 2, 1);
    assert_rejected(
        &mut f.hub,
        &f.alice,
        &conv_doc(&t2),
        change,
        "thread_too_deep",
    );
    assert!(f.hub.conversation(&t2).unwrap().meta.is_none());
}

// ---------- proposals ----------

fn proposal_payload(expires_at: Option<i64>) -> String {
    ProposalPayload {
        proposal_type: ProposalType::Visit,
        time_start: NOW + 86_400_000,
        time_end: NOW + 90_000_000,
        timezone: "America/Mexico_City".into(),
        meeting_type: Some(MeetingType::OnSite),
        location: Some("Av. Reforma 222".into()),
        from_resource_address: None,
        status: ProposalStatus::Pending,
        expires_at,
        created_by_role: CreatedByRole::Owner,
    }
    .to_json()
}

/// A support thread about "room-12": alice owns the resource, carol is the client.
fn support_thread(hub: &mut Hub, alice: &mut Device, carol: &mut Device) -> ConvId {
    let link = ResourceLink {
        resource: ResourceId::new("room-12").unwrap(),
        client: acc("carol"),
        owner: acc("alice"),
    };
    let (sd, create) = write::support_creation_change(&tenant(), &link).unwrap();
    submit(hub, alice, &sd, create).expect("support thread created");
    alice.pull(hub, &sd);
    carol.pull(hub, &sd);
    sd.conv_id().unwrap().clone()
}

fn post_proposal(hub: &mut Hub, alice: &mut Device, conv: &ConvId, id: &str, expires: Option<i64>) {
    let mut fields = text_fields("alice", "Visit on Friday?");
    fields[1] = (KIND, s("proposal"));
    fields.push((PAYLOAD, s(&proposal_payload(expires))));
    fields.push((STATUS, s("pending")));
    let (bucket, change) = raw_post(alice, conv, id, &fields);
    accept(hub, alice, &bucket, change);
}

#[test]
fn proposal_accepted_by_own_author_not_counterparty() {
    let mut hub = Hub::new();
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(&mut hub, &mut alice, &mut carol);
    post_proposal(&mut hub, &mut alice, &c, "p1", None);
    let bucket = bucket_doc(&c, NOW);
    let change = raw_put(
        &mut alice,
        &bucket,
        &[MESSAGES, "p1"],
        &[(STATUS, s("accepted"))],
    );
    assert_rejected(&mut hub, &alice, &bucket, change, "not_counterparty");
    // Twin: the client accepts.
    carol.pull(&hub, &bucket);
    let twin = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p1"],
        &[(STATUS, s("accepted"))],
    );
    accept(&mut hub, &mut carol, &bucket, twin);
    let p = read::read_messages(hub.doc(&bucket).unwrap().doc());
    assert_eq!(p[0].status, Some(ProposalStatus::Accepted));
}

#[test]
fn proposal_answered_after_expiry() {
    let mut hub = Hub::new();
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(&mut hub, &mut alice, &mut carol);
    post_proposal(&mut hub, &mut alice, &c, "p1", Some(NOW - 60_000));
    post_proposal(&mut hub, &mut alice, &c, "p2", Some(NOW + 3_600_000));
    let bucket = bucket_doc(&c, NOW);
    carol.pull(&hub, &bucket);
    let change = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p1"],
        &[(STATUS, s("accepted"))],
    );
    assert_rejected(&mut hub, &carol, &bucket, change, "proposal_expired");
    // Twin: the one that has not expired.
    let twin = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p2"],
        &[(STATUS, s("rejected"))],
    );
    accept(&mut hub, &mut carol, &bucket, twin);
}

// ---------- what the validator checks op by op ----------

#[test]
fn new_object_smuggling_a_forbidden_write() {
    let mut f = fixture();
    let mut carol = Device::new("carol", 1);
    carol.pull(&f.hub, &f.cd);

    // A new message map that arrives already tombstoned. `deleted_at` is a message field, so
    // the schema check passes; but `interpret::new_message` refuses any field a new message
    // cannot have (edited_at, deleted_at) as `invalid_value`, before the policy sees it.
    let mut fields = text_fields("bob", "ghost");
    fields.push((DELETED_AT, ScalarValue::Int(NOW)));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "invalid_value");
    // Same for a text message born with a proposal status.
    let mut fields = text_fields("bob", "ghost");
    fields.push((STATUS, s("accepted")));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "invalid_value");

    // A member re-creating its own entry as a new map with role owner: a member entry is
    // made once; `members/<account>` written again is `immutable_field` (the op replaces the
    // existing map, which `interpret::conv_effects` refuses before reading the new fields).
    let me_owner = |dev: &mut Device, cd: &DocId, who: &str| {
        raw(dev, cd, |tx| {
            let members = obj(&*tx, &[MEMBERS]);
            let m = tx.put_object(&members, who, ObjType::Map).unwrap();
            tx.put(&m, ROLE, "owner").unwrap();
            tx.put(&m, STATUS, "active").unwrap();
        })
    };
    let cd = f.cd.clone();
    let change = me_owner(&mut f.bob, &cd, "bob");
    assert_rejected(&mut f.hub, &f.bob, &cd, change, "immutable_field");
    // An outsider's new entry for itself as owner is a self-join with a role above the join
    // role (member): `role_too_high`, checked before the (invite-only) join policy.
    let change = me_owner(&mut carol, &cd, "carol");
    assert_rejected(&mut f.hub, &carol, &cd, change, "role_too_high");

    // A new pin map carrying a key pins do not have: `unknown_key` from the pin field table.
    let pin = |dev: &mut Device, extra: bool| {
        raw(dev, &cd, |tx| {
            let pins = obj(&*tx, &[PINS]);
            let p = tx.put_object(&pins, "m1", ObjType::Map).unwrap();
            tx.put(&p, BY, "alice").unwrap();
            tx.put(&p, AT, NOW).unwrap();
            if extra {
                tx.put(&p, "note", "smuggled").unwrap();
            }
        })
    };
    let change = pin(&mut f.alice, true);
    assert_rejected(&mut f.hub, &f.alice, &cd, change, "unknown_key");
    // Twins: the plain pin, the plain message.
    let twin = pin(&mut f.alice, false);
    accept(&mut f.hub, &mut f.alice, &cd, twin);
    assert!(f
        .hub
        .conversation(&f.conv)
        .unwrap()
        .pins
        .contains_key(&msg_id("m1")));
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "alive"));
    accept(&mut f.hub, &mut f.bob, &bucket, twin);
}

#[test]
fn delete_whose_pred_targets_another_users_value() {
    let mut f = fixture();
    let bucket = f.bucket.clone();
    let (alice_key, bob_key) = (
        reaction_key("m1", "alice", "👍"),
        reaction_key("m1", "bob", "👍"),
    );
    let a = raw_reaction(&mut f.alice, &bucket, &alice_key, Some(NOW));
    accept(&mut f.hub, &mut f.alice, &bucket, a);
    f.bob.pull(&f.hub, &bucket);
    let b = raw_reaction(&mut f.bob, &bucket, &bob_key, Some(NOW));
    accept(&mut f.hub, &mut f.bob, &bucket, b);

    let doc = f.hub.doc(&bucket).unwrap().doc().clone();
    let reactions = obj(&doc, &[REACTIONS]);
    let alice_op = op_id_of(&doc, &reactions, &alice_key);
    let bob_op = op_id_of(&doc, &reactions, &bob_key);

    // Bob deletes his own key, but his `pred` names alice's reaction op (another key):
    // `ops::check_pred` compares pred with the values at *this* key ({bob_op}) and refuses
    // the mismatch as `conflicting_write` — before ownership is even considered.
    let own_delete = raw_reaction(&mut f.bob, &bucket, &bob_key, None);
    assert_eq!(
        own_delete.decode().operations[0]
            .pred
            .iter()
            .collect::<Vec<_>>(),
        vec![&bob_op]
    );
    let sneaky = tamper(&own_delete, |e| {
        e.operations[0].pred = vec![alice_op.clone()].into()
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, sneaky, "conflicting_write");
    // Naming both ops is still not exactly the values at the key.
    let both = tamper(&own_delete, |e| {
        e.operations[0].pred = vec![alice_op.clone(), bob_op.clone()].into()
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, both, "conflicting_write");
    // A delete on alice's key with the right pred is well-formed: the policy refuses it as
    // `not_own_key`.
    let theirs = raw_reaction(&mut f.bob, &bucket, &alice_key, None);
    assert_rejected(&mut f.hub, &f.bob, &bucket, theirs.clone(), "not_own_key");
    // The same delete with an empty pred deletes nothing it saw: `conflicting_write`.
    let blind = tamper(&theirs, |e| e.operations[0].pred = Vec::new().into());
    assert_rejected(&mut f.hub, &f.bob, &bucket, blind, "conflicting_write");

    // Twin: bob's honest delete of his own reaction.
    accept(&mut f.hub, &mut f.bob, &bucket, own_delete);
    let m = read::read_messages(f.hub.doc(&bucket).unwrap().doc());
    assert_eq!(
        m[0].reactions["👍"].keys().collect::<Vec<_>>(),
        vec![&acc("alice")]
    );
}

#[test]
fn put_conflicting_with_existing_value_conflicting_write() {
    let mut f = fixture();
    let cd = f.cd.clone();
    let edit = raw_put(&mut f.alice, &cd, &[INFO], &[(TITLE, s("renamed"))]);
    assert_eq!(
        edit.decode().operations[0].pred.len(),
        1,
        "replaces the title"
    );
    // The same put claiming to replace nothing would leave two titles in conflict.
    let blind = tamper(&edit, |e| e.operations[0].pred = Vec::new().into());
    assert_rejected(&mut f.hub, &f.alice, &cd, blind, "conflicting_write");
    // A put on an empty key that claims to replace something.
    let phantom_pred = edit.decode().operations[0].pred.clone();
    let desc = raw_put(&mut f.alice, &cd, &[INFO], &[(DESCRIPTION, s("about"))]);
    let phantom = tamper(&desc, |e| e.operations[0].pred = phantom_pred);
    assert_rejected(&mut f.hub, &f.alice, &cd, phantom, "conflicting_write");
    // Dave edits the title concurrently from the same state.
    let race = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);

    // Twin: the untampered edit is accepted…
    accept(&mut f.hub, &mut f.alice, &cd, edit);
    // …after which dave's edit names a value that is no longer there.
    assert_rejected(&mut f.hub, &f.dave, &cd, race, "conflicting_write");
    f.dave.pull(&f.hub, &cd);
    let rebased = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    accept(&mut f.hub, &mut f.dave, &cd, rebased);
}

#[test]
fn unknown_keys() {
    let mut f = fixture();
    let cd = f.cd.clone();
    // A root key of the conversation document.
    let change = raw_put(&mut f.alice, &cd, &[], &[("hack", s("x"))]);
    assert_rejected(&mut f.hub, &f.alice, &cd, change, "unknown_key");
    // A member field.
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[("superpower", ScalarValue::Boolean(true))],
    );
    assert_rejected(&mut f.hub, &f.alice, &cd, change, "unknown_key");
    // A setting.
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[("allow_everything", ScalarValue::Boolean(true))],
    );
    assert_rejected(&mut f.hub, &f.alice, &cd, change, "unknown_key");
    // A message field.
    let mut fields = text_fields("bob", "hi");
    fields.push(("color", s("red")));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "unknown_key");
    // A root key of the bucket.
    let change = raw_put(&mut f.bob, &bucket, &[], &[("hack", s("x"))]);
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "unknown_key");

    // Twins: a permission override (a member key the schema names) and the plain message.
    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[("can_pin_messages", ScalarValue::Boolean(true))],
    );
    accept(&mut f.hub, &mut f.alice, &cd, twin);
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi"));
    accept(&mut f.hub, &mut f.bob, &bucket, twin);
}

#[test]
fn wrong_types() {
    let mut f = fixture();
    let cd = f.cd.clone();
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[(ROLE, ScalarValue::Int(5))],
    );
    assert_rejected(&mut f.hub, &f.alice, &cd, change, "wrong_type");
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, s("false"))],
    );
    assert_rejected(&mut f.hub, &f.alice, &cd, change, "wrong_type");
    // A map where the schema holds a string.
    let change = raw(&mut f.alice, &cd, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put_object(&info, TITLE, ObjType::Map).unwrap();
    });
    assert_rejected(&mut f.hub, &f.alice, &cd, change, "wrong_type");
    // A message's created_at as a string; a reaction holding a string.
    let mut fields = text_fields("bob", "hi");
    fields[3] = (CREATED_AT, s("now"));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "wrong_type");
    let change = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        tx.put(&reactions, reaction_key("m1", "bob", "👍"), "yes")
            .unwrap();
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "wrong_type");

    // Twins with the right types.
    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("moderator"))],
    );
    accept(&mut f.hub, &mut f.alice, &cd, twin);
    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(false))],
    );
    accept(&mut f.hub, &mut f.alice, &cd, twin);
}

#[test]
fn oversize_body_too_long() {
    let mut f = fixture();
    let (bucket, change) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("bob", &"x".repeat(4001)),
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "too_long");
    // Editing a body past the limit is refused too.
    let (bucket, mine) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "short"));
    accept(&mut f.hub, &mut f.bob, &bucket, mine);
    let edit = raw_put(
        &mut f.bob,
        &bucket,
        &[MESSAGES, "b1"],
        &[
            (BODY, s(&"é".repeat(4001))),
            (EDITED_AT, ScalarValue::Int(NOW)),
        ],
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, edit, "too_long");
    // Twin: exactly 4000 characters (multi-byte ones: the limit counts characters).
    let (bucket, twin) = raw_post(
        &mut f.bob,
        &f.conv,
        "b2",
        &text_fields("bob", &"é".repeat(4000)),
    );
    accept(&mut f.hub, &mut f.bob, &bucket, twin);
}

#[test]
fn oversize_payload_too_long() {
    let mut f = fixture();
    // A JSON string literal: 2 quotes + n characters.
    let payload = |bytes: usize| format!("\"{}\"", "x".repeat(bytes - 2));
    let mut fields = text_fields("bob", "data");
    fields.push((PAYLOAD, s(&payload(8001))));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "too_long");
    let mut fields = text_fields("bob", "data");
    fields.push((PAYLOAD, s(&payload(8000))));
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &fields);
    accept(&mut f.hub, &mut f.bob, &bucket, twin);
}

#[test]
fn list_text_and_counter_ops_unsupported_op() {
    let mut f = fixture();
    let bucket = f.bucket.clone();
    for kind in [ObjType::List, ObjType::Text] {
        let change = raw(&mut f.bob, &bucket, |tx| {
            put_message(tx, "b1", &text_fields("bob", "hi"));
            let m = obj(&*tx, &[MESSAGES, "b1"]);
            tx.put_object(&m, MENTIONS, kind).unwrap();
        });
        assert_rejected(&mut f.hub, &f.bob, &bucket, change, "unsupported_op");
    }
    // A list at the root, with an element inserted.
    let change = raw(&mut f.bob, &bucket, |tx| {
        let list = tx.put_object(ROOT, "list", ObjType::List).unwrap();
        tx.insert(&list, 0, "x").unwrap();
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "unsupported_op");
    // A counter increment on a reaction key.
    let react = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(NOW),
    );
    let inc = tamper(&react, |e| e.operations[0].action = OpType::Increment(1));
    assert_rejected(&mut f.hub, &f.bob, &bucket, inc, "unsupported_op");
    // Twin: the plain reaction.
    accept(&mut f.hub, &mut f.bob, &bucket, react);
}

#[test]
fn write_into_a_message_that_does_not_exist() {
    let mut f = fixture();
    let bucket = f.bucket.clone();
    // A reaction on a message this bucket does not hold.
    let change = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("nope", "bob", "👍"),
        Some(NOW),
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, change, "message_missing");
    // An edit aimed at an object id that exists nowhere.
    let (_, mine) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "typo"));
    accept(&mut f.hub, &mut f.bob, &bucket, mine);
    let edit = raw_put(
        &mut f.bob,
        &bucket,
        &[MESSAGES, "b1"],
        &[(BODY, s("fixed")), (EDITED_AT, ScalarValue::Int(NOW))],
    );
    // An object id no actor ever made (numbered low, so it does not postdate the ops).
    let stranger = ActorId::from(&[9_u8; 16][..]);
    let nowhere = tamper(&edit, |e| {
        for op in &mut e.operations {
            op.obj = ObjectId::Id(OpId(2, stranger.clone()));
            op.pred = Vec::new().into();
        }
    });
    assert_rejected(&mut f.hub, &f.bob, &bucket, nowhere, "unknown_object");
    // Twin: the edit of the real message.
    accept(&mut f.hub, &mut f.bob, &bucket, edit);
}

#[test]
fn write_into_a_hidden_object() {
    let mut hub = Hub::new();
    let pd = DocId::private(&tenant(), &acc("alice"));
    let (mut phone, mut laptop) = (Device::new("alice", 1), Device::new("alice", 2));
    let contact = |nickname: &str| Contact {
        kind: ContactKind::Person,
        phone: None,
        email: None,
        account: Some(acc("bob")),
        nickname: Some(nickname.into()),
    };
    for id in ["c1", "c2"] {
        let change = phone.write(&pd, |d, t| {
            write::set_contact(d, t, NOW, &ContactId::new(id).unwrap(), &contact("Bob"))
        });
        accept(&mut hub, &mut phone, &pd, change);
    }
    laptop.pull(&hub, &pd);
    // Twin: the laptop renames c1 while it is there.
    let rename = raw_put(
        &mut laptop,
        &pd,
        &[CONTACTS, "c1"],
        &[(NICKNAME, s("Bobby"))],
    );
    accept(&mut hub, &mut laptop, &pd, rename);
    phone.pull(&hub, &pd);

    // The phone deletes c1 and replaces c2 with a new map; the laptop has not seen either.
    let delete = raw(&mut phone, &pd, |tx| {
        let contacts = obj(&*tx, &[CONTACTS]);
        tx.delete(&contacts, "c1").unwrap();
    });
    accept(&mut hub, &mut phone, &pd, delete);
    let replace = phone.write(&pd, |d, t| {
        write::set_contact(
            d,
            t,
            NOW,
            &ContactId::new("c2").unwrap(),
            &contact("Robert"),
        )
    });
    accept(&mut hub, &mut phone, &pd, replace);

    // Writes into the deleted map and into the overwritten one.
    let late = raw_put(&mut laptop, &pd, &[CONTACTS, "c1"], &[(NICKNAME, s("Rob"))]);
    assert_rejected(&mut hub, &laptop, &pd, late, "hidden_object");
    let late = raw_put(&mut laptop, &pd, &[CONTACTS, "c2"], &[(NICKNAME, s("Rob"))]);
    assert_rejected(&mut hub, &laptop, &pd, late, "hidden_object");
    // After catching up, the laptop writes into the live c2.
    laptop.pull(&hub, &pd);
    let twin = raw_put(&mut laptop, &pd, &[CONTACTS, "c2"], &[(NICKNAME, s("Rob"))]);
    accept(&mut hub, &mut laptop, &pd, twin);
    let private = read::read_private(hub.doc(&pd).unwrap().doc());
    assert_eq!(private.contacts.len(), 1);
}

/// Every code this suite expects exists in the validator's or the policy's table, so a
/// renamed code fails here rather than silently in a string comparison.
#[test]
fn expected_codes_are_known_codes() {
    let known: Vec<&str> = RejectCode::VALIDATION
        .iter()
        .map(|c| c.as_str())
        .chain(
            confab_core::policy::DenyCode::ALL
                .iter()
                .map(|c| c.as_str()),
        )
        .collect();
    for code in [
        "forged_actor",
        "actor_bound_to_other",
        "author_mismatch",
        "role_too_high",
        "owner_protected",
        "no_permission",
        "not_author",
        "not_own_key",
        "direct_fixed_members",
        "channel_admins_only",
        "admins_only",
        "reactions_disabled",
        "attachments_disabled",
        "member_inactive",
        "thread_too_deep",
        "not_counterparty",
        "proposal_expired",
        "conflicting_write",
        "unknown_key",
        "wrong_type",
        "too_long",
        "missing_dependency",
        "malformed_change",
        "seq_gap",
        "bad_start_op",
        "unsupported_op",
        "message_missing",
        "unknown_object",
        "hidden_object",
        "invalid_value",
        "immutable_field",
        "duplicate_key",
        "empty_change",
    ] {
        assert!(known.contains(&code), "{code} is not a reject code");
    }
}

// ---------- limits and checks (issue 13) ----------

/// URL fields take `https:` only (by default): `javascript:` and `data:` would be stored
/// cross-site scripting in any client that renders them.
#[test]
fn url_fields_refuse_other_schemes_invalid_value() {
    let mut f = fixture();
    let cd = f.cd.clone();
    for (field, bad) in [
        (AVATAR, "javascript:alert(document.cookie)"),
        (
            AVATAR,
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        ),
        (THEME_BACKGROUND, "JaVaScRiPt:alert(1)"),
        (THEME_BACKGROUND, "http://plain.example.com/bg.png"),
        (AVATAR, "//example.com/a.png"),
    ] {
        let change = raw_put(&mut f.alice, &cd, &[INFO], &[(field, s(bad))]);
        assert_rejected(&mut f.hub, &f.alice, &cd, change, "invalid_value");
    }
    // Twin: an https URL.
    let ok = raw_put(
        &mut f.alice,
        &cd,
        &[INFO],
        &[(AVATAR, s("https://cdn.example.com/g.png"))],
    );
    accept(&mut f.hub, &mut f.alice, &cd, ok);

    // The profile avatar.
    let pd = DocId::profile(&tenant(), &acc("bob"));
    let bad = raw(&mut f.bob, &pd, |tx| {
        tx.put(ROOT, AVATAR, "javascript:alert(1)").unwrap();
    });
    assert_rejected(&mut f.hub, &f.bob, &pd, bad, "invalid_value");
    let good = raw(&mut f.bob, &pd, |tx| {
        tx.put(ROOT, AVATAR, "https://cdn.example.com/bob.png")
            .unwrap();
    });
    accept(&mut f.hub, &mut f.bob, &pd, good);

    // An attachment's URL, inside a new message.
    let attach = |url: &str| {
        let mut fields = text_fields("bob", "look");
        fields.push((
            ATTACHMENTS,
            s(&format!(r#"[{{"id":"a1","kind":"image","url":"{url}"}}]"#)),
        ));
        fields
    };
    let (bucket, bad) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &attach("data:image/svg+xml,<svg/>"),
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, bad, "invalid_value");
    let (_, good) = raw_post(&mut f.bob, &f.conv, "b1", &attach("https://e.io/a.png"));
    accept(&mut f.hub, &mut f.bob, &bucket, good);
}

/// `http:` is the operator's choice (`Env::urls`); other schemes are refused either way.
#[test]
fn http_urls_only_where_the_operator_allows() {
    use confab_core::model::url::UrlRule;
    let mut f = fixture();
    let cd = f.cd.clone();
    let accepted = f.hub.doc(&cd).unwrap().clone();
    let bindings: HashMap<ActorId, AccountId> =
        HashMap::from([(f.alice.actor.clone(), acc("alice"))]);
    let author = Author::user(acc("alice"));
    let env = |urls| Env {
        author: &author,
        bindings: &bindings,
        conv: f.hub.conversation(&f.conv),
        others: &(),
        now_ms: NOW,
        last_post_ms: None,
        urls,
    };
    let http = raw_put(
        &mut f.alice,
        &cd,
        &[INFO],
        &[(AVATAR, s("http://intranet.local/a.png"))],
    );
    let refused = validate::validate(&accepted, &env(UrlRule::HttpsOnly), http.clone())
        .expect_err("https only");
    assert_eq!(refused.code.as_str(), "invalid_value");
    assert!(matches!(
        validate::validate(&accepted, &env(UrlRule::AllowHttp), http),
        Ok(Verdict::Accept(_))
    ));
    let js = raw_put(&mut f.alice, &cd, &[INFO], &[(AVATAR, s("javascript:x"))]);
    let refused =
        validate::validate(&accepted, &env(UrlRule::AllowHttp), js).expect_err("never javascript:");
    assert_eq!(refused.code.as_str(), "invalid_value");
}

/// One change holds at most `CHANGE_MAX_OPS` ops (`CONV_CHANGE_MAX_OPS` in a conversation
/// document): 3,000 reaction keys in one change are refused before they are decoded.
#[test]
fn too_many_ops_in_one_change() {
    use confab_core::limits::{CHANGE_MAX_OPS, CONV_CHANGE_MAX_OPS};
    let mut f = fixture();
    let bucket = f.bucket.clone();
    let flood = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        for i in 0..3000 {
            tx.put(&reactions, reaction_key("m1", "bob", &format!("e{i}")), NOW)
                .unwrap();
        }
    });
    assert_eq!(flood.len(), 3000);
    let r = assert_rejected(&mut f.hub, &f.bob, &bucket, flood, "too_many_ops");
    assert!(
        r.reason.contains(&CHANGE_MAX_OPS.to_string()),
        "{}",
        r.reason
    );
    // Many keys in a private document too.
    let pd = DocId::private(&tenant(), &acc("bob"));
    let drafts = raw(&mut f.bob, &pd, |tx| {
        let drafts = obj(&*tx, &[DRAFTS]);
        for i in 0..=CHANGE_MAX_OPS {
            tx.put(&drafts, format!("c{i}"), "x").unwrap();
        }
    });
    assert_rejected(&mut f.hub, &f.bob, &pd, drafts, "too_many_ops");

    // Twin: the biggest legitimate change, a full group with every per-member field and
    // override, fits the conversation document's cap.
    let mut hub = Hub::new();
    let mut owner = Device::new("owner", 1);
    let c = conv_id("full");
    let mut members = vec![Member::new(owner.account(), Role::Owner)];
    for i in 1..confab_core::limits::GROUP_MAX_MEMBERS {
        let mut m = Member::new(acc(&format!("u{i}")), Role::Member);
        m.invited_by = Some(owner.account());
        m.joined_at = Some(NOW);
        m.nickname = Some("n".into());
        m.color = Some("#fff".into());
        for p in Permission::ALL {
            m.overrides.insert(*p, false);
        }
        members.push(m);
    }
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: owner.account(),
        created_at: NOW - 1000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Group),
        members,
    };
    let change = owner.write(&conv_doc(&c), |d, t| {
        write::create_conversation(d, t, &spec)
    });
    assert!(change.len() > CHANGE_MAX_OPS && change.len() <= CONV_CHANGE_MAX_OPS);
    submit(&mut hub, &owner, &conv_doc(&c), change).expect("a full group is created");
}

/// A member keeps at most `REACTIONS_PER_MEMBER_MAX` different reactions on one message;
/// removing stays possible, and others are not affected.
#[test]
fn reactions_per_member_per_message_too_many_reactions() {
    use confab_core::limits::REACTIONS_PER_MEMBER_MAX;
    let mut f = fixture();
    let bucket = f.bucket.clone();
    for i in 0..REACTIONS_PER_MEMBER_MAX {
        let change = raw_reaction(
            &mut f.bob,
            &bucket,
            &reaction_key("m1", "bob", &format!("e{i}")),
            Some(NOW),
        );
        accept(&mut f.hub, &mut f.bob, &bucket, change);
    }
    let one_more = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "extra"),
        Some(NOW),
    );
    assert_rejected(&mut f.hub, &f.bob, &bucket, one_more, "too_many_reactions");
    // Re-reacting with one he has is no growth.
    let again = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "e0"),
        Some(NOW + 1),
    );
    accept(&mut f.hub, &mut f.bob, &bucket, again);
    // Swapping one for another in one change keeps the count.
    let swap = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        tx.delete(&reactions, reaction_key("m1", "bob", "e1"))
            .unwrap();
        tx.put(&reactions, reaction_key("m1", "bob", "swapped"), NOW)
            .unwrap();
    });
    accept(&mut f.hub, &mut f.bob, &bucket, swap);
    // Alice is not limited by bob's reactions.
    let alice = raw_reaction(
        &mut f.alice,
        &bucket,
        &reaction_key("m1", "alice", "extra"),
        Some(NOW),
    );
    accept(&mut f.hub, &mut f.alice, &bucket, alice);
    // Several at once past the cap, from a fresh member.
    let burst = raw(&mut f.dave, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        for i in 0..=REACTIONS_PER_MEMBER_MAX {
            tx.put(
                &reactions,
                reaction_key("m1", "dave", &format!("d{i}")),
                NOW,
            )
            .unwrap();
        }
    });
    assert_rejected(&mut f.hub, &f.dave, &bucket, burst, "too_many_reactions");
}

/// An already accepted change is acknowledged again only to its writer or to whoever may
/// read the document; anyone else learns nothing from the answer.
#[test]
fn resubmitting_anothers_change_needs_read_access() {
    let mut f = fixture();
    let (bucket, change) = text_change(&mut f.bob, &f.conv, "b1", "secret", NOW);
    accept(&mut f.hub, &mut f.bob, &bucket, change.clone());
    let eve = Device::new("eve", 1);
    let r = submit(&mut f.hub, &eve, &bucket, change.clone()).expect_err("eve may not read");
    assert_eq!(r.code.as_str(), "not_member", "{}", r.reason);
    let cd = f.cd.clone();
    let creation = f.hub.changes_after(&cd, 0)[0].1.clone();
    let r = submit(&mut f.hub, &eve, &cd, creation.clone()).expect_err("eve may not read");
    assert_eq!(r.code.as_str(), "not_member");
    // A service account and a member may.
    let (ack, _) = submit(&mut f.hub, &f.alice, &bucket, change.clone()).expect("member");
    assert_eq!(ack.hash, change.hash());
    submit(&mut f.hub, &Device::service("bot"), &bucket, change.clone()).expect("service");

    // Bob leaves: he may still resubmit his own change (he wrote it), not alice's.
    let leave = f.bob.write(&cd, |d, t| {
        write::set_member_status(d, t, NOW, &acc("bob"), MemberStatus::Left)
    });
    accept(&mut f.hub, &mut f.bob, &cd, leave);
    submit(&mut f.hub, &f.bob, &bucket, change).expect("his own change");
    let r = submit(&mut f.hub, &f.bob, &cd, creation).expect_err("no longer a member");
    assert_eq!(r.code.as_str(), "member_inactive");

    // A private document is its owner's.
    let pd = DocId::private(&tenant(), &acc("alice"));
    let draft = f.alice.write(&pd, |d, t| {
        write::set_draft(d, t, NOW, &f.conv, Some("psst"))
    });
    accept(&mut f.hub, &mut f.alice, &pd, draft.clone());
    let r = submit(&mut f.hub, &eve, &pd, draft.clone()).expect_err("not hers");
    assert_eq!(r.code.as_str(), "not_owner");
    submit(&mut f.hub, &f.alice, &pd, draft).expect("the owner");
}

/// A second creation of an existing conversation (a device that did not know the first)
/// answers `already_created`, as documented, not `conflicting_write`.
#[test]
fn second_creation_already_created() {
    let mut f = fixture();
    let mut other = Device::new("alice", 9);
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: acc("alice"),
        created_at: NOW,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(acc("alice"), Role::Owner)],
    };
    let cd = f.cd.clone();
    let again = other.write(&cd, |d, t| write::create_conversation(d, t, &spec));
    assert_rejected(&mut f.hub, &other, &cd, again, "already_created");
}
