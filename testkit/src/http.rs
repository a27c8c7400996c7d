//! One raw HTTP/1.0 request to a server on 127.0.0.1: the answer ends with the connection,
//! so the e2e suites and the bench binaries need no HTTP client library.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A status line's code, the head (status line and headers) and the body as text.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    /// The value of header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `method path` on `port` with `Authorization: Bearer bearer` and an optional body of
/// `(content type, bytes)`; the whole answer within `within`.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<(&str, &[u8])>,
    within: Duration,
) -> Result<RawAnswer> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let (content, bytes) = match body {
            Some((kind, bytes)) => (
                format!(
                    "Content-Type: {kind}\r\nContent-Length: {}\r\n",
                    bytes.len()
                ),
                bytes,
            ),
            None => ("Content-Length: 0\r\n".to_owned(), &[][..]),
        };
        let head =
            format!("{method} {path} HTTP/1.0\r\nAuthorization: Bearer {bearer}\r\n{content}\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(bytes).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(within, exchange)
        .await
        .with_context(|| format!("no answer to {method} {path} within {within:?}"))?
        .with_context(|| format!("{method} {path}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status in {head:?}"))?;
    Ok(RawAnswer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
