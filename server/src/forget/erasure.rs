//! Account erasure (docs/OPERATIONS.md, "Account erasure"): a tenant's service asks for it
//! over REST; any node's purge loop runs it, in steps whose progress is stored after each
//! page (`store::forget`), so a node killed mid-way leaves it to the next claim (its lease
//! runs out). Every write goes through the acceptor like a client's: tombstones are deletes
//! for everyone, so devices receive them and the blobs the messages named are released.
//!
//! 1. Messages: every message the account wrote in the tenant that is not deleted, by the
//!    `messages_author` index, deleted by the requesting service account. A message the
//!    policy keeps (a conversation its owner deleted: its history goes with it) is counted
//!    as skipped.
//! 2. Memberships: it leaves every conversation where it is active; where it is the only
//!    owner the policy refuses (`owner_must_transfer`) and it stays, counted: the operator
//!    transfers the ownership or deletes the conversation, then asks again.
//! 3. Devices: each is removed with its key packages (the MLS directory).
//! 4. Documents: its profile's fields and every entry of its private document go.

use confab_core::doc::{erase, write, IntentTag};
use confab_core::e2ee::DeviceIdentity;
use confab_core::ids::{DocId, MessageId};
use confab_core::model::conversation::{MemberStatus, Role};
use confab_core::policy::Author;

use crate::engine::{Engine, IntentFn, SubmitOutcome};
use crate::store::forget::{Authored, Erasure, ErasureStep};
use crate::store::StoreError;

/// Messages per page (progress is stored after each).
const PAGE: usize = 100;
/// Messages tombstoned by one change at most: a tombstone is two writes and the removal of
/// each content field, and a change of a message part holds at most
/// `limits::CHANGE_MAX_OPS` ops (a run over it is refused `too_many_ops`, then retried one
/// message at a time).
const RUN_MAX: usize = confab_core::limits::CHANGE_MAX_OPS / 8;
/// How long a node holds an erasure between two saves of its progress.
const LEASE_MS: i64 = 20_000;

/// Why an erasure stopped before its end (the next pass resumes it).
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("a write was not decided ({0}); retried by the next pass")]
    Undecided(String),
}

/// What one write came to.
enum Written {
    Done,
    Refused(String),
}

async fn written(
    engine: &Engine,
    doc: DocId,
    author: Author,
    intent: IntentFn,
) -> Result<Written, ErasureError> {
    match engine.write(doc, author, intent).await {
        SubmitOutcome::Ack { .. } => Ok(Written::Done),
        SubmitOutcome::Reject { code, reason, .. } => {
            Ok(Written::Refused(format!("{}: {reason}", code.as_str())))
        }
        SubmitOutcome::Failed { message, .. } => Err(ErasureError::Undecided(message)),
    }
}

/// Tombstones `run` (messages of one part) by the requesting service, in one change.
async fn tombstone(
    engine: &Engine,
    e: &Erasure,
    service: &Author,
    run: &[Authored],
) -> Result<Written, ErasureError> {
    let Some(first) = run.first() else {
        return Ok(Written::Done);
    };
    let doc = DocId::msgs(&e.tenant, &first.conv, first.bucket);
    let ids: Vec<MessageId> = run.iter().map(|m| m.message.clone()).collect();
    let by = e.requested_by.clone();
    let intent: IntentFn = Box::new(move |d, _| {
        let tag = IntentTag::new(format!("erasure-{}", crate::clock::now_ms()), "erasure");
        write::delete_messages(d, &tag, crate::clock::now_ms(), &ids, &by)
    });
    written(engine, doc, service.clone(), intent).await
}

/// Claims one erasure no node holds and runs it to its end; `None`: nothing to resume.
pub async fn resume_one(engine: &Engine, now_ms: i64) -> Result<Option<Erasure>, ErasureError> {
    let store = engine.store();
    let Some(mut e) = store.claim_erasure(now_ms, now_ms + LEASE_MS).await? else {
        return Ok(None);
    };
    run(engine, &mut e).await?;
    Ok(Some(e))
}

async fn save(engine: &Engine, e: &mut Erasure, until_lease: bool) -> Result<(), StoreError> {
    let now = crate::clock::now_ms();
    e.updated_at = now;
    let until = if until_lease { now + LEASE_MS } else { 0 };
    engine.store().save_erasure(e, until).await
}

