//! Forgetting (migrations: Postgres 0031, SQLite 0024): the blobs deleted messages named,
//! waiting for their sweep, and account erasures with their progress
//! (docs/STORAGE.md, "What a delete removes"; docs/OPERATIONS.md, "Account erasure").
//!
//! The statements are written once here; `queries!` makes each backend's copy. Neither table
//! holds content: ids, times and counts.

use confab_core::ids::{AccountId, Bucket, ConvId, MessageId, TenantId};

use super::columns::{account, conv_id, message_id, tenant_corrupt, Cols};
use super::{Result, StoreError};

/// A blob a message deleted for everyone named in its conversation: a candidate for the
/// sweep once `deleted_at` is older than the configured delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRelease {
    pub tenant: TenantId,
    pub conv: ConvId,
    /// The blob's SHA-256, lower-case hex.
    pub hash: String,
    pub deleted_at: i64,
}

/// Where an erasure stands: its steps run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureStep {
    /// Redacting the messages the account wrote (a cursor over them).
    Messages,
    /// Leaving its conversations.
    Memberships,
    /// Removing its devices and their key packages.
    Devices,
    /// Clearing its profile and private document.
    Documents,
    Done,
}

impl ErasureStep {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStep::Messages => "messages",
            ErasureStep::Memberships => "memberships",
            ErasureStep::Devices => "devices",
            ErasureStep::Documents => "documents",
            ErasureStep::Done => "done",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "messages" => ErasureStep::Messages,
            "memberships" => ErasureStep::Memberships,
            "devices" => ErasureStep::Devices,
            "documents" => ErasureStep::Documents,
            "done" => ErasureStep::Done,
            other => return Err(StoreError::Corrupt(format!("erasure step {other:?}"))),
        })
    }
}

/// One account's erasure, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub tenant: TenantId,
    pub account: AccountId,
    pub requested_by: AccountId,
    pub requested_at: i64,
    pub step: ErasureStep,
    /// The last message handled, as (conversation key, position).
    pub after: (i64, i64),
    /// Messages tombstoned.
    pub messages: i64,
    /// Messages the policy refused to tombstone (e.g. in a deleted conversation).
    pub skipped: i64,
    /// Conversations it left.
    pub left_convs: i64,
    /// Conversations it owns alone and stays in (the policy keeps an owner).
    pub kept_owner: i64,
    /// Devices removed.
    pub devices: i64,
    pub updated_at: i64,
    pub done_at: Option<i64>,
}

/// A message the account wrote that is not deleted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authored {
    pub conv: ConvId,
    pub message: MessageId,
    pub bucket: Bucket,
    pub cid: i64,
    pub pos: i64,
}

fn erasure_of(r: &impl Cols) -> Result<Erasure> {
    Ok(Erasure {
        tenant: tenant_corrupt(r.text("tenant")?)?,
        account: account(r.text("account")?)?,
        requested_by: account(r.text("requested_by")?)?,
        requested_at: r.int("requested_at")?,
        step: ErasureStep::parse(&r.text("step")?)?,
        after: (r.int("after_cid")?, r.int("after_pos")?),
        messages: r.int("messages")?,
        skipped: r.int("skipped")?,
        left_convs: r.int("left_convs")?,
        kept_owner: r.int("kept_owner")?,
        devices: r.int("devices")?,
        updated_at: r.int("updated_at")?,
        done_at: r.opt_int("done_at")?,
    })
}

fn authored_of(r: &impl Cols) -> Result<Authored> {
    let part = u32::try_from(r.int("part")?)
        .map_err(|_| StoreError::Corrupt("bucket part out of range".into()))?;
    Ok(Authored {
        conv: conv_id(r.text("conv")?)?,
        message: message_id(r.text("message")?)?,
        bucket: Bucket::new(r.int("period")?, part),
        cid: r.int("cid")?,
        pos: r.int("pos")?,
    })
}

fn release_of(r: &impl Cols) -> Result<BlobRelease> {
    Ok(BlobRelease {
        tenant: tenant_corrupt(r.text("tenant")?)?,
        conv: conv_id(r.text("conv")?)?,
        hash: r.text("hash")?,
        deleted_at: r.int("deleted_at")?,
    })
}

const ERASURE_COLUMNS: &str = "tenant, account, requested_by, requested_at, step, after_cid, \
     after_pos, messages, skipped, left_convs, kept_owner, devices, updated_at, done_at";

