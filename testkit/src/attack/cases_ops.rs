//! What the validator checks op by op; changes replayed into other documents.

use confab_core::automerge::legacy::{ObjectId, OpId, OpType};
use confab_core::automerge::transaction::Transactable;
use confab_core::automerge::{ActorId, ObjType, ScalarValue, ROOT};
use confab_core::doc::read;
use confab_core::doc::schema::{keys::*, reaction_key};
use confab_core::doc::{self as cdoc, write};
use confab_core::ids::{ContactId, DocId};
use confab_core::model::contact::{Contact, ContactKind};
use confab_core::model::conversation::{ConvKind, Role, DEFAULT_BUCKET_MS};

use super::fixture::{create, fixture, text_change};
use super::Lab;
use crate::craft::*;
use crate::device::Device;
use crate::ids::{acc, bucket_doc, conv_doc, tenant};

pub async fn new_object_smuggling_a_forbidden_write(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a27").await;
    let t = lab.now();
    let mut carol = Device::new("carol", 1);
    lab.pull(&mut carol, &f.cd).await;

    // A new message map that arrives already tombstoned. `deleted_at` is a message field, so
    // the schema check passes; but `interpret::new_message` refuses any field a new message
    // cannot have (edited_at, deleted_at) as `invalid_value`, before the policy sees it.
    let mut fields = text_fields("bob", "ghost", t);
    fields.push((DELETED_AT, ScalarValue::Int(t)));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields, t);
    lab.reject(&f.bob, &bucket, change, "invalid_value").await;
    // Same for a text message born with a proposal status.
    let mut fields = text_fields("bob", "ghost", t);
    fields.push((STATUS, s("accepted")));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields, t);
    lab.reject(&f.bob, &bucket, change, "invalid_value").await;

    // A member re-creating its own entry as a new map with role owner: a member entry is
    // made once; `members/<account>` written again is `immutable_field`.
    let me_owner = |dev: &mut Device, cd: &DocId, who: &str| {
        raw(dev, cd, |tx| {
            let members = obj(&*tx, &[MEMBERS]);
            let m = tx.put_object(&members, who, ObjType::Map).expect("put");
            tx.put(&m, ROLE, "owner").expect("put");
            tx.put(&m, STATUS, "active").expect("put");
        })
    };
    let cd = f.cd.clone();
    let change = me_owner(&mut f.bob, &cd, "bob");
    lab.reject(&f.bob, &cd, change, "immutable_field").await;
    // An outsider's new entry for itself as owner is a self-join with a role above the join
    // role (member): `role_too_high`, checked before the (invite-only) join policy.
    let change = me_owner(&mut carol, &cd, "carol");
    lab.reject(&carol, &cd, change, "role_too_high").await;

    // A new pin map carrying a key pins do not have: `unknown_key` from the pin field table.
    let pin = |dev: &mut Device, extra: bool| {
        raw(dev, &cd, |tx| {
            let pins = obj(&*tx, &[PINS]);
            let p = tx.put_object(&pins, "m1", ObjType::Map).expect("put");
            tx.put(&p, BY, "alice").expect("put");
            tx.put(&p, AT, t).expect("put");
            if extra {
                tx.put(&p, "note", "smuggled").expect("put");
            }
        })
    };
    let change = pin(&mut f.alice, true);
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    // Twins: the plain pin, the plain message.
    let twin = pin(&mut f.alice, false);
    lab.accept(&mut f.alice, &cd, twin).await;
    let conv = lab.conversation(&cd).await.expect("created");
    assert!(conv.pins.contains(&"m1".to_owned()), "{conv:?}");
    let read_back = read::read_conversation(&lab.read(&cd).await, f.conv.clone());
    assert!(read_back.pins.contains_key(&crate::ids::msg_id("m1")));
    let (bucket, twin) = raw_post(
        &mut f.bob,
        &f.conv,
        "b1",
        &text_fields("bob", "alive", t),
        t,
    );
    lab.accept(&mut f.bob, &bucket, twin).await;
}

