//! Maps each op of a change to its path of map keys, checking its shape and its `pred`
//! against the accepted document. Objects made earlier in the same change are tracked here.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{ActorId, Change, ObjId, ObjType, Prop, ReadDoc, ScalarValue};

use super::codes::RejectCode;
use super::state::AcceptedDoc;
use crate::doc::genesis_path;

pub(super) type Failure = (RejectCode, String);

/// What an op does, reduced to what the schema allows.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    Put(ScalarValue),
    MakeMap,
    Delete,
}

/// One op with its path from the root (the op's own key last).
#[derive(Debug, Clone)]
pub(super) struct PathOp {
    pub path: Vec<String>,
    pub action: Action,
    /// The op writes into an object made by this same change.
    pub in_new_object: bool,
    /// The key had a visible value before this change.
    pub replaces: bool,
}

struct ObjInfo {
    path: Vec<String>,
    new: bool,
    id: ObjId,
}

pub(super) fn resolve(
    doc: &AcceptedDoc,
    change: &Change,
    expanded: &automerge::ExpandedChange,
) -> Result<Vec<PathOp>, Failure> {
    let actor = change.actor_id().clone();
    let genesis = doc.genesis_actor();
    let start = change.start_op().get();
    let mut objects: HashMap<OpId, ObjInfo> = HashMap::new();
    let mut written: HashSet<(OpId, String)> = HashSet::new();
    let root = OpId(0, ActorId::from(&[][..]));
    let mut out = Vec::with_capacity(expanded.operations.len());

    for (index, op) in expanded.operations.iter().enumerate() {
        let op_id = OpId(start + index as u64, actor.clone());
        let key = match (&op.key, op.insert) {
            (Key::Map(key), false) => key.to_string(),
            _ => {
                return Err((
                    RejectCode::UnsupportedOp,
                    "list and text ops are not part of the schema".into(),
                ))
            }
        };
        let action = match &op.action {
            OpType::Put(value) => Action::Put(value.clone()),
            OpType::Make(ObjType::Map) => Action::MakeMap,
            OpType::Delete => Action::Delete,
            other => {
                return Err((
                    RejectCode::UnsupportedOp,
                    format!("op {other:?} is not part of the schema"),
                ))
            }
        };
        let obj_key = match &op.obj {
            ObjectId::Root => root.clone(),
            ObjectId::Id(id) => id.clone(),
        };
        // An op is newer than its object and than every value it replaces.
        if obj_key.counter() >= op_id.counter()
            || op.pred.iter().any(|p| p.counter() >= op_id.counter())
        {
            return Err((
                RejectCode::BadStartOp,
                format!("op {} is not above the ops it builds on", op_id.counter()),
            ));
        }
        if !objects.contains_key(&obj_key) {
            let info = locate(doc, genesis, &op.obj)?;
            objects.insert(obj_key.clone(), info);
        }
        let Some(obj) = objects.get(&obj_key) else {
            return Err((RejectCode::UnknownObject, "object lookup failed".into()));
        };
        if !written.insert((obj_key.clone(), key.clone())) {
            return Err((
                RejectCode::DuplicateKey,
                format!("two ops on {key:?} in one change"),
            ));
        }
        let mut path = obj.path.clone();
        path.push(key.clone());
        let replaces = if obj.new {
            if !op.pred.is_empty() || action == Action::Delete {
                return Err((
                    RejectCode::ConflictingWrite,
                    format!("{} refers to values that cannot exist", path.join("/")),
                ));
            }
            false
        } else {
            check_pred(doc, &obj.id, &key, op.pred.iter(), &action, &path)
                .map_err(|failure| already_created(doc, &path, failure))?
        };
        let in_new_object = obj.new;
        if action == Action::MakeMap {
            objects.insert(
                op_id,
                ObjInfo {
                    path: path.clone(),
                    new: true,
                    id: ObjId::Root, // never looked up: new objects have no accepted state
                },
            );
        }
        out.push(PathOp {
            path,
            action,
            in_new_object,
            replaces,
        });
    }
    Ok(out)
}

