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

/// A conversation's stream of ordinary messages to store (migration 0047): `count` more,
/// the newest named, and what of them each author or addressed account is not told of
/// (`skips`: its own, and those that told it by a row of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPost {
    pub tenant: TenantId,
    pub conv: ConvId,
    pub message: MessageId,
    pub actor: AccountId,
    pub count: i64,
    pub created_at: i64,
    pub skips: Vec<Skip>,
}

/// Messages of a [`StreamPost`] an account is not told of, and the newest of the others,
/// its entry's newest if the step ends with one it skips (`None`: all of them are its own
/// or addressed it; the stream's newest before the step stands for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub account: AccountId,
    pub count: i64,
    pub newest: Option<(MessageId, AccountId, i64)>,
}

/// A stream as stored: its feed id now and the messages it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRow {
    pub id: i64,
    pub n: i64,
}

/// A member became active: its mark starts at the stream as it stands, plus `already`
/// messages of the same batch that came before it (they are not its to count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub tenant: TenantId,
    pub conv: ConvId,
    pub account: AccountId,
    pub already: i64,
}

/// A change of an account's settings for a conversation, as the notifier sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuietChange {
    /// Now quiet (muted until `until`, or for good): its entry stays as it stands.
    Freeze { until: Option<i64> },
    /// Still quiet, to a new end.
    Until { until: Option<i64> },
    /// No longer quiet: the frozen count stays, the messages since the freeze do not count.
    Thaw,
}

/// A [`QuietChange`] of `account`'s entry for `conv`, after `already` messages of the
/// batch not yet in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiet {
    pub tenant: TenantId,
    pub account: AccountId,
    pub conv: ConvId,
    pub already: i64,
    pub change: QuietChange,
}

/// A member's place in a stream (`notify_marks`; zeros when it has no row): its count is
/// `n - n_mark - (skip - skip_mark)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    pub n_mark: i64,
    pub skip: i64,
    pub skip_mark: i64,
}

impl Mark {
    pub fn count(&self, n: i64) -> i64 {
        (n - self.n_mark - (self.skip - self.skip_mark)).max(0)
    }
}

/// The old stream as it stood before a step: `(id, n, message, actor, created_at)`.
pub(super) type Before = Option<(i64, i64, String, String, i64)>;

/// One skipped account's mark, upserted (`$1` tenant, `$2` conversation, `$3` account,
/// `$4` count, `$5` the stream's new `n`, `$6` whether the step names its newest,
/// `$7..$10` that newest or the stream's before the step, `$11` the stream's `n` before):
/// an account whose previous step was skipped too keeps its newest then.
pub(super) const SKIP_UPSERT: &str =
    "INSERT INTO notify_marks (tenant, account, conv, skip, skip_n, alt_id, alt_message, \
     alt_actor, alt_at) VALUES ($1, $3, $2, $4, $5, $7, $8, $9, $10) \
     ON CONFLICT (tenant, account, conv) DO UPDATE SET \
     skip = notify_marks.skip + excluded.skip, skip_n = excluded.skip_n, \
     alt_id = CASE WHEN NOT $6 AND notify_marks.skip_n = $11 THEN notify_marks.alt_id \
       ELSE excluded.alt_id END, \
     alt_message = CASE WHEN NOT $6 AND notify_marks.skip_n = $11 \
       THEN notify_marks.alt_message ELSE excluded.alt_message END, \
     alt_actor = CASE WHEN NOT $6 AND notify_marks.skip_n = $11 THEN notify_marks.alt_actor \
       ELSE excluded.alt_actor END, \
     alt_at = CASE WHEN NOT $6 AND notify_marks.skip_n = $11 THEN notify_marks.alt_at \
       ELSE excluded.alt_at END";

