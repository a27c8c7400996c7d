//! The projection's reads that both backends write alike (`$n` placeholders, bound by
//! number on both), instantiated once per backend with the dialect's spelling of bytewise
//! text order (`COLLATE "C"` on Postgres, SQLite's default) and of a substring test. What
//! differs beyond that stays in `sqlite/projections.rs` and `postgres/projections.rs`: the
//! conversation list, a message's author by id, and the discovery backfill.

macro_rules! queries {
    ($conn:ty, collate = $collate:literal, title_has = $title_has:literal) => {
        use confab_core::ids::{AccountId, Bucket, ConvId, TenantId};
        use confab_core::protocol::Membership;
        use sqlx::Row;

        use crate::store::buckets::{self, BucketPage};
        use crate::store::columns::{self, conv_row, limit_of, message_row};
        use crate::store::discovery::{self, discover_sql, DiscoverItem, DiscoverQuery};
        use crate::store::stats::{self, ConvStats};
        use crate::store::{memberships, ConvRow, MessageRow, Result};

        pub(in crate::store) async fn membership(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            account: &AccountId,
        ) -> Result<Option<(String, String)>> {
            let row = sqlx::query(
                "SELECT role, status FROM memberships \
                 WHERE tenant = $1 AND conv = $2 AND account = $3",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(account.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|r| Ok((r.try_get("role")?, r.try_get("status")?)))
                .transpose()
        }

        pub(in crate::store) async fn conversation(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
        ) -> Result<Option<ConvRow>> {
            let row = sqlx::query(
                "SELECT tenant, conv, kind, title, lifecycle, parent, created_at, scope, \
                 description, active_members, join_route FROM conversations \
                 WHERE tenant = $1 AND conv = $2",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(conv_row).transpose()
        }

        pub(in crate::store) async fn conv_stats(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
        ) -> Result<Option<ConvStats>> {
            let row = sqlx::query(
                "SELECT message_count, media_count, file_count, active_members \
                 FROM conversations WHERE tenant = $1 AND conv = $2",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(stats::stats_of).transpose()
        }

        pub(in crate::store) async fn read_times(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
        ) -> Result<std::collections::BTreeMap<AccountId, i64>> {
            let rows = sqlx::query(
                "SELECT account, read_at FROM read_markers \
                 WHERE tenant = $1 AND conv = $2 AND read_at IS NOT NULL",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        columns::account(r.try_get("account")?)?,
                        r.try_get("read_at")?,
                    ))
                })
                .collect()
        }

        pub(in crate::store) async fn messages(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            before: Option<i64>,
            limit: usize,
        ) -> Result<Vec<MessageRow>> {
            let rows = sqlx::query(
                "SELECT m.message, m.pos, m.period, CAST(m.part AS BIGINT) AS part, m.seq, \
                 m.author, m.kind, m.created_at, m.preview, m.deleted, \
                 coalesce(v.views, 0) AS views \
                 FROM conversations c JOIN messages m ON m.cid = c.id \
                 LEFT JOIN message_views v ON v.cid = m.cid AND v.pos = m.pos \
                 WHERE c.tenant = $1 AND c.conv = $2 AND m.pos < $3 \
                 ORDER BY m.pos DESC LIMIT $4",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(MessageRow {
                        views: r.try_get("views")?,
                        ..message_row(r, "", tenant, conv)?
                    })
                })
                .collect()
        }

        pub(in crate::store) async fn buckets(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            before: Option<Bucket>,
            limit: usize,
        ) -> Result<BucketPage> {
            let (period, part) = buckets::bound(before);
            let rows = sqlx::query(
                "SELECT period, CAST(part AS BIGINT) AS part FROM buckets \
                 WHERE tenant = $1 AND conv = $2 AND (period, part) < ($3, $4) \
                 ORDER BY period DESC, part DESC LIMIT $5",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(period)
            .bind(part)
            .bind(limit_of(limit.saturating_add(1)))
            .fetch_all(&mut *conn)
            .await?;
            buckets::page(&rows, limit)
        }

        pub(in crate::store) async fn memberships_of(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Vec<Membership>> {
            let rows = sqlx::query(
                "SELECT m.conv, m.role, m.status, COALESCE(d.last_seq, 0) AS seq \
                 FROM memberships m \
                 LEFT JOIN docs d ON d.doc_id = m.tenant || '/conv/' || m.conv \
                 WHERE m.tenant = $1 AND m.account = $2 ORDER BY m.conv",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(memberships::entry).collect()
        }

        pub(in crate::store) async fn active_members(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            admins_only: bool,
            limit: usize,
        ) -> Result<Vec<AccountId>> {
            let rows = sqlx::query(concat!(
                "SELECT account FROM memberships WHERE tenant = $1 AND conv = $2 ",
                "AND status = 'active' AND (NOT $3 OR role IN ('owner', 'admin')) ",
                "ORDER BY account",
                $collate,
                " LIMIT $4"
            ))
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(admins_only)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| columns::account(r.try_get("account")?))
                .collect()
        }

        /// A page of the active members of a conversation after `after` in bytewise
        /// order, each with the last seq of its private document (0: none stored), the
        /// notifier's fan-out: one statement per page, whatever the settings.
        pub(in crate::store) async fn fanout_members(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            after: Option<&AccountId>,
            limit: usize,
        ) -> Result<Vec<(AccountId, u64)>> {
            let rows = sqlx::query(concat!(
                "SELECT m.account, COALESCE(d.last_seq, 0) AS seq FROM memberships m ",
                "LEFT JOIN docs d ON d.doc_id = m.tenant || '/private/' || m.account ",
                "WHERE m.tenant = $1 AND m.conv = $2 AND m.status = 'active' ",
                "AND m.account",
                $collate,
                " > $3 ORDER BY m.account",
                $collate,
                " LIMIT $4"
            ))
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(after.map(AccountId::as_str).unwrap_or(""))
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| {
                    let seq: i64 = r.try_get("seq")?;
                    Ok((
                        columns::account(r.try_get("account")?)?,
                        u64::try_from(seq).unwrap_or(0),
                    ))
                })
                .collect()
        }

        pub(in crate::store) async fn discover(
            conn: &mut $conn,
            q: &DiscoverQuery<'_>,
        ) -> Result<Vec<DiscoverItem>> {
            let rows = sqlx::query(discover_sql!($collate, $title_has))
                .bind(q.tenant.as_str())
                .bind(q.account.as_str())
                .bind(discovery::after(q))
                .bind(q.service)
                .bind(q.search)
                .bind(limit_of(q.limit))
                .fetch_all(&mut *conn)
                .await?;
            discovery::items(&rows)
        }
    };
}

pub(super) mod pg {
    queries!(
        sqlx::PgConnection,
        collate = " COLLATE \"C\"",
        title_has = "strpos(lower(c.title), lower($5)) > 0"
    );
}

pub(super) mod lite {
    queries!(
        sqlx::SqliteConnection,
        collate = "",
        title_has = "instr(lower(c.title), lower($5)) > 0"
    );
}
