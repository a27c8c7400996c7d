//! Describing changes: every op with the path of the map it writes into.

use super::*;

// ---------------------------------------------------------------------------------------
// Describing changes: every op with the path of the map it writes into
// ---------------------------------------------------------------------------------------

/// The maps of one document by op id (`counter@actor`), as paths from the root.
pub(crate) type Objects = HashMap<String, String>;

pub(crate) fn genesis_objects(id: &DocId) -> Objects {
    let actor = doc::genesis_actor(id);
    doc::genesis_objects(id.kind())
        .iter()
        .enumerate()
        .map(|(i, path)| (format!("{}@{actor}", i + 2), path.join("/")))
        .collect()
}

pub(crate) fn scalar(v: &ScalarValue) -> (&'static str, Value) {
    match v {
        ScalarValue::Str(s) => ("str", json!(s.as_str())),
        ScalarValue::Int(i) => ("int", json!(i)),
        ScalarValue::Uint(u) => ("uint", json!(u)),
        ScalarValue::Boolean(b) => ("bool", json!(b)),
        ScalarValue::F64(f) => ("f64", json!(f)),
        other => ("other", json!(format!("{other:?}"))),
    }
}

/// The ops of `change` in order; maps it makes are added to `objects`.
pub(crate) fn describe_ops(change: &Change, objects: &mut Objects) -> Value {
    let expanded = change.decode();
    let start = change.start_op().get();
    let actor = change.actor_id().to_string();
    let ops: Vec<Value> = expanded
        .operations
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let id = format!("{}@{actor}", start + i as u64);
            let obj = match &op.obj {
                ObjectId::Root => String::new(),
                ObjectId::Id(o) => objects
                    .get(&o.to_string())
                    .cloned()
                    .unwrap_or_else(|| o.to_string()),
            };
            let mut out = serde_json::Map::new();
            out.insert("id".into(), json!(id));
            out.insert("obj".into(), json!(obj));
            let key = match &op.key {
                Key::Map(k) => k.to_string(),
                Key::Seq(ElementId::Head) => "_head".into(),
                Key::Seq(ElementId::Id(e)) => e.to_string(),
            };
            out.insert("key".into(), json!(key));
            if op.insert {
                out.insert("insert".into(), json!(true));
            }
            match &op.action {
                OpType::Make(kind) => {
                    out.insert("action".into(), json!(format!("make_{kind}")));
                    let path = if obj.is_empty() {
                        key
                    } else {
                        format!("{obj}/{key}")
                    };
                    objects.insert(id, path);
                }
                OpType::Put(v) => {
                    let (ty, value) = scalar(v);
                    out.insert("action".into(), json!("put"));
                    out.insert("type".into(), json!(ty));
                    out.insert("value".into(), value);
                }
                OpType::Delete => {
                    out.insert("action".into(), json!("delete"));
                }
                other => {
                    out.insert("action".into(), json!(format!("{other:?}")));
                }
            }
            if !op.pred.is_empty() {
                let pred: Vec<String> = op.pred.iter().map(|p| p.to_string()).collect();
                out.insert("pred".into(), json!(pred));
            }
            Value::Object(out)
        })
        .collect();
    Value::Array(ops)
}

/// A change's header and bytes (the uncompressed chunk the server takes).
pub(crate) fn describe_change(change: &Change) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("actor".into(), json!(change.actor_id().to_string()));
    out.insert("seq".into(), json!(change.seq()));
    out.insert("start_op".into(), json!(change.start_op().get()));
    out.insert("time".into(), json!(change.timestamp()));
    out.insert("message".into(), json!(change.message()));
    let deps: Vec<String> = change.deps().iter().map(|d| d.to_string()).collect();
    out.insert("deps".into(), json!(deps));
    out.insert("hash".into(), json!(change.hash().to_string()));
    out.insert("change".into(), json!(hex::encode(change.raw_bytes())));
    out
}
