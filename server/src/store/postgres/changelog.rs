//! The change log on Postgres: loads and tails in one statement each, the group commit
//! through the `confab_commit` functions (one round trip), compaction under the document's
//! row lock, the audit log's batches as arrays.

use async_trait::async_trait;
use confab_core::ids::{AccountId, DocId, TenantId};
use sqlx::Row;

use super::rows::{with_search, CommitRows, MessageBatch, Search, COMMIT, COMMIT_MESSAGE_BATCH};
use super::PgStore;
use crate::store::changelog::{pg as shared, COMPACT_DELETE, COMPACT_SNAPSHOT};
use crate::store::columns::{self, i64_of, limit_of, seq_changes, u64_of};
use crate::store::plan::{check_compact, Plan};
use crate::store::{
    ChangeLog, LogTail, NewChange, NewGeneration, PartFence, RejectionRecord, Result, StoreError,
    StoredDoc,
};

/// A fence's bounds, for its transaction only: it waits at most 5 s for the part's row (a
/// commit holds it for milliseconds, another node's fenced cut for its rebuild), and a
/// fence left idle for 10 s (the cut lease: its node is frozen or lost) is ended by
/// Postgres, so other nodes' commits of the part never wait on it for longer.
const FENCE_BOUNDS: &str = "SELECT set_config('lock_timeout', '5s', true), \
     set_config('idle_in_transaction_session_timeout', '10s', true)";

/// Postgres's `lock_not_available`: a lock not granted within `lock_timeout`.
fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "55P03")
}

/// Fences and installs a generation in `tx`, and tells the other nodes of it as of a commit
/// of its seq: their log tail then finds the snapshot past what they hold and loads the
/// document again.
async fn install_in(tx: &mut sqlx::PgConnection, doc: &DocId, next: &NewGeneration) -> Result<()> {
    shared::install_generation(&mut *tx, doc, next).await?;
    sqlx::query(
        "SELECT pg_notify('confab_changes', $1 || ' ' || $2 || ' ' || $2 || ' ' \
         || (extract(epoch FROM clock_timestamp()) * 1000)::int8)",
    )
    .bind(doc.to_string())
    .bind(i64_of(next.base_seq + 1, "seq")?)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A part's row lock, held by the open transaction that installs its next generation.
struct PgPartFence {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    doc: DocId,
}

#[async_trait]
impl PartFence for PgPartFence {
    async fn install(mut self: Box<Self>, next: &NewGeneration) -> Result<()> {
        install_in(&mut self.tx, &self.doc, next).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

impl PgStore {
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
        let x = &rows.search;
        let indexed;
        let sql = if x.ids.is_empty() {
            COMMIT
        } else {
            indexed = with_search(COMMIT, 61);
            &indexed
        };
        let query = sqlx::query(sql)
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
            .bind(&s.join_routes);
        bind_search(query, x).execute(&self.pool).await.map(drop)
    }

    /// The common batch, through `confab_commit_message_batch`, which writes its messages'
    /// search entries itself.
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
        sqlx::query(COMMIT_MESSAGE_BATCH)
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
            .bind(&batch.terms)
            .bind(batch.fence.map(|f| f.doc.as_str()))
            .bind(batch.fence.map(|f| f.policy))
            .execute(&self.pool)
            .await
            .map(drop)
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the search terms' arrays after a commit call's parameters (none without terms).
fn bind_search<'q>(query: PgQuery<'q>, x: &'q Search<'q>) -> PgQuery<'q> {
    if x.ids.is_empty() {
        return query;
    }
    query
        .bind(&x.tenants)
        .bind(&x.convs)
        .bind(&x.ids)
        .bind(&x.terms)
}

#[async_trait]
impl ChangeLog for PgStore {
    async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc> {
        // One statement, one snapshot: a compaction on another node cannot fall between the
        // docs row and the changes. And one round trip, not a transaction's four: a unit
        // holds a pool connection for as long as its runtime takes to resume it after each
        // answer, which under load is what ran the pool dry (docs/BENCHMARKS.md).
        // The docs row comes first (its `seq` is null), then the changes after the snapshot.
        let rows = sqlx::query(
            "SELECT d.last_seq, d.snapshot, d.snapshot_seq, d.policy_seq, d.generation, \
               NULL::int8 AS seq, NULL::bytea AS bytes FROM docs d WHERE d.doc_id = $1 \
             UNION ALL \
             SELECT NULL, NULL, NULL, NULL, NULL, c.seq, c.bytes FROM docs d \
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
            generation: u64_of(row.try_get("generation")?, "generation")?,
        })
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

    async fn changes_after(
        &self,
        doc: &DocId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        on_pool!(self, |conn| shared::changes_after(conn, doc, after, limit))
    }

    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        on_pool!(self, |conn| shared::seq_of(conn, doc, hash))
    }

    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        on_pool!(self, |conn| shared::actor_account(conn, tenant, actor))
    }

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
        sqlx::query(COMPACT_DELETE)
            .bind(&id)
            .bind(seq_i)
            .execute(&mut *tx)
            .await?;
        sqlx::query(COMPACT_SNAPSHOT)
            .bind(snapshot)
            .bind(seq_i)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn install_generation(&self, doc: &DocId, next: &NewGeneration) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        install_in(&mut tx, doc, next).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fence_part(&self, doc: &DocId) -> Result<Box<dyn PartFence>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(FENCE_BOUNDS).execute(&mut *tx).await?;
        let held = sqlx::query("SELECT 1 FROM docs WHERE doc_id = $1 FOR UPDATE")
            .bind(doc.to_string())
            .execute(&mut *tx)
            .await;
        match held {
            Ok(_) => Ok(Box::new(PgPartFence {
                tx,
                doc: doc.clone(),
            })),
            // Another node's cut held the row past the wait: it moved the part.
            Err(e) if is_lock_timeout(&e) => Err(StoreError::SeqConflict(doc.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    async fn doc_ids(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT doc_id FROM docs ORDER BY doc_id COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("doc_id").map_err(StoreError::from))
            .collect()
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

    async fn record_rejection(&self, record: &RejectionRecord) -> Result<()> {
        on_pool!(self, |conn| shared::record_rejection(conn, record))
    }

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

    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        on_pool!(self, |conn| shared::rejection_count(conn, tenant))
    }
}
