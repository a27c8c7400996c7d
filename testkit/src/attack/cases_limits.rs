//! Sizes, counts, URLs, second creations, resubmissions.

use confab_core::automerge::transaction::{Transactable, Transaction};
use confab_core::automerge::{Change, ObjType, ScalarValue, ROOT};
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::doc::write;
use confab_core::ids::DocId;
use confab_core::limits::{
    CHANGE_MAX_OPS, CONV_CHANGE_MAX_OPS, GROUP_MAX_MEMBERS, REACTIONS_PER_MEMBER_MAX,
};
use confab_core::model::conversation::{MemberStatus, Permission, Role};
use confab_core::model::schedule::SCHEDULE_MAX_PENDING;

use super::fixture::{fixture, text_change};
use super::Lab;
use crate::craft::*;
use crate::device::Device;
use crate::fixture::ConvFixture;
use crate::ids::{acc, conv_id, tenant};

pub async fn oversize_body_too_long(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a32").await;
    let t = lab.now();
    let long = text_fields("bob", &"x".repeat(4001), t);
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &long, t);
    lab.reject(&f.bob, &bucket, change, "too_long").await;
    // Editing a body past the limit is refused too.
    let (bucket, mine) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("bob", "short", t),
        t,
    );
    lab.accept(&mut f.bob, &bucket, mine).await;
    let edit = raw_put(
        &mut f.bob,
        &bucket,
        &[MESSAGES, "b1"],
        &[
            (BODY, s(&"é".repeat(4001))),
            (EDITED_AT, ScalarValue::Int(t)),
        ],
    );
    lab.reject(&f.bob, &bucket, edit, "too_long").await;
    // Twin: exactly 4000 characters (multi-byte ones: the limit counts characters).
    let fits = text_fields("bob", &"é".repeat(4000), t);
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b2", &fits, t);
    lab.accept(&mut f.bob, &bucket, twin).await;
}

pub async fn oversize_payload_too_long(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a33").await;
    let t = lab.now();
    // A JSON string literal: 2 quotes + n characters.
    let payload = |bytes: usize| format!("\"{}\"", "x".repeat(bytes - 2));
    let mut fields = text_fields("bob", "data", t);
    fields.push((PAYLOAD, s(&payload(8001))));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields, t);
    lab.reject(&f.bob, &bucket, change, "too_long").await;
    let mut fields = text_fields("bob", "data", t);
    fields.push((PAYLOAD, s(&payload(8000))));
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &fields, t);
    lab.accept(&mut f.bob, &bucket, twin).await;
}

/// URL fields take `https:` only (by default): `javascript:` and `data:` would be stored
/// cross-site scripting in any client that renders them.
pub async fn url_fields_refuse_other_schemes_invalid_value(lab: &mut impl Lab) {
    let mut f = fixture(lab, "w-url").await;
    let cd = f.cd.clone();
    let t = lab.now();
    for (field, bad) in [
        (AVATAR, "javascript:alert(document.cookie)"),
        (
            AVATAR,
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        ),
        (THEME_BACKGROUND, "data:text/html,<script>alert(1)</script>"),
        (THEME_BACKGROUND, "JaVaScRiPt:alert(1)"),
        (THEME_BACKGROUND, "http://plain.example.com/bg.png"),
        (AVATAR, "http://plain.example.com/a.png"),
        (AVATAR, "//example.com/a.png"),
    ] {
        let change = raw_put(&mut f.alice, &cd, &[INFO], &[(field, s(bad))]);
        lab.reject(&f.alice, &cd, change, "invalid_value").await;
    }
    // Twin: an https URL.
    let ok = raw_put(
        &mut f.alice,
        &cd,
        &[INFO],
        &[(AVATAR, s("https://cdn.example.com/g.png"))],
    );
    lab.accept(&mut f.alice, &cd, ok).await;

    // The profile avatar.
    let pd = DocId::profile(&tenant(), &acc("bob"));
    let bad = raw(&mut f.bob, &pd, |tx| {
        tx.put(ROOT, AVATAR, "javascript:alert(1)").expect("put");
    });
    lab.reject(&f.bob, &pd, bad, "invalid_value").await;
    let good = raw(&mut f.bob, &pd, |tx| {
        tx.put(ROOT, AVATAR, "https://cdn.example.com/bob.png")
            .expect("put");
    });
    lab.accept(&mut f.bob, &pd, good).await;

    // An attachment's URL, inside a new message.
    let attach = |url: &str| {
        let mut fields = text_fields("bob", "look", t);
        fields.push((
            ATTACHMENTS,
            s(&format!(r#"[{{"id":"a1","kind":"image","url":"{url}"}}]"#)),
        ));
        fields
    };
    for bad in ["data:image/svg+xml,<svg/>", "javascript:alert(1)"] {
        let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &attach(bad), t);
        lab.reject(&f.bob, &bucket, change, "invalid_value").await;
    }
    let (bucket, good) = raw_post(&mut f.bob, &f.conv, "b1", &attach("https://e.io/a.png"), t);
    lab.accept(&mut f.bob, &bucket, good).await;
}

/// One change holds at most `CHANGE_MAX_OPS` ops: 3,000 reaction keys in one change are
/// refused before they are decoded; many drafts in a private document too.
pub async fn too_many_ops_in_one_change(lab: &mut impl Lab) {
    let mut f = fixture(lab, "w-caps").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let flood = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        for i in 0..3000 {
            tx.put(&reactions, reaction_key("m1", "bob", &format!("e{i}")), t)
                .expect("put");
        }
    });
    assert_eq!(flood.len(), 3000);
    let reason = lab.reject(&f.bob, &bucket, flood, "too_many_ops").await;
    assert!(reason.contains(&CHANGE_MAX_OPS.to_string()), "{reason}");
    let pd = DocId::private(&tenant(), &acc("bob"));
    let drafts = raw(&mut f.bob, &pd, |tx| {
        let drafts = obj(&*tx, &[DRAFTS]);
        for i in 0..=CHANGE_MAX_OPS {
            tx.put(&drafts, format!("c{i}"), "x").expect("put");
        }
    });
    lab.reject(&f.bob, &pd, drafts, "too_many_ops").await;
}

