//! Messages, reactions, channels, threads, proposals.

use confab_core::automerge::ScalarValue;
use confab_core::doc::read;
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::ids::DocId;
use confab_core::model::conversation::{ConvKind, Role, SendPolicy};
use confab_core::model::proposal::ProposalStatus;

use super::fixture::{create, fixture, fixture_with, post_proposal, support_thread};
use super::Lab;
use crate::craft::*;
use crate::device::Device;
use crate::ids::{acc, bucket_doc, conv_doc, conv_id};

pub async fn editing_anothers_message_not_author(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a18").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let edit = |dev: &mut Device| {
        raw_put(
            dev,
            &bucket,
            &[MESSAGES, "m1"],
            &[(BODY, s("edited")), (EDITED_AT, ScalarValue::Int(t))],
        )
    };
    let change = edit(&mut f.bob);
    lab.reject(&f.bob, &bucket, change, "not_author").await;
    // Deleting it without delete rights, as a whole tombstone in bob's name, is the same
    // refusal (a non-author, non-moderator redaction).
    let delete = raw_tombstone(&mut f.bob, &bucket, "m1", (t, "bob"), &[], &[]);
    lab.reject(&f.bob, &bucket, delete, "not_author").await;
    // Twin: the author edits.
    let twin = edit(&mut f.alice);
    lab.accept(&mut f.alice, &bucket, twin).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(m[0].body, "edited");
}

pub async fn deleting_anothers_reaction_not_own_key(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a19").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let alice_key = reaction_key("m1", "alice", "👍");
    let react = raw_reaction(&mut f.alice, &bucket, &alice_key, Some(t));
    lab.accept(&mut f.alice, &bucket, react).await;
    lab.pull(&mut f.bob, &bucket).await;

    let delete = raw_reaction(&mut f.bob, &bucket, &alice_key, None);
    lab.reject(&f.bob, &bucket, delete, "not_own_key").await;
    // Nor may bob add a reaction under alice's name.
    let forge = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "alice", "🎉"),
        Some(t),
    );
    lab.reject(&f.bob, &bucket, forge, "not_own_key").await;
    // Nor move alice's read marker.
    let marker = raw_put(&mut f.bob, &f.cd, &[READS], &[("alice", s("m1"))]);
    lab.reject(&f.bob, &f.cd, marker, "not_own_key").await;

    // Twins: bob's own reaction and read marker; alice removes her own reaction.
    let own = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(t),
    );
    lab.accept(&mut f.bob, &bucket, own).await;
    let own_marker = raw_put(&mut f.bob, &f.cd, &[READS], &[("bob", s("m1"))]);
    lab.accept(&mut f.bob, &f.cd, own_marker).await;
    let undo = raw_reaction(&mut f.alice, &bucket, &alice_key, None);
    lab.accept(&mut f.alice, &bucket, undo).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(
        m[0].reactions["👍"].keys().collect::<Vec<_>>(),
        vec![&acc("bob")]
    );
}

pub async fn subscriber_posting_in_channel_channel_admins_only(lab: &mut impl Lab) {
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let c = create(
        lab,
        "a20",
        ConvKind::Channel,
        &mut alice,
        &mut [(&mut bob, Role::Subscriber)],
        |_| {},
    )
    .await;
    let t = lab.now();
    let (bucket, change) = raw_post(&mut bob, &c, "b1", &text_fields("bob", "me too", t), t);
    lab.reject(&bob, &bucket, change, "channel_admins_only")
        .await;
    let (bucket, twin) = raw_post(&mut alice, &c, "a1", &text_fields("alice", "news", t), t);
    lab.accept(&mut alice, &bucket, twin).await;
    // Subscribers may react where reactions are allowed.
    lab.pull(&mut bob, &bucket).await;
    let react = raw_reaction(&mut bob, &bucket, &reaction_key("a1", "bob", "👍"), Some(t));
    lab.accept(&mut bob, &bucket, react).await;
}

pub async fn member_posting_under_admins_only_send_policy(lab: &mut impl Lab) {
    let mut f = fixture_with(lab, "a21", |s| s.send_policy = SendPolicy::AdminsOnly).await;
    let t = lab.now();
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi", t), t);
    lab.reject(&f.bob, &bucket, change, "admins_only").await;
    let (bucket, twin) = raw_post(&mut f.dave, &f.conv, "d1", &text_fields("dave", "hi", t), t);
    lab.accept(&mut f.dave, &bucket, twin).await;
}

