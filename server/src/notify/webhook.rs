//! Offline delivery hooks for mobile push (docs/OPERATIONS.md, "Push webhooks"):
//! a notification for an account with no connected client is posted, signed, to the
//! operator's URL, at least once.
//!
//! The notifier writes a delivery into the outbox table (`store::webhooks`) in its batch,
//! so a restart never drops one. A sender task claims due deliveries (a claim is a lease:
//! a node that dies mid-send leaves them due again), posts each with
//! `X-Confab-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, and
//! deletes it on a 2xx answer. Anything else (an error status, a refused connection, no
//! answer within the timeout) is tried again after `backoff_base * 2^(attempt-1)`, at most
//! `backoff_max`; after `max_attempts` the delivery is dead: kept in the table, counted in
//! `confab_webhook_dead_letters`.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use confab_core::ids::{ConvId, TenantId};
use confab_core::model::time::format_rfc3339;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::engine::{now_ms, Engine, WeakEngine};
use crate::store::notifications::{Coalesced, CoalescedRow, NewNotification};
use crate::store::webhooks::{Delivery, NewDelivery};

/// The header carrying the timestamp and signature.
pub const SIGNATURE_HEADER: &str = "x-confab-signature";
/// The header naming the delivery (the same on every attempt: receivers drop repeats).
pub const DELIVERY_HEADER: &str = "x-confab-delivery";
/// Deliveries claimed and sent together.
const CLAIM: usize = 32;
/// Recipients of one delivery of new messages, as queued.
pub const RECIPIENTS_MAX: usize = 500;
/// Recipients a waiting delivery may grow to by merging; beyond, a new one is queued.
pub const MERGED_MAX: usize = 1_000;

/// The operator's receiver and how hard to try (`--webhook-*` options).
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: url::Url,
    pub secret: Vec<u8>,
    /// Attempts before a delivery is dead.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long one attempt may take (connect and answer).
    pub timeout: Duration,
    /// How often the sender looks for due deliveries when nothing woke it.
    pub poll: Duration,
    /// Tenants whose deliveries carry no message text (`preview` left out).
    pub omit_bodies: BTreeSet<TenantId>,
}

impl WebhookConfig {
    /// A receiver at `url` with the defaults: 10 attempts from 1 s apart up to 10 min,
    /// 5 s per attempt, polled every second.
    pub fn new(url: url::Url, secret: impl Into<Vec<u8>>) -> Self {
        WebhookConfig {
            url,
            secret: secret.into(),
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            timeout: Duration::from_secs(5),
            poll: Duration::from_secs(1),
            omit_bodies: BTreeSet::new(),
        }
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_str())
            .field("secret", &"***")
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("timeout", &self.timeout)
            .field("omit_bodies", &self.omit_bodies)
            .finish()
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The body posted for one notification.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tenant: &'a str,
    account: &'a str,
    notification: PayloadNotification<'a>,
}

#[derive(Debug, Serialize)]
struct PayloadNotification<'a> {
    id: i64,
    kind: &'static str,
    conversation: &'a str,
    message: Option<&'a str>,
    from: &'a str,
    created_at: String,
    /// Left out for tenants that omit bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<&'a str>,
    body_omitted: bool,
}

/// The body posted for new messages of a group or channel (the level `all`): one call for
/// many recipients, each with its coalesced notification and how many messages it stands
/// for now. No text, ever: ids, counts, the conversation and the newest author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MessagesPayload {
    #[serde(rename = "type")]
    kind: String,
    tenant: String,
    conversation: String,
    /// The newest message the delivery tells of, and its author and commit time.
    message: String,
    from: String,
    created_at: String,
    /// The commit time of the oldest message it tells of (merged deliveries keep the
    /// oldest).
    since: String,
    recipients: Vec<Recipient>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Recipient {
    account: String,
    /// The id of the account's coalesced feed entry.
    notification: i64,
    /// How many new messages that entry stands for now.
    count: i64,
}

impl MessagesPayload {
    /// Takes in a newer delivery of the same part: its recipients replace or join ours
    /// (a newer count is the whole count, not an increment), its newest message is ours.
    fn absorb(&mut self, newer: MessagesPayload) {
        let mut by_account: std::collections::BTreeMap<String, Recipient> = self
            .recipients
            .drain(..)
            .map(|r| (r.account.clone(), r))
            .collect();
        for r in newer.recipients {
            by_account.insert(r.account.clone(), r);
        }
        self.recipients = by_account.into_values().collect();
        self.message = newer.message;
        self.from = newer.from;
        self.created_at = newer.created_at;
        self.since = self.since.clone().min(newer.since);
    }
}

