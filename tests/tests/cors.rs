//! Browsers on other origins (docs/OPERATIONS.md, "Browsers on other origins"): with
//! `--cors-origins`, a page of an allowed origin may call the REST API (the preflight is
//! answered, and answers carry `Access-Control-Allow-Origin`); any other origin gets no
//! CORS header, so its browser refuses the answer; without the option nobody does. The
//! real binary on 127.0.0.1 (SQLite).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use confab_e2e::{token, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = "https://app.example.com";

/// `request` (the head, without its final blank line) to `server`; the answer's head, lower
/// case.
async fn head_of(server: &TestServer, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream
        .write_all(format!("{request}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

fn preflight(origin: &str) -> String {
    format!(
        "OPTIONS /v1/notifications HTTP/1.0\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: GET\r\n\
         Access-Control-Request-Headers: authorization"
    )
}

fn get(origin: &str) -> String {
    format!(
        "GET /v1/notifications HTTP/1.0\r\nOrigin: {origin}\r\nAuthorization: Bearer {}",
        token(TENANT, "alice", false, 3600)
    )
}

#[tokio::test]
async fn only_allowed_origins_get_cors_headers() {
    let dir = std::env::temp_dir().join(format!("confab-cors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = TestServer::start_on(None, dir.join("on"), &["--cors-origins", APP])
        .await
        .unwrap();

    let answer = head_of(&server, &preflight(APP)).await;
    assert!(
        answer.starts_with("http/1.0 200") || answer.starts_with("http/1.1 200"),
        "{answer}"
    );
    assert!(
        answer.contains(&format!("access-control-allow-origin: {APP}")),
        "{answer}"
    );
    assert!(
        answer.contains("access-control-allow-headers: authorization"),
        "{answer}"
    );
    let answer = head_of(&server, &get(APP)).await;
    assert!(answer.contains(" 200 "), "{answer}");
    assert!(
        answer.contains(&format!("access-control-allow-origin: {APP}")),
        "{answer}"
    );
    assert!(
        !answer.contains("access-control-allow-credentials"),
        "{answer}"
    );

    for other in ["https://evil.example.com", "http://app.example.com"] {
        let answer = head_of(&server, &preflight(other)).await;
        assert!(
            !answer.contains("access-control-allow-origin"),
            "{other}: {answer}"
        );
        let answer = head_of(&server, &get(other)).await;
        assert!(
            !answer.contains("access-control-allow-origin"),
            "{other}: {answer}"
        );
    }
    drop(server);

    // Without the option: the server's own origin only.
    let server = TestServer::start_on(None, dir.join("off"), &[])
        .await
        .unwrap();
    let answer = head_of(&server, &get(APP)).await;
    assert!(answer.contains(" 200 "), "{answer}");
    assert!(!answer.contains("access-control-allow-origin"), "{answer}");

    // A value that is not an origin stops the server at start, saying why.
    let refused = TestServer::start_on(
        None,
        dir.join("bad"),
        &["--cors-origins", "app.example.com"],
    )
    .await;
    assert!(
        refused.is_err(),
        "a server started with --cors-origins app.example.com"
    );
}
