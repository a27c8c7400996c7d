//! A push webhook receiver for the tests: plain HTTP/1.1 on 127.0.0.1, every body it
//! is posted kept, answered 200 and closed. The signature is `server/tests/webhooks.rs`'s
//! business; here only who is pushed about what matters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The receiver's address and what it took.
#[derive(Debug)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Value>>>,
    /// Milliseconds to wait before answering each request (a slow receiver).
    delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/push", listener.local_addr()?);
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                let delay = Duration::from_millis(delay.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    if let Ok(body) = take(stream, delay).await {
                        if let (Ok(v), Ok(mut kept)) =
                            (serde_json::from_slice::<Value>(&body), kept.lock())
                        {
                            kept.push(v);
                        }
                    }
                });
            }
        });
        Ok(Receiver {
            url,
            got,
            delay_ms,
            task,
        })
    }

    /// Makes every later request wait `delay` before its answer.
    pub fn slow_down(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Every body taken so far, in the order they arrived.
    pub fn bodies(&self) -> Vec<Value> {
        self.got.lock().map(|got| got.clone()).unwrap_or_default()
    }

    /// The `(account, message)` of every notification pushed so far.
    pub fn pushed(&self) -> Vec<(String, String)> {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        self.got
            .lock()
            .map(|got| {
                got.iter()
                    .map(|v| (text(&v["account"]), text(&v["notification"]["message"])))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `message` was pushed to `account`.
    pub async fn wait_for(&self, account: &str, message: &str, within: Duration) -> Result<()> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if self
                .pushed()
                .iter()
                .any(|(a, m)| a == account && m == message)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > until {
                return Err(anyhow::anyhow!(
                    "{message} was not pushed to {account} within {within:?}; pushed: {:?}",
                    self.pushed()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads one request's body and answers 200 after `delay`.
async fn take(mut stream: TcpStream, delay: Duration) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the request ended early");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .context("a content-length")?;
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the body ended early");
        buf.extend_from_slice(&chunk[..n]);
    }
    tokio::time::sleep(delay).await;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await?;
    Ok(buf[head_end..head_end + length].to_vec())
}