pub async fn reacting_where_reactions_are_off(lab: &mut impl Lab) {
    let mut f = fixture_with(lab, "a22", |s| s.allow_reactions = false).await;
    let bucket = f.bucket.clone();
    let key = reaction_key("m1", "bob", "👍");
    let change = raw_reaction(&mut f.bob, &bucket, &key, Some(lab.now()));
    lab.reject(&f.bob, &bucket, change.clone(), "reactions_disabled")
        .await;
    // Twin: the very same bytes pass once the owner turns reactions on.
    let on = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(true))],
    );
    lab.accept(&mut f.alice, &f.cd, on).await;
    lab.accept(&mut f.bob, &bucket, change).await;
}

pub async fn media_where_attachments_are_off(lab: &mut impl Lab) {
    let mut f = fixture_with(lab, "a23", |s| s.allow_attachments = false).await;
    let t = lab.now();
    let attachments =
        r#"[{"id":"a1","kind":"image","mime":"image/png","url":"https://cdn.example.com/a1.png"}]"#;
    let mut fields = text_fields("bob", "look", t);
    fields[1] = (KIND, s("image"));
    fields.push((ATTACHMENTS, s(attachments)));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields, t);
    lab.reject(&f.bob, &bucket, change.clone(), "attachments_disabled")
        .await;
    // Twin: the same bytes pass once attachments are allowed.
    let on = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(ALLOW_ATTACHMENTS, ScalarValue::Boolean(true))],
    );
    lab.accept(&mut f.alice, &f.cd, on).await;
    lab.accept(&mut f.bob, &bucket, change).await;
}

pub async fn thread_deeper_than_max_thread_too_deep(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a24").await;
    let t = lab.now() - 1000;
    // Twin: a thread of the group at depth 1 whose settings allow one level (itself).
    let t1 = conv_id("a24-t1");
    let change = raw_thread(&mut f.alice, &t1, &f.conv, 1, 1, t);
    lab.accept(&mut f.alice, &conv_doc(&t1), change).await;
    let thread = lab.conversation(&conv_doc(&t1)).await.expect("created");
    assert_eq!(thread.max_subroom_depth, 1);
    // The message of t1 a thread of it would hang on.
    let (bucket, m1) = raw_post(&mut f.alice, &t1, "m1", &text_fields("alice", "hi", t), t);
    lab.accept(&mut f.alice, &bucket, m1).await;
    // A thread of that thread at depth 2.
    let t2 = conv_id("a24-t2");
    let change = raw_thread(&mut f.alice, &t2, &t1, 2, 1, t);
    lab.reject(&f.alice, &conv_doc(&t2), change, "thread_too_deep")
        .await;
    assert_eq!(
        lab.conversation(&conv_doc(&t2)).await,
        None,
        "t2 was never created"
    );
}

pub async fn proposal_accepted_by_own_author_not_counterparty(lab: &mut impl Lab) {
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(lab, &mut alice, &mut carol, "room-25").await;
    post_proposal(lab, &mut alice, &c, "p1", None).await;
    let bucket: DocId = bucket_doc(&c, lab.now());
    let accepted = [(STATUS, s("accepted"))];
    let change = raw_put(&mut alice, &bucket, &[MESSAGES, "p1"], &accepted);
    lab.reject(&alice, &bucket, change, "not_counterparty")
        .await;
    // Twin: the client accepts.
    lab.pull(&mut carol, &bucket).await;
    let twin = raw_put(&mut carol, &bucket, &[MESSAGES, "p1"], &accepted);
    lab.accept(&mut carol, &bucket, twin).await;
    let p = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(p[0].status, Some(ProposalStatus::Accepted));
}

