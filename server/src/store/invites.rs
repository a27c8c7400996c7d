//! Invite links (docs/POLICY.md, "Joining"): rows of the `invites` table (migrations
//! postgres 0012, sqlite 0007). The token is never stored, only its SHA-256; a use is counted
//! by one guarded `UPDATE`, so concurrent joins never go past `max_uses`.
//!
//! One `Store` method (`invites`) carries every operation as an [`InviteOp`], so the trait,
//! its health guard and each backend gain one line each; the SQL, the same text for both
//! backends (`$n` placeholders, first used in order, which SQLite numbers the same way), is
//! here.

use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::joining::Invite;
use sqlx::Row;

use super::columns::limit_of;
use super::{Result, StoreError};

/// What to do with the `invites` table.
#[derive(Debug, Clone, Copy)]
pub enum InviteOp<'a> {
    /// Stores a new link. Answer: `Done(true)`.
    Create {
        tenant: &'a TenantId,
        conv: &'a ConvId,
        token_hash: &'a [u8; 32],
        invite: &'a Invite,
    },
    /// The link whose token hashes to `token_hash`, in `tenant`. Answer: `Found`.
    ByToken {
        tenant: &'a TenantId,
        token_hash: &'a [u8; 32],
    },
    /// The conversation's links, newest first, at most `limit`. Answer: `List`.
    List {
        tenant: &'a TenantId,
        conv: &'a ConvId,
        limit: usize,
    },
    /// How many of the conversation's links are live at `now_ms`. Answer: `Count`.
    CountLive {
        tenant: &'a TenantId,
        conv: &'a ConvId,
        now_ms: i64,
    },
    /// Revokes a link of the conversation (once: a revoked link keeps its first time).
    /// Answer: `Done(whether the link exists)`.
    Revoke {
        tenant: &'a TenantId,
        conv: &'a ConvId,
        id: &'a str,
        now_ms: i64,
    },
    /// Counts one use if the link is usable at `now_ms`. Answer: `Done(whether it was)`.
    Use {
        tenant: &'a TenantId,
        id: &'a str,
        now_ms: i64,
    },
    /// Gives back a use whose join did not happen. Answer: `Done(true)`.
    Unuse { tenant: &'a TenantId, id: &'a str },
}

/// The answer to an [`InviteOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteAnswer {
    Done(bool),
    Found(Option<(ConvId, Invite)>),
    List(Vec<Invite>),
    Count(u64),
}

const COLUMNS: &str = "id, conv, created_by, created_at, expires_at, max_uses, uses, revoked_at";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("invites: {e}"))
}

macro_rules! backend {
    ($name:ident, $conn:ty, $row:ty) => {
        fn invite_of(row: &$row) -> Result<(ConvId, Invite)> {
            let conv = ConvId::new(row.try_get::<String, _>("conv")?).map_err(corrupt)?;
            let max_uses: Option<i64> = row.try_get("max_uses")?;
            let uses: i64 = row.try_get("uses")?;
            Ok((
                conv,
                Invite {
                    id: row.try_get("id")?,
                    created_by: AccountId::new(row.try_get::<String, _>("created_by")?)
                        .map_err(corrupt)?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    max_uses: max_uses.map(u32::try_from).transpose().map_err(corrupt)?,
                    uses: u32::try_from(uses).map_err(corrupt)?,
                    revoked_at: row.try_get("revoked_at")?,
                },
            ))
        }

        /// Runs one operation on `conn`.
        pub(in crate::store) async fn $name(
            conn: &mut $conn,
            op: InviteOp<'_>,
        ) -> Result<InviteAnswer> {
            match op {
                InviteOp::Create {
                    tenant,
                    conv,
                    token_hash,
                    invite,
                } => {
                    sqlx::query(
                        "INSERT INTO invites (tenant, id, conv, token_hash, created_by, \
                         created_at, expires_at, max_uses) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(tenant.as_str())
                    .bind(&invite.id)
                    .bind(conv.as_str())
                    .bind(&token_hash[..])
                    .bind(invite.created_by.as_str())
                    .bind(invite.created_at)
                    .bind(invite.expires_at)
                    .bind(invite.max_uses.map(i64::from))
                    .execute(&mut *conn)
                    .await?;
                    Ok(InviteAnswer::Done(true))
                }
                InviteOp::ByToken { tenant, token_hash } => {
                    let row = sqlx::query(&format!(
                        "SELECT {COLUMNS} FROM invites WHERE token_hash = $1 AND tenant = $2"
                    ))
                    .bind(&token_hash[..])
                    .bind(tenant.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                    Ok(InviteAnswer::Found(
                        row.as_ref().map(invite_of).transpose()?,
                    ))
                }
                InviteOp::List {
                    tenant,
                    conv,
                    limit,
                } => {
                    let rows = sqlx::query(&format!(
                        "SELECT {COLUMNS} FROM invites WHERE tenant = $1 AND conv = $2 \
                         ORDER BY created_at DESC, id DESC LIMIT $3"
                    ))
                    .bind(tenant.as_str())
                    .bind(conv.as_str())
                    .bind(limit_of(limit))
                    .fetch_all(&mut *conn)
                    .await?;
                    let list = rows
                        .iter()
                        .map(|r| invite_of(r).map(|(_, i)| i))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(InviteAnswer::List(list))
                }
                InviteOp::CountLive {
                    tenant,
                    conv,
                    now_ms,
                } => {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n FROM invites WHERE tenant = $1 AND conv = $2 \
                         AND revoked_at IS NULL AND expires_at > $3 \
                         AND (max_uses IS NULL OR uses < max_uses)",
                    )
                    .bind(tenant.as_str())
                    .bind(conv.as_str())
                    .bind(now_ms)
                    .fetch_one(&mut *conn)
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    Ok(InviteAnswer::Count(u64::try_from(n).unwrap_or(0)))
                }
                InviteOp::Revoke {
                    tenant,
                    conv,
                    id,
                    now_ms,
                } => {
                    let done = sqlx::query(
                        "UPDATE invites SET revoked_at = COALESCE(revoked_at, $1) \
                         WHERE tenant = $2 AND conv = $3 AND id = $4",
                    )
                    .bind(now_ms)
                    .bind(tenant.as_str())
                    .bind(conv.as_str())
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(InviteAnswer::Done(done.rows_affected() == 1))
                }
                InviteOp::Use { tenant, id, now_ms } => {
                    let done = sqlx::query(
                        "UPDATE invites SET uses = uses + 1 WHERE tenant = $1 AND id = $2 \
                         AND revoked_at IS NULL AND expires_at > $3 \
                         AND (max_uses IS NULL OR uses < max_uses)",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(now_ms)
                    .execute(&mut *conn)
                    .await?;
                    Ok(InviteAnswer::Done(done.rows_affected() == 1))
                }
                InviteOp::Unuse { tenant, id } => {
                    sqlx::query(
                        "UPDATE invites SET uses = uses - 1 WHERE tenant = $1 AND id = $2 \
                         AND uses > 0",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(InviteAnswer::Done(true))
                }
            }
        }
    };
}

mod pg {
    use super::*;
    backend!(run, sqlx::PgConnection, sqlx::postgres::PgRow);
}

mod lite {
    use super::*;
    backend!(run, sqlx::SqliteConnection, sqlx::sqlite::SqliteRow);
}

pub(super) use lite::run as run_sqlite;
pub(super) use pg::run as run_pg;
