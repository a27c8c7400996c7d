//! The group commit's plan, shared by both backends: what a batch writes, deduplicated and
//! in lock order, decided before either backend touches its database; and the checks a
//! compaction makes once it holds the document's row.

use std::collections::{BTreeMap, HashMap};

use confab_core::ids::{DocId, DocTarget};
use confab_core::model::conversation::Lifecycle;

use super::columns::i64_of;
use super::{ConvRow, MessageRow, NewChange, Projection, Result, StoreError};

/// A document's seq advance within one batch: its last seq must be `prev` before.
#[derive(Debug)]
pub(crate) struct DocStep<'a> {
    pub doc: String,
    pub tenant: &'a str,
    pub prev: i64,
    pub last: i64,
    /// The document's new policy version (a `conv` document's change that moved it), or 0:
    /// unchanged.
    pub policy: i64,
}

/// A conversation policy version the batch was validated against: `doc`'s stored policy
/// version must equal `policy` once the batch's own changes are in.
#[derive(Debug)]
pub(crate) struct FenceStep {
    pub doc: String,
    pub policy: i64,
}

#[derive(Debug)]
pub(crate) struct ChangeStep<'a> {
    pub doc: String,
    pub seq: i64,
    pub hash: &'a [u8],
    pub bytes: &'a [u8],
    pub account: &'a str,
    pub accepted_at: i64,
}

#[derive(Debug)]
pub(crate) struct Binding<'a> {
    pub tenant: &'a str,
    pub actor: &'a [u8],
    pub account: &'a str,
    pub bound_at: i64,
}

#[derive(Debug)]
pub(crate) struct MemberStep<'a> {
    pub tenant: &'a str,
    pub conv: &'a str,
    pub account: &'a str,
    pub role: &'a str,
    pub status: &'a str,
}

#[derive(Debug)]
pub(crate) struct MarkerStep<'a> {
    pub tenant: &'a str,
    pub conv: &'a str,
    pub account: &'a str,
    pub message: &'a str,
}

/// A new message; `cid` and `pos` are filled in from the database by
/// [`Plan::assign_positions`].
#[derive(Debug)]
pub(crate) struct MessageStep<'a> {
    pub row: &'a MessageRow,
    pub seq: i64,
    /// Its bucket document's period and part (the row keeps them, not the id's text).
    pub period: i64,
    pub part: i64,
    pub preview: &'a str,
    pub deleted: bool,
    /// The conversation's integer key.
    pub cid: i64,
    pub pos: i64,
}

/// `(period, part)` of a message bucket's document id.
fn bucket_of(doc: &str) -> Result<(i64, i64)> {
    match DocId::parse(doc).map(|d| d.target().clone()) {
        Ok(DocTarget::Msgs(_, b)) => Ok((b.period, i64::from(b.part))),
        _ => Err(StoreError::Corrupt(format!(
            "a message row names {doc}, not a message bucket"
        ))),
    }
}

/// How many positions a conversation takes in this batch.
#[derive(Debug)]
pub(crate) struct ConvAlloc<'a> {
    pub tenant: &'a str,
    pub conv: &'a str,
    pub count: i64,
    pub max_created: i64,
    pub first_created: i64,
}

#[derive(Debug)]
pub(crate) struct UpdateStep<'a> {
    pub tenant: &'a str,
    pub conv: &'a str,
    pub message: &'a str,
    pub preview: &'a str,
    pub deleted: bool,
}

/// A message's search terms, written after the batch's messages and updates: they replace
/// the message's index entry unless its projected row is deleted (or missing).
#[derive(Debug)]
pub(crate) struct SearchStep<'a> {
    pub tenant: &'a str,
    pub conv: &'a str,
    pub message: &'a str,
    pub terms: &'a str,
}

