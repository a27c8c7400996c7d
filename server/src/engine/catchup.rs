//! Catch-up of one subscription (docs/PROTOCOL.md, "Catch-up"): every change after the
//! client's cursor, in pages; or the saved document with the seqs of the changes the client
//! has not seen, when a compaction folded some of them away or when the client misses so
//! many that the document is the cheaper catch-up (a saved message costs ~30 bytes and loads
//! in one pass; a raw change ~290 bytes and an apply each); then `synced`. The changes come
//! from the unit's memory when it holds them all (`unit::recent`), so a catch-up that needs
//! no more is answered while the database is down; from the store otherwise. A bucket
//! part's save is kept and sent again to later clients (`saved_parts`).

use std::time::Duration;

use confab_core::ids::DocId;
use confab_core::protocol::{
    change_actor_and_start_op, encode_server, ErrorCode, SeqChange, ServerFrame, SnapshotOrder,
};
use serde_bytes::ByteBuf;

use super::saved_parts::{Heads, SavedPart};
use super::unit::recent::RecentLog;
use super::{ConnHandle, Engine};
use crate::net::frame::binary_frame;

/// A client that misses at least this many changes, and at least a third of the document,
/// gets the saved document (measured in `cargo xtask bench catchup`: at a third, loading the
/// whole document costs about what applying the missed changes does, in a tenth of the bytes).
const SNAPSHOT_MIN_MISSED: u64 = 500;

/// Changes read from the store per query when collecting a snapshot's order.
const ORDER_PAGE: usize = 10_000;

/// The document a unit holds, as catch-up needs it.
pub(super) type DocInfo<'a> = confab_core::accept::DocView<'a>;

type Refusal = (ErrorCode, String);

/// Whether a client at `after` gets the saved document rather than the changes.
pub(super) fn wants_snapshot(after: u64, last_seq: u64, snapshot_seq: u64) -> bool {
    let missed = last_seq.saturating_sub(after);
    after < snapshot_seq || (missed >= SNAPSHOT_MIN_MISSED && missed.saturating_mul(3) >= last_seq)
}

/// Sends the catch-up of `doc` after `after` to `conn`, then `synced`. `keepable`: `doc` is
/// a message bucket part holding nothing uncommitted, so its save may be kept for the next
/// client (`saved_parts`).
pub(super) async fn send(
    engine: &Engine,
    doc: &DocId,
    after: u64,
    info: Option<DocInfo<'_>>,
    keepable: bool,
    recent: Option<&RecentLog>,
    conn: &ConnHandle,
) -> Result<(), Refusal> {
    let (last_seq, snapshot_seq) = info
        .as_ref()
        .map_or((0, 0), |i| (i.last_seq, i.snapshot_seq));
    match &info {
        Some(info) if wants_snapshot(after, last_seq, snapshot_seq) && keepable => {
            let kept = engine
                .saved_parts()
                .get(doc)
                .filter(|p| p.last_seq == last_seq && p.snapshot_seq == snapshot_seq);
            let part = match kept {
                Some(part) => {
                    engine.metrics().catch_up_kept_snapshots.inc();
                    part
                }
                None => {
                    let part = save_part(engine, doc, info, recent).await?;
                    engine.saved_parts().keep(doc, part)
                }
            };
            deliver_snapshot(engine, conn, doc, &part, after).await?;
        }
        Some(info) if wants_snapshot(after, last_seq, snapshot_seq) => {
            // Saving (mostly DEFLATE) runs on a blocking thread while the log is read.
            let saving = save_in_background(doc, info);
            let from = after.max(snapshot_seq);
            let logged = logged(engine, doc, from, last_seq, recent).await?;
            let order = logged.as_deref().and_then(|changes| {
                readable_heads(doc, changes).map(|heads| SnapshotOrder::build(from + 1, heads))
            });
            let data = saving.await?;
            deliver(
                engine,
                conn,
                ServerFrame::Snapshot {
                    doc: doc.to_string(),
                    seq: last_seq,
                    data: ByteBuf::from(data),
                    order,
                },
            )
            .await?;
        }
        _ => {
            let page = engine.inner.config.catch_up_page;
            let mut log = LogPages::new(after, last_seq, page, recent);
            while let Some(changes) = log.next(engine, doc).await? {
                let changes = changes
                    .into_iter()
                    .map(|(seq, bytes)| SeqChange {
                        seq,
                        change: ByteBuf::from(bytes),
                    })
                    .collect();
                deliver(
                    engine,
                    conn,
                    ServerFrame::Changes {
                        doc: doc.to_string(),
                        changes,
                    },
                )
                .await?;
            }
        }
    }
    synced(engine, conn, doc, last_seq).await
}

