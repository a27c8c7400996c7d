//! The forwarded-attachment scenario, shared by `forwarding.rs` (one node on each store)
//! and `cluster.rs` (written through one node, read through another).

use confab_e2e::TestServer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{http, HttpAnswer};

fn ok(answer: &HttpAnswer, status: u16) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap_or(Value::Null)
}

fn refused(answer: &HttpAnswer, code: &str) {
    assert_eq!(answer.status, 403, "{}", answer.body);
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["code"], code, "{}", answer.body);
}

/// `PUT` of `text` as a `text/plain` blob of `conv`: its hash.
async fn put_text(server: &TestServer, conv: &str, account: &str, text: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let request = format!(
        "PUT /v1/conversations/{conv}/attachments/{hash} HTTP/1.0\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
        confab_e2e::token(crate::common::TENANT, account, false, 3600),
        text.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 201") || answer.starts_with("HTTP/1.1 201"),
        "{answer}"
    );
    hash
}

/// The attachment URLs (their paths) of message `id` in `conv`'s page as `who` reads it.
async fn attachment_paths(server: &TestServer, conv: &str, who: &str, id: &str) -> Vec<String> {
    let page = ok(
        &http(
            server,
            "GET",
            &format!("/v1/conversations/{conv}/messages"),
            who,
            None,
        )
        .await,
        200,
    );
    let message = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {page}"))
        .clone();
    message["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let url = a["url"].as_str().unwrap();
            url[url.find("/v1/").unwrap()..].to_owned()
        })
        .collect()
}

/// Alice forwards a message with an attachment from `src` (alice, bob) into `dst` (alice,
/// carol), over REST (`forwarded_from`) and by copying first (what the client engine does
/// before a forward over the socket), through `write`; through `read`, carol reads both
/// copies, and neither she nor anyone else reads more than they read before: carol not the
/// original, dave (in neither) not the copy, bob not the copy.
pub async fn forwarded_attachments(write: &TestServer, read: &TestServer, tag: &str) {
    let (src, dst) = (format!("{tag}-src"), format!("{tag}-dst"));
    for (id, other) in [(&src, "bob"), (&dst, "carol")] {
        let body = json!({"kind": "group", "id": id, "members": [{"account": other}]});
        ok(
            &http(
                write,
                "POST",
                "/v1/conversations",
                "alice",
                Some(&body.to_string()),
            )
            .await,
            201,
        );
    }
    let hash = put_text(write, &src, "alice", &format!("the report of {tag}")).await;
    let original = format!("/v1/conversations/{src}/attachments/{hash}");
    let file = |url: &str| json!([{"id": "a1", "kind": "file", "mime": "text/plain", "url": url}]);
    let post =
        json!({"id": "m1", "kind": "file", "attachments": file(&format!("https://x{original}"))});
    ok(
        &http(
            write,
            "POST",
            &format!("/v1/conversations/{src}/messages"),
            "alice",
            Some(&post.to_string()),
        )
        .await,
        201,
    );
    // Before the forward, carol cannot read the blob from her conversation.
    let copy = format!("/v1/conversations/{dst}/attachments/{hash}");
    assert_eq!(http(read, "GET", &copy, "carol", None).await.status, 404);

    // Over REST: the server copies what the forward names of `src`.
    let forward = json!({"id": "f1", "kind": "file", "forwarded_from": format!("{src}/m1"),
        "attachments": file(&format!("https://x{original}"))});
    ok(
        &http(
            write,
            "POST",
            &format!("/v1/conversations/{dst}/messages"),
            "alice",
            Some(&forward.to_string()),
        )
        .await,
        201,
    );
    assert_eq!(
        attachment_paths(read, &dst, "carol", "f1").await,
        vec![copy.clone()]
    );
    let got = http(read, "GET", &copy, "carol", None).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, format!("the report of {tag}").as_str())
    );

    // By copying first: a second blob, copied, then named by a forward.
    let second = put_text(write, &src, "alice", &format!("the sequel of {tag}")).await;
    let copy_path = format!("/v1/conversations/{dst}/attachments/{second}/copy");
    let from = json!({"from": src}).to_string();
    // Only who reads `src` and may attach in `dst` copies.
    refused(
        &http(write, "POST", &copy_path, "carol", Some(&from)).await,
        "not_member",
    );
    refused(
        &http(write, "POST", &copy_path, "bob", Some(&from)).await,
        "not_member",
    );
    let copied = ok(
        &http(write, "POST", &copy_path, "alice", Some(&from)).await,
        201,
    );
    assert_eq!(
        copied["path"],
        format!("/v1/conversations/{dst}/attachments/{second}")
    );
    ok(
        &http(write, "POST", &copy_path, "alice", Some(&from)).await,
        200,
    );
    let got = http(read, "GET", copied["path"].as_str().unwrap(), "carol", None).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, format!("the sequel of {tag}").as_str())
    );
    let missing = json!({"from": dst}).to_string();
    let nowhere = format!(
        "/v1/conversations/{src}/attachments/{}/copy",
        "0".repeat(64)
    );
    assert_eq!(
        http(write, "POST", &nowhere, "alice", Some(&missing))
            .await
            .status,
        404
    );

    // Nobody reads more than before.
    refused(
        &http(read, "GET", &original, "carol", None).await,
        "not_member",
    );
    refused(&http(read, "GET", &copy, "dave", None).await, "not_member");
    refused(&http(read, "GET", &copy, "bob", None).await, "not_member");
    assert_eq!(http(read, "GET", &original, "bob", None).await.status, 200);
}