pub async fn delete_whose_pred_targets_another_users_value(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a28").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    let (alice_key, bob_key) = (
        reaction_key("m1", "alice", "👍"),
        reaction_key("m1", "bob", "👍"),
    );
    let a = raw_reaction(&mut f.alice, &bucket, &alice_key, Some(t));
    lab.accept(&mut f.alice, &bucket, a).await;
    lab.pull(&mut f.bob, &bucket).await;
    let b = raw_reaction(&mut f.bob, &bucket, &bob_key, Some(t));
    lab.accept(&mut f.bob, &bucket, b).await;

    let doc = lab.read(&bucket).await;
    let reactions = obj(&doc, &[REACTIONS]);
    let alice_op = op_id_of(&doc, &reactions, &alice_key);
    let bob_op = op_id_of(&doc, &reactions, &bob_key);

    // Bob deletes his own key, but his `pred` names alice's reaction op (another key):
    // `ops::check_pred` compares pred with the values at *this* key and refuses the mismatch
    // as `conflicting_write`, before ownership is even considered.
    let own_delete = raw_reaction(&mut f.bob, &bucket, &bob_key, None);
    assert_eq!(
        own_delete.decode().operations[0]
            .pred
            .iter()
            .collect::<Vec<_>>(),
        vec![&bob_op]
    );
    let sneaky = tamper(&own_delete, |e| {
        e.operations[0].pred = vec![alice_op.clone()].into()
    });
    lab.reject(&f.bob, &bucket, sneaky, "conflicting_write")
        .await;
    // Naming both ops is still not exactly the values at the key.
    let both = tamper(&own_delete, |e| {
        e.operations[0].pred = vec![alice_op.clone(), bob_op.clone()].into()
    });
    lab.reject(&f.bob, &bucket, both, "conflicting_write").await;
    // A delete on alice's key with the right pred is well-formed: the policy refuses it.
    let theirs = raw_reaction(&mut f.bob, &bucket, &alice_key, None);
    lab.reject(&f.bob, &bucket, theirs.clone(), "not_own_key")
        .await;
    // The same delete with an empty pred deletes nothing it saw: `conflicting_write`.
    let blind = tamper(&theirs, |e| e.operations[0].pred = Vec::new().into());
    lab.reject(&f.bob, &bucket, blind, "conflicting_write")
        .await;

    // Twin: bob's honest delete of his own reaction.
    lab.accept(&mut f.bob, &bucket, own_delete).await;
    let m = read::read_messages(&lab.read(&bucket).await);
    assert_eq!(
        m[0].reactions["👍"].keys().collect::<Vec<_>>(),
        vec![&acc("alice")]
    );
}

pub async fn put_conflicting_with_existing_value_conflicting_write(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a29").await;
    let cd = f.cd.clone();
    let edit = raw_put(&mut f.alice, &cd, &[INFO], &[(TITLE, s("renamed"))]);
    assert_eq!(
        edit.decode().operations[0].pred.len(),
        1,
        "replaces the title"
    );
    // The same put claiming to replace nothing would leave two titles in conflict.
    let blind = tamper(&edit, |e| e.operations[0].pred = Vec::new().into());
    lab.reject(&f.alice, &cd, blind, "conflicting_write").await;
    // A put on an empty key that claims to replace something.
    let phantom_pred = edit.decode().operations[0].pred.clone();
    let desc = raw_put(&mut f.alice, &cd, &[INFO], &[(DESCRIPTION, s("about"))]);
    let phantom = tamper(&desc, |e| e.operations[0].pred = phantom_pred);
    lab.reject(&f.alice, &cd, phantom, "conflicting_write")
        .await;
    // Dave edits the title concurrently from the same state.
    let race = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    // Twin: the untampered edit is accepted, after which dave's edit names a value that is
    // no longer there.
    lab.accept(&mut f.alice, &cd, edit).await;
    lab.reject(&f.dave, &cd, race, "conflicting_write").await;
    lab.pull(&mut f.dave, &cd).await;
    let rebased = raw_put(&mut f.dave, &cd, &[INFO], &[(TITLE, s("dave's"))]);
    lab.accept(&mut f.dave, &cd, rebased).await;
    let conv = lab.conversation(&cd).await.expect("created");
    assert_eq!(conv.title, "dave's");
}

pub async fn unknown_keys(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a30").await;
    let cd = f.cd.clone();
    let t = lab.now();
    // A root key of the conversation document.
    let change = raw_put(&mut f.alice, &cd, &[], &[("hack", s("x"))]);
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    // A member field.
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[("superpower", ScalarValue::Boolean(true))],
    );
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    // A setting.
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[("allow_everything", ScalarValue::Boolean(true))],
    );
    lab.reject(&f.alice, &cd, change, "unknown_key").await;
    // A message field.
    let mut fields = text_fields("bob", "hi", t);
    fields.push(("color", s("red")));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields, t);
    lab.reject(&f.bob, &bucket, change, "unknown_key").await;
    // A root key of the bucket.
    let change = raw_put(&mut f.bob, &bucket, &[], &[("hack", s("x"))]);
    lab.reject(&f.bob, &bucket, change, "unknown_key").await;

    // Twins: a permission override (a member key the schema names) and the plain message.
    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[("can_pin_messages", ScalarValue::Boolean(true))],
    );
    lab.accept(&mut f.alice, &cd, twin).await;
    let (bucket, twin) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "hi", t), t);
    lab.accept(&mut f.bob, &bucket, twin).await;
}

