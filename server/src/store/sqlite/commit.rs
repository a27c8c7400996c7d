//! A group commit on SQLite: the shared plan written with a handful of multi-row
//! statements whatever the batch size, so the cost per accepted change is a few rows, not a
//! few round trips to the SQLite worker thread.

use std::collections::HashMap;

use confab_core::ids::ConvId;
use sqlx::query_builder::Separated;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, QueryBuilder, Row, Sqlite};

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

/// One group commit on the writer connection (see [`Store::commit`]).
pub(super) async fn commit_on(conn: &mut SqliteConnection, changes: &[NewChange]) -> Result<()> {
    let mut plan = Plan::build(changes)?;
    // BEGIN IMMEDIATE takes the write lock now: the seq check below and the writes that
    // follow see no other writer in between. Dropping `tx` on an error rolls back.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;

    // 1. Seq compare-and-set for every document of the batch.
    let mut current: HashMap<String, i64> = HashMap::with_capacity(plan.docs.len());
    for chunk in chunks(&plan.docs) {
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT doc_id, last_seq FROM docs WHERE doc_id IN (");
        let mut list = qb.separated(", ");
        for d in chunk {
            list.push_bind(d.doc.as_str());
        }
        qb.push(")");
        for row in qb.build().fetch_all(&mut *tx).await? {
            current.insert(row.try_get("doc_id")?, row.try_get("last_seq")?);
        }
    }
    plan.check_seqs(&current)?;
    insert_values(
        &mut tx,
        "INSERT INTO docs (doc_id, tenant, last_seq, policy_seq) ",
        " ON CONFLICT (doc_id) DO UPDATE SET last_seq = excluded.last_seq, \
         policy_seq = MAX(docs.policy_seq, excluded.policy_seq)",
        &plan.docs,
        |b, d| {
            b.push_bind(d.doc.as_str())
                .push_bind(d.tenant)
                .push_bind(d.last)
                .push_bind(d.policy);
        },
    )
    .await?;
    // The policy versions the batch was validated against, after its own moves. (One
    // process owns an SQLite file, so this only fails if memory and storage disagree; the
    // check is the same as on Postgres, where other nodes commit too.)
    if !plan.fences.is_empty() {
        let mut policies: HashMap<String, i64> = HashMap::with_capacity(plan.fences.len());
        for chunk in chunks(&plan.fences) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT doc_id, policy_seq FROM docs WHERE doc_id IN (",
            );
            let mut list = qb.separated(", ");
            for f in chunk {
                list.push_bind(f.doc.as_str());
            }
            qb.push(")");
            for row in qb.build().fetch_all(&mut *tx).await? {
                policies.insert(row.try_get("doc_id")?, row.try_get("policy_seq")?);
            }
        }
        plan.check_fences(&policies)?;
    }

    // 2. The change log.
    insert_values(
        &mut tx,
        "INSERT INTO changes (doc_id, seq, hash, bytes, account, accepted_at) ",
        "",
        &plan.changes,
        |b, c| {
            b.push_bind(c.doc.as_str())
                .push_bind(c.seq)
                .push_bind(c.hash)
                .push_bind(c.bytes)
                .push_bind(c.account)
                .push_bind(c.accepted_at);
        },
    )
    .await?;

    // 3. Actor bindings: insert the new ones, then every actor of the batch must be bound
    //    to the account the batch binds it to.
    if !plan.bindings.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO actors (tenant, actor, account, bound_at) ",
            " ON CONFLICT (tenant, actor) DO NOTHING",
            &plan.bindings,
            |b, x| {
                b.push_bind(x.tenant)
                    .push_bind(x.actor)
                    .push_bind(x.account)
                    .push_bind(x.bound_at);
            },
        )
        .await?;
        let mut bound = Vec::with_capacity(plan.bindings.len());
        for chunk in chunks(&plan.bindings) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT tenant, actor, account FROM actors WHERE (tenant, actor) IN (",
            );
            qb.push_values(chunk, |mut b, x| {
                b.push_bind(x.tenant).push_bind(x.actor);
            });
            qb.push(")");
            for row in qb.build().fetch_all(&mut *tx).await? {
                bound.push((
                    row.try_get::<String, _>("tenant")?,
                    row.try_get::<Vec<u8>, _>("actor")?,
                    row.try_get::<String, _>("account")?,
                ));
            }
        }
        plan.check_bindings(&bound)?;
    }

    // 4. Projection: conversations, members, read markers.
    if !plan.conversations.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO conversations \
             (tenant, conv, kind, title, lifecycle, parent, created_at, last_pos, last_activity) ",
            " ON CONFLICT (tenant, conv) DO UPDATE SET kind = excluded.kind, \
             title = excluded.title, lifecycle = excluded.lifecycle, \
             parent = excluded.parent, created_at = excluded.created_at",
            &plan.conversations,
            |b, c| {
                b.push_bind(c.tenant.as_str())
                    .push_bind(c.conv.as_str())
                    .push_bind(c.kind.as_str())
                    .push_bind(c.title.as_deref())
                    .push_bind(c.lifecycle.as_str())
                    .push_bind(c.parent.as_ref().map(ConvId::as_str))
                    .push_bind(c.created_at)
                    .push_bind(0_i64)
                    .push_bind(c.created_at);
            },
        )
        .await?;
    }
    if !plan.members.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO memberships (tenant, conv, account, role, status) ",
            " ON CONFLICT (tenant, conv, account) DO UPDATE SET role = excluded.role, \
             status = excluded.status",
            &plan.members,
            |b, m| {
                b.push_bind(m.tenant)
                    .push_bind(m.conv)
                    .push_bind(m.account)
                    .push_bind(m.role)
                    .push_bind(m.status);
            },
        )
        .await?;
    }
    if !plan.markers.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO read_markers (tenant, conv, account, message) ",
            " ON CONFLICT (tenant, conv, account) DO UPDATE SET message = excluded.message",
            &plan.markers,
            |b, m| {
                b.push_bind(m.tenant)
                    .push_bind(m.conv)
                    .push_bind(m.account)
                    .push_bind(m.message);
            },
        )
        .await?;
    }

    // 5. Messages: take each conversation's next positions inside the database, then
    //    insert the rows with them.
    if !plan.messages.is_empty() {
        insert_values(
            &mut tx,
            "INSERT INTO conversations \
             (tenant, conv, kind, title, lifecycle, parent, created_at, last_pos, last_activity) ",
            " ON CONFLICT (tenant, conv) DO NOTHING",
            &plan.allocs,
            |b, a| {
                b.push_bind(a.tenant)
                    .push_bind(a.conv)
                    .push_bind("unknown")
                    .push_bind(None::<&str>)
                    .push_bind("active")
                    .push_bind(None::<&str>)
                    .push_bind(a.first_created)
                    .push_bind(0_i64)
                    .push_bind(0_i64);
            },
        )
        .await?;
        let mut ends: HashMap<(String, String), i64> = HashMap::new();
        for chunk in chunks(&plan.allocs) {
            let mut qb = QueryBuilder::<Sqlite>::new("WITH v (tenant, conv, n, mx) AS (");
            qb.push_values(chunk, |mut b, a| {
                b.push_bind(a.tenant)
                    .push_bind(a.conv)
                    .push_bind(a.count)
                    .push_bind(a.max_created);
            });
            qb.push(
                ") UPDATE conversations SET last_pos = last_pos + v.n, \
                 last_activity = MAX(last_activity, v.mx) FROM v \
                 WHERE conversations.tenant = v.tenant AND conversations.conv = v.conv \
                 RETURNING tenant, conv, last_pos",
            );
            for row in qb.build().fetch_all(&mut *tx).await? {
                ends.insert(
                    (row.try_get("tenant")?, row.try_get("conv")?),
                    row.try_get("last_pos")?,
                );
            }
        }
        plan.assign_positions(&ends)?;
        insert_values(
            &mut tx,
            "INSERT INTO messages (tenant, conv, message, pos, doc_id, seq, author, kind, \
             created_at, preview, deleted) ",
            " ON CONFLICT (tenant, conv, message) DO NOTHING",
            &plan.messages,
            |b, m| {
                b.push_bind(m.row.tenant.as_str())
                    .push_bind(m.row.conv.as_str())
                    .push_bind(m.row.message.as_str())
                    .push_bind(m.pos)
                    .push_bind(m.row.doc.as_str())
                    .push_bind(m.seq)
                    .push_bind(m.row.author.as_str())
                    .push_bind(m.row.kind.as_str())
                    .push_bind(m.row.created_at)
                    .push_bind(m.preview)
                    .push_bind(m.deleted);
            },
        )
        .await?;
    }

    // 6. Edits and deletions of messages committed before this batch.
    for chunk in chunks(&plan.updates) {
        let mut qb =
            QueryBuilder::<Sqlite>::new("WITH v (tenant, conv, message, preview, deleted) AS (");
        qb.push_values(chunk, |mut b, u| {
            b.push_bind(u.tenant)
                .push_bind(u.conv)
                .push_bind(u.message)
                .push_bind(u.preview)
                .push_bind(u.deleted);
        });
        qb.push(
            ") UPDATE messages SET preview = v.preview, deleted = v.deleted FROM v \
             WHERE messages.tenant = v.tenant AND messages.conv = v.conv \
             AND messages.message = v.message",
        );
        qb.build().execute(&mut *tx).await?;
    }

    tx.commit().await?;
    Ok(())
}
