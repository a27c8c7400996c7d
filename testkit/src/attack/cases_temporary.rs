//! Temporary roles (docs/POLICY.md, "Temporary roles and overrides"): the acceptor judges a
//! role by its own clock, so a role whose time came is gone whether or not anyone wrote it
//! down yet, and writing it down is anyone's only once the time came.

use confab_core::automerge::ScalarValue;
use confab_core::doc::lapse::write_lapses;
use confab_core::doc::schema::keys::{MEMBERS, ROLE_AFTER, ROLE_UNTIL};
use confab_core::doc::write;
use confab_core::ids::MessageId;
use confab_core::model::conversation::{Member, Role};

use super::fixture::{fixture, Fixture};
use super::Lab;
use crate::craft::{raw_put, s};
use crate::device::Device;
use crate::ids::acc;

const HOUR: i64 = 3_600_000;

/// `f.dave` (admin) makes bob moderator until `until`.
async fn make_bob_moderator_until(lab: &mut impl Lab, f: &mut Fixture, until: i64) {
    let now = lab.now();
    let grant = f
        .dave
        .write(&f.cd, |d, t| {
            write::set_role(d, t, now, &acc("bob"), Role::Moderator, Some(until))
        })
        .expect("the grant writes");
    lab.accept(&mut f.dave, &f.cd, grant).await;
    lab.pull(&mut f.bob, &f.cd).await;
}

/// Bob's pin of alice's "m1", written by `dev` (a device of bob's).
fn pin_m1(
    dev: &mut Device,
    cd: &confab_core::ids::DocId,
    now: i64,
) -> confab_core::automerge::Change {
    let m1 = MessageId::new("m1").expect("id");
    dev.write(cd, |d, t| write::pin(d, t, now, &m1, &acc("bob")))
        .expect("the pin writes")
}

pub async fn acting_with_a_lapsed_role_no_permission(lab: &mut impl Lab) {
    let mut f = fixture(lab, "t01").await;
    let now = lab.now();
    // "Moderator until a moment ago": granted and accepted, already lapsed by server time.
    make_bob_moderator_until(lab, &mut f, now - 1).await;
    let change = pin_m1(&mut f.bob, &f.cd, now);
    lab.reject(&f.bob, &f.cd, change, "no_permission").await;
    // Twin: moderator for another hour pins (from a device that never wrote the refused pin).
    make_bob_moderator_until(lab, &mut f, now + HOUR).await;
    let mut bob2 = Device::new("bob", 2);
    lab.pull(&mut bob2, &f.cd).await;
    let twin = pin_m1(&mut bob2, &f.cd, now);
    lab.accept(&mut bob2, &f.cd, twin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert!(conv.pins.contains(&"m1".to_owned()), "{conv:?}");
}

pub async fn extending_ones_own_temporary_role_role_too_high(lab: &mut impl Lab) {
    let mut f = fixture(lab, "t02").await;
    let now = lab.now();
    make_bob_moderator_until(lab, &mut f, now + HOUR).await;
    let change = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE_UNTIL, ScalarValue::Int(now + 24 * HOUR))],
    );
    lab.reject(&f.bob, &f.cd, change, "role_too_high").await;
    // Twin: stepping down early, for good.
    let mut bob2 = Device::new("bob", 2);
    lab.pull(&mut bob2, &f.cd).await;
    let twin = bob2
        .write(&f.cd, |d, t| {
            write::set_role(d, t, now, &acc("bob"), Role::Member, None)
        })
        .expect("the step down writes");
    lab.accept(&mut bob2, &f.cd, twin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("bob").role, "member");
}

pub async fn half_a_temporary_role_invalid_value(lab: &mut impl Lab) {
    let mut f = fixture(lab, "t03").await;
    let now = lab.now();
    let change = raw_put(
        &mut f.dave,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(ROLE_UNTIL, ScalarValue::Int(now + HOUR))],
    );
    lab.reject(&f.dave, &f.cd, change, "invalid_value").await;
    // Twin: both keys, from a device that never wrote the half.
    let mut dave2 = Device::new("dave", 2);
    lab.pull(&mut dave2, &f.cd).await;
    let twin = raw_put(
        &mut dave2,
        &f.cd,
        &[MEMBERS, "bob"],
        &[
            (ROLE_UNTIL, ScalarValue::Int(now + HOUR)),
            (ROLE_AFTER, s("member")),
        ],
    );
    lab.accept(&mut dave2, &f.cd, twin).await;
}

pub async fn a_temporary_moderator_loses_its_rights_when_its_time_comes(lab: &mut impl Lab) {
    let mut f = fixture(lab, "t04").await;
    // Long enough for the pin to arrive before it on a slow machine, short for the suite.
    let until = lab.clock() + 2_000;
    make_bob_moderator_until(lab, &mut f, until).await;
    let pin = pin_m1(&mut f.bob, &f.cd, lab.now());
    lab.accept(&mut f.bob, &f.cd, pin).await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("bob").role, "moderator");
    // Its time comes: the acceptor's clock ends the role, written down or not.
    lab.wait_past(&f.cd, until).await;
    let m1 = MessageId::new("m1").expect("id");
    let now = lab.now();
    let unpin = f
        .bob
        .write(&f.cd, |d, t| write::unpin(d, t, now, &m1))
        .expect("the unpin writes");
    lab.reject(&f.bob, &f.cd, unpin, "no_permission").await;
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(
        conv.member("bob").role,
        "member",
        "the view shows the lapse"
    );
    assert!(conv.pins.contains(&"m1".to_owned()), "{conv:?}");
}

pub async fn writing_down_a_lapse_before_its_time_role_too_high(lab: &mut impl Lab) {
    let mut f = fixture(lab, "t05").await;
    let now = lab.now();
    let add_carol = f
        .dave
        .write(&f.cd, |d, t| {
            let mut carol = Member::new(acc("carol"), Role::Member);
            carol.joined_at = Some(now);
            carol.invited_by = Some(acc("dave"));
            write::add_member(d, t, now, &carol)
        })
        .expect("the add writes");
    lab.accept(&mut f.dave, &f.cd, add_carol).await;
    make_bob_moderator_until(lab, &mut f, now + HOUR).await;
    // Carol, a member, claims the hour is over: judged by the acceptor's clock, it is a
    // demotion of a moderator.
    let mut carol = Device::new("carol", 1);
    lab.pull(&mut carol, &f.cd).await;
    let early = carol
        .write(&f.cd, |d, t| write_lapses(d, t, now + 2 * HOUR))
        .expect("the early lapse writes");
    lab.reject(&carol, &f.cd, early, "role_too_high").await;
    // Twin: a role whose time came is anyone's to write down (unless the server's own
    // lapse pass wrote it down first).
    make_bob_moderator_until(lab, &mut f, now - 1).await;
    let mut carol2 = Device::new("carol", 2);
    lab.pull(&mut carol2, &f.cd).await;
    let later = lab.now();
    if let Some(twin) = carol2.try_write(&f.cd, |d, t| write_lapses(d, t, later)) {
        lab.accept(&mut carol2, &f.cd, twin).await;
    }
    let conv = lab.conversation(&f.cd).await.expect("created");
    assert_eq!(conv.member("bob").role, "member");
}
