//! The projection's reads on Postgres: the shared statements (`crate::store::projection`),
//! and those written for Postgres alone (a `LATERAL` last message, lookups by
//! `hashtext(message)`, the discovery backfill with arrays).

use async_trait::async_trait;
use confab_core::ids::{AccountId, Bucket, ConvId, MessageId, TenantId};
use confab_core::protocol::Membership;

use super::PgStore;
use crate::store::buckets::BucketPage;
use crate::store::columns::{self, conv_list_item, limit_of, Cols};
use crate::store::discovery::{self, DiscoverItem, DiscoverQuery};
use crate::store::projection::pg as shared;
use crate::store::search::{self, backfill, SearchHit, SearchQuery};
use crate::store::stats::ConvStats;
use crate::store::{ConvListItem, ConvRow, MessageRow, Projections, Result};

/// Unread counts and last messages of an account's active conversations. The last message
/// is a `LATERAL ... ORDER BY pos DESC LIMIT 1`: one backward step on the messages' primary
/// key per conversation whatever the planner's statistics say. A message is found by id
/// through the index on `hashtext(message)` (migration 0010), then compared whole.
const CONVERSATIONS_OF: &str = "\
    SELECT c.tenant, c.conv, c.kind, c.title, c.lifecycle, c.parent, c.created_at, c.scope, \
      c.description, c.active_members, c.join_route, m.role, \
      (SELECT COUNT(*) FROM messages x \
        WHERE x.cid = c.id AND NOT x.deleted AND x.author <> m.account \
          AND x.pos > COALESCE((SELECT rm.pos FROM read_markers r JOIN messages rm \
                ON rm.cid = c.id AND hashtext(rm.message) = hashtext(r.message) \
                  AND rm.message = r.message \
              WHERE r.tenant = c.tenant AND r.conv = c.conv AND r.account = m.account), 0) \
      ) AS unread, \
      l.message AS l_message, l.pos AS l_pos, l.period AS l_period, l.part::int8 AS l_part, \
      l.seq AS l_seq, l.author AS l_author, l.kind AS l_kind, l.created_at AS l_created_at, \
      l.preview AS l_preview, l.deleted AS l_deleted \
    FROM memberships m \
    JOIN conversations c ON c.tenant = m.tenant AND c.conv = m.conv \
    LEFT JOIN LATERAL (SELECT * FROM messages y WHERE y.cid = c.id \
      ORDER BY y.pos DESC LIMIT 1) l ON TRUE \
    WHERE m.tenant = $1 AND m.account = $2 AND m.status = 'active' AND c.lifecycle <> 'deleted' \
    ORDER BY c.last_activity DESC, c.conv COLLATE \"C\"";

#[async_trait]
impl Projections for PgStore {
    async fn membership(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        account: &AccountId,
    ) -> Result<Option<(String, String)>> {
        on_pool!(self, |conn| shared::membership(conn, tenant, conv, account))
    }

    async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvRow>> {
        on_pool!(self, |conn| shared::conversation(conn, tenant, conv))
    }

    async fn conv_stats(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvStats>> {
        on_pool!(self, |conn| shared::conv_stats(conn, tenant, conv))
    }

    async fn read_times(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<std::collections::BTreeMap<AccountId, i64>> {
        on_pool!(self, |conn| shared::read_times(conn, tenant, conv))
    }

    async fn conversations_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<ConvListItem>> {
        let rows = sqlx::query(CONVERSATIONS_OF)
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_all(&self.pool)
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
        on_pool!(self, |conn| shared::messages(
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
        on_pool!(self, |conn| shared::buckets(
            conn, tenant, conv, before, limit
        ))
    }

    async fn memberships_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<Membership>> {
        on_pool!(self, |conn| shared::memberships_of(conn, tenant, account))
    }

    async fn active_members(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        admins_only: bool,
        limit: usize,
    ) -> Result<Vec<AccountId>> {
        on_pool!(self, |conn| shared::active_members(
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
        on_pool!(self, |conn| shared::fanout_members(
            conn, tenant, conv, after, limit
        ))
    }

    async fn search(&self, q: &SearchQuery<'_>) -> Result<Vec<SearchHit>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(search::MEMBERSHIPS)
            .bind(q.tenant.as_str())
            .bind(q.account.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let cids = search::readable(&search::entries(&rows)?, q.account, q.conv);
        if cids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(search::SETTINGS_PG).execute(&mut *tx).await?;
        let rows = search::windows::search(&mut tx, q, &cids).await?;
        tx.commit().await?;
        search::hits(&rows, q.tenant)
    }

    async fn search_backfill_page(&self, limit: usize) -> Result<Option<backfill::Page>> {
        backfill::read_page!(&self.pool, backfill::PAGE_PG, limit)
    }

    /// The commit writes the index (`confab_search_index`): there is no backlog.
    async fn index_search_backlog(&self, _limit: usize) -> Result<usize> {
        Ok(0)
    }

    async fn search_backfill_write(
        &self,
        page: &backfill::Page,
        entries: &[backfill::Entry],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if !entries.is_empty() {
            sqlx::query(backfill::WRITE_PG)
                .bind(entries.iter().map(|e| e.cid).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.pos).collect::<Vec<_>>())
                .bind(entries.iter().map(|e| e.terms.as_str()).collect::<Vec<_>>())
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
        on_pool!(self, |conn| shared::discover(conn, query))
    }

    async fn discovery_stale(
        &self,
        after: Option<(&TenantId, &ConvId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, ConvId)>> {
        let (t, c) = after.map_or(("", ""), |(t, c)| (t.as_str(), c.as_str()));
        let rows = sqlx::query(
            "SELECT tenant, conv FROM conversations WHERE NOT discovery_projected \
             AND (tenant COLLATE \"C\" > $1 OR (tenant = $1 AND conv COLLATE \"C\" > $2)) \
             ORDER BY tenant COLLATE \"C\", conv COLLATE \"C\" LIMIT $3",
        )
        .bind(t)
        .bind(c)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await?;
        discovery::keys(&rows)
    }

    async fn discovery_write(&self, rows: &[ConvRow]) -> Result<u64> {
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
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

impl PgStore {
    /// `select` (columns of `m`) of one message's projected row, found by its id.
    /// Through the index on hashtext(message) (migration 0010), then compared whole.
    async fn message_columns(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
        select: &'static str,
    ) -> Result<Option<sqlx::postgres::PgRow>> {
        let sql = format!(
            "SELECT {select} FROM conversations c JOIN messages m ON m.cid = c.id \
             AND hashtext(m.message) = hashtext($3) AND m.message = $3 WHERE c.tenant = $1 AND c.conv = $2"
        );
        Ok(sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(message.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }
}
