//! The projection's reads on SQLite: the shared statements (`crate::store::projection`) on
//! the reader pool, and those written for SQLite alone.

use async_trait::async_trait;
use confab_core::ids::{AccountId, Bucket, ConvId, MessageId, TenantId};
use confab_core::protocol::Membership;

use super::SqliteStore;
use crate::store::buckets::BucketPage;
use crate::store::columns::{self, conv_list_item, limit_of, Cols};
use crate::store::discovery::{self, DiscoverItem, DiscoverQuery};
use crate::store::projection::lite as shared;
use crate::store::search::{self, backfill, SearchHit, SearchQuery};
use crate::store::stats::ConvStats;
use crate::store::{ConvListItem, ConvRow, MessageRow, Projections, Result};

/// Unread counts and last messages of an account's active conversations (SQLite).
const CONVERSATIONS_OF: &str = "\
    SELECT c.tenant, c.conv, c.kind, c.title, c.lifecycle, c.parent, c.created_at, c.scope, \
      c.description, c.active_members, c.join_route, m.role, \
      (SELECT COUNT(*) FROM messages x \
        WHERE x.cid = c.id AND NOT x.deleted AND x.author <> m.account \
          AND x.pos > COALESCE((SELECT rm.pos FROM read_markers r JOIN messages rm \
                ON rm.cid = c.id AND rm.message = r.message \
              WHERE r.tenant = c.tenant AND r.conv = c.conv AND r.account = m.account), 0) \
      ) AS unread, \
      l.message AS l_message, l.pos AS l_pos, l.period AS l_period, l.part AS l_part, \
      l.seq AS l_seq, l.author AS l_author, l.kind AS l_kind, l.created_at AS l_created_at, \
      l.preview AS l_preview, l.deleted AS l_deleted \
    FROM memberships m \
    JOIN conversations c ON c.tenant = m.tenant AND c.conv = m.conv \
    LEFT JOIN messages l ON l.cid = c.id \
      AND l.pos = (SELECT MAX(y.pos) FROM messages y WHERE y.cid = c.id) \
    WHERE m.tenant = $1 AND m.account = $2 AND m.status = 'active' \
      AND c.lifecycle <> 'deleted' \
    ORDER BY c.last_activity DESC, c.conv";

#[async_trait]
impl Projections for SqliteStore {
    async fn membership(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        account: &AccountId,
    ) -> Result<Option<(String, String)>> {
        on_reader!(self, |conn| shared::membership(conn, tenant, conv, account))
    }

    async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvRow>> {
        on_reader!(self, |conn| shared::conversation(conn, tenant, conv))
    }

