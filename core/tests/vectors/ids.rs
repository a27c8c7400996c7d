//! `genesis.json` and `ids.json`: genesis changes, derived ids and actors, id validity, buckets.

use super::*;

// ---------------------------------------------------------------------------------------
// genesis.json
// ---------------------------------------------------------------------------------------

pub(crate) fn genesis_vectors() -> Value {
    let (acme, other) = (tenant("acme"), tenant("other_t-1"));
    let lunch = conv("lunch");
    let ids = [
        DocId::conv(&acme, &lunch),
        DocId::conv(&acme, &conv("lunch-t1")),
        DocId::conv(&other, &conv("Team_42")),
        DocId::conv(&acme, &direct_conv_id(&acme, &acc("alice"), &acc("bob"))),
        DocId::msgs(&acme, &lunch, 20553),
        DocId::msgs(&acme, &lunch, Bucket::new(20553, 1)),
        DocId::msgs(&acme, &lunch, -1),
        DocId::profile(&acme, &acc("alice")),
        DocId::profile(&acme, &acc("jane.doe+x@example.com")),
        DocId::private(&acme, &acc("alice")),
    ];
    let entries: Vec<Value> = ids
        .iter()
        .map(|id| {
            let change = doc::genesis_change(id).unwrap();
            let mut preimage = b"confab/genesis/v1\0".to_vec();
            preimage.extend_from_slice(id.to_string().as_bytes());
            let mut out = describe_change(&change);
            out.insert("doc".into(), json!(id.to_string()));
            out.insert("kind".into(), json!(id.kind().as_str()));
            out.insert("actor_preimage".into(), json!(hex::encode(&preimage)));
            out.insert("actor_sha256".into(), json!(hex::encode(sha256(&preimage))));
            if id.kind() == DocKind::Conv {
                out.insert(
                    "creation_actor".into(),
                    json!(doc::creation_actor(id).to_string()),
                );
            }
            let mut objects = HashMap::new();
            out.insert("ops".into(), describe_ops(&change, &mut objects));
            Value::Object(out)
        })
        .collect();
    json!({
        "about": "The genesis change of each document id (docs/SCHEMA.md, \"Genesis\"): actor = the first 16 bytes of actor_sha256 = SHA-256(actor_preimage), seq 1, start_op 1, time 0, message \"genesis\", no deps. `change` is the uncompressed change chunk in hex, `hash` its Automerge change hash. `ops` lists each op: its id, the map it writes into (\"\" = root, else the path), key, action and value with its Automerge type. Conversation documents also give the actor of their deterministic creation change (direct and support only). Written by `cargo test -p confab-core --test vectors -- --ignored write_vectors`.",
        "genesis": entries,
    })
}

// ---------------------------------------------------------------------------------------
// ids.json
// ---------------------------------------------------------------------------------------

