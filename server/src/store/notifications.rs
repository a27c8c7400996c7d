//! The notification feed's rows (migrations: Postgres 0016, SQLite 0010) and the lookups the
//! notifier makes to decide who gets one (`crate::notify`, docs/NOTIFICATIONS.md).
//!
//! Reads join `memberships`: a row of a conversation its account no longer reads (left,
//! removed, banned) is neither listed nor counted, so a feed never shows a message of a
//! conversation the account lost.

use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};
use sqlx::{PgConnection, SqliteConnection};

use super::columns::{account, conv_id, limit_of, message_id, Cols};
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
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Mention => "mention",
            NotificationKind::Reply => "reply",
            NotificationKind::Direct => "direct",
            NotificationKind::Proposal => "proposal",
            NotificationKind::JoinRequest => "join_request",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mention" => NotificationKind::Mention,
            "reply" => NotificationKind::Reply,
            "direct" => NotificationKind::Direct,
            "proposal" => NotificationKind::Proposal,
            "join_request" => NotificationKind::JoinRequest,
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
}

/// One operation on the feed.
#[derive(Debug, Clone)]
pub enum NotifyOp<'a> {
    /// Stores these rows (those already stored are skipped) and answers the new ones'
    /// `(id, index in the slice)`.
    Insert(&'a [NewNotification]),
    /// A page of an account's feed, newest first, ids below `before`; only unread ones with
    /// `unread_only`.
    Page {
        tenant: &'a TenantId,
        account: &'a AccountId,
        before: Option<i64>,
        unread_only: bool,
        limit: usize,
    },
    /// The number of unread notifications of readable conversations.
    Unread {
        tenant: &'a TenantId,
        account: &'a AccountId,
    },
    /// Marks the account's unread notifications with ids up to `up_to` (all without) read.
    MarkRead {
        tenant: &'a TenantId,
        account: &'a AccountId,
        up_to: Option<i64>,
        at: i64,
    },
    /// A message was deleted: its text leaves every feed.
    Forget {
        tenant: &'a TenantId,
        conv: &'a ConvId,
        message: &'a MessageId,
    },
    /// Active members of a conversation, at most `limit`; only owners and admins with
    /// `admins_only`.
    Members {
        tenant: &'a TenantId,
        conv: &'a ConvId,
        admins_only: bool,
        limit: usize,
    },
    /// The author of a message, from the projection.
    AuthorOf {
        tenant: &'a TenantId,
        conv: &'a ConvId,
        message: &'a MessageId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyAnswer {
    Inserted(Vec<(i64, usize)>),
    Page(Vec<Notification>),
    Count(i64),
    Accounts(Vec<AccountId>),
    Author(Option<AccountId>),
}

impl NotifyOp<'_> {
    /// Whether the operation only reads (SQLite runs it on a reader connection).
    pub fn reads(&self) -> bool {
        !matches!(
            self,
            NotifyOp::Insert(_) | NotifyOp::MarkRead { .. } | NotifyOp::Forget { .. }
        )
    }
}

fn notification<R: Cols>(row: &R) -> Result<Notification> {
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
    })
}

const ADMIN_ROLES: &str = "('owner', 'admin')";

macro_rules! page_sql {
    ($t:literal, $a:literal, $before:literal, $unread:literal, $limit:literal) => {
        concat!(
            "SELECT n.id, n.kind, n.conv, n.message, n.actor, n.preview, n.created_at, n.read_at ",
            "FROM notifications n JOIN memberships m ON m.tenant = n.tenant ",
            "AND m.conv = n.conv AND m.account = n.account AND m.status = 'active' ",
            "WHERE n.tenant = ",
            $t,
            " AND n.account = ",
            $a,
            " AND n.id < ",
            $before,
            " AND (NOT ",
            $unread,
            " OR n.read_at IS NULL) ORDER BY n.id DESC LIMIT ",
            $limit
        )
    };
}

const UNREAD: &str = "SELECT COUNT(*) AS n FROM notifications n JOIN memberships m \
     ON m.tenant = n.tenant AND m.conv = n.conv AND m.account = n.account \
     AND m.status = 'active' WHERE n.tenant = $1 AND n.account = $2 AND n.read_at IS NULL";