    async fn conv_stats(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvStats>> {
        on_reader!(self, |conn| shared::conv_stats(conn, tenant, conv))
    }

    async fn read_times(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<std::collections::BTreeMap<AccountId, i64>> {
        on_reader!(self, |conn| shared::read_times(conn, tenant, conv))
    }

    async fn conversations_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<ConvListItem>> {
        let rows = sqlx::query(CONVERSATIONS_OF)
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(conv_list_item).collect()
    }

    async fn messages(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<MessageRow>> {
        on_reader!(self, |conn| shared::messages(
            conn, tenant, conv, before, limit
        ))
    }

    async fn buckets(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<Bucket>,
        limit: usize,
    ) -> Result<BucketPage> {
        on_reader!(self, |conn| shared::buckets(
            conn, tenant, conv, before, limit
        ))
    }

    async fn memberships_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<Membership>> {
        on_reader!(self, |conn| shared::memberships_of(conn, tenant, account))
    }

    async fn active_members(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        admins_only: bool,
        limit: usize,
    ) -> Result<Vec<AccountId>> {
        on_reader!(self, |conn| shared::active_members(
            conn,
            tenant,
            conv,
            admins_only,
            limit
        ))
    }

    async fn fanout_members(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        after: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<(AccountId, u64)>> {
        on_reader!(self, |conn| shared::fanout_members(
            conn, tenant, conv, after, limit
        ))
    }

    async fn search(&self, q: &SearchQuery<'_>) -> Result<Vec<SearchHit>> {
        let rows = sqlx::query(search::MEMBERSHIPS)
            .bind(q.tenant.as_str())
            .bind(q.account.as_str())
            .fetch_all(&self.reader)
            .await?;
        let cids = search::readable(&search::entries(&rows)?, q.account, q.conv);
        if cids.is_empty() {
            return Ok(Vec::new());
        }
        search::lite::search(&self.reader, q, &cids).await
    }

    async fn search_backfill_page(&self, limit: usize) -> Result<Option<backfill::Page>> {
        backfill::read_page!(&self.reader, backfill::PAGE_LITE, limit)
    }

    async fn search_backfill_write(
        &self,
        page: &backfill::Page,
        entries: &[backfill::Entry],
    ) -> Result<()> {
        on_writer!(self, |conn| write_backfill(conn, page, entries))
    }

    async fn index_search_backlog(&self, limit: usize) -> Result<usize> {
        on_writer!(self, |conn| super::search_backlog::index(conn, limit))
    }

    async fn author_of(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<AccountId>> {
        let row = self
            .message_columns(tenant, conv, message, "m.author")
            .await?;
        row.map(|r| columns::account(r.text("author")?)).transpose()
    }

    async fn message_deleted(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<bool>> {
        let row = self
            .message_columns(tenant, conv, message, "m.deleted")
            .await?;
        row.map(|r| r.flag("deleted")).transpose()
    }

    async fn message_bucket(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<Option<Bucket>> {
        let row = self
            .message_columns(
                tenant,
                conv,
                message,
                "m.period, CAST(m.part AS BIGINT) AS part",
            )
            .await?;
        row.map(|r| crate::store::columns::bucket_of(&r))
            .transpose()
    }

    async fn discover(&self, query: &DiscoverQuery<'_>) -> Result<Vec<DiscoverItem>> {
        on_reader!(self, |conn| shared::discover(conn, query))
    }

    async fn discovery_stale(
        &self,
        after: Option<(&TenantId, &ConvId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, ConvId)>> {
        let (t, c) = after.map_or(("", ""), |(t, c)| (t.as_str(), c.as_str()));
        let rows = sqlx::query(
            "SELECT tenant, conv FROM conversations WHERE NOT discovery_projected \
             AND (tenant > $1 OR (tenant = $1 AND conv > $2)) \
             ORDER BY tenant, conv LIMIT $3",
        )
        .bind(t)
        .bind(c)
        .bind(limit_of(limit))
        .fetch_all(&self.reader)
        .await?;
        discovery::keys(&rows)
    }

    async fn discovery_write(&self, rows: &[ConvRow]) -> Result<u64> {
        on_writer!(self, |conn| write_discovery(conn, rows))
    }
}

/// One update per row, in one transaction.
async fn write_discovery(conn: &mut sqlx::SqliteConnection, rows: &[ConvRow]) -> Result<u64> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut written = 0;
    for r in rows {
        written += sqlx::query(
            "UPDATE conversations SET scope = $3, description = $4, \
             active_members = $5, join_route = $6, discovery_projected = 1 \
             WHERE tenant = $1 AND conv = $2 AND NOT discovery_projected",
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
    Ok(written)
}

impl SqliteStore {
    /// `select` (columns of `m`) of one message's projected row, found by its id.
    async fn message_columns(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
        select: &'static str,
    ) -> Result<Option<sqlx::sqlite::SqliteRow>> {
        let sql = format!(
            "SELECT {select} FROM conversations c JOIN messages m ON m.cid = c.id \
             AND m.message = $3 WHERE c.tenant = $1 AND c.conv = $2"
        );
        Ok(sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(message.as_str())
            .fetch_optional(&self.reader)
            .await?)
    }
}

/// Writes a backfill page on the writer ([`Projections::search_backfill_write`]): writes
/// are serialized, so a row checked here stays as it is until the transaction ends.
async fn write_backfill(
    conn: &mut sqlx::SqliteConnection,
    page: &backfill::Page,
    entries: &[backfill::Entry],
) -> Result<()> {
    use sqlx::Connection;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for e in entries {
        let created_at: Option<i64> = sqlx::query_scalar(backfill::UNINDEXED_LITE)
            .bind(e.cid)
            .bind(e.pos)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(created_at) = created_at else {
            continue;
        };
        sqlx::query("INSERT INTO message_search (rowid, terms) VALUES ($1, $2)")
            .bind(e.cid * 4_294_967_296 + e.pos)
            .bind(&e.terms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO message_search_time (created_at, cid, pos, terms) VALUES ($1, $2, $3, $4)",
        )
        .bind(created_at)
        .bind(e.cid)
        .bind(e.pos)
        .bind(&e.terms)
        .execute(&mut *tx)
        .await?;
    }
    let next = page.next();
    sqlx::query(backfill::ADVANCE)
        .bind(next.cid)
        .bind(next.pos)
        .bind(next.done)
        .bind(page.from.cid)
        .bind(page.from.pos)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