pub async fn wrong_types(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a31").await;
    let cd = f.cd.clone();
    let t = lab.now();
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[(ROLE, ScalarValue::Int(5))],
    );
    lab.reject(&f.alice, &cd, change, "wrong_type").await;
    let change = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, s("false"))],
    );
    lab.reject(&f.alice, &cd, change, "wrong_type").await;
    // A map where the schema holds a string.
    let change = raw(&mut f.alice, &cd, |tx| {
        let info = obj(&*tx, &[INFO]);
        tx.put_object(&info, TITLE, ObjType::Map).expect("put");
    });
    lab.reject(&f.alice, &cd, change, "wrong_type").await;
    // A message's created_at as a string; a reaction holding a string.
    let mut fields = text_fields("bob", "hi", t);
    fields[3] = (CREATED_AT, s("now"));
    let (bucket, change) = raw_post(&mut f.bob, &f.conv, "b1", &fields, t);
    lab.reject(&f.bob, &bucket, change, "wrong_type").await;
    let change = raw(&mut f.bob, &bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        tx.put(&reactions, reaction_key("m1", "bob", "👍"), "yes")
            .expect("put");
    });
    lab.reject(&f.bob, &bucket, change, "wrong_type").await;

    // Twins with the right types.
    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[MEMBERS, "bob"],
        &[(ROLE, s("moderator"))],
    );
    lab.accept(&mut f.alice, &cd, twin).await;
    let twin = raw_put(
        &mut f.alice,
        &cd,
        &[SETTINGS],
        &[(ALLOW_REACTIONS, ScalarValue::Boolean(false))],
    );
    lab.accept(&mut f.alice, &cd, twin).await;
}

pub async fn list_text_and_counter_ops_unsupported_op(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a34").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    for kind in [ObjType::List, ObjType::Text] {
        let change = raw(&mut f.bob, &bucket, |tx| {
            put_message(tx, "b1", &text_fields("bob", "hi", t));
            let m = obj(&*tx, &[MESSAGES, "b1"]);
            tx.put_object(&m, MENTIONS, kind).expect("put");
        });
        lab.reject(&f.bob, &bucket, change, "unsupported_op").await;
    }
    // A list at the root, with an element inserted.
    let change = raw(&mut f.bob, &bucket, |tx| {
        let list = tx.put_object(ROOT, "list", ObjType::List).expect("put");
        tx.insert(&list, 0, "x").expect("insert");
    });
    lab.reject(&f.bob, &bucket, change, "unsupported_op").await;
    // A counter increment on a reaction key.
    let react = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("m1", "bob", "👍"),
        Some(t),
    );
    let inc = tamper(&react, |e| e.operations[0].action = OpType::Increment(1));
    lab.reject(&f.bob, &bucket, inc, "unsupported_op").await;
    // Twin: the plain reaction.
    lab.accept(&mut f.bob, &bucket, react).await;
}

pub async fn write_into_a_message_that_does_not_exist(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a35").await;
    let bucket = f.bucket.clone();
    let t = lab.now();
    // A reaction on a message this bucket does not hold.
    let change = raw_reaction(
        &mut f.bob,
        &bucket,
        &reaction_key("nope", "bob", "👍"),
        Some(t),
    );
    lab.reject(&f.bob, &bucket, change, "message_missing").await;
    // An edit aimed at an object id that exists nowhere.
    let (_, mine) = raw_post(&mut f.bob, &f.conv, "b1", &text_fields("bob", "typo", t), t);
    lab.accept(&mut f.bob, &bucket, mine).await;
    let edit = raw_put(
        &mut f.bob,
        &bucket,
        &[MESSAGES, "b1"],
        &[(BODY, s("fixed")), (EDITED_AT, ScalarValue::Int(t))],
    );
    // An object id no actor ever made (numbered low, so it does not postdate the ops).
    let stranger = ActorId::from(&[9_u8; 16][..]);
    let nowhere = tamper(&edit, |e| {
        for op in &mut e.operations {
            op.obj = ObjectId::Id(OpId(2, stranger.clone()));
            op.pred = Vec::new().into();
        }
    });
    lab.reject(&f.bob, &bucket, nowhere, "unknown_object").await;
    // Twin: the edit of the real message.
    lab.accept(&mut f.bob, &bucket, edit).await;
}