/// Which fan-out page of which conversation a coalesced delivery is for.
#[derive(Debug)]
pub(super) struct Part<'a> {
    pub tenant: &'a TenantId,
    pub conv: &'a ConvId,
    pub page: usize,
    /// The commit time of the oldest message of the batch.
    pub since: i64,
}

/// `confab-server serve` options of the push webhook (docs/OPERATIONS.md, "Push webhooks").
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Where notifications for accounts with no connected client are posted (http or
    /// https); none: no webhook.
    #[arg(long, env = "CONFAB_WEBHOOK_URL", requires = "webhook_secret")]
    pub webhook_url: Option<url::Url>,
    /// The HMAC-SHA256 key of the `X-Confab-Signature` header (required with the URL).
    #[arg(long, env = "CONFAB_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Attempts before a delivery is given up (a dead letter).
    #[arg(long, env = "CONFAB_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_max_attempts: u32,
    /// Milliseconds before the first retry; each further one waits twice as long.
    #[arg(long, env = "CONFAB_WEBHOOK_BACKOFF_MS", default_value_t = 1000)]
    pub webhook_backoff_ms: u64,
    /// The longest wait between two attempts, in milliseconds.
    #[arg(long, env = "CONFAB_WEBHOOK_BACKOFF_MAX_MS", default_value_t = 600_000)]
    pub webhook_backoff_max_ms: u64,
    /// Milliseconds one attempt may take (connect and answer).
    #[arg(long, env = "CONFAB_WEBHOOK_TIMEOUT_MS", default_value_t = 5000)]
    pub webhook_timeout_ms: u64,
    /// Tenants whose deliveries leave the message text out (no `preview`).
    #[arg(long, env = "CONFAB_WEBHOOK_OMIT_BODIES", value_delimiter = ',')]
    pub webhook_omit_bodies: Vec<TenantId>,
}

impl WebhookArgs {
    /// The webhook's settings, if a URL is given.
    pub fn config(&self) -> Option<WebhookConfig> {
        let url = self.webhook_url.clone()?;
        let mut c = WebhookConfig::new(url, self.webhook_secret.clone().unwrap_or_default());
        c.max_attempts = self.webhook_max_attempts;
        c.backoff_base = Duration::from_millis(self.webhook_backoff_ms);
        c.backoff_max = Duration::from_millis(self.webhook_backoff_max_ms);
        c.timeout = Duration::from_millis(self.webhook_timeout_ms);
        c.omit_bodies = self.webhook_omit_bodies.iter().cloned().collect();
        Some(c)
    }
}

/// The running hook: its settings and the sender's wake-up.
#[derive(Debug)]
pub(super) struct Hook {
    config: WebhookConfig,
    wake: Notify,
}

/// Queues deliveries of the new notifications `new` (`(id, index in rows)`) whose account
/// has no connected client, on this node or another.
pub(super) async fn enqueue(
    engine: &Engine,
    hook: &Hook,
    rows: &[NewNotification],
    new: &[(i64, usize)],
) {
    let at = now_ms();
    let unreached: Vec<(i64, &NewNotification)> = new
        .iter()
        .filter_map(|&(id, i)| rows.get(i).map(|n| (id, n)))
        .filter(|(_, n)| !engine.has_client(&n.tenant, &n.account))
        .collect();
    let mut accounts: Vec<_> = unreached
        .iter()
        .map(|(_, n)| (n.tenant.clone(), n.account.clone()))
        .collect();
    accounts.sort();
    accounts.dedup();
    let elsewhere: HashSet<_> = super::reachable::elsewhere(engine, &accounts)
        .await
        .into_iter()
        .collect();
    let deliveries: Vec<NewDelivery> = unreached
        .into_iter()
        .filter(|(_, n)| !elsewhere.contains(&(n.tenant.clone(), n.account.clone())))
        .filter_map(|(id, n)| {
            let omit = hook.config.omit_bodies.contains(&n.tenant);
            let payload = Payload {
                kind: "notification",
                tenant: n.tenant.as_str(),
                account: n.account.as_str(),
                notification: PayloadNotification {
                    id,
                    kind: n.kind.as_str(),
                    conversation: n.conv.as_str(),
                    message: n.message.as_ref().map(|m| m.as_str()),
                    from: n.actor.as_str(),
                    created_at: format_rfc3339(n.created_at),
                    preview: (!omit).then_some(n.preview.as_str()),
                    body_omitted: omit,
                },
            };
            let payload = serde_json::to_string(&payload).ok()?;
            Some(NewDelivery {
                tenant: n.tenant.to_string(),
                account: n.account.to_string(),
                payload,
                at,
                coalesce: None,
                // Queued only while the message is there (a push about a deleted one would
                // tell what it no longer holds).
                about: n.message.clone().map(|m| (n.conv.clone(), m)),
            })
        })
        .collect();
    if deliveries.is_empty() {
        return;
    }
    match engine.store().enqueue_deliveries(&deliveries).await {
        Ok(_) => hook.wake.notify_one(),
        Err(e) => {
            engine
                .metrics()
                .notify
                .failed
                .inc_by(deliveries.len() as u64);
            tracing::warn!(error = %e, "webhook deliveries not queued");
        }
    }
}

