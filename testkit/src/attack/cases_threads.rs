//! Threads follow their parent (docs/POLICY.md, "Rules"): who is out of the parent is out
//! of its threads, and a thread hangs on a message the parent holds.

use confab_core::automerge::transaction::Transactable;
use confab_core::automerge::{ObjType, ScalarValue};
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::ids::{ConvId, DocId};

use super::fixture::{fixture, Fixture};
use super::{Lab, PerDriver};
use crate::craft::*;
use crate::ids::{conv_doc, conv_id};

/// Alice's thread `id` on the group's "m1", which bob joined by himself and posted in.
async fn thread_with_bob(lab: &mut impl Lab, f: &mut Fixture, id: &str) -> (ConvId, DocId) {
    let t = lab.now() - 500;
    let thread = conv_id(id);
    let td = conv_doc(&thread);
    let create = raw_thread(&mut f.alice, &thread, &f.conv, 1, 1, t);
    lab.accept(&mut f.alice, &td, create).await;
    lab.pull(&mut f.bob, &td).await;
    let join = raw(&mut f.bob, &td, |tx| {
        let members = obj(&*tx, &[MEMBERS]);
        let m = tx.put_object(&members, "bob", ObjType::Map).expect("put");
        tx.put(&m, ROLE, "member").expect("put");
        tx.put(&m, STATUS, "active").expect("put");
        tx.put(&m, JOINED_AT, t).expect("put");
    });
    lab.accept(&mut f.bob, &td, join).await;
    let now = lab.now();
    let (bucket, first) = raw_post(
        &mut f.alice,
        &thread,
        "a1",
        &text_fields("alice", "hi", now),
        now,
    );
    lab.accept(&mut f.alice, &bucket, first).await;
    lab.pull(&mut f.bob, &bucket).await;
    let (bucket, post) = raw_post(
        &mut f.bob,
        &thread,
        "b1",
        &text_fields("bob", "hi", now),
        now,
    );
    lab.accept(&mut f.bob, &bucket, post).await;
    lab.pull(&mut f.alice, &bucket).await;
    (thread, bucket)
}

/// Alice sets bob's status in the group to `status` (removed or banned).
async fn out_of_parent(lab: &mut impl Lab, f: &mut Fixture, status: &str) {
    let t = lab.now();
    let change = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(STATUS, s(status)), (REMOVED_AT, ScalarValue::Int(t))],
    );
    lab.accept(&mut f.alice, &f.cd, change).await;
}

/// Bob, removed from the group, still holds an active entry in its thread: he neither
/// posts, reacts nor moves his read marker there, nor reads it; leaving it stays open.
pub async fn removed_from_parent_writes_in_thread_not_parent_member(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a80").await;
    let (thread, bucket) = thread_with_bob(lab, &mut f, "a80-t").await;
    let td = conv_doc(&thread);
    out_of_parent(lab, &mut f, "removed").await;
    let t = lab.now();
    let (b, later) = raw_post(
        &mut f.bob,
        &thread,
        "b2",
        &text_fields("bob", "still?", t),
        t,
    );
    assert_eq!(b, bucket);
    lab.reject(&f.bob, &bucket, later, "not_parent_member")
        .await;
    let react = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("b1", "bob", "👍"),
        Some(t),
    );
    lab.reject(&f.bob, &bucket, react, "not_parent_member")
        .await;
    let mark = raw_put(&mut f.bob, &td, &[READS], &[("bob", s("b1"))]);
    lab.reject(&f.bob, &td, mark, "not_parent_member").await;
    let refused = PerDriver {
        hub: "not_parent_member",
        wire: "forbidden",
    };
    for doc in [&td, &bucket] {
        lab.unreadable(&f.bob, doc, refused).await;
    }
    // Twin: alice, still in the group, posts; bob may still leave the thread.
    let (_, twin) = raw_post(
        &mut f.alice,
        &thread,
        "a2",
        &text_fields("alice", "bye", t),
        t,
    );
    lab.accept(&mut f.alice, &bucket, twin).await;
    let leave = raw_put(
        &mut f.bob,
        &td,
        &[MEMBERS, "bob"],
        &[(STATUS, s("left")), (LEFT_AT, ScalarValue::Int(t))],
    );
    lab.accept(&mut f.bob, &td, leave).await;
}

/// Bob, banned from the group, may not subscribe to its thread nor write there.
pub async fn banned_from_parent_subscribes_to_thread_not_parent_member(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a81").await;
    let (thread, bucket) = thread_with_bob(lab, &mut f, "a81-t").await;
    let td = conv_doc(&thread);
    out_of_parent(lab, &mut f, "banned").await;
    let refused = PerDriver {
        hub: "not_parent_member",
        wire: "forbidden",
    };
    lab.unreadable(&f.bob, &td, refused).await;
    lab.unreadable(&f.bob, &bucket, refused).await;
    let t = lab.now();
    let (_, post) = raw_post(&mut f.bob, &thread, "b3", &text_fields("bob", "hi", t), t);
    lab.reject(&f.bob, &bucket, post, "not_parent_member").await;
}

/// Bob, removed from the group (and, in a second group, banned), keeps his entry in its
/// thread but reads none of it outside a subscription either (REST); alice, in the group,
/// still does.
pub async fn out_of_parent_reads_thread_over_rest_not_parent_member(lab: &mut impl Lab) {
    for (id, status) in [("a97", "removed"), ("a98", "banned")] {
        let mut f = fixture(lab, id).await;
        let (thread, _) = thread_with_bob(lab, &mut f, &format!("{id}-t")).await;
        let td = conv_doc(&thread);
        out_of_parent(lab, &mut f, status).await;
        lab.reads_refused(&f.bob, &td, "not_parent_member").await;
        assert!(lab.conversation(&td).await.is_some(), "alice reads {td}");
    }
}

/// A thread hangs on a message its parent holds and has not deleted.
pub async fn thread_on_missing_message_parent_message_missing(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a82").await;
    let t = lab.now() - 500;
    let nowhere = conv_id("a82-t1");
    let change = raw_thread_on(&mut f.bob, &nowhere, (&f.conv, "nope"), 1, 1, t);
    lab.reject(
        &f.bob,
        &conv_doc(&nowhere),
        change,
        "parent_message_missing",
    )
    .await;
    // Alice deletes m1: no thread on it any more.
    let delete = raw_tombstone(&mut f.alice, &f.bucket, "m1", (t, "alice"), &[], &[]);
    lab.accept(&mut f.alice, &f.bucket, delete).await;
    let gone = conv_id("a82-t2");
    let change = raw_thread_on(&mut f.bob, &gone, (&f.conv, "m1"), 1, 1, t);
    lab.reject(&f.bob, &conv_doc(&gone), change, "parent_message_missing")
        .await;
    assert_eq!(lab.conversation(&conv_doc(&gone)).await, None);
    // Twin: a thread on a live message.
    let (bucket, m2) = raw_post(
        &mut f.alice,
        &f.conv,
        "m2",
        &text_fields("alice", "hi", t),
        t,
    );
    lab.accept(&mut f.alice, &bucket, m2).await;
    let live = conv_id("a82-t3");
    let change = raw_thread_on(&mut f.bob, &live, (&f.conv, "m2"), 1, 1, t);
    lab.accept(&mut f.bob, &conv_doc(&live), change).await;
}
