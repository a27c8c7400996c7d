//! Actors, sequence, dependencies, bytes.

use confab_core::automerge::transaction::{CommitOptions, Transactable};
use confab_core::automerge::{ChangeHash, ObjType, ReadDoc};
use confab_core::doc::read;
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::doc::{self as cdoc, creation_actor, genesis_actor, write};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;

use super::fixture::fixture;
use super::{Answer, Lab};
use crate::craft::*;
use crate::device::Device;
use crate::ids::{acc, tenant};

pub async fn forged_actor_genesis_actor(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a01").await;
    // Alice's replica writing as the document's genesis actor: a well-formed change whose
    // seq and start op follow the genesis, but nobody may write with that actor.
    let mut forged_doc = f.alice.doc(&f.cd).clone();
    forged_doc.set_actor(genesis_actor(&f.cd));
    let forged = raw_on(&mut forged_doc, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put(&info, TITLE, "hijacked").expect("put");
    });
    assert_eq!(forged.actor_id(), &genesis_actor(&f.cd));
    assert_eq!(forged.seq(), 2, "the genesis actor's next change");
    lab.reject(&f.alice, &f.cd, forged, "forged_actor").await;
    // Twin: the same edit with alice's own actor.
    let edit = raw_put(&mut f.alice, &f.cd, &[INFO], &[(TITLE, s("renamed"))]);
    lab.accept(&mut f.alice, &f.cd, edit).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.title, "renamed");
}

pub async fn forged_actor_creation_actor(lab: &mut impl Lab) {
    // In a group: the creation actor writes only deterministic direct/support creations.
    let mut f = fixture(lab, "a02").await;
    let mut forged_doc = f.alice.doc(&f.cd).clone();
    forged_doc.set_actor(creation_actor(&f.cd));
    let forged = raw_on(&mut forged_doc, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put(&info, TITLE, "hijacked").expect("put");
    });
    lab.reject(&f.alice, &f.cd, forged, "forged_actor").await;

    // In a direct conversation (alice–frank, used by no other case): a creation change with
    // the creation actor that is not the exact deterministic change (alice made herself
    // owner; or a third member slipped in).
    let mut alice = Device::new("alice", 1);
    let (dd, real) = write::direct_creation_change(&tenant(), &acc("alice"), &acc("frank"))
        .expect("a direct creation");
    let forge = |members: &[(&str, &str)]| {
        let mut doc = cdoc::genesis(&dd).expect("genesis");
        doc.set_actor(creation_actor(&dd));
        let mut tx = doc.transaction();
        let meta = obj(&tx, &[META]);
        tx.put(&meta, KIND, "direct").expect("put");
        tx.put(&meta, CREATED_AT, 0_i64).expect("put");
        tx.put(&meta, BUCKET_MS, DEFAULT_BUCKET_MS).expect("put");
        let all = obj(&tx, &[MEMBERS]);
        for (account, role) in members {
            let m = tx.put_object(&all, *account, ObjType::Map).expect("put");
            tx.put(&m, ROLE, *role).expect("put");
            tx.put(&m, STATUS, "active").expect("put");
        }
        tx.commit_with(CommitOptions::default().with_time(0).with_message("create"));
        doc.get_last_local_change().expect("a change")
    };
    let owner = forge(&[("alice", "owner"), ("frank", "member")]);
    let third = forge(&[
        ("alice", "member"),
        ("carol", "member"),
        ("frank", "member"),
    ]);
    let honest = forge(&[("alice", "member"), ("frank", "member")]);
    assert_eq!(
        honest.hash(),
        real.hash(),
        "the forge reproduces the real one"
    );
    lab.reject(&alice, &dd, owner.clone(), "forged_actor").await;
    lab.reject(&alice, &dd, third.clone(), "forged_actor").await;
    // Twin: the exact deterministic change is accepted; the forgeries stay refused after it.
    lab.accept(&mut alice, &dd, real).await;
    lab.reject(&alice, &dd, owner, "forged_actor").await;
    lab.reject(&alice, &dd, third, "forged_actor").await;
    let conv = lab.conversation(&dd).await.expect("created");
    assert_eq!(conv.members.len(), 2, "{conv:?}");
    assert!(conv.members.iter().all(|m| m.role == "member"), "{conv:?}");
}