/// A group commit, planned before it touches the database.
///
/// Upserts are deduplicated (the last one of a key wins, as if applied in order) and
/// sorted by key, so concurrent writers lock rows in the same order. The batch order
/// only matters where rows depend on each other: positions of new messages follow the
/// batch order, and an edit or delete of a message created in the same batch is applied as
/// an update after its insert (the update is what marks its part due for a history cut,
/// docs/STORAGE.md). Conversation upserts never touch `last_pos`/`last_activity`, so applying
/// them before the messages gives the same result as applying them in order. A conversation
/// the batch deletes leaves no live message row of the batch either.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// Sorted by doc id.
    pub docs: Vec<DocStep<'a>>,
    /// Sorted by doc id, one per conversation (the newest version the batch saw: within
    /// a batch versions only grow, and a move of the batch's own is checked by its seq).
    pub fences: Vec<FenceStep>,
    /// Batch order.
    pub changes: Vec<ChangeStep<'a>>,
    /// Sorted by (tenant, actor), one per actor.
    pub bindings: Vec<Binding<'a>>,
    pub conversations: Vec<&'a ConvRow>,
    pub members: Vec<MemberStep<'a>>,
    pub markers: Vec<MarkerStep<'a>>,
    /// Batch order, one per message id (the first wins, as the table's
    /// `ON CONFLICT DO NOTHING` does for messages committed earlier).
    pub messages: Vec<MessageStep<'a>>,
    /// Sorted by (tenant, conversation).
    pub allocs: Vec<ConvAlloc<'a>>,
    /// Edits of messages not created in this batch.
    pub updates: Vec<UpdateStep<'a>>,
    /// Sorted by (tenant, conversation, message), one per message (the last wins).
    pub search: Vec<SearchStep<'a>>,
}