/// Finds an existing object: the root, a genesis map (known without a lookup), or any
/// other visible map, through Automerge's parent index (O(depth)).
fn locate(doc: &AcceptedDoc, genesis: &ActorId, obj: &ObjectId) -> Result<ObjInfo, Failure> {
    let id = match obj {
        ObjectId::Root => {
            return Ok(ObjInfo {
                path: Vec::new(),
                new: false,
                id: ObjId::Root,
            })
        }
        ObjectId::Id(id) => id,
    };
    let exid = ObjId::Id(id.counter(), id.actor().clone(), usize::MAX);
    if id.actor() == genesis {
        if let Some(path) = genesis_path(doc.id().kind(), id.counter()) {
            return Ok(ObjInfo {
                path,
                new: false,
                id: exid,
            });
        }
    }
    let unknown = || {
        (
            RejectCode::UnknownObject,
            format!("no object {}@{}", id.counter(), id.actor()),
        )
    };
    match doc.doc().object_type(&exid) {
        Ok(ObjType::Map) => {}
        Ok(_) => {
            return Err((
                RejectCode::UnsupportedOp,
                "only maps are part of the schema".into(),
            ))
        }
        Err(_) => return Err(unknown()),
    }
    let mut path = Vec::new();
    for parent in doc.doc().parents(&exid).map_err(|_| unknown())? {
        if !parent.visible {
            return Err((
                RejectCode::HiddenObject,
                format!("object {exid} was deleted or lost a conflict"),
            ));
        }
        match parent.prop {
            Prop::Map(key) => path.push(key),
            Prop::Seq(_) => return Err((RejectCode::UnsupportedOp, "objects inside lists".into())),
        }
    }
    path.reverse();
    Ok(ObjInfo {
        path,
        new: false,
        id: exid,
    })
}

/// `meta` is written once, by a conversation's creation change, and `mls` once, by the
/// change that makes its group: a second creation or group (from a device that did not know
/// the first) trips over its values. Say what happened.
fn already_created(doc: &AcceptedDoc, path: &[String], failure: Failure) -> Failure {
    use crate::doc::schema::keys::{META, MLS};
    let creating = matches!(doc.id().target(), crate::ids::DocTarget::Conv(_))
        && ((path.len() == 2 && path[0] == META) || path == [MLS]);
    if failure.0 == RejectCode::ConflictingWrite && creating {
        (
            RejectCode::Policy(crate::policy::DenyCode::AlreadyCreated),
            format!(
                "the conversation exists already ({} is set)",
                path.join("/")
            ),
        )
    } else {
        failure
    }
}

/// A write to an existing key must name exactly the values it replaces: no new conflicts,
/// no removing a value the writer did not see. Returns whether a value existed.
fn check_pred<'a>(
    doc: &AcceptedDoc,
    obj: &ObjId,
    key: &str,
    pred: impl Iterator<Item = &'a OpId>,
    action: &Action,
    path: &[String],
) -> Result<bool, Failure> {
    let current: HashSet<(u64, ActorId)> = doc
        .doc()
        .get_all(obj, key)
        .map_err(|e| (RejectCode::UnknownObject, e.to_string()))?
        .into_iter()
        .filter_map(|(_, id)| match id {
            ObjId::Id(counter, actor, _) => Some((counter, actor)),
            ObjId::Root => None,
        })
        .collect();
    let claimed: HashSet<(u64, ActorId)> = pred.map(|p| (p.counter(), p.actor().clone())).collect();
    if claimed != current {
        return Err((
            RejectCode::ConflictingWrite,
            format!(
                "{} replaces {} value(s) but the document holds {}",
                path.join("/"),
                claimed.len(),
                current.len()
            ),
        ));
    }
    if *action == Action::Delete && current.is_empty() {
        return Err((
            RejectCode::ConflictingWrite,
            format!("{} deletes nothing", path.join("/")),
        ));
    }
    Ok(!current.is_empty())
}
