//! Invite links (shared statements) and contact identifiers on SQLite: one insert per
//! identifier, a batch matched through `json_each`.

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::joining::Invite;
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::contacts::{self, FORGET};
use crate::store::invites::lite as invites;
use crate::store::{Directory, Result};

async fn register(
    conn: &mut SqliteConnection,
    tenant: &TenantId,
    account: &AccountId,
    hashes: &[String],
) -> Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(FORGET)
        .bind(tenant.as_str())
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
    for hash in hashes {
        sqlx::query(
            "INSERT INTO account_identifiers (tenant, hash, account) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, hash) DO UPDATE SET account = excluded.account",
        )
        .bind(tenant.as_str())
        .bind(hash)
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Directory for SqliteStore {
    async fn create_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        token_hash: &[u8; 32],
        invite: &Invite,
    ) -> Result<()> {
        on_writer!(self, |conn| invites::create(
            conn, tenant, conv, token_hash, invite
        ))
    }

    async fn invite_by_token(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(ConvId, Invite)>> {
        on_reader!(self, |conn| invites::by_token(conn, tenant, token_hash))
    }

    async fn invites(&self, tenant: &TenantId, conv: &ConvId, limit: usize) -> Result<Vec<Invite>> {
        on_reader!(self, |conn| invites::list(conn, tenant, conv, limit))
    }

    async fn live_invites(&self, tenant: &TenantId, conv: &ConvId, now_ms: i64) -> Result<u64> {
        on_reader!(self, |conn| invites::count_live(conn, tenant, conv, now_ms))
    }

    async fn revoke_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        on_writer!(self, |conn| invites::revoke(conn, tenant, conv, id, now_ms))
    }

    async fn use_invite(&self, tenant: &TenantId, id: &str, now_ms: i64) -> Result<bool> {
        on_writer!(self, |conn| invites::use_one(conn, tenant, id, now_ms))
    }

    async fn unuse_invite(&self, tenant: &TenantId, id: &str) -> Result<()> {
        on_writer!(self, |conn| invites::unuse(conn, tenant, id))
    }

    async fn register_identifiers(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        hashes: &[String],
    ) -> Result<()> {
        on_writer!(self, |conn| register(conn, tenant, account, hashes))
    }

    async fn match_identifiers(
        &self,
        tenant: &TenantId,
        hashes: &[String],
    ) -> Result<Vec<(String, AccountId)>> {
        // One statement for the batch: the hashes as a JSON array.
        let list = serde_json::to_string(hashes).unwrap_or_else(|_| "[]".to_owned());
        let rows = sqlx::query(
            "SELECT hash, account FROM account_identifiers \
             WHERE tenant = $1 AND hash IN (SELECT value FROM json_each($2))",
        )
        .bind(tenant.as_str())
        .bind(list)
        .fetch_all(&self.reader)
        .await?;
        contacts::matches(&rows)
    }
}
