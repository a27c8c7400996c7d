//! The accepted state of one document, as the validator needs it.

use std::collections::HashMap;

use automerge::{ActorId, Automerge, Change, ReadDoc};

use crate::doc::{self, read, DocError};
use crate::ids::DocId;
use crate::model::conversation::Conversation;
use crate::policy::Effect;

/// A document holding only accepted changes, with each actor's progress (last seq and last
/// op counter), which Automerge keeps to itself.
#[derive(Debug, Clone)]
pub struct AcceptedDoc {
    id: DocId,
    doc: Automerge,
    progress: HashMap<ActorId, (u64, u64)>,
}

impl AcceptedDoc {
    /// A document with its genesis only.
    pub fn new(id: DocId) -> Result<Self, DocError> {
        let doc = doc::genesis(&id)?;
        let mut out = AcceptedDoc {
            id,
            doc,
            progress: HashMap::new(),
        };
        out.index_all();
        Ok(out)
    }

    /// Loads saved bytes; they must contain this document's genesis. O(history) once.
    pub fn load(id: DocId, bytes: &[u8]) -> Result<Self, DocError> {
        let doc = Automerge::load(bytes)?;
        if doc.get_change_by_hash(&doc::genesis_hash(&id)?).is_none() {
            return Err(DocError::Missing("genesis of this document id"));
        }
        let mut out = AcceptedDoc {
            id,
            doc,
            progress: HashMap::new(),
        };
        out.index_all();
        Ok(out)
    }

    fn index_all(&mut self) {
        for meta in self.doc.get_changes_meta(&[]) {
            let entry = self
                .progress
                .entry(meta.actor.into_owned())
                .or_insert((0, 0));
            entry.0 = entry.0.max(meta.seq);
            entry.1 = entry.1.max(meta.max_op);
        }
    }

    pub fn id(&self) -> &DocId {
        &self.id
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// (last seq, last op counter) of `actor` in this document; (0, 0) if it never wrote.
    pub fn actor_progress(&self, actor: &ActorId) -> (u64, u64) {
        self.progress.get(actor).copied().unwrap_or((0, 0))
    }

    /// Applies a change that `validate` accepted.
    pub fn apply(&mut self, change: Change) -> Result<(), DocError> {
        let (actor, seq, max_op) = (change.actor_id().clone(), change.seq(), change.max_op());
        self.doc.apply_changes([change])?;
        let entry = self.progress.entry(actor).or_insert((0, 0));
        entry.0 = entry.0.max(seq);
        entry.1 = entry.1.max(max_op);
        Ok(())
    }

    /// Saves the whole document (compacted columnar form).
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }
}

/// Brings a cached conversation up to date after an accepted change to its document,
/// re-reading only what the effects touched (O(change), not O(members)).
pub fn refresh_conversation(conv: &mut Conversation, doc: &Automerge, effects: &[Effect]) {
    let members = read::get_map(doc, &automerge::ROOT, doc::schema::keys::MEMBERS);
    let reads = read::get_map(doc, &automerge::ROOT, doc::schema::keys::READS);
    for effect in effects {
        match effect {
            Effect::AddMember { after: m, .. } | Effect::UpdateMember { after: m, .. } => {
                if let Some(member) = members
                    .as_ref()
                    .and_then(|obj| read::read_member(doc, obj, &m.account))
                {
                    conv.members.insert(m.account.clone(), member);
                }
            }
            Effect::SetInfo { .. } => conv.info = read::read_info(doc),
            Effect::SetSetting { .. } => {
                conv.settings = read::read_settings(
                    doc,
                    conv.kind()
                        .unwrap_or(crate::model::conversation::ConvKind::Group),
                )
            }
            Effect::Pin { .. } | Effect::Unpin { .. } => conv.pins = read::read_pins(doc),
            Effect::MarkRead { account } => {
                let marker = reads
                    .as_ref()
                    .and_then(|obj| read::get_str(doc, obj, account.as_str()))
                    .and_then(|m| crate::ids::MessageId::new(m).ok());
                if let Some(marker) = marker {
                    conv.reads.insert(account.clone(), marker);
                }
            }
            Effect::SetLifecycle { .. } => conv.lifecycle = read::read_lifecycle(doc),
            _ => {}
        }
    }
    // Creation (including the deterministic kind, which carries no effects) reads it all.
    if conv.meta.is_none()
        || effects
            .iter()
            .any(|e| matches!(e, Effect::CreateConversation(_)))
    {
        *conv = read::read_conversation(doc, conv.id.clone());
    }
}
