//! Postgres backend: production, and several server processes sharing one database.
//!
//! Acceptance stays serialized per document across nodes: `commit` locks the rows of the
//! batch's documents (`SELECT ... ORDER BY doc_id FOR UPDATE`, a fixed order so two nodes
//! never deadlock on them), compares each document's `last_seq` with the seq the batch
//! continues and refuses the whole batch with `SeqConflict` if another node got there
//! first. Message positions are taken with `UPDATE conversations SET last_pos = last_pos + n
//! ... RETURNING last_pos` under the row lock, so they are unique and gap-free across nodes.
//!
//! A batch is written by one call of the `confab_commit` function (migration 0002), so one
//! round trip whatever its size: the rows travel as arrays and are expanded with `UNNEST`.
//!
//! Text ordering (`doc_ids`, the tie-break of `conversations_of`, lock order) is bytewise
//! (`COLLATE "C"`), as in SQLite, whatever the database's default collation.

mod rows;

use std::time::Duration;

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

use super::columns::{
    self, conv_list_item, conv_row, i64_of, limit_of, message_row, seq_changes, u64_of,
};
use super::plan::{check_compact, Plan};
use super::{
    ConvListItem, ConvRow, LogTail, MessageRow, NewChange, RejectionRecord, Result, Store,
    StoreError, StoredDoc,
};

use self::rows::{CommitRows, MessageBatch, COMMIT, COMMIT_MESSAGES};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool.
const POOL_SIZE: u32 = 8;

/// Connections of the units' reader thread (`engine::reader`): its reads give their
/// connection back as soon as the answer arrives, so a few serve every unit.
const READ_POOL_SIZE: u32 = 4;

/// Connections of the committer's own pool: it runs one transaction at a time, and one
/// backend serving every commit keeps its caches warm (measured: 13% less database CPU
/// than two taking turns). A broken connection is replaced on the next commit.
const COMMIT_POOL_SIZE: u32 = 1;

/// What the write probe stores: 16 KiB, never compressed (migration 0007), so it needs
/// new pages.
static PROBE_PAD: [u8; 16 << 10] = [0xa5; 16 << 10];

/// How long a caller waits for a connection: short, so an outage is reported (and the
/// health state turns down) in about this time instead of stalling submits.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Postgres store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// One connection of its own for the health prober: a pool exhausted by stuck queries
    /// does not stop it from noticing that the database is back.
    probe: PgPool,
}

