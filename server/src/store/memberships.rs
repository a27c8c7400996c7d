//! Every membership of one account, whatever its status, each as of its conversation
//! document's `seq` (the account's membership feed, docs/PROTOCOL.md "Memberships"). One
//! range of the `memberships_account` index and a `docs` lookup per row: the cost is the
//! account's own conversations, never a group's size.

use confab_core::ids::ConvId;
use confab_core::model::conversation::{MemberStatus, Role};
use confab_core::protocol::Membership;
use sqlx::Row;

use super::{Result, StoreError};

pub(super) fn entry<R: Row>(row: &R) -> Result<Membership>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let conv: String = row.try_get("conv")?;
    let role: String = row.try_get("role")?;
    let status: String = row.try_get("status")?;
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("membership in {conv}: {what}"));
    Ok(Membership {
        conv: ConvId::new(conv.as_str()).map_err(|e| corrupt(&e.to_string()))?,
        role: Role::parse(&role).map_err(|e| corrupt(&e.to_string()))?,
        status: MemberStatus::parse(&status).map_err(|e| corrupt(&e.to_string()))?,
        seq: u64::try_from(seq).map_err(|_| corrupt("negative seq"))?,
    })
}
