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

pub(crate) fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors")
}

pub(crate) fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}
pub(crate) fn acc(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}
pub(crate) fn conv(s: &str) -> ConvId {
    ConvId::new(s).unwrap()
}
pub(crate) fn msg(s: &str) -> MessageId {
    MessageId::new(s).unwrap()
}
pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

mod describe;
mod ids;
mod scenario_kit;
mod scenarios;
mod schema_md;

use describe::*;
use ids::*;
use scenario_kit::*;
use scenarios::*;

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
                device: None,
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
