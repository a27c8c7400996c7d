//! The typed model mapped onto Automerge documents (layout: docs/SCHEMA.md).
//!
//! Every document starts with a deterministic genesis change built from its id alone, so two
//! devices that create the same document offline share its top-level maps. The layout of each
//! kind is in `schema`; `read` turns documents into typed views; `write` turns one user intent
//! into one tagged Automerge transaction.

pub mod cut;
pub mod erase;
pub mod lapse;
pub mod read;
pub mod schedule;
pub mod schema;
pub mod write;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ObjType, ReadDoc, ROOT};
use sha2::{Digest, Sha256};

use crate::ids::{DocId, DocKind};
use schema::{keys, SCHEMA_VERSION};

/// Errors of the document layer.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
    #[error("invalid value: {0}")]
    Model(#[from] crate::error::ModelError),
    #[error("the document has no {0}")]
    Missing(&'static str),
    #[error("intent not applicable: {0}")]
    NotApplicable(String),
    #[error(transparent)]
    Schedule(#[from] crate::model::schedule::ScheduleError),
}

fn derived_actor(domain: &str, doc: &DocId) -> ActorId {
    let digest = Sha256::new()
        .chain_update(domain.as_bytes())
        .chain_update(doc.to_string().as_bytes())
        .finalize();
    ActorId::from(&digest[..16])
}

/// The fixed actor of a document's genesis change. No account may write with it.
pub fn genesis_actor(doc: &DocId) -> ActorId {
    derived_actor("confab/genesis/v1\0", doc)
}

/// The fixed actor of the deterministic creation change of direct conversations and support
/// threads. Only the exact expected change may carry it.
pub fn creation_actor(doc: &DocId) -> ActorId {
    derived_actor("confab/create/v1\0", doc)
}

/// Top-level maps that the genesis of each kind creates, in creation order.
pub fn genesis_maps(kind: DocKind) -> &'static [&'static str] {
    match kind {
        DocKind::Conv => &[
            keys::META,
            keys::INFO,
            keys::SETTINGS,
            keys::MEMBERS,
            keys::PINS,
            keys::READS,
            keys::LIFECYCLE,
        ],
        DocKind::Msgs => &[keys::MESSAGES, keys::REACTIONS],
        DocKind::Profile => &[],
        DocKind::Private => &[keys::CONTACTS, keys::CONVS, keys::DRAFTS, keys::SCHEDULED],
    }
}

/// Every map the genesis of `kind` creates, as paths, in creation order: the top-level maps,
/// and in message buckets the shard maps right after `messages`.
pub fn genesis_objects(kind: DocKind) -> &'static [Vec<String>] {
    static TABLES: std::sync::OnceLock<[Vec<Vec<String>>; 4]> = std::sync::OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        [
            DocKind::Conv,
            DocKind::Msgs,
            DocKind::Profile,
            DocKind::Private,
        ]
        .map(|kind| {
            let mut out = Vec::new();
            for key in genesis_maps(kind) {
                out.push(vec![(*key).to_owned()]);
                if *key == keys::MESSAGES {
                    for shard in 0..schema::MESSAGE_SHARDS {
                        out.push(vec![(*key).to_owned(), format!("{shard:02}")]);
                    }
                }
            }
            out
        })
    });
    let index = match kind {
        DocKind::Conv => 0,
        DocKind::Msgs => 1,
        DocKind::Profile => 2,
        DocKind::Private => 3,
    };
    &tables[index]
}

/// The path of the genesis map with op counter `counter` (the schema version is op 1).
pub fn genesis_path(kind: DocKind, counter: u64) -> Option<Vec<String>> {
    let index = usize::try_from(counter.checked_sub(2)?).ok()?;
    genesis_objects(kind).get(index).cloned()
}