/// Queues deliveries of stored coalesced rows (`stored` names them in `rows`) whose
/// accounts have no connected client: sorted by account, [`RECIPIENTS_MAX`] per delivery,
/// each merged into the delivery still waiting for the same part of the conversation
/// (`<tenant>/<conversation>#<page>.<part>`) when there is one, so a receiver that falls
/// behind gets fewer, fuller calls instead of a growing queue.
pub(super) async fn enqueue_coalesced(
    engine: &Engine,
    hook: &Hook,
    part: &Part<'_>,
    rows: &[Coalesced],
    stored: &[CoalescedRow],
) {
    let mut unreached: Vec<(&Coalesced, &CoalescedRow)> = stored
        .iter()
        .filter_map(|s| rows.get(s.index).map(|r| (r, s)))
        .filter(|(r, _)| !engine.has_client(&r.tenant, &r.account))
        .collect();
    let accounts: Vec<_> = unreached
        .iter()
        .map(|(r, _)| (r.tenant.clone(), r.account.clone()))
        .collect();
    let elsewhere: HashSet<_> = super::reachable::elsewhere(engine, &accounts)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    unreached.retain(|(r, _)| !elsewhere.contains(&r.account));
    unreached.sort_by(|a, b| a.0.account.cmp(&b.0.account));
    let Some(newest) = unreached
        .iter()
        .map(|(r, _)| *r)
        .max_by_key(|r| r.created_at)
    else {
        return;
    };
    let at = now_ms();
    let mut queued = false;
    for (i, chunk) in unreached.chunks(RECIPIENTS_MAX).enumerate() {
        let payload = MessagesPayload {
            kind: "messages".into(),
            tenant: part.tenant.to_string(),
            conversation: part.conv.to_string(),
            message: newest.message.to_string(),
            from: newest.actor.to_string(),
            created_at: format_rfc3339(newest.created_at),
            since: format_rfc3339(part.since),
            recipients: chunk
                .iter()
                .map(|(r, s)| Recipient {
                    account: r.account.to_string(),
                    notification: s.id,
                    count: s.count,
                })
                .collect(),
        };
        let key = format!("{}/{}#{}.{i}", part.tenant, part.conv, part.page);
        match merge_or_queue(engine, &key, payload, at).await {
            Ok(merged) => {
                queued |= !merged;
                if merged {
                    engine.metrics().notify.webhook_merged.inc();
                }
            }
            Err(e) => {
                engine.metrics().notify.failed.inc_by(chunk.len() as u64);
                tracing::warn!(error = %e, "webhook delivery of new messages not queued");
            }
        }
    }
    if queued {
        hook.wake.notify_one();
    }
}

/// Merges `payload` into the delivery waiting under `key` (true), or queues it (false).
async fn merge_or_queue(
    engine: &Engine,
    key: &str,
    payload: MessagesPayload,
    at: i64,
) -> Result<bool, crate::store::StoreError> {
    let store = engine.store();
    if let Some((id, old)) = store.waiting_delivery(key).await? {
        if let Ok(mut merged) = serde_json::from_str::<MessagesPayload>(&old) {
            merged.absorb(payload.clone());
            if merged.recipients.len() <= MERGED_MAX {
                let new = serde_json::to_string(&merged)
                    .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
                if store.merge_delivery(id, key, &old, &new).await? {
                    return Ok(true);
                }
            }
        }
    }
    let body = serde_json::to_string(&payload)
        .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
    store
        .enqueue_deliveries(&[NewDelivery {
            tenant: payload.tenant,
            // Many recipients: the body names them.
            account: String::new(),
            payload: body,
            at,
            coalesce: Some(key.to_owned()),
            // Ids and counts only, no text.
            about: None,
        }])
        .await?;
    Ok(false)
}

/// Starts the sender; answers the hook the notifier queues into.
pub(super) fn spawn(engine: &Engine, config: WebhookConfig) -> Result<Arc<Hook>, reqwest::Error> {
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let hook = Arc::new(Hook {
        config,
        wake: Notify::new(),
    });
    let weak = engine.downgrade();
    tokio::spawn(send_loop(weak, hook.clone(), client));
    super::reachable::spawn(engine);
    Ok(hook)
}