impl<'a> Plan<'a> {
    /// Plans a batch. A document whose changes in the batch do not follow each other is
    /// a `SeqConflict`; an actor bound to two accounts in the batch is `Corrupt`.
    pub fn build(changes: &'a [NewChange]) -> Result<Self> {
        let mut docs: BTreeMap<String, DocStep<'a>> = BTreeMap::new();
        let mut steps = Vec::with_capacity(changes.len());
        let mut bindings: BTreeMap<(&'a str, &'a [u8]), Binding<'a>> = BTreeMap::new();
        let mut conversations: BTreeMap<(&'a str, &'a str), &'a ConvRow> = BTreeMap::new();
        let mut members: BTreeMap<(&'a str, &'a str, &'a str), MemberStep<'a>> = BTreeMap::new();
        let mut markers: BTreeMap<(&'a str, &'a str, &'a str), MarkerStep<'a>> = BTreeMap::new();
        let mut messages: Vec<MessageStep<'a>> = Vec::new();
        let mut message_index: HashMap<(&'a str, &'a str, &'a str), usize> = HashMap::new();
        let mut allocs: BTreeMap<(&'a str, &'a str), ConvAlloc<'a>> = BTreeMap::new();
        let mut updates: BTreeMap<(&'a str, &'a str, &'a str), UpdateStep<'a>> = BTreeMap::new();
        let mut fences: BTreeMap<String, i64> = BTreeMap::new();
        let mut search: BTreeMap<(&'a str, &'a str, &'a str), SearchStep<'a>> = BTreeMap::new();

        for change in changes {
            let doc = change.doc.to_string();
            let seq = i64_of(change.seq, "seq")?;
            let policy = if change.moves_policy { seq } else { 0 };
            match docs.get_mut(&doc) {
                Some(step) => {
                    if seq != step.last + 1 {
                        return Err(StoreError::SeqConflict(doc));
                    }
                    step.last = seq;
                    step.policy = step.policy.max(policy);
                }
                None => {
                    docs.insert(
                        doc.clone(),
                        DocStep {
                            doc: doc.clone(),
                            tenant: change.doc.tenant().as_str(),
                            prev: seq - 1,
                            last: seq,
                            policy,
                        },
                    );
                }
            }
            // A move of this batch after a change fenced on the conversation is the unit's
            // own (a reopen a message called for): the fence follows it. Another node's
            // move would be a change of the same document, refused as `SeqConflict`.
            if policy > 0 {
                if let Some(at) = fences.get_mut(&doc) {
                    *at = (*at).max(policy);
                }
            }
            for fence in change.fence.iter().chain(&change.parent_fence) {
                let policy = i64_of(fence.policy_seq, "policy seq")?;
                let at = fences.entry(fence.conv_doc.to_string()).or_insert(policy);
                *at = (*at).max(policy);
            }
            if let Some(actor) = &change.bind_actor {
                let tenant = change.doc.tenant().as_str();
                let account = change.account.as_str();
                match bindings.get(&(tenant, actor.as_slice())) {
                    Some(b) if b.account != account => {
                        return Err(StoreError::Corrupt(format!(
                            "actor {} bound to both {} and {} in one batch",
                            hex::encode(actor),
                            b.account,
                            account
                        )));
                    }
                    Some(_) => {}
                    None => {
                        bindings.insert(
                            (tenant, actor.as_slice()),
                            Binding {
                                tenant,
                                actor,
                                account,
                                bound_at: change.accepted_at,
                            },
                        );
                    }
                }
            }
            for p in &change.projection {
                match p {
                    Projection::Conversation(row) => {
                        conversations.insert((row.tenant.as_str(), row.conv.as_str()), row);
                    }
                    Projection::Member {
                        tenant,
                        conv,
                        account,
                        role,
                        status,
                    } => {
                        members.insert(
                            (tenant.as_str(), conv.as_str(), account.as_str()),
                            MemberStep {
                                tenant: tenant.as_str(),
                                conv: conv.as_str(),
                                account: account.as_str(),
                                role,
                                status,
                            },
                        );
                    }
                    Projection::ReadMarker {
                        tenant,
                        conv,
                        account,
                        message,
                    } => {
                        markers.insert(
                            (tenant.as_str(), conv.as_str(), account.as_str()),
                            MarkerStep {
                                tenant: tenant.as_str(),
                                conv: conv.as_str(),
                                account: account.as_str(),
                                message: message.as_str(),
                            },
                        );
                    }
                    Projection::Message(row) => {
                        let key = (row.tenant.as_str(), row.conv.as_str(), row.message.as_str());
                        if message_index.contains_key(&key) {
                            continue;
                        }
                        message_index.insert(key, messages.len());
                        let (period, part) = bucket_of(&row.doc)?;
                        messages.push(MessageStep {
                            row,
                            seq: i64_of(row.seq, "message seq")?,
                            period,
                            part,
                            preview: &row.preview,
                            deleted: row.deleted,
                            cid: 0,
                            pos: 0,
                        });
                        let alloc = allocs.entry((key.0, key.1)).or_insert(ConvAlloc {
                            tenant: key.0,
                            conv: key.1,
                            count: 0,
                            max_created: row.created_at,
                            first_created: row.created_at,
                        });
                        alloc.count += 1;
                        alloc.max_created = alloc.max_created.max(row.created_at);
                    }
                    Projection::SearchTerms {
                        tenant,
                        conv,
                        message,
                        terms,
                    } => {
                        let key = (tenant.as_str(), conv.as_str(), message.as_str());
                        search.insert(
                            key,
                            SearchStep {
                                tenant: key.0,
                                conv: key.1,
                                message: key.2,
                                terms,
                            },
                        );
                    }
                    Projection::MessageUpdated {
                        tenant,
                        conv,
                        message,
                        preview,
                        deleted,
                    } => {
                        let key = (tenant.as_str(), conv.as_str(), message.as_str());
                        updates.insert(
                            key,
                            UpdateStep {
                                tenant: key.0,
                                conv: key.1,
                                message: key.2,
                                preview,
                                deleted: *deleted,
                            },
                        );
                    }
                }
            }
            steps.push(ChangeStep {
                doc,
                seq,
                hash: &change.hash,
                bytes: &change.bytes,
                account: change.account.as_str(),
                accepted_at: change.accepted_at,
            });
        }
        // A conversation deleted in this batch takes the batch's own messages with it (its
        // trigger marks the rows committed before): each becomes a tombstone row by an
        // update after its insert, which notes its part for a cut, and gets no search terms.
        let deleted: Vec<(&str, &str)> = conversations
            .values()
            .filter(|row| row.lifecycle == Lifecycle::Deleted.as_str())
            .map(|row| (row.tenant.as_str(), row.conv.as_str()))
            .collect();
        if !deleted.is_empty() {
            let of_deleted = |tenant: &str, conv: &str| deleted.contains(&(tenant, conv));
            for m in &messages {
                let (tenant, conv) = (m.row.tenant.as_str(), m.row.conv.as_str());
                if of_deleted(tenant, conv) {
                    updates.insert(
                        (tenant, conv, m.row.message.as_str()),
                        UpdateStep {
                            tenant,
                            conv,
                            message: m.row.message.as_str(),
                            preview: "",
                            deleted: true,
                        },
                    );
                }
            }
            for u in updates.values_mut() {
                if of_deleted(u.tenant, u.conv) {
                    u.preview = "";
                    u.deleted = true;
                }
            }
            search.retain(|key, _| !of_deleted(key.0, key.1));
        }
        Ok(Self {
            docs: docs.into_values().collect(),
            fences: fences
                .into_iter()
                .map(|(doc, policy)| FenceStep { doc, policy })
                .collect(),
            changes: steps,
            bindings: bindings.into_values().collect(),
            conversations: conversations.into_values().collect(),
            members: members.into_values().collect(),
            markers: markers.into_values().collect(),
            messages,
            allocs: allocs.into_values().collect(),
            updates: updates.into_values().collect(),
            search: search.into_values().collect(),
        })
    }

    /// Compares each document's stored last seq (absent: 0) with the one the batch
    /// continues.
    pub fn check_seqs(&self, current: &HashMap<String, i64>) -> Result<()> {
        for d in &self.docs {
            if current.get(&d.doc).copied().unwrap_or(0) != d.prev {
                return Err(StoreError::SeqConflict(d.doc.clone()));
            }
        }
        Ok(())
    }

    /// Compares each fenced conversation's stored policy version (absent: 0), read after
    /// the batch's own changes, with the one the batch was validated against.
    pub fn check_fences(&self, current: &HashMap<String, i64>) -> Result<()> {
        for f in &self.fences {
            if current.get(&f.doc).copied().unwrap_or(0) != f.policy {
                return Err(StoreError::PolicyMoved(f.doc.clone()));
            }
        }
        Ok(())
    }

    /// Every actor of the batch must now be bound to the batch's account.
    pub fn check_bindings(&self, bound: &[(String, Vec<u8>, String)]) -> Result<()> {
        let bound: HashMap<(&str, &[u8]), &str> = bound
            .iter()
            .map(|(t, a, acc)| ((t.as_str(), a.as_slice()), acc.as_str()))
            .collect();
        for b in &self.bindings {
            match bound.get(&(b.tenant, b.actor)) {
                Some(&acc) if acc == b.account => {}
                Some(&acc) => {
                    return Err(StoreError::Corrupt(format!(
                        "actor {} of tenant {} is bound to {acc}, not {}",
                        hex::encode(b.actor),
                        b.tenant,
                        b.account
                    )))
                }
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "actor {} of tenant {} was not bound",
                        hex::encode(b.actor),
                        b.tenant
                    )))
                }
            }
        }
        Ok(())
    }

    /// Fills in message positions from each conversation's key and new `last_pos`: the
    /// batch's messages of a conversation take the `count` positions ending there, in
    /// order.
    pub fn assign_positions(&mut self, ends: &HashMap<(String, String), (i64, i64)>) -> Result<()> {
        let mut next: HashMap<(&str, &str), (i64, i64)> = HashMap::with_capacity(self.allocs.len());
        for a in &self.allocs {
            let (cid, end) = ends
                .get(&(a.tenant.to_owned(), a.conv.to_owned()))
                .copied()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "conversation {}/{} vanished while taking positions",
                        a.tenant, a.conv
                    ))
                })?;
            next.insert((a.tenant, a.conv), (cid, end - a.count + 1));
        }
        for m in &mut self.messages {
            let key = (m.row.tenant.as_str(), m.row.conv.as_str());
            let slot = next.get_mut(&key).ok_or_else(|| {
                StoreError::Corrupt(format!("no position for a message of {}/{}", key.0, key.1))
            })?;
            m.cid = slot.0;
            m.pos = slot.1;
            slot.1 += 1;
        }
        Ok(())
    }
}

/// The checks of `compact` once the document's row is locked.
pub(crate) fn check_compact(doc: &str, seq: i64, last: i64, snapshot_seq: i64) -> Result<()> {
    if seq > last {
        return Err(StoreError::Corrupt(format!(
            "cannot compact {doc} at seq {seq}: its last seq is {last}"
        )));
    }
    if seq < snapshot_seq {
        return Err(StoreError::SeqConflict(doc.to_owned()));
    }
    Ok(())
}
