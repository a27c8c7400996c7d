//! Crafting adversarial changes with the automerge crate directly: a raw transaction on a
//! copy of a device's replica, or a real change decoded, tampered with and encoded again.
//! They panic when the crafting itself fails: that is a broken test, not a finding.

use confab_core::automerge::legacy::OpId;
use confab_core::automerge::transaction::{CommitOptions, Transactable, Transaction};
use confab_core::automerge::{
    Automerge, Change, ExpandedChange, ObjId, ObjType, ReadDoc, ScalarValue, ROOT,
};
use confab_core::doc::read::get_map;
use confab_core::doc::schema::{keys::*, message_shard, TOMBSTONE_FIELDS};
use confab_core::ids::{ConvId, DocId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::model::proposal::{
    CreatedByRole, MeetingType, ProposalPayload, ProposalStatus, ProposalType,
};

use crate::device::Device;
use crate::ids::{bucket_doc, conv_doc};

/// Runs a raw automerge transaction on `doc` and returns the change it committed.
pub fn raw_on(doc: &mut Automerge, f: impl FnOnce(&mut Transaction<'_>)) -> Change {
    let mut tx = doc.transaction();
    f(&mut tx);
    let (hash, _) = tx.commit_with(CommitOptions::default());
    let hash = hash.expect("the transaction wrote something");
    doc.get_change_by_hash(&hash).expect("committed")
}

/// A raw transaction on a copy of the device's replica (same actor): the device's own replica
/// only moves when the acceptor took something and the device pulls it.
pub fn raw(dev: &mut Device, id: &DocId, f: impl FnOnce(&mut Transaction<'_>)) -> Change {
    let mut copy = dev.doc(id).clone();
    raw_on(&mut copy, f)
}

/// Decodes a change, lets `f` tamper with it, and encodes it again.
pub fn tamper(change: &Change, f: impl FnOnce(&mut ExpandedChange)) -> Change {
    let mut e = change.decode();
    e.hash = None;
    f(&mut e);
    Change::from(e)
}

/// The map at `path` from the root.
pub fn obj<R: ReadDoc>(doc: &R, path: &[&str]) -> ObjId {
    let mut at = ROOT;
    for (i, key) in path.iter().enumerate() {
        // Messages live in the shard map their id hashes to.
        if i == 1 && path[0] == MESSAGES {
            let shard = message_shard(key);
            at = get_map(doc, &at, &shard).unwrap_or_else(|| panic!("no shard {shard}"));
        }
        at = get_map(doc, &at, key).unwrap_or_else(|| panic!("no map at {key}"));
    }
    at
}

/// The op id of the value currently at `obj[key]`, as a legacy `OpId` for `pred`.
pub fn op_id_of(doc: &Automerge, obj: &ObjId, key: &str) -> OpId {
    match doc.get(obj, key).expect("readable").expect("a value").1 {
        ObjId::Id(counter, actor, _) => OpId(counter, actor),
        ObjId::Root => panic!("not an op"),
    }
}

pub fn s(v: &str) -> ScalarValue {
    ScalarValue::from(v)
}

/// The fields of a plain text message created at `at`.
pub fn text_fields(author: &str, body: &str, at: i64) -> Vec<(&'static str, ScalarValue)> {
    vec![
        (AUTHOR, s(author)),
        (KIND, s("text")),
        (BODY, s(body)),
        (CREATED_AT, ScalarValue::Int(at)),
    ]
}

/// Writes a new message map `messages/<id>` with `fields`.
pub fn put_message(tx: &mut Transaction<'_>, id: &str, fields: &[(&'static str, ScalarValue)]) {
    let messages = obj(&*tx, &[MESSAGES]);
    let shard = get_map(&*tx, &messages, &message_shard(id)).expect("the shard map exists");
    let m = tx.put_object(&shard, id, ObjType::Map).expect("put");
    for (key, value) in fields {
        tx.put(&m, *key, value.clone()).expect("put");
    }
}

/// A raw change posting a message into the bucket of `at`.
pub fn raw_post(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    fields: &[(&'static str, ScalarValue)],
    at: i64,
) -> (DocId, Change) {
    let bucket = bucket_doc(conv, at);
    let change = raw(dev, &bucket, |tx| put_message(tx, id, fields));
    (bucket, change)
}

/// A raw change writing scalar fields of an existing map.
pub fn raw_put(
    dev: &mut Device,
    id: &DocId,
    path: &[&str],
    fields: &[(&'static str, ScalarValue)],
) -> Change {
    raw(dev, id, |tx| {
        let at = obj(&*tx, path);
        for (key, value) in fields {
            tx.put(&at, *key, value.clone()).expect("put");
        }
    })
}

/// A raw delete of message `id`: every field but the tombstone's and `keep` removed, and the
/// tombstone's `deleted_at` (`at`) and `deleted_by` (`by`) written, with `extra` fields.
pub fn raw_tombstone(
    dev: &mut Device,
    bucket: &DocId,
    id: &str,
    (at, by): (i64, &str),
    keep: &[&str],
    extra: &[(&'static str, ScalarValue)],
) -> Change {
    raw(dev, bucket, |tx| {
        let m = obj(&*tx, &[MESSAGES, id]);
        let content: Vec<String> = tx
            .keys(&m)
            .filter(|k| !TOMBSTONE_FIELDS.contains(&k.as_str()) && !keep.contains(&k.as_str()))
            .collect();
        for key in content {
            tx.delete(&m, key.as_str()).expect("delete");
        }
        tx.put(&m, DELETED_AT, at).expect("put");
        tx.put(&m, DELETED_BY, by).expect("put");
        for (key, value) in extra {
            tx.put(&m, *key, value.clone()).expect("put");
        }
    })
}

/// A raw change setting one reaction key (`Some(time)`) or deleting it (`None`).
pub fn raw_reaction(dev: &mut Device, bucket: &DocId, key: &str, value: Option<i64>) -> Change {
    raw(dev, bucket, |tx| {
        let reactions = obj(&*tx, &[REACTIONS]);
        match value {
            Some(at) => tx.put(&reactions, key, at).expect("put"),
            None => tx.delete(&reactions, key).expect("delete"),
        }
    })
}

/// The raw creation change of a thread of `parent` (on its message "m1") at `depth`, whose
/// own settings allow `max_depth` levels below it, created at `at`.
pub fn raw_thread(
    dev: &mut Device,
    thread: &ConvId,
    parent: &ConvId,
    depth: i64,
    max_depth: i64,
    at: i64,
) -> Change {
    raw_thread_on(dev, thread, (parent, "m1"), depth, max_depth, at)
}

/// [`raw_thread`] on message `on.1` of `on.0`.
pub fn raw_thread_on(
    dev: &mut Device,
    thread: &ConvId,
    on: (&ConvId, &str),
    depth: i64,
    max_depth: i64,
    at: i64,
) -> Change {
    let (parent, message) = on;
    let me = dev.account.clone();
    raw(dev, &conv_doc(thread), |tx| {
        let meta = obj(&*tx, &[META]);
        let put = |tx: &mut Transaction<'_>, obj: &ObjId, key: &str, v: ScalarValue| {
            tx.put(obj, key, v).expect("put");
        };
        put(tx, &meta, KIND, s("thread"));
        put(tx, &meta, CREATED_BY, s(&me));
        put(tx, &meta, CREATED_AT, ScalarValue::Int(at));
        put(tx, &meta, BUCKET_MS, ScalarValue::Int(DEFAULT_BUCKET_MS));
        put(tx, &meta, PARENT, s(parent.as_str()));
        put(tx, &meta, PARENT_MESSAGE, s(message));
        put(tx, &meta, DEPTH, ScalarValue::Int(depth));
        let settings = obj(&*tx, &[SETTINGS]);
        put(
            tx,
            &settings,
            MAX_SUBROOM_DEPTH,
            ScalarValue::Int(max_depth),
        );
        let members = obj(&*tx, &[MEMBERS]);
        let m = tx
            .put_object(&members, me.as_str(), ObjType::Map)
            .expect("put");
        put(tx, &m, ROLE, s("owner"));
        put(tx, &m, STATUS, s("active"));
    })
}

/// A visit proposal for tomorrow (relative to `now`), expiring at `expires_at`.
pub fn proposal_payload(now: i64, expires_at: Option<i64>) -> String {
    ProposalPayload {
        proposal_type: ProposalType::Visit,
        time_start: now + 86_400_000,
        time_end: now + 90_000_000,
        timezone: "America/Mexico_City".into(),
        meeting_type: Some(MeetingType::OnSite),
        location: Some("Av. Reforma 222".into()),
        from_resource_address: None,
        status: ProposalStatus::Pending,
        expires_at,
        created_by_role: CreatedByRole::Owner,
    }
    .to_json()
}