macro_rules! queries {
    ($conn:ty) => {
        use confab_core::ids::{AccountId, TenantId};

        use super::{
            authored_of, erasure_of, release_of, Authored, BlobRelease, Erasure, ERASURE_COLUMNS,
        };
        use crate::store::columns::limit_of;
        use crate::store::Result;

        /// Records candidates; a later delete of the same blob moves its time forward.
        pub(in crate::store) async fn release(
            conn: &mut $conn,
            rows: &[BlobRelease],
        ) -> Result<()> {
            for r in rows {
                sqlx::query(
                    "INSERT INTO blob_releases (tenant, conv, hash, deleted_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, conv, hash) \
                     DO UPDATE SET deleted_at = EXCLUDED.deleted_at",
                )
                .bind(r.tenant.as_str())
                .bind(r.conv.as_str())
                .bind(&r.hash)
                .bind(r.deleted_at)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        pub(in crate::store) async fn due_releases(
            conn: &mut $conn,
            deleted_before: i64,
            limit: usize,
        ) -> Result<Vec<BlobRelease>> {
            let rows = sqlx::query(
                "SELECT tenant, conv, hash, deleted_at FROM blob_releases \
                 WHERE deleted_at <= $1 ORDER BY deleted_at LIMIT $2",
            )
            .bind(deleted_before)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(release_of).collect()
        }

        /// Removes the row unless a later delete moved it.
        pub(in crate::store) async fn settle_release(
            conn: &mut $conn,
            r: &BlobRelease,
        ) -> Result<()> {
            sqlx::query(
                "DELETE FROM blob_releases WHERE tenant = $1 AND conv = $2 AND hash = $3 \
                 AND deleted_at = $4",
            )
            .bind(r.tenant.as_str())
            .bind(r.conv.as_str())
            .bind(&r.hash)
            .bind(r.deleted_at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Starts an erasure unless one exists (running or done): the stored row either way.
        pub(in crate::store) async fn request(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            by: &AccountId,
            now: i64,
        ) -> Result<Erasure> {
            sqlx::query(
                "INSERT INTO erasures (tenant, account, requested_by, requested_at, step, \
                 updated_at) VALUES ($1, $2, $3, $4, 'messages', $4) \
                 ON CONFLICT (tenant, account) DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .bind(by.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
            get(conn, tenant, account)
                .await?
                .ok_or_else(|| crate::store::StoreError::Corrupt("erasure row vanished".into()))
        }

        pub(in crate::store) async fn get(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Option<Erasure>> {
            let row = sqlx::query(&format!(
                "SELECT {ERASURE_COLUMNS} FROM erasures WHERE tenant = $1 AND account = $2"
            ))
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(erasure_of).transpose()
        }

        /// Takes one unfinished erasure whose lease is past, leasing it until `until`. Two
        /// nodes never hold the same one: the update checks the lease again on the row.
        pub(in crate::store) async fn claim(
            conn: &mut $conn,
            now: i64,
            until: i64,
        ) -> Result<Option<Erasure>> {
            let row = sqlx::query(&format!(
                "UPDATE erasures SET lease_until = $2 WHERE (tenant, account) = \
                 (SELECT tenant, account FROM erasures WHERE step <> 'done' \
                  AND lease_until < $1 ORDER BY requested_at LIMIT 1) \
                 AND lease_until < $1 RETURNING {ERASURE_COLUMNS}"
            ))
            .bind(now)
            .bind(until)
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(erasure_of).transpose()
        }

        /// Stores the progress and extends the lease to `until` (0 lets it go).
        pub(in crate::store) async fn save(
            conn: &mut $conn,
            e: &Erasure,
            until: i64,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE erasures SET step = $3, after_cid = $4, after_pos = $5, messages = $6, \
                 skipped = $7, left_convs = $8, kept_owner = $9, devices = $10, \
                 updated_at = $11, done_at = $12, lease_until = $13 \
                 WHERE tenant = $1 AND account = $2",
            )
            .bind(e.tenant.as_str())
            .bind(e.account.as_str())
            .bind(e.step.as_str())
            .bind(e.after.0)
            .bind(e.after.1)
            .bind(e.messages)
            .bind(e.skipped)
            .bind(e.left_convs)
            .bind(e.kept_owner)
            .bind(e.devices)
            .bind(e.updated_at)
            .bind(e.done_at)
            .bind(until)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// The account's messages after `after` (conversation key, position) that are not
        /// deleted, in that order: one range of the `messages_author` index per page.
        pub(in crate::store) async fn authored(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            after: (i64, i64),
            limit: usize,
        ) -> Result<Vec<Authored>> {
            let rows = sqlx::query(
                "SELECT c.conv, m.message, m.period, CAST(m.part AS BIGINT) AS part, \
                 CAST(m.cid AS BIGINT) AS cid, CAST(m.pos AS BIGINT) AS pos \
                 FROM messages m JOIN conversations c ON c.id = m.cid \
                 WHERE m.author = $2 AND (m.cid, m.pos) > ($3, $4) AND c.tenant = $1 \
                 AND NOT m.deleted ORDER BY m.author, m.cid, m.pos LIMIT $5",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .bind(after.0)
            .bind(after.1)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(authored_of).collect()
        }
    };
}

pub(super) mod pg {
    queries!(sqlx::PgConnection);
}

pub(super) mod lite {
    queries!(sqlx::SqliteConnection);
}