fn accounts<R: Cols>(rows: &[R]) -> Result<NotifyAnswer> {
    rows.iter()
        .map(|r| account(r.text("account")?))
        .collect::<Result<Vec<_>>>()
        .map(NotifyAnswer::Accounts)
}

pub(super) async fn run_pg(conn: &mut PgConnection, op: NotifyOp<'_>) -> Result<NotifyAnswer> {
    match op {
        NotifyOp::Insert(rows) => {
            let col = |f: fn(&NewNotification) -> &str| rows.iter().map(f).collect::<Vec<_>>();
            let found = sqlx::query(
                "INSERT INTO notifications (tenant, account, kind, conv, source, message, actor, \
                 preview, created_at) \
                 SELECT t, a, k, c, s, m, ac, p, at FROM UNNEST($1::text[], $2::text[], \
                 $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                 $9::int8[], $10::int8[]) AS u(t, a, k, c, s, m, ac, p, at, i) ORDER BY i \
                 ON CONFLICT DO NOTHING RETURNING id, account, conv, source",
            )
            .bind(col(|r| r.tenant.as_str()))
            .bind(col(|r| r.account.as_str()))
            .bind(col(|r| r.kind.as_str()))
            .bind(col(|r| r.conv.as_str()))
            .bind(col(|r| r.source.as_str()))
            .bind(
                rows.iter()
                    .map(|r| r.message.as_ref().map(MessageId::as_str))
                    .collect::<Vec<_>>(),
            )
            .bind(col(|r| r.actor.as_str()))
            .bind(col(|r| r.preview.as_str()))
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind((0..rows.len() as i64).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
            // RETURNING does not say which input row; (account, conv, source) is unique.
            let mut out = Vec::with_capacity(found.len());
            for row in &found {
                let (a, c, s) = (row.text("account")?, row.text("conv")?, row.text("source")?);
                if let Some(i) = rows
                    .iter()
                    .position(|r| r.account.as_str() == a && r.conv.as_str() == c && r.source == s)
                {
                    out.push((row.int("id")?, i));
                }
            }
            Ok(NotifyAnswer::Inserted(out))
        }
        NotifyOp::Page {
            tenant,
            account,
            before,
            unread_only,
            limit,
        } => {
            let rows = sqlx::query(page_sql!("$1", "$2", "$3", "$4", "$5"))
                .bind(tenant.as_str())
                .bind(account.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(unread_only)
                .bind(limit_of(limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(notification)
                .collect::<Result<Vec<_>>>()
                .map(NotifyAnswer::Page)
        }
        NotifyOp::Unread { tenant, account } => {
            let row = sqlx::query(UNREAD)
                .bind(tenant.as_str())
                .bind(account.as_str())
                .fetch_one(&mut *conn)
                .await?;
            Ok(NotifyAnswer::Count(row.int("n")?))
        }
        NotifyOp::MarkRead {
            tenant,
            account,
            up_to,
            at,
        } => {
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
            Ok(NotifyAnswer::Count(
                i64::try_from(done.rows_affected()).unwrap_or(i64::MAX),
            ))
        }
        NotifyOp::Forget {
            tenant,
            conv,
            message,
        } => {
            let done = sqlx::query(
                "UPDATE notifications SET preview = '' WHERE tenant = $1 AND conv = $2 \
                 AND message = $3 AND preview <> ''",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(message.as_str())
            .execute(&mut *conn)
            .await?;
            Ok(NotifyAnswer::Count(
                i64::try_from(done.rows_affected()).unwrap_or(i64::MAX),
            ))
        }
        NotifyOp::Members {
            tenant,
            conv,
            admins_only,
            limit,
        } => {
            let sql = format!(
                "SELECT account FROM memberships WHERE tenant = $1 AND conv = $2 \
                 AND status = 'active' AND (NOT $3 OR role IN {ADMIN_ROLES}) \
                 ORDER BY account COLLATE \"C\" LIMIT $4"
            );
            let rows = sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(conv.as_str())
                .bind(admins_only)
                .bind(limit_of(limit))
                .fetch_all(&mut *conn)
                .await?;
            accounts(&rows)
        }
        NotifyOp::AuthorOf {
            tenant,
            conv,
            message,
        } => {
            // Through the index on hashtext(message) (migration 0010), then compared whole.
            let row = sqlx::query(
                "SELECT m.author FROM conversations c JOIN messages m ON m.cid = c.id \
                 AND hashtext(m.message) = hashtext($3) AND m.message = $3 \
                 WHERE c.tenant = $1 AND c.conv = $2",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(message.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            Ok(NotifyAnswer::Author(
                row.map(|r| account(r.text("author")?)).transpose()?,
            ))
        }
    }
}

pub(super) async fn run_sqlite(
    conn: &mut SqliteConnection,
    op: NotifyOp<'_>,
) -> Result<NotifyAnswer> {
    match op {
        NotifyOp::Insert(rows) => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let mut out = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                let row = sqlx::query(
                    "INSERT INTO notifications (tenant, account, kind, conv, source, message, \
                     actor, preview, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(r.tenant.as_str())
                .bind(r.account.as_str())
                .bind(r.kind.as_str())
                .bind(r.conv.as_str())
                .bind(r.source.as_str())
                .bind(r.message.as_ref().map(MessageId::as_str))
                .bind(r.actor.as_str())
                .bind(r.preview.as_str())
                .bind(r.created_at)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = row {
                    out.push((row.int("id")?, i));
                }
            }
            tx.commit().await?;
            Ok(NotifyAnswer::Inserted(out))
        }
        NotifyOp::Page {
            tenant,
            account,
            before,
            unread_only,
            limit,
        } => {
            let rows = sqlx::query(page_sql!("?1", "?2", "?3", "?4", "?5"))
                .bind(tenant.as_str())
                .bind(account.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(unread_only)
                .bind(limit_of(limit))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(notification)
                .collect::<Result<Vec<_>>>()
                .map(NotifyAnswer::Page)
        }
        NotifyOp::Unread { tenant, account } => {
            let row = sqlx::query(&UNREAD.replace('$', "?"))
                .bind(tenant.as_str())
                .bind(account.as_str())
                .fetch_one(&mut *conn)
                .await?;
            Ok(NotifyAnswer::Count(row.int("n")?))
        }
        NotifyOp::MarkRead {
            tenant,
            account,
            up_to,
            at,
        } => {
            let done = sqlx::query(
                "UPDATE notifications SET read_at = ?4 WHERE tenant = ?1 AND account = ?2 \
                 AND read_at IS NULL AND id <= ?3",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .bind(up_to.unwrap_or(i64::MAX))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(NotifyAnswer::Count(
                i64::try_from(done.rows_affected()).unwrap_or(i64::MAX),
            ))
        }
        NotifyOp::Forget {
            tenant,
            conv,
            message,
        } => {
            let done = sqlx::query(
                "UPDATE notifications SET preview = '' WHERE tenant = ?1 AND conv = ?2 \
                 AND message = ?3 AND preview <> ''",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(message.as_str())
            .execute(&mut *conn)
            .await?;
            Ok(NotifyAnswer::Count(
                i64::try_from(done.rows_affected()).unwrap_or(i64::MAX),
            ))
        }
        NotifyOp::Members {
            tenant,
            conv,
            admins_only,
            limit,
        } => {
            let sql = format!(
                "SELECT account FROM memberships WHERE tenant = ?1 AND conv = ?2 \
                 AND status = 'active' AND (NOT ?3 OR role IN {ADMIN_ROLES}) \
                 ORDER BY account LIMIT ?4"
            );
            let rows = sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(conv.as_str())
                .bind(admins_only)
                .bind(limit_of(limit))
                .fetch_all(&mut *conn)
                .await?;
            accounts(&rows)
        }
        NotifyOp::AuthorOf {
            tenant,
            conv,
            message,
        } => {
            let row = sqlx::query(
                "SELECT m.author FROM conversations c JOIN messages m ON m.cid = c.id \
                 AND m.message = ?3 WHERE c.tenant = ?1 AND c.conv = ?2",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(message.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            Ok(NotifyAnswer::Author(
                row.map(|r| account(r.text("author")?)).transpose()?,
            ))
        }
    }
}
