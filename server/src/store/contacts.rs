//! Hashed identifiers of accounts for contact matching (migrations: Postgres 0018, SQLite
//! 0012; docs/CONTACTS.md). Hashes are lower-case hex SHA-256, checked by the caller. The
//! statements differ by backend (arrays on Postgres, JSON on SQLite): `sqlite/directory.rs`,
//! `postgres/directory.rs`.

use confab_core::ids::AccountId;

use super::columns::{account, Cols};
use super::Result;

/// Registering first forgets the account's identifiers (the same on both backends).
pub(super) const FORGET: &str =
    "DELETE FROM account_identifiers WHERE tenant = $1 AND account = $2";

pub(super) fn matches<R: Cols>(rows: &[R]) -> Result<Vec<(String, AccountId)>> {
    let mut out = rows
        .iter()
        .map(|r| Ok((r.text("hash")?, account(r.text("account")?)?)))
        .collect::<Result<Vec<_>>>()?;
    out.sort();
    Ok(out)
}