/// The derived `message` entries of an account (one per stream of a conversation it reads
/// now, as `page` joins rows): `u` is its unread count. An entry the notifier froze when the
/// account's settings made the conversation quiet shows as it stood then; `quiet` (a
/// store's fragment) hides the others of conversations its settings keep quiet now (a
/// change the notifier has not seen yet).
fn derived(quiet: &str) -> String {
    // A timed mute that ran out stays frozen until the stream's next step thaws it
    // (`advance`): nothing came since, so its count is the frozen one.
    let frozen = "(k.quiet_n IS NOT NULL)";
    format!(
        "SELECT s.conv AS conv, s.n AS s_n, COALESCE(k.skip, 0) AS skip, \
         CASE WHEN {frozen} THEN k.q_id \
         WHEN k.skip_n = s.n THEN COALESCE(k.alt_id, s.id) ELSE s.id END AS s_id, \
         CASE WHEN {frozen} THEN k.q_message \
         WHEN k.skip_n = s.n THEN COALESCE(k.alt_message, s.message) \
         ELSE s.message END AS s_message, \
         CASE WHEN {frozen} THEN k.q_actor \
         WHEN k.skip_n = s.n THEN COALESCE(k.alt_actor, s.actor) ELSE s.actor END \
         AS s_actor, \
         CASE WHEN {frozen} THEN k.q_at \
         WHEN k.skip_n = s.n THEN COALESCE(k.alt_at, s.created_at) \
         ELSE s.created_at END AS s_at, \
         CASE WHEN {frozen} \
         THEN (k.quiet_n - k.n_mark) - (k.quiet_skip - k.skip_mark) \
         ELSE (s.n - COALESCE(k.n_mark, 0)) - (COALESCE(k.skip, 0) - COALESCE(k.skip_mark, 0)) \
         END AS u, \
         k.read_id, k.read_count, k.read_message, k.read_actor, k.read_created_at, k.read_at \
         FROM memberships m JOIN notify_streams s ON s.tenant = m.tenant AND s.conv = m.conv \
         JOIN conversations c ON c.tenant = s.tenant AND c.conv = s.conv \
         AND c.lifecycle <> 'deleted' \
         LEFT JOIN notify_marks k ON k.tenant = s.tenant AND k.conv = s.conv \
         AND k.account = m.account \
         WHERE m.tenant = $1 AND m.account = $2 AND m.status = 'active' \
         AND ({frozen} OR {quiet}) \
         AND (c.parent IS NULL OR EXISTS (SELECT 1 FROM memberships pm \
         WHERE pm.tenant = m.tenant AND pm.conv = c.parent AND pm.account = m.account \
         AND pm.status = 'active'))"
    )
}

/// The rows of an account's feed (those of conversations it reads now) with its derived
/// entries, as one relation of the columns [`notification`] reads.
fn feed(quiet: &str) -> String {
    format!(
        "SELECT n.id, n.kind, n.conv, n.message, n.actor, n.preview, n.created_at, \
         n.read_at, n.count FROM notifications n JOIN memberships m ON m.tenant = n.tenant \
         AND m.conv = n.conv AND m.account = n.account AND m.status = 'active' \
         WHERE n.tenant = $1 AND n.account = $2 \
         UNION ALL \
         SELECT CASE WHEN u > 0 THEN s_id ELSE read_id END, 'message', conv, \
         CASE WHEN u > 0 THEN s_message ELSE read_message END, \
         CASE WHEN u > 0 THEN s_actor ELSE read_actor END, '', \
         CASE WHEN u > 0 THEN s_at ELSE read_created_at END, \
         CASE WHEN u > 0 THEN NULL ELSE read_at END, \
         CASE WHEN u > 0 THEN u ELSE read_count END \
         FROM ({}) d WHERE u > 0 OR read_id IS NOT NULL",
        derived(quiet)
    )
}