async fn run(engine: &Engine, e: &mut Erasure) -> Result<(), ErasureError> {
    let store = engine.store().clone();
    let service = Author::service(e.requested_by.clone());
    let own = Author {
        account: e.account.clone(),
        service: false,
        device: None,
    };
    let tag = || IntentTag::new(format!("erasure-{}", crate::clock::now_ms()), "erasure");
    while e.step == ErasureStep::Messages {
        let page = store
            .authored_messages(&e.tenant, &e.account, e.after, PAGE)
            .await?;
        if page.is_empty() {
            e.step = ErasureStep::Memberships;
        }
        // The page is in (conversation, position) order: its messages of one part are
        // together, and each run of them (at most RUN_MAX) is tombstoned by one change. A
        // run the acceptor refuses is tried again one message at a time, so that only the
        // messages the policy keeps are skipped.
        let runs = page
            .chunk_by(|a, b| (&a.conv, a.bucket) == (&b.conv, b.bucket))
            .flat_map(|part| part.chunks(RUN_MAX));
        for run in runs {
            if run.len() > 1 {
                if let Written::Done = tombstone(engine, e, &service, run).await? {
                    e.messages += run.len() as i64;
                    continue;
                }
            }
            for m in run {
                match tombstone(engine, e, &service, std::slice::from_ref(m)).await? {
                    Written::Done => e.messages += 1,
                    Written::Refused(why) => {
                        tracing::info!(conv = %m.conv, message = %m.message, %why, "erasure keeps a message");
                        e.skipped += 1;
                    }
                }
            }
        }
        if let Some(last) = page.last() {
            e.after = (last.cid, last.pos);
        }
        save(engine, e, true).await?;
    }
    if e.step == ErasureStep::Memberships {
        for m in store.memberships_of(&e.tenant, &e.account).await? {
            if m.status != MemberStatus::Active {
                continue;
            }
            let account = e.account.clone();
            let intent: IntentFn = Box::new(move |d, _| {
                write::set_member_status(
                    d,
                    &tag(),
                    crate::clock::now_ms(),
                    &account,
                    MemberStatus::Left,
                )
            });
            match written(engine, DocId::conv(&e.tenant, &m.conv), own.clone(), intent).await? {
                Written::Done => e.left_convs += 1,
                Written::Refused(why) => {
                    tracing::info!(conv = %m.conv, %why, "erasure stays a member");
                    if m.role == Role::Owner {
                        e.kept_owner += 1;
                    } else {
                        e.skipped += 1;
                    }
                }
            }
        }
        e.step = ErasureStep::Devices;
        save(engine, e, true).await?;
    }
    if e.step == ErasureStep::Devices {
        let now = crate::clock::now_ms();
        for d in store
            .devices_of(&e.tenant, std::slice::from_ref(&e.account))
            .await?
        {
            let device = DeviceIdentity {
                tenant: e.tenant.clone(),
                account: d.account,
                device: d.device,
            };
            if store.remove_device(&device, now).await? {
                e.devices += 1;
            }
        }
        e.step = ErasureStep::Documents;
        save(engine, e, true).await?;
    }
    if e.step == ErasureStep::Documents {
        let profile: IntentFn =
            Box::new(move |d, _| erase::erase_profile(d, &tag(), crate::clock::now_ms()));
        let private: IntentFn =
            Box::new(move |d, _| erase::erase_private(d, &tag(), crate::clock::now_ms()));
        for (doc, intent) in [
            (DocId::profile(&e.tenant, &e.account), profile),
            (DocId::private(&e.tenant, &e.account), private),
        ] {
            // Refused when nothing is left to remove (a document never written, or cleared
            // by an earlier run): either way nothing of it remains.
            if let Written::Refused(why) = written(engine, doc.clone(), own.clone(), intent).await?
            {
                tracing::debug!(%doc, %why, "erasure wrote nothing");
            }
        }
        e.step = ErasureStep::Done;
        e.done_at = Some(crate::clock::now_ms());
        save(engine, e, false).await?;
    }
    Ok(())
}
