//! Lock, delete and block (docs/POLICY.md, "Rules"): what they stop, and that only the right
//! account sets them.

use confab_core::automerge::ScalarValue;
use confab_core::doc::schema::keys::*;
use confab_core::doc::write;
use confab_core::ids::direct_conv_id;

use super::fixture::fixture;
use super::Lab;
use crate::craft::*;
use crate::device::Device;
use crate::ids::{acc, tenant};

pub async fn posting_in_a_locked_conversation_conversation_locked(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a50").await;
    let lock = |dev: &mut Device, on: bool| {
        raw_put(
            dev,
            &f.cd,
            &[SETTINGS],
            &[(LOCKED, ScalarValue::Boolean(on))],
        )
    };
    // A member does not lock.
    let change = lock(&mut f.bob, true);
    lab.reject(&f.bob, &f.cd, change, "no_permission").await;
    let change = lock(&mut f.alice, true);
    lab.accept(&mut f.alice, &f.cd, change).await;
    let t = lab.now();
    let (bucket, post) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi", t), t);
    lab.reject(&f.bob, &bucket, post.clone(), "conversation_locked")
        .await;
    let (_, by_owner) = raw_post(
        &mut f.alice,
        &f.conv,
        "a1",
        &text_fields("alice", "hi", t),
        t,
    );
    lab.reject(&f.alice, &bucket, by_owner, "conversation_locked")
        .await;
    // Twin: the same bytes pass once the owner unlocks.
    let change = lock(&mut f.alice, false);
    lab.accept(&mut f.alice, &f.cd, change).await;
    lab.accept(&mut f.bob, &bucket, post).await;
}

pub async fn writing_to_a_deleted_conversation_conversation_deleted(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a51").await;
    let t = lab.now();
    let delete = |dev: &mut Device, by: &str| {
        raw_put(
            dev,
            &f.cd,
            &[LIFECYCLE],
            &[
                (STATE, s("deleted")),
                (BY, s(by)),
                (AT, ScalarValue::Int(t)),
            ],
        )
    };
    // An admin is not the owner.
    let change = delete(&mut f.dave, "dave");
    lab.reject(&f.dave, &f.cd, change, "no_permission").await;
    // Twin first: before the delete, bob posts.
    let (bucket, post) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi", t), t);
    lab.accept(&mut f.bob, &bucket, post).await;
    let change = delete(&mut f.alice, "alice");
    lab.accept(&mut f.alice, &f.cd, change).await;
    for dev in [&mut f.bob, &mut f.dave] {
        lab.pull(dev, &f.cd).await;
    }
    let (_, post) = raw_post(&mut f.bob, &f.conv, "b2", &text_fields("bob", "late", t), t);
    lab.reject(&f.bob, &bucket, post, "conversation_deleted")
        .await;
    // Final: not even the owner brings it back.
    let reopen = raw_put(
        &mut f.alice,
        &f.cd,
        &[LIFECYCLE],
        &[
            (STATE, s("active")),
            (BY, s("alice")),
            (AT, ScalarValue::Int(t)),
        ],
    );
    lab.reject(&f.alice, &f.cd, reopen, "conversation_deleted")
        .await;
}

pub async fn posting_in_a_blocked_direct_conversation_blocked(lab: &mut impl Lab) {
    let mut bob = Device::new("bob", 1);
    // Its own pair: another case uses alice and bob's direct conversation.
    let mut erin = Device::new("erin", 1);
    let (dd, create) = write::direct_creation_change(&tenant(), &acc("erin"), &acc("bob"))
        .expect("a direct creation");
    lab.accept(&mut erin, &dd, create).await;
    lab.pull(&mut bob, &dd).await;
    let conv = direct_conv_id(&tenant(), &acc("erin"), &acc("bob"));
    let t = lab.now();
    let block = |dev: &mut Device, whose: &str, on: bool| {
        raw_put(
            dev,
            &dd,
            &[MEMBERS, whose],
            &[(BLOCKED, ScalarValue::Boolean(on))],
        )
    };
    // Nobody writes the other's block.
    let change = block(&mut erin, "bob", true);
    lab.reject(&erin, &dd, change, "not_own_key").await;
    let change = block(&mut bob, "bob", true);
    lab.accept(&mut bob, &dd, change).await;
    lab.pull(&mut erin, &dd).await;
    let (bucket, post) = raw_post(&mut erin, &conv, "e1", &text_fields("erin", "hi", t), t);
    lab.reject(&erin, &bucket, post.clone(), "blocked").await;
    let (_, reply) = raw_post(&mut bob, &conv, "b1", &text_fields("bob", "hi", t), t);
    lab.reject(&bob, &bucket, reply, "blocked").await;
    // The one blocked does not lift it.
    let change = block(&mut erin, "bob", false);
    lab.reject(&erin, &dd, change, "not_own_key").await;
    // Twin: once bob unblocks, erin's very bytes pass.
    let change = block(&mut bob, "bob", false);
    lab.accept(&mut bob, &dd, change).await;
    lab.accept(&mut erin, &bucket, post).await;

    // Groups have no blocks.
    let mut f = fixture(lab, "a52").await;
    let change = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(BLOCKED, ScalarValue::Boolean(true))],
    );
    lab.reject(&f.bob, &f.cd, change, "direct_only").await;
}