macro_rules! queries {
    ($conn:ty, $quiet:expr, $bind_quiet:path, $lock:expr, $zero:expr) => {
        use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};

        use crate::store::columns::{limit_of, Cols};
        use crate::store::notifications::{
            derived, feed, notification, Before, Joined, Mark, Notification, Quiet, QuietChange,
            StreamPost, StreamRow, SKIP_UPSERT,
        };
        use crate::store::Result;

        /// One step of a conversation's stream under the new feed id `id` (in the caller's
        /// transaction): the stream as it stood (locked where rows lock), its upsert, and
        /// one mark per skipped account, never one per member.
        pub(in crate::store) async fn advance(
            conn: &mut $conn,
            post: &StreamPost,
            id: i64,
        ) -> Result<StreamRow> {
            let before = sqlx::query(&format!(
                "SELECT id, n, message, actor, created_at FROM notify_streams \
                 WHERE tenant = $1 AND conv = $2{}",
                $lock
            ))
            .bind(post.tenant.as_str())
            .bind(post.conv.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            // Timed mutes of this conversation that ended before this step are thawed first,
            // as a settings change would: the frozen count stays, the muted time's messages
            // do not count, this step's do. Only marks frozen with an end are read (a
            // partial index), each once.
            sqlx::query(
                "UPDATE notify_marks SET n_mark = $3 - CASE \
                 WHEN (quiet_n - n_mark) - (quiet_skip - skip_mark) > 0 \
                 THEN (quiet_n - n_mark) - (quiet_skip - skip_mark) ELSE 0 END, \
                 skip_mark = skip, quiet_n = NULL, quiet_skip = NULL, quiet_until = NULL, \
                 q_id = NULL, q_message = NULL, q_actor = NULL, q_at = NULL \
                 WHERE tenant = $1 AND conv = $2 AND quiet_n IS NOT NULL \
                 AND quiet_until IS NOT NULL AND quiet_until <= $4",
            )
            .bind(post.tenant.as_str())
            .bind(post.conv.as_str())
            .bind(match &before {
                Some(r) => r.int("n")?,
                None => 0,
            })
            .bind(post.created_at)
            .execute(&mut *conn)
            .await?;
            let before: Before = match before {
                Some(r) => Some((
                    r.int("id")?,
                    r.int("n")?,
                    r.text("message")?,
                    r.text("actor")?,
                    r.int("created_at")?,
                )),
                None => None,
            };
            let row = sqlx::query(
                "INSERT INTO notify_streams (tenant, conv, id, n, message, actor, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, conv) DO UPDATE \
                 SET id = excluded.id, n = notify_streams.n + excluded.n, \
                 message = excluded.message, actor = excluded.actor, \
                 created_at = excluded.created_at RETURNING id, n",
            )
            .bind(post.tenant.as_str())
            .bind(post.conv.as_str())
            .bind(id)
            .bind(post.count)
            .bind(post.message.as_str())
            .bind(post.actor.as_str())
            .bind(post.created_at)
            .fetch_one(&mut *conn)
            .await?;
            let stored = StreamRow {
                id: row.int("id")?,
                n: row.int("n")?,
            };
            let old_n = before.as_ref().map_or(0, |b| b.1);
            for skip in &post.skips {
                let (given, alt) = match &skip.newest {
                    Some((m, a, at)) => (true, Some((id, m.to_string(), a.to_string(), *at))),
                    None => (
                        false,
                        before
                            .as_ref()
                            .map(|b| (b.0, b.2.clone(), b.3.clone(), b.4)),
                    ),
                };
                sqlx::query(SKIP_UPSERT)
                    .bind(post.tenant.as_str())
                    .bind(post.conv.as_str())
                    .bind(skip.account.as_str())
                    .bind(skip.count)
                    .bind(stored.n)
                    .bind(given)
                    .bind(alt.as_ref().map(|a| a.0))
                    .bind(alt.as_ref().map(|a| a.1.clone()))
                    .bind(alt.as_ref().map(|a| a.2.clone()))
                    .bind(alt.as_ref().map(|a| a.3))
                    .bind(old_n)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(stored)
        }

        /// Rows of a conversation the account no longer reads are skipped (the join), and
        /// so are the derived entries of conversations its settings keep `quiet`.
        pub(in crate::store) async fn page(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            before: Option<i64>,
            unread_only: bool,
            limit: usize,
            quiet: &[ConvId],
        ) -> Result<Vec<Notification>> {
            let sql = format!(
                "SELECT id, kind, conv, message, actor, preview, created_at, read_at, count \
                 FROM ({}) f WHERE id < $3 AND (NOT $4 OR read_at IS NULL) \
                 ORDER BY id DESC LIMIT $5",
                feed(&format!($quiet, "$6"))
            );
            let rows = sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(account.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(unread_only)
                .bind(limit_of(limit))
                .bind($bind_quiet(quiet))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(notification).collect()
        }

        pub(in crate::store) async fn unread(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            quiet: &[ConvId],
        ) -> Result<i64> {
            let sql = format!(
                "SELECT (SELECT COUNT(*) FROM notifications n JOIN memberships m \
                 ON m.tenant = n.tenant AND m.conv = n.conv AND m.account = n.account \
                 AND m.status = 'active' \
                 WHERE n.tenant = $1 AND n.account = $2 AND n.read_at IS NULL) + \
                 (SELECT COUNT(*) FROM ({}) d WHERE u > 0) AS n",
                derived(&format!($quiet, "$3"))
            );
            let row = sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(account.as_str())
                .bind($bind_quiet(quiet))
                .fetch_one(&mut *conn)
                .await?;
            row.int("n")
        }

        /// The rows, then the derived entries up to `up_to`: the account's mark moves to
        /// where its stream stands, keeping the entry as it was read.
        pub(in crate::store) async fn mark_read(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            up_to: Option<i64>,
            at: i64,
            quiet: &[ConvId],
        ) -> Result<i64> {
            let up_to = up_to.unwrap_or(i64::MAX);
            let rows = sqlx::query(
                "UPDATE notifications SET read_at = $4 WHERE tenant = $1 AND account = $2 \
                 AND read_at IS NULL AND id <= $3",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .bind(up_to)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            let sql = format!(
                "INSERT INTO notify_marks (tenant, account, conv, n_mark, skip, skip_mark, \
                 read_id, read_count, read_message, read_actor, read_created_at, read_at) \
                 SELECT $1, $2, d.conv, d.s_n, d.skip, d.skip, d.s_id, d.u, d.s_message, \
                 d.s_actor, d.s_at, $4 FROM ({}) d WHERE d.u > 0 AND d.s_id <= $3 \
                 ON CONFLICT (tenant, account, conv) DO UPDATE SET \
                 n_mark = EXCLUDED.n_mark, skip_mark = EXCLUDED.skip_mark, \
                 read_id = EXCLUDED.read_id, read_count = EXCLUDED.read_count, \
                 read_message = EXCLUDED.read_message, read_actor = EXCLUDED.read_actor, \
                 read_created_at = EXCLUDED.read_created_at, read_at = EXCLUDED.read_at",
                derived(&format!($quiet, "$5"))
            );
            let streams = sqlx::query(&sql)
                .bind(tenant.as_str())
                .bind(account.as_str())
                .bind(up_to)
                .bind(at)
                .bind($bind_quiet(quiet))
                .execute(&mut *conn)
                .await?;
            let done = rows.rows_affected() + streams.rows_affected();
            Ok(i64::try_from(done).unwrap_or(i64::MAX))
        }

        /// Starts each joined member's mark at its stream as it stands (none yet: 0): what
        /// came before it joined is not its to count.
        pub(in crate::store) async fn join(conn: &mut $conn, j: &Joined) -> Result<()> {
            sqlx::query(
                "INSERT INTO notify_marks (tenant, account, conv, n_mark, skip, skip_mark) \
                 SELECT $1, $2, $3, COALESCE((SELECT n FROM notify_streams \
                 WHERE tenant = $1 AND conv = $3), 0) + $4, 0, 0 WHERE TRUE \
                 ON CONFLICT (tenant, account, conv) DO UPDATE SET \
                 n_mark = EXCLUDED.n_mark, skip_mark = notify_marks.skip",
            )
            .bind(j.tenant.as_str())
            .bind(j.account.as_str())
            .bind(j.conv.as_str())
            .bind(j.already)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// The marks of a conversation's members from `first` to `last` (a fan-out page).
        pub(in crate::store) async fn marks(
            conn: &mut $conn,
            tenant: &TenantId,
            conv: &ConvId,
            first: &AccountId,
            last: &AccountId,
        ) -> Result<Vec<(AccountId, Mark)>> {
            let rows = sqlx::query(
                "SELECT account, n_mark, skip, skip_mark FROM notify_marks \
                 WHERE tenant = $1 AND conv = $2 AND account >= $3 AND account <= $4",
            )
            .bind(tenant.as_str())
            .bind(conv.as_str())
            .bind(first.as_str())
            .bind(last.as_str())
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        crate::store::columns::account(r.text("account")?)?,
                        Mark {
                            n_mark: r.int("n_mark")?,
                            skip: r.int("skip")?,
                            skip_mark: r.int("skip_mark")?,
                        },
                    ))
                })
                .collect()
        }

        /// The conversations whose entry the notifier froze for the account, with when a
        /// timed mute ends.
        pub(in crate::store) async fn quiet_marks(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Vec<(ConvId, Option<i64>)>> {
            let rows = sqlx::query(
                "SELECT conv, quiet_until FROM notify_marks WHERE tenant = $1 \
                 AND account = $2 AND quiet_n IS NOT NULL",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        crate::store::columns::conv_id(r.text("conv")?)?,
                        r.opt_int("quiet_until")?,
                    ))
                })
                .collect()
        }

        /// Freezes the account's entry as it stands (plus `already` messages of the batch),
        /// changes when its mute ends, or thaws it: its frozen count stays, what came while
        /// it was frozen does not count.
        pub(in crate::store) async fn set_quiet(conn: &mut $conn, q: &Quiet) -> Result<()> {
            let (sql, until) = match q.change {
                QuietChange::Freeze { until } => (
                    format!(
                        "INSERT INTO notify_marks (tenant, account, conv, quiet_n, \
                         quiet_skip, quiet_until, q_id, q_message, q_actor, q_at) \
                         SELECT $1, $2, $3, COALESCE(s.n, 0) + $4, COALESCE(k.skip, 0), $5, \
                         CASE WHEN k.skip_n = s.n THEN COALESCE(k.alt_id, s.id) ELSE s.id END, \
                         CASE WHEN k.skip_n = s.n THEN COALESCE(k.alt_message, s.message) \
                         ELSE s.message END, \
                         CASE WHEN k.skip_n = s.n THEN COALESCE(k.alt_actor, s.actor) \
                         ELSE s.actor END, \
                         CASE WHEN k.skip_n = s.n THEN COALESCE(k.alt_at, s.created_at) \
                         ELSE s.created_at END \
                         FROM (SELECT 1 AS one) o LEFT JOIN notify_streams s \
                         ON s.tenant = $1 AND s.conv = $3 LEFT JOIN notify_marks k \
                         ON k.tenant = $1 AND k.account = $2 AND k.conv = $3 WHERE {} \
                         ON CONFLICT (tenant, account, conv) DO UPDATE SET \
                         quiet_n = excluded.quiet_n, quiet_skip = excluded.quiet_skip, \
                         quiet_until = excluded.quiet_until, q_id = excluded.q_id, \
                         q_message = excluded.q_message, q_actor = excluded.q_actor, \
                         q_at = excluded.q_at",
                        $zero
                    ),
                    until,
                ),
                QuietChange::Until { until } => (
                    "UPDATE notify_marks SET quiet_until = $5 WHERE tenant = $1 \
                     AND account = $2 AND conv = $3 AND $4 = $4"
                        .to_owned(),
                    until,
                ),
                QuietChange::Thaw => (
                    "UPDATE notify_marks SET \
                     n_mark = COALESCE((SELECT n FROM notify_streams \
                       WHERE tenant = $1 AND conv = $3), 0) + $4 - CASE \
                       WHEN (quiet_n - n_mark) - (quiet_skip - skip_mark) > 0 \
                       THEN (quiet_n - n_mark) - (quiet_skip - skip_mark) ELSE 0 END, \
                     skip_mark = skip, \
                     quiet_n = NULL, quiet_skip = NULL, quiet_until = $5, q_id = NULL, \
                     q_message = NULL, q_actor = NULL, q_at = NULL \
                     WHERE tenant = $1 AND account = $2 AND conv = $3 \
                     AND quiet_n IS NOT NULL"
                        .to_owned(),
                    None,
                ),
            };
            sqlx::query(&sql)
                .bind(q.tenant.as_str())
                .bind(q.account.as_str())
                .bind(q.conv.as_str())
                .bind(q.already)
                .bind(until)
                .execute(&mut *conn)
                .await?;
            Ok(())
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

fn quiet_pg(quiet: &[ConvId]) -> Vec<String> {
    quiet.iter().map(ToString::to_string).collect()
}

fn quiet_lite(quiet: &[ConvId]) -> String {
    serde_json::to_string(&quiet.iter().map(ConvId::as_str).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

pub(super) mod pg {
    queries!(
        sqlx::PgConnection,
        "NOT (s.conv = ANY({}::text[]))",
        super::quiet_pg,
        " FOR UPDATE",
        "TRUE"
    );

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
    queries!(
        sqlx::SqliteConnection,
        "s.conv NOT IN (SELECT value FROM json_each({}))",
        super::quiet_lite,
        "",
        "TRUE"
    );
}
