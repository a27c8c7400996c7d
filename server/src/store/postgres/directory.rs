//! Invite links (shared statements) and contact identifiers on Postgres: identifiers
//! registered and matched as arrays, one statement each.

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::joining::Invite;
use sqlx::PgConnection;

use super::PgStore;
use crate::store::contacts::{self, FORGET};
use crate::store::invites::pg as invites;
use crate::store::{Directory, Result};

async fn register(
    conn: &mut PgConnection,
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
    sqlx::query(
        "INSERT INTO account_identifiers (tenant, hash, account) \
         SELECT $1, h, $2 FROM UNNEST($3::text[]) AS u(h) \
         ON CONFLICT (tenant, hash) DO UPDATE SET account = EXCLUDED.account",
    )
    .bind(tenant.as_str())
    .bind(account.as_str())
    .bind(hashes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl Directory for PgStore {
    async fn create_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        token_hash: &[u8; 32],
        invite: &Invite,
    ) -> Result<()> {
        on_pool!(self, |conn| invites::create(
            conn, tenant, conv, token_hash, invite
        ))
    }

    async fn invite_by_token(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(ConvId, Invite)>> {
        on_pool!(self, |conn| invites::by_token(conn, tenant, token_hash))
    }

    async fn invites(&self, tenant: &TenantId, conv: &ConvId, limit: usize) -> Result<Vec<Invite>> {
        on_pool!(self, |conn| invites::list(conn, tenant, conv, limit))
    }

    async fn live_invites(&self, tenant: &TenantId, conv: &ConvId, now_ms: i64) -> Result<u64> {
        on_pool!(self, |conn| invites::count_live(conn, tenant, conv, now_ms))
    }

    async fn revoke_invite(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        on_pool!(self, |conn| invites::revoke(conn, tenant, conv, id, now_ms))
    }

    async fn use_invite(&self, tenant: &TenantId, id: &str, now_ms: i64) -> Result<bool> {
        on_pool!(self, |conn| invites::use_one(conn, tenant, id, now_ms))
    }

    async fn unuse_invite(&self, tenant: &TenantId, id: &str) -> Result<()> {
        on_pool!(self, |conn| invites::unuse(conn, tenant, id))
    }

    async fn register_identifiers(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        hashes: &[String],
    ) -> Result<()> {
        on_pool!(self, |conn| register(conn, tenant, account, hashes))
    }

    async fn match_identifiers(
        &self,
        tenant: &TenantId,
        hashes: &[String],
    ) -> Result<Vec<(String, AccountId)>> {
        let rows = sqlx::query(
            "SELECT hash, account FROM account_identifiers \
             WHERE tenant = $1 AND hash = ANY($2::text[])",
        )
        .bind(tenant.as_str())
        .bind(hashes)
        .fetch_all(&self.pool)
        .await?;
        contacts::matches(&rows)
    }
}
