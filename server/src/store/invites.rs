//! Invite links (docs/POLICY.md, "Joining"): rows of the `invites` table (migrations
//! postgres 0012, sqlite 0007). The token is never stored, only its SHA-256; a use is counted
//! by one guarded `UPDATE`, so concurrent joins never go past `max_uses`.
//!
//! The statements are the same text for both backends (`$n` placeholders, bound by number
//! on both), written once here.

use confab_core::ids::{AccountId, ConvId};
use confab_core::model::joining::Invite;

use super::columns::Cols;
use super::{Result, StoreError};

const COLUMNS: &str = "id, conv, created_by, created_at, expires_at, max_uses, uses, revoked_at";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("invites: {e}"))
}

fn invite_of<R: Cols>(row: &R) -> Result<(ConvId, Invite)> {
    let conv = ConvId::new(row.text("conv")?).map_err(corrupt)?;
    let max_uses = row.opt_int("max_uses")?;
    let uses = row.int("uses")?;
    Ok((
        conv,
        Invite {
            id: row.text("id")?,
            created_by: AccountId::new(row.text("created_by")?).map_err(corrupt)?,
            created_at: row.int("created_at")?,
            expires_at: row.int("expires_at")?,
            max_uses: max_uses.map(u32::try_from).transpose().map_err(corrupt)?,
            uses: u32::try_from(uses).map_err(corrupt)?,
            revoked_at: row.opt_int("revoked_at")?,
        },
    ))
}

macro_rules! queries {
    ($conn:ty) => {
        use confab_core::ids::{ConvId, TenantId};
        use confab_core::model::joining::Invite;

        use crate::store::columns::{limit_of, Cols};
        use crate::store::invites::{invite_of, COLUMNS};
        use crate::store::Result;

        pub(in crate::store) async fn create(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            token_hash: &[u8; 32],
            invite: &Invite,
        ) -> Result<()> {
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
            Ok(())
        }

        pub(in crate::store) async fn by_token(
            conn: &mut $conn,
            tenant: &TenantId,
            token_hash: &[u8; 32],
        ) -> Result<Option<(ConvId, Invite)>> {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM invites WHERE token_hash = $1 AND tenant = $2"
            ))
            .bind(&token_hash[..])
            .bind(tenant.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(invite_of).transpose()
        }

        pub(in crate::store) async fn list(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            limit: usize,
        ) -> Result<Vec<Invite>> {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM invites WHERE tenant = $1 AND conv = $2 \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ))
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(|r| invite_of(r).map(|(_, i)| i)).collect()
        }

        pub(in crate::store) async fn count_live(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            now_ms: i64,
        ) -> Result<u64> {
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
            Ok(u64::try_from(row.int("n")?).unwrap_or(0))
        }

        pub(in crate::store) async fn revoke(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            id: &str,
            now_ms: i64,
        ) -> Result<bool> {
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
            Ok(done.rows_affected() == 1)
        }

        pub(in crate::store) async fn use_one(
            conn: &mut $conn,
            tenant: &TenantId,
            id: &str,
            now_ms: i64,
        ) -> Result<bool> {
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
            Ok(done.rows_affected() == 1)
        }

        pub(in crate::store) async fn unuse(
            conn: &mut $conn,
            tenant: &TenantId,
            id: &str,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE invites SET uses = uses - 1 WHERE tenant = $1 AND id = $2 \
                 AND uses > 0",
            )
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
    };
}

pub(super) mod pg {
    queries!(sqlx::PgConnection);
}

pub(super) mod lite {
    queries!(sqlx::SqliteConnection);
}
