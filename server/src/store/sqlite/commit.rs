//! A group commit on SQLite in one call: the shared plan written on the calling thread
//! through the writer connection's own handle, taken from sqlx's worker thread for the
//! whole transaction.
//!
//! Through sqlx every statement is a round trip to the connection's worker thread (two
//! thread wake-ups, ~30 µs each on the CI VM), and a message batch was about ten of them
//! (`BEGIN` alone is two). Here the only hop is taking the handle (`lock_handle`); the
//! statements, each prepared once per commit and stepped once per row, and the durable
//! `COMMIT` run where the committer runs (its own thread, docs/BENCHMARKS.md).
//!
//! Multi-row `VALUES` statements ([`insert_values`]) remain for the audit log's batches,
//! which still go through sqlx.

use std::collections::HashMap;

use confab_core::ids::ConvId;
use rusqlite::{params, OptionalExtension};
use sqlx::query_builder::Separated;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::store::plan::Plan;
use crate::store::{NewChange, Result};

/// Rows per multi-row statement (a power of two, see [`chunks`]).
const CHUNK: usize = 128;

/// Splits `items` into slices of `CHUNK` rows, then the rest in descending powers of two, so
/// the multi-row statements come in at most a handful of shapes (the statement cache keeps
/// them prepared).
fn chunks<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut size = CHUNK;
    while !items.is_empty() {
        while size > items.len() {
            size /= 2;
        }
        let (head, tail) = items.split_at(size);
        out.push(head);
        items = tail;
    }
    out
}

/// Runs `head VALUES (...), (...) tail` over `items`, chunked.
pub(super) async fn insert_values<'a, T, F>(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    items: &'a [T],
    mut push: F,
) -> Result<()>
where
    F: FnMut(&mut Separated<'_, 'a, Sqlite, &'static str>, &'a T),
{
    for chunk in chunks(items) {
        let mut qb = QueryBuilder::<Sqlite>::new(head);
        qb.push_values(chunk, |mut b, item| push(&mut b, item));
        qb.push(tail);
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// One group commit on the writer connection (see [`ChangeLog::commit`]): one hop to take the
/// handle, then everything on this thread.
///
/// On an error the transaction is rolled back here (SQLite may already have done it, on
/// `SQLITE_FULL` and I/O errors), so the connection goes back to sqlx as it came: no
/// transaction open, which sqlx never knew about.
///
/// [`ChangeLog::commit`]: crate::store::ChangeLog::commit
pub(super) async fn commit_on(conn: &mut SqliteConnection, changes: &[NewChange]) -> Result<()> {
    let mut plan = Plan::build(changes)?;
    in_transaction(conn, |db| write(db, &mut plan)).await
}

/// Runs `f` in one `BEGIN IMMEDIATE` … `COMMIT` on `conn`'s own handle, here (see
/// [`commit_on`]), rolled back if `f` fails.
pub(super) async fn in_transaction<T>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle();
    // SAFETY: `handle` keeps sqlx's worker thread off this connection until it is dropped,
    // after `db`; `db` does not own the handle (never closes it) and finalizes the
    // statements it prepared when dropped, before the worker uses the connection again.
    #[allow(unsafe_code)]
    let db = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }?;
    let result = blocking(|| transaction(&db, f));
    drop(db);
    drop(handle);
    result
}

/// Runs `f` here. On a multi-threaded runtime (tests, the committer's fallback when it gets
/// no thread of its own, the search indexer) the worker's other tasks move on while it
/// blocks; the committer's own current-thread runtime has none.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// `BEGIN IMMEDIATE`, `f`'s writes, `COMMIT`; a rollback on any error.
fn transaction<T>(
    db: &rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    // BEGIN IMMEDIATE takes the write lock now: what `f` reads (a commit's seq check) and
    // the writes that follow see no other writer in between.
    db.execute_batch("BEGIN IMMEDIATE")?;
    let result = f(db).and_then(|out| {
        db.execute_batch("COMMIT")?;
        Ok(out)
    });
    if result.is_err() && !db.is_autocommit() {
        // If this fails too, the caller replaces the connection (`after_write`).
        let _ = db.execute_batch("ROLLBACK");
    }
    result
}

