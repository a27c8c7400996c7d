//! A planned batch as the column arrays `confab_commit` (migration 0002) takes, and the
//! common batch `confab_commit_message_batch` (migration 0042) takes on its own.

use std::collections::{BTreeMap, HashMap};

use confab_core::ids::ConvId;

use crate::store::plan::{ConvAlloc, FenceStep, Plan};

/// The call, parameters in the function's order.
pub(super) const COMMIT: &str = "SELECT confab_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
    $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, \
    $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46, \
    $47, $48, $49, $50, $51, $52, $53, $54, $55, $56, $57, $58, $59, \
    $60)";

/// The call of the common batch's function, parameters in its order.
pub(super) const COMMIT_MESSAGE_BATCH: &str = "SELECT confab_commit_message_batch($1, $2, $3, \
    $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
    $23)";

/// A commit call followed, in the same statement (so the same transaction and round trip),
/// by the batch's search terms (migration 0027): the CTE runs the commit first.
pub(super) fn with_search(call: &str, first: usize) -> String {
    let p = |i: usize| format!("${}", first + i);
    format!(
        "WITH c AS MATERIALIZED ({call}) SELECT confab_search_index({}, {}, {}, {}) FROM c",
        p(0),
        p(1),
        p(2),
        p(3)
    )
}

/// A batch `confab_commit_message_batch` can store: changes of one document that already
/// exists, and at most new messages of one conversation and their search terms, nothing else
/// to project.
pub(super) struct MessageBatch<'a> {
    pub doc: &'a str,
    pub prev: i64,
    pub last: i64,
    /// The conversation the new messages go to, if there are any.
    pub alloc: Option<&'a ConvAlloc<'a>>,
    /// The conversation policy version the batch was validated against, if any.
    pub fence: Option<&'a FenceStep>,
    /// Each new message's search terms, in the batch's order (none: no entry).
    pub terms: Vec<Option<&'a str>>,
}

impl<'a> MessageBatch<'a> {
    pub fn of(plan: &'a Plan<'a>) -> Option<Self> {
        let [doc] = plan.docs.as_slice() else {
            return None;
        };
        let only_messages = doc.prev > 0
            && doc.policy == 0
            && plan.fences.len() <= 1
            && plan.bindings.is_empty()
            && plan.conversations.is_empty()
            && plan.members.is_empty()
            && plan.markers.is_empty()
            && plan.updates.is_empty()
            && plan.allocs.len() <= 1
            && plan.messages.iter().all(|m| {
                m.row.doc == doc.doc
                    && plan.allocs.first().is_some_and(|a| {
                        a.tenant == m.row.tenant.as_str() && a.conv == m.row.conv.as_str()
                    })
            });
        if !only_messages {
            return None;
        }
        // Terms of a message that is not new here (none are planned today) need the index
        // function's lookup of its row: such a batch goes the general way.
        let new: HashMap<&str, usize> = plan
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.row.message.as_str(), i))
            .collect();
        let mut terms = vec![None; plan.messages.len()];
        for x in &plan.search {
            let i = *new.get(x.message)?;
            let row = &plan.messages[i].row;
            if (row.tenant.as_str(), row.conv.as_str()) != (x.tenant, x.conv) {
                return None;
            }
            terms[i] = Some(x.terms);
        }
        Some(MessageBatch {
            doc: &doc.doc,
            prev: doc.prev,
            last: doc.last,
            alloc: plan.allocs.first(),
            fence: plan.fences.first(),
            terms,
        })
    }
}

#[derive(Default)]
pub(super) struct Docs<'a> {
    pub ids: Vec<&'a str>,
    pub tenants: Vec<&'a str>,
    pub prev: Vec<i64>,
    pub last: Vec<i64>,
    pub policy: Vec<i64>,
}

#[derive(Default)]
pub(super) struct Fences<'a> {
    pub docs: Vec<&'a str>,
    pub policy: Vec<i64>,
}

#[derive(Default)]
pub(super) struct Changes<'a> {
    pub docs: Vec<&'a str>,
    pub seqs: Vec<i64>,
    pub hashes: Vec<&'a [u8]>,
    pub bytes: Vec<&'a [u8]>,
    pub accounts: Vec<&'a str>,
    pub at: Vec<i64>,
}

#[derive(Default)]
pub(super) struct Bindings<'a> {
    pub tenants: Vec<&'a str>,
    pub actors: Vec<&'a [u8]>,
    pub accounts: Vec<&'a str>,
    pub at: Vec<i64>,
}

/// Conversation rows to create if missing and lock, with their first activity.
#[derive(Default)]
pub(super) struct Touched<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub created: Vec<i64>,
    pub activity: Vec<i64>,
}

#[derive(Default)]
pub(super) struct Summaries<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub kinds: Vec<&'a str>,
    pub titles: Vec<Option<&'a str>>,
    pub lifecycles: Vec<&'a str>,
    pub parents: Vec<Option<&'a str>>,
    pub created: Vec<i64>,
    pub scopes: Vec<&'a str>,
    pub descriptions: Vec<Option<&'a str>>,
    pub active_members: Vec<i64>,
    pub join_routes: Vec<&'a str>,
}

#[derive(Default)]
pub(super) struct Members<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub accounts: Vec<&'a str>,
    pub roles: Vec<&'a str>,
    pub statuses: Vec<&'a str>,
}

#[derive(Default)]
pub(super) struct Markers<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub accounts: Vec<&'a str>,
    pub messages: Vec<&'a str>,
}

