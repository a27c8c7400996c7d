//! Which accounts have a client connected to which node of a cluster (Postgres migration
//! 0021): the push webhook posts only for an account with no connected client anywhere
//! (`crate::notify::reachable`), and nodes never talk to each other, so each writes here
//! the accounts that come and go on it, with a heartbeat. SQLite runs one node: it stores
//! nothing and knows no other node.

use confab_core::ids::{AccountId, TenantId};
use sqlx::PgConnection;

use super::columns::{account, tenant_corrupt, Cols};
use super::Result;

/// One account of one tenant.
pub type Key = (TenantId, AccountId);

/// A node whose heartbeat is older than this is swept with its rows.
const SWEEP_AFTER: &str = "1 hour";

#[derive(Debug, Clone)]
pub enum ClientsOp<'a> {
    /// `node` is alive now; `came` got a first client on it, `went` lost their last one.
    /// `reset` first forgets every row of `node` (a start, or a node that could not write
    /// for a while: `came` is then everything it has).
    Sync {
        node: &'a str,
        came: &'a [Key],
        went: &'a [Key],
        reset: bool,
    },
    /// Of `accounts`, those with a client on a node other than `node` whose heartbeat is
    /// at most `alive_ms` old.
    Elsewhere {
        node: &'a str,
        accounts: &'a [Key],
        alive_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientsAnswer {
    Done,
    Accounts(Vec<Key>),
}

fn columns(keys: &[Key]) -> (Vec<&str>, Vec<&str>) {
    keys.iter().map(|(t, a)| (t.as_str(), a.as_str())).unzip()
}

pub(super) async fn run_pg(conn: &mut PgConnection, op: ClientsOp<'_>) -> Result<ClientsAnswer> {
    match op {
        ClientsOp::Sync {
            node,
            came,
            went,
            reset,
        } => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
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
            Ok(ClientsAnswer::Done)
        }
        ClientsOp::Elsewhere {
            node,
            accounts,
            alive_ms,
        } => {
            if accounts.is_empty() {
                return Ok(ClientsAnswer::Accounts(Vec::new()));
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
            .fetch_all(&mut *conn)
            .await?;
            let found = rows
                .iter()
                .map(|r| {
                    Ok((
                        tenant_corrupt(r.text("tenant")?)?,
                        account(r.text("account")?)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ClientsAnswer::Accounts(found))
        }
    }
}

/// One node: nothing to share, no other node to know of.
pub(super) fn run_sqlite(op: ClientsOp<'_>) -> ClientsAnswer {
    match op {
        ClientsOp::Sync { .. } => ClientsAnswer::Done,
        ClientsOp::Elsewhere { .. } => ClientsAnswer::Accounts(Vec::new()),
    }
}