/// The preimage of `hashed_id` in `ids.rs`: the domain, then each part as its byte length
/// (u64 big-endian) and its UTF-8 bytes.
pub(crate) fn id_preimage(domain: &str, parts: &[&str]) -> Vec<u8> {
    let mut out = domain.as_bytes().to_vec();
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

pub(crate) fn id_vectors() -> Value {
    let long = "a".repeat(64);
    let direct_inputs: Vec<(&str, &str, &str)> = vec![
        ("acme", "alice", "bob"),
        ("acme", "bob", "alice"),
        ("other_t-1", "alice", "bob"),
        ("acme", "Zoe", "adam"),
        ("acme", "jane.doe+x@example.com", "bob_2"),
        ("acme", &long, "a"),
    ];
    let direct: Vec<Value> = direct_inputs
        .iter()
        .map(|(t, a, b)| {
            let id = direct_conv_id(&tenant(t), &acc(a), &acc(b));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let preimage = id_preimage("confab/direct/v1", &[t, lo, hi]);
            json!({
                "tenant": t, "a": a, "b": b,
                "preimage": hex::encode(&preimage),
                "sha256": hex::encode(sha256(&preimage)),
                "id": id.as_str(),
            })
        })
        .collect();
    let support_inputs = [
        ("acme", "carol", "flat-7"),
        ("acme", "jane.doe+x@example.com", "R_1"),
        ("other_t-1", "carol", "flat-7"),
    ];
    let support: Vec<Value> = support_inputs
        .iter()
        .map(|(t, client, resource)| {
            let id = support_conv_id(
                &tenant(t),
                &acc(client),
                &ResourceId::new(*resource).unwrap(),
            );
            let preimage = id_preimage("confab/support/v1", &[t, client, resource]);
            json!({
                "tenant": t, "client": client, "resource": resource,
                "preimage": hex::encode(&preimage),
                "sha256": hex::encode(sha256(&preimage)),
                "id": id.as_str(),
            })
        })
        .collect();
    let shards: Vec<Value> = ["m1", "m2", "0", "msg-01HZX3", &long]
        .iter()
        .map(|m| {
            json!({
                "message": m,
                "sha256": hex::encode(sha256(m.as_bytes())),
                "shard": schema::message_shard(m),
            })
        })
        .collect();
    let reactions: Vec<Value> = [
        ("m1", "alice", "👍"),
        ("m1", "jane.doe+x@example.com", "❤️"),
        ("m1", "bob", ":party_parrot:"),
        ("m1", "bob", "👨‍👩‍👧‍👦"),
        ("m1", "bob", "a b"),
        ("m1", "bob", "a|b"),
        ("m1", "bob", ""),
        ("m1", "bob", "👍👍👍👍👍👍👍👍👍"),
    ]
    .iter()
    .map(|(m, a, e)| {
        let valid = confab_core::model::attachment::validate_reaction(e).is_ok();
        json!({
            "message": m, "account": a, "emoji": e,
            "emoji_utf8_bytes": e.len(),
            "key": schema::reaction_key(m, a, e),
            "valid": valid,
        })
    })
    .collect();
    json!({
        "about": "Ids (docs/SCHEMA.md, \"Ids\"). direct: the key of the direct conversation of accounts a and b in a tenant, `d-` + hex of the first 16 bytes of sha256 = SHA-256(preimage); preimage = \"confab/direct/v1\" then, for the tenant and the two accounts sorted by their bytes, the part's length as 8 bytes big-endian and its UTF-8 bytes. support: the same with \"confab/support/v1\" over tenant, client, resource (not sorted) and `s-`. shards: a message's shard map is the first byte of SHA-256(message id) mod 64, two digits. reactions: the key `<message>|<account>|<emoji>` and whether the emoji is one the acceptor takes. ids: values and whether each id type accepts them (the reason is the model's error code).",
        "direct": direct,
        "support": support,
        "shards": shards,
        "reactions": reactions,
        "ids": id_validity(),
        "buckets": bucket_vectors(),
    })
}

pub(crate) fn id_validity() -> Value {
    let check = |kind: &str, value: &str| -> Value {
        let result = match kind {
            "tenant" => TenantId::new(value).map(|_| ()),
            "account" => AccountId::new(value).map(|_| ()),
            "conversation" => ConvId::new(value).map(|_| ()),
            "message" => MessageId::new(value).map(|_| ()),
            "resource" => ResourceId::new(value).map(|_| ()),
            "lead" => LeadId::new(value).map(|_| ()),
            "contact" => ContactId::new(value).map(|_| ()),
            _ => unreachable!("{kind}"),
        };
        match result {
            Ok(()) => json!({"type": kind, "value": value, "valid": true}),
            Err(e) => json!({"type": kind, "value": value, "valid": false, "error": e.code()}),
        }
    };
    let (l64, l65) = ("x".repeat(64), "x".repeat(65));
    let mut out = Vec::new();
    for kind in [
        "tenant",
        "account",
        "conversation",
        "message",
        "resource",
        "lead",
        "contact",
    ] {
        for value in [
            "acme",
            "A-Z_a-z_0-9",
            l64.as_str(),
            l65.as_str(),
            "",
            "a.b",
            "jane.doe+x@example.com",
            "a/b",
            "a|b",
            "a b",
            "josé",
            "ｆｕｌｌ",
        ] {
            out.push(check(kind, value));
        }
    }
    Value::Array(out)
}

pub(crate) fn bucket_vectors() -> Value {
    let doc_ids = [
        "acme/msgs/lunch.20553",
        "acme/msgs/lunch.20553.1",
        "acme/msgs/lunch.-1",
        "acme/msgs/lunch.20553.0",
        "acme/msgs/lunch.020553",
        "acme/msgs/lunch.+20553",
        "acme/msgs/lunch.20553.01",
        "acme/msgs/lunch",
        "acme/conv/lunch.1",
    ];
    let parsed: Vec<Value> = doc_ids
        .iter()
        .map(|text| match DocId::parse(text) {
            Ok(id) => json!({"doc": text, "valid": true, "normal": id.to_string()}),
            Err(e) => json!({"doc": text, "valid": false, "error": e.code()}),
        })
        .collect();
    let c = Conversation {
        meta: Some(Meta {
            kind: ConvKind::Group,
            created_by: None,
            created_at: 0,
            bucket_ms: DEFAULT_BUCKET_MS,
            thread: None,
            resource: None,
            encrypted: false,
        }),
        ..Conversation::uncreated(conv("c"))
    };
    let periods: Vec<Value> = [T0, T0 + 180_000, T0 - 1, 0, -1, -DEFAULT_BUCKET_MS - 1]
        .iter()
        .map(|at| json!({"created_at": at, "bucket_ms": DEFAULT_BUCKET_MS, "period": c.period_of(*at)}))
        .collect();
    json!({"doc_ids": parsed, "periods": periods})
}
