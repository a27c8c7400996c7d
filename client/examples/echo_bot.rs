//! An echo bot: signs in as its account, follows every conversation it is a member of, and
//! answers each text message others write while it runs with "echo: <text>", as a reply.
//!
//! ```sh
//! CONFAB_URL=ws://127.0.0.1:8080/ws CONFAB_TENANT=acme CONFAB_ACCOUNT=echo \
//! CONFAB_TOKEN=<a JWT for acme/echo> CONFAB_STORE=echo.db \
//!     cargo run -p confab-client --example echo_bot
//! ```
//!
//! Add the bot's account to a conversation and write in it. The bot keeps its state in the
//! SQLite file `CONFAB_STORE`: restarted, it resumes from there. A message counts as
//! answered once a reply of the bot's names it, so a restart never answers twice.

use std::collections::BTreeSet;
use std::time::Duration;

use confab_client::core::ids::MessageId;
use confab_client::core::ids::{AccountId, ConvId, DocId, DocKind, TenantId};
use confab_client::core::model::message::{MessageKind, NewMessage};
use confab_client::{device_config, new_id, now_ms, Client, Event, Intent, SqliteStore};
use tokio::sync::broadcast::error::RecvError;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the example's header)").into())
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = env("CONFAB_URL")?;
    let token = env("CONFAB_TOKEN")?;
    let tenant = TenantId::new(env("CONFAB_TENANT")?)?;
    let account = AccountId::new(env("CONFAB_ACCOUNT")?)?;
    let store = SqliteStore::open(env("CONFAB_STORE")?)?;

    let config = device_config(&store, tenant, account).await?;
    let me = config.account.clone();
    let client = Client::start(config, url, token, store)?;
    let mut events = client.events();
    client.set_online(true).await?;
    eprintln!("echo bot: {me} online");

    // Messages written before this moment are history, not questions for the bot.
    let since = now_ms();
    follow_all(&client).await?;
    let mut rounds = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Doc { doc }) => {
                    let Ok(doc) = DocId::parse(&doc) else { continue };
                    if let (DocKind::Msgs, Some(conv)) = (doc.kind(), doc.conv_id()) {
                        answer(&client, &me, conv, since).await?;
                    }
                }
                Ok(Event::Membership(change)) if change.following => {
                    eprintln!("echo bot: {}", change.sentence);
                    follow(&client, &change.conv).await?;
                }
                Ok(Event::Intent { id, status }) => {
                    if let confab_client::IntentStatus::Rejected { reason, .. } = status {
                        eprintln!("echo bot: intent {id} rejected: {reason}");
                    }
                }
                Ok(_) => {}
                // Fell behind: read everything again.
                Err(RecvError::Lagged(_)) => {
                    for conv in follow_all(&client).await? {
                        answer(&client, &me, &conv, since).await?;
                    }
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            // A new day starts a new message bucket: follow it.
            _ = rounds.tick() => {
                follow_all(&client).await?;
            }
        }
    }
}

/// Follows today's message bucket of `conv` (the membership feed follows the conversation
/// itself).
async fn follow(client: &Client, conv: &ConvId) -> Result<()> {
    let conv = conv.clone();
    let bucket = client.query(move |e| e.bucket_doc(&conv, now_ms())).await?;
    client.open(bucket).await?;
    Ok(())
}

/// Follows today's bucket of every conversation the engine knows; returns them.
async fn follow_all(client: &Client) -> Result<Vec<ConvId>> {
    let convs: Vec<ConvId> = client
        .query(|e| {
            e.conversations(now_ms())
                .into_iter()
                .map(|c| c.conv)
                .collect()
        })
        .await?;
    for conv in &convs {
        follow(client, conv).await?;
    }
    Ok(convs)
}

/// Replies to every text message of others in `conv` written since `since` that no reply
/// of `me` names yet.
async fn answer(client: &Client, me: &AccountId, conv: &ConvId, since: i64) -> Result<()> {
    let (me_, conv_) = (me.clone(), conv.clone());
    let questions: Vec<(MessageId, String)> = client
        .query(move |e| {
            let timeline = e.timeline(&conv_);
            let answered: BTreeSet<&MessageId> = timeline
                .iter()
                .filter(|i| i.message.author == me_)
                .filter_map(|i| i.message.reply_to.as_ref())
                .collect();
            timeline
                .iter()
                .map(|i| &i.message)
                .filter(|m| {
                    m.author != me_
                        && m.kind == MessageKind::Text
                        && m.deleted_at.is_none()
                        && m.created_at >= since
                        && !answered.contains(&m.id)
                })
                .map(|m| (m.id.clone(), m.body.clone()))
                .collect()
        })
        .await?;
    for (id, body) in questions {
        let mut reply = NewMessage::text(
            MessageId::new(new_id(""))?,
            me.clone(),
            format!("echo: {body}"),
            now_ms(),
        );
        reply.reply_to = Some(id);
        client
            .intent(Intent::Send {
                conv: conv.clone(),
                message: reply,
            })
            .await?;
    }
    Ok(())
}
