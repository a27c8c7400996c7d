//! Values between Rust and the columns of either backend: integers in range, ids that
//! parse, and the projection rows the read queries return.

use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{ConvListItem, ConvRow, LogTail, MessageRow, Result, StoreError};

pub(crate) fn i64_of(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is out of range")))
}

pub(crate) fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored {what} {v} is negative")))
}

pub(crate) fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn tenant_corrupt(s: String) -> Result<TenantId> {
    TenantId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("tenant {s:?}: {e}")))
}

pub(crate) fn account(s: String) -> Result<AccountId> {
    AccountId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("account {s:?}: {e}")))
}

pub(crate) fn conv_id(s: String) -> Result<ConvId> {
    ConvId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("conversation {s:?}: {e}")))
}

pub(crate) fn message_id(s: String) -> Result<MessageId> {
    MessageId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("message {s:?}: {e}")))
}

/// Typed column access for the rows of either backend.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn flag(&self, col: &str) -> Result<bool>;
    fn blob(&self, col: &str) -> Result<Vec<u8>>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn opt_blob(&self, col: &str) -> Result<Option<Vec<u8>>>;
}

impl<R> Cols for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.try_get(col)?)
    }
    fn blob(&self, col: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn opt_blob(&self, col: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(col)?)
    }
}

/// `(seq, bytes)` of change-log rows, in their order (a load and a catch-up page).
pub(crate) fn seq_changes<R: Cols>(rows: &[R]) -> Result<Vec<(u64, Vec<u8>)>> {
    rows.iter()
        .map(|row| Ok((u64_of(row.int("seq")?, "seq")?, row.blob("bytes")?)))
        .collect()
}

/// A [`LogTail`] from the rows of the docs row left-joined with its changes after a seq
/// (columns last_seq, policy_seq, snapshot_seq, seq, bytes; no rows: never written).
pub(crate) fn log_tail<R: Cols>(rows: &[R]) -> Result<LogTail> {
    let Some(first) = rows.first() else {
        return Ok(LogTail::default());
    };
    let mut tail = LogTail {
        changes: Vec::with_capacity(rows.len()),
        last_seq: u64_of(first.int("last_seq")?, "last_seq")?,
        policy_seq: u64_of(first.int("policy_seq")?, "policy_seq")?,
        snapshot_seq: u64_of(first.int("snapshot_seq")?, "snapshot_seq")?,
    };
    for row in rows {
        if let (Some(seq), Some(bytes)) = (row.opt_int("seq")?, row.opt_blob("bytes")?) {
            tail.changes.push((u64_of(seq, "seq")?, bytes));
        }
    }
    Ok(tail)
}

/// A `ConvRow` from the columns tenant, conv, kind, title, lifecycle, parent, created_at,
/// scope, description, active_members, join_route.
pub(crate) fn conv_row<R: Cols>(row: &R) -> Result<ConvRow> {
    Ok(ConvRow {
        tenant: tenant_corrupt(row.text("tenant")?)?,
        conv: conv_id(row.text("conv")?)?,
        kind: row.text("kind")?,
        title: row.opt_text("title")?,
        lifecycle: row.text("lifecycle")?,
        parent: row.opt_text("parent")?.map(conv_id).transpose()?,
        created_at: row.int("created_at")?,
        scope: row.text("scope")?,
        description: row.opt_text("description")?,
        active_members: row.int("active_members")?,
        join_route: row.text("join_route")?,
    })
}

/// The bucket a row names by its `period` and `part` columns.
pub(crate) fn bucket_of<R: Cols>(row: &R) -> Result<Bucket> {
    let part = row.int("part")?;
    let part = u32::try_from(part)
        .map_err(|_| StoreError::Corrupt(format!("message bucket part {part}")))?;
    Ok(Bucket::new(row.int("period")?, part))
}

/// The id of the bucket document a message row names by `(period, part)`.
fn bucket_doc(period: i64, part: i64, tenant: &TenantId, conv: &ConvId) -> Result<String> {
    let part = u32::try_from(part)
        .map_err(|_| StoreError::Corrupt(format!("message bucket part {part}")))?;
    Ok(DocId::msgs(tenant, conv, Bucket::new(period, part)).to_string())
}

/// A `MessageRow` from the columns `{prefix}message`, `{prefix}pos`, `{prefix}period`,
/// `{prefix}part` (the bucket), ... of a row.
pub(crate) fn message_row<R: Cols>(
    row: &R,
    prefix: &str,
    tenant: &TenantId,
    conv: &ConvId,
) -> Result<MessageRow> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(MessageRow {
        tenant: tenant.clone(),
        conv: conv.clone(),
        message: message_id(row.text(&col("message"))?)?,
        doc: bucket_doc(
            row.int(&col("period"))?,
            row.int(&col("part"))?,
            tenant,
            conv,
        )?,
        seq: u64_of(row.int(&col("seq"))?, "message seq")?,
        author: account(row.text(&col("author"))?)?,
        kind: row.text(&col("kind"))?,
        created_at: row.int(&col("created_at"))?,
        preview: row.text(&col("preview"))?,
        deleted: row.flag(&col("deleted"))?,
        pos: row.int(&col("pos"))?,
        views: 0,
    })
}

/// One row of the `conversations_of` query.
pub(crate) fn conv_list_item<R: Cols>(row: &R) -> Result<ConvListItem> {
    let conv = conv_row(row)?;
    let last_message = match row.opt_text("l_message")? {
        Some(_) => Some(message_row(row, "l_", &conv.tenant, &conv.conv)?),
        None => None,
    };
    Ok(ConvListItem {
        role: row.text("role")?,
        unread: row.int("unread")?,
        last_message,
        conv,
    })
}