pub async fn proposal_answered_after_expiry(lab: &mut impl Lab) {
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(lab, &mut alice, &mut carol, "room-26").await;
    let t = lab.now();
    post_proposal(lab, &mut alice, &c, "p1", Some(t - 60_000)).await;
    post_proposal(lab, &mut alice, &c, "p2", Some(t + 3_600_000)).await;
    let bucket = bucket_doc(&c, t);
    lab.pull(&mut carol, &bucket).await;
    let change = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p1"],
        &[(STATUS, s("accepted"))],
    );
    lab.reject(&carol, &bucket, change, "proposal_expired")
        .await;
    // Twin: the one that has not expired.
    let twin = raw_put(
        &mut carol,
        &bucket,
        &[MESSAGES, "p2"],
        &[(STATUS, s("rejected"))],
    );
    lab.accept(&mut carol, &bucket, twin).await;
}

pub async fn reacting_in_a_bucket_past_the_retention(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a36").await;
    let day = confab_core::model::conversation::DEFAULT_BUCKET_MS;
    let t = lab.now() - 10 * day;
    let (old, post) = raw_post(
        &mut f.bob,
        &f.conv,
        "old1",
        &text_fields("bob", "long ago", t),
        t,
    );
    lab.accept(&mut f.bob, &old, post).await;
    let short = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(RETENTION_DAYS, ScalarValue::Int(5))],
    );
    lab.accept(&mut f.alice, &f.cd, short).await;
    let key = reaction_key("old1", "bob", "👍");
    let change = raw_reaction(&mut f.bob, &old, &key, Some(lab.now()));
    lab.reject(&f.bob, &old, change.clone(), "retention_expired")
        .await;
    // Twin: the same bytes pass once the retention keeps the bucket.
    let long = raw_put(
        &mut f.alice,
        &f.cd,
        &[SETTINGS],
        &[(RETENTION_DAYS, ScalarValue::Int(30))],
    );
    lab.accept(&mut f.alice, &f.cd, long).await;
    lab.accept(&mut f.bob, &old, change).await;
}

/// Delivery markers (`members/<account>/delivered`) are own keys like read markers: nobody
/// moves another's, the value is a message id, and a member entry made in the same change
/// takes none.
pub async fn moving_anothers_delivery_marker_not_own_key(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a70").await;
    let forged = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "alice"],
        &[(DELIVERED, s("m1"))],
    );
    lab.reject(&f.bob, &f.cd, forged, "not_own_key").await;
    // The owner may not either.
    let by_owner = raw_put(
        &mut f.alice,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(DELIVERED, s("m1"))],
    );
    lab.reject(&f.alice, &f.cd, by_owner, "not_own_key").await;
    let wrong = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(DELIVERED, ScalarValue::Int(1))],
    );
    lab.reject(&f.bob, &f.cd, wrong, "wrong_type").await;
    // Twin: bob's own marker.
    let own = raw_put(
        &mut f.bob,
        &f.cd,
        &[MEMBERS, "bob"],
        &[(DELIVERED, s("m1"))],
    );
    lab.accept(&mut f.bob, &f.cd, own).await;
    let conv = read::read_conversation(&lab.read(&f.cd).await, f.conv.clone());
    assert_eq!(
        conv.delivered.get(&acc("bob")).map(|m| m.as_str()),
        Some("m1")
    );
}

