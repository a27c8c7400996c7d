//! The server's acceptance engine, sans-io: the accepted documents of one tenant, actor
//! bindings, cached conversations, and the per-document sequence (DESIGN §4). The server
//! wraps it with storage (commit before ack); tests and benchmarks use it directly.

use std::collections::HashMap;

use automerge::{ActorId, Change, ChangeHash};

use crate::doc::DocError;
use crate::ids::{AccountId, ConvId, DocId, DocTarget};
use crate::model::conversation::Conversation;
use crate::policy::{Author, Effect};
use crate::validate::{self, refresh_conversation, AcceptedDoc, Env, Rejection, Verdict};

/// A change the hub accepted (or had accepted before): its hash and per-document seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub hash: ChangeHash,
    pub seq: u64,
}

#[derive(Debug)]
struct DocEntry {
    doc: AcceptedDoc,
    seqs: HashMap<ChangeHash, u64>,
    next_seq: u64,
}

/// Accepted state of a tenant's documents, all in memory.
#[derive(Debug, Default)]
pub struct Hub {
    docs: HashMap<DocId, DocEntry>,
    convs: HashMap<ConvId, Conversation>,
    bindings: HashMap<ActorId, AccountId>,
    last_post: HashMap<(ConvId, AccountId), i64>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, id: &DocId) -> Result<&mut DocEntry, DocError> {
        if !self.docs.contains_key(id) {
            let doc = AcceptedDoc::new(id.clone())?;
            self.docs.insert(
                id.clone(),
                DocEntry {
                    doc,
                    seqs: HashMap::new(),
                    next_seq: 1,
                },
            );
        }
        self.docs.get_mut(id).ok_or(DocError::Missing("document"))
    }

    /// The accepted document, if anything was ever submitted to it.
    pub fn doc(&self, id: &DocId) -> Option<&AcceptedDoc> {
        self.docs.get(id).map(|e| &e.doc)
    }

    /// The cached typed conversation.
    pub fn conversation(&self, id: &ConvId) -> Option<&Conversation> {
        self.convs.get(id)
    }

    pub fn binding(&self, actor: &ActorId) -> Option<&AccountId> {
        self.bindings.get(actor)
    }

    /// Validates and, when allowed, applies one change. Resubmission acks with the old seq.
    pub fn submit(
        &mut self,
        id: &DocId,
        author: &Author,
        change: Change,
        now_ms: i64,
    ) -> Result<(Ack, Vec<Effect>), Rejection> {
        let hash = change.hash();
        let internal = |e: DocError| {
            Rejection::new(Some(hash), validate::RejectCode::Malformed, e.to_string())
        };
        let conv_id = id.conv_id().cloned();
        if let Some(conv) = &conv_id {
            if !self.convs.contains_key(conv) {
                let doc = self
                    .entry(&DocId::conv(id.tenant(), conv))
                    .map_err(internal)?;
                let typed = crate::doc::read::read_conversation(doc.doc.doc(), conv.clone());
                self.convs.insert(conv.clone(), typed);
            }
        }
        self.entry(id).map_err(internal)?;
        let verdict = {
            let entry = &self.docs[id];
            let last_post = conv_id
                .as_ref()
                .and_then(|c| self.last_post.get(&(c.clone(), author.account.clone())))
                .copied();
            let env = Env {
                author,
                bindings: &self.bindings,
                conv: conv_id.as_ref().and_then(|c| self.convs.get(c)),
                others: &self.convs,
                now_ms,
                last_post_ms: last_post,
                urls: crate::model::url::UrlRule::HttpsOnly,
            };
            validate::validate(&entry.doc, &env, change)?
        };
        let accepted = match verdict {
            Verdict::AlreadyAccepted(hash) => {
                let seq = self.docs[id].seqs.get(&hash).copied().unwrap_or(0);
                return Ok((Ack { hash, seq }, Vec::new()));
            }
            Verdict::Accept(a) => *a,
        };
        let entry = self.docs.get_mut(id).ok_or_else(|| {
            Rejection::new(
                Some(accepted.hash),
                validate::RejectCode::Malformed,
                "document vanished".into(),
            )
        })?;
        entry.doc.apply(accepted.change).map_err(internal)?;
        let seq = entry.next_seq;
        entry.next_seq += 1;
        entry.seqs.insert(accepted.hash, seq);
        if let Some(actor) = accepted.new_binding {
            self.bindings.insert(actor, author.account.clone());
        }
        if let (DocTarget::Conv(_), Some(cached)) = (
            id.target(),
            conv_id.as_ref().and_then(|c| self.convs.get_mut(c)),
        ) {
            refresh_conversation(cached, entry.doc.doc(), &accepted.effects);
        }
        if let Some(conv) = conv_id {
            if accepted
                .effects
                .iter()
                .any(|e| matches!(e, Effect::PostMessage(_)))
            {
                self.last_post
                    .insert((conv, author.account.clone()), now_ms);
            }
        }
        Ok((
            Ack {
                hash: accepted.hash,
                seq,
            },
            accepted.effects,
        ))
    }

    /// Accepted changes of a document after `seq`, in order (catch-up).
    pub fn changes_after(&self, id: &DocId, seq: u64) -> Vec<(u64, Change)> {
        let Some(entry) = self.docs.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<(u64, Change)> = entry
            .seqs
            .iter()
            .filter(|(_, s)| **s > seq)
            .filter_map(|(h, s)| {
                automerge::ReadDoc::get_change_by_hash(entry.doc.doc(), h).map(|c| (*s, c))
            })
            .collect();
        out.sort_by_key(|(s, _)| *s);
        out
    }
}
