//! The discovery listing (docs/POLICY.md, "Joining"; docs/REST.md): conversations of a
//! tenant whose scope lets the caller find them, in conversation id order after a cursor.
//! One range of the partial index `conversations_discover` per page (migrations: Postgres
//! 0014, SQLite 0009), which holds only groups and channels that are neither private nor
//! deleted: a page costs its rows plus the discoverable ones the filters skip (service
//! accounts skip `organization`, a title search skips non-matching titles), never the
//! tenant's private conversations.

use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::conversation::MemberStatus;

use super::columns::{conv_row, Cols};
use super::{ConvRow, Result, StoreError};

/// A page of the discovery listing, as asked.
#[derive(Debug, Clone)]
pub struct DiscoverQuery<'a> {
    pub tenant: &'a TenantId,
    /// The caller: its own membership status is returned with each row.
    pub account: &'a AccountId,
    /// A service account finds `public` conversations only; a user also `organization`.
    pub service: bool,
    /// Rows after this conversation id (bytewise order); `None`: from the start.
    pub after: Option<&'a ConvId>,
    /// Only titles containing this text, case-insensitively (Postgres folds case with
    /// `lower`, Unicode-aware; SQLite's `lower` folds ASCII letters only).
    pub search: Option<&'a str>,
    pub limit: usize,
}

/// One discoverable conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverItem {
    pub conv: ConvRow,
    /// The caller's membership status in it, if it has an entry.
    pub caller_status: Option<MemberStatus>,
}

/// The same filters on both backends (`Projections::discover`, written once in
/// `projection.rs` with the dialect's text order and substring test); the predicates of the
/// partial index are repeated word for word so that Postgres can prove the index applies.
macro_rules! discover_sql {
    ($collate:literal, $title_has:literal) => {
        concat!(
            "SELECT c.tenant, c.conv, c.kind, c.title, c.lifecycle, c.parent, c.created_at, ",
            "c.scope, c.description, c.active_members, c.join_route, ",
            "(SELECT m.status FROM memberships m WHERE m.tenant = c.tenant ",
            "AND m.conv = c.conv AND m.account = $2) AS caller_status ",
            "FROM conversations c WHERE c.tenant = $1 ",
            "AND c.scope <> 'private' AND c.lifecycle <> 'deleted' ",
            "AND c.kind IN ('group', 'channel') ",
            "AND c.conv",
            $collate,
            " > $3 ",
            "AND (c.scope = 'public' OR NOT $4) ",
            "AND ($5 IS NULL OR ",
            $title_has,
            ") ",
            "ORDER BY c.conv",
            $collate,
            " LIMIT $6"
        )
    };
}

pub(super) fn items<R: Cols>(rows: &[R]) -> Result<Vec<DiscoverItem>> {
    rows.iter()
        .map(|row| {
            let conv = conv_row(row)?;
            let caller_status = row
                .opt_text("caller_status")?
                .map(|s| {
                    MemberStatus::parse(&s).map_err(|e| {
                        StoreError::Corrupt(format!("membership in {}: {e}", conv.conv))
                    })
                })
                .transpose()?;
            Ok(DiscoverItem {
                conv,
                caller_status,
            })
        })
        .collect()
}

/// The cursor as bound: the empty string sorts before every id, so the first page is the
/// same index range as the others (no `IS NULL OR` that a generic plan cannot use).
pub(super) fn after<'a>(q: &DiscoverQuery<'a>) -> &'a str {
    q.after.map_or("", ConvId::as_str)
}

/// The `(tenant, conv)` keys of rows not projected yet (`Projections::discovery_stale`; the
/// statement differs by text order, so each backend has its own).
pub(super) fn keys<R: Cols>(rows: &[R]) -> Result<Vec<(TenantId, ConvId)>> {
    rows.iter()
        .map(|row| {
            Ok((
                super::columns::tenant_corrupt(row.text("tenant")?)?,
                super::columns::conv_id(row.text("conv")?)?,
            ))
        })
        .collect()
}

pub(super) use discover_sql;
