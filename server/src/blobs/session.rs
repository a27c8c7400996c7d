//! Resumable uploads: a session states the hash, size and type; chunks follow at the offset
//! the session has reached, each stored as a part of its own (so a connection dropped
//! mid-chunk loses that chunk only; the client asks the offset and goes on from there).
//! When the last byte arrives the parts are streamed, hashed, into the blob: a mismatch
//! stores nothing and ends the session.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{store_error, BlobError, BlobMeta, Blobs, Scope};

/// What a session promises, stored as `session.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub hash: String,
    pub size: u64,
    pub mime: String,
    pub account: String,
    pub created_at: i64,
}

/// A session with the offset it has reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub session: Session,
    pub offset: u64,
}

/// What a chunk did.
#[derive(Debug)]
pub enum ChunkOutcome {
    /// More bytes are wanted.
    Partial(Progress),
    /// The last byte came and the blob is stored.
    Complete(BlobMeta),
}

/// An upload id: unique per process and time, not guessable across restarts. Sessions are
/// also checked against their creator, so the id is not a secret.
pub fn fresh_id(now_ms: i64) -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt =
        std::collections::hash_map::RandomState::new().hash_one((std::process::id(), now_ms, n));
    format!("u{:x}{n:x}{salt:016x}", now_ms.max(0))
}

/// Upload ids are what [`fresh_id`] makes: ASCII letters and digits.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn session_path(scope: &Scope, id: &str) -> Path {
    scope.upload(id).join("session.json")
}

/// Parts are named by their offset, zero-padded: listing order is offset order.
fn part_path(scope: &Scope, id: &str, offset: u64) -> Path {
    scope.upload(id).join(format!("{offset:020}"))
}

impl Blobs {
    /// Opens a session (the caller checked the conversation, type and size).
    pub async fn open_session(&self, scope: &Scope, session: &Session) -> Result<(), BlobError> {
        let json = serde_json::to_vec(session).map_err(|e| BlobError::Store(e.to_string()))?;
        self.store
            .put(&session_path(scope, &session.id), PutPayload::from(json))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The session `id` of `account`, with its offset.
    pub async fn progress(
        &self,
        scope: &Scope,
        id: &str,
        account: &str,
    ) -> Result<Progress, BlobError> {
        let missing = || BlobError::NotFound(format!("no upload {id}"));
        if !valid_id(id) {
            return Err(missing());
        }
        let session: Session = match self.store.get(&session_path(scope, id)).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(store_error)?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| BlobError::Store(format!("upload session: {e}")))?
            }
            Err(object_store::Error::NotFound { .. }) => return Err(missing()),
            Err(e) => return Err(store_error(e)),
        };
        if session.account != account {
            return Err(missing());
        }
        let offset = self
            .parts(scope, id)
            .await?
            .last()
            .map_or(0, |(o, len)| o + len);
        Ok(Progress { session, offset })
    }

    /// The contiguous parts from offset 0, as `(offset, length)`.
    async fn parts(&self, scope: &Scope, id: &str) -> Result<Vec<(u64, u64)>, BlobError> {
        let mut listed: Vec<(u64, u64)> = self
            .store
            .list(Some(&scope.upload(id)))
            .try_filter_map(|meta| async move {
                let offset = meta
                    .location
                    .filename()
                    .and_then(|name| name.parse::<u64>().ok());
                Ok(offset.map(|o| (o, meta.size)))
            })
            .try_collect()
            .await
            .map_err(store_error)?;
        listed.sort_unstable();
        let mut contiguous = Vec::with_capacity(listed.len());
        let mut next = 0;
        for (offset, len) in listed {
            if offset != next {
                break;
            }
            next += len;
            contiguous.push((offset, len));
        }
        Ok(contiguous)
    }

    /// Stores a chunk at `offset`, which must be where the session is; completes the blob
    /// when it was the last one.
    pub async fn put_chunk(
        &self,
        scope: &Scope,
        progress: Progress,
        offset: u64,
        chunk: Bytes,
        now_ms: i64,
    ) -> Result<ChunkOutcome, BlobError> {
        let Progress {
            session,
            offset: current,
        } = progress;
        if offset != current {
            return Err(BlobError::OffsetMismatch {
                current,
                sent: offset,
            });
        }
        let len = chunk.len() as u64;
        if len == 0 {
            return Err(BlobError::SizeMismatch("an empty chunk".into()));
        }
        let end = current + len;
        if end > session.size {
            return Err(BlobError::SizeMismatch(format!(
                "the chunk ends at {end}, after the announced size {}",
                session.size
            )));
        }
        // Create, never overwrite: two chunks racing for one offset, one wins.
        let put = self
            .store
            .put_opts(
                &part_path(scope, &session.id, offset),
                PutPayload::from(chunk),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(BlobError::OffsetMismatch {
                    current: end,
                    sent: offset,
                })
            }
            Err(e) => return Err(store_error(e)),
        }
        if end < session.size {
            return Ok(ChunkOutcome::Partial(Progress {
                session,
                offset: end,
            }));
        }
        let result = self.complete(scope, &session, now_ms).await;
        let cleanup = match &result {
            // Stored, or refused for its bytes (nothing stored): the session ends.
            Ok(_) | Err(BlobError::HashMismatch { .. } | BlobError::SizeMismatch(_)) => {
                self.delete_session(scope, &session.id).await
            }
            // The store failed (full, unreachable): the last chunk is taken back, so the
            // client resends it once the store is back.
            Err(_) => match self
                .store
                .delete(&part_path(scope, &session.id, offset))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(store_error(e)),
            },
        };
        if let Err(e) = cleanup {
            tracing::warn!(error = %e, upload = %session.id, "cleaning up after an upload");
        }
        result.map(ChunkOutcome::Complete)
    }

    async fn complete(
        &self,
        scope: &Scope,
        session: &Session,
        now_ms: i64,
    ) -> Result<BlobMeta, BlobError> {
        let hash = super::parse_hash(&session.hash)?;
        let parts = self.parts(scope, &session.id).await?;
        let store = self.store.clone();
        let paths: Vec<Path> = parts
            .iter()
            .map(|(offset, _)| part_path(scope, &session.id, *offset))
            .collect();
        // One part at a time: memory is one part (at most a chunk) whatever the size.
        let body = futures_util::stream::iter(paths)
            .then(move |path| {
                let store = store.clone();
                async move {
                    match store.get(&path).await {
                        Ok(got) => got.bytes().await,
                        Err(e) => Err(e),
                    }
                }
            })
            .boxed();
        let size = self
            .put_stream(scope, &hash, Some(session.size), u64::MAX, body)
            .await?;
        let meta = BlobMeta {
            hash: hash.hex(),
            size,
            mime: session.mime.clone(),
            uploaded_by: session.account.clone(),
            created_at: now_ms,
        };
        self.put_meta(scope, &meta).await?;
        Ok(meta)
    }

    /// Removes a session and its parts.
    pub async fn delete_session(&self, scope: &Scope, id: &str) -> Result<(), BlobError> {
        let paths: Vec<Path> = self
            .store
            .list(Some(&scope.upload(id)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(store_error)?;
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(())
    }
}
