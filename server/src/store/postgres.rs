//! Postgres backend: production, and several server processes sharing one database.
//!
//! Acceptance stays serialized per document across nodes: `commit` locks the rows of the
//! batch's documents (`SELECT ... ORDER BY doc_id FOR UPDATE`, a fixed order so two nodes
//! never deadlock on them), compares each document's `last_seq` with the seq the batch
//! continues and refuses the whole batch with `SeqConflict` if another node got there
//! first. Message positions are taken with `UPDATE conversations SET last_pos = last_pos + n
//! ... RETURNING last_pos` under the row lock, so they are unique and gap-free across nodes.
//!
//! A batch is written with a fixed number of statements whatever its size: the rows travel
//! as arrays and are expanded with `UNNEST` (one prepared statement per table).
//!
//! Text ordering (`doc_ids`, the tie-break of `conversations_of`, lock order) is bytewise
//! (`COLLATE "C"`), as in SQLite, whatever the database's default collation.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

use super::sqlite::shared::{
    self, check_compact, conv_list_item, conv_row, i64_of, limit_of, message_row, u64_of, Plan,
};
use super::{
    ConvListItem, ConvRow, MessageRow, NewChange, RejectionRecord, Result, Store, StoreError,
    StoredDoc,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool.
const POOL_SIZE: u32 = 8;

/// The Postgres store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool of 8 connections to `url` (`postgres://user@host:port/db`). Does not
    /// migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Closes the pool (waits for checked-out connections).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Unread counts and last messages of an account's active conversations. The last message
/// is a `LATERAL ... ORDER BY pos DESC LIMIT 1`: one backward step on `messages_pos` per
/// conversation whatever the planner's statistics say.
const CONVERSATIONS_OF: &str = "\
    SELECT c.tenant, c.conv, c.kind, c.title, c.lifecycle, c.parent, c.created_at, m.role, \
      (SELECT COUNT(*) FROM messages x \
        WHERE x.tenant = c.tenant AND x.conv = c.conv AND NOT x.deleted \
          AND x.author <> m.account \
          AND x.pos > COALESCE((SELECT rm.pos FROM read_markers r JOIN messages rm \
                ON rm.tenant = r.tenant AND rm.conv = r.conv AND rm.message = r.message \
              WHERE r.tenant = c.tenant AND r.conv = c.conv AND r.account = m.account), 0) \
      ) AS unread, \
      l.message AS l_message, l.pos AS l_pos, l.doc_id AS l_doc_id, l.seq AS l_seq, \
      l.author AS l_author, l.kind AS l_kind, l.created_at AS l_created_at, \
      l.preview AS l_preview, l.deleted AS l_deleted \
    FROM memberships m \
    JOIN conversations c ON c.tenant = m.tenant AND c.conv = m.conv \
    LEFT JOIN LATERAL (SELECT * FROM messages y WHERE y.tenant = c.tenant AND y.conv = c.conv \
      ORDER BY y.pos DESC LIMIT 1) l ON TRUE \
    WHERE m.tenant = $1 AND m.account = $2 AND m.status = 'active' \
    ORDER BY c.last_activity DESC, c.conv COLLATE \"C\"";

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> {
        // sqlx takes an advisory lock: nodes starting together migrate once.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn load_doc(&self, doc: &DocId) -> Result<StoredDoc> {
        let id = doc.to_string();
        // One snapshot for the docs row and the changes: a compaction on another node cannot
        // fall between the two reads.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let Some(row) =
            sqlx::query("SELECT last_seq, snapshot, snapshot_seq FROM docs WHERE doc_id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            tx.commit().await?;
            return Ok(StoredDoc::default());
        };
        let last_seq = u64_of(row.try_get("last_seq")?, "last_seq")?;
        let snapshot: Option<Vec<u8>> = row.try_get("snapshot")?;
        let snapshot_seq_raw: i64 = row.try_get("snapshot_seq")?;
        let snapshot_seq = u64_of(snapshot_seq_raw, "snapshot_seq")?;
        let rows = sqlx::query(
            "SELECT seq, bytes FROM changes WHERE doc_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(&id)
        .bind(snapshot_seq_raw)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            changes.push((u64_of(row.try_get("seq")?, "seq")?, row.try_get("bytes")?));
        }
        Ok(StoredDoc {
            snapshot,
            snapshot_seq,
            changes,
            last_seq,
        })
    }

    async fn commit(&self, changes: &[NewChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut plan = Plan::build(changes)?;
        // Dropping `tx` on an error rolls back.
        let mut tx = self.pool.begin().await?;

        // 1. Seq compare-and-set. Documents the batch starts create their row first (a
        //    concurrent creator of the same row makes this wait, then see its seq).
        let new_docs: Vec<&str> = plan
            .docs
            .iter()
            .filter(|d| d.prev == 0)
            .map(|d| d.doc.as_str())
            .collect();
        if !new_docs.is_empty() {
            let tenants: Vec<&str> = plan
                .docs
                .iter()
                .filter(|d| d.prev == 0)
                .map(|d| d.tenant)
                .collect();
            sqlx::query(
                "INSERT INTO docs (doc_id, tenant) \
                 SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT (doc_id) DO NOTHING",
            )
            .bind(&new_docs)
            .bind(&tenants)
            .execute(&mut *tx)
            .await?;
        }
        let doc_ids: Vec<&str> = plan.docs.iter().map(|d| d.doc.as_str()).collect();
        let rows = sqlx::query(
            "SELECT doc_id, last_seq FROM docs WHERE doc_id = ANY($1) \
             ORDER BY doc_id COLLATE \"C\" FOR UPDATE",
        )
        .bind(&doc_ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut current: HashMap<String, i64> = HashMap::with_capacity(rows.len());
        for row in rows {
            current.insert(row.try_get("doc_id")?, row.try_get("last_seq")?);
        }
        plan.check_seqs(&current)?;
        let lasts: Vec<i64> = plan.docs.iter().map(|d| d.last).collect();
        sqlx::query(
            "UPDATE docs SET last_seq = u.l FROM UNNEST($1::text[], $2::int8[]) AS u(d, l) \
             WHERE docs.doc_id = u.d",
        )
        .bind(&doc_ids)
        .bind(&lasts)
        .execute(&mut *tx)
        .await?;

        // 2. The change log.
        {
            let c = &plan.changes;
            let docs: Vec<&str> = c.iter().map(|x| x.doc.as_str()).collect();
            let seqs: Vec<i64> = c.iter().map(|x| x.seq).collect();
            let hashes: Vec<&[u8]> = c.iter().map(|x| x.hash).collect();
            let bytes: Vec<&[u8]> = c.iter().map(|x| x.bytes).collect();
            let accounts: Vec<&str> = c.iter().map(|x| x.account).collect();
            let at: Vec<i64> = c.iter().map(|x| x.accepted_at).collect();
            sqlx::query(
                "INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at) \
                 SELECT * FROM UNNEST($1::text[], $2::int8[], $3::bytea[], $4::bytea[], \
                 $5::text[], $6::int8[])",
            )
            .bind(&docs)
            .bind(&seqs)
            .bind(&hashes)
            .bind(&bytes)
            .bind(&accounts)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        }

        // 3. Actor bindings.
        if !plan.bindings.is_empty() {
            let b = &plan.bindings;
            let tenants: Vec<&str> = b.iter().map(|x| x.tenant).collect();
            let actors: Vec<&[u8]> = b.iter().map(|x| x.actor).collect();
            let accounts: Vec<&str> = b.iter().map(|x| x.account).collect();
            let at: Vec<i64> = b.iter().map(|x| x.bound_at).collect();
            sqlx::query(
                "INSERT INTO actors (tenant, actor, account, bound_at) \
                 SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::int8[]) \
                 ON CONFLICT (tenant, actor) DO NOTHING",
            )
            .bind(&tenants)
            .bind(&actors)
            .bind(&accounts)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            let rows = sqlx::query(
                "SELECT a.tenant, a.actor, a.account FROM actors a \
                 JOIN UNNEST($1::text[], $2::bytea[]) AS u(t, x) \
                 ON a.tenant = u.t AND a.actor = u.x",
            )
            .bind(&tenants)
            .bind(&actors)
            .fetch_all(&mut *tx)
            .await?;
            let mut bound = Vec::with_capacity(rows.len());
            for row in rows {
                bound.push((
                    row.try_get::<String, _>("tenant")?,
                    row.try_get::<Vec<u8>, _>("actor")?,
                    row.try_get::<String, _>("account")?,
                ));
            }
            plan.check_bindings(&bound)?;
        }

        // 4. Conversations. Every conversation row the batch touches (summaries and message
        //    positions) is created if missing, then locked in key order before any is
        //    written: two nodes committing to overlapping conversations queue, never
        //    deadlock. Rows, locks and updates go in one global order: docs, conversations,
        //    memberships, read markers, messages.
        let mut touched: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        for a in &plan.allocs {
            touched.insert((a.tenant, a.conv), (a.first_created, 0));
        }
        for c in &plan.conversations {
            // A new summary's activity starts at its creation (as in the SQLite upsert).
            touched.insert(
                (c.tenant.as_str(), c.conv.as_str()),
                (c.created_at, c.created_at),
            );
        }
        if !touched.is_empty() {
            let tenants: Vec<&str> = touched.keys().map(|k| k.0).collect();
            let convs: Vec<&str> = touched.keys().map(|k| k.1).collect();
            let created: Vec<i64> = touched.values().map(|v| v.0).collect();
            let activity: Vec<i64> = touched.values().map(|v| v.1).collect();
            sqlx::query(
                "INSERT INTO conversations \
                 (tenant, conv, kind, lifecycle, created_at, last_activity) \
                 SELECT t, c, 'unknown', 'active', ca, la \
                 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) AS u(t, c, ca, la) \
                 ON CONFLICT (tenant, conv) DO NOTHING",
            )
            .bind(&tenants)
            .bind(&convs)
            .bind(&created)
            .bind(&activity)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "SELECT 1 FROM conversations \
                 WHERE (tenant, conv) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
                 ORDER BY tenant COLLATE \"C\", conv COLLATE \"C\" FOR UPDATE",
            )
            .bind(&tenants)
            .bind(&convs)
            .execute(&mut *tx)
            .await?;
        }
        if !plan.conversations.is_empty() {
            // The rows exist and are locked: replace the summary, keep last_pos and
            // last_activity.
            let c = &plan.conversations;
            let tenants: Vec<&str> = c.iter().map(|x| x.tenant.as_str()).collect();
            let convs: Vec<&str> = c.iter().map(|x| x.conv.as_str()).collect();
            let kinds: Vec<&str> = c.iter().map(|x| x.kind.as_str()).collect();
            let titles: Vec<Option<&str>> = c.iter().map(|x| x.title.as_deref()).collect();
            let lifecycles: Vec<&str> = c.iter().map(|x| x.lifecycle.as_str()).collect();
            let parents: Vec<Option<&str>> = c
                .iter()
                .map(|x| x.parent.as_ref().map(ConvId::as_str))
                .collect();
            let created: Vec<i64> = c.iter().map(|x| x.created_at).collect();
            sqlx::query(
                "UPDATE conversations c SET kind = u.k, title = u.ti, lifecycle = u.l, \
                 parent = u.p, created_at = u.ca \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::int8[]) AS u(t, cv, k, ti, l, p, ca) \
                 WHERE c.tenant = u.t AND c.conv = u.cv",
            )
            .bind(&tenants)
            .bind(&convs)
            .bind(&kinds)
            .bind(&titles)
            .bind(&lifecycles)
            .bind(&parents)
            .bind(&created)
            .execute(&mut *tx)
            .await?;
        }

        // 5. Members and read markers.
        if !plan.members.is_empty() {
            let m = &plan.members;
            let tenants: Vec<&str> = m.iter().map(|x| x.tenant).collect();
            let convs: Vec<&str> = m.iter().map(|x| x.conv).collect();
            let accounts: Vec<&str> = m.iter().map(|x| x.account).collect();
            let roles: Vec<&str> = m.iter().map(|x| x.role).collect();
            let statuses: Vec<&str> = m.iter().map(|x| x.status).collect();
            sqlx::query(
                "INSERT INTO memberships (tenant, conv, account, role, status) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 ON CONFLICT (tenant, conv, account) DO UPDATE SET role = EXCLUDED.role, \
                 status = EXCLUDED.status",
            )
            .bind(&tenants)
            .bind(&convs)
            .bind(&accounts)
            .bind(&roles)
            .bind(&statuses)
            .execute(&mut *tx)
            .await?;
        }
        if !plan.markers.is_empty() {
            let m = &plan.markers;
            let tenants: Vec<&str> = m.iter().map(|x| x.tenant).collect();
            let convs: Vec<&str> = m.iter().map(|x| x.conv).collect();
            let accounts: Vec<&str> = m.iter().map(|x| x.account).collect();
            let messages: Vec<&str> = m.iter().map(|x| x.message).collect();
            sqlx::query(
                "INSERT INTO read_markers (tenant, conv, account, message) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
                 ON CONFLICT (tenant, conv, account) DO UPDATE SET message = EXCLUDED.message",
            )
            .bind(&tenants)
            .bind(&convs)
            .bind(&accounts)
            .bind(&messages)
            .execute(&mut *tx)
            .await?;
        }

        // 6. Messages: positions come from the conversation rows, locked in step 4.
        if !plan.messages.is_empty() {
            let a = &plan.allocs;
            let tenants: Vec<&str> = a.iter().map(|x| x.tenant).collect();
            let convs: Vec<&str> = a.iter().map(|x| x.conv).collect();
            let counts: Vec<i64> = a.iter().map(|x| x.count).collect();
            let max_created: Vec<i64> = a.iter().map(|x| x.max_created).collect();
            let rows = sqlx::query(
                "UPDATE conversations c SET last_pos = c.last_pos + u.n, \
                 last_activity = GREATEST(c.last_activity, u.mx) \
                 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) AS u(t, cv, n, mx) \
                 WHERE c.tenant = u.t AND c.conv = u.cv \
                 RETURNING c.tenant, c.conv, c.last_pos",
            )
            .bind(&tenants)
            .bind(&convs)
            .bind(&counts)
            .bind(&max_created)
            .fetch_all(&mut *tx)
            .await?;
            let mut ends: HashMap<(String, String), i64> = HashMap::with_capacity(rows.len());
            for row in rows {
                ends.insert(
                    (row.try_get("tenant")?, row.try_get("conv")?),
                    row.try_get("last_pos")?,
                );
            }
            plan.assign_positions(&ends)?;

            let m = &plan.messages;
            let tenants: Vec<&str> = m.iter().map(|x| x.row.tenant.as_str()).collect();
            let convs: Vec<&str> = m.iter().map(|x| x.row.conv.as_str()).collect();
            let ids: Vec<&str> = m.iter().map(|x| x.row.message.as_str()).collect();
            let pos: Vec<i64> = m.iter().map(|x| x.pos).collect();
            let docs: Vec<&str> = m.iter().map(|x| x.row.doc.as_str()).collect();
            let seqs: Vec<i64> = m.iter().map(|x| x.seq).collect();
            let authors: Vec<&str> = m.iter().map(|x| x.row.author.as_str()).collect();
            let kinds: Vec<&str> = m.iter().map(|x| x.row.kind.as_str()).collect();
            let created: Vec<i64> = m.iter().map(|x| x.row.created_at).collect();
            let previews: Vec<&str> = m.iter().map(|x| x.preview).collect();
            let deleted: Vec<bool> = m.iter().map(|x| x.deleted).collect();
            sqlx::query(
                "INSERT INTO messages (tenant, conv, message, pos, doc_id, seq, author, kind, \
                 created_at, preview, deleted) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], \
                 $5::text[], $6::int8[], $7::text[], $8::text[], $9::int8[], $10::text[], \
                 $11::bool[]) \
                 ON CONFLICT (tenant, conv, message) DO NOTHING",
            )
            .bind(&tenants)
            .bind(&convs)
            .bind(&ids)
            .bind(&pos)
            .bind(&docs)
            .bind(&seqs)
            .bind(&authors)
            .bind(&kinds)
            .bind(&created)
            .bind(&previews)
            .bind(&deleted)
            .execute(&mut *tx)
            .await?;
        }

        // 7. Edits and deletions of messages committed before this batch.
        if !plan.updates.is_empty() {
            let u = &plan.updates;
            let tenants: Vec<&str> = u.iter().map(|x| x.tenant).collect();
            let convs: Vec<&str> = u.iter().map(|x| x.conv).collect();
            let ids: Vec<&str> = u.iter().map(|x| x.message).collect();
            let previews: Vec<&str> = u.iter().map(|x| x.preview).collect();
            let deleted: Vec<bool> = u.iter().map(|x| x.deleted).collect();
            sqlx::query(
                "UPDATE messages m SET preview = u.p, deleted = u.d \
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[]) \
                 AS u(t, c, id, p, d) \
                 WHERE m.tenant = u.t AND m.conv = u.c AND m.message = u.id",
            )
            .bind(&tenants)
            .bind(&convs)
            .bind(&ids)
            .bind(&previews)
            .bind(&deleted)
            .execute(&mut *tx)
            .await?;
        }

        tx.commit().await?;
        Ok(())
    }

    /// After a compaction the changes up to the snapshot are gone: with `after` older than
    /// the snapshot this returns only the changes after it, and the caller sends the
    /// snapshot (from [`Store::load_doc`]) first.
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
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((u64_of(row.try_get("seq")?, "seq")?, row.try_get("bytes")?));
        }
        Ok(out)
    }

    async fn seq_of(&self, doc: &DocId, hash: &[u8; 32]) -> Result<Option<u64>> {
        let row = sqlx::query(
            "SELECT seq FROM changes WHERE doc_id = $1 AND hash = $2 \
             UNION ALL SELECT seq FROM compacted_hashes WHERE doc_id = $1 AND hash = $2 LIMIT 1",
        )
        .bind(doc.to_string())
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| u64_of(r.try_get("seq")?, "seq")).transpose()
    }

    async fn actor_account(&self, tenant: &TenantId, actor: &[u8]) -> Result<Option<AccountId>> {
        let row = sqlx::query("SELECT account FROM actors WHERE tenant = $1 AND actor = $2")
            .bind(tenant.as_str())
            .bind(actor)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| shared::account(r.try_get("account")?))
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
        .bind(&record.code)
        .bind(&record.reason)
        .bind(record.at)
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
        sqlx::query(
            "INSERT INTO compacted_hashes (doc_id, hash, seq) \
             SELECT doc_id, hash, seq FROM changes WHERE doc_id = $1 AND seq <= $2 \
             ON CONFLICT (doc_id, hash) DO NOTHING",
        )
        .bind(&id)
        .bind(seq_i)
        .execute(&mut *tx)
        .await?;
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
            "SELECT tenant, conv, kind, title, lifecycle, parent, created_at FROM conversations \
             WHERE tenant = $1 AND conv = $2",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(conv_row).transpose()
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
            "SELECT message, pos, doc_id, seq, author, kind, created_at, preview, deleted \
             FROM messages WHERE tenant = $1 AND conv = $2 AND pos < $3 \
             ORDER BY pos DESC LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(conv.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| message_row(r, "", tenant, conv))
            .collect()
    }

    async fn rejection_count(&self, tenant: &TenantId) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM rejections WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
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