/// Sends a kept save of a part that is not in memory (to a client that gets a snapshot of
/// it, `wants_snapshot`), then `synced`.
pub(super) async fn send_kept(
    engine: &Engine,
    doc: &DocId,
    after: u64,
    part: &SavedPart,
    conn: &ConnHandle,
) -> Result<(), Refusal> {
    engine.metrics().catch_up_kept_snapshots.inc();
    deliver_snapshot(engine, conn, doc, part, after).await?;
    synced(engine, conn, doc, part.last_seq).await
}

async fn synced(engine: &Engine, conn: &ConnHandle, doc: &DocId, seq: u64) -> Result<(), Refusal> {
    let frame = ServerFrame::Synced {
        doc: doc.to_string(),
        seq,
    };
    deliver(engine, conn, frame).await
}

async fn deliver_snapshot(
    engine: &Engine,
    conn: &ConnHandle,
    doc: &DocId,
    part: &SavedPart,
    after: u64,
) -> Result<(), Refusal> {
    let frame = ServerFrame::Snapshot {
        doc: doc.to_string(),
        seq: part.last_seq,
        data: ByteBuf::from(part.data.clone()),
        order: part.order_after(after),
    };
    deliver(engine, conn, frame).await
}

/// Automerge `save` of a loaded document, on a blocking thread (mostly DEFLATE).
fn save_in_background(
    doc: &DocId,
    info: &DocInfo<'_>,
) -> impl std::future::Future<Output = Result<Vec<u8>, Refusal>> {
    let copy = info.accepted.doc().clone();
    let saving = tokio::task::spawn_blocking(move || copy.save());
    let doc = doc.clone();
    async move {
        saving
            .await
            .map_err(|e| (ErrorCode::Internal, format!("saving {doc}: {e}")))
    }
}

/// A part saved, with the heads of every logged change after its compaction (so any later
/// client's order is cut from them).
async fn save_part(
    engine: &Engine,
    doc: &DocId,
    info: &DocInfo<'_>,
    recent: Option<&RecentLog>,
) -> Result<SavedPart, Refusal> {
    let saving = save_in_background(doc, info);
    let logged = logged(engine, doc, info.snapshot_seq, info.last_seq, recent).await?;
    let data = saving.await?;
    Ok(saved_part(
        doc,
        info.last_seq,
        info.snapshot_seq,
        data,
        logged,
    ))
}

/// A save with the heads of its logged changes (`None` when the log misses some).
fn saved_part(
    doc: &DocId,
    last_seq: u64,
    snapshot_seq: u64,
    data: Vec<u8>,
    logged: Option<Vec<(u64, Vec<u8>)>>,
) -> SavedPart {
    let heads = logged
        .as_deref()
        .and_then(|changes| readable_heads(doc, changes).map(Heads::collect));
    SavedPart {
        last_seq,
        snapshot_seq,
        data,
        heads,
    }
}

/// Keeps the save of a bucket part that just closed (the next part got its first change),
/// made off the unit, so that the first client to catch up on it is sent kept bytes too. A
/// closed part still takes reactions and edits now and then: a kept save of an older seq is
/// not sent (`unit::kept_part` checks the log), and the next catch-up keeps a newer one.
pub(super) fn keep_closed(
    engine: &Engine,
    doc: &DocId,
    info: DocInfo<'_>,
    recent: Option<&RecentLog>,
) {
    let (last_seq, snapshot_seq) = (info.last_seq, info.snapshot_seq);
    if engine
        .saved_parts()
        .get(doc)
        .is_some_and(|p| p.last_seq >= last_seq)
    {
        return;
    }
    let saving = save_in_background(doc, &info);
    let held = recent.and_then(|r| r.after(snapshot_seq, last_seq, usize::MAX));
    let (engine, doc) = (engine.clone(), doc.clone());
    tokio::spawn(async move {
        let logged = match held {
            Some(changes) => Ok(Some(changes)),
            None => logged(&engine, &doc, snapshot_seq, last_seq, None).await,
        };
        let (Ok(logged), Ok(data)) = (logged, saving.await) else {
            // Nothing lost: the first catch-up saves it instead.
            return;
        };
        let part = saved_part(&doc, last_seq, snapshot_seq, data, logged);
        engine.saved_parts().keep(&doc, part);
    });
}