pub async fn actor_bound_to_other(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a03").await;
    // Alice's actor is bound to alice by her first accepted change.
    if let Some(bound) = lab.binding(&f.alice.actor) {
        assert_eq!(bound, Some(acc("alice")));
    }
    let t = lab.now();
    let (bucket, change) = raw_post(
        &mut f.alice,
        &f.conv,
        "m2",
        &text_fields("alice", "hi", t),
        t,
    );
    // Bob's session submits a change made with alice's actor.
    lab.reject(&f.bob, &bucket, change.clone(), "actor_bound_to_other")
        .await;
    // Twin: the very same bytes from alice's session are fine.
    lab.accept(&mut f.alice, &bucket, change).await;
}

pub async fn seq_gap_and_bad_start_op(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a04").await;
    let t = lab.now();
    let (bucket, first) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "one", t), t);
    assert_eq!(first.seq(), 1);
    lab.accept(&mut f.bob, &bucket, first).await;
    let (_, second) = raw_post(&mut f.bob, &f.conv, "b2", &text_fields("bob", "two", t), t);
    assert_eq!(second.seq(), 2);
    // seq 3 after 1.
    let gap = tamper(&second, |e| e.seq = 3);
    lab.reject(&f.bob, &bucket, gap, "seq_gap").await;
    // The right seq, but op ids that reuse the first change's.
    let reuse = tamper(&second, |e| e.start_op = std::num::NonZeroU64::MIN);
    lab.reject(&f.bob, &bucket, reuse, "bad_start_op").await;
    // Twin: the untampered change.
    lab.accept(&mut f.bob, &bucket, second).await;
}

/// Automerge op ids are Lamport clocks: a change's ops must be numbered above every op its
/// dependencies hold. Dave's first change in the document may not start at op 1 while it
/// overwrites alice's title (op ~35): accepted, it would poison the document (`save()`
/// yields bytes `Automerge::load` refuses, and `changes_after` panics inside automerge).
pub async fn start_op_below_dependencies_max_op_bad_start_op(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a05").await;
    let cd = f.cd.clone();
    let edit = raw_put(&mut f.alice, &cd, &[INFO], &[(TITLE, s("renamed"))]);
    lab.accept(&mut f.alice, &cd, edit).await;
    lab.pull(&mut f.dave, &cd).await;
    let honest = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    assert_eq!(
        honest.seq(),
        1,
        "dave's first change here: no own ops to overlap"
    );
    assert!(honest.start_op().get() > 30);
    let low = tamper(&honest, |e| e.start_op = std::num::NonZeroU64::MIN);
    lab.reject(&f.dave, &cd, low, "bad_start_op").await;
    lab.sound(&cd).await;
    // Twin: the honest numbering.
    lab.accept(&mut f.dave, &cd, honest).await;
    lab.sound(&cd).await;
}

/// Even a put on a fresh key (no pred, into a genesis map with a low counter) poisons the
/// document when it is numbered below its dependencies.
pub async fn fresh_key_numbered_below_dependencies_bad_start_op(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a06").await;
    let bucket = f.bucket.clone();
    let key = reaction_key("m1", "bob", "👍");
    let honest = raw_reaction(&mut f.bob, &bucket, &key, Some(lab.now()));
    assert!(honest.start_op().get() > 4);
    let low = tamper(&honest, |e| {
        e.start_op = std::num::NonZeroU64::new(4).expect("non-zero")
    });
    lab.reject(&f.bob, &bucket, low, "bad_start_op").await;
    lab.sound(&bucket).await;
    lab.accept(&mut f.bob, &bucket, honest).await;
    lab.sound(&bucket).await;
}

