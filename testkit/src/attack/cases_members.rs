//! Members and roles.

use confab_core::automerge::transaction::Transactable;
use confab_core::automerge::{ObjType, ScalarValue};
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::doc::write;
use confab_core::ids::DocId;

use super::fixture::fixture;
use super::{Lab, PerDriver};
use crate::craft::*;
use crate::device::Device;
use crate::ids::{acc, tenant};

pub async fn author_mismatch(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a11").await;
    let t = lab.now();
    let (bucket, change) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("alice", "I'm alice", t),
        t,
    );
    lab.reject(&f.bob, &bucket, change, "author_mismatch").await;
    let (bucket, twin) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("bob", "I'm bob", t),
        t,
    );
    lab.accept(&mut f.bob, &bucket, twin).await;
}

pub async fn self_promotion_role_too_high(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a12").await;
    let change = raw_put(&mut f.bob, &f.cd, &[MEMBERS, "bob"], &[(ROLE, s("admin"))]);
    lab.reject(&f.bob, &f.cd, change, "role_too_high").await;
    // Twin: the owner promotes bob.
    let twin = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("admin"))],
    );
    lab.accept(&mut f.alice, &f.cd, twin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("bob").role, "admin");
}

pub async fn demoting_the_owner_owner_protected(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a13").await;
    let change = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "alice"],
        &[(ROLE, s("member"))],
    );
    lab.reject(&f.dave, &f.cd, change, "owner_protected").await;
    // The only owner stepping down by itself is refused too (nobody would be in charge):
    // it transfers ownership instead.
    let own = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "alice"],
        &[(ROLE, s("admin"))],
    );
    lab.reject(&f.alice, &f.cd, own, "owner_must_transfer")
        .await;
    // Twin: the admin gives a member a role below its own.
    let twin = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("moderator"))],
    );
    lab.accept(&mut f.dave, &f.cd, twin).await;
}

pub async fn removing_the_owner_owner_must_transfer(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a14").await;
    let t = lab.now();
    let removal = |dev: &mut Device, cd: &DocId, who: &'static str| {
        raw_put(
            dev,
            cd,
            &[MEMBERS, who],
            &[(STATUS, s("removed")), (REMOVED_AT, ScalarValue::Int(t))],
        )
    };
    let change = removal(&mut f.dave, &f.cd, "alice");
    lab.reject(&f.dave, &f.cd, change, "owner_must_transfer")
        .await;
    let twin = removal(&mut f.dave, &f.cd, "bob");
    lab.accept(&mut f.dave, &f.cd, twin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert!(!conv.member("bob").active);
}

pub async fn member_writing_settings_no_permission(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a15").await;
    let off = [(ALLOW_REACTIONS, ScalarValue::Boolean(false))];
    let change = raw_put(&mut f.bob, &f.cd, &[SETTINGS], &off);
    lab.reject(&f.bob, &f.cd, change, "no_permission").await;
    let twin = raw_put(&mut f.alice, &f.cd, &[SETTINGS], &off);
    lab.accept(&mut f.alice, &f.cd, twin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert!(!conv.allow_reactions);
}

pub async fn direct_conversation_third_account_direct_fixed_members(lab: &mut impl Lab) {
    let mut alice = Device::new("alice", 1);
    let mut carol = Device::new("carol", 1);
    let (dd, create) = write::direct_creation_change(&tenant(), &acc("alice"), &acc("bob"))
        .expect("a direct creation");
    lab.accept(&mut alice, &dd, create).await;
    lab.pull(&mut carol, &dd).await;
    let t = lab.now();
    let add = |dev: &mut Device, invited_by: Option<&str>| {
        raw(dev, &dd, |tx| {
            let members = obj(&*tx, &[MEMBERS]);
            let m = tx.put_object(&members, "carol", ObjType::Map).expect("put");
            tx.put(&m, ROLE, "member").expect("put");
            tx.put(&m, STATUS, "active").expect("put");
            tx.put(&m, JOINED_AT, t).expect("put");
            if let Some(by) = invited_by {
                tx.put(&m, INVITED_BY, by).expect("put");
            }
        })
    };
    // Carol adds herself.
    let change = add(&mut carol, None);
    lab.reject(&carol, &dd, change, "direct_fixed_members")
        .await;
    // Alice adds carol.
    let change = add(&mut alice, Some("alice"));
    lab.reject(&alice, &dd, change, "direct_fixed_members")
        .await;
    // Twin: alice may write her own read marker there.
    let twin = raw_put(&mut alice, &dd, &[READS], &[("alice", s("x1"))]);
    lab.accept(&mut alice, &dd, twin).await;
    let conv = lab.conversation(&dd).await.expect("created");
    assert_eq!(conv.members.len(), 2, "{conv:?}");
}

pub async fn removed_member_later_message_member_inactive(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a17").await;
    let t = lab.now();
    // Twin first: while active, bob posts.
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi", t), t);
    lab.accept(&mut f.bob, &bucket, twin).await;
    let removal = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(STATUS, s("removed")), (REMOVED_AT, ScalarValue::Int(t))],
    );
    lab.accept(&mut f.alice, &f.cd, removal).await;
    lab.pull(&mut f.bob, &f.cd).await;
    let (bucket, later) = raw_post(
        &mut f.bob,
        &f.conv,
        "b2",
        &text_fields("bob", "still here", t),
        t,
    );
    lab.reject(&f.bob, &bucket, later, "member_inactive").await;
    // Reacting is a later change too.
    let react = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(t),
    );
    lab.reject(&f.bob, &bucket, react, "member_inactive").await;
    // And so is making himself active again.
    let back = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(STATUS, s("active")), (JOINED_AT, ScalarValue::Int(t))],
    );
    lab.reject(&f.bob, &f.cd, back, "member_inactive").await;
    // Nor may he read any more: the server refuses the subscription; the hub refuses to
    // acknowledge others' changes to him.
    let refused = PerDriver {
        hub: "member_inactive",
        wire: "forbidden",
    };
    for doc in [&f.cd, &bucket] {
        lab.unreadable(&f.bob, doc, refused).await;
    }
}