/// The logged changes after `from` up to `last_seq`, `None` if the log does not hold them
/// all.
async fn logged(
    engine: &Engine,
    doc: &DocId,
    from: u64,
    last_seq: u64,
    recent: Option<&RecentLog>,
) -> Result<Option<Vec<(u64, Vec<u8>)>>, Refusal> {
    let mut changes = Vec::new();
    let mut log = LogPages::new(from, last_seq, ORDER_PAGE, recent);
    while let Some(page) = log.next(engine, doc).await? {
        changes.extend(page);
    }
    let contiguous = changes
        .iter()
        .enumerate()
        .all(|(i, (seq, _))| *seq == from + 1 + i as u64);
    if !contiguous || log.cursor != last_seq {
        tracing::warn!(%doc, from, last_seq, "the change log has gaps: snapshot sent without order");
        return Ok(None);
    }
    Ok(Some(changes))
}

/// The actor and start op of each change (from its header), `None` if one is unreadable.
fn readable_heads<'a>(doc: &DocId, changes: &'a [(u64, Vec<u8>)]) -> Option<Vec<(&'a [u8], u64)>> {
    let heads: Option<Vec<(&[u8], u64)>> = changes
        .iter()
        .map(|(_, bytes)| change_actor_and_start_op(bytes))
        .collect();
    if heads.is_none() {
        tracing::warn!(%doc, "a stored change has no readable header: snapshot sent without order");
    }
    heads
}

/// The change log of a document after a seq, read in pages up to `last_seq`: from memory
/// when the unit's recent log holds every change still to send, else from the store.
struct LogPages<'a> {
    cursor: u64,
    last_seq: u64,
    page: usize,
    recent: Option<&'a RecentLog>,
}

impl<'a> LogPages<'a> {
    fn new(after: u64, last_seq: u64, page: usize, recent: Option<&'a RecentLog>) -> Self {
        LogPages {
            cursor: after,
            last_seq,
            page: page.max(1),
            recent,
        }
    }

    /// The next page, `None` once `last_seq` is reached (or the log ends early).
    async fn next(
        &mut self,
        engine: &Engine,
        doc: &DocId,
    ) -> Result<Option<Vec<(u64, Vec<u8>)>>, Refusal> {
        if self.cursor >= self.last_seq {
            return Ok(None);
        }
        let held = self
            .recent
            .and_then(|r| r.after(self.cursor, self.last_seq, self.page));
        let changes = match held {
            Some(changes) => {
                engine.metrics().catch_up_from_memory.inc();
                changes
            }
            None => {
                let (id, after, page) = (doc.clone(), self.cursor, self.page);
                engine
                    .read(move |store| async move { store.changes_after(&id, after, page).await })
                    .await
                    .map_err(|e| {
                        let code = match e.is_unavailable() {
                            true => ErrorCode::Unavailable,
                            false => ErrorCode::Internal,
                        };
                        (code, e.to_string())
                    })?
            }
        };
        match changes.last() {
            Some((last, _)) => {
                self.cursor = *last;
                Ok(Some(changes))
            }
            None => Ok(None),
        }
    }
}

async fn deliver(engine: &Engine, conn: &ConnHandle, frame: ServerFrame) -> Result<(), Refusal> {
    let framed = binary_frame(&encode_server(&frame));
    match conn
        .outlet
        .send_with_room(framed, Duration::from_secs(10))
        .await
    {
        Ok(()) => {
            engine.metrics().frames_out(1);
            Ok(())
        }
        Err(_) => Err((
            ErrorCode::Internal,
            "the connection does not take catch-up".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::wants_snapshot;

    #[test]
    fn the_saved_document_goes_to_clients_that_miss_much_or_what_compaction_folded() {
        assert!(!wants_snapshot(0, 100, 0), "a small document: changes");
        assert!(wants_snapshot(0, 10_000, 0), "all of a large document");
        assert!(wants_snapshot(6_000, 10_000, 0), "4,000 of 10,000 missed");
        assert!(!wants_snapshot(8_000, 10_000, 0), "2,000 of 10,000 missed");
        assert!(!wants_snapshot(10_000, 10_000, 0), "nothing missed");
        assert!(wants_snapshot(10, 20, 15), "behind the compaction");
    }
}
