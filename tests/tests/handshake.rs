//! The WebSocket handshake over raw TCP: what a client in any language sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use confab_e2e::{token, Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the end of the HTTP head; returns (head, bytes read after it).
async fn read_head(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "the server closed before answering: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A masked client frame (RFC 6455 §5.3) holding `payload`.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![0x82];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One unmasked server frame from `bytes`: (first byte, payload, bytes used), or None if
/// incomplete.
fn server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (len, start) = match *bytes.get(1)? {
        126 => (
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
            4,
        ),
        127 => return None,
        n => (n as usize, 2),
    };
    let end = start + len;
    (bytes.len() >= end).then(|| (bytes[0], bytes[start..end].to_vec(), end))
}

/// The next whole server frame, reading from `tcp` as needed.
async fn next_frame(tcp: &mut TcpStream, pending: &mut Vec<u8>) -> (u8, Vec<u8>) {
    loop {
        if let Some((first, payload, used)) = server_frame(pending) {
            pending.drain(..used);
            return (first, payload);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("a frame within 10 s")
            .unwrap();
        assert!(n > 0, "the connection ended");
        pending.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_hello_sent_with_the_upgrade_request_is_answered() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let addr = format!("127.0.0.1:{}", server.port);
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let hello = encode_client(&ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        token: token("acme", "alice", false, 3600),
        device: "raw".into(),
    });
    // The request and the first frame in one write: the server must not lose the frame
    // its HTTP layer already read.
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes();
    request.extend(client_frame(&hello));
    tcp.write_all(&request).await.unwrap();

    let (head, mut rest) = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "RFC 6455's accept key: {head}"
    );
    let (first, payload) = next_frame(&mut tcp, &mut rest).await;
    assert_eq!(first, 0x82, "a final binary frame");
    match decode_server(&payload, usize::MAX).unwrap() {
        ServerFrame::Welcome { account, .. } => assert_eq!(account, "alice"),
        other => panic!("expected welcome, got {other:?}"),
    }

    // A ping is answered with a pong carrying the same bytes.
    let mut ping = client_frame(b"are you there");
    ping[0] = 0x89;
    tcp.write_all(&ping).await.unwrap();
    assert_eq!(
        next_frame(&mut tcp, &mut rest).await,
        (0x8a, b"are you there".to_vec())
    );
}

#[tokio::test]
async fn a_plain_request_to_the_websocket_endpoint_is_refused_with_its_reason() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let addr = format!("127.0.0.1:{}", server.port);
    for (request, status, says) in [
        (
            format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
            "400",
            "Connection header must contain `upgrade`",
        ),
        (
            format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n\r\n"
            ),
            "400",
            "Sec-WebSocket-Version must be 13",
        ),
    ] {
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut answer))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
        assert!(answer.contains(says), "{answer}");
    }
}
