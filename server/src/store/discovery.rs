//! The discovery listing (docs/POLICY.md, "Joining"; docs/REST.md): conversations of a
//! tenant whose scope lets the caller find them, in conversation id order after a cursor.
//! One range of the partial index `conversations_discover` per page (migrations: Postgres
//! 0014, SQLite 0009), which holds only groups and channels that are neither private nor
//! deleted: a page costs its rows plus the discoverable ones the filters skip (service
//! accounts skip `organization`, a title search skips non-matching titles), never the
//! tenant's private conversations.

use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::conversation::MemberStatus;
use sqlx::{PgPool, SqlitePool};

use super::columns::{conv_row, limit_of, Cols};
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

/// The same filters on both backends; the predicates of the partial index are repeated
/// word for word so that Postgres can prove the index applies.
macro_rules! discover_sql {
    ($tenant:literal, $account:literal, $after:literal, $service:literal, $search:literal,
     $limit:literal, $collate:literal, $title_has:literal) => {
        concat!(
            "SELECT c.tenant, c.conv, c.kind, c.title, c.lifecycle, c.parent, c.created_at, ",
            "c.scope, c.description, c.active_members, c.join_route, ",
            "(SELECT m.status FROM memberships m WHERE m.tenant = c.tenant ",
            "AND m.conv = c.conv AND m.account = ",
            $account,
            ") AS caller_status ",
            "FROM conversations c WHERE c.tenant = ",
            $tenant,
            " ",
            "AND c.scope <> 'private' AND c.lifecycle <> 'deleted' ",
            "AND c.kind IN ('group', 'channel') ",
            "AND c.conv",
            $collate,
            " > ",
            $after,
            " ",
            "AND (c.scope = 'public' OR NOT ",
            $service,
            ") ",
            "AND (",
            $search,
            " IS NULL OR ",
            $title_has,
            ") ",
            "ORDER BY c.conv",
            $collate,
            " LIMIT ",
            $limit
        )
    };
}

const PG: &str = discover_sql!(
    "$1",
    "$2",
    "$3",
    "$4",
    "$5",
    "$6",
    " COLLATE \"C\"",
    "strpos(lower(c.title), lower($5)) > 0"
);
const SQLITE: &str = discover_sql!(
    "?1",
    "?2",
    "?3",
    "?4",
    "?5",
    "?6",
    "",
    "instr(lower(c.title), lower(?5)) > 0"
);

fn items<R: Cols>(rows: &[R]) -> Result<Vec<DiscoverItem>> {
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
fn after<'a>(q: &DiscoverQuery<'a>) -> &'a str {
    q.after.map_or("", ConvId::as_str)
}

pub(super) async fn list_pg(pool: &PgPool, q: &DiscoverQuery<'_>) -> Result<Vec<DiscoverItem>> {
    let rows = sqlx::query(PG)
        .bind(q.tenant.as_str())
        .bind(q.account.as_str())
        .bind(after(q))
        .bind(q.service)
        .bind(q.search)
        .bind(limit_of(q.limit))
        .fetch_all(pool)
        .await?;
    items(&rows)
}

pub(super) async fn list_sqlite(
    pool: &SqlitePool,
    q: &DiscoverQuery<'_>,
) -> Result<Vec<DiscoverItem>> {
    let rows = sqlx::query(SQLITE)
        .bind(q.tenant.as_str())
        .bind(q.account.as_str())
        .bind(after(q))
        .bind(q.service)
        .bind(q.search)
        .bind(limit_of(q.limit))
        .fetch_all(pool)
        .await?;
    items(&rows)
}

/// Projecting the rows written before the discovery migrations from their documents
/// (`maintenance::project_discovery`, run at start).
#[derive(Debug, Clone)]
pub enum ProjectOp<'a> {
    /// Up to `limit` rows not projected yet, after `after` (tenant, conversation) in
    /// bytewise key order.
    Stale {
        after: Option<(&'a TenantId, &'a ConvId)>,
        limit: usize,
    },
    /// Writes the discovery columns of these rows and marks them projected, each only if it
    /// still is not: a commit since wrote newer values, which are kept.
    Write(&'a [ConvRow]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectAnswer {
    Stale(Vec<(TenantId, ConvId)>),
    Written(u64),
}

fn keys<R: Cols>(rows: &[R]) -> Result<ProjectAnswer> {
    rows.iter()
        .map(|row| {
            Ok((
                super::columns::tenant_corrupt(row.text("tenant")?)?,
                super::columns::conv_id(row.text("conv")?)?,
            ))
        })
        .collect::<Result<Vec<_>>>()
        .map(ProjectAnswer::Stale)
}

pub(super) async fn project_pg(
    conn: &mut sqlx::PgConnection,
    op: ProjectOp<'_>,
) -> Result<ProjectAnswer> {
    match op {
        ProjectOp::Stale { after, limit } => {
            let (t, c) = after.map_or(("", ""), |(t, c)| (t.as_str(), c.as_str()));
            let rows = sqlx::query(
                "SELECT tenant, conv FROM conversations WHERE NOT discovery_projected \
                 AND (tenant COLLATE \"C\" > $1 OR (tenant = $1 AND conv COLLATE \"C\" > $2)) \
                 ORDER BY tenant COLLATE \"C\", conv COLLATE \"C\" LIMIT $3",
            )
            .bind(t)
            .bind(c)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            keys(&rows)
        }
        ProjectOp::Write(rows) => {
            let col = |f: fn(&ConvRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
            let done = sqlx::query(
                "UPDATE conversations c SET scope = u.sc, description = u.de, \
                 active_members = u.n, join_route = u.j, discovery_projected = TRUE \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
                 $6::text[]) AS u(t, cv, sc, de, n, j) \
                 WHERE c.tenant = u.t AND c.conv = u.cv AND NOT c.discovery_projected",
            )
            .bind(col(|r| r.tenant.as_str()))
            .bind(col(|r| r.conv.as_str()))
            .bind(col(|r| r.scope.as_str()))
            .bind(
                rows.iter()
                    .map(|r| r.description.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.active_members).collect::<Vec<_>>())
            .bind(col(|r| r.join_route.as_str()))
            .execute(&mut *conn)
            .await?;
            Ok(ProjectAnswer::Written(done.rows_affected()))
        }
    }
}

pub(super) async fn project_sqlite(
    conn: &mut sqlx::SqliteConnection,
    op: ProjectOp<'_>,
) -> Result<ProjectAnswer> {
    match op {
        ProjectOp::Stale { after, limit } => {
            let (t, c) = after.map_or(("", ""), |(t, c)| (t.as_str(), c.as_str()));
            let rows = sqlx::query(
                "SELECT tenant, conv FROM conversations WHERE NOT discovery_projected \
                 AND (tenant > ?1 OR (tenant = ?1 AND conv > ?2)) \
                 ORDER BY tenant, conv LIMIT ?3",
            )
            .bind(t)
            .bind(c)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            keys(&rows)
        }
        ProjectOp::Write(rows) => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let mut written = 0;
            for r in rows {
                written += sqlx::query(
                    "UPDATE conversations SET scope = ?3, description = ?4, \
                     active_members = ?5, join_route = ?6, discovery_projected = 1 \
                     WHERE tenant = ?1 AND conv = ?2 AND NOT discovery_projected",
                )
                .bind(r.tenant.as_str())
                .bind(r.conv.as_str())
                .bind(r.scope.as_str())
                .bind(r.description.as_deref())
                .bind(r.active_members)
                .bind(r.join_route.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok(ProjectAnswer::Written(written))
        }
    }
}
