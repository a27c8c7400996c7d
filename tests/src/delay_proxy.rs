//! A TCP proxy on 127.0.0.1 that delays every byte by a configurable time per direction,
//! changeable while it runs: a database that is up but slow. Each chunk read is forwarded
//! once its delay (taken when it was read) has passed, in order, so lowering the delay lets
//! what is already queued arrive first. Stops when dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running delay proxy.
#[derive(Debug)]
pub struct DelayProxy {
    pub port: u16,
    /// Milliseconds added to bytes from the client to the upstream.
    up_ms: Arc<AtomicU64>,
    /// Milliseconds added to bytes from the upstream to the client.
    down_ms: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:upstream`, with no
    /// delay until [`DelayProxy::set_delay`].
    pub async fn start(upstream: u16) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let up_ms = Arc::new(AtomicU64::new(0));
        let down_ms = Arc::new(AtomicU64::new(0));
        let (up, down) = (up_ms.clone(), down_ms.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (up, down) = (up.clone(), down.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    // Either direction ending ends the pair (the other half is dropped).
                    tokio::select! {
                        _ = pump(cr, sw, up) => {}
                        _ = pump(sr, cw, down) => {}
                    }
                });
            }
        });
        Ok(DelayProxy {
            port,
            up_ms,
            down_ms,
            accept,
        })
    }

    /// Sets the delay of each direction for bytes read from now on.
    pub fn set_delay(&self, up: Duration, down: Duration) {
        self.up_ms.store(up.as_millis() as u64, Ordering::SeqCst);
        self.down_ms
            .store(down.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        // Stops accepting; open pairs end when their peers close.
        self.accept.abort();
    }
}

/// Copies `from` to `to`, each chunk held until its delay has passed.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay_ms: Arc<AtomicU64>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let delay = Duration::from_millis(delay_ms.load(Ordering::SeqCst));
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    // The writer ends after the reader dropped its sender and the queue is flushed.
    tokio::join!(reader, writer);
}