/// Support threads: a message's sender stamps are the ones the thread gives its
/// author (`sender_mismatch` for the client posing as the owner or under the owner's
/// name), stamps outside support threads are `support_only`, the client may name a fresh
/// thread but not close its lead (`no_permission`), and an outcome needs the closure
/// (`outcome_needs_close`).
pub async fn support_stamps_names_and_lead_closure(lab: &mut impl Lab) {
    use confab_core::ids::LeadId;
    use confab_core::model::message::NewMessage;
    use confab_core::model::support::{LeadOutcome, SenderRole, Stamp};
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(lab, &mut alice, &mut carol, "room-70").await;
    let cd = conv_doc(&c);
    let t = lab.now();
    let bucket = bucket_doc(&c, t);
    // Written on a copy of the device, so a refused message leaves its replica as it was.
    let stamped = |dev: &mut Device, id: &str, stamp: Stamp| {
        let dev = &mut dev.clone();
        let mut m = NewMessage::text(
            confab_core::ids::MessageId::new(id).expect("id"),
            dev.account_id(),
            "hi",
            t,
        );
        m.stamp = stamp;
        dev.write(&bucket, |d, tag| {
            confab_core::doc::write::post_message(d, tag, &m)
        })
        .expect("a message writes")
    };
    // The client names the fresh thread (title and both names), as the platform gives them.
    let names = carol
        .write(&cd, |d, tag| {
            confab_core::doc::write::name_unset(
                d,
                tag,
                t,
                &[
                    (TITLE, "Room 70"),
                    (CLIENT_NAME, "Carol"),
                    (OWNER_NAME, "Alice"),
                ],
            )
        })
        .expect("names write");
    lab.accept(&mut carol, &cd, names).await;
    // Then renaming the owner is the owner's side's.
    let rename = raw_put(&mut carol, &cd, &[INFO], &[(OWNER_NAME, s("Mallory"))]);
    lab.reject(&carol, &cd, rename, "no_permission").await;

    let as_owner = stamped(
        &mut carol,
        "c1",
        Stamp {
            sender_role: Some(SenderRole::Owner),
            ..Stamp::default()
        },
    );
    lab.reject(&carol, &bucket, as_owner, "sender_mismatch")
        .await;
    let owners_name = stamped(
        &mut carol,
        "c2",
        Stamp {
            sender_role: Some(SenderRole::Client),
            sender_name: Some("Alice".into()),
            related_lead: None,
        },
    );
    lab.reject(&carol, &bucket, owners_name, "sender_mismatch")
        .await;
    // Twin: her own stamps.
    let own = stamped(
        &mut carol,
        "c3",
        Stamp {
            sender_role: Some(SenderRole::Client),
            sender_name: Some("Carol".into()),
            related_lead: None,
        },
    );
    lab.accept(&mut carol, &bucket, own).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(m[0].stamp.sender_name.as_deref(), Some("Carol"));

    // The lead: the client does not close it; an outcome needs the closure.
    lab.pull(&mut alice, &cd).await;
    let by_client = carol
        .clone()
        .write(&cd, |d, tag| {
            confab_core::doc::write::close_lead(
                d,
                tag,
                t,
                &acc("carol"),
                LeadOutcome::ClosedLost,
                None,
            )
        })
        .expect("closure writes");
    lab.reject(&carol, &cd, by_client, "no_permission").await;
    let open_outcome = raw_put(&mut alice, &cd, &[LIFECYCLE], &[(OUTCOME, s("closed_won"))]);
    lab.reject(&alice, &cd, open_outcome, "outcome_needs_close")
        .await;
    let lead = alice
        .write(&cd, |d, tag| {
            confab_core::doc::write::set_lead(d, tag, t, &LeadId::new("lead-9").expect("id"))
        })
        .expect("lead writes");
    lab.accept(&mut alice, &cd, lead).await;
    let closure = alice
        .write(&cd, |d, tag| {
            confab_core::doc::write::close_lead(
                d,
                tag,
                t,
                &acc("alice"),
                LeadOutcome::ClosedWon,
                Some("signed"),
            )
        })
        .expect("closure writes");
    lab.accept(&mut alice, &cd, closure).await;
    let conv = read::read_conversation(&lab.read(&cd).await, c.clone());
    assert_eq!(conv.lifecycle.outcome, Some(LeadOutcome::ClosedWon));
    assert_eq!(conv.lifecycle.reason.as_deref(), Some("signed"));
    assert_eq!(
        conv.lifecycle.lead.as_ref().map(|l| l.as_str()),
        Some("lead-9")
    );
}

/// Stamps outside support threads are refused.
pub async fn sender_stamps_outside_support_support_only(lab: &mut impl Lab) {
    use confab_core::model::message::NewMessage;
    use confab_core::model::support::{SenderRole, Stamp};
    let mut f = fixture(lab, "a71").await;
    let t = lab.now();
    let mut m = NewMessage::text(
        confab_core::ids::MessageId::new("s1").expect("id"),
        acc("bob"),
        "hi",
        t,
    );
    m.stamp = Stamp {
        sender_role: Some(SenderRole::Staff),
        ..Stamp::default()
    };
    let bucket = f.bucket.clone();
    let change = f
        .bob
        .write(&bucket, |d, tag| {
            confab_core::doc::write::post_message(d, tag, &m)
        })
        .expect("a message writes");
    lab.reject(&f.bob, &bucket, change, "support_only").await;
}
