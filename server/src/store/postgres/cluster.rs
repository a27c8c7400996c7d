//! What the nodes on one Postgres database share: commits and signals published with
//! `NOTIFY`, and which accounts have a client on which node (`crate::store::clients`).

use async_trait::async_trait;

use super::PgStore;
use crate::store::clients::Key;
use crate::store::columns::{account, tenant_corrupt, Cols};
use crate::store::{Cluster, Result};

/// A node whose heartbeat is older than this is swept with its rows.
const SWEEP_AFTER: &str = "1 hour";

fn columns(keys: &[Key]) -> (Vec<&str>, Vec<&str>) {
    keys.iter().map(|(t, a)| (t.as_str(), a.as_str())).unzip()
}

#[async_trait]
impl Cluster for PgStore {
    fn cluster_options(&self) -> Option<sqlx::postgres::PgConnectOptions> {
        Some((*self.pool.connect_options()).clone())
    }

    async fn notify(&self, channel: &'static str, payloads: &[String]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u (p, i) \
             ORDER BY i",
        )
        .bind(channel)
        .bind(payloads)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn sync_clients(
        &self,
        node: &str,
        came: &[Key],
        went: &[Key],
        reset: bool,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO cluster_nodes (node, alive_at) VALUES ($1, now()) \
             ON CONFLICT (node) DO UPDATE SET alive_at = now()",
        )
        .bind(node)
        .execute(&mut *tx)
        .await?;
        if reset {
            sqlx::query("DELETE FROM connected_accounts WHERE node = $1")
                .bind(node)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "DELETE FROM cluster_nodes WHERE alive_at < now() - interval '{SWEEP_AFTER}'"
            ))
            .execute(&mut *tx)
            .await?;
        }
        if !went.is_empty() {
            let (tenants, accounts) = columns(went);
            sqlx::query(
                "DELETE FROM connected_accounts WHERE node = $1 AND (tenant, account) IN \
                 (SELECT * FROM UNNEST($2::text[], $3::text[]))",
            )
            .bind(node)
            .bind(tenants)
            .bind(accounts)
            .execute(&mut *tx)
            .await?;
        }
        if !came.is_empty() {
            let (tenants, accounts) = columns(came);
            sqlx::query(
                "INSERT INTO connected_accounts (tenant, account, node) \
                 SELECT t, a, $1 FROM UNNEST($2::text[], $3::text[]) AS u (t, a) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(node)
            .bind(tenants)
            .bind(accounts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn clients_elsewhere(
        &self,
        node: &str,
        accounts: &[Key],
        alive_ms: i64,
    ) -> Result<Vec<Key>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let (tenants, names) = columns(accounts);
        let rows = sqlx::query(
            "SELECT DISTINCT c.tenant, c.account FROM connected_accounts c \
             JOIN cluster_nodes n ON n.node = c.node \
             WHERE c.node <> $1 \
             AND n.alive_at > now() - make_interval(secs => $4::bigint / 1000.0) \
             AND (c.tenant, c.account) IN (SELECT * FROM UNNEST($2::text[], $3::text[]))",
        )
        .bind(node)
        .bind(tenants)
        .bind(names)
        .bind(alive_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    tenant_corrupt(r.text("tenant")?)?,
                    account(r.text("account")?)?,
                ))
            })
            .collect()
    }
}
