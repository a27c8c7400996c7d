//! The membership race: an admin removes eve through one node while eve sends through
//! another. One trial is a fresh group; its outcome is checked against Postgres's own
//! commit timestamps (`track_commit_timestamp = on`), not against what the servers say.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use confab_core::automerge::{ActorId, Change};
use confab_core::doc::write;
use confab_core::ids::{ConvId, DocId};
use confab_core::model::conversation::MemberStatus;
use confab_e2e::text::Rng;
use confab_e2e::{now_ms, Client, Device};
use sqlx::{PgConnection, Row};

use crate::cluster_sender::{hash_of, settle, Final};
use crate::common::{acc, base_time, bucket_doc, create_group, message};

/// Eve's messages racing the removal in each trial.
pub const RACING: usize = 4;
/// A submit with no final answer after this is stuck.
pub const ANSWER_BOUND: Duration = Duration::from_secs(15);
/// The codes a send of a removed member may be rejected with.
pub const MEMBERSHIP_CODES: &[&str] = &["member_inactive", "not_member"];

/// The four connections of a run: the admin and eve on each of two nodes.
pub struct Conns {
    pub admin: [Client; 2],
    pub eve: [Client; 2],
}

/// What one trial did, for the witness check after the run.
#[derive(Debug)]
pub struct Trial {
    pub n: usize,
    pub admin_node: usize,
    pub conv_doc: DocId,
    pub bucket: DocId,
    pub removal: [u8; 32],
    /// Eve's warm-up message (sent before the race, so her node holds the conversation).
    pub warm: ([u8; 32], Final),
    /// Eve's racing messages: (hash, offset from the race's start, final answer).
    pub racing: Vec<([u8; 32], Duration, Final)>,
    /// The removal's delay from the race's start.
    pub removal_at: Duration,
    /// One more send of eve after the removal was acked.
    pub probe: ([u8; 32], Final),
}

/// A device of eve with an actor of its own: every message of a trial is independent of
/// the others (a rejected one is no dependency of the next).
fn eve_device(trial: usize, k: u8) -> Device {
    let mut device = Device::new("eve", 0);
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(b"eve-");
    bytes[4..12].copy_from_slice(&(trial as u64).to_be_bytes());
    bytes[15] = k;
    device.actor = ActorId::from(&bytes[..]);
    device
}

fn one(finals: Vec<Final>) -> Result<Final> {
    finals.into_iter().next().context("no answer")
}

/// One trial on conversation `race-<n>`: create it through the admin's node, warm eve's
/// node with one of her messages, then race the removal against `RACING` sends of hers at
/// random offsets, then probe.
pub async fn trial(
    n: usize,
    rng: &mut Rng,
    admin: &mut Device,
    conns: &mut Conns,
) -> Result<Trial> {
    let admin_node = (rng.next() % 2) as usize;
    let eve_node = 1 - admin_node;
    let name = format!("race-{n}");
    let conv = ConvId::new(&name)?;
    let (conv_doc, create) = create_group(admin, &name, &["eve"]);
    let admin_conn = &mut conns.admin[admin_node];
    let created = one(settle(
        admin_conn,
        &conv_doc,
        &[(Duration::ZERO, create)],
        ANSWER_BOUND,
    )
    .await?)?;
    ensure!(
        matches!(created, Final::Ack(_)),
        "trial {n}: the creation was answered {created:?}"
    );
    let at = base_time(10_000);
    let bucket = bucket_doc(&conv, at);
    let eve_conn = &mut conns.eve[eve_node];

    let (_, warm) = message(&mut eve_device(n, 0), &conv, &format!("w{n}"), "warm", at);
    let warm_hash = hash_of(&warm);
    let warmed = one(settle(eve_conn, &bucket, &[(Duration::ZERO, warm)], ANSWER_BOUND).await?)?;
    ensure!(
        matches!(warmed, Final::Ack(_)),
        "trial {n}: eve's message before the removal (sent through another node than the \
         conversation's creation) was answered {warmed:?}"
    );

    let removal = admin.write(&conv_doc, |d, t| {
        write::set_member_status(d, t, now_ms(), &acc("eve"), MemberStatus::Removed)
    })?;
    let removal_hash = hash_of(&removal);
    let removal_at = Duration::from_micros(rng.next() % 15_000);
    let mut offsets: Vec<Duration> = (0..RACING)
        .map(|_| Duration::from_micros(rng.next() % 20_000))
        .collect();
    offsets.sort();
    let racing: Vec<(Duration, Change)> = offsets
        .iter()
        .enumerate()
        .map(|(k, at_offset)| {
            let (_, change) = message(
                &mut eve_device(n, k as u8 + 1),
                &conv,
                &format!("r{n}-{k}"),
                &format!("racing {k}"),
                at + 1 + k as i64,
            );
            (*at_offset, change)
        })
        .collect();
    let removing = [(removal_at, removal)];
    let (removed, raced) = tokio::join!(
        settle(admin_conn, &conv_doc, &removing, ANSWER_BOUND),
        settle(eve_conn, &bucket, &racing, ANSWER_BOUND),
    );
    let removed = one(removed.with_context(|| format!("trial {n}: the removal"))?)?;
    ensure!(
        matches!(removed, Final::Ack(_)),
        "trial {n}: the removal was answered {removed:?}"
    );
    let raced = raced.with_context(|| format!("trial {n}: eve's racing sends"))?;

    // The removal is acked: any node must now refuse eve (linearizable acceptance).
    let (_, late) = message(
        &mut eve_device(n, RACING as u8 + 1),
        &conv,
        &format!("p{n}"),
        "after the removal",
        at + 100,
    );
    let late_hash = hash_of(&late);
    let probe = one(settle(eve_conn, &bucket, &[(Duration::ZERO, late)], ANSWER_BOUND).await?)?;

    Ok(Trial {
        n,
        admin_node,
        conv_doc,
        bucket,
        removal: removal_hash,
        warm: (warm_hash, warmed),
        racing: racing
            .iter()
            .zip(raced)
            .map(|((offset, change), answer)| (hash_of(change), *offset, answer))
            .collect(),
        removal_at,
        probe: (late_hash, probe),
    })
}

