//! Native clients of one group spread over the nodes: writing, waiting for their timelines,
//! and checking that they hold one timeline, the database's.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use confab_client::Client as NativeClient;
use confab_core::client::Intent;
use confab_core::ids::{ConvId, DocId, MessageId};
use confab_core::model::message::NewMessage;
use confab_e2e::text::Rng;
use sqlx::Row;

use crate::cluster_nodes::Nodes;
use crate::common::acc;

/// Store folders of native clients, removed when dropped (also when the test fails).
pub struct Dirs(pub Vec<std::path::PathBuf>);

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A native client and the account it runs for.
pub type Member = (NativeClient, &'static str);

/// What `c` shows of `conv`: (seq, message id) of each accepted message, in timeline order.
pub async fn accepted_timeline(c: &NativeClient, conv: &ConvId) -> Result<Vec<(u64, String)>> {
    let conv = conv.clone();
    Ok(c.query(move |e| {
        e.timeline(&conv)
            .into_iter()
            .filter(|i| !i.pending)
            .map(|i| (i.seq.unwrap_or(0), i.message.id.to_string()))
            .collect()
    })
    .await?)
}

/// Waits until every member holds the conversation (read by its node from the database).
pub async fn everyone_knows(members: &[Member], conv: &ConvId, bound: Duration) -> Result<()> {
    let deadline = Instant::now() + bound;
    for (c, account) in members {
        loop {
            let conv = conv.clone();
            if c.query(move |e| e.conversation(&conv).is_some()).await? {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{account} never got the conversation"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Every member writes `per_member` messages at once, with small random pauses, created at
/// `at` onwards (one bucket), and each is accepted; returns the ids written.
pub async fn everyone_writes(
    members: &[Member],
    conv: &ConvId,
    at: i64,
    per_member: usize,
) -> Result<HashSet<String>> {
    let writers: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(n, (c, account))| {
            let (c, conv, account) = (c.clone(), conv.clone(), *account);
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1));
                let mut ids = Vec::new();
                for i in 0..per_member {
                    let id = MessageId::new(format!("{account}-{i}"))?;
                    let body = format!("{account} says {i}");
                    let message = NewMessage::text(id, acc(account), body, at + i as i64);
                    let conv = conv.clone();
                    ids.push(c.intent(Intent::Send { conv, message }).await?);
                    tokio::time::sleep(Duration::from_millis(rng.next() % 40)).await;
                }
                anyhow::Ok(ids)
            })
        })
        .collect();
    let mut written = HashSet::new();
    for (w, (c, account)) in writers.into_iter().zip(members) {
        for (i, id) in w.await??.into_iter().enumerate() {
            let status = c.settle(id, Duration::from_secs(30)).await?;
            ensure!(status.is_none(), "{account}: intent {id} ended {status:?}");
            written.insert(format!("{account}-{i}"));
        }
    }
    Ok(written)
}

/// Waits until every member's timeline holds `total` accepted messages; their timelines.
pub async fn timelines_reach(
    members: &[Member],
    conv: &ConvId,
    total: usize,
    bound: Duration,
    node_of: impl Fn(usize) -> String,
) -> Result<Vec<Vec<(u64, String)>>> {
    let waiting = Instant::now();
    let mut timelines = Vec::new();
    for (i, (c, account)) in members.iter().enumerate() {
        loop {
            let t = accepted_timeline(c, conv).await?;
            if t.len() >= total {
                timelines.push(t);
                break;
            }
            ensure!(
                waiting.elapsed() < bound,
                "{account} (node {}) shows {} of {total} messages {bound:?} after all were \
                 acked: changes accepted on other nodes do not reach it",
                node_of(i),
                t.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(timelines)
}

/// The timelines are one: the same (seq, message) everywhere, seqs 1..=n, exactly the
/// messages written; and the database's (the bucket's log, the projection's seq of each).
pub async fn one_timeline(
    nodes: &Nodes,
    bucket: &DocId,
    members: &[Member],
    timelines: &[Vec<(u64, String)>],
    written: &HashSet<String>,
) -> Result<()> {
    let first = &timelines[0];
    for (t, (_, account)) in timelines.iter().zip(members) {
        ensure!(
            t == first,
            "{account}'s timeline differs from {}'s:\n{t:?}\n{first:?}",
            members[0].1
        );
    }
    let total = written.len();
    let seqs: Vec<u64> = first.iter().map(|(s, _)| *s).collect();
    ensure!(
        seqs == (1..=total as u64).collect::<Vec<_>>(),
        "the timeline's seqs are not 1..={total}: {seqs:?}"
    );
    let ids: HashSet<String> = first.iter().map(|(_, id)| id.clone()).collect();
    ensure!(
        ids == *written,
        "the timeline's messages are not those written"
    );
    let log = nodes.stored_log(&bucket.to_string()).await?;
    ensure!(
        log.len() == total,
        "the bucket's log holds {} changes",
        log.len()
    );
    let mut db = nodes.db().await?;
    let projected: HashMap<String, i64> = sqlx::query(
        "SELECT m.message, m.seq FROM messages m JOIN conversations c ON c.id = m.cid \
             WHERE c.tenant = split_part($1, '/', 1) \
               AND c.conv = split_part(split_part($1, '/', 3), '.', 1) \
               AND m.period = confab_msgs_period($1) AND m.part = confab_msgs_part($1)",
    )
    .bind(bucket.to_string())
    .fetch_all(&mut db)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("message")?, r.try_get("seq")?)))
    .collect::<Result<_>>()?;
    for (seq, id) in first {
        ensure!(
            projected.get(id) == Some(&(*seq as i64)),
            "message {id} at seq {seq} on the clients, {:?} in the database",
            projected.get(id)
        );
    }
    Ok(())
}