/// One scheduled entry `id` in a private document, an hour ahead of `t`.
fn scheduled_entry(tx: &mut Transaction<'_>, id: &str, t: i64) {
    let map = obj(&*tx, &[SCHEDULED]);
    let entry = tx.put_object(&map, id, ObjType::Map).expect("entry");
    tx.put(&entry, CONV, "c1").expect("conv");
    tx.put(&entry, BODY, "later").expect("body");
    tx.put(&entry, AT, t + 3_600_000).expect("at");
}

/// An account holds at most `SCHEDULE_MAX_PENDING` scheduled messages: a client that does
/// not check it (devices do) is refused the one over by the acceptor, so the scheduler
/// never posts more than that many at once for one account. Twin: a change that cancels
/// one and schedules another stays at the bound and is accepted.
pub async fn scheduled_messages_pending_schedule_too_many(lab: &mut impl Lab) {
    let mut planner = Device::new("planner", 1);
    let pd = DocId::private(&tenant(), &acc("planner"));
    let t = lab.now();
    // 25 entries (100 ops) per change, under `CHANGE_MAX_OPS`.
    for chunk in 0..SCHEDULE_MAX_PENDING.div_ceil(25) {
        let change = raw(&mut planner, &pd, |tx| {
            for i in (chunk * 25..(chunk + 1) * 25).take_while(|i| *i < SCHEDULE_MAX_PENDING) {
                scheduled_entry(tx, &format!("s{i}"), t);
            }
        });
        lab.accept(&mut planner, &pd, change).await;
    }
    let over = raw(&mut planner, &pd, |tx| scheduled_entry(tx, "s-over", t));
    let reason = lab.reject(&planner, &pd, over, "schedule_too_many").await;
    assert!(
        reason.contains(&SCHEDULE_MAX_PENDING.to_string()),
        "{reason}"
    );
    let swap = raw(&mut planner, &pd, |tx| {
        let map = obj(&*tx, &[SCHEDULED]);
        tx.delete(&map, "s0").expect("cancel");
        scheduled_entry(tx, "s-swap", t);
    });
    lab.accept(&mut planner, &pd, swap).await;
}

/// Twin of `too_many_ops_in_one_change`: the biggest legitimate change, a full group with
/// every per-member field and override, fits the conversation document's cap.
pub async fn full_group_fits_the_conversation_cap(lab: &mut impl Lab) {
    // Alice: the wire reads the REST projection as alice.
    let mut owner = Device::new("alice", 1);
    let t = lab.now();
    let accounts = (1..GROUP_MAX_MEMBERS).map(|i| acc(&format!("u{i}")));
    let fixture = ConvFixture::group(owner.account_id(), t - 1000)
        .members(accounts, Role::Member)
        .tweak(|spec| {
            for m in spec.members.iter_mut().skip(1) {
                m.joined_at = Some(t);
                m.nickname = Some("n".into());
                m.color = Some("#fff".into());
                for p in Permission::ALL {
                    m.overrides.insert(*p, false);
                }
            }
        });
    let (cd, change) = fixture
        .write(&mut owner, &conv_id("a-full"))
        .expect("the creation writes");
    assert!(change.len() > CHANGE_MAX_OPS && change.len() <= CONV_CHANGE_MAX_OPS);
    lab.accept(&mut owner, &cd, change).await;
    let conv = lab.conversation(&cd).await.expect("created");
    assert_eq!(conv.members.len(), GROUP_MAX_MEMBERS);
}

