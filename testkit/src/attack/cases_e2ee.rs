//! Encrypted conversations (docs/E2EE.md): the MLS group in the conversation document is kept
//! to the membership, one commit per epoch, and only where encryption is allowed.

use confab_core::automerge::Change;
use confab_core::doc::write::{self, MlsWrite};
use confab_core::e2ee::{self, Device as Mls, DeviceIdentity};
use confab_core::ids::{ConvId, DeviceId, DocId};
use confab_core::model::conversation::{ConvKind, MemberStatus, Role};

use super::fixture::create;
use super::{registered, Lab};
use crate::craft::raw;
use crate::device::{Device, DEVICE};
use crate::fixture::ConvFixture;
use crate::ids::{acc, conv_doc, conv_id, tenant};

fn mls(account: &str) -> Mls {
    let device = DeviceId::new(DEVICE).expect("a valid device literal");
    Mls::new(DeviceIdentity::new(tenant(), acc(account), device)).expect("an MLS device")
}

fn identity(account: &str) -> DeviceIdentity {
    DeviceIdentity::new(
        tenant(),
        acc(account),
        DeviceId::new(DEVICE).expect("device"),
    )
}

/// One change of `dev` that writes `mls` to `doc` (and `also` before it, in one transaction).
fn mls_change(
    dev: &mut Device,
    doc: &DocId,
    now: i64,
    mls: MlsWrite<'_>,
    also: impl FnOnce(&mut confab_core::automerge::transaction::Transaction<'_>),
) -> Change {
    raw(dev, doc, |tx| {
        also(tx);
        write::put_mls(tx, now, mls).expect("the MLS values write");
    })
}

/// An encrypted group `id` of alice (owner), bob and carol whose MLS group alice made and
/// committed bob's and carol's devices to (epoch 1); everyone has the document.
pub(super) struct Encrypted {
    pub(super) alice: Device,
    pub(super) bob: Device,
    pub(super) carol: Device,
    pub(super) alice_mls: Mls,
    pub(super) conv: ConvId,
    pub(super) cd: DocId,
    pub(super) group: Vec<u8>,
}

pub(super) async fn encrypted(lab: &mut impl Lab, id: &str) -> Encrypted {
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut carol = Device::new("carol", 1);
    let conv = create(
        lab,
        id,
        ConvKind::Group,
        &mut alice,
        &mut [(&mut bob, Role::Member), (&mut carol, Role::Member)],
        |spec| spec.encrypted = true,
    )
    .await;
    let cd = conv_doc(&conv);
    let group = e2ee::group_id(&cd);
    let mut alice_mls = registered(lab, "alice", DEVICE).await;
    let init = alice_mls.create_group(&group).expect("a group");
    let now = lab.now();
    let made = mls_change(
        &mut alice,
        &cd,
        now,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
        |_| {},
    );
    lab.accept(&mut alice, &cd, made).await;
    let packages = [
        registered(lab, "bob", DEVICE).await.key_package(false),
        registered(lab, "carol", DEVICE).await.key_package(false),
    ]
    .map(|p| p.expect("package"));
    let bundle = alice_mls.commit(&group, &packages, &[]).expect("a commit");
    let added = mls_change(
        &mut alice,
        &cd,
        now,
        MlsWrite::Commit {
            epoch: 0,
            commit: &bundle.commit,
            welcome: bundle.welcome.as_deref(),
        },
        |_| {},
    );
    lab.accept(&mut alice, &cd, added).await;
    alice_mls.confirm_commit(&group).expect("confirmed");
    lab.pull(&mut bob, &cd).await;
    lab.pull(&mut carol, &cd).await;
    Encrypted {
        alice,
        bob,
        carol,
        alice_mls,
        conv,
        cd,
        group,
    }
}

/// Channels broadcast to any number of subscribers: never encrypted. A plain channel is.
pub async fn encrypted_channel_encryption_not_allowed(lab: &mut impl Lab) {
    let mut alice = Device::new("alice", 1);
    let now = lab.now();
    let conv = conv_id("e1");
    let (cd, change) = ConvFixture::new(ConvKind::Channel, acc("alice"), now)
        .tweak(|s| s.encrypted = true)
        .write(&mut alice, &conv)
        .expect("the creation writes");
    lab.reject(&alice, &cd, change, "encryption_not_allowed")
        .await;
    let mut other = Device::new("alice", 1);
    let (cd, change) = ConvFixture::new(ConvKind::Group, acc("alice"), now)
        .tweak(|s| s.encrypted = true)
        .write(&mut other, &conv)
        .expect("the creation writes");
    lab.accept(&mut other, &cd, change).await;
}

/// A group made in a plaintext conversation: refused; in an encrypted one, accepted once.
pub async fn group_in_a_plaintext_conversation_not_encrypted(lab: &mut impl Lab) {
    let mut alice = Device::new("alice", 1);
    let plain = create(lab, "e2", ConvKind::Group, &mut alice, &mut [], |_| {}).await;
    let cd = conv_doc(&plain);
    let init = mls("alice")
        .create_group(&e2ee::group_id(&cd))
        .expect("a group");
    let now = lab.now();
    let made = mls_change(
        &mut alice,
        &cd,
        now,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
        |_| {},
    );
    lab.reject(&alice, &cd, made, "not_encrypted").await;

    let mut f = encrypted(lab, "e3").await;
    let again = mls("alice").create_group(&f.group).expect("a second group");
    let made = mls_change(
        &mut f.alice,
        &f.cd,
        now,
        MlsWrite::Init {
            group_info: &again.group_info,
            tree: &again.ratchet_tree,
        },
        |_| {},
    );
    lab.reject(&f.alice, &f.cd, made, "mls_group_exists").await;
}

/// A commit on epoch 1 after another commit moved the group to 2.
pub async fn commit_for_a_stale_epoch_mls_stale_epoch(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e4").await;
    let now = lab.now();
    let first = f.alice_mls.commit(&f.group, &[], &[]).expect("a commit");
    let moved = mls_change(
        &mut f.alice,
        &f.cd,
        now,
        MlsWrite::Commit {
            epoch: 1,
            commit: &first.commit,
            welcome: None,
        },
        |_| {},
    );
    lab.accept(&mut f.alice, &f.cd, moved).await;
    f.alice_mls.confirm_commit(&f.group).expect("confirmed");
    // Bob's device, still at epoch 1, commits there on the document as it is now.
    let mut bob_mls = mls("bob");
    let late = bob_like_member(&mut bob_mls, &mut f, now);
    lab.pull(&mut f.bob, &f.cd).await;
    let change = mls_change(
        &mut f.bob,
        &f.cd,
        now,
        MlsWrite::Commit {
            epoch: 1,
            commit: &late,
            welcome: None,
        },
        |_| {},
    );
    lab.reject(&f.bob, &f.cd, change, "mls_stale_epoch").await;
}

/// A commit of epoch 1 made by a device that follows the group from alice's Welcome of a
/// side group: any well-formed commit for epoch 1 is stale once the group is at 2.
fn bob_like_member(bob: &mut Mls, f: &mut Encrypted, _now: i64) -> Vec<u8> {
    let _ = &f.conv;
    let side = b"acme/conv/e4-side".to_vec();
    let mut alice = mls("alice");
    alice.create_group(&side).expect("side group");
    let bundle = alice
        .commit(&side, &[bob.key_package(false).expect("package")], &[])
        .expect("side commit");
    alice.confirm_commit(&side).expect("confirmed");
    bob.join(&bundle.welcome.expect("welcome")).expect("joined");
    bob.commit(&side, &[], &[]).expect("a commit").commit
}

/// Adding the device of dave, who is no member; adding carol's second device is fine.
pub async fn commit_adding_a_non_members_device_mls_adds_non_member(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e5").await;
    let now = lab.now();
    let dave = mls("dave").key_package(false).expect("package");
    let change = adding(&mut f, now, dave);
    lab.reject(&f.alice, &f.cd, change, "mls_adds_non_member")
        .await;
    let second = registered(lab, "carol", "tablet").await;
    let change = adding(&mut f, now, second.key_package(false).expect("package"));
    lab.accept(&mut f.alice, &f.cd, change).await;
}

/// Removing carol without the commit that removes her device.
pub async fn removal_without_its_commit_mls_commit_required(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e6").await;
    let now = lab.now();
    let change = raw(&mut f.alice, &f.cd, |tx| {
        write::put_member_status(tx, now, &acc("carol"), MemberStatus::Removed)
            .expect("the status writes");
    });
    lab.reject(&f.alice, &f.cd, change, "mls_commit_required")
        .await;
    let bundle = f
        .alice_mls
        .commit(&f.group, &[], &[identity("carol")])
        .expect("a commit");
    let change = mls_change(
        &mut f.alice,
        &f.cd,
        now,
        MlsWrite::Commit {
            epoch: 1,
            commit: &bundle.commit,
            welcome: None,
        },
        |tx| {
            write::put_member_status(tx, now, &acc("carol"), MemberStatus::Removed)
                .expect("the status writes")
        },
    );
    lab.accept(&mut f.alice, &f.cd, change).await;
    let _ = (&f.bob, &f.carol, &f.conv);
}

/// Banning carol with a commit that removes bob's device instead of hers.
pub async fn removal_leaving_the_device_in_mls_missing_removal(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e7").await;
    let now = lab.now();
    let bundle = f.alice_mls.commit(&f.group, &[], &[]).expect("a commit");
    let change = mls_change(
        &mut f.alice,
        &f.cd,
        now,
        MlsWrite::Commit {
            epoch: 1,
            commit: &bundle.commit,
            welcome: None,
        },
        |tx| {
            write::put_member_status(tx, now, &acc("carol"), MemberStatus::Banned)
                .expect("the status writes")
        },
    );
    lab.reject(&f.alice, &f.cd, change, "mls_missing_removal")
        .await;
}

/// Bytes that are no MLS message where a commit goes.
pub async fn garbage_commit_mls_malformed(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e8").await;
    let now = lab.now();
    let change = mls_change(
        &mut f.alice,
        &f.cd,
        now,
        MlsWrite::Commit {
            epoch: 1,
            commit: b"\x00\x01not a commit",
            welcome: None,
        },
        |_| {},
    );
    lab.reject(&f.alice, &f.cd, change, "mls_malformed").await;
}

/// A plaintext body, and a sealed message whose ciphertext is bound to another message (a
/// replay), in an encrypted conversation; the honest sealed message is accepted.
pub async fn plaintext_and_replayed_ciphertext_plaintext_in_encrypted(lab: &mut impl Lab) {
    use confab_core::model::message::{NewMessage, SealedContent};
    let mut f = encrypted(lab, "e9").await;
    let now = lab.now();
    let bucket = crate::ids::bucket_doc(&f.conv, now);
    // Each on a copy of alice's replica, as `raw` does: a refused change never reaches it.
    let write = |dev: &mut Device, m: &NewMessage| {
        dev.write(&bucket, |d, t| write::post_message(d, t, m))
            .expect("the message writes")
    };
    let plain = NewMessage::text(crate::ids::msg_id("p1"), acc("alice"), "in the clear", now);
    let change = write(&mut f.alice.clone(), &plain);
    lab.reject(&f.alice, &bucket, change, "plaintext_in_encrypted")
        .await;
    let sealed = |mls: &mut Mls, id: &str, bound: &str| {
        let content = SealedContent {
            body: "sealed".into(),
            ..SealedContent::default()
        };
        let mut m = NewMessage::text(crate::ids::msg_id(id), acc("alice"), "", now);
        m.sealed = Some(
            mls.encrypt(&f.group, bound.as_bytes(), &content.to_bytes())
                .expect("sealed"),
        );
        m
    };
    let replayed = sealed(&mut f.alice_mls, "p2", "p3");
    let change = write(&mut f.alice.clone(), &replayed);
    lab.reject(&f.alice, &bucket, change, "mls_wrong_aad").await;
    let honest = sealed(&mut f.alice_mls, "p4", "p4");
    let change = write(&mut f.alice.clone(), &honest);
    lab.accept(&mut f.alice, &bucket, change).await;
}

/// alice edits her sealed message twice, then replays her first edit's ciphertext (bound to
/// the content the message held before it) as a third: refused `mls_stale_edit`, as is an
/// edit in the clear (`plaintext_in_encrypted`); the honest edits are accepted.
pub async fn replayed_sealed_edit_mls_stale_edit(lab: &mut impl Lab) {
    use confab_core::model::message::{sealed_aad, NewMessage, SealedContent};
    let mut f = encrypted(lab, "e10").await;
    let now = lab.now();
    let bucket = crate::ids::bucket_doc(&f.conv, now);
    let id = crate::ids::msg_id("s1");
    let seal = |mls: &mut Mls, body: &str, aad: &[u8]| {
        let content = SealedContent {
            body: body.into(),
            ..SealedContent::default()
        };
        mls.encrypt(&f.group, aad, &content.to_bytes())
            .expect("sealed")
    };
    let mut m = NewMessage::text(id.clone(), acc("alice"), "", now);
    let first = seal(&mut f.alice_mls, "first", &sealed_aad(&id, None));
    m.sealed = Some(first.clone());
    let change = f
        .alice
        .clone()
        .write(&bucket, |d, t| write::post_message(d, t, &m))
        .expect("the message writes");
    lab.accept(&mut f.alice, &bucket, change).await;
    let edit = |dev: &mut Device, sealed: &[u8]| {
        dev.write(&bucket, |d, t| write::edit_sealed(d, t, now, &id, sealed))
            .expect("the edit writes")
    };
    let second = seal(&mut f.alice_mls, "second", &sealed_aad(&id, Some(&first)));
    let change = edit(&mut f.alice.clone(), &second);
    lab.accept(&mut f.alice, &bucket, change).await;
    let third = seal(&mut f.alice_mls, "third", &sealed_aad(&id, Some(&second)));
    let change = edit(&mut f.alice.clone(), &third);
    lab.accept(&mut f.alice, &bucket, change).await;
    // The second content again: a valid ciphertext of the group, bound to this message, but
    // over a content it no longer holds.
    let change = edit(&mut f.alice.clone(), &second);
    lab.reject(&f.alice, &bucket, change, "mls_stale_edit")
        .await;
    let plain = f
        .alice
        .clone()
        .write(&bucket, |d, t| {
            write::edit_body(d, t, now + 1, &id, "in the clear")
        })
        .expect("the edit writes");
    lab.reject(&f.alice, &bucket, plain, "plaintext_in_encrypted")
        .await;
}

/// One commit of alice's on epoch 1 of `f`'s group adding `package` (her device keeps no
/// pending commit: only its bytes are wanted).
fn adding(f: &mut Encrypted, now: i64, package: Vec<u8>) -> Change {
    let bundle = f
        .alice_mls
        .commit(&f.group, &[package], &[])
        .expect("a commit");
    f.alice_mls.discard_commit(&f.group).expect("kept nothing");
    mls_change(
        &mut f.alice,
        &f.cd,
        now,
        MlsWrite::Commit {
            epoch: 1,
            commit: &bundle.commit,
            welcome: bundle.welcome.as_deref(),
        },
        |_| {},
    )
}

/// alice's commit adds a device of bob's (an active member) that the directory never
/// registered: its private keys are someone else's, and it would read on after any
/// removal. Refused `mls_unknown_device`; the same device registered is added.
pub async fn commit_adding_an_unregistered_device_mls_unknown_device(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e11").await;
    let now = lab.now();
    let ghost = Mls::new(DeviceIdentity::new(
        tenant(),
        acc("bob"),
        DeviceId::new("ghost").expect("device"),
    ))
    .expect("a device");
    let change = adding(&mut f, now, ghost.key_package(false).expect("package"));
    lab.reject(&f.alice, &f.cd, change, "mls_unknown_device")
        .await;
    let laptop = registered(lab, "bob", "laptop").await;
    let change = adding(&mut f, now, laptop.key_package(false).expect("package"));
    lab.accept(&mut f.alice, &f.cd, change).await;
}

/// alice's commit adds a package that names carol's registered tablet but carries another
/// signature key than the one the directory bound to it (a server or member substituting
/// its own keys): refused `mls_wrong_signature_key`.
pub async fn leaf_with_another_signature_key_mls_wrong_signature_key(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e12").await;
    let now = lab.now();
    let tablet = registered(lab, "carol", "tablet").await;
    let impostor = Mls::new(tablet.identity().clone()).expect("a device");
    let change = adding(&mut f, now, impostor.key_package(false).expect("package"));
    lab.reject(&f.alice, &f.cd, change, "mls_wrong_signature_key")
        .await;
    let change = adding(&mut f, now, tablet.key_package(false).expect("package"));
    lab.accept(&mut f.alice, &f.cd, change).await;
}

/// alice's commit whose update path gives her own leaf a fresh signature key (a member, or
/// a server holding a device's token, swapping the device's key in place): refused
/// `mls_wrong_signature_key`; one whose new leaf names carol's device instead: refused
/// `mls_wrong_identity`. Her commit whose path keeps her key is accepted.
pub async fn update_path_changing_the_committers_key_mls_wrong_signature_key(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e18").await;
    let now = lab.now();
    let group = f.group.clone();
    let commit_of = |f: &mut Encrypted, names: Option<&DeviceIdentity>| {
        let bundle = f
            .alice_mls
            .commit_with_new_leaf_key(&group, names)
            .expect("a commit");
        f.alice_mls.discard_commit(&group).expect("kept nothing");
        bundle.commit
    };
    let rekeyed = commit_of(&mut f, None);
    let change = epoch_commit(&mut f, now, 1, &rekeyed, None);
    lab.reject(&f.alice, &f.cd, change, "mls_wrong_signature_key")
        .await;
    let renamed = commit_of(&mut f, Some(&identity("carol")));
    let change = epoch_commit(&mut f, now, 1, &renamed, None);
    lab.reject(&f.alice, &f.cd, change, "mls_wrong_identity")
        .await;
    let honest = f.alice_mls.commit(&group, &[], &[]).expect("a commit");
    let change = epoch_commit(&mut f, now, 1, &honest.commit, None);
    lab.accept(&mut f.alice, &f.cd, change).await;
}

/// bob's phone, in the group, is removed from the directory: alice's next commit that
/// leaves it in is refused `mls_keeps_removed_device` (whoever commits, a removed device
/// leaves at the group's next commit); her commit that removes it is accepted.
pub async fn commit_keeping_a_removed_device_mls_keeps_removed_device(lab: &mut impl Lab) {
    let mut f = encrypted(lab, "e19").await;
    let now = lab.now();
    let group = f.group.clone();
    let phone = registered(lab, "bob", "e19-phone").await;
    let added = f
        .alice_mls
        .commit(&group, &[phone.key_package(false).expect("package")], &[])
        .expect("a commit");
    let change = epoch_commit(&mut f, now, 1, &added.commit, added.welcome.as_deref());
    lab.accept(&mut f.alice, &f.cd, change).await;
    f.alice_mls.confirm_commit(&group).expect("confirmed");
    lab.unregister(phone.identity()).await;
    let keeps = f.alice_mls.commit(&group, &[], &[]).expect("a commit");
    f.alice_mls.discard_commit(&group).expect("kept nothing");
    let change = epoch_commit(&mut f, now, 2, &keeps.commit, None);
    lab.reject(&f.alice, &f.cd, change, "mls_keeps_removed_device")
        .await;
    let removes = f
        .alice_mls
        .commit(&group, &[], &[phone.identity().clone()])
        .expect("a commit");
    let change = epoch_commit(&mut f, now, 2, &removes.commit, None);
    lab.accept(&mut f.alice, &f.cd, change).await;
}

/// alice's change carrying `commit` (and its Welcome) from `epoch`.
fn epoch_commit(
    f: &mut Encrypted,
    now: i64,
    epoch: u64,
    commit: &[u8],
    welcome: Option<&[u8]>,
) -> Change {
    mls_change(
        &mut f.alice,
        &f.cd,
        now,
        MlsWrite::Commit {
            epoch,
            commit,
            welcome,
        },
        |_| {},
    )
}

/// A new group whose tree holds a device the directory never registered (grace's, whose
/// devices never uploaded) or a registered device under another key: refused; the
/// registered device with its own key makes it.
pub async fn new_group_of_an_unregistered_device_mls_unknown_device(lab: &mut impl Lab) {
    let now = lab.now();
    let mut grace = Device::new("grace", 1);
    let conv = create(lab, "e13", ConvKind::Group, &mut grace, &mut [], |spec| {
        spec.encrypted = true
    })
    .await;
    let cd = conv_doc(&conv);
    let group = e2ee::group_id(&cd);
    let init_by = |dev: &mut Device, mls: &mut Mls| {
        let init = mls.create_group(&group).expect("a group");
        mls_change(
            dev,
            &cd,
            now,
            MlsWrite::Init {
                group_info: &init.group_info,
                tree: &init.ratchet_tree,
            },
            |_| {},
        )
    };
    let change = init_by(&mut grace, &mut mls("grace"));
    lab.reject(&grace, &cd, change, "mls_unknown_device").await;
    let mut own = registered(lab, "grace", DEVICE).await;
    let change = init_by(&mut grace, &mut mls("grace"));
    lab.reject(&grace, &cd, change, "mls_wrong_signature_key")
        .await;
    let change = init_by(&mut grace, &mut own);
    lab.accept(&mut grace, &cd, change).await;
}

/// A draft, and a scheduled message, of an encrypted conversation written in the clear into
/// the account's private document: the server would hold what the group seals. Refused
/// `plaintext_in_encrypted`; the same draft for a conversation in the clear is accepted.
pub async fn plaintext_draft_or_schedule_of_an_encrypted_conversation_plaintext_in_encrypted(
    lab: &mut impl Lab,
) {
    use confab_core::automerge::transaction::Transactable;
    use confab_core::automerge::ObjType;
    use confab_core::doc::schema::keys::{AT, BODY, CONV, SCHEDULED};
    let mut f = encrypted(lab, "e14").await;
    let now = lab.now();
    let pd = DocId::private(&tenant(), &acc("alice"));
    // Earlier cases may have written there with this actor.
    lab.pull(&mut f.alice, &pd).await;
    let draft_of = |dev: &mut Device, conv: &ConvId| {
        dev.clone()
            .write(&pd, |d, tag| {
                write::set_draft(d, tag, now, conv, Some("psst"))
            })
            .expect("a draft writes")
    };
    let draft = draft_of(&mut f.alice, &f.conv);
    lab.reject(&f.alice, &pd, draft, "plaintext_in_encrypted")
        .await;
    let scheduled = raw(&mut f.alice, &pd, |tx| {
        let map = crate::craft::obj(&*tx, &[SCHEDULED]);
        let entry = tx.put_object(&map, "s-e14", ObjType::Map).expect("entry");
        tx.put(&entry, CONV, f.conv.as_str()).expect("conv");
        tx.put(&entry, BODY, "later").expect("body");
        tx.put(&entry, AT, now + 3_600_000).expect("at");
    });
    lab.reject(&f.alice, &pd, scheduled, "plaintext_in_encrypted")
        .await;
    let plain = create(lab, "e15", ConvKind::Group, &mut f.alice, &mut [], |_| {}).await;
    lab.pull(&mut f.alice, &pd).await;
    let draft = draft_of(&mut f.alice, &plain);
    lab.accept(&mut f.alice, &pd, draft).await;
}

/// The blob hashes a sealed message names in the clear (`blobs`): on a plaintext message
/// (`not_encrypted`), malformed (`invalid_value`), written again after the post
/// (`immutable_field`), or kept by a delete (`incomplete_redaction`); the honest sealed post
/// and its whole tombstone are accepted, and the tombstone names no blob.
pub async fn blob_hashes_outside_a_sealed_post(lab: &mut impl Lab) {
    use crate::craft::{obj, put_message, raw_tombstone, s, text_fields};
    use confab_core::automerge::transaction::Transactable;
    use confab_core::automerge::ScalarValue;
    use confab_core::doc::read;
    use confab_core::doc::schema::keys::{BLOBS, MESSAGES, SEALED};
    use confab_core::model::attachment::{blob_hashes_to_json, BlobHash};
    use confab_core::model::message::{sealed_aad, NewMessage, SealedContent};
    let hashes = blob_hashes_to_json(&[BlobHash::of(b"a sealed file")]);
    let now = lab.now();

    let mut alice = Device::new("alice", 1);
    let plain = create(lab, "e16", ConvKind::Group, &mut alice, &mut [], |_| {}).await;
    let bucket = crate::ids::bucket_doc(&plain, now);
    let mut named = NewMessage::text(crate::ids::msg_id("b1"), acc("alice"), "hi", now);
    named.blobs = Some(hashes.clone());
    let change = alice
        .clone()
        .write(&bucket, |d, t| write::post_message(d, t, &named))
        .expect("the message writes");
    lab.reject(&alice, &bucket, change, "not_encrypted").await;

    let mut f = encrypted(lab, "e17").await;
    let bucket = crate::ids::bucket_doc(&f.conv, now);
    let seal = |mls: &mut Mls, id: &str| {
        let content = SealedContent {
            body: "a file".into(),
            ..SealedContent::default()
        };
        let id = crate::ids::msg_id(id);
        mls.encrypt(&f.group, &sealed_aad(&id, None), &content.to_bytes())
            .expect("sealed")
    };
    let sealed = seal(&mut f.alice_mls, "b2");
    let mut fields = text_fields("alice", "", now);
    fields.push((SEALED, ScalarValue::Bytes(sealed)));
    fields.push((BLOBS, s(r#"["not a hash"]"#)));
    let malformed = raw(&mut f.alice, &bucket, |tx| put_message(tx, "b2", &fields));
    lab.reject(&f.alice, &bucket, malformed, "invalid_value")
        .await;

    let mut m = NewMessage::text(crate::ids::msg_id("b3"), acc("alice"), "", now);
    m.sealed = Some(seal(&mut f.alice_mls, "b3"));
    m.blobs = Some(hashes.clone());
    let change = f
        .alice
        .clone()
        .write(&bucket, |d, t| write::post_message(d, t, &m))
        .expect("the message writes");
    lab.accept(&mut f.alice, &bucket, change).await;
    let again = blob_hashes_to_json(&[BlobHash::of(b"another file")]);
    let rewrite = raw(&mut f.alice, &bucket, |tx| {
        let m = obj(&*tx, &[MESSAGES, "b3"]);
        tx.put(&m, BLOBS, s(&again)).expect("put");
    });
    lab.reject(&f.alice, &bucket, rewrite, "immutable_field")
        .await;
    let keeps = raw_tombstone(&mut f.alice, &bucket, "b3", (now, "alice"), &[BLOBS], &[]);
    lab.reject(&f.alice, &bucket, keeps, "incomplete_redaction")
        .await;
    // Twin: the whole tombstone.
    let whole = raw_tombstone(&mut f.alice, &bucket, "b3", (now, "alice"), &[], &[]);
    lab.accept(&mut f.alice, &bucket, whole).await;
    let doc = lab.read(&bucket).await;
    let keys = read::message_keys(&doc, &crate::ids::msg_id("b3")).expect("b3 is there");
    assert!(!keys.iter().any(|k| k == BLOBS), "{keys:?}");
}
