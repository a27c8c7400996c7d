//! Conformance vectors for implementations in other languages (`docs/vectors/`).
//!
//! The JSON files there are written by the generator below, from core itself:
//!
//! ```sh
//! cargo test -p confab-core --test vectors -- --ignored write_vectors
//! ```
//!
//! The other tests keep them honest: the committed files must be exactly what the generator
//! writes now, every genesis change and id is recomputed with core, and every scenario is
//! replayed byte by byte through `hub::Hub` (the production acceptor, in memory) with each
//! step's verdict asserted. So the JSON cannot drift from the code. `tests/node/vectors.test.mjs`
//! rebuilds the same bytes with JS Automerge from docs/SCHEMA.md alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use confab_core::automerge::legacy::{ElementId, Key, ObjectId, OpType};
use confab_core::automerge::transaction::{CommitOptions, Transactable};
use confab_core::automerge::{ActorId, Automerge, Change, ObjId, ObjType, ScalarValue, ROOT};
use confab_core::doc::{self, read::get_map, schema, write, IntentTag};
use confab_core::hub::Hub;
use confab_core::ids::*;
use confab_core::model::conversation::*;
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// 2026-04-10T00:00:00Z: the start of bucket period 20553 of a one-day bucket.
const T0: i64 = 1_775_779_200_000;
/// Server time of every submission: an hour after `T0`.
const SERVER_NOW: i64 = T0 + 3_600_000;

fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors")
}

fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}
fn acc(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}
fn conv(s: &str) -> ConvId {
    ConvId::new(s).unwrap()
}
fn msg(s: &str) -> MessageId {
    MessageId::new(s).unwrap()
}
fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

// ---------------------------------------------------------------------------------------
// Describing changes: every op with the path of the map it writes into
// ---------------------------------------------------------------------------------------

/// The maps of one document by op id (`counter@actor`), as paths from the root.
type Objects = HashMap<String, String>;

fn genesis_objects(id: &DocId) -> Objects {
    let actor = doc::genesis_actor(id);
    doc::genesis_objects(id.kind())
        .iter()
        .enumerate()
        .map(|(i, path)| (format!("{}@{actor}", i + 2), path.join("/")))
        .collect()
}