/// The plan's statements, in the order and with the checks of the Postgres backend.
fn write(db: &rusqlite::Connection, plan: &mut Plan<'_>) -> Result<()> {
    // 1. Seq compare-and-set for every document of the batch.
    let mut current: HashMap<String, i64> = HashMap::with_capacity(plan.docs.len());
    {
        let mut st = db.prepare_cached("SELECT last_seq FROM docs WHERE doc_id = ?1")?;
        for d in &plan.docs {
            if let Some(seq) = st.query_row([&d.doc], |r| r.get(0)).optional()? {
                current.insert(d.doc.clone(), seq);
            }
        }
    }
    plan.check_seqs(&current)?;
    {
        let mut st = db.prepare_cached(
            "INSERT INTO docs (doc_id, tenant, last_seq, policy_seq) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (doc_id) DO UPDATE SET last_seq = excluded.last_seq, \
             policy_seq = MAX(docs.policy_seq, excluded.policy_seq)",
        )?;
        for d in &plan.docs {
            st.execute(params![d.doc, d.tenant, d.last, d.policy])?;
        }
    }
    // The policy versions the batch was validated against, after its own moves. (One
    // process owns an SQLite file, so this only fails if memory and storage disagree; the
    // check is the same as on Postgres, where other nodes commit too.)
    if !plan.fences.is_empty() {
        let mut policies: HashMap<String, i64> = HashMap::with_capacity(plan.fences.len());
        let mut st = db.prepare_cached("SELECT policy_seq FROM docs WHERE doc_id = ?1")?;
        for f in &plan.fences {
            if let Some(policy) = st.query_row([&f.doc], |r| r.get(0)).optional()? {
                policies.insert(f.doc.clone(), policy);
            }
        }
        plan.check_fences(&policies)?;
    }

    // 2. The change log.
    {
        let mut st = db.prepare_cached(
            "INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for c in &plan.changes {
            st.execute(params![
                c.doc,
                c.seq,
                c.hash,
                c.bytes,
                c.account,
                c.accepted_at
            ])?;
        }
    }

    // 3. Actor bindings: insert the new ones, then every actor of the batch must be bound
    //    to the account the batch binds it to.
    if !plan.bindings.is_empty() {
        let mut insert = db.prepare_cached(
            "INSERT INTO actors (tenant, actor, account, bound_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant, actor) DO NOTHING",
        )?;
        let mut select =
            db.prepare_cached("SELECT account FROM actors WHERE tenant = ?1 AND actor = ?2")?;
        let mut bound = Vec::with_capacity(plan.bindings.len());
        for x in &plan.bindings {
            insert.execute(params![x.tenant, x.actor, x.account, x.bound_at])?;
            if let Some(account) = select
                .query_row(params![x.tenant, x.actor], |r| r.get::<_, String>(0))
                .optional()?
            {
                bound.push((x.tenant.to_owned(), x.actor.to_vec(), account));
            }
        }
        plan.check_bindings(&bound)?;
    }

    // 4. Projection: conversations, members, read markers.
    if !plan.conversations.is_empty() {
        let mut st = db.prepare_cached(
            "INSERT INTO conversations \
             (tenant, conv, kind, title, lifecycle, parent, created_at, last_pos, last_activity, \
             scope, description, active_members, join_route, discovery_projected) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?7, ?8, ?9, ?10, ?11, 1) \
             ON CONFLICT (tenant, conv) DO UPDATE SET kind = excluded.kind, \
             title = excluded.title, lifecycle = excluded.lifecycle, \
             parent = excluded.parent, created_at = excluded.created_at, \
             scope = excluded.scope, description = excluded.description, \
             active_members = excluded.active_members, join_route = excluded.join_route, \
             discovery_projected = 1",
        )?;
        for c in &plan.conversations {
            st.execute(params![
                c.tenant.as_str(),
                c.conv.as_str(),
                c.kind.as_str(),
                c.title.as_deref(),
                c.lifecycle.as_str(),
                c.parent.as_ref().map(ConvId::as_str),
                c.created_at,
                c.scope.as_str(),
                c.description.as_deref(),
                c.active_members,
                c.join_route.as_str(),
            ])?;
        }
    }
    if !plan.members.is_empty() {
        let mut st = db.prepare_cached(
            "INSERT INTO memberships (tenant, conv, account, role, status) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (tenant, conv, account) DO UPDATE SET role = excluded.role, \
             status = excluded.status",
        )?;
        for m in &plan.members {
            st.execute(params![m.tenant, m.conv, m.account, m.role, m.status])?;
        }
    }
    if !plan.markers.is_empty() {
        let mut st = db.prepare_cached(
            "INSERT INTO read_markers (tenant, conv, account, message) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant, conv, account) DO UPDATE SET message = excluded.message",
        )?;
        for m in &plan.markers {
            st.execute(params![m.tenant, m.conv, m.account, m.message])?;
        }
    }

    // 5. Messages: take each conversation's next positions inside the database, then
    //    insert the rows with them. The rows this batch inserted live (a replayed message
    //    inserts nothing) are kept: their search terms need no lookup (step 7).
    let mut new_rows: HashMap<(&str, &str, &str), (i64, i64, i64)> = HashMap::new();
    if !plan.messages.is_empty() {
        let mut ends: HashMap<(String, String), (i64, i64)> =
            HashMap::with_capacity(plan.allocs.len());
        {
            let mut ensure = db.prepare_cached(
                "INSERT INTO conversations \
                 (tenant, conv, kind, title, lifecycle, parent, created_at, last_pos, \
                 last_activity) VALUES (?1, ?2, 'unknown', NULL, 'active', NULL, ?3, 0, 0) \
                 ON CONFLICT (tenant, conv) DO NOTHING",
            )?;
            let mut take = db.prepare_cached(
                "UPDATE conversations SET last_pos = last_pos + ?3, \
                 last_activity = MAX(last_activity, ?4) WHERE tenant = ?1 AND conv = ?2 \
                 RETURNING id, last_pos",
            )?;
            for a in &plan.allocs {
                ensure.execute(params![a.tenant, a.conv, a.first_created])?;
                let end = take
                    .query_row(params![a.tenant, a.conv, a.count, a.max_created], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })
                    .optional()?;
                if let Some(end) = end {
                    ends.insert((a.tenant.to_owned(), a.conv.to_owned()), end);
                }
            }
        }
        plan.assign_positions(&ends)?;
        let mut st = db.prepare_cached(
            "INSERT INTO messages (cid, pos, created_at, seq, period, part, deleted, message, \
             author, kind, preview) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (cid, message) DO NOTHING",
        )?;
        for m in &plan.messages {
            let inserted = st.execute(params![
                m.cid,
                m.pos,
                m.row.created_at,
                m.seq,
                m.period,
                m.part,
                m.deleted,
                m.row.message.as_str(),
                m.row.author.as_str(),
                m.row.kind.as_str(),
                m.preview,
            ])?;
            if inserted == 1 && !m.deleted {
                let key = (
                    m.row.tenant.as_str(),
                    m.row.conv.as_str(),
                    m.row.message.as_str(),
                );
                new_rows.insert(key, (m.cid, m.pos, m.row.created_at));
            }
        }
    }

    // 6. Edits and deletions of messages committed before this batch.
    if !plan.updates.is_empty() {
        let mut st = db.prepare_cached(
            "UPDATE messages SET preview = ?4, deleted = ?5 \
             WHERE cid = (SELECT id FROM conversations WHERE tenant = ?1 AND conv = ?2) \
             AND message = ?3",
        )?;
        for u in &plan.updates {
            st.execute(params![u.tenant, u.conv, u.message, u.preview, u.deleted])?;
            // Its row may be deleted now: step 7 looks.
            new_rows.remove(&(u.tenant, u.conv, u.message));
        }
    }

    // 7. Search terms replace their message's entry, unless its row is deleted. An entry is
    //    its `message_search_time` row, and its FTS5 row, written behind the commit from the
    //    backlog (migration 0044); a deleted or dropped message row queues an indexed entry
    //    for the purge pass (0034). An edit of an indexed entry deletes its old terms from
    //    FTS5 here and names it in the backlog again. A row this batch inserted has no entry,
    //    and its key is known without a lookup.
    if !plan.search.is_empty() {
        let mut find = db.prepare_cached(
            "SELECT m.cid, m.pos, m.created_at, t.terms, b.entry IS NOT NULL \
             FROM conversations c \
             JOIN messages m ON m.cid = c.id AND m.message = ?3 \
             LEFT JOIN message_search_time t \
               ON t.created_at = m.created_at AND t.cid = m.cid AND t.pos = m.pos \
             LEFT JOIN search_backlog b ON b.entry = m.cid * 4294967296 + m.pos \
             WHERE c.tenant = ?1 AND c.conv = ?2 AND m.deleted = 0 AND m.pos < 4294967296",
        )?;
        let mut clear = db.prepare_cached(
            "INSERT INTO message_search (message_search, rowid, terms) \
             VALUES ('delete', ?1, ?2)",
        )?;
        let mut behind =
            db.prepare_cached("INSERT INTO search_backlog (entry, created_at) VALUES (?1, ?2)")?;
        let mut replace = db.prepare_cached(
            "UPDATE message_search_time SET terms = ?4 \
             WHERE created_at = ?1 AND cid = ?2 AND pos = ?3",
        )?;
        let mut timed = db.prepare_cached(
            "INSERT INTO message_search_time (created_at, cid, pos, terms) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for x in &plan.search {
            let found = match new_rows.get(&(x.tenant, x.conv, x.message)) {
                Some(&(cid, pos, created_at)) => {
                    (pos < 4_294_967_296).then_some((cid, pos, created_at, None, false))
                }
                None => find
                    .query_row(params![x.tenant, x.conv, x.message], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, bool>(4)?,
                        ))
                    })
                    .optional()?,
            };
            let Some((cid, pos, created_at, old, in_backlog)) = found else {
                continue;
            };
            let entry = cid * 4_294_967_296 + pos;
            match old {
                Some(_) if in_backlog => {
                    replace.execute(params![created_at, cid, pos, x.terms])?;
                }
                Some(old) => {
                    clear.execute(params![entry, old])?;
                    replace.execute(params![created_at, cid, pos, x.terms])?;
                    behind.execute(params![entry, created_at])?;
                }
                None => {
                    timed.execute(params![created_at, cid, pos, x.terms])?;
                    behind.execute(params![entry, created_at])?;
                }
            }
        }
    }
    Ok(())
}
