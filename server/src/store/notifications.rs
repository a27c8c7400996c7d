//! The notification feed's rows (migrations: Postgres 0016 and 0023, SQLite 0010 and
//! 0016), written by the
//! notifier (`crate::notify`, docs/NOTIFICATIONS.md) and read by REST. The statements are
//! written once here but for the insert (`sqlite/outboxes.rs`, `postgres/outboxes.rs`); the
//! lookups the notifier makes to decide who gets one are projection reads (`Projections`).
//!
//! Reads join `memberships`: a row of a conversation its account no longer reads (left,
//! removed, banned) is neither listed nor counted, so a feed never shows a message of a
//! conversation the account lost.

use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};

use super::columns::{account, conv_id, message_id, Cols};
use super::{Result, StoreError};

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotificationKind {
    /// The message names the account in `mentions`.
    Mention,
    /// The message replies to one of the account's messages.
    Reply,
    /// A message in a direct conversation.
    Direct,
    /// A proposal waiting for the account's answer.
    Proposal,
    /// Someone asks to join a conversation the account administers.
    JoinRequest,
    /// New messages of a group or channel at the level `all`, coalesced: one row per
    /// account and conversation, with how many ([`Coalesced`]).
    Message,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Mention => "mention",
            NotificationKind::Reply => "reply",
            NotificationKind::Direct => "direct",
            NotificationKind::Proposal => "proposal",
            NotificationKind::JoinRequest => "join_request",
            NotificationKind::Message => "message",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mention" => NotificationKind::Mention,
            "reply" => NotificationKind::Reply,
            "direct" => NotificationKind::Direct,
            "proposal" => NotificationKind::Proposal,
            "join_request" => NotificationKind::JoinRequest,
            "message" => NotificationKind::Message,
            _ => return None,
        })
    }
}

/// A notification to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub tenant: TenantId,
    pub account: AccountId,
    pub kind: NotificationKind,
    pub conv: ConvId,
    /// What caused it, unique per account and conversation (computing a commit twice
    /// stores nothing new): the message id, or `join/<account>/<seq>`.
    pub source: String,
    pub message: Option<MessageId>,
    /// Who caused it (the author, or the account asking to join).
    pub actor: AccountId,
    /// The start of the message's text (empty for a join request).
    pub preview: String,
    pub created_at: i64,
}

/// The `source` of the one coalesced row per account and conversation.
pub const COALESCED_SOURCE: &str = "messages";

/// `count` new messages of a conversation for one account, to add to its coalesced row:
/// while that row is unread its count grows by `count`, once read it starts again at
/// `count`; either way the row takes a new id (it moves to the top of the feed) and names
/// the newest message and its author. It carries no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalesced {
    pub tenant: TenantId,
    pub account: AccountId,
    pub conv: ConvId,
    /// The newest of the messages.
    pub message: MessageId,
    pub actor: AccountId,
    pub count: i64,
    pub created_at: i64,
}

/// A stored coalesced row: its new id and the count it holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalescedRow {
    pub id: i64,
    /// Index of the input it stores.
    pub index: usize,
    pub count: i64,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub kind: NotificationKind,
    pub conv: ConvId,
    pub message: Option<MessageId>,
    pub actor: AccountId,
    pub preview: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
    /// How many messages it stands for (1 but for a coalesced `message` row).
    pub count: i64,
}

pub(super) fn notification<R: Cols>(row: &R) -> Result<Notification> {
    let kind = row.text("kind")?;
    Ok(Notification {
        id: row.int("id")?,
        kind: NotificationKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("notification kind {kind:?}")))?,
        conv: conv_id(row.text("conv")?)?,
        message: row.opt_text("message")?.map(message_id).transpose()?,
        actor: account(row.text("actor")?)?,
        preview: row.text("preview")?,
        created_at: row.int("created_at")?,
        read_at: row.opt_int("read_at")?,
        count: row.int("count")?,
    })
}