fn scalar(v: &ScalarValue) -> (&'static str, Value) {
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
fn describe_ops(change: &Change, objects: &mut Objects) -> Value {
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
fn describe_change(change: &Change) -> serde_json::Map<String, Value> {
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

// ---------------------------------------------------------------------------------------
// genesis.json
// ---------------------------------------------------------------------------------------

fn genesis_vectors() -> Value {
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
fn id_preimage(domain: &str, parts: &[&str]) -> Vec<u8> {
    let mut out = domain.as_bytes().to_vec();
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn id_vectors() -> Value {
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

fn id_validity() -> Value {
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

fn bucket_vectors() -> Value {
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
        }),
        ..Conversation::uncreated(conv("c"))
    };
    let periods: Vec<Value> = [T0, T0 + 180_000, T0 - 1, 0, -1, -DEFAULT_BUCKET_MS - 1]
        .iter()
        .map(|at| json!({"created_at": at, "bucket_ms": DEFAULT_BUCKET_MS, "period": c.period_of(*at)}))
        .collect();
    json!({"doc_ids": parsed, "periods": periods})
}

// ---------------------------------------------------------------------------------------
// scenarios.json
// ---------------------------------------------------------------------------------------

/// One device: a fixed actor writing for one account.
struct Dev {
    account: AccountId,
    service: bool,
    actor: ActorId,
}

impl Dev {
    /// The actor is the account's first 15 bytes, zero-padded, then the device number:
    /// readable in hex (any 16 bytes would do).
    fn new(account: &str, device: u8) -> Dev {
        let mut bytes = [0u8; 16];
        for (slot, b) in bytes.iter_mut().zip(account.bytes().take(15)) {
            *slot = b;
        }
        bytes[15] = device;
        Dev {
            account: acc(account),
            service: false,
            actor: ActorId::from(&bytes[..]),
        }
    }

    fn service(account: &str) -> Dev {
        Dev {
            service: true,
            ..Dev::new(account, 1)
        }
    }

    fn author(&self) -> Author {
        Author {
            account: self.account.clone(),
            service: self.service,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Accepted(u64),
    Rejected(&'static str),
}

struct Scenario {
    name: &'static str,
    about: &'static str,
    hub: Hub,
    objects: HashMap<DocId, Objects>,
    steps: Vec<Value>,
}

impl Scenario {
    fn new(name: &'static str, about: &'static str) -> Self {
        Scenario {
            name,
            about,
            hub: Hub::new(),
            objects: HashMap::new(),
            steps: Vec::new(),
        }
    }

    /// `dev`'s replica of `id`: the genesis and every change the hub accepted, so a write
    /// on it names the current values in its `pred`.
    fn replica(&self, dev: &Dev, id: &DocId) -> Automerge {
        let mut replica = doc::genesis(id).unwrap().with_actor(dev.actor.clone());
        let accepted: Vec<Change> = self
            .hub
            .changes_after(id, 0)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        replica.apply_changes(accepted).unwrap();
        replica
    }

    /// One intent by `dev` on its replica of `id`, as the client engine writes it.
    fn write(
        &self,
        dev: &Dev,
        id: &DocId,
        f: impl FnOnce(
            &mut Automerge,
        ) -> Result<Option<confab_core::automerge::ChangeHash>, doc::DocError>,
    ) -> Change {
        let mut replica = self.replica(dev, id);
        f(&mut replica).unwrap();
        replica.get_last_local_change().unwrap()
    }

    /// A change of hand-written ops (what a careless writer might send).
    fn raw(
        &self,
        dev: &Dev,
        id: &DocId,
        message: &str,
        at: i64,
        f: impl FnOnce(&mut confab_core::automerge::transaction::Transaction<'_>),
    ) -> Change {
        let mut replica = self.replica(dev, id);
        let mut tx = replica.transaction();
        f(&mut tx);
        tx.commit_with(
            CommitOptions::default()
                .with_message(message.to_owned())
                .with_time(at.div_euclid(1000)),
        );
        replica.get_last_local_change().unwrap()
    }

    fn submit(&mut self, note: &str, dev: &Dev, id: &DocId, change: Change, expect: Expect) {
        let got = match self
            .hub
            .submit(id, &dev.author(), change.clone(), SERVER_NOW)
        {
            Ok((ack, _)) => Expect::Accepted(ack.seq),
            Err(r) => Expect::Rejected(r.code.as_str()),
        };
        assert_eq!(got, expect, "scenario {}: {note}", self.name);
        let objects = self
            .objects
            .entry(id.clone())
            .or_insert_with(|| genesis_objects(id));
        let ops = match expect {
            Expect::Accepted(_) => describe_ops(&change, objects),
            Expect::Rejected(_) => describe_ops(&change, &mut objects.clone()),
        };
        let mut step = describe_change(&change);
        step.insert("note".into(), json!(note));
        step.insert("doc".into(), json!(id.to_string()));
        step.insert("account".into(), json!(dev.account.as_str()));
        step.insert("service".into(), json!(dev.service));
        step.insert("now_ms".into(), json!(SERVER_NOW));
        step.insert("ops".into(), ops);
        step.insert(
            "expect".into(),
            match expect {
                Expect::Accepted(seq) => json!({"accepted": {"seq": seq}}),
                Expect::Rejected(code) => json!({"rejected": code}),
            },
        );
        self.steps.push(Value::Object(step));
    }

    fn finish(self) -> Value {
        json!({"name": self.name, "about": self.about, "steps": self.steps})
    }
}

fn acme() -> TenantId {
    tenant("acme")
}
fn lunch() -> DocId {
    DocId::conv(&acme(), &conv("lunch"))
}
/// The bucket of messages created on 2026-04-10 (UTC).
fn lunch_bucket() -> DocId {
    DocId::msgs(&acme(), &conv("lunch"), T0.div_euclid(DEFAULT_BUCKET_MS))
}

/// The group of every scenario that needs one: alice creates `acme/conv/lunch` alone (the
/// client engine's creation), then adds bob as a member.
fn lunch_group(s: &mut Scenario, alice: &Dev, bob: &Dev) {
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: alice.account.clone(),
        created_at: T0 + 60_000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info {
            title: Some("Lunch".into()),
            ..Info::default()
        },
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(alice.account.clone(), Role::Owner)],
    };
    let change = s.write(alice, &lunch(), |d| {
        write::create_conversation(d, &IntentTag::new("i1", "create_conversation"), &spec)
    });
    s.submit(
        "alice creates the group lunch, titled Lunch, with herself as owner",
        alice,
        &lunch(),
        change,
        Expect::Accepted(1),
    );
    let change = add(
        s,
        alice,
        bob.account.as_str(),
        Role::Member,
        "i2",
        T0 + 120_000,
    );
    s.submit(
        "alice adds bob as a member",
        alice,
        &lunch(),
        change,
        Expect::Accepted(2),
    );
}

/// `by` adds `who` at `role` to lunch, as the client engine's `AddMember` writes it.
fn add(s: &Scenario, by: &Dev, who: &str, role: Role, intent: &str, at: i64) -> Change {
    let mut m = Member::new(acc(who), role);
    m.invited_by = Some(by.account.clone());
    m.joined_at = Some(at);
    s.write(by, &lunch(), |d| {
        write::add_member(d, &IntentTag::new(intent, "add_member"), at, &m)
    })
}

fn text(
    s: &Scenario,
    dev: &Dev,
    bucket: &DocId,
    id: &str,
    body: &str,
    intent: &str,
    at: i64,
) -> Change {
    let m = NewMessage::text(msg(id), dev.account.clone(), body, at);
    s.write(dev, bucket, |d| {
        write::post_message(d, &IntentTag::new(intent, "send"), &m)
    })
}

/// A text message of hand-written fields in shard `shard` (its own when `None`).
fn raw_message(
    s: &Scenario,
    dev: &Dev,
    id: &str,
    shard: Option<String>,
    intent: &str,
    at: i64,
    fields: Vec<(&'static str, Field)>,
) -> Change {
    let shard = shard.unwrap_or_else(|| schema::message_shard(id));
    s.raw(
        dev,
        &lunch_bucket(),
        &IntentTag::new(intent, "send").encode(),
        at,
        |tx| {
            let messages = get_map(&*tx, &ROOT, schema::keys::MESSAGES).unwrap();
            let shard_obj = get_map(&*tx, &messages, &shard).unwrap();
            let obj = tx.put_object(&shard_obj, id, ObjType::Map).unwrap();
            for (key, value) in fields {
                match value {
                    Field::Scalar(v) => {
                        tx.put(&obj, key, v).unwrap();
                    }
                    Field::Text(t) => {
                        let text: ObjId = tx.put_object(&obj, key, ObjType::Text).unwrap();
                        tx.splice_text(&text, 0, 0, &t).unwrap();
                    }
                }
            }
        },
    )
}

enum Field {
    Scalar(ScalarValue),
    Text(String),
}

fn fields(author: &str, body: &str, at: i64) -> Vec<(&'static str, Field)> {
    use schema::keys::*;
    vec![
        (AUTHOR, Field::Scalar(author.into())),
        (KIND, Field::Scalar("text".into())),
        (BODY, Field::Scalar(body.into())),
        (CREATED_AT, Field::Scalar(ScalarValue::Int(at))),
    ]
}

fn scenario_group() -> Value {
    let mut s = Scenario::new(
        "group",
        "A group from creation to a thread: creation by alice alone, alice adds bob, bob's message, alice's reaction, bob (a member) adds carol as a member, bob opens a thread under his message.",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    lunch_group(&mut s, &alice, &bob);
    let change = text(
        &s,
        &bob,
        &lunch_bucket(),
        "m1",
        "Pizza at 12?",
        "i3",
        T0 + 180_000,
    );
    s.submit(
        "bob posts m1 in the bucket of its day (period 20553, part 0)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Accepted(1),
    );
    let change = s.write(&alice, &lunch_bucket(), |d| {
        write::react(
            d,
            &IntentTag::new("i4", "react"),
            T0 + 240_000,
            &msg("m1"),
            &alice.account,
            "👍",
            true,
        )
    });
    s.submit(
        "alice reacts 👍 to m1: the key m1|alice|👍 holds the time (int)",
        &alice,
        &lunch_bucket(),
        change,
        Expect::Accepted(2),
    );
    let change = add(&s, &bob, "carol", Role::Member, "i5", T0 + 300_000);
    s.submit(
        "bob (a member) adds carol as a member: members add at their own rank up to member",
        &bob,
        &lunch(),
        change,
        Expect::Accepted(3),
    );
    let thread = DocId::conv(&acme(), &conv("lunch-t1"));
    let spec = write::CreateConv {
        kind: ConvKind::Thread,
        created_by: bob.account.clone(),
        created_at: T0 + 360_000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: Some(ThreadLink {
            parent: conv("lunch"),
            message: msg("m1"),
            depth: 1,
        }),
        info: Info {
            title: Some("Pizza order".into()),
            ..Info::default()
        },
        settings: Settings::defaults_for(ConvKind::Thread),
        members: vec![Member::new(bob.account.clone(), Role::Owner)],
    };
    let change = s.write(&bob, &thread, |d| {
        write::create_conversation(d, &IntentTag::new("i6", "create_conversation"), &spec)
    });
    s.submit(
        "bob creates the thread lunch-t1 under m1 (parent lunch, depth 1)",
        &bob,
        &thread,
        change,
        Expect::Accepted(1),
    );
    s.finish()
}

fn scenario_not_member() -> Value {
    let mut s = Scenario::new(
        "not_member",
        "carol, who is not a member of lunch, posts a message in its bucket.",
    );
    let (alice, bob, carol) = (
        Dev::new("alice", 1),
        Dev::new("bob", 1),
        Dev::new("carol", 1),
    );
    lunch_group(&mut s, &alice, &bob);
    let change = text(
        &s,
        &carol,
        &lunch_bucket(),
        "c1",
        "hello?",
        "i1",
        T0 + 180_000,
    );
    s.submit(
        "carol is no member of lunch",
        &carol,
        &lunch_bucket(),
        change,
        Expect::Rejected("not_member"),
    );
    s.finish()
}

fn scenario_role_too_high() -> Value {
    let mut s = Scenario::new(
        "role_too_high",
        "bob, a member, tries to add carol as owner and as moderator (docs/POLICY.md, \"Members\").",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    lunch_group(&mut s, &alice, &bob);
    let change = add(&s, &bob, "carol", Role::Owner, "i1", T0 + 180_000);
    s.submit(
        "nobody adds an owner",
        &bob,
        &lunch(),
        change,
        Expect::Rejected("role_too_high"),
    );
    let change = add(&s, &bob, "carol", Role::Moderator, "i2", T0 + 181_000);
    s.submit(
        "a member adds nobody above member",
        &bob,
        &lunch(),
        change,
        Expect::Rejected("role_too_high"),
    );
    s.finish()
}

fn scenario_messages() -> Value {
    let mut s = Scenario::new(
        "message_values",
        "What the acceptor checks in a message: its shard, its body's length in characters, its types.",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    lunch_group(&mut s, &alice, &bob);
    let at = T0 + 180_000;
    let own = schema::message_shard("m2");
    let wrong = format!("{:02}", (own.parse::<u8>().unwrap() + 1) % 64);
    let change = raw_message(
        &s,
        &bob,
        "m2",
        Some(wrong),
        "i1",
        at,
        fields("bob", "hi", at),
    );
    s.submit(
        "m2 written into a shard that is not SHA-256(\"m2\")[0] mod 64",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("invalid_value"),
    );
    let long = "a".repeat(4001);
    let change = raw_message(&s, &bob, "m3", None, "i2", at, fields("bob", &long, at));
    s.submit(
        "a body of 4001 characters",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("too_long"),
    );
    let mut fits = "a".repeat(3999);
    fits.push('😀');
    let change = raw_message(&s, &bob, "m4", None, "i3", at, fields("bob", &fits, at));
    s.submit(
        "a body of 4000 characters (3999 × a and one 😀: 4001 UTF-16 units, 4003 bytes)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Accepted(1),
    );
    let mut as_text = fields("bob", "", at);
    as_text[2].1 = Field::Text("hi".into());
    let change = raw_message(&s, &bob, "m5", None, "i4", at, as_text);
    s.submit(
        "a body written as Automerge Text (JS Automerge's default for strings)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("unsupported_op"),
    );
    let mut as_uint = fields("bob", "hi", at);
    as_uint[3].1 = Field::Scalar(ScalarValue::Uint(u64::try_from(at).unwrap()));
    let change = raw_message(&s, &bob, "m6", None, "i5", at, as_uint);
    s.submit(
        "created_at written as uint (every integer of the schema is int)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("wrong_type"),
    );
    let mut as_float = fields("bob", "hi", at);
    as_float[3].1 = Field::Scalar(ScalarValue::F64(at as f64 + 0.5));
    let change = raw_message(&s, &bob, "m7", None, "i6", at, as_float);
    s.submit(
        "created_at written as a float",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("wrong_type"),
    );
    let mut as_counter = fields("bob", "hi", at);
    as_counter[3].1 = Field::Scalar(ScalarValue::counter(at));
    let change = raw_message(&s, &bob, "m9", None, "i8", at, as_counter);
    s.submit(
        "created_at written as an Automerge counter",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("wrong_type"),
    );
    let change = raw_message(&s, &bob, "m8", None, "i7", at, fields("alice", "hi", at));
    s.submit(
        "bob posts a message whose author is alice",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("author_mismatch"),
    );
    s.finish()
}

fn scenario_conflict() -> Value {
    let mut s = Scenario::new(
        "conflicting_write",
        "Two devices of alice set the title from the same state: the second write's pred names a value that is no longer the current one.",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    let alice2 = Dev::new("alice", 2);
    lunch_group(&mut s, &alice, &bob);
    let stale = s.replica(&alice2, &lunch());
    let change = s.write(&alice, &lunch(), |d| {
        write::set_info(
            d,
            &IntentTag::new("i1", "set_info"),
            T0 + 180_000,
            schema::keys::TITLE,
            Some("Pizza"),
        )
    });
    s.submit(
        "alice's phone renames Lunch to Pizza",
        &alice,
        &lunch(),
        change,
        Expect::Accepted(3),
    );
    let mut stale = stale;
    write::set_info(
        &mut stale,
        &IntentTag::new("i1", "set_info"),
        T0 + 181_000,
        schema::keys::TITLE,
        Some("Sushi"),
    )
    .unwrap();
    let change = stale.get_last_local_change().unwrap();
    s.submit(
        "alice's laptop, which has not seen Pizza, renames Lunch to Sushi",
        &alice2,
        &lunch(),
        change,
        Expect::Rejected("conflicting_write"),
    );
    s.finish()
}

fn scenario_direct() -> Value {
    let mut s = Scenario::new(
        "direct",
        "The direct conversation of alice and bob: its deterministic creation change, submitted by either, then a message.",
    );
    let (alice, bob, carol) = (
        Dev::new("alice", 1),
        Dev::new("bob", 1),
        Dev::new("carol", 1),
    );
    let (id, creation) =
        write::direct_creation_change(&acme(), &bob.account, &alice.account).unwrap();
    s.submit(
        "alice submits the creation change of her direct conversation with bob",
        &alice,
        &id,
        creation.clone(),
        Expect::Accepted(1),
    );
    s.submit(
        "bob's device built the same bytes offline: acked with the same seq",
        &bob,
        &id,
        creation.clone(),
        Expect::Accepted(1),
    );
    s.submit(
        "carol resubmits it: an ack would tell her the conversation exists",
        &carol,
        &id,
        creation,
        Expect::Rejected("not_member"),
    );
    let d = direct_conv_id(&acme(), &alice.account, &bob.account);
    let bucket = DocId::msgs(&acme(), &d, T0.div_euclid(DEFAULT_BUCKET_MS));
    let change = text(&s, &bob, &bucket, "dm1", "hi alice", "i1", T0 + 180_000);
    s.submit(
        "bob writes to alice",
        &bob,
        &bucket,
        change,
        Expect::Accepted(1),
    );
    // The creation actor with other content: only the exact expected change may use it.
    let other = DocId::conv(
        &acme(),
        &direct_conv_id(&acme(), &alice.account, &carol.account),
    );
    let mut forged = doc::genesis(&other)
        .unwrap()
        .with_actor(doc::creation_actor(&other));
    let mut tx = forged.transaction();
    let meta = get_map(&tx, &ROOT, schema::keys::META).unwrap();
    tx.put(&meta, schema::keys::KIND, "direct").unwrap();
    tx.put(&meta, schema::keys::CREATED_AT, 1_i64).unwrap();
    tx.commit_with(CommitOptions::default().with_time(0).with_message("create"));
    let change = forged.get_last_local_change().unwrap();
    s.submit(
        "a change of the creation actor that is not the expected creation change",
        &alice,
        &other,
        change,
        Expect::Rejected("forged_actor"),
    );
    let reserved = DocId::conv(&acme(), &conv("d-mine"));
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: alice.account.clone(),
        created_at: T0 + 200_000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(alice.account.clone(), Role::Owner)],
    };
    let change = s.write(&alice, &reserved, |d| {
        write::create_conversation(d, &IntentTag::new("i2", "create_conversation"), &spec)
    });
    s.submit(
        "a group whose id starts with d- (reserved for direct conversations)",
        &alice,
        &reserved,
        change,
        Expect::Rejected("invalid_creation"),
    );
    s.finish()
}

fn scenario_support() -> Value {
    let mut s = Scenario::new(
        "support",
        "The support thread of client carol about resource flat-7 owned by olga: its deterministic creation change, then messages with and without sender stamps.",
    );
    let (carol, olga) = (Dev::new("carol", 1), Dev::new("olga", 1));
    let link = ResourceLink {
        resource: ResourceId::new("flat-7").unwrap(),
        client: carol.account.clone(),
        owner: olga.account.clone(),
    };
    let (id, creation) = write::support_creation_change(&acme(), &link).unwrap();
    s.submit(
        "carol opens the thread",
        &carol,
        &id,
        creation,
        Expect::Accepted(1),
    );
    let sconv = support_conv_id(&acme(), &carol.account, &link.resource);
    let bucket = DocId::msgs(&acme(), &sconv, T0.div_euclid(DEFAULT_BUCKET_MS));
    let change = text(
        &s,
        &carol,
        &bucket,
        "q1",
        "Is it free in May?",
        "i1",
        T0 + 180_000,
    );
    s.submit(
        "carol asks, without stamps",
        &carol,
        &bucket,
        change,
        Expect::Accepted(1),
    );
    let stamped = |s: &Scenario, dev: &Dev, id: &str, role: &str, intent: &str| {
        let mut m = NewMessage::text(msg(id), dev.account.clone(), "Yes", T0 + 240_000);
        m.stamp.sender_role = Some(confab_core::model::support::SenderRole::parse(role).unwrap());
        s.write(dev, &bucket, |d| {
            write::post_message(d, &IntentTag::new(intent, "send"), &m)
        })
    };
    let change = stamped(&s, &olga, "a1", "owner", "i1");
    s.submit(
        "olga answers, stamped sender_role owner",
        &olga,
        &bucket,
        change,
        Expect::Accepted(2),
    );
    let change = stamped(&s, &carol, "q2", "owner", "i2");
    s.submit(
        "carol stamps herself owner",
        &carol,
        &bucket,
        change,
        Expect::Rejected("sender_mismatch"),
    );
    s.finish()
}

fn scenario_kinds() -> Value {
    let mut s = Scenario::new(
        "kinds",
        "Creation changes of a channel and of system conversations.",
    );
    let (alice, bot) = (Dev::new("alice", 1), Dev::service("bot"));
    let create = |s: &Scenario, dev: &Dev, key: &str, kind: ConvKind, intent: &str| {
        let spec = write::CreateConv {
            kind,
            created_by: dev.account.clone(),
            created_at: T0 + 60_000,
            bucket_ms: DEFAULT_BUCKET_MS,
            thread: None,
            info: Info {
                title: Some(format!("{key} title")),
                ..Info::default()
            },
            settings: Settings::defaults_for(kind),
            members: vec![Member::new(dev.account.clone(), Role::Owner)],
        };
        let id = DocId::conv(&acme(), &conv(key));
        let change = s.write(dev, &id, |d| {
            write::create_conversation(d, &IntentTag::new(intent, "create_conversation"), &spec)
        });
        (id, change)
    };
    let (id, change) = create(&s, &alice, "news", ConvKind::Channel, "i1");
    s.submit(
        "alice creates the channel news (send_policy admins_only)",
        &alice,
        &id,
        change,
        Expect::Accepted(1),
    );
    let (id, change) = create(&s, &bot, "notices", ConvKind::System, "i1");
    s.submit(
        "the service account bot creates the system conversation notices",
        &bot,
        &id,
        change,
        Expect::Accepted(1),
    );
    let named = DocId::conv(&acme(), &conv("named"));
    let change = s.raw(
        &alice,
        &named,
        "intent/i3/create_conversation",
        T0 + 60_000,
        |tx| {
            let meta = get_map(&*tx, &ROOT, schema::keys::META).unwrap();
            tx.put(&meta, schema::keys::KIND, "group").unwrap();
            tx.put(&meta, schema::keys::CREATED_BY, "alice").unwrap();
            tx.put(&meta, schema::keys::CREATED_AT, T0 + 60_000)
                .unwrap();
            let info = get_map(&*tx, &ROOT, schema::keys::INFO).unwrap();
            tx.put(&info, schema::keys::CLIENT_NAME, "Carol").unwrap();
            let members = get_map(&*tx, &ROOT, schema::keys::MEMBERS).unwrap();
            let me = tx.put_object(&members, "alice", ObjType::Map).unwrap();
            tx.put(&me, schema::keys::ROLE, "owner").unwrap();
            tx.put(&me, schema::keys::STATUS, "active").unwrap();
        },
    );
    s.submit(
        "a group created with info/client_name (support threads only)",
        &alice,
        &named,
        change,
        Expect::Rejected("support_only"),
    );
    let (id, change) = create(&s, &alice, "alerts", ConvKind::System, "i2");
    s.submit(
        "alice (a user) creates a system conversation",
        &alice,
        &id,
        change,
        Expect::Rejected("service_only"),
    );
    s.finish()
}

fn scenario_vectors() -> Value {
    json!({
        "about": "Changes and the verdict the acceptor gives each (docs/vectors/README.md). Replay each scenario on an empty server, step by step in order: submit `change` (hex) to `doc` as `account` (a service account when `service`) at server time `now_ms`; expect an ack with `seq` or a reject with the code. `ops` lists what each change holds (obj: the path of the map written into, \"\" = root).",
        "scenarios": [
            scenario_group(),
            scenario_not_member(),
            scenario_role_too_high(),
            scenario_messages(),
            scenario_conflict(),
            scenario_direct(),
            scenario_support(),
            scenario_kinds(),
        ],
    })
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

fn generated() -> Vec<(&'static str, Value)> {
    vec![
        ("genesis.json", genesis_vectors()),
        ("ids.json", id_vectors()),
        ("scenarios.json", scenario_vectors()),
    ]
}

/// Keys sorted whatever serde_json's map keeps, so the files are the same on every build.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, sorted(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in ordered {
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn committed(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write the vectors: see this file's header)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

#[test]
#[ignore = "writes docs/vectors/*.json; run it after changing what they describe"]
fn write_vectors() {
    std::fs::create_dir_all(vectors_dir()).unwrap();
    for (name, value) in generated() {
        let text = serde_json::to_string_pretty(&sorted(&value)).unwrap() + "\n";
        std::fs::write(vectors_dir().join(name), text).unwrap();
    }
}

#[test]
fn committed_vectors_are_what_core_generates() {
    for (name, value) in generated() {
        assert!(
            committed(name) == value,
            "docs/vectors/{name} is not what core generates: rewrite it (see this file's header) and review the diff"
        );
    }
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn genesis_vectors_are_core_genesis_changes() {
    let file = committed("genesis.json");
    let entries = file["genesis"].as_array().unwrap();
    assert!(entries.len() >= 8);
    for kind in ["conv", "msgs", "profile", "private"] {
        assert!(
            entries.iter().any(|e| e["kind"] == kind),
            "no {kind} vector"
        );
    }
    for e in entries {
        let id = DocId::parse(e["doc"].as_str().unwrap()).unwrap();
        let change = doc::genesis_change(&id).unwrap();
        assert_eq!(hex_of(&e["change"]), change.raw_bytes(), "{id}");
        assert_eq!(e["hash"], change.hash().to_string(), "{id}");
        // The derivation spelled out in the file is the one core uses.
        let preimage = hex_of(&e["actor_preimage"]);
        assert_eq!(
            preimage,
            [b"confab/genesis/v1\0".as_slice(), id.to_string().as_bytes()].concat()
        );
        assert_eq!(&sha256(&preimage)[..16], doc::genesis_actor(&id).to_bytes());
        assert_eq!(e["actor"], doc::genesis_actor(&id).to_string());
        // The bytes decode to the change they claim, hash included.
        let parsed = Change::try_from(&hex_of(&e["change"])[..]).unwrap();
        assert_eq!(parsed.hash().to_string(), e["hash"]);
    }
}

#[test]
fn id_vectors_are_core_ids() {
    let file = committed("ids.json");
    for e in file["direct"].as_array().unwrap() {
        let s = |k: &str| e[k].as_str().unwrap().to_owned();
        let id = direct_conv_id(&tenant(&s("tenant")), &acc(&s("a")), &acc(&s("b")));
        assert_eq!(id.as_str(), s("id"));
        let digest = sha256(&hex_of(&e["preimage"]));
        assert_eq!(hex::encode(&digest), s("sha256"));
        assert_eq!(format!("d-{}", hex::encode(&digest[..16])), s("id"));
    }
    let mut symmetric = file["direct"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tenant"] == "acme" && (e["a"] == "alice" || e["a"] == "bob"))
        .map(|e| e["id"].clone());
    assert_eq!(
        symmetric.next(),
        symmetric.next(),
        "a pair's id does not depend on its order"
    );
    for e in file["support"].as_array().unwrap() {
        let s = |k: &str| e[k].as_str().unwrap().to_owned();
        let id = support_conv_id(
            &tenant(&s("tenant")),
            &acc(&s("client")),
            &ResourceId::new(s("resource")).unwrap(),
        );
        assert_eq!(id.as_str(), s("id"));
        let digest = sha256(&hex_of(&e["preimage"]));
        assert_eq!(format!("s-{}", hex::encode(&digest[..16])), s("id"));
    }
    for e in file["shards"].as_array().unwrap() {
        let m = e["message"].as_str().unwrap();
        assert_eq!(e["shard"], schema::message_shard(m));
    }
    for e in file["reactions"].as_array().unwrap() {
        let (m, a, emoji) = (
            e["message"].as_str().unwrap(),
            e["account"].as_str().unwrap(),
            e["emoji"].as_str().unwrap(),
        );
        assert_eq!(e["key"], schema::reaction_key(m, a, emoji));
        let valid = confab_core::model::attachment::validate_reaction(emoji).is_ok();
        assert_eq!(e["valid"], valid, "{emoji:?}");
    }
}

#[test]
fn scenarios_replay_through_the_acceptor() {
    let file = committed("scenarios.json");
    let scenarios = file["scenarios"].as_array().unwrap();
    let mut codes = Vec::new();
    for scenario in scenarios {
        let name = scenario["name"].as_str().unwrap();
        let mut hub = Hub::new();
        for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
            let bytes = hex_of(&step["change"]);
            let change = Change::try_from(&bytes[..]).unwrap();
            assert_eq!(change.hash().to_string(), step["hash"], "{name} step {i}");
            assert_eq!(
                change.actor_id().to_string(),
                step["actor"],
                "{name} step {i}"
            );
            let id = DocId::parse(step["doc"].as_str().unwrap()).unwrap();
            let author = Author {
                account: acc(step["account"].as_str().unwrap()),
                service: step["service"].as_bool().unwrap(),
            };
            let verdict = match hub.submit(&id, &author, change, step["now_ms"].as_i64().unwrap()) {
                Ok((ack, _)) => json!({"accepted": {"seq": ack.seq}}),
                Err(r) => {
                    codes.push(r.code.as_str().to_owned());
                    json!({"rejected": r.code.as_str()})
                }
            };
            assert_eq!(verdict, step["expect"], "{name} step {i}: {}", step["note"]);
        }
    }
    for code in [
        "not_member",
        "role_too_high",
        "invalid_value",
        "conflicting_write",
        "too_long",
        "unsupported_op",
        "wrong_type",
        "forged_actor",
    ] {
        assert!(
            codes.iter().any(|c| c == code),
            "no scenario ends in {code}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The worked examples of docs/SCHEMA.md are these vectors
// ---------------------------------------------------------------------------------------

/// A derived id, byte by byte, as docs/SCHEMA.md ("Direct and support ids") shows it.
fn worked_id(prefix: &str, domain: &str, parts: &[(&str, &str)]) -> String {
    let mut lines = vec![format!("{:<36}\"{domain}\"", hex::encode(domain))];
    for (what, part) in parts {
        let len = (part.len() as u64).to_be_bytes();
        lines.push(format!(
            "{:<36}{what}: length {}, \"{part}\"",
            format!("{} {}", hex::encode(len), hex::encode(part)),
            part.len()
        ));
    }
    let raw: Vec<&str> = parts.iter().map(|(_, p)| *p).collect();
    let digest = sha256(&id_preimage(domain, &raw));
    lines.push(format!("SHA-256 = {}", hex::encode(&digest)));
    lines.push(format!("id      = {prefix}{}", hex::encode(&digest[..16])));
    lines.join("\n")
}

fn worked_genesis(id: &DocId) -> String {
    let change = doc::genesis_change(id).unwrap();
    let actor = doc::genesis_actor(id);
    let mut lines = vec![
        format!("document  {id}"),
        format!("actor     {actor}    first 16 bytes of SHA-256(\"confab/genesis/v1\\0{id}\")"),
        "op 1      put schema = 1 (uint) at the root".to_owned(),
    ];
    for (i, path) in doc::genesis_objects(id.kind()).iter().enumerate() {
        lines.push(format!("op {:<7}make_map {}", i + 2, path.join("/")));
    }
    lines.push(format!("hash      {}", change.hash()));
    lines.push(format!(
        "bytes     {} bytes: docs/vectors/genesis.json",
        change.raw_bytes().len()
    ));
    lines.join("\n")
}

/// A change of the vectors, op by op, as docs/SCHEMA.md lists it.
fn worked_change(scenario: &str, step: usize) -> String {
    let file = scenario_vectors();
    let step = file["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == scenario)
        .map(|s| s["steps"][step].clone())
        .unwrap();
    let deps: Vec<&str> = step["deps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let mut lines = vec![
        format!("document  {}", step["doc"].as_str().unwrap()),
        format!("actor     {}", step["actor"].as_str().unwrap()),
        format!(
            "seq {}, start op {}, time {}, message {}",
            step["seq"], step["start_op"], step["time"], step["message"]
        ),
        format!("deps      {}", deps.join(" ")),
    ];
    for op in step["ops"].as_array().unwrap() {
        let counter = op["id"].as_str().unwrap().split('@').next().unwrap();
        let what = match op["action"].as_str().unwrap() {
            "put" => format!("= {} ({})", op["value"], op["type"].as_str().unwrap()),
            other => other.to_owned(),
        };
        lines.push(format!(
            "{counter:>4}  {:<16}{:<24}{what}",
            op["obj"].as_str().unwrap(),
            op["key"].as_str().unwrap()
        ));
    }
    lines.push(format!("hash      {}", step["hash"].as_str().unwrap()));
    lines.join("\n")
}

fn schema_md_examples() -> Vec<String> {
    let lunch = DocId::conv(&acme(), &conv("lunch"));
    vec![
        worked_change("group", 0),
        worked_change("group", 2),
        worked_change("direct", 0),
        worked_id(
            "d-",
            "confab/direct/v1",
            &[
                ("tenant", "acme"),
                ("lower account", "alice"),
                ("higher account", "bob"),
            ],
        ),
        worked_id(
            "s-",
            "confab/support/v1",
            &[
                ("tenant", "acme"),
                ("client", "carol"),
                ("resource", "flat-7"),
            ],
        ),
        worked_genesis(&lunch),
        format!(
            "SHA-256(\"m1\") = {}\nfirst byte 0x{:02x} = {}, mod 64 = {} → messages/{}/m1",
            hex::encode(sha256(b"m1")),
            sha256(b"m1")[0],
            sha256(b"m1")[0],
            sha256(b"m1")[0] % 64,
            schema::message_shard("m1")
        ),
    ]
}

#[test]
fn schema_md_shows_the_vectors() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/SCHEMA.md"),
    )
    .unwrap();
    for example in schema_md_examples() {
        assert!(
            text.contains(&example),
            "docs/SCHEMA.md lacks this worked example (from core):\n{example}"
        );
    }
}

#[test]
#[ignore = "prints the worked examples docs/SCHEMA.md must show"]
fn print_schema_md_examples() {
    for example in schema_md_examples() {
        println!("```text\n{example}\n```\n");
    }
}