#[derive(Default)]
pub(super) struct Allocs<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub counts: Vec<i64>,
    pub max_created: Vec<i64>,
}

#[derive(Default)]
pub(super) struct Messages<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub ids: Vec<&'a str>,
    pub docs: Vec<&'a str>,
    pub seqs: Vec<i64>,
    pub authors: Vec<&'a str>,
    pub kinds: Vec<&'a str>,
    pub created: Vec<i64>,
    pub previews: Vec<&'a str>,
    pub deleted: Vec<bool>,
}

#[derive(Default)]
pub(super) struct Updates<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub ids: Vec<&'a str>,
    pub previews: Vec<&'a str>,
    pub deleted: Vec<bool>,
}

#[derive(Default)]
pub(super) struct Search<'a> {
    pub tenants: Vec<&'a str>,
    pub convs: Vec<&'a str>,
    pub ids: Vec<&'a str>,
    pub terms: Vec<&'a str>,
}

#[derive(Default)]
pub(super) struct CommitRows<'a> {
    pub docs: Docs<'a>,
    pub fences: Fences<'a>,
    pub changes: Changes<'a>,
    pub bindings: Bindings<'a>,
    pub touched: Touched<'a>,
    pub summaries: Summaries<'a>,
    pub members: Members<'a>,
    pub markers: Markers<'a>,
    pub allocs: Allocs<'a>,
    pub messages: Messages<'a>,
    pub updates: Updates<'a>,
    pub search: Search<'a>,
}

impl<'a> CommitRows<'a> {
    pub fn of(plan: &'a Plan<'a>) -> Self {
        let mut out = CommitRows::default();
        for d in &plan.docs {
            out.docs.ids.push(&d.doc);
            out.docs.tenants.push(d.tenant);
            out.docs.prev.push(d.prev);
            out.docs.last.push(d.last);
            out.docs.policy.push(d.policy);
        }
        for f in &plan.fences {
            out.fences.docs.push(&f.doc);
            out.fences.policy.push(f.policy);
        }
        for c in &plan.changes {
            out.changes.docs.push(&c.doc);
            out.changes.seqs.push(c.seq);
            out.changes.hashes.push(c.hash);
            out.changes.bytes.push(c.bytes);
            out.changes.accounts.push(c.account);
            out.changes.at.push(c.accepted_at);
        }
        for b in &plan.bindings {
            out.bindings.tenants.push(b.tenant);
            out.bindings.actors.push(b.actor);
            out.bindings.accounts.push(b.account);
            out.bindings.at.push(b.bound_at);
        }
        // Every conversation the batch writes to, in key order: new messages start its
        // activity at 0 (their own times raise it), a new summary at its creation.
        let mut touched: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        for a in &plan.allocs {
            touched.insert((a.tenant, a.conv), (a.first_created, 0));
        }
        for c in &plan.conversations {
            touched.insert(
                (c.tenant.as_str(), c.conv.as_str()),
                (c.created_at, c.created_at),
            );
        }
        for ((tenant, conv), (created, activity)) in touched {
            out.touched.tenants.push(tenant);
            out.touched.convs.push(conv);
            out.touched.created.push(created);
            out.touched.activity.push(activity);
        }
        for c in &plan.conversations {
            let s = &mut out.summaries;
            s.tenants.push(c.tenant.as_str());
            s.convs.push(c.conv.as_str());
            s.kinds.push(&c.kind);
            s.titles.push(c.title.as_deref());
            s.lifecycles.push(&c.lifecycle);
            s.parents.push(c.parent.as_ref().map(ConvId::as_str));
            s.created.push(c.created_at);
            s.scopes.push(&c.scope);
            s.descriptions.push(c.description.as_deref());
            s.active_members.push(c.active_members);
            s.join_routes.push(&c.join_route);
        }
        for m in &plan.members {
            out.members.tenants.push(m.tenant);
            out.members.convs.push(m.conv);
            out.members.accounts.push(m.account);
            out.members.roles.push(m.role);
            out.members.statuses.push(m.status);
        }
        for r in &plan.markers {
            out.markers.tenants.push(r.tenant);
            out.markers.convs.push(r.conv);
            out.markers.accounts.push(r.account);
            out.markers.messages.push(r.message);
        }
        for a in &plan.allocs {
            out.allocs.tenants.push(a.tenant);
            out.allocs.convs.push(a.conv);
            out.allocs.counts.push(a.count);
            out.allocs.max_created.push(a.max_created);
        }
        for m in &plan.messages {
            let g = &mut out.messages;
            g.tenants.push(m.row.tenant.as_str());
            g.convs.push(m.row.conv.as_str());
            g.ids.push(m.row.message.as_str());
            g.docs.push(&m.row.doc);
            g.seqs.push(m.seq);
            g.authors.push(m.row.author.as_str());
            g.kinds.push(&m.row.kind);
            g.created.push(m.row.created_at);
            g.previews.push(m.preview);
            g.deleted.push(m.deleted);
        }
        for u in &plan.updates {
            out.updates.tenants.push(u.tenant);
            out.updates.convs.push(u.conv);
            out.updates.ids.push(u.message);
            out.updates.previews.push(u.preview);
            out.updates.deleted.push(u.deleted);
        }
        for x in &plan.search {
            out.search.tenants.push(x.tenant);
            out.search.convs.push(x.conv);
            out.search.ids.push(x.message);
            out.search.terms.push(x.terms);
        }
        out
    }
}