/// A stored change as Postgres has it: its seq, its transaction, and that transaction's
/// commit time in microseconds since the epoch.
#[derive(Debug, Clone, Copy)]
struct Stored {
    seq: i64,
    xid: i64,
    commit_us: i64,
}

async fn stored(db: &mut PgConnection, doc: &DocId) -> Result<HashMap<[u8; 32], Vec<Stored>>> {
    let rows = sqlx::query(
        "SELECT hash, seq, xmin::text::int8 AS xid, \
         (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::int8 AS commit_us \
         FROM changes WHERE doc_id = $1",
    )
    .bind(doc.to_string())
    .fetch_all(&mut *db)
    .await?;
    let mut out: HashMap<[u8; 32], Vec<Stored>> = HashMap::new();
    for row in rows {
        let hash: Vec<u8> = row.try_get("hash")?;
        let hash: [u8; 32] = hash.as_slice().try_into().context("a 32-byte hash")?;
        let commit_us: Option<i64> = row.try_get("commit_us")?;
        let Some(commit_us) = commit_us else {
            bail!("no commit timestamp for a change of {doc}: track_commit_timestamp is off");
        };
        out.entry(hash).or_default().push(Stored {
            seq: row.try_get("seq")?,
            xid: row.try_get("xid")?,
            commit_us,
        });
    }
    Ok(out)
}

/// Counts over a run, for the report and the check that the race was exercised.
#[derive(Debug, Default)]
pub struct Tally {
    pub accepted: usize,
    pub rejected: usize,
    /// Trials where some of eve's racing sends were accepted and some rejected.
    pub split: usize,
    /// The smallest gap (µs) between an accepted racing message's commit and the removal's.
    pub closest_us: Option<i64>,
    /// The rejection codes of her racing sends.
    pub codes: BTreeMap<String, usize>,
}

/// Checks one trial against the database: every acked change of eve stored once, at its
/// acked seq, committed before the removal; every rejected one not stored at all; the probe
/// rejected.
pub async fn witness(db: &mut PgConnection, t: &Trial, tally: &mut Tally) -> Result<()> {
    ensure!(
        matches!(t.probe.1, Final::Reject { .. }),
        "trial {}: eve's send after the removal was acked is {:?}: her node (node {}) \
         validated it against a stale conversation",
        t.n,
        t.probe.1,
        1 - t.admin_node
    );
    let conv_rows = stored(db, &t.conv_doc).await?;
    let removal = match conv_rows.get(&t.removal).map(Vec::as_slice) {
        Some([one]) => *one,
        other => bail!(
            "trial {}: the acked removal is stored {} times",
            t.n,
            other.map_or(0, <[Stored]>::len)
        ),
    };
    let bucket_rows = stored(db, &t.bucket).await?;
    let mut accepted = 0;
    let mut rejected = 0;
    let all = std::iter::once((t.warm.0, Duration::ZERO, t.warm.1.clone()))
        .chain(t.racing.iter().cloned())
        .chain(std::iter::once((
            t.probe.0,
            Duration::ZERO,
            t.probe.1.clone(),
        )));
    for (k, (hash, offset, answer)) in all.enumerate() {
        let rows = bucket_rows.get(&hash).map_or(&[][..], Vec::as_slice);
        let what = format!(
            "trial {} (admin on node {}, removal at {:?}), eve's send {k} at {offset:?}",
            t.n, t.admin_node, t.removal_at
        );
        match &answer {
            Final::Ack(seq) => {
                let [row] = rows else {
                    bail!("{what}: acked at seq {seq} but stored {} times", rows.len());
                };
                ensure!(
                    row.seq == *seq as i64,
                    "{what}: acked at seq {seq}, stored at {}",
                    row.seq
                );
                ensure!(
                    row.xid != removal.xid,
                    "{what}: committed in the removal's own transaction"
                );
                let gap = removal.commit_us - row.commit_us;
                ensure!(
                    gap > 0,
                    "{what}: ACCEPTED AFTER THE REMOVAL: its commit is {} µs after the \
                     removal's (Postgres commit timestamps, xids {} and {})",
                    -gap,
                    row.xid,
                    removal.xid
                );
                if (1..=RACING).contains(&k) {
                    accepted += 1;
                    tally.closest_us = Some(tally.closest_us.map_or(gap, |c| c.min(gap)));
                }
            }
            Final::Reject { code, reason } => {
                ensure!(
                    MEMBERSHIP_CODES.contains(&code.as_str()),
                    "{what}: rejected {code} ({reason}), not for her membership"
                );
                ensure!(
                    rows.is_empty(),
                    "{what}: rejected {code} but stored {} times",
                    rows.len()
                );
                if (1..=RACING).contains(&k) {
                    rejected += 1;
                    *tally.codes.entry(code.clone()).or_default() += 1;
                }
            }
        }
    }
    tally.accepted += accepted;
    tally.rejected += rejected;
    if accepted > 0 && rejected > 0 {
        tally.split += 1;
    }
    Ok(())
}
