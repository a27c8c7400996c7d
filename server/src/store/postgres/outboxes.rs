//! The notification feed, the webhook outbox and the scheduler's tables on Postgres: the
//! shared statements, an insert of many notifications as arrays (and the coalesced rows'
//! upsert, one statement for a whole fan-out), and claims that skip the
//! rows another node holds (`FOR UPDATE SKIP LOCKED`).

use async_trait::async_trait;
use confab_core::ids::{AccountId, ConvId, MessageId, TenantId};

use super::PgStore;
use crate::store::columns::{limit_of, Cols};
use crate::store::notifications::{
    self, Joined, Mark, NewNotification, Notification, Quiet, StreamPost, StreamRow,
};
use crate::store::schedule::{self, Claim};
use crate::store::webhooks::{self, Delivery, NewDelivery};
use crate::store::{Outboxes, Result};

#[async_trait]
impl Outboxes for PgStore {
    /// One transaction per conversation: its lock taken shared, then one insert of its
    /// rows, those naming a message only while that message's row is not deleted
    /// (`notifications::live_pg`). One lock at a time: a notifier waits for a deletion
    /// holding nothing a deletion could wait for.
    async fn insert_notifications(&self, rows: &[NewNotification]) -> Result<Vec<(i64, usize)>> {
        type Group<'a> = Vec<(usize, &'a NewNotification)>;
        let mut by_conv: std::collections::BTreeMap<(&str, &str), Group> =
            std::collections::BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            by_conv
                .entry((r.tenant.as_str(), r.conv.as_str()))
                .or_default()
                .push((i, r));
        }
        let mut out = Vec::with_capacity(rows.len());
        for ((tenant, conv), group) in by_conv {
            let mut tx = self.pool.begin().await?;
            notifications::pg::lock_shared(&mut tx, tenant, conv).await?;
            let col = |f: fn(&NewNotification) -> &str| {
                group.iter().map(|(_, r)| f(r)).collect::<Vec<_>>()
            };
            let found = sqlx::query(&format!(
                "INSERT INTO notifications (tenant, account, kind, conv, source, message, \
                 actor, preview, created_at) \
                 SELECT t, a, k, c, s, m, ac, p, at FROM UNNEST($1::text[], $2::text[], \
                 $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
                 $9::int8[], $10::int8[]) AS u(t, a, k, c, s, m, ac, p, at, i) \
                 WHERE {} ORDER BY i \
                 ON CONFLICT DO NOTHING RETURNING id, account, source",
                notifications::live_pg("u.t", "u.c", "u.m")
            ))
            .bind(col(|r| r.tenant.as_str()))
            .bind(col(|r| r.account.as_str()))
            .bind(col(|r| r.kind.as_str()))
            .bind(col(|r| r.conv.as_str()))
            .bind(col(|r| r.source.as_str()))
            .bind(
                group
                    .iter()
                    .map(|(_, r)| r.message.as_ref().map(MessageId::as_str))
                    .collect::<Vec<_>>(),
            )
            .bind(col(|r| r.actor.as_str()))
            .bind(col(|r| r.preview.as_str()))
            .bind(group.iter().map(|(_, r)| r.created_at).collect::<Vec<_>>())
            .bind((0..group.len() as i64).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            // RETURNING does not say which input row; (account, source) is unique within
            // the conversation.
            for row in &found {
                let (a, s) = (row.text("account")?, row.text("source")?);
                if let Some((i, _)) = group
                    .iter()
                    .find(|(_, r)| r.account.as_str() == a && r.source == s)
                {
                    out.push((row.int("id")?, *i));
                }
            }
        }
        Ok(out)
    }

    /// One transaction: a new id from the notifications' sequence (so the entry sorts
    /// among the rows), then the step (`notifications::pg::advance`).
    async fn advance_stream(&self, post: &StreamPost) -> Result<StreamRow> {
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query("SELECT nextval(pg_get_serial_sequence('notifications', 'id')) AS id")
            .fetch_one(&mut *tx)
            .await?
            .int("id")?;
        let stored = notifications::pg::advance(&mut tx, post, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn join_streams(&self, joined: &[Joined]) -> Result<()> {
        if joined.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for j in joined {
            notifications::pg::join(&mut tx, j).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn quiet_marks(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<(ConvId, Option<i64>)>> {
        on_pool!(self, |conn| notifications::pg::quiet_marks(
            conn, tenant, account
        ))
    }

    async fn set_quiet(&self, changes: &[Quiet]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for q in changes {
            notifications::pg::set_quiet(&mut tx, q).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stream_marks(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        first: &AccountId,
        last: &AccountId,
    ) -> Result<Vec<(AccountId, Mark)>> {
        on_pool!(self, |conn| notifications::pg::marks(
            conn, tenant, conv, first, last
        ))
    }

    async fn notification_page(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        before: Option<i64>,
        unread_only: bool,
        limit: usize,
        quiet: &[ConvId],
    ) -> Result<Vec<Notification>> {
        on_pool!(self, |conn| notifications::pg::page(
            conn,
            tenant,
            account,
            before,
            unread_only,
            limit,
            quiet
        ))
    }

    async fn unread_notifications(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        quiet: &[ConvId],
    ) -> Result<i64> {
        on_pool!(self, |conn| notifications::pg::unread(
            conn, tenant, account, quiet
        ))
    }

    async fn mark_notifications_read(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        up_to: Option<i64>,
        at: i64,
        quiet: &[ConvId],
    ) -> Result<i64> {
        on_pool!(self, |conn| notifications::pg::mark_read(
            conn, tenant, account, up_to, at, quiet
        ))
    }

    async fn forget_notified(
        &self,
        tenant: &TenantId,
        conv: &ConvId,
        message: &MessageId,
    ) -> Result<i64> {
        on_pool!(self, |conn| notifications::pg::forget(
            conn, tenant, conv, message
        ))
    }

    /// Those that carry no message's text in one transaction; each that does in its own,
    /// after its conversation's lock, as `insert_notifications` does.
    async fn enqueue_deliveries(&self, rows: &[NewDelivery]) -> Result<()> {
        let live = notifications::live_pg("$1", "$6", "$7");
        let (about, plain): (Vec<&NewDelivery>, Vec<&NewDelivery>) =
            rows.iter().partition(|r| r.about.is_some());
        if !plain.is_empty() {
            let mut tx = self.pool.begin().await?;
            for r in plain {
                webhooks::pg::enqueue_one(&mut tx, r, &live).await?;
            }
            tx.commit().await?;
        }
        for r in about {
            let mut tx = self.pool.begin().await?;
            if let Some((conv, _)) = &r.about {
                notifications::pg::lock_shared(&mut tx, &r.tenant, conv.as_str()).await?;
            }
            webhooks::pg::enqueue_one(&mut tx, r, &live).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn waiting_delivery(&self, key: &str) -> Result<Option<(i64, String)>> {
        on_pool!(self, |conn| webhooks::pg::waiting(conn, key))
    }

    async fn merge_delivery(&self, id: i64, key: &str, old: &str, new: &str) -> Result<bool> {
        on_pool!(self, |conn| webhooks::pg::merge(conn, id, key, old, new))
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        on_pool!(self, |conn| webhooks::pg::claim(
            conn,
            now,
            lease_until,
            limit
        ))
    }

    async fn delivered(&self, id: i64) -> Result<()> {
        on_pool!(self, |conn| webhooks::pg::delivered(conn, id))
    }

    async fn delivery_failed(
        &self,
        id: i64,
        attempts: i64,
        next_at: i64,
        dead_at: Option<i64>,
        error: &str,
    ) -> Result<()> {
        on_pool!(self, |conn| webhooks::pg::failed(
            conn, id, attempts, next_at, dead_at, error
        ))
    }

    async fn dead_deliveries(&self) -> Result<i64> {
        on_pool!(self, |conn| webhooks::pg::count(conn, true))
    }

    async fn pending_deliveries(&self) -> Result<i64> {
        on_pool!(self, |conn| webhooks::pg::count(conn, false))
    }

    async fn claim_scheduled(
        &self,
        now: i64,
        lease_until: i64,
        node: &str,
        limit: usize,
    ) -> Result<Vec<Claim>> {
        let rows = sqlx::query(
            "UPDATE schedule_hints h SET claimed_until = $2, claimed_by = $3 \
             FROM (SELECT doc_id FROM schedule_hints \
               WHERE next_at <= $1 AND claimed_until < $1 \
               ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED) due \
             WHERE h.doc_id = due.doc_id RETURNING h.doc_id, h.gen",
        )
        .bind(now)
        .bind(lease_until)
        .bind(node)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await?;
        schedule::claims(rows)
    }

    async fn finish_scheduled(&self, doc: &str, gen: i64, next_at: Option<i64>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        schedule::pg::finish_in(&mut tx, doc, gen, next_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retry_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        on_pool!(self, |conn| schedule::pg::retry(conn, doc, at))
    }

    async fn hint_scheduled(&self, doc: &str, at: i64) -> Result<()> {
        on_pool!(self, |conn| schedule::pg::hint(conn, doc, at))
    }

    async fn post_bucket(&self, doc: &str, message: &str, bucket: &str) -> Result<String> {
        let mut tx = self.pool.begin().await?;
        let stored = schedule::pg::post_bucket_in(&mut tx, doc, message, bucket).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn move_post(&self, doc: &str, message: &str, to: &str) -> Result<()> {
        on_pool!(self, |conn| schedule::pg::move_post(conn, doc, message, to))
    }

    async fn post_done(&self, doc: &str, message: &str) -> Result<()> {
        on_pool!(self, |conn| schedule::pg::post_done(conn, doc, message))
    }
}