/// The same poison without a low start op relative to the deps: the change leaves alice's
/// edit out of its deps and starts right above what they hold, yet its `pred` names alice's
/// title op, whose counter is higher than the op replacing it.
pub async fn op_numbered_below_the_value_it_replaces_bad_start_op(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a07").await;
    let cd = f.cd.clone();
    let (old_heads, old_max) = {
        let d = f.alice.doc(&cd);
        let heads = d.get_heads();
        let max = heads
            .iter()
            .map(|h| d.get_change_by_hash(h).expect("a head").max_op())
            .max()
            .expect("heads");
        (heads, max)
    };
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
    lab.accept(&mut f.alice, &cd, edit).await;
    lab.pull(&mut f.dave, &cd).await;
    let doc = lab.read(&cd).await;
    let title_op = op_id_of(&doc, &obj(&doc, &[INFO]), TITLE);
    assert!(title_op.counter() > old_max + 1);
    let honest = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    let forged = tamper(&honest, |e| {
        e.deps = old_heads.clone();
        e.start_op = std::num::NonZeroU64::new(old_max + 1).expect("non-zero");
    });
    assert_eq!(
        forged.decode().operations[0]
            .pred
            .iter()
            .collect::<Vec<_>>(),
        vec![&title_op]
    );
    lab.reject(&f.dave, &cd, forged, "bad_start_op").await;
    lab.sound(&cd).await;
    lab.accept(&mut f.dave, &cd, honest).await;
    lab.sound(&cd).await;
}

pub async fn missing_dependency(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a08").await;
    let t = lab.now();
    // Two changes in a row on bob's replica; the acceptor sees only the second.
    let mut replica = f.bob.doc(&f.bucket).clone();
    let a = raw_on(&mut replica, |tx| {
        put_message(tx, "b1", &text_fields("bob", "one", t))
    });
    let b = raw_on(&mut replica, |tx| {
        put_message(tx, "b2", &text_fields("bob", "two", t))
    });
    assert_eq!(b.deps(), &[a.hash()]);
    let bucket = f.bucket.clone();
    lab.reject(&f.bob, &bucket, b.clone(), "missing_dependency")
        .await;
    // A dependency that exists nowhere.
    let phantom = tamper(&a, |e| e.deps = vec![ChangeHash([7; 32])]);
    lab.reject(&f.bob, &bucket, phantom, "missing_dependency")
        .await;
    // Twin: in order, both are accepted.
    lab.accept(&mut f.bob, &bucket, a).await;
    lab.accept(&mut f.bob, &bucket, b).await;
    assert_eq!(lab.log_len(&bucket).await, 3);
}

/// Garbage submitted as changes: each is `malformed_change` without a hash, and the real
/// change after them is accepted.
pub async fn garbage_bytes_malformed_change(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a09").await;
    let t = lab.now();
    let (bucket, real) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi", t), t);
    let bytes = real.raw_bytes().to_vec();
    // One flipped byte in the body breaks the checksum.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not an automerge change".to_vec(),
        vec![0x85, 0x6f, 0x4a, 0x83, 0xff, 0xff, 0xff],
        bytes[..bytes.len() / 2].to_vec(),
        flipped,
    ];
    let before = lab.log_len(&bucket).await;
    let mut all = garbage.clone();
    all.push(bytes);
    let outcomes = lab.submit_raw(&f.bob, &bucket, &all).await;
    assert_eq!(outcomes.len(), garbage.len() + 1, "one answer per change");
    for (g, outcome) in garbage.iter().zip(&outcomes) {
        match outcome {
            Answer::Reject { hash, code, reason } => {
                assert_eq!(code, "malformed_change", "{g:?}: {reason}");
                assert_eq!(hash, &None, "garbage has no hash");
            }
            other => panic!("{g:?}: expected malformed_change, got {other:?}"),
        }
    }
    match outcomes.last() {
        Some(Answer::Ack { hash, seq }) => {
            assert_eq!(hash[..], real.hash().0[..]);
            assert_eq!(*seq, 2);
        }
        other => panic!("the real change after the garbage: {other:?}"),
    }
    assert_eq!(
        lab.log_len(&bucket).await,
        before + 1,
        "only the real change"
    );
    assert!(
        lab.holds(&bucket, &real.hash()).await,
        "the real change is stored"
    );
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(m.len(), 2);
}

pub async fn duplicate_key_and_empty_change(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a10").await;
    let t = lab.now();
    let (bucket, post) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi", t), t);
    // Two puts on one key in one change: the second must not hide the first.
    let doubled = tamper(&post, |e| {
        let last = e.operations.last().expect("ops").clone();
        e.operations.push(last);
    });
    lab.reject(&f.bob, &bucket, doubled, "duplicate_key").await;
    let empty = tamper(&post, |e| e.operations.clear());
    lab.reject(&f.bob, &bucket, empty, "empty_change").await;
    lab.accept(&mut f.bob, &bucket, post).await;
}
