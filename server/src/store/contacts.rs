//! Hashed identifiers of accounts for contact matching (migrations: Postgres 0018, SQLite
//! 0012; docs/CONTACTS.md). Hashes are lower-case hex SHA-256, checked by the caller.

use confab_core::ids::{AccountId, TenantId};
use sqlx::{PgConnection, SqliteConnection};

use super::columns::{account, Cols};
use super::Result;

#[derive(Debug, Clone)]
pub enum ContactOp<'a> {
    /// Replaces the identifiers of `account` with `hashes`; a hash another account had
    /// moves to this one.
    Register {
        tenant: &'a TenantId,
        account: &'a AccountId,
        hashes: &'a [String],
    },
    /// The accounts of the tenant holding any of `hashes`.
    Match {
        tenant: &'a TenantId,
        hashes: &'a [String],
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactAnswer {
    Registered,
    /// `(hash, account)`, in hash order.
    Matches(Vec<(String, AccountId)>),
}

impl ContactOp<'_> {
    pub fn reads(&self) -> bool {
        matches!(self, ContactOp::Match { .. })
    }
}

fn matches<R: Cols>(rows: &[R]) -> Result<ContactAnswer> {
    let mut out = rows
        .iter()
        .map(|r| Ok((r.text("hash")?, account(r.text("account")?)?)))
        .collect::<Result<Vec<_>>>()?;
    out.sort();
    Ok(ContactAnswer::Matches(out))
}

pub(super) async fn run_pg(conn: &mut PgConnection, op: ContactOp<'_>) -> Result<ContactAnswer> {
    match op {
        ContactOp::Register {
            tenant,
            account,
            hashes,
        } => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("DELETE FROM account_identifiers WHERE tenant = $1 AND account = $2")
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
            Ok(ContactAnswer::Registered)
        }
        ContactOp::Match { tenant, hashes } => {
            let rows = sqlx::query(
                "SELECT hash, account FROM account_identifiers \
                 WHERE tenant = $1 AND hash = ANY($2::text[])",
            )
            .bind(tenant.as_str())
            .bind(hashes)
            .fetch_all(&mut *conn)
            .await?;
            matches(&rows)
        }
    }
}

pub(super) async fn run_sqlite(
    conn: &mut SqliteConnection,
    op: ContactOp<'_>,
) -> Result<ContactAnswer> {
    match op {
        ContactOp::Register {
            tenant,
            account,
            hashes,
        } => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("DELETE FROM account_identifiers WHERE tenant = ?1 AND account = ?2")
                .bind(tenant.as_str())
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
            for hash in hashes {
                sqlx::query(
                    "INSERT INTO account_identifiers (tenant, hash, account) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (tenant, hash) DO UPDATE SET account = excluded.account",
                )
                .bind(tenant.as_str())
                .bind(hash)
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(ContactAnswer::Registered)
        }
        ContactOp::Match { tenant, hashes } => {
            // One statement for the batch: the hashes as a JSON array.
            let list = serde_json::to_string(hashes).unwrap_or_else(|_| "[]".to_owned());
            let rows = sqlx::query(
                "SELECT hash, account FROM account_identifiers \
                 WHERE tenant = ?1 AND hash IN (SELECT value FROM json_each(?2))",
            )
            .bind(tenant.as_str())
            .bind(list)
            .fetch_all(&mut *conn)
            .await?;
            matches(&rows)
        }
    }
}