/// A new document holding only its genesis change. Identical bytes on every device.
pub fn genesis(doc_id: &DocId) -> Result<Automerge, DocError> {
    let mut doc = Automerge::new().with_actor(genesis_actor(doc_id));
    let mut tx = doc.transaction();
    tx.put(ROOT, keys::SCHEMA, SCHEMA_VERSION)?;
    for key in genesis_maps(doc_id.kind()) {
        let obj = tx.put_object(ROOT, *key, ObjType::Map)?;
        if *key == keys::MESSAGES {
            for shard in 0..schema::MESSAGE_SHARDS {
                tx.put_object(&obj, format!("{shard:02}"), ObjType::Map)?;
            }
        }
    }
    tx.commit_with(
        CommitOptions::default()
            .with_time(0)
            .with_message("genesis"),
    );
    Ok(doc)
}

/// The genesis change of a document (what `genesis` applied).
pub fn genesis_change(doc_id: &DocId) -> Result<Change, DocError> {
    let doc = genesis(doc_id)?;
    doc.get_changes(&[])
        .into_iter()
        .next()
        .ok_or(DocError::Missing("genesis change"))
}

/// Hash of a document's genesis change.
pub fn genesis_hash(doc_id: &DocId) -> Result<ChangeHash, DocError> {
    Ok(genesis_change(doc_id)?.hash())
}

/// Loads a document from saved bytes with `actor` as the local writer.
pub fn load(bytes: &[u8], actor: ActorId) -> Result<Automerge, DocError> {
    Ok(Automerge::load(bytes)?.with_actor(actor))
}

/// The schema version a document declares.
pub fn schema_version(doc: &Automerge) -> Option<u64> {
    match doc.get(ROOT, keys::SCHEMA).ok().flatten() {
        Some((automerge::Value::Scalar(s), _)) => s.as_u64(),
        _ => None,
    }
}

/// An intent tag on a change: `intent/<id>/<kind>`, so the outbox finds its changes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentTag {
    pub id: String,
    pub kind: String,
}

