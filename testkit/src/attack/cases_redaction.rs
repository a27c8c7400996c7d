//! Deleting a message for everyone: only the whole tombstone, in its deleter's name
//! (docs/POLICY.md, "Messages"); and only the server's cut makes a generation.

use confab_core::automerge::transaction::Transactable;
use confab_core::automerge::{Automerge, ScalarValue, ROOT};
use confab_core::doc::cut::{cut_actor, generation};
use confab_core::doc::read;
use confab_core::doc::schema::{keys::*, TOMBSTONE_FIELDS};
use confab_core::ids::MessageId;

use super::fixture::fixture;
use super::Lab;
use crate::craft::*;
use crate::ids::acc;

/// A tombstone naming someone else as its deleter, from a member who may delete (dave, an
/// admin) and from one who may not (bob): `forged_tombstone` either way.
pub async fn forged_tombstone(lab: &mut impl Lab) {
    let mut f = fixture(lab, "r1").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let as_author = raw_tombstone(&mut f.dave, &bucket, "m1", (t, "alice"), &[], &[]);
    lab.reject(&f.dave, &bucket, as_author, "forged_tombstone")
        .await;
    let as_admin = raw_tombstone(&mut f.bob, &bucket, "m1", (t, "dave"), &[], &[]);
    lab.reject(&f.bob, &bucket, as_admin, "forged_tombstone")
        .await;
    // Twin: dave deletes in his own name; the live message is the tombstone only.
    let own = raw_tombstone(&mut f.dave, &bucket, "m1", (t, "dave"), &[], &[]);
    lab.accept(&mut f.dave, &bucket, own).await;
    let doc = lab.read(&bucket).await;
    let id = MessageId::new("m1").expect("id");
    let mut keys = read::message_keys(&doc, &id).expect("m1 is there");
    keys.sort();
    let mut tombstone: Vec<String> = TOMBSTONE_FIELDS.iter().map(|k| k.to_string()).collect();
    tombstone.sort();
    assert_eq!(keys, tombstone);
    let m = read::read_message(&doc, &id).expect("m1 reads");
    assert_eq!((m.body.as_str(), m.deleted_by), ("", Some(acc("dave"))));
}

/// A delete that leaves content behind, content removed without a tombstone, the old shape
/// (an emptied body and `deleted_at`), and a tombstone that writes more: each is
/// `incomplete_redaction`, from the author herself.
pub async fn incomplete_redaction(lab: &mut impl Lab) {
    let mut f = fixture(lab, "r2").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let keeps_body = raw_tombstone(&mut f.alice, &bucket, "m1", (t, "alice"), &[BODY], &[]);
    lab.reject(&f.alice, &bucket, keeps_body, "incomplete_redaction")
        .await;
    let blanks_only = raw(&mut f.alice, &bucket, |tx| {
        let m = obj(&*tx, &[MESSAGES, "m1"]);
        tx.delete(&m, BODY).expect("delete");
    });
    lab.reject(&f.alice, &bucket, blanks_only, "incomplete_redaction")
        .await;
    let old_shape = raw_put(
        &mut f.alice,
        &bucket,
        &[MESSAGES, "m1"],
        &[(BODY, s("")), (DELETED_AT, ScalarValue::Int(t))],
    );
    lab.reject(&f.alice, &bucket, old_shape, "incomplete_redaction")
        .await;
    let more = raw_tombstone(
        &mut f.alice,
        &bucket,
        "m1",
        (t, "alice"),
        &[],
        &[(EDITED_AT, ScalarValue::Int(t))],
    );
    lab.reject(&f.alice, &bucket, more, "incomplete_redaction")
        .await;
    // Twin: the whole tombstone in her own name.
    let whole = raw_tombstone(&mut f.alice, &bucket, "m1", (t, "alice"), &[], &[]);
    lab.accept(&mut f.alice, &bucket, whole).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(m[0].deleted_by, Some(acc("alice")));
}

/// A write that claims a generation the server never made: the part's root `generation`
/// put by its owner (`unknown_key`: no client writes it), and an edit written in the cut
/// actor's name (`forged_actor`: only the server's cut writes with it). Twin: the same edit
/// in the author's own name.
pub async fn claimed_generation(lab: &mut impl Lab) {
    let mut f = fixture(lab, "r3").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let claim = raw(&mut f.alice, &bucket, |tx| {
        tx.put(ROOT, GENERATION, ScalarValue::Int(7)).expect("put");
    });
    lab.reject(&f.alice, &bucket, claim, "unknown_key").await;
    let edit = |doc: &mut Automerge| {
        raw_on(doc, |tx| {
            let m = obj(&*tx, &[MESSAGES, "m1"]);
            tx.put(&m, BODY, "rewritten").expect("put");
            tx.put(&m, EDITED_AT, ScalarValue::Int(t)).expect("put");
        })
    };
    let mut as_cut = f.alice.doc(&bucket).clone();
    as_cut.set_actor(cut_actor(&bucket));
    let forged = edit(&mut as_cut);
    assert_eq!(forged.actor_id(), &cut_actor(&bucket));
    lab.reject(&f.alice, &bucket, forged, "forged_actor").await;
    // Twin: alice's own edit.
    let own = raw_put(
        &mut f.alice,
        &bucket,
        &[MESSAGES, "m1"],
        &[(BODY, s("rewritten")), (EDITED_AT, ScalarValue::Int(t))],
    );
    lab.accept(&mut f.alice, &bucket, own).await;
    let doc = lab.read(&bucket).await;
    assert_eq!(read::read_messages(&doc)[0].body, "rewritten");
    assert_eq!(generation(&doc), 0, "no generation was made");
}