async fn send_loop(weak: WeakEngine, hook: Arc<Hook>, client: reqwest::Client) {
    let mut first = true;
    loop {
        let Some(engine) = weak.upgrade() else {
            return;
        };
        if first {
            dead_letters(&engine).await;
            first = false;
        }
        let now = now_ms();
        let lease = hook.config.timeout + Duration::from_secs(5);
        let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut full = false;
        match engine
            .store()
            .claim_deliveries(now, lease_until, CLAIM)
            .await
        {
            Ok(batch) => {
                full = batch.len() == CLAIM;
                let sends = batch
                    .into_iter()
                    .map(|d| send(&engine, &hook.config, &client, d));
                let failed = futures_util::future::join_all(sends)
                    .await
                    .into_iter()
                    .any(|ok| !ok);
                if failed {
                    dead_letters(&engine).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "webhook outbox not read"),
        }
        drop(engine);
        if !full {
            tokio::select! {
                () = hook.wake.notified() => {}
                () = tokio::time::sleep(hook.config.poll) => {}
            }
        }
    }
}

/// One attempt; true when delivered.
async fn send(
    engine: &Engine,
    config: &WebhookConfig,
    client: &reqwest::Client,
    d: Delivery,
) -> bool {
    let signed = signature(
        &config.secret,
        now_ms().div_euclid(1000),
        d.payload.as_bytes(),
    );
    let answer = client
        .post(config.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signed)
        .header(DELIVERY_HEADER, d.id.to_string())
        .body(d.payload)
        .send()
        .await;
    let error = match answer {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("answered {}", r.status())),
        // Without the URL: it may carry credentials.
        Err(e) => Some(
            match (e.is_timeout(), e.is_connect()) {
                (true, _) => "timed out",
                (_, true) => "could not connect",
                _ => "request failed",
            }
            .to_owned(),
        ),
    };
    let metrics = &engine.metrics().notify;
    let stored = match &error {
        None => {
            metrics.webhook_delivered.inc();
            engine.store().delivered(d.id).await
        }
        Some(error) => {
            metrics.webhook_failed_attempts.inc();
            let attempts = d.attempts.saturating_add(1);
            let now = now_ms();
            let dead = attempts >= i64::from(config.max_attempts);
            let wait = config.backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
            let next_at = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            engine
                .store()
                .delivery_failed(d.id, attempts, next_at, dead.then_some(now), error)
                .await
        }
    };
    if let Err(e) = stored {
        // The lease runs out and the delivery is tried again: at least once.
        tracing::debug!(error = %e, "webhook outcome not stored");
    }
    error.is_none()
}

/// Sets `confab_webhook_dead_letters` from the table.
async fn dead_letters(engine: &Engine) {
    if let Ok(n) = engine.store().dead_deliveries().await {
        engine.metrics().notify.webhook_dead_letters.set(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let url = url::Url::parse("http://127.0.0.1:9/hook").expect("url");
        let mut c = WebhookConfig::new(url, "s");
        c.backoff_base = Duration::from_millis(100);
        c.backoff_max = Duration::from_millis(500);
        let waits: Vec<u128> = (1..=5).map(|n| c.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_millis(500));
        assert!(
            !format!("{c:?}").contains("\"s\""),
            "the secret is not logged"
        );
    }

    #[test]
    fn a_newer_delivery_replaces_counts_and_keeps_the_oldest_time() {
        let r = |a: &str, id: i64, count: i64| Recipient {
            account: a.into(),
            notification: id,
            count,
        };
        let body = |message: &str, at: &str, recipients| MessagesPayload {
            kind: "messages".into(),
            tenant: "acme".into(),
            conversation: "team".into(),
            message: message.into(),
            from: "alice".into(),
            created_at: at.into(),
            since: at.into(),
            recipients,
        };
        let mut waiting = body(
            "m1",
            "2026-01-01T00:00:01.000Z",
            vec![r("bob", 1, 1), r("carol", 2, 1)],
        );
        waiting.absorb(body(
            "m2",
            "2026-01-01T00:00:02.000Z",
            vec![r("bob", 5, 2), r("dave", 6, 1)],
        ));
        assert_eq!(
            waiting.recipients,
            vec![r("bob", 5, 2), r("carol", 2, 1), r("dave", 6, 1)]
        );
        assert_eq!(
            (
                waiting.message.as_str(),
                waiting.created_at.as_str(),
                waiting.since.as_str()
            ),
            ("m2", "2026-01-01T00:00:02.000Z", "2026-01-01T00:00:01.000Z")
        );
    }

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        // Python: hmac.new(b"Jefe", b"0.what do ya want for nothing?", sha256).hexdigest()
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
        assert_ne!(sig, signature(b"Jeff", 0, b"what do ya want for nothing?"));
        assert_ne!(sig, signature(b"Jefe", 1, b"what do ya want for nothing?"));
    }
}
