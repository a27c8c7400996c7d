//! Joining (docs/POLICY.md, "Joining"): join requests where approval is required, answering
//! them under `add_members_policy`, and the scope setting.

use confab_core::automerge::{Change, ScalarValue};
use confab_core::doc::schema::keys::*;
use confab_core::doc::write;
use confab_core::ids::DocId;
use confab_core::model::conversation::{EditPolicy, JoinPolicy, Member, MemberStatus, Role};

use super::fixture::{fixture, fixture_with};
use super::Lab;
use crate::craft::*;
use crate::device::Device;
use crate::ids::acc;

/// `who`'s request to join (a member entry with status `requested`), written through
/// `doc::write` on `dev`'s replica.
fn request(dev: &mut Device, cd: &DocId, who: &str) -> Change {
    let mut m = Member::new(acc(who), Role::Member);
    m.status = MemberStatus::Requested;
    dev.write(cd, |doc, tag| write::add_member(doc, tag, 0, &m))
        .expect("a request writes")
}

/// `by` adds `who` with `role` (an approval when `who` asked).
fn add(dev: &mut Device, cd: &DocId, who: &str, role: Role, t: i64) -> Change {
    let mut m = Member::new(acc(who), role);
    m.invited_by = Some(dev.account_id());
    m.joined_at = Some(t);
    dev.write(cd, |doc, tag| write::add_member(doc, tag, t, &m))
        .expect("an add writes")
}

/// A fresh device of `who` holding the accepted conversation document.
async fn fresh(lab: &mut impl Lab, who: &str, n: u8, cd: &DocId) -> Device {
    let mut dev = Device::new(who, n);
    lab.pull(&mut dev, cd).await;
    dev
}

pub async fn asking_to_join_needs_approval_and_a_link_or_open_policy(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a60").await;
    let t = lab.now();
    // Invite only: no requests.
    let mut carol = fresh(lab, "carol", 1, &f.cd).await;
    let change = request(&mut carol, &f.cd, "carol");
    lab.reject(&carol, &f.cd, change, "join_not_allowed").await;
    let open = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[
            (JOIN_POLICY, s("open")),
            (JOIN_APPROVAL_REQUIRED, ScalarValue::Boolean(true)),
        ],
    );
    lab.accept(&mut f.alice, &f.cd, open).await;
    // Open with approval: joining directly is refused with its own code...
    let mut carol = fresh(lab, "carol", 2, &f.cd).await;
    let change = add(&mut carol, &f.cd, "carol", Role::Member, t);
    lab.reject(&carol, &f.cd, change, "approval_required").await;
    // ... nobody asks for someone else ...
    let mut carol = fresh(lab, "carol", 3, &f.cd).await;
    let change = request(&mut carol, &f.cd, "erin");
    lab.reject(&carol, &f.cd, change, "not_own_key").await;
    // ... and the twin, carol's own request, is accepted: an entry that is not active.
    let mut carol = fresh(lab, "carol", 4, &f.cd).await;
    let change = request(&mut carol, &f.cd, "carol");
    lab.accept(&mut carol, &f.cd, change).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert!(!conv.member("carol").active, "{conv:?}");
    // A requester is not a member: it posts nothing.
    let (bucket, post) = raw_post(&mut carol, &f.conv, "c1", &text_fields("carol", "hi", t), t);
    lab.reject(&carol, &bucket, post, "member_inactive").await;
    // A scope outside the three is refused; a real one is an admin's setting.
    let change = raw_put(&mut f.dave, &f.cd, &[SETTINGS], &[(SCOPE, s("secret"))]);
    lab.reject(&f.dave, &f.cd, change, "invalid_value").await;
    let change = raw_put(&mut f.bob, &f.cd, &[SETTINGS], &[(SCOPE, s("public"))]);
    lab.reject(&f.bob, &f.cd, change, "no_permission").await;
    let change = raw_put(&mut f.alice, &f.cd, &[SETTINGS], &[(SCOPE, s("public"))]);
    lab.accept(&mut f.alice, &f.cd, change).await;
}

pub async fn answering_requests_under_admins_only_add_policy(lab: &mut impl Lab) {
    let mut f = fixture_with(lab, "a61", |s| {
        s.join_policy = JoinPolicy::Open;
        s.join_approval_required = true;
        s.add_members_policy = EditPolicy::AdminsOnly;
    })
    .await;
    let t = lab.now();
    for who in ["carol", "erin"] {
        let mut dev = fresh(lab, who, 1, &f.cd).await;
        let change = request(&mut dev, &f.cd, who);
        lab.accept(&mut dev, &f.cd, change).await;
    }
    for dev in [&mut f.alice, &mut f.bob, &mut f.dave] {
        lab.pull(dev, &f.cd).await;
    }
    // A member may add by role, but the add policy keeps adding (and approving) to admins.
    let change = add(&mut f.bob, &f.cd, "carol", Role::Guest, t);
    lab.reject(&f.bob, &f.cd, change, "no_permission").await;
    // The admin declines carol (removed): she cannot ask again by herself.
    let decline = f
        .dave
        .write(&f.cd, |doc, tag| {
            write::set_member_status(doc, tag, t, &acc("carol"), MemberStatus::Removed)
        })
        .expect("a decline writes");
    lab.accept(&mut f.dave, &f.cd, decline).await;
    let mut carol = fresh(lab, "carol", 2, &f.cd).await;
    let change = request(&mut carol, &f.cd, "carol");
    lab.reject(&carol, &f.cd, change, "member_inactive").await;
    // Twin: the admin approves erin, who then posts.
    let approve = add(&mut f.dave, &f.cd, "erin", Role::Member, t);
    lab.accept(&mut f.dave, &f.cd, approve).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert!(conv.member("erin").active, "{conv:?}");
    assert!(!conv.member("carol").active, "{conv:?}");
    let mut erin = fresh(lab, "erin", 2, &f.cd).await;
    lab.pull(&mut erin, &f.bucket).await;
    let (bucket, post) = raw_post(&mut erin, &f.conv, "e1", &text_fields("erin", "hi", t), t);
    lab.accept(&mut erin, &bucket, post).await;
}

pub async fn withdrawing_a_request_and_asking_again(lab: &mut impl Lab) {
    let mut f = fixture_with(lab, "a62", |s| {
        s.join_policy = JoinPolicy::Link;
        s.join_approval_required = true;
    })
    .await;
    let t = lab.now();
    let mut carol = fresh(lab, "carol", 1, &f.cd).await;
    let change = request(&mut carol, &f.cd, "carol");
    lab.accept(&mut carol, &f.cd, change).await;
    // A requester sets nothing but its leaving.
    let change = raw_put(
        &mut carol,
        &f.cd,
        &[MEMBERS, "carol"],
        &[(NICKNAME, s("c"))],
    );
    lab.reject(&carol, &f.cd, change, "member_inactive").await;
    let mut carol = fresh(lab, "carol", 2, &f.cd).await;
    let withdraw = carol
        .write(&f.cd, |doc, tag| {
            write::set_member_status(doc, tag, t, &acc("carol"), MemberStatus::Left)
        })
        .expect("a withdrawal writes");
    lab.accept(&mut carol, &f.cd, withdraw).await;
    let again = request(&mut carol, &f.cd, "carol");
    lab.accept(&mut carol, &f.cd, again).await;
    lab.pull(&mut f.alice, &f.cd).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("carol").role, "member");
}