macro_rules! queries {
    ($conn:ty) => {
        use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};

        use crate::store::columns::{limit_of, Cols};
        use crate::store::notifications::{notification, Notification};
        use crate::store::Result;

        /// Rows of a conversation the account no longer reads are skipped (the join).
        pub(in crate::store) async fn page(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            before: Option<i64>,
            unread_only: bool,
            limit: usize,
        ) -> Result<Vec<Notification>> {
            let rows = sqlx::query(
                "SELECT n.id, n.kind, n.conv, n.message, n.actor, n.preview, n.created_at, \
                 n.read_at, n.count FROM notifications n JOIN memberships m ON m.tenant = n.tenant \
                 AND m.conv = n.conv AND m.account = n.account AND m.status = 'active' \
                 WHERE n.tenant = $1 AND n.account = $2 AND n.id < $3 \
                 AND (NOT $4 OR n.read_at IS NULL) ORDER BY n.id DESC LIMIT $5",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(unread_only)
            .bind(limit_of(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(notification).collect()
        }

        pub(in crate::store) async fn unread(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<i64> {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM notifications n JOIN memberships m \
                 ON m.tenant = n.tenant AND m.conv = n.conv AND m.account = n.account \
                 AND m.status = 'active' \
                 WHERE n.tenant = $1 AND n.account = $2 AND n.read_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_one(&mut *conn)
            .await?;
            row.int("n")
        }

        pub(in crate::store) async fn mark_read(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            up_to: Option<i64>,
            at: i64,
        ) -> Result<i64> {
            let done = sqlx::query(
                "UPDATE notifications SET read_at = $4 WHERE tenant = $1 AND account = $2 \
                 AND read_at IS NULL AND id <= $3",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .bind(up_to.unwrap_or(i64::MAX))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }

        pub(in crate::store) async fn forget(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            message: &MessageId,
        ) -> Result<i64> {
            let done = sqlx::query(
                "UPDATE notifications SET preview = '' WHERE tenant = $1 AND conv = $2 \
                 AND message = $3 AND preview <> ''",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(message.as_str())
            .execute(&mut *conn)
            .await?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }
    };
}

/// The condition under which the notifier writes a row or delivery about the message `m`
/// (a column or parameter; NULL for none) of conversation `c` of tenant `t`: none named, or
/// its projected row is there and not deleted. On Postgres it is checked after the
/// conversation's lock ([`pg::lock_shared`]), in the same transaction as the write; on
/// SQLite the write transaction is the only writer.
fn live(t: &str, c: &str, m: &str, lookup: &str, deleted: &str) -> String {
    format!(
        "({m} IS NULL OR EXISTS (SELECT 1 FROM conversations lc JOIN messages lm \
         ON lm.cid = lc.id AND {lookup} AND lm.message = {m} \
         WHERE lc.tenant = {t} AND lc.conv = {c} AND {deleted}))"
    )
}

/// [`live`] on Postgres: through the index on `hashtext(message)` (migration 0010).
pub(super) fn live_pg(t: &str, c: &str, m: &str) -> String {
    live(
        t,
        c,
        m,
        &format!("hashtext(lm.message) = hashtext({m})"),
        "NOT lm.deleted",
    )
}

/// [`live`] on SQLite: through the index on `(cid, message)`.
pub(super) fn live_lite(t: &str, c: &str, m: &str) -> String {
    live(t, c, m, "TRUE", "lm.deleted = 0")
}

pub(super) mod pg {
    queries!(sqlx::PgConnection);

    /// Takes the conversation's notification lock shared until the transaction ends
    /// (migration 0035): a commit that marks one of its messages deleted waits for the
    /// transaction, and the transaction's next statement sees any such commit that ended
    /// before. Nothing to lock for a conversation without a row (no message to delete).
    pub(in crate::store) async fn lock_shared(
        conn: &mut sqlx::PgConnection,
        tenant: &str,
        conv: &str,
    ) -> Result<()> {
        sqlx::query(
            "SELECT pg_advisory_xact_lock_shared(hashtext('confab.notify'), \
             (id % 2147483647)::int4) FROM conversations WHERE tenant = $1 AND conv = $2",
        )
        .bind(tenant)
        .bind(conv)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

pub(super) mod lite {
    queries!(sqlx::SqliteConnection);
}
