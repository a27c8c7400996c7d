//! Ownership: the transfer (one change, only by the owner, only to an active member), the
//! only owner who may not leave or be removed before a transfer, and hiding, which is for
//! direct conversations only.

use confab_core::automerge::transaction::Transactable;
use confab_core::automerge::{Change, ObjType, ScalarValue};
use confab_core::doc::schema::keys::*;
use confab_core::doc::{write, IntentTag};
use confab_core::ids::{direct_conv_id, DocId};
use confab_core::model::conversation::MemberStatus;

use super::fixture::fixture;
use super::{Lab, PerDriver};
use crate::craft::*;
use crate::device::Device;
use crate::ids::{acc, conv_id, tenant};

/// `from` hands ownership to `to` the way a client writes it, on a copy of its replica.
fn transfer(dev: &mut Device, cd: &DocId, from: &str, to: &str, t: i64) -> Change {
    let mut copy = dev.doc(cd).clone();
    let tag = IntentTag::new("transfer", "transfer_ownership");
    write::transfer_ownership(&mut copy, &tag, t, &acc(from), &acc(to))
        .expect("the transfer writes");
    copy.get_last_local_change().expect("a change")
}

/// `who`'s entry written with `status` and its time, as a leave, removal or ban does.
fn status_change(dev: &mut Device, cd: &DocId, who: &str, status: MemberStatus, t: i64) -> Change {
    let at = if status == MemberStatus::Left {
        LEFT_AT
    } else {
        REMOVED_AT
    };
    raw_put(
        dev,
        cd,
        &[MEMBERS, who],
        &[(STATUS, s(status.as_str())), (at, ScalarValue::Int(t))],
    )
}

pub async fn transfer_by_a_non_owner_owner_only(lab: &mut impl Lab) {
    let mut f = fixture(lab, "o01").await;
    let t = lab.now();
    // The admin (and a member) write the transfer a client would write for the owner.
    let by_admin = transfer(&mut f.dave, &f.cd, "alice", "dave", t);
    lab.reject(&f.dave, &f.cd, by_admin, "owner_only").await;
    let by_member = transfer(&mut f.bob, &f.cd, "alice", "bob", t);
    lab.reject(&f.bob, &f.cd, by_member, "owner_only").await;
    // Twin: the owner makes dave the owner and becomes an admin.
    let twin = transfer(&mut f.alice, &f.cd, "alice", "dave", t);
    lab.accept(&mut f.alice, &f.cd, twin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("dave").role, "owner");
    assert_eq!(conv.member("alice").role, "admin");
    // Alice is no owner any more: handing it on again is not hers.
    let again = transfer(&mut f.alice, &f.cd, "dave", "bob", t);
    lab.reject(&f.alice, &f.cd, again, "owner_only").await;
}

pub async fn transfer_to_a_non_member_or_banned_member(lab: &mut impl Lab) {
    let mut f = fixture(lab, "o02").await;
    let t = lab.now();
    // Carol has no entry: the transfer makes one, owner and active.
    let to_stranger = raw(&mut f.alice, &f.cd, |tx| {
        let members = obj(&*tx, &[MEMBERS]);
        let carol = tx.put_object(&members, "carol", ObjType::Map).expect("put");
        tx.put(&carol, ROLE, "owner").expect("put");
        tx.put(&carol, STATUS, "active").expect("put");
        let alice = obj(&*tx, &[MEMBERS, "alice"]);
        tx.put(&alice, ROLE, "admin").expect("put");
    });
    lab.reject(&f.alice, &f.cd, to_stranger, "target_not_member")
        .await;
    // Dave bans bob; ownership does not go to him.
    let ban = status_change(&mut f.dave, &f.cd, "bob", MemberStatus::Banned, t);
    lab.accept(&mut f.dave, &f.cd, ban).await;
    lab.pull(&mut f.alice, &f.cd).await;
    let to_banned = transfer(&mut f.alice, &f.cd, "alice", "bob", t);
    lab.reject(&f.alice, &f.cd, to_banned, "target_inactive")
        .await;
    // Twin: to dave, who is active.
    let twin = transfer(&mut f.alice, &f.cd, "alice", "dave", t);
    lab.accept(&mut f.alice, &f.cd, twin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("dave").role, "owner");
    assert!(!conv.member("bob").active);
}

pub async fn the_only_owner_leaving_owner_must_transfer(lab: &mut impl Lab) {
    let mut f = fixture(lab, "o03").await;
    let t = lab.now();
    let leave = status_change(&mut f.alice, &f.cd, "alice", MemberStatus::Left, t);
    lab.reject(&f.alice, &f.cd, leave, "owner_must_transfer")
        .await;
    // Twin: after a transfer she is an admin, and may leave.
    let handover = transfer(&mut f.alice, &f.cd, "alice", "dave", t);
    lab.accept(&mut f.alice, &f.cd, handover).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("dave").role, "owner");
    assert_eq!(conv.member("alice").role, "admin");
    let leave = status_change(&mut f.alice, &f.cd, "alice", MemberStatus::Left, t);
    lab.accept(&mut f.alice, &f.cd, leave).await;
    // Dave runs it now; alice is gone (the projection is read as her, so it is not asked).
    lab.pull(&mut f.dave, &f.cd).await;
    let promote = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("moderator"))],
    );
    lab.accept(&mut f.dave, &f.cd, promote).await;
    lab.unreadable(&f.alice, &f.cd, GONE).await;
}

/// How a departed member's reads are refused: the hub refuses to acknowledge others'
/// changes to it, the server refuses the subscription.
const GONE: PerDriver<&str> = PerDriver {
    hub: "member_inactive",
    wire: "forbidden",
};

pub async fn banning_the_owner_owner_must_transfer(lab: &mut impl Lab) {
    let mut f = fixture(lab, "o04").await;
    let t = lab.now();
    let ban = status_change(&mut f.dave, &f.cd, "alice", MemberStatus::Banned, t);
    lab.reject(&f.dave, &f.cd, ban, "owner_must_transfer").await;
    // Twin: once alice handed ownership to dave, she is an admin like any other.
    let handover = transfer(&mut f.alice, &f.cd, "alice", "dave", t);
    lab.accept(&mut f.alice, &f.cd, handover).await;
    lab.pull(&mut f.dave, &f.cd).await;
    let ban = status_change(&mut f.dave, &f.cd, "alice", MemberStatus::Banned, t);
    lab.accept(&mut f.dave, &f.cd, ban).await;
    lab.unreadable(&f.alice, &f.cd, GONE).await;
}

pub async fn hiding_a_group_direct_only(lab: &mut impl Lab) {
    // An account of its own: other cases count on being the first writers of alice's
    // private document.
    let mut hana = Device::new("hana", 1);
    let pd = DocId::private(&tenant(), &acc("hana"));
    let t = lab.now();
    let hide = |dev: &mut Device, conv: &str| {
        let conv = conv_id(conv);
        let mut copy = dev.doc(&pd).clone();
        let tag = IntentTag::new("hide", "hide");
        write::set_hidden(&mut copy, &tag, t, &conv, Some(t)).expect("the hide writes");
        copy.get_last_local_change().expect("a change")
    };
    let group = hide(&mut hana, "o05");
    lab.reject(&hana, &pd, group, "direct_only").await;
    // Twin: her direct conversation with bob (it need not be open for her list to skip it).
    let direct = direct_conv_id(&tenant(), &acc("hana"), &acc("bob"));
    let twin = hide(&mut hana, direct.as_str());
    lab.accept(&mut hana, &pd, twin).await;
}