pub async fn write_into_a_hidden_object(lab: &mut impl Lab) {
    let pd = DocId::private(&tenant(), &acc("alice"));
    let t = lab.now();
    let (mut phone, mut laptop) = (Device::new("alice", 1), Device::new("alice", 2));
    let contact = |nickname: &str| Contact {
        kind: ContactKind::Person,
        phone: None,
        email: None,
        account: Some(acc("bob")),
        nickname: Some(nickname.into()),
    };
    let set = |dev: &mut Device, id: &str, nickname: &str| {
        let id = ContactId::new(id).expect("a contact id");
        dev.write(&pd, |d, tag| {
            write::set_contact(d, tag, t, &id, &contact(nickname))
        })
        .expect("a contact writes")
    };
    for id in ["c1", "c2"] {
        let change = set(&mut phone, id, "Bob");
        lab.accept(&mut phone, &pd, change).await;
    }
    lab.pull(&mut laptop, &pd).await;
    // Twin: the laptop renames c1 while it is there.
    let rename = raw_put(
        &mut laptop,
        &pd,
        &[CONTACTS, "c1"],
        &[(NICKNAME, s("Bobby"))],
    );
    lab.accept(&mut laptop, &pd, rename).await;
    lab.pull(&mut phone, &pd).await;

    // The phone deletes c1 and replaces c2 with a new map; the laptop has not seen either.
    let delete = raw(&mut phone, &pd, |tx| {
        let contacts = obj(&*tx, &[CONTACTS]);
        tx.delete(&contacts, "c1").expect("delete");
    });
    lab.accept(&mut phone, &pd, delete).await;
    let replace = set(&mut phone, "c2", "Robert");
    lab.accept(&mut phone, &pd, replace).await;

    // Writes into the deleted map and into the overwritten one.
    let late = raw_put(&mut laptop, &pd, &[CONTACTS, "c1"], &[(NICKNAME, s("Rob"))]);
    lab.reject(&laptop, &pd, late, "hidden_object").await;
    let late = raw_put(&mut laptop, &pd, &[CONTACTS, "c2"], &[(NICKNAME, s("Rob"))]);
    lab.reject(&laptop, &pd, late, "hidden_object").await;
    // After catching up, the laptop writes into the live c2.
    lab.pull(&mut laptop, &pd).await;
    let twin = raw_put(&mut laptop, &pd, &[CONTACTS, "c2"], &[(NICKNAME, s("Rob"))]);
    lab.accept(&mut laptop, &pd, twin).await;
    let private = read::read_private(&lab.read(&pd).await);
    assert_eq!(private.contacts.len(), 1);
}

/// An accepted change of one document submitted to another: plain, with its dependencies
/// rewritten to the target's heads, and as an honest write of a message from another bucket.
pub async fn replaying_one_documents_change_into_another(lab: &mut impl Lab) {
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let members = &mut [(&mut bob, Role::Member)];
    let a = create(lab, "w-rpa", ConvKind::Group, &mut alice, members, |_| {}).await;
    let b = create(lab, "w-rpb", ConvKind::Group, &mut alice, members, |_| {}).await;
    let t = lab.now();
    let bucket_a = bucket_doc(&a, t);
    let (_, m1) = raw_post(
        &mut alice,
        &a,
        "m1",
        &text_fields("alice", "for a only", t),
        t,
    );
    assert_eq!(lab.accept(&mut alice, &bucket_a, m1.clone()).await, 1);
    // Resubmitting it to its own document is an ack with the same seq, and stores nothing.
    assert_eq!(lab.ack_again(&alice, &bucket_a, m1.clone()).await, 1);

    // The next bucket of the same conversation, another conversation's bucket, and the
    // conversation document: the change depends on bucket A's genesis (derived from A's id),
    // which none of them holds.
    let next_day = DocId::msgs(&tenant(), &a, t.div_euclid(DEFAULT_BUCKET_MS) + 1);
    let other_conv = bucket_doc(&b, t);
    for target in [&next_day, &other_conv, &conv_doc(&a)] {
        lab.reject(&alice, target, m1.clone(), "missing_dependency")
            .await;
    }
    // The same change re-pointed at the target's own heads: its ops write into bucket A's
    // `messages` map, an object the target does not have.
    for target in [&next_day, &other_conv] {
        let heads = cdoc::genesis(target).expect("genesis").get_heads();
        let repointed = tamper(&m1, |e| e.deps = heads.clone());
        lab.reject(&alice, target, repointed, "unknown_object")
            .await;
    }
    // An honest write of a message created today into tomorrow's bucket.
    let misplaced = raw(&mut alice, &next_day, |tx| {
        put_message(tx, "m1", &text_fields("alice", "for a only", t))
    });
    lab.reject(&alice, &next_day, misplaced, "bucket_mismatch")
        .await;
    // Bob replaying alice's change into B: the dependency check comes first.
    lab.reject(&bob, &other_conv, m1, "missing_dependency")
        .await;
    // A well-formed message (written through `doc::write`) still goes through.
    let (bucket, ok) = text_change(lab, &mut bob, &b, "b1", "fine");
    lab.accept(&mut bob, &bucket, ok).await;
}