impl IntentTag {
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> Self {
        IntentTag {
            id: id.into(),
            kind: kind.into(),
        }
    }
    pub fn encode(&self) -> String {
        format!("intent/{}/{}", self.id, self.kind)
    }
    /// Reads the tag out of a change's message.
    pub fn of(change: &Change) -> Option<Self> {
        let rest = change.message()?.strip_prefix("intent/")?;
        let (id, kind) = rest.split_once('/')?;
        Some(IntentTag::new(id, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConvId, TenantId};

    fn conv_doc_id(key: &str) -> DocId {
        DocId::conv(
            &TenantId::new("t").expect("tenant"),
            &ConvId::new(key).expect("conv"),
        )
    }

    #[test]
    fn genesis_is_deterministic_and_id_specific() {
        let a = genesis_change(&conv_doc_id("c1")).expect("genesis");
        let b = genesis_change(&conv_doc_id("c1")).expect("genesis");
        let c = genesis_change(&conv_doc_id("c2")).expect("genesis");
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.timestamp(), 0);
        assert_eq!(a.actor_id(), &genesis_actor(&conv_doc_id("c1")));
        let doc = genesis(&conv_doc_id("c1")).expect("genesis");
        assert_eq!(schema_version(&doc), Some(SCHEMA_VERSION));
        let (_, members) = doc
            .get(ROOT, keys::MEMBERS)
            .expect("read")
            .expect("members map");
        assert_eq!(
            members.to_string(),
            format!("{}@{}", 5, genesis_actor(&conv_doc_id("c1")))
        );
    }

    /// A proposal's payload is written once, `pending`; once answered, readers see the
    /// status the message holds in it, the rest of the payload as written.
    #[test]
    fn a_proposal_shows_the_status_its_message_holds() {
        use crate::ids::{AccountId, MessageId};
        use crate::model::message::{MessageKind, NewMessage};
        use crate::model::proposal::ProposalStatus;
        let id = DocId::msgs(
            &TenantId::new("t").expect("tenant"),
            &ConvId::new("c1").expect("conv"),
            1,
        );
        let mut doc = genesis(&id).expect("genesis");
        let proposal = MessageId::new("p1").expect("id");
        let mut m = NewMessage::text(proposal.clone(), AccountId::new("a").expect("a"), "", 1);
        m.kind = MessageKind::Proposal;
        m.payload = Some(
            r#"{"proposalType":"booking_manual","timeStart":"2026-04-15T10:00:00.000Z","timeEnd":"2026-04-15T17:00:00.000Z","timezone":"UTC","status":"pending","createdByRole":"staff"}"#
                .into(),
        );
        let tag = IntentTag::new("i1", "send");
        write::post_message(&mut doc, &tag, &m).expect("posted");
        let status_of = |doc: &Automerge| {
            let read = read::read_message(doc, &proposal).expect("the proposal");
            let payload: serde_json::Value =
                serde_json::from_str(read.payload.as_deref().expect("a payload")).expect("JSON");
            (
                read.status,
                payload["status"].clone(),
                payload["timezone"].clone(),
            )
        };
        assert_eq!(
            status_of(&doc),
            (
                Some(ProposalStatus::Pending),
                "pending".into(),
                "UTC".into()
            ),
            "as written"
        );
        let tag = IntentTag::new("i2", "answer");
        write::set_proposal_status(&mut doc, &tag, 2, &proposal, ProposalStatus::Accepted)
            .expect("answered");
        assert_eq!(
            status_of(&doc),
            (
                Some(ProposalStatus::Accepted),
                "accepted".into(),
                "UTC".into()
            )
        );
    }

    /// A message deleted the old way (emptied body and `deleted_at` only) reads as its
    /// tombstone; one deleted now holds nothing else.
    #[test]
    fn a_deleted_message_reads_as_its_tombstone() {
        use crate::ids::{AccountId, MessageId};
        use crate::model::message::NewMessage;
        use automerge::transaction::Transactable;
        let doc_id = DocId::msgs(
            &TenantId::new("t").expect("tenant"),
            &ConvId::new("c1").expect("conv"),
            0,
        );
        let id = MessageId::new("m1").expect("id");
        let alice = AccountId::new("alice").expect("account");
        let tag = IntentTag::new("i1", "send");
        let mut m = NewMessage::text(id.clone(), alice.clone(), "hello", 1000);
        m.caption = Some("a caption".into());
        m.mentions = Some(r#"["bob"]"#.into());
        let mut old = genesis(&doc_id).expect("genesis");
        write::post_message(&mut old, &tag, &m).expect("post");
        let mut new = old.clone();
        write::transact(&mut old, &tag, 2000, |tx| {
            let shard = read::get_map(&*tx, &ROOT, keys::MESSAGES)
                .and_then(|ms| read::get_map(&*tx, &ms, &schema::message_shard("m1")))
                .expect("shard");
            let obj = read::get_map(&*tx, &shard, "m1").expect("m1");
            tx.put(&obj, keys::BODY, "")?;
            tx.put(&obj, keys::DELETED_AT, 2000_i64)?;
            Ok(())
        })
        .expect("an old delete");
        write::delete_message(&mut new, &tag, 2000, &id, &alice).expect("delete");
        for doc in [&old, &new] {
            let read = read::read_message(doc, &id).expect("m1 reads");
            assert_eq!(
                (
                    read.body.as_str(),
                    read.caption,
                    read.mentions,
                    read.deleted_at
                ),
                ("", None, None, Some(2000))
            );
        }
        let mut keys = read::message_keys(&new, &id).expect("m1");
        keys.sort();
        let mut tombstone: Vec<&str> = schema::TOMBSTONE_FIELDS.to_vec();
        tombstone.sort();
        assert_eq!(keys, tombstone);
        let by = read::read_message(&new, &id).and_then(|m| m.deleted_by);
        assert_eq!(by, Some(alice));
    }
}