/// A member keeps at most `REACTIONS_PER_MEMBER_MAX` different reactions on one message;
/// removing stays possible, and others are not affected.
pub async fn reactions_per_member_per_message_too_many_reactions(lab: &mut impl Lab) {
    let mut f = fixture(lab, "w-reac").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let key = |who: &str, emoji: &str| reaction_key("m1", who, emoji);
    for i in 0..REACTIONS_PER_MEMBER_MAX {
        let change = raw_reaction(&mut f.bob, &bucket, &key("bob", &format!("e{i}")), Some(t));
        lab.accept(&mut f.bob, &bucket, change).await;
    }
    let one_more = raw_reaction(&mut f.bob, &bucket, &key("bob", "extra"), Some(t));
    lab.reject(&f.bob, &bucket, one_more, "too_many_reactions")
        .await;
    // Re-reacting with one he has is no growth.
    let again = raw_reaction(&mut f.bob, &bucket, &key("bob", "e0"), Some(t + 1));
    lab.accept(&mut f.bob, &bucket, again).await;
    // Swapping one for another in one change keeps the count.
    let swap = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        tx.delete(&reactions, key("bob", "e1")).expect("delete");
        tx.put(&reactions, key("bob", "swapped"), t).expect("put");
    });
    lab.accept(&mut f.bob, &bucket, swap).await;
    // Alice is not limited by bob's reactions.
    let alice = raw_reaction(&mut f.alice, &bucket, &key("alice", "extra"), Some(t));
    lab.accept(&mut f.alice, &bucket, alice).await;
    // Several at once past the cap, from a fresh member.
    let burst = raw(&mut f.dave, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        for i in 0..=REACTIONS_PER_MEMBER_MAX {
            tx.put(&reactions, key("dave", &format!("d{i}")), t)
                .expect("put");
        }
    });
    lab.reject(&f.dave, &bucket, burst, "too_many_reactions")
        .await;
}

/// A second creation of an existing conversation (a device that did not know the first)
/// answers `already_created`, as documented, not `conflicting_write`.
pub async fn second_creation_already_created(lab: &mut impl Lab) {
    let f = fixture(lab, "w-twice").await;
    let mut other = Device::new("alice", 9);
    let (cd, again) = ConvFixture::group(acc("alice"), lab.now())
        .write(&mut other, &f.conv)
        .expect("the creation writes");
    lab.reject(&other, &cd, again, "already_created").await;
}

/// An already accepted change is acknowledged again only to its writer or to whoever may
/// read the document; anyone else is refused (`not_member`, `not_owner`) and learns nothing.
pub async fn resubmitting_anothers_change_needs_read_access(lab: &mut impl Lab) {
    let mut f = fixture(lab, "w-resub").await;
    let (bucket, secret) = text_change(lab, &mut f.bob, &f.conv, "b1", "members only");
    let seq = lab.accept(&mut f.bob, &bucket, secret.clone()).await;
    let carol = Device::new("carol", 1);
    lab.reject_resubmission(&carol, &bucket, secret.clone(), "not_member")
        .await;
    let cd = f.cd.clone();
    let creation: Change = lab
        .read(&cd)
        .await
        .get_changes(&[])
        .into_iter()
        .find(|c| c.actor_id() == &f.alice.actor)
        .expect("alice's creation")
        .clone();
    lab.reject_resubmission(&carol, &cd, creation.clone(), "not_member")
        .await;
    // Members and a service account may.
    for dev in [&f.alice, &f.bob, &Device::service("svc")] {
        assert_eq!(lab.ack_again(dev, &bucket, secret.clone()).await, seq);
    }

    // Bob leaves: he may still resubmit his own change (he wrote it), not alice's.
    let t = lab.now();
    let leave = f
        .bob
        .write(&cd, |d, tag| {
            write::set_member_status(d, tag, t, &acc("bob"), MemberStatus::Left)
        })
        .expect("leaving writes");
    lab.accept(&mut f.bob, &cd, leave).await;
    assert_eq!(lab.ack_again(&f.bob, &bucket, secret).await, seq);
    lab.reject_resubmission(&f.bob, &cd, creation, "member_inactive")
        .await;

    // A private document is its owner's.
    let pd = DocId::private(&tenant(), &acc("alice"));
    // Earlier cases may have written there with this actor.
    lab.pull(&mut f.alice, &pd).await;
    let draft = f
        .alice
        .write(&pd, |d, tag| {
            write::set_draft(d, tag, t, &f.conv, Some("psst"))
        })
        .expect("a draft writes");
    lab.accept(&mut f.alice, &pd, draft.clone()).await;
    for dev in [&carol, &f.bob] {
        lab.reject_resubmission(dev, &pd, draft.clone(), "not_owner")
            .await;
    }
    lab.ack_again(&f.alice, &pd, draft).await;
}