impl PgStore {
    /// Connects a pool of 8 connections to `url` (`postgres://user@host:port/db`). Does not
    /// migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        let probe = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(super::health::PROBE_TIMEOUT)
            .connect_lazy_with((*pool.connect_options()).clone());
        Ok(Self { pool, probe })
    }

    /// Closes the pool (waits for checked-out connections).
    pub async fn close(&self) {
        self.pool.close().await;
        self.probe.close().await;
    }
    /// Any batch, through `confab_commit`.
    async fn commit_any(&self, rows: &CommitRows<'_>) -> sqlx::Result<()> {
        // One statement, so one round trip and its own transaction: the function
        // (migration 0002) runs the steps in order and rolls everything back on an error.
        let d = &rows.docs;
        let c = &rows.changes;
        let b = &rows.bindings;
        let t = &rows.touched;
        let s = &rows.summaries;
        let m = &rows.members;
        let r = &rows.markers;
        let a = &rows.allocs;
        let g = &rows.messages;
        let u = &rows.updates;
        sqlx::query(COMMIT)
            .bind(&d.ids)
            .bind(&d.tenants)
            .bind(&d.prev)
            .bind(&d.last)
            .bind(&c.docs)
            .bind(&c.seqs)
            .bind(&c.hashes)
            .bind(&c.bytes)
            .bind(&c.accounts)
            .bind(&c.at)
            .bind(&b.tenants)
            .bind(&b.actors)
            .bind(&b.accounts)
            .bind(&b.at)
            .bind(&t.tenants)
            .bind(&t.convs)
            .bind(&t.created)
            .bind(&t.activity)
            .bind(&s.tenants)
            .bind(&s.convs)
            .bind(&s.kinds)
            .bind(&s.titles)
            .bind(&s.lifecycles)
            .bind(&s.parents)
            .bind(&s.created)
            .bind(&m.tenants)
            .bind(&m.convs)
            .bind(&m.accounts)
            .bind(&m.roles)
            .bind(&m.statuses)
            .bind(&r.tenants)
            .bind(&r.convs)
            .bind(&r.accounts)
            .bind(&r.messages)
            .bind(&a.tenants)
            .bind(&a.convs)
            .bind(&a.counts)
            .bind(&a.max_created)
            .bind(&g.tenants)
            .bind(&g.convs)
            .bind(&g.ids)
            .bind(&g.docs)
            .bind(&g.seqs)
            .bind(&g.authors)
            .bind(&g.kinds)
            .bind(&g.created)
            .bind(&g.previews)
            .bind(&g.deleted)
            .bind(&u.tenants)
            .bind(&u.convs)
            .bind(&u.ids)
            .bind(&u.previews)
            .bind(&u.deleted)
            .bind(&d.policy)
            .bind(&rows.fences.docs)
            .bind(&rows.fences.policy)
            .bind(&s.scopes)
            .bind(&s.descriptions)
            .bind(&s.active_members)
            .bind(&s.join_routes)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// The common batch, through `confab_commit_messages`.
    async fn commit_messages(
        &self,
        batch: &MessageBatch<'_>,
        rows: &CommitRows<'_>,
    ) -> sqlx::Result<()> {
        let c = &rows.changes;
        let g = &rows.messages;
        let (tenant, conv, count, created, max) = match batch.alloc {
            Some(a) => (
                Some(a.tenant),
                Some(a.conv),
                a.count,
                a.first_created,
                a.max_created,
            ),
            None => (None, None, 0, 0, 0),
        };
        sqlx::query(COMMIT_MESSAGES)
            .bind(batch.doc)
            .bind(batch.prev)
            .bind(batch.last)
            .bind(&c.seqs)
            .bind(&c.hashes)
            .bind(&c.bytes)
            .bind(&c.accounts)
            .bind(&c.at)
            .bind(tenant)
            .bind(conv)
            .bind(count)
            .bind(created)
            .bind(max)
            .bind(&g.ids)
            .bind(&g.seqs)
            .bind(&g.authors)
            .bind(&g.kinds)
            .bind(&g.created)
            .bind(&g.previews)
            .bind(&g.deleted)
            .bind(batch.fence.map(|f| f.doc.as_str()))
            .bind(batch.fence.map(|f| f.policy))
            .execute(&self.pool)
            .await
            .map(drop)
    }
}

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
impl Store for PgStore {
    fn for_commit_thread(&self) -> Option<std::sync::Arc<dyn Store>> {
        // Lazy: the connections are opened by their first user, the committer's runtime,
        // so their I/O is driven there and not behind the connection tasks.
        let options = (*self.pool.connect_options()).clone();
        // No ping before each commit (sqlx's default): it is a second round trip on every
        // commit's critical path. A dead connection fails that one commit, whose clients
        // resubmit (an accepted change resubmitted is an ack), and is replaced.
        let pool = PgPoolOptions::new()
            .max_connections(COMMIT_POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Some(std::sync::Arc::new(PgStore {
            pool,
            probe: self.probe.clone(),
        }))
    }

    fn for_read_thread(&self) -> Option<std::sync::Arc<dyn Store>> {
        // Lazy, as the committer's: made and driven by the reader thread's runtime.
        let pool = PgPoolOptions::new()
            .max_connections(READ_POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        Some(std::sync::Arc::new(PgStore {
            pool,
            probe: self.probe.clone(),
        }))
    }

    fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions> {
        Some((*self.pool.connect_options()).clone())
    }

    async fn migrate(&self) -> Result<()> {
        // sqlx takes an advisory lock: nodes starting together migrate once.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn probe(&self, write: bool) -> Result<()> {
        if write {
            // Proves the database takes writes that need new disk space, as commits do
            // (migration 0007): an update in place would succeed on a full disk.
            let mut tx = self.probe.begin().await?;
            sqlx::query("TRUNCATE storage_probe_space")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO storage_probe_space (id, pad) VALUES (1, $1)")
                .bind(&PROBE_PAD[..])
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE storage_probe SET at = $1 WHERE id = 1")
                .bind(crate::clock::now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        } else {
            sqlx::query("SELECT 1").execute(&self.probe).await?;
        }
        Ok(())
    }

    async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc> {
        // One statement, one snapshot: a compaction on another node cannot fall between the
        // docs row and the changes. And one round trip, not a transaction's four: a unit
        // holds a pool connection for as long as its runtime takes to resume it after each
        // answer, which under load is what ran the pool dry (docs/BENCHMARKS.md).
        // The docs row comes first (its `seq` is null), then the changes after the snapshot.
        let rows = sqlx::query(
            "SELECT d.last_seq, d.snapshot, d.snapshot_seq, d.policy_seq, \
               NULL::int8 AS seq, NULL::bytea AS bytes FROM docs d WHERE d.doc_id = $1 \
             UNION ALL \
             SELECT NULL, NULL, NULL, NULL, c.seq, c.bytes FROM docs d \
               JOIN changes c ON c.doc_id = d.doc_id AND c.seq > d.snapshot_seq \
               WHERE d.doc_id = $1 \
             ORDER BY seq NULLS FIRST",
        )
        .bind(doc.to_string())
        .fetch_all(&self.pool)
        .await?;
        let Some((row, changes)) = rows.split_first() else {
            return Ok(StoredDoc::default());
        };
        Ok(StoredDoc {
            snapshot: row.try_get("snapshot")?,
            snapshot_seq: u64_of(row.try_get("snapshot_seq")?, "snapshot_seq")?,
            changes: seq_changes(changes)?,
            last_seq: u64_of(row.try_get("last_seq")?, "last_seq")?,
            policy_seq: u64_of(row.try_get("policy_seq")?, "policy_seq")?,
        })
    }

    async fn log_tail(&self, doc: &DocId, after: u64, limit: usize) -> Result<LogTail> {
        // One statement, one snapshot: the row's seqs and the changes agree.
        let rows = sqlx::query(
            "SELECT d.last_seq, d.policy_seq, d.snapshot_seq, c.seq, c.bytes FROM docs d \
             LEFT JOIN LATERAL (SELECT seq, bytes FROM changes \
               WHERE doc_id = d.doc_id AND seq > $2 ORDER BY seq LIMIT $3) c ON TRUE \
             WHERE d.doc_id = $1 ORDER BY c.seq",
        )
        .bind(doc.to_string())
        .bind(i64_of(after, "after")?)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await?;
        columns::log_tail(&rows)
    }

    async fn commit(&self, changes: &[NewChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let plan = Plan::build(changes)?;
        let rows = CommitRows::of(&plan);
        let result = match MessageBatch::of(&plan) {
            Some(batch) => self.commit_messages(&batch, &rows).await,
            None => self.commit_any(&rows).await,
        };
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("CF001") => {
                Err(StoreError::SeqConflict(e.message().to_owned()))
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("CF003") => {
                Err(StoreError::PolicyMoved(e.message().to_owned()))
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("CF002") => {
                Err(StoreError::Corrupt(e.message().to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn changes_after(
        &self,
        doc: &DocId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT seq, bytes FROM changes WHERE doc_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(doc.to_string())
        .bind(i64_of(after, "after")?)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await?;
        seq_changes(&rows)
    }

    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        let row = sqlx::query(
            "SELECT COALESCE((SELECT seq FROM changes WHERE doc_id = $1 AND hash = $2), \
             (SELECT NULLIF(snapshot_seq, 0) FROM docs WHERE doc_id = $1)) AS seq",
        )
        .bind(doc.to_string())
        .bind(&hash[..])
        .fetch_one(&self.pool)
        .await?;
        let seq: Option<i64> = row.try_get("seq")?;
        seq.map(|s| u64_of(s, "seq")).transpose()
    }

    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        let row = sqlx::query("SELECT account FROM actors WHERE tenant = $1 AND actor = $2")
            .bind(tenant.as_str())
            .bind(actor)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| columns::account(r.try_get("account")?))
            .transpose()
    }

    async fn record_rejection(&self, record: &RejectionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO rejections (tenant, doc_id, account, hash, code, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(record.tenant.as_str())
        .bind(&record.doc)
        .bind(record.account.as_str())
        .bind(record.hash.as_ref().map(|h| &h[..]))
        .bind(record.code.as_str())
        .bind(&record.reason)
        .bind(record.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One statement: the rows travel as arrays, expanded with `UNNEST`.
    async fn record_rejections(&self, records: &[RejectionRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&RejectionRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
        let hashes: Vec<Option<Vec<u8>>> =
            records.iter().map(|r| r.hash.map(|h| h.to_vec())).collect();
        let at: Vec<i64> = records.iter().map(|r| r.at).collect();
        sqlx::query(
            "INSERT INTO rejections (tenant, doc_id, account, hash, code, reason, at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], \
             $6::text[], $7::bigint[])",
        )
        .bind(column(|r| r.tenant.as_str().to_owned()))
        .bind(column(|r| r.doc.clone()))
        .bind(column(|r| r.account.as_str().to_owned()))
        .bind(hashes)
        .bind(column(|r| r.code.as_str().to_owned()))
        .bind(column(|r| r.reason.clone()))
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Refuses (`Corrupt`) a seq beyond the document's last seq and (`SeqConflict`) a seq
    /// older than the current snapshot (another compaction got further first). Holds the
    /// document's row lock, so commits of the document wait for it.
    async fn compact(&self, doc: &DocId, snapshot: &[u8], seq: u64) -> Result<()> {
        let id = doc.to_string();
        let seq_i = i64_of(seq, "seq")?;
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT last_seq, snapshot_seq FROM docs WHERE doc_id = $1 FOR UPDATE")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
        let (last, snap): (i64, i64) = match row {
            Some(r) => (r.try_get("last_seq")?, r.try_get("snapshot_seq")?),
            None if seq == 0 => return Ok(()),
            None => (0, 0),
        };
        check_compact(&id, seq_i, last, snap)?;
        sqlx::query("DELETE FROM changes WHERE doc_id = $1 AND seq <= $2")
            .bind(&id)
            .bind(seq_i)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE docs SET snapshot = $1, snapshot_seq = $2 WHERE doc_id = $3")
            .bind(snapshot)
            .bind(seq_i)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn doc_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT doc_id FROM docs ORDER BY doc_id COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("doc_id").map_err(StoreError::from))
            .collect()
    }

    async fn membership(
        &self,
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
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("role")?, r.try_get("status")?)))
            .transpose()
    }

    async fn conversation(&self, tenant: &TenantId, conv: &ConvId) -> Result<Option<ConvRow>> {
        let row = sqlx::query(
            "SELECT tenant, conv, kind, title, lifecycle, parent, created_at, scope, description, \
             active_members, join_route FROM conversations \
             WHERE tenant = $1 AND conv = $2",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(conv_row).transpose()
    }

    async fn conv_stats(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
    ) -> Result<Option<super::stats::ConvStats>> {
        super::stats::stats_pg(&self.pool, tenant, conv).await
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
        let rows = sqlx::query(
            "SELECT m.message, m.pos, m.period, m.part::int8 AS part, m.seq, m.author, m.kind, \
             m.created_at, m.preview, m.deleted, coalesce(v.views, 0) AS views \
             FROM conversations c JOIN messages m ON m.cid = c.id \
             LEFT JOIN message_views v ON v.cid = m.cid AND v.pos = m.pos \
             WHERE c.tenant = $1 AND c.conv = $2 AND m.pos < $3 \
             ORDER BY m.pos DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
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

    async fn buckets(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        before: Option<confab_core::ids::Bucket>,
        limit: usize,
    ) -> Result<super::buckets::BucketPage> {
        super::buckets::list_pg(&self.pool, tenant, conv, before, limit).await
    }

    async fn conversations_with_buckets(
        &self,
        after: Option<&super::retention::ConvKey>,
        limit: usize,
    ) -> Result<Vec<super::retention::ConvKey>> {
        let mut conn = self.pool.acquire().await?;
        super::retention::conversations_pg(&mut conn, after, limit).await
    }

    async fn invites(
        &self,
        op: super::invites::InviteOp<'_>,
    ) -> Result<super::invites::InviteAnswer> {
        let mut conn = self.pool.acquire().await?;
        super::invites::run_pg(&mut conn, op).await
    }

    async fn contacts(
        &self,
        op: super::contacts::ContactOp<'_>,
    ) -> Result<super::contacts::ContactAnswer> {
        let mut conn = self.pool.acquire().await?;
        super::contacts::run_pg(&mut conn, op).await
    }

    async fn notify(&self, channel: &'static str, payloads: &[String]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u (p, i) ORDER BY i")
            .bind(channel)
            .bind(payloads)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn clients(
        &self,
        op: super::clients::ClientsOp<'_>,
    ) -> Result<super::clients::ClientsAnswer> {
        let mut conn = self.pool.acquire().await?;
        super::clients::run_pg(&mut conn, op).await
    }

    async fn webhooks(
        &self,
        op: super::webhooks::OutboxOp<'_>,
    ) -> Result<super::webhooks::OutboxAnswer> {
        let mut conn = self.pool.acquire().await?;
        super::webhooks::run_pg(&mut conn, op).await
    }

    async fn notifications(
        &self,
        op: super::notifications::NotifyOp<'_>,
    ) -> Result<super::notifications::NotifyAnswer> {
        let mut conn = self.pool.acquire().await?;
        super::notifications::run_pg(&mut conn, op).await
    }

    async fn drop_buckets(
        &self,
        req: super::retention::DropRequest<'_>,
    ) -> Result<super::retention::Dropped> {
        let mut conn = self.pool.acquire().await?;
        super::retention::drop_pg(&mut conn, req).await
    }

    async fn discover(
        &self,
        query: &super::discovery::DiscoverQuery<'_>,
    ) -> Result<Vec<super::discovery::DiscoverItem>> {
        super::discovery::list_pg(&self.pool, query).await
    }

    async fn project_discovery(
        &self,
        op: super::discovery::ProjectOp<'_>,
    ) -> Result<super::discovery::ProjectAnswer> {
        let mut conn = self.pool.acquire().await?;
        super::discovery::project_pg(&mut conn, op).await
    }

    async fn memberships_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<confab_core::protocol::Membership>> {
        super::memberships::list_pg(&self.pool, tenant, account).await
    }

    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM rejections WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn schedule(
        &self,
        op: super::schedule::ScheduleOp<'_>,
    ) -> Result<super::schedule::ScheduleAnswer> {
        super::schedule::run_pg(&self.pool, op).await
    }
    async fn stored_bytes(&self, doc: &DocId) -> Result<u64> {
        let row = sqlx::query(
            "SELECT (COALESCE((SELECT SUM(octet_length(bytes)) FROM changes WHERE doc_id = $1), 0) \
             + COALESCE((SELECT octet_length(snapshot) FROM docs WHERE doc_id = $1), 0))::int8 AS n",
        )
        .bind(doc.to_string())
        .fetch_one(&self.pool)
        .await?;
        u64_of(row.try_get("n")?, "stored bytes")
    }
}
